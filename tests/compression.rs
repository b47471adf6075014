//! Compression end to end: negotiation, variants cached once and served many
//! times, sidecars, Vary, validators per variant, ranges and HEAD.
#![cfg(feature = "embedded")]

mod common;

use std::io::{Read, Write};

use common::{gunzip, site_toml, Edge, EdgeBuilder, TestOrigin};
use reqwest::Method;

const BUCKET: &str = "zip-bucket";

fn css() -> Vec<u8> {
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!(
            ".rule-{i} {{ margin: {i}px; color: #{:06x}; display: flex; }}\n",
            i * 7919 % 0xffffff
        ));
    }
    text.into_bytes()
}

async fn edge() -> (Edge, std::sync::Arc<TestOrigin>) {
    let (builder, origins) = EdgeBuilder::new()
        .site("z", &site_toml("z.test", BUCKET, ""))
        .test_origins();
    let edge = builder.start();
    edge.create_bucket(BUCKET).await;
    (edge, origins.site("z"))
}

fn unbrotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(data, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

async fn get(
    edge: &Edge,
    path: &str,
    headers: &[(&str, &str)],
) -> (reqwest::header::HeaderMap, Vec<u8>, u16) {
    let response = edge.request(Method::GET, "z.test", path, headers).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (headers, response.bytes().await.unwrap().to_vec(), status)
}

#[tokio::test]
async fn each_coding_round_trips_and_the_second_request_is_served_from_the_cache() {
    let (edge, origin) = edge().await;
    let data = css();
    edge.put(BUCKET, "site.css", data.clone(), Some("text/css"))
        .await;
    let (identity, _, _) = get(&edge, "/site.css", &[]).await;
    let identity_etag = identity["etag"].to_str().unwrap().to_string();
    assert_eq!(
        identity["vary"], "Accept-Encoding",
        "identity answers of a compressible resource vary too"
    );
    assert!(identity.get("content-encoding").is_none());
    for (coding, decode) in [("br", unbrotli as fn(&[u8]) -> Vec<u8>), ("gzip", gunzip)] {
        let (first, body, status) = get(&edge, "/site.css", &[("accept-encoding", coding)]).await;
        assert_eq!(status, 200);
        assert_eq!(first["content-encoding"], coding);
        assert_eq!(first["vary"], "Accept-Encoding");
        let etag = first["etag"].to_str().unwrap();
        assert_ne!(etag, identity_etag, "a variant has its own ETag");
        assert!(etag.ends_with(&format!("-{coding}\"")), "{etag}");
        assert!(
            body.len() < data.len() / 3,
            "{coding}: {} bytes",
            body.len()
        );
        assert_eq!(decode(&body), data, "{coding} round trip");
        let (second, again, _) = get(&edge, "/site.css", &[("accept-encoding", coding)]).await;
        assert_eq!(again, body, "{coding}: compressed once, served again");
        assert_eq!(
            second["content-length"],
            body.len().to_string(),
            "cached variants carry Content-Length"
        );
        assert_eq!(second["cache-status"], "s3edge; hit");
    }
    assert_eq!(
        origin.gets_for("site.css"),
        1,
        "the identity was fetched once for every variant"
    );
}

#[tokio::test]
async fn q_values_and_the_site_preference_choose_the_coding() {
    let (edge, _) = edge().await;
    edge.put(BUCKET, "app.js", css(), Some("application/javascript"))
        .await;
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "equal ranks follow the site's order (br first)",
            "gzip, br",
            Some("br"),
        ),
        ("a higher q wins", "gzip;q=1, br;q=0.5", Some("gzip")),
        ("q=0 refuses a coding", "br;q=0, gzip", Some("gzip")),
        ("a wildcard accepts br", "*", Some("br")),
        ("identity only gets identity", "identity", None),
        ("an unknown coding gets identity", "zstd", None),
        ("x-gzip is gzip", "x-gzip", Some("gzip")),
    ];
    for (name, accept, want) in cases {
        let (headers, _, status) = get(&edge, "/app.js", &[("accept-encoding", accept)]).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(
            headers.get("content-encoding").map(|v| v.to_str().unwrap()),
            *want,
            "{name}"
        );
    }
}

#[tokio::test]
async fn small_binary_and_already_encoded_bodies_are_left_alone() {
    let (edge, _) = edge().await;
    edge.put(BUCKET, "tiny.css", "a{}", Some("text/css")).await;
    edge.put(
        BUCKET,
        "photo.png",
        common::random_bytes(50_000, 3),
        Some("image/png"),
    )
    .await;
    let pre = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&css()).unwrap();
        e.finish().unwrap()
    };
    edge.put_with(BUCKET, "pre.css", pre.clone(), |p| {
        p.content_type("text/css").content_encoding("gzip")
    })
    .await;
    for path in ["/tiny.css", "/photo.png"] {
        let (headers, _, _) = get(&edge, path, &[("accept-encoding", "br, gzip")]).await;
        assert!(headers.get("content-encoding").is_none(), "{path}");
        assert!(
            headers.get("vary").is_none(),
            "{path}: not compressible, so no Vary"
        );
    }
    let (headers, body, _) = get(&edge, "/pre.css", &[("accept-encoding", "br")]).await;
    assert_eq!(
        headers["content-encoding"], "gzip",
        "an encoded object passes untouched"
    );
    assert_eq!(body, pre, "never double-encoded");
}

#[tokio::test]
async fn a_precompressed_sidecar_is_preferred_and_its_absence_is_cached() {
    let (edge, origin) = edge().await;
    let data = css();
    let mut sidecar = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut sidecar, 4096, 5, 22);
        w.write_all(&data).unwrap();
    }
    edge.put(BUCKET, "main.css", data.clone(), Some("text/css"))
        .await;
    edge.put(
        BUCKET,
        "main.css.br",
        sidecar.clone(),
        Some("application/octet-stream"),
    )
    .await;
    let (headers, body, _) = get(&edge, "/main.css", &[("accept-encoding", "br")]).await;
    assert_eq!(headers["content-encoding"], "br");
    assert_eq!(
        headers["content-type"], "text/css; charset=utf-8",
        "the original key's type"
    );
    assert_eq!(
        body, sidecar,
        "the sidecar's bytes, not a fresh compression"
    );
    // Cached once: the identity and its variant, not the sidecar again as an
    // entry of its own, in either tier.
    for tier in ["memory", "disk"] {
        let series = format!("s3edge_cache_entries{{tier=\"{tier}\"}}");
        edge.wait_metric(&series, |held| held >= 2).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(edge.cache_entries(tier).await, 2, "{tier} tier");
    }
    let (headers, body, _) = get(&edge, "/main.css", &[("accept-encoding", "br")]).await;
    assert_eq!(headers["cache-status"], "s3edge; hit");
    assert_eq!(body, sidecar, "the variant, from the cache");
    for _ in 0..3 {
        let (headers, _, _) = get(&edge, "/main.css", &[("accept-encoding", "gzip")]).await;
        assert_eq!(headers["content-encoding"], "gzip");
    }
    assert_eq!(origin.gets_for("main.css.br"), 1);
    assert_eq!(
        origin.gets_for("main.css.gz"),
        1,
        "a missing sidecar is looked up once"
    );
    // Purged, the variant is made again from the sidecar, asked of the
    // origin once more; a client's own request for the sidecar stores it as
    // any object.
    let purged = edge
        .http
        .post(edge.admin_url("/purge"))
        .header("content-type", "application/json")
        .body(r#"{"site": "z", "paths": ["/main.css"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);
    let (headers, body, _) = get(&edge, "/main.css", &[("accept-encoding", "br")]).await;
    assert_eq!(headers["content-encoding"], "br");
    assert_eq!(body, sidecar);
    assert_eq!(origin.gets_for("main.css.br"), 2);
    for expected in ["s3edge; fwd=miss; stored", "s3edge; hit"] {
        let (headers, direct, _) = get(&edge, "/main.css.br", &[]).await;
        assert_eq!(direct, sidecar);
        assert_eq!(headers["cache-status"], expected);
    }
    assert_eq!(origin.gets_for("main.css.br"), 3);
}

/// An object that may not be stored (`no-store`, `private`) is compressed
/// for each answer and its variant stored nowhere (RFC 9111 section 3: no
/// part of it), so no answer carries an `Age`.
#[tokio::test]
async fn the_variant_of_an_object_that_may_not_be_stored_is_stored_nowhere() {
    let (edge, origin) = edge().await;
    let data = css();
    for (key, cache_control) in [("ns.css", "no-store"), ("pv.css", "private, max-age=60")] {
        edge.put_with(BUCKET, key, data.clone(), |b| {
            b.content_type("text/css").cache_control(cache_control)
        })
        .await;
        for coding in ["gzip", "br", "gzip"] {
            let (headers, body, status) =
                get(&edge, &format!("/{key}"), &[("accept-encoding", coding)]).await;
            assert_eq!(status, 200);
            assert_eq!(headers["content-encoding"], coding, "{key}");
            assert!(headers.get("age").is_none(), "{key}: {headers:?}");
            let decoded = match coding {
                "gzip" => gunzip(&body),
                _ => unbrotli(&body),
            };
            assert!(decoded == data, "{key} {coding}");
        }
        assert_eq!(
            origin.gets_for(key),
            3,
            "{key}: every answer from the bucket"
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for tier in ["memory", "disk"] {
        assert_eq!(edge.cache_entries(tier).await, 0, "{tier} tier");
    }
}

#[tokio::test]
async fn conditionals_work_per_variant_ranges_get_identity_and_head_matches_get() {
    let (edge, _) = edge().await;
    let data = css();
    edge.put(BUCKET, "v.css", data.clone(), Some("text/css"))
        .await;
    let (br, _, _) = get(&edge, "/v.css", &[("accept-encoding", "br")]).await;
    let br_etag = br["etag"].to_str().unwrap().to_string();
    assert!(
        br_etag.starts_with("W/\"") && br_etag.ends_with("-br\""),
        "a compressed variant's ETag is weak: {br_etag}"
    );
    let (not_modified, body, status) = get(
        &edge,
        "/v.css",
        &[("accept-encoding", "br"), ("if-none-match", &br_etag)],
    )
    .await;
    assert_eq!(status, 304, "If-None-Match with the variant ETag");
    assert!(body.is_empty());
    assert_eq!(not_modified["vary"], "Accept-Encoding");
    assert_eq!(not_modified["etag"], br_etag.as_str());
    let (_, _, status) = get(
        &edge,
        "/v.css",
        &[("accept-encoding", "gzip"), ("if-none-match", &br_etag)],
    )
    .await;
    assert_eq!(status, 200, "the br ETag does not match the gzip variant");

    // A cached object's range, and (`fwd=bypass`) a range of one not cached,
    // which goes to the bucket: both come from the identity, and vary.
    edge.put(BUCKET, "cold.css", data.clone(), Some("text/css"))
        .await;
    for (path, coding, spec, cut, cache_status) in [
        ("/v.css", "br", "bytes=0-9", 0..10, "s3edge; hit"),
        (
            "/cold.css",
            "gzip",
            "bytes=5-14",
            5..15,
            "s3edge; fwd=bypass",
        ),
    ] {
        let (range, body, status) =
            get(&edge, path, &[("accept-encoding", coding), ("range", spec)]).await;
        assert_eq!(status, 206, "{path}");
        assert!(
            range.get("content-encoding").is_none(),
            "{path}: ranges are served from the identity"
        );
        assert_eq!(body, &data[cut], "{path}");
        assert_eq!(range["vary"], "Accept-Encoding", "{path}");
        assert_eq!(range["cache-status"], cache_status, "{path}");
    }

    let head = edge
        .request(
            Method::HEAD,
            "z.test",
            "/v.css",
            &[("accept-encoding", "br")],
        )
        .await;
    assert_eq!(head.headers()["content-encoding"], "br");
    assert_eq!(head.headers()["etag"], br_etag.as_str());
    assert_eq!(head.headers()["vary"], "Accept-Encoding");
    let (cached, _, _) = get(&edge, "/v.css", &[("accept-encoding", "br")]).await;
    assert_eq!(
        head.headers()["content-length"],
        cached["content-length"],
        "HEAD gives the cached GET's headers"
    );
}

#[tokio::test]
async fn http_1_0_requests_get_identity() {
    let (edge, _) = edge().await;
    edge.put(BUCKET, "old.css", css(), Some("text/css")).await;
    let mut stream = std::net::TcpStream::connect(edge.node.http_addrs[0]).unwrap();
    stream
        .write_all(b"GET /old.css HTTP/1.0\r\nHost: z.test\r\nAccept-Encoding: br, gzip\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let head = text.split("\r\n\r\n").next().unwrap();
    assert!(
        head.starts_with("http/1.0 200") || head.starts_with("http/1.1 200"),
        "{head}"
    );
    assert!(!head.contains("content-encoding"), "{head}");
}

#[tokio::test]
async fn the_error_documents_body_is_compressed_with_its_404_status() {
    let (builder, _) = EdgeBuilder::new()
        .site(
            "w",
            &site_toml(
                "w.test",
                BUCKET,
                "[website]\nindex_document = \"index.html\"\nerror_document = \"error.html\"\n",
            ),
        )
        .test_origins();
    let edge = builder.start();
    edge.create_bucket(BUCKET).await;
    let page = css();
    edge.put(BUCKET, "error.html", page.clone(), Some("text/html"))
        .await;
    for _ in 0..2 {
        let response = edge
            .request(
                Method::GET,
                "w.test",
                "/missing",
                &[("accept-encoding", "gzip")],
            )
            .await;
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()["content-encoding"], "gzip");
        assert_eq!(response.headers()["vary"], "Accept-Encoding");
        assert_eq!(gunzip(&response.bytes().await.unwrap()), page);
    }
}

/// A variant's first answer, made from a cached identity, is as old as the
/// identity, like its later hits: it had no `Age`, so a browser or a cache
/// downstream took a copy already seconds old for a new one.
#[tokio::test]
async fn the_first_answer_of_a_variant_is_as_old_as_its_identity() {
    let (edge, _) = edge().await;
    edge.put(BUCKET, "old.css", css(), Some("text/css")).await;
    edge.put(BUCKET, "side.css", css(), Some("text/css")).await;
    edge.put(BUCKET, "side.css.br", css(), Some("text/css"))
        .await;
    for key in ["/old.css", "/side.css"] {
        assert!(get(&edge, key, &[]).await.0.get("age").is_none());
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for (key, coding) in [
        ("/old.css", "gzip"),
        ("/old.css", "br"),
        ("/side.css", "br"),
    ] {
        for answer in ["first", "second"] {
            let (headers, _, _) = get(&edge, key, &[("accept-encoding", coding)]).await;
            assert_eq!(headers["content-encoding"], coding, "{key} {coding}");
            let age: u64 = headers
                .get("age")
                .unwrap_or_else(|| panic!("{key} {coding}, {answer} answer: no Age"))
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((2..=4).contains(&age), "{key} {coding} {answer}: age {age}");
        }
    }
}
