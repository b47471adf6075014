//! Stage 7: compression. A compressible representation (by type, size and
//! coding, see `compress.rs`) gets `Vary: Accept-Encoding` on every answer; a
//! client that accepts br or gzip gets a variant: from the cache, from a
//! precompressed sidecar object in the bucket (`key.br`, `key.gz`; looked up
//! through the cache, absence included), or compressed now, once per key, while
//! streaming, and stored when complete. Range requests get the identity
//! representation, as CloudFront does.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::header;
use actix_web::http::Version;
use actix_web::HttpRequest;
use bytes::Bytes;
use futures_util::StreamExt;

use super::cached::{serve_entry, Fetcher};
use super::object::{self, Fetch};
use crate::cache::fill::Outcome;
use crate::cache::{Cache, CacheKey, Entry, EntryKind, FlightGuard, Role, Variant};
use crate::compress::{self, ContentCoding};
use crate::config::CompressionConfig;
use crate::http::mime;
use crate::origin::{BodyStream, ObjectMeta, OriginError};

/// Whether answers for this representation vary by `Accept-Encoding`
/// (`compress::compressible`, with the type served for `key`).
pub(super) fn compressible(config: &CompressionConfig, key: &str, meta: &ObjectMeta) -> bool {
    let content_type = mime::ContentType::of(meta.content_type.as_deref(), key);
    compress::compressible(
        config,
        &compress::Representation {
            content_type: content_type.essence(),
            content_encoding: meta.content_encoding.as_deref(),
            cache_control: meta.cache_control.as_deref(),
            length: meta.content_length,
        },
    )
}

/// The coding the client gets, if any: none for ranges and HTTP/1.0.
pub(super) fn chosen_coding(
    req: &HttpRequest,
    config: &CompressionConfig,
) -> Option<ContentCoding> {
    if object::range_header(req).is_some() {
        return None;
    }
    let lines: Vec<&str> = req
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .collect();
    let accept = (!lines.is_empty()).then(|| lines.join(", "));
    let http10 = req.version() < Version::HTTP_11;
    compress::negotiate(accept.as_deref(), &config.algorithms, http10).coding()
}

fn sidecar_suffix(coding: ContentCoding) -> &'static str {
    match coding {
        ContentCoding::Brotli => ".br",
        ContentCoding::Gzip => ".gz",
    }
}

/// The `coding` variant of `identity` (the object `object_key`).
pub(super) async fn variant(
    fetcher: &Fetcher,
    object_key: &str,
    identity: Fetch,
    coding: ContentCoding,
) -> Fetch {
    let Some(identity_etag) = identity.meta.etag.clone() else {
        return identity;
    };
    let etag = compress::variant_etag(&identity_etag, coding);
    let key = CacheKey::new(fetcher.site.name(), object_key, Variant::from(coding));
    let now = SystemTime::now();
    if let Some(entry) = fetcher.cache.get(&key).await {
        if entry.kind == EntryKind::Object && entry.meta.etag.as_deref() == Some(etag.as_str()) {
            if let Ok(fetch) = serve_entry(&entry, now) {
                return fetch;
            }
        }
    }
    match fetcher.cache.coalescer.join(&key) {
        Role::Follower(flight) => match flight.wait().await {
            Outcome::Entry(entry) => serve_entry(&entry, now).unwrap_or(identity),
            Outcome::Streaming(meta) => Fetch {
                length_unknown: meta.content_length == 0,
                meta: ObjectMeta::clone(&meta),
                body: flight.subscribe(),
                origin_range: None,
                age: None,
                file: None,
            },
            Outcome::Failed(_) | Outcome::Retry => identity,
        },
        Role::Leader(guard) => build(fetcher, guard, key, object_key, identity, coding, etag).await,
    }
}

/// Builds a variant: the sidecar object when the bucket has one, else the
/// identity body compressed as it streams.
async fn build(
    fetcher: &Fetcher,
    guard: FlightGuard,
    key: CacheKey,
    object_key: &str,
    identity: Fetch,
    coding: ContentCoding,
    etag: String,
) -> Fetch {
    let sidecar_key = format!("{object_key}{}", sidecar_suffix(coding));
    let sidecar = fetcher.fetch_quietly(&sidecar_key).await.ok();
    let mut meta = identity.meta.clone();
    meta.etag = Some(etag);
    meta.content_encoding = Some(coding.as_str().to_string());
    meta.content_range = None;
    let (body, known_length): (BodyStream, Option<u64>) = match sidecar {
        Some(sidecar)
            if sidecar
                .meta
                .content_encoding
                .as_deref()
                .is_none_or(|e| e == coding.as_str()) =>
        {
            (sidecar.body, Some(sidecar.meta.content_length))
        }
        _ => (
            compress::encode_sized(identity.body, coding, identity.meta.content_length),
            None,
        ),
    };
    meta.content_length = known_length.unwrap_or(0);
    let entry = Entry {
        key,
        kind: EntryKind::Object,
        meta: meta.clone(),
        body: crate::cache::Body::empty(),
        stored_at: SystemTime::now(),
        freshness: identity_freshness(fetcher, object_key).await,
    };
    guard.publish(Outcome::Streaming(Arc::new(meta.clone())));
    let subscriber = guard.subscribe();
    tokio::spawn(pull_variant(
        guard,
        body,
        entry,
        known_length,
        fetcher.cache.clone(),
    ));
    Fetch {
        meta,
        body: subscriber,
        origin_range: None,
        age: None,
        length_unknown: known_length.is_none(),
        file: None,
    }
}

/// A variant is as fresh as the identity entry it was made from.
async fn identity_freshness(fetcher: &Fetcher, object_key: &str) -> crate::cache::Freshness {
    match fetcher.cached(object_key).await {
        Some(entry) => entry.freshness,
        None => crate::cache::Freshness {
            ttl: std::time::Duration::ZERO,
            stale_while_revalidate: std::time::Duration::ZERO,
            stale_if_error: std::time::Duration::ZERO,
        },
    }
}

/// Pulls a variant's body into its flight and stores it once complete (and,
/// for a sidecar, exactly as long as announced).
async fn pull_variant(
    guard: FlightGuard,
    mut body: BodyStream,
    mut entry: Entry,
    expected: Option<u64>,
    cache: Arc<Cache>,
) {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                received += chunk.len() as u64;
                chunks.push(chunk.clone());
                guard.push(chunk);
            }
            Err(e) => {
                guard.finish(Err(e));
                return;
            }
        }
    }
    if expected.is_some_and(|n| n != received) {
        guard.finish(Err(OriginError::Invalid(
            "sidecar body length mismatch".into(),
        )));
        return;
    }
    entry.meta.content_length = received;
    entry.body = crate::cache::Body::from_chunks(&chunks);
    cache.insert(entry);
    guard.finish(Ok(()));
}
