//! Files an operator put in a bucket's directory by hand: their ETag is their MD5,
//! computed once by the store, even when that takes longer than a request may wait.

use std::time::Instant;

use super::harness::*;
use crate::common::{site_toml, EdgeBuilder};

const HOST: &str = "hashed.test";

/// The file's length, and its MD5 (`head -c 268435456 /dev/zero | md5sum`).
const LEN: u64 = 256 << 20;
const MD5: &str = "1f5039e50bd66b290c56684d8550c6c2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_put_in_by_hand_is_served_once_its_hash_ends_past_the_timeout() {
    // Hashing 256 MiB takes longer than the site's origin timeout, so the first
    // requests time out; the hash must go on without them and be kept.
    let edge = EdgeBuilder::new()
        .site("hashed", &site_toml(HOST, BUCKET, "timeout = \"200ms\"\n"))
        .bucket(BUCKET)
        .start();
    let path = edge.dir.path().join("buckets").join(BUCKET).join("big.bin");
    let file = std::fs::File::create(&path).expect("create by hand");
    file.set_len(LEN).expect("zeros");
    drop(file);

    let started = Instant::now();
    let first = edge.get(HOST, "/big.bin").await;
    assert_eq!(first.status(), 504, "the hash ended within the timeout");
    let deadline = started + Duration::from_secs(60);
    let mut timed_out = 1;
    let mut served = loop {
        let response = edge.get(HOST, "/big.bin").await;
        if response.status() == 200 {
            break response;
        }
        assert_eq!(response.status(), 504);
        timed_out += 1;
        assert!(
            Instant::now() < deadline,
            "still 504 after {timed_out} requests in {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "200 after {timed_out} timed-out requests, {:?}",
        started.elapsed()
    );
    let etag = served.headers().get("etag").expect("etag");
    assert_eq!(etag.to_str().expect("etag text"), format!("\"{MD5}\""));
    assert_eq!(served.content_length(), Some(LEN));
    // The first MiB of the body (all of it would stream 256 MiB under the
    // 200 ms timeout between chunks: a flaky test on a loaded machine).
    let mut received = 0;
    while received < 1 << 20 {
        let chunk = served.chunk().await.expect("body").expect("more body");
        assert!(chunk.iter().all(|b| *b == 0));
        received += chunk.len() as u64;
    }
}
