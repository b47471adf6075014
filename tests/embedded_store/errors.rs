//! Refusals: credentials, missing buckets and keys, keys outside the bucket.

use super::harness::*;

#[tokio::test]
async fn a_wrong_secret_is_refused_with_signature_does_not_match() {
    let h = harness().await;
    let intruder = client(&h.store.endpoint(), DEFAULT_ACCESS_KEY, "not-the-secret");
    let err = intruder
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("refused");
    assert_eq!(
        (status(&err), err.code()),
        (403, Some("SignatureDoesNotMatch"))
    );
}

#[tokio::test]
async fn an_unknown_access_key_is_refused_with_invalid_access_key_id() {
    let h = harness().await;
    let stranger = client(&h.store.endpoint(), "AKIDUNKNOWN", DEFAULT_SECRET_KEY);
    let err = stranger
        .get_object()
        .bucket(BUCKET)
        .key("x")
        .send()
        .await
        .expect_err("refused");
    assert_eq!(
        (status(&err), err.code()),
        (403, Some("InvalidAccessKeyId"))
    );
}

#[tokio::test]
async fn a_missing_bucket_answers_no_such_bucket_and_is_never_created_by_a_put() {
    let h = harness().await;
    let err =
        h.s3.get_object()
            .bucket("nowhere")
            .key("x")
            .send()
            .await
            .expect_err("get");
    assert_eq!((status(&err), err.code()), (404, Some("NoSuchBucket")));
    let err =
        h.s3.list_objects_v2()
            .bucket("nowhere")
            .send()
            .await
            .expect_err("list");
    assert_eq!(err.code(), Some("NoSuchBucket"));
    let err =
        h.s3.put_object()
            .bucket("nowhere")
            .key("x")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("put");
    assert_eq!(err.code(), Some("NoSuchBucket"));
    assert!(!h.root.path().join("nowhere").exists());
}

#[tokio::test]
async fn a_missing_key_answers_no_such_key_with_404_even_where_a_folder_is() {
    let h = harness().await;
    h.put("docs/index.html", b"docs").await;
    for key in ["missing.html", "docs", "docs/"] {
        let err =
            h.s3.get_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .expect_err(key);
        assert_eq!(
            (status(&err), err.code()),
            (404, Some("NoSuchKey")),
            "{key}"
        );
        let err =
            h.s3.head_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .expect_err(key);
        assert_eq!(status(&err), 404, "{key}");
    }
}

#[tokio::test]
async fn keys_that_would_leave_the_bucket_directory_are_refused() {
    let h = harness().await;
    h.put("index.html", b"home").await;
    let cors = CorsConfiguration::builder()
        .cors_rules(
            CorsRule::builder()
                .allowed_origins("*")
                .allowed_methods("GET")
                .build()
                .expect("rule"),
        )
        .build()
        .expect("cors");
    h.s3.put_bucket_cors()
        .bucket(BUCKET)
        .cors_configuration(cors)
        .send()
        .await
        .expect("put cors");
    let err =
        h.s3.get_object()
            .bucket(BUCKET)
            .key("../.s3edge-cors.site.json")
            .send()
            .await
            .expect_err("escape");
    assert_eq!((status(&err), err.code()), (404, Some("NoSuchKey")));
    let err =
        h.s3.put_object()
            .bucket(BUCKET)
            .key("docs/../index.html")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("put");
    assert_eq!(err.code(), Some("InvalidArgument"));
    let err =
        h.s3.delete_object()
            .bucket(BUCKET)
            .key("docs/../index.html")
            .send()
            .await
            .expect_err("delete");
    assert_eq!(err.code(), Some("InvalidArgument"));
    let get =
        h.s3.get_object()
            .bucket(BUCKET)
            .key("index.html")
            .send()
            .await
            .expect("still there");
    assert_eq!(
        get.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"home"
    );
}

/// A query name with a character of more than one byte where `x-amz-` would
/// end, on a request whose header s3s refuses (the lenient path), is
/// answered: it used to panic the connection's task.
#[tokio::test]
async fn a_query_name_with_a_wide_character_is_answered_not_dropped() {
    use std::io::{Read, Write};
    let h = harness().await;
    h.put("k.txt", b"k").await;
    let addr = h.store.local_addr();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = b"GET /site/k.txt?abcde".to_vec();
        request.extend_from_slice("é".as_bytes());
        request.extend_from_slice(
            b" HTTP/1.1\r\nHost: s\r\nIf-Modified-Since: x\r\nConnection: close\r\n\r\n",
        );
        stream.write_all(&request).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).to_string()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 "), "no answer: {answer:?}");
}

/// A website redirect location S3 refuses (one that starts with neither
/// `/` nor `http(s)://`: a `javascript:` URL) is refused as S3 refuses it,
/// by PutObject, CopyObject and CreateMultipartUpload alike; nothing is
/// stored.
#[tokio::test]
async fn a_website_redirect_location_s3_refuses_is_refused() {
    let h = harness().await;
    h.put("source.html", b"source").await;
    for location in ["javascript:alert(1)", "data:text/html,x", "elsewhere.html"] {
        let err =
            h.s3.put_object()
                .bucket(BUCKET)
                .key("r.html")
                .body(ByteStream::from_static(b"x"))
                .website_redirect_location(location)
                .send()
                .await
                .expect_err(location);
        assert_eq!(
            (status(&err), err.code()),
            (400, Some("InvalidArgument")),
            "{location}"
        );
        let err =
            h.s3.copy_object()
                .bucket(BUCKET)
                .key("r.html")
                .copy_source(format!("{BUCKET}/source.html"))
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .website_redirect_location(location)
                .send()
                .await
                .expect_err(location);
        assert_eq!(err.code(), Some("InvalidArgument"), "{location}");
        let err =
            h.s3.create_multipart_upload()
                .bucket(BUCKET)
                .key("r.html")
                .website_redirect_location(location)
                .send()
                .await
                .expect_err(location);
        assert_eq!(err.code(), Some("InvalidArgument"), "{location}");
    }
    let err =
        h.s3.head_object()
            .bucket(BUCKET)
            .key("r.html")
            .send()
            .await
            .expect_err("nothing stored");
    assert_eq!(status(&err), 404);
    for location in ["/new/", "https://example.com/x", "HTTP://example.com/"] {
        h.s3.put_object()
            .bucket(BUCKET)
            .key("r.html")
            .body(ByteStream::from_static(b"x"))
            .website_redirect_location(location)
            .send()
            .await
            .expect(location);
    }
}
