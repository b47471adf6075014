//! Encoding variants: a compressible representation's br or gzip form, made
//! once per key from a precompressed sidecar object in the bucket (`key.br`,
//! `key.gz`; held only as the variant, its absence cached) or by compressing
//! the identity body as it streams, then stored when complete. A variant is
//! current as of the identity it was made from (its purge generation) and is
//! served only while its ETag matches the identity's, with the identity's
//! fields and age as they are now: a variant stored before its identity was
//! revalidated is refreshed from it (RFC 9111 section 4.3.4: a 304 updates
//! every stored response it selects). The variant of an identity that may
//! not be stored (`no-store`, `private`, an `Authorization` request's) is
//! compressed for its one answer and stored nowhere.

use std::sync::Arc;
use std::time::SystemTime;

use super::fill::Outcome;
use super::policy::{self, Storable};
use super::pull::Sink;
use super::read::serve_entry;
use super::{Answer, Body, Cache, CacheKey, CacheOutcome, Entry, EntryKind, Fetch, FlightGuard};
use super::{Payload, Role, Ticket, Variant, Wire};
use crate::compress::ContentCoding;
use crate::origin::ObjectMeta;
use crate::site::Site;

/// The suffix of a precompressed sidecar object.
fn sidecar_suffix(coding: ContentCoding) -> &'static str {
    match coding {
        ContentCoding::Brotli => ".br",
        ContentCoding::Gzip => ".gz",
    }
}

/// No variant to serve: the identity representation, passed on.
fn passed(identity: Fetch) -> Answer {
    Answer::new(Ok(identity), CacheOutcome::Pass)
}

/// Whether a shared cache may store `meta`, an identity answer from the
/// origin, as the site's origin says (RFC 9111 section 3): only then may a
/// variant made from it be stored, or served to another request.
fn may_store(
    site: &Site,
    meta: &ObjectMeta,
    forward: &[(String, String)],
    now: SystemTime,
) -> bool {
    let storable = if site.config.is_http_origin() {
        let authorization = super::shared::has_authorization(forward);
        policy::http_storable(meta, &site.config.cache, authorization, now)
    } else {
        policy::storable(meta, &site.config.cache, now)
    };
    matches!(storable, Storable::Yes(_))
}

/// The `coding` variant of `identity`, which may not be stored (or has no
/// ETag to bind a stored variant to), compressed for this answer alone (at
/// [`Level::for_one_answer`]): no flight another request could join,
/// nothing stored.
///
/// [`Level::for_one_answer`]: crate::compress::Level::for_one_answer
fn compressed_alone(identity: Fetch, coding: ContentCoding, etag: Option<String>) -> Fetch {
    let length = identity.meta.content_length;
    let mut meta = encoded_meta(identity.meta, etag, coding);
    meta.content_length = 0;
    let body = crate::compress::encode_one_answer(identity.payload.into_stream(), coding, length);
    Fetch {
        meta,
        payload: Payload::Unsized(body),
        age: identity.age,
        since: identity.since,
        entry: None,
    }
}

/// The fields of the `coding` variant made from an identity's `meta`, its
/// length still the identity's.
fn encoded_meta(mut meta: ObjectMeta, etag: Option<String>, coding: ContentCoding) -> ObjectMeta {
    meta.etag = etag;
    meta.content_encoding = Some(coding.as_str().to_string());
    meta.content_range = None;
    meta
}

/// A variant's fields: its identity's, but for what encoding changes (its
/// ETag, `Content-Encoding` and length, from `variant`).
fn variant_meta(identity: &ObjectMeta, variant: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        etag: variant.etag.clone(),
        content_encoding: variant.content_encoding.clone(),
        content_length: variant.content_length,
        content_range: None,
        ..identity.clone()
    }
}

impl Cache {
    /// The `coding` variant of `identity` (see [`Want::Variant`]). A
    /// variant found on disk is served as `wire` takes it, as an identity hit
    /// is: kept in its file for a plain HTTP/1 client (sent from there, not
    /// promoted to the memory tier), else loaded and promoted.
    pub(super) async fn variant(
        self: &Arc<Self>,
        site: &Arc<Site>,
        object_key: &str,
        identity: Fetch,
        coding: ContentCoding,
        forward: &[(String, String)],
        wire: Wire,
    ) -> Answer {
        let whole = matches!(identity.payload, Payload::Stream(_) | Payload::File(_));
        if !whole {
            return passed(identity);
        }
        // A stored variant is bound to its identity by the ETag: without one
        // (many application servers send none) it is compressed for each
        // answer instead, as Caddy's `encode` does, rather than not at all.
        let Some(identity_etag) = identity.meta.etag.clone() else {
            return Answer::new(
                Ok(compressed_alone(identity, coding, None)),
                CacheOutcome::Pass,
            );
        };
        let etag = crate::compress::variant_etag(&identity_etag, coding);
        let now = SystemTime::now();
        if identity.entry.is_none() && !may_store(site, &identity.meta, forward, now) {
            return Answer::new(
                Ok(compressed_alone(identity, coding, Some(etag))),
                CacheOutcome::Pass,
            );
        }
        let key = CacheKey::new(site.name(), object_key, Variant::from(coding));
        // The variant is made from `identity`: it is current as of it.
        let ticket = Ticket::new(self.barrier.clone(), identity.since);
        if let Some(entry) = self.get(&key, &ticket, wire).await {
            if entry.kind == EntryKind::Object && entry.meta.etag.as_deref() == Some(etag.as_str())
            {
                let entry = self.refreshed(entry, &identity, &ticket);
                if let Ok(mut fetch) = serve_entry(&entry, now, ticket.since()) {
                    if identity.entry.is_none() {
                        // The identity came from the origin just now (its
                        // entry not yet stored): its fields and age, not
                        // those the variant was stored with.
                        fetch.meta = variant_meta(&identity.meta, &fetch.meta);
                        fetch.age = identity.age;
                        fetch.entry = None;
                    }
                    return Answer::new(Ok(fetch), CacheOutcome::Hit);
                }
            }
        }
        // The variant is not cached: boxed, so a hit's future stays small.
        Box::pin(self.variant_miss(site, key, identity, coding, etag, ticket)).await
    }

    /// `variant`, stored, as current as `identity`, a hit: when the identity's
    /// entry was stored after the variant (revalidated since), a copy with
    /// the identity's fields, storage time and freshness takes the variant's
    /// place (through `ticket`) and is returned. Only a newer identity: an
    /// HTTP origin's answers selected by `Vary: Accept-Encoding` are stored
    /// apart, at different moments, and share one variant, which must not be
    /// stored again on every hit as clients alternate between them.
    fn refreshed(&self, variant: Arc<Entry>, identity: &Fetch, ticket: &Ticket) -> Arc<Entry> {
        let Some(made_from) = identity.entry.as_ref() else {
            return variant;
        };
        if made_from.stored_at <= variant.stored_at {
            return variant;
        }
        let entry = Entry {
            key: variant.key.clone(),
            kind: variant.kind,
            meta: variant_meta(&made_from.meta, &variant.meta),
            body: variant.body.clone(),
            stored_at: made_from.stored_at,
            freshness: made_from.freshness,
            prepared: Default::default(),
        };
        self.store(entry, ticket)
    }

    /// A variant that is not cached (`key` names it): follow its flight, or
    /// lead it.
    async fn variant_miss(
        self: &Arc<Self>,
        site: &Arc<Site>,
        key: CacheKey,
        identity: Fetch,
        coding: ContentCoding,
        etag: String,
        ticket: Ticket,
    ) -> Answer {
        let object_key = key.object_key.as_str();
        let now = SystemTime::now();
        let made_from_identity = |meta: &ObjectMeta| meta.etag.as_deref() == Some(etag.as_str());
        match self.join(&key, ticket.since()) {
            Role::Follower(flight) => match flight.wait().await {
                // A flight made from another version of the identity (it was
                // replaced meanwhile) is not this request's variant.
                Outcome::Entry(entry) if made_from_identity(&entry.meta) => {
                    match serve_entry(&entry, now, flight.since()) {
                        Ok(fetch) => Answer::new(Ok(fetch), CacheOutcome::Hit),
                        Err(_) => passed(identity),
                    }
                }
                Outcome::Streaming(meta) if made_from_identity(&meta) => {
                    let body = flight.subscribe();
                    let payload = if meta.content_length == 0 {
                        Payload::Unsized(body)
                    } else {
                        Payload::Stream(body)
                    };
                    let fetch = Fetch {
                        meta: ObjectMeta::clone(&meta),
                        payload,
                        // As old as the identity it is made from.
                        age: identity.age,
                        since: flight.since(),
                        entry: None,
                    };
                    Answer::new(Ok(fetch), CacheOutcome::Hit)
                }
                Outcome::Entry(_)
                | Outcome::StaleIfError(_)
                | Outcome::Streaming(_)
                | Outcome::Failed(_)
                | Outcome::Retry => passed(identity),
            },
            Role::Leader(guard) => {
                let fetch = self
                    .build_variant(site, guard, object_key, identity, coding, etag, ticket)
                    .await;
                Answer::new(Ok(fetch), CacheOutcome::Miss { stored: true })
            }
        }
    }

    /// Builds a variant: the sidecar object when the bucket has one, else the
    /// identity body compressed as it streams; stored when complete.
    #[allow(clippy::too_many_arguments)]
    async fn build_variant(
        self: &Arc<Self>,
        site: &Arc<Site>,
        guard: FlightGuard,
        object_key: &str,
        identity: Fetch,
        coding: ContentCoding,
        etag: String,
        ticket: Ticket,
    ) -> Fetch {
        // Sidecars are a bucket's: an HTTP origin is a server with routes of
        // its own, where `key.br` is answered by whatever answers there (a
        // 404 page, a catch-all `index.html` with a 200), which would be
        // sent as the variant. Its bodies are compressed here.
        let sidecar = if site.config.is_http_origin() {
            None
        } else {
            let sidecar_key = format!("{object_key}{}", sidecar_suffix(coding));
            self.quietly(site, &sidecar_key).await.ok()
        };
        let mut meta = encoded_meta(identity.meta.clone(), Some(etag), coding);
        // The first answer of a variant is as old as its identity, like
        // the variant's later hits (RFC 9111 section 5.1).
        let age = identity.age;
        let (body, known_length) = match sidecar {
            Some(sidecar)
                if sidecar.meta.status() == 200
                    && sidecar
                        .meta
                        .content_encoding
                        .as_deref()
                        .is_none_or(|e| e == coding.as_str()) =>
            {
                let len = sidecar.meta.content_length;
                (sidecar.payload.into_stream(), Some(len))
            }
            _ => {
                let len = identity.meta.content_length;
                let encoded =
                    crate::compress::encode_sized(identity.payload.into_stream(), coding, len);
                (encoded, None)
            }
        };
        meta.content_length = known_length.unwrap_or(0);
        // The variant lives as long as the entry it is made from, not longer:
        // the identity's own entry when it was a hit (not read again, so a
        // disk hit kept in its file stays there), else the entry its fill
        // has stored by now, if any.
        let made_from = match identity.entry {
            hit @ Some(_) => hit,
            None => {
                let identity_key = CacheKey::new(site.name(), object_key, Variant::Identity);
                self.get(&identity_key, &ticket, Wire::Memory).await
            }
        };
        let (freshness, stored_at) = match made_from {
            Some(entry) => (entry.freshness, entry.stored_at),
            None => (Storable::No.or_expired(), SystemTime::now()),
        };
        let entry = Entry {
            key: guard.key().clone(),
            kind: EntryKind::Object,
            meta: meta.clone(),
            body: Body::empty(),
            stored_at,
            freshness,
            prepared: Default::default(),
        };
        guard.publish(Outcome::Streaming(Arc::new(meta.clone())));
        let subscriber = guard.subscribe();
        let since = ticket.since();
        tokio::spawn(
            self.clone()
                .complete(guard, body, entry, known_length, Sink::Memory, ticket),
        );
        Fetch {
            meta,
            payload: match known_length {
                Some(_) => Payload::Stream(subscriber),
                None => Payload::Unsized(subscriber),
            },
            age,
            since,
            entry: None,
        }
    }
}
