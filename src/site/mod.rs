//! The runtime view of the configured sites: each site's settings and origin
//! client, and the host router that picks one per request.

mod build;
mod router;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use build::{BuildContext, SiteError};
pub use router::{normalize_host, normalized_host, HostRouter};

use crate::config::{CorsConfig, SiteConfig};
use crate::origin::Origin;
use crate::releases::record::ReleaseRecord;
use crate::releases::{release_dir, LiveRelease, ReleaseBinding, ReleaseId, ReleaseUnavailable};
use crate::website::WebsiteConfig;

/// Wraps each site's origin as it is built (tests: call counters, injected faults).
pub type OriginWrapper = Arc<dyn Fn(&SiteConfig, Arc<dyn Origin>) -> Arc<dyn Origin> + Send + Sync>;

/// One site: its validated settings and its origin client.
pub struct Site {
    pub config: SiteConfig,
    pub origin: Arc<dyn Origin>,
    /// The website configuration in force: the site file's, merged with the
    /// bucket's when `from_bucket` is set (refreshed in the background).
    /// Shared with the site's release views.
    website: Arc<RwLock<Option<Arc<WebsiteConfig>>>>,
    /// The CORS rules in force, in order: the site file's, or the bucket's
    /// (GetBucketCors) when `cors.from_bucket` is set.
    cors: Arc<RwLock<Arc<Vec<CorsConfig>>>>,
    /// Whether the bucket's CORS rules were read once (`from_bucket`).
    cors_loaded: std::sync::atomic::AtomicBool,
    /// The release the keys are read from (`[releases]`).
    release: ReleaseBinding,
    /// Views of this site pinned to one release each, made on first use.
    views: RwLock<HashMap<ReleaseId, Arc<Site>>>,
    /// An HTTP origin (`[origin] url`), for the methods passed through.
    pub http_origin: Option<Arc<crate::origin::http::HttpOrigin>>,
    /// Its per-request counters, kept here by `Metrics::of_site`.
    pub(crate) metrics: crate::metrics::SiteMetricsSlot,
    /// Set when a reload replaced the site with one reading other objects
    /// (another bucket, prefix or origin), or removed it: requests still
    /// holding it store nothing ([`Site::retire`]). Shared with its views.
    retired: Arc<std::sync::atomic::AtomicBool>,
    /// Where the live release is recorded for the next start (`[releases]`
    /// with a disk tier).
    release_record: Option<Arc<ReleaseRecord>>,
}

/// Most release views a site keeps (the live release and a few previews);
/// past it they are made again on use.
const MAX_RELEASE_VIEWS: usize = 32;

impl Site {
    /// The first exact host of the site file: the name to use for a request
    /// that names none (HTTP/1.0 without `Host`), as nginx uses its first
    /// `server_name`.
    pub fn first_exact_host(&self) -> Option<&str> {
        self.config.hosts.iter().find_map(|host| host.exact())
    }

    pub fn new(config: SiteConfig, origin: Arc<dyn Origin>) -> Site {
        let website = config.website.clone().map(Arc::new);
        let cors = config
            .cors
            .clone()
            .filter(|c| !c.from_bucket)
            .into_iter()
            .collect();
        let release = match config.releases {
            Some(_) => ReleaseBinding::Live(Arc::new(LiveRelease::default())),
            None => ReleaseBinding::Off,
        };
        Site {
            config,
            origin,
            website: Arc::new(RwLock::new(website)),
            cors: Arc::new(RwLock::new(Arc::new(cors))),
            release,
            views: RwLock::new(HashMap::new()),
            http_origin: None,
            metrics: Default::default(),
            retired: Default::default(),
            cors_loaded: Default::default(),
            release_record: None,
        }
    }

    /// Marks the site (and its release views) as replaced by one that reads
    /// other objects, or removed: what requests still holding it fetch is
    /// served to them but never stored, so the cache keeps nothing of the
    /// old origin once its entries are purged (the caller purges after
    /// this; see `Cache::ticket_for`).
    pub fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`Site::retire`] was called.
    pub fn is_retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The live release of a site with `[releases]` (not of a view).
    pub fn live_release(&self) -> Option<&Arc<LiveRelease>> {
        match &self.release {
            ReleaseBinding::Live(live) => Some(live),
            ReleaseBinding::Off | ReleaseBinding::Pinned(_) => None,
        }
    }

    /// Shares the live release of `previous` (the build of this site it
    /// replaces, reading the same pointer): what it serves is served, and a
    /// switch made to it while this build is not yet in force (a publish
    /// during a reload) is this build's too.
    pub(crate) fn share_live_release(&mut self, previous: &Site) {
        if let (ReleaseBinding::Live(_), Some(old)) = (&self.release, previous.live_release()) {
            self.release = ReleaseBinding::Live(old.clone());
        }
    }

    /// Which pointer the site reads: its objects and the pointer's key
    /// (`None` without `[releases]`).
    pub fn pointer_identity(&self) -> Option<String> {
        let releases = self.config.releases.as_ref()?;
        Some(format!(
            "{} {}",
            self.config.origin.objects(),
            releases.pointer
        ))
    }

    /// Where the live release is recorded across restarts, if anywhere.
    pub fn release_record(&self) -> Option<&ReleaseRecord> {
        self.release_record.as_deref()
    }

    /// The site as one request sees it: without `[releases]` the site itself;
    /// with it, a view pinned to the release a preview host names
    /// (`<id>.preview.example.com`), else to the live release, so that a switch
    /// never changes the release under a request that has started.
    pub fn release_view(
        self: &Arc<Site>,
        host: Option<&str>,
    ) -> Result<Arc<Site>, ReleaseUnavailable> {
        let (Some(releases), ReleaseBinding::Live(live)) = (&self.config.releases, &self.release)
        else {
            return Ok(self.clone());
        };
        let host = host.and_then(normalize_host).unwrap_or_default();
        let preview = preview_label(&releases.preview_hosts, &host);
        let id = match preview {
            Some(label) => ReleaseId::parse(label).map_err(|_| ReleaseUnavailable::NotARelease)?,
            None => live.id().ok_or(ReleaseUnavailable::NoneLive)?,
        };
        Ok(self.view(id))
    }

    /// This site pinned to release `id`, sharing its origin, website and CORS rules.
    fn view(&self, id: ReleaseId) -> Arc<Site> {
        if let Some(view) = self
            .views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return view.clone();
        }
        let view = Arc::new(Site {
            config: self.config.clone(),
            origin: self.origin.clone(),
            website: self.website.clone(),
            cors: self.cors.clone(),
            release: ReleaseBinding::Pinned(id.clone()),
            views: RwLock::new(HashMap::new()),
            http_origin: self.http_origin.clone(),
            metrics: Default::default(),
            retired: self.retired.clone(),
            cors_loaded: Default::default(),
            release_record: None,
        });
        let mut views = self.views.write().unwrap_or_else(|e| e.into_inner());
        if views.len() >= MAX_RELEASE_VIEWS {
            views.clear();
        }
        views.entry(id).or_insert(view).clone()
    }

    /// The website rules in force, if the site is a website.
    pub fn website(&self) -> Option<Arc<WebsiteConfig>> {
        self.website
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// For `from_bucket = true`: reads the bucket's website configuration
    /// (GetBucketWebsite), validates it as PutBucketWebsite would, and puts it in
    /// force with the site file's values overriding it. On failure the rules in
    /// force are kept and the reason is returned.
    pub async fn load_bucket_website(&self) -> Result<(), String> {
        let Some(file) = self.config.website.as_ref().filter(|w| w.from_bucket) else {
            return Ok(());
        };
        let raw = self
            .origin
            .website_configuration()
            .await
            .map_err(|e| format!("website.from_bucket: GetBucketWebsite failed: {e}"))?
            .ok_or_else(|| {
                format!(
                    "website.from_bucket: bucket `{}` has no website configuration; put one (aws s3 website s3://{}/ --index-document index.html) or set index_document in the site file",
                    self.config.origin.bucket, self.config.origin.bucket
                )
            })?;
        let source =
            std::path::PathBuf::from(format!("s3://{}/?website", self.config.origin.bucket));
        let bucket = crate::config::validate_website_from(&source, &raw).map_err(|problems| {
            let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            format!(
                "website.from_bucket: the bucket's configuration is invalid: {}",
                text.join("; ")
            )
        })?;
        self.set_website(file.overriding(bucket));
        Ok(())
    }

    /// The CORS rules in force (empty: no CORS).
    pub fn cors_rules(&self) -> Arc<Vec<CorsConfig>> {
        self.cors.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether some configuration is read from the bucket and refreshed.
    pub fn reads_bucket_configuration(&self) -> bool {
        self.config.website.as_ref().is_some_and(|w| w.from_bucket)
            || self.config.cors.as_ref().is_some_and(|c| c.from_bucket)
    }

    /// For `cors.from_bucket = true`: reads the bucket's CORS rules. A bucket
    /// without a CORS configuration has no CORS, as S3 answers then: no rule,
    /// so every preflight is a 403 (an operator revokes cross-origin access by
    /// deleting the configuration). On a failed read the rules in force are
    /// kept and the reason is returned.
    pub async fn load_bucket_cors(&self) -> Result<(), String> {
        if !self.config.cors.as_ref().is_some_and(|c| c.from_bucket) {
            return Ok(());
        }
        let found = self
            .origin
            .cors_configuration()
            .await
            .map_err(|e| format!("cors.from_bucket: GetBucketCors failed: {e}"))?;
        let rules = found.unwrap_or_default();
        let none = rules.is_empty();
        let previous = std::mem::replace(
            &mut *self.cors.write().unwrap_or_else(|e| e.into_inner()),
            Arc::new(rules),
        );
        let first = !self
            .cors_loaded
            .swap(true, std::sync::atomic::Ordering::Relaxed);
        // Said at the first read and when rules disappear, not every minute.
        if none && (first || !previous.is_empty()) {
            tracing::warn!(
                site = self.name(),
                "cors.from_bucket: bucket `{}` has no CORS configuration: no cross-origin request is allowed (preflights get 403); put one (aws s3api put-bucket-cors) or list the rules in [cors]",
                self.config.origin.bucket
            );
        }
        Ok(())
    }

    /// Replaces the website rules (after reading the bucket's configuration).
    pub fn set_website(&self, website: WebsiteConfig) {
        *self.website.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(website));
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The object key for a path key: the site's prefix, then with
    /// `[releases]` the release's folder (`releases/<id>/`), then the key.
    pub fn object_key(&self, key: &str) -> String {
        let prefix = &self.config.origin.prefix;
        let release = match &self.release {
            ReleaseBinding::Off => String::new(),
            ReleaseBinding::Pinned(id) => release_dir(id),
            ReleaseBinding::Live(live) => live.id().map(|id| release_dir(&id)).unwrap_or_default(),
        };
        let mut full = String::with_capacity(prefix.len() + release.len() + key.len());
        full.push_str(prefix);
        full.push_str(&release);
        full.push_str(key);
        full
    }
}

/// Every site and the router over them; replaced whole on reload.
pub struct Sites {
    pub sites: Vec<Arc<Site>>,
    pub router: HostRouter,
}

impl Sites {
    /// Each site's name and the objects its origin reads
    /// (`OriginConfig::objects`): what the disk tier records, so that a
    /// restart with another origin for a site drops that site's entries.
    pub fn origins(&self) -> std::collections::BTreeMap<String, String> {
        self.sites
            .iter()
            .map(|site| (site.name().to_string(), site.config.origin.objects()))
            .collect()
    }

    /// Wraps already-built sites (tests use this with their own origins).
    pub fn from_sites(sites: Vec<Arc<Site>>) -> Sites {
        let router = HostRouter::new(
            sites
                .iter()
                .map(|s| (s.config.hosts.as_slice(), s.config.default)),
        );
        Sites { sites, router }
    }

    /// The site for a `Host` value.
    pub fn route(&self, host: Option<&str>) -> Option<&Arc<Site>> {
        self.router.route(host).and_then(|i| self.sites.get(i))
    }

    /// [`Sites::route`] for a host already normalized
    /// ([`normalized_host`]): the request path normalizes it once.
    pub fn route_normalized(&self, host: Option<&str>) -> Option<&Arc<Site>> {
        self.router
            .route_normalized(host)
            .and_then(|i| self.sites.get(i))
    }
}

/// What a preview host names before the longest of `patterns` it matches
/// (`*.preview.example.com` before `*.example.com`, as hosts route): the
/// release id, if it is one.
fn preview_label<'a>(patterns: &[crate::config::HostPattern], host: &'a str) -> Option<&'a str> {
    patterns
        .iter()
        .filter_map(|pattern| match pattern {
            crate::config::HostPattern::Wildcard(suffix) => host
                .strip_suffix(suffix.as_str())
                .filter(|label| !label.is_empty())
                .map(|label| (suffix.len(), label)),
            crate::config::HostPattern::Exact(_) => None,
        })
        .max_by_key(|(length, _)| *length)
        .map(|(_, label)| label)
}

#[cfg(test)]
mod tests {
    use crate::config::HostPattern;

    #[test]
    fn the_longest_preview_pattern_names_the_release() {
        let patterns = [
            HostPattern::Wildcard(".rel.test".into()),
            HostPattern::Wildcard(".preview.rel.test".into()),
        ];
        let label = |host| super::preview_label(&patterns, host);
        assert_eq!(label("r1.preview.rel.test"), Some("r1"));
        assert_eq!(label("r2.rel.test"), Some("r2"));
        assert_eq!(label("rel.test"), None);
        assert_eq!(label("other.test"), None);
    }
}
