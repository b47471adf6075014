//! The edge end to end: a node on real sockets, its embedded S3 store reached by
//! the real aws-sdk-s3 client with real SigV4, and a real HTTP client.
#![cfg(feature = "embedded")]

mod common;

use std::time::Duration;

use common::{random_bytes, sha256, site_toml, EdgeBuilder};
use reqwest::Method;
use s3edge::access_log::LogFormat;
use s3edge::origin::embedded::{
    EmbeddedConfig, EmbeddedS3, DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY,
};

#[tokio::test]
async fn hosts_route_to_exact_then_longest_wildcard_then_default_sites() {
    let edge = EdgeBuilder::new()
        .site("exact", &site_toml("www.example.com", "exact", ""))
        .site("wild", "hosts = [\"*.example.com\"]\n[origin]\nbucket = \"wild\"\nendpoint = \"embedded\"\n")
        .site("deeper", "hosts = [\"*.preview.example.com\"]\n[origin]\nbucket = \"deeper\"\nendpoint = \"embedded\"\n")
        .site("fallback", "default = true\n[origin]\nbucket = \"fallback\"\nendpoint = \"embedded\"\n")
        .start();
    for bucket in ["exact", "wild", "deeper", "fallback"] {
        edge.create_bucket(bucket).await;
        edge.put(bucket, "who.txt", bucket, Some("text/plain"))
            .await;
    }
    let cases = [
        ("an exact host", "www.example.com", "exact"),
        (
            "an exact host with a port, in capitals, with a trailing dot",
            "WWW.Example.com.:8080",
            "exact",
        ),
        ("a wildcard host", "shop.example.com", "wild"),
        ("the longest wildcard", "pr-7.preview.example.com", "deeper"),
        (
            "an unknown host goes to the default site",
            "unknown.org",
            "fallback",
        ),
        (
            "a bare suffix is not a wildcard match",
            "example.com",
            "fallback",
        ),
    ];
    for (name, host, want) in cases {
        let response = edge.get(host, "/who.txt").await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.text().await.unwrap(), want, "{name}");
    }
    // A request in absolute form names its host in the target: `Host` is
    // ignored (RFC 9112 section 3.2.2), as nginx routes it; a proxy in
    // front that routed by the target sends it to the same site.
    let node = edge.node.http_addrs[0];
    let request = "GET http://shop.example.com/who.txt HTTP/1.1\r\n\
                   Host: www.example.com\r\nConnection: close\r\n\r\n";
    let (answer, _) = common::exchange(node, request.to_string()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nwild"), "{answer}");
    // A Host that is no host is a 400 (RFC 9112 3.2), never the default
    // site's answer; an empty one is no host at all (the default site).
    for host in [
        "www.example.com, shop.example.com",
        "www.example.com:abc",
        "www.example.com:80:80",
        "a b",
    ] {
        let request = format!("GET /who.txt HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (answer, _) = common::exchange(node, request).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{host}: {answer}");
    }
    let request = "GET /who.txt HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n";
    let (answer, _) = common::exchange(node, request.to_string()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nfallback"), "{answer}");
}

#[tokio::test]
async fn an_unknown_host_without_a_default_site_is_a_404() {
    let edge = EdgeBuilder::new()
        .site("only", &site_toml("only.example.com", "only", ""))
        .start();
    let response = edge.get("other.example.com", "/").await;
    assert_eq!(response.status(), 404);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("No site is configured"));
}

#[tokio::test]
async fn get_and_head_stream_the_exact_bytes_and_headers_of_a_multi_mib_object() {
    let edge = EdgeBuilder::new()
        .site("s", &site_toml("s.test", "site-b", ""))
        .start();
    edge.create_bucket("site-b").await;
    let data = random_bytes(6 * 1024 * 1024 + 17, 7);
    edge.put_with("site-b", "video/big.bin", data.clone(), |p| {
        p.content_type("application/x-test")
            .cache_control("public, max-age=600")
            .content_language("en")
            .metadata("secret", "do-not-leak")
    })
    .await;
    let response = edge.get("s.test", "/video/big.bin").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/x-test");
    assert_eq!(headers["cache-control"], "public, max-age=600");
    assert_eq!(headers["content-language"], "en");
    assert_eq!(headers["content-length"], data.len().to_string());
    assert_eq!(headers["accept-ranges"], "bytes");
    let etag = headers["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(headers.contains_key("last-modified"));
    for (name, _) in headers.iter() {
        assert!(!name.as_str().starts_with("x-amz-"), "leaked {name}");
    }
    let body = response.bytes().await.unwrap();
    assert_eq!(sha256(&body), sha256(&data));

    let head = edge
        .request(Method::HEAD, "s.test", "/video/big.bin", &[])
        .await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], data.len().to_string());
    assert_eq!(head.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(head.headers()["content-type"], "application/x-test");
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn content_types_are_guessed_when_the_bucket_does_not_know() {
    let edge = EdgeBuilder::new()
        .site("s", &site_toml("s.test", "site-b", ""))
        .start();
    edge.create_bucket("site-b").await;
    let cases = [
        (
            "S3's default type is replaced from the extension",
            "a.css",
            Some("binary/octet-stream"),
            "text/css; charset=utf-8",
        ),
        (
            "the generic binary type is replaced",
            "b.svg",
            Some("application/octet-stream"),
            "image/svg+xml",
        ),
        (
            "JavaScript gets a charset",
            "c.js",
            Some("binary/octet-stream"),
            "text/javascript; charset=utf-8",
        ),
        (
            "a stored text type gets a charset",
            "d",
            Some("text/plain"),
            "text/plain; charset=utf-8",
        ),
        (
            "a stored type wins over the extension",
            "e.html",
            Some("application/json"),
            "application/json; charset=utf-8",
        ),
        (
            "an unknown extension keeps the binary type",
            "f.unknownext",
            Some("binary/octet-stream"),
            "binary/octet-stream",
        ),
    ];
    for (_, key, stored, _) in cases {
        edge.put("site-b", key, "x", stored).await;
    }
    for (name, key, _, want) in cases {
        let response = edge.get("s.test", &format!("/{key}")).await;
        assert_eq!(response.headers()["content-type"], want, "{name}");
    }
}

#[tokio::test]
async fn missing_keys_bad_paths_and_other_methods_get_clear_statuses() {
    let edge = EdgeBuilder::new()
        .site("s", &site_toml("s.test", "site-b", ""))
        .start();
    edge.create_bucket("site-b").await;
    edge.put("site-b", "a.txt", "a", Some("text/plain")).await;

    // The root of a site without an index document names no object.
    for method in [Method::GET, Method::HEAD, Method::GET] {
        let root = edge.request(method.clone(), "s.test", "/", &[]).await;
        assert_eq!(root.status(), 404, "{method} /");
    }
    let invalid = "s3edge_origin_requests_total{site=\"s\",outcome=\"invalid\"}";
    assert_eq!(edge.metric(invalid).await, 0, "no origin error");

    let missing = edge.get("s.test", "/nope.html").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let body = missing.text().await.unwrap();
    assert!(
        body.contains("404 Not Found") && !body.contains("<Error>"),
        "{body}"
    );

    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let response = edge
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                "s.test",
                "/a.txt",
                &[],
            )
            .await;
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "GET, HEAD", "{method}");
    }
    let unknown = edge
        .request(
            Method::from_bytes(b"BREW").unwrap(),
            "s.test",
            "/a.txt",
            &[],
        )
        .await;
    assert_eq!(unknown.status(), 501);

    let nul = edge.get("s.test", "/a%00.txt").await;
    assert_eq!(nul.status(), 400);
    let utf8 = edge.get("s.test", "/%ff.txt").await;
    assert_eq!(utf8.status(), 400);
    let climbing = edge.get("s.test", "/x/%2e%2e/a.txt").await;
    assert_eq!(
        climbing.status(),
        200,
        "dot-segments are removed after decoding"
    );
    let query = edge.get("s.test", "/a.txt?v=123").await;
    assert_eq!(
        query.status(),
        200,
        "the query string is not part of the key"
    );
}

#[tokio::test]
async fn the_site_prefix_is_added_to_every_key() {
    let edge = EdgeBuilder::new()
        .site(
            "s",
            &site_toml("s.test", "site-b", "prefix = \"public/\"\n"),
        )
        .start();
    edge.create_bucket("site-b").await;
    edge.put("site-b", "public/a.txt", "inside", Some("text/plain"))
        .await;
    edge.put("site-b", "secret.txt", "outside", Some("text/plain"))
        .await;
    assert_eq!(
        edge.get("s.test", "/a.txt").await.text().await.unwrap(),
        "inside"
    );
    assert_eq!(edge.get("s.test", "/secret.txt").await.status(), 404);
    assert_eq!(edge.get("s.test", "/../secret.txt").await.status(), 404);
    assert_eq!(edge.get("s.test", "/%2e%2e/secret.txt").await.status(), 404);
}

/// A site pointing at a separate store through its URL and static keys from env.
fn remote_site(host: &str, endpoint: &str, key_var: &str, secret_var: &str, extra: &str) -> String {
    format!(
        "hosts = [\"{host}\"]\n[origin]\nbucket = \"site-b\"\nendpoint = \"{endpoint}\"\naccess_key_id_env = \"{key_var}\"\nsecret_access_key_env = \"{secret_var}\"\n{extra}"
    )
}

#[tokio::test]
async fn a_stopped_origin_is_a_502_and_a_wrong_secret_is_a_502_logged_with_its_s3_code() {
    let store_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(store_dir.path().join("site-b")).unwrap();
    std::fs::write(store_dir.path().join("site-b").join("a.txt"), "a").unwrap();
    let store = EmbeddedS3::start(EmbeddedConfig {
        root: store_dir.path().to_path_buf(),
        listen: common::loopback(),
        access_key: DEFAULT_ACCESS_KEY.into(),
        secret_key: DEFAULT_SECRET_KEY.into(),
    })
    .unwrap();
    std::env::set_var("S3EDGE_TEST_GOOD_KEY", DEFAULT_ACCESS_KEY);
    std::env::set_var("S3EDGE_TEST_GOOD_SECRET", DEFAULT_SECRET_KEY);
    std::env::set_var("S3EDGE_TEST_BAD_SECRET", "not-the-secret");
    std::env::set_var("S3EDGE_TEST_BAD_KEY", "nobody");
    let endpoint = store.endpoint();
    let log = tempfile::NamedTempFile::new().unwrap();
    let edge = EdgeBuilder::new()
        .site("good", &remote_site("good.test", &endpoint, "S3EDGE_TEST_GOOD_KEY", "S3EDGE_TEST_GOOD_SECRET", ""))
        .site("badsecret", &remote_site("badsecret.test", &endpoint, "S3EDGE_TEST_GOOD_KEY", "S3EDGE_TEST_BAD_SECRET", ""))
        .site("badkey", &remote_site("badkey.test", &endpoint, "S3EDGE_TEST_BAD_KEY", "S3EDGE_TEST_BAD_SECRET", ""))
        .site("nobucket", &format!("hosts = [\"nobucket.test\"]\n[origin]\nbucket = \"missing-bucket\"\nendpoint = \"{endpoint}\"\naccess_key_id_env = \"S3EDGE_TEST_GOOD_KEY\"\nsecret_access_key_env = \"S3EDGE_TEST_GOOD_SECRET\"\n"))
        .access_log(log.path(), LogFormat::Json)
        .start();
    assert_eq!(edge.get("good.test", "/a.txt").await.status(), 200);
    for host in ["badsecret.test", "badkey.test", "nobucket.test"] {
        let response = edge.get(host, "/a.txt").await;
        assert_eq!(response.status(), 502, "{host}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("<Error>") && !body.contains("Signature"),
            "{host}: {body}"
        );
    }
    let metrics = edge.metrics().await;
    for site in ["badsecret", "badkey", "nobucket"] {
        assert!(
            metrics.contains(&format!(
                "s3edge_origin_requests_total{{site=\"{site}\",outcome=\"rejected\"}} 1"
            )),
            "{site}: {metrics}"
        );
    }
    assert!(!metrics.contains("not-the-secret"));

    store.shutdown();
    // What is cached is still served; what is not gets 502.
    assert_eq!(edge.get("good.test", "/a.txt").await.status(), 200);
    let response = edge.get("good.test", "/never-fetched.txt").await;
    assert_eq!(response.status(), 502);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("could not be reached"));
    let metrics = edge.metrics().await;
    assert!(
        metrics.contains("s3edge_origin_requests_total{site=\"good\",outcome=\"unreachable\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_origin_that_never_answers_is_a_504_after_the_site_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().take(4) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    std::env::set_var("S3EDGE_TEST_T_KEY", "k");
    std::env::set_var("S3EDGE_TEST_T_SECRET", "s");
    let edge = EdgeBuilder::new()
        .site(
            "slow",
            &remote_site(
                "slow.test",
                &format!("http://{addr}"),
                "S3EDGE_TEST_T_KEY",
                "S3EDGE_TEST_T_SECRET",
                "timeout = \"700ms\"\n",
            ),
        )
        .start();
    let started = std::time::Instant::now();
    let response = edge.get("slow.test", "/a.txt").await;
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(hold);
}

#[tokio::test]
async fn health_readiness_and_metrics_are_on_the_admin_listener() {
    let edge = EdgeBuilder::new()
        .site("s", &site_toml("s.test", "site-b", ""))
        .start();
    edge.create_bucket("site-b").await;
    edge.put("site-b", "a.txt", "hello", Some("text/plain"))
        .await;
    assert_eq!(edge.get("s.test", "/a.txt").await.status(), 200);
    assert_eq!(edge.get("s.test", "/b.txt").await.status(), 404);
    let health = edge
        .http
        .get(edge.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap().trim(), "ok");
    let ready = edge
        .http
        .get(edge.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // The log line and counters are written when the body is done: poll briefly.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = edge.metrics().await;
        if metrics.contains("status=\"404\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        metrics.contains("s3edge_requests_total{site=\"s\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("s3edge_requests_total{site=\"s\",status=\"404\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("s3edge_response_bytes_total{site=\"s\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("s3edge_origin_requests_total{site=\"s\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("s3edge_origin_requests_total{site=\"s\",outcome=\"not_found\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("s3edge_origin_request_duration_seconds_count 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_admin_token_guards_metrics_but_not_the_probes() {
    let edge = EdgeBuilder::new()
        .site("s", &site_toml("s.test", "site-b", ""))
        .with(|o| o.admin_token = Some("t0ken".into()))
        .start();
    let get = |path: &str, token: Option<&str>| {
        let mut request = edge.http.get(edge.admin_url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get("/metrics", None).await.unwrap().status(), 401);
    assert_eq!(get("/metrics", Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(get("/metrics", Some("t0ken")).await.unwrap().status(), 200);
    // The scheme's name is case-insensitive (RFC 9110 section 11.1).
    for value in ["bearer t0ken", "BEARER t0ken", "Bearer  t0ken"] {
        let response = edge
            .http
            .get(edge.admin_url("/metrics"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{value}");
    }
    let basic = edge
        .http
        .get(edge.admin_url("/metrics"))
        .header("authorization", "Basic t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert_eq!(get("/healthz", None).await.unwrap().status(), 200);
    // Another method on a known path is a 405 naming the allowed ones (with
    // the token; without it, 401 as for every endpoint but the probes); HEAD
    // reads as GET does; an unknown path is a 404.
    let unauthenticated = edge
        .http
        .get(edge.admin_url("/purge"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    for (method, path, status, allow) in [
        (Method::GET, "/purge", 405, Some("POST")),
        (Method::POST, "/metrics", 405, Some("GET, HEAD")),
        (Method::DELETE, "/releases/switch", 405, Some("POST")),
        (Method::HEAD, "/healthz", 200, None),
        (Method::GET, "/nowhere", 404, None),
    ] {
        let response = edge
            .http
            .request(method.clone(), edge.admin_url(path))
            .bearer_auth("t0ken")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let allowed = response.headers().get("allow").map(|v| v.to_str().unwrap());
        assert_eq!(allowed, allow, "{method} {path}");
    }
    assert_eq!(get("/readyz", None).await.unwrap().status(), 200);
}

#[tokio::test]
async fn every_request_gets_an_access_log_line_with_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let edge = EdgeBuilder::new()
        .site("s", &site_toml("s.test", "site-b", ""))
        .access_log(&log, LogFormat::Json)
        .start();
    edge.create_bucket("site-b").await;
    edge.put("site-b", "a.txt", "hello", Some("text/plain"))
        .await;
    assert_eq!(
        edge.get("s.test", "/a.txt?x=1").await.text().await.unwrap(),
        "hello"
    );
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["site"], "s");
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/a.txt?x=1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], 5);
    assert_eq!(line["cache"], "miss");
    assert_eq!(line["complete"], true);
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    assert!(line["origin_request_id"].is_string(), "{line}");
}

/// The handler's future is allocated for every request and moved by actix's
/// service chain: the rarely taken branches (origin fetches, website rules
/// after a miss, variant builds) are boxed so a hit's future stays small.
#[tokio::test]
async fn the_handler_future_of_a_request_stays_small() {
    use actix_web::FromRequest;
    let edge = EdgeBuilder::new()
        .site("site", &site_toml("www.example.com", "site", ""))
        .start();
    let (req, mut payload) = actix_web::test::TestRequest::get()
        .uri("/index.html")
        .insert_header(("host", "www.example.com"))
        .to_http_parts();
    let payload = actix_web::web::Payload::from_request(&req, &mut payload)
        .await
        .unwrap();
    let future = s3edge::handler::handle(req, payload, edge.node.state.clone());
    let size = std::mem::size_of_val(&future);
    eprintln!("handler future: {size} bytes");
    // 8,600 bytes in a debug build before the origin's paths were boxed,
    // 4,208 after.
    assert!(size <= 5_000, "the handler's future is {size} bytes");
}

/// Pipelined requests on a cache miss: the first request's handler is still
/// waiting for the origin while the next is read. Each answer must be framed
/// for its own request (RFC 9112 section 9.3.2; a HEAD's has no body, RFC
/// 9110 section 9.3.2). The patched actix-http's codec kept the method,
/// version and connection type of the request it decoded last, so the
/// answer to the first took the second's: a GET's 200 lost its body behind a
/// HEAD, and a HEAD before a GET got no answer at all.
mod pipelined_misses {
    use std::time::Duration;

    use super::common::{site_toml, Edge, EdgeBuilder, Fault};

    const BUCKET: &str = "pipelined";

    /// An edge whose origin answers every request after 300 ms: every first
    /// request for a key is a miss that is still pending when the next
    /// pipelined request is read.
    async fn slow_edge() -> Edge {
        let (builder, origins) = EdgeBuilder::new()
            .site("p", &site_toml("p.test", BUCKET, ""))
            .test_origins();
        let edge = builder.start();
        edge.create_bucket(BUCKET).await;
        for (key, body, content_type) in [
            ("a.html", page(), "text/html"),
            ("b.txt", b"plain text b\n".to_vec(), "text/plain"),
            ("c.txt", b"plain text c\n".to_vec(), "text/plain"),
            ("d.html", page(), "text/html"),
            ("app.js", script(), "text/javascript"),
            ("k1.txt", b"first\n".to_vec(), "text/plain"),
            ("k2.txt", b"second\n".to_vec(), "text/plain"),
        ] {
            edge.put(BUCKET, key, body, Some(content_type)).await;
        }
        origins
            .site("p")
            .inject(Fault::Stall(Duration::from_millis(300)));
        edge
    }

    fn page() -> Vec<u8> {
        b"<!doctype html><html><head><title>pipelined</title></head><body><p>A page of a known length, sent whole.</p></body></html>\n".to_vec()
    }

    /// Compressible: a brotli answer to it is chunked.
    fn script() -> Vec<u8> {
        (0..300)
            .map(|i| format!("function f{i}() {{ return {i} * 2 + 1; }}\n"))
            .collect::<String>()
            .into_bytes()
    }

    /// Writes `requests` in one write and reads until the node closes the
    /// connection (at most 10 s); `false` when it was still open.
    async fn exchange_bytes(edge: &Edge, requests: &str) -> (Vec<u8>, bool) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(edge.node.http_addrs[0])
            .await
            .unwrap();
        stream.write_all(requests.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
        let closed = matches!(read.await, Ok(Ok(_)));
        (answer, closed)
    }

    /// Writes `requests` in one write, checks the node closed the connection
    /// (a request asked it to), and splits the answer as [`responses`] does.
    async fn answered_then_closed(
        edge: &Edge,
        requests: &str,
        methods: &[&str],
    ) -> Vec<(String, Vec<u8>)> {
        let (answer, closed) = exchange_bytes(edge, requests).await;
        assert!(closed, "still open after a Connection: close");
        responses(&answer, methods)
    }

    /// Splits `answer` into the responses to requests made with `methods`,
    /// in order: each head (lowercase) and the body its framing gives (none
    /// for a HEAD, a 204 or a 304; a chunked body without its framing).
    /// Fails if a response does not start where the one before ended, or if
    /// bytes are left after the last.
    fn responses(answer: &[u8], methods: &[&str]) -> Vec<(String, Vec<u8>)> {
        let mut rest = answer;
        let mut out = Vec::new();
        for (i, method) in methods.iter().enumerate() {
            assert!(
                rest.starts_with(b"HTTP/1.1 "),
                "response {i} (to {method}) does not start where it should: {:?}\nwhole answer: {:?}",
                String::from_utf8_lossy(&rest[..rest.len().min(600)]),
                String::from_utf8_lossy(&answer[..answer.len().min(2000)])
            );
            let end = rest
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or_else(|| panic!("response {i}: no end of head"))
                + 4;
            let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
            rest = &rest[end..];
            let status: u16 = head[9..12].parse().unwrap();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .map(str::to_string)
            };
            let mut body = Vec::new();
            if *method == "HEAD" || status == 204 || status == 304 || status < 200 {
                // no body
            } else if header("transfer-encoding").as_deref() == Some("chunked") {
                loop {
                    let line_end = rest
                        .windows(2)
                        .position(|w| w == b"\r\n")
                        .unwrap_or_else(|| panic!("response {i}: a chunk size without its end"));
                    let size = std::str::from_utf8(&rest[..line_end]).unwrap();
                    let size = usize::from_str_radix(size.split(';').next().unwrap(), 16)
                        .unwrap_or_else(|_| panic!("response {i}: chunk size {size:?}"));
                    rest = &rest[line_end + 2..];
                    if size == 0 {
                        assert!(rest.starts_with(b"\r\n"), "response {i}: trailers");
                        rest = &rest[2..];
                        break;
                    }
                    body.extend_from_slice(&rest[..size]);
                    assert_eq!(&rest[size..size + 2], b"\r\n", "response {i}: chunk end");
                    rest = &rest[size + 2..];
                }
            } else {
                let length: usize = header("content-length")
                    .unwrap_or_else(|| panic!("response {i} has no length: {head}"))
                    .parse()
                    .unwrap();
                assert!(
                    rest.len() >= length,
                    "response {i}: {length} bytes stated, {} sent before the end: {head}",
                    rest.len()
                );
                body = rest[..length].to_vec();
                rest = &rest[length..];
            }
            out.push((head, body));
        }
        assert!(
            rest.is_empty(),
            "bytes after the last response: {:?}",
            String::from_utf8_lossy(rest)
        );
        out
    }

    fn request(method: &str, path: &str, extra: &str) -> String {
        format!("{method} {path} HTTP/1.1\r\nHost: p.test\r\n{extra}\r\n")
    }

    #[tokio::test]
    async fn a_get_then_a_head_on_a_miss_each_get_their_own_framing() {
        let edge = slow_edge().await;
        let requests =
            request("GET", "/a.html", "") + &request("HEAD", "/b.txt", "Connection: close\r\n");
        let got = answered_then_closed(&edge, &requests, &["GET", "HEAD"]).await;
        let (get, body) = &got[0];
        assert!(get.starts_with("http/1.1 200"), "{get}");
        assert!(
            get.contains(&format!("content-length: {}\r\n", page().len())),
            "{get}"
        );
        assert!(
            *body == page(),
            "the GET's body: {:?}",
            String::from_utf8_lossy(body)
        );
        let (head, _) = &got[1];
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-length: 13\r\n"), "{head}");
    }

    #[tokio::test]
    async fn a_head_then_a_get_on_a_miss_are_both_answered_the_head_without_a_body() {
        let edge = slow_edge().await;
        let requests =
            request("HEAD", "/c.txt", "") + &request("GET", "/d.html", "Connection: close\r\n");
        let got = answered_then_closed(&edge, &requests, &["HEAD", "GET"]).await;
        assert!(got[0].0.starts_with("http/1.1 200"), "{}", got[0].0);
        assert!(got[0].0.contains("content-length: 13\r\n"), "{}", got[0].0);
        assert!(got[1].0.starts_with("http/1.1 200"), "{}", got[1].0);
        assert!(got[1].1 == page(), "{}", String::from_utf8_lossy(&got[1].1));

        // A HEAD of a compressible object in brotli (its GET would be
        // chunked), then its GET: no stray last chunk after the HEAD's head.
        let br = "Accept-Encoding: br\r\n";
        let requests = request("HEAD", "/app.js", br)
            + &request("GET", "/app.js", &format!("{br}Connection: close\r\n"));
        let got = answered_then_closed(&edge, &requests, &["HEAD", "GET"]).await;
        assert!(got[0].0.starts_with("http/1.1 200"), "{}", got[0].0);
        let (get, body) = &got[1];
        assert!(get.starts_with("http/1.1 200"), "{get}");
        let mut plain = Vec::new();
        if get.contains("content-encoding: br\r\n") {
            use std::io::Read;
            brotli::Decompressor::new(&body[..], 4096)
                .read_to_end(&mut plain)
                .unwrap();
        } else {
            plain.clone_from(body);
        }
        assert!(plain == script(), "the GET's body decodes to the script");
    }

    #[tokio::test]
    async fn connection_close_on_the_second_pipelined_request_closes_after_the_second_answer() {
        let edge = slow_edge().await;
        let requests =
            request("GET", "/k1.txt", "") + &request("GET", "/k2.txt", "Connection: close\r\n");
        let got = answered_then_closed(&edge, &requests, &["GET", "GET"]).await;
        let (first, body) = &got[0];
        assert!(first.starts_with("http/1.1 200"), "{first}");
        assert!(!first.contains("connection: close"), "{first}");
        assert_eq!(body, b"first\n");
        let (second, body) = &got[1];
        assert!(second.starts_with("http/1.1 200"), "{second}");
        assert!(second.contains("connection: close\r\n"), "{second}");
        assert_eq!(body, b"second\n");
    }

    /// A request that asks to close the connection is the last one answered
    /// on it: the one pipelined after it is not processed (RFC 9112 9.6: the
    /// server "MUST NOT process any further requests received on that
    /// connection"); it was answered, and the connection left open. Cold
    /// (the first answer pending while the second is read) and warm.
    #[tokio::test(flavor = "multi_thread")]
    async fn nothing_after_a_request_that_asks_to_close_is_answered() {
        let edge = slow_edge().await;
        for round in ["cold", "warm"] {
            let requests =
                request("GET", "/k1.txt", "Connection: close\r\n") + &request("GET", "/k2.txt", "");
            // One response, nothing after it (`responses` checks).
            let got = answered_then_closed(&edge, &requests, &["GET"]).await;
            let (first, body) = &got[0];
            assert!(first.starts_with("http/1.1 200"), "{round}: {first}");
            assert!(first.contains("connection: close\r\n"), "{round}: {first}");
            assert_eq!(body, b"first\n", "{round}");
        }
    }
}
