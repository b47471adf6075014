//! A histogram of durations whose bucket counts can be read back (the status
//! page turns them into percentiles), encoded by `prometheus-client`.
//!
//! prometheus-client's own `Histogram` takes a mutex per observation and
//! does not let its buckets be read; this one is one atomic add per
//! observation (plus the sum) and hands the same figures to the crate's
//! `encode_histogram`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds (seconds) of the origin latency histogram
/// (`s3edge_origin_request_duration_seconds`).
pub const ORIGIN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds (seconds) of the per-site request latency histogram
/// (`s3edge_request_duration_seconds`): from a memory hit (well under a
/// millisecond) to a large download (a minute and more).
pub const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

struct Inner {
    bounds: &'static [f64],
    /// One count per bound, then the `+Inf` bucket (not cumulative).
    buckets: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

/// A histogram of durations; clones share the counts.
#[derive(Clone)]
pub struct Histogram(Arc<Inner>);

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("bounds", &self.0.bounds)
            .finish_non_exhaustive()
    }
}

/// The counts of a histogram at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramCounts {
    /// Per bucket, the `+Inf` bucket last (not cumulative).
    pub buckets: Vec<u64>,
    pub sum_seconds: f64,
}

impl HistogramCounts {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The observations made between `earlier` and `self` (a counter reset,
    /// which cannot happen within one process, counts as nothing).
    pub fn since(&self, earlier: &HistogramCounts) -> HistogramCounts {
        HistogramCounts {
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
            sum_seconds: (self.sum_seconds - earlier.sum_seconds).max(0.0),
        }
    }
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram(Arc::new(Inner {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }))
    }

    /// Counts one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let bucket = self
            .0
            .bounds
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(self.0.bounds.len());
        self.0.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.0.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts().count()
    }

    /// The upper bounds of the buckets (the `+Inf` bucket not included).
    pub fn bounds(&self) -> &'static [f64] {
        self.0.bounds
    }

    pub fn counts(&self) -> HistogramCounts {
        HistogramCounts {
            buckets: self
                .0
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_seconds: self.0.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let counts = self.counts();
        let buckets: Vec<(f64, u64)> = self
            .0
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts.buckets.iter().copied())
            .collect();
        encoder.encode_histogram::<NoLabelSet>(counts.sum_seconds, counts.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The `q` quantile (0 to 1) of the observations counted in `counts`, as
/// Prometheus' `histogram_quantile` estimates it: linear interpolation
/// inside the bucket where the rank falls, the lowest bucket starting at 0,
/// and the highest finite bound for a rank in the `+Inf` bucket. `None`
/// without observations.
pub fn quantile(q: f64, bounds: &[f64], counts: &HistogramCounts) -> Option<f64> {
    let total = counts.count();
    if total == 0 || bounds.is_empty() {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &n) in counts.buckets.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let Some(&upper) = bounds.get(i) else {
                return bounds.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            let within = (rank - below as f64) / n as f64;
            return Some(lower + (upper - lower) * within);
        }
        below += n;
    }
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(buckets: &[u64]) -> HistogramCounts {
        HistogramCounts {
            buckets: buckets.to_vec(),
            sum_seconds: 0.0,
        }
    }

    #[test]
    fn an_observation_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(100));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(3));
        assert_eq!(h.counts().buckets, vec![1, 1, 1]);
        assert_eq!(h.count(), 3);
        assert!((h.counts().sum_seconds - 3.6).abs() < 1e-9);
    }

    #[test]
    fn quantiles_are_interpolated_as_prometheus_does() {
        let bounds = [0.1, 0.2, 0.4];
        let cases: &[(&str, f64, &[u64], Option<f64>)] = &[
            ("no observation: no quantile", 0.5, &[0, 0, 0, 0], None),
            (
                "the median of one bucket is its middle",
                0.5,
                &[0, 10, 0, 0],
                Some(0.15),
            ),
            (
                "the lowest bucket starts at zero",
                0.5,
                &[4, 0, 0, 0],
                Some(0.05),
            ),
            (
                "a rank in +Inf gives the highest bound",
                0.99,
                &[0, 0, 1, 9],
                Some(0.4),
            ),
            (
                "p100 is the top of the last bucket used",
                1.0,
                &[5, 5, 0, 0],
                Some(0.2),
            ),
            (
                "p0 is the bottom of the first bucket used",
                0.0,
                &[0, 3, 1, 0],
                Some(0.1),
            ),
            (
                "a rank at the top of a bucket is its bound",
                0.9,
                &[5, 4, 1, 0],
                Some(0.2),
            ),
            (
                "a rank inside a later bucket",
                0.75,
                &[5, 4, 1, 0],
                Some(0.1625),
            ),
        ];
        for (case, q, buckets, expected) in cases {
            let got = quantile(*q, &bounds, &counts(buckets));
            match (got, expected) {
                (Some(g), Some(e)) => assert!((g - e).abs() < 1e-9, "{case}: {g} != {e}"),
                (g, e) => assert_eq!(g, *e, "{case}"),
            }
        }
    }

    #[test]
    fn counts_since_an_earlier_reading_are_the_difference() {
        let now = HistogramCounts {
            buckets: vec![5, 3, 1],
            sum_seconds: 2.0,
        };
        let then = HistogramCounts {
            buckets: vec![2, 3, 0],
            sum_seconds: 0.5,
        };
        assert_eq!(now.since(&then).buckets, vec![3, 0, 1]);
        assert_eq!(
            now.since(&HistogramCounts::default()).buckets,
            vec![5, 3, 1]
        );
    }
}
