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
//! queued for it ([`Backlog`]) and sent again every [`RETRY_EVERY`] until it
//! confirms (a partition that heals, however long) or leaves the tiers;
//! past [`MAX_PENDING`] queued purges, a site's purges become one purge of
//! the whole site. A node that was down drops its disk tier when it starts
//! (`Cluster::forget_disk`), so it serves nothing it missed either way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::client::PurgeFailure;
use super::{headers, Cluster};
use crate::admin::{self, PurgeRequest};
use crate::state::AppState;

/// How often a purge is sent again to a node that missed it.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);

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
    for tier in [&cluster.parents, &cluster.peers] {
        // This node is purged with its ring, and alone when it has none (an
        // edge with only --parent, a parent with only --cluster-listen).
        if !tier.is_configured() && tier.role != super::Role::Peers {
            continue;
        }
        purge_tier(state, cluster, tier, request, &body, &mut reached).await;
    }
    reached
}

/// Purges `request` on the members of `tier` (its ring: this node too), in
/// two rounds when it has several; adds to `reached`. A node that does not
/// confirm is queued for [`retry_in_background`].
async fn purge_tier(
    state: &Arc<AppState>,
    cluster: &Arc<Cluster>,
    tier: &super::Tier,
    request: &PurgeRequest,
    body: &Bytes,
    reached: &mut Reached,
) {
    let own_name = cluster
        .listen
        .map_or_else(|| cluster.node_id.clone(), |a| a.to_string());
    let mut targets: Vec<(String, Target)> = Vec::new();
    if tier.is_configured() {
        for addr in tier.ring().members() {
            if tier.is_self(*addr) {
                targets.push((addr.to_string(), Target::Itself));
            } else {
                targets.push((addr.to_string(), Target::Node(*addr)));
            }
        }
    }
    if tier.role == super::Role::Peers && !targets.iter().any(|(_, t)| *t == Target::Itself) {
        targets.push((own_name, Target::Itself));
    }
    let rounds = if targets.len() > 1 { 2 } else { 1 };
    let mut failed: Vec<usize> = Vec::new();
    let mut given_up: Vec<usize> = Vec::new();
    for _ in 0..rounds {
        // A node that failed the first round is not waited for again.
        let asked: Vec<usize> = (0..targets.len()).filter(|i| !failed.contains(i)).collect();
        let results = futures_util::future::join_all(
            asked
                .iter()
                .map(|&i| purge_one(state, cluster, request, body, targets[i].1)),
        )
        .await;
        for (&i, result) in asked.iter().zip(results) {
            match result {
                Ok(purged) => reached.purged = reached.purged.saturating_add(purged),
                // A node of an older version that does not serve the
                // site: it holds nothing of it to purge.
                Err(PurgeFailure::Refused { status: 404, .. }) => {}
                Err(reason) if reason.is_permanent() => {
                    tracing::error!(
                        node = targets[i].0.as_str(),
                        site = request.site.as_str(),
                        "cluster: purge refused: {reason}; not sent again (no retry can change it)"
                    );
                    failed.push(i);
                    given_up.push(i);
                }
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
            if let (Target::Node(addr), false) = (target, given_up.contains(&i)) {
                retry_in_background(state, cluster.clone(), addr, request.clone());
            }
        } else {
            reached.nodes.confirmed.push(name);
        }
    }
}

async fn purge_one(
    state: &Arc<AppState>,
    cluster: &Cluster,
    request: &PurgeRequest,
    body: &Bytes,
    target: Target,
) -> Result<u64, PurgeFailure> {
    match target {
        Target::Itself => admin::purge_locally(state, request)
            .await
            .map_err(|(_, message)| PurgeFailure::Unreachable(message)),
        Target::Node(addr) => {
            let cdn_loop = headers::cdn_loop_value(&[], &cluster.node_id);
            cluster.client.purge(addr, body.clone(), &cdn_loop).await
        }
    }
}

/// Purges a node has not confirmed yet, per node, in the order they were
/// made; one background task per node sends them again every
/// [`RETRY_EVERY`] until the node confirms them or leaves the tiers.
#[derive(Default)]
pub struct Backlog {
    pending: std::sync::Mutex<std::collections::HashMap<SocketAddr, Vec<PurgeRequest>>>,
}

/// Most purges kept for one node; past it, each site's purges become one
/// purge of the whole site (more than was asked, never less).
pub const MAX_PENDING: usize = 256;

impl Backlog {
    /// Adds `request` for `addr`; `true` when no task retries for it yet.
    fn push(&self, addr: SocketAddr, request: PurgeRequest) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let first = !pending.contains_key(&addr);
        let queue = pending.entry(addr).or_default();
        queue.push(request);
        if queue.len() > MAX_PENDING {
            let mut sites: Vec<String> = queue.iter().map(|r| r.site.clone()).collect();
            sites.sort();
            sites.dedup();
            *queue = sites
                .into_iter()
                .map(|site| PurgeRequest {
                    site,
                    paths: Vec::new(),
                    prefixes: Vec::new(),
                    all: true,
                })
                .collect();
        }
        first
    }

    fn snapshot(&self, addr: SocketAddr) -> Vec<PurgeRequest> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.get(&addr).cloned().unwrap_or_default()
    }

    /// Removes the first `sent` requests of `addr`; `true` when none is left
    /// (the entry is then gone, and its task ends).
    fn confirmed(&self, addr: SocketAddr, sent: usize) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = pending.get_mut(&addr) else {
            return true;
        };
        queue.drain(..sent.min(queue.len()));
        if queue.is_empty() {
            pending.remove(&addr);
            return true;
        }
        false
    }

    fn forget(&self, addr: SocketAddr) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.remove(&addr);
    }

    /// Purges waiting for `addr`.
    pub fn len(&self, addr: SocketAddr) -> usize {
        self.snapshot(addr).len()
    }
}

/// Queues the purge for `addr` and, unless one runs already, starts the task
/// that sends its queue until the node confirms it (a partition that heals,
/// however long) or is no longer a member of either tier.
///
/// Once the node has them, this node's ring is purged again with them:
/// while the node had not purged, this node or a peer may have refilled the
/// old version from it (a parent, or the peer owning the key), and kept it
/// for its whole lifetime.
fn retry_in_background(
    state: &Arc<AppState>,
    cluster: Arc<Cluster>,
    addr: SocketAddr,
    request: PurgeRequest,
) {
    if !cluster.backlog.push(addr, request) {
        return;
    }
    let cluster = Arc::downgrade(&cluster);
    let state = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RETRY_EVERY).await;
            let (Some(cluster), Some(state)) = (cluster.upgrade(), state.upgrade()) else {
                return;
            };
            if !cluster.is_member(addr) {
                cluster.backlog.forget(addr);
                tracing::warn!(node = %addr, "cluster: purges dropped for a node that left the tiers");
                return;
            }
            let queue = cluster.backlog.snapshot(addr);
            let cdn_loop = headers::cdn_loop_value(&[], &cluster.node_id);
            let mut sent = 0;
            for request in &queue {
                let Ok(body) = serde_json::to_vec(request) else {
                    sent += 1;
                    continue;
                };
                match cluster
                    .client
                    .purge(addr, Bytes::from(body), &cdn_loop)
                    .await
                {
                    Ok(_) | Err(PurgeFailure::Refused { status: 404, .. }) => {}
                    // One the node refuses for good is dropped, so that it
                    // does not hold back the purges queued after it.
                    Err(reason) if reason.is_permanent() => {
                        tracing::error!(
                            node = %addr,
                            site = request.site.as_str(),
                            "cluster: a queued purge refused: {reason}; dropped"
                        );
                    }
                    Err(_) => break,
                }
                sent += 1;
            }
            let done = cluster.backlog.confirmed(addr, sent);
            if sent > 0 {
                // What the node may have handed out meanwhile goes too.
                for request in &queue[..sent] {
                    let Ok(body) = serde_json::to_vec(request) else {
                        continue;
                    };
                    let mut reached = Reached::default();
                    let body = Bytes::from(body);
                    purge_tier(
                        &state,
                        &cluster,
                        &cluster.peers,
                        request,
                        &body,
                        &mut reached,
                    )
                    .await;
                }
            }
            if done {
                tracing::info!(node = %addr, "cluster: purges delivered on retry");
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(site: &str, path: &str) -> PurgeRequest {
        PurgeRequest {
            site: site.into(),
            paths: vec![path.into()],
            prefixes: Vec::new(),
            all: false,
        }
    }

    /// Which refusals a retry could change: those are queued; the others
    /// are dropped, so they never hold back the purges queued after them.
    #[test]
    fn only_refusals_a_retry_could_change_are_sent_again() {
        let refused = |status: u16| PurgeFailure::Refused {
            status,
            message: String::new(),
        };
        for status in [400, 404, 405, 413, 422] {
            assert!(refused(status).is_permanent(), "{status}");
        }
        for status in [401, 403, 408, 429, 500, 502, 503] {
            assert!(!refused(status).is_permanent(), "{status}");
        }
        assert!(!PurgeFailure::Unreachable("reset".into()).is_permanent());
    }

    #[test]
    fn a_node_s_backlog_keeps_order_and_collapses_into_whole_sites() {
        let backlog = Backlog::default();
        let addr: SocketAddr = "10.0.0.1:7070".parse().unwrap();
        assert!(backlog.push(addr, request("a", "/1")));
        assert!(!backlog.push(addr, request("a", "/2")), "one task per node");
        assert!(!backlog.confirmed(addr, 1));
        assert_eq!(backlog.snapshot(addr)[0].paths, vec!["/2".to_string()]);
        assert!(backlog.confirmed(addr, 1));
        assert_eq!(backlog.len(addr), 0);
        for i in 0..=MAX_PENDING {
            let site = if i % 2 == 0 { "a" } else { "b" };
            backlog.push(addr, request(site, &format!("/{i}")));
        }
        let collapsed = backlog.snapshot(addr);
        assert_eq!(collapsed.len(), 2);
        assert!(collapsed.iter().all(|r| r.all && r.paths.is_empty()));
    }
}
