//! `s3edge::http::conditional`: `evaluate`, `if_range_allows`, `parse_etag_list`,
//! `EntityTag`, `strong_eq` / `weak_eq` on arbitrary field values and validators.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use s3edge::http::conditional::{
    evaluate, if_range_allows, parse_etag_list, strong_eq, weak_eq, EntityTag, Method, Outcome,
    Preconditions, Validators,
};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a str,
    if_match: Option<&'a str>,
    if_none_match: Option<&'a str>,
    if_modified_since: Option<&'a str>,
    if_unmodified_since: Option<&'a str>,
    if_range: Option<&'a str>,
    etag: Option<&'a str>,
    /// (before the epoch?, seconds, nanoseconds)
    last_modified: Option<(bool, u64, u32)>,
    other: &'a str,
}

fn time(before: bool, secs: u64, nanos: u32) -> Option<SystemTime> {
    let d = Duration::new(secs % (1 << 40), nanos % 1_000_000_000);
    if before {
        UNIX_EPOCH.checked_sub(d)
    } else {
        UNIX_EPOCH.checked_add(d)
    }
}

fn check_list(value: &str) {
    for tag in parse_etag_list(value) {
        let o = tag.opaque;
        assert!(
            o.len() >= 2 && o.starts_with('"') && o.ends_with('"'),
            "{tag:?}"
        );
        assert!(!o[1..o.len() - 1].contains('"'), "{tag:?}");
        let text = format!("{}{}", if tag.weak { "W/" } else { "" }, o);
        assert_eq!(EntityTag::parse(&text), Some(tag));
    }
}

fuzz_target!(|input: Input<'_>| {
    let method = Method::from_name(input.method);
    let validators = Validators {
        etag: input.etag,
        last_modified: input.last_modified.and_then(|(b, s, n)| time(b, s, n)),
    };
    let preconditions = Preconditions {
        if_match: input.if_match,
        if_none_match: input.if_none_match,
        if_modified_since: input.if_modified_since,
        if_unmodified_since: input.if_unmodified_since,
    };

    let outcome = evaluate(method, &preconditions, &validators);
    let _ = outcome.as_str();
    assert_eq!(outcome.status_code().is_none(), outcome == Outcome::Proceed);
    if method == Method::Other {
        assert_ne!(outcome, Outcome::NotModified);
    }
    assert_eq!(
        evaluate(method, &Preconditions::default(), &validators),
        Outcome::Proceed
    );

    for value in [
        input.if_match,
        input.if_none_match,
        input.etag,
        input.if_range,
        Some(input.other),
    ]
    .into_iter()
    .flatten()
    {
        check_list(value);
    }

    // Comparisons: reflexive when the value is a tag, symmetric always.
    let a = input.etag.unwrap_or_default();
    let b = input.other;
    let parsed = EntityTag::parse(a);
    assert_eq!(strong_eq(a, a), parsed.is_some_and(|t| !t.weak));
    assert_eq!(weak_eq(a, a), parsed.is_some());
    assert_eq!(strong_eq(a, b), strong_eq(b, a));
    assert_eq!(weak_eq(a, b), weak_eq(b, a));
    if strong_eq(a, b) {
        assert!(weak_eq(a, b));
    }

    // The current ETag in If-None-Match: 304 on GET/HEAD, 412 otherwise.
    if let Some(tag) = input.etag.and_then(EntityTag::parse) {
        let p = Preconditions {
            if_none_match: input.etag,
            ..Preconditions::default()
        };
        let want = match method {
            Method::GetOrHead => Outcome::NotModified,
            Method::Other => Outcome::PreconditionFailed,
        };
        assert_eq!(evaluate(method, &p, &validators), want);
        // The same tag in If-Match passes unless it is weak.
        let p = Preconditions {
            if_match: input.etag,
            ..Preconditions::default()
        };
        let got = evaluate(method, &p, &validators);
        if tag.weak {
            assert_eq!(got, Outcome::PreconditionFailed);
        } else {
            assert_eq!(got, Outcome::Proceed);
        }
        // If-Range with the current ETag allows the range only when strong.
        assert_eq!(if_range_allows(input.etag, &validators), !tag.weak);
    }

    assert!(if_range_allows(None, &validators));
    let allowed = if_range_allows(input.if_range, &validators);
    if let Some(value) = input.if_range {
        let trimmed = value.trim_matches([' ', '\t']);
        if trimmed.starts_with('"') || trimmed.starts_with("W/") {
            let want = match (EntityTag::parse(trimmed), validators.etag) {
                (Some(t), Some(current)) => !t.weak && strong_eq(trimmed, current),
                _ => false,
            };
            assert_eq!(allowed, want, "If-Range {value:?}");
        } else if validators.last_modified.is_none() {
            assert!(!allowed);
        }
    }
});
