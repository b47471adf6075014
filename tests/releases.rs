//! Releases end to end: the `s3edge publish`, `rollback` and `releases`
//! commands (real processes) against a node's embedded store over real HTTP
//! with SigV4, the node switching through its admin API and its pointer watch,
//! preview hosts, and every bad input the issue lists.
#![cfg(feature = "embedded")]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::fault_proxy::FaultProxy;
use common::{site_toml, Edge, EdgeBuilder, Fault};

const HOST: &str = "www.example.com";
const SITE: &str = "web";
const BUCKET: &str = "web";

fn releases_site(check_every: &str) -> String {
    site_toml(
        HOST,
        BUCKET,
        &format!(
            "[website]\nindex_document = \"index.html\"\n[releases]\npreview_hosts = [\"*.preview.example.com\"]\ncheck_every = \"{check_every}\"\n"
        ),
    )
}

/// A node serving the releases site, switched by its admin API only.
fn releases_edge() -> Edge {
    EdgeBuilder::new()
        .bucket(BUCKET)
        .site(SITE, &releases_site("1h"))
        .start()
}

fn s3edge(edge: &Edge, command: &str, store: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3edge"));
    cmd.arg(command)
        .arg("--sites")
        .arg(edge.dir.path().join("sites"))
        .args(["--embedded-s3-listen", store]);
    cmd
}

fn store(edge: &Edge) -> String {
    edge.node.embedded_addr.expect("embedded store").to_string()
}

fn admin(edge: &Edge) -> String {
    format!("http://{}", edge.node.admin_addr)
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Writes a site folder: `files` as (path, body).
fn folder(root: &Path, name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = root.join(name);
    for (path, body) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, body).expect("write");
    }
    dir
}

/// Runs `publish` and returns the release id it printed.
fn publish(edge: &Edge, store: &str, dir: &Path, extra: &[&str]) -> (String, String) {
    let output = s3edge(edge, "publish", store)
        .args(["--site", SITE])
        .arg(dir)
        .args(["--admin", &admin(edge)])
        .args(extra)
        .output()
        .expect("run publish");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let id = stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("release "))
        .and_then(|l| l.split_whitespace().next())
        .expect("release id line")
        .to_string();
    (id, stdout)
}

async fn body(edge: &Edge, host: &str, path: &str) -> (u16, String) {
    let response = edge.get(host, path).await;
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_switches_at_once_rollback_needs_no_origin_request_and_previews_pin_a_release() {
    let (builder, origins) = EdgeBuilder::new()
        .bucket(BUCKET)
        .site(SITE, &releases_site("1h"))
        .test_origins();
    let edge = builder.start();
    let store = store(&edge);
    let work = tempfile::tempdir().expect("tempdir");

    // Nothing published yet: the site says so.
    assert_eq!(body(&edge, HOST, "/").await.0, 503);

    let v1 = folder(
        work.path(),
        "v1",
        &[
            ("index.html", "<h1>one</h1>"),
            ("css/site.css", "body{color:red}"),
            ("old.txt", "gone in v2"),
        ],
    );
    let (first, out) = publish(&edge, &store, &v1, &[]);
    assert!(out.contains("3 uploaded"), "{out}");
    assert!(out.contains("0 copied"), "{out}");
    assert_eq!(body(&edge, HOST, "/").await, (200, "<h1>one</h1>".into()));
    assert_eq!(
        body(&edge, HOST, "/css/site.css").await.1,
        "body{color:red}"
    );

    let v2 = folder(
        work.path(),
        "v2",
        &[
            ("index.html", "<h1>two</h1>"),
            ("css/site.css", "body{color:red}"),
            ("new.js", "let x;"),
        ],
    );
    let (second, out) = publish(&edge, &store, &v2, &["--release", "v2"]);
    assert_eq!(second, "v2");
    assert!(out.contains("2 uploaded"), "{out}");
    assert!(out.contains("1 copied"), "{out}");
    assert!(out.contains("1 deleted from the listing"), "{out}");
    // `publish` returned: every request sees the new release.
    assert_eq!(body(&edge, HOST, "/").await, (200, "<h1>two</h1>".into()));
    assert_eq!(body(&edge, HOST, "/old.txt").await.0, 404);
    assert_eq!(body(&edge, HOST, "/new.js").await.1, "let x;");

    // Preview hosts pin a release; a release that does not exist is a 404.
    let preview = format!("{first}.preview.example.com");
    assert_eq!(
        body(&edge, &preview, "/").await,
        (200, "<h1>one</h1>".into())
    );
    assert_eq!(body(&edge, &preview, "/old.txt").await.0, 200);
    assert_eq!(
        body(&edge, "v2.preview.example.com", "/").await.1,
        "<h1>two</h1>"
    );
    assert_eq!(body(&edge, "nope.preview.example.com", "/").await.0, 404);
    assert_eq!(body(&edge, "a.b.preview.example.com", "/").await.0, 404);

    // `releases`: newest first, the live one marked.
    let output = s3edge(&edge, "releases", &store)
        .args(["--site", SITE])
        .output()
        .expect("run releases");
    let listing = String::from_utf8_lossy(&output.stdout).to_string();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{}", text(&output));
    assert!(
        lines[0].starts_with("* v2 ") && lines[0].ends_with("(live)"),
        "{listing}"
    );
    assert!(lines[1].starts_with(&format!("  {first} ")), "{listing}");

    // Rollback: the first release is live again, at once, and everything it
    // had cached is served without an origin request.
    let origin = origins.site(SITE);
    let object_gets = || {
        origin
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.key.starts_with("releases/"))
            .count()
    };
    let objects_before = object_gets();
    let started = Instant::now();
    let output = s3edge(&edge, "rollback", &store)
        .args(["--site", SITE, "--admin", &admin(&edge)])
        .output()
        .expect("run rollback");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(body(&edge, HOST, "/").await, (200, "<h1>one</h1>".into()));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "rollback took {took:?}");
    assert_eq!(
        body(&edge, HOST, "/css/site.css").await.1,
        "body{color:red}"
    );
    assert_eq!(body(&edge, HOST, "/old.txt").await.1, "gone in v2");
    let objects_after = object_gets();
    assert_eq!(
        objects_after, objects_before,
        "rollback made origin GETs for cached objects"
    );
    println!("rollback: command and first request in {took:?}");

    // Rollback to a named release.
    let output = s3edge(&edge, "rollback", &store)
        .args(["--site", SITE, "v2", "--admin", &admin(&edge)])
        .output()
        .expect("run rollback");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(body(&edge, HOST, "/").await.1, "<h1>two</h1>");

    // A reload (SIGHUP) reads the pointer again before the new sites serve.
    s3edge::server::reload(&edge.node.state)
        .await
        .expect("reload");
    assert_eq!(body(&edge, HOST, "/").await.1, "<h1>two</h1>");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_that_changes_k_files_uploads_k_files_and_the_pointer() {
    let edge = releases_edge();
    let proxy = FaultProxy::start();
    proxy.set_upstream(edge.node.embedded_addr.expect("store"));
    let via_proxy = proxy.addr.to_string();
    let work = tempfile::tempdir().expect("tempdir");
    let files: Vec<(String, String)> = (0..50)
        .map(|i| (format!("page{i}.html"), format!("page {i} v1")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_str()))
        .collect();
    let v1 = folder(work.path(), "v1", &refs);
    publish(&edge, &via_proxy, &v1, &[]);

    let k = 7;
    let mut changed = files.clone();
    for (_, body) in changed.iter_mut().take(k) {
        *body = body.replace("v1", "v2");
    }
    let refs: Vec<(&str, &str)> = changed
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_str()))
        .collect();
    let v2 = folder(work.path(), "v2", &refs);
    proxy.reset_counts();
    let (_, out) = publish(&edge, &via_proxy, &v2, &[]);
    assert!(out.contains(&format!("{k} uploaded")), "{out}");
    let puts = proxy
        .request_lines()
        .iter()
        .filter(|l| l.starts_with("PUT "))
        .count();
    let copies = proxy.copies();
    // k uploads, 50 - k copies, the manifest and the pointer.
    assert_eq!(copies, 50 - k);
    assert_eq!(puts - copies, k + 2, "{:#?}", proxy.request_lines());
    let pointer_puts = proxy
        .request_lines()
        .iter()
        .filter(|l| l.starts_with(&format!("PUT /{BUCKET}/_releases/live")))
        .count();
    assert_eq!(pointer_puts, 1);
    assert_eq!(body(&edge, HOST, "/page0.html").await.1, "page 0 v2");
    assert_eq!(body(&edge, HOST, "/page49.html").await.1, "page 49 v1");
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_concurrent_publishes_one_wins_and_the_other_says_so() {
    let edge = releases_edge();
    let store = store(&edge);
    let work = tempfile::tempdir().expect("tempdir");
    let base = folder(work.path(), "base", &[("index.html", "base")]);
    publish(&edge, &store, &base, &[]);
    let make = |name: &str| {
        let files: Vec<(String, String)> = (0..150)
            .map(|i| (format!("f{i}.txt"), format!("{name} {i}")))
            .collect();
        let mut refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_str()))
            .collect();
        let index = format!("<h1>{name}</h1>");
        refs.push(("index.html", &index));
        folder(work.path(), name, &refs)
    };
    let (a, b) = (make("a"), make("b"));
    let spawn = |dir: &Path, id: &str| {
        s3edge(&edge, "publish", &store)
            .args(["--site", SITE, "--release", id, "--admin", &admin(&edge)])
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn publish")
    };
    let (first, second) = (spawn(&a, "rel-a"), spawn(&b, "rel-b"));
    let outputs = [
        first.wait_with_output().expect("publish a"),
        second.wait_with_output().expect("publish b"),
    ];
    let winners: Vec<usize> = (0..2).filter(|&i| outputs[i].status.success()).collect();
    assert_eq!(
        winners.len(),
        1,
        "{}\n{}",
        text(&outputs[0]),
        text(&outputs[1])
    );
    let (winner, loser) = (winners[0], 1 - winners[0]);
    let winner_id = ["rel-a", "rel-b"][winner];
    let loser_err = String::from_utf8_lossy(&outputs[loser].stderr).to_string();
    assert_eq!(outputs[loser].status.code(), Some(1), "{loser_err}");
    assert!(
        loser_err.contains("another publish or rollback moved the pointer of site `web` first")
            && loser_err.contains(&format!("it now names `{winner_id}`"))
            && loser_err.contains("is uploaded but not live")
            && loser_err.contains("s3edge rollback --site web "),
        "{loser_err}"
    );
    // The pointer is whole: exactly the winner's id.
    let pointer = edge
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("_releases/live")
        .send()
        .await
        .expect("pointer");
    let text = pointer.body.collect().await.expect("body").into_bytes();
    assert_eq!(String::from_utf8_lossy(&text), format!("{winner_id}\n"));
    let expected = ["<h1>a</h1>", "<h1>b</h1>"][winner];
    assert_eq!(body(&edge, HOST, "/").await.1, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors_and_a_pointer_to_nowhere_keeps_the_last_good_release() {
    let edge = EdgeBuilder::new()
        .bucket(BUCKET)
        .bucket("plain")
        .site(SITE, &releases_site("200ms"))
        .site("plain", &site_toml("plain.example.com", "plain", ""))
        .start();
    let store = store(&edge);
    let work = tempfile::tempdir().expect("tempdir");

    let run = |args: &[&str]| {
        s3edge(&edge, "publish", &store)
            .args(args)
            .output()
            .expect("run publish")
    };
    let missing = run(&["--site", SITE, "/nonexistent/folder"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("cannot publish `/nonexistent/folder`"),
        "{}",
        text(&missing)
    );
    let v1 = folder(work.path(), "v1", &[("index.html", "good")]);
    let v1_arg = v1.to_str().expect("utf-8");
    let unknown = run(&["--site", "nosuch", v1_arg]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown).contains("no site named `nosuch`"),
        "{}",
        text(&unknown)
    );
    let plain = run(&["--site", "plain", v1_arg]);
    assert_eq!(plain.status.code(), Some(2));
    assert!(
        text(&plain).contains("site `plain` has no [releases] section"),
        "{}",
        text(&plain)
    );
    let bad_id = run(&["--site", SITE, "--release", "Bad.Id", v1_arg]);
    assert_eq!(bad_id.status.code(), Some(2));
    assert!(
        text(&bad_id).contains("`Bad.Id` is not a release id"),
        "{}",
        text(&bad_id)
    );
    let rollback = s3edge(&edge, "rollback", &store)
        .args(["--site", SITE])
        .output()
        .expect("run rollback");
    assert_eq!(rollback.status.code(), Some(2));
    assert!(
        text(&rollback).contains("has no live release"),
        "{}",
        text(&rollback)
    );

    let (good, _) = publish(&edge, &store, &v1, &[]);
    let again = run(&["--site", SITE, "--release", &good, v1_arg]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("already exists"), "{}", text(&again));

    // A pointer naming a release without files: the node keeps the last good one.
    edge.s3
        .put_object()
        .bucket(BUCKET)
        .key("_releases/live")
        .body(b"ghost\n".to_vec().into())
        .send()
        .await
        .expect("write pointer");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(body(&edge, HOST, "/").await, (200, "good".into()));
    let switch = edge
        .http
        .post(edge.admin_url("/releases/switch"))
        .body(format!("{{\"site\":\"{SITE}\"}}"))
        .send()
        .await
        .expect("switch");
    assert_eq!(switch.status().as_u16(), 409);
    let answer = switch.text().await.expect("body");
    assert!(
        answer.contains("names release `ghost`, which has no files"),
        "{answer}"
    );
    assert_eq!(body(&edge, HOST, "/").await, (200, "good".into()));
    // The admin API's other bad inputs.
    for (request, status) in [
        ("{\"site\":\"nosuch\"}", 404),
        ("{\"site\":\"plain\"}", 400),
        ("not json", 400),
    ] {
        let answer = edge
            .http
            .post(edge.admin_url("/releases/switch"))
            .body(request)
            .send()
            .await
            .expect("switch");
        assert_eq!(answer.status().as_u16(), status, "{request}");
    }
    // The pointer watch: a good pointer again is picked up within check_every.
    let v2 = folder(work.path(), "v2", &[("index.html", "newer")]);
    let output = s3edge(&edge, "publish", &store)
        .args(["--site", SITE, "--no-activate", "--release", "v2"])
        .arg(&v2)
        .output()
        .expect("publish");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        body(&edge, HOST, "/").await.1,
        "good",
        "--no-activate changed nothing"
    );
    assert_eq!(body(&edge, "v2.preview.example.com", "/").await.1, "newer");
    edge.s3
        .put_object()
        .bucket(BUCKET)
        .key("_releases/live")
        .body(b"v2\n".to_vec().into())
        .send()
        .await
        .expect("write pointer");
    let deadline = Instant::now() + Duration::from_secs(5);
    while body(&edge, HOST, "/").await.1 != "newer" {
        assert!(Instant::now() < deadline, "the watch never switched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn check_names_the_file_and_key_of_a_bad_releases_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sites = dir.path().join("sites");
    std::fs::create_dir_all(&sites).expect("mkdir");
    std::fs::write(
        sites.join("web.toml"),
        "hosts = [\"a.example.com\"]\n[origin]\nbucket = \"b\"\n[releases]\npreview_hosts = [\"preview.example.com\"]\ncheck_every = \"soon\"\n",
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_s3edge"))
        .args(["check", "--sites"])
        .arg(&sites)
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(
            "web.toml: releases.preview_hosts[0]: `preview.example.com` is not a wildcard"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("web.toml: releases.check_every: `soon`"),
        "{stdout}"
    );
}

/// Preview, then promote, from the first release on: a release published
/// with `--no-activate` to a site with no live release yet is made live by
/// `rollback ID`; without an id there is nothing to go back to, and the
/// message says what to do.
#[tokio::test(flavor = "multi_thread")]
async fn the_first_release_published_unactivated_is_made_live_by_naming_it() {
    let edge = releases_edge();
    let store = store(&edge);
    let work = tempfile::tempdir().expect("tempdir");
    let first = folder(work.path(), "first", &[("index.html", "first page")]);
    publish(
        &edge,
        &store,
        &first,
        &["--no-activate", "--release", "first"],
    );
    assert_eq!(
        body(&edge, "first.preview.example.com", "/").await.1,
        "first page"
    );
    assert_eq!(body(&edge, HOST, "/").await.0, 503, "nothing live yet");

    let output = s3edge(&edge, "rollback", &store)
        .args(["--site", SITE, "--admin", &admin(&edge)])
        .output()
        .expect("rollback");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("s3edge rollback --site web ID"),
        "{}",
        text(&output)
    );

    for (id, expected) in [("nope", Some(2)), ("first", Some(0))] {
        let output = s3edge(&edge, "rollback", &store)
            .args(["--site", SITE, "--admin", &admin(&edge), id])
            .output()
            .expect("rollback");
        assert_eq!(output.status.code(), expected, "{id}: {}", text(&output));
    }
    assert_eq!(
        body(&edge, HOST, "/").await,
        (200, "first page".to_string())
    );
}

/// A site folder that is also a working copy, or holds secrets and OS
/// debris, publishes only the site: `.git`, `.env` and `.DS_Store` are left
/// out and named, `.well-known` is served, and `--include-hidden` publishes
/// everything.
#[tokio::test(flavor = "multi_thread")]
async fn publish_leaves_hidden_files_out_unless_asked() {
    let edge = releases_edge();
    let store = store(&edge);
    let work = tempfile::tempdir().expect("tempdir");
    let site = folder(
        work.path(),
        "site",
        &[
            ("index.html", "home"),
            (".env", "AWS_SECRET_ACCESS_KEY=hunter2"),
            (".git/config", "[remote \"origin\"]"),
            ("img/.DS_Store", "debris"),
            (
                ".well-known/security.txt",
                "Contact: mailto:security@example.com",
            ),
        ],
    );
    let (_, out) = publish(&edge, &store, &site, &[]);
    assert!(out.contains("2 uploaded"), "{out}");
    assert!(
        out.contains("left out, hidden: .env and 2 more (--include-hidden publishes them)"),
        "{out}"
    );
    for path in ["/.env", "/.git/config", "/img/.DS_Store"] {
        assert_eq!(body(&edge, HOST, path).await.0, 404, "{path}");
    }
    assert_eq!(
        body(&edge, HOST, "/.well-known/security.txt").await,
        (200, "Contact: mailto:security@example.com".to_string())
    );

    let (_, out) = publish(&edge, &store, &site, &["--include-hidden"]);
    assert!(!out.contains("left out"), "{out}");
    assert_eq!(
        body(&edge, HOST, "/.env").await,
        (200, "AWS_SECRET_ACCESS_KEY=hunter2".to_string())
    );
}

/// A reload (SIGHUP: also how a rotated access log is reopened) while the
/// bucket cannot be reached turned every `[releases]` site into a 503
/// outage: the new build of the site knew no release until its first
/// pointer read succeeded. It now keeps the release the site in force
/// serves, as the pointer watch does, and follows the pointer again once
/// the bucket answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_while_the_bucket_is_unreachable_keeps_the_live_release() {
    let (builder, origins) = EdgeBuilder::new()
        .bucket(BUCKET)
        .site(SITE, &releases_site("1h"))
        .test_origins();
    let edge = builder.start();
    let store = store(&edge);
    let work = tempfile::tempdir().expect("tempdir");
    let v1 = folder(work.path(), "v1", &[("index.html", "<h1>one</h1>")]);
    publish(&edge, &store, &v1, &[]);
    assert_eq!(body(&edge, HOST, "/").await, (200, "<h1>one</h1>".into()));

    let origin = origins.site(SITE);
    origin.inject(Fault::Refuse);
    for _ in 0..2 {
        s3edge::server::reload(&edge.node.state)
            .await
            .expect("reload");
        assert_eq!(body(&edge, HOST, "/").await, (200, "<h1>one</h1>".into()));
    }

    origin.clear();
    let v2 = folder(work.path(), "v2", &[("index.html", "<h1>two</h1>")]);
    publish(&edge, &store, &v2, &[]);
    assert_eq!(body(&edge, HOST, "/").await, (200, "<h1>two</h1>".into()));
    s3edge::server::reload(&edge.node.state)
        .await
        .expect("reload");
    assert_eq!(body(&edge, HOST, "/").await, (200, "<h1>two</h1>".into()));
}

/// `rollback` without an id goes back to the release that was live before
/// the live one, one step further each time, as an undo: it took the newest
/// release older than the live one, which could be one already rolled back
/// from (`bad`, after `good`, `bad`, rollback, `fixed`) or one never made
/// live (published with `--no-activate`), and put it live.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_goes_back_to_the_release_live_before_never_to_one_that_was_not() {
    let edge = releases_edge();
    let store = store(&edge);
    let work = tempfile::tempdir().expect("tempdir");
    let release = |name: &str| {
        let dir = folder(
            work.path(),
            name,
            &[("index.html", &format!("<h1>{name}</h1>"))],
        );
        publish(&edge, &store, &dir, &["--release", name]);
    };
    let rollback = || {
        s3edge(&edge, "rollback", &store)
            .args(["--site", SITE, "--admin", &admin(&edge)])
            .output()
            .expect("run rollback")
    };
    let live = |name: &str| (200u16, format!("<h1>{name}</h1>"));

    release("good");
    release("bad");
    assert_eq!(rollback().status.code(), Some(0));
    assert_eq!(body(&edge, HOST, "/").await, live("good"));
    release("fixed");
    let preview = folder(
        work.path(),
        "preview",
        &[("index.html", "<h1>preview</h1>")],
    );
    publish(
        &edge,
        &store,
        &preview,
        &["--release", "preview", "--no-activate"],
    );
    release("latest");
    assert_eq!(body(&edge, HOST, "/").await, live("latest"));

    // latest -> fixed -> good, then nothing was live before `good`.
    for (back_to, was) in [("fixed", "latest"), ("good", "fixed")] {
        let output = rollback();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        assert!(
            text(&output).contains(&format!("release {back_to} is live (was {was})")),
            "{}",
            text(&output)
        );
        assert_eq!(body(&edge, HOST, "/").await, live(back_to));
    }
    let output = rollback();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("no release was live before `good`"),
        "{}",
        text(&output)
    );
    assert_eq!(body(&edge, HOST, "/").await, live("good"));

    // A rollback to a named release can itself be undone.
    let output = s3edge(&edge, "rollback", &store)
        .args(["--site", SITE, "latest", "--admin", &admin(&edge)])
        .output()
        .expect("run rollback");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(body(&edge, HOST, "/").await, live("latest"));
    assert_eq!(rollback().status.code(), Some(0));
    assert_eq!(body(&edge, HOST, "/").await, live("good"));
}

/// `publish` to a store that is not running printed the SDK's whole error
/// structure (`DispatchFailure(DispatchFailure { source: ConnectorError {...`);
/// it now says the bucket could not be reached, why, and what to check.
#[tokio::test(flavor = "multi_thread")]
async fn publish_to_a_store_that_is_down_says_so_in_one_line() {
    let edge = releases_edge();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = folder(work.path(), "v1", &[("index.html", "<h1>one</h1>")]);
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .to_string();
    let output = s3edge(&edge, "publish", &closed)
        .args(["--site", SITE])
        .arg(&dir)
        .output()
        .expect("run publish");
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("the bucket could not be reached ("), "{all}");
    assert!(all.contains("origin.endpoint"), "{all}");
    assert!(!all.contains("DispatchFailure"), "{all}");
}

/// A node restarted while its bucket cannot be read serves the release it
/// served before, from its disk tier, as a site without `[releases]` does:
/// it answered 503 "No release of this site is live yet" for the whole
/// site until the bucket came back. Once the bucket answers, the pointer
/// decides again.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_while_the_bucket_is_unreachable_serves_the_release_live_before() {
    let edge = releases_edge();
    let store = store(&edge);
    let work = tempfile::tempdir().expect("tempdir");
    let v1 = folder(work.path(), "v1", &[("index.html", "<h1>one</h1>")]);
    let (v1_id, _) = publish(&edge, &store, &v1, &[]);
    assert_eq!(body(&edge, HOST, "/").await, (200, "<h1>one</h1>".into()));
    edge.wait_disk_entries(1).await;
    let Edge { node, dir, .. } = edge;
    node.stop();

    // The same node again, every call to its bucket refused from the start.
    let origins = std::sync::Arc::new(common::TestOrigins::default());
    let wrap = origins.wrapper();
    let refusing = origins.clone();
    let wrapper: s3edge::site::OriginWrapper = std::sync::Arc::new(move |config, inner| {
        let origin = wrap(config, inner);
        refusing.site(&config.name).inject(Fault::Refuse);
        origin
    });
    let path = dir.path().to_path_buf();
    let restarted = EdgeBuilder::new()
        .with(|o| {
            o.sites_dir = path.join("sites");
            o.cache_dir = path.join("cache");
            o.embedded_dir = Some(path.join("buckets"));
            o.origin_wrapper = Some(wrapper);
        })
        .start();
    assert_eq!(
        body(&restarted, HOST, "/").await,
        (200, "<h1>one</h1>".into()),
        "release {v1_id}, live before the restart"
    );

    // The bucket is back: a publish switches the node as always.
    origins.site(SITE).clear();
    let store = restarted
        .node
        .embedded_addr
        .expect("embedded store")
        .to_string();
    let v2 = folder(work.path(), "v2", &[("index.html", "<h1>two</h1>")]);
    let output = Command::new(env!("CARGO_BIN_EXE_s3edge"))
        .arg("publish")
        .arg("--sites")
        .arg(path.join("sites"))
        .args(["--embedded-s3-listen", &store, "--site", SITE])
        .arg(&v2)
        .args(["--admin", &admin(&restarted)])
        .output()
        .expect("run publish");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        body(&restarted, HOST, "/").await,
        (200, "<h1>two</h1>".into())
    );
    drop(dir);
}

/// A publish that returns while a reload (SIGHUP) is building the sites is
/// not undone when the reload puts them in force: the switch went to the
/// build in force, the reload's build had read the pointer before it, and
/// the node served the older release until the next `check_every`. Many
/// rounds, the reload held up by another site's slow pointer read.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_during_a_reload_is_not_undone_by_it() {
    let slow_site = site_toml(
        "slow.example.com",
        "zslow",
        "[releases]\ncheck_every = \"1h\"\n",
    );
    let (builder, origins) = EdgeBuilder::new()
        .bucket(BUCKET)
        .bucket("zslow")
        .site(SITE, &releases_site("1h"))
        .site("zslow", &slow_site)
        .test_origins();
    let edge = builder.start();
    let store = store(&edge);
    let work = tempfile::tempdir().expect("tempdir");
    let first = folder(work.path(), "r0", &[("index.html", "<h1>r0</h1>")]);
    publish(&edge, &store, &first, &[]);
    for round in 1..=4 {
        // The reload reads this site's pointer first, then waits on the
        // other site's for a while: the publish lands meanwhile.
        origins
            .site("zslow")
            .inject(Fault::Stall(Duration::from_millis(1500)));
        let state = edge.node.state.clone();
        let reload = tokio::spawn(async move { s3edge::server::reload(&state).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let name = format!("r{round}");
        let page = format!("<h1>{name}</h1>");
        let dir = folder(work.path(), &name, &[("index.html", &page)]);
        publish(&edge, &store, &dir, &[]);
        assert_eq!(body(&edge, HOST, "/").await, (200, page.clone()));
        assert!(
            !reload.is_finished(),
            "round {round}: the reload ended first"
        );
        reload.await.expect("reload task").expect("reload");
        origins.site("zslow").clear();
        assert_eq!(
            body(&edge, HOST, "/").await,
            (200, page),
            "round {round}: after the reload"
        );
    }
}

/// A malformed `--admin` (no scheme, a path) is a usage error found before
/// anything changes: it was noticed only after the pointer had moved, so a
/// CI job saw a failed deploy (exit 1) of a release that was live.
#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_admin_url_is_refused_before_the_release_goes_live() {
    let edge = releases_edge();
    let store = store(&edge);
    let work = tempfile::tempdir().expect("tempdir");
    let v1 = folder(work.path(), "v1", &[("index.html", "one")]);
    publish(&edge, &store, &v1, &["--release", "v1"]);
    let v2 = folder(work.path(), "v2", &[("index.html", "two")]);
    for admin in ["127.0.0.1:9", "http://127.0.0.1:9090/admin", "http://:9090"] {
        let output = s3edge(&edge, "publish", &store)
            .args(["--site", SITE, "--release", "v2", "--admin", admin])
            .arg(&v2)
            .output()
            .expect("publish");
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(
            text(&output).contains("--admin must be"),
            "{}",
            text(&output)
        );
        let output = s3edge(&edge, "rollback", &store)
            .args(["--site", SITE, "--admin", admin])
            .output()
            .expect("rollback");
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    }
    let listed = s3edge(&edge, "releases", &store)
        .args(["--site", SITE])
        .output()
        .expect("releases");
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(!listed.contains("v2"), "nothing uploaded: {listed}");
    assert_eq!(body(&edge, HOST, "/").await, (200, "one".into()));
}
