//! Hostile input over real sockets: paths that try to escape, oversized and
//! malformed headers, range abuse, odd hosts. The node must answer with the
//! status the RFCs give and never serve what it should not.
#![cfg(feature = "embedded")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{site_toml, Edge, EdgeBuilder};
use reqwest::Method;

async fn edge() -> Edge {
    let edge = EdgeBuilder::new()
        .site(
            "h",
            &site_toml("h.test", "hostile-bucket", "prefix = \"public/\"\n"),
        )
        .start();
    edge.create_bucket("hostile-bucket").await;
    edge.put("hostile-bucket", "public/ok.txt", "ok", Some("text/plain"))
        .await;
    edge.put("hostile-bucket", "secret.txt", "secret", Some("text/plain"))
        .await;
    edge
}

/// Sends raw bytes and returns the status line's code (0 when the connection closed).
fn raw(edge: &Edge, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(edge.node.http_addrs[0]).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[tokio::test]
async fn paths_never_escape_the_site_prefix_and_malformed_ones_are_400() {
    let edge = edge().await;
    let long = format!("/{}", "a".repeat(8 * 1024));
    let cases: &[(&str, &str, u16)] = &[
        ("a plain key", "/ok.txt", 200),
        ("dot-dot", "/../secret.txt", 404),
        ("encoded dot-dot", "/%2e%2e/secret.txt", 404),
        (
            "mixed-case encoded dot-dot",
            "/%2E%2e/%2e%2E/secret.txt",
            404,
        ),
        ("an encoded slash with dot-dot", "/..%2fsecret.txt", 404),
        ("a backslash", "/..%5csecret.txt", 404),
        ("a NUL", "/ok.txt%00", 400),
        ("an overlong dot", "/%c0%ae%c0%ae/secret.txt", 400),
        ("invalid UTF-8", "/%ff", 400),
        ("a double slash", "//ok.txt", 200),
        ("an 8 KiB path is longer than any S3 key", &long, 414),
    ];
    for (name, path, want) in cases {
        let response = edge.get("h.test", path).await;
        assert_eq!(response.status().as_u16(), *want, "{name}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("secret"), "{name}: {body}");
    }
}

#[tokio::test]
async fn oversized_or_too_many_headers_are_refused_and_hosts_route_or_404() {
    let edge = edge().await;
    let big = format!(
        "GET /ok.txt HTTP/1.1\r\nHost: h.test\r\nX-Big: {}\r\n\r\n",
        "x".repeat(64 * 1024)
    );
    let (code, _) = raw(&edge, big.as_bytes());
    assert!(
        code == 431 || code == 400 || code == 0,
        "a 64 KiB header: {code}"
    );
    let mut many = String::from("GET /ok.txt HTTP/1.1\r\nHost: h.test\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (code, _) = raw(&edge, many.as_bytes());
    assert!(
        code == 431 || code == 400 || code == 0,
        "200 headers: {code}"
    );
    let (code, _) = raw(
        &edge,
        b"GET /ok.txt HTTP/1.1\r\nHost: h.test\r\nX-Bad: a\rb\r\n\r\n",
    );
    assert!(code == 400 || code == 0, "a bare CR in a header: {code}");
    for (host, want) in [
        ("H.TEST.", 200),
        ("h.test:8080", 200),
        ("[::1]", 404),
        ("bad host!", 404),
        ("", 404),
    ] {
        let request = format!("GET /ok.txt HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (code, _) = raw(&edge, request.as_bytes());
        assert!(
            code == want || (host.is_empty() && code == 400),
            "host `{host}`: {code}"
        );
    }
}

#[tokio::test]
async fn range_abuse_gets_200_or_416_never_a_huge_answer() {
    let edge = edge().await;
    let many: Vec<String> = (0..2000).map(|i| format!("{}-{}", i % 2, i % 2)).collect();
    let thousands = format!("bytes={}", many.join(","));
    let overlapping = format!("bytes={}", vec!["0-1"; 60].join(","));
    let cases: Vec<(&str, String, Vec<u16>)> = vec![
        ("thousands of parts", thousands, vec![200, 206]),
        ("many overlapping parts", overlapping, vec![206]),
        (
            "a number past u64",
            "bytes=0-99999999999999999999999".into(),
            vec![200],
        ),
        (
            "a start past u64",
            "bytes=99999999999999999999999-".into(),
            vec![200],
        ),
        ("a start past the end", "bytes=1000000-".into(), vec![416]),
        (
            "a huge suffix",
            "bytes=-18446744073709551615".into(),
            vec![206],
        ),
    ];
    for (name, range, want) in cases {
        let response = edge
            .request(Method::GET, "h.test", "/ok.txt", &[("range", &range)])
            .await;
        let status = response.status().as_u16();
        assert!(want.contains(&status), "{name}: {status}");
        let body = response.bytes().await.unwrap();
        assert!(
            body.len() < 4096,
            "{name}: {} bytes for a 2-byte object",
            body.len()
        );
    }
}

#[tokio::test]
async fn control_characters_in_metadata_never_reach_a_header() {
    let edge = edge().await;
    edge.put_with("hostile-bucket", "public/meta.txt", "m", |p| {
        p.content_type("text/plain")
            .website_redirect_location("/a b")
    })
    .await;
    let response = edge.get("h.test", "/meta.txt").await;
    assert_eq!(
        response.status(),
        200,
        "a site without [website] ignores redirect metadata"
    );
    for (name, value) in response.headers() {
        assert!(
            !value.as_bytes().iter().any(|b| *b == b'\r' || *b == b'\n'),
            "{name}"
        );
        assert!(!name.as_str().starts_with("x-amz"), "{name}");
    }
}

#[tokio::test]
async fn five_hundred_slowloris_connections_do_not_stop_others_being_served() {
    let edge = edge().await;
    let addr = edge.node.http_addrs[0];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut connections: Vec<TcpStream> = (0..500)
                .filter_map(|_| TcpStream::connect(addr).ok())
                .collect();
            let head = b"GET /ok.txt HTTP/1.1\r\nHost: h.test\r\nX-Slow: ";
            for byte in head.iter().cycle().take(6) {
                for c in &mut connections {
                    let _ = c.write_all(&[*byte]);
                }
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            connections.len()
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Warm the key so the timing measures the node, not the origin.
    assert_eq!(edge.get("h.test", "/ok.txt").await.status(), 200);
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let response = edge.get("h.test", "/ok.txt").await;
        assert_eq!(response.status(), 200);
        worst = worst.max(started.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened = slow.join().unwrap();
    assert!(opened >= 400, "only {opened} slow connections opened");
    assert!(
        worst < Duration::from_millis(100),
        "a request took {worst:?} beside {opened} slow clients"
    );
}
