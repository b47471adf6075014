//! `GET /status.json`: what the status page shows, as one document.

use std::time::SystemTime;

use serde::Serialize;

use super::history::{self, Interval, Percentiles, Sample, SAMPLE_EVERY, WINDOW};
use super::purges::PurgeRecord;
use super::serialize_time;
use crate::metrics::{NodeReadings, TierReading, REQUEST_BUCKETS};
use crate::state::AppState;

/// The whole status document.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub node: NodeInfo,
    #[serde(serialize_with = "serialize_time")]
    pub generated_at: SystemTime,
    pub sample_interval_seconds: u64,
    pub window_seconds: u64,
    pub sites: Vec<SiteReport>,
    pub cache: CacheReport,
    pub cluster: ClusterReport,
    /// The last purge calls, newest first.
    pub purges: Vec<PurgeRecord>,
}

#[derive(Debug, Serialize)]
pub struct NodeInfo {
    pub id: String,
    pub version: &'static str,
    #[serde(serialize_with = "serialize_time")]
    pub started_at: SystemTime,
    pub uptime_seconds: u64,
}

/// One site over the window, and interval by interval.
#[derive(Debug, Serialize)]
pub struct SiteReport {
    pub name: String,
    pub hosts: Vec<String>,
    pub default: bool,
    pub origin: String,
    /// Seconds until its certificate expires, when it serves one.
    pub certificate_expiry_seconds: Option<i64>,
    pub window: Interval,
    pub series: Series,
}

/// Per interval, in columns (the page draws each as a line); each interval
/// ends at the matching `time` (Unix milliseconds).
#[derive(Debug, Default, Serialize)]
pub struct Series {
    pub time: Vec<u64>,
    pub requests_per_second: Vec<f64>,
    pub hit_ratio: Vec<Option<f64>>,
    pub bytes_per_second: Vec<f64>,
    pub origin_requests_per_second: Vec<f64>,
    pub origin_errors_per_second: Vec<f64>,
    pub latency_p50_seconds: Vec<Option<f64>>,
    pub latency_p99_seconds: Vec<Option<f64>>,
}

impl Series {
    fn from_intervals(intervals: &[(SystemTime, Interval)]) -> Series {
        let mut series = Series::default();
        for (end, i) in intervals {
            let per_second = |n: u64| {
                if i.seconds > 0.0 {
                    n as f64 / i.seconds
                } else {
                    0.0
                }
            };
            series.time.push(
                end.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            );
            series.requests_per_second.push(i.requests_per_second);
            series.hit_ratio.push(i.hit_ratio);
            series.bytes_per_second.push(i.bytes_per_second);
            series
                .origin_requests_per_second
                .push(per_second(i.origin_requests));
            series
                .origin_errors_per_second
                .push(per_second(i.origin_errors));
            let latency = i.latency_seconds.as_ref();
            series
                .latency_p50_seconds
                .push(latency.map(|p: &Percentiles| p.p50));
            series.latency_p99_seconds.push(latency.map(|p| p.p99));
        }
        series
    }
}

#[derive(Debug, Serialize)]
pub struct CacheReport {
    /// Memory, then disk when it is configured.
    pub tiers: Vec<TierReading>,
}

#[derive(Debug, Serialize)]
pub struct ClusterReport {
    pub members: Vec<Member>,
}

/// A node of the cluster as this node sees it.
#[derive(Debug, Serialize)]
pub struct Member {
    pub id: String,
    /// Its cluster address; `None` for this node while it has no cluster listener.
    pub address: Option<String>,
    pub state: MemberState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// This node.
    #[serde(rename = "self")]
    Itself,
    /// Another node of this node's ring.
    Peer,
    /// A node of the parent tier.
    Parent,
    /// A peer or parent that failed lately: skipped for 10 s.
    Skipped,
}

/// Builds the report from the node's figures now.
pub fn build(state: &AppState, readings: &NodeReadings) -> StatusReport {
    let metrics = &state.metrics;
    let now = SystemTime::now();
    let samples = metrics
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .with_now(Sample {
            at: now,
            sites: metrics.figures(),
        });
    let sites = state
        .sites()
        .sites
        .iter()
        .map(|site| {
            let (window, intervals) = history::site_history(site.name(), &samples, REQUEST_BUCKETS);
            SiteReport {
                name: site.name().to_string(),
                hosts: site.config.hosts.iter().map(|h| h.to_string()).collect(),
                default: site.config.default,
                origin: site.origin.describe(),
                certificate_expiry_seconds: readings
                    .certificate_expiry
                    .iter()
                    .find(|(name, _)| name == site.name())
                    .map(|(_, seconds)| *seconds),
                window,
                series: Series::from_intervals(&intervals),
            }
        })
        .collect();
    let id = state.node_id.clone();
    StatusReport {
        node: NodeInfo {
            id: id.clone(),
            version: env!("CARGO_PKG_VERSION"),
            started_at: metrics.started,
            uptime_seconds: now
                .duration_since(metrics.started)
                .unwrap_or_default()
                .as_secs(),
        },
        generated_at: now,
        sample_interval_seconds: SAMPLE_EVERY.as_secs(),
        window_seconds: WINDOW.as_secs(),
        sites,
        cache: CacheReport {
            tiers: readings.tiers.clone(),
        },
        cluster: ClusterReport {
            members: members(state, id),
        },
        purges: metrics.purges.list(),
    }
}

/// This node first, then the other members of its ring and its parents.
fn members(state: &AppState, id: String) -> Vec<Member> {
    use crate::cluster::{MemberState as Seen, Role};
    let Some(cluster) = &state.cluster else {
        return vec![Member {
            id,
            address: None,
            state: MemberState::Itself,
        }];
    };
    let mut members = vec![Member {
        id,
        address: cluster.listen.map(|a| a.to_string()),
        state: MemberState::Itself,
    }];
    for (role, addr, seen) in cluster.members() {
        let state = match (seen, role) {
            (Seen::Itself, _) => continue,
            (Seen::Skipped, _) => MemberState::Skipped,
            (Seen::Up, Role::Peers) => MemberState::Peer,
            (Seen::Up, Role::Parents) => MemberState::Parent,
        };
        members.push(Member {
            id: cluster
                .member_id(role, addr)
                .unwrap_or_else(|| addr.to_string()),
            address: Some(addr.to_string()),
            state,
        });
    }
    members
}
