//! Starting, stopping, and publishing with the AWS CLI.

use super::harness::*;

#[tokio::test]
async fn shutdown_closes_the_port_and_a_busy_port_is_reported_at_start() {
    let h = harness().await;
    let addr = h.store.local_addr();
    let err = EmbeddedS3::start(config(h.root.path(), addr)).expect_err("port in use");
    assert!(matches!(err, EmbeddedError::Bind { .. }), "{err}");
    // An idle keep-alive connection must not hold the shutdown up.
    h.s3.list_buckets().send().await.expect("list");
    h.store.shutdown();
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect_err("refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    drop(h.s3);
    TcpListener::bind(addr).expect("the port is free again");
}

#[tokio::test]
async fn aws_cli_sync_publishes_a_site() {
    if std::process::Command::new("aws")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: aws CLI not installed");
        return;
    }
    let h = harness().await;
    let site = tempfile::tempdir().expect("site dir");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("index.html", b"<!doctype html><title>demo</title>".to_vec()),
        ("css/site.css", b"body{margin:0}".to_vec()),
        ("a b+c.txt", b"odd name".to_vec()),
        (
            "big/video.bin",
            (0..9 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect(),
        ),
    ];
    for (name, body) in &files {
        let path = site.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, body).expect("write");
    }
    let sync = || {
        let out = std::process::Command::new("aws")
            .args(["s3", "sync"])
            .arg(site.path())
            .arg(format!("s3://{BUCKET}"))
            .args(["--endpoint-url", &h.store.endpoint(), "--no-progress"])
            .env("AWS_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", DEFAULT_SECRET_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", h.root.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                h.root.path().join("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run aws");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "aws s3 sync failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let first = sync();
    assert_eq!(first.matches("upload:").count(), files.len(), "{first}");
    let second = sync();
    assert_eq!(
        second.matches("upload:").count(),
        0,
        "nothing changed, nothing uploaded: {second}"
    );

    for (name, body) in &files {
        let get =
            h.s3.get_object()
                .bucket(BUCKET)
                .key(*name)
                .send()
                .await
                .expect(name);
        if *name == "index.html" {
            assert_eq!(get.content_type(), Some("text/html"));
            assert_eq!(get.e_tag(), Some(format!("\"{}\"", md5_hex(body)).as_str()));
        }
        assert_eq!(
            get.content_encoding(),
            None,
            "{name}: no aws-chunked leaks into the object"
        );
        let got = get.body.collect().await.expect("body").into_bytes();
        assert_eq!(Sha256::digest(&got), Sha256::digest(body), "{name}");
    }
}
