//! The `s3edge` command: `serve`, `check`, `purge`, `publish`, `rollback`, `releases`. Exit codes: 0 success, 1 runtime
//! failure, 2 invalid configuration or usage.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use s3edge::access_log::{AccessLog, AccessLogTarget, LogFormat};
use s3edge::acme::{self, challenge::ChallengeKind, AcmeOptions};
use s3edge::admin::ADMIN_TOKEN_ENV;
use s3edge::cluster::{ClusterFlags, CLUSTER_TOKEN_ENV};
use s3edge::config::{self, units};
use s3edge::server::{self, Node, NodeOptions, StartError};

mod release_commands;

/// `println!` for the commands' output. A reader that went away (`s3edge
/// releases | head -1`) ends the output, not the command: `println!` panics
/// on the broken pipe, and a `publish` whose release was already live exited
/// 101 with a backtrace. Other write errors are said once on stderr.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    static FAILED: AtomicBool = AtomicBool::new(false);
    if FAILED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        FAILED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("s3edge: cannot write to standard output: {e}");
        }
    }
}

/// jemalloc instead of glibc malloc: glibc kept the 256 KiB body chunks freed
/// by cache evictions (RSS 769 MiB for a 512 MiB memory tier); jemalloc, with
/// the decay settings in `.cargo/config.toml`, gives them back.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit code for an invalid site file or command line.
const EXIT_INVALID: u8 = 2;

#[derive(Parser)]
#[command(
    name = "s3edge",
    version,
    about = "A CDN edge node for static websites stored in S3 buckets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the edge node.
    Serve(Box<ServeArgs>),
    /// Validate every site file; print each problem as `FILE: KEY: problem`.
    Check {
        /// Directory of site files (`*.toml`).
        #[arg(long, env = "S3EDGE_SITES", default_value = "sites")]
        sites: PathBuf,
    },
    /// Remove cached entries through the admin API (token from S3EDGE_ADMIN_TOKEN).
    Purge {
        /// The admin listener, e.g. `http://127.0.0.1:9090`.
        #[arg(long, env = "S3EDGE_ADMIN", default_value = "http://127.0.0.1:9090")]
        admin: String,
        /// The site's name (its file name without `.toml`).
        #[arg(long)]
        site: String,
        /// Paths to purge, as clients request them (`/`, `/blog/post.html`).
        paths: Vec<String>,
        /// Purge every path starting with this (repeatable).
        #[arg(long = "prefix")]
        prefixes: Vec<String>,
        /// Purge the whole site.
        #[arg(long)]
        all: bool,
    },
    /// Upload a folder as a new release of a site with `[releases]` and make it live.
    Publish(release_commands::PublishArgs),
    /// Make the previous release (or ID) live again.
    Rollback(release_commands::RollbackArgs),
    /// List a site's releases, newest first, the live one marked.
    Releases(release_commands::SiteArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Directory of site files, one `*.toml` per site.
    #[arg(long, env = "S3EDGE_SITES", default_value = "sites")]
    sites: PathBuf,
    /// Address for plain HTTP (repeatable).
    #[arg(
        long,
        env = "S3EDGE_LISTEN",
        default_value = "127.0.0.1:8080",
        value_delimiter = ','
    )]
    listen: Vec<SocketAddr>,
    /// Address for HTTPS, certificates chosen by SNI (repeatable).
    #[arg(long, env = "S3EDGE_TLS_LISTEN", value_delimiter = ',')]
    tls_listen: Vec<SocketAddr>,
    /// TCP congestion control of the --listen and --tls-listen connections
    /// (`cubic`, `bbr`, ...; default: the host's). It also decides how plain
    /// HTTP bodies are sent (README "The cache").
    #[arg(long, env = "S3EDGE_TCP_CONGESTION")]
    tcp_congestion: Option<String>,
    /// Address for health, metrics and purge.
    #[arg(long, env = "S3EDGE_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// Directory of the disk cache tier.
    #[arg(long, env = "S3EDGE_CACHE_DIR", default_value = ".s3edge-cache")]
    cache_dir: PathBuf,
    /// Size of the disk cache tier (`0` turns it off).
    #[arg(long, env = "S3EDGE_DISK_CACHE_SIZE", default_value = "1GiB", value_parser = parse_size)]
    disk_cache_size: u64,
    /// Size of the memory cache tier.
    #[arg(long, env = "S3EDGE_MEMORY_CACHE_SIZE", default_value = "256MiB", value_parser = parse_size)]
    memory_cache_size: u64,
    /// Larger objects live on disk only.
    #[arg(long, env = "S3EDGE_MEMORY_OBJECT_MAX", default_value = "8MiB", value_parser = parse_size)]
    memory_object_max: u64,
    /// Peers allowed to set X-Forwarded-For, X-Forwarded-Proto, Forwarded (repeatable).
    #[arg(long, env = "S3EDGE_TRUSTED_PROXY", value_delimiter = ',')]
    trusted_proxy: Vec<ipnet::IpNet>,
    /// Access log: a file path, `-` for standard output, or `off`.
    #[arg(long, env = "S3EDGE_ACCESS_LOG", default_value = "-")]
    access_log: String,
    /// Format of the access log and the process's own log lines.
    #[arg(long, env = "S3EDGE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Start the embedded S3 store on this directory (default `<sites>/buckets`,
    /// started when a site uses `endpoint = "embedded"`).
    #[arg(long, env = "S3EDGE_EMBEDDED_S3")]
    embedded_s3: Option<PathBuf>,
    /// Address of the embedded S3 store.
    #[arg(
        long,
        env = "S3EDGE_EMBEDDED_S3_LISTEN",
        default_value = "127.0.0.1:9000"
    )]
    embedded_s3_listen: SocketAddr,
    /// Worker threads (default: the number of cores).
    #[arg(long, env = "S3EDGE_WORKERS")]
    workers: Option<usize>,
    /// A client that accepts no byte of a response, or sends no byte of a request body it announced, for this long is dropped (nginx's send_timeout and client_body_timeout); 0 turns it off
    #[arg(long, env = "S3EDGE_STALL_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    stall_timeout: std::time::Duration,
    /// ACME CA directory URL for `[tls] acme = true` sites.
    #[arg(long, env = "S3EDGE_ACME_DIRECTORY", default_value = acme::LETS_ENCRYPT_PRODUCTION)]
    acme_directory: String,
    /// Contact address registered with the ACME CA (expiry notices).
    #[arg(long, env = "S3EDGE_ACME_EMAIL")]
    acme_email: Option<String>,
    /// An extra trusted root (PEM) for the ACME CA's HTTPS, e.g. a test or private CA.
    #[arg(long, env = "S3EDGE_ACME_CA_ROOT")]
    acme_ca_root: Option<PathBuf>,
    /// Where the ACME account key and certificates are kept across restarts.
    #[arg(long, env = "S3EDGE_ACME_DIR", default_value = acme::DEFAULT_ACME_DIR)]
    acme_dir: PathBuf,
    /// Challenge types to answer, in order of preference (a failed order
    /// retries with the next): `tls-alpn-01` (TLS listener), `http-01` (plain listener).
    #[arg(
        long,
        env = "S3EDGE_ACME_CHALLENGE",
        value_delimiter = ',',
        default_value = "tls-alpn-01,http-01",
        value_parser = ChallengeKind::parse
    )]
    acme_challenge: Vec<ChallengeKind>,
    /// Keep the ACME account, certificates and order locks in this bucket
    /// instead of --acme-dir, shared by every node of a ring.
    #[arg(long, env = "S3EDGE_ACME_BUCKET")]
    acme_bucket: Option<String>,
    /// Key prefix inside --acme-bucket.
    #[arg(long, env = "S3EDGE_ACME_BUCKET_PREFIX", default_value = acme::bucket::DEFAULT_PREFIX)]
    acme_bucket_prefix: String,
    /// S3 endpoint of --acme-bucket: a URL, or `embedded` (default: AWS).
    #[arg(long, env = "S3EDGE_ACME_BUCKET_ENDPOINT")]
    acme_bucket_endpoint: Option<String>,
    /// Region of --acme-bucket (default: the AWS chain's, else us-east-1).
    #[arg(long, env = "S3EDGE_ACME_BUCKET_REGION")]
    acme_bucket_region: Option<String>,
    /// This node's name in CDN-Loop, Cache-Status, ACME order locks, logs and
    /// metrics (default: the host name).
    #[arg(long, env = "S3EDGE_NODE_ID")]
    node_id: Option<String>,
    /// Address of the cluster listener that peers and child nodes use
    /// (requests need `Authorization: Bearer $S3EDGE_CLUSTER_TOKEN`).
    #[arg(long, env = "S3EDGE_CLUSTER_LISTEN")]
    cluster_listen: Option<SocketAddr>,
    /// The cluster listeners of every node of this node's ring, HOST:PORT
    /// (its own may be listed); each object has one owner among them.
    #[arg(long, env = "S3EDGE_PEERS", value_delimiter = ',')]
    peers: Vec<String>,
    /// A DNS name whose addresses are the ring's members, NAME:PORT
    /// (a Kubernetes headless Service), resolved again every 10 s.
    #[arg(long, env = "S3EDGE_PEERS_DNS")]
    peers_dns: Option<String>,
    /// The parent tier (a shield): the cluster listeners of its nodes, HOST:PORT.
    #[arg(long, env = "S3EDGE_PARENT", value_delimiter = ',')]
    parent: Vec<String>,
    /// A DNS name whose addresses are the parent tier's nodes, NAME:PORT.
    #[arg(long, env = "S3EDGE_PARENT_DNS")]
    parent_dns: Option<String>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    units::parse_size(text)
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    units::parse_duration(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { sites } => check(&sites),
        Command::Purge {
            admin,
            site,
            paths,
            prefixes,
            all,
        } => match purge(&admin, &site, paths, prefixes, all) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Publish(args) => release_commands::publish(args),
        Command::Rollback(args) => release_commands::rollback(args),
        Command::Releases(args) => release_commands::releases(args),
        Command::Serve(args) => {
            init_tracing(args.log_format);
            match serve(*args) {
                Ok(code) => code,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check(dir: &std::path::Path) -> ExitCode {
    match config::load_sites(dir) {
        Ok(sites) => {
            outln!("{}: {} site file(s) valid", dir.display(), sites.len());
            let warnings = s3edge::config::warnings(&sites);
            for warning in warnings
                .iter()
                .chain(&s3edge::config::environment_warnings(&sites))
            {
                outln!("warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for problem in &errors.0 {
                outln!("{problem}");
            }
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// POSTs a purge to the admin API and prints its answer.
fn purge(
    admin: &str,
    site: &str,
    paths: Vec<String>,
    prefixes: Vec<String>,
    all: bool,
) -> anyhow::Result<ExitCode> {
    use s3edge::releases::notify::{post_json, AdminCallError};
    let body =
        serde_json::json!({ "site": site, "paths": paths, "prefixes": prefixes, "all": all })
            .to_string();
    let (status, body) = match post_json(admin, "/purge", &body) {
        Ok(answer) => answer,
        // A malformed --admin is a usage error.
        Err(e @ AdminCallError::NotHttp(_)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        Err(e) => return Err(e.into()),
    };
    outln!("{body}");
    Ok(if status == 200 {
        // In a ring, the barrier holds only on the nodes that confirmed it.
        let failed = unconfirmed_nodes(&body);
        if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            eprintln!(
                "purge not confirmed by {}: they may still serve what was purged until they answer again",
                failed.join(", ")
            );
            ExitCode::FAILURE
        }
    } else {
        eprintln!("purge failed: HTTP {status}");
        if status == 401 {
            eprintln!("the node wants its admin token: set S3EDGE_ADMIN_TOKEN to it");
        }
        ExitCode::FAILURE
    })
}

/// The ring nodes a purge's answer lists as failed (`nodes.failed`).
fn unconfirmed_nodes(answer: &str) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(answer)
        .ok()
        .and_then(|v| {
            v["nodes"]["failed"].as_array().map(|nodes| {
                nodes
                    .iter()
                    .map(|n| n.as_str().map_or_else(|| n.to_string(), str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The process log's filter: `RUST_LOG` (default `info`) with the two quiet
/// directives above added unless it names those crates itself, so that
/// `RUST_LOG=info` (as deploy files used to set) or `RUST_LOG=s3edge=debug`
/// keeps clients' malformed heads out of the log.
fn log_filter(rust_log: Option<&str>) -> String {
    let mut directives = rust_log
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or("info")
        .to_owned();
    for (target, quiet) in [
        ("actix_server", "actix_server=warn"),
        ("actix_http", "actix_http::h1::dispatcher=off"),
    ] {
        if !directives.contains(target) {
            directives.push(',');
            directives.push_str(quiet);
        }
    }
    directives
}

/// The process log: every line `serve` writes about itself (start-up lines,
/// warnings, errors), on standard error, in the format `--log-format` names
/// (the access log has its own target). Colour only on a terminal, and not
/// with `NO_COLOR` set (no-color.org).
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal as _;
    // actix-server's own start-up lines repeat the node's ("starting service ...").
    // actix-http's HTTP/1 dispatcher logs a connection that ends in error at
    // ERROR ("stream error: request parse error: ..."): a client's malformed
    // request head, too many fields, a reset. Any client can write those
    // lines, and the client gets its 400 or 431 all the same; an operator
    // cannot act on them. `RUST_LOG=actix_http=debug` shows them.
    let filter =
        tracing_subscriber::EnvFilter::new(log_filter(std::env::var("RUST_LOG").ok().as_deref()));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| OneLine(std::io::stderr()))
        .with_ansi(colour);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

/// Standard error for the process log, one line per event whatever the
/// event says: a message or field holding a line break (a CA's error text,
/// a file name) would otherwise start lines of no format. The text format
/// writes each event with one `write`; its line breaks but the last become
/// `\n`, as JSON writes them.
struct OneLine<W>(W);

impl<W: std::io::Write> std::io::Write for OneLine<W> {
    fn write(&mut self, event: &[u8]) -> std::io::Result<usize> {
        let body = event.strip_suffix(b"\n").unwrap_or(event);
        if !body.contains(&b'\n') {
            self.0.write_all(event)?;
        } else {
            let mut line = Vec::with_capacity(event.len() + 16);
            for &byte in body {
                match byte {
                    b'\n' => line.extend_from_slice(b"\\n"),
                    other => line.push(other),
                }
            }
            line.extend_from_slice(&event[body.len()..]);
            self.0.write_all(&line)?;
        }
        Ok(event.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The fewest open files `serve` starts with. Its runtimes, listeners, signal
/// handling and disk tier take a few dozen before the first client; at some
/// limits below about 25, actix's and tokio's start-up fails on `EMFILE` with
/// a panic rather than an error. The floor leaves room for some connections.
const MIN_OPEN_FILES: u64 = 256;

/// Raises the soft limit on open files to the hard one, as Go and the JVM do
/// at start: every client connection, origin connection and disk-tier file
/// being sent is one, and the soft limit many systems start services with
/// (1024) is a few hundred clients. The hard limit is the operator's choice.
/// Returns the limit the node runs with (`None`: unlimited or unknown).
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current?;
    let Some(maximum) = limit.maximum else {
        return Some(current);
    };
    if current >= maximum {
        return Some(current);
    }
    let raised = Rlimit {
        current: Some(maximum),
        maximum: Some(maximum),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!("open file limit raised from {current} to {maximum}");
            Some(maximum)
        }
        Err(e) => {
            tracing::warn!("open file limit stays {current} (hard limit {maximum}): {e}");
            Some(current)
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(limit) = raise_open_file_limit().filter(|&l| l < MIN_OPEN_FILES) {
        anyhow::bail!(
            "the open file limit is {limit}, and s3edge needs at least {MIN_OPEN_FILES} \
             to start (raise the hard limit: `ulimit -Hn`, systemd's LimitNOFILE=, \
             docker's --ulimit nofile=)"
        );
    }
    let cluster = ClusterFlags {
        node_id: args.node_id.clone(),
        listen: args.cluster_listen,
        peers: args.peers.clone(),
        peers_dns: args.peers_dns.clone(),
        parents: args.parent.clone(),
        parent_dns: args.parent_dns.clone(),
        token: s3edge::admin::token_from_env(CLUSTER_TOKEN_ENV),
    }
    .check(s3edge::status::node_id());
    let cluster = match cluster {
        Ok(cluster) => cluster,
        Err(e) => {
            tracing::error!("{e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let access_log = AccessLog::open(&AccessLogTarget::parse(&args.access_log), args.log_format)
        .with_context(|| format!("cannot open the access log `{}`", args.access_log))?;
    let options = NodeOptions {
        sites_dir: args.sites,
        listen: args.listen,
        tls_listen: args.tls_listen,
        admin_listen: args.admin_listen,
        tcp_congestion: args.tcp_congestion,
        workers: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        access_log,
        trusted_proxies: args.trusted_proxy,
        embedded_dir: args.embedded_s3,
        embedded_listen: args.embedded_s3_listen,
        embedded_access_key: embedded_credential("S3EDGE_EMBEDDED_ACCESS_KEY", DEV_ACCESS_KEY),
        embedded_secret_key: embedded_credential("S3EDGE_EMBEDDED_SECRET_KEY", DEV_SECRET_KEY),
        admin_token: s3edge::admin::token_from_env(ADMIN_TOKEN_ENV),
        shutdown_timeout: server::SHUTDOWN_TIMEOUT,
        stall_timeout: args.stall_timeout,
        cache_dir: args.cache_dir,
        disk_cache_size: args.disk_cache_size,
        memory_cache_size: args.memory_cache_size,
        memory_object_max: args.memory_object_max,
        website_refresh: server::WEBSITE_REFRESH,
        origin_wrapper: None,
        acme: AcmeOptions {
            directory: args.acme_directory,
            email: args.acme_email,
            ca_root: args.acme_ca_root,
            dir: args.acme_dir,
            challenges: args.acme_challenge,
            bucket: args.acme_bucket.map(|bucket| acme::bucket::AcmeBucket {
                bucket,
                prefix: args.acme_bucket_prefix,
                endpoint: match args.acme_bucket_endpoint.as_deref() {
                    None => config::Endpoint::Aws,
                    Some("embedded") => config::Endpoint::Embedded,
                    Some(url) => config::Endpoint::Url(url.trim_end_matches('/').to_string()),
                },
                region: args.acme_bucket_region,
            }),
            node_name: args.node_id.clone().unwrap_or_else(s3edge::status::node_id),
            ..AcmeOptions::default()
        },
        cluster,
    };
    actix_rt::System::new().block_on(async move {
        let mut signals = server::Signals::install()?;
        let node = match signals.starting(Node::start(options)).await {
            // Now: the runtime would wait for the start's blocking work (the
            // disk tier's index) before it let the process end.
            None => std::process::exit(0),
            Some(Ok(node)) => node,
            Some(Err(StartError::Config(errors))) => {
                for problem in &errors.0 {
                    tracing::error!("{problem}");
                }
                return Ok(ExitCode::from(EXIT_INVALID));
            }
            Some(Err(e)) => return Err(e.into()),
        };
        server::serve_until_signalled(node, signals).await?;
        // Now: everything to keep is written (the access log flushed), and the
        // runtime would wait for blocking work still running (a reload's
        // purge of a large disk tier: 14.6 s for 49,000 entries) before it
        // let the process end. What that work leaves, the next start reads
        // again (`Cache::reconcile_origins`).
        std::process::exit(0)
    })
}

#[cfg(feature = "embedded")]
pub(crate) const DEV_ACCESS_KEY: &str = s3edge::origin::embedded::DEFAULT_ACCESS_KEY;
#[cfg(feature = "embedded")]
pub(crate) const DEV_SECRET_KEY: &str = s3edge::origin::embedded::DEFAULT_SECRET_KEY;
#[cfg(not(feature = "embedded"))]
pub(crate) const DEV_ACCESS_KEY: &str = "";
#[cfg(not(feature = "embedded"))]
pub(crate) const DEV_SECRET_KEY: &str = "";

pub(crate) fn embedded_credential(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn a_log_event_is_one_line() {
        use std::io::Write as _;
        for (event, line) in [
            ("plain\n", "plain\n"),
            ("a\nb\r\nc\n", "a\\nb\r\\nc\n"),
            ("no end\nbreak", "no end\\nbreak"),
            ("\n", "\n"),
        ] {
            let mut out = super::OneLine(Vec::new());
            assert_eq!(out.write(event.as_bytes()).unwrap(), event.len());
            assert_eq!(String::from_utf8(out.0).unwrap(), line, "{event:?}");
        }
    }

    #[test]
    fn rust_log_adds_to_the_quiet_directives_unless_it_names_their_crates() {
        let quiet = "actix_server=warn,actix_http::h1::dispatcher=off";
        assert_eq!(log_filter(None), format!("info,{quiet}"));
        assert_eq!(log_filter(Some(" ")), format!("info,{quiet}"));
        assert_eq!(log_filter(Some("info")), format!("info,{quiet}"));
        assert_eq!(
            log_filter(Some("warn,s3edge=debug")),
            format!("warn,s3edge=debug,{quiet}")
        );
        assert_eq!(
            log_filter(Some("actix_http=debug")),
            "actix_http=debug,actix_server=warn"
        );
        assert_eq!(
            log_filter(Some("trace,actix_server=trace,actix_http=trace")),
            "trace,actix_server=trace,actix_http=trace"
        );
    }
}
