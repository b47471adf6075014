//! Every figure the node keeps about itself: the Prometheus metrics (encoded
//! by `prometheus-client`, served on `/metrics`), and the records the status
//! page draws from them (the 15-minute history, the recent purges).
//!
//! The per-request counters go through [`SiteMetrics`], built once per
//! site: a response adds to prebuilt counters indexed by its status code,
//! with no label lookup at all. Other series are looked up by their label
//! values without allocating ([`series`]).

pub mod gauges;
pub mod histogram;
pub mod labels;
pub mod series;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

pub use gauges::{NodeGauges, NodeReadings, TierReading, TierState};
pub use histogram::{Histogram, HistogramCounts, ORIGIN_BUCKETS, REQUEST_BUCKETS};
pub use series::{CounterVec, GaugeVec, Series};

use crate::site::Site;
use crate::status::{History, RecentPurges};

/// The content type of the exposition `render` writes (the Prometheus text
/// format, version 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Status codes with a prebuilt slot in [`SiteMetrics`] (any other goes
/// through the label lookup).
const STATUS_SLOTS: std::ops::RangeInclusive<u16> = 100..=599;

/// `s3edge_origin_requests_total{outcome}` values that are the origin failing
/// (a 502 or 504 for the client), as opposed to answering: what the status
/// page and the alert rules count as origin errors.
pub const ORIGIN_ERROR_OUTCOMES: &[&str] = &["rejected", "unreachable", "timeout", "invalid"];

/// `s3edge_cache_lookups_total{result}` values answered from the cache without
/// a body from the origin (`revalidated`: a 304 refreshed the entry): the
/// numerator of the hit ratio, whose denominator is every lookup but `pass`.
pub const HIT_RESULTS: &[&str] = &["hit", "stale", "revalidated"];

/// `s3edge_cache_lookups_total{result}` values, each with a prebuilt slot in
/// [`SiteMetrics`]: every `CacheOutcome::as_str` (a test in `cache::read`
/// holds them to it).
pub(crate) const LOOKUP_RESULTS: [&str; 5] = ["pass", "hit", "miss", "stale", "revalidated"];

/// One site's per-request figures: `s3edge_requests_total` by status,
/// `s3edge_response_bytes_total`, `s3edge_request_duration_seconds` and
/// `s3edge_cache_lookups_total` by result.
pub struct SiteMetrics {
    site: Box<str>,
    /// `s3edge_requests_total{site, status}`, by status code, created on first use.
    requests: Box<[OnceLock<Counter>]>,
    response_bytes: Counter,
    duration: Histogram,
    /// `s3edge_cache_lookups_total{site, result}`, in [`LOOKUP_RESULTS`]'
    /// order, created on first use.
    lookups: [OnceLock<Counter>; LOOKUP_RESULTS.len()],
}

/// Where a site keeps its [`SiteMetrics`] once it has asked for them
/// ([`Metrics::of_site`]): every request after its first counts with no
/// lookup and no lock. It remembers which registry they belong to.
#[derive(Default)]
pub struct SiteMetricsSlot(OnceLock<(u64, Arc<SiteMetrics>)>);

impl SiteMetrics {
    /// Counts one cache lookup of this site with `result` (a
    /// [`LOOKUP_RESULTS`] value; any other goes through the label lookup).
    pub fn lookup(&self, metrics: &Metrics, result: &str) {
        match LOOKUP_RESULTS.iter().position(|known| *known == result) {
            Some(i) => {
                self.lookups[i]
                    .get_or_init(|| metrics.cache_lookups.counter(&[&self.site, result]))
                    .inc();
            }
            None => metrics.cache_lookups.inc(&[&self.site, result]),
        }
    }

    /// Counts one response with `status` and `bytes` of body sent.
    pub fn response(&self, metrics: &Metrics, status: u16, bytes: u64) {
        let slot = STATUS_SLOTS
            .contains(&status)
            .then(|| &self.requests[usize::from(status - STATUS_SLOTS.start())]);
        match slot {
            Some(slot) => {
                slot.get_or_init(|| metrics.requests.counter(&[&self.site, &status.to_string()]))
                    .inc();
            }
            None => metrics.requests.inc(&[&self.site, &status.to_string()]),
        }
        self.response_bytes.inc_by(bytes);
    }

    /// Counts the time one request took, from its head to its last body byte.
    pub fn observe_duration(&self, duration: Duration) {
        self.duration.observe(duration);
    }

    /// Responses counted so far, every status together.
    pub fn responses(&self) -> u64 {
        self.requests
            .iter()
            .filter_map(|slot| slot.get().map(|c| c.get()))
            .sum()
    }
}

/// What the status page needs of one site at one moment (cumulative).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteFigures {
    pub requests: u64,
    pub bytes: u64,
    /// Cache lookups, `pass` excluded.
    pub lookups: u64,
    /// Lookups in [`HIT_RESULTS`].
    pub hits: u64,
    pub origin_requests: u64,
    /// Origin requests in [`ORIGIN_ERROR_OUTCOMES`].
    pub origin_errors: u64,
    pub latency: HistogramCounts,
}

/// Every metric the node exports, and what the status page keeps.
pub struct Metrics {
    pub requests: CounterVec,
    pub response_bytes: CounterVec,
    pub cache_lookups: CounterVec,
    pub origin_requests: CounterVec,
    pub origin_duration: Histogram,
    pub coalesced_requests: CounterVec,
    /// `s3edge_peer_requests_total{peer, outcome}`: requests to other nodes
    /// of the cluster (`ok`, `not_modified`, the bucket's error outcomes
    /// relayed, `failed` when the node itself failed and was skipped).
    pub peer_requests: CounterVec,
    /// `s3edge_sendfile_bytes_total`: response body bytes the kernel sent
    /// straight from disk-tier files (`sendfile`), part of
    /// `s3edge_response_bytes_total`.
    pub sendfile_bytes: Counter,
    /// `s3edge_request_duration_seconds{site}`, fed through [`SiteMetrics`].
    pub request_duration: Series<Histogram>,
    /// Gauges read when the node is scraped (cache tiers, certificates, ...).
    pub node: NodeGauges,
    /// The status page's 15-minute history, kept by `status::sample`.
    pub history: Mutex<History>,
    /// The last purge calls, for the status page.
    pub purges: RecentPurges,
    /// When this node's figures started.
    pub started: SystemTime,
    /// Each site's per-request counters, by site name (`-`: no site matched).
    sites: RwLock<HashMap<Box<str>, Arc<SiteMetrics>>>,
    registry: Registry,
    /// Tells this registry from any other in the process (tests run many),
    /// for [`SiteMetricsSlot`].
    id: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = CounterVec::counters(&["site", "status"]);
        let response_bytes = CounterVec::counters(&["site"]);
        let cache_lookups = CounterVec::counters(&["site", "result"]);
        let origin_requests = CounterVec::counters(&["site", "outcome"]);
        let origin_duration = Histogram::new(ORIGIN_BUCKETS);
        let coalesced_requests = CounterVec::counters(&["site"]);
        let peer_requests = CounterVec::counters(&["peer", "outcome"]);
        let sendfile_bytes = Counter::default();
        let request_duration = Series::new(&["site"], || Histogram::new(REQUEST_BUCKETS));
        let node = NodeGauges::default();
        // Counters are registered without `_total`: the encoder adds it.
        let mut registry = Registry::default();
        registry.register(
            "s3edge_requests",
            "Requests answered, by site and status",
            requests.clone(),
        );
        registry.register(
            "s3edge_response_bytes",
            "Response body bytes sent, by site",
            response_bytes.clone(),
        );
        registry.register(
            "s3edge_cache_lookups",
            "Cache lookups, by site and result (hit, miss, stale, revalidated, pass)",
            cache_lookups.clone(),
        );
        registry.register(
            "s3edge_origin_requests",
            "Requests to the bucket, by site and outcome",
            origin_requests.clone(),
        );
        registry.register(
            "s3edge_origin_request_duration_seconds",
            "Time from sending a request to the bucket to its response headers",
            origin_duration.clone(),
        );
        registry.register(
            "s3edge_coalesced_requests",
            "Requests that waited for another request's origin fetch, by site",
            coalesced_requests.clone(),
        );
        registry.register(
            "s3edge_peer_requests",
            "Requests to other nodes of the cluster (peers, parents), by node and outcome",
            peer_requests.clone(),
        );
        registry.register(
            "s3edge_sendfile_bytes",
            "Response body bytes sent straight from disk-tier files by the kernel (sendfile), every site together",
            sendfile_bytes.clone(),
        );
        registry.register(
            "s3edge_request_duration_seconds",
            "Time from a request's head to its last response byte, by site",
            request_duration.clone(),
        );
        node.register(&mut registry);
        Metrics {
            requests,
            response_bytes,
            cache_lookups,
            origin_requests,
            origin_duration,
            coalesced_requests,
            peer_requests,
            sendfile_bytes,
            request_duration,
            node,
            history: Mutex::new(History::default()),
            purges: RecentPurges::default(),
            started: SystemTime::now(),
            sites: RwLock::new(HashMap::new()),
            registry,
            id: {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        }
    }
}

impl Metrics {
    /// The per-request counters of the site named `site`, built on its first
    /// request: one map read after that, no allocation.
    pub fn site(&self, site: &str) -> Arc<SiteMetrics> {
        if let Some(found) = self
            .sites
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(site)
        {
            return found.clone();
        }
        let mut sites = self.sites.write().unwrap_or_else(|e| e.into_inner());
        sites
            .entry(Box::from(site))
            .or_insert_with(|| {
                Arc::new(SiteMetrics {
                    site: Box::from(site),
                    requests: STATUS_SLOTS.map(|_| OnceLock::new()).collect(),
                    response_bytes: self.response_bytes.counter(&[site]),
                    duration: self.request_duration.with(&[site]),
                    lookups: Default::default(),
                })
            })
            .clone()
    }

    /// [`Metrics::site`] for `site`, kept in the site's slot on its first
    /// request (a site whose slot holds another registry's is looked up).
    pub fn of_site(&self, site: &Site) -> Arc<SiteMetrics> {
        match self.kept(site) {
            Some(kept) => kept.clone(),
            None => self.site(site.name()),
        }
    }

    /// Counts one cache lookup of `site` with `result` (`hit`, `miss`, ...:
    /// `s3edge_cache_lookups_total`).
    pub fn count_lookup(&self, site: &Site, result: &str) {
        match self.kept(site) {
            Some(kept) => kept.lookup(self, result),
            None => self.site(site.name()).lookup(self, result),
        }
    }

    /// The figures `site` keeps for this registry, put there on first use.
    fn kept<'a>(&self, site: &'a Site) -> Option<&'a Arc<SiteMetrics>> {
        let (id, kept) = site
            .metrics
            .0
            .get_or_init(|| (self.id, self.site(site.name())));
        (*id == self.id).then_some(kept)
    }

    /// Every site's figures now, by site name, read in one pass per metric.
    pub fn figures(&self) -> HashMap<Box<str>, SiteFigures> {
        let mut figures: HashMap<Box<str>, SiteFigures> = HashMap::new();
        for (name, site) in self.sites.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let entry = figures.entry(name.clone()).or_default();
            entry.requests = site.responses();
            entry.bytes = site.response_bytes.get();
            entry.latency = site.duration.counts();
        }
        self.cache_lookups.for_each(|labels, counter| {
            if let [site, result] = labels {
                if &**result != "pass" {
                    let entry = figures.entry(site.clone()).or_default();
                    entry.lookups += counter.get();
                    if HIT_RESULTS.contains(&&**result) {
                        entry.hits += counter.get();
                    }
                }
            }
        });
        self.origin_requests.for_each(|labels, counter| {
            if let [site, outcome] = labels {
                let entry = figures.entry(site.clone()).or_default();
                entry.origin_requests += counter.get();
                if ORIGIN_ERROR_OUTCOMES.contains(&&**outcome) {
                    entry.origin_errors += counter.get();
                }
            }
        });
        figures
    }

    /// The text exposition of every metric ([`CONTENT_TYPE`]).
    /// The scrape-time gauges show what [`NodeGauges::set`] was last given.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the encoders only fail on the writer.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_prometheus_text_format() {
        let m = Metrics::default();
        m.requests.inc(&["demo", "200"]);
        m.requests.inc(&["demo", "200"]);
        m.requests.inc(&["we\"ird", "404"]);
        m.response_bytes.add(&["demo"], 10);
        m.origin_duration.observe(Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains("s3edge_requests_total{site=\"demo\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("s3edge_requests_total{site=\"we\\\"ird\",status=\"404\"} 1\n"));
        assert!(text.contains("s3edge_origin_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("s3edge_origin_request_duration_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("s3edge_origin_request_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("s3edge_origin_request_duration_seconds_count 1\n"));
        assert!(text.contains("# TYPE s3edge_response_bytes_total counter\n"));
        assert!(text.contains("s3edge_response_bytes_total{site=\"demo\"} 10\n"));
    }

    #[test]
    fn site_handles_count_into_the_labelled_series() {
        let m = Metrics::default();
        let demo = m.site("demo");
        demo.response(&m, 200, 10);
        m.site("demo").response(&m, 200, 5);
        demo.response(&m, 404, 0);
        m.site("-").response(&m, 999, 0);
        assert_eq!(m.requests.get(&["demo", "200"]), 2);
        assert_eq!(m.requests.get(&["demo", "404"]), 1);
        assert_eq!(m.requests.get(&["-", "999"]), 1);
        assert_eq!(m.response_bytes.get(&["demo"]), 15);
        assert_eq!(demo.responses(), 3);
        let text = m.render();
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle}: {text}"))
        };
        // Series render in label order, as before.
        assert!(at("{site=\"-\",status=\"999\"} 1") < at("{site=\"demo\",status=\"200\"} 2"));
        assert!(at("{site=\"demo\",status=\"200\"} 2") < at("{site=\"demo\",status=\"404\"} 1"));
    }

    #[test]
    fn site_figures_gather_every_metric_of_a_site() {
        let m = Metrics::default();
        let demo = m.site("demo");
        demo.response(&m, 200, 100);
        demo.response(&m, 200, 50);
        demo.observe_duration(Duration::from_millis(2));
        for result in ["hit", "hit", "stale", "revalidated", "miss", "pass"] {
            m.cache_lookups.inc(&["demo", result]);
        }
        for outcome in ["ok", "not_found", "timeout", "rejected"] {
            m.origin_requests.inc(&["demo", outcome]);
        }
        m.cache_lookups.inc(&["other", "hit"]);
        let figures = m.figures();
        let demo = &figures["demo"];
        assert_eq!(demo.requests, 2);
        assert_eq!(demo.bytes, 150);
        assert_eq!((demo.hits, demo.lookups), (4, 5));
        assert_eq!((demo.origin_errors, demo.origin_requests), (2, 4));
        assert_eq!(demo.latency.count(), 1);
        assert_eq!(figures["other"].hits, 1);
        let text = m.render();
        assert!(
            text.contains(
                "s3edge_request_duration_seconds_bucket{site=\"demo\",le=\"0.0025\"} 1\n"
            ),
            "{text}"
        );
    }
}
