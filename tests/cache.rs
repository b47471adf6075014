//! The cache end to end: hits, coalescing, freshness, revalidation, stale
//! serving, fills that fail, purge. The origin is the embedded store behind a
//! test double that counts requests and injects faults.
#![cfg(feature = "embedded")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{random_bytes, sha256, site_toml, Edge, EdgeBuilder, Fault, TestOrigin, TestOrigins};

const BUCKET: &str = "cache-bucket";

async fn edge_with(extra: &str) -> (Edge, Arc<TestOrigin>, Arc<TestOrigins>) {
    let (builder, origins) = EdgeBuilder::new()
        .site("c", &site_toml("c.test", BUCKET, extra))
        .test_origins();
    let edge = builder.start();
    edge.create_bucket(BUCKET).await;
    let origin = origins.site("c");
    (edge, origin, origins)
}

async fn get(edge: &Edge, path: &str) -> (u16, String, String) {
    let response = edge.get("c.test", path).await;
    let status = response.status().as_u16();
    let cache_status = response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, cache_status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_second_request_is_a_hit_with_no_origin_request() {
    let (edge, origin, _) = edge_with("").await;
    edge.put(BUCKET, "a.html", "hello", Some("text/html")).await;
    let (status, cache, body) = get(&edge, "/a.html").await;
    assert_eq!(
        (status, cache.as_str(), body.as_str()),
        (200, "s3edge; fwd=miss; stored", "hello")
    );
    let response = edge.get("c.test", "/a.html").await;
    assert_eq!(response.headers()["cache-status"], "s3edge; hit");
    assert!(response.headers().contains_key("age"));
    assert_eq!(response.text().await.unwrap(), "hello");
    assert_eq!(origin.gets_for("a.html"), 1);
    // Each lookup is counted under its site and result, every response
    // under its status (the counters a site keeps after its first request;
    // a response is counted once its body has left, hence the wait).
    for (series, want) in [
        ("s3edge_cache_lookups_total{site=\"c\",result=\"miss\"}", 1),
        ("s3edge_cache_lookups_total{site=\"c\",result=\"hit\"}", 1),
        ("s3edge_requests_total{site=\"c\",status=\"200\"}", 2),
        ("s3edge_response_bytes_total{site=\"c\"}", 10),
    ] {
        let got = edge.wait_metric(series, |got| got == want).await;
        assert_eq!(got, want, "{series}");
    }
}

#[tokio::test]
async fn a_hundred_concurrent_cold_requests_make_one_origin_get() {
    let (edge, origin, _) = edge_with("").await;
    let data = random_bytes(2 * 1024 * 1024, 5);
    edge.put(
        BUCKET,
        "big.bin",
        data.clone(),
        Some("application/octet-stream"),
    )
    .await;
    origin.inject(Fault::Stall(Duration::from_millis(300)));
    let edge = Arc::new(edge);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let edge = edge.clone();
            tokio::spawn(async move { edge.get("c.test", "/big.bin").await.bytes().await.unwrap() })
        })
        .collect();
    for task in tasks {
        assert_eq!(sha256(&task.await.unwrap()), sha256(&data));
    }
    assert_eq!(origin.gets_for("big.bin"), 1);
    let metrics = edge.metrics().await;
    assert!(
        metrics.contains("s3edge_coalesced_requests_total{site=\"c\"}"),
        "{metrics}"
    );
}

/// `s3edge_coalesced_requests_total` counts the requests that took another
/// request's answer: 99 of 100 cold ones, and none of requests that waited
/// for an answer not to be shared (`no-store`) and then asked the bucket
/// themselves (they were all counted).
#[tokio::test]
async fn only_requests_that_took_another_s_answer_count_as_coalesced() {
    let (edge, origin, _) = edge_with("").await;
    edge.put(BUCKET, "shared.bin", vec![7u8; 4096], None).await;
    edge.put_with(BUCKET, "own.bin", vec![8u8; 4096], |p| {
        p.cache_control("no-store")
    })
    .await;
    origin.inject(Fault::Stall(Duration::from_millis(300)));
    let edge = Arc::new(edge);
    let coalesced = "s3edge_coalesced_requests_total{site=\"c\"}";
    for (key, gets, counted) in [("own.bin", 8, 0), ("shared.bin", 1, 7)] {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let edge = edge.clone();
                tokio::spawn(async move { edge.get("c.test", &format!("/{key}")).await.status() })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 200);
        }
        assert_eq!(origin.gets_for(key), gets, "{key}");
        assert_eq!(edge.metric(coalesced).await, counted, "{key}");
    }
}

/// A body larger than the whole memory tier, with no disk tier, is not
/// stored, and `Cache-Status` says so: it said `stored` (it was under
/// `--memory-object-max`) and every request went to the bucket.
#[tokio::test]
async fn a_body_larger_than_the_memory_tier_is_not_said_to_be_stored() {
    let (builder, origins) = EdgeBuilder::new()
        .site("c", &site_toml("c.test", BUCKET, ""))
        .with(|o| {
            o.memory_cache_size = 1 << 20;
            o.disk_cache_size = 0;
        })
        .test_origins();
    let edge = builder.start();
    edge.create_bucket(BUCKET).await;
    edge.put(BUCKET, "big.bin", vec![1u8; 2 << 20], None).await;
    edge.put(BUCKET, "small.bin", vec![2u8; 4096], None).await;
    for _ in 0..2 {
        assert_eq!(get(&edge, "/big.bin").await.1, "s3edge; fwd=miss");
    }
    assert_eq!(origins.site("c").gets_for("big.bin"), 2);
    assert_eq!(get(&edge, "/small.bin").await.1, "s3edge; fwd=miss; stored");
    assert_eq!(get(&edge, "/small.bin").await.1, "s3edge; hit");
}

#[tokio::test]
async fn no_store_and_private_are_never_stored() {
    let (edge, origin, _) = edge_with("").await;
    edge.put_with(BUCKET, "ns.html", "x", |p| p.cache_control("no-store"))
        .await;
    edge.put_with(BUCKET, "pv.html", "x", |p| {
        p.cache_control("private, max-age=600")
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get(&edge, "/ns.html").await.1, "s3edge; fwd=miss");
        assert_eq!(get(&edge, "/pv.html").await.1, "s3edge; fwd=miss");
    }
    assert_eq!(origin.gets_for("ns.html"), 3);
    assert_eq!(origin.gets_for("pv.html"), 3);
}

#[tokio::test]
async fn no_cache_is_revalidated_on_every_use_with_a_conditional_get() {
    let (edge, origin, _) = edge_with("").await;
    edge.put_with(BUCKET, "nc.html", "fresh?", |p| p.cache_control("no-cache"))
        .await;
    assert_eq!(get(&edge, "/nc.html").await.2, "fresh?");
    for _ in 0..2 {
        let (status, cache, body) = get(&edge, "/nc.html").await;
        assert_eq!(
            (status, cache.as_str(), body.as_str()),
            (200, "s3edge; fwd=stale; fwd-status=304", "fresh?")
        );
    }
    let requests = origin.requests_for("nc.html");
    assert_eq!(requests.len(), 3);
    assert!(requests[0].if_none_match.is_none());
    assert!(requests[1]
        .if_none_match
        .as_deref()
        .is_some_and(|e| e.starts_with('"')));
}

#[tokio::test]
async fn an_expired_entry_is_refreshed_by_a_304_and_replaced_by_a_200() {
    let (edge, origin, _) = edge_with("[cache]\nstale_while_revalidate = \"0s\"\n").await;
    edge.put_with(BUCKET, "e.html", "v1", |p| p.cache_control("max-age=1"))
        .await;
    assert_eq!(get(&edge, "/e.html").await.2, "v1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, cache, body) = get(&edge, "/e.html").await;
    assert_eq!(
        (cache.as_str(), body.as_str()),
        ("s3edge; fwd=stale; fwd-status=304", "v1")
    );
    assert_eq!(
        get(&edge, "/e.html").await.1,
        "s3edge; hit",
        "the 304 made it fresh again"
    );
    edge.put_with(BUCKET, "e.html", "v2", |p| p.cache_control("max-age=1"))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, cache, body) = get(&edge, "/e.html").await;
    // The cache had a response, stale: RFC 9211's `fwd=stale`, not `miss`.
    assert_eq!(
        (cache.as_str(), body.as_str()),
        ("s3edge; fwd=stale; stored", "v2")
    );
    assert_eq!(origin.gets_for("e.html"), 3);
    let metrics = edge.metrics().await;
    assert!(
        metrics.contains("s3edge_cache_lookups_total{site=\"c\",result=\"miss\"} 2"),
        "a refreshed entry counts as a miss:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("lookups"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_at_once_and_refreshes_once() {
    let (edge, origin, _) = edge_with("").await;
    edge.put_with(BUCKET, "s.html", "old", |p| {
        p.cache_control("max-age=1, stale-while-revalidate=60")
    })
    .await;
    assert_eq!(get(&edge, "/s.html").await.2, "old");
    edge.put_with(BUCKET, "s.html", "new", |p| {
        p.cache_control("max-age=1, stale-while-revalidate=60")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.inject(Fault::Stall(Duration::from_millis(500)));
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let (_, cache, body) = get(&edge, "/s.html").await;
        assert_eq!(
            (cache.as_str(), body.as_str()),
            ("s3edge; hit; detail=stale-while-revalidate", "old")
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "stale copies are served at once"
    );
    origin.clear();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(get(&edge, "/s.html").await.2, "new");
    assert_eq!(
        origin.gets_for("s.html"),
        2,
        "one background refresh for five stale hits"
    );
    assert_eq!(
        edge.metric("s3edge_cache_lookups_total{site=\"c\",result=\"stale\"}")
            .await,
        5
    );
}

#[tokio::test]
async fn an_origin_that_fails_gets_the_stale_copy_served_with_its_age() {
    let (edge, _origin_c, origins) =
        edge_with("[cache]\nstale_while_revalidate = \"0s\"\nstale_if_error = \"1h\"\n").await;
    edge.put_with(BUCKET, "d.html", "keep me", |p| {
        p.cache_control("max-age=1")
    })
    .await;
    assert_eq!(get(&edge, "/d.html").await.2, "keep me");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for fault in [Fault::Refuse, Fault::ServerError] {
        origins.site("c").inject(fault);
        let response = edge.get("c.test", "/d.html").await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["cache-status"],
            "s3edge; fwd=stale; detail=stale-if-error"
        );
        assert!(
            response.headers()["age"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 1
        );
        assert_eq!(response.text().await.unwrap(), "keep me");
        origins.site("c").clear();
    }
    // Without a stale copy the failure shows.
    origins.site("c").inject(Fault::Refuse);
    assert_eq!(get(&edge, "/never.html").await.0, 502);
}

/// `s-maxage` (proxy-revalidate for a shared cache) and `no-cache` forbid
/// every stale answer (RFC 9111 sections 4.2.4, 5.2.2.10), whatever the
/// site's stale windows: the `s-maxage` object was served within
/// stale-while-revalidate and the `no-cache` one within stale-if-error.
#[tokio::test]
async fn s_maxage_and_no_cache_objects_are_never_served_stale() {
    let (edge, _origin_c, origins) =
        edge_with("[cache]\nstale_while_revalidate = \"1h\"\nstale_if_error = \"1h\"\n").await;
    for (key, cc) in [
        ("sm.html", "max-age=1000, s-maxage=1"),
        ("nc.html", "no-cache"),
        ("mr.html", "max-age=1, must-revalidate"),
    ] {
        edge.put_with(BUCKET, key, "v1", |p| p.cache_control(cc))
            .await;
        assert_eq!(get(&edge, &format!("/{key}")).await.2, "v1");
        edge.put_with(BUCKET, key, "v2", |p| p.cache_control(cc))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The bucket answers: revalidated at once, never the stale copy.
    for key in ["sm.html", "nc.html", "mr.html"] {
        let (status, cache, body) = get(&edge, &format!("/{key}")).await;
        assert_eq!((status, body.as_str()), (200, "v2"), "{key}: {cache}");
        assert!(!cache.contains("stale-while-revalidate"), "{key}: {cache}");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The bucket fails: the failure shows, no stale-if-error.
    origins.site("c").inject(Fault::ServerError);
    for key in ["sm.html", "nc.html", "mr.html"] {
        let (status, cache, _) = get(&edge, &format!("/{key}")).await;
        assert_eq!(status, 502, "{key}: {cache}");
    }
}

/// A stored object whose new version may not be stored (`no-store`,
/// `private`) is dropped when the origin says so: within
/// stale-while-revalidate the old page was served on and on, every request
/// making a background GET that got the new one and kept nothing.
#[tokio::test]
async fn an_entry_whose_new_version_may_not_be_stored_is_dropped() {
    let (edge, origin, _) = edge_with("").await;
    for (key, cc) in [("ns.html", "no-store"), ("pv.html", "private")] {
        edge.put_with(BUCKET, key, "old", |p| {
            p.cache_control("max-age=1, stale-while-revalidate=86400")
        })
        .await;
        assert_eq!(get(&edge, &format!("/{key}")).await.2, "old");
        edge.put_with(BUCKET, key, "new", |p| p.cache_control(cc))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for key in ["ns.html", "pv.html"] {
        // The first stale answer starts the refresh that learns of the new
        // version; from then on every answer is the new one.
        let (_, cache, body) = get(&edge, &format!("/{key}")).await;
        assert_eq!(
            (cache.as_str(), body.as_str()),
            ("s3edge; hit; detail=stale-while-revalidate", "old")
        );
        let mut answers = Vec::new();
        for _ in 0..50 {
            let (_, _, body) = get(&edge, &format!("/{key}")).await;
            if body == "new" {
                break;
            }
            answers.push(body);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(answers.len() < 50, "{key}: still old after 1 s");
        for _ in 0..3 {
            assert_eq!(get(&edge, &format!("/{key}")).await.2, "new", "{key}");
        }
        assert!(
            origin.gets_for(key) >= 4,
            "{key}: not stored, asked each time"
        );
    }
}

#[tokio::test]
async fn a_truncated_body_is_cut_for_the_client_and_never_stored() {
    let (edge, origin, _) = edge_with("").await;
    let data = random_bytes(300_000, 9);
    edge.put(
        BUCKET,
        "t.bin",
        data.clone(),
        Some("application/octet-stream"),
    )
    .await;
    origin.inject(Fault::Truncate(100_000));
    let response = edge.get("c.test", "/t.bin").await;
    assert_eq!(response.headers()["content-length"], "300000");
    assert!(
        response.bytes().await.is_err(),
        "a short body is never presented as complete"
    );
    origin.clear();
    let response = edge.get("c.test", "/t.bin").await;
    assert_eq!(
        response.headers()["cache-status"],
        "s3edge; fwd=miss; stored"
    );
    assert_eq!(sha256(&response.bytes().await.unwrap()), sha256(&data));
    assert_eq!(get(&edge, "/t.bin").await.1, "s3edge; hit");
}

#[tokio::test]
async fn missing_keys_are_cached_for_error_ttl() {
    let (edge, origin, _) = edge_with("[cache]\nerror_ttl = \"1s\"\n").await;
    for _ in 0..3 {
        assert_eq!(get(&edge, "/missing.html").await.0, 404);
    }
    assert_eq!(origin.gets_for("missing.html"), 1);
    edge.put(BUCKET, "missing.html", "here now", Some("text/html"))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&edge, "/missing.html").await.2, "here now");
}

async fn purge(edge: &Edge, body: &str, token: Option<&str>) -> (u16, String) {
    let mut request = edge
        .http
        .post(edge.admin_url("/purge"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A node whose site "c" has an index document, and its counted origin.
async fn indexed_edge() -> (Edge, Arc<TestOrigin>) {
    let (builder, origins) = EdgeBuilder::new()
        .site(
            "c",
            &site_toml(
                "c.test",
                BUCKET,
                "[website]\nindex_document = \"index.html\"\n",
            ),
        )
        .test_origins();
    let edge = builder.start();
    edge.create_bucket(BUCKET).await;
    let origin = origins.site("c");
    (edge, origin)
}

#[tokio::test]
async fn purge_removes_paths_prefixes_and_whole_sites() {
    let (edge, origin) = indexed_edge().await;
    for key in [
        "index.html",
        "a.html",
        "blog/one.html",
        "blog/two.html",
        "other.html",
    ] {
        edge.put(BUCKET, key, key, Some("text/html")).await;
    }
    let warm = |paths: &'static [&'static str]| {
        let edge = &edge;
        async move {
            for path in paths {
                assert_eq!(get(edge, path).await.0, 200, "{path}");
            }
        }
    };
    warm(&[
        "/",
        "/a.html",
        "/blog/one.html",
        "/blog/two.html",
        "/other.html",
    ])
    .await;
    assert_eq!(
        purge(&edge, r#"{"site":"c","paths":["/","/a.html"]}"#, None).await,
        (200, r#"{"purged":2}"#.into())
    );
    assert_eq!(get(&edge, "/a.html").await.1, "s3edge; fwd=miss; stored");
    assert_eq!(get(&edge, "/").await.1, "s3edge; fwd=miss; stored");
    assert_eq!(get(&edge, "/other.html").await.1, "s3edge; hit");
    assert_eq!(
        purge(&edge, r#"{"site":"c","prefixes":["/blog/"]}"#, None).await,
        (200, r#"{"purged":2}"#.into())
    );
    assert_eq!(
        get(&edge, "/blog/one.html").await.1,
        "s3edge; fwd=miss; stored"
    );
    assert_eq!(
        purge(&edge, r#"{"site":"c","all":true}"#, None).await,
        (200, r#"{"purged":4}"#.into())
    );
    assert_eq!(
        get(&edge, "/other.html").await.1,
        "s3edge; fwd=miss; stored"
    );
    assert_eq!(origin.gets_for("other.html"), 2);
    assert_eq!(
        purge(&edge, r#"{"site":"nope","all":true}"#, None).await.0,
        404
    );
    assert_eq!(purge(&edge, r#"{"site":"c"}"#, None).await.0, 400);
    assert_eq!(purge(&edge, "not json", None).await.0, 400);
}

/// A page on another site that the operator's browser opens cannot purge
/// through the admin listener on loopback (a `no-cors` POST needs no
/// preflight): browsers name the page's origin, and the purge is refused;
/// curl, the CLI and the status page itself still purge.
#[tokio::test]
async fn a_web_page_on_another_site_cannot_purge_through_the_operator_s_browser() {
    let (edge, _origin) = indexed_edge().await;
    let admin_host = edge
        .admin_url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let post = |fields: Vec<(&'static str, String)>| {
        let mut request = edge
            .http
            .post(edge.admin_url("/purge"))
            .header("content-type", "text/plain")
            .body(r#"{"site":"c","all":true}"#);
        for (name, value) in fields {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let evil = "https://evil.example".to_string();
    assert_eq!(post(vec![("origin", evil.clone())]).await, 403);
    assert_eq!(post(vec![("origin", "null".into())]).await, 403);
    assert_eq!(
        post(vec![
            ("sec-fetch-site", "cross-site".into()),
            ("origin", evil)
        ])
        .await,
        403
    );
    assert_eq!(
        post(vec![("sec-fetch-site", "same-site".into())]).await,
        403
    );
    let switch = edge
        .http
        .post(edge.admin_url("/releases/switch"))
        .header("origin", "https://evil.example")
        .body(r#"{"site":"c"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(switch.status(), 403);
    // What may purge: a client that is no browser, a page of the listener's own.
    assert_eq!(post(vec![]).await, 200);
    assert_eq!(
        post(vec![("origin", format!("http://{admin_host}"))]).await,
        200
    );
    assert_eq!(
        post(vec![("sec-fetch-site", "same-origin".into())]).await,
        200
    );
    assert_eq!(post(vec![("sec-fetch-site", "none".into())]).await, 200);
    // DNS rebinding: a page of evil.example whose name now resolves to
    // 127.0.0.1 is same-origin with the listener, and names it by that name.
    let port = edge.node.admin_addr.port();
    let rebound = format!("evil.example:{port}");
    assert_eq!(
        post(vec![
            ("host", rebound.clone()),
            ("origin", format!("http://{rebound}")),
            ("sec-fetch-site", "same-origin".into()),
        ])
        .await,
        403
    );
    assert_eq!(post(vec![("host", format!("localhost:{port}"))]).await, 200);
    assert_eq!(post(vec![("host", format!("[::1]:{port}"))]).await, 200);
}

#[tokio::test]
async fn purge_needs_the_admin_token_when_one_is_set() {
    let edge = EdgeBuilder::new()
        .site("c", &site_toml("c.test", BUCKET, ""))
        .with(|o| o.admin_token = Some("s3cret".into()))
        .start();
    assert_eq!(
        purge(&edge, r#"{"site":"c","all":true}"#, None).await.0,
        401
    );
    assert_eq!(
        purge(&edge, r#"{"site":"c","all":true}"#, Some("wrong"))
            .await
            .0,
        401
    );
    assert_eq!(
        purge(&edge, r#"{"site":"c","all":true}"#, Some("s3cret")).await,
        (200, r#"{"purged":0}"#.into())
    );
    // `s3edge purge --all` with the token `S3EDGE_ADMIN_TOKEN` holds, if any.
    let purge_all = |token: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_s3edge"));
        command.args([
            "purge",
            "--admin",
            &edge.admin_url(""),
            "--site",
            "c",
            "--all",
        ]);
        match token {
            Some(token) => command.env("S3EDGE_ADMIN_TOKEN", token),
            None => command.env_remove("S3EDGE_ADMIN_TOKEN"),
        };
        command.output().unwrap()
    };
    // The command without the token says which variable it reads.
    let output = purge_all(None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("set S3EDGE_ADMIN_TOKEN"), "{stderr}");
    // A token as a Kubernetes Secret made `--from-file` holds it, newline
    // and all: it went into the request head as it was, and cut it short.
    let output = purge_all(Some("s3cret\n"));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        r#"{"purged":0}"#,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0));
}

/// A body over the admin API's limit is refused after the token check, as
/// JSON a script can read: without the token it is a 401 like any other
/// request, whatever its size; with it, a 413 whether the size is declared
/// or the body is sent in chunks.
#[tokio::test]
async fn an_oversized_admin_body_is_a_json_413_after_the_token_check() {
    let edge = EdgeBuilder::new()
        .site("c", &site_toml("c.test", BUCKET, ""))
        .with(|o| o.admin_token = Some("s3cret".into()))
        .start();
    let big = format!(r#"{{"site":"c","paths":["/{}"]}}"#, "a".repeat(300 * 1024));
    assert_eq!(purge(&edge, &big, None).await.0, 401);
    let (status, text) = purge(&edge, &big, Some("s3cret")).await;
    assert_eq!(status, 413, "{text}");
    let error: serde_json::Value = serde_json::from_str(&text).expect(&text);
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .contains("256 KiB"),
        "{text}"
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(16 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let response = edge
        .http
        .post(edge.admin_url("/releases/switch"))
        .bearer_auth("s3cret")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    assert!(response.text().await.unwrap().contains("256 KiB"));
    // A purge within the limit still works on the same node.
    assert_eq!(
        purge(&edge, r#"{"site":"c","all":true}"#, Some("s3cret")).await,
        (200, r#"{"purged":0}"#.into())
    );
}

#[tokio::test]
async fn the_purge_command_talks_to_the_admin_api() {
    let (edge, _, _) = edge_with("").await;
    edge.put(BUCKET, "p.html", "p", Some("text/html")).await;
    edge.put(BUCKET, "q.html", "q", Some("text/html")).await;
    assert_eq!(get(&edge, "/p.html").await.0, 200);
    assert_eq!(get(&edge, "/q.html").await.0, 200);
    // A path, and a full URL as a browser shows it (it purged nothing).
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_s3edge"))
        .args([
            "purge",
            "--admin",
            &edge.admin_url(""),
            "--site",
            "c",
            "/p.html",
            "https://c.test/q.html?v=1",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        r#"{"purged":2}"#
    );
    assert_eq!(get(&edge, "/q.html").await.1, "s3edge; fwd=miss; stored");
}

#[tokio::test]
async fn the_memory_tier_stays_within_its_budget() {
    let (builder, _) = EdgeBuilder::new()
        .site("c", &site_toml("c.test", BUCKET, ""))
        .with(|o| o.memory_cache_size = 4 << 20)
        .test_origins();
    let edge = builder.start();
    edge.create_bucket(BUCKET).await;
    let data = random_bytes(256 * 1024, 1);
    for i in 0..40 {
        edge.put(BUCKET, &format!("o{i}.bin"), data.clone(), None)
            .await;
        assert_eq!(get(&edge, &format!("/o{i}.bin")).await.0, 200);
    }
    let bytes = edge.metric("s3edge_cache_bytes{tier=\"memory\"}").await;
    assert!(
        bytes > 0 && bytes <= (4u64 << 20) * 11 / 10,
        "memory tier holds {bytes} bytes"
    );
}

/// Two nodes in a row over the same bucket and cache directories.
fn restartable(shared: &std::path::Path) -> (EdgeBuilder, Arc<TestOrigins>) {
    let buckets = shared.join("buckets");
    let cache = shared.join("cache");
    EdgeBuilder::new()
        .site("c", &site_toml("c.test", BUCKET, ""))
        .with(move |o| {
            o.embedded_dir = Some(buckets);
            o.cache_dir = cache;
        })
        .test_origins()
}

#[tokio::test]
async fn after_a_restart_with_the_same_cache_dir_entries_come_from_disk() {
    let shared = tempfile::tempdir().unwrap();
    let data = random_bytes(700_000, 21);
    {
        let (builder, _) = restartable(shared.path());
        let edge = builder.start();
        edge.create_bucket(BUCKET).await;
        edge.put(BUCKET, "kept.bin", data.clone(), None).await;
        edge.put(BUCKET, "kept.html", "kept", Some("text/html"))
            .await;
        assert_eq!(get(&edge, "/kept.html").await.2, "kept");
        assert_eq!(
            sha256(&edge.get("c.test", "/kept.bin").await.bytes().await.unwrap()),
            sha256(&data)
        );
        edge.wait_disk_entries(2).await;
    }
    let (builder, origins) = restartable(shared.path());
    let edge = builder.start();
    let response = edge.get("c.test", "/kept.bin").await;
    assert_eq!(response.headers()["cache-status"], "s3edge; hit");
    assert_eq!(sha256(&response.bytes().await.unwrap()), sha256(&data));
    assert_eq!(get(&edge, "/kept.html").await.1, "s3edge; hit");
    assert_eq!(
        origins.site("c").gets(),
        0,
        "no origin request after the restart"
    );
}

#[tokio::test]
async fn flipped_bytes_in_every_cache_file_still_give_byte_exact_responses() {
    let shared = tempfile::tempdir().unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("f{i}.bin"),
                random_bytes(50_000 + i * 1000, i as u64 + 1),
            )
        })
        .collect();
    {
        let (builder, _) = restartable(shared.path());
        let edge = builder.start();
        edge.create_bucket(BUCKET).await;
        for (key, data) in &objects {
            edge.put(BUCKET, key, data.clone(), None).await;
            assert_eq!(edge.get("c.test", &format!("/{key}")).await.status(), 200);
        }
        edge.wait_disk_entries(5).await;
    }
    let mut flipped = 0;
    for shard in std::fs::read_dir(shared.path().join("cache/v2")).unwrap() {
        let shard = shard.unwrap().path();
        if shard.ends_with("tmp") {
            continue;
        }
        for file in std::fs::read_dir(&shard).unwrap() {
            let path = file.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            let at = bytes.len() - 100;
            bytes[at] ^= 0x5a;
            std::fs::write(&path, bytes).unwrap();
            flipped += 1;
        }
    }
    assert_eq!(flipped, 5);
    let (builder, origins) = restartable(shared.path());
    let edge = builder.start();
    for (key, data) in &objects {
        let response = edge.get("c.test", &format!("/{key}")).await;
        assert_eq!(
            response.headers()["cache-status"],
            "s3edge; fwd=miss; stored",
            "{key}"
        );
        assert_eq!(
            sha256(&response.bytes().await.unwrap()),
            sha256(data),
            "{key}"
        );
    }
    assert_eq!(
        origins.site("c").gets(),
        5,
        "every corrupt entry was refetched"
    );
}

#[tokio::test]
async fn a_single_range_of_an_uncached_object_is_a_ranged_get_checked_by_the_edge() {
    let (edge, origin, _) = edge_with("").await;
    let data = random_bytes(3 * 1024 * 1024, 17);
    edge.put(BUCKET, "r.bin", data.clone(), None).await;
    let response = edge
        .request(
            reqwest::Method::GET,
            "c.test",
            "/r.bin",
            &[("range", "bytes=1000-1019")],
        )
        .await;
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes 1000-1019/{}", data.len())
    );
    assert_eq!(&response.bytes().await.unwrap()[..], &data[1000..1020]);
    let first = &origin.requests_for("r.bin")[0];
    assert_eq!(
        first.range.as_deref(),
        Some("bytes=1000-1019"),
        "only the range was asked of the bucket"
    );

    origin.inject(Fault::WrongContentRange);
    edge.put(BUCKET, "w.bin", data.clone(), None).await;
    let response = edge
        .request(
            reqwest::Method::GET,
            "c.test",
            "/w.bin",
            &[("range", "bytes=0-99")],
        )
        .await;
    assert_eq!(
        response.status(),
        502,
        "a Content-Range that does not answer the request is refused"
    );
}

/// A range asked while the whole object's fill is waiting on the bucket
/// waits for the bucket's answer with it, then follows that fill (cut by
/// the edge) when it is held in memory, instead of asking the bucket again;
/// a fill that turns out to go to disk only (a large object) is not
/// followed: the range is asked of the bucket (it waited for the whole
/// 400 MB fill to reach its bytes, before).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_range_asked_during_a_fill_follows_it_in_memory_and_asks_the_bucket_when_it_spills() {
    let (edge, origin, _) = edge_with("").await;
    for (key, len) in [("small.bin", 40 * 1024), ("large.bin", 10 * 1024 * 1024)] {
        let data = random_bytes(len, 23);
        edge.put(BUCKET, key, data.clone(), None).await;
        origin.inject(Fault::Stall(Duration::from_millis(400)));
        let path = format!("/{key}");
        let whole = edge.request(reqwest::Method::GET, "c.test", &path, &[]);
        let ranged = async {
            // The whole object's fill is waiting on the bucket by now.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let range = [("range", "bytes=1000-1999")];
            edge.request(reqwest::Method::GET, "c.test", &path, &range)
                .await
        };
        let (whole, ranged) = tokio::join!(whole, ranged);
        assert_eq!(ranged.status(), 206, "{key}");
        assert_eq!(
            ranged.headers()["content-range"],
            format!("bytes 1000-1999/{len}"),
            "{key}"
        );
        assert_eq!(
            &ranged.bytes().await.unwrap()[..],
            &data[1000..2000],
            "{key}"
        );
        assert_eq!(
            sha256(&whole.bytes().await.unwrap()),
            sha256(&data),
            "{key}"
        );
        let asked: Vec<_> = origin
            .requests_for(key)
            .iter()
            .map(|r| r.range.clone())
            .collect();
        if len < 8 << 20 {
            assert_eq!(asked, [None], "{key}: one whole GET, no ranged GET");
        } else {
            let range = Some("bytes=1000-1999".to_string());
            assert_eq!(asked, [None, range], "{key}: the range asked of the bucket");
        }
        origin.clear();
    }
}

#[tokio::test]
async fn a_missing_path_is_answered_from_the_cache_without_a_directory_probe() {
    let (builder, origins) = EdgeBuilder::new()
        .site(
            "c",
            &site_toml(
                "c.test",
                BUCKET,
                "[website]\nindex_document = \"index.html\"\nerror_document = \"error.html\"\n[cache]\nerror_ttl = \"30s\"\n",
            ),
        )
        .test_origins();
    let edge = builder.start();
    edge.create_bucket(BUCKET).await;
    let origin = origins.site("c");
    edge.put(BUCKET, "error.html", "not here", Some("text/html"))
        .await;
    let (status, _, body) = get(&edge, "/missing").await;
    assert_eq!((status, body.as_str()), (404, "not here"));
    let heads = origin.heads.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(heads, 0, "the probe is read through the cache, not a HEAD");
    assert_eq!(
        origin.gets_for("missing/index.html"),
        1,
        "the first request probes missing/index.html"
    );
    let gets = origin.gets();
    for _ in 0..3 {
        let (status, _, body) = get(&edge, "/missing").await;
        assert_eq!((status, body.as_str()), (404, "not here"));
    }
    assert_eq!(
        origin.heads.load(std::sync::atomic::Ordering::SeqCst),
        heads,
        "no HEAD within error_ttl"
    );
    assert_eq!(origin.gets(), gets, "no GET within error_ttl");
}

/// The directory probe is read through the cache: a burst of requests for
/// a missing path makes one probe, and `/dir` redirects to `/dir/` with one
/// origin request for `dir/index.html` however often it is asked, the
/// client's following request for `/dir/` a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn directory_probes_are_coalesced_and_stored() {
    let (edge, origin) = indexed_edge().await;
    origin.inject(Fault::Stall(Duration::from_millis(100)));
    let burst = (0..20).map(|_| get(&edge, "/gone.html"));
    for (status, _, _) in futures_util::future::join_all(burst).await {
        assert_eq!(status, 404);
    }
    assert_eq!(
        origin.gets_for("gone.html/index.html"),
        1,
        "one probe for the burst"
    );
    edge.put(BUCKET, "docs/index.html", "the docs", Some("text/html"))
        .await;
    for _ in 0..5 {
        let response = edge.get("c.test", "/docs").await;
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], "/docs/");
    }
    let (status, cache_status, body) = get(&edge, "/docs/").await;
    assert_eq!((status, body.as_str()), (200, "the docs"));
    assert_eq!(cache_status, "s3edge; hit");
    assert_eq!(origin.gets_for("docs/index.html"), 1);
    assert_eq!(origin.heads.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_304_with_a_later_expires_extends_the_entry_s_lifetime() {
    let (edge, origin, _) =
        edge_with("[cache]\nstale_while_revalidate = \"0s\"\nstale_if_error = \"0s\"\n").await;
    let put = |expires: std::time::SystemTime| {
        let edge = &edge;
        async move {
            edge.put_with(BUCKET, "e.html", "same body", |b| {
                b.content_type("text/html")
                    .expires(aws_sdk_s3::primitives::DateTime::from(expires))
            })
            .await;
        }
    };
    put(std::time::SystemTime::now() + Duration::from_secs(2)).await;
    assert_eq!(get(&edge, "/e.html").await.1, "s3edge; fwd=miss; stored");
    assert_eq!(get(&edge, "/e.html").await.1, "s3edge; hit");
    // The same bytes (so the same ETag) with an Expires an hour away.
    put(std::time::SystemTime::now() + Duration::from_secs(3600)).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(
        get(&edge, "/e.html").await.1,
        "s3edge; fwd=stale; fwd-status=304"
    );
    // Fresh for the hour the 304's Expires gives: no more origin requests.
    let gets = origin.gets_for("e.html");
    for _ in 0..3 {
        assert_eq!(get(&edge, "/e.html").await.1, "s3edge; hit");
    }
    assert_eq!(origin.gets_for("e.html"), gets);
}

/// A request is one lookup, counted under what its `Cache-Status` says,
/// however many reads its website rules make: a missing page served with a
/// cached error document went to the bucket (it said `hit`); a ranged miss
/// passed through is counted (it was not); requests that waited for another's
/// fetch say `collapsed` (RFC 9211) and count as hits; the reads behind the
/// scenes (the error document, the fill a range starts) count for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_request_is_one_lookup_counted_as_its_cache_status_says() {
    let (edge, origin, _) =
        edge_with("[website]\nindex_document = \"index.html\"\nerror_document = \"404.html\"\n")
            .await;
    edge.put(BUCKET, "404.html", "not here", Some("text/html"))
        .await;
    edge.put(BUCKET, "r.bin", random_bytes(4096, 3), None).await;
    edge.put(BUCKET, "c.html", "collapsed", Some("text/html"))
        .await;
    let lookups =
        |result: &str| format!("s3edge_cache_lookups_total{{site=\"c\",result=\"{result}\"}}");

    // The error document, cached by its own request: one miss.
    assert_eq!(get(&edge, "/404.html").await.1, "s3edge; fwd=miss; stored");
    // A missing page: a miss (the 404 is stored), whose error document is a hit.
    let (status, cache, body) = get(&edge, "/nothing.html").await;
    assert_eq!(
        (status, cache.as_str(), body.as_str()),
        (404, "s3edge; fwd=miss; stored", "not here")
    );
    assert_eq!(origin.gets_for("nothing.html"), 1);
    // Asked again: the stored 404 and the document, both hits.
    assert_eq!(get(&edge, "/nothing.html").await.1, "s3edge; hit");
    // A range of an object not cached: passed to the bucket (the whole
    // object is filled behind it, which is no lookup).
    let ranged = edge
        .request(
            reqwest::Method::GET,
            "c.test",
            "/r.bin",
            &[("range", "bytes=0-9")],
        )
        .await;
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()["cache-status"], "s3edge; fwd=bypass");
    assert_eq!(ranged.bytes().await.unwrap().len(), 10);
    // Concurrent first requests: one leads, the others wait for it.
    origin.inject(Fault::Stall(Duration::from_millis(300)));
    let burst = (0..8).map(|_| get(&edge, "/c.html"));
    let mut statuses: Vec<String> = futures_util::future::join_all(burst)
        .await
        .into_iter()
        .map(|(status, cache, body)| {
            assert_eq!((status, body.as_str()), (200, "collapsed"));
            cache
        })
        .collect();
    statuses.sort();
    let led = statuses
        .iter()
        .filter(|s| *s == "s3edge; fwd=miss; stored")
        .count();
    let followed = statuses
        .iter()
        .filter(|s| *s == "s3edge; fwd=miss; collapsed")
        .count();
    assert_eq!((led, followed), (1, 7), "{statuses:?}");
    assert_eq!(origin.gets_for("c.html"), 1);

    // 12 requests: misses for /404.html, /nothing.html and the leader; a hit
    // for /nothing.html again and the 7 followers; a pass for the range.
    for (result, want) in [("miss", 3), ("hit", 8), ("pass", 1)] {
        let got = edge.wait_metric(&lookups(result), |got| got == want).await;
        assert_eq!(got, want, "{result}");
    }
    // The range's fill behind the scenes has stored the object by now, and
    // was not counted.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(edge.metric(&lookups("miss")).await, 3);
    assert_eq!(edge.metric(&lookups("hit")).await, 8);
}
