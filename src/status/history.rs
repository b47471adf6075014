//! The last 15 minutes of every site's figures, for the status page.
//!
//! A background task (`status::sample`) reads the cumulative figures every
//! [`SAMPLE_EVERY`] into a ring of [`KEPT_SAMPLES`]; a report reads one more
//! sample "now", so its last interval is up to date. Rates and percentiles
//! are differences between samples, as Prometheus' `rate` and
//! `histogram_quantile` compute them: pure functions of the samples.
//!
//! Why 10 s: 90 points draw a 15-minute chart as finely as a page a few
//! hundred pixels wide shows, a sample costs one pass over the metrics
//! (nothing on the request path), and a site's ring holds 91 samples of
//! about 200 bytes (18 KiB per site). Finer samples would only add noise
//! to low-traffic sites.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use crate::metrics::histogram::quantile;
use crate::metrics::{HistogramCounts, SiteFigures};

/// How often the figures are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How far back the status page looks.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Samples kept: one window of intervals, plus the sample that starts it.
pub const KEPT_SAMPLES: usize = (WINDOW.as_secs() / SAMPLE_EVERY.as_secs()) as usize + 1;

/// Every site's cumulative figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: SystemTime,
    pub sites: HashMap<Box<str>, SiteFigures>,
}

/// The ring of samples.
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Adds a sample, dropping the oldest beyond [`KEPT_SAMPLES`].
    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == KEPT_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The kept samples within [`WINDOW`] of `now`, then `now` itself.
    pub fn with_now(&self, now: Sample) -> Vec<Sample> {
        let since = now.at.checked_sub(WINDOW).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut samples: Vec<Sample> = self
            .samples
            .iter()
            .filter(|s| s.at >= since && s.at < now.at)
            .cloned()
            .collect();
        samples.push(now);
        samples
    }
}

/// Latency percentiles, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Percentiles {
    fn of(bounds: &[f64], counts: &HistogramCounts) -> Option<Percentiles> {
        Some(Percentiles {
            p50: quantile(0.5, bounds, counts)?,
            p90: quantile(0.9, bounds, counts)?,
            p99: quantile(0.99, bounds, counts)?,
        })
    }
}

/// One site's figures over an interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Interval {
    pub seconds: f64,
    pub requests: u64,
    pub requests_per_second: f64,
    /// Hits over lookups; `None` without lookups.
    pub hit_ratio: Option<f64>,
    pub bytes_served: u64,
    pub bytes_per_second: f64,
    pub origin_requests: u64,
    pub origin_errors: u64,
    /// `None` without requests.
    pub latency_seconds: Option<Percentiles>,
}

/// The figures of `site` between two samples (zeros where it had none).
pub fn interval(site: &str, from: &Sample, to: &Sample, bounds: &[f64]) -> Interval {
    let none = SiteFigures::default();
    let a = from.sites.get(site).unwrap_or(&none);
    let b = to.sites.get(site).unwrap_or(&none);
    let seconds = to
        .at
        .duration_since(from.at)
        .unwrap_or_default()
        .as_secs_f64();
    let per_second = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    let requests = b.requests.saturating_sub(a.requests);
    let bytes = b.bytes.saturating_sub(a.bytes);
    let lookups = b.lookups.saturating_sub(a.lookups);
    let hits = b.hits.saturating_sub(a.hits);
    Interval {
        seconds,
        requests,
        requests_per_second: per_second(requests),
        hit_ratio: (lookups > 0).then(|| hits as f64 / lookups as f64),
        bytes_served: bytes,
        bytes_per_second: per_second(bytes),
        origin_requests: b.origin_requests.saturating_sub(a.origin_requests),
        origin_errors: b.origin_errors.saturating_sub(a.origin_errors),
        latency_seconds: Percentiles::of(bounds, &b.latency.since(&a.latency)),
    }
}

/// One site's figures over the whole of `samples`, and over each interval
/// between consecutive samples (with the time each interval ends).
pub fn site_history(
    site: &str,
    samples: &[Sample],
    bounds: &[f64],
) -> (Interval, Vec<(SystemTime, Interval)>) {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        let empty = Sample {
            at: SystemTime::UNIX_EPOCH,
            sites: HashMap::new(),
        };
        return (interval(site, &empty, &empty, bounds), Vec::new());
    };
    let series = samples
        .windows(2)
        .map(|pair| (pair[1].at, interval(site, &pair[0], &pair[1], bounds)))
        .collect();
    (interval(site, first, last, bounds), series)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.01, 0.1];

    fn sample(secs: u64, requests: u64, hits: u64, lookups: u64, latency: [u64; 3]) -> Sample {
        let figures = SiteFigures {
            requests,
            bytes: requests * 100,
            lookups,
            hits,
            origin_requests: lookups - hits,
            origin_errors: 0,
            latency: HistogramCounts {
                buckets: latency.to_vec(),
                sum_seconds: 0.0,
            },
        };
        Sample {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            sites: HashMap::from([(Box::from("demo"), figures)]),
        }
    }

    #[test]
    fn rates_and_ratios_are_differences_between_samples() {
        let from = sample(100, 10, 5, 10, [10, 0, 0]);
        let to = sample(110, 60, 45, 60, [10, 50, 0]);
        let i = interval("demo", &from, &to, BOUNDS);
        assert_eq!(i.requests, 50);
        assert!((i.requests_per_second - 5.0).abs() < 1e-9);
        assert!((i.hit_ratio.unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(i.bytes_served, 5000);
        assert_eq!(i.origin_requests, 10);
        let latency = i.latency_seconds.unwrap();
        assert!((latency.p50 - 0.055).abs() < 1e-9, "{latency:?}");
    }

    #[test]
    fn a_site_without_traffic_has_no_ratio_and_no_latency() {
        let from = sample(100, 10, 5, 10, [10, 0, 0]);
        let to = sample(110, 10, 5, 10, [10, 0, 0]);
        let i = interval("demo", &from, &to, BOUNDS);
        assert_eq!(
            (i.requests, i.hit_ratio, i.latency_seconds),
            (0, None, None)
        );
        let unknown = interval("nobody", &from, &to, BOUNDS);
        assert_eq!(unknown.requests_per_second, 0.0);
    }

    #[test]
    fn the_ring_keeps_one_window_and_reports_end_with_now() {
        let mut history = History::default();
        for n in 0..200u64 {
            history.push(sample(n * 10, n, 0, 0, [0, 0, 0]));
        }
        assert_eq!(history.samples.len(), KEPT_SAMPLES);
        let samples = history.with_now(sample(1995, 200, 0, 0, [0, 0, 0]));
        // 1995 - 900 = 1095: samples at 1100..=1990, then now.
        assert_eq!(
            samples.first().unwrap().at,
            sample(1100, 0, 0, 0, [0; 3]).at
        );
        assert_eq!(samples.len(), 90 + 1);
        let (window, series) = site_history("demo", &samples, BOUNDS);
        assert_eq!(series.len(), 90);
        assert_eq!(window.requests, 200 - 110);
        assert!((window.seconds - 895.0).abs() < 1e-9);
    }

    #[test]
    fn no_sample_gives_an_empty_history() {
        let (window, series) = site_history("demo", &[], BOUNDS);
        assert!(series.is_empty());
        assert_eq!(window.requests, 0);
    }
}
