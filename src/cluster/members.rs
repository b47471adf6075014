//! The members of a tier (this node's ring of peers, or its parents): from a
//! static list or from DNS (a Kubernetes headless Service), resolved again
//! every [`REFRESH_EVERY`], and which of them are skipped for a while because
//! they refused, timed out or failed.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use super::client::Probe;
use super::ring::Ring;

/// How often the members' names are resolved again (`--peers-dns`, `--parent-dns`).
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// How long a member that refused, timed out or answered 5xx is skipped.
pub const SKIP_FOR: Duration = Duration::from_secs(10);
/// How often every other member's cluster listener is probed
/// ([`PeerClient::probe`](super::client::PeerClient::probe)), so that a
/// member that is down is shown so on the status page and in
/// `s3edge_cluster_members` whether or not requests go to it.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How often a member skipped for taking no connection is tried again.
pub const RETRY_UNREACHABLE_EVERY: Duration = Duration::from_millis(200);

/// Asks a member's cluster listener whether it is up, and its node id.
pub type Prober = Arc<dyn Fn(SocketAddr) -> BoxFuture<'static, Probe> + Send + Sync>;

/// Where a tier's members come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--peers ADDR,...` / `--parent ADDR,...`: `HOST:PORT` each.
    List(Vec<String>),
    /// `--peers-dns NAME:PORT` / `--parent-dns NAME:PORT`: every address the
    /// name resolves to, on that port.
    Dns(String),
}

impl Source {
    /// Every `HOST:PORT` the source names now (DNS answers included).
    async fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        let names: Vec<&str> = match self {
            Source::List(list) => list.iter().map(String::as_str).collect(),
            Source::Dns(name) => vec![name.as_str()],
        };
        let mut addrs = Vec::new();
        for name in names {
            let found = tokio::net::lookup_host(name)
                .await
                .map_err(|e| format!("cannot resolve `{name}`: {e}"))?;
            addrs.extend(found);
        }
        Ok(addrs)
    }
}

/// Which tier, for logs, metrics and the purge answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Peers,
    Parents,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Peers => "peer",
            Role::Parents => "parent",
        }
    }
}

/// One tier's members now.
pub struct Tier {
    pub role: Role,
    source: Option<Source>,
    /// This node's cluster listener: the member that is this node is not asked.
    own: Option<SocketAddr>,
    ring: RwLock<Arc<Ring>>,
    skipped: Mutex<HashMap<SocketAddr, Instant>>,
    /// Members whose last probe found no listener ([`spawn_probes`](Self::spawn_probes)).
    down: Mutex<HashSet<SocketAddr>>,
    /// What each member's last probe that reached it found (up, with its
    /// node id or without, or refused for the token).
    answers: Mutex<HashMap<SocketAddr, Probe>>,
    /// Skipped members that took no connection, tried again every
    /// [`RETRY_UNREACHABLE_EVERY`] ([`skip_unreachable`](Self::skip_unreachable)).
    retrying: Mutex<HashSet<SocketAddr>>,
}

impl Tier {
    pub fn new(role: Role, source: Option<Source>, own: Option<SocketAddr>) -> Tier {
        Tier {
            role,
            source,
            own,
            ring: RwLock::new(Arc::new(Ring::new(Vec::new()))),
            skipped: Mutex::new(HashMap::new()),
            down: Mutex::new(HashSet::new()),
            answers: Mutex::new(HashMap::new()),
            retrying: Mutex::new(HashSet::new()),
        }
    }

    /// Whether the tier is configured at all.
    pub fn is_configured(&self) -> bool {
        self.source.is_some()
    }

    /// Whether its members come from DNS, where nodes may see different
    /// answers for up to a refresh (a scale-up, a rollout).
    pub fn from_dns(&self) -> bool {
        matches!(self.source, Some(Source::Dns(_)))
    }

    /// The ring in force.
    pub fn ring(&self) -> Arc<Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves the members again; on failure the previous ones stay.
    pub async fn refresh(&self) -> Result<usize, String> {
        let Some(source) = &self.source else {
            return Ok(0);
        };
        let addrs = source.resolve().await?;
        let ring = Ring::new(addrs);
        let count = ring.members().len();
        let changed = self.ring().members() != ring.members();
        if changed {
            tracing::info!(
                tier = self.role.as_str(),
                members = ?ring.members(),
                "cluster: {} members",
                self.role.as_str()
            );
        }
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        Ok(count)
    }

    /// Resolves the members every [`REFRESH_EVERY`] for as long as `alive`
    /// has an owner (the node).
    pub fn spawn_refresh(self: &Arc<Self>) {
        if self.source.is_none() {
            return;
        }
        let tier = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(REFRESH_EVERY);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(tier) = tier.upgrade() else { return };
                if let Err(e) = tier.refresh().await {
                    tracing::warn!(
                        tier = tier.role.as_str(),
                        "cluster: {e}; keeping the members known"
                    );
                }
            }
        });
    }

    /// Probes every other member every [`PROBE_EVERY`] for as long as the
    /// tier has an owner (the node): one that refuses a connection, or does
    /// not accept it within the connect timeout, is shown down ([`states`]:
    /// skipped) until a probe finds it again. Without it a member that died
    /// was shown skipped only for the 10 s after a request to it failed,
    /// then up again while no traffic went its way, so the member gauge and
    /// its alert (README "Monitoring") could not see it down, and a dead
    /// parent never showed. Requests are routed as before, by their own
    /// failures: a node that starts after its peers' probe is asked as soon
    /// as it answers.
    ///
    /// A probe also learns each member's node id (the status page names
    /// members by it), and one that has `own_id`, this node's, is logged as
    /// an error when first found: the two take each other's requests for
    /// loops (508).
    ///
    /// [`states`]: Self::states
    pub fn spawn_probes(self: &Arc<Self>, prober: Prober, own_id: String) {
        if self.source.is_none() {
            return;
        }
        let tier = Arc::downgrade(self);
        tokio::spawn(async move {
            // The first after one period: nodes started together are not
            // shown down for not listening yet.
            let first = tokio::time::Instant::now() + PROBE_EVERY;
            let mut ticks = tokio::time::interval_at(first, PROBE_EVERY);
            loop {
                ticks.tick().await;
                let Some(tier) = tier.upgrade() else { return };
                let others: Vec<SocketAddr> = tier
                    .ring()
                    .members()
                    .iter()
                    .copied()
                    .filter(|addr| !tier.is_self(*addr))
                    .collect();
                let probes = others.into_iter().map(|addr| {
                    let probe = prober(addr);
                    async move { (addr, probe.await) }
                });
                let found = futures_util::future::join_all(probes).await;
                tier.record_probes(found, &own_id);
            }
        });
    }

    /// What a round of probes found: who is down, and each member's answer.
    /// An answer that says something is wrong (this node's own id, a refused
    /// token) is logged when it first comes, not at every probe; a member
    /// that is down keeps its last answer.
    fn record_probes(&self, found: Vec<(SocketAddr, Probe)>, own_id: &str) {
        let mut down = lock(&self.down);
        let mut answers = lock(&self.answers);
        down.clear();
        for (addr, probe) in found {
            if probe == Probe::Down {
                down.insert(addr);
                continue;
            }
            if answers.get(&addr) == Some(&probe) {
                continue;
            }
            let role = self.role.as_str();
            match &probe {
                Probe::Up { node_id: Some(id) } if id == own_id => tracing::error!(
                    node = own_id,
                    "cluster: the {role} at {addr} has this node's --node-id `{id}`: each takes the other's requests for loops (508), so objects go to the bucket and purges do not reach it; give every node its own --node-id (the default is the host name)"
                ),
                Probe::Refused => tracing::error!(
                    node = own_id,
                    "cluster: the {role} at {addr} refuses this node's cluster token (401): requests and purges between the two fail; give every node the same S3EDGE_CLUSTER_TOKEN"
                ),
                _ => {}
            }
            answers.insert(addr, probe);
        }
    }

    /// The node id `addr` gave its last probe that answered, if it gave one.
    pub fn node_id(&self, addr: SocketAddr) -> Option<String> {
        match lock(&self.answers).get(&addr) {
            Some(Probe::Up { node_id }) => node_id.clone(),
            _ => None,
        }
    }

    /// Whether `addr` is this node's own cluster listener.
    pub fn is_self(&self, addr: SocketAddr) -> bool {
        self.own.is_some_and(|own| is_own_address(addr, own))
    }

    /// The members to ask for `key`, best first: the owner, then the next
    /// ones on the ring, without the skipped ones. `Candidate::Itself` marks
    /// where this node comes: from there on it owns the key.
    pub fn candidates(&self, key: &[u8]) -> Vec<Candidate> {
        let ring = self.ring();
        let mut candidates = Vec::new();
        for addr in ring.ranked(key) {
            if self.is_self(addr) {
                candidates.push(Candidate::Itself);
                break;
            }
            if !self.is_skipped(addr) {
                candidates.push(Candidate::Node(addr));
            }
        }
        candidates
    }

    /// Skips `addr` for [`SKIP_FOR`].
    pub fn skip(&self, addr: SocketAddr) {
        let mut skipped = lock(&self.skipped);
        skipped.insert(addr, Instant::now() + SKIP_FOR);
    }

    /// Skips `addr`, which took no connection, until it takes one again
    /// (tried every [`RETRY_UNREACHABLE_EVERY`]) or for [`SKIP_FOR`],
    /// whichever comes first. Nodes started together refuse each other until
    /// each listens: with the plain 10 s skip, the first requests of a new
    /// ring (or of a node back from a restart) bypassed their owner for 10 s,
    /// each node fetching its share from the parent or the bucket itself.
    pub fn skip_unreachable(self: &Arc<Self>, addr: SocketAddr) {
        self.skip(addr);
        let mut retrying = lock(&self.retrying);
        if !retrying.insert(addr) {
            return;
        }
        drop(retrying);
        let tier = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RETRY_UNREACHABLE_EVERY).await;
                let Some(tier) = tier.upgrade() else { return };
                let skipped = tier.is_skipped(addr);
                if skipped && !answers(addr).await {
                    continue;
                }
                if skipped {
                    lock(&tier.skipped).remove(&addr);
                    lock(&tier.down).remove(&addr);
                    tracing::info!(
                        tier = tier.role.as_str(),
                        peer = %addr,
                        "cluster: {} {addr} takes connections again; asking it",
                        tier.role.as_str()
                    );
                }
                lock(&tier.retrying).remove(&addr);
                return;
            }
        });
    }

    pub fn is_skipped(&self, addr: SocketAddr) -> bool {
        let mut skipped = lock(&self.skipped);
        match skipped.get(&addr) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                skipped.remove(&addr);
                false
            }
            None => false,
        }
    }

    /// Whether the last probe found no listener at `addr`.
    fn is_down(&self, addr: SocketAddr) -> bool {
        lock(&self.down).contains(&addr)
    }

    /// Every member and its state, for the status page and the member gauge.
    pub fn states(&self) -> Vec<(SocketAddr, MemberState)> {
        self.ring()
            .members()
            .iter()
            .map(|addr| {
                let state = if self.is_self(*addr) {
                    MemberState::Itself
                } else if self.is_skipped(*addr) || self.is_down(*addr) {
                    MemberState::Skipped
                } else {
                    MemberState::Up
                };
                (*addr, state)
            })
            .collect()
    }
}

/// `mutex`, locked; a panic elsewhere while it was held does not matter to
/// these plain sets.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a member accepts a connection on its cluster listener within the
/// connect timeout.
async fn answers(addr: SocketAddr) -> bool {
    let connect = tokio::net::TcpStream::connect(addr);
    matches!(
        tokio::time::timeout(super::client::CONNECT_TIMEOUT, connect).await,
        Ok(Ok(_))
    )
}

/// Where a request for an object may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    /// Another member, by its cluster address.
    Node(SocketAddr),
    /// This node: it fetches the object itself (from its parents or the bucket).
    Itself,
}

/// A member as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// This node.
    #[serde(rename = "self")]
    Itself,
    /// Asked when it owns a key.
    Up,
    /// Refused, timed out or failed lately: skipped for [`SKIP_FOR`]; or
    /// down, as the last probe found it ([`Tier::spawn_probes`]).
    Skipped,
}

/// Whether `addr` (a member's address) is the listener bound at `own`: the
/// same port, and the same address, or, for a listener on every address
/// (`0.0.0.0:7070`), an address of this host (one a socket can bind).
pub fn is_own_address(addr: SocketAddr, own: SocketAddr) -> bool {
    if addr.port() != own.port() {
        return false;
    }
    if addr.ip() == own.ip() {
        return true;
    }
    own.ip().is_unspecified() && std::net::UdpSocket::bind((addr.ip(), 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_this_node_when_it_is_the_listener_bound() {
        let own: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        assert!(is_own_address(own, own));
        assert!(!is_own_address("127.0.0.1:7071".parse().unwrap(), own));
        assert!(!is_own_address("127.0.0.2:7070".parse().unwrap(), own));
        let any: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        assert!(is_own_address("127.0.0.1:7070".parse().unwrap(), any));
        // TEST-NET-1 (RFC 5737) is nobody's address.
        assert!(!is_own_address("192.0.2.1:7070".parse().unwrap(), any));
    }

    #[test]
    fn a_skipped_member_is_left_out_until_its_time_is_up() {
        let tier = Tier::new(Role::Peers, None, None);
        let addr: SocketAddr = "10.0.0.1:7070".parse().unwrap();
        assert!(!tier.is_skipped(addr));
        tier.skip(addr);
        assert!(tier.is_skipped(addr));
        tier.skipped
            .lock()
            .unwrap()
            .insert(addr, Instant::now() - Duration::from_millis(1));
        assert!(!tier.is_skipped(addr));
    }

    #[tokio::test]
    async fn a_member_that_refuses_connections_is_skipped_by_the_probe_alone() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = {
            let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            gone.local_addr().unwrap()
        };
        let addrs = vec![live.local_addr().unwrap().to_string(), dead.to_string()];
        let tier = Arc::new(Tier::new(Role::Peers, Some(Source::List(addrs)), None));
        tier.refresh().await.unwrap();
        let connects: Prober = Arc::new(|addr| {
            Box::pin(async move {
                if answers(addr).await {
                    Probe::Up { node_id: None }
                } else {
                    Probe::Down
                }
            })
        });
        tier.spawn_probes(connects, "self".into());
        let deadline = Instant::now() + PROBE_EVERY + Duration::from_secs(3);
        while !tier.is_down(dead) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let states: HashMap<SocketAddr, MemberState> = tier.states().into_iter().collect();
        assert_eq!(states[&dead], MemberState::Skipped, "never probed down");
        assert_eq!(states[&live.local_addr().unwrap()], MemberState::Up);
        // Routing is left to the requests' own failures.
        assert_eq!(tier.candidates(b"k").len(), 2);
    }

    /// A member that refused a connection (not started yet) is asked again
    /// as soon as it listens; one that failed otherwise stays skipped.
    #[tokio::test]
    async fn a_member_skipped_for_refusing_is_asked_once_it_listens() {
        let port = {
            let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            gone.local_addr().unwrap()
        };
        let failing: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let tier = Arc::new(Tier::new(Role::Peers, None, None));
        tier.skip_unreachable(port);
        tier.skip(failing);
        tokio::time::sleep(RETRY_UNREACHABLE_EVERY * 3).await;
        assert!(tier.is_skipped(port), "asked again while nothing listens");
        let started = Instant::now();
        let _listening = tokio::net::TcpListener::bind(port).await.unwrap();
        while tier.is_skipped(port) {
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "still skipped after it listens"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(tier.is_skipped(failing));
        assert!(lock(&tier.retrying).is_empty(), "the retry task ended");
    }
}
