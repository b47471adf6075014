//! What an operator runs around the node, checked against the real binary:
//! the Grafana dashboard and the Prometheus rules in `deploy/` use only
//! metrics a live node exports; start-up logs have one format, as
//! `--log-format` says; serving the demo leaves a git checkout clean.
#![cfg(feature = "embedded")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::binary::Binary;

// ---------------------------------------------------------------------------
// Metric names in PromQL

/// PromQL words that are not metric names (operators, modifiers, aggregations).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "inf",
    "nan",
    "atan2",
];

/// Words after which a parenthesised list holds label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The index just past the string literal starting at `i`.
fn skip_string(chars: &[char], i: usize) -> usize {
    let quote = chars[i];
    let mut j = i + 1;
    while j < chars.len() && chars[j] != quote {
        j += if chars[j] == '\\' && quote != '`' {
            2
        } else {
            1
        };
    }
    j + 1
}

/// The index just past the `close` that ends the bracket opened at `i`
/// (string literals inside are skipped whole).
fn skip_bracket(chars: &[char], i: usize, close: char) -> usize {
    let mut j = i + 1;
    while j < chars.len() && chars[j] != close {
        j = if matches!(chars[j], '"' | '\'' | '`') {
            skip_string(chars, j)
        } else {
            j + 1
        };
    }
    j + 1
}

/// The metric names a PromQL expression selects: identifiers that are not
/// functions, keywords, label names (inside `{}`, `by (...)`, ...), numbers,
/// durations or strings.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut label_list_next = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_bracket(&chars, i, '}');
        } else if c == '[' {
            i = skip_bracket(&chars, i, ']');
        } else if c == '(' && label_list_next {
            i = skip_bracket(&chars, i, ')');
            label_list_next = false;
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:$".contains(chars[i]))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            if LABEL_LISTS.contains(&word.as_str()) {
                label_list_next = next == Some('(');
            } else if !KEYWORDS.contains(&word.as_str())
                && next != Some('(')
                && !word.starts_with('$')
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_told_from_functions_labels_and_keywords() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "a bare selector",
            "s3edge_cache_bytes",
            &["s3edge_cache_bytes"],
        ),
        (
            "functions, label matchers, ranges and grouping",
            r#"sum by (site) (rate(s3edge_requests_total{site=~"$site", x="}"}[$__rate_interval]))"#,
            &["s3edge_requests_total"],
        ),
        (
            "a ratio of two selectors, numbers and durations",
            "a_total / ignoring(le) b_total > 0.05 and on (site) c offset 15m * 86400",
            &["a_total", "b_total", "c"],
        ),
        (
            "histogram_quantile over buckets",
            "histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))",
            &["x_bucket"],
        ),
        (
            "a recorded name",
            "site:s3edge_cache_hit_ratio:rate5m < 0.5",
            &["site:s3edge_cache_hit_ratio:rate5m"],
        ),
        (
            "group_left with labels",
            "a * on (instance) group_left(version) b",
            &["a", "b"],
        ),
    ];
    for (case, expr, expected) in cases {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(metric_names(expr), expected, "{case}: {expr}");
    }
}

/// Every PromQL expression of a Grafana dashboard: panel targets' `expr`, and
/// the selectors of `label_values(SELECTOR, label)` variables.
fn dashboard_expressions(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    ("query" | "definition", serde_json::Value::String(query)) => {
                        if let Some(inner) = query
                            .strip_prefix("label_values(")
                            .and_then(|q| q.strip_suffix(')'))
                        {
                            let selector = inner.rsplit_once(',').map_or(inner, |(s, _)| s);
                            out.push(selector.to_string());
                        }
                    }
                    _ => dashboard_expressions(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                dashboard_expressions(item, out);
            }
        }
        _ => {}
    }
}

/// `expr:` values (one line, or a `|` block) and `record:` names of a rules file.
fn rule_expressions(yaml: &str) -> (Vec<String>, BTreeSet<String>) {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    let mut recorded = BTreeSet::new();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed
            .strip_prefix("- record:")
            .or(trimmed.strip_prefix("record:"))
        {
            recorded.insert(name.trim().to_string());
        }
        let Some(rest) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let indent = line.len() - trimmed.len();
            let block: Vec<&str> = lines[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            exprs.push(block.join("\n"));
        } else {
            exprs.push(rest.trim_matches('\'').to_string());
        }
    }
    (exprs, recorded)
}

/// The sample names in a Prometheus text exposition.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The families an exposition declares (`# TYPE`), with samples or not: a
/// labelled family such as `s3edge_acme_certificate_valid{site}` has none
/// on a node without acme sites, but the node exports it.
fn declared_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn write(path: &Path, text: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn blocking_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_gzip()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn admin_get(node: &Binary, path: &str) -> String {
    blocking_client()
        .get(format!("{}{path}", node.admin))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// A node with three sites: `a` (objects, coalesced misses), `secure` (a
/// certificate) and `broken` (a bucket that does not exist: origin errors),
/// after traffic of every kind. Returns the node and its `/metrics`.
fn node_after_traffic(dir: &Path) -> (Binary, String) {
    let sites = dir.join("sites");
    let buckets = dir.join("buckets");
    write(&buckets.join("a/index.html"), "<h1>a</h1>");
    write(&buckets.join("a/big.bin"), common::random_bytes(6 << 20, 7));
    write(&buckets.join("secure/index.html"), "secure");
    write(&sites.join("a.toml"), common::site_toml("a.test", "a", ""));
    write(
        &sites.join("broken.toml"),
        common::site_toml("broken.test", "no-such-bucket", ""),
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["secure.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    write(&dir.join("certs/secure.pem"), cert.pem());
    write(&dir.join("certs/secure.key"), key.serialize_pem());
    write(
        &sites.join("secure.toml"),
        common::site_toml(
            "secure.test",
            "secure",
            &format!(
                "[tls]\ncert = {:?}\nkey = {:?}\n",
                dir.join("certs/secure.pem").display().to_string(),
                dir.join("certs/secure.key").display().to_string()
            ),
        ),
    );
    let buckets = buckets.display().to_string();
    // An access log no line can be written to: every line is lost.
    let node = Binary::serve_dir_with(
        dir,
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--embedded-s3",
            &buckets,
            "--access-log",
            "/dev/full",
            "--node-id",
            "edge-fra-1",
        ],
    );
    let client = blocking_client();
    let get = |host: &str, path: &str| {
        client
            .get(format!("{}{path}", node.http))
            .header("host", host)
            .send()
            .unwrap()
            .bytes()
            .unwrap();
    };
    for _ in 0..3 {
        get("a.test", "/index.html");
        get("secure.test", "/index.html");
    }
    get("a.test", "/missing.html");
    get("broken.test", "/index.html");
    // Concurrent cold GETs of one object wait for one origin fetch: tried
    // again (after a purge) until one of them was counted as coalesced.
    let coalesced = |metrics: &str| {
        metrics.lines().any(|l| {
            l.starts_with("s3edge_coalesced_requests_total{site=\"a\"} ") && !l.ends_with(" 0")
        })
    };
    let mut metrics = String::new();
    for _ in 0..10 {
        std::thread::scope(|scope| {
            for _ in 0..16 {
                scope.spawn(|| get("a.test", "/big.bin"));
            }
        });
        metrics = admin_get(&node, "/metrics");
        if coalesced(&metrics) {
            break;
        }
        let purged = client
            .post(format!("{}/purge", node.admin))
            .body(r#"{"site":"a","paths":["/big.bin"]}"#)
            .send()
            .unwrap();
        assert_eq!(purged.status(), 200);
    }
    assert!(
        coalesced(&metrics),
        "no coalesced request after 10 rounds: {metrics}"
    );
    // The log's writer thread finds out when it flushes.
    let lost = |metrics: &str| {
        metrics
            .lines()
            .any(|l| l.starts_with("s3edge_access_log_lines_lost_total ") && !l.ends_with(" 0"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !lost(&metrics) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        metrics = admin_get(&node, "/metrics");
    }
    assert!(lost(&metrics), "no access log line counted lost: {metrics}");
    (node, metrics)
}

#[test]
fn the_dashboard_and_the_alert_rules_use_only_metrics_a_live_node_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, metrics) = node_after_traffic(dir.path());
    let exported = exported_names(&metrics);
    for expected in [
        "s3edge_certificate_expiry_seconds",
        "s3edge_cluster_members",
        "s3edge_cluster_members_known",
        "s3edge_cache_tier_enabled",
        "s3edge_allocator_bytes",
    ] {
        assert!(exported.contains(expected), "{expected}: {metrics}");
    }
    for line in ["s3edge_cluster_members 1", "s3edge_cluster_members_known 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }
    let expiry = metrics
        .lines()
        .find_map(|l| l.strip_prefix("s3edge_certificate_expiry_seconds{site=\"secure\"} "))
        .and_then(|v| v.parse::<i64>().ok())
        .expect("the certificate's expiry");
    // rcgen's default notAfter is 4096-01-01.
    assert!(expiry > 365 * 86400, "{expiry}");
    // Without an admin token the status page and its data need none; the
    // report shows the same certificate.
    let page = blocking_client().get(&node.admin).send().unwrap();
    assert_eq!(page.status(), 200);
    let report: serde_json::Value =
        serde_json::from_str(&admin_get(&node, "/status.json")).unwrap();
    let sites = report["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 3, "{report}");
    // A lone node is named by --node-id too (it showed the host name).
    assert_eq!(report["node"]["id"], "edge-fra-1", "{report}");
    let secure = sites.iter().find(|s| s["name"] == "secure").unwrap();
    let reported = secure["certificate_expiry_seconds"].as_i64().unwrap();
    assert!((reported - expiry).abs() < 60, "{reported} vs {expiry}");
    let broken = sites.iter().find(|s| s["name"] == "broken").unwrap();
    assert_eq!(broken["window"]["origin_errors"], 1, "{broken}");

    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/grafana/s3edge-dashboard.json")).unwrap();
    let mut exprs = Vec::new();
    dashboard_expressions(&dashboard, &mut exprs);
    assert!(exprs.len() >= 20, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        used.extend(names);
    }
    let declared = declared_names(&metrics);
    let unknown: Vec<_> = used
        .iter()
        .filter(|n| !exported.contains(*n) && !declared.contains(*n))
        .collect();
    assert!(
        unknown.is_empty(),
        "the dashboard uses {unknown:?}, which the node does not export: {metrics}"
    );
    // The dashboard covers every family the node exports, or declares
    // without samples yet (peer requests on a lone node).
    let families: BTreeSet<String> = exported
        .iter()
        .chain(declared.iter())
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| n.strip_suffix(suffix))
                .unwrap_or(n)
                .to_string()
        })
        .collect();
    for family in &families {
        assert!(
            used.iter().any(|u| u.starts_with(family.as_str())),
            "no panel shows {family}"
        );
    }

    let (rule_exprs, recorded) =
        rule_expressions(&repo_file("deploy/prometheus/s3edge-alerts.yml"));
    assert!(rule_exprs.len() >= 8, "{rule_exprs:?}");
    for expr in &rule_exprs {
        for name in metric_names(expr) {
            // `up` is Prometheus' own series for every scrape target.
            let known = exported.contains(&name)
                || declared.contains(&name)
                || recorded.contains(&name)
                || name == "up";
            assert!(
                known,
                "the rule `{expr}` uses {name}, which nothing exports"
            );
        }
    }
    assert_eq!(node.stop(), Some(0));
}

// ---------------------------------------------------------------------------
// Start-up log format

fn demo_like_site(dir: &Path) {
    write(&dir.join("buckets/demo/index.html"), "hello");
    write(
        &dir.join("sites/demo.toml"),
        common::site_toml("localhost", "demo", ""),
    );
}

fn serve_args(dir: &Path, format: &str) -> Vec<String> {
    let path = |p: &str| dir.join(p).display().to_string();
    [
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--embedded-s3-listen",
        "127.0.0.1:0",
        "--log-format",
        format,
        "--sites",
        &path("sites"),
        "--embedded-s3",
        &path("buckets"),
        "--cache-dir",
        &path("cache"),
    ]
    .map(String::from)
    .to_vec()
}

/// The start-up lines every node prints, whatever the format.
const STARTUP_LINES: &[&str] = &[
    "embedded S3 store: http://127.0.0.1:",
    "site demo: localhost -> s3://demo (embedded)",
    "disk cache: ",
    "listening on http://127.0.0.1:",
    "admin listening on http://127.0.0.1:",
];

fn run_and_stop(dir: &Path, format: &str) -> (String, String) {
    let args = serve_args(dir, format);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut node = Binary::serve(&args, &[], dir);
    let response = blocking_client()
        .get(format!("{}/index.html", node.http))
        .header("host", "localhost")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(node.stop(), Some(0));
    (node.stdout(), node.stderr())
}

#[test]
fn with_log_format_json_every_process_log_line_is_json() {
    let dir = tempfile::tempdir().unwrap();
    demo_like_site(dir.path());
    let (stdout, stderr) = run_and_stop(dir.path(), "json");
    let mut messages = Vec::new();
    for line in stderr.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "message", "target"] {
            assert!(event.get(field).is_some(), "{field} in {line}");
        }
        messages.push(event["message"].as_str().unwrap().to_string());
    }
    for expected in STARTUP_LINES {
        assert!(
            messages.iter().any(|m| m.starts_with(expected)),
            "`{expected}` in {messages:?}"
        );
    }
    assert!(messages.iter().any(|m| m == "stopped"), "{messages:?}");
    // The access log (stdout) is JSON too.
    let access: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(access["path"], "/index.html");
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "no colour in a pipe"
    );

    // Refusing a broken site file is logged the same way.
    let stderr = refused_start(dir.path(), "bad.toml", "json");
    let problems: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        problems.iter().any(|p| p["level"] == "ERROR"
            && p["message"]
                .as_str()
                .unwrap()
                .contains("bad.toml: nonsense: unknown key")),
        "{stderr}"
    );
}

/// Adds the site file `name` with an unknown key and starts a node on `dir`
/// in log `format`, which must refuse to start: its standard error.
fn refused_start(dir: &Path, name: &str, format: &str) -> String {
    write(
        &dir.join("sites").join(name),
        "hosts = [\"x\"]\nnonsense = 1\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_s3edge"))
        .arg("serve")
        .args(serve_args(dir, format))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn with_log_format_text_every_line_has_the_same_plain_format() {
    let dir = tempfile::tempdir().unwrap();
    demo_like_site(dir.path());
    let (stdout, stderr) = run_and_stop(dir.path(), "text");
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "no colour in a pipe: {stderr}"
    );
    // `2026-11-28T18:20:00.123456Z  INFO target: message`, every line.
    let shape = |line: &str| {
        let (time, rest) = line.split_once(' ')?;
        let level = rest.trim_start();
        let (level, message) = level.split_once(' ')?;
        let ok = time.len() >= 20
            && time.ends_with('Z')
            && time.as_bytes()[10] == b'T'
            && ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level);
        ok.then(|| {
            message
                .split_once(": ")
                .map_or(message, |(_, m)| m)
                .to_string()
        })
    };
    let mut messages = Vec::new();
    for line in stderr.lines() {
        messages
            .push(shape(line).unwrap_or_else(|| panic!("another format: {line:?} in {stderr}")));
    }
    for expected in STARTUP_LINES {
        assert!(
            messages.iter().any(|m| m.starts_with(expected)),
            "`{expected}` in {stderr}"
        );
    }

    // A message holding a line break (here a file name; a CA's error text)
    // is still one line: the break is written `\n`.
    let stderr = refused_start(dir.path(), "two\nlines.toml", "text");
    let messages: Vec<String> = stderr
        .lines()
        .map(|line| shape(line).unwrap_or_else(|| panic!("another format: {line:?} in {stderr}")))
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("two\\nlines.toml: nonsense: unknown key")),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------
// A clean checkout

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=s3edge",
            "-c",
            "user.email=s3edge@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Copies `from` into `to`, leaving out hidden entries (a developer's own runs).
fn copy_visible(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_visible(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn serving_the_demo_leaves_the_checkout_clean() {
    if Command::new("git").arg("--version").output().is_err() {
        eprintln!("SKIPPED: git is not installed");
        return;
    }
    let checkout = tempfile::tempdir().unwrap();
    let root = checkout.path();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(repo.join(".gitignore"), root.join(".gitignore")).unwrap();
    copy_visible(&repo.join("sites"), &root.join("sites"));
    git(root, &["init", "-q"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "demo"]);

    // `s3edge serve` with the defaults but the ports (the shipped demo, the
    // embedded store on sites/buckets, the cache in .s3edge-cache).
    let mut node = Binary::serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--embedded-s3-listen",
            "127.0.0.1:0",
        ],
        &[],
        root,
    );
    let client = blocking_client();
    for path in [
        "/",
        "/css/site.css",
        "/img/edge.png",
        "/docs/",
        "/robots.txt",
        "/nothing",
    ] {
        client
            .get(format!("{}{path}", node.http))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
    }
    // Publishing through the S3 API writes the store's metadata too.
    let store = common::binary::listener_url(&node.stderr(), "embedded S3 store: ").unwrap();
    let s3 = common::s3_client(
        &store,
        s3edge::origin::embedded::DEFAULT_ACCESS_KEY,
        s3edge::origin::embedded::DEFAULT_SECRET_KEY,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        s3.put_object()
            .bucket("demo")
            .key("new.html")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"new"))
            .content_type("text/html")
            .send()
            .await
            .unwrap();
    });
    let hidden: Vec<String> = std::fs::read_dir(root.join("sites/buckets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(
        hidden.iter().any(|n| n.ends_with(".internal.json")),
        "the store keeps its metadata beside the buckets: {hidden:?}"
    );
    // Only what was published shows; none of the store's own files.
    assert_eq!(
        git(root, &["status", "--porcelain", "--untracked-files=all"]),
        "?? sites/buckets/demo/new.html\n"
    );
    runtime.block_on(async {
        s3.delete_object()
            .bucket("demo")
            .key("new.html")
            .send()
            .await
            .unwrap();
    });
    assert_eq!(node.stop(), Some(0));
    assert_eq!(
        git(root, &["status", "--porcelain", "--untracked-files=all"]),
        "",
        "serving the demo left files for git"
    );
}
