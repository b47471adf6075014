//! Conditional requests, RFC 9110 section 13, as pure functions.
//!
//! The caller hands in the request's precondition header values and the
//! selected representation's validators; [`evaluate`] answers with an
//! [`Outcome`] in the precedence of RFC 9110 section 13.2.2:
//!
//! 1. `If-Match` (strong comparison); false: 412.
//! 2. else `If-Unmodified-Since`; false: 412.
//! 3. `If-None-Match` (weak comparison); false: 304 on GET/HEAD, else 412.
//! 4. else, on GET/HEAD, `If-Modified-Since`; false: 304.
//! 5. `Range` with `If-Range` ([`if_range_allows`], then `super::range`).
//!
//! Dates compare at whole-second precision, the precision of an HTTP-date
//! (RFC 9110 section 5.6.7), so a `Last-Modified` with sub-second digits
//! matches the date the client got from the truncated `Last-Modified` field.

use std::time::{SystemTime, UNIX_EPOCH};

/// The validators of the selected representation (RFC 9110 section 8.8).
///
/// `etag` is the field value as sent in `ETag` (section 8.8.3), with its
/// quotes and maybe the `W/` weakness prefix; `last_modified` is the time
/// sent in `Last-Modified` (section 8.8.2), compared at whole seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Validators<'a> {
    /// The `ETag` field value, e.g. `"d41d8cd9"` or `W/"1"` (RFC 9110 section 8.8.3).
    pub etag: Option<&'a str>,
    /// The modification time sent as `Last-Modified` (RFC 9110 section 8.8.2).
    pub last_modified: Option<SystemTime>,
}

/// The precondition header fields of a request (RFC 9110 section 13.1), as
/// raw field values; `None` when the field is absent. A list field sent on
/// several lines is passed joined with `, ` (RFC 9110 section 5.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Preconditions<'a> {
    /// `If-Match` (RFC 9110 section 13.1.1).
    pub if_match: Option<&'a str>,
    /// `If-None-Match` (RFC 9110 section 13.1.2).
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since` (RFC 9110 section 13.1.3).
    pub if_modified_since: Option<&'a str>,
    /// `If-Unmodified-Since` (RFC 9110 section 13.1.4).
    pub if_unmodified_since: Option<&'a str>,
}

/// The request method, as far as preconditions care (RFC 9110 section 13.2.2):
/// a failed `If-None-Match` is 304 for GET and HEAD and 412 for others, and
/// `If-Modified-Since` applies to GET and HEAD only (section 13.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET or HEAD.
    GetOrHead,
    /// Any other method.
    Other,
}

impl Method {
    /// Classifies a method name; method names are case-sensitive (RFC 9110
    /// section 9.1), so `get` is [`Method::Other`].
    pub fn from_name(name: &str) -> Method {
        match name {
            "GET" | "HEAD" => Method::GetOrHead,
            _ => Method::Other,
        }
    }
}

/// What the preconditions decide (RFC 9110 section 13.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every precondition holds: go on to `Range` (step 5) and the method.
    Proceed,
    /// 304 Not Modified (RFC 9110 section 15.4.5): send the headers a 200
    /// would have had (`ETag`, `Last-Modified`, `Cache-Control`, `Vary`, ...)
    /// and no content.
    NotModified,
    /// 412 Precondition Failed (RFC 9110 section 15.5.13).
    PreconditionFailed,
}

impl Outcome {
    /// A stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Proceed => "proceed",
            Outcome::NotModified => "not_modified",
            Outcome::PreconditionFailed => "precondition_failed",
        }
    }

    /// The status code this outcome answers with (RFC 9110 sections 15.4.5 and
    /// 15.5.13); `None` for [`Outcome::Proceed`], whose status is decided later.
    pub fn status_code(self) -> Option<u16> {
        match self {
            Outcome::Proceed => None,
            Outcome::NotModified => Some(304),
            Outcome::PreconditionFailed => Some(412),
        }
    }
}

/// One parsed entity-tag (RFC 9110 section 8.8.3):
/// `entity-tag = [ weak ] opaque-tag`, `weak = %s"W/"`.
///
/// Parsing is tolerant inside the quotes: any character but `"` is kept, so
/// commas and whitespace inside an opaque-tag do not split it. The `W/`
/// prefix is case-sensitive, as the grammar says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityTag<'a> {
    /// Whether the tag carries the `W/` weakness indicator (section 8.8.1).
    pub weak: bool,
    /// The opaque-tag including its surrounding double quotes.
    pub opaque: &'a str,
}

impl<'a> EntityTag<'a> {
    /// Parses exactly one entity-tag, ignoring surrounding whitespace
    /// (RFC 9110 section 8.8.3); `None` when the value is not one.
    pub fn parse(value: &'a str) -> Option<EntityTag<'a>> {
        let (tag, rest) = split_entity_tag(value.trim_matches(is_ows))?;
        rest.is_empty().then_some(tag)
    }

    /// Strong comparison (RFC 9110 section 8.8.3.2): both tags are strong
    /// and their opaque-tags are identical character by character.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison (RFC 9110 section 8.8.3.2): the opaque-tags are
    /// identical, whether or not either tag is weak.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// Parses the list of entity-tags in `If-Match` or `If-None-Match`
/// (RFC 9110 sections 13.1.1 and 13.1.2: `"*" / #entity-tag`).
///
/// Empty list elements and whitespace around commas are skipped (section
/// 5.6.1); commas and whitespace inside quotes belong to the tag. An element
/// that is not an entity-tag (an unquoted token, `*` inside a list, a lower
/// case `w/`, junk after the closing quote) is dropped, so it can match
/// nothing; an unterminated quote ends the list. `*` on its own is not a tag:
/// the callers in this module test for it before parsing.
pub fn parse_etag_list(value: &str) -> Vec<EntityTag<'_>> {
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| is_ows(c) || c == ',');
        if rest.is_empty() {
            return tags;
        }
        match split_entity_tag(rest) {
            Some((tag, after)) => {
                let after = after.trim_start_matches(is_ows);
                if after.is_empty() || after.starts_with(',') {
                    tags.push(tag);
                    rest = after;
                } else {
                    rest = skip_past_comma(after);
                }
            }
            None if rest.starts_with('"') || rest.starts_with("W/\"") => return tags,
            None => rest = skip_past_comma(rest),
        }
    }
}

/// Strong comparison of two `ETag`-style field values (RFC 9110 section
/// 8.8.3.2); false when either is not a valid entity-tag.
pub fn strong_eq(a: &str, b: &str) -> bool {
    compare(a, b, Comparison::Strong)
}

/// Weak comparison of two `ETag`-style field values (RFC 9110 section
/// 8.8.3.2); false when either is not a valid entity-tag.
pub fn weak_eq(a: &str, b: &str) -> bool {
    compare(a, b, Comparison::Weak)
}

/// Evaluates the preconditions in the order of RFC 9110 section 13.2.2.
///
/// 1. `If-Match` present: true when it is `*` (a current representation
///    exists) or lists a tag that strongly matches `validators.etag`
///    (section 13.1.1); false answers 412.
/// 2. Else `If-Unmodified-Since`: ignored when it is not a valid HTTP-date or
///    the representation has no `Last-Modified`; false (modified after the
///    date) answers 412 (section 13.1.4).
/// 3. `If-None-Match` present: false when it is `*` or lists a tag that weakly
///    matches (section 13.1.2); false answers 304 on GET/HEAD, else 412.
/// 4. Else, on GET/HEAD only, `If-Modified-Since`: ignored when not a valid
///    HTTP-date or without `Last-Modified`; false (not modified since the
///    date) answers 304 (section 13.1.3).
///
/// The caller calls this only for a representation that exists, and only
/// when the response without preconditions would be 2xx (section 13.2.1);
/// `Range`/`If-Range` (step 5) are the caller's next stage.
pub fn evaluate(
    method: Method,
    preconditions: &Preconditions<'_>,
    validators: &Validators<'_>,
) -> Outcome {
    if let Some(if_match) = preconditions.if_match {
        if !list_matches(if_match, validators.etag, Comparison::Strong) {
            return Outcome::PreconditionFailed;
        }
    } else if let Some(date) = preconditions.if_unmodified_since {
        if modified_after(date, validators) == Some(true) {
            return Outcome::PreconditionFailed;
        }
    }

    if let Some(if_none_match) = preconditions.if_none_match {
        if list_matches(if_none_match, validators.etag, Comparison::Weak) {
            return match method {
                Method::GetOrHead => Outcome::NotModified,
                Method::Other => Outcome::PreconditionFailed,
            };
        }
    } else if let (Method::GetOrHead, Some(date)) = (method, preconditions.if_modified_since) {
        if modified_after(date, validators) == Some(false) {
            return Outcome::NotModified;
        }
    }

    Outcome::Proceed
}

/// Whether a `Range` may be honoured given `If-Range` (RFC 9110 section 13.1.5).
///
/// - Absent: true (there is no condition).
/// - An entity-tag (the value starts with `"` or `W/`): true only when it
///   strongly matches `validators.etag`; a weak tag never does.
/// - Otherwise an HTTP-date: true only when it is valid and equals
///   `Last-Modified` at whole seconds. Section 8.8.2.2 asks that the date be
///   a strong validator; an object store's `Last-Modified` is taken as one.
/// - Anything else, or a validator the representation lacks: false, and the
///   caller ignores `Range` and sends the whole representation with 200.
///
/// The caller ignores `If-Range` when the request has no `Range` (section 13.1.5).
pub fn if_range_allows(if_range: Option<&str>, validators: &Validators<'_>) -> bool {
    let Some(value) = if_range else {
        return true;
    };
    let value = value.trim_matches(is_ows);
    if value.starts_with('"') || value.starts_with("W/") {
        return match validators.etag {
            Some(current) => strong_eq(value, current),
            None => false,
        };
    }
    match (http_date_secs(value), validators.last_modified) {
        (Some(date), Some(last_modified)) => date == whole_secs(last_modified),
        _ => false,
    }
}

/// Optional whitespace, `OWS = *( SP / HTAB )` (RFC 9110 section 5.6.3).
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits one entity-tag off the front of `s` (no leading whitespace
/// expected); returns the tag and what follows its closing quote.
fn split_entity_tag(s: &str) -> Option<(EntityTag<'_>, &str)> {
    let (weak, quoted) = match s.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let inner = quoted.strip_prefix('"')?;
    let close = inner.find('"')?;
    // Both quotes are one byte, so these are char boundaries.
    let (opaque, after) = quoted.split_at(close + 2);
    Some((EntityTag { weak, opaque }, after))
}

/// What follows the next comma of `s`, or nothing when there is none.
fn skip_past_comma(s: &str) -> &str {
    s.find(',').map_or("", |i| &s[i + 1..])
}

/// The two entity-tag comparison functions (RFC 9110 section 8.8.3.2).
#[derive(Clone, Copy)]
enum Comparison {
    Strong,
    Weak,
}

impl Comparison {
    fn eq(self, a: &EntityTag<'_>, b: &EntityTag<'_>) -> bool {
        match self {
            Comparison::Strong => a.strong_eq(b),
            Comparison::Weak => a.weak_eq(b),
        }
    }
}

fn compare(a: &str, b: &str, comparison: Comparison) -> bool {
    match (EntityTag::parse(a), EntityTag::parse(b)) {
        (Some(a), Some(b)) => comparison.eq(&a, &b),
        _ => false,
    }
}

/// Whether an `If-Match`/`If-None-Match` value matches the current ETag:
/// `*` matches any current representation, a list matches when one of its
/// tags compares equal under `comparison` (RFC 9110 sections 13.1.1 and 13.1.2).
fn list_matches(value: &str, current: Option<&str>, comparison: Comparison) -> bool {
    if value.trim_matches(is_ows) == "*" {
        return true;
    }
    let Some(current) = current.and_then(EntityTag::parse) else {
        return false;
    };
    parse_etag_list(value)
        .iter()
        .any(|tag| comparison.eq(tag, &current))
}

/// Whether the representation was modified after the HTTP-date `value`, at
/// whole seconds; `None` when the date is invalid or there is no
/// `Last-Modified`, in which case the precondition is ignored (RFC 9110
/// sections 13.1.3 and 13.1.4).
fn modified_after(value: &str, validators: &Validators<'_>) -> Option<bool> {
    let date = http_date_secs(value)?;
    let last_modified = whole_secs(validators.last_modified?);
    Some(last_modified > date)
}

/// Seconds since the epoch of an HTTP-date in any of the three formats a
/// recipient must accept (RFC 9110 section 5.6.7); `None` when invalid,
/// including a list of dates.
fn http_date_secs(value: &str) -> Option<i128> {
    let time = httpdate::parse_http_date(value.trim_matches(is_ows)).ok()?;
    let since_epoch = time.duration_since(UNIX_EPOCH).ok()?;
    Some(i128::from(since_epoch.as_secs()))
}

/// Seconds since the epoch of `time`, rounded down: the value an HTTP-date
/// formatted from `time` carries.
fn whole_secs(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::from(after.as_secs()),
        Err(before) => {
            let before = before.duration();
            let partial = i128::from(before.subsec_nanos() > 0);
            -i128::from(before.as_secs()) - partial
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Sun, 06 Nov 1994 08:49:37 GMT (the RFC 9110 section 5.6.7 example),
    /// plus half a second that an HTTP-date cannot carry.
    const LAST_MODIFIED: Duration = Duration::new(784_111_777, 500_000_000);
    const SAME_SECOND: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const SECOND_BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const SECOND_AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn at(since_epoch: Option<Duration>) -> Option<SystemTime> {
        since_epoch.map(|d| UNIX_EPOCH + d)
    }

    struct Case {
        name: &'static str,
        method: Method,
        etag: Option<&'static str>,
        last_modified: Option<Duration>,
        if_match: Option<&'static str>,
        if_none_match: Option<&'static str>,
        if_modified_since: Option<&'static str>,
        if_unmodified_since: Option<&'static str>,
        expected: Outcome,
    }

    /// A GET of a representation with ETag `"xyzzy"` and [`LAST_MODIFIED`].
    const GET: Case = Case {
        name: "",
        method: Method::GetOrHead,
        etag: Some("\"xyzzy\""),
        last_modified: Some(LAST_MODIFIED),
        if_match: None,
        if_none_match: None,
        if_modified_since: None,
        if_unmodified_since: None,
        expected: Outcome::Proceed,
    };

    /// The same with another method.
    const PUT: Case = Case {
        method: Method::Other,
        ..GET
    };

    use Outcome::{NotModified as N304, PreconditionFailed as P412, Proceed as GO};

    #[rustfmt::skip]
    const EVALUATE_CASES: &[Case] = &[
        Case { name: "a request without preconditions proceeds", ..GET },
        Case { name: "If-Match * proceeds when the representation exists", if_match: Some("*"), ..GET },
        Case { name: "If-Match * proceeds even without an ETag", if_match: Some("*"), etag: None, ..GET },
        Case { name: "If-Match with the current tag proceeds (RFC example)", if_match: Some("\"xyzzy\""), ..GET },
        Case { name: "If-Match with a list holding the current tag proceeds (RFC example)", if_match: Some("\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\""), ..GET },
        Case { name: "If-Match with another tag fails with 412", if_match: Some("\"r2d2xxxx\""), expected: P412, ..GET },
        Case { name: "If-Match with a weak tag fails: weak tags never strongly match", if_match: Some("W/\"xyzzy\""), expected: P412, ..GET },
        Case { name: "If-Match fails when the current ETag is weak", etag: Some("W/\"xyzzy\""), if_match: Some("\"xyzzy\""), expected: P412, ..GET },
        Case { name: "If-Match with a tag fails when there is no ETag", etag: None, if_match: Some("\"xyzzy\""), expected: P412, ..GET },
        Case { name: "If-Match with an unquoted tag matches nothing", if_match: Some("xyzzy"), expected: P412, ..GET },
        Case { name: "an empty If-Match is an empty list and fails", if_match: Some(""), expected: P412, ..GET },
        Case { name: "If-Match failing on PUT is 412 too", if_match: Some("\"other\""), expected: P412, ..PUT },
        Case { name: "If-Match wins over If-Unmodified-Since, which is then ignored", if_match: Some("\"xyzzy\""), if_unmodified_since: Some(SECOND_BEFORE), ..GET },
        Case { name: "If-Unmodified-Since equal at whole seconds proceeds", if_unmodified_since: Some(SAME_SECOND), ..GET },
        Case { name: "If-Unmodified-Since after Last-Modified proceeds", if_unmodified_since: Some(SECOND_AFTER), ..GET },
        Case { name: "If-Unmodified-Since before Last-Modified fails with 412", if_unmodified_since: Some(SECOND_BEFORE), expected: P412, ..GET },
        Case { name: "If-Unmodified-Since before Last-Modified fails with 412 on PUT", if_unmodified_since: Some(SECOND_BEFORE), expected: P412, ..PUT },
        Case { name: "an invalid If-Unmodified-Since is ignored", if_unmodified_since: Some("yesterday"), ..GET },
        Case { name: "a list of dates in If-Unmodified-Since is ignored", if_unmodified_since: Some("Sun, 06 Nov 1994 08:49:36 GMT, Sun, 06 Nov 1994 08:49:36 GMT"), ..GET },
        Case { name: "If-Unmodified-Since is ignored without Last-Modified", last_modified: None, if_unmodified_since: Some(SECOND_BEFORE), ..GET },
        Case { name: "If-None-Match with the current tag is 304 on GET", if_none_match: Some("\"xyzzy\""), expected: N304, ..GET },
        Case { name: "If-None-Match compares weakly: a weak request tag matches", if_none_match: Some("W/\"xyzzy\""), expected: N304, ..GET },
        Case { name: "If-None-Match compares weakly: a weak current tag matches", etag: Some("W/\"xyzzy\""), if_none_match: Some("\"xyzzy\""), expected: N304, ..GET },
        Case { name: "If-None-Match with a list holding the tag is 304 (RFC example)", if_none_match: Some("\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\""), expected: N304, ..GET },
        Case { name: "If-None-Match with the RFC's weak list is 304", if_none_match: Some("W/\"xyzzy\", W/\"r2d2xxxx\", W/\"c3piozzzz\""), expected: N304, ..GET },
        Case { name: "If-None-Match * is 304 on GET when the representation exists", if_none_match: Some("*"), expected: N304, ..GET },
        Case { name: "If-None-Match * is 304 even without an ETag", etag: None, if_none_match: Some("*"), expected: N304, ..GET },
        Case { name: "If-None-Match matching on PUT is 412", if_none_match: Some("\"xyzzy\""), expected: P412, ..PUT },
        Case { name: "If-None-Match * on PUT is 412", if_none_match: Some("*"), expected: P412, ..PUT },
        Case { name: "If-None-Match with other tags proceeds", if_none_match: Some("\"r2d2xxxx\", W/\"c3piozzzz\""), ..GET },
        Case { name: "If-None-Match with a tag proceeds when there is no ETag", etag: None, if_none_match: Some("\"xyzzy\""), ..GET },
        Case { name: "If-None-Match finds a tag with a comma inside quotes", etag: Some("\"a,b\""), if_none_match: Some("\"x\", \"a,b\""), expected: N304, ..GET },
        Case { name: "If-None-Match finds a tag with a space inside quotes", etag: Some("\"a b\""), if_none_match: Some("\"a b\""), expected: N304, ..GET },
        Case { name: "an empty If-None-Match is an empty list and proceeds", if_none_match: Some(""), ..GET },
        Case { name: "If-None-Match wins over If-Modified-Since, which is then ignored", if_none_match: Some("\"other\""), if_modified_since: Some(SECOND_AFTER), ..GET },
        Case { name: "If-Modified-Since equal at whole seconds is 304", if_modified_since: Some(SAME_SECOND), expected: N304, ..GET },
        Case { name: "If-Modified-Since after Last-Modified is 304", if_modified_since: Some(SECOND_AFTER), expected: N304, ..GET },
        Case { name: "If-Modified-Since before Last-Modified proceeds", if_modified_since: Some(SECOND_BEFORE), ..GET },
        Case { name: "If-Modified-Since in the obsolete RFC 850 format is understood", if_modified_since: Some("Sunday, 06-Nov-94 08:49:37 GMT"), expected: N304, ..GET },
        Case { name: "If-Modified-Since in the obsolete asctime format is understood", if_modified_since: Some("Sun Nov  6 08:49:37 1994"), expected: N304, ..GET },
        Case { name: "an invalid If-Modified-Since is ignored", if_modified_since: Some("06 Nov 1994"), ..GET },
        Case { name: "a list of dates in If-Modified-Since is ignored", if_modified_since: Some("Sun, 06 Nov 1994 08:49:38 GMT, Sun, 06 Nov 1994 08:49:38 GMT"), ..GET },
        Case { name: "If-Modified-Since is ignored without Last-Modified", last_modified: None, if_modified_since: Some(SECOND_AFTER), ..GET },
        Case { name: "If-Modified-Since is ignored on methods other than GET and HEAD", if_modified_since: Some(SECOND_AFTER), ..PUT },
        Case { name: "a failed If-Match answers 412 before a matching If-None-Match", if_match: Some("\"other\""), if_none_match: Some("\"xyzzy\""), expected: P412, ..GET },
        Case { name: "a failed If-Unmodified-Since answers 412 before If-Modified-Since", if_unmodified_since: Some(SECOND_BEFORE), if_modified_since: Some(SECOND_AFTER), expected: P412, ..GET },
        Case { name: "a passed If-Match goes on to If-None-Match", if_match: Some("\"xyzzy\""), if_none_match: Some("\"xyzzy\""), expected: N304, ..GET },
        Case { name: "a passed If-Unmodified-Since goes on to If-Modified-Since", if_unmodified_since: Some(SECOND_AFTER), if_modified_since: Some(SAME_SECOND), expected: N304, ..GET },
    ];

    #[test]
    fn evaluate_follows_the_order_of_rfc_9110_13_2_2() {
        for case in EVALUATE_CASES {
            let preconditions = Preconditions {
                if_match: case.if_match,
                if_none_match: case.if_none_match,
                if_modified_since: case.if_modified_since,
                if_unmodified_since: case.if_unmodified_since,
            };
            let validators = Validators {
                etag: case.etag,
                last_modified: at(case.last_modified),
            };
            let got = evaluate(case.method, &preconditions, &validators);
            assert_eq!(got, case.expected, "{}", case.name);
        }
    }

    #[test]
    fn a_last_modified_before_the_epoch_is_older_than_any_http_date() {
        let validators = Validators {
            etag: None,
            last_modified: UNIX_EPOCH.checked_sub(Duration::new(10, 5)),
        };
        let preconditions = Preconditions {
            if_modified_since: Some(SAME_SECOND),
            ..Default::default()
        };
        let got = evaluate(Method::GetOrHead, &preconditions, &validators);
        assert_eq!(got, N304);
        let cases: &[(&str, Duration, i128)] = &[
            (
                "a time 10.000000005 s before the epoch rounds down to -11",
                Duration::new(10, 5),
                -11,
            ),
            (
                "a time exactly 10 s before the epoch is -10",
                Duration::new(10, 0),
                -10,
            ),
        ];
        for &(name, before, expected) in cases {
            if let Some(time) = UNIX_EPOCH.checked_sub(before) {
                assert_eq!(whole_secs(time), expected, "{name}");
            }
        }
    }

    /// (name, If-Range, ETag, Last-Modified, whether the range is allowed)
    type IfRangeCase = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<Duration>,
        bool,
    );

    #[rustfmt::skip]
    const IF_RANGE_CASES: &[IfRangeCase] = &[
        ("an absent If-Range lets the range through", None, Some("\"xyzzy\""), Some(LAST_MODIFIED), true),
        ("a strongly matching entity-tag lets the range through", Some("\"xyzzy\""), Some("\"xyzzy\""), None, true),
        ("another entity-tag sends the whole representation", Some("\"other\""), Some("\"xyzzy\""), None, false),
        ("a weak entity-tag never matches", Some("W/\"xyzzy\""), Some("W/\"xyzzy\""), None, false),
        ("a strong tag against a weak current ETag does not match", Some("\"xyzzy\""), Some("W/\"xyzzy\""), None, false),
        ("an entity-tag without a current ETag does not match", Some("\"xyzzy\""), None, Some(LAST_MODIFIED), false),
        ("a list of entity-tags is not an entity-tag", Some("\"xyzzy\", \"other\""), Some("\"xyzzy\""), None, false),
        ("a date equal to Last-Modified at whole seconds lets the range through", Some(SAME_SECOND), Some("\"xyzzy\""), Some(LAST_MODIFIED), true),
        ("an obsolete-format date equal to Last-Modified lets the range through", Some("Sunday, 06-Nov-94 08:49:37 GMT"), None, Some(LAST_MODIFIED), true),
        ("a date a second before Last-Modified does not match", Some(SECOND_BEFORE), None, Some(LAST_MODIFIED), false),
        ("a date a second after Last-Modified does not match: the match is exact", Some(SECOND_AFTER), None, Some(LAST_MODIFIED), false),
        ("a date without Last-Modified does not match", Some(SAME_SECOND), Some("\"xyzzy\""), None, false),
        ("a malformed value does not match", Some("xyzzy"), Some("\"xyzzy\""), Some(LAST_MODIFIED), false),
        ("an empty value does not match", Some(""), Some("\"xyzzy\""), Some(LAST_MODIFIED), false),
    ];

    #[test]
    fn if_range_follows_rfc_9110_13_1_5() {
        for &(name, if_range, etag, last_modified, expected) in IF_RANGE_CASES {
            let validators = Validators {
                etag,
                last_modified: at(last_modified),
            };
            assert_eq!(if_range_allows(if_range, &validators), expected, "{name}");
        }
    }

    /// (name, field value, the expected tags as (weak, opaque-tag) pairs)
    type EtagListCase = (&'static str, &'static str, &'static [(bool, &'static str)]);

    #[rustfmt::skip]
    const ETAG_LIST_CASES: &[EtagListCase] = &[
        ("one strong tag", "\"xyzzy\"", &[(false, "\"xyzzy\"")]),
        ("the RFC 9110 13.1.1 list", "\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\"", &[(false, "\"xyzzy\""), (false, "\"r2d2xxxx\""), (false, "\"c3piozzzz\"")]),
        ("the RFC 9110 13.1.2 weak list", "W/\"xyzzy\", W/\"r2d2xxxx\"", &[(true, "\"xyzzy\""), (true, "\"r2d2xxxx\"")]),
        ("an empty tag", "\"\"", &[(false, "\"\"")]),
        ("empty elements and odd whitespace are skipped", " ,\t,\"a\" ,, \"b\"\t, ", &[(false, "\"a\""), (false, "\"b\"")]),
        ("commas and spaces inside quotes belong to the tag", "\"a,b\", \"c d\"", &[(false, "\"a,b\""), (false, "\"c d\"")]),
        ("an unquoted token is dropped", "xyzzy, \"b\"", &[(false, "\"b\"")]),
        ("junk after a closing quote drops that element", "\"a\"junk, \"b\"", &[(false, "\"b\"")]),
        ("a lower-case w/ is not a weakness indicator", "w/\"a\", \"b\"", &[(false, "\"b\"")]),
        ("a star inside a list is not a tag", "*, \"b\"", &[(false, "\"b\"")]),
        ("a lone star is not a tag", "*", &[]),
        ("an unterminated quote ends the list", "\"a\", \"b", &[(false, "\"a\"")]),
        ("an unterminated weak tag ends the list", "W/\"a", &[]),
        ("an empty value has no tags", "", &[]),
    ];

    #[test]
    fn parse_etag_list_tolerates_what_clients_send() {
        for &(name, value, expected) in ETAG_LIST_CASES {
            let got: Vec<(bool, &str)> = parse_etag_list(value)
                .iter()
                .map(|tag| (tag.weak, tag.opaque))
                .collect();
            assert_eq!(got, expected, "{name}");
        }
    }

    #[rustfmt::skip]
    const COMPARISON_CASES: &[(&str, &str, &str, bool, bool)] = &[
        // (name, a, b, strong_eq, weak_eq); the first four are RFC 9110 8.8.3.2's table.
        ("two equal weak tags match weakly only", "W/\"1\"", "W/\"1\"", false, true),
        ("two different weak tags do not match", "W/\"1\"", "W/\"2\"", false, false),
        ("a weak and a strong tag match weakly only", "W/\"1\"", "\"1\"", false, true),
        ("two equal strong tags match both ways", "\"1\"", "\"1\"", true, true),
        ("opaque-tags compare case-sensitively", "\"a\"", "\"A\"", false, false),
        ("surrounding whitespace is ignored", " \"1\"\t", "\"1\"", true, true),
        ("unquoted values are not entity-tags", "1", "1", false, false),
        ("a list is not one entity-tag", "\"1\", \"1\"", "\"1\"", false, false),
    ];

    #[test]
    fn comparisons_follow_rfc_9110_8_8_3_2() {
        for &(name, a, b, strong, weak) in COMPARISON_CASES {
            assert_eq!(strong_eq(a, b), strong, "strong: {name}");
            assert_eq!(weak_eq(a, b), weak, "weak: {name}");
        }
    }

    #[test]
    fn methods_and_outcomes_have_stable_names() {
        let methods = [
            ("GET is GET or HEAD", "GET", Method::GetOrHead),
            ("HEAD is GET or HEAD", "HEAD", Method::GetOrHead),
            ("POST is another method", "POST", Method::Other),
            ("method names are case-sensitive", "get", Method::Other),
        ];
        for (name, method, expected) in methods {
            assert_eq!(Method::from_name(method), expected, "{name}");
        }
        let outcomes = [
            (GO, "proceed", None),
            (N304, "not_modified", Some(304)),
            (P412, "precondition_failed", Some(412)),
        ];
        for (outcome, name, status) in outcomes {
            assert_eq!(outcome.as_str(), name);
            assert_eq!(outcome.status_code(), status, "{name}");
        }
    }
}
