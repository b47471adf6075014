//! Conditional GET and HEAD: 304 and 412 as AWS S3 answers them.

use super::harness::*;

/// A GET of `key` with `If-None-Match: etag` that is not answered 200: its
/// status and header fields.
async fn get_if_none_match(
    h: &Harness,
    key: &str,
    etag: &str,
) -> (u16, std::collections::HashMap<String, String>) {
    let err =
        h.s3.get_object()
            .bucket(BUCKET)
            .key(key)
            .if_none_match(etag)
            .send()
            .await
            .expect_err("not a 200");
    let raw = err.raw_response().expect("raw response");
    let headers = raw
        .headers()
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect();
    (raw.status().as_u16(), headers)
}

#[tokio::test]
async fn if_none_match_with_the_current_etag_answers_304() {
    let h = harness().await;
    let etag = h.put("c.txt", b"cached").await;
    let (code, headers) = get_if_none_match(&h, "c.txt", &etag).await;
    assert_eq!(code, 304);
    assert_eq!(headers.get("etag").map(String::as_str), Some(etag.as_str()));
    assert!(headers.contains_key("last-modified"));
    assert_eq!(
        h.get_status("c.txt", |g| g.if_none_match("\"other\""))
            .await,
        200
    );
    assert_eq!(h.get_status("c.txt", |g| g.if_none_match("*")).await, 304);
    let head =
        h.s3.head_object()
            .bucket(BUCKET)
            .key("c.txt")
            .if_none_match(&etag)
            .send()
            .await
            .expect_err("304");
    assert_eq!(status(&head), 304);
}

/// A file dated before 1970 (a tarball's odd modification time) still
/// answers 304; the 304 carries no `Last-Modified` rather than a wrong one.
#[tokio::test]
async fn a_file_dated_before_1970_answers_304_without_a_last_modified() {
    let h = harness().await;
    let etag = h.put("old.txt", b"from 1960").await;
    let sixties = std::time::UNIX_EPOCH - Duration::from_secs(10 * 365 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(h.root.path().join(BUCKET).join("old.txt"))
        .unwrap()
        .set_modified(sixties)
        .unwrap();
    let (code, headers) = get_if_none_match(&h, "old.txt", &etag).await;
    assert_eq!(code, 304);
    assert_eq!(headers.get("last-modified"), None);
    assert_eq!(h.get_status("old.txt", |g| g).await, 200);
}

#[tokio::test]
async fn if_none_match_with_a_list_holding_the_current_etag_answers_304() {
    let h = harness().await;
    let etag = h.put("c.txt", b"cached").await;
    let list = format!("\"stale\", W/{etag}");
    assert_eq!(h.get_status("c.txt", |g| g.if_none_match(list)).await, 304);
    assert_eq!(
        h.get_status("c.txt", |g| g.if_none_match("\"a\", \"b\""))
            .await,
        200
    );
    assert_eq!(
        h.get_status("c.txt", |g| g.if_match(format!("\"a\", {etag}")))
            .await,
        200
    );
}

#[tokio::test]
async fn if_modified_since_in_the_future_answers_304_and_in_the_past_200() {
    let h = harness().await;
    h.put("m.txt", b"dated").await;
    let future = DateTime::from(SystemTime::now() + Duration::from_secs(3600));
    let past = DateTime::from(SystemTime::now() - Duration::from_secs(3600));
    assert_eq!(
        h.get_status("m.txt", |g| g.if_modified_since(future)).await,
        304
    );
    assert_eq!(
        h.get_status("m.txt", |g| g.if_modified_since(past)).await,
        200
    );
}

#[tokio::test]
async fn if_match_with_another_etag_answers_412() {
    let h = harness().await;
    let etag = h.put("p.txt", b"precondition").await;
    let err =
        h.s3.get_object()
            .bucket(BUCKET)
            .key("p.txt")
            .if_match("\"nope\"")
            .send()
            .await
            .expect_err("412");
    assert_eq!(
        (status(&err), err.code()),
        (412, Some("PreconditionFailed"))
    );
    assert_eq!(h.get_status("p.txt", |g| g.if_match(&etag)).await, 200);
    let head =
        h.s3.head_object()
            .bucket(BUCKET)
            .key("p.txt")
            .if_match("\"nope\"")
            .send()
            .await
            .expect_err("412");
    assert_eq!(status(&head), 412);
}

#[tokio::test]
async fn if_unmodified_since_in_the_past_answers_412() {
    let h = harness().await;
    let etag = h.put("u.txt", b"unmodified").await;
    let past = DateTime::from(SystemTime::now() - Duration::from_secs(3600));
    let future = DateTime::from(SystemTime::now() + Duration::from_secs(3600));
    assert_eq!(
        h.get_status("u.txt", |g| g.if_unmodified_since(past)).await,
        412
    );
    assert_eq!(
        h.get_status("u.txt", |g| g.if_unmodified_since(future))
            .await,
        200
    );
    // If-Match true wins over If-Unmodified-Since false (AWS and RFC 9110 §13.2.2).
    assert_eq!(
        h.get_status("u.txt", |g| g.if_match(&etag).if_unmodified_since(past))
            .await,
        200
    );
}

/// Conditional writes, as AWS S3 has answered them since 2024: a create-only
/// PutObject (`If-None-Match: *`) succeeds once; `If-Match` needs the current
/// ETag. Of many concurrent creates of one key, exactly one succeeds.
#[tokio::test]
async fn put_object_with_if_none_match_creates_once_and_if_match_needs_the_current_etag() {
    let h = harness().await;
    let create = |key: &'static str, body: &'static [u8]| {
        h.s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .if_none_match("*")
            .body(body.to_vec().into())
            .send()
    };
    create("lock", b"first").await.expect("created");
    let again = create("lock", b"second").await.expect_err("exists");
    assert_eq!(status(&again), 412);
    assert_eq!(h.get_status("lock", |g| g.if_match("*")).await, 200);

    let etag = h.put("v.txt", b"one").await;
    let stale =
        h.s3.put_object()
            .bucket(BUCKET)
            .key("v.txt")
            .if_match("\"0000\"")
            .body(b"two".to_vec().into())
            .send()
            .await
            .expect_err("412");
    assert_eq!(status(&stale), 412);
    h.s3.put_object()
        .bucket(BUCKET)
        .key("v.txt")
        .if_match(&etag)
        .body(b"two".to_vec().into())
        .send()
        .await
        .expect("the current ETag matches");
    let missing =
        h.s3.put_object()
            .bucket(BUCKET)
            .key("absent.txt")
            .if_match(&etag)
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect_err("404");
    assert_eq!(status(&missing), 404);

    let racers = (0..8).map(|i| {
        h.s3.put_object()
            .bucket(BUCKET)
            .key("race")
            .if_none_match("*")
            .body(format!("racer {i}").into_bytes().into())
            .send()
    });
    let results = futures_util::future::join_all(racers).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "one winner"
    );
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| status(e) == 412));
}
