//! Content coding negotiation: `Accept-Encoding`, RFC 9110 section 12.5.3.
//!
//! [`negotiate`] reads the request's `Accept-Encoding` field value and the
//! codings the site offers (in the site's order of preference) and answers
//! with a [`Negotiated`] outcome:
//!
//! 1. HTTP/1.0, or no `Accept-Encoding` field: identity. The RFC lets a
//!    server pick any coding when the field is absent, but clients that send
//!    none (curl, scripts, health checks) expect the plain bytes, and an
//!    HTTP/1.0 cache may ignore `Vary`.
//! 2. Each offered coding gets the qvalue of its own element (`x-gzip` counts
//!    as `gzip`, section 8.4.1.3), else the qvalue of `*` ("any available
//!    content coding not explicitly listed"), else it is not acceptable.
//!    `q=0` means "not acceptable".
//! 3. The acceptable coding with the highest qvalue wins; ties go to the
//!    earlier coding in `offered`, the site's preference.
//! 4. Identity is acceptable unless refused by `identity;q=0`, or by `*;q=0`
//!    with no `identity` element (section 12.5.3). Its qvalue is that of its
//!    own element, else that of `*`; it wins over the best coding only when
//!    ranked strictly higher (`identity, gzip;q=0.5`; `gzip;q=0.2, *`), since
//!    the edge prefers to compress.
//! 5. No coding acceptable and identity refused: [`Negotiated::NotAcceptable`].
//!    The RFC lets a server answer 406 or send identity anyway; the edge sends
//!    identity (a 406 for a static asset helps nobody), so callers treat it as
//!    [`Negotiated::Identity`]. It exists so the choice is visible in logs.
//!
//! Parsing choices, all in the client's favour of getting a working answer:
//! tokens and the `q` name are case-insensitive (section 5.6.6, 8.4.1); empty
//! list elements are skipped (section 5.6.1); an element whose `q` is not a
//! valid qvalue (`q=2`, `q=abc`, `q=0.1234`, section 12.4.2) is ignored as if
//! absent, so a malformed weight neither forces nor refuses a coding; other
//! parameters are ignored; when a coding is listed twice, the first element wins.
//! A field sent on several lines must be passed joined with `, ` (section 5.3).

use super::ContentCoding;

/// The outcome of content negotiation for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiated {
    /// Send the representation as it is.
    Identity,
    /// Send it encoded with this coding.
    Coding(ContentCoding),
    /// No offered coding is acceptable and the client refused identity;
    /// served as identity all the same (see the module doc).
    NotAcceptable,
}

impl Negotiated {
    /// The coding to apply, `None` for identity (and for `NotAcceptable`,
    /// which is served as identity).
    pub fn coding(self) -> Option<ContentCoding> {
        match self {
            Negotiated::Coding(coding) => Some(coding),
            Negotiated::Identity | Negotiated::NotAcceptable => None,
        }
    }

    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Negotiated::Identity => "identity",
            Negotiated::Coding(coding) => coding.as_str(),
            Negotiated::NotAcceptable => "not_acceptable",
        }
    }
}

/// A qvalue in thousandths: `q=0.5` is 500, `q=1` is 1000 (RFC 9110 section 12.4.2).
type QValue = u16;

const Q_MAX: QValue = 1000;

/// Chooses the content coding of a response (RFC 9110 section 12.5.3; the
/// rules are in the module doc).
///
/// `accept_encoding` is the request's `Accept-Encoding` field value (`None`
/// when absent); `offered` lists the codings the site can send, most
/// preferred first; `http10` is true for an HTTP/1.0 request.
pub fn negotiate(
    accept_encoding: Option<&str>,
    offered: &[ContentCoding],
    http10: bool,
) -> Negotiated {
    let Some(field) = accept_encoding else {
        return Negotiated::Identity;
    };
    if http10 {
        return Negotiated::Identity;
    }
    let prefs = Preferences::parse(field);
    let mut best: Option<(ContentCoding, QValue)> = None;
    for &coding in offered {
        let q = prefs
            .q_of(Token::Coding(coding))
            .or(prefs.star)
            .unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, best_q)| q > best_q) {
            best = Some((coding, q));
        }
    }
    let identity = prefs.q_of(Token::Identity).or(prefs.star);
    match (best, identity) {
        (Some((_, q)), Some(identity_q)) if identity_q > q => Negotiated::Identity,
        (Some((coding, _)), _) => Negotiated::Coding(coding),
        (None, Some(0)) => Negotiated::NotAcceptable,
        (None, _) => Negotiated::Identity,
    }
}

/// A coding named in `Accept-Encoding`, as far as the edge cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Coding(ContentCoding),
    Identity,
    Star,
    /// A coding the edge cannot produce (`deflate`, `zstd`, ...).
    Other,
}

impl Token {
    fn parse(token: &str) -> Token {
        let token = token.to_ascii_lowercase();
        match token.as_str() {
            "identity" => Token::Identity,
            "*" => Token::Star,
            "x-gzip" => Token::Coding(ContentCoding::Gzip),
            other => ContentCoding::parse(other).map_or(Token::Other, Token::Coding),
        }
    }
}

/// The parsed field: each recognised token with its qvalue, first occurrence kept.
struct Preferences {
    listed: Vec<(Token, QValue)>,
    /// The qvalue of `*`, when listed.
    star: Option<QValue>,
}

impl Preferences {
    fn parse(field: &str) -> Preferences {
        let mut listed: Vec<(Token, QValue)> = Vec::new();
        for element in field.split(',') {
            let mut parts = element.split(';');
            let token = parts.next().unwrap_or("").trim();
            if token.is_empty() {
                continue;
            }
            let Some(q) = weight(parts) else {
                continue;
            };
            let token = Token::parse(token);
            if token != Token::Other && !listed.iter().any(|&(seen, _)| seen == token) {
                listed.push((token, q));
            }
        }
        let star = listed
            .iter()
            .find(|&&(t, _)| t == Token::Star)
            .map(|&(_, q)| q);
        Preferences { listed, star }
    }

    /// The qvalue of an element naming `token` itself (not through `*`).
    fn q_of(&self, token: Token) -> Option<QValue> {
        self.listed
            .iter()
            .find(|&&(t, _)| t == token)
            .map(|&(_, q)| q)
    }
}

/// The weight of an element from its parameters: `Some(1000)` without `q`,
/// `None` when `q` is not a valid qvalue (the element is then ignored).
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<QValue> {
    for param in params {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("q") {
            return parse_qvalue(value.trim());
        }
    }
    Some(Q_MAX)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
/// (RFC 9110 section 12.4.2), in thousandths.
fn parse_qvalue(value: &str) -> Option<QValue> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |acc, b| acc * 10 + QValue::from(b - b'0'));
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(Q_MAX),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContentCoding::{Brotli, Gzip};
    use Negotiated::{Coding, Identity, NotAcceptable};

    const BR_GZIP: &[ContentCoding] = &[Brotli, Gzip];
    const GZIP_BR: &[ContentCoding] = &[Gzip, Brotli];

    /// (name, Accept-Encoding, offered, expected) for HTTP/1.1 requests.
    const CASES: &[(&str, Option<&str>, &[ContentCoding], Negotiated)] = &[
        ("no header means identity", None, BR_GZIP, Identity),
        (
            "an empty header means identity",
            Some(""),
            BR_GZIP,
            Identity,
        ),
        (
            "a header of empty elements means identity",
            Some(" , ,"),
            BR_GZIP,
            Identity,
        ),
        ("gzip alone gives gzip", Some("gzip"), BR_GZIP, Coding(Gzip)),
        ("br alone gives br", Some("br"), BR_GZIP, Coding(Brotli)),
        (
            "equal qvalues go to the site's first choice",
            Some("gzip, br"),
            BR_GZIP,
            Coding(Brotli),
        ),
        (
            "the site's order decides ties, not the client's",
            Some("br, gzip"),
            GZIP_BR,
            Coding(Gzip),
        ),
        (
            "a higher qvalue beats the site's preference",
            Some("br;q=0.5, gzip"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "qvalues compare to the thousandth",
            Some("br;q=0.899, gzip;q=0.9"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "q=0 refuses a coding",
            Some("br;q=0, gzip"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "q=0.000 refuses a coding",
            Some("br;q=0.000, gzip;q=0.001"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "refusing every coding leaves identity",
            Some("br;q=0, gzip;q=0"),
            BR_GZIP,
            Identity,
        ),
        (
            "a coding the site does not offer is not used",
            Some("br"),
            &[Gzip],
            Identity,
        ),
        (
            "unknown codings are ignored",
            Some("deflate, zstd, compress"),
            BR_GZIP,
            Identity,
        ),
        (
            "unknown codings do not hide known ones",
            Some("zstd, br;q=0.8"),
            BR_GZIP,
            Coding(Brotli),
        ),
        (
            "tokens are case-insensitive",
            Some("GZIP"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "the q name is case-insensitive",
            Some("Br;Q=0.2, gZip;q=0.3"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "x-gzip counts as gzip",
            Some("x-gzip"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "x-gzip;q=0 refuses gzip",
            Some("x-gzip;q=0, br;q=0.1"),
            GZIP_BR,
            Coding(Brotli),
        ),
        (
            "whitespace around elements and parameters is allowed",
            Some(" gzip ; q=0.8 ,\tbr ; q=0.9 "),
            GZIP_BR,
            Coding(Brotli),
        ),
        (
            "empty elements are skipped",
            Some("gzip,, ,br"),
            BR_GZIP,
            Coding(Brotli),
        ),
        (
            "parameters other than q are ignored",
            Some("br;level=5"),
            BR_GZIP,
            Coding(Brotli),
        ),
        (
            "the first of duplicate elements wins",
            Some("br;q=0, br, gzip;q=0.1"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "star accepts every coding",
            Some("*"),
            BR_GZIP,
            Coding(Brotli),
        ),
        (
            "star applies only to codings not listed",
            Some("gzip;q=0.5, *;q=0.8"),
            GZIP_BR,
            Coding(Brotli),
        ),
        (
            "a listed coding is not refused by star q=0",
            Some("gzip, *;q=0"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "a refused coding is not revived by star",
            Some("br;q=0, *"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "identity;q=0 with nothing else acceptable is not acceptable",
            Some("identity;q=0"),
            BR_GZIP,
            NotAcceptable,
        ),
        (
            "star q=0 refuses identity too",
            Some("*;q=0"),
            BR_GZIP,
            NotAcceptable,
        ),
        (
            "star q=0 does not refuse a listed identity",
            Some("*;q=0, identity"),
            BR_GZIP,
            Identity,
        ),
        (
            "identity;q=0 with nothing offered is not acceptable",
            Some("identity;q=0"),
            &[],
            NotAcceptable,
        ),
        (
            "nothing offered means identity",
            Some("br, gzip"),
            &[],
            Identity,
        ),
        (
            "identity ranked higher beats a coding",
            Some("identity, gzip;q=0.5"),
            BR_GZIP,
            Identity,
        ),
        (
            "identity ranked equal loses to a coding",
            Some("identity;q=0.5, gzip;q=0.5"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "identity through star ranked higher beats a coding",
            Some("gzip;q=0.2, *;q=0.5"),
            &[Gzip],
            Identity,
        ),
        (
            "identity through star ranked equal loses to a coding",
            Some("gzip;q=0.5, *;q=0.5"),
            &[Gzip],
            Coding(Gzip),
        ),
        (
            "a listed coding wins over implicit identity",
            Some("gzip;q=0.001"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "q=1.000 is valid",
            Some("br;q=1.000"),
            BR_GZIP,
            Coding(Brotli),
        ),
        (
            "a qvalue above 1 makes the element ignored",
            Some("gzip;q=1.5"),
            BR_GZIP,
            Identity,
        ),
        (
            "a qvalue of 1.001 makes the element ignored",
            Some("gzip;q=1.001, br;q=0.1"),
            GZIP_BR,
            Coding(Brotli),
        ),
        (
            "a non-numeric qvalue makes the element ignored",
            Some("gzip;q=abc, br;q=0.1"),
            GZIP_BR,
            Coding(Brotli),
        ),
        (
            "four decimals make the element ignored",
            Some("gzip;q=0.0001"),
            BR_GZIP,
            Identity,
        ),
        (
            "an empty qvalue makes the element ignored",
            Some("br;q=, gzip"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "a negative qvalue makes the element ignored",
            Some("br;q=-1, gzip"),
            BR_GZIP,
            Coding(Gzip),
        ),
        (
            "an ignored identity;q=bad keeps identity acceptable",
            Some("identity;q=bad"),
            &[],
            Identity,
        ),
        (
            "an ignored identity element leaves it to star",
            Some("identity;q=bad, *;q=0"),
            &[],
            NotAcceptable,
        ),
        (
            "an ignored element falls back to star",
            Some("gzip;q=x, *;q=0.3"),
            &[Gzip],
            Coding(Gzip),
        ),
    ];

    #[test]
    fn negotiation_follows_rfc_9110_12_5_3() {
        for &(name, header, offered, want) in CASES {
            assert_eq!(negotiate(header, offered, false), want, "{name}");
        }
    }

    #[test]
    fn http_1_0_requests_always_get_identity() {
        for &(name, header, offered, _) in CASES {
            assert_eq!(negotiate(header, offered, true), Identity, "{name}");
        }
    }

    #[test]
    fn qvalues_parse_as_rfc_9110_12_4_2_says() {
        let cases: &[(&str, Option<QValue>)] = &[
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.25", Some(250)),
            ("0.125", Some(125)),
            ("1", Some(1000)),
            ("1.0", Some(1000)),
            ("1.000", Some(1000)),
            ("1.0000", None),
            ("1.5", None),
            (".5", None),
            ("2", None),
            ("0.5a", None),
            ("", None),
            ("+0.5", None),
        ];
        for &(value, want) in cases {
            assert_eq!(parse_qvalue(value), want, "q={value}");
        }
    }

    #[test]
    fn outcomes_have_stable_names() {
        let cases = [
            (Identity, "identity", None),
            (Coding(Brotli), "br", Some(Brotli)),
            (Coding(Gzip), "gzip", Some(Gzip)),
            (NotAcceptable, "not_acceptable", None),
        ];
        for (outcome, label, coding) in cases {
            assert_eq!(outcome.as_str(), label);
            assert_eq!(outcome.coding(), coding, "{label}");
        }
    }
}
