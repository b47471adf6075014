//! The runtime view of the configured sites: each site's settings and origin
//! client, and the host router that picks one per request.

mod router;

use std::sync::{Arc, RwLock};

pub use router::{normalize_host, HostRouter};

use crate::config::SiteConfig;
use crate::origin::s3::{BuildError, EmbeddedEndpoint, S3Origin};
use crate::origin::Origin;
use crate::website::WebsiteConfig;

/// One site: its validated settings and its origin client.
pub struct Site {
    pub config: SiteConfig,
    pub origin: Arc<dyn Origin>,
    /// The website configuration in force: the site file's, merged with the
    /// bucket's when `from_bucket` is set (refreshed in the background).
    website: RwLock<Option<Arc<WebsiteConfig>>>,
}

impl Site {
    pub fn new(config: SiteConfig, origin: Arc<dyn Origin>) -> Site {
        let website = config.website.clone().map(Arc::new);
        Site {
            config,
            origin,
            website: RwLock::new(website),
        }
    }

    /// The website rules in force, if the site is a website.
    pub fn website(&self) -> Option<Arc<WebsiteConfig>> {
        self.website
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the website rules (after reading the bucket's configuration).
    pub fn set_website(&self, website: WebsiteConfig) {
        *self.website.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(website));
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The object key for a path key (the site's prefix prepended).
    pub fn object_key(&self, key: &str) -> String {
        let prefix = &self.config.origin.prefix;
        let mut full = String::with_capacity(prefix.len() + key.len());
        full.push_str(prefix);
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
    /// Builds the S3 client of every site.
    pub async fn build(
        configs: Vec<SiteConfig>,
        embedded: Option<&EmbeddedEndpoint>,
    ) -> Result<Sites, (String, BuildError)> {
        let mut sites = Vec::with_capacity(configs.len());
        for config in configs {
            let origin = S3Origin::build(&config.origin, embedded)
                .await
                .map_err(|e| (config.name.clone(), e))?;
            sites.push(Arc::new(Site::new(config, Arc::new(origin))));
        }
        Ok(Sites::from_sites(sites))
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
}
