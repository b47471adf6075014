//! Starting a node: sites, embedded store, disk tier, shared state, listeners.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::web;

use super::listeners::Listeners;
use super::reload::start_refreshes;
use super::{NodeOptions, StartError};
use crate::cache::{Cache, DiskTier};
use crate::cluster::{self, Cluster};
use crate::config::{self, Endpoint};
use crate::metrics::Metrics;
use crate::origin::s3::EmbeddedEndpoint;
use crate::site::{BuildContext, Sites};
use crate::state::{AppState, ReloadContext, Settings};

/// A started node: its listeners' addresses and the handles to stop it.
pub struct Node {
    pub http_addrs: Vec<SocketAddr>,
    pub https_addrs: Vec<SocketAddr>,
    pub admin_addr: SocketAddr,
    /// The cluster listener's address, when there is one.
    pub cluster_addr: Option<SocketAddr>,
    pub state: web::Data<AppState>,
    pub embedded: Option<EmbeddedStore>,
    handles: Vec<ServerHandle>,
    servers: Vec<Server>,
}

impl Node {
    /// Loads the sites, starts the embedded store if needed, builds the S3 clients
    /// and binds every listener. Must run inside an actix system; call
    /// [`Node::run`] to serve. Prints one line per listener and per site.
    pub async fn start(mut options: NodeOptions) -> Result<Node, StartError> {
        actix_http::h1::set_send_timeout(
            (!options.stall_timeout.is_zero()).then_some(options.stall_timeout),
        );
        let configs = config::load_sites(&options.sites_dir)?;
        for warning in config::warnings(&configs) {
            tracing::warn!("{warning}");
        }
        let wants_embedded = options.embedded_dir.is_some()
            || configs
                .iter()
                .any(|c| c.origin.endpoint == Endpoint::Embedded)
            || crate::acme::bucket::uses_embedded(&options.acme);
        let embedded = if wants_embedded {
            Some(start_embedded(&options)?)
        } else {
            None
        };
        crate::acme::bucket::open_shared(
            &mut options.acme,
            embedded.as_ref().map(|(_, endpoint)| endpoint),
        )
        .await
        .map_err(|source| StartError::AcmeBucket(source.to_string()))?;
        let metrics = Arc::new(Metrics::default());
        let cluster = match options.cluster.clone() {
            Some(cluster) => Some(Cluster::start(cluster, metrics.peer_requests.clone()).await),
            None => None,
        };
        let build = BuildContext {
            embedded: embedded.as_ref().map(|(_, endpoint)| endpoint.clone()),
            wrapper: match &cluster {
                Some(cluster) => Some(cluster.origin_wrapper(options.origin_wrapper.clone())),
                None => options.origin_wrapper.clone(),
            },
            // Only with a disk tier: without one a restart has nothing of
            // the recorded release to serve.
            release_record: (options.disk_cache_size > 0).then(|| {
                Arc::new(crate::releases::record::ReleaseRecord::open(
                    &options.cache_dir,
                ))
            }),
        };
        let sites = Sites::build(configs, &build, None).await?;
        print_sites(&sites);
        if sites.sites.is_empty() {
            tracing::warn!(dir = %options.sites_dir.display(), "no site files found; every request will get 404");
        }
        if options.memory_object_max > options.memory_cache_size {
            tracing::warn!(
                "--memory-object-max ({} bytes) is above --memory-cache-size ({} bytes): bodies larger than the memory tier go to the disk tier, or are not stored",
                options.memory_object_max,
                options.memory_cache_size
            );
        }
        // Indexing the disk tier and dropping what must not be served reads
        // and unlinks a file per entry: on the blocking pool, so that the
        // signals stay answered meanwhile (a SIGTERM during a start that
        // indexes 80,000 entries waited 22 s for it).
        let (cache, sites) = {
            let (dir, size) = (options.cache_dir.clone(), options.disk_cache_size);
            let (memory, object_max) = (options.memory_cache_size, options.memory_object_max);
            let (metrics, in_cluster) = (metrics.clone(), cluster.is_some());
            let opened = tokio::task::spawn_blocking(move || {
                let cache = Cache::new(memory, object_max, open_disk(&dir, size)?, metrics);
                drop_unservable(&cache, &sites, in_cluster);
                Ok::<_, StartError>((cache, sites))
            });
            opened.await.map_err(|e| StartError::CacheDir {
                dir: options.cache_dir.clone(),
                error: std::io::Error::other(e),
            })??
        };
        let configs: Vec<_> = sites.sites.iter().map(|s| s.config.clone()).collect();
        let settings = Settings {
            access_log: options.access_log.clone(),
            admin_token: options.admin_token.clone(),
            trusted_proxies: options.trusted_proxies.clone(),
            reload_context: ReloadContext {
                sites_dir: options.sites_dir.clone(),
                build,
                website_refresh: options.website_refresh,
            },
            acme: options.acme.clone(),
            cluster,
        };
        let state = web::Data::new(AppState::new(sites, cache, metrics, settings));
        crate::status::start_sampler(&state.metrics);
        state.tls_resolver.reload(&configs).map_err(|problems| {
            StartError::Tls(
                problems
                    .iter()
                    .map(|(site, e)| format!("site `{site}`: {e}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        state.tls_resolver.attach_acme(state.acme.clone());
        state.acme.set_sites(&configs);
        start_refreshes(&state, &state.sites());
        let listeners = Listeners::bind(&options, &state)?;
        state.ready.store(true, Ordering::Release);
        Ok(Node {
            http_addrs: listeners.http_addrs,
            https_addrs: listeners.https_addrs,
            admin_addr: listeners.admin_addr,
            cluster_addr: listeners.cluster_addr,
            state,
            embedded: embedded.map(|(store, _)| store),
            handles: listeners.servers.iter().map(Server::handle).collect(),
            servers: listeners.servers,
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

/// `site NAME: HOSTS -> ORIGIN`, one line per site.
fn print_sites(sites: &Sites) {
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
}

/// Opens the disk tier (`--cache-dir`), unless `--disk-cache-size 0` turns it off.
/// Drops the disk entries this start may not serve: those of sites whose
/// origin changed since the last run, and in a cluster every one (a purge
/// may have been missed while the node was down).
fn drop_unservable(cache: &Cache, sites: &Sites, in_cluster: bool) {
    for (site, purged) in cache.reconcile_origins(&sites.origins()) {
        tracing::info!(
            site,
            purged,
            "disk cache: the site's origin changed since the last run, or the site is gone: its entries are dropped"
        );
    }
    if in_cluster {
        let dropped = cluster::forget_disk(cache, sites);
        if dropped > 0 {
            tracing::info!(
                "cluster: dropped {dropped} disk entries kept from before this start (a purge may have been missed meanwhile; peers hold them)"
            );
        }
    }
}

fn open_disk(dir: &std::path::Path, size: u64) -> Result<Option<DiskTier>, StartError> {
    if size == 0 {
        return Ok(None);
    }
    let disk = DiskTier::open(dir, size).map_err(|error| StartError::CacheDir {
        dir: dir.to_path_buf(),
        error,
    })?;
    let (bytes, entries) = disk.usage();
    tracing::info!(
        "disk cache: {} ({entries} entries, {bytes} bytes)",
        dir.display()
    );
    Ok(Some(disk))
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
    Err(StartError::NoEmbeddedStore)
}

#[cfg(feature = "embedded")]
fn stop_embedded(store: EmbeddedStore) {
    store.shutdown();
}

#[cfg(not(feature = "embedded"))]
fn stop_embedded(store: EmbeddedStore) {
    match store {}
}
