//! Read-through: [`Cache::fetch`], the one way anything is read from a site's
//! origin. Fresh entries are served as they are; stale ones are revalidated
//! with a conditional GET (a 304 refreshes them, its fields merged as RFC 9111
//! section 4.3.4 says), served at once while one background refresh runs
//! (stale-while-revalidate), or served when the origin fails
//! (stale-if-error); misses are filled once per key however many requests
//! wait, and streamed to all of them as they arrive. 404 and 403 answers,
//! the directory probe's included, are cached for `error_ttl`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::fill::{Flight, Outcome};
use super::policy::{self, Storable};
use super::pull::{pull, Pulled, Sink};
use super::{
    Body, Cache, CacheKey, DiskBody, Entry, EntryKind, FlightGuard, Generation, Prepared, Role,
};
use super::{State, Ticket, Variant};
use crate::compress::ContentCoding;
use crate::http::conditional::{self, Validators};
use crate::http::range::{self, ByteRange};
use crate::origin::{BodyStream, Fetched, ObjectMeta, ObjectRequest, OriginError};
use crate::site::Site;

/// What is read, for which site.
pub struct Request<'a> {
    pub site: &'a Arc<Site>,
    /// The full object key (the site's prefix included).
    pub object_key: &'a str,
    pub want: Want,
    /// An HTTP origin's site: the request's end-to-end header fields, which
    /// its origin gets and `Vary` selects by (empty for a bucket).
    pub forward: &'a [(String, String)],
    /// How the client's connection takes a body: decides the form a
    /// disk-tier hit is served in.
    pub wire: Wire,
}

/// How a response body reaches the client's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// From s3edge's memory (TLS, HTTP/2, another node): a disk-tier hit
    /// small enough is loaded whole and promoted to the memory tier.
    Memory,
    /// Straight from a file by the kernel (`sendfile` on plain HTTP/1), on a
    /// connection whose congestion control paces its sends (BBR): a disk-tier
    /// hit stays in its file and is not promoted; a span of it of up to
    /// [`SEND_FROM_FILE_MAX`] bytes goes by `sendfile`, a longer one is read
    /// block by block and copied, which pacing slows less. A memory-tier hit
    /// of [`PREFER_FILE_MIN`] to [`SEND_FROM_FILE_MAX`] bytes is sent from
    /// its disk-tier file when it has one (docs/PERFORMANCE.md).
    ///
    /// Disk hits are not promoted because, in a working set larger than
    /// memory, loading each large one churned the memory tier: every load
    /// copied the body into new pages and evicted smaller entries, which then
    /// came from their files too (the working set of `benches/workingset.sh`,
    /// two nodes interleaved, pinned: 1.10 times the requests per second
    /// without it, 2026-11-30).
    ///
    /// [`SEND_FROM_FILE_MAX`]: super::SEND_FROM_FILE_MAX
    /// [`PREFER_FILE_MIN`]: super::PREFER_FILE_MIN
    PacedFile,
    /// Straight from a file by the kernel on a connection that is not paced
    /// (CUBIC, Reno: the Linux default): every disk-tier hit stays in its
    /// file and goes by `sendfile`, whatever its size, and a memory-tier hit
    /// of [`PREFER_FILE_MIN`] bytes or more is sent from its disk-tier file
    /// when it has one; there `sendfile` beat the copies at every size
    /// measured.
    ///
    /// [`PREFER_FILE_MIN`]: super::PREFER_FILE_MIN
    File,
}

impl Wire {
    /// Whether a disk-tier hit stays in its file (sent from there, by
    /// `sendfile` or block by block) rather than being loaded and promoted
    /// to the memory tier.
    pub fn keeps_disk_hits_in_file(self) -> bool {
        self != Wire::Memory
    }

    /// Whether a span of `len` bytes of a disk-tier file is sent with
    /// `sendfile`.
    pub fn sends_from_file(self, len: u64) -> bool {
        match self {
            Wire::Memory => false,
            Wire::PacedFile => len <= super::SEND_FROM_FILE_MAX,
            Wire::File => true,
        }
    }

    /// Whether a memory-tier hit of `len` bytes is better sent from its
    /// disk-tier file.
    pub fn prefers_file(self, len: u64) -> bool {
        len >= super::PREFER_FILE_MIN && self.sends_from_file(len)
    }
}

/// What a request wants of an object.
pub enum Want {
    /// The whole object, counted as a cache lookup.
    Object,
    /// One range of it (a `Range` value with one range, and the request's
    /// `If-Range`). When the object is not cached the range alone is asked of
    /// the origin, and the whole object fills the cache in the background
    /// when it fits; an answer that is not the range falls back to the whole.
    /// While the whole object is being filled in memory (or before the origin
    /// has said where its body goes), the range follows that fill.
    Range {
        spec: String,
        if_range: Option<String>,
    },
    /// Whether the object exists (the directory probe): a cached answer,
    /// else the object read through the cache (coalesced and stored; a 404
    /// or 403 cached for `error_ttl`), its body left to the fill.
    Exists,
    /// The `coding` variant of the whole object `identity`: cached, else made
    /// from a precompressed sidecar object (`key.br`, `key.gz`: held only as
    /// the variant made from it, its absence cached) or by compressing
    /// `identity` as it streams, once per key. Always answers: `identity`
    /// itself when no variant can be made.
    Variant {
        identity: Box<Fetch>,
        coding: ContentCoding,
    },
}

/// What the cache did for a request (access log, metrics, `Cache-Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Not looked up (a ranged miss passed through, or no lookup happened).
    Pass,
    /// Served from a fresh entry.
    Hit,
    /// Waited for another request's fetch of the same key and served its
    /// answer (RFC 9211 `collapsed`): no origin request of its own, so
    /// counted as a hit.
    Collapsed,
    /// Fetched from the origin; `stored` when it entered the cache.
    Miss { stored: bool },
    /// Served stale within stale-while-revalidate, refreshed in the background.
    Stale,
    /// Served stale because the request's `max-stale` accepts it (RFC 9111
    /// 5.2.1.2): no refresh.
    StaleAccepted,
    /// Served stale because the origin failed (stale-if-error).
    StaleIfError,
    /// A stale entry confirmed by a 304.
    Revalidated,
    /// A stale entry the origin answered with a new response (a 200, or an
    /// error, to the revalidation); `stored` when it entered the cache.
    /// Counted as a miss.
    Refreshed { stored: bool },
}

impl CacheOutcome {
    /// The label for logs and `s3edge_cache_lookups_total{result}`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Pass => "pass",
            CacheOutcome::Hit | CacheOutcome::Collapsed => "hit",
            CacheOutcome::Miss { .. } | CacheOutcome::Refreshed { .. } => "miss",
            CacheOutcome::Stale | CacheOutcome::StaleAccepted | CacheOutcome::StaleIfError => {
                "stale"
            }
            CacheOutcome::Revalidated => "revalidated",
        }
    }

    /// The `Cache-Status` value (RFC 9211).
    pub fn cache_status(self) -> &'static str {
        match self {
            CacheOutcome::Pass => "s3edge; fwd=bypass",
            CacheOutcome::Hit => "s3edge; hit",
            CacheOutcome::Collapsed => "s3edge; fwd=miss; collapsed",
            CacheOutcome::Miss { stored: true } => "s3edge; fwd=miss; stored",
            CacheOutcome::Miss { stored: false } => "s3edge; fwd=miss",
            CacheOutcome::Stale => "s3edge; hit; detail=stale-while-revalidate",
            CacheOutcome::StaleAccepted => "s3edge; hit; detail=max-stale",
            CacheOutcome::StaleIfError => "s3edge; fwd=stale; detail=stale-if-error",
            CacheOutcome::Revalidated => "s3edge; fwd=stale; fwd-status=304",
            CacheOutcome::Refreshed { stored: true } => "s3edge; fwd=stale; stored",
            CacheOutcome::Refreshed { stored: false } => "s3edge; fwd=stale",
        }
    }

    /// A miss's outcome as it is when the fetch replaced `stale`, an entry
    /// no longer fresh: RFC 9211's `fwd=stale` (the cache had a response,
    /// stale), not `fwd=miss` (it had none).
    pub(super) fn after(self, stale: Option<&Entry>, now: SystemTime) -> CacheOutcome {
        let was_stale = stale.is_some_and(|entry| entry.state(now) != State::Fresh);
        match self {
            CacheOutcome::Miss { stored } if was_stale => CacheOutcome::Refreshed { stored },
            other => other,
        }
    }

    /// How far the request went for it: a read that went to the origin (or
    /// tried to) outranks one that waited for another's, which outranks one
    /// the cache answered alone. A request's `Cache-Status` is its
    /// highest-ranked read's (the latest among equals): a missing page
    /// served with a cached error document went to the bucket.
    pub fn rank(self) -> u8 {
        match self {
            CacheOutcome::Hit | CacheOutcome::Stale | CacheOutcome::StaleAccepted => 0,
            CacheOutcome::Collapsed => 1,
            CacheOutcome::Pass
            | CacheOutcome::Miss { .. }
            | CacheOutcome::Refreshed { .. }
            | CacheOutcome::StaleIfError
            | CacheOutcome::Revalidated => 2,
        }
    }
}

/// The answer to a [`Request`].
pub struct Answer {
    pub result: Result<Fetch, OriginError>,
    pub outcome: CacheOutcome,
    /// The origin's request id, when the origin was asked (access log).
    pub request_id: Option<String>,
}

/// A representation on its way to the client.
pub struct Fetch {
    pub meta: ObjectMeta,
    pub payload: Payload,
    /// How long it has been in the cache, for `Age`; `None` when it comes
    /// straight from the origin.
    pub age: Option<Duration>,
    /// The purge generation it is current as of: what is made from it (an
    /// encoding variant) is committed as of then.
    pub(super) since: Generation,
    /// The entry it is served from, whose hits share what their responses
    /// are made of ([`Fetch::prepared`]).
    pub(crate) entry: Option<Arc<Entry>>,
}

/// The bytes of a [`Fetch`].
pub enum Payload {
    /// The whole representation, `meta.content_length` bytes.
    Stream(BodyStream),
    /// The whole representation in its disk-tier file: a range is read
    /// without reading what comes before it.
    File(Arc<DiskBody>),
    /// Only `range` of a representation of `total` bytes, cut by the origin.
    Range {
        body: BodyStream,
        range: ByteRange,
        total: u64,
    },
    /// Being encoded now: its length is not known until it ends, so it is
    /// sent without `Content-Length` and ranges do not apply.
    Unsized(BodyStream),
}

impl Payload {
    /// The bytes as one stream.
    pub fn into_stream(self) -> BodyStream {
        match self {
            Payload::Stream(body) | Payload::Unsized(body) | Payload::Range { body, .. } => body,
            Payload::File(file) => file.stream(0, file.len()),
        }
    }
}

impl Fetch {
    /// A whole representation straight from the origin.
    pub(super) fn from_origin(meta: ObjectMeta, body: BodyStream, since: Generation) -> Fetch {
        let payload = if meta.streamed {
            Payload::Unsized(body)
        } else {
            Payload::Stream(body)
        };
        Fetch {
            meta,
            payload,
            age: None,
            since,
            entry: None,
        }
    }

    /// What the response for `key` is made of, when this fetch is served
    /// from an entry: the entry's [`Prepared`], made by `make` on its first
    /// hit. `None` for a fetch from the origin (or of another key).
    pub fn prepared(&self, key: &str, make: impl FnOnce() -> Prepared) -> Option<&Prepared> {
        self.entry.as_ref()?.prepared(key, make)
    }
}

impl Answer {
    pub(super) fn new(result: Result<Fetch, OriginError>, outcome: CacheOutcome) -> Answer {
        Answer {
            result,
            outcome,
            request_id: None,
        }
    }
}

/// A cached entry as a fetch (404 and 403 entries as their errors).
pub(super) fn serve_entry(
    entry: &Arc<Entry>,
    now: SystemTime,
    since: Generation,
) -> Result<Fetch, OriginError> {
    match entry.kind {
        EntryKind::NotFound => return Err(OriginError::NotFound { request_id: None }),
        EntryKind::Denied => return Err(OriginError::Denied { request_id: None }),
        EntryKind::Object => {}
    }
    let payload = match &entry.body {
        Body::Memory(chunks) => {
            let chunks: Vec<Result<bytes::Bytes, OriginError>> =
                chunks.iter().cloned().map(Ok).collect();
            Payload::Stream(Box::pin(futures_util::stream::iter(chunks)))
        }
        Body::Disk(file) => Payload::File(file.clone()),
    };
    Ok(Fetch {
        meta: entry.meta.clone(),
        payload,
        age: Some(entry.age(now)),
        since,
        entry: Some(entry.clone()),
    })
}

/// The stale entry may stand in for an origin that failed.
pub(super) fn stale_if_error(entry: &Entry, now: SystemTime) -> bool {
    matches!(
        entry.state(now),
        State::Stale {
            within_stale_if_error: true
        } | State::StaleWhileRevalidate
    )
}

/// Whether an origin's answer to a forwarded range is usable: `Ok(None)`
/// when it sent the whole object (200), the range and complete length when
/// its 206 matches the spec, an error when it does not.
pub(super) fn checked_origin_range(
    spec: &str,
    meta: &ObjectMeta,
) -> Result<Option<(ByteRange, u64)>, OriginError> {
    let Some(content_range) = &meta.content_range else {
        return Ok(None);
    };
    match range::parse_content_range(content_range) {
        Some((r, total))
            if range::spec_selects(spec, r, total) && r.len() == meta.content_length =>
        {
            Ok(Some((r, total)))
        }
        _ => Err(OriginError::Invalid(format!(
            "Content-Range `{content_range}` does not answer `{spec}`"
        ))),
    }
}

impl Cache {
    /// Reads `request` through the cache (the module doc of `cache` gives
    /// the contract).
    pub async fn fetch(self: &Arc<Self>, request: Request<'_>) -> Answer {
        let Request {
            site,
            object_key,
            want,
            forward,
            wire,
        } = request;
        // Every path that may go to the origin before its first await is
        // boxed (here, and in `read`, `range` and `variant`): actix moves
        // the handler's future, whose size is that of its largest path.
        // An HTTP origin's answers (and their variants) are keyed by the
        // scheme and host the origin hears as well.
        let keyed;
        let object_key = if site.config.is_http_origin() {
            keyed = super::shared::keyed_target(object_key, forward);
            match want {
                Want::Object => {
                    return Box::pin(self.shared(site, &keyed, forward, None, None)).await
                }
                Want::Range { spec, if_range } => {
                    let shared =
                        self.shared(site, &keyed, forward, Some(&spec), if_range.as_deref());
                    return Box::pin(shared).await;
                }
                Want::Variant { .. } => keyed.as_str(),
                Want::Exists => object_key,
            }
        } else {
            object_key
        };
        match want {
            Want::Object => self.object(site, object_key, wire).await,
            Want::Range { spec, if_range } => {
                self.range(site, object_key, &spec, if_range.as_deref(), wire)
                    .await
            }
            Want::Exists => Box::pin(self.exists(site, object_key)).await,
            Want::Variant { identity, coding } => {
                self.variant(site, object_key, *identity, coding, forward, wire)
                    .await
            }
        }
    }

    /// The whole object.
    async fn object(self: &Arc<Self>, site: &Arc<Site>, object_key: &str, wire: Wire) -> Answer {
        let ticket = self.ticket_for(site, object_key).await;
        let key = CacheKey::new(site.name(), object_key, Variant::Identity);
        let cached = self.get(&key, &ticket, wire).await;
        self.read(site, key, cached, ticket).await
    }

    /// Serves `cached` when it may be, else fills `key` from the origin.
    async fn read(
        self: &Arc<Self>,
        site: &Arc<Site>,
        key: CacheKey,
        cached: Option<Arc<Entry>>,
        ticket: Ticket,
    ) -> Answer {
        let now = SystemTime::now();
        let since = ticket.since();
        match cached {
            Some(entry) => match entry.state(now) {
                State::Fresh => Answer::new(serve_entry(&entry, now, since), CacheOutcome::Hit),
                State::StaleWhileRevalidate => {
                    self.refresh_in_background(site, entry.clone(), ticket);
                    Answer::new(serve_entry(&entry, now, since), CacheOutcome::Stale)
                }
                // The origin's path is boxed: a hit's future stays small.
                State::Stale { .. } => Box::pin(self.fill(site, key, Some(entry), ticket)).await,
            },
            None => Box::pin(self.fill(site, key, None, ticket)).await,
        }
    }

    /// One range of the object (see [`Want::Range`]).
    async fn range(
        self: &Arc<Self>,
        site: &Arc<Site>,
        object_key: &str,
        spec: &str,
        if_range: Option<&str>,
        wire: Wire,
    ) -> Answer {
        let ticket = self.ticket_for(site, object_key).await;
        let key = CacheKey::new(site.name(), object_key, Variant::Identity);
        let mut cached = self.get(&key, &ticket, wire).await;
        // Not cached: the range alone from the origin, unless a fill of the
        // whole object is under way in memory, whose body the range can
        // follow. One that goes to disk only (a large object) may take long
        // to reach the range (a 1 KB range 400 MB in waited 15 s), so the
        // range is asked of the origin then too (DESIGN.md). Which one a
        // fill is, is known once the origin has answered it: a range that
        // finds a fill still waiting for that answer waits with it.
        if cached.is_none() {
            let follow = match self.flight(&key) {
                Some(flight) => {
                    flight.wait().await;
                    !flight.spills()
                }
                None => false,
            };
            if !follow {
                let forwarded = self.origin_range(site, object_key, spec, if_range, &ticket);
                if let Some(answer) = Box::pin(forwarded).await {
                    return answer;
                }
            }
            // Stored meanwhile (the fill followed may be complete already).
            cached = self.get(&key, &ticket, wire).await;
        }
        self.read(site, key, cached, ticket).await
    }

    /// A ranged GET to the origin; `None` when the whole object is needed
    /// instead (the origin cannot satisfy the range, or `If-Range` does not
    /// hold for what it sent).
    async fn origin_range(
        self: &Arc<Self>,
        site: &Arc<Site>,
        object_key: &str,
        spec: &str,
        if_range: Option<&str>,
        ticket: &Ticket,
    ) -> Option<Answer> {
        let request = ObjectRequest {
            range: Some(spec.to_string()),
            ..ObjectRequest::new(object_key)
        };
        let (result, request_id) = self.origin_get(site, &request).await;
        let result = match result {
            Ok(Fetched::Object { meta, body }) => match checked_origin_range(spec, &meta) {
                // The origin ignored the range: the edge cuts it.
                Ok(None) => Ok(Fetch::from_origin(meta, body, ticket.since())),
                Ok(Some((range, total))) => {
                    let validators = Validators {
                        etag: meta.etag.as_deref(),
                        last_modified: meta.last_modified,
                    };
                    if !conditional::if_range_allows(if_range, &validators) {
                        return None;
                    }
                    if self.can_store(total) {
                        self.fill_in_background(site, object_key);
                    }
                    Ok(Fetch {
                        meta,
                        payload: Payload::Range { body, range, total },
                        age: None,
                        since: ticket.since(),
                        entry: None,
                    })
                }
                Err(e) => Err(e),
            },
            Ok(Fetched::NotModified { .. }) => {
                Err(OriginError::Invalid("304 to an unconditional GET".into()))
            }
            // Unsatisfiable at the origin: the edge answers 416 from the full
            // object's length (or ignores the range for an empty object).
            Err(OriginError::RangeNotSatisfiable { .. }) => return None,
            Err(e) => Err(e),
        };
        Some(Answer {
            result,
            outcome: CacheOutcome::Pass,
            request_id,
        })
    }

    /// Fills the cache with the whole object, detached from any request.
    fn fill_in_background(self: &Arc<Self>, site: &Arc<Site>, object_key: &str) {
        let cache = self.clone();
        let site = site.clone();
        let object_key = object_key.to_string();
        tokio::spawn(async move {
            if let Ok(fetch) = cache.object(&site, &object_key, Wire::Memory).await.result {
                drain(fetch.payload.into_stream()).await;
            }
        });
    }

    /// Whether the object exists (see [`Want::Exists`]).
    async fn exists(self: &Arc<Self>, site: &Arc<Site>, object_key: &str) -> Answer {
        let ticket = self.ticket_for(site, object_key).await;
        let key = CacheKey::new(site.name(), object_key, Variant::Identity);
        let now = SystemTime::now();
        let cached = self.get(&key, &ticket, Wire::Memory).await;
        if let Some(entry) = &cached {
            if entry.kind == EntryKind::Object || entry.state(now) == State::Fresh {
                return Answer::new(serve_entry(entry, now, ticket.since()), CacheOutcome::Hit);
            }
        }
        // Not known: the object itself, read through the cache as a request
        // for it would be (coalesced, through the cluster's owner and
        // parent, stored). A HEAD to the bucket was neither coalesced nor
        // stored when the object exists: every `/dir` request asked again,
        // and a burst of requests for a missing path made one each. The
        // probe of `/dir` is followed by the client's request for `/dir/`,
        // which this fill then answers.
        self.read(site, key, cached, ticket).await
    }

    /// Starts a background revalidation of `stale`, unless one runs already.
    fn refresh_in_background(
        self: &Arc<Self>,
        site: &Arc<Site>,
        stale: Arc<Entry>,
        ticket: Ticket,
    ) {
        let Role::Leader(guard) = self.join(&stale.key, ticket.since()) else {
            return;
        };
        let cache = self.clone();
        let site = site.clone();
        tokio::spawn(async move {
            let answer = cache.lead(&site, guard, Some(stale), ticket).await;
            if let Ok(fetch) = answer.result {
                // Drain a replaced body so the fill completes.
                drain(fetch.payload.into_stream()).await;
            }
        });
    }

    /// A coalesced origin fetch: the first request leads, the others follow.
    async fn fill(
        self: &Arc<Self>,
        site: &Arc<Site>,
        key: CacheKey,
        stale: Option<Arc<Entry>>,
        ticket: Ticket,
    ) -> Answer {
        match self.join(&key, ticket.since()) {
            Role::Leader(guard) => self.lead(site, guard, stale, ticket).await,
            Role::Follower(flight) => self.follow(site, &key, &flight, stale).await,
        }
    }

    /// A follower's answer: what its leader published. Counted as coalesced
    /// (`s3edge_coalesced_requests_total`) unless the leader had nothing to
    /// share and the follower asks the origin itself.
    async fn follow(
        self: &Arc<Self>,
        site: &Arc<Site>,
        key: &CacheKey,
        flight: &Arc<Flight>,
        stale: Option<Arc<Entry>>,
    ) -> Answer {
        let now = SystemTime::now();
        let since = flight.since();
        let outcome = flight.wait().await;
        if !matches!(outcome, Outcome::Retry) {
            self.metrics.coalesced_requests.inc(&[site.name()]);
        }
        match outcome {
            Outcome::Entry(entry) => {
                Answer::new(serve_entry(&entry, now, since), CacheOutcome::Collapsed)
            }
            Outcome::StaleIfError(entry) => {
                Answer::new(serve_entry(&entry, now, since), CacheOutcome::StaleIfError)
            }
            Outcome::Streaming(meta) => {
                let fetch = Fetch::from_origin(ObjectMeta::clone(&meta), flight.subscribe(), since);
                Answer::new(Ok(fetch), CacheOutcome::Collapsed)
            }
            Outcome::Failed(e) => match stale {
                Some(entry) if stale_if_error(&entry, now) => {
                    Answer::new(serve_entry(&entry, now, since), CacheOutcome::StaleIfError)
                }
                _ => Answer::new(Err(e), CacheOutcome::Miss { stored: false }),
            },
            Outcome::Retry => self.direct(site, &key.object_key).await,
        }
    }

    /// An uncoalesced, uncached fetch (the leader had nothing to share).
    async fn direct(self: &Arc<Self>, site: &Arc<Site>, object_key: &str) -> Answer {
        let since = self.barrier.generation();
        let (result, request_id) = self.origin_get(site, &ObjectRequest::new(object_key)).await;
        let result = match result {
            Ok(Fetched::Object { meta, body }) => Ok(Fetch::from_origin(meta, body, since)),
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

    /// One origin GET, timed and counted.
    pub(super) async fn origin_get(
        &self,
        site: &Site,
        request: &ObjectRequest,
    ) -> (Result<Fetched, OriginError>, Option<String>) {
        let started = Instant::now();
        let result = site.origin.get(request).await;
        let (outcome, request_id) = match &result {
            Ok(Fetched::Object { meta, .. }) => {
                (answer_outcome(meta.status), meta.request_id.clone())
            }
            Ok(Fetched::NotModified { meta }) => ("not_modified", meta.request_id.clone()),
            Err(e) => (e.outcome(), e.request_id().map(str::to_string)),
        };
        self.count_origin(site, started, outcome);
        (result, request_id)
    }

    /// Counts a request passed through to an HTTP origin (a POST, a PUT, a
    /// DELETE...: never cached, but the origin was asked) as
    /// [`origin_get`](Self::origin_get) counts a fetch: `answer` is its
    /// status, or the error.
    pub fn count_passed(&self, site: &Site, started: Instant, answer: Result<u16, &OriginError>) {
        let outcome = match answer {
            Ok(status) => answer_outcome(Some(status)),
            Err(e) => e.outcome(),
        };
        self.count_origin(site, started, outcome);
    }

    fn count_origin(&self, site: &Site, started: Instant, outcome: &str) {
        self.metrics.origin_duration.observe(started.elapsed());
        self.metrics.origin_requests.inc(&[site.name(), outcome]);
    }

    /// The leader's fetch: a conditional GET when a stale entry exists, then
    /// the outcome published to the followers and the cache filled.
    async fn lead(
        self: &Arc<Self>,
        site: &Arc<Site>,
        guard: FlightGuard,
        stale: Option<Arc<Entry>>,
        ticket: Ticket,
    ) -> Answer {
        let mut request = ObjectRequest::new(guard.key().object_key.as_str());
        if let Some(entry) = stale.as_ref().filter(|e| e.kind == EntryKind::Object) {
            request.if_none_match.clone_from(&entry.meta.etag);
            if request.if_none_match.is_none() {
                request.if_modified_since = entry.meta.last_modified;
            }
        }
        let (result, request_id) = self.origin_get(site, &request).await;
        let stale_before = stale.clone();
        let now = SystemTime::now();
        let since = ticket.since();
        let (result, outcome) = match result {
            Ok(Fetched::NotModified { meta }) => match stale {
                Some(entry) => {
                    let entry = self.store(revalidated(site, &entry, &meta, now), &ticket);
                    guard.publish(Outcome::Entry(entry.clone()));
                    (serve_entry(&entry, now, since), CacheOutcome::Revalidated)
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
                let replaces = stale.is_some();
                self.store_streaming(site, guard, meta, body, now, ticket, replaces)
                    .await
            }
            Err(e @ (OriginError::NotFound { .. } | OriginError::Denied { .. })) => {
                let key = guard.key().clone();
                let entry = self.store(negative_entry(site, key, &e, now), &ticket);
                guard.publish(Outcome::Entry(entry));
                (Err(e), CacheOutcome::Miss { stored: true })
            }
            Err(e) => match stale {
                Some(entry) if stale_if_error(&entry, now) => {
                    tracing::warn!(
                        site = site.name(),
                        key = guard.key().object_key.as_str(),
                        "serving stale: {e}"
                    );
                    guard.publish(Outcome::StaleIfError(entry.clone()));
                    (serve_entry(&entry, now, since), CacheOutcome::StaleIfError)
                }
                _ => {
                    guard.publish(Outcome::Failed(e.clone()));
                    (Err(e), CacheOutcome::Miss { stored: false })
                }
            },
        };
        let outcome = outcome.after(stale_before.as_deref(), now);
        Answer {
            result,
            outcome,
            request_id,
        }
    }

    /// A 200 from the origin: when it may be stored, its body is pulled into
    /// the flight by a task of its own ([`pull`]) and every waiter streams it
    /// from there: from memory when it fits the memory tier, else from its
    /// disk file as it is written. Otherwise it passes through, and when it
    /// `replaces` a stored entry (a revalidation's new version, now
    /// `no-store`, `private` or too large) that entry is removed first: it
    /// was served on within stale-while-revalidate (and stale-if-error) at
    /// one useless origin GET per request, a new deploy never seen, where
    /// Varnish's hit-for-miss shadows it.
    #[allow(clippy::too_many_arguments)]
    async fn store_streaming(
        self: &Arc<Self>,
        site: &Arc<Site>,
        guard: FlightGuard,
        meta: ObjectMeta,
        body: BodyStream,
        now: SystemTime,
        ticket: Ticket,
        replaces: bool,
    ) -> (Result<Fetch, OriginError>, CacheOutcome) {
        let since = ticket.since();
        let len = meta.content_length;
        let freshness = match policy::storable(&meta, &site.config.cache, now) {
            Storable::Yes(f) if self.can_store(len) => Some(f),
            _ => None,
        };
        let sink = match freshness {
            Some(_) if len > self.memory_object_max => {
                self.disk_writer(guard.key(), len).await.map(Sink::Disk)
            }
            Some(_) => Some(Sink::Memory),
            None => None,
        };
        let (Some(freshness), Some(sink)) = (freshness, sink) else {
            if replaces {
                self.drop_replaced(site, &guard.key().object_key).await;
            }
            guard.publish(Outcome::Retry);
            let fetch = Fetch::from_origin(meta, body, since);
            return (Ok(fetch), CacheOutcome::Miss { stored: false });
        };
        if let Sink::Disk(writer) = &sink {
            guard.spill_to(writer.reader());
        }
        guard.publish(Outcome::Streaming(Arc::new(meta.clone())));
        let subscriber = guard.subscribe();
        let entry = Entry {
            key: guard.key().clone(),
            kind: EntryKind::Object,
            meta: meta.clone(),
            body: Body::empty(),
            stored_at: policy::stored_at(&meta, now),
            freshness,
            prepared: Default::default(),
        };
        tokio::spawn(
            self.clone()
                .complete(guard, body, entry, Some(len), sink, ticket),
        );
        (
            Ok(Fetch::from_origin(meta, subscriber, since)),
            CacheOutcome::Miss { stored: true },
        )
    }

    /// Pulls a body into its flight, then stores `entry` with it (through
    /// `ticket`) before the flight ends, so no request between the two misses.
    pub(super) async fn complete(
        self: Arc<Self>,
        guard: FlightGuard,
        body: BodyStream,
        mut entry: Entry,
        expected: Option<u64>,
        sink: Sink,
        ticket: Ticket,
    ) {
        match pull(&guard, body, expected, sink).await {
            Ok(Pulled::Memory { chunks, len }) => {
                entry.meta.content_length = len;
                entry.body = Body::from_chunks(&chunks);
                self.store(entry, &ticket);
            }
            Ok(Pulled::Disk(writer)) => {
                // An error here turns the disk tier off and stores nothing;
                // the body itself is complete for everyone reading it.
                let _ = tokio::task::spawn_blocking(move || writer.finish(&entry, &ticket)).await;
            }
            Ok(Pulled::Delivered) => {}
            Err(e) => return guard.finish(Err(e)),
        }
        guard.finish(Ok(()));
    }

    /// Reads a secondary object (a sidecar) for a variant being made from
    /// it, without counting a lookup of its own: from the cache when a
    /// client's request for it stored it, else from the origin. One that
    /// exists is not stored as an entry of its own: the variant made from it
    /// holds its bytes, and a second copy would take as much room again in
    /// both tiers for every precompressed asset ("each encoded variant is
    /// cached once"). Its absence is stored, as any 404 or 403 is, so a
    /// variant made again (after an eviction or a purge) does not ask for it.
    pub(super) async fn quietly(
        self: &Arc<Self>,
        site: &Arc<Site>,
        object_key: &str,
    ) -> Result<Fetch, OriginError> {
        let ticket = self.ticket_for(site, object_key).await;
        let key = CacheKey::new(site.name(), object_key, Variant::Identity);
        if let Some(cached) = self.get(&key, &ticket, Wire::Memory).await {
            return self.read(site, key, Some(cached), ticket).await.result;
        }
        let result = self.direct(site, object_key).await.result;
        if let Err(e @ (OriginError::NotFound { .. } | OriginError::Denied { .. })) = &result {
            self.store(negative_entry(site, key, e, SystemTime::now()), &ticket);
        }
        result
    }
}

/// What an origin's answer counts as in `s3edge_origin_requests_total`. A
/// bucket's errors arrive as errors; an HTTP origin answers every status as
/// an object (`meta.status`), so its 404 is `not_found` and its 5xx
/// `rejected` (an origin error, as a bucket's 5xx is), not `ok`. Its other
/// 4xx answer the client's own request and count as `ok`.
fn answer_outcome(status: Option<u16>) -> &'static str {
    match status {
        Some(404 | 410) => "not_found",
        Some(401 | 403) => "denied",
        Some(412) => "precondition_failed",
        Some(416) => "range_not_satisfiable",
        Some(500..=599) => "rejected",
        _ => "ok",
    }
}

/// A stale entry refreshed by a 304 at `now`: its fields merged with the
/// 304's and its freshness computed from the merge (RFC 9111 section 4.3.4).
fn revalidated(site: &Site, stale: &Entry, not_modified: &ObjectMeta, now: SystemTime) -> Entry {
    let meta = policy::merge_not_modified(&stale.meta, not_modified);
    let freshness = policy::storable(&meta, &site.config.cache, now).or_expired();
    Entry {
        meta,
        stored_at: policy::stored_at(not_modified, now),
        freshness,
        ..stale.clone()
    }
}

/// A 404 or 403 from the bucket, kept for the site's `error_ttl`.
fn negative_entry(site: &Site, key: CacheKey, error: &OriginError, now: SystemTime) -> Entry {
    let kind = match error {
        OriginError::Denied { .. } => EntryKind::Denied,
        _ => EntryKind::NotFound,
    };
    Entry {
        key,
        kind,
        meta: ObjectMeta::default(),
        body: Body::empty(),
        stored_at: now,
        freshness: policy::negative(&site.config.cache),
        prepared: Default::default(),
    }
}

/// Reads a body to its end (a fill detached from any client).
pub(super) async fn drain(mut body: BodyStream) {
    use futures_util::StreamExt;
    while body.next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::{CacheOutcome, Wire};
    use crate::cache::{PREFER_FILE_MIN, SEND_FROM_FILE_MAX};

    /// Every lookup result has its prebuilt counter in `SiteMetrics`.
    #[test]
    fn every_lookup_result_has_a_counter_slot() {
        let outcomes = [
            CacheOutcome::Pass,
            CacheOutcome::Hit,
            CacheOutcome::Collapsed,
            CacheOutcome::Miss { stored: true },
            CacheOutcome::Miss { stored: false },
            CacheOutcome::Stale,
            CacheOutcome::StaleIfError,
            CacheOutcome::Revalidated,
        ];
        for outcome in outcomes {
            assert!(
                crate::metrics::LOOKUP_RESULTS.contains(&outcome.as_str()),
                "{outcome:?}"
            );
        }
    }

    /// Which bodies leave from their file, at the limits: a memory hit of
    /// 64 to 512 KiB on a paced connection, of 64 KiB and up on one
    /// that is not, none over TLS or HTTP/2; a disk-tier span up to 512 KiB
    /// paced, any span unpaced; disk hits kept in their file on both.
    #[test]
    fn the_file_is_preferred_between_the_limits_the_wire_allows() {
        let below = PREFER_FILE_MIN - 1;
        let above = SEND_FROM_FILE_MAX + 1;
        for (wire, len, sends, prefers) in [
            (Wire::PacedFile, below, true, false),
            (Wire::PacedFile, PREFER_FILE_MIN, true, true),
            (Wire::PacedFile, SEND_FROM_FILE_MAX, true, true),
            (Wire::PacedFile, above, false, false),
            (Wire::PacedFile, 1 << 20, false, false),
            (Wire::File, below, true, false),
            (Wire::File, PREFER_FILE_MIN, true, true),
            (Wire::File, above, true, true),
            (Wire::File, 64 << 20, true, true),
            (Wire::Memory, PREFER_FILE_MIN, false, false),
            (Wire::Memory, SEND_FROM_FILE_MAX, false, false),
        ] {
            assert_eq!(wire.sends_from_file(len), sends, "{wire:?} sends {len}");
            assert_eq!(wire.prefers_file(len), prefers, "{wire:?} prefers {len}");
        }
        // Disk hits of any size stay in their file on plain HTTP/1 only.
        assert!(Wire::PacedFile.keeps_disk_hits_in_file());
        assert!(Wire::File.keeps_disk_hits_in_file());
        assert!(!Wire::Memory.keeps_disk_hits_in_file());
    }
}
