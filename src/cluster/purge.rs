//! A purge on the admin API of any node, sent to every node of its ring and
//! of its parent tier before it answers (DESIGN.md "Cluster").
//!
//! Order: the parents, then the ring (this node included), each tier in two
//! rounds run in parallel. Two rounds because the members of one tier fetch
//! from each other: between the purge of node A and that of its peer B, A
//! may store the old version it got from B. The second round starts only
//! once every member has purged, so it removes what was stored in between,
//! and each node's purge barrier discards the fills in flight across it.
//! Parents go first so that no edge refills from a parent not yet purged.
//!
//! A node that cannot be reached is reported in `failed`, and the purge is
//! sent to it again in the background every [`RETRY_EVERY`] for
//! [`RETRY_FOR`] (a partition that heals). A node that was down drops its
//! disk tier when it starts (`Cluster::forget_disk`), so it serves nothing
//! it missed either way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{headers, Cluster};
use crate::admin::{self, PurgeRequest};
use crate::state::AppState;

/// How often a purge is sent again to a node that missed it.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);
/// For how long.
pub const RETRY_FOR: Duration = Duration::from_secs(600);

/// What the fan-out reached.
#[derive(Debug, Default, serde::Serialize)]
pub struct Reached {
    /// Entries removed, every node and round together.
    pub purged: u64,
    pub nodes: Nodes,
}

/// The nodes that confirmed the purge and those that did not, by their
/// cluster addresses (this node by its own, or by its id without a listener).
#[derive(Debug, Default, serde::Serialize)]
pub struct Nodes {
    pub confirmed: Vec<String>,
    pub failed: Vec<String>,
}

/// One member of a tier: another node, or this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Node(SocketAddr),
    Itself,
}

/// Purges `request` on every node, parents first; `body` is its JSON.
pub async fn fan_out(
    state: &Arc<AppState>,
    cluster: &Arc<Cluster>,
    request: &PurgeRequest,
    body: Bytes,
) -> Reached {
    let mut reached = Reached::default();
    let own_name = cluster
        .listen
        .map_or_else(|| cluster.node_id.clone(), |a| a.to_string());
    for tier in [&cluster.parents, &cluster.peers] {
        if !tier.is_configured() {
            continue;
        }
        let mut targets: Vec<(String, Target)> = Vec::new();
        for addr in tier.ring().members() {
            if tier.is_self(*addr) {
                targets.push((addr.to_string(), Target::Itself));
            } else {
                targets.push((addr.to_string(), Target::Node(*addr)));
            }
        }
        if tier.role == super::Role::Peers && !targets.iter().any(|(_, t)| *t == Target::Itself) {
            targets.push((own_name.clone(), Target::Itself));
        }
        let rounds = if targets.len() > 1 { 2 } else { 1 };
        let mut failed: Vec<usize> = Vec::new();
        for _ in 0..rounds {
            // A node that failed the first round is not waited for again.
            let asked: Vec<usize> = (0..targets.len()).filter(|i| !failed.contains(i)).collect();
            let results = futures_util::future::join_all(
                asked
                    .iter()
                    .map(|&i| purge_one(state, cluster, request, &body, targets[i].1)),
            )
            .await;
            for (&i, result) in asked.iter().zip(results) {
                match result {
                    Ok(purged) => reached.purged += purged,
                    Err(reason) => {
                        tracing::warn!(
                            node = targets[i].0.as_str(),
                            site = request.site.as_str(),
                            "cluster: purge not confirmed: {reason}; retrying in the background"
                        );
                        failed.push(i);
                    }
                }
            }
        }
        for (i, (name, target)) in targets.into_iter().enumerate() {
            if failed.contains(&i) {
                reached.nodes.failed.push(name);
                if let Target::Node(addr) = target {
                    retry_in_background(cluster.clone(), addr, body.clone());
                }
            } else {
                reached.nodes.confirmed.push(name);
            }
        }
    }
    reached
}

async fn purge_one(
    state: &Arc<AppState>,
    cluster: &Cluster,
    request: &PurgeRequest,
    body: &Bytes,
    target: Target,
) -> Result<u64, String> {
    match target {
        Target::Itself => admin::purge_locally(state, request)
            .await
            .map_err(|(_, message)| message),
        Target::Node(addr) => {
            let cdn_loop = headers::cdn_loop_value(&[], &cluster.node_id);
            cluster.client.purge(addr, body.clone(), &cdn_loop).await
        }
    }
}

/// Sends the purge to `addr` until it confirms, for at most [`RETRY_FOR`].
fn retry_in_background(cluster: Arc<Cluster>, addr: SocketAddr, body: Bytes) {
    let cluster = Arc::downgrade(&cluster);
    tokio::spawn(async move {
        let until = Instant::now() + RETRY_FOR;
        while Instant::now() < until {
            tokio::time::sleep(RETRY_EVERY).await;
            let Some(cluster) = cluster.upgrade() else {
                return;
            };
            let cdn_loop = headers::cdn_loop_value(&[], &cluster.node_id);
            if cluster
                .client
                .purge(addr, body.clone(), &cdn_loop)
                .await
                .is_ok()
            {
                tracing::info!(node = %addr, "cluster: purge delivered on retry");
                return;
            }
        }
        tracing::warn!(node = %addr, "cluster: purge never confirmed; that node drops its disk tier when it restarts");
    });
}
