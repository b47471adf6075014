//! Stage 5: the cache in front of the origin. Fresh entries are served as they
//! are; stale ones are revalidated with a conditional GET (304 refreshes them),
//! served at once while one background refresh runs (stale-while-revalidate), or
//! served when the origin fails (stale-if-error); misses are filled once per key
//! however many requests wait, and streamed to all of them as they arrive.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};

use super::object::Fetch;
use crate::cache::fill::Outcome;
use crate::cache::policy::{self, Storable};
use crate::cache::{
    Body, Cache, CacheKey, DiskWriter, Entry, EntryKind, FlightGuard, Role, State, Variant,
};
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
        let cached = self.cached(object_key).await;
        self.fetch_from(object_key, cached).await
    }

    /// [`fetch`](Self::fetch) when the cache has already been looked up (a
    /// disk-tier entry is not opened and read twice).
    pub async fn fetch_from(&self, object_key: &str, cached: Option<Arc<Entry>>) -> Answer {
        let now = SystemTime::now();
        let answer = match cached {
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
                            file: None,
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
                file: None,
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
            Ok(Fetched::Object { meta, body }) => {
                self.store_streaming(guard, meta, body, now).await
            }
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
                    body: Body::empty(),
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

    /// A 200 from the origin: when it may be stored, the body is pulled by a
    /// task of its own into the flight (so a client that goes away does not
    /// stop the fill) and every waiter streams from there: from memory when it
    /// fits the memory tier, else from its disk file as it is written. The
    /// entry is stored only when complete. Otherwise it passes through.
    async fn store_streaming(
        &self,
        guard: FlightGuard,
        meta: ObjectMeta,
        body: BodyStream,
        now: SystemTime,
    ) -> (Result<Fetch, OriginError>, CacheOutcome) {
        let storable = match policy::storable(&meta, &self.site.config.cache, now) {
            Storable::Yes(f) if self.cache.can_store(meta.content_length) => Some(f),
            _ => None,
        };
        let writer = match storable {
            Some(_) if meta.content_length > self.cache.memory_object_max => {
                self.cache
                    .disk_writer(guard.key(), meta.content_length)
                    .await
            }
            _ => None,
        };
        let freshness = match storable {
            Some(f) if writer.is_some() || meta.content_length <= self.cache.memory_object_max => f,
            _ => {
                guard.publish(Outcome::Retry);
                let fetch = Fetch {
                    meta,
                    body,
                    origin_range: None,
                    age: None,
                    length_unknown: false,
                    file: None,
                };
                return (Ok(fetch), CacheOutcome::Miss { stored: false });
            }
        };
        if let Some(writer) = &writer {
            guard.spill_to(writer.reader());
        }
        guard.publish(Outcome::Streaming(Arc::new(meta.clone())));
        let subscriber = guard.subscribe();
        let entry = Entry {
            key: self.key(&guard_key(&guard)),
            kind: EntryKind::Object,
            meta: meta.clone(),
            body: Body::empty(),
            stored_at: now,
            freshness,
        };
        match writer {
            Some(writer) => tokio::spawn(pull_to_disk(guard, body, entry, writer)),
            None => tokio::spawn(pull_body(guard, body, entry, self.cache.clone())),
        };
        let fetch = Fetch {
            meta,
            body: subscriber,
            origin_range: None,
            age: None,
            length_unknown: false,
            file: None,
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
    entry.body = Body::from_chunks(&chunks);
    cache.insert(entry);
    guard.finish(Ok(()));
}

/// Most bytes gathered from the origin for one write to a spill file.
const SPILL_BATCH: usize = 1 << 20;

/// Pulls an origin body into its disk file as it arrives (followers read it
/// from there) and stores the entry when complete and exactly as long as
/// announced. Each write takes what the origin has sent so far (up to
/// [`SPILL_BATCH`]), so a slow origin's bytes are not held back. Should the
/// disk fail (it is then turned off), the rest of the body reaches the
/// followers from memory and nothing is stored.
async fn pull_to_disk(guard: FlightGuard, mut body: BodyStream, entry: Entry, writer: DiskWriter) {
    let expected = entry.meta.content_length;
    let mut writer = Some(writer);
    let mut received = 0u64;
    let mut ended = false;
    while !ended {
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batched = 0usize;
        let mut next = body.next().await;
        loop {
            match next {
                Some(Ok(chunk)) => {
                    received += chunk.len() as u64;
                    batched += chunk.len();
                    batch.push(chunk);
                }
                Some(Err(e)) => {
                    guard.finish(Err(e));
                    return;
                }
                None => ended = true,
            }
            if received > expected {
                guard.finish(Err(OriginError::Invalid(format!(
                    "body longer than its Content-Length {expected}"
                ))));
                return;
            }
            if ended || batched >= SPILL_BATCH {
                break;
            }
            match body.next().now_or_never() {
                Some(item) => next = item,
                None => break,
            }
        }
        writer = match writer.take() {
            Some(writer) => match spill(&guard, writer, batch).await {
                Ok(writer) => writer,
                Err(e) => {
                    guard.finish(Err(e));
                    return;
                }
            },
            None => {
                batch.into_iter().for_each(|c| guard.push(c));
                None
            }
        };
    }
    if received != expected {
        guard.finish(Err(OriginError::Invalid(format!(
            "body cut short after {received} of {expected} bytes"
        ))));
        return;
    }
    if let Some(writer) = writer {
        // An error here turns the disk tier off and stores nothing; the body
        // itself is complete for everyone reading it.
        let _ = tokio::task::spawn_blocking(move || writer.finish(&entry)).await;
    }
    guard.finish(Ok(()));
}

/// Writes `chunks` to the spill file and tells the followers. On a write
/// error the chunks go to the followers from memory and the writer is dropped
/// (its file removed): `Ok(None)`.
async fn spill(
    guard: &FlightGuard,
    writer: DiskWriter,
    chunks: Vec<Bytes>,
) -> Result<Option<DiskWriter>, OriginError> {
    let written = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        let result = chunks.iter().try_for_each(|c| writer.append(c));
        (writer, result, chunks)
    })
    .await
    .map_err(|e| OriginError::Invalid(format!("a cache fill's disk write failed: {e}")))?;
    match written {
        (writer, Ok(()), chunks) => {
            guard.spilled(chunks.iter().map(|c| c.len() as u64).sum());
            Ok(Some(writer))
        }
        (_, Err(_), chunks) => {
            chunks.into_iter().for_each(|c| guard.push(c));
            Ok(None)
        }
    }
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
    let (body, file): (BodyStream, _) = match &entry.body {
        Body::Memory(chunks) => {
            let chunks: Vec<Result<Bytes, OriginError>> = chunks.iter().cloned().map(Ok).collect();
            (Box::pin(futures_util::stream::iter(chunks)), None)
        }
        Body::Disk(file) => (file.stream(0, file.len()), Some(file.clone())),
    };
    Ok(Fetch {
        meta: entry.meta.clone(),
        body,
        origin_range: None,
        age: Some(entry.age(now)),
        length_unknown: false,
        file,
    })
}
