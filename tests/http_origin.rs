//! An HTTP server as a site's origin (`[origin] url`), cached as RFC 9111
//! says a shared cache must: each rule on its own, against a real origin
//! server on loopback that counts what it is asked; then the origin's bad
//! answers, and a 1 GiB upload passed through.
#![cfg(feature = "embedded")]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::binary::Binary;
use common::http_origin::{raw_origin, Recorded, Reply, ScriptedOrigin};
use common::{exchange, Edge, EdgeBuilder};
use tokio::io::AsyncWriteExt;

const HOST: &str = "h.test";

fn edge_for(origin: &ScriptedOrigin, extra: &str) -> Edge {
    EdgeBuilder::new()
        .site("h", &origin.site_toml(HOST, extra))
        .start()
}

/// A node for `origin` whose cache directory is under `shared`: nodes
/// started one after the other on it find what the one before stored.
fn edge_on_cache_dir(origin: &ScriptedOrigin, shared: &std::path::Path) -> Edge {
    let cache = shared.join("cache");
    EdgeBuilder::new()
        .site("h", &origin.site_toml(HOST, ""))
        .with(move |o| o.cache_dir = cache)
        .start()
}

async fn get(
    edge: &Edge,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = edge
        .request(reqwest::Method::GET, HOST, path, headers)
        .await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap_or_default())
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or(""))
        .unwrap_or("")
}

/// An origin answering every target with `body` of `content_type`, fresh
/// for a minute, without an ETag.
async fn fresh_for_a_minute(body: String, content_type: &'static str) -> ScriptedOrigin {
    ScriptedOrigin::start(move |_: &Recorded| {
        Reply::ok(
            &body,
            &[
                ("cache-control", "max-age=60"),
                ("content-type", content_type),
            ],
        )
    })
    .await
}

/// `body` decoded from `coding` (gzip or br).
fn decoded(coding: &str, body: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => common::gunzip(body),
        _ => {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut brotli::Decompressor::new(body, 4096), &mut out)
                .unwrap();
            out
        }
    }
}

/// Answers with the request's target in the body, so each answer is told apart.
fn echo(cache_control: &'static str) -> impl Fn(&Recorded) -> Reply + Send + Sync {
    move |r: &Recorded| {
        Reply::ok(
            &format!("body of {}", r.target),
            &[("cache-control", cache_control)],
        )
    }
}

#[tokio::test]
async fn the_query_is_part_of_the_key() {
    let origin = ScriptedOrigin::start(echo("max-age=60")).await;
    let edge = edge_for(&origin, "");
    for _ in 0..2 {
        assert_eq!(get(&edge, "/a?x=1", &[]).await.2, "body of /a?x=1");
        assert_eq!(get(&edge, "/a?x=2", &[]).await.2, "body of /a?x=2");
    }
    assert_eq!((origin.count("/a?x=1"), origin.count("/a?x=2")), (1, 1));
}

#[tokio::test]
async fn vary_keeps_one_stored_response_per_selecting_value() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        let language = r.header("accept-language").unwrap_or("none").to_string();
        Reply::ok(
            &format!("in {language}"),
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        )
    })
    .await;
    let edge = edge_for(&origin, "");
    for _ in 0..3 {
        for language in ["en", "fr"] {
            let (_, headers, body) = get(&edge, "/v", &[("accept-language", language)]).await;
            assert_eq!(body, format!("in {language}"));
            assert_eq!(header(&headers, "vary"), "Accept-Language");
        }
        assert_eq!(get(&edge, "/v", &[]).await.2, "in none");
    }
    assert_eq!(origin.count("/v"), 3, "one fill per selecting value");
}

#[tokio::test]
async fn vary_star_and_no_store_and_private_are_never_stored() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        let cc = match r.target.as_str() {
            "/no-store" => "max-age=60, no-store",
            "/private" => "max-age=60, private",
            _ => "max-age=60",
        };
        let mut reply = Reply::ok("x", &[("cache-control", cc)]);
        if r.target == "/star" {
            reply.headers.push(("vary".into(), "*".into()));
        }
        reply
    })
    .await;
    let edge = edge_for(&origin, "");
    for path in ["/no-store", "/private", "/star"] {
        get(&edge, path, &[]).await;
        get(&edge, path, &[]).await;
        assert_eq!(origin.count(path), 2, "{path} must not be stored");
    }
}

#[tokio::test]
async fn authorization_requests_are_stored_only_when_the_response_allows() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        let cc = if r.target == "/public" {
            "public, max-age=60"
        } else {
            "max-age=60"
        };
        Reply::ok("secret", &[("cache-control", cc)])
    })
    .await;
    let edge = edge_for(&origin, "");
    let auth = [("authorization", "Bearer t")];
    for _ in 0..2 {
        get(&edge, "/plain", &auth).await;
        get(&edge, "/public", &auth).await;
    }
    assert_eq!((origin.count("/plain"), origin.count("/public")), (2, 1));
    assert_eq!(
        origin.requests()[0].header("authorization"),
        Some("Bearer t"),
        "forwarded"
    );
}

#[tokio::test]
async fn freshness_s_maxage_cdn_cache_control_and_the_age_it_arrived_with() {
    let origin = ScriptedOrigin::start(|r: &Recorded| match r.target.as_str() {
        "/s-maxage" => Reply::ok("x", &[("cache-control", "max-age=0, s-maxage=60")]),
        "/cdn" => Reply::ok(
            "x",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ],
        ),
        "/old" => Reply::ok("x", &[("cache-control", "max-age=60"), ("age", "100")]),
        "/aged" => Reply::ok("x", &[("cache-control", "max-age=600"), ("age", "50")]),
        _ => Reply::ok("x", &[]),
    })
    .await;
    let edge = edge_for(&origin, "");
    for _ in 0..2 {
        for path in ["/s-maxage", "/cdn", "/old", "/aged", "/none"] {
            get(&edge, path, &[]).await;
        }
    }
    assert_eq!(
        origin.count("/s-maxage"),
        1,
        "s-maxage wins for a shared cache"
    );
    assert_eq!(
        origin.count("/cdn"),
        1,
        "CDN-Cache-Control over Cache-Control"
    );
    assert_eq!(
        origin.count("/old"),
        2,
        "Age 100 > max-age 60: already stale"
    );
    assert_eq!(origin.count("/aged"), 1);
    assert_eq!(
        origin.count("/none"),
        2,
        "no freshness, no validator, no Last-Modified: not reused"
    );
    let (_, headers, _) = get(&edge, "/aged", &[]).await;
    let age: u64 = header(&headers, "age").parse().unwrap();
    assert!(
        (50..60).contains(&age),
        "Age counts from the origin's: {age}"
    );
}

#[tokio::test]
async fn heuristic_freshness_only_with_last_modified_and_a_heuristic_status() {
    let long_ago =
        httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(864_000));
    let origin = ScriptedOrigin::start(move |r: &Recorded| match r.target.as_str() {
        "/lm" => Reply::ok("x", &[("last-modified", long_ago.as_str())]),
        "/lm-302" => Reply::with_status(
            302,
            "x",
            &[("last-modified", long_ago.as_str()), ("location", "/x")],
        ),
        "/404" => Reply::with_status(404, "gone", &[("cache-control", "max-age=60")]),
        "/500" => Reply::with_status(500, "broken", &[]),
        _ => Reply::ok("x", &[]),
    })
    .await;
    let edge = edge_for(&origin, "");
    for _ in 0..2 {
        for path in ["/lm", "/lm-302", "/404", "/500"] {
            get(&edge, path, &[]).await;
        }
    }
    assert_eq!(
        origin.count("/lm"),
        1,
        "10% of the time since Last-Modified"
    );
    assert_eq!(
        origin.count("/lm-302"),
        2,
        "302 is not heuristically cacheable"
    );
    let (status, _, body) = get(&edge, "/404", &[]).await;
    assert_eq!(
        (status, body.as_str(), origin.count("/404")),
        (404, "gone", 1)
    );
    let (status, _, body) = get(&edge, "/500", &[]).await;
    assert_eq!(
        (status, body.as_str(), origin.count("/500")),
        (500, "broken", 3)
    );
}

#[tokio::test]
async fn a_304_refreshes_the_stored_response_and_updates_its_fields() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        if r.header("if-none-match") == Some("\"v1\"") {
            Reply::with_status(
                304,
                "",
                &[
                    ("etag", "\"v1\""),
                    ("x-version", "two"),
                    ("cache-control", "max-age=1"),
                ],
            )
        } else {
            Reply::ok(
                "stored body",
                &[
                    ("etag", "\"v1\""),
                    ("x-version", "one"),
                    ("cache-control", "max-age=1"),
                ],
            )
        }
    })
    .await;
    let edge = edge_for(&origin, "");
    let (_, headers, _) = get(&edge, "/r", &[]).await;
    assert_eq!(header(&headers, "x-version"), "one");
    // A hit: the entry's headers are made once, here, and kept with it.
    let (_, headers, _) = get(&edge, "/r", &[]).await;
    assert_eq!(header(&headers, "x-version"), "one");
    assert_eq!(header(&headers, "cache-status"), "s3edge; hit");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, headers, body) = get(&edge, "/r", &[]).await;
    assert_eq!((status, body.as_str()), (200, "stored body"));
    assert_eq!(header(&headers, "x-version"), "two", "fields from the 304");
    assert!(header(&headers, "cache-status").contains("fwd-status=304"));
    // The refreshed entry's hits carry the 304's fields, not the old ones.
    let (_, headers, _) = get(&edge, "/r", &[]).await;
    assert_eq!(header(&headers, "x-version"), "two");
    assert_eq!(header(&headers, "cache-status"), "s3edge; hit");
    let requests = origin.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("if-none-match"), Some("\"v1\""));
    // The client's own conditional is answered from the stored response.
    let (status, _, _) = get(&edge, "/r", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(status, 304);
}

/// `Last-Modified: Fri, 31 Dec 9999 23:59:60 GMT` is an HTTP-date by the
/// grammar (a leap second) that names the first second of the year 10000:
/// no date this process can write. It is ignored (so no `If-Modified-Since`
/// is made of it), the answer is stored and revalidated like any other, and
/// the disk tier stays on for the answers after it.
#[tokio::test]
async fn a_last_modified_past_the_year_9999_is_ignored_and_harms_nothing_else() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        Reply::ok(
            &format!("body of {}", r.target),
            &[
                ("cache-control", "max-age=0"),
                ("last-modified", "Fri, 31 Dec 9999 23:59:60 GMT"),
            ],
        )
    })
    .await;
    let edge = edge_for(&origin, "");
    for round in ["miss", "stale: revalidated"] {
        let (status, _, body) = get(&edge, "/far", &[]).await;
        assert_eq!((status, body.as_str()), (200, "body of /far"), "{round}");
    }
    let requests = origin.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("if-modified-since"), None);
    let (status, _, _) = get(
        &edge,
        "/far",
        &[("if-modified-since", "Fri, 31 Dec 9999 23:59:59 GMT")],
    )
    .await;
    assert_eq!(status, 200, "no Last-Modified to compare with");
    edge.wait_disk_entries(1).await;
    let (status, _, _) = get(&edge, "/next", &[]).await;
    assert_eq!(status, 200);
    edge.wait_disk_entries(2).await;
}

#[tokio::test]
async fn the_request_s_no_cache_revalidates_and_only_if_cached_gives_504() {
    let origin = ScriptedOrigin::start(echo("max-age=60")).await;
    let edge = edge_for(&origin, "");
    get(&edge, "/n", &[]).await;
    get(&edge, "/n", &[("cache-control", "no-cache")]).await;
    assert_eq!(origin.count("/n"), 2);
    let (status, _, _) = get(&edge, "/missing", &[("cache-control", "only-if-cached")]).await;
    assert_eq!((status, origin.count("/missing")), (504, 0));
}

/// The node's access log (`--access-log -`, its stdout) once it holds a
/// line for each of `paths`, or after 5 s.
async fn access_log_with(node: &Binary, paths: &[&str]) -> String {
    let mut log = String::new();
    for _ in 0..250 {
        log = node.stdout();
        if paths.iter().all(|p| log.contains(p)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    log
}

/// The first line of `log` that names `path`.
fn log_line(log: &str, path: &str) -> String {
    log.lines()
        .find(|l| l.contains(path))
        .unwrap_or_else(|| panic!("{path}: {log}"))
        .to_string()
}

/// What a client alone causes is the client's: an upload cut short (the
/// connection closed before its `Content-Length`) is a 400, one that stops
/// arriving a 408 after `--stall-timeout`, and neither they
/// nor `only-if-cached` with nothing stored puts an ERROR on the process
/// log or a 5xx in the access log (they were "invalid answer from the
/// origin", 502, and "origin timed out").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_a_client_causes_are_not_logged_as_the_origin_s() {
    use tokio::io::AsyncReadExt;
    let origin = ScriptedOrigin::start(echo("max-age=60")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sites")).unwrap();
    std::fs::write(dir.path().join("sites/h.toml"), origin.site_toml(HOST, "")).unwrap();
    let mut node =
        Binary::serve_dir_with(dir.path(), &["--access-log", "-", "--stall-timeout", "1s"]);
    let addr: std::net::SocketAddr = node.http.trim_start_matches("http://").parse().unwrap();

    let mut cut = tokio::net::TcpStream::connect(addr).await.unwrap();
    cut.write_all(
        format!("POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100000\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    cut.write_all(&[b'x'; 1000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(cut);
    // An upload that stops arriving is cut after the stall timeout: 408.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(
            format!("POST /stalled HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100000\r\n\r\nten bytes!")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut answer))
        .await
        .expect("the stalled upload is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (answer, _) = exchange(
        addr,
        format!("GET /missing HTTP/1.1\r\nHost: {HOST}\r\nCache-Control: only-if-cached\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    // A last request, so the access log holds the two before it.
    let mut last = tokio::net::TcpStream::connect(addr).await.unwrap();
    last.write_all(
        format!("GET /last HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut sink = Vec::new();
    last.read_to_end(&mut sink).await.unwrap();
    let log = access_log_with(&node, &["/last"]).await;
    let status_of = |path: &str| log_line(&log, path);
    assert!(status_of("/upload").contains("\" 400 "), "{log}");
    assert!(status_of("/missing").contains("\" 504 "), "{log}");
    assert!(status_of("/stalled").contains("\" 408 "), "{log}");
    assert_eq!(node.stop(), Some(0));
    let stderr = node.stderr();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// A body of unknown length (the origin's, sent on chunked) that its client
/// stops reading is logged ` incomplete`, as a cut body of announced length
/// is; read to its end, it is not (it was logged complete either way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_answer_cut_by_its_client_is_logged_incomplete() {
    use tokio::io::AsyncReadExt;
    // 40 chunks of 64 KiB, one every 25 ms: more than the sockets hold.
    let (origin, _) = raw_origin(|mut stream: tokio::net::TcpStream| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = [b'c'; 64 * 1024];
        for _ in 0..40 {
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(&chunk);
            framed.extend_from_slice(b"\r\n");
            if stream.write_all(&framed).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sites")).unwrap();
    std::fs::write(
        dir.path().join("sites/h.toml"),
        format!("hosts = [\"{HOST}\"]\n[origin]\nurl = \"http://{origin}\"\n"),
    )
    .unwrap();
    let mut node = Binary::serve_dir_with(dir.path(), &["--access-log", "-"]);
    let addr: std::net::SocketAddr = node.http.trim_start_matches("http://").parse().unwrap();
    let request =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    // Read some of the body, then leave.
    let mut cut = tokio::net::TcpStream::connect(addr).await.unwrap();
    cut.write_all(request("/cut").as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while seen.len() < 100 * 1024 {
        let n = cut.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 200"), "{:?}", &seen[..20]);
    drop(cut);
    // Read to the end.
    let mut whole = tokio::net::TcpStream::connect(addr).await.unwrap();
    whole.write_all(request("/whole").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    whole.read_to_end(&mut answer).await.unwrap();
    assert!(answer.ends_with(b"\r\n0\r\n\r\n"), "not read to its end");
    let log = access_log_with(&node, &["/cut", "/whole"]).await;
    let line = |path: &str| log_line(&log, path);
    assert!(line("/cut").ends_with(" incomplete"), "{log}");
    assert!(line("/whole").contains("\" 200 2621440 "), "{log}");
    assert!(!line("/whole").ends_with(" incomplete"), "{log}");
    assert_eq!(node.stop(), Some(0));
}

/// A stored answer whose revalidation brings a new version that may not be
/// stored (`no-store`, `private`) is dropped: within stale-while-revalidate
/// the old one was served on, each request asking the origin in the
/// background and keeping nothing. A request's own `no-store` drops
/// nothing.
#[tokio::test]
async fn an_answer_whose_new_version_may_not_be_stored_is_dropped() {
    let version = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let served = version.clone();
    let origin = ScriptedOrigin::start(move |_: &Recorded| match served.load(Ordering::SeqCst) {
        1 => Reply::ok(
            "old",
            &[("cache-control", "max-age=1, stale-while-revalidate=600")],
        ),
        _ => Reply::ok("new", &[("cache-control", "no-store")]),
    })
    .await;
    let edge = edge_for(&origin, "");
    assert_eq!(get(&edge, "/p", &[]).await.2, "old");
    // A request's own no-store (with no-cache, to reach the origin) passes
    // the answer through and keeps the entry.
    version.store(2, Ordering::SeqCst);
    let (_, _, body) = get(&edge, "/p", &[("cache-control", "no-cache, no-store")]).await;
    assert_eq!(body, "new");
    version.store(1, Ordering::SeqCst);
    let (_, headers, body) = get(&edge, "/p", &[]).await;
    assert_eq!(
        (header(&headers, "cache-status"), body.as_str()),
        ("s3edge; hit", "old")
    );
    version.store(2, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, headers, body) = get(&edge, "/p", &[]).await;
    assert_eq!(
        (header(&headers, "cache-status"), body.as_str()),
        ("s3edge; hit; detail=stale-while-revalidate", "old")
    );
    let mut old = 0;
    loop {
        let body = get(&edge, "/p", &[]).await.2;
        if body == "new" {
            break;
        }
        old += 1;
        assert!(old < 50, "still the old answer after 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        assert_eq!(get(&edge, "/p", &[]).await.2, "new");
    }
}

#[tokio::test]
async fn unsafe_methods_pass_through_with_their_bodies_and_invalidate() {
    let origin = ScriptedOrigin::start(|r: &Recorded| match r.method.as_str() {
        "POST" => Reply::with_status(201, "created", &[("location", "/other")]),
        _ => Reply::ok(
            &format!("{} v{}", r.target, r.body_len),
            &[("cache-control", "max-age=60")],
        ),
    })
    .await;
    let edge = edge_for(&origin, "");
    get(&edge, "/p", &[]).await;
    get(&edge, "/other", &[]).await;
    get(&edge, "/p", &[]).await;
    assert_eq!(origin.count("/p"), 1);
    // A CORS preflight is safe (RFC 9110 9.2.1): it invalidates nothing.
    let preflight = edge
        .http
        .request(reqwest::Method::OPTIONS, edge.url("/p"))
        .header("host", HOST)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 200);
    get(&edge, "/p", &[]).await;
    assert_eq!(
        origin.count("/p"),
        2,
        "the OPTIONS, and still a hit after it"
    );
    let response = edge
        .http
        .post(edge.url("/p"))
        .header("host", HOST)
        .body("twelve bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.text().await.unwrap(), "created");
    let post = origin
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(post.body_len, 12);
    get(&edge, "/p", &[]).await;
    get(&edge, "/other", &[]).await;
    assert_eq!(origin.count("/p"), 4, "the POST and a new fill");
    assert_eq!(origin.count("/other"), 2, "Location invalidated too");
}

#[tokio::test]
async fn forwarded_fields_via_and_hop_by_hop_removal() {
    let origin = ScriptedOrigin::start(|_: &Recorded| {
        Reply::ok(
            "x",
            &[
                ("cache-control", "max-age=60"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("x-kept", "2"),
            ],
        )
    })
    .await;
    let edge = edge_for(&origin, "");
    // A client's own forwarding fields: not believed from a peer that is not
    // a trusted proxy.
    let claims = [
        ("x-forwarded-for", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6;proto=https"),
        ("x-forwarded-proto", "https"),
    ];
    let mut sent = vec![
        ("connection", "x-secret"),
        ("x-secret", "s"),
        ("x-end", "e"),
    ];
    sent.extend(claims);
    let (_, headers, _) = get(&edge, "/f", &sent).await;
    assert_eq!(header(&headers, "x-kept"), "2");
    assert!(
        headers.get("x-hop").is_none(),
        "named by the origin's Connection"
    );
    let seen = &origin.requests()[0];
    assert_eq!(seen.header("x-end"), Some("e"));
    assert_eq!(
        seen.header("x-secret"),
        None,
        "named by the client's Connection"
    );
    assert!(seen.header("via").unwrap_or("").contains("s3edge"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("forwarded"), None);
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("host"), Some(origin.addr.to_string().as_str()));
    // From a trusted proxy (a load balancer that ends TLS) they are believed
    // and extended.
    let trusted = EdgeBuilder::new()
        .site("h", &origin.site_toml(HOST, ""))
        .with(|o| o.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()])
        .start();
    get(&trusted, "/g", &claims).await;
    let seen = origin.requests().into_iter().last().unwrap();
    assert_eq!(seen.target, "/g");
    assert_eq!(seen.header("x-forwarded-for"), Some("6.6.6.6, 127.0.0.1"));
    assert_eq!(seen.header("forwarded"), Some("for=6.6.6.6;proto=https"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
}

#[tokio::test]
async fn a_site_file_cannot_mix_an_http_origin_with_bucket_fields_or_website_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.toml"),
        "hosts=[\"a\"]\n[origin]\nurl=\"http://127.0.0.1:1\"\nbucket=\"b\"\n[website]\nindex_document=\"index.html\"\n",
    )
    .unwrap();
    let problems = s3edge::config::load_sites(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        problems.contains("origin.bucket: cannot be combined with `origin.url`"),
        "{problems}"
    );
    assert!(
        problems.contains("website: cannot be used with an HTTP origin"),
        "{problems}"
    );
    std::fs::write(
        dir.path().join("x.toml"),
        "hosts=[\"a\"]\n[origin]\nurl=\"ftp://x\"\n",
    )
    .unwrap();
    let problems = s3edge::config::load_sites(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        problems.contains("origin.url: `ftp://x` is not an origin URL"),
        "{problems}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_requests_make_one_origin_request() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        Reply::ok(
            &format!("body of {}", r.target),
            &[("cache-control", "max-age=60")],
        )
        .after(Duration::from_millis(300))
    })
    .await;
    let edge = std::sync::Arc::new(edge_for(&origin, ""));
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let edge = edge.clone();
            tokio::spawn(async move { get(&edge, "/cold?x=1", &[]).await })
        })
        .collect();
    for client in clients {
        let (status, _, body) = client.await.unwrap();
        assert_eq!((status, body.as_str()), (200, "body of /cold?x=1"));
    }
    assert_eq!(origin.count("/cold?x=1"), 1);
}

/// Concurrent requests for an answer with `Vary` share one origin request
/// when they select the same stored answer: cold, and when the target's
/// names are known (an expiry); requests selecting another answer each
/// get their own (never the leader's). Mixed, each client gets its own
/// language.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_for_a_vary_answer_share_one_origin_request() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        let lang = r.header("accept-language").unwrap_or("-").to_string();
        Reply::ok(
            &format!("{} in {lang}", r.target),
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        )
        .after(Duration::from_millis(300))
    })
    .await;
    let edge = std::sync::Arc::new(edge_for(&origin, ""));
    let burst = |path: &'static str, langs: Vec<&'static str>| {
        let edge = edge.clone();
        async move {
            let clients: Vec<_> = langs
                .into_iter()
                .map(|lang| {
                    let edge = edge.clone();
                    tokio::spawn(async move {
                        let (status, _, body) =
                            get(&edge, path, &[("accept-language", lang)]).await;
                        assert_eq!((status, body), (200, format!("{path} in {lang}")));
                    })
                })
                .collect();
            for client in clients {
                client.await.unwrap();
            }
        }
    };
    burst("/cold", vec!["en"; 20]).await;
    assert_eq!(origin.count("/cold"), 1, "cold, one selection");
    get(&edge, "/known", &[("accept-language", "en")]).await;
    burst("/known", vec!["fr"; 20]).await;
    assert_eq!(origin.count("/known"), 2, "names known, a new selection");
    burst("/mixed", [vec!["en"; 10], vec!["de"; 10]].concat()).await;
    assert!(origin.count("/mixed") <= 11, "{}", origin.count("/mixed"));
}

/// A POST invalidates behind the purge barrier: once its answer has
/// arrived, no request gets the version before it, however many fills of
/// the old version are in flight from a slow origin. Raced 60 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unsafe_method_s_invalidation_is_a_barrier_under_load() {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::sync::Arc;
    let version = Arc::new(AtomicU64::new(0));
    let seen_version = version.clone();
    let origin = ScriptedOrigin::start(move |r: &Recorded| {
        if r.method == "POST" {
            let now = seen_version.fetch_add(1, Ordering::SeqCst) + 1;
            return Reply::ok(&now.to_string(), &[]);
        }
        let now = seen_version.load(Ordering::SeqCst);
        Reply::ok(&now.to_string(), &[("cache-control", "max-age=600")])
            .after(Duration::from_millis(15))
    })
    .await;
    let edge = Arc::new(edge_for(&origin, ""));
    for round in 0..60u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (edge, stop) = (edge.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        get(&edge, "/item", &[]).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let response = edge
            .http
            .post(edge.url("/item"))
            .header("host", HOST)
            .send()
            .await
            .unwrap();
        let written: u64 = response.text().await.unwrap().parse().unwrap();
        assert_eq!(written, round + 1);
        // Every read that starts now sees the POST's version or a later one.
        let after: Vec<_> = (0..8)
            .map(|_| {
                let edge = edge.clone();
                tokio::spawn(async move { get(&edge, "/item", &[]).await.2 })
            })
            .collect();
        for read in after {
            let body: u64 = read.await.unwrap().parse().unwrap();
            assert!(
                body >= written,
                "round {round}: read {body} after the POST wrote {written}"
            );
        }
        stop.store(true, Ordering::SeqCst);
        for reader in readers {
            reader.await.unwrap();
        }
    }
}

/// 206 answers are stored as parts, reused for ranges inside them, and
/// combined into the whole representation once they cover it.
#[tokio::test]
async fn stored_parts_serve_ranges_and_combine_into_the_whole() {
    const DATA: &str = "0123456789";
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        let headers = [("cache-control", "max-age=60"), ("etag", "\"e1\"")];
        let Some(spec) = r.header("range") else {
            return Reply::ok(DATA, &headers);
        };
        let (a, b) = spec.trim_start_matches("bytes=").split_once('-').unwrap();
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        let range = format!("bytes {a}-{b}/{}", DATA.len());
        let mut reply = Reply::with_status(206, &DATA[a..=b], &headers);
        reply.headers.push(("content-range".into(), range));
        reply
    })
    .await;
    let edge = edge_for(&origin, "");
    let ranged = |spec: &'static str| {
        let edge = &edge;
        async move {
            let (status, headers, body) = get(edge, "/r.bin", &[("range", spec)]).await;
            (status, header(&headers, "content-range").to_string(), body)
        }
    };
    assert_eq!(
        ranged("bytes=0-4").await,
        (206, "bytes 0-4/10".into(), "01234".into())
    );
    assert_eq!(
        ranged("bytes=1-3").await,
        (206, "bytes 1-3/10".into(), "123".into())
    );
    assert_eq!(
        origin.count("/r.bin"),
        1,
        "the second range came from the stored part"
    );
    assert_eq!(
        ranged("bytes=5-9").await,
        (206, "bytes 5-9/10".into(), "56789".into())
    );
    assert_eq!(origin.count("/r.bin"), 2);
    let (status, _, body) = get(&edge, "/r.bin", &[]).await;
    assert_eq!((status, body.as_str()), (200, DATA));
    assert_eq!(
        origin.count("/r.bin"),
        2,
        "the whole was combined from the parts"
    );
    assert!(origin
        .requests()
        .iter()
        .all(|r| r.header("range").is_some()));
}

/// A client resuming a download of a version the origin no longer has
/// (`If-Range` names it) gets the whole current version with 200, never a
/// range of it (RFC 9110 13.1.5): not from the origin's 206 when nothing is
/// stored, not from a stored part, not from the stored whole; and one that
/// names the current version gets its range.
#[tokio::test]
async fn a_range_whose_if_range_names_another_version_gets_the_whole_representation() {
    const DATA: &str = "0123456789ABCDEFGHIJ";
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        let headers = [("cache-control", "max-age=60"), ("etag", "\"v2\"")];
        let Some(spec) = r.header("range") else {
            return Reply::ok(DATA, &headers);
        };
        // A range server that knows nothing of If-Range.
        let a: usize = spec
            .trim_start_matches("bytes=")
            .trim_end_matches('-')
            .parse()
            .unwrap();
        let range = format!("bytes {a}-{}/{}", DATA.len() - 1, DATA.len());
        let mut reply = Reply::with_status(206, &DATA[a..], &headers);
        reply.headers.push(("content-range".into(), range));
        reply
    })
    .await;
    let edge = edge_for(&origin, "");
    let resume = |path: &'static str, version: &'static str| {
        let edge = &edge;
        async move {
            let headers = [("range", "bytes=10-"), ("if-range", version)];
            let (status, headers, body) = get(edge, path, &headers).await;
            (status, header(&headers, "content-range").to_string(), body)
        }
    };
    let whole = (200, String::new(), DATA.to_string());
    let tail = (206, "bytes 10-19/20".to_string(), "ABCDEFGHIJ".to_string());
    // Nothing stored.
    assert_eq!(resume("/a.bin", "\"v1\"").await, whole, "nothing stored");
    assert_eq!(resume("/a.bin", "\"v1\"").await, whole, "the whole stored");
    assert_eq!(
        resume("/a.bin", "\"v2\"").await,
        tail,
        "the current version"
    );
    // A stored part of the current version.
    assert_eq!(get(&edge, "/b.bin", &[("range", "bytes=10-")]).await.0, 206);
    let before = origin.count("/b.bin");
    assert_eq!(resume("/b.bin", "\"v2\"").await, tail, "from the part");
    assert_eq!(origin.count("/b.bin"), before, "the part answered it");
    assert_eq!(resume("/b.bin", "\"v1\"").await, whole, "not from the part");
}

#[tokio::test]
async fn purge_names_targets_as_clients_send_them() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        Reply::ok(
            &format!("body of {}", r.target),
            &[("cache-control", "max-age=60"), ("vary", "accept-language")],
        )
    })
    .await;
    let edge = edge_for(&origin, "");
    let purge = |body: &'static str| {
        let request = edge
            .http
            .post(edge.admin_url("/purge"))
            .header("content-type", "application/json")
            .body(body);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    for path in ["/a?x=1", "/a?x=2", "/b/c"] {
        get(&edge, path, &[("accept-language", "en")]).await;
        get(&edge, path, &[("accept-language", "fr")]).await;
    }
    let purged = purge(r#"{"site": "h", "paths": ["/a?x=1"]}"#).await;
    assert!(
        purged.contains("\"purged\":2"),
        "both Vary selections: {purged}"
    );
    let purged = purge(r#"{"site": "h", "prefixes": ["/b/"]}"#).await;
    assert!(purged.contains("\"purged\":2"), "{purged}");
    for path in ["/a?x=1", "/a?x=2", "/b/c"] {
        get(&edge, path, &[("accept-language", "en")]).await;
    }
    assert_eq!(
        (
            origin.count("/a?x=1"),
            origin.count("/a?x=2"),
            origin.count("/b/c")
        ),
        (3, 2, 3)
    );
}

/// An origin that breaks the protocol gives a clear 502 or 504 and nothing
/// is stored: the next request goes to the origin again.
#[tokio::test]
async fn bad_answers_give_502_or_504_and_store_nothing() {
    type Case = (&'static str, &'static [u8], bool, u16);
    let cases: &[Case] = &[
        ("garbage", b"this is not HTTP\r\n\r\n", false, 502),
        (
            "a body shorter than its Content-Length",
            b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 100\r\n\r\nonly this",
            false,
            200,
        ),
        (
            "headers that never end",
            b"HTTP/1.1 200 OK\r\nx-a: 1\r\n",
            true,
            504,
        ),
        (
            "a storm of 1xx",
            b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n",
            true,
            504,
        ),
    ];
    for &(name, bytes, hold, expected) in cases {
        let repeat = name.contains("1xx");
        let (addr, connections) = raw_origin(move |mut stream: tokio::net::TcpStream| async move {
            loop {
                if stream.write_all(bytes).await.is_err() {
                    return;
                }
                if !repeat {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if hold {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        })
        .await;
        let site =
            format!("hosts = [\"{HOST}\"]\n[origin]\nurl = \"http://{addr}\"\ntimeout = \"1s\"\n");
        let edge = EdgeBuilder::new().site("h", &site).start();
        let started = std::time::Instant::now();
        let response = edge.request(reqwest::Method::GET, HOST, "/x", &[]).await;
        let status = response.status().as_u16();
        let body = response.bytes().await;
        assert_eq!(status, expected, "{name}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name}: answered within the timeout"
        );
        if status == 200 {
            assert!(
                body.is_err() || body.unwrap().len() < 100,
                "{name}: never presented as complete"
            );
        }
        let _ = edge.request(reqwest::Method::GET, HOST, "/x", &[]).await;
        assert_eq!(
            connections.load(Ordering::SeqCst),
            2,
            "{name}: nothing stored"
        );
    }
}

/// A 1 GiB upload streams through to the origin without growing memory.
#[tokio::test]
async fn a_1_gib_upload_streams_through_without_growing_memory() {
    let origin =
        ScriptedOrigin::start(|r: &Recorded| Reply::ok(&r.body_len.to_string(), &[])).await;
    let edge = edge_for(&origin, "");
    let rss_before = rss_mib();
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 1024;
    let chunk = bytes::Bytes::from(vec![7u8; CHUNK]);
    let stream = futures_util::stream::iter(
        (0..CHUNKS).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let response = edge
        .http
        .put(edge.url("/upload"))
        .header("host", HOST)
        .timeout(Duration::from_secs(600))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), (CHUNK * CHUNKS).to_string());
    let grown = rss_mib().saturating_sub(rss_before);
    assert!(grown <= 64, "RSS grew by {grown} MiB");
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// An HTTP origin has no sidecars: what it answers at `/app.css.gz` (its
/// 404 page, as a status of its own rather than an error, or a catch-all
/// page with a 200) is never sent as the variant, and it is not asked.
#[tokio::test]
async fn a_variant_is_never_made_from_what_an_http_origin_answers_elsewhere() {
    let css: String = (0..300)
        .map(|i| format!(".rule-{i} {{ margin: {i}px; }}\n"))
        .collect();
    for other in [404, 200] {
        let page = css.clone();
        let origin = ScriptedOrigin::start(move |r: &Recorded| match r.target.as_str() {
            "/app.css" => Reply::ok(
                &page,
                &[
                    ("cache-control", "max-age=60"),
                    ("content-type", "text/css"),
                    ("etag", "\"v1\""),
                ],
            ),
            _ => Reply::with_status(
                other,
                "<html>the single-page app, or no such page</html>",
                &[
                    ("cache-control", "max-age=60"),
                    ("content-type", "text/html"),
                ],
            ),
        })
        .await;
        let edge = edge_for(&origin, "");
        for coding in ["gzip", "br", "gzip"] {
            let response = edge
                .request(
                    reqwest::Method::GET,
                    HOST,
                    "/app.css",
                    &[("accept-encoding", coding)],
                )
                .await;
            assert_eq!(response.status(), 200);
            assert_eq!(header(response.headers(), "content-encoding"), coding);
            let body = response.bytes().await.unwrap();
            let decoded = decoded(coding, &body);
            assert!(
                decoded == css.as_bytes(),
                "{other}: the stylesheet, {coding}"
            );
        }
        let asked: Vec<String> = origin.requests().into_iter().map(|r| r.target).collect();
        assert_eq!(asked, ["/app.css"], "{other}: only the object itself");
    }
}

/// The stylesheet the variant tests compress, and its gzip decoded.
fn stylesheet() -> String {
    (0..300)
        .map(|i| format!(".rule-{i} {{ padding: {i}px; }}\n"))
        .collect()
}

/// A 304 that refreshes the stored identity refreshes its stored variants
/// too (RFC 9111 section 4.3.4): their next answers carry the fields the
/// 304 brought and an `Age` counted from it, whether the identity was
/// revalidated by a compressed request or by an uncompressed one.
#[tokio::test]
async fn a_304_refreshes_the_compressed_variants_as_well() {
    let css = stylesheet();
    let page = css.clone();
    let origin = ScriptedOrigin::start(move |r: &Recorded| {
        if r.header("if-none-match") == Some("\"v1\"") {
            return Reply::with_status(
                304,
                "",
                &[
                    ("cache-control", "max-age=100"),
                    ("x-rev", "2"),
                    ("etag", "\"v1\""),
                ],
            );
        }
        Reply::ok(
            &page,
            &[
                ("cache-control", "max-age=1"),
                ("content-type", "text/css"),
                ("etag", "\"v1\""),
                ("x-rev", "1"),
            ],
        )
    })
    .await;
    let edge = edge_for(&origin, "");
    for (round, revalidate_with) in [(1, Some("gzip")), (2, None)] {
        let path = format!("/r{round}.css");
        for _ in 0..2 {
            let (_, headers, _) = get(&edge, &path, &[("accept-encoding", "gzip")]).await;
            assert_eq!(header(&headers, "x-rev"), "1");
        }
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let mut accept = vec![];
        accept.extend(revalidate_with.map(|coding| ("accept-encoding", coding)));
        let (_, headers, _) = get(&edge, &path, &accept).await;
        assert_eq!(header(&headers, "x-rev"), "2", "round {round}: revalidated");
        for _ in 0..2 {
            let response = edge
                .request(
                    reqwest::Method::GET,
                    HOST,
                    &path,
                    &[("accept-encoding", "gzip")],
                )
                .await;
            let headers = response.headers().clone();
            assert_eq!(header(&headers, "content-encoding"), "gzip");
            assert_eq!(header(&headers, "x-rev"), "2", "round {round}: {headers:?}");
            assert_eq!(header(&headers, "cache-control"), "max-age=100");
            let age: u64 = header(&headers, "age").parse().unwrap_or(0);
            assert!(age <= 1, "round {round}: age {age} after a refresh");
            let body = response.bytes().await.unwrap();
            assert!(common::gunzip(&body) == css.as_bytes());
        }
    }
}

/// The answer to a request with `Authorization` that its origin does not
/// allow a shared cache to store is compressed for that request alone: the
/// next client, without credentials, never gets it.
#[tokio::test]
async fn a_variant_of_an_answer_to_credentials_is_never_shared() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        let user = r.header("authorization").unwrap_or("nobody").to_string();
        let page: String = (0..300).map(|i| format!("<p>{user} {i}</p>\n")).collect();
        Reply::ok(
            &page,
            &[
                ("cache-control", "max-age=60"),
                ("content-type", "text/html"),
                ("etag", "\"same\""),
            ],
        )
    })
    .await;
    let edge = edge_for(&origin, "");
    let alice = [("accept-encoding", "gzip"), ("authorization", "alice")];
    let response = edge
        .request(reqwest::Method::GET, HOST, "/me", &alice)
        .await;
    assert_eq!(header(response.headers(), "content-encoding"), "gzip");
    let body = common::gunzip(&response.bytes().await.unwrap());
    assert!(String::from_utf8(body).unwrap().contains("alice"));
    for _ in 0..2 {
        let response = edge
            .request(
                reqwest::Method::GET,
                HOST,
                "/me",
                &[("accept-encoding", "gzip")],
            )
            .await;
        let body = common::gunzip(&response.bytes().await.unwrap());
        let text = String::from_utf8(body).unwrap();
        assert!(
            !text.contains("alice"),
            "alice's page went to another client"
        );
        assert!(text.contains("nobody"));
    }
}

/// An origin that ignores `Range` answers a range with the whole 200: that
/// is the representation, stored as any miss's answer, so later ranges are
/// cut from the cache instead of downloading it all again.
#[tokio::test]
async fn a_200_to_a_range_is_stored_and_later_ranges_come_from_it() {
    let body: String = (0..100).map(|i| format!("{i:03}")).collect();
    let origin = fresh_for_a_minute(body.clone(), "text/plain").await;
    let edge = edge_for(&origin, "");
    for (range, expected) in [
        ("bytes=0-9", "s3edge; fwd=miss; stored"),
        ("bytes=10-19", "s3edge; hit"),
        ("bytes=-6", "s3edge; hit"),
    ] {
        let (status, headers, text) = get(&edge, "/ignores-range", &[("range", range)]).await;
        assert_eq!(status, 206, "{range}");
        assert_eq!(header(&headers, "cache-status"), expected, "{range}");
        let cut = match range {
            "bytes=0-9" => &body[0..10],
            "bytes=10-19" => &body[10..20],
            _ => &body[body.len() - 6..],
        };
        assert_eq!(text, cut, "{range}");
    }
    assert_eq!(origin.count("/ignores-range"), 1);
}

/// A redirect the origin builds from its own address (nginx's `/dir` to
/// `/dir/`, asked with the origin's `Host`) names the site as the client
/// asked for it; a redirect elsewhere is left alone, and so is a POST's.
#[tokio::test]
async fn redirects_to_the_origin_s_own_address_name_the_site_instead() {
    let origin = ScriptedOrigin::start(|_: &Recorded| Reply::ok("", &[])).await;
    let own = format!("http://{}", origin.addr);
    origin.script(move |r: &Recorded| {
        let location = match r.target.as_str() {
            "/dir" => format!("{own}/dir/"),
            "/form" => format!("{own}/done?id=7"),
            _ => "http://elsewhere.example/x".to_string(),
        };
        Reply::with_status(
            if r.method == "POST" { 303 } else { 301 },
            "",
            &[
                ("location", location.as_str()),
                ("cache-control", "max-age=60"),
            ],
        )
    });
    let edge = edge_for(&origin, "");
    for _ in 0..2 {
        let (status, headers, _) = get(&edge, "/dir", &[]).await;
        assert_eq!(status, 301);
        assert_eq!(header(&headers, "location"), "http://h.test/dir/");
    }
    let (_, headers, _) = get(&edge, "/away", &[]).await;
    assert_eq!(header(&headers, "location"), "http://elsewhere.example/x");
    let posted = edge
        .request(reqwest::Method::POST, HOST, "/form", &[])
        .await;
    assert_eq!(posted.status(), 303);
    assert_eq!(
        header(posted.headers(), "location"),
        "http://h.test/done?id=7"
    );
}

/// An answer that varies by `Accept-Encoding` alone and comes uncoded
/// (nginx's `gzip_vary` with `gzip_proxied` off: it never compresses for a
/// proxy but still says `Vary`) is compressed like any other.
#[tokio::test]
async fn an_answer_varying_by_accept_encoding_alone_is_compressed() {
    let css = stylesheet();
    let page = css.clone();
    let origin = ScriptedOrigin::start(move |_: &Recorded| {
        Reply::ok(
            &page,
            &[
                ("cache-control", "max-age=60"),
                ("content-type", "text/css"),
                ("etag", "\"v1\""),
                ("vary", "Accept-Encoding"),
            ],
        )
    })
    .await;
    let edge = edge_for(&origin, "");
    for _ in 0..2 {
        let response = edge
            .request(
                reqwest::Method::GET,
                HOST,
                "/gv.css",
                &[("accept-encoding", "gzip")],
            )
            .await;
        assert_eq!(header(response.headers(), "content-encoding"), "gzip");
        assert_eq!(header(response.headers(), "vary"), "Accept-Encoding");
        let body = response.bytes().await.unwrap();
        assert!(common::gunzip(&body) == css.as_bytes());
    }
    let (_, headers, body) = get(&edge, "/gv.css", &[]).await;
    assert_eq!(header(&headers, "content-encoding"), "");
    assert_eq!(body, css);
}

/// A body without `Content-Length` that may not be stored, or an event
/// stream, goes to the client as it comes: each server-sent event arrives
/// when the origin sends it, not when the stream ends.
#[tokio::test]
async fn an_event_stream_without_a_length_reaches_the_client_as_it_comes() {
    for (content_type, cache_control) in [
        ("text/event-stream", "no-cache"),
        ("text/plain", "no-store"),
    ] {
        let (addr, _) = raw_origin(move |mut stream: tokio::net::TcpStream| async move {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncache-control: {cache_control}\r\ntransfer-encoding: chunked\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for i in 0..3 {
                let event = format!("data: {i}\n\n");
                let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        })
        .await;
        let site =
            format!("hosts = [\"{HOST}\"]\n[origin]\nurl = \"http://{addr}\"\ntimeout = \"5s\"\n");
        let edge = EdgeBuilder::new().site("h", &site).start();
        let started = std::time::Instant::now();
        let mut response = edge
            .request(reqwest::Method::GET, HOST, "/events", &[])
            .await;
        assert_eq!(response.status(), 200, "{content_type}");
        let first = response.chunk().await.unwrap().unwrap();
        assert!(first.starts_with(b"data: 0"), "{content_type}: {first:?}");
        assert!(
            started.elapsed() < Duration::from_millis(700),
            "{content_type}: the first event took {:?}",
            started.elapsed()
        );
        let mut rest = first.to_vec();
        while let Some(chunk) = response.chunk().await.unwrap() {
            rest.extend_from_slice(&chunk);
        }
        assert_eq!(rest, b"data: 0\n\ndata: 1\n\ndata: 2\n\n", "{content_type}");
    }
}

/// An answer without a known length went to an HTTP/1.0 client with
/// `Transfer-Encoding: chunked`, which HTTP/1.0 does not know: the chunk
/// sizes ended up in its body. A server must not send Transfer-Encoding
/// unless the request is HTTP/1.1 (RFC 9112 6.1): the body now ends with the
/// connection (RFC 9112 6.3), which the node closes after it, even when the
/// client asked to keep it alive. An HTTP/1.1 client still gets it chunked.
#[tokio::test]
async fn an_answer_without_a_length_reaches_an_http_1_0_client_whole_and_unchunked() {
    let (addr, _) = raw_origin(|mut stream: tokio::net::TcpStream| async move {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncache-control: no-store\r\ntransfer-encoding: chunked\r\n\r\n";
        let _ = stream.write_all(head.as_bytes()).await;
        for part in ["first part, ", "second part"] {
            let chunk = format!("{:x}\r\n{part}\r\n", part.len());
            let _ = stream.write_all(chunk.as_bytes()).await;
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    })
    .await;
    let site =
        format!("hosts = [\"{HOST}\"]\n[origin]\nurl = \"http://{addr}\"\ntimeout = \"5s\"\n");
    let edge = EdgeBuilder::new().site("h", &site).start();
    let node = edge.node.http_addrs[0];
    for connection in ["", "Connection: keep-alive\r\n"] {
        let (answer, closed) = exchange(
            node,
            format!("GET /plain HTTP/1.0\r\nHost: {HOST}\r\n{connection}\r\n"),
        )
        .await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("http/1.0 200"), "{connection:?}: {head}");
        assert!(
            !head.contains("transfer-encoding"),
            "{connection:?}: {head}"
        );
        assert!(!head.contains("keep-alive"), "{connection:?}: {head}");
        assert_eq!(body, "first part, second part", "{connection:?}");
        assert!(
            closed,
            "{connection:?}: the connection stays open after {answer:?}"
        );
    }
    let (answer, _) = exchange(
        node,
        format!("GET /plain HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{answer}"
    );
}

/// HEAD of an answer other than 200 whose GET has no length (a 404 page
/// sent chunked) had `Content-Length: 0`, which is not what GET would send
/// (RFC 9110 9.3.2): it now has neither a length nor a body, as a 200's HEAD.
#[tokio::test]
async fn head_of_an_unsized_404_has_no_content_length() {
    let (addr, _) = raw_origin(|mut stream: tokio::net::TcpStream| async move {
        let head = "HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\ncache-control: no-store\r\ntransfer-encoding: chunked\r\n\r\n";
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(b"9\r\nnot here.\r\n0\r\n\r\n").await;
    })
    .await;
    let site =
        format!("hosts = [\"{HOST}\"]\n[origin]\nurl = \"http://{addr}\"\ntimeout = \"5s\"\n");
    let edge = EdgeBuilder::new().site("h", &site).start();
    let node = edge.node.http_addrs[0];
    let ask = |method: &str| {
        format!("{method} /gone HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")
    };
    let (get, _) = exchange(node, ask("GET")).await;
    let get = get.to_ascii_lowercase();
    assert!(get.starts_with("http/1.1 404"), "{get}");
    assert!(get.contains("transfer-encoding: chunked"), "{get}");
    let (head, closed) = exchange(node, ask("HEAD")).await;
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head}");
    assert!(closed, "{head}");
}

/// An answer without an ETag (as many application servers send) is
/// compressed for each answer: no stored variant can be bound to it, but
/// the client still gets it compressed, from the cached identity.
#[tokio::test]
async fn an_answer_without_an_etag_is_compressed_for_each_client() {
    let css = stylesheet();
    let origin = fresh_for_a_minute(css.clone(), "text/css").await;
    let edge = edge_for(&origin, "");
    for (coding, cache_status) in [
        ("gzip", "s3edge; fwd=miss; stored"),
        ("br", "s3edge; hit"),
        ("gzip", "s3edge; hit"),
    ] {
        let response = edge
            .request(
                reqwest::Method::GET,
                HOST,
                "/noetag.css",
                &[("accept-encoding", coding)],
            )
            .await;
        let headers = response.headers().clone();
        assert_eq!(header(&headers, "content-encoding"), coding);
        assert_eq!(header(&headers, "cache-status"), cache_status, "{coding}");
        assert_eq!(header(&headers, "etag"), "", "no validator to give");
        let body = response.bytes().await.unwrap();
        let decoded = decoded(coding, &body);
        assert!(decoded == css.as_bytes(), "{coding}");
    }
    assert_eq!(origin.count("/noetag.css"), 1);
}

/// A storable body without `Content-Length` longer than what is gathered to
/// be stored (8 MiB) goes on as it comes, unstored: it was gathered whole
/// (64 MiB of memory per request, eight slow clients took 518 MiB) and one
/// over 64 MiB was a 502.
#[tokio::test]
async fn a_long_body_without_a_length_streams_unstored_instead_of_being_gathered() {
    const MIB: usize = 1024 * 1024;
    const CHUNKS: usize = 70;
    let (addr, _) = raw_origin(|mut stream: tokio::net::TcpStream| async move {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncache-control: max-age=60\r\ntransfer-encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = [format!("{MIB:x}\r\n").into_bytes(), vec![b'x'; MIB], b"\r\n".to_vec()].concat();
        for i in 0..CHUNKS {
            if i == 10 {
                // A pause well past the first bytes' way to the client.
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            if stream.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    })
    .await;
    let site =
        format!("hosts = [\"{HOST}\"]\n[origin]\nurl = \"http://{addr}\"\ntimeout = \"20s\"\n");
    let edge = EdgeBuilder::new().site("h", &site).start();
    for round in 0..2 {
        let started = std::time::Instant::now();
        let mut response = edge
            .request(reqwest::Method::GET, HOST, "/long.bin", &[])
            .await;
        assert_eq!(response.status(), 200, "round {round}");
        assert!(
            !header(response.headers(), "cache-status").contains("stored"),
            "{:?}",
            response.headers()
        );
        let first = response.chunk().await.unwrap().unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(1400),
            "round {round}: the first bytes took {:?}",
            started.elapsed()
        );
        let mut total = first.len();
        while let Some(chunk) = response.chunk().await.unwrap() {
            assert!(chunk.iter().all(|b| *b == b'x'));
            total += chunk.len();
        }
        assert_eq!(total, CHUNKS * MIB, "round {round}");
    }
}

/// Requests that wait for another's fetch share its answer only when it may
/// be reused without validation (RFC 9111 section 4): an app's page with no
/// freshness (no Cache-Control, no Last-Modified), `no-cache` or `max-age=0`
/// is the requester's alone. Concurrent requests with different cookies got
/// the first one's page; each now gets its own, while a fresh answer is
/// still fetched once for all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_requests_never_share_an_answer_fresh_for_no_time() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        let user = r.header("cookie").unwrap_or("nobody").to_string();
        let mut headers = Vec::new();
        match r.target.as_str() {
            "/no-cache" => headers.push(("cache-control", "no-cache")),
            "/zero" => headers.push(("cache-control", "max-age=0, must-revalidate")),
            "/fresh" => headers.push(("cache-control", "public, max-age=60")),
            _ => {}
        }
        Reply::ok(&format!("page of {user}"), &headers).after(Duration::from_millis(400))
    })
    .await;
    let edge = std::sync::Arc::new(edge_for(&origin, ""));
    for target in ["/app", "/no-cache", "/zero"] {
        for round in 0..3 {
            let clients: Vec<_> = (0..4)
                .map(|i| {
                    let edge = edge.clone();
                    let cookie = format!("sid={target}-{round}-{i}");
                    tokio::spawn(async move {
                        let answer = get(&edge, target, &[("cookie", &cookie)]).await;
                        (cookie, answer)
                    })
                })
                .collect();
            for client in clients {
                let (cookie, (status, headers, body)) = client.await.unwrap();
                assert_eq!(
                    (status, body.as_str()),
                    (200, format!("page of {cookie}").as_str()),
                    "{target}: {:?}",
                    headers.get("cache-status")
                );
            }
        }
    }
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let edge = edge.clone();
            tokio::spawn(async move { get(&edge, "/fresh", &[]).await })
        })
        .collect();
    for client in clients {
        assert_eq!(client.await.unwrap().2, "page of nobody");
    }
    assert_eq!(origin.count("/fresh"), 1, "a fresh answer is still shared");
}

/// An answer that sets a cookie is not stored (nginx's proxy_cache, Varnish
/// and Fastly store none either): replayed from the cache, the first
/// visitor's session cookie went to every visitor. An origin that names the
/// field (`no-cache="Set-Cookie"`) has the answer stored without it. And
/// `proxy-revalidate` does not let an answer to an `Authorization` request
/// be stored (RFC 9111 3.5): one user's page went to another.
#[tokio::test]
async fn answers_setting_cookies_or_to_credentials_are_not_shared() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let served = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let origin = ScriptedOrigin::start(move |r: &Recorded| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let cookie = format!("sid={n}");
        match r.target.as_str() {
            "/login" => Reply::ok(
                "welcome",
                &[
                    ("cache-control", "public, max-age=60"),
                    ("set-cookie", &cookie),
                ],
            ),
            "/named" => Reply::ok(
                "welcome",
                &[
                    ("cache-control", "max-age=60, no-cache=\"Set-Cookie\""),
                    ("set-cookie", &cookie),
                ],
            ),
            _ => Reply::ok(
                &format!("page for {}", r.header("authorization").unwrap_or("-")),
                &[("cache-control", "max-age=60, proxy-revalidate")],
            ),
        }
    })
    .await;
    let edge = edge_for(&origin, "");
    let first = get(&edge, "/login", &[]).await;
    let second = get(&edge, "/login", &[]).await;
    assert_ne!(
        header(&first.1, "set-cookie"),
        header(&second.1, "set-cookie"),
        "one visitor's cookie went to another"
    );
    assert_eq!(origin.count("/login"), 2);

    let first = get(&edge, "/named", &[]).await;
    assert!(header(&first.1, "set-cookie").starts_with("sid="));
    let second = get(&edge, "/named", &[]).await;
    assert_eq!(header(&second.1, "cache-status"), "s3edge; hit");
    assert_eq!(header(&second.1, "set-cookie"), "");
    assert_eq!(origin.count("/named"), 1);

    let alice = get(&edge, "/account", &[("authorization", "Bearer alice")]).await;
    let bob = get(&edge, "/account", &[("authorization", "Bearer bob")]).await;
    assert_eq!(alice.2, "page for Bearer alice");
    assert_eq!(bob.2, "page for Bearer bob");
}

/// Fields with raw UTF-8 in their values (obs-text, RFC 9110 5.5: passed on
/// as opaque) reach the client byte for byte: a `Content-Disposition` file
/// name, a redirect's `Location` (also one naming the origin, rewritten), a
/// `Set-Cookie`; and so do the cached answers served again.
#[tokio::test]
async fn answer_fields_with_utf8_bytes_reach_the_client_unchanged() {
    const DISPOSITION: &str = "attachment; filename=\"r\u{e9}sum\u{e9}.pdf\"";
    const LOCATION: &str = "/caf\u{e9}/men\u{fc}";
    const COOKIE: &str = "name=J\u{fc}rgen; Path=/";
    let origin = ScriptedOrigin::start(|_: &Recorded| Reply::ok("", &[])).await;
    let own = format!("http://{}", origin.addr);
    origin.script(move |r: &Recorded| match r.target.as_str() {
        "/file" => Reply::ok(
            "pdf",
            &[
                ("cache-control", "max-age=60"),
                ("content-disposition", DISPOSITION),
            ],
        ),
        "/moved" => Reply::with_status(
            302,
            "",
            &[("cache-control", "max-age=60"), ("location", LOCATION)],
        ),
        "/own" => Reply::with_status(
            302,
            "",
            &[
                ("cache-control", "max-age=60"),
                ("location", &format!("{own}{LOCATION}")),
            ],
        ),
        _ => Reply::ok("", &[("cache-control", "no-store"), ("set-cookie", COOKIE)]),
    });
    let edge = edge_for(&origin, "");
    let bytes = |headers: &reqwest::header::HeaderMap, name: &str| {
        headers.get(name).map_or(String::new(), |v| {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        })
    };
    let absolute = format!("http://{HOST}{LOCATION}");
    for (target, name, expected) in [
        ("/file", "content-disposition", DISPOSITION),
        ("/moved", "location", LOCATION),
        ("/own", "location", absolute.as_str()),
    ] {
        for round in 1..=2 {
            let (_, headers, _) = get(&edge, target, &[]).await;
            assert_eq!(
                bytes(&headers, name),
                expected,
                "{name} of {target}, request {round}"
            );
            if round == 2 {
                assert_eq!(header(&headers, "cache-status"), "s3edge; hit", "{target}");
            }
        }
        assert_eq!(origin.count(target), 1, "{target}");
    }
    let (_, headers, _) = get(&edge, "/cookie", &[]).await;
    assert_eq!(bytes(&headers, "set-cookie"), COOKIE);
}

/// A client's `Cookie` with raw UTF-8 (as browsers send a cookie set so)
/// reaches the origin byte for byte, on a read through the cache and on a
/// POST passed through; an answer that varies by it is not another
/// visitor's.
#[tokio::test]
async fn a_client_s_cookie_with_utf8_bytes_reaches_the_origin_unchanged() {
    const COOKIE: &str = "lang=fran\u{e7}ais; sid=abc";
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        Reply::ok(
            &format!("page for {}", r.header("cookie").unwrap_or("-")),
            &[("cache-control", "max-age=60"), ("vary", "Cookie")],
        )
    })
    .await;
    let edge = edge_for(&origin, "");
    let cookie = reqwest::header::HeaderValue::from_bytes(COOKIE.as_bytes()).unwrap();
    let response = edge
        .http
        .get(edge.url("/page"))
        .header("host", HOST)
        .header("cookie", cookie.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(response.text().await.unwrap(), format!("page for {COOKIE}"));
    let (_, _, anonymous) = get(&edge, "/page", &[]).await;
    assert_eq!(
        anonymous, "page for -",
        "one visitor's page went to another"
    );
    let posted = edge
        .http
        .post(edge.url("/form"))
        .header("host", HOST)
        .header("cookie", cookie)
        .send()
        .await
        .expect("request");
    assert_eq!(posted.text().await.unwrap(), format!("page for {COOKIE}"));
    let cookies: Vec<_> = origin
        .requests()
        .iter()
        .map(|r| r.header("cookie").map(str::to_string))
        .collect();
    assert_eq!(
        cookies,
        [Some(COOKIE.to_string()), None, Some(COOKIE.to_string())]
    );
}

/// A POST's redirect built from the origin's own address (what an
/// application asked with the origin's `Host` sends: `Location:
/// http://ORIGIN/item`), under the origin's base path if it has one,
/// invalidates the target it names on this site, as a relative one does;
/// so does such a `Content-Location`.
#[tokio::test]
async fn a_post_s_location_naming_the_origin_s_own_address_invalidates_it() {
    for base in ["", "/app"] {
        let origin = ScriptedOrigin::start(|_: &Recorded| Reply::ok("", &[])).await;
        let own = format!("http://{}{base}", origin.addr);
        origin.script(move |r: &Recorded| match r.method.as_str() {
            "POST" => Reply::with_status(
                302,
                "",
                &[
                    ("location", &format!("{own}/item?id=7")),
                    ("content-location", &format!("{own}/made#new")),
                ],
            ),
            _ => Reply::ok(
                &format!("{} #{}", r.target, r.body_len),
                &[("cache-control", "max-age=600")],
            ),
        });
        let site = format!(
            "hosts = [\"{HOST}\"]\n[origin]\nurl = \"http://{}{base}\"\ntimeout = \"2s\"\n",
            origin.addr
        );
        let edge = EdgeBuilder::new().site("h", &site).start();
        let (item, made) = (format!("{base}/item?id=7"), format!("{base}/made"));
        for _ in 0..2 {
            get(&edge, "/item?id=7", &[]).await;
            get(&edge, "/made", &[]).await;
        }
        assert_eq!(
            (origin.count(&item), origin.count(&made)),
            (1, 1),
            "base {base:?}"
        );
        let posted = edge
            .request(reqwest::Method::POST, HOST, "/items", &[])
            .await;
        assert_eq!(posted.status(), 302);
        assert_eq!(
            header(posted.headers(), "location"),
            "http://h.test/item?id=7"
        );
        let (_, headers, _) = get(&edge, "/item?id=7", &[]).await;
        assert_ne!(
            header(&headers, "cache-status"),
            "s3edge; hit",
            "base {base:?}"
        );
        get(&edge, "/made", &[]).await;
        assert_eq!(
            (origin.count(&item), origin.count(&made)),
            (2, 2),
            "base {base:?}: Location and Content-Location invalidated"
        );
    }
}

/// A site whose `url` has a base path: the origin is asked for paths under
/// it and never beside it, whatever dot-segments (plain or `%2E`-encoded)
/// the client sends; a dot-segment hidden behind an encoded slash, a
/// backslash or a path parameter is refused with 400 and never asked for.
#[tokio::test]
async fn a_path_never_leaves_the_base_path_of_the_origin_s_url() {
    let origin = ScriptedOrigin::start(echo("max-age=60")).await;
    let site = format!(
        "hosts = [\"{HOST}\"]\n[origin]\nurl = \"http://{}/base\"\ntimeout = \"2s\"\n",
        origin.addr
    );
    let edge = EdgeBuilder::new().site("h", &site).start();
    let node = edge.node.http_addrs[0];
    let ask = |target: &str, method: &str| {
        format!("{method} {target} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    };
    for (sent, asked) in [
        ("/../private/secret", "/base/private/secret"),
        ("/%2e%2e/private/secret", "/base/private/secret"),
        (
            "/a/%2E%2E/%2E%2E/%2e%2e/private/secret?q=/../x",
            "/base/private/secret?q=/../x",
        ),
        ("/a/./b/../c", "/base/a/c"),
        ("/a/..", "/base/"),
    ] {
        let (answer, _) = exchange(node, ask(sent, "GET")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{sent}: {answer}");
        assert!(
            answer.ends_with(&format!("body of {asked}")),
            "{sent}: {answer}"
        );
    }
    // Stored under the normalized target: asked once.
    assert_eq!(origin.count("/base/private/secret"), 1);
    for sent in [
        "/..%2fprivate%2fsecret",
        "/..%5Cprivate",
        "/..\\private",
        "/..;/private",
    ] {
        for method in ["GET", "POST"] {
            let (answer, _) = exchange(node, ask(sent, method)).await;
            assert!(
                answer.starts_with("HTTP/1.1 400"),
                "{method} {sent}: {answer}"
            );
        }
    }
    let (answer, _) = exchange(node, ask("/../private/form", "POST")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let asked: Vec<String> = origin.requests().into_iter().map(|r| r.target).collect();
    assert!(
        asked.contains(&"/base/private/form".to_string()),
        "{asked:?}"
    );
    assert!(
        asked
            .iter()
            .all(|t| t.starts_with("/base/") && !t.split('?').next().unwrap().contains("..")),
        "{asked:?}"
    );
}

/// Over HTTP/2 a `:path` that does not start with `/` (`../private`,
/// malformed: RFC 9113 section 8.3.1) is a 400 and never reaches the origin:
/// it was passed on as it was and joined to the base path as
/// `/base/../private`, which the origin resolved beside its base path. And
/// the cookies of an HTTP/2 request reach the origin as one `Cookie` line.
/// (Multi-threaded: the raw client blocks its thread; the origin answers
/// on another.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_path_without_its_leading_slash_never_leaves_the_base_path_and_cookies_are_one_line(
) {
    use common::h2_frames::*;
    use std::time::{Duration, Instant};

    let origin = ScriptedOrigin::start(echo("max-age=60")).await;
    let pki = common::pki::Pki::new();
    let site = format!(
        "hosts = [\"{HOST}\"]\n[origin]\nurl = \"http://{}/base\"\ntimeout = \"2s\"\n{}",
        origin.addr,
        pki.leaf(HOST, &[HOST]).tls_section()
    );
    let edge = EdgeBuilder::new()
        .site("h", &site)
        .with(|o| o.tls_listen = vec![common::loopback()])
        .start();
    let mut h2 = RawH2::connect(edge.node.https_addrs[0], HOST, &pki, &[]);
    let paths = [
        "../private/secret",
        "%2e%2e/private/secret",
        "x/../../private/secret",
        "*",
        "/page",
    ];
    for (i, path) in paths.iter().enumerate() {
        h2.get(1 + 2 * i as u32, HOST, path);
    }
    // The `:status` of each answer, the first field of its block: an
    // indexed field of the static table (RFC 7541 appendix A), 0x88 for
    // 200, 0x8c for 400.
    let mut statuses = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while statuses.len() < paths.len() {
        match h2.next(deadline) {
            Received::Frame(f) if f.kind == HEADERS => {
                statuses.insert(f.stream, f.payload[0]);
            }
            Received::Frame(f) if f.kind == RST_STREAM || f.kind == GOAWAY => {
                panic!("{f:?} after {statuses:?}")
            }
            Received::Frame(_) => continue,
            other => panic!("{other:?} after {statuses:?}"),
        }
    }
    let asked: Vec<String> = origin.requests().into_iter().map(|r| r.target).collect();
    let want: std::collections::BTreeMap<u32, u8> =
        [(1, 0x8c), (3, 0x8c), (5, 0x8c), (7, 0x8c), (9, 0x88)].into();
    assert_eq!(statuses, want);
    assert_eq!(asked, ["/base/page"]);

    // Two `cookie` fields, as HTTP/2 browsers send them, reach the HTTP/1.1
    // origin as one line joined with `; ` (RFC 9113 section 8.2.3).
    // `get_frame`'s frame with two literal fields more, its length mended.
    let mut bytes = get_frame(11, HOST, "/cookies");
    for value in ["a=1", "b=2"] {
        bytes.extend_from_slice(&[0, 6]);
        bytes.extend_from_slice(b"cookie");
        bytes.push(value.len() as u8);
        bytes.extend_from_slice(value.as_bytes());
    }
    let length = bytes.len() as u32 - 9;
    bytes[..3].copy_from_slice(&length.to_be_bytes()[1..]);
    h2.send(&bytes);
    loop {
        match h2.next(deadline) {
            Received::Frame(f) if f.kind == HEADERS && f.stream == 11 => break,
            Received::Frame(f) if f.kind == RST_STREAM || f.kind == GOAWAY => panic!("{f:?}"),
            Received::Frame(_) => continue,
            other => panic!("{other:?}"),
        }
    }
    let seen = origin.requests().into_iter().last().unwrap();
    assert_eq!(seen.target, "/base/cookies");
    let cookies: Vec<&str> = seen
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["a=1; b=2"]);
}

/// The origin hears the client's host and scheme (`X-Forwarded-Host`,
/// `X-Forwarded-Proto`) and may build its answer from them (an absolute
/// redirect, an `https` redirect): each host and scheme has its own stored
/// answer, as Varnish and Fastly key by host. A client naming another host
/// (a default site takes any; a port may be added) or plain HTTP cannot put
/// its answer in front of the other clients; a purge of the path purges
/// every one.
#[tokio::test]
async fn answers_are_stored_per_host_and_scheme_the_origin_hears() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        let location = format!(
            "{}://{}/next",
            r.header("x-forwarded-proto").unwrap_or("?"),
            r.header("x-forwarded-host").unwrap_or("?")
        );
        Reply::with_status(
            301,
            "",
            &[
                ("location", location.as_str()),
                ("cache-control", "max-age=60"),
            ],
        )
    })
    .await;
    let site = origin
        .site_toml(HOST, "")
        .replace("[origin]", "default = true\n[origin]");
    let edge = EdgeBuilder::new()
        .site("h", &site)
        .with(|o| o.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()])
        .start();
    let location = |host: &'static str, proto: &'static str| {
        let edge = &edge;
        async move {
            let response = edge
                .request(
                    reqwest::Method::GET,
                    host,
                    "/r",
                    &[("x-forwarded-proto", proto)],
                )
                .await;
            assert_eq!(response.status(), 301);
            header(response.headers(), "location").to_string()
        }
    };
    // Attackers first: another host, a port, plain HTTP.
    assert_eq!(
        location("attacker.example", "https").await,
        "https://attacker.example/next"
    );
    assert_eq!(
        location("h.test:6666", "https").await,
        "https://h.test:6666/next"
    );
    assert_eq!(location(HOST, "http").await, "http://h.test/next");
    for _ in 0..2 {
        assert_eq!(location(HOST, "https").await, "https://h.test/next");
        assert_eq!(
            location("H.TEST", "https").await,
            "https://h.test/next",
            "hosts are case-blind"
        );
        assert_eq!(location(HOST, "http").await, "http://h.test/next");
    }
    assert_eq!(origin.count("/r"), 4, "one answer per scheme and host");
    let purged = edge
        .http
        .post(edge.admin_url("/purge"))
        .header("content-type", "application/json")
        .body(r#"{"site": "h", "paths": ["/r"]}"#)
        .send()
        .await
        .unwrap();
    assert!(purged.status().is_success());
    location(HOST, "https").await;
    location("h.test:6666", "https").await;
    assert_eq!(
        origin.count("/r"),
        6,
        "the purge removed every host's answer"
    );
}

/// Two cold requests that select different responses of an answer with
/// `Vary` each get their own, though the second waited for the first's
/// flight: the flight was for the target, not for the response the second
/// selects.
#[tokio::test]
async fn a_waiting_request_never_takes_a_response_its_vary_fields_do_not_select() {
    let origin = ScriptedOrigin::start(|r: &Recorded| {
        let language = r.header("accept-language").unwrap_or("none").to_string();
        Reply::ok(
            &format!("in {language}"),
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        )
        .after(Duration::from_millis(300))
    })
    .await;
    let edge = edge_for(&origin, "");
    for round in 0..5 {
        let path = format!("/v{round}");
        let (en, fr) = tokio::join!(get(&edge, &path, &[("accept-language", "en")]), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            get(&edge, &path, &[("accept-language", "fr")]).await
        });
        assert_eq!(
            (en.2.as_str(), fr.2.as_str()),
            ("in en", "in fr"),
            "round {round}"
        );
    }
}

/// An upload whose chunked framing breaks (a chunk size that is not hex)
/// gets 400 (RFC 9112 section 7.1: the message cannot be read), as nginx
/// answers, and the node goes on serving.
#[tokio::test]
async fn a_malformed_chunked_upload_gets_400() {
    let origin = ScriptedOrigin::start(echo("no-store")).await;
    let edge = edge_for(&origin, "");
    let node = edge.node.http_addrs[0];
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\nzz\r\nbroken\r\n0\r\n\r\n"
    );
    let (answer, closed) = exchange(node, request).await;
    assert!(closed, "the connection is closed after the answer");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert_eq!(get(&edge, "/after", &[]).await.0, 200);
}

/// No visitor's cookie or private field reaches another, whichever way the
/// answer is kept: a 304 that sets a cookie (its fields were merged into the
/// stored answer, and served to everyone after, as hits with
/// `no-cache="Set-Cookie"`), a 206 part (stored with the fields `no-cache`
/// and `private` name), and the requests that wait on a fill (they got the
/// first client's answer as it came).
#[tokio::test(flavor = "multi_thread")]
async fn no_visitor_s_cookie_or_private_field_reaches_another() {
    let revalidated = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = revalidated.clone();
    let origin = ScriptedOrigin::start(move |r: &Recorded| {
        let named = "max-age=1, no-cache=\"Set-Cookie\", private=\"X-Secret\"";
        match (r.target.as_str(), r.header("if-none-match")) {
            ("/refresh" | "/named", None) => Reply::ok(
                "page",
                &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
            ),
            (path, Some(_)) => {
                // Only the first revalidation of each path sets a cookie.
                let mut seen = seen.lock().unwrap();
                let first = !seen.iter().any(|p| p == path);
                seen.push(path.to_string());
                let cc = if path == "/named" { named } else { "max-age=1" };
                let mut fields = vec![("cache-control", cc), ("etag", "\"v1\"")];
                if first {
                    fields.push(("set-cookie", "sid=victim"));
                    fields.push(("x-secret", "victim-token"));
                }
                Reply::with_status(304, "", &fields)
            }
            ("/part", _) => Reply::with_status(
                206,
                "cdef",
                &[
                    ("content-range", "bytes 2-5/10"),
                    ("etag", "\"p1\""),
                    (
                        "cache-control",
                        "max-age=600, no-cache=\"Set-Cookie\", private=\"X-Secret\"",
                    ),
                    ("set-cookie", "sid=first-visitor"),
                    ("x-secret", "first-token"),
                ],
            ),
            _ => Reply::ok(
                "slow page",
                &[
                    (
                        "cache-control",
                        "max-age=60, no-cache=\"Set-Cookie\", private=\"X-Secret\"",
                    ),
                    ("set-cookie", "sid=leader"),
                    ("x-secret", "leader-token"),
                ],
            )
            .after(Duration::from_millis(800)),
        }
    })
    .await;
    let edge = edge_for(&origin, "");
    let leaked = |headers: &reqwest::header::HeaderMap| {
        format!(
            "{}{}",
            header(headers, "set-cookie"),
            header(headers, "x-secret")
        )
    };

    for path in ["/refresh", "/named"] {
        get(&edge, path, &[]).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // The revalidation whose 304 sets the cookie: this client's.
        let (_, mine, _) = get(&edge, path, &[]).await;
        assert_eq!(header(&mine, "set-cookie"), "sid=victim", "{path}");
        // Everyone after: never it, fresh (a hit) or revalidated again.
        // (X-Secret is private only where `private="X-Secret"` says so.)
        let kept = |headers: &reqwest::header::HeaderMap| match path {
            "/named" => leaked(headers),
            _ => header(headers, "set-cookie").to_string(),
        };
        let (_, next, body) = get(&edge, path, &[]).await;
        assert_eq!(body, "page");
        assert_eq!(
            kept(&next),
            "",
            "{path}: {:?}",
            header(&next, "cache-status")
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (_, later, _) = get(&edge, path, &[]).await;
        assert_eq!(
            kept(&later),
            "",
            "{path}: {:?}",
            header(&later, "cache-status")
        );
    }

    let (status, first, _) = get(&edge, "/part", &[("range", "bytes=2-5")]).await;
    assert_eq!(status, 206);
    assert_eq!(header(&first, "set-cookie"), "sid=first-visitor");
    let (status, second, body) = get(&edge, "/part", &[("range", "bytes=2-5")]).await;
    assert_eq!((status, body.as_str()), (206, "cdef"));
    assert_eq!(header(&second, "cache-status"), "s3edge; hit");
    assert_eq!(leaked(&second), "");

    let requests = (0..3).map(|i| {
        let edge = &edge;
        async move {
            tokio::time::sleep(Duration::from_millis(100 * i)).await;
            get(edge, "/slow", &[]).await
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    assert_eq!(origin.count("/slow"), 1);
    let leaders = answers
        .iter()
        .filter(|(_, h, _)| header(h, "set-cookie") == "sid=leader")
        .count();
    assert_eq!(leaders, 1, "only the client that asked gets its cookie");
    for (_, h, body) in &answers {
        assert_eq!(body, "slow page");
        if header(h, "set-cookie").is_empty() {
            assert_eq!(header(h, "x-secret"), "", "{:?}", header(h, "cache-status"));
        }
    }
}

/// An HTTP origin's 404 and 5xx answers are counted as what they are in
/// `s3edge_origin_requests_total` (`not_found`, `rejected`), as a bucket's
/// are, so the error ratio, the status page and `S3edgeOriginErrors` see a
/// backend that answers 503: they were all `ok`. Requests passed through
/// (POST, DELETE) are counted too: a site whose traffic is mostly POST had a
/// dead origin that the metrics did not show.
#[tokio::test]
async fn an_http_origin_s_errors_are_counted_as_origin_errors() {
    let origin = ScriptedOrigin::start(|r: &Recorded| match r.target.as_str() {
        "/missing" => Reply::with_status(404, "no", &[]),
        "/down" => Reply::with_status(503, "down", &[]),
        "/forbidden" => Reply::with_status(403, "no", &[]),
        _ => Reply::ok("page", &[("cache-control", "no-store")]),
    })
    .await;
    let edge = edge_for(&origin, "");
    for (path, status) in [
        ("/missing", 404),
        ("/down", 503),
        ("/down", 503),
        ("/forbidden", 403),
        ("/page", 200),
    ] {
        assert_eq!(get(&edge, path, &[]).await.0, status, "{path}");
    }
    for (method, path, status) in [
        (reqwest::Method::POST, "/down", 503),
        (reqwest::Method::DELETE, "/page", 200),
        (reqwest::Method::POST, "/missing", 404),
    ] {
        let answer = edge.request(method.clone(), HOST, path, &[]).await;
        assert_eq!(answer.status().as_u16(), status, "{method} {path}");
    }
    let metrics = edge.metrics().await;
    for (outcome, count) in [("not_found", 2), ("rejected", 3), ("denied", 1), ("ok", 2)] {
        let line =
            format!("s3edge_origin_requests_total{{site=\"h\",outcome=\"{outcome}\"}} {count}");
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    // An origin that is gone: a POST is an `unreachable` origin request.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let edge = EdgeBuilder::new()
        .site(
            "gone",
            &format!("hosts = [\"{HOST}\"]\n[origin]\nurl = \"http://{gone}\"\n"),
        )
        .start();
    let answer = edge
        .request(reqwest::Method::POST, HOST, "/form", &[])
        .await;
    assert_eq!(answer.status(), 502);
    let line = "s3edge_origin_requests_total{site=\"gone\",outcome=\"unreachable\"} 1";
    assert!(edge.metrics().await.lines().any(|l| l == line), "{line}");
}

/// What a target varies by outlives the node: after a restart on the same
/// cache directory, answers stored under the keys their `Vary` selects are
/// found (hits, no origin request), and an older answer stored before the
/// target began to vary is never served in place of the newer one.
#[tokio::test]
async fn vary_survives_a_restart_and_the_newest_answer_is_served() {
    use std::sync::atomic::AtomicUsize;
    let version = Arc::new(AtomicUsize::new(1));
    let seen = version.clone();
    let origin = ScriptedOrigin::start(move |r: &Recorded| {
        let v = seen.load(Ordering::SeqCst);
        match r.target.as_str() {
            // Version 1 does not vary; version 2 varies by X-Foo.
            "/v" if v == 1 => Reply::ok("v1", &[("cache-control", "max-age=3600")]),
            "/v" => Reply::ok(
                "v2",
                &[("cache-control", "max-age=3600"), ("vary", "x-foo")],
            ),
            _ => Reply::ok(
                &format!("lang {}", r.header("accept-language").unwrap_or("-")),
                &[
                    ("cache-control", "max-age=3600"),
                    ("vary", "Accept-Language"),
                ],
            ),
        }
    })
    .await;
    let shared = tempfile::tempdir().unwrap();
    let node = |shared: &std::path::Path| edge_on_cache_dir(&origin, shared);
    {
        let edge = node(shared.path());
        assert_eq!(get(&edge, "/v", &[]).await.2, "v1");
        version.store(2, Ordering::SeqCst);
        let reload = [("cache-control", "no-cache")];
        assert_eq!(get(&edge, "/v", &reload).await.2, "v2");
        let (_, headers, body) = get(&edge, "/v", &[]).await;
        assert_eq!(
            (header(&headers, "cache-status"), body.as_str()),
            ("s3edge; hit", "v2")
        );
        for lang in ["en", "fr"] {
            get(&edge, "/w", &[("accept-language", lang)]).await;
        }
        // v2 and its record of X-Foo (v1 went when the names changed); /w's
        // two answers and its record.
        edge.wait_disk_entries(5).await;
    }
    let before = origin.requests().len();
    let edge = node(shared.path());
    let (_, headers, body) = get(&edge, "/v", &[]).await;
    assert_eq!(
        (header(&headers, "cache-status"), body.as_str()),
        ("s3edge; hit", "v2"),
        "the newest answer, from disk"
    );
    for lang in ["en", "fr"] {
        let (_, headers, body) = get(&edge, "/w", &[("accept-language", lang)]).await;
        assert_eq!(header(&headers, "cache-status"), "s3edge; hit", "{lang}");
        assert_eq!(body, format!("lang {lang}"));
    }
    assert_eq!(origin.requests().len(), before, "no origin request");
}

/// A 304 that names another ETag than the stored answer's does not confirm
/// it (RFC 9111 4.3.4: it updates no stored response): an origin that
/// answers 304 because `If-Modified-Since` matched, though its body and
/// ETag changed, gets asked again without validators, and the new version
/// is served and stored.
#[tokio::test]
async fn a_304_naming_another_etag_updates_nothing_and_the_new_version_is_fetched() {
    use std::sync::atomic::AtomicUsize;
    const MODIFIED: &str = "Mon, 02 Nov 2026 10:00:00 GMT";
    let version = Arc::new(AtomicUsize::new(1));
    let seen = version.clone();
    let origin = ScriptedOrigin::start(move |r: &Recorded| {
        let (body, etag) = match seen.load(Ordering::SeqCst) {
            1 => ("version A", "\"a\""),
            _ => ("version B", "\"b\""),
        };
        let headers = [
            ("cache-control", "max-age=0"),
            ("etag", etag),
            ("last-modified", MODIFIED),
        ];
        // Either validator matching makes a 304, as some applications do.
        let matched = r.header("if-none-match") == Some(etag)
            || r.header("if-modified-since") == Some(MODIFIED);
        if matched {
            Reply::with_status(304, "", &headers)
        } else {
            Reply::ok(body, &headers)
        }
    })
    .await;
    let edge = edge_for(&origin, "");
    assert_eq!(get(&edge, "/p", &[]).await.2, "version A");
    let (_, headers, body) = get(&edge, "/p", &[]).await;
    assert_eq!(
        (body.as_str(), header(&headers, "etag")),
        ("version A", "\"a\"")
    );
    version.store(2, Ordering::SeqCst);
    for round in 0..3 {
        let (status, headers, body) = get(&edge, "/p", &[]).await;
        assert_eq!(
            (status, body.as_str(), header(&headers, "etag")),
            (200, "version B", "\"b\""),
            "round {round}"
        );
    }
}

/// An origin that answers a request for the whole with a part (206) has it
/// passed on as a 206 with its Content-Range, not stored: served as a 200,
/// the client took ten bytes for the whole hundred.
#[tokio::test]
async fn a_206_to_a_request_without_range_is_passed_on_as_a_206() {
    let origin = ScriptedOrigin::start(|_: &Recorded| {
        let mut reply = Reply::with_status(206, "0123456789", &[("cache-control", "max-age=60")]);
        reply
            .headers
            .push(("content-range".into(), "bytes 0-9/100".into()));
        reply
    })
    .await;
    let edge = edge_for(&origin, "");
    for round in 0..2 {
        let (status, headers, body) = get(&edge, "/part", &[]).await;
        assert_eq!(
            (status, header(&headers, "content-range"), body.as_str()),
            (206, "bytes 0-9/100", "0123456789"),
            "round {round}"
        );
    }
    assert_eq!(origin.count("/part"), 2, "not stored");
}

/// A site whose origin leads back to the node itself (a typo in `url`, a
/// load balancer in front of the node) is answered 508 on its second pass
/// (RFC 8586 CDN-Loop), not forwarded round and round until the node runs
/// out of connections; the client's own CDN-Loop members go on before it.
#[tokio::test]
async fn an_origin_that_leads_back_to_the_node_is_a_508_not_a_loop() {
    let port = common::binary::free_port();
    let site =
        format!("default = true\n[origin]\nurl = \"http://127.0.0.1:{port}\"\ntimeout = \"5s\"\n");
    let edge = EdgeBuilder::new()
        .site("looped", &site)
        .with(move |o| o.listen = vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
        .start();
    let started = std::time::Instant::now();
    let response = edge
        .request(
            reqwest::Method::GET,
            "looped.test",
            "/a",
            &[("cdn-loop", "other-cdn")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 508);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered at once"
    );
    let post = edge
        .http
        .post(edge.url("/a"))
        .header("host", "looped.test")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 508, "passed-through methods too");
    // This node's id behind 32 others is still seen: a loop, not a chain
    // cut to its first members that goes round until a timeout.
    let others: Vec<String> = (0..32).map(|i| format!("cdn-{i}")).collect();
    let long = others.join(", ");
    let started = std::time::Instant::now();
    let response = edge
        .request(
            reqwest::Method::GET,
            "looped.test",
            "/b",
            &[("cdn-loop", long.as_str())],
        )
        .await;
    assert_eq!(response.status().as_u16(), 508);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered at once"
    );
}

/// When a target's `Vary` names change, the answers stored under the old
/// names go: none is selected again later in place of the newest (RFC 9111
/// 4.1), not when the names change back, not after a restart. And a purge
/// of the target leaves a record of the names written again with the next
/// answer, so a restart after it still finds its answers.
#[tokio::test]
async fn answers_under_old_vary_names_are_never_served_again() {
    use std::sync::atomic::AtomicUsize;
    let version = Arc::new(AtomicUsize::new(1));
    let seen = version.clone();
    let origin = ScriptedOrigin::start(move |r: &Recorded| {
        let v = seen.load(Ordering::SeqCst);
        let body = format!("v{v} {}", r.header("x-foo").unwrap_or("-"));
        let mut headers = vec![("cache-control", "max-age=3600")];
        // Versions 1 and 3 vary by X-Foo, version 2 does not.
        if v != 2 {
            headers.push(("vary", "x-foo"));
        }
        Reply::ok(&body, &headers)
    })
    .await;
    let shared = tempfile::tempdir().unwrap();
    let node = |shared: &std::path::Path| edge_on_cache_dir(&origin, shared);
    let reload = |foo: &'static str| [("x-foo", foo), ("cache-control", "no-cache")];
    {
        let edge = node(shared.path());
        for foo in ["a", "b"] {
            assert_eq!(
                get(&edge, "/t", &[("x-foo", foo)]).await.2,
                format!("v1 {foo}")
            );
        }
        version.store(2, Ordering::SeqCst);
        assert_eq!(get(&edge, "/t", &reload("a")).await.2, "v2 a");
        version.store(3, Ordering::SeqCst);
        assert_eq!(get(&edge, "/t", &reload("a")).await.2, "v3 a");
        // b's v1 was stored under the same names as v3: gone with v2.
        let (_, headers, body) = get(&edge, "/t", &[("x-foo", "b")]).await;
        assert_eq!(body, "v3 b", "{:?}", header(&headers, "cache-status"));
        // Purged, fetched again: its record is written again.
        let purged = edge
            .http
            .post(edge.admin_url("/purge"))
            .header("content-type", "application/json")
            .body(r#"{"site": "h", "paths": ["/t"]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(purged.status().as_u16(), 200);
        assert_eq!(get(&edge, "/t", &[("x-foo", "a")]).await.2, "v3 a");
        // The answer and its record on disk.
        edge.wait_disk_entries(2).await;
    }
    let edge = node(shared.path());
    let (_, headers, body) = get(&edge, "/t", &[("x-foo", "a")]).await;
    assert_eq!(
        (header(&headers, "cache-status"), body.as_str()),
        ("s3edge; hit", "v3 a"),
        "found after the restart"
    );
}

/// A stale answer served because the request's `max-stale` accepts it says
/// so in `Cache-Status` (it is not stale-while-revalidate: nothing is
/// refreshed); without `max-stale` the same answer is revalidated.
#[tokio::test]
async fn an_answer_served_for_max_stale_says_so() {
    let origin = ScriptedOrigin::start(|_: &Recorded| {
        // Already 40 s past its lifetime when it arrives.
        Reply::ok("aged", &[("cache-control", "max-age=60"), ("age", "100")])
    })
    .await;
    let edge = edge_for(&origin, "");
    assert_eq!(get(&edge, "/a", &[]).await.2, "aged");
    let (_, headers, body) = get(&edge, "/a", &[("cache-control", "max-stale=120")]).await;
    assert_eq!(
        (header(&headers, "cache-status"), body.as_str()),
        ("s3edge; hit; detail=max-stale", "aged")
    );
    assert_eq!(origin.count("/a"), 1);
    let (_, headers, _) = get(&edge, "/a", &[]).await;
    assert!(header(&headers, "cache-status").contains("fwd=stale"));
    assert_eq!(origin.count("/a"), 2);
}
