//! Gauges read when the node is scraped: the cache tiers, the certificates,
//! the cluster, the allocator. The admin listener gathers [`NodeReadings`]
//! (`status::readings`) and sets them here just before encoding, so a series
//! whose subject is gone (a site removed by a reload) disappears.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::series::GaugeVec;

/// Whether a cache tier is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TierState {
    On,
    /// A write failed (a full disk) and none has worked since: its writes are
    /// paused and tried again from time to time; its entries are still served.
    Off,
}

impl TierState {
    /// `s3edge_cache_tier_enabled{tier}`.
    fn gauge(self) -> i64 {
        match self {
            TierState::On => 1,
            TierState::Off => 0,
        }
    }
}

/// One cache tier's fill.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TierReading {
    pub tier: &'static str,
    pub state: TierState,
    pub bytes: u64,
    pub entries: u64,
    /// The tier's bound (`--memory-cache-size`, `--disk-cache-size`).
    pub capacity_bytes: u64,
}

/// What the scrape-time gauges show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeReadings {
    /// The tiers that are configured (no disk entry with `--disk-cache-size 0`).
    pub tiers: Vec<TierReading>,
    /// Seconds until each site's certificate expires (negative once it has), by site.
    pub certificate_expiry: Vec<(String, i64)>,
    /// Whether each acme site has a valid certificate in service, by site.
    pub acme_certificate_valid: Vec<(String, bool)>,
    /// Cluster members this node sees, itself included.
    pub cluster_members: i64,
    /// Members of this node's ring, itself included, whether up or not.
    pub cluster_members_known: i64,
    /// jemalloc's figures (`stats.*`), by kind; empty when it is not the allocator.
    pub allocator: Vec<(&'static str, u64)>,
    /// Disk-tier files kept open between hits (0 without a disk tier).
    pub cache_open_files: u64,
    /// Access log lines lost since the start (queue full, sink refused them).
    pub access_log_lines_lost: u64,
}

/// The scrape-time gauges.
#[derive(Debug, Clone)]
pub struct NodeGauges {
    cache_bytes: GaugeVec,
    cache_entries: GaugeVec,
    cache_capacity: GaugeVec,
    cache_tier_enabled: GaugeVec,
    cache_open_files: Gauge,
    certificate_expiry: GaugeVec,
    acme_certificate_valid: GaugeVec,
    cluster_members: Gauge,
    cluster_members_known: Gauge,
    allocator: GaugeVec,
    access_log_lines_lost: Counter,
}

impl Default for NodeGauges {
    fn default() -> Self {
        NodeGauges {
            cache_bytes: GaugeVec::gauges(&["tier"]),
            cache_entries: GaugeVec::gauges(&["tier"]),
            cache_capacity: GaugeVec::gauges(&["tier"]),
            cache_tier_enabled: GaugeVec::gauges(&["tier"]),
            cache_open_files: Gauge::default(),
            certificate_expiry: GaugeVec::gauges(&["site"]),
            acme_certificate_valid: GaugeVec::gauges(&["site"]),
            cluster_members: Gauge::default(),
            cluster_members_known: Gauge::default(),
            allocator: GaugeVec::gauges(&["kind"]),
            access_log_lines_lost: Counter::default(),
        }
    }
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl NodeGauges {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "s3edge_cache_bytes",
            "Bytes held by each cache tier",
            self.cache_bytes.clone(),
        );
        registry.register(
            "s3edge_cache_entries",
            "Entries held by each cache tier",
            self.cache_entries.clone(),
        );
        registry.register(
            "s3edge_cache_capacity_bytes",
            "The bound of each cache tier (--memory-cache-size, --disk-cache-size)",
            self.cache_capacity.clone(),
        );
        registry.register(
            "s3edge_cache_tier_enabled",
            "1 while a cache tier writes, 0 from a disk-tier write error until a write works again (its entries are still served)",
            self.cache_tier_enabled.clone(),
        );
        registry.register(
            "s3edge_cache_open_files",
            "Disk-tier cache files kept open between hits",
            self.cache_open_files.clone(),
        );
        registry.register(
            "s3edge_certificate_expiry_seconds",
            "Seconds until the certificate a site serves expires (its notAfter; negative once expired)",
            self.certificate_expiry.clone(),
        );
        registry.register(
            "s3edge_acme_certificate_valid",
            "1 while an acme site has a certificate in service valid for its hosts; 0 before its first one and once it expired (HTTPS for its hosts fails)",
            self.acme_certificate_valid.clone(),
        );
        registry.register(
            "s3edge_cluster_members",
            "Cluster members this node sees, itself included",
            self.cluster_members.clone(),
        );
        registry.register(
            "s3edge_cluster_members_known",
            "Members of this node's ring (--peers, or what --peers-dns resolves to), itself included, up or not",
            self.cluster_members_known.clone(),
        );
        registry.register(
            "s3edge_allocator_bytes",
            "The memory allocator's figures (jemalloc stats.*)",
            self.allocator.clone(),
        );
        registry.register(
            "s3edge_access_log_lines_lost",
            "Access log lines lost: dropped while the queue was full (a stalled pipe or disk) or refused by the sink",
            self.access_log_lines_lost.clone(),
        );
    }

    /// Shows `readings` in the next encoding.
    pub fn set(&self, readings: &NodeReadings) {
        let tiers = &readings.tiers;
        self.cache_bytes
            .replace(tiers.iter().map(|t| (vec![t.tier], clamp(t.bytes))));
        self.cache_entries
            .replace(tiers.iter().map(|t| (vec![t.tier], clamp(t.entries))));
        self.cache_capacity.replace(
            tiers
                .iter()
                .map(|t| (vec![t.tier], clamp(t.capacity_bytes))),
        );
        self.cache_tier_enabled
            .replace(tiers.iter().map(|t| (vec![t.tier], t.state.gauge())));
        self.cache_open_files.set(clamp(readings.cache_open_files));
        self.certificate_expiry.replace(
            readings
                .certificate_expiry
                .iter()
                .map(|(site, seconds)| (vec![site.as_str()], *seconds)),
        );
        self.acme_certificate_valid.replace(
            readings
                .acme_certificate_valid
                .iter()
                .map(|(site, valid)| (vec![site.as_str()], i64::from(*valid))),
        );
        self.cluster_members.set(readings.cluster_members);
        self.cluster_members_known
            .set(readings.cluster_members_known);
        self.allocator.replace(
            readings
                .allocator
                .iter()
                .map(|(kind, bytes)| (vec![*kind], clamp(*bytes))),
        );
        // The log's own count, which only grows: the highest one read wins
        // when two scrapes race.
        self.access_log_lines_lost.inner().fetch_max(
            readings.access_log_lines_lost,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;
    use super::*;

    #[test]
    fn readings_become_gauges_and_vanish_when_gone() {
        let m = Metrics::default();
        let mut readings = NodeReadings {
            tiers: vec![
                TierReading {
                    tier: "memory",
                    state: TierState::On,
                    bytes: 10,
                    entries: 2,
                    capacity_bytes: 100,
                },
                TierReading {
                    tier: "disk",
                    state: TierState::Off,
                    bytes: 20,
                    entries: 1,
                    capacity_bytes: 1000,
                },
            ],
            certificate_expiry: vec![("a\"b".into(), 86400), ("old".into(), -5)],
            acme_certificate_valid: vec![("a\"b".into(), true), ("old".into(), false)],
            cluster_members: 1,
            cluster_members_known: 3,
            allocator: vec![("allocated", 7)],
            cache_open_files: 3,
            access_log_lines_lost: 4,
        };
        m.node.set(&readings);
        let text = m.render();
        for line in [
            "s3edge_cache_bytes{tier=\"disk\"} 20",
            "s3edge_cache_entries{tier=\"memory\"} 2",
            "s3edge_cache_capacity_bytes{tier=\"disk\"} 1000",
            "s3edge_cache_tier_enabled{tier=\"disk\"} 0",
            "s3edge_cache_tier_enabled{tier=\"memory\"} 1",
            "s3edge_certificate_expiry_seconds{site=\"a\\\"b\"} 86400",
            "s3edge_certificate_expiry_seconds{site=\"old\"} -5",
            "s3edge_acme_certificate_valid{site=\"a\\\"b\"} 1",
            "s3edge_acme_certificate_valid{site=\"old\"} 0",
            "s3edge_cluster_members 1",
            "s3edge_cluster_members_known 3",
            "s3edge_allocator_bytes{kind=\"allocated\"} 7",
            "s3edge_cache_open_files 3",
            "s3edge_access_log_lines_lost_total 4",
            "# TYPE s3edge_cache_bytes gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}: {text}");
        }
        readings.tiers.truncate(1);
        readings.certificate_expiry.clear();
        m.node.set(&readings);
        let text = m.render();
        assert!(!text.contains("tier=\"disk\""), "{text}");
        assert!(
            !text.contains("s3edge_certificate_expiry_seconds{"),
            "{text}"
        );
        // A counter: it follows the log's count up and never goes down.
        for (read, shown) in [(9, 9), (2, 9)] {
            readings.access_log_lines_lost = read;
            m.node.set(&readings);
            let line = format!("s3edge_access_log_lines_lost_total {shown}");
            assert!(m.render().lines().any(|l| l == line), "{line}");
        }
    }
}
