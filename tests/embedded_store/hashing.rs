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

/// A file replaced by hand (renamed over, as a deploy's copy does) while it
/// is read: every answer's ETag is the MD5 of the body it comes with. The
/// store opened the file after it had hashed it, and about one read in
/// seventy under this race sent one version's body with another's ETag,
/// which a cache then kept as a pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_while_it_is_read_never_gets_another_version_s_etag() {
    let store = harness().await;
    let dir = store.root.path().join(BUCKET);
    let path = dir.join("race.bin");
    std::fs::write(&path, vec![0u8; 200_000]).expect("first version");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let replacing = {
        let (done, dir, path) = (done.clone(), dir.clone(), path.clone());
        std::thread::spawn(move || {
            let mut version = 0u8;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                version = version.wrapping_add(1);
                let aside = dir.join(format!(".race.{version}"));
                std::fs::write(&aside, vec![version; 200_000]).expect("next version");
                std::fs::rename(&aside, &path).expect("rename over");
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut checked = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let (etag, body) = etag_and_body(&store.s3, "race.bin").await;
        assert_eq!(etag, md5_hex(&body), "after {checked} good reads");
        checked += 1;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    replacing.join().expect("replacer");
    assert!(checked > 10, "{checked} reads");
}

/// An object uploaded through S3, then replaced by hand (renamed over, as
/// rsync and `mv` do; or written over in place, as `cp` does): its ETag is
/// the new body's MD5. The upload's record was trusted for ever, so a cache
/// revalidating the object got 304s and served the uploaded body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_object_replaced_by_hand_gets_its_new_etag() {
    let store = harness().await;
    let dir = store.root.path().join(BUCKET);
    let path = dir.join("q.txt");
    store
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("q.txt")
        .body(ByteStream::from_static(b"version one (uploaded)"))
        .send()
        .await
        .expect("put");
    let (etag, body) = etag_and_body(&store.s3, "q.txt").await;
    assert_eq!(
        (etag, body.as_slice()),
        (
            md5_hex(b"version one (uploaded)"),
            &b"version one (uploaded)"[..]
        )
    );

    // Renamed over, its modification time older than the upload.
    let aside = dir.join(".q.txt.new");
    std::fs::write(&aside, b"version two, by hand").expect("write");
    let old = std::fs::File::options()
        .write(true)
        .open(&aside)
        .expect("open");
    old.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000))
        .expect("mtime");
    drop(old);
    std::fs::rename(&aside, &path).expect("rename");
    let (etag, body) = etag_and_body(&store.s3, "q.txt").await;
    assert_eq!(body, b"version two, by hand");
    assert_eq!(etag, md5_hex(&body), "renamed over");

    // Written over in place.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, b"version three, cp over it").expect("write over");
    let (etag, body) = etag_and_body(&store.s3, "q.txt").await;
    assert_eq!(body, b"version three, cp over it");
    assert_eq!(etag, md5_hex(&body), "written over");
}

/// GetObject of `key`: its ETag (unquoted) and its body.
async fn etag_and_body(s3: &Client, key: &str) -> (String, Vec<u8>) {
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("get");
    let etag = got.e_tag().expect("etag").trim_matches('"').to_owned();
    let body = got.body.collect().await.expect("body").into_bytes();
    (etag, body.to_vec())
}
