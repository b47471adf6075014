//! Conditional GET and HEAD, evaluated as RFC 9110 §13.2.2 orders them and as AWS S3 does.
//!
//! The header values are parsed leniently (lists, `*`, weak tags, unquoted S3-style tags,
//! the three HTTP-date formats); [`Preconditions::evaluate`] is a pure function of the
//! parsed headers, the object's ETag and its Last-Modified time.

use std::time::{SystemTime, UNIX_EPOCH};

use hyper::header::{
    HeaderMap, HeaderName, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE,
};

/// What a conditional request asks the store to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No condition stops the request: answer it as usual.
    Proceed,
    /// `304 Not Modified` (If-None-Match or If-Modified-Since on GET/HEAD).
    NotModified,
    /// `412 Precondition Failed` (If-Match or If-Unmodified-Since).
    PreconditionFailed,
}

/// One member of an `If-Match` / `If-None-Match` list (RFC 9110 §8.8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntityTag {
    weak: bool,
    opaque: String,
}

/// The value of an `If-Match` / `If-None-Match` header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EntityTagList {
    /// `*`: any current representation.
    Any,
    /// A list of tags; members that do not parse are dropped (so it may be empty).
    Tags(Vec<EntityTag>),
}

impl EntityTagList {
    /// Strong comparison (RFC 9110 §8.8.3.2), used by If-Match. S3 ETags are strong.
    fn matches_strong(&self, etag: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| !t.weak && t.opaque == etag),
        }
    }

    /// Weak comparison, used by If-None-Match: `W/"x"` matches the ETag `"x"`.
    fn matches_weak(&self, etag: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| t.opaque == etag),
        }
    }

    /// Parses all the field lines of one header as one comma-separated list.
    fn parse(values: &[&str]) -> Self {
        let mut tags = Vec::new();
        for value in values {
            let mut rest = *value;
            loop {
                rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
                if rest.is_empty() {
                    break;
                }
                if let Some(after) = rest.strip_prefix('*') {
                    if after.trim_start().is_empty() || after.trim_start().starts_with(',') {
                        return Self::Any;
                    }
                }
                let (tag, after) = parse_entity_tag(rest);
                tags.extend(tag);
                rest = after;
            }
        }
        Self::Tags(tags)
    }
}

/// Parses one entity-tag at the start of `s`; returns it (if well formed) and the rest after it.
/// Unquoted tokens are accepted as strong tags, as S3 does (`If-Match: 0123abcd`).
fn parse_entity_tag(s: &str) -> (Option<EntityTag>, &str) {
    let (weak, body) = match s.strip_prefix("W/") {
        Some(body) => (true, body),
        None => (false, s),
    };
    if let Some(quoted) = body.strip_prefix('"') {
        return match quoted.find('"') {
            Some(end) => {
                let opaque = quoted[..end].to_owned();
                (Some(EntityTag { weak, opaque }), &quoted[end + 1..])
            }
            None => (None, ""),
        };
    }
    let end = body.find(',').unwrap_or(body.len());
    let token = body[..end].trim();
    let valid = !weak
        && !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let tag = valid.then(|| EntityTag {
        weak: false,
        opaque: token.to_owned(),
    });
    (tag, &body[end..])
}

/// The conditional headers of a GET or HEAD request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Preconditions {
    if_match: Option<EntityTagList>,
    if_none_match: Option<EntityTagList>,
    if_modified_since: Option<SystemTime>,
    if_unmodified_since: Option<SystemTime>,
}

impl Preconditions {
    /// Reads the four conditional headers. Empty values are absent (as s3s treats them); a
    /// date that is not a valid HTTP-date, or that is sent more than once, is ignored
    /// (RFC 9110 §13.1.3, §13.1.4).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            if_match: tag_list(headers, &IF_MATCH),
            if_none_match: tag_list(headers, &IF_NONE_MATCH),
            if_modified_since: http_date(headers, &IF_MODIFIED_SINCE),
            if_unmodified_since: http_date(headers, &IF_UNMODIFIED_SINCE),
        }
    }

    /// Whether the request carries no usable condition.
    pub(crate) fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// RFC 9110 §13.2.2 for GET and HEAD on an existing object:
    /// 1. If-Match present: false -> 412 (strong comparison, `*` is true);
    /// 2. else If-Unmodified-Since present: modified after the date -> 412;
    /// 3. If-None-Match present: true match -> 304 (weak comparison, `*` matches);
    /// 4. else If-Modified-Since present: not modified after the date -> 304.
    ///
    /// AWS S3 documents the same precedence ("If-Match true and If-Unmodified-Since false:
    /// 200"; "If-None-Match false and If-Modified-Since true: 304"). Dates compare at
    /// one-second precision, the precision of `Last-Modified`.
    pub(crate) fn evaluate(&self, etag: &str, last_modified: SystemTime) -> Outcome {
        let modified = unix_seconds(last_modified);
        if let Some(list) = &self.if_match {
            if !list.matches_strong(etag) {
                return Outcome::PreconditionFailed;
            }
        } else if let Some(date) = self.if_unmodified_since {
            if modified > unix_seconds(date) {
                return Outcome::PreconditionFailed;
            }
        }
        if let Some(list) = &self.if_none_match {
            if list.matches_weak(etag) {
                return Outcome::NotModified;
            }
        } else if let Some(date) = self.if_modified_since {
            if modified <= unix_seconds(date) {
                return Outcome::NotModified;
            }
        }
        Outcome::Proceed
    }
}

fn non_empty_values<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Vec<&'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .collect()
}

fn tag_list(headers: &HeaderMap, name: &HeaderName) -> Option<EntityTagList> {
    let values = non_empty_values(headers, name);
    (!values.is_empty()).then(|| EntityTagList::parse(&values))
}

fn http_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    match non_empty_values(headers, name).as_slice() {
        [one] => httpdate::parse_http_date(one.trim()).ok(),
        _ => None,
    }
}

/// Whole seconds since the Unix epoch (earlier times count as 0).
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::header::HeaderValue;

    use super::*;

    const ETAG: &str = "9a0364b9e99bb480dd25e1f0284c8555";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    /// A sentence, the request headers, and what the store must answer.
    type Case<'a> = (&'a str, Vec<(HeaderName, &'a str)>, Outcome);

    fn evaluate(headers: &[(HeaderName, &str)]) -> Outcome {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                name.clone(),
                HeaderValue::from_str(value).expect("test header value"),
            );
        }
        // Last-Modified is 1_000_000.5 s: the half second must not matter.
        let last_modified = at(1_000_000) + Duration::from_millis(500);
        Preconditions::from_headers(&map).evaluate(ETAG, last_modified)
    }

    #[test]
    fn conditions_follow_rfc_9110_order_and_aws_precedence() {
        let quoted = format!("\"{ETAG}\"");
        let weak = format!("W/\"{ETAG}\"");
        let list = format!("\"other\", {quoted}");
        let (past, same, future) = (date(999_999), date(1_000_000), date(1_000_001));
        let cases: Vec<Case> = vec![
            ("no condition proceeds", vec![], Outcome::Proceed),
            (
                "if-none-match with the etag is 304",
                vec![(IF_NONE_MATCH, &quoted)],
                Outcome::NotModified,
            ),
            (
                "if-none-match compares weakly",
                vec![(IF_NONE_MATCH, &weak)],
                Outcome::NotModified,
            ),
            (
                "if-none-match star is 304",
                vec![(IF_NONE_MATCH, "*")],
                Outcome::NotModified,
            ),
            (
                "if-none-match list member is 304",
                vec![(IF_NONE_MATCH, &list)],
                Outcome::NotModified,
            ),
            (
                "if-none-match other etag proceeds",
                vec![(IF_NONE_MATCH, "\"other\"")],
                Outcome::Proceed,
            ),
            (
                "unquoted etag is accepted",
                vec![(IF_NONE_MATCH, ETAG)],
                Outcome::NotModified,
            ),
            (
                "if-match with the etag proceeds",
                vec![(IF_MATCH, &quoted)],
                Outcome::Proceed,
            ),
            (
                "if-match star proceeds",
                vec![(IF_MATCH, "*")],
                Outcome::Proceed,
            ),
            (
                "if-match list member proceeds",
                vec![(IF_MATCH, &list)],
                Outcome::Proceed,
            ),
            (
                "if-match other etag is 412",
                vec![(IF_MATCH, "\"other\"")],
                Outcome::PreconditionFailed,
            ),
            (
                "if-match compares strongly",
                vec![(IF_MATCH, &weak)],
                Outcome::PreconditionFailed,
            ),
            (
                "if-match garbage is 412",
                vec![(IF_MATCH, "\"unterminated")],
                Outcome::PreconditionFailed,
            ),
            (
                "if-modified-since past proceeds",
                vec![(IF_MODIFIED_SINCE, &past)],
                Outcome::Proceed,
            ),
            (
                "if-modified-since same second is 304",
                vec![(IF_MODIFIED_SINCE, &same)],
                Outcome::NotModified,
            ),
            (
                "if-modified-since future is 304",
                vec![(IF_MODIFIED_SINCE, &future)],
                Outcome::NotModified,
            ),
            (
                "invalid if-modified-since is ignored",
                vec![(IF_MODIFIED_SINCE, "yesterday")],
                Outcome::Proceed,
            ),
            (
                "obsolete date format is accepted",
                vec![(IF_MODIFIED_SINCE, "Monday, 12-Jan-70 13:46:41 GMT")],
                Outcome::NotModified,
            ),
            (
                "if-unmodified-since past is 412",
                vec![(IF_UNMODIFIED_SINCE, &past)],
                Outcome::PreconditionFailed,
            ),
            (
                "if-unmodified-since same second proceeds",
                vec![(IF_UNMODIFIED_SINCE, &same)],
                Outcome::Proceed,
            ),
            (
                "if-match true overrides if-unmodified-since false",
                vec![(IF_MATCH, &quoted), (IF_UNMODIFIED_SINCE, &past)],
                Outcome::Proceed,
            ),
            (
                "if-none-match false (match) overrides if-modified-since true",
                vec![(IF_NONE_MATCH, &quoted), (IF_MODIFIED_SINCE, &past)],
                Outcome::NotModified,
            ),
            (
                "if-none-match true (no match) overrides if-modified-since false",
                vec![(IF_NONE_MATCH, "\"other\""), (IF_MODIFIED_SINCE, &future)],
                Outcome::Proceed,
            ),
            (
                "412 wins over 304",
                vec![(IF_MATCH, "\"other\""), (IF_NONE_MATCH, &quoted)],
                Outcome::PreconditionFailed,
            ),
            (
                "header lines combine into one list",
                vec![(IF_NONE_MATCH, "\"a\""), (IF_NONE_MATCH, &quoted)],
                Outcome::NotModified,
            ),
            (
                "empty header is absent",
                vec![(IF_MATCH, "")],
                Outcome::Proceed,
            ),
        ];
        for (name, headers, expected) in cases {
            assert_eq!(evaluate(&headers), expected, "{name}");
        }
    }
}
