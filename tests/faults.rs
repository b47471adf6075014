//! Origin faults injected at the HTTP level: a proxy (`common/fault_proxy.rs`)
//! sits between the edge's real aws-sdk-s3 client and the embedded store, so each
//! fault goes through the SDK's parsing and retries and `src/origin/s3.rs`'s
//! classification, as it would from a real bucket.
//!
//! For each fault: the documented status (README "What a request goes through", stage 7: 502, 504 for
//! a timeout), no S3 XML or `x-amz-*` header reaches the client, nothing partial is
//! cached, a stale copy is served where the site allows stale-if-error, and the
//! node recovers when the origin does.
//!
//! Covered elsewhere, through other seams: a stopped store and a wrong secret
//! (`serve.rs`: `a_stopped_origin_is_a_502_and_a_wrong_secret_is_a_502_logged_with_its_s3_code`),
//! a listener that never answers (`serve.rs`: `an_origin_that_never_answers_is_a_504_after_the_site_timeout`),
//! and the same faults from the `TestOrigin` double (`cache.rs`).
#![cfg(feature = "embedded")]

mod common;

use std::time::{Duration, Instant};

use common::fault_proxy::{FaultProxy, HttpFault, FAULT_REQUEST_ID, GARBAGE_BODY};
use common::{random_bytes, sha256, Edge, EdgeBuilder};
use reqwest::Method;
use s3edge::origin::embedded::{DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY};

const BUCKET: &str = "faults";
const HOST: &str = "f.test";
/// Stale copies may be served for an hour when the origin fails, never while
/// it is merely being revalidated.
const STALE_IF_ERROR: &str = "[cache]\nstale_while_revalidate = \"0s\"\nstale_if_error = \"1h\"\n";
/// The SDK's attempts per origin request (`MAX_ATTEMPTS` in `src/origin/s3.rs`).
const SDK_ATTEMPTS: usize = 2;

/// An edge whose site reaches its own embedded store through a [`FaultProxy`],
/// with static keys from the environment and the given origin `timeout`.
struct Faulty {
    edge: Edge,
    proxy: FaultProxy,
}

async fn faulty(timeout: &str, extra: &str) -> Faulty {
    std::env::set_var("S3EDGE_FAULTS_KEY", DEFAULT_ACCESS_KEY);
    std::env::set_var("S3EDGE_FAULTS_SECRET", DEFAULT_SECRET_KEY);
    let proxy = FaultProxy::start();
    let site = format!(
        "hosts = [\"{HOST}\"]\n[origin]\nbucket = \"{BUCKET}\"\nendpoint = \"{}\"\n\
         access_key_id_env = \"S3EDGE_FAULTS_KEY\"\nsecret_access_key_env = \"S3EDGE_FAULTS_SECRET\"\n\
         timeout = \"{timeout}\"\n{extra}",
        proxy.url()
    );
    let edge = EdgeBuilder::new().site("f", &site).start();
    proxy.set_upstream(edge.node.embedded_addr.expect("embedded store"));
    edge.create_bucket(BUCKET).await;
    Faulty { edge, proxy }
}

impl Faulty {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.edge.get(HOST, path).await
    }

    async fn put(&self, key: &str, data: &[u8], cache_control: Option<&str>) {
        self.edge
            .put_with(BUCKET, key, data.to_vec(), |p| {
                let p = p.content_type("application/octet-stream");
                match cache_control {
                    Some(c) => p.cache_control(c),
                    None => p,
                }
            })
            .await;
    }

    async fn origin_outcomes(&self, outcome: &str) -> u64 {
        self.edge
            .metric(&format!(
                "s3edge_origin_requests_total{{site=\"f\",outcome=\"{outcome}\"}}"
            ))
            .await
    }
}

fn cache_status(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The body of an error answer, after checking nothing of S3 reached the client.
async fn clean_error_body(response: reqwest::Response, what: &str) -> String {
    for (name, _) in response.headers() {
        assert!(!name.as_str().starts_with("x-amz"), "{what}: header {name}");
    }
    let body = response.text().await.unwrap();
    for leak in [
        "<?xml",
        "<Error>",
        "<Code>",
        "SlowDown",
        "InternalError",
        FAULT_REQUEST_ID,
        "fault-proxy",
        "GARBAGE",
        GARBAGE_BODY,
    ] {
        assert!(!body.contains(leak), "{what}: `{leak}` in the body: {body}");
    }
    assert!(body.contains("<h1>"), "{what}: the edge's own page: {body}");
    body
}

/// The response body, which must be complete and exactly `data`.
async fn assert_exact(response: reqwest::Response, data: &[u8], what: &str) {
    assert_eq!(response.status(), 200, "{what}");
    let body = response.bytes().await.expect(what);
    assert_eq!(body.len(), data.len(), "{what}: length");
    assert_eq!(sha256(&body), sha256(data), "{what}: bytes");
}

/// What a fault that fails before the body must give.
struct Expected {
    status: u16,
    /// Requests the proxy sees for one client request (the SDK's retries included).
    attempts: usize,
    /// The `outcome` label of `s3edge_origin_requests_total`.
    outcome: &'static str,
    /// Words of the edge's error page.
    says: &'static str,
}

/// The matrix row for a fault that fails before any body byte: a key never
/// cached gets the documented status and no trace of S3; a stale copy is served
/// instead; once the fault clears, both keys are served complete and exact, and
/// what is cached then is a whole copy.
async fn fault_before_the_body(fault: HttpFault, timeout: &str, want: Expected) {
    let f = faulty(timeout, STALE_IF_ERROR).await;
    let fresh = random_bytes(200_000, 1);
    let stale = random_bytes(50_000, 2);
    f.put("fresh.bin", &fresh, None).await;
    f.put("stale.bin", &stale, Some("max-age=1")).await;
    assert_exact(f.get("/stale.bin").await, &stale, "warming").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    f.proxy.set(fault.clone());
    f.proxy.reset_counts();
    let response = f.get("/fresh.bin").await;
    assert_eq!(response.status().as_u16(), want.status, "{fault:?}");
    assert_eq!(response.headers()["cache-control"], "no-store", "{fault:?}");
    let body = clean_error_body(response, &format!("{fault:?}")).await;
    assert!(body.contains(want.says), "{fault:?}: {body}");
    assert_eq!(
        f.proxy.attempts(),
        want.attempts,
        "{fault:?}: requests the origin saw: {:?}",
        f.proxy.request_lines()
    );
    assert_eq!(f.origin_outcomes(want.outcome).await, 1, "{fault:?}");

    let response = f.get("/stale.bin").await;
    assert_eq!(
        cache_status(&response),
        "s3edge; fwd=stale; detail=stale-if-error",
        "{fault:?}"
    );
    assert_exact(response, &stale, "the stale copy").await;

    f.proxy.clear();
    let response = f.get("/fresh.bin").await;
    assert_eq!(cache_status(&response), "s3edge; fwd=miss; stored");
    assert_exact(response, &fresh, "after recovery").await;
    let response = f.get("/fresh.bin").await;
    assert_eq!(cache_status(&response), "s3edge; hit");
    assert_exact(response, &fresh, "the cached copy").await;
    let response = f.get("/stale.bin").await;
    assert_eq!(
        cache_status(&response),
        "s3edge; fwd=stale; fwd-status=304",
        "the stale copy is revalidated once the origin is back"
    );
    assert_exact(response, &stale, "the revalidated copy").await;
}

#[tokio::test]
async fn a_503_slowdown_is_retried_then_a_502_without_its_xml_and_a_stale_copy_covers_it() {
    fault_before_the_body(
        HttpFault::SlowDown,
        "8s",
        Expected {
            status: 502,
            attempts: SDK_ATTEMPTS,
            outcome: "rejected",
            says: "The origin refused the request.",
        },
    )
    .await;
}

#[tokio::test]
async fn a_500_with_an_xml_internal_error_is_retried_then_a_502_and_the_node_recovers() {
    fault_before_the_body(
        HttpFault::InternalError,
        "8s",
        Expected {
            status: 502,
            attempts: SDK_ATTEMPTS,
            outcome: "rejected",
            says: "The origin refused the request.",
        },
    )
    .await;
}

#[tokio::test]
async fn a_500_with_a_garbage_non_xml_body_is_a_502_that_shows_none_of_it() {
    fault_before_the_body(
        HttpFault::GarbageError,
        "8s",
        Expected {
            status: 502,
            attempts: SDK_ATTEMPTS,
            outcome: "rejected",
            says: "The origin refused the request.",
        },
    )
    .await;
}

#[tokio::test]
async fn a_refused_connection_is_a_502_and_a_stale_copy_covers_it() {
    fault_before_the_body(
        HttpFault::Refuse,
        "8s",
        Expected {
            status: 502,
            attempts: 0,
            outcome: "unreachable",
            says: "The origin could not be reached.",
        },
    )
    .await;
}

#[tokio::test]
async fn a_stalled_origin_is_a_504_after_the_site_timeout_and_a_stale_copy_covers_it() {
    let started = Instant::now();
    fault_before_the_body(
        HttpFault::Stall,
        "1500ms",
        Expected {
            status: 504,
            attempts: 1,
            outcome: "timeout",
            says: "The origin did not answer in time.",
        },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "two stalls of 1.5 s took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn without_stale_if_error_a_stale_copy_is_not_served_when_the_origin_fails() {
    let f = faulty(
        "8s",
        "[cache]\nstale_while_revalidate = \"0s\"\nstale_if_error = \"0s\"\n",
    )
    .await;
    let data = random_bytes(10_000, 4);
    f.put("s.bin", &data, Some("max-age=1")).await;
    assert_exact(f.get("/s.bin").await, &data, "warming").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    f.proxy.set(HttpFault::InternalError);
    let response = f.get("/s.bin").await;
    assert_eq!(response.status(), 502);
    clean_error_body(response, "no stale-if-error").await;
    f.proxy.clear();
    assert_exact(f.get("/s.bin").await, &data, "after recovery").await;
}

/// Reads a response that must be cut short: never presented as complete.
async fn assert_cut(response: reqwest::Response, full: usize, what: &str) {
    assert_eq!(response.status(), 200, "{what}");
    assert_eq!(
        response.headers()["content-length"],
        full.to_string(),
        "{what}"
    );
    match response.bytes().await {
        Err(_) => {}
        Ok(body) => panic!(
            "{what}: a body of {} bytes was presented as complete ({full} announced)",
            body.len()
        ),
    }
}

#[tokio::test]
async fn a_content_length_mismatch_cuts_the_response_and_caches_nothing_short() {
    let f = faulty("8s", STALE_IF_ERROR).await;
    let data = random_bytes(300_000, 5);
    f.put("t.bin", &data, None).await;
    f.proxy.set(HttpFault::ShortBody(100_000));
    for round in 0..2 {
        assert_cut(f.get("/t.bin").await, data.len(), &format!("round {round}")).await;
    }
    assert_eq!(
        f.proxy.attempts(),
        2,
        "the second request went to the origin again: no short copy was cached"
    );

    // A stale copy whose object changed: the refill is cut, and never replaces it
    // with a short one.
    let old = random_bytes(120_000, 6);
    let new = random_bytes(150_000, 7);
    f.proxy.clear();
    f.put("c.bin", &old, Some("max-age=1")).await;
    assert_exact(f.get("/c.bin").await, &old, "warming").await;
    f.put("c.bin", &new, Some("max-age=1")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    f.proxy.set(HttpFault::ShortBody(50_000));
    assert_cut(f.get("/c.bin").await, new.len(), "the refill").await;

    f.proxy.clear();
    assert_exact(f.get("/t.bin").await, &data, "after recovery").await;
    let response = f.get("/t.bin").await;
    assert_eq!(cache_status(&response), "s3edge; hit");
    assert_exact(response, &data, "the cached copy").await;
    assert_exact(f.get("/c.bin").await, &new, "the changed object").await;
    let response = f.get("/c.bin").await;
    assert_eq!(cache_status(&response), "s3edge; hit");
    assert_exact(response, &new, "the changed object's cached copy").await;
}

#[tokio::test]
async fn a_body_that_stalls_midway_is_cut_after_the_site_timeout_and_not_cached() {
    let f = faulty("1500ms", STALE_IF_ERROR).await;
    let data = random_bytes(400_000, 8);
    f.put("s.bin", &data, None).await;
    f.proxy.set(HttpFault::StallBody(64 * 1024));
    for round in 0..2 {
        let started = Instant::now();
        assert_cut(f.get("/s.bin").await, data.len(), &format!("round {round}")).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1200) && took < Duration::from_secs(10),
            "round {round}: the stalled body was cut after {took:?}"
        );
    }
    assert_eq!(f.proxy.attempts(), 2, "nothing partial was cached");
    assert!(f.origin_outcomes("ok").await >= 2);
    f.proxy.clear();
    assert_exact(f.get("/s.bin").await, &data, "after recovery").await;
    let response = f.get("/s.bin").await;
    assert_eq!(cache_status(&response), "s3edge; hit");
    assert_exact(response, &data, "the cached copy").await;
}

#[tokio::test]
async fn a_206_or_200_whose_content_range_does_not_match_the_request_is_a_502_and_nothing_is_cached(
) {
    let f = faulty("8s", STALE_IF_ERROR).await;
    let data = random_bytes(100_000, 9);
    f.put("r.bin", &data, None).await;
    let ranged = || {
        f.edge
            .request(Method::GET, HOST, "/r.bin", &[("range", "bytes=0-99")])
    };
    for (fault, status_line) in [
        (HttpFault::WrongContentRange, "HTTP/1.1 206 Partial Content"),
        (HttpFault::WrongContentRangeOn200, "HTTP/1.1 200 OK"),
    ] {
        f.proxy.set(fault.clone());
        f.proxy.reset_counts();
        for round in 0..2 {
            let response = ranged().await;
            assert_eq!(response.status(), 502, "{fault:?} round {round}");
            clean_error_body(response, "a wrong Content-Range").await;
        }
        assert_eq!(
            f.proxy.attempts(),
            2,
            "{fault:?}: no retry of a received answer"
        );
        assert_eq!(f.proxy.status_lines(), vec![status_line; 2], "{fault:?}");
    }
    assert_eq!(f.origin_outcomes("ok").await, 4);
    f.proxy.clear();
    let response = ranged().await;
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["content-range"], "bytes 0-99/100000");
    assert_eq!(&response.bytes().await.unwrap()[..], &data[..100]);
    assert_exact(f.get("/r.bin").await, &data, "the whole object").await;
}

/// An origin failing while `/dir` is checked for `dir/index.html` is an origin
/// error (502), not a missing index document (which gave the error document
/// with 404 before the fix in `Lookup::origin_exists`).
#[tokio::test]
async fn an_origin_failing_the_directory_index_check_is_a_502_not_a_404() {
    let f = faulty(
        "8s",
        "[website]\nindex_document = \"index.html\"\nerror_document = \"error.html\"\n",
    )
    .await;
    f.put("dir/index.html", b"index", None).await;
    f.put("error.html", b"the error page", None).await;
    assert_eq!(f.get("/nothing-here").await.status(), 404);
    let response = f.get("/dir").await;
    assert_eq!(response.status(), 302, "with the origin up");
    f.proxy.set(HttpFault::InternalError);
    f.proxy.reset_counts();
    // The probe of `/dir` stored `dir/index.html`: known without the origin.
    assert_eq!(f.get("/dir").await.status(), 302, "from the cache");
    assert!(f.proxy.request_lines().is_empty());
    // Purged (`dir` itself stays a stored 404), the probe asks the origin.
    let purged = f
        .edge
        .http
        .post(f.edge.admin_url("/purge"))
        .body(r#"{"site":"f","paths":["/dir/index.html"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);
    let response = f.get("/dir").await;
    assert!(
        f.proxy
            .request_lines()
            .iter()
            .all(|l| l.starts_with("GET /faults/dir/index.html")),
        "{:?}",
        f.proxy.request_lines()
    );
    assert_eq!(
        response.status(),
        502,
        "the origin failed, the key may exist"
    );
    clean_error_body(response, "a failed index check").await;
}

/// Requests that wait on a revalidation the origin fails are served the
/// stale copy as stale-if-error, as the request that asked is: they said
/// `fwd=miss; collapsed` and were counted as hits, and a peer node asking
/// the owner whether its copy was current got a 304 for it, so that node
/// reported a successful revalidation during the outage.
#[tokio::test(flavor = "multi_thread")]
async fn requests_waiting_on_a_failed_revalidation_are_stale_if_error_too() {
    let f = faulty("1500ms", STALE_IF_ERROR).await;
    let stale = random_bytes(20_000, 3);
    f.put("stale.bin", &stale, Some("max-age=1")).await;
    assert_exact(f.get("/stale.bin").await, &stale, "warming").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    f.proxy.set(HttpFault::Stall);
    f.proxy.reset_counts();
    let first = f.get("/stale.bin");
    let waiting = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        futures_util::future::join_all((0..4).map(|_| f.get("/stale.bin"))).await
    };
    let (first, waiting) = tokio::join!(first, waiting);
    assert_eq!(f.proxy.attempts(), 1, "one revalidation for all");
    for response in std::iter::once(first).chain(waiting) {
        assert_eq!(
            cache_status(&response),
            "s3edge; fwd=stale; detail=stale-if-error"
        );
        assert_exact(response, &stale, "the stale copy").await;
    }
    let stale_served = f
        .edge
        .metric("s3edge_cache_lookups_total{site=\"f\",result=\"stale\"}")
        .await;
    assert_eq!(stale_served, 5);
}
