//! Labelled series of one metric, encoded by `prometheus-client`.
//!
//! The crate's `Family` hashes a whole label set on every lookup; the
//! request path here looks a series up by its label values (`&[&str]`) with
//! no allocation: one read lock, one FNV hash, one compare. The series are
//! the crate's own metric types (`Counter`, `Gauge`) or [`Histogram`], and
//! [`Series`] encodes them through the crate's encoder, in label order, with
//! every label value escaped ([`super::labels`]).
//!
//! [`Histogram`]: super::histogram::Histogram

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::labels::LabelSet;

/// Series by the hash of their label values (collisions share a bucket).
type SeriesMap<M> = HashMap<u64, Vec<(Box<[Box<str>]>, M)>, BuildHasherDefault<KeyHasher>>;

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

fn same_values(key: &[Box<str>], label_values: &[&str]) -> bool {
    key.len() == label_values.len() && key.iter().zip(label_values).all(|(k, v)| **k == **v)
}

struct Inner<M> {
    labels: &'static [&'static str],
    make: fn() -> M,
    series: RwLock<SeriesMap<M>>,
}

/// The series of one metric by label values; clones share them. Each series
/// is a metric of type `M` whose clones share its value.
pub struct Series<M>(Arc<Inner<M>>);

impl<M> Clone for Series<M> {
    fn clone(&self) -> Self {
        Series(self.0.clone())
    }
}

impl<M> fmt::Debug for Series<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Series")
            .field("labels", &self.0.labels)
            .finish_non_exhaustive()
    }
}

impl<M: Clone> Series<M> {
    /// Series labelled `labels` (names, in the order values are given), each
    /// made by `make` on first use.
    pub fn new(labels: &'static [&'static str], make: fn() -> M) -> Self {
        Series(Arc::new(Inner {
            labels,
            make,
            series: RwLock::new(SeriesMap::default()),
        }))
    }

    /// The series with these label values (in the order of the names), made
    /// on first use; the handle shares its value.
    pub fn with(&self, label_values: &[&str]) -> M {
        debug_assert_eq!(label_values.len(), self.0.labels.len());
        let hash = labels_hash(label_values);
        {
            let series = self.0.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = find(&series, hash, label_values) {
                return found.clone();
            }
        }
        let mut series = self.0.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = find(&series, hash, label_values) {
            return found.clone();
        }
        let made = (self.0.make)();
        let key = label_values.iter().map(|v| Box::from(*v)).collect();
        series.entry(hash).or_default().push((key, made.clone()));
        made
    }

    /// The series with these label values, if it exists (never makes one).
    pub fn get_existing(&self, label_values: &[&str]) -> Option<M> {
        let series = self.0.series.read().unwrap_or_else(|e| e.into_inner());
        find(&series, labels_hash(label_values), label_values).cloned()
    }

    /// Calls `each` with the label values and the series, for every series.
    pub fn for_each(&self, mut each: impl FnMut(&[Box<str>], &M)) {
        let series = self.0.series.read().unwrap_or_else(|e| e.into_inner());
        for (key, value) in series.values().flatten() {
            each(key, value);
        }
    }

    /// Removes every series (gauges read afresh at each scrape, so that a
    /// series whose subject is gone disappears).
    pub fn clear(&self) {
        self.0
            .series
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

fn find<'m, M>(series: &'m SeriesMap<M>, hash: u64, label_values: &[&str]) -> Option<&'m M> {
    series
        .get(&hash)?
        .iter()
        .find_map(|(key, value)| same_values(key, label_values).then_some(value))
}

/// A counter with labels.
pub type CounterVec = Series<Counter>;

impl Series<Counter> {
    /// Counter series labelled `labels`.
    pub fn counters(labels: &'static [&'static str]) -> Self {
        Series::new(labels, Counter::default)
    }

    /// Adds `n` to the series with these label values (in the order of the names).
    pub fn add(&self, label_values: &[&str], n: u64) {
        self.with(label_values).inc_by(n);
    }

    pub fn inc(&self, label_values: &[&str]) {
        self.add(label_values, 1);
    }

    /// The current value of one series (0 when it does not exist; never makes one).
    pub fn get(&self, label_values: &[&str]) -> u64 {
        self.get_existing(label_values).map_or(0, |c| c.get())
    }

    /// The series with these label values, to add to without a lookup.
    pub fn counter(&self, label_values: &[&str]) -> Counter {
        self.with(label_values)
    }

    /// The sum of the series whose label values pass `filter`.
    pub fn sum_where(&self, mut filter: impl FnMut(&[Box<str>]) -> bool) -> u64 {
        let mut sum = 0;
        self.for_each(|key, counter| {
            if filter(key) {
                sum += counter.get();
            }
        });
        sum
    }
}

/// A gauge with labels, set when the node is scraped.
pub type GaugeVec = Series<Gauge>;

impl Series<Gauge> {
    /// Gauge series labelled `labels`.
    pub fn gauges(labels: &'static [&'static str]) -> Self {
        Series::new(labels, Gauge::default)
    }

    /// Replaces every series with `values` (label values, value).
    pub fn replace<'a>(&self, values: impl IntoIterator<Item = (Vec<&'a str>, i64)>) {
        self.clear();
        for (labels, value) in values {
            self.with(&labels).set(value);
        }
    }
}

impl<M: TypedMetric> TypedMetric for Series<M> {
    const TYPE: MetricType = M::TYPE;
}

impl<M: EncodeMetric + TypedMetric + Clone> EncodeMetric for Series<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let mut series: Vec<(Box<[Box<str>]>, M)> = Vec::new();
        self.for_each(|key, value| series.push((key.into(), value.clone())));
        series.sort_by(|a, b| a.0.cmp(&b.0));
        for (values, metric) in &series {
            let labels = LabelSet {
                names: self.0.labels,
                values,
            };
            metric.encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_set_is_its_own_series() {
        let lookups = CounterVec::counters(&["site", "result"]);
        lookups.inc(&["a", "bc"]);
        lookups.add(&["ab", "c"], 2);
        let origin = CounterVec::counters(&["site", "outcome"]);
        for i in 0..500u64 {
            origin.add(&[&format!("site{i}"), "ok"], i);
        }
        assert_eq!(lookups.get(&["a", "bc"]), 1);
        assert_eq!(lookups.get(&["ab", "c"]), 2);
        for i in 0..500u64 {
            assert_eq!(origin.get(&[&format!("site{i}"), "ok"]), i);
        }
    }

    #[test]
    fn reading_a_missing_series_does_not_make_it() {
        let counters = CounterVec::counters(&["site"]);
        assert_eq!(counters.get(&["nobody"]), 0);
        let mut seen = 0;
        counters.for_each(|_, _| seen += 1);
        assert_eq!(seen, 0);
    }

    #[test]
    fn handles_share_the_series_value() {
        let counters = CounterVec::counters(&["site"]);
        let handle = counters.counter(&["demo"]);
        handle.inc_by(3);
        counters.inc(&["demo"]);
        assert_eq!(counters.get(&["demo"]), 4);
        assert_eq!(counters.sum_where(|labels| &*labels[0] == "demo"), 4);
        assert_eq!(counters.sum_where(|_| false), 0);
    }

    #[test]
    fn replacing_gauges_drops_the_series_not_given() {
        let gauges = GaugeVec::gauges(&["tier"]);
        gauges.replace([(vec!["memory"], 5), (vec!["disk"], 7)]);
        gauges.replace([(vec!["memory"], 6)]);
        assert_eq!(gauges.get_existing(&["memory"]).map(|g| g.get()), Some(6));
        assert!(gauges.get_existing(&["disk"]).is_none());
    }
}
