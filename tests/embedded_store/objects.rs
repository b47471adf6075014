//! PutObject, GetObject, HeadObject, multipart uploads, listings, ranges, copies and deletes.

use super::harness::*;

#[tokio::test]
async fn put_then_get_and_head_return_every_stored_metadata_field() {
    let h = harness().await;
    let body = b"<h1>hello</h1>".to_vec();
    let expires = DateTime::from_secs(2_000_000_000);
    let put =
        h.s3.put_object()
            .bucket(BUCKET)
            .key("docs/index.html")
            .body(ByteStream::from(body.clone()))
            .content_type("text/html; charset=utf-8")
            .cache_control("public, max-age=60")
            .content_encoding("identity")
            .expires(expires)
            .metadata("author", "ada")
            .metadata("build", "42")
            .website_redirect_location("/new/")
            .send()
            .await
            .expect("put");
    let etag = format!("\"{}\"", md5_hex(&body));
    assert_eq!(put.e_tag(), Some(etag.as_str()));

    let get =
        h.s3.get_object()
            .bucket(BUCKET)
            .key("docs/index.html")
            .send()
            .await
            .expect("get");
    assert_eq!(get.e_tag(), Some(etag.as_str()));
    assert_eq!(get.content_type(), Some("text/html; charset=utf-8"));
    assert_eq!(get.cache_control(), Some("public, max-age=60"));
    assert_eq!(get.content_encoding(), Some("identity"));
    assert_eq!(get.expires_string(), Some("Wed, 18 May 2033 03:33:20 GMT"));
    assert_eq!(get.website_redirect_location(), Some("/new/"));
    assert_eq!(get.accept_ranges(), Some("bytes"));
    assert_eq!(get.content_length(), Some(body.len() as i64));
    assert!(get.last_modified().is_some());
    let metadata = get.metadata().expect("user metadata");
    assert_eq!(metadata.get("author").map(String::as_str), Some("ada"));
    assert_eq!(metadata.get("build").map(String::as_str), Some("42"));
    assert_eq!(
        get.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        body.as_slice()
    );

    let head =
        h.s3.head_object()
            .bucket(BUCKET)
            .key("docs/index.html")
            .send()
            .await
            .expect("head");
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.content_type(), Some("text/html; charset=utf-8"));
    assert_eq!(head.cache_control(), Some("public, max-age=60"));
    assert_eq!(head.content_encoding(), Some("identity"));
    assert_eq!(head.expires_string(), Some("Wed, 18 May 2033 03:33:20 GMT"));
    assert_eq!(head.website_redirect_location(), Some("/new/"));
    assert_eq!(head.content_length(), Some(body.len() as i64));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("author"))
            .map(String::as_str),
        Some("ada")
    );
}

#[tokio::test]
async fn a_streaming_upload_stores_its_own_content_encoding_and_not_aws_chunked() {
    let h = harness().await;
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), vec![7u8; 100_000]).expect("write");
    for (key, encoding) in [("plain.bin", None), ("page.html.gz", Some("gzip"))] {
        // A streaming body makes the SDK sign aws-chunked with a checksum trailer.
        let body = ByteStream::from_path(file.path()).await.expect("stream");
        let put =
            h.s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .set_content_encoding(encoding.map(str::to_owned))
                .body(body);
        put.send().await.expect("streaming put");
        let head =
            h.s3.head_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .expect("head");
        assert_eq!(head.content_encoding(), encoding, "{key}");
        assert_eq!(head.content_length(), Some(100_000));
    }
}

#[tokio::test]
async fn the_etag_of_a_single_part_upload_is_the_md5_of_its_bytes() {
    let h = harness().await;
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let etag = h.put("data.bin", &body).await;
    assert_eq!(etag, format!("\"{}\"", md5_hex(&body)));
    let listed =
        h.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    assert_eq!(listed.contents()[0].e_tag(), Some(etag.as_str()));
}

#[tokio::test]
async fn the_sdk_default_checksums_are_accepted_and_verified_on_the_way_back() {
    let h = harness().await;
    h.put("a.txt", b"checksummed").await;
    let get =
        h.s3.get_object()
            .bucket(BUCKET)
            .key("a.txt")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get with checksum validation");
    assert!(
        get.checksum_crc32().is_some() || get.checksum_crc64_nvme().is_some(),
        "a full-object checksum comes back"
    );
    assert_eq!(
        get.body
            .collect()
            .await
            .expect("validated body")
            .into_bytes()
            .as_ref(),
        b"checksummed"
    );
}

#[tokio::test]
async fn a_multipart_upload_of_more_than_5_mib_stores_the_parts_bytes_and_metadata() {
    let h = harness().await;
    h.put(
        "big.bin",
        b"an older single-part version with its own checksum",
    )
    .await;
    let parts: Vec<Vec<u8>> = vec![
        vec![b'a'; 5 * 1024 * 1024],
        (0..1_500_000u32).map(|i| (i % 253) as u8).collect(),
    ];
    let upload =
        h.s3.create_multipart_upload()
            .bucket(BUCKET)
            .key("big.bin")
            .content_type("application/x-test")
            .cache_control("max-age=5")
            .metadata("kind", "multipart")
            .send()
            .await
            .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let mut completed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let out =
            h.s3.upload_part()
                .bucket(BUCKET)
                .key("big.bin")
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(part.clone()))
                .send()
                .await
                .expect("upload part");
        assert_eq!(out.e_tag(), Some(format!("\"{}\"", md5_hex(part)).as_str()));
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().unwrap_or_default())
                .build(),
        );
    }
    let listed =
        h.s3.list_parts()
            .bucket(BUCKET)
            .key("big.bin")
            .upload_id(upload_id)
            .send()
            .await
            .expect("list parts");
    assert_eq!(listed.parts().len(), 2);
    h.s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("big.bin")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .expect("complete");

    let get =
        h.s3.get_object()
            .bucket(BUCKET)
            .key("big.bin")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get");
    let mut md5s = Vec::new();
    parts
        .iter()
        .for_each(|p| md5s.extend_from_slice(&Md5::digest(p)));
    assert_eq!(
        get.e_tag(),
        Some(format!("\"{}-2\"", md5_hex(&md5s)).as_str())
    );
    assert_eq!(get.content_type(), Some("application/x-test"));
    assert_eq!(get.cache_control(), Some("max-age=5"));
    assert_eq!(
        get.metadata()
            .and_then(|m| m.get("kind"))
            .map(String::as_str),
        Some("multipart")
    );
    let bytes = get
        .body
        .collect()
        .await
        .expect("body (no stale checksum)")
        .into_bytes();
    assert_eq!(Sha256::digest(&bytes), Sha256::digest(parts.concat()));

    let other =
        h.s3.create_multipart_upload()
            .bucket(BUCKET)
            .key("gone.bin")
            .send()
            .await
            .expect("create");
    h.s3.abort_multipart_upload()
        .bucket(BUCKET)
        .key("gone.bin")
        .upload_id(other.upload_id().expect("upload id"))
        .send()
        .await
        .expect("abort");
}

#[tokio::test]
async fn list_objects_v2_filters_by_prefix_and_groups_by_delimiter() {
    let h = harness().await;
    for key in ["a/1.txt", "a/2.txt", "a/deep/3.txt", "b/1.txt", "top.txt"] {
        h.put(key, key.as_bytes()).await;
    }
    let listed =
        h.s3.list_objects_v2()
            .bucket(BUCKET)
            .prefix("a/")
            .send()
            .await
            .expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a/1.txt", "a/2.txt", "a/deep/3.txt"]);
    assert_eq!(listed.contents()[0].size(), Some(7));
    let grouped =
        h.s3.list_objects_v2()
            .bucket(BUCKET)
            .delimiter("/")
            .send()
            .await
            .expect("list");
    let prefixes: Vec<_> = grouped
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["a/", "b/"]);
    let keys: Vec<_> = grouped.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["top.txt"]);
}

#[tokio::test]
async fn a_range_get_answers_206_with_content_range() {
    let h = harness().await;
    h.put("r.txt", b"0123456789").await;
    let get =
        h.s3.get_object()
            .bucket(BUCKET)
            .key("r.txt")
            .range("bytes=2-5")
            .send()
            .await
            .expect("range");
    assert_eq!(get.content_range(), Some("bytes 2-5/10"));
    assert_eq!(get.content_length(), Some(4));
    assert_eq!(
        get.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"2345"
    );

    let suffix =
        h.s3.get_object()
            .bucket(BUCKET)
            .key("r.txt")
            .range("bytes=-100")
            .send()
            .await
            .expect("suffix");
    assert_eq!(suffix.content_range(), Some("bytes 0-9/10"));
    assert_eq!(
        suffix
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"0123456789"
    );

    let head =
        h.s3.head_object()
            .bucket(BUCKET)
            .key("r.txt")
            .range("bytes=8-")
            .send()
            .await
            .expect("head range");
    assert_eq!(head.content_length(), Some(2));
    assert_eq!(head.content_range(), Some("bytes 8-9/10"));

    let err =
        h.s3.get_object()
            .bucket(BUCKET)
            .key("r.txt")
            .range("bytes=50-60")
            .send()
            .await
            .expect_err("416");
    assert_eq!((status(&err), err.code()), (416, Some("InvalidRange")));

    // S3 serves the whole object for a multi-range request (s3s alone would answer 400).
    let whole =
        h.s3.get_object()
            .bucket(BUCKET)
            .key("r.txt")
            .range("bytes=0-1,4-5")
            .send()
            .await
            .expect("multi-range");
    assert_eq!(whole.content_range(), None);
    assert_eq!(
        whole
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"0123456789"
    );
}

#[tokio::test]
async fn deleted_and_copied_objects_keep_no_stale_metadata() {
    let h = harness().await;
    h.s3.put_object()
        .bucket(BUCKET)
        .key("x.css")
        .content_type("text/css")
        .body(ByteStream::from_static(b"a{}"))
        .send()
        .await
        .expect("put");
    h.s3.delete_object()
        .bucket(BUCKET)
        .key("x.css")
        .send()
        .await
        .expect("delete");
    assert_eq!(
        status(
            &h.s3
                .head_object()
                .bucket(BUCKET)
                .key("x.css")
                .send()
                .await
                .expect_err("gone")
        ),
        404
    );
    h.s3.put_object()
        .bucket(BUCKET)
        .key("src.js")
        .content_type("text/javascript")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await
        .expect("put");
    h.s3.copy_object()
        .bucket(BUCKET)
        .key("copy.js")
        .copy_source(format!("{BUCKET}/src.js"))
        .send()
        .await
        .expect("copy");
    let head =
        h.s3.head_object()
            .bucket(BUCKET)
            .key("copy.js")
            .send()
            .await
            .expect("head");
    assert_eq!(head.content_type(), Some("text/javascript"));

    let keys =
        ["src.js", "copy.js"].map(|k| ObjectIdentifier::builder().key(k).build().expect("id"));
    let delete = Delete::builder()
        .set_objects(Some(keys.to_vec()))
        .build()
        .expect("delete");
    let out =
        h.s3.delete_objects()
            .bucket(BUCKET)
            .delete(delete)
            .send()
            .await
            .expect("delete objects");
    assert_eq!(out.deleted().len(), 2);
    let listed =
        h.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    assert!(listed.contents().is_empty());
    assert_eq!(
        std::fs::read_dir(h.root.path()).expect("root").count(),
        1,
        "only the bucket is left: no sidecar"
    );
}

#[tokio::test]
async fn a_file_put_in_the_bucket_directory_by_hand_is_hashed_once_and_again_when_it_changes() {
    let h = harness().await;
    let path = h.root.path().join(BUCKET).join("by-hand.bin");
    std::fs::write(&path, b"first version").expect("write");
    let etag = |out: Option<&str>| out.expect("etag").trim_matches('"').to_owned();
    let head =
        h.s3.head_object()
            .bucket(BUCKET)
            .key("by-hand.bin")
            .send()
            .await
            .expect("head");
    assert_eq!(etag(head.e_tag()), md5_hex(b"first version"));
    // The ETag is stored with the size and time it was computed from...
    let internal: Vec<String> = std::fs::read_dir(h.root.path())
        .expect("root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".internal.json"))
        .collect();
    assert_eq!(internal.len(), 1, "{internal:?}");
    let stored = std::fs::read_to_string(h.root.path().join(&internal[0])).expect("read");
    assert!(stored.contains(&md5_hex(b"first version")), "{stored}");
    assert!(stored.contains("s3edge_hashed_for"), "{stored}");

    // ...so a GET does not hash it again, and a change (same size, new time) does.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, b"second versio").expect("write");
    let got =
        h.s3.get_object()
            .bucket(BUCKET)
            .key("by-hand.bin")
            .send()
            .await
            .expect("get");
    assert_eq!(etag(got.e_tag()), md5_hex(b"second versio"));
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"second versio");
    let listed =
        h.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    let object = listed
        .contents()
        .iter()
        .find(|o| o.key() == Some("by-hand.bin"))
        .expect("listed");
    assert_eq!(etag(object.e_tag()), md5_hex(b"second versio"));

    // An ETag stored by PutObject is kept as it is.
    let put = h.put("uploaded.bin", b"uploaded").await;
    let head =
        h.s3.head_object()
            .bucket(BUCKET)
            .key("uploaded.bin")
            .send()
            .await
            .expect("head");
    assert_eq!(head.e_tag(), Some(put.as_str()));
}

/// A damaged `.internal.json` beside the bucket (a checksum that is not a
/// string: edited by hand, or written by another tool) is read as no
/// checksum: the object is served, where the store panicked in that request.
#[tokio::test]
async fn a_damaged_checksum_in_the_stores_own_file_does_not_break_reads() {
    let h = harness().await;
    h.put("damaged.txt", b"still here").await;
    let internal: Vec<std::path::PathBuf> = std::fs::read_dir(h.root.path())
        .expect("root")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".internal.json"))
        .collect();
    assert_eq!(internal.len(), 1, "{internal:?}");
    let text = std::fs::read_to_string(&internal[0]).expect("read");
    let mut info: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("a JSON object");
    info.insert("checksum_crc32".into(), serde_json::json!(5));
    info.insert("checksum_sha256".into(), serde_json::json!(["x"]));
    std::fs::write(&internal[0], serde_json::to_vec(&info).expect("json")).expect("write");
    assert_eq!(h.body("damaged.txt").await, b"still here");
}
