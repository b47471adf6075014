//! Conditional PutObject (If-Match / If-None-Match: *), as `s3edge publish`
//! moves a release pointer: 412 PreconditionFailed when the condition fails,
//! and of several writers racing on one ETag exactly one succeeds.

use super::harness::*;

async fn put_if(h: &Harness, key: &str, body: &str, if_match: Option<&str>) -> u16 {
    let mut put =
        h.s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()));
    put = match if_match {
        Some(etag) => put.if_match(etag),
        None => put.if_none_match("*"),
    };
    match put.send().await {
        Ok(_) => 200,
        Err(err) => status(&err),
    }
}

async fn read(h: &Harness, key: &str) -> String {
    let out =
        h.s3.get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("get");
    String::from_utf8_lossy(&out.body.collect().await.expect("body").into_bytes()).to_string()
}

#[tokio::test]
async fn if_none_match_any_creates_once_then_answers_412() {
    let h = harness().await;
    assert_eq!(put_if(&h, "pointer", "a", None).await, 200);
    assert_eq!(put_if(&h, "pointer", "b", None).await, 412);
    assert_eq!(read(&h, "pointer").await, "a");
}

#[tokio::test]
async fn if_match_writes_only_over_the_named_etag() {
    let h = harness().await;
    let etag = h.put("pointer", b"a").await;
    assert_eq!(put_if(&h, "pointer", "x", Some("\"0123\"")).await, 412);
    // As AWS S3: If-Match on a key that does not exist is 404 NoSuchKey.
    assert_eq!(put_if(&h, "missing", "x", Some(&etag)).await, 404);
    assert_eq!(put_if(&h, "pointer", "b", Some(&etag)).await, 200);
    assert_eq!(
        put_if(&h, "pointer", "c", Some(&etag)).await,
        412,
        "the ETag changed"
    );
    assert_eq!(read(&h, "pointer").await, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_writers_racing_on_one_etag_exactly_one_wins() {
    let h = std::sync::Arc::new(harness().await);
    for round in 0..5 {
        let etag = h.put("pointer", format!("start {round}").as_bytes()).await;
        let writers = (0..8).map(|i| {
            let (h, etag) = (h.clone(), etag.clone());
            tokio::spawn(async move {
                let body = format!("writer {i} round {round}");
                (put_if(&h, "pointer", &body, Some(&etag)).await, body)
            })
        });
        let results: Vec<(u16, String)> = futures_util::future::join_all(writers)
            .await
            .into_iter()
            .map(|r| r.expect("task"))
            .collect();
        let winners: Vec<&String> = results
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(
            results.iter().all(|(s, _)| matches!(s, 200 | 412)),
            "{results:?}"
        );
        assert_eq!(&read(&h, "pointer").await, winners[0]);
    }
}
