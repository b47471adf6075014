//! The `s3edge` binary as an operator runs it, with everything it prints kept:
//! start-up lines (the process log, on stderr) parsed for the listeners'
//! addresses, stdout and stderr collected whole for tests that read the logs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `s3edge serve`.
pub struct Binary {
    pub child: Child,
    /// `http://127.0.0.1:PORT` of the first HTTP listener.
    pub http: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// The URL after `announce` in a start-up log line, text or JSON
/// (`... INFO s3edge::server: listening on http://127.0.0.1:8080` or
/// `{..."message":"listening on http://127.0.0.1:8080",...}`).
pub fn listener_url(line: &str, announce: &str) -> Option<String> {
    let at = line.find(announce)?;
    if announce == "listening on "
        && (line[..at].ends_with("admin ") || line[..at].ends_with("cluster "))
    {
        return None;
    }
    let rest = &line[at + announce.len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// `shell` (bash: limits, signal dispositions) run first in the process that
/// then becomes `s3edge serve ARGS`.
fn in_shell(shell: &str, args: &[&str]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!("{shell}\nexec \"$0\" serve \"$@\""))
        .arg(env!("CARGO_BIN_EXE_s3edge"))
        .args(args);
    command
}

/// Runs `command` in `cwd` with `env` added, and `S3EDGE_*`/`RUST_LOG` from
/// the test's own environment removed.
fn prepare(command: &mut Command, env: &[(&str, &str)], cwd: &Path) {
    command.current_dir(cwd);
    let inherited: HashMap<String, String> = std::env::vars().collect();
    for name in inherited.keys() {
        if name.starts_with("S3EDGE_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
}

/// Collects a stream's lines into `into`; the start-up lines also go to `lines`.
fn collect(
    stream: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            into.lock().unwrap().push_str(&line);
            into.lock().unwrap().push('\n');
            if let Some(tx) = &lines {
                let _ = tx.send(line);
            }
        }
    });
}

impl Binary {
    /// `s3edge serve` on `dir`'s `sites` with its own `cache` there, every
    /// listener on an ephemeral loopback port, no access log.
    pub fn serve_dir(dir: &Path) -> Binary {
        Binary::serve_dir_with(dir, &[])
    }

    /// [`serve_dir`](Self::serve_dir) with `more` arguments after (another
    /// listener: `--tls-listen 127.0.0.1:0`; an `--access-log` of its own).
    pub fn serve_dir_with(dir: &Path, more: &[&str]) -> Binary {
        Binary::serve_dir_env(dir, more, &[])
    }

    /// [`serve_dir_with`](Self::serve_dir_with) with `env` added.
    pub fn serve_dir_env(dir: &Path, more: &[&str], env: &[(&str, &str)]) -> Binary {
        let args = Binary::dir_args(dir, more);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Binary::serve(&args, env, dir)
    }

    /// The arguments of [`serve_dir_with`](Self::serve_dir_with).
    pub fn dir_args(dir: &Path, more: &[&str]) -> Vec<String> {
        let path = |p: &str| dir.join(p).to_str().unwrap().to_string();
        let mut args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--embedded-s3-listen",
            "127.0.0.1:0",
            "--sites",
            &path("sites"),
            "--cache-dir",
            &path("cache"),
        ]
        .map(String::from)
        .into();
        if !more.contains(&"--access-log") {
            args.extend(["--access-log".into(), "off".into()]);
        }
        args.extend(more.iter().map(|a| a.to_string()));
        args
    }

    /// `s3edge serve ARGS` with `env` added (and `S3EDGE_*`/`RUST_LOG` from the
    /// test's own environment removed); waits for the HTTP and admin lines.
    pub fn serve(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Binary {
        let mut command = Command::new(env!("CARGO_BIN_EXE_s3edge"));
        command.arg("serve").args(args);
        Binary::spawn(command, env, cwd)
    }

    /// The same, with `shell` (bash: limits, signal dispositions) run first in
    /// the process that then becomes `s3edge serve ARGS`.
    pub fn serve_in_shell(shell: &str, args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Binary {
        Binary::spawn(in_shell(shell, args), env, cwd)
    }

    /// [`serve_in_shell`](Self::serve_in_shell) for a start that must fail:
    /// its exit code and stderr. Panics, after stopping it, if it starts
    /// listening instead.
    pub fn serve_in_shell_fails(
        shell: &str,
        args: &[&str],
        env: &[(&str, &str)],
        cwd: &Path,
    ) -> (Option<i32>, String) {
        let mut command = in_shell(shell, args);
        prepare(&mut command, env, cwd);
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start s3edge");
        let mut stderr = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let Ok(line) = line else { break };
            stderr.push_str(&line);
            stderr.push('\n');
            if listener_url(&line, "listening on ").is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("s3edge started after all: {stderr}");
            }
        }
        (child.wait().expect("wait for s3edge").code(), stderr)
    }

    fn spawn(mut command: Command, env: &[(&str, &str)], cwd: &Path) -> Binary {
        prepare(&mut command, env, cwd);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start s3edge");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        collect(child.stdout.take().unwrap(), stdout.clone(), None);
        collect(child.stderr.take().unwrap(), stderr.clone(), Some(tx));
        let (mut http, mut admin) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!(
                    "s3edge did not start: {}{}",
                    stdout.lock().unwrap(),
                    stderr.lock().unwrap()
                );
            };
            if let Some(url) = listener_url(&line, "admin listening on ") {
                admin = Some(url);
            } else if let Some(url) = listener_url(&line, "listening on ") {
                http.get_or_insert(url);
            }
        }
        Binary {
            child,
            http: http.unwrap(),
            admin: admin.unwrap(),
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then waits (up to 30 s) for the exit code; the output is then complete.
    pub fn stop(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the collecting threads read what is left in the pipes.
                std::thread::sleep(Duration::from_millis(200));
                return status.code();
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident set size and its peak (`VmRSS`, `VmHWM`) of a process, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    // Below the kernel's ephemeral range (32768 and up by default): a port
    // taken from that range can be handed to an outgoing connection of a
    // concurrent test between this check and the bind that uses it.
    // One walk per process through all 12,700 ports (7,919 is prime to it),
    // from a start of its own: no port is handed out twice.
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static SEED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::process::id().wrapping_mul(2_654_435_761)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
    });
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + ((seed % 12_700 + n.wrapping_mul(7_919)) % 12_700) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
