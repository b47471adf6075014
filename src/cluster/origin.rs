//! The tiered origin: each site's bucket origin wrapped so that an object
//! this node does not own comes from its owner in the ring, else from the
//! parent that owns it, else from the bucket (DESIGN.md "Cluster"). The cache
//! above it is unchanged: it coalesces, stores and revalidates the same way
//! whichever tier answers, because every tier answers as the bucket would.

use std::sync::Arc;
use std::time::Duration;

use super::{headers, ring, Cluster};
use crate::origin::{Fetched, ObjectMeta, ObjectRequest, Origin, OriginError};

tokio::task_local! {
    /// Set while this node serves another node's request (the cluster
    /// listener): the node ids the request has passed (`CDN-Loop`). Such a
    /// request is never sent on to the ring: the asking node chose this one
    /// as the owner, so this node fetches from its parents or the bucket.
    pub static FROM_NODE: Vec<String>;
}

/// A site's origin as seen from a cluster node.
pub struct TieredOrigin {
    site: String,
    inner: Arc<dyn Origin>,
    cluster: Arc<Cluster>,
    /// The site's `origin.timeout`: how long a node waits for the bucket.
    timeout: Duration,
}

/// What a node asking another adds to the site's `timeout` per tier the
/// other may ask before the bucket: that node waits up to `timeout` for the
/// bucket (and a ring owner longer for its parent), then answers with the
/// bucket's failure, which is not held against it. An asking node that gave
/// up at `timeout` itself gave up first: it took the healthy node for
/// failed, skipped it for 10 s and asked the bucket again, so a bucket that
/// hung cost clients two or three timeouts and got a request from every
/// tier.
pub const HOP_ALLOWANCE: Duration = Duration::from_secs(1);

impl TieredOrigin {
    pub fn new(
        site: &str,
        inner: Arc<dyn Origin>,
        cluster: Arc<Cluster>,
        timeout: Duration,
    ) -> TieredOrigin {
        TieredOrigin {
            site: site.to_string(),
            inner,
            cluster,
            timeout,
        }
    }
}

#[async_trait::async_trait]
impl Origin for TieredOrigin {
    async fn get(&self, request: &ObjectRequest) -> Result<Fetched, OriginError> {
        let passed = FROM_NODE.try_with(Clone::clone).ok();
        let key = ring::object_hash_key(&self.site, &request.key);
        let cdn_loop =
            headers::cdn_loop_value(passed.as_deref().unwrap_or(&[]), &self.cluster.node_id);
        let cluster = &self.cluster;
        // A request served for another node skips the ring: it chose this
        // node as the owner.
        let peers = passed.is_none().then_some(&cluster.peers);
        for tier in peers.into_iter().chain([&cluster.parents]) {
            // A ring owner may ask a parent, which asks the bucket.
            let hops = match tier.role {
                super::members::Role::Peers => 2,
                super::members::Role::Parents => 1,
            };
            let timeout = self.timeout + HOP_ALLOWANCE * hops;
            let asked = cluster.ask(tier, &key, &self.site, request, &cdn_loop, timeout);
            if let Some(answer) = asked.await {
                return answer;
            }
        }
        self.inner.get(request).await
    }

    /// Straight to the bucket: a HEAD (the directory probe) is small and rare,
    /// and its answer is cached for `error_ttl` like any other.
    async fn head(&self, key: &str) -> Result<ObjectMeta, OriginError> {
        self.inner.head(key).await
    }

    async fn website_configuration(
        &self,
    ) -> Result<Option<crate::config::raw::RawWebsite>, OriginError> {
        self.inner.website_configuration().await
    }

    async fn cors_configuration(
        &self,
    ) -> Result<Option<Vec<crate::config::CorsConfig>>, OriginError> {
        self.inner.cors_configuration().await
    }

    async fn has_objects_under(&self, prefix: &str) -> Result<bool, OriginError> {
        self.inner.has_objects_under(prefix).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
