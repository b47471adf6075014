//! Stage 5: the cache in front of the origin. Fresh entries are served as they
//! are; stale ones are revalidated with a conditional GET (304 refreshes them),
//! served at once while one background refresh runs (stale-while-revalidate), or
//! served when the origin fails (stale-if-error); misses are filled once per key
//! however many requests wait, and streamed to all of them as they arrive.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;

use super::object::Fetch;
use crate::cache::fill::Outcome;
use crate::cache::policy::{self, Storable};
use crate::cache::{Cache, CacheKey, Entry, EntryKind, FlightGuard, Role, State, Variant};
use crate::metrics::Metrics;
use crate::origin::{BodyStream, Fetched, ObjectMeta, ObjectRequest, OriginError};
use crate::site::Site;

/// What the cache did for a request (access log, metrics, `Cache-Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Not looked up (a ranged miss passed through, or no lookup happened).
    Pass,
    /// Served from a fresh entry.
    Hit,
    /// Fetched from the origin; `stored` when it entered the cache.
    Miss { stored: bool },
    /// Served stale within stale-while-revalidate, refreshed in the background.
    Stale,
    /// Served stale because the origin failed (stale-if-error).
    StaleIfError,
    /// A stale entry confirmed by a 304.
    Revalidated,
}

impl CacheOutcome {
    /// The label for logs and `s3edge_cache_lookups_total{result}`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Pass => "pass",
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss { .. } => "miss",
            CacheOutcome::Stale | CacheOutcome::StaleIfError => "stale",
            CacheOutcome::Revalidated => "revalidated",
        }
    }

    /// The `Cache-Status` value (RFC 9211).
    pub fn cache_status(self) -> &'static str {
        match self {
            CacheOutcome::Pass => "s3edge; fwd=bypass",
            CacheOutcome::Hit => "s3edge; hit",
            CacheOutcome::Miss { stored: true } => "s3edge; fwd=miss; stored",
            CacheOutcome::Miss { stored: false } => "s3edge; fwd=miss",
            CacheOutcome::Stale => "s3edge; hit; detail=stale-while-revalidate",
            CacheOutcome::StaleIfError => "s3edge; fwd=stale; detail=stale-if-error",
            CacheOutcome::Revalidated => "s3edge; fwd=stale; fwd-status=304",
        }
    }
}

/// Everything a fetch needs, cheap to clone into background refreshes.
#[derive(Clone)]
pub(super) struct Fetcher {
    pub cache: Arc<Cache>,
    pub metrics: Arc<Metrics>,
    pub site: Arc<Site>,
}

/// An origin answer, with the request id for the access log.
pub(super) struct Answer {
    pub result: Result<Fetch, OriginError>,
    pub outcome: CacheOutcome,
    pub request_id: Option<String>,
}

impl Fetcher {
    /// One origin GET, timed and counted.
    pub async fn origin_get(
        &self,
        request: &ObjectRequest,
    ) -> (Result<Fetched, OriginError>, Option<String>) {
        let started = Instant::now();
        let result = self.site.origin.get(request).await;
        let (outcome, request_id) = match &result {
            Ok(Fetched::Object { meta, .. }) => ("ok", meta.request_id.clone()),
            Ok(Fetched::NotModified { meta }) => ("not_modified", meta.request_id.clone()),
            Err(e) => (e.outcome(), e.request_id().map(str::to_string)),
        };
        self.count_origin(started, outcome);
        (result, request_id)
    }

    pub fn count_origin(&self, started: Instant, outcome: &str) {
        self.metrics.origin_duration.observe(started.elapsed());
        self.metrics
            .origin_requests
            .inc(&[self.site.name(), outcome]);
    }

    fn key(&self, object_key: &str) -> CacheKey {
        CacheKey::new(self.site.name(), object_key, Variant::Identity)
    }

    /// The cached entry for `object_key`, if any (counted as a lookup by the caller).
    pub async fn cached(&self, object_key: &str) -> Option<Arc<Entry>> {
        self.cache.get(&self.key(object_key)).await
    }

    /// Fetches the whole object through the cache.
    pub async fn fetch(&self, object_key: &str) -> Answer {
        let now = SystemTime::now();
        let answer = match self.cached(object_key).await {
            Some(entry) => match entry.state(now) {
                State::Fresh => Answer {
                    result: serve_entry(&entry, now),
                    outcome: CacheOutcome::Hit,
                    request_id: None,
                },
                State::StaleWhileRevalidate => {
                    self.refresh_in_background(entry.clone());
                    Answer {
                        result: serve_entry(&entry, now),
                        outcome: CacheOutcome::Stale,
                        request_id: None,
                    }
                }
                State::Stale { .. } => self.fill(object_key, Some(entry)).await,
            },
            None => self.fill(object_key, None).await,
        };
        self.metrics
            .cache_lookups
            .inc(&[self.site.name(), answer.outcome.as_str()]);
        answer
    }

    /// Fetches through the cache for a secondary object (a sidecar), without
    /// counting a lookup of its own.
    pub async fn fetch_quietly(&self, object_key: &str) -> Result<Fetch, OriginError> {
        let now = SystemTime::now();
        match self.cached(object_key).await {
            Some(entry)
                if matches!(entry.state(now), State::Fresh | State::StaleWhileRevalidate) =>
            {
                serve_entry(&entry, now)
            }
            stale => self.fill(object_key, stale).await.result,
        }
    }

    /// Starts a background revalidation of `stale`, unless one runs already.
    fn refresh_in_background(&self, stale: Arc<Entry>) {
        let Role::Leader(guard) = self.cache.coalescer.join(&stale.key) else {
            return;
        };
        let fetcher = self.clone();
        tokio::spawn(async move {
            let key = stale.key.object_key.clone();
            let answer = fetcher.lead(guard, &key, Some(stale)).await;
            if let Ok(fetch) = answer.result {
                // Drain a replaced body so the fill completes.
                let mut body = fetch.body;
                while body.next().await.is_some() {}
            }
        });
    }

    /// A coalesced origin fetch: the first request leads, the others follow.
    async fn fill(&self, object_key: &str, stale: Option<Arc<Entry>>) -> Answer {
        let key = self.key(object_key);
        match self.cache.coalescer.join(&key) {
            Role::Leader(guard) => self.lead(guard, object_key, stale).await,
            Role::Follower(flight) => {
                self.metrics.coalesced_requests.inc(&[self.site.name()]);
                let now = SystemTime::now();
                match flight.wait().await {
                    Outcome::Entry(entry) => Answer {
                        result: serve_entry(&entry, now),
                        outcome: CacheOutcome::Hit,
                        request_id: None,
                    },
                    Outcome::Streaming(meta) => Answer {
                        result: Ok(Fetch {
                            meta: ObjectMeta::clone(&meta),
                            body: flight.subscribe(),
                            origin_range: None,
                            age: None,
                            length_unknown: false,
                        }),
                        outcome: CacheOutcome::Hit,
                        request_id: None,
                    },
                    Outcome::Failed(e) => match stale {
                        Some(entry) if stale_if_error(&entry, now) => Answer {
                            result: serve_entry(&entry, now),
                            outcome: CacheOutcome::StaleIfError,
                            request_id: None,
                        },
                        _ => Answer {
                            result: Err(e),
                            outcome: CacheOutcome::Miss { stored: false },
                            request_id: None,
                        },
                    },
                    Outcome::Retry => self.direct(object_key).await,
                }
            }
        }
    }

    /// An uncoalesced, uncached fetch (the leader had nothing to share).
    async fn direct(&self, object_key: &str) -> Answer {
        let (result, request_id) = self.origin_get(&ObjectRequest::new(object_key)).await;
        let result = match result {
            Ok(Fetched::Object { meta, body }) => Ok(Fetch {
                meta,
                body,
                origin_range: None,
                age: None,
                length_unknown: false,
            }),
            Ok(Fetched::NotModified { .. }) => {
                Err(OriginError::Invalid("304 to an unconditional GET".into()))
            }
            Err(e) => Err(e),
        };
        Answer {
            result,
            outcome: CacheOutcome::Miss { stored: false },
            request_id,
        }
    }

    /// The leader's fetch: a conditional GET when a stale entry exists, then the
    /// outcome published to the followers and the cache filled.
    async fn lead(
        &self,
        guard: FlightGuard,
        object_key: &str,
        stale: Option<Arc<Entry>>,
    ) -> Answer {
        let mut request = ObjectRequest::new(object_key);
        if let Some(entry) = stale.as_ref().filter(|e| e.kind == EntryKind::Object) {
            request.if_none_match.clone_from(&entry.meta.etag);
            if request.if_none_match.is_none() {
                request.if_modified_since = entry.meta.last_modified;
            }
        }
        let (result, request_id) = self.origin_get(&request).await;
        let now = SystemTime::now();
        let config = &self.site.config.cache;
        let (result, outcome) = match result {
            Ok(Fetched::NotModified { meta }) => match stale {
                Some(entry) => {
                    let mut merged = entry.meta.clone();
                    if meta.cache_control.is_some() {
                        merged.cache_control.clone_from(&meta.cache_control);
                    }
                    let freshness = match policy::storable(&merged, config, now) {
                        Storable::Yes(f) => f,
                        Storable::No => policy::Freshness {
                            ttl: Duration::ZERO,
                            stale_while_revalidate: Duration::ZERO,
                            stale_if_error: Duration::ZERO,
                        },
                    };
                    let entry = self.cache.insert(entry.refreshed(now, freshness, &meta));
                    guard.publish(Outcome::Entry(entry.clone()));
                    (serve_entry(&entry, now), CacheOutcome::Revalidated)
                }
                None => {
                    guard.publish(Outcome::Retry);
                    (
                        Err(OriginError::Invalid("304 to an unconditional GET".into())),
                        CacheOutcome::Miss { stored: false },
                    )
                }
            },
            Ok(Fetched::Object { meta, body }) => self.store_streaming(guard, meta, body, now),
            Err(e @ (OriginError::NotFound { .. } | OriginError::Denied { .. })) => {
                let kind = if matches!(e, OriginError::NotFound { .. }) {
                    EntryKind::NotFound
                } else {
                    EntryKind::Denied
                };
                let entry = self.cache.insert(Entry {
                    key: self.key(object_key),
                    kind,
                    meta: ObjectMeta::default(),
                    body: Arc::from(Vec::new()),
                    stored_at: now,
                    freshness: policy::negative(config),
                });
                guard.publish(Outcome::Entry(entry));
                (Err(e), CacheOutcome::Miss { stored: true })
            }
            Err(e) => match stale {
                Some(entry) if stale_if_error(&entry, now) => {
                    tracing::warn!(
                        site = self.site.name(),
                        key = object_key,
                        "serving stale: {e}"
                    );
                    guard.publish(Outcome::Entry(entry.clone()));
                    (serve_entry(&entry, now), CacheOutcome::StaleIfError)
                }
                _ => {
                    guard.publish(Outcome::Failed(e.clone()));
                    (Err(e), CacheOutcome::Miss { stored: false })
                }
            },
        };
        Answer {
            result,
            outcome,
            request_id,
        }
    }

    /// A 200 from the origin: when it may be stored and fits the memory tier,
    /// the body is pulled by a task of its own into the flight (so a client that
    /// goes away does not stop the fill) and every waiter streams from there;
    /// the entry is stored only when complete. Otherwise it passes through.
    fn store_streaming(
        &self,
        guard: FlightGuard,
        meta: ObjectMeta,
        body: BodyStream,
        now: SystemTime,
    ) -> (Result<Fetch, OriginError>, CacheOutcome) {
        let freshness = match policy::storable(&meta, &self.site.config.cache, now) {
            Storable::Yes(f) if meta.content_length <= self.cache.memory_object_max => f,
            _ => {
                guard.publish(Outcome::Retry);
                let fetch = Fetch {
                    meta,
                    body,
                    origin_range: None,
                    age: None,
                    length_unknown: false,
                };
                return (Ok(fetch), CacheOutcome::Miss { stored: false });
            }
        };
        guard.publish(Outcome::Streaming(Arc::new(meta.clone())));
        let subscriber = guard.subscribe();
        let entry = Entry {
            key: self.key(&guard_key(&guard)),
            kind: EntryKind::Object,
            meta: meta.clone(),
            body: Arc::from(Vec::new()),
            stored_at: now,
            freshness,
        };
        tokio::spawn(pull_body(guard, body, entry, self.cache.clone()));
        let fetch = Fetch {
            meta,
            body: subscriber,
            origin_range: None,
            age: None,
            length_unknown: false,
        };
        (Ok(fetch), CacheOutcome::Miss { stored: true })
    }
}

fn guard_key(guard: &FlightGuard) -> String {
    guard.key().object_key.clone()
}

/// Pulls an origin body into a flight and stores it when complete and exactly
/// as long as announced; anything else stores nothing.
async fn pull_body(guard: FlightGuard, mut body: BodyStream, mut entry: Entry, cache: Arc<Cache>) {
    let expected = entry.meta.content_length;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                received += chunk.len() as u64;
                if received > expected {
                    guard.finish(Err(OriginError::Invalid(format!(
                        "body longer than its Content-Length {expected}"
                    ))));
                    return;
                }
                chunks.push(chunk.clone());
                guard.push(chunk);
            }
            Err(e) => {
                guard.finish(Err(e));
                return;
            }
        }
    }
    if received != expected {
        guard.finish(Err(OriginError::Invalid(format!(
            "body cut short after {received} of {expected} bytes"
        ))));
        return;
    }
    entry.body = Arc::from(crate::cache::rechunk(&chunks));
    cache.insert(entry);
    guard.finish(Ok(()));
}

fn stale_if_error(entry: &Entry, now: SystemTime) -> bool {
    matches!(
        entry.state(now),
        State::Stale {
            within_stale_if_error: true
        } | State::StaleWhileRevalidate
    )
}

/// A cached entry as a fetch (404 and 403 entries as their errors).
pub(super) fn serve_entry(entry: &Entry, now: SystemTime) -> Result<Fetch, OriginError> {
    match entry.kind {
        EntryKind::NotFound => return Err(OriginError::NotFound { request_id: None }),
        EntryKind::Denied => return Err(OriginError::Denied { request_id: None }),
        EntryKind::Object => {}
    }
    let chunks: Vec<Result<Bytes, OriginError>> = entry.body.iter().cloned().map(Ok).collect();
    Ok(Fetch {
        meta: entry.meta.clone(),
        body: Box::pin(futures_util::stream::iter(chunks)),
        origin_range: None,
        age: Some(entry.age(now)),
        length_unknown: false,
    })
}
