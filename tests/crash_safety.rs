//! Crash safety of the disk tier, with the real binary: `kill -9` in the middle
//! of a large fill, then a restart on the same cache directory; a disk that
//! fills up during a fill; a process out of file descriptors (and the open
//! file limit it raises at start). The origin is the binary's embedded S3 store, behind
//! a throttling TCP proxy where a fill must be slow enough to be interrupted.
#![cfg(feature = "embedded")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::binary::{free_port, Binary};
use common::{random_bytes, sha256, temp_files};

const MIB: usize = 1024 * 1024;

/// Forwards connections to `target`; answers flow back at about `rate` bytes
/// per second (0: unthrottled). Runs until the test process ends.
fn throttling_proxy(target: u16, rate: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let step = if rate == 0 {
                    256 * 1024
                } else {
                    (rate / 50).max(1)
                };
                let mut buf = vec![0u8; step];
                loop {
                    match s_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if c_write.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                    if rate > 0 {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                let _ = c_write.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

/// A directory with one site whose bucket `demo` (in the embedded store on
/// `store_port`) is reached through `endpoint_port`.
fn site_dir(endpoint_port: u16, objects: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let sites = dir.path().join("sites");
    let bucket = sites.join("buckets").join("demo");
    std::fs::create_dir_all(&bucket).unwrap();
    std::fs::write(
        sites.join("demo.toml"),
        format!(
            "hosts = [\"localhost\"]\ndefault = true\n[origin]\nbucket = \"demo\"\n\
             endpoint = \"http://127.0.0.1:{endpoint_port}\"\npath_style = true\n\
             access_key_id_env = \"CRASH_TEST_KEY\"\nsecret_access_key_env = \"CRASH_TEST_SECRET\"\n"
        ),
    )
    .unwrap();
    for (key, data) in objects {
        std::fs::write(bucket.join(key), data).unwrap();
    }
    dir
}

/// The environment a node on a [`site_dir`] needs.
const ENV: [(&str, &str); 2] = [
    ("CRASH_TEST_KEY", "s3edge-dev"),
    ("CRASH_TEST_SECRET", "s3edge-dev-secret"),
];

/// Starts the binary on `dir`; `shell` runs first in bash (limits).
fn start(dir: &Path, store_port: u16, shell: &str) -> Binary {
    let args = node_args(dir, store_port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Binary::serve_in_shell(shell, &args, &ENV, dir)
}

/// `serve`'s arguments for a node on `dir` whose embedded store listens on
/// `store_port`.
fn node_args(dir: &Path, store_port: u16) -> Vec<String> {
    let path = |p: &str| dir.join(p).to_str().unwrap().to_string();
    let store = format!("127.0.0.1:{store_port}");
    [
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--access-log",
        "off",
        "--memory-object-max",
        "1MiB",
        "--disk-cache-size",
        "1GiB",
        "--cache-dir",
        &path("cache"),
        "--embedded-s3",
        &path("sites/buckets"),
        "--embedded-s3-listen",
        &store,
        "--sites",
        &path("sites"),
    ]
    .map(str::to_string)
    .to_vec()
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Status, Cache-Status and body of a GET.
fn get(node: &Binary, path: &str) -> (u16, String, Vec<u8>) {
    let response = client().get(format!("{}{path}", node.http)).send().unwrap();
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, cache, response.bytes().unwrap().to_vec())
}

fn disk_entries(node: &Binary) -> u64 {
    disk_metric(node, "s3edge_cache_entries").unwrap_or(0)
}

/// A `{tier="disk"}` series of `/metrics`.
fn disk_metric(node: &Binary, name: &str) -> Option<u64> {
    let text = client()
        .get(format!("{}/metrics", node.admin))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let prefix = format!("{name}{{tier=\"disk\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn kill_9_during_a_large_fill_leaves_no_temp_file_nothing_corrupt_and_the_complete_entries_warm() {
    let small = random_bytes(200_000, 41);
    let big = random_bytes(24 * MIB, 42);
    let store_port = free_port();
    // About 4 MiB/s: the 24 MiB fill takes several seconds.
    let proxy = throttling_proxy(store_port, 4 * MIB);
    let dir = site_dir(proxy, &[("small.bin", &small), ("big.bin", &big)]);
    let mut node = start(dir.path(), store_port, "");

    assert_eq!(get(&node, "/small.bin").2, small);
    wait_until("small.bin on disk", Duration::from_secs(10), || {
        disk_entries(&node) >= 1
    });
    assert_eq!(disk_metric(&node, "s3edge_cache_tier_enabled"), Some(1));
    let url = format!("{}/big.bin", node.http);
    std::thread::spawn(move || {
        let _ = client().get(url).send().and_then(|r| r.bytes());
    });
    wait_until("a partial fill on disk", Duration::from_secs(30), || {
        temp_files(&dir.path().join("cache"))
            .iter()
            .any(|(_, len)| *len > 2 * MIB as u64)
    });
    node.child.kill().unwrap(); // SIGKILL
    node.child.wait().unwrap();
    let partial = temp_files(&dir.path().join("cache"));
    assert!(
        partial.iter().all(|(_, len)| *len < big.len() as u64),
        "the fill was interrupted: {partial:?}"
    );
    drop(node);

    let node = start(dir.path(), store_port, "");
    assert!(
        temp_files(&dir.path().join("cache")).is_empty(),
        "temporary files are removed at start"
    );
    let (status, cache, body) = get(&node, "/small.bin");
    assert_eq!((status, cache.as_str()), (200, "s3edge; hit"), "warm");
    assert_eq!(body, small);
    let (status, cache, body) = get(&node, "/big.bin");
    assert_eq!(
        (status, cache.as_str()),
        (200, "s3edge; fwd=miss; stored"),
        "the interrupted fill is not an entry"
    );
    assert_eq!(sha256(&body), sha256(&big));
    wait_until("big.bin on disk", Duration::from_secs(30), || {
        disk_entries(&node) >= 2
    });
    let (_, cache, body) = get(&node, "/big.bin");
    assert_eq!(cache, "s3edge; hit");
    assert_eq!(sha256(&body), sha256(&big));
}

#[test]
fn a_disk_that_fills_up_during_a_fill_pauses_the_tier_and_it_writes_again_once_it_can() {
    let small = random_bytes(100_000, 43);
    let big = random_bytes(8 * MIB, 44);
    let later = random_bytes(3 * MIB, 45);
    let store_port = free_port();
    let proxy = throttling_proxy(store_port, 0);
    let dir = site_dir(
        proxy,
        &[
            ("small.bin", &small),
            ("big.bin", &big),
            ("later.bin", &later),
        ],
    );
    // No file of the process may grow past 3 MiB: writing one fails (EFBIG),
    // as a full disk fails a write (SIGXFSZ is ignored, as bash's trap leaves
    // it). The soft limit only: the test lifts it later, as an operator frees
    // space.
    let node = start(dir.path(), store_port, "trap '' XFSZ\nulimit -S -f 3072");
    assert_eq!(get(&node, "/small.bin").2, small);
    wait_until("small.bin on disk", Duration::from_secs(10), || {
        disk_entries(&node) >= 1
    });
    assert_eq!(disk_metric(&node, "s3edge_cache_tier_enabled"), Some(1));

    // The 8 MiB fill fails to write past 3 MiB: the client still gets every byte.
    let (status, _, body) = get(&node, "/big.bin");
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), sha256(&big));
    wait_until(
        "the write error in the log",
        Duration::from_secs(10),
        || {
            node.stderr()
                .contains("disk cache writes paused after a write error")
        },
    );
    assert!(
        temp_files(&dir.path().join("cache")).is_empty(),
        "the partial file is removed"
    );
    // What the `S3edgeDiskTierOff` alert watches.
    assert_eq!(disk_metric(&node, "s3edge_cache_tier_enabled"), Some(0));
    let paused_at = Instant::now();

    // Serving goes on: hits from memory, misses from the origin, byte-exact.
    let (status, cache, body) = get(&node, "/small.bin");
    assert_eq!(
        (status, cache.as_str(), &body[..]),
        (200, "s3edge; hit", &small[..])
    );
    for _ in 0..2 {
        let (status, cache, body) = get(&node, "/later.bin");
        assert_eq!((status, cache.as_str()), (200, "s3edge; fwd=miss"));
        assert_eq!(sha256(&body), sha256(&later));
    }
    let (status, _, body) = get(&node, "/big.bin");
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), sha256(&big));
    let health = client()
        .get(format!("{}/healthz", node.admin))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);

    // Space again: once the pause (10 s) is over, the next fill is written
    // and the tier is back on, with no restart.
    lift_file_size_limit(node.pid());
    if paused_at.elapsed() < Duration::from_secs(8) {
        let (_, cache, _) = get(&node, "/later.bin");
        assert_eq!(cache, "s3edge; fwd=miss", "not stored while paused");
    }
    std::thread::sleep(Duration::from_secs(10).saturating_sub(paused_at.elapsed()));
    let (status, cache, body) = get(&node, "/later.bin");
    assert_eq!((status, cache.as_str()), (200, "s3edge; fwd=miss; stored"));
    assert_eq!(sha256(&body), sha256(&later));
    wait_until("the tier back on", Duration::from_secs(10), || {
        disk_metric(&node, "s3edge_cache_tier_enabled") == Some(1)
    });
    assert!(node.stderr().contains("disk cache: writes work again"));
    let (_, cache, body) = get(&node, "/later.bin");
    assert_eq!(cache, "s3edge; hit");
    assert_eq!(sha256(&body), sha256(&later));
}

/// Raises the soft file size limit of process `pid` to its hard one.
fn lift_file_size_limit(pid: u32) {
    use rustix::process::{prlimit, Pid, Resource, Rlimit};
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max file size"))
        .unwrap();
    let hard = line.split_whitespace().nth(4).unwrap();
    let hard = (hard != "unlimited").then(|| hard.parse().unwrap());
    let new = Rlimit {
        current: hard,
        maximum: hard,
    };
    prlimit(
        Some(Pid::from_raw(pid as i32).unwrap()),
        Resource::Fsize,
        new,
    )
    .unwrap();
}

/// The soft and hard open file limits of process `pid`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().unwrap().to_string();
    (soft, fields.next().unwrap().to_string())
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit_at_start() {
    let dir = site_dir(free_port(), &[]);
    let node = start(dir.path(), free_port(), "ulimit -Sn 256\nulimit -Hn 4096");
    assert_eq!(
        open_file_limits(node.pid()),
        ("4096".to_string(), "4096".to_string())
    );
    assert!(
        node.stderr()
            .contains("open file limit raised from 256 to 4096"),
        "{}",
        node.stderr()
    );
}

/// Below 256 open files `serve` refuses to start, with one error line that
/// says what to raise, and exits 1. Before that floor, limits of 5 to 8 and
/// 13 to about 21 made actix's or tokio's own start-up panic on `EMFILE`.
/// At the floor, soft and hard, a node with its embedded store starts and
/// answers.
#[test]
fn serve_refuses_an_open_file_limit_below_its_floor_and_starts_at_it() {
    let store_port = free_port();
    let dir = site_dir(store_port, &[]);
    let args = node_args(dir.path(), store_port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for limit in [8, 16, 255] {
        let shell = format!("ulimit -n {limit}");
        let (code, stderr) = Binary::serve_in_shell_fails(&shell, &args, &ENV, dir.path());
        assert_eq!(code, Some(1), "limit {limit}: {stderr}");
        assert!(!stderr.contains("panicked"), "limit {limit}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert_eq!(errors.len(), 1, "limit {limit}: {stderr}");
        assert!(
            errors[0].contains(&format!(
                "the open file limit is {limit}, and s3edge needs at least 256 to start"
            )),
            "limit {limit}: {stderr}"
        );
    }

    let mut node = start(dir.path(), store_port, "ulimit -n 256");
    assert_eq!(
        open_file_limits(node.pid()),
        ("256".to_string(), "256".to_string())
    );
    let status = client()
        .get(format!("{}/nothing-here", node.http))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 404);
    node.stop();
}

/// The lowest descriptor number free in process `pid`: with its soft open
/// file limit set to this, it cannot open anything more.
fn lowest_free_fd(pid: u32) -> u64 {
    let used: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|fd| !used.contains(fd)).unwrap()
}

/// Sets the soft open file limit of process `pid`; returns the one before.
fn set_open_file_limit(pid: u32, soft: u64) -> u64 {
    use rustix::process::{prlimit, Pid, Resource, Rlimit};
    let hard = open_file_limits(pid).1.parse().unwrap();
    let new = Rlimit {
        current: Some(soft),
        maximum: Some(hard),
    };
    let pid = Pid::from_raw(pid as i32).unwrap();
    prlimit(Some(pid), Resource::Nofile, new)
        .unwrap()
        .current
        .unwrap()
}

/// What `stream` sends until it has sent bytes ending with `end` (10 s at
/// most).
fn read_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut piece = [0u8; 64 << 10];
    while !got.ends_with(end) {
        let n = stream.read(&mut piece).expect("an answer within 10 s");
        assert!(n > 0, "the answer was cut short");
        got.extend_from_slice(&piece[..n]);
    }
    got
}

/// Out of file descriptors (many clients at once under a low open file
/// limit), a disk-tier hit cannot open its file. That says nothing about the
/// file: the entry stays, the tier stays on, and once descriptors are free
/// again it is a hit. (The shortage is made by lowering the running node's
/// limit below the descriptors it holds, so the test does not race the
/// node's own opening and closing.) A hit whose file the node keeps open
/// from an earlier hit needs no new descriptor: it is still served.
#[test]
fn running_out_of_file_descriptors_loses_no_cache_entry_and_keeps_the_disk_tier_on() {
    let big = random_bytes(2 * MIB + 3, 46);
    let cold = random_bytes(2 * MIB + 5, 47);
    let store_port = free_port();
    let proxy = throttling_proxy(store_port, 0);
    let dir = site_dir(proxy, &[("big.bin", &big), ("cold.bin", &cold)]);
    let node = start(dir.path(), store_port, "");
    let pid = node.pid();
    assert_eq!(get(&node, "/big.bin").2, big);
    assert_eq!(get(&node, "/cold.bin").2, cold);
    wait_until("both on disk", Duration::from_secs(10), || {
        disk_entries(&node) >= 2
    });
    let (_, cache, _) = get(&node, "/big.bin");
    assert_eq!(cache, "s3edge; hit", "a disk-tier hit (above 1 MiB)");

    // Two clients, each answered once (so accepted), then no descriptor left
    // to open.
    let address = node.http.trim_start_matches("http://").to_string();
    let mut warm = TcpStream::connect(&address).unwrap();
    let mut client = TcpStream::connect(&address).unwrap();
    let head = b"HEAD /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for stream in [&mut warm, &mut client] {
        stream.write_all(head).unwrap();
        assert!(read_until(stream, b"\r\n\r\n").starts_with(b"HTTP/1.1 200"));
    }
    let limit = set_open_file_limit(pid, lowest_free_fd(pid));
    // Kept alive: closing it would free a descriptor.
    warm.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert!(
        read_until(&mut warm, &big).starts_with(b"HTTP/1.1 200"),
        "big.bin's file is kept open from its last hit: no descriptor needed"
    );
    client
        .write_all(b"GET /cold.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..answer.len().min(200)]).to_string();
    set_open_file_limit(pid, limit);
    assert!(
        answer.starts_with("HTTP/1.1 5"),
        "the object cannot be read from disk or origin: {answer}"
    );
    assert!(
        node.stderr().contains("an entry could not be opened"),
        "{}",
        node.stderr()
    );

    for (path, data) in [("/cold.bin", &cold), ("/big.bin", &big)] {
        let (status, cache, body) = get(&node, path);
        assert_eq!(
            (status, cache.as_str()),
            (200, "s3edge; hit"),
            "{path} kept"
        );
        assert_eq!(sha256(&body), sha256(data));
    }
    assert_eq!(disk_metric(&node, "s3edge_cache_tier_enabled"), Some(1));
    assert!(
        !node.stderr().contains("corrupt") && !node.stderr().contains("turned off"),
        "not taken for damage or a write error: {}",
        node.stderr()
    );
}
