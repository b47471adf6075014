//! Prometheus counters and histograms, rendered by the admin listener.
//!
//! A small registry of our own: a label set is created on first use; after
//! that an increment is one read lock, one hash of the label values (no
//! allocation) and one atomic add. The per-request counters go through
//! [`SiteMetrics`], built once per site: a response adds to prebuilt counters
//! indexed by its status code, with no label lookup at all.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// One series of a counter; clones share the value.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Series by the hash of their label values (collisions share a bucket).
type SeriesMap = HashMap<u64, Vec<(Box<[Box<str>]>, Counter)>, BuildHasherDefault<KeyHasher>>;

/// The map's keys are already hashes: passes them through.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// FNV-1a over the label values, each ended by a 0xff byte (never in UTF-8):
/// short strings hash faster than with SipHash, and a collision only means
/// two series share a bucket.
fn labels_hash(label_values: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for value in label_values {
        for &byte in value.as_bytes().iter().chain(&[0xff]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// A counter with labels.
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: RwLock<SeriesMap>,
}

impl CounterVec {
    fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        CounterVec {
            name,
            help,
            labels,
            values: RwLock::new(SeriesMap::default()),
        }
    }

    /// Adds `n` to the series with these label values (in the order of `labels`).
    pub fn add(&self, label_values: &[&str], n: u64) {
        let hash = labels_hash(label_values);
        {
            let values = self.values.read().unwrap_or_else(|e| e.into_inner());
            if let Some(counter) = find(&values, hash, label_values) {
                counter.add(n);
                return;
            }
        }
        self.create(hash, label_values).add(n);
    }

    pub fn inc(&self, label_values: &[&str]) {
        self.add(label_values, 1);
    }

    /// The current value of one series (tests).
    pub fn get(&self, label_values: &[&str]) -> u64 {
        self.counter(label_values).get()
    }

    /// The series with these label values, to add to without a lookup.
    pub fn counter(&self, label_values: &[&str]) -> Counter {
        let hash = labels_hash(label_values);
        {
            let values = self.values.read().unwrap_or_else(|e| e.into_inner());
            if let Some(counter) = find(&values, hash, label_values) {
                return counter.clone();
            }
        }
        self.create(hash, label_values)
    }

    fn create(&self, hash: u64, label_values: &[&str]) -> Counter {
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        if let Some(counter) = find(&values, hash, label_values) {
            return counter.clone();
        }
        let counter = Counter::default();
        let key = label_values.iter().map(|v| Box::from(*v)).collect();
        values.entry(hash).or_default().push((key, counter.clone()));
        counter
    }

    fn render(&self, out: &mut String, kind: &str) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        let mut series: Vec<_> = values.values().flatten().collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        for (label_values, value) in series {
            let _ = writeln!(
                out,
                "{}{} {}",
                self.name,
                format_labels(self.labels, label_values),
                value.get()
            );
        }
    }
}

fn find<'m>(values: &'m SeriesMap, hash: u64, label_values: &[&str]) -> Option<&'m Counter> {
    values.get(&hash)?.iter().find_map(|(key, counter)| {
        (key.len() == label_values.len() && key.iter().zip(label_values).all(|(k, v)| **k == **v))
            .then_some(counter)
    })
}

/// Status codes with a prebuilt slot in [`SiteMetrics`] (any other goes
/// through the label lookup).
const STATUS_SLOTS: std::ops::RangeInclusive<u16> = 100..=599;

/// One site's per-request counters: `s3edge_requests_total` by status and
/// `s3edge_response_bytes_total`.
pub struct SiteMetrics {
    site: Box<str>,
    /// `s3edge_requests_total{site, status}`, by status code, created on first use.
    requests: Box<[OnceLock<Counter>]>,
    response_bytes: Counter,
}

impl SiteMetrics {
    /// Counts one response with `status` and `bytes` of body sent.
    pub fn response(&self, metrics: &Metrics, status: u16, bytes: u64) {
        let slot = STATUS_SLOTS
            .contains(&status)
            .then(|| &self.requests[usize::from(status - STATUS_SLOTS.start())]);
        match slot {
            Some(slot) => slot
                .get_or_init(|| metrics.requests.counter(&[&self.site, &status.to_string()]))
                .add(1),
            None => metrics.requests.inc(&[&self.site, &status.to_string()]),
        }
        self.response_bytes.add(bytes);
    }
}

fn format_labels(names: &[&str], values: &[Box<str>]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            let escaped = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{n}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Upper bounds (seconds) of the origin latency histogram.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(name: &'static str, help: &'static str) -> Self {
        Histogram {
            name,
            help,
            buckets: DURATION_BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} histogram", self.name);
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{}_bucket{{le=\"{bound}\"}} {}",
                self.name,
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{}_bucket{{le=\"+Inf\"}} {count}", self.name);
        let _ = writeln!(
            out,
            "{}_sum {}",
            self.name,
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{}_count {count}", self.name);
    }
}

/// Every metric the node exports.
pub struct Metrics {
    pub requests: CounterVec,
    pub response_bytes: CounterVec,
    pub cache_lookups: CounterVec,
    pub origin_requests: CounterVec,
    pub origin_duration: Histogram,
    pub coalesced_requests: CounterVec,
    /// Each site's per-request counters, by site name (`-`: no site matched).
    sites: RwLock<HashMap<Box<str>, Arc<SiteMetrics>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: CounterVec::new(
                "s3edge_requests_total",
                "Requests answered, by site and status.",
                &["site", "status"],
            ),
            response_bytes: CounterVec::new(
                "s3edge_response_bytes_total",
                "Response body bytes sent, by site.",
                &["site"],
            ),
            cache_lookups: CounterVec::new(
                "s3edge_cache_lookups_total",
                "Cache lookups, by site and result (hit, miss, stale, revalidated).",
                &["site", "result"],
            ),
            origin_requests: CounterVec::new(
                "s3edge_origin_requests_total",
                "Requests to the bucket, by site and outcome.",
                &["site", "outcome"],
            ),
            origin_duration: Histogram::new(
                "s3edge_origin_request_duration_seconds",
                "Time from sending a request to the bucket to its response headers.",
            ),
            coalesced_requests: CounterVec::new(
                "s3edge_coalesced_requests_total",
                "Requests that waited for another request's origin fetch, by site.",
                &["site"],
            ),
            sites: RwLock::new(HashMap::new()),
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
                })
            })
            .clone()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.requests.render(&mut out, "counter");
        self.response_bytes.render(&mut out, "counter");
        self.cache_lookups.render(&mut out, "counter");
        self.origin_requests.render(&mut out, "counter");
        self.origin_duration.render(&mut out);
        self.coalesced_requests.render(&mut out, "counter");
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
        m.origin_duration.observe(Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains("s3edge_requests_total{site=\"demo\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("s3edge_requests_total{site=\"we\\\"ird\",status=\"404\"} 1\n"));
        assert!(text.contains("s3edge_origin_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("s3edge_origin_request_duration_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("s3edge_origin_request_duration_seconds_count 1\n"));
        assert!(text.contains("# TYPE s3edge_response_bytes_total counter\n"));
    }

    #[test]
    fn every_label_set_is_its_own_series() {
        let m = Metrics::default();
        m.cache_lookups.inc(&["a", "bc"]);
        m.cache_lookups.add(&["ab", "c"], 2);
        for i in 0..500u64 {
            m.origin_requests.add(&[&format!("site{i}"), "ok"], i);
        }
        assert_eq!(m.cache_lookups.get(&["a", "bc"]), 1);
        assert_eq!(m.cache_lookups.get(&["ab", "c"]), 2);
        for i in 0..500u64 {
            assert_eq!(m.origin_requests.get(&[&format!("site{i}"), "ok"]), i);
        }
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
        let text = m.render();
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle}: {text}"))
        };
        // Series render in label order, as before.
        assert!(at("{site=\"-\",status=\"999\"} 1") < at("{site=\"demo\",status=\"200\"} 2"));
        assert!(at("{site=\"demo\",status=\"200\"} 2") < at("{site=\"demo\",status=\"404\"} 1"));
    }
}
