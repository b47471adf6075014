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
