//! The cache: entries keyed by site, object key and encoding variant, a memory
//! tier (moka, weighted by bytes) for objects up to `--memory-object-max`, a
//! disk tier (every object, and the only home of larger ones), and request
//! coalescing.
//!
//! Contract (after pingora-cache): an entry enters a tier only when its body is
//! complete and its length matches the origin's Content-Length; a fill that
//! fails or is abandoned stores nothing and releases its waiters (a `Drop`
//! guard); concurrent misses for one key make one origin request.

pub mod disk;
pub mod fill;
pub mod memory;
pub mod policy;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sha2::{Digest, Sha256};

pub use disk::{DiskBody, DiskTier, DiskWriter, SpillReader};
pub use fill::{Coalescer, FlightGuard, Role};
pub use memory::MemoryTier;
pub use policy::{Freshness, State};

use crate::origin::ObjectMeta;

/// The encoding variant of an entry (compression adds more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Variant {
    Identity,
    Brotli,
    Gzip,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Identity => "identity",
            Variant::Brotli => "br",
            Variant::Gzip => "gzip",
        }
    }
}

impl From<crate::compress::ContentCoding> for Variant {
    fn from(coding: crate::compress::ContentCoding) -> Variant {
        match coding {
            crate::compress::ContentCoding::Brotli => Variant::Brotli,
            crate::compress::ContentCoding::Gzip => Variant::Gzip,
        }
    }
}

/// What identifies an entry. A wrong key poisons the cache: the site name, the
/// full object key (prefix included) and the variant are all part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CacheKey {
    pub site: String,
    pub object_key: String,
    pub variant: Variant,
}

impl CacheKey {
    pub fn new(site: &str, object_key: &str, variant: Variant) -> CacheKey {
        CacheKey {
            site: site.to_string(),
            object_key: object_key.to_string(),
            variant,
        }
    }

    /// A stable hash of the key (SHA-256, hex): the same in every process, so it
    /// can name files; never derived from the key's text, so no path traversal.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.site.as_bytes(),
            self.object_key.as_bytes(),
            self.variant.as_str().as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for byte in h.finalize() {
            hex.push(HEX[usize::from(byte >> 4)] as char);
            hex.push(HEX[usize::from(byte & 0xf)] as char);
        }
        hex
    }
}

/// What the bucket said about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EntryKind {
    /// 200 with a body.
    Object,
    /// 404 from the bucket.
    NotFound,
    /// 403 from the bucket.
    Denied,
}

/// Where a cached body is.
#[derive(Debug, Clone)]
pub enum Body {
    /// In memory, as chunks shared by every response (never copied when served).
    Memory(Arc<[Bytes]>),
    /// In its disk-tier file (objects above `--memory-object-max`), read block
    /// by block as it is sent.
    Disk(Arc<DiskBody>),
}

impl Body {
    pub fn empty() -> Body {
        Body::Memory(Arc::from(Vec::new()))
    }

    /// A body received as `chunks`, regrouped into [`BODY_CHUNK`] pieces.
    pub fn from_chunks(chunks: &[Bytes]) -> Body {
        Body::Memory(Arc::from(rechunk(chunks)))
    }

    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(chunks) => chunks.iter().map(|c| c.len() as u64).sum(),
            Body::Disk(body) => body.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A complete cached answer.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: CacheKey,
    pub kind: EntryKind,
    pub meta: ObjectMeta,
    pub body: Body,
    pub stored_at: SystemTime,
    pub freshness: Freshness,
}

impl Entry {
    /// Bytes of body held.
    pub fn body_len(&self) -> u64 {
        self.body.len()
    }

    /// Seconds since it was stored (or last revalidated).
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.stored_at).unwrap_or_default()
    }

    pub fn state(&self, now: SystemTime) -> State {
        self.freshness.state(self.age(now))
    }

    /// The same entry, refreshed by a 304 at `now` with the new freshness.
    pub fn refreshed(&self, now: SystemTime, freshness: Freshness, meta: &ObjectMeta) -> Entry {
        let mut entry = self.clone();
        entry.stored_at = now;
        entry.freshness = freshness;
        // RFC 9111 section 4.3.4: update the stored headers from the 304.
        if meta.cache_control.is_some() {
            entry.meta.cache_control.clone_from(&meta.cache_control);
        }
        if meta.expires.is_some() {
            entry.meta.expires.clone_from(&meta.expires);
        }
        entry
    }
}

/// Size of the chunks a cached body is kept in: large enough that a hit is a
/// handful of writes, small enough that a connection's write buffer stays small.
pub const BODY_CHUNK: usize = 256 * 1024;

/// Regroups a body's chunks (as the origin sent them, often a few KiB each)
/// into chunks of [`BODY_CHUNK`] bytes; one copy, at fill time.
pub fn rechunk(chunks: &[Bytes]) -> Vec<Bytes> {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let mut out = Vec::with_capacity(total / BODY_CHUNK + 1);
    let mut current = bytes::BytesMut::with_capacity(total.min(BODY_CHUNK));
    let mut left = total;
    for chunk in chunks {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = rest.len().min(BODY_CHUNK - current.len());
            current.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            left -= take;
            if current.len() == BODY_CHUNK {
                out.push(current.split().freeze());
                // Only what is left: the memory tier weighs bodies by length,
                // so a short last chunk must not hold a full chunk's capacity.
                current = bytes::BytesMut::with_capacity(left.min(BODY_CHUNK));
            }
        }
    }
    if !current.is_empty() {
        out.push(current.freeze());
    }
    out
}

/// Splits one contiguous body into [`BODY_CHUNK`] slices, without copying.
pub fn split_body(body: Bytes) -> Vec<Bytes> {
    (0..body.len())
        .step_by(BODY_CHUNK)
        .map(|start| body.slice(start..(start + BODY_CHUNK).min(body.len())))
        .collect()
}

/// The cache of a node: a memory tier in front of an optional disk tier.
pub struct Cache {
    pub memory: MemoryTier,
    pub disk: Option<Arc<DiskTier>>,
    pub coalescer: Coalescer,
    /// Objects larger than this are not kept in memory (on disk only).
    pub memory_object_max: u64,
}

impl Cache {
    pub fn new(memory_size: u64, memory_object_max: u64, disk: Option<DiskTier>) -> Cache {
        Cache {
            memory: MemoryTier::new(memory_size),
            disk: disk.map(Arc::new),
            coalescer: Coalescer::default(),
            memory_object_max,
        }
    }

    /// The disk tier, when it is on.
    fn enabled_disk(&self) -> Option<&Arc<DiskTier>> {
        self.disk.as_ref().filter(|d| d.is_enabled())
    }

    /// Whether a body of `len` bytes can be stored: in memory, or on disk when
    /// the tier is on and the object is within its per-object limit.
    pub fn can_store(&self, len: u64) -> bool {
        len <= self.memory_object_max || self.enabled_disk().is_some_and(|d| len <= d.max_object())
    }

    /// The entry for `key`: from memory, else from disk (checked; promoted to
    /// memory when it fits there, else served from its file).
    pub async fn get(self: &Arc<Self>, key: &CacheKey) -> Option<Arc<Entry>> {
        if let Some(entry) = self.memory.get(key) {
            return Some(entry);
        }
        let disk = self.disk.clone()?;
        // Most misses are not on disk either: no trip to the blocking pool.
        if !disk.contains(key) {
            return None;
        }
        let wanted = key.clone();
        let load_max = self.memory_object_max;
        let entry = tokio::task::spawn_blocking(move || disk.get(&wanted, load_max))
            .await
            .ok()
            .flatten()?;
        let entry = Arc::new(entry);
        if matches!(entry.body, Body::Memory(_)) {
            self.memory.insert(entry.clone());
        }
        Some(entry)
    }

    /// Stores a complete entry: a body in memory goes to the memory tier when
    /// it fits and to disk (in the background) when the disk tier is on and it
    /// is within the per-object limit; a body already in its file (a
    /// revalidated large entry) gets its header rewritten.
    pub fn insert(self: &Arc<Self>, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(entry);
        let len = entry.body_len();
        let is_memory = matches!(entry.body, Body::Memory(_));
        if is_memory && len <= self.memory_object_max {
            self.memory.insert(entry.clone());
        }
        if let Some(disk) = self.enabled_disk() {
            if is_memory && len > disk.max_object() {
                return entry;
            }
            let disk = disk.clone();
            let stored = entry.clone();
            tokio::task::spawn_blocking(move || match stored.body {
                Body::Memory(_) => disk.insert(&stored),
                Body::Disk(_) => disk.rewrite_header(&stored),
            });
        }
        entry
    }

    /// A writer for a body that goes to disk only, as it arrives (`None` when
    /// the disk tier is off or the object is above its per-object limit).
    pub async fn disk_writer(&self, key: &CacheKey, len: u64) -> Option<DiskWriter> {
        let disk = self.enabled_disk()?.clone();
        if len > disk.max_object() {
            return None;
        }
        let key = key.clone();
        tokio::task::spawn_blocking(move || disk.writer(&key))
            .await
            .ok()
            .flatten()
    }

    /// Removes every entry of `site` whose object key satisfies `matches`, from
    /// every tier, before returning how many distinct entries were removed.
    pub fn purge(&self, site: &str, matches: impl Fn(&str) -> bool) -> u64 {
        let mut keys = self.memory.purge(site, &matches);
        if let Some(disk) = &self.disk {
            keys.extend(disk.purge(site, &matches));
        }
        keys.sort_by(|a, b| {
            (&a.object_key, a.variant.as_str()).cmp(&(&b.object_key, b.variant.as_str()))
        });
        keys.dedup();
        keys.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_regrouped_into_large_chunks_without_losing_a_byte() {
        let data: Vec<u8> = (0..(BODY_CHUNK * 2 + 1234))
            .map(|i| (i % 251) as u8)
            .collect();
        let small: Vec<Bytes> = data.chunks(1000).map(Bytes::copy_from_slice).collect();
        let regrouped = rechunk(&small);
        assert_eq!(regrouped.len(), 3);
        assert_eq!(regrouped.concat(), data);
        let split = split_body(Bytes::from(data.clone()));
        assert_eq!(split.len(), 3);
        assert_eq!(split.concat(), data);
        assert!(rechunk(&[]).is_empty());
    }

    #[test]
    fn keys_hash_stably_and_differ_by_every_part() {
        let a = CacheKey::new("site", "a/b.html", Variant::Identity);
        assert_eq!(
            a.hash(),
            CacheKey::new("site", "a/b.html", Variant::Identity).hash()
        );
        // The same name in every process and version: disk entries outlive them.
        assert_eq!(
            a.hash(),
            "c1f98d6b40ed61858d4a406f1092b9a2860349d478ffe81ecbb7066f43f9888d"
        );
        assert_ne!(
            a.hash(),
            CacheKey::new("site2", "a/b.html", Variant::Identity).hash()
        );
        assert_ne!(
            a.hash(),
            CacheKey::new("site", "a/b.htm", Variant::Identity).hash()
        );
        // Length-prefixed parts: moving a character between parts changes the hash.
        assert_ne!(
            CacheKey::new("ab", "c", Variant::Identity).hash(),
            CacheKey::new("a", "bc", Variant::Identity).hash()
        );
    }
}
