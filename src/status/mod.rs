//! The status page on the admin listener: `GET /` (an HTML page that draws
//! itself from `GET /status.json` every few seconds, with no external asset)
//! and `GET /status.json` (per site over the last 15 minutes: requests per
//! second, hit ratio, bytes served, origin requests and errors, latency
//! percentiles, and their history; the cache tiers' fill; the cluster
//! members; the recent purges).
//!
//! The history is a ring of samples of the node's own counters, taken every
//! [`SAMPLE_EVERY`] by [`start_sampler`] (see `history.rs` for the choice).

pub mod history;
pub mod purges;
pub mod readings;
pub mod report;

use std::sync::{Arc, Weak};
use std::time::SystemTime;

pub use history::{History, Sample, SAMPLE_EVERY, WINDOW};
pub use purges::{PurgeRecord, RecentPurges};

pub(crate) use crate::access_log::serialize_time;

use crate::metrics::Metrics;

/// The status page: one self-contained HTML file (inline CSS and JS, charts
/// drawn as inline SVG), so it works offline and behind any proxy.
pub const PAGE: &str = include_str!("page.html");

/// Reads every site's figures into the history now.
pub fn take_sample(metrics: &Metrics) {
    let sample = Sample {
        at: SystemTime::now(),
        sites: metrics.figures(),
    };
    metrics
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(sample);
}

/// Samples the figures now and every [`SAMPLE_EVERY`] after, on the current
/// runtime, until the metrics are dropped (the node has stopped).
pub fn start_sampler(metrics: &Arc<Metrics>) {
    let metrics: Weak<Metrics> = Arc::downgrade(metrics);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SAMPLE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(metrics) = metrics.upgrade() else {
                return;
            };
            take_sample(&metrics);
        }
    });
}

/// This node's name: the host name, as `--node-id` defaults to. From
/// uname(2), which needs no file: the shipped systemd unit's
/// `ProcSubset=pid` hides `/proc/sys/kernel/hostname`, and every node of a
/// ring read there fell back to one name, so each took the others' requests
/// for loops (508) and purges never reached them.
pub fn node_id() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy();
    let name = name.trim();
    if name.is_empty() || name == "(none)" {
        "s3edge".to_string()
    } else {
        name.to_string()
    }
}
