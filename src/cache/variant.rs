//! Encoding variants: a compressible representation's br or gzip form, made
//! once per key from a precompressed sidecar object in the bucket (`key.br`,
//! `key.gz`; held only as the variant, its absence cached) or by compressing
//! the identity body as it streams, then stored when complete. A variant is
//! current as of the identity it was made from (its purge generation) and is
//! served only while its ETag matches the identity's.

use std::sync::Arc;
use std::time::SystemTime;

use super::fill::Outcome;
use super::policy::Storable;
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
        wire: Wire,
    ) -> Answer {
        let whole = matches!(identity.payload, Payload::Stream(_) | Payload::File(_));
        let Some(identity_etag) = identity.meta.etag.clone().filter(|_| whole) else {
            return passed(identity);
        };
        let etag = crate::compress::variant_etag(&identity_etag, coding);
        let key = CacheKey::new(site.name(), object_key, Variant::from(coding));
        // The variant is made from `identity`: it is current as of it.
        let ticket = Ticket::new(self.barrier.clone(), identity.since);
        let now = SystemTime::now();
        if let Some(entry) = self.get(&key, &ticket, wire).await {
            if entry.kind == EntryKind::Object && entry.meta.etag.as_deref() == Some(etag.as_str())
            {
                if let Ok(fetch) = serve_entry(&entry, now, ticket.since()) {
                    return Answer::new(Ok(fetch), CacheOutcome::Hit);
                }
            }
        }
        // The variant is not cached: boxed, so a hit's future stays small.
        Box::pin(self.variant_miss(site, key, identity, coding, etag, ticket)).await
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
                        age: None,
                        since: flight.since(),
                        entry: None,
                    };
                    Answer::new(Ok(fetch), CacheOutcome::Hit)
                }
                Outcome::Entry(_) | Outcome::Streaming(_) | Outcome::Failed(_) | Outcome::Retry => {
                    passed(identity)
                }
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
        let mut meta = identity.meta.clone();
        meta.etag = Some(etag);
        meta.content_encoding = Some(coding.as_str().to_string());
        meta.content_range = None;
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
            age: None,
            since,
            entry: None,
        }
    }
}
