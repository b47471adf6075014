//! The read-through for an HTTP origin: the cache as RFC 9111 says a shared
//! cache must behave, over the same tiers, purge barrier, coalescing and
//! body puller as the S3 read-through ([`super::read`]); only the policy
//! differs (docs/ARCHITECTURE.md, "HTTP origin").
//!
//! - The key is the request target, query included, with the scheme and
//!   host the origin hears ([`keyed_target`]). A response with `Vary`
//!   is stored under the target plus the values of the fields it names in
//!   the request that got it ([`VARY_SEPARATOR`]); the names last seen for
//!   each target are kept in an index, so one lookup finds the response
//!   that matches a request, and several responses live side by side.
//! - What is stored and for how long is [`policy::http_storable`]; the age
//!   counts from the origin's `Date` and `Age` (the entry is stored as if it
//!   arrived `ObjectMeta::age` seconds earlier, `policy::stored_at`).
//! - The request's own `Cache-Control` (and `Pragma: no-cache`) is honoured:
//!   `no-cache` and `max-age=0` revalidate, `max-age`, `min-fresh` and
//!   `max-stale` bound the age accepted, `only-if-cached` answers 504 when
//!   nothing is stored, `no-store` stores nothing.
//! - Stale entries are revalidated with both validators; a 304 updates the
//!   stored fields (but the length); a 5xx or a failure serves the stale
//!   entry while `stale-if-error` allows.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::fill::{Flight, Outcome};
use super::policy::{self, Storable};
use super::pull::Sink;
use super::read::{serve_entry, Answer, CacheOutcome, Fetch};
use super::VARY_SEPARATOR;
use super::{
    Body, Cache, CacheKey, Entry, EntryKind, FlightGuard, Role, State, Ticket, Variant, Wire,
};
use crate::http::range::{self, ByteRange};
use crate::origin::{Fetched, ObjectMeta, ObjectRequest, OriginError};
use crate::site::Site;

/// Field names a stored response varies by, for one target.
pub(super) type VaryIndex = moka::sync::Cache<CacheKey, Arc<Vec<String>>>;

/// The stored parts (206 answers) of a target's representation.
pub(super) type PartIndex = moka::sync::Cache<CacheKey, Arc<Vec<Part>>>;

/// One stored part: its range, the whole length, the strong ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Part {
    range: ByteRange,
    total: u64,
    etag: Option<String>,
}

/// The object key a part is stored under.
fn part_key(target: &str, range: ByteRange) -> String {
    format!(
        "{target}{VARY_SEPARATOR}bytes={}-{}",
        range.start, range.end
    )
}

/// The key of the entry that records a target's `Vary` names: the target,
/// then [`VARY_SEPARATOR`] and nothing (no answer's key ends so). It is
/// written when the names change, to both tiers, so that the index is
/// rebuilt from it after a restart, or once the index has let the target
/// go: without it, a target's answers stored under the keys their `Vary`
/// selects were not found, and an older answer stored before the target
/// varied was served. A purge of the target removes it too.
fn vary_record_key(site: &Site, target: &str) -> CacheKey {
    CacheKey::new(
        site.name(),
        &format!("{target}{VARY_SEPARATOR}"),
        Variant::Identity,
    )
}

/// Whether `key` is a target's record of its `Vary` names
/// ([`vary_record_key`]): not an answer, and not counted by purges.
pub(super) fn is_vary_record(key: &CacheKey) -> bool {
    key.object_key.ends_with(VARY_SEPARATOR)
}

/// Targets whose `Vary` names are remembered (none: answers without `Vary`).
pub(super) const VARY_INDEX_CAPACITY: u64 = 100_000;

/// The request's `Cache-Control` directives (RFC 9111 section 5.2.1).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct RequestDirectives {
    no_cache: bool,
    no_store: bool,
    only_if_cached: bool,
    max_age: Option<u64>,
    min_fresh: Option<u64>,
    /// `Some(None)`: any staleness.
    max_stale: Option<Option<u64>>,
}

impl RequestDirectives {
    fn of(headers: &[(String, String)]) -> RequestDirectives {
        let mut d = RequestDirectives::default();
        let mut has_cache_control = false;
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("cache-control") {
                has_cache_control = true;
                for part in value.split(',') {
                    let (name, arg) = match part.split_once('=') {
                        Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                        None => (part.trim(), None),
                    };
                    let seconds = arg.and_then(|a| a.parse::<u64>().ok());
                    match name.to_ascii_lowercase().as_str() {
                        "no-cache" => d.no_cache = true,
                        "no-store" => d.no_store = true,
                        "only-if-cached" => d.only_if_cached = true,
                        "max-age" => d.max_age = seconds,
                        "min-fresh" => d.min_fresh = seconds,
                        "max-stale" => d.max_stale = Some(seconds),
                        _ => {}
                    }
                }
            }
        }
        // `Pragma: no-cache` counts only without `Cache-Control` (RFC 9111 5.4).
        if !has_cache_control {
            d.no_cache = headers.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case("pragma")
                    && v.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("no-cache"))
            });
        }
        d
    }

    /// Whether a stored response of this age and freshness may be used
    /// without asking the origin.
    fn accepts(&self, entry: &Entry, now: SystemTime) -> bool {
        if self.no_cache {
            return false;
        }
        let age = entry.age(now);
        if self
            .max_age
            .is_some_and(|max| age > Duration::from_secs(max))
        {
            return false;
        }
        let ttl = entry.freshness.ttl;
        let left = ttl.saturating_sub(age);
        if self
            .min_fresh
            .is_some_and(|min| left < Duration::from_secs(min))
        {
            return false;
        }
        match entry.state(now) {
            State::Fresh => true,
            _ => match self.max_stale {
                // A stale response is used only when its own directives allow.
                Some(limit) if !no_stale(entry) => {
                    limit.is_none_or(|max| age.saturating_sub(ttl) <= Duration::from_secs(max))
                }
                _ => false,
            },
        }
    }
}

/// `must-revalidate`, `proxy-revalidate`, `s-maxage` or `no-cache`: never
/// served stale.
fn no_stale(entry: &Entry) -> bool {
    entry.meta.cache_control.as_deref().is_some_and(|cc| {
        cc.split(',').any(|d| {
            let name = d
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(
                name.as_str(),
                "must-revalidate" | "proxy-revalidate" | "s-maxage" | "no-cache"
            )
        })
    })
}

/// The values of `name` in `headers`, as one normalised string (`None`:
/// absent).
fn field_value(headers: &[(String, String)], name: &str) -> Option<String> {
    let mut values = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .map(|v| v.trim().to_string())
        .peekable();
    values.peek()?;
    Some(values.collect::<Vec<_>>().join(","))
}

/// The key an HTTP origin's answers to `target` are stored under: the
/// target, then the scheme and host the origin is told of
/// (`X-Forwarded-Proto`, `X-Forwarded-Host`), as Varnish and Fastly key by
/// host. An origin that builds redirects or links from them (Django's and
/// Rails' `https` redirects, absolute `Location`s) gives each its own
/// answer: a plain-HTTP request cannot store a redirect to https that loops
/// for https clients, nor a client naming another host (a default site
/// takes any, a port may be added) put its links in front of the others.
/// Purging the target purges every one ([`VARY_SEPARATOR`]); the origin is
/// asked for the target alone ([`origin_request`]).
pub(super) fn keyed_target(target: &str, forward: &[(String, String)]) -> String {
    let scheme = field_value(forward, "x-forwarded-proto").unwrap_or_default();
    let host = field_value(forward, "x-forwarded-host").unwrap_or_default();
    format!(
        "{target}{VARY_SEPARATOR}{scheme}://{}",
        host.to_ascii_lowercase()
    )
}

/// The request target a key made by [`keyed_target`] (and [`selected_key`],
/// [`part_key`]) stands for.
fn target_of(key: &str) -> &str {
    key.split(VARY_SEPARATOR).next().unwrap_or(key)
}

/// The field names of a `Vary` value, lowercased (`*` kept).
pub fn vary_names(meta: &ObjectMeta) -> Vec<String> {
    let mut names: Vec<String> = meta
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("vary"))
        .flat_map(|(_, v)| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The object key of the response selected by `names` for a request with
/// `headers`.
fn selected_key(target: &str, names: &[String], headers: &[(String, String)]) -> String {
    let mut key = String::from(target);
    for name in names {
        key.push(VARY_SEPARATOR);
        key.push_str(name);
        match field_value(headers, name) {
            Some(value) => {
                key.push('=');
                key.push_str(&value);
            }
            // Absent differs from empty.
            None => key.push('\u{1}'),
        }
    }
    key
}

/// The key of the response `names` select for a request with `headers`
/// (the target's own when there are none).
fn key_selected(
    site: &Site,
    target: &str,
    names: &[String],
    headers: &[(String, String)],
) -> CacheKey {
    let key = if names.is_empty() {
        target.to_string()
    } else {
        selected_key(target, names, headers)
    };
    CacheKey::new(site.name(), &key, Variant::Identity)
}

/// Whether the request carries credentials (RFC 9111 section 3.5).
pub(super) fn has_authorization(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
}

impl Cache {
    /// The key a request for `target` reads: the target's own (which also
    /// names it in the `Vary` index), or the response its `Vary` fields
    /// select, as far as the index knows.
    fn indexed_key(&self, site: &Site, target: &str, headers: &[(String, String)]) -> CacheKey {
        let key = CacheKey::new(site.name(), target, Variant::Identity);
        match self.vary_index.get(&key) {
            Some(names) => key_selected(site, target, &names, headers),
            None => key,
        }
    }

    /// [`Cache::indexed_key`], the index rebuilt first from the target's
    /// stored record ([`vary_record_key`]) when it does not know the target.
    async fn shared_key(
        &self,
        site: &Site,
        target: &str,
        headers: &[(String, String)],
        ticket: &Ticket,
    ) -> CacheKey {
        let key = CacheKey::new(site.name(), target, Variant::Identity);
        let names = match self.vary_index.get(&key) {
            Some(names) => names,
            None => {
                let record = vary_record_key(site, target);
                let record = self.get(&record, ticket, Wire::Memory).await;
                let names = Arc::new(record.map(|r| vary_names(&r.meta)).unwrap_or_default());
                self.vary_index.insert(key.clone(), names.clone());
                names
            }
        };
        key_selected(site, target, &names, headers)
    }

    /// Records that `target`'s answers vary by `names` (none: they do not),
    /// in the index and, when they change, in the stored record; then the
    /// answers stored under the names before are removed (all but `like`'s
    /// key, which `like`, the newest answer, replaces): each could be
    /// selected again later (a restart that lost the record, a change back),
    /// and served in place of the newest (RFC 9111 4.1).
    fn record_vary(
        self: &Arc<Self>,
        site: &Site,
        target: &str,
        names: Vec<String>,
        ticket: &Ticket,
        like: &Entry,
    ) {
        let key = CacheKey::new(site.name(), target, Variant::Identity);
        let known = self.vary_index.get(&key);
        // Unknown to the index: the lookup before found no record, or the
        // index has let it go since; written again either way when varying.
        let changed = match &known {
            Some(known) => **known != names,
            None => !names.is_empty(),
        };
        self.vary_index.insert(key, Arc::new(names.clone()));
        if changed {
            let meta = ObjectMeta {
                headers: vec![("vary".to_string(), names.join(", "))],
                ..ObjectMeta::default()
            };
            let record = Entry {
                key: vary_record_key(site, target),
                kind: EntryKind::Object,
                meta,
                body: Body::empty(),
                stored_at: like.stored_at,
                freshness: like.freshness,
                prepared: Default::default(),
            };
            self.store(record, ticket);
            self.forget_other_answers(site, target, &like.key);
        }
    }

    /// Removes, in the background, what is stored for `target` (its own key,
    /// every `Vary` selection and stored part) but `keep` and the record of
    /// its names. Not a purge: no barrier is raised, so the answer being
    /// stored now is not refused.
    fn forget_other_answers(self: &Arc<Self>, site: &Site, target: &str, keep: &CacheKey) {
        let cache = self.clone();
        let site = site.name().to_string();
        let target = target.to_string();
        let keep = keep.object_key.clone();
        tokio::task::spawn_blocking(move || {
            let record = format!("{target}{VARY_SEPARATOR}");
            let matches = |key: &str| {
                key != keep && key != record && (key == target || key.starts_with(&record))
            };
            cache.memory.purge(&site, &matches);
            cache.writing.purge(&site, &matches);
            if let Some(disk) = &cache.disk {
                disk.purge(&site, &matches);
            }
        });
    }

    /// Reads `target` (path and query) of an HTTP origin for a GET or HEAD
    /// with the (end-to-end) `headers` it forwards. A `range` that nothing
    /// stored can answer is asked of the origin as it is, and its answer
    /// passed on without being stored; with an `If-Range` (`if_range`) the
    /// whole representation is read instead, for the handler to decide on
    /// it: only a range of the very version the client holds may be sent
    /// (RFC 9110 13.1.5), and an origin's 206 cannot say what the 200 in its
    /// place would have been.
    pub(super) async fn shared(
        self: &Arc<Self>,
        site: &Arc<Site>,
        target: &str,
        headers: &[(String, String)],
        range: Option<&str>,
        if_range: Option<&str>,
    ) -> Answer {
        let directives = RequestDirectives::of(headers);
        let ticket = self.ticket_for(site, target).await;
        let key = self.shared_key(site, target, headers, &ticket).await;
        let now = SystemTime::now();
        let cached = self.get(&key, &ticket, Wire::Memory).await;
        let since = ticket.since();
        match cached {
            Some(entry) if directives.accepts(&entry, now) => {
                let outcome = if entry.state(now) == State::Fresh {
                    CacheOutcome::Hit
                } else {
                    CacheOutcome::StaleAccepted
                };
                Answer::new(serve_entry(&entry, now, since), outcome)
            }
            Some(entry)
                if entry.state(now) == State::StaleWhileRevalidate && !directives.no_cache =>
            {
                self.refresh_shared(site, &entry, target, headers, ticket);
                Answer::new(serve_entry(&entry, now, since), CacheOutcome::Stale)
            }
            _ if directives.only_if_cached => Answer::new(
                Err(OriginError::NotCached),
                CacheOutcome::Miss { stored: false },
            ),
            stale => {
                if let Some(spec) = range {
                    let part =
                        self.stored_part(site, target, spec, if_range, &directives, &ticket, now);
                    if let Some(answer) = part.await {
                        return answer;
                    }
                    if if_range.is_none() {
                        return self
                            .shared_range(site, target, headers, spec, &directives, &ticket)
                            .await;
                    }
                }
                let forward = Arc::new(headers.to_vec());
                match self.join(&key, since) {
                    Role::Leader(guard) => {
                        self.lead_shared(site, guard, target, stale, forward, directives, ticket)
                            .await
                    }
                    Role::Follower(flight) => {
                        self.follow_shared(site, target, &flight, stale, &forward)
                            .await
                    }
                }
            }
        }
    }

    /// A range served from a stored part of the representation (a 206 kept
    /// earlier) that holds all of it, when the part may be used and the
    /// client's `If-Range`, if any, names its version.
    #[allow(clippy::too_many_arguments)]
    async fn stored_part(
        self: &Arc<Self>,
        site: &Site,
        target: &str,
        spec: &str,
        if_range: Option<&str>,
        directives: &RequestDirectives,
        ticket: &Ticket,
        now: SystemTime,
    ) -> Option<Answer> {
        let parts = self
            .part_index
            .get(&CacheKey::new(site.name(), target, Variant::Identity))?;
        for part in parts.iter() {
            let range::RangeOutcome::Partial(wanted) = range::evaluate(Some(spec), part.total)
            else {
                continue;
            };
            let [wanted] = wanted.as_slice() else {
                continue;
            };
            if wanted.start < part.range.start || wanted.end > part.range.end {
                continue;
            }
            let key = CacheKey::new(
                site.name(),
                &part_key(target, part.range),
                Variant::Identity,
            );
            let entry = self.get(&key, ticket, Wire::Memory).await?;
            if !directives.accepts(&entry, now) {
                return None;
            }
            let validators = crate::http::conditional::Validators {
                etag: entry.meta.etag.as_deref(),
                last_modified: entry.meta.last_modified,
            };
            if !crate::http::conditional::if_range_allows(if_range, &validators) {
                return None;
            }
            let Body::Memory(chunks) = &entry.body else {
                return None;
            };
            let bytes = bytes::Bytes::from(chunks.concat());
            let from = (wanted.start - part.range.start) as usize;
            let to = from + wanted.len() as usize;
            if to > bytes.len() {
                return None;
            }
            let cut = bytes.slice(from..to);
            let mut meta = entry.meta.clone();
            meta.content_length = wanted.len();
            meta.content_range = Some(wanted.content_range(part.total));
            let body: crate::origin::BodyStream = Box::pin(futures_util::stream::iter([Ok(cut)]));
            let fetch = Fetch {
                meta,
                payload: super::Payload::Range {
                    body,
                    range: *wanted,
                    total: part.total,
                },
                age: Some(entry.age(now)),
                since: ticket.since(),
                // Its length and range are not the entry's.
                entry: None,
            };
            return Some(Answer::new(Ok(fetch), CacheOutcome::Hit));
        }
        None
    }

    /// A range asked of the origin. Its 206, when it answers the range and
    /// may be stored (and fits the memory tier), is kept as a part of the
    /// representation; parts that together make the whole (same strong
    /// ETag) are combined into it (RFC 9111 3.3, 3.4). A 200 (an origin that
    /// ignores `Range`) is the whole representation: stored as a miss's
    /// answer is, when it may be, so the next range is cut from the cache
    /// instead of downloading it all again. Anything else is passed on (the
    /// whole answer, which the handler cuts).
    async fn shared_range(
        self: &Arc<Self>,
        site: &Arc<Site>,
        target: &str,
        headers: &[(String, String)],
        spec: &str,
        directives: &RequestDirectives,
        ticket: &Ticket,
    ) -> Answer {
        let since = ticket.since();
        let mut request = origin_request(target, headers, None);
        request.range = Some(spec.to_string());
        let (result, request_id) = self.origin_get(site, &request).await;
        let now = SystemTime::now();
        let result = match result {
            Ok(Fetched::Object { meta, body }) => {
                match super::read::checked_origin_range(spec, &meta) {
                    Ok(None) if meta.status() == 200 && !directives.no_store && !meta.streamed => {
                        let key = self.indexed_key(site, target, headers);
                        let Role::Leader(guard) = self.join(&key, since) else {
                            // Another request is filling it already.
                            let fetch = Fetch::from_origin(meta, body, since);
                            return Answer {
                                result: Ok(fetch),
                                outcome: CacheOutcome::Pass,
                                request_id,
                            };
                        };
                        let storable = policy::http_storable(
                            &meta,
                            &site.config.cache,
                            has_authorization(headers),
                            now,
                        );
                        let (result, outcome) = self
                            .store_shared(
                                site,
                                guard,
                                target,
                                headers,
                                meta,
                                body,
                                storable,
                                now,
                                ticket.clone(),
                                false,
                            )
                            .await;
                        return Answer {
                            result,
                            outcome,
                            request_id,
                        };
                    }
                    Ok(None) => Ok(Fetch::from_origin(meta, body, since)),
                    Ok(Some((range, total))) => {
                        let storable = !directives.no_store
                            && range.len() <= self.memory_object_max
                            && vary_names(&meta).is_empty()
                            && matches!(
                                policy::http_storable(
                                    &meta,
                                    &site.config.cache,
                                    has_authorization(headers),
                                    now
                                ),
                                Storable::Yes(_)
                            );
                        if storable {
                            self.store_part(site, target, meta, body, range, total, now, ticket)
                                .await
                        } else {
                            let mut fetch = Fetch::from_origin(meta, body, since);
                            fetch.payload = super::Payload::Range {
                                body: fetch.payload.into_stream(),
                                range,
                                total,
                            };
                            Ok(fetch)
                        }
                    }
                    // A 206 that is not the range asked, or not the length
                    // its Content-Range says: the origin's answer, passed on
                    // as it is (its Content-Length still holds), not stored.
                    Err(_) => {
                        let mut meta = meta;
                        meta.status = Some(206);
                        if let Some(range) = meta.content_range.take() {
                            meta.headers.push(("content-range".into(), range));
                        }
                        Ok(Fetch::from_origin(meta, body, since))
                    }
                }
            }
            Ok(Fetched::NotModified { .. }) => {
                Err(OriginError::Invalid("304 to an unconditional GET".into()))
            }
            Err(e) => Err(e),
        };
        Answer {
            result,
            outcome: CacheOutcome::Pass,
            request_id,
        }
    }

    /// Gathers a 206's body, stores it as a part, combines the parts when
    /// they make the whole, and answers with the part.
    #[allow(clippy::too_many_arguments)]
    async fn store_part(
        self: &Arc<Self>,
        site: &Site,
        target: &str,
        meta: ObjectMeta,
        body: crate::origin::BodyStream,
        range: ByteRange,
        total: u64,
        now: SystemTime,
        ticket: &Ticket,
    ) -> Result<Fetch, OriginError> {
        use futures_util::StreamExt;
        let mut check = super::LengthCheck::new(Some(meta.content_length));
        let mut chunks = Vec::new();
        let mut body = body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            check.add(chunk.len())?;
            chunks.push(chunk);
        }
        check.end()?;
        let freshness = policy::http_storable(&meta, &site.config.cache, false, now).or_expired();
        let entry = Entry {
            key: CacheKey::new(site.name(), &part_key(target, range), Variant::Identity),
            kind: EntryKind::Object,
            stored_at: policy::stored_at(&meta, now),
            meta: meta.clone(),
            body: Body::from_chunks(&chunks),
            freshness,
            prepared: Default::default(),
        };
        self.store(entry, ticket);
        let index_key = CacheKey::new(site.name(), target, Variant::Identity);
        let strong = meta.etag.clone().filter(|e| !e.starts_with("W/"));
        let mut parts: Vec<Part> = self
            .part_index
            .get(&index_key)
            .map(|p| p.to_vec())
            .unwrap_or_default();
        // Parts of another representation are of no use with this one.
        parts.retain(|p| p.total == total && p.etag == strong && p.etag.is_some());
        parts.retain(|p| p.range != range);
        parts.push(Part {
            range,
            total,
            etag: strong.clone(),
        });
        self.part_index.insert(index_key, Arc::new(parts.clone()));
        if strong.is_some() && total <= self.memory_object_max {
            self.combine(site, target, &meta, &parts, total, freshness, now, ticket)
                .await;
        }
        let body: crate::origin::BodyStream =
            Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
        let mut fetch = Fetch::from_origin(meta, body, ticket.since());
        fetch.payload = super::Payload::Range {
            body: fetch.payload.into_stream(),
            range,
            total,
        };
        Ok(fetch)
    }

    /// Stores the whole representation when the stored parts cover it.
    #[allow(clippy::too_many_arguments)]
    async fn combine(
        self: &Arc<Self>,
        site: &Site,
        target: &str,
        meta: &ObjectMeta,
        parts: &[Part],
        total: u64,
        freshness: super::Freshness,
        now: SystemTime,
        ticket: &Ticket,
    ) {
        let mut sorted = parts.to_vec();
        sorted.sort_by_key(|p| p.range.start);
        let mut whole = vec![0u8; total as usize];
        let mut covered = 0u64;
        for part in &sorted {
            if part.range.start > covered {
                return;
            }
            let key = CacheKey::new(
                site.name(),
                &part_key(target, part.range),
                Variant::Identity,
            );
            let Some(entry) = self.get(&key, ticket, Wire::Memory).await else {
                return;
            };
            let Body::Memory(chunks) = &entry.body else {
                return;
            };
            let bytes = chunks.concat();
            let (start, end) = (part.range.start as usize, part.range.end as usize);
            if bytes.len() != end - start + 1 || end >= whole.len() {
                return;
            }
            whole[start..=end].copy_from_slice(&bytes);
            covered = covered.max(part.range.end + 1);
        }
        if covered < total {
            return;
        }
        let mut meta = meta.clone();
        meta.content_range = None;
        meta.content_length = total;
        self.store(
            Entry {
                key: CacheKey::new(site.name(), target, Variant::Identity),
                kind: EntryKind::Object,
                stored_at: policy::stored_at(&meta, now),
                meta,
                body: Body::from_chunks(&[bytes::Bytes::from(whole)]),
                freshness,
                prepared: Default::default(),
            },
            ticket,
        );
    }

    /// Revalidates `stale` in the background (stale-while-revalidate).
    fn refresh_shared(
        self: &Arc<Self>,
        site: &Arc<Site>,
        stale: &Arc<Entry>,
        target: &str,
        headers: &[(String, String)],
        ticket: Ticket,
    ) {
        let Role::Leader(guard) = self.join(&stale.key, ticket.since()) else {
            return;
        };
        let cache = self.clone();
        let site = site.clone();
        let stale = stale.clone();
        let target = target.to_string();
        let forward = Arc::new(headers.to_vec());
        tokio::spawn(async move {
            let answer = cache
                .lead_shared(
                    &site,
                    guard,
                    &target,
                    Some(stale),
                    forward,
                    RequestDirectives::default(),
                    ticket,
                )
                .await;
            if let Ok(fetch) = answer.result {
                super::read::drain(fetch.payload.into_stream()).await;
            }
        });
    }

    /// A follower takes its leader's answer when it is the one its request
    /// selects: the answer does not vary, or the flight was for the
    /// selected response already. Otherwise it asks the origin itself.
    async fn follow_shared(
        self: &Arc<Self>,
        site: &Arc<Site>,
        target: &str,
        flight: &Arc<Flight>,
        stale: Option<Arc<Entry>>,
        forward: &Arc<Vec<(String, String)>>,
    ) -> Answer {
        let now = SystemTime::now();
        let since = flight.since();
        let selected = |meta: &ObjectMeta, key: &CacheKey| {
            key.object_key == selected_key(target, &vary_names(meta), forward)
        };
        // An entry fresh for no time (a 304 to a `no-cache` answer's
        // revalidation) is the leader's alone, as in `store_shared`; a stale
        // one the leader served because the origin failed is shared.
        let shareable = |entry: &Entry| !entry.freshness.ttl.is_zero();
        // Counted as coalesced when the leader's answer is this request's;
        // not when it asks the origin itself (the last arm).
        let coalesced = || self.metrics.coalesced_requests.inc(&[site.name()]);
        match flight.wait().await {
            Outcome::Entry(entry) if selected(&entry.meta, &entry.key) && shareable(&entry) => {
                coalesced();
                Answer::new(serve_entry(&entry, now, since), CacheOutcome::Collapsed)
            }
            Outcome::StaleIfError(entry) if selected(&entry.meta, &entry.key) => {
                coalesced();
                Answer::new(serve_entry(&entry, now, since), CacheOutcome::StaleIfError)
            }
            // An answer with `Vary`, when this request selects the very key
            // the leader stores it under (the same values of its fields).
            Outcome::Streaming(meta)
                if vary_names(&meta).is_empty()
                    || flight.selected().is_some_and(|key| {
                        key == selected_key(target, &vary_names(&meta), forward)
                    }) =>
            {
                coalesced();
                let fetch = Fetch::from_origin(ObjectMeta::clone(&meta), flight.subscribe(), since);
                Answer::new(Ok(fetch), CacheOutcome::Collapsed)
            }
            Outcome::Failed(e) => {
                coalesced();
                match stale {
                    Some(entry) if super::read::stale_if_error(&entry, now) => {
                        Answer::new(serve_entry(&entry, now, since), CacheOutcome::StaleIfError)
                    }
                    _ => Answer::new(Err(e), CacheOutcome::Miss { stored: false }),
                }
            }
            _ => {
                let request = origin_request(target, forward, None);
                let (result, request_id) = self.origin_get(site, &request).await;
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
        }
    }

    /// The leader's fetch: conditional when a stale entry exists; the answer
    /// stored when the policy allows, published to the followers.
    #[allow(clippy::too_many_arguments)]
    async fn lead_shared(
        self: &Arc<Self>,
        site: &Arc<Site>,
        guard: FlightGuard,
        target: &str,
        stale: Option<Arc<Entry>>,
        forward: Arc<Vec<(String, String)>>,
        directives: RequestDirectives,
        ticket: Ticket,
    ) -> Answer {
        let request = origin_request(target, &forward, stale.as_deref());
        let (mut result, mut request_id) = self.origin_get(site, &request).await;
        if let (Ok(Fetched::NotModified { meta }), Some(entry)) = (&result, &stale) {
            if !policy::not_modified_selects(&entry.meta, meta) {
                // A 304 for another version (RFC 9111 4.3.4: it updates
                // nothing): the representation is asked for again, whole.
                let request = origin_request(target, &forward, None);
                (result, request_id) = self.origin_get(site, &request).await;
                if let Ok(Fetched::NotModified { .. }) = result {
                    result = Err(OriginError::Invalid("304 to an unconditional GET".into()));
                }
            }
        }
        let stale_before = stale.clone();
        let now = SystemTime::now();
        let since = ticket.since();
        let authorization = has_authorization(&forward);
        let (result, outcome) = match result {
            Ok(Fetched::NotModified { meta }) => match stale {
                Some(entry) => {
                    let merged = policy::merge_not_modified(&entry.meta, &meta);
                    let freshness =
                        policy::http_storable(&merged, &site.config.cache, authorization, now)
                            .or_expired();
                    let refreshed = Entry {
                        meta: merged,
                        stored_at: policy::stored_at(&meta, now),
                        freshness,
                        ..Entry::clone(&entry)
                    };
                    // Stored and shared without the 304's `Set-Cookie` and
                    // the fields it says not to store; this request, whose
                    // 304 it was, gets them.
                    let mine = refreshed.meta.clone();
                    let stored = self.store(refreshed, &ticket);
                    guard.publish(Outcome::Entry(stored.clone()));
                    let answer = serve_entry(&stored, now, since).map(|mut fetch| {
                        fetch.meta = mine;
                        // Not the stored entry's fields: nothing made from
                        // them (a prepared head, a variant) is kept with it.
                        fetch.entry = None;
                        fetch
                    });
                    (answer, CacheOutcome::Revalidated)
                }
                None => {
                    guard.publish(Outcome::Retry);
                    (
                        Err(OriginError::Invalid("304 to an unconditional GET".into())),
                        CacheOutcome::Miss { stored: false },
                    )
                }
            },
            Ok(Fetched::Object { meta, body }) => match stale {
                Some(entry) if meta.status() >= 500 && super::read::stale_if_error(&entry, now) => {
                    guard.publish(Outcome::StaleIfError(entry.clone()));
                    (serve_entry(&entry, now, since), CacheOutcome::StaleIfError)
                }
                _ => {
                    let storable =
                        if directives.no_store || meta.content_range.is_some() || meta.streamed {
                            Storable::No
                        } else {
                            policy::http_storable(&meta, &site.config.cache, authorization, now)
                        };
                    // A new version of a stored answer (not a part, not a
                    // failure, not kept out by the request's own
                    // `no-store`): if it may not be stored, the old one goes.
                    let replaces = stale.is_some()
                        && !directives.no_store
                        && meta.content_range.is_none()
                        && meta.status() < 500;
                    self.store_shared(
                        site, guard, target, &forward, meta, body, storable, now, ticket, replaces,
                    )
                    .await
                }
            },
            Err(e) => match stale {
                Some(entry) if super::read::stale_if_error(&entry, now) => {
                    let target = target_of(target);
                    tracing::warn!(site = site.name(), target, "serving stale: {e}");
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

    /// A whole answer from the origin: stored (under the key its `Vary`
    /// selects) while it streams to every waiter when `storable`, else passed
    /// through, after removing what it `replaces` ([`Cache::drop_replaced`]).
    #[allow(clippy::too_many_arguments)]
    async fn store_shared(
        self: &Arc<Self>,
        site: &Arc<Site>,
        guard: FlightGuard,
        target: &str,
        forward: &[(String, String)],
        meta: ObjectMeta,
        body: crate::origin::BodyStream,
        storable: Storable,
        now: SystemTime,
        ticket: Ticket,
        replaces: bool,
    ) -> (Result<Fetch, OriginError>, CacheOutcome) {
        let since = ticket.since();
        let len = meta.content_length;
        let freshness = match storable {
            Storable::Yes(f) if self.can_store(len) => Some(f),
            _ => None,
        };
        let Some(freshness) = freshness else {
            if replaces {
                self.drop_replaced(site, target).await;
            }
            guard.publish(Outcome::Retry);
            return (
                Ok(Fetch::from_origin(meta, body, since)),
                CacheOutcome::Miss { stored: false },
            );
        };
        // Fields `private="..."` and `no-cache="..."` name are not stored,
        // nor given to the requests waiting (the first client's cookie).
        let mut stored_meta = meta.clone();
        policy::shareable_meta(&mut stored_meta);
        let names = vary_names(&meta);
        let key = key_selected(site, target, &names, forward);
        let sink = if len > self.memory_object_max {
            self.disk_writer(&key, len).await.map(Sink::Disk)
        } else {
            Some(Sink::Memory)
        };
        let Some(sink) = sink else {
            guard.publish(Outcome::Retry);
            return (
                Ok(Fetch::from_origin(meta, body, since)),
                CacheOutcome::Miss { stored: false },
            );
        };
        if let Sink::Disk(writer) = &sink {
            guard.spill_to(writer.reader());
        }
        // Requests waiting for this fetch share the answer only when it may
        // be reused without validation (RFC 9111 section 4): one fresh for no
        // time (`no-cache`, `max-age=0`, an app's page with no freshness at
        // all) is this request's alone, and is stored only to be revalidated.
        // Each waiter asks the origin itself, as nginx's cache lock and
        // Varnish's hit-for-miss do: an app's page for one user's cookie was
        // served to every request that waited for it.
        guard.select(&key.object_key);
        guard.publish(if freshness.ttl.is_zero() {
            Outcome::Retry
        } else {
            Outcome::Streaming(Arc::new(stored_meta.clone()))
        });
        let subscriber = guard.subscribe();
        let entry = Entry {
            key,
            kind: EntryKind::Object,
            stored_at: policy::stored_at(&meta, now),
            meta: stored_meta,
            body: Body::empty(),
            freshness,
            prepared: Default::default(),
        };
        self.record_vary(site, target, names, &ticket, &entry);
        tokio::spawn(
            self.clone()
                .complete(guard, body, entry, Some(len), sink, ticket),
        );
        (
            Ok(Fetch::from_origin(meta, subscriber, since)),
            CacheOutcome::Miss { stored: true },
        )
    }
}

/// The GET the origin gets for `target`: the client's fields, and the stale
/// entry's validators (both, as RFC 9111 section 4.3.1 advises).
fn origin_request(
    target: &str,
    forward: &[(String, String)],
    stale: Option<&Entry>,
) -> ObjectRequest {
    let mut request = ObjectRequest::new(target_of(target));
    request.headers = forward.to_vec();
    if let Some(entry) = stale.filter(|e| e.kind == EntryKind::Object) {
        request.if_none_match.clone_from(&entry.meta.etag);
        request.if_modified_since = entry.meta.last_modified;
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn vary_selects_by_normalised_values_and_tells_absent_from_empty() {
        let names = vec!["accept-language".to_string(), "x-foo".to_string()];
        let a = selected_key("/p?q=1", &names, &headers(&[("Accept-Language", "en, fr")]));
        let b = selected_key("/p?q=1", &names, &headers(&[("accept-language", "en,fr")]));
        let c = selected_key(
            "/p?q=1",
            &names,
            &headers(&[("accept-language", "en,fr"), ("x-foo", "")]),
        );
        let d = selected_key("/p?q=1", &names, &headers(&[("accept-language", "de")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert!(a.starts_with("/p?q=1\0"));
    }

    #[test]
    fn request_directives_and_pragma() {
        let d = RequestDirectives::of(&headers(&[("Cache-Control", "max-age=5, min-fresh=2")]));
        assert_eq!(d.max_age, Some(5));
        assert_eq!(d.min_fresh, Some(2));
        assert!(RequestDirectives::of(&headers(&[("Pragma", "no-cache")])).no_cache);
        assert!(
            !RequestDirectives::of(&headers(&[
                ("Pragma", "no-cache"),
                ("Cache-Control", "max-age=5")
            ]))
            .no_cache
        );
        assert_eq!(
            RequestDirectives::of(&headers(&[("cache-control", "max-stale")])).max_stale,
            Some(None)
        );
    }
}
