//! Reloading the sites and certificates (SIGHUP), and refreshing what
//! `from_bucket` sites read from their bucket.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::cache::PurgeScope;
use crate::config::{self, ConfigErrors};
use crate::site::{Site, SiteError, Sites};
use crate::state::AppState;
use crate::tls::{SniResolver, TlsError};

/// Why a reload was refused; the sites and certificates in force are kept.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A site file is invalid (each problem names the file and the key).
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A site cannot be built (its origin client or bucket configuration).
    #[error(transparent)]
    Site(#[from] SiteError),
    /// Sites whose certificate or key cannot be used.
    #[error("{}", tls_lines(.0).join("\n"))]
    Tls(Vec<(String, TlsError)>),
}

fn tls_lines(problems: &[(String, TlsError)]) -> Vec<String> {
    problems
        .iter()
        .map(|(site, e)| format!("site `{site}`: {e}"))
        .collect()
}

impl ReloadError {
    /// One line per problem, for the log.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ReloadError::Config(errors) => errors.0.iter().map(|p| p.to_string()).collect(),
            ReloadError::Site(error) => vec![error.to_string()],
            ReloadError::Tls(problems) => tls_lines(problems),
        }
    }
}

/// SIGHUP: re-reads the site files and certificates and puts them in force for
/// new requests, all or nothing: nothing changes (sites, certificates, cache)
/// until every site and certificate has been built. A site whose origin
/// settings are unchanged keeps its client; one whose bucket, endpoint or
/// prefix changed, or that was removed, loses its cache entries. Returns the
/// number of sites now in force.
pub async fn reload(state: &web::Data<AppState>) -> Result<usize, ReloadError> {
    let context = &state.reload_context;
    let configs = config::load_sites(&context.sites_dir)?;
    for warning in config::warnings(&configs) {
        tracing::warn!("{warning}");
    }
    let old = state.sites();
    let sites = Sites::build(configs, &context.build, Some(&old)).await?;
    let configs: Vec<_> = sites.sites.iter().map(|s| s.config.clone()).collect();
    let certificates = SniResolver::from_sites(&configs).map_err(ReloadError::Tls)?;

    // Everything is valid: put it in force. The new sites first, then each
    // replaced site whose objects changed is retired (what requests still
    // holding it fetch is not stored) and purged, in that order: see
    // `Cache::ticket_for`. Purged before the swap, entries a request of
    // the old site stored meanwhile were served by the new one.
    state.tls_resolver.replace(certificates);
    state.acme.set_sites(&configs);
    let count = sites.sites.len();
    start_refreshes(state, &sites);
    let origins = sites.origins();
    let changed: Vec<Arc<Site>> = old
        .sites
        .iter()
        .filter(|site| !sites.sites.iter().any(|s| same_objects(s, site)))
        .cloned()
        .collect();
    state.replace_sites(sites);
    for site in changed {
        site.retire();
        // Off the signal thread: a file is unlinked per entry.
        let purged = state
            .cache
            .purge_off_thread(site.name(), PurgeScope::all(""))
            .await
            .unwrap_or(0);
        tracing::info!(
            site = site.name(),
            purged,
            "origin changed or site removed: its cache entries are dropped"
        );
    }
    state.cache.record_origins(&origins);
    Ok(count)
}

/// Whether two sites serve the same objects: same name, and the same bucket,
/// endpoint and prefix, or the same URL (their cache entries stay valid
/// across a reload).
fn same_objects(a: &Site, b: &Site) -> bool {
    a.name() == b.name() && a.config.origin.objects() == b.config.origin.objects()
}

/// Starts the website refresh of every `from_bucket` site.
pub(super) fn start_refreshes(state: &web::Data<AppState>, sites: &Sites) {
    let every = state.reload_context.website_refresh;
    for site in &sites.sites {
        crate::releases::watch::spawn(site);
        if site.reads_bucket_configuration() {
            tokio::spawn(refresh_website(state.clone(), site.clone(), every));
        }
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
