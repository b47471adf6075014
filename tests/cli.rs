//! The `s3edge` binary as a user runs it: `check`, `serve` start-up lines,
//! refusing broken site files, and SIGTERM draining in-flight requests.
#![cfg(feature = "embedded")]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command};

use common::binary::{rss_kib, Binary};
use std::time::{Duration, Instant};

fn s3edge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_s3edge"))
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn check_accepts_valid_sites_and_the_shipped_demo() {
    let output = s3edge()
        .args(["check", "--sites", "sites"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 site file(s) valid"));
}

/// A reader that stops reading (`s3edge releases | head -1`) ends the output,
/// not the command: `println!` panicked on the broken pipe (exit 101 with a
/// backtrace), which failed a `publish` whose release was already live in a
/// script with `pipefail`.
#[test]
fn a_closed_standard_output_is_not_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = s3edge()
        .args(["check", "--sites", "sites"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn check_prints_every_problem_with_file_and_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let sites = dir.path().join("sites");
    write(
        &sites,
        "a.toml",
        "hosts = [\"a.example.com\"]\n[origin]\nbucket = \"site-a\"\ntimeout = \"ten\"\n",
    );
    write(&sites, "b.toml", "hosts = [\"a.example.com\"]\n[origin]\nbucket = \"site-b\"\n[compression]\nmax_size = \"huge\"\n");
    write(
        &sites,
        "c.toml",
        "hosts = [\"c.example.com\"]\n[origin]\nbukket = \"x\"\n",
    );
    write(
        &sites,
        "d.toml",
        "hosts = [\"d.example.com\"]\n[origin]\nregion = \"eu-west-1\"\n",
    );
    write(
        &sites,
        "e.toml",
        "hosts = [\"e.example.com\"\n[origin]\nbucket = \"e\"\n",
    );
    let output = s3edge()
        .args(["check", "--sites"])
        .arg(&sites)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8_lossy(&output.stdout);
    let a = sites.join("a.toml").display().to_string();
    let b = sites.join("b.toml").display().to_string();
    let c = sites.join("c.toml").display().to_string();
    let d = sites.join("d.toml").display().to_string();
    for want in [
        format!("{a}: origin.timeout: `ten` is not a duration"),
        format!("{b}: compression.max_size: `huge` is not a size"),
        format!("{c}: origin.bukket: unknown key"),
        format!("{d}: origin.bucket: missing; set the bucket's name"),
    ] {
        assert!(text.contains(&want), "wanted `{want}` in:\n{text}");
    }
    // A syntax error is one line, naming where the parser stopped.
    let e = sites.join("e.toml").display().to_string();
    let syntax: Vec<&str> = text.lines().filter(|l| l.contains("e.toml")).collect();
    assert_eq!(syntax.len(), 1, "{text}");
    assert!(
        syntax[0].starts_with(&format!("{e}: (syntax): invalid array")),
        "{text}"
    );
    assert!(
        syntax[0].ends_with(" at line 2, column 1; fix the TOML"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 5, "one line per problem:\n{text}");
    std::fs::remove_file(sites.join("e.toml")).unwrap();
    // The duplicate host is only detectable across files once both are valid.
    write(
        &sites,
        "a.toml",
        "hosts = [\"a.example.com\"]\n[origin]\nbucket = \"site-a\"\n",
    );
    write(
        &sites,
        "b.toml",
        "hosts = [\"a.example.com\"]\n[origin]\nbucket = \"site-b\"\n",
    );
    std::fs::remove_file(sites.join("c.toml")).unwrap();
    std::fs::remove_file(sites.join("d.toml")).unwrap();
    let output = s3edge()
        .args(["check", "--sites"])
        .arg(&sites)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(&format!(
            "{b}: hosts[0]: host `a.example.com` is already claimed by site `a`"
        )),
        "{text}"
    );
}

/// A certificate that does not cover one of its site's hosts is valid, and
/// browsers refuse HTTPS for that host: `check` says so (exit 0), naming the
/// file, the key and the host; a wildcard host wants a wildcard certificate.
/// A bucket name S3 refuses (`My_Blog`) made every request a 502: warned of.
#[test]
fn check_warns_of_an_uncovered_host_and_a_bucket_name_s3_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let sites = dir.path().join("sites");
    let pki = common::pki::Pki::new();
    let leaf = pki.leaf("shop", &["shop.example.com", "*.cdn.example.com"]);
    let tls = leaf.tls_section();
    write(
        &sites,
        "good.toml",
        &format!("hosts = [\"shop.example.com\", \"*.cdn.example.com\"]\n[origin]\nbucket = \"shop\"\n{tls}"),
    );
    write(
        &sites,
        "bad.toml",
        &format!("hosts = [\"www.shop.example.com\", \"*.img.example.com\"]\n[origin]\nbucket = \"shop\"\n{tls}"),
    );
    write(
        &sites,
        "named.toml",
        "hosts = [\"named.example.com\"]\n[origin]\nbucket = \"My_Blog\"\n",
    );
    // Credentials from variables this environment does not set (one set).
    write(
        &sites,
        "keys.toml",
        "hosts = [\"keys.example.com\"]\n[origin]\nbucket = \"keys\"\nendpoint = \"https://s3.example.net\"\naccess_key_id_env = \"S3EDGE_TEST_SET_KEY\"\nsecret_access_key_env = \"S3EDGE_TEST_UNSET_SECRET\"\n",
    );
    let output = s3edge()
        .args(["check", "--sites"])
        .arg(&sites)
        .env("S3EDGE_TEST_SET_KEY", "AKIA")
        .env_remove("S3EDGE_TEST_UNSET_SECRET")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let named = sites.join("named.toml").display().to_string();
    let want =
        format!("warning: {named}: origin.bucket: `My_Blog` is not a bucket name S3 accepts");
    assert!(text.contains(&want), "wanted `{want}` in:\n{text}");
    let bad = sites.join("bad.toml").display().to_string();
    let cert = leaf.cert.display().to_string();
    for host in ["www.shop.example.com", "*.img.example.com"] {
        let want = format!("warning: {bad}: tls.cert: `{cert}` does not cover `{host}`");
        assert!(text.contains(&want), "wanted `{want}` in:\n{text}");
    }
    let keys = sites.join("keys.toml").display().to_string();
    let want = format!("warning: {keys}: origin.secret_access_key_env: environment variable `S3EDGE_TEST_UNSET_SECRET` is not set here");
    assert!(text.contains(&want), "wanted `{want}` in:\n{text}");
    assert_eq!(text.matches("warning:").count(), 4, "{text}");
}

#[test]
fn serve_refuses_to_start_on_an_invalid_site_with_the_same_messages() {
    let dir = tempfile::tempdir().unwrap();
    let sites = dir.path().join("sites");
    write(
        &sites,
        "x.toml",
        "hosts = [\"x.example.com\"]\nnonsense = 1\n[origin]\nbucket = \"site-x\"\n",
    );
    let output = serve_once(&sites, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: nonsense: unknown key",
            sites.join("x.toml").display()
        )),
        "{stderr}"
    );
}

/// `s3edge serve` on `sites` with `flags`, on ports of its own.
fn serve_command(sites: &Path, flags: &[&str]) -> Command {
    let mut command = s3edge();
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--sites")
        .arg(sites)
        .args(flags);
    command
}

/// [`serve_command`] run to its exit (for a node that must not start).
fn serve_once(sites: &Path, flags: &[&str]) -> std::process::Output {
    serve_command(sites, flags).output().unwrap()
}

/// A start-up failure is one line that names what failed and why, once:
/// a port in use, a cache directory that cannot be made, a congestion
/// control the kernel does not have. Each exits 1.
#[test]
fn serve_says_why_it_cannot_start_once() {
    let dir = tempfile::tempdir().unwrap();
    let sites = dir.path().join("sites");
    std::fs::create_dir_all(&sites).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = listener.local_addr().unwrap();
    let cache = dir.path().join("cache").display().to_string();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let cases: [(&[&str], String, &str); 3] = [
        (
            &["--listen", &taken.to_string(), "--cache-dir", &cache],
            format!("cannot listen on {taken}: "),
            "Address already in use",
        ),
        (
            &[
                "--cache-dir",
                &not_a_dir.join("cache").display().to_string(),
            ],
            format!("cache directory {}: ", not_a_dir.join("cache").display()),
            "Not a directory",
        ),
        (
            &["--tcp-congestion", "no-such-cc", "--cache-dir", &cache],
            "--tcp-congestion no-such-cc: ".to_string(),
            "no congestion control of that name is loaded",
        ),
    ];
    for (flags, names, reason) in cases {
        let output = serve_once(&sites, flags);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{flags:?}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains(" ERROR "))
            .unwrap_or_else(|| panic!("{flags:?}: no error line in {stderr}"));
        assert!(line.contains(&names), "{flags:?}: {line}");
        assert_eq!(line.matches(reason).count(), 1, "{flags:?}: {line}");
    }
}

fn site_dir(object: Option<(&str, &[u8])>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("sites"),
        "demo.toml",
        // The store hashes a hand-placed file on its first GET (the 1 GiB one
        // takes over 10 s in a debug build on a busy machine).
        "hosts = [\"localhost\"]\ndefault = true\n[origin]\nbucket = \"demo\"\nendpoint = \"embedded\"\ntimeout = \"120s\"\n",
    );
    let bucket = dir.path().join("sites").join("buckets").join("demo");
    std::fs::create_dir_all(&bucket).unwrap();
    if let Some((key, data)) = object {
        std::fs::write(bucket.join(key), data).unwrap();
    }
    dir
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(started.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_prints_its_listeners_and_sites_and_exits_0_on_sigterm() {
    let dir = site_dir(Some(("index.html", b"hello")));
    let mut served = Binary::serve_dir(dir.path());
    let body = reqwest::blocking::get(format!("{}/index.html", served.http))
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(body, "hello");
    let health = reqwest::blocking::get(format!("{}/healthz", served.admin)).unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        served
            .stderr()
            .contains("embedded S3 store: http://127.0.0.1:"),
        "{}",
        served.stderr()
    );
    sigterm(&served.child);
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(10)),
        Some(0)
    );
}

#[test]
fn sigterm_lets_an_in_flight_download_finish_before_exiting_0() {
    let data = common::random_bytes(48 * 1024 * 1024, 3);
    let dir = site_dir(Some(("big.bin", &data)));
    let mut served = Binary::serve_dir(dir.path());
    let mut response = reqwest::blocking::get(format!("{}/big.bin", served.http)).unwrap();
    assert_eq!(response.status(), 200);
    let mut first = vec![0u8; 1024 * 1024];
    response.read_exact(&mut first).unwrap();
    sigterm(&served.child);
    // Read the rest slowly enough that the signal lands mid-transfer.
    std::thread::sleep(Duration::from_millis(300));
    let mut rest = Vec::new();
    response.read_to_end(&mut rest).unwrap();
    first.extend_from_slice(&rest);
    assert_eq!(common::sha256(&first), common::sha256(&data));
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(30)),
        Some(0)
    );
    // New connections are refused once the node has stopped.
    assert!(reqwest::blocking::get(format!("{}/big.bin", served.http)).is_err());
}

/// Serving a 1 GiB object grows the process's memory by at most 64 MiB: bodies
/// stream, they are never buffered whole. (S3EDGE_TEST_BIG_MIB changes the size.)
#[test]
fn serving_a_1_gib_object_does_not_grow_rss_by_more_than_64_mib() {
    let mib: usize = std::env::var("S3EDGE_TEST_BIG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = site_dir(None);
    let path = dir.path().join("sites/buckets/demo/huge.bin");
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let block = common::random_bytes(1024 * 1024, 11);
        for _ in 0..mib {
            file.write_all(&block).unwrap();
        }
    }
    let mut served = Binary::serve_dir(dir.path());
    // Warm up the clients and pools with a small request, then take the baseline.
    let _ = reqwest::blocking::get(format!("{}/nothing", served.http))
        .unwrap()
        .bytes();
    let (baseline, _) = rss_kib(served.child.id());
    // The store hashes a hand-placed file on its first GET (about 20 s for
    // 1 GiB in a debug build on an idle machine): more than reqwest's
    // default 30 s once the machine is busy.
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(180))
        .build()
        .unwrap();
    let mut response = client
        .get(format!("{}/huge.bin", served.http))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = response.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, mib << 20);
    let (_, peak) = rss_kib(served.child.id());
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    println!(
        "RSS baseline {} MiB, peak {} MiB, growth {growth_mib} MiB for {mib} MiB served",
        baseline / 1024,
        peak / 1024
    );
    assert!(growth_mib <= 64, "RSS grew by {growth_mib} MiB");
    sigterm(&served.child);
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(10)),
        Some(0)
    );
}

#[test]
fn sighup_adds_a_site_without_dropping_a_download_and_keeps_the_old_set_when_a_file_is_broken() {
    let data = common::random_bytes(32 * 1024 * 1024, 8);
    let dir = site_dir(Some(("big.bin", &data)));
    let extra = dir.path().join("sites/buckets/extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("hello.txt"), "from the new site").unwrap();
    let mut served = Binary::serve_dir(dir.path());
    let client = reqwest::blocking::Client::new();
    let get = |host: &str, path: &str| {
        client
            .get(format!("{}{path}", served.http))
            .header("host", host)
            .send()
            .unwrap()
    };
    // A long download on an open connection.
    let mut download = get("localhost", "/big.bin");
    let mut received = vec![0u8; 1024 * 1024];
    download.read_exact(&mut received).unwrap();
    assert_eq!(
        get("new.example.com", "/hello.txt").status(),
        404,
        "before the reload the host belongs to the default site"
    );

    write(
        &dir.path().join("sites"),
        "extra.toml",
        "hosts = [\"new.example.com\"]\n[origin]\nbucket = \"extra\"\nendpoint = \"embedded\"\n",
    );
    let hup = |child: &Child| {
        assert!(Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success())
    };
    hup(&served.child);
    let mut body = String::new();
    for _ in 0..100 {
        body = get("new.example.com", "/hello.txt").text().unwrap();
        if body == "from the new site" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        body, "from the new site",
        "the new site answers after SIGHUP"
    );

    // A broken file keeps the sites in force.
    write(
        &dir.path().join("sites"),
        "broken.toml",
        "hosts = [\"broken.example.com\"]\n[origin]\nbukket = 1\n",
    );
    hup(&served.child);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        get("new.example.com", "/hello.txt").text().unwrap(),
        "from the new site"
    );
    assert!(served.child.try_wait().unwrap().is_none(), "still running");

    let mut rest = Vec::new();
    download.read_to_end(&mut rest).unwrap();
    received.extend_from_slice(&rest);
    assert_eq!(
        common::sha256(&received),
        common::sha256(&data),
        "the download finished intact"
    );
    sigterm(&served.child);
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(10)),
        Some(0)
    );
}

/// `one` and `two`, buckets of the embedded store under `dir`, each with
/// `keys` objects whose bodies name their bucket.
fn two_buckets(dir: &Path, keys: usize) {
    for bucket in ["one", "two"] {
        let folder = dir.join("sites/buckets").join(bucket);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..keys {
            std::fs::write(folder.join(format!("k{i}.txt")), bucket).unwrap();
        }
    }
}

fn demo_site_on(bucket: &str) -> String {
    format!("hosts = [\"localhost\"]\ndefault = true\n[origin]\nbucket = \"{bucket}\"\nendpoint = \"embedded\"\n")
}

/// A site moved to another bucket by SIGHUP while clients keep asking is
/// never served from the old bucket once the reload is seen: requests that
/// still held the old site when its entries were purged stored what they
/// fetched from the old bucket, which the new site then served as hits until
/// it expired (half of the reloads under load, before). Raced: the bucket
/// flips back and forth under four clients.
#[test]
fn a_bucket_changed_by_sighup_under_load_is_never_served_from_the_old_one() {
    const KEYS: usize = 8;
    let dir = site_dir(None);
    two_buckets(dir.path(), KEYS);
    let sites = dir.path().join("sites");
    write(&sites, "demo.toml", &demo_site_on("one"));
    let served = Binary::serve_dir(dir.path());
    let base = served.http.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (base, stop) = (base.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut i = c;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = client.get(format!("{base}/k{}.txt", i % KEYS)).send();
                    i += 1;
                }
            })
        })
        .collect();
    let client = reqwest::blocking::Client::new();
    let body = |key: usize| {
        client
            .get(format!("{base}/k{key}.txt"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let hup = || {
        assert!(Command::new("kill")
            .args(["-HUP", &served.child.id().to_string()])
            .status()
            .unwrap()
            .success())
    };
    for round in 0..12 {
        let bucket = if round % 2 == 0 { "two" } else { "one" };
        std::thread::sleep(Duration::from_millis(150));
        write(&sites, "demo.toml", &demo_site_on(bucket));
        hup();
        // The reload is in force once one key answers from the new bucket.
        let started = Instant::now();
        while body(round % KEYS) != bucket {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "round {round}: k{} still from the old bucket 10 s after SIGHUP",
                round % KEYS
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Requests that began before it may still be finishing: wait them out.
        std::thread::sleep(Duration::from_millis(300));
        for key in 0..KEYS {
            assert_eq!(body(key), bucket, "round {round}: k{key}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
}

/// A site file edited to another bucket while the node was stopped: after
/// the restart the site's entries from the old bucket are dropped (they
/// were served as hits until they expired), the other sites' are kept, and
/// a second node on the same cache directory is refused, naming the reason.
#[test]
fn a_restart_with_another_bucket_drops_that_sites_entries_and_one_cache_dir_has_one_node() {
    let dir = site_dir(None);
    two_buckets(dir.path(), 2);
    let sites = dir.path().join("sites");
    write(&sites, "demo.toml", &demo_site_on("one"));
    write(
        &sites,
        "other.toml",
        "hosts = [\"other.test\"]\n[origin]\nbucket = \"two\"\nendpoint = \"embedded\"\n",
    );
    let client = reqwest::blocking::Client::new();
    let get = |served: &Binary, host: &str| {
        let response = client
            .get(format!("{}/k0.txt", served.http))
            .header("host", host)
            .send()
            .unwrap();
        let status = response.headers()["cache-status"]
            .to_str()
            .unwrap()
            .to_string();
        (response.text().unwrap(), status)
    };
    let mut served = Binary::serve_dir(dir.path());
    assert_eq!(get(&served, "localhost").0, "one");
    assert_eq!(get(&served, "other.test").0, "two");

    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let flags = ["--cache-dir", cache, "--embedded-s3-listen", "127.0.0.1:0"];
    let mut second = serve_command(&sites, &flags)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exit = wait_exit(&mut second, Duration::from_secs(20));
    if exit.is_none() {
        second.kill().unwrap();
        second.wait().unwrap();
    }
    let mut stderr = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        exit,
        Some(1),
        "a second node on the cache directory: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "another s3edge (process {}) is using this cache directory; give each node its own --cache-dir",
            served.child.id()
        )),
        "{stderr}"
    );
    assert_eq!(
        get(&served, "localhost").1,
        "s3edge; hit",
        "the first node kept its tier"
    );

    sigterm(&served.child);
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(10)),
        Some(0)
    );
    write(&sites, "demo.toml", &demo_site_on("two"));
    let served = Binary::serve_dir(dir.path());
    assert_eq!(get(&served, "localhost").0, "two");
    assert_eq!(
        get(&served, "other.test"),
        ("two".to_string(), "s3edge; hit".to_string()),
        "an unchanged site keeps its entries"
    );
}

/// Log rotation: after the access log file is renamed (what logrotate
/// does), SIGUSR1, as nginx's reopen, or SIGHUP makes the node write to a
/// new file of the old name; the renamed one keeps the lines written
/// before. SIGUSR1 ended the process before, and nothing reopened the file.
#[test]
fn sigusr1_and_sighup_reopen_a_rotated_access_log() {
    let dir = site_dir(Some(("a.txt", b"a")));
    let log = dir.path().join("access.log");
    let mut served = Binary::serve_dir_with(dir.path(), &["--access-log", log.to_str().unwrap()]);
    let client = reqwest::blocking::Client::new();
    let lines_with = |file: &Path, marker: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(marker))
            .count()
    };
    let request = |marker: &str| {
        let url = format!("{}/a.txt?{marker}", served.http);
        assert_eq!(client.get(url).send().unwrap().status(), 200);
    };
    for (round, signal) in [(1, "-USR1"), (2, "-HUP")] {
        let before = format!("before-{round}");
        request(&before);
        let rotated = dir.path().join(format!("access.log.{round}"));
        let started = Instant::now();
        while lines_with(&log, &before) == 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "never logged");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::rename(&log, &rotated).unwrap();
        assert!(Command::new("kill")
            .args([signal, &served.child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let after = format!("after-{round}");
        let started = Instant::now();
        loop {
            assert!(
                served.child.try_wait().unwrap().is_none(),
                "{signal} ended the node"
            );
            request(&after);
            if lines_with(&log, &after) > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{signal}: nothing written to a new access.log"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(lines_with(&rotated, &before), 1, "{signal}");
        assert_eq!(lines_with(&log, &before), 0, "{signal}");
    }
    sigterm(&served.child);
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(10)),
        Some(0)
    );
}

/// A bucket that takes connections and never answers: a `[releases]` site
/// on it makes the node's start, and each reload, wait for its `timeout`.
fn hung_bucket_site(dir: &Path) -> std::net::TcpListener {
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    write(
        &dir.join("sites"),
        "slow.toml",
        &format!(
            "hosts = [\"slow.test\"]\n[origin]\nbucket = \"slow-bucket\"\nendpoint = \"http://{}\"\nanonymous = true\ntimeout = \"6s\"\n[releases]\npreview_hosts = [\"*.preview.slow.test\"]\n",
            hung.local_addr().unwrap()
        ),
    );
    hung
}

/// SIGHUP and SIGUSR1 ended the process (their default action) until the
/// node had started, which a slow bucket makes take seconds: a `systemctl
/// reload` during a restart killed it for good (systemd takes an exit by
/// SIGHUP as clean). Now they are taken over first: the node starts, then
/// reads the site files again and reopens its log.
#[test]
fn sighup_and_sigusr1_during_a_slow_start_do_not_end_the_node() {
    let dir = site_dir(Some(("a.txt", b"a")));
    let _hung = hung_bucket_site(dir.path());
    let args = Binary::dir_args(dir.path(), &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // `$$` is the shell that becomes the node: signalled while it starts.
    let mut served = Binary::serve_in_shell(
        "(sleep 0.7; kill -HUP $$; kill -USR1 $$) &",
        &args,
        &[],
        dir.path(),
    );
    assert!(served.child.try_wait().unwrap().is_none());
    let log = served.stderr();
    assert!(log.contains("SIGHUP while starting"), "{log}");
    let client = reqwest::blocking::Client::new();
    let answer = client.get(format!("{}/a.txt", served.http)).send().unwrap();
    assert_eq!(answer.status(), 200);
    // The reload asked for during the start runs once started.
    let started = Instant::now();
    while !served.stderr().contains("SIGHUP: site files reloaded") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            served.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&served.child);
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(15)),
        Some(0)
    );
}

/// A SIGTERM while the node starts stops it at once (exit 0), whatever the
/// start waits on: a slow bucket here; the disk tier's index is built on the
/// blocking pool for the same reason.
#[test]
fn sigterm_during_a_slow_start_stops_it_at_once() {
    let dir = site_dir(Some(("a.txt", b"a")));
    let _hung = hung_bucket_site(dir.path());
    let args = Binary::dir_args(dir.path(), &[]);
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg("(sleep 0.7; kill -TERM $$) & exec \"$0\" serve \"$@\"")
        .arg(env!("CARGO_BIN_EXE_s3edge"))
        .args(&args)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let code = wait_exit(&mut child, Duration::from_secs(20));
    let took = started.elapsed();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("SIGTERM while starting"), "{log}");
    assert!(!log.contains("listening on"), "{log}");
    // The bucket's timeout is 6 s.
    assert!(took < Duration::from_secs(4), "took {took:?}: {log}");
}

/// A SIGTERM during a reload that waits on a slow bucket was acted on only
/// once the reload was done (each `[releases]` site on a hung bucket added
/// its `timeout`): the node went on taking requests. It now drains at once.
#[test]
fn sigterm_during_a_slow_reload_drains_at_once() {
    let dir = site_dir(Some(("a.txt", b"a")));
    let mut served = Binary::serve_dir(dir.path());
    // A site on a hung bucket, then a reload that must wait for it.
    let _hung = hung_bucket_site(dir.path());
    let kill = |signal: &str| {
        assert!(Command::new("kill")
            .args([signal, &served.child.id().to_string()])
            .status()
            .unwrap()
            .success());
    };
    kill("-HUP");
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    kill("-TERM");
    let code = wait_exit(&mut served.child, Duration::from_secs(15));
    let took = signalled.elapsed();
    eprintln!("stopped {took:?} after SIGTERM");
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_millis(2000),
        "stopped {took:?} after SIGTERM: {}",
        served.stderr()
    );
    assert!(!served.stderr().contains("SIGHUP: site files reloaded"));
}

/// At SIGTERM, an idle HTTP/2 connection (a browser's, between pages) held
/// the shutdown for the whole 30 s grace period, and its client was never
/// told to stop opening streams. Now every HTTP/2 connection gets GOAWAY
/// (RFC 9113 6.8: first with the highest stream id, then, once the client
/// has answered the PING sent with it, with the last one processed), an
/// idle one is closed at once (a second after the first GOAWAY for a client
/// that never answers the PING), and the node exits within a couple of
/// seconds.
#[test]
fn sigterm_sends_goaway_on_an_idle_http2_connection_and_exits_at_once() {
    use common::h2_frames::{RawH2, Received, GOAWAY, HEADERS};

    let pki = common::pki::Pki::new();
    let dir = site_dir(Some(("index.html", b"hello")));
    let tls = pki.leaf("localhost", &["localhost"]).tls_section();
    let site = std::fs::read_to_string(dir.path().join("sites/demo.toml")).unwrap();
    write(
        &dir.path().join("sites"),
        "demo.toml",
        &format!("{site}{tls}"),
    );
    let mut served = Binary::serve_dir_with(dir.path(), &["--tls-listen", "127.0.0.1:0"]);
    let https = served
        .stderr()
        .lines()
        .find_map(|line| common::binary::listener_url(line, "listening on https://"))
        .expect("an HTTPS listener");
    let https = https.trim_start_matches("https://").parse().unwrap();
    // A connection that has had one answer and is now idle.
    let idle = || {
        let mut h2 = RawH2::connect(https, "localhost", &pki, &[]);
        h2.get(1, "localhost", "/index.html");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match h2.next(deadline) {
                Received::Frame(f) if f.kind == HEADERS => break,
                Received::Frame(_) => continue,
                other => panic!("no answer: {other:?}"),
            }
        }
        let quiet = Instant::now() + Duration::from_millis(300);
        while let Received::Frame(_) = h2.next(quiet) {}
        h2
    };
    let mut answering = idle();
    let mut silent = idle();
    silent.ignore_pings();

    sigterm(&served.child);
    let signalled = Instant::now();
    for (name, h2) in [("answering", &mut answering), ("silent", &mut silent)] {
        let mut last_stream_ids = Vec::new();
        let deadline = signalled + Duration::from_secs(5);
        loop {
            match h2.next(deadline) {
                Received::Frame(f) if f.kind == GOAWAY => last_stream_ids.push(f.word(0)),
                Received::Frame(_) => continue,
                Received::Closed => break,
                Received::TimedOut => panic!("{name}: still open 5 s after SIGTERM"),
            }
        }
        assert_eq!(
            last_stream_ids,
            [0x7fff_ffff, 1],
            "{name}: GOAWAYs (last stream ids)"
        );
    }
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(3)),
        Some(0)
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "{:?}",
        signalled.elapsed()
    );
}

/// `purge` with a malformed `--admin` is a usage error (exit 2), refused
/// before any request.
#[test]
fn purge_refuses_a_malformed_admin_url_as_a_usage_error() {
    for admin in [
        "127.0.0.1:9090",
        "http://127.0.0.1:9090/admin",
        "http://host",
    ] {
        let output = s3edge()
            .args(["purge", "--admin", admin, "--site", "x", "--all"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{admin}: {stderr}");
        assert!(stderr.contains("--admin must be"), "{stderr}");
    }
}

/// An invalid `--node-id` is refused at start with or without a cluster:
/// it names the node on its status page and in ACME's locks.
#[test]
fn an_invalid_node_id_is_refused_without_a_cluster_too() {
    let dir = site_dir(None);
    let output = serve_once(&dir.path().join("sites"), &["--node-id", "not a valid id"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a valid id"), "{stderr}");
}
