//! Prometheus counters and histograms, rendered by the admin listener.
//!
//! A small registry of our own: label sets are created on first use and then
//! incremented with one read lock and one atomic add.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A counter with labels.
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: RwLock<BTreeMap<Vec<String>, Arc<AtomicU64>>>,
}

impl CounterVec {
    fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        CounterVec {
            name,
            help,
            labels,
            values: RwLock::new(BTreeMap::new()),
        }
    }

    /// Adds `n` to the series with these label values (in the order of `labels`).
    pub fn add(&self, label_values: &[&str], n: u64) {
        self.series(label_values).fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(&self, label_values: &[&str]) {
        self.add(label_values, 1);
    }

    /// The current value of one series (tests).
    pub fn get(&self, label_values: &[&str]) -> u64 {
        self.series(label_values).load(Ordering::Relaxed)
    }

    fn series(&self, label_values: &[&str]) -> Arc<AtomicU64> {
        {
            let values = self.values.read().unwrap_or_else(|e| e.into_inner());
            if let Some(v) = values.iter().find_map(|(k, v)| {
                (k.iter()
                    .map(String::as_str)
                    .eq(label_values.iter().copied()))
                .then_some(v)
            }) {
                return v.clone();
            }
        }
        let key: Vec<String> = label_values.iter().map(|s| s.to_string()).collect();
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        values.entry(key).or_default().clone()
    }

    fn render(&self, out: &mut String, kind: &str) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        for (label_values, value) in values.iter() {
            let _ = writeln!(
                out,
                "{}{} {}",
                self.name,
                format_labels(self.labels, label_values),
                value.load(Ordering::Relaxed)
            );
        }
    }
}

fn format_labels(names: &[&str], values: &[String]) -> String {
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
        }
    }
}

impl Metrics {
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
}
