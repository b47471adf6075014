//! What an HTTP origin or another node answers, on arbitrary status codes and
//! header fields: `origin::http::meta_from`, `cache::policy::http_storable`
//! and freshness, `merge_not_modified`, `stored_at`, `qualified_fields`,
//! `cluster::wire::classify` and `meta_headers`, `cluster::client::
//! meta_from_headers`, and the representation headers a client then gets.
//! None of it may panic, and the rules RFC 9111 makes absolute must hold.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use s3edge::cache::policy::{
    http_storable, merge_not_modified, qualified_fields, stored_at, Storable,
};
use s3edge::cache::State;
use s3edge::cluster::client::meta_from_headers;
use s3edge::cluster::wire::{classify, meta_headers, Answer};
use s3edge::config::CacheConfig;
use s3edge::http::headers::representation_headers;
use s3edge::origin::http::meta_from;

/// Field names the code looks at, so the fuzzer reaches them quickly.
const NAMES: [&str; 16] = [
    "cache-control",
    "cdn-cache-control",
    "expires",
    "date",
    "age",
    "last-modified",
    "etag",
    "vary",
    "content-length",
    "content-range",
    "content-type",
    "connection",
    "x-s3edge-origin-date",
    "x-s3edge-origin-error",
    "x-amz-website-redirect-location",
    "cache-status",
];

#[derive(Arbitrary, Debug)]
enum Name<'a> {
    Known(u8),
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    status: u16,
    fields: Vec<(Name<'a>, &'a [u8])>,
    /// The fields of a 304 that revalidates the answer.
    not_modified: Vec<(Name<'a>, &'a [u8])>,
    authorization: bool,
    /// 0: a bucket site's defaults, 1: an HTTP origin's, else these seconds
    /// (default, min, max TTL, stale-while-revalidate, stale-if-error).
    config: (u8, [u32; 5]),
    /// Seconds after 2001-09-09 that the answer arrives, and ages to ask about.
    now: u32,
    ages: [u32; 3],
}

fn header_map(fields: &[(Name<'_>, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        let name = match name {
            Name::Known(i) => HeaderName::from_static(NAMES[usize::from(*i) % NAMES.len()]),
            Name::Other(text) => match HeaderName::from_bytes(text.as_bytes()) {
                Ok(name) => name,
                Err(_) => continue,
            },
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.append(name, value);
        }
    }
    map
}

fn config(choice: u8, secs: [u32; 5]) -> CacheConfig {
    let d = |i: usize| Duration::from_secs(u64::from(secs[i]));
    match choice {
        0 => CacheConfig::default(),
        1 => CacheConfig::http_defaults(),
        _ => CacheConfig {
            default_ttl: d(0),
            min_ttl: d(1),
            max_ttl: d(2),
            error_ttl: Duration::ZERO,
            stale_while_revalidate: d(3),
            stale_if_error: d(4),
        },
    }
}

/// The directives of a `Cache-Control` value: each name, lowercased, and
/// whether it has an argument.
fn directives(value: &str) -> Vec<(String, bool)> {
    value
        .split(',')
        .map(|part| {
            let (name, arg) = part
                .split_once('=')
                .map_or((part, false), |(n, _)| (n, true));
            (name.trim().to_ascii_lowercase(), arg)
        })
        .collect()
}

fn rank(state: State) -> u8 {
    match state {
        State::Fresh => 0,
        State::StaleWhileRevalidate => 1,
        State::Stale { .. } => 2,
    }
}

fuzz_target!(|input: Input<'_>| {
    let headers = header_map(&input.fields);
    let status = input.status;
    let now = UNIX_EPOCH + Duration::from_secs(1_000_000_000 + u64::from(input.now));
    let site = config(input.config.0, input.config.1);

    // An HTTP origin's answer.
    let meta = meta_from(&headers, status);
    assert_eq!(meta.status(), status);
    assert!(meta.age.is_none_or(|age| age <= 1 << 31));
    if status != 206 {
        assert!(meta.content_range.is_none());
    }
    let storable = http_storable(&meta, &site, input.authorization, now);
    let vary_any = meta
        .headers
        .iter()
        .any(|(n, v)| n == "vary" && v.split(',').any(|m| m.trim() == "*"));
    let has_cdn = meta.headers.iter().any(|(n, _)| n == "cdn-cache-control");
    let cc = directives(meta.cache_control.as_deref().unwrap_or(""));
    let said = |d: &str| cc.iter().any(|(name, _)| name == d);
    let said_bare = |d: &str| cc.iter().any(|(name, arg)| name == d && !arg);
    if (100..200).contains(&status) || vary_any {
        assert_eq!(storable, Storable::No, "status {status}, vary *");
    }
    if !has_cdn && said("no-store") && !said("must-understand") {
        assert_eq!(storable, Storable::No, "no-store: {cc:?}");
    }
    if let Storable::Yes(freshness) = storable {
        if !has_cdn && said_bare("no-cache") {
            assert_eq!(freshness.ttl, Duration::ZERO, "no-cache: {cc:?}");
        }
        let mut ages = input.ages.map(|a| Duration::from_secs(u64::from(a)));
        ages.sort();
        let ranks = ages.map(|age| rank(freshness.state(age)));
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");
        assert_eq!(
            freshness.state(Duration::ZERO) == State::Fresh,
            !freshness.ttl.is_zero()
        );
    }
    let _ = storable.or_expired();
    assert!(stored_at(&meta, now) <= now);
    for field in qualified_fields(meta.cache_control.as_deref()) {
        assert!(!field.is_empty() && field == field.to_ascii_lowercase());
    }
    if let Some(modified) = meta.last_modified {
        assert!(modified >= UNIX_EPOCH);
    }

    // Revalidated by a 304.
    let not_modified = meta_from(&header_map(&input.not_modified), 304);
    let merged = merge_not_modified(&meta, &not_modified);
    assert_eq!(merged.content_length, meta.content_length);
    if not_modified.etag.is_some() {
        assert_eq!(merged.etag, not_modified.etag);
    }
    let _ = http_storable(&merged, &site, input.authorization, now);

    // What a client then gets, and what a node sends a peer and reads back.
    for meta in [&meta, &merged] {
        let sent = representation_headers(meta, "text/plain");
        assert!(sent.contains_key("accept-ranges"));
        let mut wire = HeaderMap::new();
        for (name, value) in meta_headers(meta) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                wire.append(name, value);
            }
        }
        let back = meta_from_headers(&wire);
        if let (Some(before), Some(after)) = (meta.last_modified, back.last_modified) {
            let whole = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs());
            assert_eq!(whole(before).ok(), whole(after).ok());
        }
    }

    // Another node's answer.
    if let Ok(code) = StatusCode::from_u16(status) {
        match classify(code, &headers) {
            Ok(Answer::Object(meta)) => {
                assert!(status == 200 || status == 206, "{status}");
                assert!(headers.contains_key("content-length"));
                if status == 206 {
                    assert!(meta.content_range.is_some());
                }
            }
            Ok(Answer::NotModified(_)) => assert_eq!(status, 304),
            Err(_) => {}
        }
    }
});
