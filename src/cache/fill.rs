//! Request coalescing: concurrent misses for one key make one origin request.
//!
//! The first request for a key becomes the leader and holds a [`FlightGuard`];
//! the others follow the [`Flight`]. The leader publishes what it learnt: an
//! entry to read from the cache, a body streaming in (followers read the chunks
//! as they arrive, not after the fill completes), or `Retry` when there is
//! nothing to share. A guard dropped without publishing (the leader's request
//! was cancelled) publishes `Retry`, and one dropped mid-body fails the
//! followers' streams: no waiter is ever stranded, nothing half-received is
//! ever stored.
//!
//! A body that fits the memory tier is shared as the chunks received. A body
//! that goes to disk only is "spilled": the leader writes it into its cache
//! file as it arrives and followers read the bytes already written from that
//! file, so it is never held whole in memory. Should the disk fail mid-fill,
//! the rest of the body is shared from memory and nothing is stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{CacheKey, Entry, Generation, SpillReader};
use crate::origin::{BodyStream, ObjectMeta, OriginError};

/// What a follower learns from its leader.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Read this entry (a completed fill, a 304 refresh, a cached 404/403).
    Entry(Arc<Entry>),
    /// The body is arriving: [`Flight::subscribe`] to it.
    Streaming(Arc<ObjectMeta>),
    /// The origin failed and the leader serves this stale entry
    /// (stale-if-error): the followers serve it too, as stale-if-error (a
    /// peer asking whether its copy is current gets the failure relayed,
    /// not a 304).
    StaleIfError(Arc<Entry>),
    /// The origin failed: the followers get the same error.
    Failed(OriginError),
    /// Nothing to share (not cacheable, too large, abandoned): fetch yourself.
    Retry,
}

#[derive(Default)]
struct FlightState {
    outcome: Option<Outcome>,
    /// The file holding the body's first `spilled` bytes, in spill mode.
    spill: Option<SpillReader>,
    spilled: u64,
    /// Body bytes held in memory, each with its offset in the body: from 0, or
    /// from `spilled` when the disk failed mid-fill.
    chunks: Vec<(u64, Bytes)>,
    /// Body bytes received so far.
    received: u64,
    /// `Some` once the body is complete (`Ok`) or has failed.
    finished: Option<Result<(), OriginError>>,
}

/// Largest read from a spill file for one chunk of a follower's stream.
const SPILL_READ: u64 = 256 * 1024;

/// One origin request in flight for a key.
#[derive(Default)]
pub struct Flight {
    state: Mutex<FlightState>,
    notify: tokio::sync::Notify,
    /// The purge generation its leader's request captured: what the flight
    /// delivers is current as of then.
    since: Generation,
    /// The key the leader stores its answer under, when its `Vary` selects
    /// one: a follower shares the streaming answer when its own request
    /// selects the same ([`FlightGuard::select`]).
    selected: std::sync::OnceLock<String>,
}

impl Flight {
    /// The object key the leader's answer is stored under, once it has said.
    pub fn selected(&self) -> Option<&str> {
        self.selected.get().map(String::as_str)
    }

    /// The purge generation the leader's request captured.
    pub fn since(&self) -> Generation {
        self.since
    }

    /// Whether its body goes to disk only (an object above
    /// `--memory-object-max`), written to its cache file as it arrives.
    pub fn spills(&self) -> bool {
        self.lock().spill.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FlightState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the leader's outcome.
    pub async fn wait(&self) -> Outcome {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(outcome) = self.lock().outcome.clone() {
                return outcome;
            }
            notified.await;
        }
    }

    /// The body as it arrives: every byte received so far, then the rest as it
    /// comes; ends when the fill completes, fails when it fails.
    pub fn subscribe(self: &Arc<Self>) -> BodyStream {
        let start = (Some(self.clone()), 0u64);
        Box::pin(futures_util::stream::unfold(
            start,
            |(flight, pos)| async move {
                let flight = flight?;
                loop {
                    let step = {
                        let notified = flight.notify.notified();
                        tokio::pin!(notified);
                        notified.as_mut().enable();
                        let step = flight.lock().step(pos);
                        if matches!(step, Step::Wait) {
                            notified.await;
                            continue;
                        }
                        step
                    };
                    let chunk = match step {
                        Step::Wait => continue,
                        Step::End => return None,
                        Step::Fail(e) => return Some((Err(e), (None, pos))),
                        Step::Chunk(chunk) => Ok(chunk),
                        Step::Read(reader, len) => {
                            tokio::task::spawn_blocking(move || reader.read(pos, len as usize))
                                .await
                                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                                .map_err(|e| {
                                    OriginError::Invalid(format!("cache fill unreadable: {e}"))
                                })
                        }
                    };
                    return match chunk {
                        Ok(chunk) => {
                            let next = pos + chunk.len() as u64;
                            Some((Ok(chunk), (Some(flight), next)))
                        }
                        Err(e) => Some((Err(e), (None, pos))),
                    };
                }
            },
        ))
    }
}

impl FlightState {
    /// What a subscriber at body offset `pos` does next.
    fn step(&self, pos: u64) -> Step {
        if pos < self.spilled {
            if let Some(reader) = &self.spill {
                return Step::Read(reader.clone(), (self.spilled - pos).min(SPILL_READ));
            }
        }
        if pos < self.received {
            let index = self.chunks.partition_point(|(start, _)| *start <= pos);
            if let Some((start, chunk)) = index.checked_sub(1).and_then(|i| self.chunks.get(i)) {
                return Step::Chunk(chunk.slice((pos - start) as usize..));
            }
        }
        match &self.finished {
            Some(Ok(())) => Step::End,
            Some(Err(e)) => Step::Fail(e.clone()),
            None => Step::Wait,
        }
    }
}

/// What a subscriber does next.
enum Step {
    Chunk(Bytes),
    /// Read up to this many bytes from the spill file.
    Read(SpillReader, u64),
    End,
    Fail(OriginError),
    Wait,
}

type Inflight = Arc<Mutex<HashMap<CacheKey, Arc<Flight>>>>;

/// The flights in progress, by key.
#[derive(Default)]
pub struct Coalescer {
    inflight: Inflight,
}

/// Whether a request leads the fill for its key or follows another's.
pub enum Role {
    Leader(FlightGuard),
    Follower(Arc<Flight>),
}

impl Coalescer {
    /// Joins the flight for `key`, starting it (as of purge generation
    /// `since`) when there is none, or when the one in flight is `outdated`:
    /// it began before a purge that covers its key, so what it delivers may
    /// be what the purge removed (a variant made from what a request read
    /// before the purge). That flight goes on for those who joined it.
    pub fn join(
        &self,
        key: &CacheKey,
        since: Generation,
        outdated: &dyn Fn(&CacheKey, Generation) -> bool,
    ) -> Role {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flight) = joinable(&inflight, key, outdated) {
            return Role::Follower(flight.clone());
        }
        let flight = Arc::new(Flight {
            since,
            ..Flight::default()
        });
        inflight.insert(key.clone(), flight.clone());
        Role::Leader(FlightGuard {
            inflight: self.inflight.clone(),
            key: key.clone(),
            flight,
        })
    }

    /// Detaches the flights of `site` whose object keys match (a purge): they
    /// go on for the requests that joined them, and later requests start
    /// flights of their own.
    pub fn detach(&self, site: &str, matches: &dyn Fn(&str) -> bool) {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| !(key.site == site && matches(&key.object_key)));
    }

    /// The flight [`Coalescer::join`] would join for `key`, if one is in
    /// progress (and not `outdated`), without joining or starting one.
    pub fn flight(
        &self,
        key: &CacheKey,
        outdated: &dyn Fn(&CacheKey, Generation) -> bool,
    ) -> Option<Arc<Flight>> {
        let inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        joinable(&inflight, key, outdated).cloned()
    }

    /// Flights in progress (tests, metrics).
    pub fn len(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The flight in progress for `key` that a request may join: one that did
/// not begin before a purge covering it.
fn joinable<'a>(
    inflight: &'a HashMap<CacheKey, Arc<Flight>>,
    key: &CacheKey,
    outdated: &dyn Fn(&CacheKey, Generation) -> bool,
) -> Option<&'a Arc<Flight>> {
    inflight
        .get(key)
        .filter(|flight| !outdated(key, flight.since))
}

/// The leader's hold on a flight. Dropping it without an outcome releases the
/// followers with `Retry`; dropping it mid-body fails their streams.
pub struct FlightGuard {
    inflight: Inflight,
    key: CacheKey,
    flight: Arc<Flight>,
}

impl FlightGuard {
    /// Says which object key the answer about to stream is stored under
    /// (before [`FlightGuard::publish`]).
    pub fn select(&self, object_key: &str) {
        let _ = self.flight.selected.set(object_key.to_string());
    }

    /// Tells the followers what happened. A `Streaming` outcome keeps the flight
    /// open for the body; any other ends it.
    pub fn publish(&self, outcome: Outcome) {
        let streaming = matches!(outcome, Outcome::Streaming(_));
        self.flight.lock().outcome = Some(outcome);
        if !streaming {
            self.leave();
        }
        self.flight.notify.notify_waiters();
    }

    /// A body chunk for the followers, held in memory.
    pub fn push(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        {
            let mut state = self.flight.lock();
            let at = state.received;
            state.received += chunk.len() as u64;
            state.chunks.push((at, chunk));
        }
        self.flight.notify.notify_waiters();
    }

    /// Spill mode: the body is written to this file; call before publishing.
    pub fn spill_to(&self, reader: SpillReader) {
        self.flight.lock().spill = Some(reader);
    }

    /// `len` more body bytes are in the spill file (and no chunk has been
    /// pushed: spilling stops at the first push).
    pub fn spilled(&self, len: u64) {
        {
            let mut state = self.flight.lock();
            if state.chunks.is_empty() {
                state.spilled += len;
                state.received += len;
            }
        }
        self.flight.notify.notify_waiters();
    }

    /// The body is complete (and stored) or has failed.
    pub fn finish(self, result: Result<(), OriginError>) {
        self.flight.lock().finished = Some(result);
        self.leave();
        self.flight.notify.notify_waiters();
    }

    /// The key this flight fills.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// The leader's own view of the body.
    pub fn subscribe(&self) -> BodyStream {
        self.flight.subscribe()
    }

    fn leave(&self) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if inflight
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            inflight.remove(&self.key);
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        {
            let mut state = self.flight.lock();
            match state.outcome {
                None => state.outcome = Some(Outcome::Retry),
                // `Retry` too: a leader streams an answer it shares with no
                // one (fresh for no time) through its flight all the same.
                Some(Outcome::Streaming(_) | Outcome::Retry) if state.finished.is_none() => {
                    state.finished =
                        Some(Err(OriginError::Invalid("the fill was abandoned".into())));
                }
                _ => {}
            }
        }
        self.leave();
        self.flight.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Variant;
    use futures_util::StreamExt;

    fn key() -> CacheKey {
        CacheKey::new("s", "k", Variant::Identity)
    }

    #[test]
    fn a_flight_is_found_as_join_would_find_it_and_says_whether_it_spills() {
        let coalescer = Coalescer::default();
        assert!(coalescer.flight(&key(), &|_, _| false).is_none());
        let Role::Leader(guard) = coalescer.join(&key(), 0, &|_, _| false) else {
            panic!("leader")
        };
        let flight = coalescer.flight(&key(), &|_, _| false).expect("in flight");
        assert!(Arc::ptr_eq(&flight, &guard.flight));
        assert!(
            coalescer.flight(&key(), &|_, _| true).is_none(),
            "an outdated flight is not one to join"
        );
        // In memory until the leader sends the body to disk.
        assert!(!flight.spills());
        let dir = tempfile::tempdir().unwrap();
        let disk = Arc::new(crate::cache::DiskTier::open(dir.path(), 1 << 30).unwrap());
        guard.spill_to(disk.writer(&key()).expect("a writer").reader());
        assert!(flight.spills());
        drop(guard);
        assert!(coalescer.flight(&key(), &|_, _| false).is_none(), "ended");
    }

    #[actix_rt::test]
    async fn the_first_request_leads_and_the_others_follow_until_it_ends() {
        let coalescer = Coalescer::default();
        let Role::Leader(guard) = coalescer.join(&key(), 0, &|_, _| false) else {
            panic!("leader")
        };
        let Role::Follower(flight) = coalescer.join(&key(), 0, &|_, _| false) else {
            panic!("follower")
        };
        guard.publish(Outcome::Streaming(Arc::new(ObjectMeta::default())));
        let mut body = flight.subscribe();
        guard.push(Bytes::from_static(b"ab"));
        assert_eq!(body.next().await.unwrap().unwrap(), "ab");
        guard.push(Bytes::from_static(b"cd"));
        guard.finish(Ok(()));
        assert_eq!(body.next().await.unwrap().unwrap(), "cd");
        assert!(body.next().await.is_none());
        assert!(matches!(
            coalescer.join(&key(), 0, &|_, _| false),
            Role::Leader(_)
        ));
    }

    #[actix_rt::test]
    async fn an_outdated_flight_is_not_joined_and_a_detached_one_is_not_found() {
        let coalescer = Coalescer::default();
        let Role::Leader(old) = coalescer.join(&key(), 0, &|_, _| false) else {
            panic!("leader")
        };
        // A purge after generation 0 covers the key: a new flight starts.
        let Role::Leader(new) = coalescer.join(&key(), 1, &|_, since| since < 1) else {
            panic!("an outdated flight was joined")
        };
        assert!(matches!(
            coalescer.join(&key(), 1, &|_, since| since < 1),
            Role::Follower(_)
        ));
        // The old leader ending does not end the new flight.
        old.finish(Ok(()));
        assert!(matches!(
            coalescer.join(&key(), 1, &|_, _| false),
            Role::Follower(_)
        ));
        coalescer.detach("s", &|k| k == "k");
        assert!(matches!(
            coalescer.join(&key(), 2, &|_, _| false),
            Role::Leader(_)
        ));
        drop(new);
    }

    #[actix_rt::test]
    async fn a_leader_dropped_before_publishing_releases_its_followers_with_retry() {
        let coalescer = Coalescer::default();
        let Role::Leader(guard) = coalescer.join(&key(), 0, &|_, _| false) else {
            panic!("leader")
        };
        let Role::Follower(flight) = coalescer.join(&key(), 0, &|_, _| false) else {
            panic!("follower")
        };
        let waiter = tokio::spawn(async move { flight.wait().await });
        drop(guard);
        assert!(matches!(waiter.await.unwrap(), Outcome::Retry));
        assert!(coalescer.is_empty());
    }

    #[actix_rt::test]
    async fn a_fill_abandoned_mid_body_fails_the_followers_streams() {
        let coalescer = Coalescer::default();
        let Role::Leader(guard) = coalescer.join(&key(), 0, &|_, _| false) else {
            panic!("leader")
        };
        let Role::Follower(flight) = coalescer.join(&key(), 0, &|_, _| false) else {
            panic!("follower")
        };
        guard.publish(Outcome::Streaming(Arc::new(ObjectMeta::default())));
        guard.push(Bytes::from_static(b"partial"));
        drop(guard);
        let mut body = flight.subscribe();
        assert!(body.next().await.unwrap().is_ok());
        assert!(body.next().await.unwrap().is_err());
    }
}
