//! The admin status page: `/status.json` over real HTTP, and `GET /` rendered
//! by a real browser (headless Chromium), which must draw every site, its hit
//! ratio and its charts from `/status.json` with the admin token.
#![cfg(feature = "embedded")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{site_toml, Edge, EdgeBuilder};

const TOKEN: &str = "status-page-token-0123456789";

/// Two sites with known traffic: alpha 1 miss + 3 hits (75%), beta 1 miss +
/// 1 hit (50%), and one purge on alpha.
async fn node_with_traffic() -> Edge {
    let edge = EdgeBuilder::new()
        .bucket("alpha")
        .bucket("beta")
        .site("alpha", &site_toml("alpha.test", "alpha", ""))
        .site("beta", &site_toml("beta.test", "beta", ""))
        .with(|o| o.admin_token = Some(TOKEN.to_string()))
        .start();
    edge.put("alpha", "index.html", "<h1>alpha</h1>", Some("text/html"))
        .await;
    edge.put("beta", "a.css", "body{}", Some("text/css")).await;
    for _ in 0..4 {
        assert_eq!(edge.get("alpha.test", "/index.html").await.status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(edge.get("beta.test", "/a.css").await.status(), 200);
    }
    let purge = edge
        .http
        .post(edge.admin_url("/purge"))
        .bearer_auth(TOKEN)
        .body(r#"{"site":"alpha","paths":["/index.html"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(purge.status(), 200);
    edge
}

async fn status_json(edge: &Edge, token: Option<&str>) -> reqwest::Response {
    let mut request = edge.http.get(edge.admin_url("/status.json"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_json_reports_each_site_the_cache_tiers_the_node_and_the_purges() {
    let edge = node_with_traffic().await;
    assert_eq!(status_json(&edge, None).await.status(), 401);
    assert_eq!(status_json(&edge, Some("wrong")).await.status(), 401);
    // A response is counted once its body has left, after the client has it:
    // on a loaded machine the last one may still be on its way.
    let mut report = serde_json::Value::Null;
    for _ in 0..100 {
        let response = status_json(&edge, Some(TOKEN)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        report = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        let requests = |name: &str| {
            report["sites"]
                .as_array()
                .and_then(|sites| sites.iter().find(|s| s["name"] == name))
                .map(|s| s["window"]["requests"].clone())
        };
        if requests("alpha") == Some(4.into()) && requests("beta") == Some(2.into()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    assert_eq!(report["window_seconds"], 900);
    assert_eq!(report["sample_interval_seconds"], 10);
    let site = |name: &str| {
        report["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {report}"))
            .clone()
    };
    let (alpha, beta) = (site("alpha"), site("beta"));
    assert_eq!(alpha["hosts"], serde_json::json!(["alpha.test"]));
    assert_eq!(alpha["origin"], "s3://alpha (embedded)");
    assert_eq!(alpha["window"]["requests"], 4);
    assert_eq!(alpha["window"]["hit_ratio"], 0.75);
    assert_eq!(alpha["window"]["origin_requests"], 1);
    assert_eq!(alpha["window"]["origin_errors"], 0);
    assert_eq!(alpha["window"]["bytes_served"], 4 * 14);
    assert_eq!(beta["window"]["requests"], 2);
    assert_eq!(beta["window"]["hit_ratio"], 0.5);
    let latency = &alpha["window"]["latency_seconds"];
    assert!(latency["p50"].as_f64().unwrap() > 0.0, "{latency}");
    assert!(latency["p99"].as_f64().unwrap() >= latency["p50"].as_f64().unwrap());
    let series = &alpha["series"];
    let points = series["time"].as_array().unwrap().len();
    assert!(points >= 1, "{series}");
    for column in [
        "requests_per_second",
        "hit_ratio",
        "bytes_per_second",
        "origin_requests_per_second",
        "origin_errors_per_second",
        "latency_p50_seconds",
        "latency_p99_seconds",
    ] {
        assert_eq!(series[column].as_array().unwrap().len(), points, "{column}");
    }

    let tiers = report["cache"]["tiers"].as_array().unwrap();
    assert_eq!(tiers[0]["tier"], "memory");
    assert_eq!(tiers[0]["capacity_bytes"], 64 << 20);
    assert!(tiers[0]["entries"].as_u64().unwrap() >= 1, "{tiers:?}");
    assert_eq!(tiers[1]["tier"], "disk");
    assert_eq!(tiers[1]["state"], "on");
    assert_eq!(tiers[1]["capacity_bytes"], 256 << 20);

    let members = report["cluster"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["state"], "self");
    assert_eq!(members[0]["id"], report["node"]["id"]);

    let purges = report["purges"].as_array().unwrap();
    assert_eq!(purges.len(), 1, "{purges:?}");
    assert_eq!(purges[0]["site"], "alpha");
    assert_eq!(purges[0]["paths"], serde_json::json!(["/index.html"]));
    assert_eq!(purges[0]["purged"], 1);
    assert!(purges[0]["time"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_needs_the_token_like_every_admin_endpoint_but_asks_for_it() {
    let edge = node_with_traffic().await;
    let denied = edge.http.get(edge.admin_url("/")).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(denied.headers()["www-authenticate"], "Bearer");
    assert!(denied
        .text()
        .await
        .unwrap()
        .contains("needs its admin token"));
    let page = edge
        .http
        .get(edge.admin_url("/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    // Self-contained: no asset from anywhere else.
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(external), "{external}");
    }
    assert!(html.contains("status.json"));
    // Its own (empty) icon: without one a browser asks for /favicon.ico,
    // a 404 and an error in its console on every load.
    assert!(html.contains("<link rel=\"icon\" href=\"data:,\">"));
}

/// Chromium from Debian (`chromium`), or `S3EDGE_CHROMIUM`.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("S3EDGE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs headless Chromium on `url` with `extra` (`--dump-dom`,
/// `--screenshot=...`), killing it after a minute; returns its stdout.
fn headless(browser: &Path, profile: &Path, url: &str, extra: &[&str]) -> String {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--window-size=1280,1900",
            // Lets the page's fetch and timers run (virtual time) before the DOM is taken.
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = reader.join().unwrap();
            let err = errors.join().unwrap();
            assert!(status.success(), "chromium failed ({status}): {err}");
            return out;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`headless`] on `url` in a profile of its own (no token kept from
/// another run), off the async workers.
async fn in_chromium(browser: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let (browser, url) = (browser.to_owned(), url.to_owned());
    let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        headless(&browser, profile.path(), &url, &extra)
    })
    .await
    .unwrap()
}

/// The DOM headless Chromium renders for `url`.
async fn dump_dom(browser: &Path, url: &str) -> String {
    in_chromium(browser, url, &["--dump-dom"]).await
}

/// The value of `name="..."` in the first tag that has `marker`.
fn attribute(dom: &str, marker: &str, name: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let tag_start = dom[..at].rfind('<')?;
    let tag_end = at + dom[at..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let value = tag.split(&format!("{name}=\"")).nth(1)?;
    Some(value[..value.find('"')?].to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_renders_each_site_its_hit_ratio_and_its_charts() {
    let Some(browser) = chromium() else {
        eprintln!(
            "SKIPPED: chromium is not installed (apt-get install chromium; CI installs it): \
             the status page was not rendered in a browser"
        );
        return;
    };
    let edge = node_with_traffic().await;
    // After the sampler's second sample (10 s after the start), one more
    // request each: the charts then have two intervals, drawn as lines.
    // alpha: its purged page is a miss (3 hits of 5: 60%); beta a hit (2 of 3).
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(edge.get("alpha.test", "/index.html").await.status(), 200);
    assert_eq!(edge.get("beta.test", "/a.css").await.status(), 200);
    let page = edge.admin_url("/");
    let url = format!("{page}#token={TOKEN}");
    let dom = dump_dom(&browser, &url).await;

    // The script ran, fetched /status.json with the token and drew the page.
    assert_eq!(
        attribute(&dom, "<body", "data-state").as_deref(),
        Some("ready"),
        "{dom}"
    );
    assert_eq!(attribute(&dom, "<body", "data-sites").as_deref(), Some("2"));
    // Four charts per site, each an SVG with at least one series drawn.
    assert_eq!(
        attribute(&dom, "<body", "data-charts").as_deref(),
        Some("8")
    );
    let lines: usize = attribute(&dom, "<body", "data-lines")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(lines >= 8, "{lines} lines drawn: {dom}");
    assert!(dom.matches("<svg").count() >= 8);
    assert!(dom.contains("<path d=\"M"), "{dom}");
    for (site, ratio) in [("alpha", "60.0%"), ("beta", "66.7%")] {
        let marker = format!("data-site=\"{site}\"");
        assert_eq!(
            attribute(&dom, &marker, "data-hit-ratio").as_deref(),
            Some(ratio),
            "{site}: {dom}"
        );
        assert!(dom.contains(&format!("<h3>{site}</h3>")), "{site}");
    }
    // The shown figures, tiers, the node and the purge are there as text.
    assert!(dom.contains(">60.0%<") && dom.contains(">66.7%<"));
    assert!(dom.contains(">memory<") && dom.contains(">disk<"));
    assert!(dom.contains(">this node<"));
    assert!(dom.contains(">/index.html<"));
    // The token left the address bar.
    assert!(!dom.contains(TOKEN));

    // Without the token the same page asks for it.
    let dom = dump_dom(&browser, &page).await;
    assert_eq!(
        attribute(&dom, "<body", "data-state").as_deref(),
        Some("unauthorized"),
        "{dom}"
    );
    assert!(dom.contains("<form id=\"login\" class=\"card\">"), "{dom}");

    // A wrong token with a bare % (not percent-encoding) is a wrong token,
    // not a page stuck connecting.
    let dom = dump_dom(&browser, &format!("{page}#token=not%token")).await;
    assert_eq!(
        attribute(&dom, "<body", "data-state").as_deref(),
        Some("unauthorized"),
        "{dom}"
    );

    // A screenshot to look at (target/tmp/status-page.png).
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let argument = format!("--screenshot={}", shot.display());
    in_chromium(&browser, &url, &[&argument]).await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        png.len() > 20_000,
        "a page, not a blank: {} bytes",
        png.len()
    );
}
