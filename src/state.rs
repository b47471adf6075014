//! The state shared by every worker of a node: the sites in force, the cache,
//! the metrics, the certificates of the TLS listeners, and what a reload needs.
//!
//! Built once by `server::Node::start` and handed to every actix worker (no
//! global state, STYLE.md 11); `handler/` and `admin.rs` read it, `server/`
//! builds and reloads it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU16};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::access_log::AccessLog;
use crate::cache::Cache;
use crate::metrics::Metrics;
use crate::site::{BuildContext, Sites};
use crate::tls::{ReloadableResolver, SniResolver};

/// The port `redirect_http` sends clients to until a TLS listener is bound.
pub const DEFAULT_HTTPS_PORT: u16 = 443;

/// State shared by every worker.
pub struct AppState {
    sites: RwLock<Arc<Sites>>,
    pub metrics: Arc<Metrics>,
    pub cache: Arc<Cache>,
    pub access_log: AccessLog,
    pub ready: AtomicBool,
    pub admin_token: Option<String>,
    /// Peers allowed to set `X-Forwarded-For`, `X-Forwarded-Proto`, `Forwarded`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// What a reload (SIGHUP) needs besides the site files.
    pub reload_context: ReloadContext,
    /// The certificates of the TLS listeners, swapped on reload.
    pub tls_resolver: Arc<ReloadableResolver>,
    /// The port `redirect_http` sends clients to (the first TLS listener's).
    pub https_port: AtomicU16,
    /// Certificates of `acme = true` sites and the ACME challenge answers.
    pub acme: Arc<crate::acme::Acme>,
    /// The cluster this node is part of (`--cluster-listen`, `--peers`, `--parent`).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// `--node-id` (default: the host name): the status page, ACME's locks
    /// and the cluster name the node by it.
    pub node_id: String,
    /// This node's name in the `CDN-Loop` of requests to HTTP origins (RFC
    /// 8586): `--node-id`, with the process id after it when the id is the
    /// default ([`loop_id`]).
    pub loop_id: String,
}

/// [`AppState::loop_id`]: `--node-id` as given (DESIGN.md: it names the
/// node in `CDN-Loop`); when it is the default, the host name, then the
/// process id after it (and `.<n>` for the second node and later ones in
/// one process, as tests run several): two nodes on one machine left with
/// the default, one the other's HTTP origin, are not taken for a loop.
fn loop_id(node_id: &str) -> String {
    if node_id != crate::status::node_id() {
        return node_id.to_string();
    }
    static NODES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let pid = std::process::id();
    match NODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
        0 => format!("{node_id}-{pid}"),
        n => format!("{node_id}-{pid}.{}", n + 1),
    }
}

/// Everything but the sites and the cache: the node's settings that the
/// workers read.
pub struct Settings {
    pub access_log: AccessLog,
    pub admin_token: Option<String>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub reload_context: ReloadContext,
    pub acme: crate::acme::AcmeOptions,
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// What a reload needs besides the site files.
#[derive(Clone)]
pub struct ReloadContext {
    pub sites_dir: PathBuf,
    /// How sites' origins are built (the embedded store, a test wrapper).
    pub build: BuildContext,
    /// How often `from_bucket` configurations are read again.
    pub website_refresh: Duration,
}

impl AppState {
    /// `metrics` are the ones `cache` counts into.
    pub fn new(sites: Sites, cache: Cache, metrics: Arc<Metrics>, settings: Settings) -> AppState {
        AppState {
            sites: RwLock::new(Arc::new(sites)),
            metrics,
            cache: Arc::new(cache),
            access_log: settings.access_log,
            ready: AtomicBool::new(false),
            admin_token: settings.admin_token,
            trusted_proxies: settings.trusted_proxies,
            reload_context: settings.reload_context,
            tls_resolver: Arc::new(ReloadableResolver::new(SniResolver::empty())),
            https_port: AtomicU16::new(DEFAULT_HTTPS_PORT),
            node_id: settings.acme.node_name.clone(),
            loop_id: loop_id(&settings.acme.node_name),
            acme: crate::acme::Acme::new(settings.acme),
            cluster: settings.cluster,
        }
    }

    /// The current sites (a reload swaps them whole).
    pub fn sites(&self) -> Arc<Sites> {
        self.sites.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the sites for new requests.
    pub fn replace_sites(&self, sites: Sites) {
        *self.sites.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(sites);
    }
}
