//! The cluster: a ring of peers that fetch each object from the bucket once,
//! and an optional parent tier (a shield) between the ring and the bucket
//! (DESIGN.md "Cluster: peers and a parent tier").
//!
//! - `ring.rs`: which member of a tier owns an object (ketama consistent hashing).
//! - `members.rs`: a tier's members, from a list or DNS, and which are skipped.
//! - `origin.rs`: [`TieredOrigin`], each site's origin asking owner, parent, bucket.
//! - `client.rs`, `wire.rs`: the requests between nodes and how answers map
//!   back to what the bucket said.
//! - `listener.rs`: the cluster listener (`--cluster-listen`): objects for
//!   other nodes, read through this node's cache; purges.
//! - `purge.rs`: a purge on the admin API sent to every node, parents first.
//! - `headers.rs`: `CDN-Loop` and `Cache-Status` chaining.
//!
//! A node that restarts drops what its disk tier kept ([`Cluster::forget_disk`]):
//! a purge may have been sent while it was down, and its peers still hold
//! the objects, so refilling costs peer requests, not bucket requests.

pub mod client;
pub mod headers;
pub mod listener;
pub mod members;
pub mod origin;
pub mod purge;
pub mod ring;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderName;

pub use members::{Candidate, MemberState, Prober, Role, Source, Tier};
pub use origin::TieredOrigin;

use crate::metrics::CounterVec;
use crate::origin::{Fetched, ObjectRequest, Origin, OriginError};
use crate::site::OriginWrapper;
use client::{PeerClient, PeerError};

/// Environment variable holding the token every request between nodes carries.
pub const CLUSTER_TOKEN_ENV: &str = "S3EDGE_CLUSTER_TOKEN";

/// The `Cache-Status` field (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The cluster settings of a node (`--node-id`, `--cluster-listen`,
/// `--peers`/`--peers-dns`, `--parent`/`--parent-dns`, `S3EDGE_CLUSTER_TOKEN`).
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub node_id: String,
    pub listen: Option<SocketAddr>,
    pub peers: Option<Source>,
    pub parents: Option<Source>,
    pub token: String,
}

/// The cluster flags as given, before they are checked.
#[derive(Debug, Clone, Default)]
pub struct ClusterFlags {
    pub node_id: Option<String>,
    pub listen: Option<SocketAddr>,
    pub peers: Vec<String>,
    pub peers_dns: Option<String>,
    pub parents: Vec<String>,
    pub parent_dns: Option<String>,
    /// `S3EDGE_CLUSTER_TOKEN`.
    pub token: Option<String>,
}

/// Why the cluster flags cannot run a node.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterError {
    #[error("{CLUSTER_TOKEN_ENV} is not set: --cluster-listen, --peers and --parent need the same secret token on every node (e.g. `export {CLUSTER_TOKEN_ENV}=$(openssl rand -hex 32)`)")]
    MissingToken,
    #[error("--{flag} and --{flag}-dns are exclusive: give the members as a list or as a DNS name, not both")]
    BothSources { flag: &'static str },
    #[error("--peers needs --cluster-listen: the other nodes of the ring fetch the objects this node owns from it")]
    PeersWithoutListener,
    #[error("--node-id `{0}`: must be a token (letters, digits, `-`, `.`, `_`, at most 255 bytes): it names the node in CDN-Loop and Cache-Status")]
    InvalidNodeId(String),
    #[error("--{flag} `{value}`: expected HOST:PORT, e.g. 10.0.0.1:7070")]
    InvalidMember { flag: &'static str, value: String },
}

impl ClusterFlags {
    /// The checked options, `None` when no cluster flag is set.
    /// `default_node_id` is the host name.
    pub fn check(self, default_node_id: String) -> Result<Option<ClusterOptions>, ClusterError> {
        let any = self.listen.is_some()
            || !self.peers.is_empty()
            || self.peers_dns.is_some()
            || !self.parents.is_empty()
            || self.parent_dns.is_some();
        // Checked with or without a cluster: the id names the node on its
        // status page and in ACME's locks too.
        if let Some(id) = self
            .node_id
            .as_deref()
            .filter(|id| !headers::is_valid_node_id(id))
        {
            return Err(ClusterError::InvalidNodeId(id.to_string()));
        }
        if !any {
            return Ok(None);
        }
        let token = self
            .token
            .filter(|t| !t.is_empty())
            .ok_or(ClusterError::MissingToken)?;
        let node_id = self.node_id.unwrap_or(default_node_id);
        if !headers::is_valid_node_id(&node_id) {
            return Err(ClusterError::InvalidNodeId(node_id));
        }
        let peers = source("peers", self.peers, self.peers_dns)?;
        let parents = source("parent", self.parents, self.parent_dns)?;
        if peers.is_some() && self.listen.is_none() {
            return Err(ClusterError::PeersWithoutListener);
        }
        Ok(Some(ClusterOptions {
            node_id,
            listen: self.listen,
            peers,
            parents,
            token,
        }))
    }
}

fn source(
    flag: &'static str,
    list: Vec<String>,
    dns: Option<String>,
) -> Result<Option<Source>, ClusterError> {
    let list: Vec<String> = list
        .into_iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    for value in list.iter().chain(dns.iter()) {
        let port = value
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        if port.is_none() {
            return Err(ClusterError::InvalidMember {
                flag,
                value: value.clone(),
            });
        }
    }
    match (list.is_empty(), dns) {
        (false, Some(_)) => Err(ClusterError::BothSources { flag }),
        (false, None) => Ok(Some(Source::List(list))),
        (true, Some(name)) => Ok(Some(Source::Dns(name))),
        (true, None) => Ok(None),
    }
}

/// A node's view of its cluster.
pub struct Cluster {
    pub node_id: String,
    pub token: String,
    /// This node's cluster listener, as configured.
    pub listen: Option<SocketAddr>,
    pub peers: Arc<Tier>,
    pub parents: Arc<Tier>,
    pub client: PeerClient,
    /// `s3edge_peer_requests_total{peer, outcome}`.
    peer_requests: CounterVec,
    /// Purges not yet confirmed by a node, sent again until they are.
    pub(crate) backlog: purge::Backlog,
    /// The peers whose last request named another ring than this node's.
    ring_noted: std::sync::Mutex<std::collections::HashMap<RingSender, RingNote>>,
}

/// A peer that sent a ring other than this node's: its address, its node
/// id (the last of its `CDN-Loop`) and the ring it sent. Peers on one host
/// share an address, and one of them sending this node's own ring must not
/// reset what another's differing one has shown.
type RingSender = (std::net::IpAddr, String, String);

/// Since when a peer's ring has differed, when it last said so, and when
/// that was last warned of.
struct RingNote {
    since: std::time::Instant,
    seen: std::time::Instant,
    warned: Option<std::time::Instant>,
}

/// How often a peer whose ring differs is warned of again.
const RING_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl Cluster {
    /// Resolves the members once (a name that does not resolve yet is
    /// retried every 10 s) and starts their refreshes.
    pub async fn start(options: ClusterOptions, peer_requests: CounterVec) -> Arc<Cluster> {
        let cluster = Arc::new(Cluster {
            peers: Arc::new(Tier::new(Role::Peers, options.peers, options.listen)),
            parents: Arc::new(Tier::new(Role::Parents, options.parents, options.listen)),
            client: PeerClient::new(options.token.clone()),
            node_id: options.node_id,
            token: options.token,
            listen: options.listen,
            peer_requests,
            backlog: purge::Backlog::default(),
            ring_noted: Default::default(),
        });
        for tier in [&cluster.peers, &cluster.parents] {
            if let Err(e) = tier.refresh().await {
                tracing::warn!(
                    tier = tier.role.as_str(),
                    "cluster: {e}; retrying every 10 s"
                );
            }
            tier.spawn_refresh();
            let node = Arc::downgrade(&cluster);
            let prober: Prober = Arc::new(move |addr| match node.upgrade() {
                Some(cluster) => Box::pin(cluster.client.probe(addr)),
                None => Box::pin(std::future::ready(client::Probe::Down)),
            });
            tier.spawn_probes(prober, cluster.node_id.clone());
        }
        let ring = cluster.peers.ring();
        if cluster.peers.is_configured()
            && !ring.members().iter().any(|m| cluster.peers.is_self(*m))
        {
            tracing::warn!(
                "cluster: this node's --cluster-listen is not among --peers: it owns no object and asks the ring for all of them"
            );
        }
        tracing::info!(
            node = cluster.node_id.as_str(),
            "cluster: node {}, {} peer(s), {} parent(s)",
            cluster.node_id,
            ring.members().len(),
            cluster.parents.ring().members().len()
        );
        cluster
    }

    /// The wrapper that makes each site's origin a [`TieredOrigin`] (after
    /// `inner`, a test wrapper, when there is one).
    pub fn origin_wrapper(self: &Arc<Self>, inner: Option<OriginWrapper>) -> OriginWrapper {
        let cluster = self.clone();
        Arc::new(
            move |config: &crate::config::SiteConfig, origin: Arc<dyn Origin>| {
                let origin = match &inner {
                    Some(wrap) => wrap(config, origin),
                    None => origin,
                };
                // An HTTP origin's answers carry any status and fields, which
                // the node-to-node protocol (a bucket's answers) does not:
                // each node asks that origin itself.
                if config.is_http_origin() {
                    return origin;
                }
                Arc::new(TieredOrigin::new(
                    &config.name,
                    origin,
                    cluster.clone(),
                    config.origin.timeout,
                )) as Arc<dyn Origin>
            },
        )
    }

    /// Asks the first member of `tier` that may have `key` (the owner, or the
    /// next one while it is skipped): `None` when this node owns the key, the
    /// tier is empty, or the member asked failed (it is then skipped for 10 s,
    /// or until it takes a connection if it took none, and the caller goes on
    /// to the next tier).
    pub async fn ask(
        &self,
        tier: &Arc<Tier>,
        key: &[u8],
        site: &str,
        request: &ObjectRequest,
        cdn_loop: &str,
        timeout: Duration,
    ) -> Option<Result<Fetched, OriginError>> {
        let Some(Candidate::Node(addr)) = tier.candidates(key).first().copied() else {
            return None;
        };
        let peer = addr.to_string();
        // Peers compare rings; parents have rings of their own.
        let ring = (tier.role == Role::Peers).then(|| tier.ring());
        let digest = ring.as_ref().map(|ring| ring.digest());
        match self
            .client
            .get(addr, site, request, cdn_loop, digest, timeout)
            .await
        {
            Ok(fetched) => {
                let outcome = match fetched {
                    Fetched::Object { .. } => "ok",
                    Fetched::NotModified { .. } => "not_modified",
                };
                self.peer_requests.inc(&[peer.as_str(), outcome]);
                Some(Ok(fetched))
            }
            Err(PeerError::Origin(e)) => {
                self.peer_requests.inc(&[peer.as_str(), e.outcome()]);
                Some(Err(e))
            }
            Err(PeerError::Down(reason)) => {
                tier.skip(addr);
                self.peer_failed(tier, &peer, site, request, &reason, "for 10 s");
                None
            }
            Err(PeerError::Unreachable(reason)) => {
                tier.skip_unreachable(addr);
                let until = "until it takes a connection (10 s at most)";
                self.peer_failed(tier, &peer, site, request, &reason, until);
                None
            }
        }
    }

    /// A peer's request said which ring it hashes keys over (`theirs`,
    /// [`wire::RING`]): when this node's own differs, the two disagree on
    /// which node owns a key (`--peers` lists that differ, or a DNS answer
    /// not yet the same on both), so keys are fetched and stored twice.
    /// Warned of at most once a minute per peer (node id `sender` at
    /// `from`) and ring; with `--peers-dns`, only once it has lasted two
    /// refreshes of the members (20 s).
    pub fn compare_ring(&self, from: Option<std::net::IpAddr>, sender: &str, theirs: &str) {
        let Some(from) = from else { return };
        let ours = self.peers.ring();
        if theirs == ours.digest() {
            return;
        }
        // From DNS, nodes may see different answers for up to a refresh:
        // warned of once it has lasted two. A list is the operator's.
        let hold = if self.peers.from_dns() {
            members::REFRESH_EVERY * 2
        } else {
            std::time::Duration::ZERO
        };
        let now = std::time::Instant::now();
        let mut noted = self.ring_noted.lock().unwrap_or_else(|e| e.into_inner());
        // Rings no peer has sent for a while: a difference that ended.
        noted.retain(|_, note| now.duration_since(note.seen) < RING_WARN_EVERY * 2);
        let note = noted
            .entry((from, sender.to_owned(), theirs.to_owned()))
            .or_insert(RingNote {
                since: now,
                seen: now,
                warned: None,
            });
        if now.duration_since(note.seen) > hold.max(members::REFRESH_EVERY) {
            // Not sent for a while: counted anew.
            note.since = now;
        }
        note.seen = now;
        let lasting = now.duration_since(note.since) >= hold;
        let due = note
            .warned
            .is_none_or(|at| now.duration_since(at) >= RING_WARN_EVERY);
        if !(lasting && due) {
            return;
        }
        note.warned = Some(now);
        drop(noted);
        tracing::warn!(
            node = self.node_id.as_str(),
            peer = %from,
            members = ?ours.members(),
            "cluster: peer {sender} at {from} hashes keys over other members than this node (ring {theirs}, this node's {}): they disagree on which node owns a key, so objects are fetched and stored more than once; give every node the same --peers",
            ours.digest()
        );
    }

    /// Counts and logs a failed request to `peer`, now skipped `how_long`.
    fn peer_failed(
        &self,
        tier: &Tier,
        peer: &str,
        site: &str,
        request: &ObjectRequest,
        reason: &str,
        how_long: &str,
    ) {
        self.peer_requests.inc(&[peer, "failed"]);
        tracing::warn!(
            tier = tier.role.as_str(),
            peer,
            site,
            key = request.key.as_str(),
            "cluster: {} {peer} failed ({reason}); skipped {how_long}, asking the next tier",
            tier.role.as_str()
        );
    }

    /// Members of this node's ring, itself included: those it sees (skipped
    /// ones excluded, `s3edge_cluster_members`) and all of them, up or not
    /// (`s3edge_cluster_members_known`).
    pub fn member_counts(&self) -> (i64, i64) {
        let states = self.peers.states();
        let up = states
            .iter()
            .filter(|(_, s)| *s != MemberState::Skipped)
            .count();
        let itself = usize::from(!states.iter().any(|(_, s)| *s == MemberState::Itself));
        ((up + itself) as i64, (states.len() + itself) as i64)
    }

    /// Makes every other member of both tiers appear in
    /// `s3edge_peer_requests_total` (at 0) before it is first asked, so each
    /// node's `/metrics` shows its peers.
    pub fn show_members_in_metrics(&self) {
        for (_, addr, state) in self.members() {
            if state != MemberState::Itself {
                self.peer_requests
                    .add(&[addr.to_string().as_str(), "ok"], 0);
            }
        }
    }

    /// Whether `addr` is a member of either tier now.
    pub fn is_member(&self, addr: SocketAddr) -> bool {
        [&self.peers, &self.parents]
            .into_iter()
            .any(|tier| tier.ring().members().contains(&addr))
    }

    /// Every member of both tiers with its state (the status page).
    pub fn members(&self) -> Vec<(Role, SocketAddr, MemberState)> {
        [&self.peers, &self.parents]
            .into_iter()
            .flat_map(|tier| {
                tier.states()
                    .into_iter()
                    .map(move |(addr, state)| (tier.role, addr, state))
            })
            .collect()
    }

    /// The node id a member of either tier gave its last probe, if any.
    pub fn member_id(&self, role: Role, addr: SocketAddr) -> Option<String> {
        match role {
            Role::Peers => self.peers.node_id(addr),
            Role::Parents => self.parents.node_id(addr),
        }
    }
}

/// Drops every entry the disk tier kept from before this start: while the
/// node was down a purge may have been sent that it never saw, and nothing
/// purged may be served when it comes back (DESIGN.md). Its peers hold the
/// objects it owned, so it refills from them, not from the bucket.
pub fn forget_disk(cache: &crate::cache::Cache, sites: &crate::site::Sites) -> u64 {
    if !cache.has_disk() {
        return 0;
    }
    sites
        .sites
        .iter()
        .map(|site| cache.purge(site.name(), crate::cache::PurgeScope::all("")))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> ClusterFlags {
        ClusterFlags {
            listen: Some("127.0.0.1:7070".parse().unwrap()),
            peers: vec!["127.0.0.1:7070".into(), "127.0.0.1:7071".into()],
            token: Some("secret".into()),
            ..ClusterFlags::default()
        }
    }

    #[test]
    fn no_cluster_flag_means_a_single_node() {
        assert_eq!(
            ClusterFlags::default()
                .check("h".into())
                .unwrap()
                .map(|o| o.node_id),
            None
        );
    }

    #[test]
    fn cluster_flags_are_refused_with_the_fix_named() {
        let cases: Vec<(ClusterFlags, ClusterError)> = vec![
            (
                ClusterFlags {
                    token: None,
                    ..flags()
                },
                ClusterError::MissingToken,
            ),
            (
                ClusterFlags {
                    token: Some(String::new()),
                    ..flags()
                },
                ClusterError::MissingToken,
            ),
            (
                ClusterFlags {
                    listen: None,
                    ..flags()
                },
                ClusterError::PeersWithoutListener,
            ),
            (
                ClusterFlags {
                    peers_dns: Some("edges:7070".into()),
                    ..flags()
                },
                ClusterError::BothSources { flag: "peers" },
            ),
            (
                ClusterFlags {
                    node_id: Some("edge 1".into()),
                    ..flags()
                },
                ClusterError::InvalidNodeId("edge 1".into()),
            ),
            (
                ClusterFlags {
                    parents: vec!["shield".into()],
                    ..flags()
                },
                ClusterError::InvalidMember {
                    flag: "parent",
                    value: "shield".into(),
                },
            ),
        ];
        for (flags, expected) in cases {
            assert_eq!(flags.check("host".into()).unwrap_err(), expected);
        }
        let ok = flags().check("host".into()).unwrap().unwrap();
        assert_eq!(ok.node_id, "host");
        assert_eq!(
            ok.peers,
            Some(Source::List(vec![
                "127.0.0.1:7070".into(),
                "127.0.0.1:7071".into()
            ]))
        );
    }
}
