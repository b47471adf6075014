//! The edge over HTTPS: a node with `--tls-listen`, certificates from the sites'
//! `[tls]`, HTTP/2 by ALPN, and `redirect_http`.
#![cfg(feature = "embedded")]

mod common;

use common::pki::Pki;
use common::{site_toml, EdgeBuilder};

#[tokio::test]
async fn https_serves_the_site_over_http2_and_redirect_http_sends_plain_requests_there() {
    let pki = Pki::new();
    let tls = format!(
        "{}redirect_http = true\n",
        pki.leaf("secure.test", &["secure.test"]).tls_section()
    );
    let edge = EdgeBuilder::new()
        .site("secure", &site_toml("secure.test", "secure-bucket", &tls))
        .with(|o| o.tls_listen = vec![common::loopback()])
        .start();
    edge.create_bucket("secure-bucket").await;
    edge.put("secure-bucket", "page.html", "over tls", Some("text/html"))
        .await;
    let https = edge.node.https_addrs[0];

    let client = reqwest::Client::builder()
        .add_root_certificate(pki.reqwest_root())
        .resolve("secure.test", https)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(format!("https://secure.test:{}/page.html", https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_2,
        "h2 negotiated by ALPN"
    );
    // Every field made it through the conversion to h2's header map.
    let fields = response.headers();
    assert_eq!(fields["content-type"], "text/html; charset=utf-8");
    assert_eq!(fields["content-length"], "8");
    assert_eq!(fields["cache-status"], "s3edge; fwd=miss; stored");
    assert!(fields["etag"].to_str().unwrap().starts_with('"'));
    assert!(fields.contains_key("last-modified") && fields.contains_key("date"));
    assert_eq!(response.text().await.unwrap(), "over tls");

    let plain = edge.get("secure.test", "/page.html?x=1").await;
    assert_eq!(plain.status(), 308);
    assert_eq!(
        plain.headers()["location"],
        format!("https://secure.test:{}/page.html?x=1", https.port()).as_str()
    );
}

#[tokio::test]
async fn a_certificate_that_does_not_match_its_key_is_a_check_error_naming_the_files() {
    let pki = Pki::new();
    let cert = pki.leaf("one.test", &["one.test"]).cert;
    let other_key = pki.leaf("two.test", &["two.test"]).key;
    let result = EdgeBuilder::new()
        .site(
            "bad",
            &site_toml(
                "bad.test",
                "bad-bucket",
                &format!(
                    "[tls]\ncert = {:?}\nkey = {:?}\n",
                    cert.display().to_string(),
                    other_key.display().to_string()
                ),
            ),
        )
        .try_start();
    let error = result.err().expect("refused").to_string();
    assert!(error.contains("bad.toml: tls:"), "{error}");
    assert!(
        error.contains("two.test.key") && error.contains("one.test.pem"),
        "{error}"
    );
}

/// Over HTTP/2 the HEADERS and DATA frames of a response go out in separate
/// writes: with Nagle's algorithm on, the second waited for the client's
/// delayed ACK, ~40 ms per response with a body of a few KiB (issue 19).
/// Accepted connections set TCP_NODELAY; a 16 KiB hit on one connection takes
/// well under a millisecond on loopback, so a median of 20 ms leaves a debug
/// build and a busy machine plenty of room while still catching the stall.
#[tokio::test]
async fn http2_responses_of_16_kib_are_not_held_back_by_nagle() {
    let pki = Pki::new();
    let tls = pki.leaf("fast.test", &["fast.test"]).tls_section();
    let edge = EdgeBuilder::new()
        .site("fast", &site_toml("fast.test", "fast-bucket", &tls))
        .with(|o| o.tls_listen = vec![common::loopback()])
        .start();
    edge.create_bucket("fast-bucket").await;
    edge.put(
        "fast-bucket",
        "blob.bin",
        "x".repeat(16 * 1024),
        Some("image/png"),
    )
    .await;
    let https = edge.node.https_addrs[0];
    let client = reqwest::Client::builder()
        .add_root_certificate(pki.reqwest_root())
        .resolve("fast.test", https)
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("https://fast.test:{}/blob.bin", https.port());
    let mut took = Vec::new();
    for round in 0..21 {
        let started = std::time::Instant::now();
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.bytes().await.unwrap().len(), 16 * 1024);
        // The first request is the miss that fills the cache.
        if round > 0 {
            took.push(started.elapsed());
        }
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median < std::time::Duration::from_millis(20),
        "an HTTP/2 hit of 16 KiB took {median:?} (median of {}): {took:?}",
        took.len()
    );
}

#[tokio::test]
async fn a_reload_refused_for_a_broken_certificate_changes_nothing_not_even_the_cache() {
    let pki = Pki::new();
    let leaf = pki.leaf("r.test", &["r.test"]);
    let builder = EdgeBuilder::new().bucket("one").bucket("two");
    let site_file = builder.path().join("sites/r.toml");
    let edge = builder
        .site("r", &site_toml("r.test", "one", &leaf.tls_section()))
        .with(|o| o.tls_listen = vec![common::loopback()])
        .start();
    edge.put("one", "page.html", "from one", Some("text/html"))
        .await;
    edge.put("two", "page.html", "from two", Some("text/html"))
        .await;
    let cache_status = |response: &reqwest::Response| response.headers()["cache-status"].clone();
    let first = edge.get("r.test", "/page.html").await;
    assert_eq!(cache_status(&first), "s3edge; fwd=miss; stored");
    assert_eq!(first.text().await.unwrap(), "from one");

    // One change moves the site to another bucket (its cache entries would be
    // dropped) and breaks its certificate: the reload is refused as a whole.
    std::fs::write(&site_file, site_toml("r.test", "two", &leaf.tls_section())).unwrap();
    std::fs::write(&leaf.cert, "not a certificate\n").unwrap();
    let refused = s3edge::server::reload(&edge.node.state).await;
    let error = format!("{:?}", refused.expect_err("the reload is refused"));
    assert!(error.contains("r.test.pem"), "{error}");

    let after = edge.get("r.test", "/page.html").await;
    assert_eq!(
        cache_status(&after),
        "s3edge; hit",
        "the cache of the site in force is kept"
    );
    assert_eq!(after.text().await.unwrap(), "from one");
}
