//! CORS (the Fetch standard's CORS protocol) for a site's `[cors]` section:
//! answers preflight `OPTIONS` requests and adds the response headers to actual
//! requests. Pure functions over the request's headers.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::CorsConfig;

/// What CORS says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// No `Origin`: not a CORS request.
    NotCors,
    /// A preflight the configuration allows: answer 204 with these headers.
    PreflightAllowed(Vec<(HeaderName, String)>),
    /// A preflight the configuration refuses: answer 403 without CORS headers.
    PreflightRefused,
    /// An actual request from an allowed origin: add these headers.
    Allowed(Vec<(HeaderName, String)>),
    /// An actual request from another origin: no CORS headers (the browser
    /// withholds the response from the page).
    Refused,
}

fn origin_allowed(cors: &CorsConfig, origin: &str) -> bool {
    cors.allowed_origins
        .iter()
        .any(|allowed| matches(allowed, origin))
}

/// Whether an AllowedOrigin or AllowedHeader admits `value`: `*`, the same
/// text in any case, or a pattern with one `*` (S3's CORS rules allow one in
/// each: `https://*.example.com`, `x-amz-*`).
fn matches(allowed: &str, value: &str) -> bool {
    allowed == "*" || allowed.eq_ignore_ascii_case(value) || wildcard_match(allowed, value)
}

/// `https://*.example.com` matches `https://a.example.com`.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    let Some((before, after)) = pattern.split_once('*') else {
        return false;
    };
    value.len() >= before.len() + after.len()
        && value
            .get(..before.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(before))
        && value
            .get(value.len() - after.len()..)
            .is_some_and(|end| end.eq_ignore_ascii_case(after))
}

fn allow_origin_value(cors: &CorsConfig, origin: &str) -> String {
    if cors.allowed_origins.iter().any(|o| o == "*") {
        "*".to_string()
    } else {
        origin.to_string()
    }
}

/// Evaluates a request. `method` is the request's method; preflights are
/// `OPTIONS` with `Access-Control-Request-Method`.
pub fn evaluate(cors: &CorsConfig, method: &str, headers: &HeaderMap) -> Cors {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(origin) = text("origin") else {
        return Cors::NotCors;
    };
    let requested_method = text("access-control-request-method");
    if method == "OPTIONS" {
        let Some(requested) = requested_method else {
            return Cors::PreflightRefused;
        };
        let method_ok = cors.allowed_methods.iter().any(|m| m == requested);
        let requested_headers: Vec<String> = text("access-control-request-headers")
            .unwrap_or("")
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let headers_ok = requested_headers.iter().all(|h| {
            cors.allowed_headers
                .iter()
                .any(|allowed| matches(allowed, h))
        });
        if !origin_allowed(cors, origin) || !method_ok || !headers_ok {
            return Cors::PreflightRefused;
        }
        let mut out = vec![
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                allow_origin_value(cors, origin),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                cors.allowed_methods.join(", "),
            ),
            (
                header::VARY,
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".to_string(),
            ),
        ];
        if !requested_headers.is_empty() {
            out.push((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                requested_headers.join(", "),
            ));
        }
        if let Some(max_age) = cors.max_age {
            out.push((
                header::ACCESS_CONTROL_MAX_AGE,
                max_age.as_secs().to_string(),
            ));
        }
        return Cors::PreflightAllowed(out);
    }
    if !origin_allowed(cors, origin) || !cors.allowed_methods.iter().any(|m| m == method) {
        return Cors::Refused;
    }
    let mut out = vec![(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        allow_origin_value(cors, origin),
    )];
    if !cors.expose_headers.is_empty() {
        out.push((
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            cors.expose_headers.join(", "),
        ));
    }
    Cors::Allowed(out)
}

/// Evaluates rules in order, as S3 does: the first rule that allows the
/// request answers it.
pub fn evaluate_rules(rules: &[CorsConfig], method: &str, headers: &HeaderMap) -> Cors {
    let mut verdict = if method == "OPTIONS" {
        Cors::PreflightRefused
    } else {
        Cors::Refused
    };
    if headers.get("origin").is_none() {
        return Cors::NotCors;
    }
    for rule in rules {
        match evaluate(rule, method, headers) {
            allowed @ (Cors::PreflightAllowed(_) | Cors::Allowed(_)) => return allowed,
            other => verdict = other,
        }
    }
    verdict
}

/// Adds CORS headers to a response (and `Vary: Origin` when the answer depends on it).
pub fn apply(response_headers: &mut HeaderMap, headers: &[(HeaderName, String)], varies: bool) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response_headers.insert(name.clone(), value);
        }
    }
    if varies {
        crate::http::headers::add_vary(response_headers, "Origin");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            from_bucket: false,
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: vec!["GET".into(), "HEAD".into()],
            allowed_headers: vec!["x-requested-with".into()],
            expose_headers: vec!["ETag".into()],
            max_age: Some(Duration::from_secs(3600)),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn value(list: &[(HeaderName, String)], name: HeaderName) -> Option<&str> {
        list.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn requests_are_judged_by_origin_method_and_headers() {
        let cors = config(&["https://app.example.com", "https://*.preview.example.com"]);
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("no Origin is not CORS", "GET", &[], "not"),
            (
                "an allowed origin gets headers",
                "GET",
                &[("origin", "https://app.example.com")],
                "allowed",
            ),
            (
                "a wildcard origin pattern matches",
                "GET",
                &[("origin", "https://pr-1.preview.example.com")],
                "allowed",
            ),
            (
                "another origin gets none",
                "GET",
                &[("origin", "https://evil.example")],
                "refused",
            ),
            (
                "a preflight for GET is allowed",
                "OPTIONS",
                &[
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "GET"),
                ],
                "preflight-ok",
            ),
            (
                "a preflight for PUT is refused",
                "OPTIONS",
                &[
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "PUT"),
                ],
                "preflight-no",
            ),
            (
                "a preflight with an unlisted header is refused",
                "OPTIONS",
                &[
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "x-secret"),
                ],
                "preflight-no",
            ),
            (
                "a preflight with a listed header is allowed",
                "OPTIONS",
                &[
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "X-Requested-With"),
                ],
                "preflight-ok",
            ),
            (
                "OPTIONS without a requested method is not a preflight",
                "OPTIONS",
                &[("origin", "https://app.example.com")],
                "preflight-no",
            ),
        ];
        for (name, method, pairs, want) in cases {
            let got = match evaluate(&cors, method, &headers(pairs)) {
                Cors::NotCors => "not",
                Cors::Allowed(_) => "allowed",
                Cors::Refused => "refused",
                Cors::PreflightAllowed(_) => "preflight-ok",
                Cors::PreflightRefused => "preflight-no",
            };
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn allowed_headers_take_one_wildcard_as_s3_does() {
        let mut cors = config(&["*"]);
        cors.allowed_headers = vec!["x-amz-*".into(), "Authorization".into(), "*-token".into()];
        let preflight = |requested: &str| {
            evaluate(
                &cors,
                "OPTIONS",
                &headers(&[
                    ("origin", "https://x.org"),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", requested),
                ]),
            )
        };
        for allowed in [
            "x-amz-date",
            "X-Amz-Content-Sha256, authorization",
            "x-csrf-token",
        ] {
            let got = preflight(allowed);
            assert!(
                matches!(got, Cors::PreflightAllowed(_)),
                "{allowed}: {got:?}"
            );
        }
        for refused in ["x-am", "x-amz", "content-type", "x-amz-date, x-other"] {
            let got = preflight(refused);
            assert!(matches!(got, Cors::PreflightRefused), "{refused}: {got:?}");
        }
    }

    #[test]
    fn allowed_answers_carry_the_configured_values() {
        let cors = config(&["*"]);
        let Cors::PreflightAllowed(h) = evaluate(
            &cors,
            "OPTIONS",
            &headers(&[
                ("origin", "https://x.org"),
                ("access-control-request-method", "GET"),
            ]),
        ) else {
            panic!()
        };
        assert_eq!(value(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
        assert_eq!(
            value(&h, header::ACCESS_CONTROL_ALLOW_METHODS),
            Some("GET, HEAD")
        );
        assert_eq!(value(&h, header::ACCESS_CONTROL_MAX_AGE), Some("3600"));
        let Cors::Allowed(h) = evaluate(
            &config(&["https://x.org"]),
            "GET",
            &headers(&[("origin", "https://x.org")]),
        ) else {
            panic!()
        };
        assert_eq!(
            value(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("https://x.org")
        );
        assert_eq!(
            value(&h, header::ACCESS_CONTROL_EXPOSE_HEADERS),
            Some("ETag")
        );
    }
}
