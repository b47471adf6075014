//! Running a node: the actix-web wiring around the request pipeline (`handler/`)
//! and the admin API (`admin.rs`), over the shared state (`state.rs`).
//!
//! - `start.rs`: [`Node::start`] loads the sites, starts the embedded store,
//!   opens the disk tier and builds the shared state; [`Node::run`] serves.
//! - `listeners.rs`: binds the plain, TLS and admin listeners.
//! - `reload.rs`: [`reload`] (SIGHUP) re-reads the site files and certificates,
//!   and the background refresh of `from_bucket` configurations.
//! - `signals.rs`: [`serve_until_signalled`]: SIGTERM and SIGINT drain, SIGHUP
//!   reloads.
//! - `thread.rs`: [`NodeThread`], a node on its own thread (tests, embedding).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::dev::ServerHandle;

use crate::access_log::AccessLog;
use crate::config::ConfigErrors;
use crate::site::{OriginWrapper, SiteError};

mod listeners;
mod reload;
mod signals;
mod start;
mod thread;

pub use crate::state::{AppState, ReloadContext};
pub use reload::{reload, ReloadError};
pub use signals::{serve_until_signalled, Signals};
pub use start::{EmbeddedStore, Node};
pub use thread::NodeThread;

/// How long a graceful stop waits for in-flight requests.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// `--stall-timeout`'s default: nginx's `send_timeout` and `client_body_timeout`.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a `from_bucket` website configuration is read again.
pub const WEBSITE_REFRESH: Duration = Duration::from_secs(60);

/// Everything `serve` needs, from the command line or a test.
#[derive(Clone)]
pub struct NodeOptions {
    pub sites_dir: PathBuf,
    pub listen: Vec<SocketAddr>,
    /// HTTPS listeners, certificates chosen by SNI (`--tls-listen`).
    pub tls_listen: Vec<SocketAddr>,
    pub admin_listen: SocketAddr,
    /// The TCP congestion control of the plain and HTTPS listeners, which
    /// their connections inherit (`--tcp-congestion`; `None`: the host's).
    pub tcp_congestion: Option<String>,
    pub workers: usize,
    pub access_log: AccessLog,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `--embedded-s3`: start the store on this directory even when no site uses it.
    pub embedded_dir: Option<PathBuf>,
    pub embedded_listen: SocketAddr,
    pub embedded_access_key: String,
    pub embedded_secret_key: String,
    pub admin_token: Option<String>,
    pub shutdown_timeout: Duration,
    /// A client that accepts no byte of a response, or sends no byte of a
    /// request body it announced, for this long is dropped; zero: never
    /// (`--stall-timeout`). Process-wide (actix-http's send timeout).
    pub stall_timeout: Duration,
    /// The disk tier's directory (`--cache-dir`).
    pub cache_dir: PathBuf,
    /// Bytes the disk tier may hold; 0 turns it off (`--disk-cache-size`).
    pub disk_cache_size: u64,
    /// Bytes the memory tier may hold (`--memory-cache-size`).
    pub memory_cache_size: u64,
    /// Larger objects are not kept in memory (`--memory-object-max`).
    pub memory_object_max: u64,
    /// How often `from_bucket` website configurations are refreshed.
    pub website_refresh: Duration,
    /// Wraps each site's origin (tests).
    pub origin_wrapper: Option<OriginWrapper>,
    /// Certificates for `[tls] acme = true` sites (`--acme-*`).
    pub acme: crate::acme::AcmeOptions,
    /// The cluster (`--cluster-listen`, `--peers`, `--parent`), when set.
    pub cluster: Option<crate::cluster::ClusterOptions>,
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A site's origin client or bucket configuration (names the site).
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error("{0}")]
    Tls(String),
    // `error`, not `source`: the message already says it, and a `source`
    // would be printed again after it by the `{:#}` that reports it.
    #[error("cache directory {}: {error}; give --cache-dir a directory s3edge may create and write, or --disk-cache-size 0", dir.display())]
    CacheDir { dir: PathBuf, error: std::io::Error },
    #[cfg(feature = "embedded")]
    #[error(transparent)]
    Embedded(#[from] crate::origin::embedded::EmbeddedError),
    #[cfg(not(feature = "embedded"))]
    #[error("--embedded-s3 or a site with endpoint = \"embedded\" needs a build with the `embedded` feature")]
    NoEmbeddedStore,
    /// The shared ACME storage (`--acme-bucket`) could not be opened.
    #[error("--acme-bucket: {0}")]
    AcmeBucket(String),
    #[error("--tcp-congestion {name}: {reason} (this kernel allows: {allowed})")]
    TcpCongestion {
        name: String,
        reason: String,
        allowed: String,
    },
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// Stops every server: `graceful` waits for in-flight requests (up to the
/// shutdown timeout), otherwise connections are dropped.
pub async fn stop(handles: &[ServerHandle], graceful: bool) {
    futures_util::future::join_all(handles.iter().map(|h| h.stop(graceful))).await;
}
