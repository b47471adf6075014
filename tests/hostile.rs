//! Hostile input over real sockets: paths that try to escape, oversized and
//! malformed headers, range abuse, odd hosts. The node must answer with the
//! status the RFCs give and never serve what it should not.
#![cfg(feature = "embedded")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::binary::{rss_kib, Binary};
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
        // No host at all: 400 (RFC 9112 3.2), not "no site for it".
        ("bad host!", 400),
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

/// HTTP/1.1 takes a header section of up to 100 fields, as the README says
/// and as HTTP/2 does; the 101st gets 431 (RFC 6585 section 5). actix-http's
/// parser stopped at 96, so 97 fields were refused.
#[tokio::test]
async fn http_1_1_takes_100_header_fields_and_refuses_101() {
    let edge = edge().await;
    for (fields, want) in [(97, 200), (100, 200), (101, 431)] {
        // Host and Connection, then the rest.
        let mut head =
            String::from("GET /ok.txt HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n");
        for i in 0..fields - 2 {
            head.push_str(&format!("X-H{i}: v\r\n"));
        }
        head.push_str("\r\n");
        let (code, text) = raw(&edge, head.as_bytes());
        assert_eq!(code, want, "{fields} fields: {text}");
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

/// A bucket may report any date. An object whose file is dated 1960 (before
/// anything an HTTP-date in this process can name) is served, answers its
/// ETag with 304, and is stored; the disk tier stays on for what comes after.
#[tokio::test]
async fn an_object_dated_before_1970_is_served_stored_and_harms_nothing_else() {
    let edge = edge().await;
    edge.put(
        "hostile-bucket",
        "public/old.txt",
        "from 1960",
        Some("text/plain"),
    )
    .await;
    let file = edge
        .dir
        .path()
        .join("buckets/hostile-bucket/public/old.txt");
    let sixties = std::time::UNIX_EPOCH - Duration::from_secs(10 * 365 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(sixties)
        .unwrap();
    let mut etag = String::new();
    for round in ["miss", "hit"] {
        let response = edge.get("h.test", "/old.txt").await;
        assert_eq!(response.status(), 200, "{round}");
        assert!(
            response.headers().get("last-modified").is_none(),
            "{round}: a date before 1970 is not passed on: {:?}",
            response.headers().get("last-modified")
        );
        etag = response.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(response.text().await.unwrap(), "from 1960", "{round}");
    }
    let response = edge
        .request(
            Method::GET,
            "h.test",
            "/old.txt",
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(response.status(), 304);
    let response = edge
        .request(
            Method::GET,
            "h.test",
            "/old.txt",
            &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
        )
        .await;
    assert_eq!(response.status(), 200, "no Last-Modified to compare with");
    edge.wait_disk_entries(1).await;
    assert_eq!(edge.get("h.test", "/ok.txt").await.status(), 200);
    edge.wait_disk_entries(2).await;
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

/// Waits (blocking) until the server closes `stream`; returns how long that took
/// and what it sent first.
fn time_until_closed(mut stream: TcpStream, limit: Duration) -> (Duration, String) {
    let started = std::time::Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
        }
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).to_string(),
    )
}

/// `CLIENT_REQUEST_TIMEOUT` in `src/server.rs`.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `KEEP_ALIVE` in `src/server.rs`.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_connection_that_sends_nothing_or_half_a_head_is_closed_after_the_request_timeout() {
    let edge = edge().await;
    let addr = edge.node.http_addrs[0];
    let silent = std::thread::spawn(move || {
        let stream = TcpStream::connect(addr).unwrap();
        time_until_closed(stream, Duration::from_secs(40))
    });
    let partial = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /ok.txt HTTP/1.1\r\nHost: h.test\r\n")
            .unwrap();
        time_until_closed(stream, Duration::from_secs(40))
    });
    // Others are served meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(edge.get("h.test", "/ok.txt").await.status(), 200);
    for (name, handle) in [("silent", silent), ("half a head", partial)] {
        let (took, answer) = tokio::task::spawn_blocking(move || handle.join().unwrap())
            .await
            .unwrap();
        assert!(
            took >= CLIENT_REQUEST_TIMEOUT - Duration::from_secs(1)
                && took < CLIENT_REQUEST_TIMEOUT + Duration::from_secs(10),
            "{name}: closed after {took:?}"
        );
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{name}: {answer}"
        );
    }
}

/// A connection to `addr` after one request for `/ok.txt` and its whole
/// 200, kept alive.
fn kept_alive(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /ok.txt HTTP/1.1\r\nHost: h.test\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\nok") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the response");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    stream
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let edge = edge().await;
    let addr = edge.node.http_addrs[0];
    let idle = std::thread::spawn(move || {
        let stream = kept_alive(addr);
        time_until_closed(stream, Duration::from_secs(60))
    });
    let (took, extra) = tokio::task::spawn_blocking(move || idle.join().unwrap())
        .await
        .unwrap();
    assert!(extra.is_empty(), "nothing more after the response: {extra}");
    assert!(
        took >= KEEP_ALIVE - Duration::from_secs(2) && took < KEEP_ALIVE + Duration::from_secs(15),
        "the idle connection was closed after {took:?}"
    );
}

/// Half a request head after a kept-alive request is timed out like half
/// the first: the head timer applied only to a connection's first request,
/// so one full request bought a connection that could then hold itself
/// open with a few bytes, forever.
#[tokio::test]
async fn half_a_head_after_a_kept_alive_request_is_closed_after_the_request_timeout() {
    let edge = edge().await;
    let addr = edge.node.http_addrs[0];
    let kept = std::thread::spawn(move || {
        let mut stream = kept_alive(addr);
        stream.write_all(b"GET /ok.txt HTTP/1.1\r\nX-Pa").unwrap();
        time_until_closed(stream, Duration::from_secs(40))
    });
    let (took, answer) = tokio::task::spawn_blocking(move || kept.join().unwrap())
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        took >= CLIENT_REQUEST_TIMEOUT - Duration::from_secs(1)
            && took < CLIENT_REQUEST_TIMEOUT + Duration::from_secs(10),
        "closed after {took:?}"
    );
}

/// A client that stops reading is dropped after `--stall-timeout`, as
/// nginx's `send_timeout` drops it: over HTTP/1 the connection is closed,
/// over HTTP/2 a stream that gets no window is reset (CANCEL) while the
/// connection and its other streams go on; a chunked body left unread is
/// drained only while it keeps arriving. Each held the response's buffer
/// (and over HTTP/2 an open file) for as long as the client stayed.
#[test]
fn a_client_that_stops_reading_is_dropped_after_the_stall_timeout() {
    use common::h2_frames::*;
    let dir = tempfile::tempdir().unwrap();
    let sites = binary_site(dir.path(), "");
    let big = std::fs::File::create(sites.join("buckets/demo/big.bin")).unwrap();
    big.set_len(128 << 20).unwrap();
    drop(big);
    let pki = common::pki::Pki::new();
    let leaf = pki.leaf("localhost", &["localhost"]);
    let site = std::fs::read_to_string(sites.join("demo.toml")).unwrap();
    std::fs::write(
        sites.join("demo.toml"),
        format!("{site}{}", leaf.tls_section()),
    )
    .unwrap();
    let node = Binary::serve_dir_with(
        dir.path(),
        &["--stall-timeout", "2s", "--tls-listen", "127.0.0.1:0"],
    );
    let https: std::net::SocketAddr = node
        .stderr()
        .lines()
        .find_map(|line| common::binary::listener_url(line, "listening on https://"))
        .expect("the TLS listener")
        .parse()
        .unwrap();

    // HTTP/1: read 1 MiB, stop for twice the limit, then read what is left.
    let addr = node.http.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut received = 0;
    while received < 1 << 20 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the body ended early");
        received += n;
    }
    std::thread::sleep(Duration::from_secs(5));
    let started = std::time::Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
        }
    }
    assert!(
        received < (128 << 20) - (1 << 20),
        "{received} bytes: the connection was not cut"
    );

    // HTTP/2: a stream with no window is reset; the connection still answers.
    let mut h2 = RawH2::connect(
        https,
        "localhost",
        &pki,
        &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)],
    );
    h2.get(1, "localhost", "/big.bin");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let reset = loop {
        match h2.next(deadline) {
            Received::Frame(f) if f.kind == RST_STREAM && f.stream == 1 => break f.word(0),
            Received::Frame(f) if f.kind == GOAWAY => panic!("GOAWAY {f:?}"),
            Received::Frame(_) => continue,
            other => panic!("{other:?}: no reset of the stalled stream"),
        }
    };
    const CANCEL: u32 = 0x8;
    assert_eq!(reset, CANCEL);
    h2.get(3, "localhost", "/small.txt");
    loop {
        match h2.next(deadline) {
            Received::Frame(f) if f.kind == HEADERS && f.stream == 3 => break,
            Received::Frame(f) if f.kind == GOAWAY || f.kind == RST_STREAM => panic!("{f:?}"),
            Received::Frame(_) => continue,
            other => panic!("{other:?}: the connection no longer answers"),
        }
    }

    // A chunked body the node does not read (a POST to a bucket site: 405)
    // is drained to keep the connection, but only while it keeps arriving:
    // one chunk and then nothing held the connection for good.
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .write_all(
            b"POST /small.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n",
        )
        .unwrap();
    let (took, answer) = time_until_closed(stream, Duration::from_secs(30));
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(took < Duration::from_secs(15), "closed after {took:?}");
}

/// A site folder for the binary: one default site on the embedded store, with
/// `origin` lines added to its `[origin]`.
fn binary_site(dir: &std::path::Path, origin: &str) -> std::path::PathBuf {
    let sites = dir.join("sites");
    std::fs::create_dir_all(sites.join("buckets/demo")).unwrap();
    std::fs::write(
        sites.join("demo.toml"),
        format!("hosts = [\"localhost\"]\ndefault = true\n[origin]\nbucket = \"demo\"\nendpoint = \"embedded\"\n{origin}"),
    )
    .unwrap();
    std::fs::write(sites.join("buckets/demo/small.txt"), "small").unwrap();
    sites
}

/// A client that reads a few MiB of a 1 GiB body and then stops reading (the
/// socket left open) holds no memory in the node: the body is back-pressured,
/// not buffered, and others are still served at once.
#[test]
fn a_client_that_stops_reading_a_1_gib_body_holds_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded store hashes a file without a stored ETag before answering:
    // seconds for 1 GiB on a busy machine.
    let sites = binary_site(dir.path(), "timeout = \"60s\"\n");
    // Sparse: 1 GiB of zeros written in no time.
    let huge = std::fs::File::create(sites.join("buckets/demo/huge.bin")).unwrap();
    huge.set_len(1 << 30).unwrap();
    drop(huge);
    let node = Binary::serve_dir(dir.path());
    let small = || {
        let started = std::time::Instant::now();
        let body = reqwest::blocking::get(format!("{}/small.txt", node.http))
            .unwrap()
            .text()
            .unwrap();
        assert_eq!(body, "small");
        started.elapsed()
    };
    small();
    let (baseline, _) = rss_kib(node.pid());

    let addr = node.http.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    // Generous: the embedded store may read the whole file before it answers.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(b"GET /huge.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut received = stream.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..received.min(512)]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-length: 1073741824"), "{head}");
    while received < 4 << 20 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the body ended early");
        received += n;
    }
    // Stop reading for ten seconds, the connection open.
    let mut worst = Duration::ZERO;
    let mut highest = baseline;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        highest = highest.max(rss_kib(node.pid()).0);
        worst = worst.max(small());
    }
    let (_, peak) = rss_kib(node.pid());
    let growth_mib = peak.max(highest).saturating_sub(baseline) / 1024;
    println!(
        "RSS baseline {} MiB, peak {} MiB, growth {growth_mib} MiB; slowest other request {worst:?}",
        baseline / 1024,
        peak / 1024
    );
    assert!(
        growth_mib <= 64,
        "RSS grew by {growth_mib} MiB for a reader that stopped"
    );
    assert!(
        worst < Duration::from_secs(1),
        "another request took {worst:?}"
    );
    // The stalled transfer is still alive, and resumes where it stopped.
    let n = stream.read(&mut buf).unwrap();
    assert!(n > 0, "the paused transfer resumes");
    drop(stream);
    small();
}

const SECRET_KEY: &str = "EmbeddedSecret-k3Jq9zVb7Lw2";
const WRONG_SECRET: &str = "WrongSecret-Qx8Nn4Rt6Yp1";
const ADMIN_TOKEN: &str = "AdminToken-Zm5Hc3Vd9Ks7";

/// Secrets in the environment never come back out: not in stdout or stderr (with
/// the log level at trace), not in any response's headers or body, not in
/// `/metrics`, whatever errors are provoked.
#[test]
fn credentials_and_the_admin_token_never_appear_in_logs_responses_or_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let sites = binary_site(dir.path(), "");
    let store_port = common::binary::free_port();
    let store = format!("http://127.0.0.1:{store_port}");
    let remote = |name: &str, endpoint: &str, secret_var: &str| {
        std::fs::write(
            sites.join(format!("{name}.toml")),
            format!(
                "hosts = [\"{name}.test\"]\n[origin]\nbucket = \"demo\"\nendpoint = \"{endpoint}\"\n\
                 access_key_id_env = \"T_KEY_ID\"\nsecret_access_key_env = \"{secret_var}\"\ntimeout = \"2s\"\n"
            ),
        )
        .unwrap();
    };
    remote("good", &store, "T_SECRET");
    remote("badsecret", &store, "T_WRONG_SECRET");
    remote("unreachable", "http://127.0.0.1:1", "T_SECRET");
    let cache = dir.path().join("cache");
    // As a Kubernetes Secret made `--from-file` holds it: with a newline,
    // which the node drops (it refused every scrape and purge before).
    let admin_token = format!("{ADMIN_TOKEN}\n");
    let mut node = Binary::serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--embedded-s3-listen",
            &format!("127.0.0.1:{store_port}"),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--sites",
            sites.to_str().unwrap(),
        ],
        &[
            ("RUST_LOG", "trace"),
            ("S3EDGE_EMBEDDED_ACCESS_KEY", "test-key-id"),
            ("S3EDGE_EMBEDDED_SECRET_KEY", SECRET_KEY),
            ("T_KEY_ID", "test-key-id"),
            ("T_SECRET", SECRET_KEY),
            ("T_WRONG_SECRET", WRONG_SECRET),
            ("S3EDGE_ADMIN_TOKEN", &admin_token),
        ],
        dir.path(),
    );
    let client = reqwest::blocking::Client::new();
    let mut seen = String::new();
    let mut exchange = |request: reqwest::blocking::RequestBuilder| -> u16 {
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        for (name, value) in response.headers() {
            seen.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        seen.push_str(&response.text().unwrap());
        status
    };
    let edge = |host: &str, path: &str| {
        client
            .get(format!("{}{path}", node.http))
            .header("host", host)
    };
    let admin = |path: &str| client.get(format!("{}{path}", node.admin));
    assert_eq!(exchange(edge("localhost", "/small.txt")), 200);
    assert_eq!(exchange(edge("good.test", "/small.txt")), 200);
    assert_eq!(exchange(edge("badsecret.test", "/small.txt")), 502);
    assert_eq!(exchange(edge("unreachable.test", "/small.txt")), 502);
    assert_eq!(exchange(edge("good.test", "/missing.txt")), 404);
    assert_eq!(exchange(admin("/metrics")), 401);
    assert_eq!(exchange(admin("/metrics").bearer_auth(WRONG_SECRET)), 401);
    assert_eq!(
        exchange(admin("/metrics").bearer_auth(&ADMIN_TOKEN[..10])),
        401
    );
    let purge = |token: &str| {
        client
            .post(format!("{}/purge", node.admin))
            .bearer_auth(token)
            .body(r#"{"site":"good","all":true}"#)
    };
    assert_eq!(exchange(purge("not-the-token")), 401);
    assert_eq!(exchange(purge(ADMIN_TOKEN)), 200);
    assert_eq!(exchange(admin("/metrics").bearer_auth(ADMIN_TOKEN)), 200);
    assert!(
        seen.contains("s3edge_origin_requests_total"),
        "the metrics were read"
    );
    assert_eq!(node.stop(), Some(0));
    let (stdout, stderr) = (node.stdout(), node.stderr());
    assert!(
        stderr.contains("SignatureDoesNotMatch"),
        "the wrong secret is logged by its S3 code: {stderr}"
    );
    assert!(stderr.contains("TRACE"), "the log level really was trace");
    for secret in [SECRET_KEY, WRONG_SECRET, ADMIN_TOKEN] {
        for (place, text) in [
            ("stdout", &stdout),
            ("stderr", &stderr),
            ("responses", &seen),
        ] {
            assert!(!text.contains(secret), "`{secret}` in {place}");
        }
    }
}

#[test]
fn the_admin_listener_is_loopback_by_default() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_s3edge"))
        .args(["serve", "--help"])
        .env_remove("S3EDGE_ADMIN_LISTEN")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    let admin = help
        .split("--admin-listen")
        .nth(1)
        .and_then(|rest| rest.split("\n      --").next())
        .unwrap_or_default();
    assert!(admin.contains("[default: 127.0.0.1:9090]"), "{help}");

    // Started without --admin-listen, it binds 127.0.0.1:9090 (when that is free).
    if std::net::TcpListener::bind("127.0.0.1:9090").is_err() {
        println!("127.0.0.1:9090 is taken: only the help text was checked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sites = binary_site(dir.path(), "");
    let cache = dir.path().join("cache");
    let mut node = Binary::serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--embedded-s3-listen",
            "127.0.0.1:0",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--sites",
            sites.to_str().unwrap(),
        ],
        &[],
        dir.path(),
    );
    assert_eq!(node.admin, "http://127.0.0.1:9090");
    let health = reqwest::blocking::get(format!("{}/healthz", node.admin)).unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(node.stop(), Some(0));
}

/// Resident set size of this test process (the node runs in it), in KiB.
fn own_rss_kib() -> u64 {
    rss_kib(std::process::id()).0
}

#[tokio::test]
async fn a_body_sent_with_a_get_is_never_buffered_and_ends_the_connection() {
    let edge = edge().await;
    let addr = edge.node.http_addrs[0];
    let before = own_rss_kib();
    let (head, sent, closed_after) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(
                b"GET /ok.txt HTTP/1.1\r\nHost: h.test\r\nContent-Length: 10000000000\r\n\r\n",
            )
            .unwrap();
        // The answer comes before any of the announced 10 GB.
        let mut buf = [0u8; 4096];
        let mut answer = Vec::new();
        while !answer.ends_with(b"\r\n\r\nok") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the answer");
            answer.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&answer).to_string();
        // Then 64 MiB of it: the node may drain some, but never keeps it.
        let junk = vec![b'x'; 1 << 20];
        let mut sent = 0usize;
        for _ in 0..64 {
            if stream.write_all(&junk).is_err() {
                break;
            }
            sent += junk.len();
        }
        let started = std::time::Instant::now();
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            assert!(started.elapsed() < Duration::from_secs(10), "still open");
        }
        (head, sent, started.elapsed())
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("ok"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "the node will not read the rest: {head}"
    );
    let growth_mib = own_rss_kib().saturating_sub(before) / 1024;
    println!("sent {sent} bytes of GET body; closed {closed_after:?} later; RSS +{growth_mib} MiB");
    assert!(growth_mib < 32, "RSS grew by {growth_mib} MiB");

    // A chunked body on a GET is answered the same way, without reading it.
    let (code, text) = raw(
        &edge,
        b"GET /ok.txt HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
    );
    assert_eq!(code, 200, "{text}");
    assert!(text.ends_with("ok"), "{text}");
}

/// A malformed request head gets its 400 or 431 and writes nothing at
/// ERROR in the process log: any client could fill it otherwise. Also with
/// `RUST_LOG=info`, which deploy files used to set.
#[test]
fn malformed_request_heads_are_refused_without_error_lines_in_the_log() {
    for env in [&[][..], &[("RUST_LOG", "info")][..]] {
        malformed_heads_write_no_error_lines(env);
    }
}

fn malformed_heads_write_no_error_lines(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    binary_site(dir.path(), "");
    let mut node = Binary::serve_dir_env(dir.path(), &[], env);
    let addr = node.http.trim_start_matches("http://").to_string();
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (head, status) in [
        (
            format!("GET / HTTP/1.1\r\nHost: localhost\r\n{many}\r\n"),
            "431",
        ),
        (
            "GET /?q=\"x HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(),
            "400",
        ),
    ] {
        for _ in 0..3 {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{answer}"
            );
        }
    }
    node.stop();
    let log = node.stderr();
    assert!(
        !log.lines().any(|l| l.contains("ERROR")),
        "ERROR lines for clients' malformed heads with {env:?}:\n{log}"
    );
}

/// Requests the HTTP/1 parser refuses before any handler sees them (a bare
/// CR in a field: 400; a head past its 128 KiB buffer: 431; half a head,
/// then nothing: 408)
/// were in neither `s3edge_requests_total` nor the access log, where nginx
/// logs them: a scan or a broken client went unseen. They are now counted
/// under site `-` and logged with `-` for what was never parsed; a
/// connection that sends nothing (a browser's preconnect) is not a request.
#[tokio::test]
async fn requests_the_parser_refuses_are_counted_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let edge = EdgeBuilder::new()
        .site("h", &site_toml("h.test", "hostile-bucket", ""))
        .access_log(&log, s3edge::access_log::LogFormat::Json)
        .start();
    let (bad, _) = raw(
        &edge,
        b"GET /ok.txt HTTP/1.1\r\nHost: h.test\r\nX-Bad: a\rb\r\n\r\n",
    );
    assert_eq!(bad, 400);
    let big = format!(
        "GET /ok.txt HTTP/1.1\r\nHost: h.test\r\nX-Big: {}\r\n\r\n",
        "x".repeat(256 * 1024)
    );
    let (too_large, _) = raw(&edge, big.as_bytes());
    assert_eq!(too_large, 431);
    let addr = edge.node.http_addrs[0];
    let (silent, partial) = tokio::task::spawn_blocking(move || {
        let silent = TcpStream::connect(addr).unwrap();
        let mut partial = TcpStream::connect(addr).unwrap();
        partial.write_all(b"GET /ok.txt HTTP/1.1\r\n").unwrap();
        let silent = std::thread::spawn(move || time_until_closed(silent, Duration::from_secs(40)));
        let partial =
            std::thread::spawn(move || time_until_closed(partial, Duration::from_secs(40)));
        (silent.join().unwrap(), partial.join().unwrap())
    })
    .await
    .unwrap();
    assert!(partial.1.starts_with("HTTP/1.1 408"), "{}", partial.1);
    assert!(silent.1.is_empty() || silent.1.starts_with("HTTP/1.1 408"));
    for status in [400, 431, 408] {
        let series = format!("s3edge_requests_total{{site=\"-\",status=\"{status}\"}}");
        assert_eq!(edge.wait_metric(&series, |n| n == 1).await, 1, "{series}");
    }
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let statuses: Vec<u64> = lines.iter().filter_map(|l| l["status"].as_u64()).collect();
    assert_eq!(statuses, [400, 431, 408], "{lines:?}");
    for line in &lines {
        assert_eq!(
            (&line["method"], &line["path"], &line["client"]),
            (&"-".into(), &"-".into(), &"127.0.0.1".into()),
            "{line}"
        );
    }
}

/// `--node-id` defaults to the host name where `/proc/sys` is hidden, as the
/// shipped systemd unit's `ProcSubset=pid` hides it: every node of a ring
/// fell back to one name there, took each other's requests for loops (508)
/// and never got a purge. Run as root (CI), the node runs in a mount
/// namespace of its own with a procfs of processes only.
#[tokio::test]
async fn the_default_node_id_is_the_host_name_where_proc_sys_is_hidden() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a procfs needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    binary_site(dir.path(), "");
    let shell = "exec unshare --mount --propagation private -- sh -c \
        'mount -t proc -o subset=pid proc /proc && test ! -e /proc/sys/kernel/hostname && exec \"$0\" serve \"$@\"' \
        \"$0\" \"$@\"";
    let args = Binary::dir_args(dir.path(), &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut node = Binary::serve_in_shell(shell, &args, &[], dir.path());
    let text = reqwest::get(format!("{}/status.json", node.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).expect(&text);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(report["node"]["id"], host.trim(), "{report}");
    assert_eq!(node.stop(), Some(0));
}

/// A file of the bucket the node may not read (mode 000) answers 403, as S3
/// answers an object one may not read: it was a 502 while its ETag was not
/// recorded and a 404 once it was. HEAD on the store says the same. Run as
/// root (CI), the node runs as `nobody`, for whom mode 000 holds.
#[tokio::test]
async fn a_file_the_node_may_not_read_is_a_403() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sites = binary_site(dir.path(), "");
    let bucket = sites.join("buckets/demo");
    for name in ["never.txt", "later.txt"] {
        std::fs::write(bucket.join(name), name).unwrap();
    }
    let open = std::fs::Permissions::from_mode(0o777);
    for path in [dir.path(), &sites, &sites.join("buckets"), &bucket] {
        std::fs::set_permissions(path, open.clone()).unwrap();
    }
    let shut = || std::fs::Permissions::from_mode(0o000);
    std::fs::set_permissions(bucket.join("never.txt"), shut()).unwrap();
    let shell = if rustix::process::geteuid().is_root() {
        "exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$0\" serve \"$@\""
    } else {
        ":"
    };
    let args = Binary::dir_args(dir.path(), &["--disk-cache-size", "0"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let serve = || Binary::serve_in_shell(shell, &args, &[], dir.path());
    let get = |node: &Binary, path: &str| {
        let url = format!("{}{path}", node.http);
        async move {
            let response = reqwest::get(url).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };

    let mut node = serve();
    assert_eq!(get(&node, "/small.txt").await, (200, "small".into()));
    assert_eq!(get(&node, "/later.txt").await, (200, "later.txt".into()));
    let (status, page) = get(&node, "/never.txt").await;
    assert_eq!(status, 403, "{page}");
    assert!(!page.contains("never"), "{page}");
    // The warning may reach stderr just after the answer (a loaded host).
    let warned = || node.stderr().contains("never.txt") && node.stderr().contains("AccessDenied");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !warned() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(warned(), "the warning names the file: {}", node.stderr());
    assert_eq!(node.stop(), Some(0));

    // Its ETag recorded, the file is made unreadable; a new node (nothing
    // cached) asks the store again.
    std::fs::set_permissions(bucket.join("later.txt"), shut()).unwrap();
    let mut node = serve();
    assert_eq!(get(&node, "/later.txt").await.0, 403);
    assert_eq!(get(&node, "/small.txt").await, (200, "small".into()));
    let store = node
        .stderr()
        .lines()
        .find_map(|line| common::binary::listener_url(line, "embedded S3 store: "))
        .expect("the store's address");
    let s3 = common::s3_client(
        &store,
        s3edge::origin::embedded::DEFAULT_ACCESS_KEY,
        s3edge::origin::embedded::DEFAULT_SECRET_KEY,
    );
    for key in ["later.txt", "never.txt"] {
        let refused = s3.head_object().bucket("demo").key(key).send().await;
        let status = refused
            .unwrap_err()
            .raw_response()
            .map(|r| r.status().as_u16());
        assert_eq!(status, Some(403), "HEAD {key}");
    }
    assert_eq!(node.stop(), Some(0));
}
