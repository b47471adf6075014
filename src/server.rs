//! actix-web wiring: listeners, shared state, starting and stopping the node.
//! The request pipeline itself is in `handler/`.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

use crate::access_log::AccessLog;
use crate::cache::{Cache, DiskTier};
use crate::config::{self, ConfigErrors, Endpoint};
use crate::handler::handle;
use crate::metrics::Metrics;
use crate::origin::s3::{BuildError, EmbeddedEndpoint, S3Origin};
use crate::origin::Origin;
use crate::site::{OriginWrapper, Site, Sites};
use crate::tls::{ReloadableResolver, SniResolver};

/// How long a graceful stop waits for in-flight requests.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle keep-alive connections are closed after this long.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// A client must send its request head within this long (slowloris guard).
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("site `{site}`: {source}")]
    Origin { site: String, source: BuildError },
    #[error("site `{site}`: {message}")]
    Website { site: String, message: String },
    #[error("{0}")]
    Tls(String),
    #[error("cache directory {}: {source}; give --cache-dir a directory s3edge may create and write, or --disk-cache-size 0", dir.display())]
    CacheDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[cfg(feature = "embedded")]
    #[error(transparent)]
    Embedded(#[from] crate::origin::embedded::EmbeddedError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// State shared by every worker.
pub struct AppState {
    sites: RwLock<Arc<Sites>>,
    pub metrics: Arc<Metrics>,
    pub cache: Arc<Cache>,
    pub access_log: AccessLog,
    pub ready: AtomicBool,
    pub admin_token: Option<String>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Set once the node has started; what SIGHUP needs to reload.
    pub reload_context: std::sync::Mutex<Option<ReloadContext>>,
    /// The certificates of the TLS listeners, swapped on reload.
    pub tls_resolver: Arc<ReloadableResolver>,
    /// The port `redirect_http` sends clients to (the first TLS listener's).
    pub https_port: std::sync::atomic::AtomicU16,
}

impl AppState {
    pub fn new(sites: Sites, options: &NodeOptions, disk: Option<DiskTier>) -> AppState {
        AppState {
            sites: RwLock::new(Arc::new(sites)),
            metrics: Arc::new(Metrics::default()),
            cache: Arc::new(Cache::new(
                options.memory_cache_size,
                options.memory_object_max,
                disk,
            )),
            access_log: options.access_log.clone(),
            ready: AtomicBool::new(false),
            admin_token: options.admin_token.clone(),
            trusted_proxies: options.trusted_proxies.clone(),
            reload_context: std::sync::Mutex::new(None),
            tls_resolver: Arc::new(ReloadableResolver::new(SniResolver::empty())),
            https_port: std::sync::atomic::AtomicU16::new(443),
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

/// A started node: its listeners' addresses and the handles to stop it.
pub struct Node {
    pub http_addrs: Vec<SocketAddr>,
    pub https_addrs: Vec<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub state: web::Data<AppState>,
    pub embedded: Option<EmbeddedStore>,
    handles: Vec<ServerHandle>,
    servers: Vec<actix_web::dev::Server>,
}

impl Node {
    /// Loads the sites, starts the embedded store if needed, builds the S3 clients
    /// and binds every listener. Must run inside an actix system; call
    /// [`Node::run`] to serve. Prints one line per listener and per site.
    pub async fn start(options: NodeOptions) -> Result<Node, StartError> {
        let configs = config::load_sites(&options.sites_dir)?;
        let wants_embedded = options.embedded_dir.is_some()
            || configs
                .iter()
                .any(|c| c.origin.endpoint == Endpoint::Embedded);
        let embedded = if wants_embedded {
            Some(start_embedded(&options)?)
        } else {
            None
        };
        let embedded_endpoint = embedded.as_ref().map(|(_, endpoint)| endpoint.clone());
        let sites = Sites::build(
            configs,
            embedded_endpoint.as_ref(),
            options.origin_wrapper.as_ref(),
        )
        .await
        .map_err(|(site, source)| StartError::Origin { site, source })?;
        for site in &sites.sites {
            site.load_bucket_website()
                .await
                .map_err(|message| StartError::Website {
                    site: site.name().to_string(),
                    message,
                })?;
            site.load_bucket_cors()
                .await
                .map_err(|message| StartError::Website {
                    site: site.name().to_string(),
                    message,
                })?;
        }
        for site in &sites.sites {
            let hosts: Vec<String> = site.config.hosts.iter().map(|h| h.to_string()).collect();
            let mut hosts = hosts.join(", ");
            if site.config.default {
                hosts.push_str(if hosts.is_empty() {
                    "(default)"
                } else {
                    " (default)"
                });
            }
            tracing::info!(
                "site {}: {} -> {}",
                site.name(),
                hosts,
                site.origin.describe()
            );
        }
        if sites.sites.is_empty() {
            tracing::warn!(dir = %options.sites_dir.display(), "no site files found; every request will get 404");
        }
        let disk = if options.disk_cache_size > 0 {
            let disk =
                DiskTier::open(&options.cache_dir, options.disk_cache_size).map_err(|source| {
                    StartError::CacheDir {
                        dir: options.cache_dir.clone(),
                        source,
                    }
                })?;
            let (bytes, entries) = disk.usage();
            tracing::info!(
                "disk cache: {} ({entries} entries, {bytes} bytes)",
                options.cache_dir.display()
            );
            Some(disk)
        } else {
            None
        };
        let configs: Vec<_> = sites.sites.iter().map(|s| s.config.clone()).collect();
        let state = web::Data::new(AppState::new(sites, &options, disk));
        state.tls_resolver.reload(&configs).map_err(|problems| {
            StartError::Tls(
                problems
                    .iter()
                    .map(|(site, e)| format!("site `{site}`: {e}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        *state
            .reload_context
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(ReloadContext {
            sites_dir: options.sites_dir.clone(),
            embedded: embedded_endpoint,
            wrapper: options.origin_wrapper.clone(),
            website_refresh: options.website_refresh,
        });
        start_refreshes(&state, &state.sites());
        Self::bind(options, state, embedded.map(|(store, _)| store))
    }

    fn bind(
        options: NodeOptions,
        state: web::Data<AppState>,
        embedded: Option<EmbeddedStore>,
    ) -> Result<Node, StartError> {
        let mut http_addrs = Vec::new();
        let edge_state = state.clone();
        let mut edge = HttpServer::new(move || {
            App::new()
                .app_data(edge_state.clone())
                .default_service(web::to(handle))
        })
        .workers(options.workers.max(1))
        .keep_alive(KEEP_ALIVE)
        .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
        .shutdown_timeout(options.shutdown_timeout.as_secs())
        .disable_signals();
        for addr in &options.listen {
            let (listener, local) = bind(*addr)?;
            edge = edge.listen(listener).map_err(|source| StartError::Listen {
                addr: local,
                source,
            })?;
            tracing::info!("listening on http://{local}");
            http_addrs.push(local);
        }
        let tls_config = crate::tls::server_config(state.tls_resolver.clone())
            .map_err(|e| StartError::Tls(format!("TLS configuration: {e}")))?;
        let mut https_addrs = Vec::new();
        for addr in &options.tls_listen {
            let (listener, local) = bind(*addr)?;
            edge = edge
                .listen_rustls_0_23(listener, tls_config.clone())
                .map_err(|source| StartError::Listen {
                    addr: local,
                    source,
                })?;
            tracing::info!("listening on https://{local}");
            https_addrs.push(local);
        }
        if !https_addrs.is_empty() && state.tls_resolver.current().tls_sites() == 0 {
            tracing::warn!(
                "--tls-listen is set but no site has a [tls] section: every handshake will fail"
            );
        }
        if let Some(first) = https_addrs.first() {
            state
                .https_port
                .store(first.port(), std::sync::atomic::Ordering::Relaxed);
        }
        let admin_state = state.clone();
        let (listener, admin_addr) = bind(options.admin_listen)?;
        let admin = HttpServer::new(move || {
            App::new()
                .app_data(admin_state.clone())
                .configure(crate::admin::configure)
        })
        .workers(1)
        .shutdown_timeout(options.shutdown_timeout.as_secs())
        .disable_signals()
        .listen(listener)
        .map_err(|source| StartError::Listen {
            addr: admin_addr,
            source,
        })?;
        tracing::info!("admin listening on http://{admin_addr}");
        let edge = edge.run();
        let admin = admin.run();
        crate::status::start_sampler(&state.metrics);
        state.ready.store(true, Ordering::Release);
        Ok(Node {
            http_addrs,
            https_addrs,
            admin_addr,
            state,
            embedded,
            handles: vec![edge.handle(), admin.handle()],
            servers: vec![edge, admin],
        })
    }

    /// The embedded S3 store's address, when it runs.
    pub fn embedded_addr(&self) -> Option<SocketAddr> {
        #[cfg(feature = "embedded")]
        return self.embedded.as_ref().map(|store| store.local_addr());
        #[cfg(not(feature = "embedded"))]
        None
    }

    /// Handles that stop the node from elsewhere (signal handlers, tests).
    pub fn handles(&self) -> Vec<ServerHandle> {
        self.handles.clone()
    }

    /// Serves until every listener has stopped.
    pub async fn run(self) -> std::io::Result<()> {
        let Node {
            servers, embedded, ..
        } = self;
        let results = futures_util::future::join_all(servers).await;
        if let Some(store) = embedded {
            stop_embedded(store);
        }
        results.into_iter().collect()
    }
}

/// Reads a `from_bucket` site's website configuration again every `every`; a
/// failed read keeps the rules in force and logs why. Ends when a reload has
/// replaced or removed the site.
async fn refresh_website(state: web::Data<AppState>, site: Arc<Site>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let current = state.sites().sites.iter().any(|s| Arc::ptr_eq(s, &site));
        if !current {
            return;
        }
        if let Err(reason) = site.load_bucket_website().await {
            tracing::warn!(
                site = site.name(),
                "keeping the last website configuration: {reason}"
            );
        }
        if let Err(reason) = site.load_bucket_cors().await {
            tracing::warn!(site = site.name(), "keeping the last CORS rules: {reason}");
        }
    }
}

/// What a reload needs besides the site files.
#[derive(Clone)]
pub struct ReloadContext {
    pub sites_dir: PathBuf,
    pub embedded: Option<EmbeddedEndpoint>,
    pub wrapper: Option<OriginWrapper>,
    pub website_refresh: Duration,
}

/// Starts the website refresh of every `from_bucket` site.
fn start_refreshes(state: &web::Data<AppState>, sites: &Sites) {
    let every = state
        .reload_context
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(WEBSITE_REFRESH, |c| c.website_refresh);
    for site in &sites.sites {
        if site.reads_bucket_configuration() {
            tokio::spawn(refresh_website(state.clone(), site.clone(), every));
        }
    }
}

/// SIGHUP: re-reads the site files and puts them in force for new requests.
/// A site whose origin settings are unchanged keeps its client; one whose
/// bucket, endpoint or prefix changed, or that was removed, loses its cache
/// entries. An invalid set keeps the sites in force and returns every problem.
pub async fn reload(state: &web::Data<AppState>) -> Result<usize, Vec<String>> {
    let context = state
        .reload_context
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| vec!["the node has not started".to_string()])?;
    let configs = config::load_sites(&context.sites_dir)
        .map_err(|errors| errors.0.iter().map(|p| p.to_string()).collect::<Vec<_>>())?;
    let old = state.sites();
    let mut sites = Vec::with_capacity(configs.len());
    for config in configs {
        let previous = old.sites.iter().find(|s| s.name() == config.name);
        let origin = match previous {
            Some(site) if site.config.origin == config.origin => site.origin.clone(),
            _ => {
                let origin: Arc<dyn Origin> = Arc::new(
                    S3Origin::build(&config.origin, context.embedded.as_ref())
                        .await
                        .map_err(|e| vec![format!("site `{}`: {e}", config.name)])?,
                );
                match &context.wrapper {
                    Some(wrap) => wrap(&config, origin),
                    None => origin,
                }
            }
        };
        let site = Arc::new(Site::new(config, origin));
        site.load_bucket_website()
            .await
            .map_err(|message| vec![format!("site `{}`: {message}", site.name())])?;
        site.load_bucket_cors()
            .await
            .map_err(|message| vec![format!("site `{}`: {message}", site.name())])?;
        sites.push(site);
    }
    for site in &old.sites {
        let kept = sites.iter().any(|s| {
            s.name() == site.name()
                && s.config.origin.bucket == site.config.origin.bucket
                && s.config.origin.endpoint == site.config.origin.endpoint
                && s.config.origin.prefix == site.config.origin.prefix
        });
        if !kept {
            let purged = state.cache.purge(site.name(), |_| true);
            tracing::info!(
                site = site.name(),
                purged,
                "origin changed or site removed: its cache entries are dropped"
            );
        }
    }
    let configs: Vec<_> = sites.iter().map(|s| s.config.clone()).collect();
    state.tls_resolver.reload(&configs).map_err(|problems| {
        problems
            .iter()
            .map(|(site, e)| format!("site `{site}`: {e}"))
            .collect::<Vec<_>>()
    })?;
    let sites = Sites::from_sites(sites);
    let count = sites.sites.len();
    start_refreshes(state, &sites);
    state.replace_sites(sites);
    Ok(count)
}

/// The embedded S3 store, when the feature is built in.
#[cfg(feature = "embedded")]
pub type EmbeddedStore = crate::origin::embedded::EmbeddedS3;
/// The embedded S3 store, when the feature is built in (here it is not).
#[cfg(not(feature = "embedded"))]
pub type EmbeddedStore = std::convert::Infallible;

/// Starts the embedded store on `--embedded-s3` (default `<sites>/buckets`).
#[cfg(feature = "embedded")]
fn start_embedded(options: &NodeOptions) -> Result<(EmbeddedStore, EmbeddedEndpoint), StartError> {
    use crate::origin::embedded::{EmbeddedConfig, EmbeddedS3};
    let root = options
        .embedded_dir
        .clone()
        .unwrap_or_else(|| options.sites_dir.join("buckets"));
    let store = EmbeddedS3::start(EmbeddedConfig {
        root: root.clone(),
        listen: options.embedded_listen,
        access_key: options.embedded_access_key.clone(),
        secret_key: options.embedded_secret_key.clone(),
    })?;
    tracing::info!(
        "embedded S3 store: {} serving buckets from {}",
        store.endpoint(),
        root.display()
    );
    let endpoint = EmbeddedEndpoint {
        url: store.endpoint(),
        access_key: options.embedded_access_key.clone(),
        secret_key: options.embedded_secret_key.clone(),
    };
    Ok((store, endpoint))
}

#[cfg(not(feature = "embedded"))]
fn start_embedded(_: &NodeOptions) -> Result<(EmbeddedStore, EmbeddedEndpoint), StartError> {
    Err(StartError::Origin {
        site: "(embedded)".into(),
        source: BuildError::NoEmbeddedStore,
    })
}

#[cfg(feature = "embedded")]
fn stop_embedded(store: EmbeddedStore) {
    store.shutdown();
}

#[cfg(not(feature = "embedded"))]
fn stop_embedded(store: EmbeddedStore) {
    match store {}
}

/// Stops every server: `graceful` waits for in-flight requests (up to the
/// shutdown timeout), otherwise connections are dropped.
pub async fn stop(handles: &[ServerHandle], graceful: bool) {
    futures_util::future::join_all(handles.iter().map(|h| h.stop(graceful))).await;
}

/// A node running on its own thread with its own actix system (tests, embedding).
pub struct NodeThread {
    pub http_addrs: Vec<SocketAddr>,
    pub https_addrs: Vec<SocketAddr>,
    pub admin_addr: SocketAddr,
    /// The embedded S3 store's address, when it runs.
    pub embedded_addr: Option<SocketAddr>,
    pub state: web::Data<AppState>,
    handles: Vec<ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeThread {
    /// Starts a node on a new thread and waits until it listens.
    pub fn spawn(options: NodeOptions) -> Result<NodeThread, StartError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                match Node::start(options).await {
                    Ok(node) => {
                        let info = (
                            (node.http_addrs.clone(), node.https_addrs.clone()),
                            node.admin_addr,
                            node.embedded_addr(),
                            node.state.clone(),
                            node.handles(),
                        );
                        let _ = tx.send(Ok(info));
                        let _ = node.run().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
        });
        match rx.recv() {
            Ok(Ok(((http_addrs, https_addrs), admin_addr, embedded_addr, state, handles))) => {
                Ok(NodeThread {
                    http_addrs,
                    https_addrs,
                    admin_addr,
                    embedded_addr,
                    state,
                    handles,
                    thread: Some(thread),
                })
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StartError::Listen {
                    addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                    source: std::io::Error::other("the node thread ended before it started"),
                })
            }
        }
    }

    /// The first HTTP listener as a base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addrs[0])
    }

    /// Stops the node and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            let handles = self.handles.clone();
            let stopper = std::thread::spawn(move || {
                actix_rt::System::new().block_on(stop(&handles, false));
            });
            let _ = stopper.join();
            let _ = thread.join();
        }
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds a listener and reads back its address (port 0 becomes the real one).
fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let error = |source| StartError::Listen { addr, source };
    let listener = TcpListener::bind(addr).map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    Ok((listener, local))
}
