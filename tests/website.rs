//! S3 website semantics, as the S3 website endpoint behaves, end to end against
//! the embedded store: index and error documents, the implicit directory
//! redirect, object redirects, routing rules, redirect-all, SPA fallback,
//! denied-as-missing and website configurations read from the bucket.
#![cfg(feature = "embedded")]

mod common;

use aws_sdk_s3::types::{
    Condition, ErrorDocument, IndexDocument, Protocol, Redirect, RedirectAllRequestsTo,
    RoutingRule, WebsiteConfiguration,
};
use common::{site_toml, Edge, EdgeBuilder, Fault};
use reqwest::Method;

const WEBSITE_HEAD: &str = r#"
[website]
index_document = "index.html"
error_document = "error.html"
"#;

const RULES: &str = r#"
[[website.routing_rules]]
condition = { key_prefix_equals = "old/" }
redirect = { replace_key_prefix_with = "new/" }

[[website.routing_rules]]
condition = { key_prefix_equals = "docs/", http_error_code_returned_equals = 404 }
redirect = { protocol = "https", host_name = "docs.example.com", replace_key_prefix_with = "", http_redirect_code = 302 }

[[website.routing_rules]]
condition = { key_prefix_equals = "moved/" }
redirect = { http_redirect_code = 307 }

[[website.routing_rules]]
condition = { key_prefix_equals = "single/" }
redirect = { replace_key_with = "landing.html", host_name = "www.example.com" }

[[website.routing_rules]]
condition = { http_error_code_returned_equals = 403 }
redirect = { replace_key_with = "login.html" }
"#;

async fn website_edge(extra: &str) -> Edge {
    let edge = EdgeBuilder::new()
        .site(
            "web",
            &site_toml(
                "web.test",
                "web-bucket",
                &format!("{WEBSITE_HEAD}{extra}{RULES}"),
            ),
        )
        .start();
    edge.create_bucket("web-bucket").await;
    publish(&edge).await;
    edge
}

async fn publish(edge: &Edge) {
    let objects: &[(&str, &str, &str)] = &[
        ("index.html", "home", "text/html"),
        ("error.html", "custom error page", "text/html"),
        ("about/index.html", "about", "text/html"),
        ("docs/index.html", "docs home", "text/html"),
        ("plain", "a file called plain", "text/plain"),
        ("old/page.html", "old page still here", "text/html"),
        ("new/page.html", "new page", "text/html"),
        ("my file.txt", "spaces", "text/plain"),
        ("a+b.txt", "plus", "text/plain"),
        ("café.txt", "unicode", "text/plain"),
        ("dir/sub/deep.txt", "deep", "text/plain"),
    ];
    for (key, body, content_type) in objects {
        edge.put("web-bucket", key, *body, Some(content_type)).await;
    }
    edge.put_with("web-bucket", "go-away.html", "secret bytes", |p| {
        p.website_redirect_location("https://elsewhere.example.com/landing page")
    })
    .await;
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    status: u16,
    location: Option<&'static str>,
    body: Option<&'static str>,
}

const fn get(
    name: &'static str,
    path: &'static str,
    status: u16,
    body: Option<&'static str>,
) -> Case {
    Case {
        name,
        method: "GET",
        path,
        status,
        location: None,
        body,
    }
}

const fn redirect(
    name: &'static str,
    path: &'static str,
    status: u16,
    location: &'static str,
) -> Case {
    Case {
        name,
        method: "GET",
        path,
        status,
        location: Some(location),
        body: Some(""),
    }
}

async fn run(edge: &Edge, host: &str, cases: &[Case]) {
    for case in cases {
        let method = Method::from_bytes(case.method.as_bytes()).unwrap();
        let response = edge.request(method, host, case.path, &[]).await;
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(location.as_deref(), case.location, "{}", case.name);
        let body = response.text().await.unwrap();
        if let Some(want) = case.body {
            assert_eq!(body, want, "{}", case.name);
        }
    }
}

#[tokio::test]
async fn the_website_endpoint_conformance_table() {
    let edge = website_edge("").await;
    let cases = [
        get("the root serves the index document", "/", 200, Some("home")),
        get(
            "a directory with its slash serves its index document",
            "/about/",
            200,
            Some("about"),
        ),
        redirect(
            "a directory without its slash is a 302 to the slash, relative",
            "/about",
            302,
            "/about/",
        ),
        redirect(
            "the implicit redirect keeps the query string",
            "/about?x=1&y=2",
            302,
            "/about/?x=1&y=2",
        ),
        // The key is `//evil.example/../about`, so `about`: the Location is
        // its directory, never the path as sent plus `/` (`//evil.example/
        // ..%2Fabout/`, which a browser follows to evil.example).
        redirect(
            "the implicit redirect names the key, never another host",
            "//evil.example/..%2Fabout",
            302,
            "/about/",
        ),
        get(
            "an object named like a directory is served itself",
            "/plain",
            200,
            Some("a file called plain"),
        ),
        get(
            "a missing key gets the error document with 404",
            "/nope.html",
            404,
            Some("custom error page"),
        ),
        get(
            "a missing directory gets the error document with 404",
            "/nothing/",
            404,
            Some("custom error page"),
        ),
        redirect(
            "an object redirect is a 301 to its location, encoded, with no bytes",
            "/go-away.html",
            301,
            "https://elsewhere.example.com/landing%20page",
        ),
        redirect(
            "a prefix rule fires before the lookup even when the object exists",
            "/old/page.html",
            301,
            "http://web.test/new/page.html",
        ),
        redirect(
            "a rule with only a code keeps the key as a relative location",
            "/moved/a.html",
            307,
            "/moved/a.html",
        ),
        redirect(
            "replace_key_with replaces the whole key",
            "/single/x/y.html",
            301,
            "http://www.example.com/landing.html",
        ),
        get(
            "an error-code rule does not fire when the object exists",
            "/docs/",
            200,
            Some("docs home"),
        ),
        redirect(
            "an error-code rule fires after a 404 under its prefix",
            "/docs/missing.html",
            302,
            "https://docs.example.com/missing.html",
        ),
        get(
            "keys with spaces are decoded once",
            "/my%20file.txt",
            200,
            Some("spaces"),
        ),
        get("a plus sign is a plus sign", "/a+b.txt", 200, Some("plus")),
        get(
            "unicode keys are decoded",
            "/caf%C3%A9.txt",
            200,
            Some("unicode"),
        ),
        get(
            "an encoded slash is a slash",
            "/dir%2Fsub%2Fdeep.txt",
            200,
            Some("deep"),
        ),
        Case {
            name: "HEAD of a missing key is the status without a body",
            method: "HEAD",
            path: "/nope.html",
            status: 404,
            location: None,
            body: Some(""),
        },
        Case {
            name: "other methods are 405 without the error document",
            method: "POST",
            path: "/index.html",
            status: 405,
            location: None,
            body: None,
        },
    ];
    run(&edge, "web.test", &cases).await;
    let response = edge.get("web.test", "/nope.html").await;
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let post = edge.request(Method::POST, "web.test", "/", &[]).await;
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert!(!post.text().await.unwrap().contains("custom error page"));
}

#[tokio::test]
async fn range_and_conditional_headers_do_not_apply_to_the_error_document() {
    let edge = website_edge("").await;
    let response = edge
        .request(
            Method::GET,
            "web.test",
            "/nope.html",
            &[("range", "bytes=0-3"), ("if-none-match", "*")],
        )
        .await;
    assert_eq!(response.status(), 404);
    assert!(response.headers().get("content-range").is_none());
    assert_eq!(response.text().await.unwrap(), "custom error page");
}

#[tokio::test]
async fn a_missing_error_document_gives_the_built_in_page_and_a_redirecting_one_is_followed() {
    let edge = EdgeBuilder::new()
        .site("bare", &site_toml("bare.test", "bare-bucket", "[website]\nindex_document = \"index.html\"\nerror_document = \"missing-error.html\"\n"))
        .site("moving", &site_toml("moving.test", "moving-bucket", "[website]\nindex_document = \"index.html\"\nerror_document = \"err.html\"\n"))
        .start();
    edge.create_bucket("bare-bucket").await;
    edge.create_bucket("moving-bucket").await;
    edge.put_with("moving-bucket", "err.html", "x", |p| {
        p.website_redirect_location("/sorry.html")
    })
    .await;
    let response = edge.get("bare.test", "/nope").await;
    assert_eq!(response.status(), 404);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("404 Not Found") && !body.contains("<Error>"),
        "{body}"
    );
    run(
        &edge,
        "moving.test",
        &[redirect(
            "an error document with a redirect location is followed",
            "/nope",
            301,
            "/sorry.html",
        )],
    )
    .await;
    // HEAD answers as GET does, without the body: it had the built-in page's
    // length and, for a redirecting document, 404 instead of 301.
    let response = edge
        .request(Method::HEAD, "moving.test", "/nope", &[])
        .await;
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()["location"], "/sorry.html");
}

/// HEAD of a missing page has GET's status and header fields: the error
/// document's length, type, coding and `Vary`, not the built-in page's.
#[tokio::test]
async fn head_of_a_missing_page_has_the_error_documents_fields() {
    let edge = website_edge("").await;
    let page = "<p>This page is not here.</p>\n".repeat(60);
    edge.put("web-bucket", "error.html", page.clone(), Some("text/html"))
        .await;
    for coding in ["identity", "gzip"] {
        let headers = [("accept-encoding", coding)];
        // The first compressed answer is made as it is sent (no length
        // yet): HEAD is compared with GET once the variant is stored.
        for _ in 0..100 {
            let get = edge
                .request(Method::GET, "web.test", "/nope-1", &headers)
                .await;
            if get.headers().contains_key("content-length") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let head = edge
            .request(Method::HEAD, "web.test", "/nope-1", &headers)
            .await;
        let get = edge
            .request(Method::GET, "web.test", "/nope-1", &headers)
            .await;
        assert_eq!(get.status(), 404);
        assert_eq!(head.status(), 404);
        for name in [
            "content-length",
            "content-type",
            "content-encoding",
            "vary",
            "cache-control",
        ] {
            assert_eq!(
                get.headers().get(name),
                head.headers().get(name),
                "{coding}: {name}"
            );
        }
        assert!(get.headers().contains_key("content-length"), "{coding}");
    }
}

#[tokio::test]
async fn redirect_all_requests_sends_everything_to_the_new_host() {
    let edge = EdgeBuilder::new()
        .site("all", &site_toml("all.test", "all-bucket", "[website]\nredirect_all_requests_to = { host_name = \"new.example.com\", protocol = \"https\" }\n"))
        .site("same", &site_toml("same.test", "all-bucket", "[website]\nredirect_all_requests_to = { host_name = \"new.example.com\" }\n"))
        .start();
    run(
        &edge,
        "all.test",
        &[
            redirect(
                "the path and query are kept",
                "/a/b.html?q=1",
                301,
                "https://new.example.com/a/b.html?q=1",
            ),
            redirect("the root too", "/", 301, "https://new.example.com/"),
        ],
    )
    .await;
    run(
        &edge,
        "same.test",
        &[redirect(
            "the protocol defaults to the request's",
            "/x",
            301,
            "http://new.example.com/x",
        )],
    )
    .await;
}

#[tokio::test]
async fn spa_fallback_serves_the_index_for_missing_pages_but_not_for_existing_ones() {
    let edge = website_edge("spa_fallback = true\n").await;
    let response = edge.get("web.test", "/app/route/42").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert_eq!(response.text().await.unwrap(), "home");
    // Routing rules still come first, and existing objects are served.
    run(
        &edge,
        "web.test",
        &[
            redirect(
                "an error-code rule wins over the fallback",
                "/docs/missing.html",
                302,
                "https://docs.example.com/missing.html",
            ),
            get(
                "an existing page is served",
                "/plain",
                200,
                Some("a file called plain"),
            ),
        ],
    )
    .await;
}

/// A single-page app's deep links get its page as `/` does: compressed,
/// with its validators (a revalidation is a 304), HEAD as GET.
#[tokio::test]
async fn spa_fallback_answers_are_compressed_and_revalidate() {
    let edge = EdgeBuilder::new()
        .site(
            "spa",
            &site_toml(
                "spa.test",
                "spa-bucket",
                "[website]\nindex_document = \"index.html\"\nspa_fallback = true\n",
            ),
        )
        .start();
    edge.create_bucket("spa-bucket").await;
    let page: String = (0..200)
        .map(|i| format!("<div id=\"n{i}\">route {i}</div>\n"))
        .collect();
    edge.put("spa-bucket", "index.html", page.clone(), Some("text/html"))
        .await;
    let gzip = [("accept-encoding", "gzip")];
    let response = edge
        .request(Method::GET, "spa.test", "/route/c", &gzip)
        .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["vary"], "Accept-Encoding");
    let etag = headers["etag"].to_str().unwrap().to_string();
    let body = response.bytes().await.unwrap();
    assert!(common::gunzip(&body) == page.as_bytes());
    let revalidated = edge
        .request(
            Method::GET,
            "spa.test",
            "/route/d",
            &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(revalidated.status(), 304);
    let head = edge
        .request(Method::HEAD, "spa.test", "/route/e", &gzip)
        .await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["etag"], etag.as_str());
}

#[tokio::test]
async fn a_403_from_the_bucket_uses_403_rules_or_becomes_404_with_denied_as_missing() {
    let (builder, origins) = EdgeBuilder::new()
        .site("web", &site_toml("web.test", "web-bucket", &format!("{WEBSITE_HEAD}{RULES}")))
        .site("lax", &site_toml("lax.test", "web-bucket", "denied_as_missing = true\n[website]\nindex_document = \"index.html\"\nerror_document = \"error.html\"\n"))
        .site("strict", &site_toml("strict.test", "web-bucket", "[website]\nindex_document = \"index.html\"\nerror_document = \"error.html\"\n"))
        .test_origins();
    let edge = builder.start();
    edge.create_bucket("web-bucket").await;
    publish(&edge).await;
    for site in ["web", "lax", "strict"] {
        origins
            .site(site)
            .inject(Fault::DenyPrefix("private/".into()));
    }
    run(
        &edge,
        "web.test",
        &[redirect(
            "a 403 rule fires on a denied key",
            "/private/x.html",
            301,
            "http://web.test/login.html",
        )],
    )
    .await;
    run(
        &edge,
        "lax.test",
        &[get(
            "denied_as_missing turns the 403 into a 404 with the error document",
            "/private/x.html",
            404,
            Some("custom error page"),
        )],
    )
    .await;
    run(
        &edge,
        "strict.test",
        &[get(
            "a 403 keeps its status and gets the error document",
            "/private/x.html",
            403,
            Some("custom error page"),
        )],
    )
    .await;
}

fn bucket_website() -> WebsiteConfiguration {
    WebsiteConfiguration::builder()
        .index_document(
            IndexDocument::builder()
                .suffix("index.html")
                .build()
                .unwrap(),
        )
        .error_document(ErrorDocument::builder().key("error.html").build().unwrap())
        .routing_rules(
            RoutingRule::builder()
                .condition(Condition::builder().key_prefix_equals("legacy/").build())
                .redirect(
                    Redirect::builder()
                        .replace_key_prefix_with("modern/")
                        .protocol(Protocol::Https)
                        .build(),
                )
                .build(),
        )
        .build()
}

#[tokio::test]
async fn from_bucket_reads_the_website_configuration_and_refreshes_it() {
    // The store runs inside the node, so the bucket's configuration is put with
    // a first node and read by a second one over the same directory.
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().join("buckets");
    {
        let edge = EdgeBuilder::new()
            .with(|o| o.embedded_dir = Some(buckets.clone()))
            .site("x", &site_toml("x.test", "from-bucket", ""))
            .start();
        edge.create_bucket("from-bucket").await;
        publish_to(&edge, "from-bucket").await;
        edge.s3
            .put_bucket_website()
            .bucket("from-bucket")
            .website_configuration(bucket_website())
            .send()
            .await
            .unwrap();
    }
    let edge = EdgeBuilder::new()
        .with(|o| o.embedded_dir = Some(buckets.clone()))
        .site(
            "fb",
            &site_toml("fb.test", "from-bucket", "[website]\nfrom_bucket = true\n"),
        )
        .site(
            "override",
            &site_toml(
                "override.test",
                "from-bucket",
                "[website]\nfrom_bucket = true\nerror_document = \"other-error.html\"\n",
            ),
        )
        .start();
    run(
        &edge,
        "fb.test",
        &[
            get(
                "the bucket's index document is used",
                "/",
                200,
                Some("home"),
            ),
            get(
                "the bucket's error document is used",
                "/nope",
                404,
                Some("custom error page"),
            ),
            redirect(
                "the bucket's routing rules are used",
                "/legacy/a.html",
                301,
                "https://fb.test/modern/a.html",
            ),
        ],
    )
    .await;
    run(
        &edge,
        "override.test",
        &[get(
            "values in the site file override the bucket's",
            "/nope",
            404,
            Some("other error page"),
        )],
    )
    .await;

    // A new configuration takes effect after the refresh interval.
    edge.s3
        .put_bucket_website()
        .bucket("from-bucket")
        .website_configuration(
            WebsiteConfiguration::builder()
                .redirect_all_requests_to(
                    RedirectAllRequestsTo::builder()
                        .host_name("moved.example.com")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut status = 0;
    for _ in 0..50 {
        status = edge.get("fb.test", "/").await.status().as_u16();
        if status == 301 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 301,
        "the refreshed configuration redirects everything"
    );

    // A failed refresh keeps the last good configuration.
    edge.s3
        .delete_bucket_website()
        .bucket("from-bucket")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(edge.get("fb.test", "/").await.status(), 301);
}

async fn publish_to(edge: &Edge, bucket: &str) {
    for (key, body) in [
        ("index.html", "home"),
        ("error.html", "custom error page"),
        ("other-error.html", "other error page"),
    ] {
        edge.put(bucket, key, body, Some("text/html")).await;
    }
}

#[tokio::test]
async fn a_bucket_without_a_website_configuration_is_a_startup_error_naming_the_site() {
    let result = EdgeBuilder::new()
        .bucket("plain-bucket")
        .site(
            "nowebsite",
            &site_toml("n.test", "plain-bucket", "[website]\nfrom_bucket = true\n"),
        )
        .try_start();
    let error = result.err().expect("startup fails").to_string();
    assert!(
        error.contains("site `nowebsite`") && error.contains("has no website configuration"),
        "{error}"
    );
}

/// The site with routing rules, on a node that trusts proxies in `trusted`.
fn behind_proxies(trusted: &str) -> EdgeBuilder {
    let trusted = trusted.parse().unwrap();
    EdgeBuilder::new()
        .site(
            "web",
            &site_toml("web.test", "web-bucket", &format!("{WEBSITE_HEAD}{RULES}")),
        )
        .with(move |o| o.trusted_proxies = vec![trusted])
}

#[tokio::test]
async fn redirects_use_the_scheme_a_trusted_proxy_reports_and_ignore_untrusted_ones() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let trusted = behind_proxies("127.0.0.0/8")
        .access_log(log.path(), s3edge::access_log::LogFormat::Json)
        .start();
    let untrusted = behind_proxies("10.0.0.0/8").start();
    for (edge, want) in [
        (&trusted, "https://web.test/new/page.html"),
        (&untrusted, "http://web.test/new/page.html"),
    ] {
        for headers in [
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-for", "203.0.113.7"),
            ][..],
            &[("forwarded", "for=203.0.113.7;proto=https")][..],
        ] {
            let response = edge
                .request(Method::GET, "web.test", "/old/page.html", headers)
                .await;
            assert_eq!(response.headers()["location"], want, "{headers:?}");
        }
    }
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(log.path()).unwrap();
        if text.lines().count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for line in text.lines().take(2) {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            line["client"], "203.0.113.7",
            "the forwarded client address from a trusted proxy"
        );
    }
}

#[tokio::test]
async fn forwarding_headers_name_the_client_and_its_scheme_by_one_trust_rule() {
    let log = tempfile::NamedTempFile::new().unwrap();
    // The test's requests come from 127.0.0.1: a trusted proxy, as are the
    // other loopback addresses in the chains below.
    let edge = behind_proxies("127.0.0.0/8")
        .access_log(log.path(), s3edge::access_log::LogFormat::Json)
        .start();
    // (what the proxies sent, the client the log must name, the redirect's scheme)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case<'_>; 7] = [
        (
            // A chain of trusted proxies is walked back to the client.
            &[("x-forwarded-for", "198.51.100.1, 127.0.0.5")],
            "198.51.100.1",
            "http",
        ),
        (
            // An address with a port, as some load balancers write it.
            &[("x-forwarded-for", "198.51.100.2:5678")],
            "198.51.100.2",
            "http",
        ),
        (
            // A proxy that adds its own line rather than appending: the lines
            // are one list, and the client's own line is the oldest entry.
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "198.51.100.3"),
            ],
            "198.51.100.3",
            "http",
        ),
        (
            // A client's own `Forwarded` element, passed on by the proxy, says
            // nothing about the newest hop: its `proto` is not believed either.
            &[(
                "forwarded",
                "for=6.6.6.6;proto=https, for=198.51.100.4;proto=http",
            )],
            "198.51.100.4",
            "http",
        ),
        (
            // One X-Forwarded-Proto goes with the client, behind a chain.
            &[
                ("x-forwarded-for", "198.51.100.5, 127.0.0.9"),
                ("x-forwarded-proto", "https"),
            ],
            "198.51.100.5",
            "https",
        ),
        (
            // A load balancer that appends to the client's own
            // X-Forwarded-For (AWS ALB, GCP) and sets one X-Forwarded-Proto:
            // the scheme is the one used to reach it, not http (the site's
            // `redirect_http` sent an https request to itself again).
            &[
                ("x-forwarded-for", "6.6.6.6, 198.51.100.6"),
                ("x-forwarded-proto", "https"),
            ],
            "198.51.100.6",
            "https",
        ),
        (
            // A trusted hop written as an IPv4-mapped IPv6 address.
            &[("x-forwarded-for", "198.51.100.7, ::ffff:127.0.0.9")],
            "198.51.100.7",
            "http",
        ),
    ];
    for (headers, _, scheme) in &cases {
        let response = edge
            .request(Method::GET, "web.test", "/old/page.html", headers)
            .await;
        assert_eq!(
            response.headers()["location"],
            format!("{scheme}://web.test/new/page.html").as_str(),
            "{headers:?}"
        );
    }
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(log.path()).unwrap();
        if text.lines().count() >= cases.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let clients: Vec<String> = text
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            line["client"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let want: Vec<&str> = cases.iter().map(|(_, client, _)| *client).collect();
    assert_eq!(clients, want);
}

/// A path just under S3's 1,024-byte limit whose directory probe or index
/// document (`path/index.html`) goes over it names no object: 404 with the
/// error document, as any missing key, not 502 (the bucket answered
/// `KeyTooLongError`, taken for a failing bucket).
#[tokio::test]
async fn a_path_whose_index_key_is_too_long_for_s3_is_missing_not_a_bucket_failure() {
    let edge = website_edge("").await;
    for path in [
        format!("/{}", "a".repeat(1014)),
        format!("/{}", "a".repeat(1023)),
        format!("/{}/", "b".repeat(1020)),
    ] {
        for method in [Method::GET, Method::HEAD] {
            let response = edge.request(method.clone(), "web.test", &path, &[]).await;
            assert_eq!(response.status(), 404, "{method} of {} bytes", path.len());
            if method == Method::GET {
                assert_eq!(response.text().await.unwrap(), "custom error page");
            }
        }
    }
}

/// A request without a host (HTTP/1.0) to the default site: a routing rule's
/// absolute Location names the site's first host, as `redirect_http` does,
/// not `http:///new/...` (which a browser reads as the host `new`).
#[tokio::test]
async fn a_rule_redirect_for_a_request_without_a_host_names_the_sites_host() {
    use std::io::{Read, Write};
    let edge = EdgeBuilder::new()
        .site(
            "web",
            &format!(
                "hosts = [\"web.test\", \"*.web.test\"]\ndefault = true\n\
                 [origin]\nbucket = \"web-bucket\"\nendpoint = \"embedded\"\n\
                 {WEBSITE_HEAD}{RULES}"
            ),
        )
        .start();
    edge.create_bucket("web-bucket").await;
    publish(&edge).await;
    let addr = edge.node.http_addrs[0];
    let head = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /old/page.html HTTP/1.0\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.0 301"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nlocation: http://web.test/new/page.html\r\n"),
        "{head}"
    );
}
