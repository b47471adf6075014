//! The edge over HTTPS: a node with `--tls-listen`, certificates from the sites'
//! `[tls]`, HTTP/2 by ALPN, and `redirect_http`.
#![cfg(feature = "embedded")]

mod common;

use common::{site_toml, EdgeBuilder};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA and a leaf for `host`, written as PEM files in `dir`.
fn certificate(
    dir: &std::path::Path,
    host: &str,
) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "s3edge https test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec![host.to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, host);
    let cert = leaf.signed_by(&key, &ca).unwrap();
    let cert_path = dir.join(format!("{host}.pem"));
    let key_path = dir.join(format!("{host}.key"));
    std::fs::write(&cert_path, format!("{}{}", cert.pem(), ca.pem())).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (ca.pem(), cert_path, key_path)
}

#[tokio::test]
async fn https_serves_the_site_over_http2_and_redirect_http_sends_plain_requests_there() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificate(certs.path(), "secure.test");
    let tls = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\nredirect_http = true\n",
        cert.display().to_string(),
        key.display().to_string()
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
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
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
    let certs = tempfile::tempdir().unwrap();
    let (_, cert, _) = certificate(certs.path(), "one.test");
    let (_, _, other_key) = certificate(certs.path(), "two.test");
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
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificate(certs.path(), "fast.test");
    let tls = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
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
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
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
