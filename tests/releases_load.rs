//! The load target: a publish of a 1,000-file site with 10 files
//! changed, while clients fetch pages and their assets in a loop. Checked:
//! 0 responses from the new release before the pointer moved, 0 from the old
//! one to requests sent after `publish --admin` returned, 0 non-200 answers
//! (no 404) at any time. Prints the figures the README quotes.
#![cfg(feature = "embedded")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{site_toml, Edge, EdgeBuilder};

const HOST: &str = "www.example.com";
const PAGES: usize = 100;
const ASSETS_PER_PAGE: usize = 9;
/// Pages (and the first asset of each) changed by the second release.
const CHANGED_PAGES: usize = 5;

fn page(i: usize) -> String {
    format!("p{i}/index.html")
}

fn asset(i: usize, j: usize) -> String {
    format!("assets/{i}-{j}.css")
}

fn changed(key: &str) -> bool {
    (0..CHANGED_PAGES).any(|i| key == page(i) || key == asset(i, 0))
}

/// Writes the site's 1,000 files; `generation` marks the changed ones.
fn write_site(dir: &std::path::Path, generation: u32) {
    for i in 0..PAGES {
        let mut files = vec![page(i)];
        files.extend((0..ASSETS_PER_PAGE).map(|j| asset(i, j)));
        for key in files {
            let generation = if changed(&key) { generation } else { 1 };
            let path = dir.join(&key);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, format!("{key} gen={generation}\n")).expect("write");
        }
    }
}

/// One request the clients made.
struct Sample {
    key: String,
    started: Instant,
    ended: Instant,
    status: u16,
    generation: Option<u32>,
}

async fn fetch(edge: &Edge, key: &str) -> Sample {
    let started = Instant::now();
    let response = edge.get(HOST, &format!("/{key}")).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let generation = text
        .trim()
        .rsplit_once("gen=")
        .and_then(|(_, g)| g.parse().ok());
    Sample {
        key: key.to_string(),
        started,
        ended: Instant::now(),
        status,
        generation,
    }
}

/// A client: a page, then its assets, over `pages`, until told to stop.
async fn client(
    edge: Arc<Edge>,
    pages: Vec<usize>,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Sample>>>,
) {
    let mut mine = Vec::new();
    'run: loop {
        for &i in &pages {
            if stop.load(Ordering::Relaxed) {
                break 'run;
            }
            mine.push(fetch(&edge, &page(i)).await);
            for j in 0..ASSETS_PER_PAGE {
                mine.push(fetch(&edge, &asset(i, j)).await);
            }
        }
    }
    out.lock().unwrap().extend(mine);
}

fn publish(edge: &Edge, dir: &std::path::Path, release: &str) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_s3edge"))
        .arg("publish")
        .arg("--sites")
        .arg(edge.dir.path().join("sites"))
        .args(["--site", "web", "--release", release])
        .args([
            "--embedded-s3-listen",
            &edge.node.embedded_addr.expect("store").to_string(),
        ])
        .args(["--admin", &format!("http://{}", edge.node.admin_addr)])
        .arg(dir)
        .output()
        .expect("run publish");
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_under_load_switches_atomically_with_no_404() {
    let edge = Arc::new(
        EdgeBuilder::new()
            .bucket("web")
            .site(
                "web",
                &site_toml(HOST, "web", "[releases]\ncheck_every = \"1h\"\n"),
            )
            .start(),
    );
    let work = tempfile::tempdir().expect("tempdir");
    let (v1, v2) = (work.path().join("v1"), work.path().join("v2"));
    write_site(&v1, 1);
    write_site(&v2, 2);
    let first = {
        let (edge, v1) = (edge.clone(), v1.clone());
        tokio::task::spawn_blocking(move || publish(&edge, &v1, "one"))
            .await
            .expect("publish")
    };
    println!("first publish: 1,000 files uploaded in {:?}", first.1);

    // The clients: one on the changed pages only, three on every page.
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut clients = vec![tokio::spawn(client(
        edge.clone(),
        (0..CHANGED_PAGES).collect(),
        stop.clone(),
        samples.clone(),
    ))];
    for offset in [0, 33, 66] {
        let pages = (0..PAGES).map(|i| (i + offset) % PAGES).collect();
        clients.push(tokio::spawn(client(
            edge.clone(),
            pages,
            stop.clone(),
            samples.clone(),
        )));
    }
    // The pointer, watched in the store: the node cannot switch before it moves.
    let pointer_old_seen = Arc::new(Mutex::new(Instant::now()));
    let watcher = {
        let (edge, stop, seen) = (edge.clone(), stop.clone(), pointer_old_seen.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let out = edge
                    .s3
                    .get_object()
                    .bucket("web")
                    .key("_releases/live")
                    .send()
                    .await
                    .expect("pointer");
                let body = out.body.collect().await.expect("body").into_bytes();
                if body.as_ref() == b"one\n" {
                    *seen.lock().unwrap() = asked;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let publish_started = Instant::now();
    let (output, took) = {
        let (edge, v2) = (edge.clone(), v2.clone());
        tokio::task::spawn_blocking(move || publish(&edge, &v2, "two"))
            .await
            .expect("publish")
    };
    let returned = Instant::now();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(stdout.contains("10 uploaded"), "{stdout}");
    assert!(stdout.contains("990 copied"), "{stdout}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    watcher.await.expect("watcher");
    let pointer_moved_after = *pointer_old_seen.lock().unwrap();

    let samples = samples.lock().unwrap();
    let not_ok: Vec<String> = samples
        .iter()
        .filter(|s| s.status != 200)
        .map(|s| format!("{} {}", s.status, s.key))
        .collect();
    assert!(
        not_ok.is_empty(),
        "{} answers were not 200: {:?}",
        not_ok.len(),
        &not_ok[..not_ok.len().min(10)]
    );
    let tracked: Vec<&Sample> = samples.iter().filter(|s| changed(&s.key)).collect();
    let early_new = tracked
        .iter()
        .filter(|s| s.generation == Some(2) && s.ended < pointer_moved_after)
        .count();
    let late_old = tracked
        .iter()
        .filter(|s| s.generation == Some(1) && s.started >= returned)
        .count();
    let during = samples
        .iter()
        .filter(|s| s.started >= publish_started && s.ended <= returned)
        .count();
    let old_before = tracked.iter().filter(|s| s.generation == Some(1)).count();
    let new_after = tracked.iter().filter(|s| s.generation == Some(2)).count();
    println!(
        "second publish (10 of 1,000 changed): {took:?}; {} requests in all, {during} while it ran, \
         changed files served {old_before} times old and {new_after} times new; \
         new before the pointer moved: {early_new}; old after publish returned: {late_old}; non-200: 0",
        samples.len()
    );
    assert!(
        old_before > 0 && new_after > 0,
        "the load did not span the switch"
    );
    assert!(during > 0, "no request ran during the publish");
    assert_eq!(
        early_new, 0,
        "responses from the new release before the pointer moved"
    );
    assert_eq!(
        late_old, 0,
        "responses from the old release after publish returned"
    );
}
