//! Keys the file system holds differently from S3: long keys, long segments, empty segments.

use super::harness::*;

/// Every file and folder under `root`, as paths relative to it, sorted.
fn files_under(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            let relative = path.strip_prefix(root).expect("under root");
            found.push(relative.to_string_lossy().into_owned());
        }
    }
    found.sort();
    found
}

/// The Content-Type and ETag HeadObject answers for an object that must exist.
async fn type_and_etag(h: &Harness, key: &str) -> (String, String) {
    let head = h.s3.head_object().bucket(BUCKET).key(key).send().await;
    let head = head.unwrap_or_else(|e| panic!("head {key}: {e:?}"));
    let etag = head.e_tag().unwrap_or_default().to_owned();
    (head.content_type().unwrap_or_default().to_owned(), etag)
}

/// A key of `len` bytes as `s3edge publish` makes them: a release prefix, then
/// segments of 200 bytes at most.
fn long_key(len: usize, name: &str) -> String {
    let mut key = format!("releases/20261202T150000Z/{name}-");
    while key.len() < len {
        let segment = (key.len() - key.rfind('/').unwrap_or(0)).min(200);
        key.push(if segment == 200 { '/' } else { 's' });
    }
    key.truncate(len - 1);
    key.trim_end_matches('/').to_owned() + "x"
}

#[tokio::test]
async fn keys_too_long_for_a_sidecar_file_name_are_stored_read_listed_copied_and_deleted() {
    let h = harness().await;
    let key = long_key(1000, "page");
    let copy = long_key(900, "copy");
    let multipart = long_key(170, "multipart");
    let put =
        h.s3.put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from_static(b"<p>long</p>"))
            .content_type("text/html")
            .cache_control("max-age=7")
            .send()
            .await
            .expect("put of a 1000-byte key");
    let etag = format!("\"{}\"", md5_hex(b"<p>long</p>"));
    assert_eq!(put.e_tag(), Some(etag.as_str()));

    for _ in 0..2 {
        let get =
            h.s3.get_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await
                .expect("get");
        assert_eq!(get.e_tag(), Some(etag.as_str()));
        assert_eq!(get.content_type(), Some("text/html"));
        assert_eq!(get.cache_control(), Some("max-age=7"));
        let body = get.body.collect().await.expect("body").into_bytes();
        assert_eq!(&body[..], b"<p>long</p>");
    }
    let html = ("text/html".to_owned(), etag.clone());
    assert_eq!(type_and_etag(&h, &key).await, html);

    h.s3.copy_object()
        .bucket(BUCKET)
        .key(&copy)
        .copy_source(format!("{BUCKET}/{key}"))
        .send()
        .await
        .expect("copy to a 900-byte key");
    assert_eq!(type_and_etag(&h, &copy).await, html);

    let upload =
        h.s3.create_multipart_upload()
            .bucket(BUCKET)
            .key(&multipart)
            .content_type("text/css")
            .send()
            .await
            .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let part =
        h.s3.upload_part()
            .bucket(BUCKET)
            .key(&multipart)
            .upload_id(upload_id)
            .part_number(1)
            .body(ByteStream::from_static(b"p{}"))
            .send()
            .await
            .expect("upload part");
    h.s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(&multipart)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap_or_default())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let multipart_etag = format!("\"{}-1\"", md5_hex(&Md5::digest(b"p{}")));
    assert_eq!(
        type_and_etag(&h, &multipart).await,
        ("text/css".to_owned(), multipart_etag.clone())
    );

    let listed =
        h.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    let mut keys: Vec<(&str, &str)> = listed
        .contents()
        .iter()
        .map(|o| (o.key().unwrap_or_default(), o.e_tag().unwrap_or_default()))
        .collect();
    keys.sort();
    let mut expected = vec![
        (copy.as_str(), etag.as_str()),
        (multipart.as_str(), multipart_etag.as_str()),
        (key.as_str(), etag.as_str()),
    ];
    expected.sort();
    assert_eq!(keys, expected);

    for gone in [&key, &copy, &multipart] {
        h.s3.delete_object()
            .bucket(BUCKET)
            .key(gone)
            .send()
            .await
            .expect("delete");
        assert_eq!(h.get_status(gone, |g| g).await, 404);
    }
    let sidecars: Vec<String> = files_under(h.root.path())
        .into_iter()
        .filter(|f| f.starts_with(".bucket-"))
        .collect();
    assert_eq!(
        sidecars,
        Vec::<String>::new(),
        "deleted objects keep no sidecar"
    );
}

#[tokio::test]
async fn a_key_segment_too_long_for_a_file_name_is_refused_with_key_too_long_and_leaves_nothing() {
    let h = harness().await;
    h.put("index.html", b"home").await;
    let before = files_under(h.root.path());
    let key = format!("blog/{}/index.html", "s".repeat(256));

    let err =
        h.s3.put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("put");
    assert_eq!((status(&err), err.code()), (400, Some("KeyTooLongError")));
    let err =
        h.s3.create_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .expect_err("create upload");
    assert_eq!((status(&err), err.code()), (400, Some("KeyTooLongError")));
    let err =
        h.s3.copy_object()
            .bucket(BUCKET)
            .key(&key)
            .copy_source(format!("{BUCKET}/index.html"))
            .send()
            .await
            .expect_err("copy");
    assert_eq!((status(&err), err.code()), (400, Some("KeyTooLongError")));
    assert_eq!(h.get_status(&key, |g| g).await, 404);
    assert_eq!(files_under(h.root.path()), before);
}

#[tokio::test]
async fn an_upload_refused_for_its_digest_leaves_no_file_and_keeps_the_object_it_would_replace() {
    let h = harness().await;
    let put =
        h.s3.put_object()
            .bucket(BUCKET)
            .key("new.html")
            .body(ByteStream::from_static(b"new"))
            .content_md5("AAAAAAAAAAAAAAAAAAAAAA==")
            .send()
            .await
            .expect_err("a wrong Content-MD5");
    assert_eq!((status(&put), put.code()), (400, Some("BadDigest")));
    assert_eq!(h.get_status("new.html", |g| g).await, 404);

    h.put("old.html", b"old").await;
    h.s3.put_object()
        .bucket(BUCKET)
        .key("old.html")
        .body(ByteStream::from_static(b"replacement"))
        .content_md5("AAAAAAAAAAAAAAAAAAAAAA==")
        .send()
        .await
        .expect_err("a wrong Content-MD5");
    assert_eq!(h.body("old.html").await, b"old");
}

/// On S3 `dir//index.html` is a key of its own; the file system would read it as
/// `dir/index.html`.
#[tokio::test]
async fn keys_with_an_empty_segment_are_not_found_refused_and_a_get_writes_nothing() {
    let h = harness().await;
    h.put("dir/index.html", b"home").await;
    let before = files_under(h.root.path());

    for alias in ["dir//index.html", "dir///index.html", "dir//"] {
        assert_eq!(h.get_status(alias, |g| g).await, 404, "{alias}");
        let err =
            h.s3.head_object()
                .bucket(BUCKET)
                .key(alias)
                .send()
                .await
                .expect_err("head");
        assert_eq!(status(&err), 404, "{alias}");
    }
    assert_eq!(files_under(h.root.path()), before, "a GET wrote files");

    let err =
        h.s3.put_object()
            .bucket(BUCKET)
            .key("dir//index.html")
            .body(ByteStream::from_static(b"other"))
            .send()
            .await
            .expect_err("put");
    assert_eq!((status(&err), err.code()), (400, Some("InvalidArgument")));
    let err =
        h.s3.delete_object()
            .bucket(BUCKET)
            .key("dir//index.html")
            .send()
            .await
            .expect_err("delete");
    assert_eq!((status(&err), err.code()), (400, Some("InvalidArgument")));
    assert_eq!(files_under(h.root.path()), before);
    assert_eq!(h.body("dir/index.html").await, b"home");
}
