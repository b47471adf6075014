//! `s3edge::website`: `plan`, `redirect_on_error`, `directory_index_key`,
//! `directory_redirect`, `path_to_key`, `encode_key_path` and
//! `sanitize_location` with website configurations built from fuzz data.
//! Every Location produced must be safe for a header: ASCII, no control
//! character (CR, LF), no space.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use s3edge::website::{
    directory_index_key, directory_redirect, encode_key_path, path_to_key, plan, redirect_on_error,
    sanitize_location, Condition, KeyReplacement, Plan, Protocol, Redirect, RedirectAll,
    RedirectTarget, RequestInfo, RoutingRule, WebsiteConfig, PERMANENT_REDIRECT_STATUS,
};

#[derive(Arbitrary, Debug)]
struct FuzzRule {
    key_prefix_equals: Option<String>,
    http_error_code_returned_equals: Option<u16>,
    protocol: u8,
    host_name: Option<String>,
    replacement: u8,
    replacement_text: String,
    http_redirect_code: u16,
}

#[derive(Arbitrary, Debug)]
struct Input {
    index_document: Option<String>,
    error_document: Option<String>,
    spa_fallback: bool,
    redirect_all: Option<(String, u8)>,
    rules: Vec<FuzzRule>,
    https: bool,
    host: String,
    raw_path: String,
    query: Option<String>,
    /// Use `key` as is instead of `path_to_key(raw_path)`.
    raw_key: bool,
    key: String,
    status: u16,
    location: String,
}

fn protocol(selector: u8) -> Option<Protocol> {
    match selector % 3 {
        0 => None,
        1 => Some(Protocol::Http),
        _ => Some(Protocol::Https),
    }
}

fn config(input: &Input) -> WebsiteConfig {
    let routing_rules =
        input
            .rules
            .iter()
            .take(16)
            .map(|rule| RoutingRule {
                condition: Condition {
                    key_prefix_equals: rule.key_prefix_equals.clone(),
                    // Mostly the codes a lookup can fail with.
                    http_error_code_returned_equals: rule
                        .http_error_code_returned_equals
                        .map(|c| if c % 2 == 0 { 404 } else { c }),
                },
                redirect: Redirect {
                    protocol: protocol(rule.protocol),
                    host_name: rule.host_name.clone(),
                    replacement: match rule.replacement % 3 {
                        0 => KeyReplacement::Keep,
                        1 => KeyReplacement::Prefix(rule.replacement_text.clone()),
                        _ => KeyReplacement::Key(rule.replacement_text.clone()),
                    },
                    http_redirect_code: rule.http_redirect_code,
                },
            })
            .collect();
    WebsiteConfig {
        from_bucket: false,
        index_document: input.index_document.clone(),
        error_document: input.error_document.clone(),
        spa_fallback: input.spa_fallback,
        redirect_all: input.redirect_all.as_ref().map(|(host, p)| RedirectAll {
            host_name: host.clone(),
            protocol: protocol(*p),
        }),
        routing_rules,
    }
}

fn check_location(location: &str, context: &str) {
    assert!(
        !location.contains(['\r', '\n', ' ']),
        "{context}: Location {location:?} has CR, LF or space"
    );
    assert!(
        location.is_ascii() && !location.chars().any(|c| c.is_ascii_control()),
        "{context}: Location {location:?} is not printable ASCII"
    );
}

fn check_target(target: &RedirectTarget, context: &str) {
    check_location(&target.location, context);
}

fn check_key(key: &str) {
    assert!(!key.starts_with('/'), "key {key:?} starts with /");
    assert!(!key.contains('\0'), "key {key:?} has NUL");
    for segment in key.split('/') {
        assert!(
            segment != "." && segment != "..",
            "key {key:?} has a dot-segment"
        );
    }
}

fuzz_target!(|input: Input| {
    let config = config(&input);
    let request = RequestInfo {
        scheme: if input.https {
            Protocol::Https
        } else {
            Protocol::Http
        },
        host: &input.host,
        raw_path: &input.raw_path,
        query: input.query.as_deref(),
    };

    check_location(&sanitize_location(&input.location), "sanitize_location");
    let encoded = encode_key_path(&input.key);
    assert!(
        !encoded.contains(['\r', '\n', ' ', '?', '#']),
        "{encoded:?}"
    );

    let from_path = path_to_key(&input.raw_path);
    if let Ok(key) = &from_path {
        check_key(key);
        // A key survives being written as a path and read back.
        let again = format!("/{}", encode_key_path(key));
        assert_eq!(path_to_key(&again).as_ref(), Ok(key), "path {again:?}");
    }
    let key = match (&from_path, input.raw_key) {
        (Ok(key), false) => key.clone(),
        _ => input.key.clone(),
    };

    match plan(&config, &key, &request) {
        Plan::Redirect(target) => {
            check_target(&target, "plan");
            if config.redirect_all.is_some() {
                assert_eq!(target.status, PERMANENT_REDIRECT_STATUS);
            }
        }
        Plan::Lookup { key: lookup } => {
            assert!(config.redirect_all.is_none());
            assert!(lookup.starts_with(&key), "lookup {lookup:?} for {key:?}");
        }
    }

    if let Some(index_key) = directory_index_key(&config, &key) {
        let index = config.index_document.as_deref().unwrap_or_default();
        assert_eq!(index_key, format!("{key}/{index}"));
    }
    check_target(&directory_redirect(&request), "directory_redirect");

    for status in [404, 403, input.status] {
        if let Some(target) = redirect_on_error(&config, &key, status, &request) {
            check_target(&target, "redirect_on_error");
        }
    }
});
