//! Building a [`Site`] from its validated site file: the one construction used
//! at start and on every reload (SIGHUP).
//!
//! 1. The origin client: the one in force when the site's `[origin]` is
//!    unchanged (a reload keeps its connections and its test wrapper), else a
//!    new S3 client, wrapped by [`BuildContext::wrapper`] when one is set.
//! 2. The site itself, with the site file's website rules and CORS rules.
//! 3. What `from_bucket` reads from the bucket: GetBucketWebsite, then
//!    GetBucketCors. A failure here is an error: a site is not put in force
//!    without the rules it says it has.

use std::sync::Arc;

use super::{OriginWrapper, Site, Sites};
use crate::config::SiteConfig;
use crate::origin::http::HttpOrigin;
use crate::origin::s3::{BuildError, EmbeddedEndpoint, S3Origin};
use crate::origin::Origin;
use crate::releases::record::ReleaseRecord;

/// What building a site needs besides its file.
#[derive(Clone, Default)]
pub struct BuildContext {
    /// The running embedded store, for `endpoint = "embedded"`.
    pub embedded: Option<EmbeddedEndpoint>,
    /// Wraps each new origin client (tests: call counters, injected faults).
    pub wrapper: Option<OriginWrapper>,
    /// Where live releases are recorded across restarts (with a disk tier).
    pub release_record: Option<Arc<ReleaseRecord>>,
}

/// Why a site could not be built. Every message starts with the site's name.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The S3 client cannot be built (missing credentials, no embedded store).
    /// (Its message holds the cause's: not also a `source`, which printers
    /// of the error chain would print a second time.)
    #[error("site `{site}`: {cause}")]
    Origin { site: String, cause: BuildError },
    /// `website.from_bucket`: the bucket's website configuration cannot be read
    /// or is invalid (`reason` names the key and the fix).
    #[error("site `{site}`: {reason}")]
    Website { site: String, reason: String },
    /// `cors.from_bucket`: the bucket's CORS rules cannot be read.
    #[error("site `{site}`: {reason}")]
    Cors { site: String, reason: String },
    /// The HTTP origin's client cannot be built (no trusted roots).
    #[error("site `{site}`: origin.url: {reason}")]
    HttpOrigin { site: String, reason: String },
}

impl SiteError {
    /// The name of the site the error is about.
    pub fn site(&self) -> &str {
        match self {
            SiteError::Origin { site, .. }
            | SiteError::Website { site, .. }
            | SiteError::Cors { site, .. }
            | SiteError::HttpOrigin { site, .. } => site,
        }
    }
}

impl Site {
    /// Builds one site from its file. `previous` is the site of the same name in
    /// force (on reload): its origin client is kept when `[origin]` is unchanged.
    pub async fn build(
        config: SiteConfig,
        context: &BuildContext,
        previous: Option<&Site>,
    ) -> Result<Site, SiteError> {
        let kept = previous.filter(|site| site.config.origin == config.origin);
        let http_origin = match (kept, &config.origin.http) {
            (Some(site), _) => site.http_origin.clone(),
            (None, Some(http)) => Some(Arc::new(
                HttpOrigin::new(http, config.origin.timeout).map_err(|reason| {
                    SiteError::HttpOrigin {
                        site: config.name.clone(),
                        reason,
                    }
                })?,
            )),
            (None, None) => None,
        };
        let origin = match (kept, &http_origin) {
            (Some(site), _) => site.origin.clone(),
            (None, Some(http)) => wrapped(&config, context, http.clone()),
            (None, None) => new_origin(&config, context).await?,
        };
        let mut site = Site::new(config, origin);
        site.http_origin = http_origin;
        if site.config.releases.is_some() {
            site.release_record = context.release_record.clone();
        }
        site.load_bucket_website()
            .await
            .map_err(|reason| SiteError::Website {
                site: site.name().to_string(),
                reason,
            })?;
        site.load_bucket_cors()
            .await
            .map_err(|reason| SiteError::Cors {
                site: site.name().to_string(),
                reason,
            })?;
        // With `[releases]`: on reload, the live release of the site in
        // force, shared, when the new one reads the same pointer of the same
        // bucket (a pointer that cannot be read now keeps it, as the watch
        // does: a reload while the bucket was unreachable turned the site
        // into a 503 outage; and a publish's switch made during the reload
        // is not lost with the old build); then the live release, read once
        // before it serves.
        if let Some(previous) = previous.filter(|old| same_pointer(old, &site)) {
            site.share_live_release(previous);
        }
        crate::releases::watch::load(&site).await;
        Ok(site)
    }
}

/// Whether two builds of a site read the same release pointer: the same
/// objects (endpoint, bucket, prefix) and pointer key.
fn same_pointer(old: &Site, new: &Site) -> bool {
    let pointer = old.pointer_identity();
    pointer.is_some() && pointer == new.pointer_identity()
}

/// A new S3 client for the site, wrapped when the context says so.
async fn new_origin(
    config: &SiteConfig,
    context: &BuildContext,
) -> Result<Arc<dyn Origin>, SiteError> {
    let origin: Arc<dyn Origin> = Arc::new(
        S3Origin::build(&config.origin, context.embedded.as_ref())
            .await
            .map_err(|cause| SiteError::Origin {
                site: config.name.clone(),
                cause,
            })?,
    );
    Ok(wrapped(config, context, origin))
}

/// The origin client as the context wants it (tests: counters, faults).
fn wrapped(
    config: &SiteConfig,
    context: &BuildContext,
    origin: Arc<dyn Origin>,
) -> Arc<dyn Origin> {
    match &context.wrapper {
        Some(wrap) => wrap(config, origin),
        None => origin,
    }
}

impl Sites {
    /// Builds every site, in order; the first site that fails stops the build.
    /// `previous` is the set in force (on reload), whose unchanged origins are
    /// kept.
    pub async fn build(
        configs: Vec<SiteConfig>,
        context: &BuildContext,
        previous: Option<&Sites>,
    ) -> Result<Sites, SiteError> {
        let mut sites = Vec::with_capacity(configs.len());
        for config in configs {
            let before = previous.and_then(|p| p.sites.iter().find(|s| s.name() == config.name));
            let site = Site::build(config, context, before.map(|s| &**s)).await?;
            sites.push(Arc::new(site));
        }
        Ok(Sites::from_sites(sites))
    }
}
