//! Per-site `[headers]` on every kind of answer, and CORS.
#![cfg(feature = "embedded")]

mod common;

use common::{site_toml, Edge, EdgeBuilder};
use reqwest::Method;

const SITE: &str = r#"
[website]
index_document = "index.html"
error_document = "error.html"

[[website.routing_rules]]
condition = { key_prefix_equals = "old/" }
redirect = { replace_key_prefix_with = "new/" }

[headers]
"Strict-Transport-Security" = "max-age=63072000; includeSubDomains"
"X-Content-Type-Options" = "nosniff"
"Cache-Control" = ""

[cors]
allowed_origins = ["https://app.example.com"]
allowed_methods = ["GET", "HEAD"]
allowed_headers = ["x-requested-with"]
expose_headers = ["ETag"]
max_age = "1h"
"#;

#[tokio::test]
async fn site_headers_are_on_hits_misses_redirects_and_errors_and_empty_values_remove() {
    let edge = EdgeBuilder::new()
        .site("h", &site_toml("h.test", "head-bucket", SITE))
        .start();
    edge.create_bucket("head-bucket").await;
    edge.put_with("head-bucket", "index.html", "home", |p| {
        p.cache_control("max-age=60").content_type("text/html")
    })
    .await;
    edge.put("head-bucket", "error.html", "oops", Some("text/html"))
        .await;
    for (name, path, status) in [
        ("a miss", "/", 200),
        ("a hit", "/", 200),
        ("a routing redirect", "/old/x", 301),
        ("an error document", "/nope", 404),
        ("a bad request", "/%00", 400),
        ("a refused method", "/", 405),
    ] {
        let method = if status == 405 {
            Method::POST
        } else {
            Method::GET
        };
        let response = edge.request(method, "h.test", path, &[]).await;
        assert_eq!(response.status().as_u16(), status, "{name}");
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=63072000; includeSubDomains",
            "{name}"
        );
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{name}"
        );
        assert!(
            response.headers().get("cache-control").is_none(),
            "{name}: an empty value removes the header"
        );
    }
}

#[tokio::test]
async fn cors_answers_preflights_and_marks_allowed_requests() {
    let edge = EdgeBuilder::new()
        .site("h", &site_toml("h.test", "cors-bucket", SITE))
        .start();
    edge.create_bucket("cors-bucket").await;
    edge.put("cors-bucket", "data.json", "{}", Some("application/json"))
        .await;
    let preflight = edge
        .request(
            Method::OPTIONS,
            "h.test",
            "/data.json",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "X-Requested-With"),
            ],
        )
        .await;
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-methods"],
        "GET, HEAD"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-headers"],
        "x-requested-with"
    );
    assert_eq!(preflight.headers()["access-control-max-age"], "3600");
    let refused = preflight_from(&edge, "h.test", "/data.json", "https://evil.example").await;
    assert_eq!(refused.status(), 403);
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let actual = edge
        .request(
            Method::GET,
            "h.test",
            "/data.json",
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(actual.status(), 200);
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(actual.headers()["access-control-expose-headers"], "ETag");
    assert!(actual.headers()["vary"]
        .to_str()
        .unwrap()
        .contains("Origin"));
    let other = edge
        .request(
            Method::GET,
            "h.test",
            "/data.json",
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(other.status(), 200);
    assert!(other.headers().get("access-control-allow-origin").is_none());
    assert!(other.headers()["vary"].to_str().unwrap().contains("Origin"));
    // Without [cors], OPTIONS is a refused method.
    let plain = EdgeBuilder::new()
        .site("p", &site_toml("p.test", "cors-bucket", ""))
        .start();
    let response = preflight_from(&plain, "p.test", "/data.json", "https://app.example.com").await;
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn cors_rules_can_come_from_the_bucket() {
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().join("buckets");
    {
        let edge = EdgeBuilder::new()
            .with(|o| o.embedded_dir = Some(buckets.clone()))
            .site("x", &site_toml("x.test", "cors-from", ""))
            .start();
        edge.create_bucket("cors-from").await;
        edge.put("cors-from", "a.json", "{}", Some("application/json"))
            .await;
        let rule = CorsRule::builder()
            .allowed_origins("https://bucket-app.example.com")
            .allowed_methods("GET")
            .max_age_seconds(600)
            .build()
            .unwrap();
        edge.s3
            .put_bucket_cors()
            .bucket("cors-from")
            .cors_configuration(
                CorsConfiguration::builder()
                    .cors_rules(rule)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let edge = EdgeBuilder::new()
        .with(|o| {
            o.embedded_dir = Some(buckets.clone());
            o.website_refresh = std::time::Duration::from_millis(200);
        })
        .site(
            "c",
            &site_toml("c.test", "cors-from", "[cors]\nfrom_bucket = true\n"),
        )
        .start();
    let preflight =
        preflight_from(&edge, "c.test", "/a.json", "https://bucket-app.example.com").await;
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-max-age"], "600");
    let other = preflight_from(&edge, "c.test", "/a.json", "https://app.example.com").await;
    assert_eq!(other.status(), 403);

    // Deleting the bucket's configuration revokes CORS at the next refresh,
    // as S3 answers a bucket without one: every preflight is a 403.
    edge.s3
        .delete_bucket_cors()
        .bucket("cors-from")
        .send()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while preflight_from(&edge, "c.test", "/a.json", "https://bucket-app.example.com")
        .await
        .status()
        != 403
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the deleted rules still answer"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let get = edge
        .request(
            Method::GET,
            "c.test",
            "/a.json",
            &[("origin", "https://bucket-app.example.com")],
        )
        .await;
    assert_eq!(get.status(), 200);
    assert!(get.headers().get("access-control-allow-origin").is_none());

    // A bucket without one from the start is a site without CORS, not a
    // node that refuses to start (taking every other site down with it).
    let bare = EdgeBuilder::new()
        .bucket("no-cors")
        .site(
            "n",
            &site_toml("n.test", "no-cors", "[cors]\nfrom_bucket = true\n"),
        )
        .start();
    bare.put("no-cors", "a.json", "{}", Some("application/json"))
        .await;
    let refused = preflight_from(&bare, "n.test", "/a.json", "https://app.example.com").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(bare.get("n.test", "/a.json").await.status(), 200);
}

/// A CORS preflight for a GET of `path` from `origin`.
async fn preflight_from(edge: &Edge, host: &str, path: &str, origin: &str) -> reqwest::Response {
    edge.request(
        Method::OPTIONS,
        host,
        path,
        &[("origin", origin), ("access-control-request-method", "GET")],
    )
    .await
}
