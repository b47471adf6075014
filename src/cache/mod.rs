//! The cache: entries keyed by site, object key and encoding variant, a memory
//! tier (moka, weighted by bytes) for objects up to `--memory-object-max`, a
//! disk tier (every object, and the only home of larger ones), request
//! coalescing, and the read-through that fills them (docs/ARCHITECTURE.md,
//! "The cache").
//!
//! The cache owns read-through: every object, encoding variant, sidecar,
//! directory probe, revalidation, background range fill and
//! stale-while-revalidate refresh goes through [`Cache::fetch`]. Its contract:
//!
//! - **Coalesced**: concurrent misses (and revalidations, and variant builds)
//!   for one key make one origin request; the others follow it and stream its
//!   body as it arrives ([`fill`]).
//! - **Committed when complete**: an entry enters a tier only when its body is
//!   complete and exactly as long as announced; a fill that fails or is
//!   abandoned stores nothing and releases its followers (a `Drop` guard).
//! - **Purges are barriers**: once [`Cache::purge`] has returned, no request
//!   can get a version it removed: fills, refreshes and variants that began
//!   before it are not stored ([`barrier`]), and requests that come after it
//!   do not join fills that began before it.

pub mod barrier;
pub mod disk;
pub mod fill;
pub mod memory;
pub mod policy;
mod pull;
mod read;
mod shared;
mod variant;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::http::header::{HeaderName, HeaderValue};
use bytes::Bytes;
use sha2::{Digest, Sha256};

pub use barrier::{Generation, PurgeBarrier, PurgeScope, Ticket, VARY_SEPARATOR};
pub use disk::{DiskBody, DiskTier, DiskWriter, SpillReader};
pub use fill::{Coalescer, FlightGuard, Role};
pub use memory::MemoryTier;
pub use policy::{Freshness, State};
pub use pull::LengthCheck;
pub use read::{Answer, CacheOutcome, Fetch, Payload, Request, Want, Wire};
pub use shared::vary_names;

/// The largest span sent from its disk-tier file with `sendfile` to a plain
/// HTTP/1 client on a paced connection ([`Wire::PacedFile`]), and the largest
/// memory-tier hit sent from its file there instead of copied; longer spans
/// are read block by block and copied. Under BBR, `sendfile` beat the copy
/// up to 512 KiB and fell off a cliff above it on one host (1 MiB at 0.4 to
/// 0.6 times the copy's rate, 1.6 times its CPU), while another ran
/// 1 MiB 1.15 times as fast from the file: the limit sits below the cliff.
/// Disk hits of 2 to 64 MiB went 0.55 to 0.80 times as fast by `sendfile`
/// (docs/PERFORMANCE.md, sessions 15, 16 and 22).
pub const SEND_FROM_FILE_MAX: u64 = 512 << 10;

/// The smallest memory-tier hit sent from its disk-tier file instead, to a
/// plain HTTP/1 client ([`Wire::File`], and up to [`SEND_FROM_FILE_MAX`] on
/// a paced connection, [`Wire::PacedFile`]). Since the file stays open
/// between hits (its next hit costs one `fstat`, [`DiskTier`]), hits of 64
/// and 100 KiB go as fast from the file as from memory while this machine's
/// two cores are close, and 1.3 times as fast while they are apart (medians
/// of paired runs); at 32 KiB the copy was 6% faster close, at 16 KiB 13%
/// faster apart (docs/PERFORMANCE.md, "Memory hits from 64 KiB leave from
/// their file", 2026-11-30). Under CUBIC, 256 KiB bodies went 1.1 to 1.3
/// times as fast from the file.
pub const PREFER_FILE_MIN: u64 = 64 << 10;

use crate::metrics::Metrics;
use crate::origin::ObjectMeta;
use crate::site::Site;

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

    /// A stable hash of the key (SHA-256): the same in every process, so its
    /// hex names the key's disk-tier file; never derived from the key's text,
    /// so no path traversal.
    pub fn hash(&self) -> KeyHash {
        let mut h = Sha256::new();
        for part in [
            self.site.as_bytes(),
            self.object_key.as_bytes(),
            self.variant.as_str().as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        KeyHash(h.finalize().into())
    }
}

/// A [`CacheKey`]'s SHA-256. The disk tier indexes its entries by it (32
/// bytes, copied, compared and hashed as they are) and names each entry's
/// file by its hex ([`Display`](std::fmt::Display)): a hit formats no name
/// and allocates no string until a file is opened.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl std::fmt::Display for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        f.write_str(std::str::from_utf8(&hex).map_err(|_| std::fmt::Error)?)
    }
}

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
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
    /// What its hits' responses are made of, made on the first one.
    pub prepared: PreparedSlot,
}

/// What a hit's response is made of that depends only on the entry and the
/// key it is served for: its representation headers (`Age` and
/// `Cache-Status` aside) and media type. The handler makes it on an entry's
/// first hit ([`Fetch::prepared`]) and later hits clone it instead of
/// deciding the type, formatting the dates and checking every value again.
#[derive(Debug)]
pub struct Prepared {
    /// The key it was made for (a `Content-Type` may be guessed from the
    /// key's extension): a fetch for another key does not use it.
    pub key: Box<str>,
    /// The fields (`http::headers::representation_fields`), a name
    /// repeated for each of its values. Kept as a list cut to its length: a
    /// `HeaderMap` holds room for many more fields and values than a
    /// response has (kilobytes per entry held).
    pub headers: Box<[(HeaderName, HeaderValue)]>,
    /// The `Content-Type` served (for `multipart/byteranges` parts).
    pub content_type: Box<str>,
    /// Whether that type is worth compressing (`compress::is_compressible`).
    pub compressible_type: bool,
}

/// An entry's [`Prepared`], made once. An entry never changes once it is
/// shared (a revalidated one is a new entry); a clone, which may be changed
/// before it is stored, starts empty.
#[derive(Debug, Default)]
pub struct PreparedSlot(std::sync::OnceLock<Prepared>);

impl Clone for PreparedSlot {
    fn clone(&self) -> Self {
        PreparedSlot::default()
    }
}

impl Entry {
    /// Bytes of body held.
    pub fn body_len(&self) -> u64 {
        self.body.len()
    }

    /// Its [`Prepared`] for `key`, made by `make` on first use; `None` when
    /// it was made for another key.
    pub fn prepared(&self, key: &str, make: impl FnOnce() -> Prepared) -> Option<&Prepared> {
        let prepared = self.prepared.0.get_or_init(make);
        (*prepared.key == *key).then_some(prepared)
    }

    /// Seconds since it was stored (or last revalidated).
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.stored_at).unwrap_or_default()
    }

    pub fn state(&self, now: SystemTime) -> State {
        self.freshness.state(self.age(now))
    }
}

/// Size of the chunks a cached body is kept in, and of the pieces a body
/// streamed from the disk tier is handed out in: one disk block (1 MiB), so
/// a block read from a file is sent as it is.
///
/// Each chunk is one write to a plain HTTP/1 client (the dispatcher passes
/// it through without copying it into its write buffer), and under BBR each
/// write arms the connection's pacing timer again: with 256 KiB chunks a
/// 1 MiB memory hit took four writes and 3.75 pacing timers, and ran at 0.73
/// to 0.76x the rate of a server that sends it in one write when each had a
/// core of its own (`BENCH_PIN=1`, docs/PERFORMANCE.md, 2026-11-29). Larger
/// chunks would save more writes on larger bodies, but the allocator rounds
/// a body's last, partial chunk up to its size class (up to a quarter more
/// than it holds), and the memory tier, which weighs bodies by what the
/// allocator gives them, would hold fewer of them.
pub const BODY_CHUNK: usize = disk::BLOCK as usize;

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

/// The cache of a node: a memory tier in front of an optional disk tier,
/// the flights filling them and the purge barrier guarding them.
pub struct Cache {
    memory: MemoryTier,
    disk: Option<Arc<DiskTier>>,
    coalescer: Coalescer,
    /// Objects larger than this are not kept in memory (on disk only).
    memory_object_max: u64,
    barrier: Arc<PurgeBarrier>,
    metrics: Arc<Metrics>,
    /// HTTP origins: the `Vary` names of the responses stored per target.
    vary_index: shared::VaryIndex,
    /// HTTP origins: the parts (206 answers) stored per target.
    part_index: shared::PartIndex,
    /// Entries on their way to disk (see [`Writing`]).
    writing: Arc<Writing>,
}

/// Entries whose disk write is under way, found by [`Cache::get`] after the
/// memory tier. The memory tier may refuse or soon evict a new entry (moka's
/// admission), and the disk tier only finds it once its file is renamed into
/// place: without this, a request between the fill's end and that rename
/// would fetch the object from the origin again. Added and purged under the
/// purge barrier, like the tiers.
#[derive(Default)]
struct Writing {
    entries: std::sync::Mutex<std::collections::HashMap<CacheKey, Arc<Entry>>>,
    /// How many entries are held: `get` skips the lock when none are.
    held: std::sync::atomic::AtomicUsize,
}

impl Writing {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<CacheKey, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        if self.held.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return None;
        }
        self.lock().get(key).cloned()
    }

    fn insert(&self, entry: Arc<Entry>) {
        let mut entries = self.lock();
        entries.insert(entry.key.clone(), entry);
        self.held
            .store(entries.len(), std::sync::atomic::Ordering::Release);
    }

    /// Forgets `entry` once its write has ended (stored or not), unless a
    /// newer entry for its key has replaced it meanwhile.
    fn done(&self, entry: &Arc<Entry>) {
        let mut entries = self.lock();
        if entries
            .get(&entry.key)
            .is_some_and(|held| Arc::ptr_eq(held, entry))
        {
            entries.remove(&entry.key);
        }
        self.held
            .store(entries.len(), std::sync::atomic::Ordering::Release);
    }

    /// Removes the matching entries of a site; returns their keys.
    fn purge(&self, site: &str, matches: &dyn Fn(&str) -> bool) -> Vec<CacheKey> {
        let mut entries = self.lock();
        let doomed: Vec<CacheKey> = entries
            .keys()
            .filter(|key| key.site == site && matches(&key.object_key))
            .cloned()
            .collect();
        for key in &doomed {
            entries.remove(key);
        }
        self.held
            .store(entries.len(), std::sync::atomic::Ordering::Release);
        doomed
    }
}

/// What one tier holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierUsage {
    /// `memory` or `disk` (the `tier` label of the cache metrics).
    pub tier: &'static str,
    pub bytes: u64,
    pub entries: u64,
    /// The bytes it may hold (`--memory-cache-size`, `--disk-cache-size`).
    pub capacity: u64,
    /// `false` from a write error of the disk tier until a write works again.
    pub enabled: bool,
}

impl Cache {
    pub fn new(
        memory_size: u64,
        memory_object_max: u64,
        disk: Option<DiskTier>,
        metrics: Arc<Metrics>,
    ) -> Cache {
        Cache {
            memory: MemoryTier::new(memory_size),
            disk: disk.map(Arc::new),
            coalescer: Coalescer::default(),
            // A body larger than the whole memory tier is never kept there:
            // it goes to the disk tier, or is passed through unstored (it
            // was "stored", as Cache-Status said, and gone at once).
            memory_object_max: memory_object_max.min(memory_size),
            barrier: Arc::new(PurgeBarrier::default()),
            metrics,
            vary_index: moka::sync::Cache::new(shared::VARY_INDEX_CAPACITY),
            part_index: moka::sync::Cache::new(shared::VARY_INDEX_CAPACITY),
            writing: Arc::default(),
        }
    }

    /// The disk tier, when it takes new entries (its writes are not paused).
    fn enabled_disk(&self) -> Option<&Arc<DiskTier>> {
        self.disk.as_ref().filter(|d| d.is_enabled())
    }

    /// Whether a body of `len` bytes can be stored: in memory, or on disk when
    /// the tier is on and the object is within its per-object limit.
    fn can_store(&self, len: u64) -> bool {
        len <= self.memory_object_max || self.enabled_disk().is_some_and(|d| len <= d.max_object())
    }

    /// Joins (or starts) the flight for `key` as of `since`; never one that
    /// began before a purge covering it.
    fn join(&self, key: &CacheKey, since: Generation) -> Role {
        self.barrier
            .holding(|outdated| self.coalescer.join(key, since, outdated))
    }

    /// The flight a request for `key` would join now, without joining it.
    fn flight(&self, key: &CacheKey) -> Option<Arc<fill::Flight>> {
        self.barrier
            .holding(|outdated| self.coalescer.flight(key, outdated))
    }

    /// A ticket for what a request that starts now will store (tests; requests
    /// take theirs by key, [`Cache::ticket_for`]).
    #[cfg(test)]
    fn ticket(&self) -> Ticket {
        Ticket::new(self.barrier.clone(), self.barrier.generation())
    }

    /// The ticket of a request for `site`. A retired site's (replaced by a
    /// reload that changed its origin, see [`Site::retire`]) is of
    /// generation 0: the purge that follows its retirement covers every key
    /// of the site, so nothing fetched from the old origin is stored after
    /// it, even by a request that began after that purge. What such a
    /// request stores before the purge, the purge removes.
    ///
    /// A request for a key that a purge is removing now waits until the
    /// removal is done ([`PurgeBarrier::generation_for`]).
    async fn ticket_for(&self, site: &Site, object_key: &str) -> Ticket {
        if site.is_retired() {
            return Ticket::new(self.barrier.clone(), 0);
        }
        let since = self.barrier.generation_for(site.name(), object_key).await;
        Ticket::new(self.barrier.clone(), since)
    }

    /// The entry for `key`: from memory, else from disk (checked; promoted to
    /// memory when it fits there, through `ticket`, else served from its file).
    /// For a plain HTTP/1 client ([`Wire::keeps_disk_hits_in_file`]), a disk
    /// hit stays in its file whatever its size.
    async fn get(&self, key: &CacheKey, ticket: &Ticket, wire: Wire) -> Option<Arc<Entry>> {
        if let Some(entry) = self.memory.get(key) {
            if wire.prefers_file(entry.body_len()) {
                if let Some(in_file) = self.in_its_file(&entry) {
                    return Some(in_file);
                }
            }
            return Some(entry);
        }
        if let Some(entry) = self.writing.get(key) {
            return Some(entry);
        }
        let disk = self.disk.clone()?;
        // Most misses are not on disk either: no trip to the blocking pool.
        let found = disk.find(key)?;
        let in_file = wire.keeps_disk_hits_in_file();
        let cached = if in_file {
            disk.in_file_cached(key, found)
        } else {
            disk.load_cached(key, &found, self.memory_object_max)
                .map(|entry| entry.map(Arc::new))
        };
        let entry = match cached {
            Ok(entry) => entry?,
            Err(disk::WouldBlock) => {
                let wanted = key.clone();
                // Kept in its file: every body longer than nothing.
                let load_max = if in_file { 0 } else { self.memory_object_max };
                let read = tokio::task::spawn_blocking(move || disk.get(&wanted, load_max));
                Arc::new(read.await.ok().flatten()?)
            }
        };
        if matches!(entry.body, Body::Memory(_)) {
            ticket.commit(key, || self.memory.insert(entry.clone()));
        }
        Some(entry)
    }

    /// `entry` (a memory-tier hit) served from its disk-tier file instead,
    /// when the tier has that very version (stored, or last revalidated, at
    /// the same moment: a newer fill or a revalidation whose file is still
    /// being written is not replaced by the older file), this process has
    /// checked the file, and its header is in the page cache: never a wait
    /// on the disk or the blocking pool.
    fn in_its_file(&self, entry: &Entry) -> Option<Arc<Entry>> {
        let disk = self.disk.as_ref()?;
        let in_file = disk.get_file_cached(&entry.key).ok()??;
        let same = in_file.stored_at == entry.stored_at && in_file.body_len() == entry.body_len();
        same.then_some(in_file)
    }

    /// Stores a complete entry through `ticket`: a body in memory goes to the
    /// memory tier when it fits and to disk (in the background) when the disk
    /// tier is on and it is within the per-object limit; a body already in its
    /// file (a revalidated large entry) gets its header rewritten. Nothing is
    /// stored when a purge since the ticket covers it.
    fn store(&self, mut entry: Entry, ticket: &Ticket) -> Arc<Entry> {
        policy::shareable_meta(&mut entry.meta);
        let entry = Arc::new(entry);
        let len = entry.body_len();
        let is_memory = matches!(entry.body, Body::Memory(_));
        if is_memory && len <= self.memory_object_max {
            ticket.commit(&entry.key, || self.memory.insert(entry.clone()));
        }
        if let Some(disk) = self.enabled_disk() {
            if is_memory && len > disk.max_object() {
                return entry;
            }
            let disk = disk.clone();
            let stored = entry.clone();
            let ticket = ticket.clone();
            if !is_memory {
                tokio::task::spawn_blocking(move || disk.rewrite_header(&stored, &ticket));
                return entry;
            }
            // Findable until its file is in place (or its write has failed).
            if ticket
                .commit(&entry.key, || self.writing.insert(entry.clone()))
                .is_none()
            {
                return entry;
            }
            let writing = self.writing.clone();
            tokio::task::spawn_blocking(move || {
                disk.insert(&stored, &ticket);
                writing.done(&stored);
            });
        }
        entry
    }

    /// A writer for a body that goes to disk only, as it arrives (`None` when
    /// the disk tier is off or the object is above its per-object limit).
    async fn disk_writer(&self, key: &CacheKey, len: u64) -> Option<DiskWriter> {
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

    /// Removes every entry of `site` in `scope` (every variant, both tiers),
    /// and detaches the fills in flight for them, before returning how many
    /// distinct entries were removed. From then on no request gets what was
    /// removed (see [`barrier`]). Blocking I/O: call from a blocking task.
    pub fn purge(&self, site: &str, scope: PurgeScope) -> u64 {
        // The maps in memory with the barrier held (no write refused
        // meanwhile goes uncounted), the disk tier's files after.
        self.barrier.purge_in_two(
            site,
            scope,
            |scope| {
                let matches = |key: &str| scope.matches(key);
                self.coalescer.detach(site, &matches);
                // The `Vary` names of purged targets are read again from
                // their records (gone with them), and written again with the
                // next answer.
                for (key, _) in self.vary_index.iter() {
                    if key.site == site && matches(&key.object_key) {
                        self.vary_index.invalidate(key.as_ref());
                    }
                }
                let mut keys = self.memory.purge(site, &matches);
                keys.extend(self.writing.purge(site, &matches));
                keys
            },
            |scope, mut keys| {
                if let Some(disk) = &self.disk {
                    keys.extend(disk.purge(site, &|key: &str| scope.matches(key)));
                }
                // A target's record of its `Vary` names is not an answer.
                keys.retain(|key| !shared::is_vary_record(key));
                keys.sort_by(|a, b| {
                    (&a.object_key, a.variant.as_str()).cmp(&(&b.object_key, b.variant.as_str()))
                });
                keys.dedup();
                keys.len() as u64
            },
        )
    }

    /// Removes what is stored under `object_key` (every variant, both
    /// tiers), as a purge of that key does, once the origin has answered
    /// its revalidation with a new version that may not be stored: the old
    /// one must not be served again (stale-while-revalidate,
    /// stale-if-error), as Varnish's hit-for-miss shadows it.
    pub(super) async fn drop_replaced(self: &Arc<Self>, site: &Site, object_key: &str) {
        let scope = PurgeScope {
            keys: vec![object_key.to_string()],
            prefixes: Vec::new(),
        };
        let _ = self.purge_off_thread(site.name(), scope).await;
    }

    /// [`Cache::purge`] on the blocking pool (its file removals block), from
    /// a task: an error only if the purge panicked.
    pub async fn purge_off_thread(
        self: &Arc<Self>,
        site: &str,
        scope: PurgeScope,
    ) -> Result<u64, tokio::task::JoinError> {
        let (cache, site) = (self.clone(), site.to_string());
        tokio::task::spawn_blocking(move || cache.purge(&site, scope)).await
    }

    /// At start: drops the disk entries of every site whose origin differs
    /// from the one the last run recorded (another bucket, prefix, endpoint
    /// or URL in its site file), or that is no longer configured, as a
    /// reload does; then records `origins` (`Sites::origins`). Without a
    /// record (a cache directory of an earlier version) nothing is dropped.
    /// Returns the sites dropped and their entries.
    pub fn reconcile_origins(&self, origins: &BTreeMap<String, String>) -> Vec<(String, u64)> {
        let Some(disk) = self.disk.as_ref() else {
            return Vec::new();
        };
        let mut dropped = Vec::new();
        for (site, recorded) in disk.recorded_origins().unwrap_or_default() {
            if origins.get(&site) != Some(&recorded) {
                let purged = self.purge(&site, PurgeScope::all(""));
                dropped.push((site, purged));
            }
        }
        disk.record_origins(origins);
        dropped
    }

    /// After a reload: records `origins` (see [`Cache::reconcile_origins`]).
    pub fn record_origins(&self, origins: &BTreeMap<String, String>) {
        if let Some(disk) = self.disk.as_ref() {
            disk.record_origins(origins);
        }
    }

    /// Disk-tier files kept open between hits (`s3edge_cache_open_files`).
    pub fn open_files(&self) -> u64 {
        self.disk
            .as_ref()
            .map_or(0, |disk| disk.open_files() as u64)
    }

    /// What each tier holds (memory first, then disk when configured).
    pub fn usage(&self) -> Vec<TierUsage> {
        let (bytes, entries) = self.memory.usage();
        let mut tiers = vec![TierUsage {
            tier: "memory",
            bytes,
            entries,
            capacity: self.memory.capacity(),
            enabled: true,
        }];
        if let Some(disk) = &self.disk {
            let (bytes, entries) = disk.usage();
            tiers.push(TierUsage {
                tier: "disk",
                bytes,
                entries,
                capacity: disk.capacity(),
                enabled: disk.is_healthy(),
            });
        }
        tiers
    }

    /// Whether the node has a disk tier: its entries are served (and must be
    /// purged) even while its writes are paused after a write error.
    pub fn has_disk(&self) -> bool {
        self.disk.is_some()
    }

    /// Fills in flight (tests, metrics).
    pub fn fills_in_flight(&self) -> usize {
        self.coalescer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

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

    fn entry(name: &str, body: &[u8]) -> Entry {
        Entry {
            key: CacheKey::new("s", name, Variant::Identity),
            kind: EntryKind::Object,
            meta: ObjectMeta {
                content_length: body.len() as u64,
                ..ObjectMeta::default()
            },
            body: Body::Memory(Arc::from(vec![Bytes::copy_from_slice(body)])),
            stored_at: SystemTime::now(),
            freshness: Freshness {
                ttl: Duration::from_secs(60),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
            },
            prepared: Default::default(),
        }
    }

    /// An entry makes its [`Prepared`] once, for the key it was first asked
    /// for; another key gets none; a clone of the entry starts without it.
    #[test]
    fn an_entry_prepares_once_for_one_key_and_a_clone_starts_empty() {
        let made = std::cell::Cell::new(0);
        let make = |key: &str| {
            made.set(made.get() + 1);
            Prepared {
                key: key.into(),
                headers: Default::default(),
                content_type: "text/css".into(),
                compressible_type: true,
            }
        };
        let entry = entry("a.css", b"body");
        for _ in 0..3 {
            let prepared = entry.prepared("a.css", || make("a.css")).unwrap();
            assert_eq!(&*prepared.key, "a.css");
        }
        assert_eq!(made.get(), 1);
        assert!(entry.prepared("b.css", || make("b.css")).is_none());
        assert_eq!(made.get(), 1, "made for a.css already");
        let clone = entry.clone();
        assert!(clone.prepared("b.css", || make("b.css")).is_some());
        assert_eq!(made.get(), 2);
    }

    /// The bytes of `entry`'s body, from memory or from its file.
    async fn body_of(entry: &Entry) -> Vec<u8> {
        match &entry.body {
            Body::Memory(chunks) => chunks.concat(),
            Body::Disk(body) => {
                let mut stream = body.stream(0, body.len());
                let mut bytes = Vec::new();
                while let Some(chunk) = stream.next().await {
                    bytes.extend_from_slice(&chunk.expect("the file reads back"));
                }
                bytes
            }
        }
    }

    /// A purge removes its entries with the barrier free, while requests
    /// go on: here they read disk entries not removed yet and promote them
    /// to memory, as TLS and HTTP/2 hits do. None of what they promote may
    /// outlive the purge: once it has returned, no key it covered is found
    /// in either tier. Raced over several rounds of 600 entries.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_promoted_while_a_purge_removes_outlives_it() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..600).map(|i| format!("p{i}")).collect();
        for round in 0..4 {
            {
                // Written by a node whose memory tier keeps nothing.
                let disk = DiskTier::open(dir.path(), 1 << 30).unwrap();
                let writer = Cache::new(0, 1 << 20, Some(disk), Arc::new(Metrics::default()));
                for name in &names {
                    writer.store(entry(name, name.as_bytes()), &writer.ticket());
                }
                while !writer.writing.lock().is_empty() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            let disk = DiskTier::open(dir.path(), 1 << 30).unwrap();
            let cache = Arc::new(Cache::new(
                64 << 20,
                1 << 20,
                Some(disk),
                Arc::new(Metrics::default()),
            ));
            let keys: Vec<CacheKey> = names
                .iter()
                .map(|n| CacheKey::new("s", n, Variant::Identity))
                .collect();
            let reading = {
                let (cache, keys) = (cache.clone(), keys.clone());
                tokio::spawn(async move {
                    let mut promoted = 0;
                    for key in keys.iter().cycle().skip(round * 150).take(4 * keys.len()) {
                        let ticket = cache.ticket();
                        promoted +=
                            usize::from(cache.get(key, &ticket, Wire::Memory).await.is_some());
                    }
                    promoted
                })
            };
            tokio::time::sleep(Duration::from_millis(5)).await;
            let purging = cache.clone();
            let purged =
                tokio::task::spawn_blocking(move || purging.purge("s", PurgeScope::all("")))
                    .await
                    .unwrap();
            assert!(purged > 0, "round {round}");
            for key in &keys {
                let found = cache.get(key, &cache.ticket(), Wire::Memory).await;
                assert!(
                    found.is_none(),
                    "round {round}: {} outlived the purge",
                    key.object_key
                );
            }
            let promoted = reading.await.unwrap();
            eprintln!("round {round}: {purged} purged, {promoted} reads found an entry");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_is_found_while_its_disk_write_is_under_way_and_not_once_purged() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskTier::open(dir.path(), 1 << 30).unwrap();
        // A memory tier that keeps nothing: every entry lives on disk only,
        // as one the memory tier refuses or evicts at once does.
        let cache = Cache::new(0, 1 << 20, Some(disk), Arc::new(Metrics::default()));
        let names: Vec<String> = (0..40).map(|i| format!("page{i}")).collect();
        let doomed = |name: &str| name.ends_with('7');
        for name in &names {
            let body = format!("body of {name}");
            let ticket = cache.ticket();
            cache.store(entry(name, body.as_bytes()), &ticket);
            // At once: its file is most often still being written and synced
            // (when it is already in place, the memory tier of nothing leaves
            // the body in it).
            let key = CacheKey::new("s", name, Variant::Identity);
            let found = cache.get(&key, &ticket, Wire::Memory).await;
            let found = found.expect("found right after it was stored");
            assert_eq!(
                body_of(&found).await,
                body.into_bytes(),
                "{name} right after it was stored"
            );
            if doomed(name) {
                // Purged while its write is under way: gone at once.
                let scope = PurgeScope {
                    keys: vec![name.clone()],
                    prefixes: Vec::new(),
                };
                assert_eq!(cache.purge("s", scope), 1, "{name}");
                assert!(
                    cache
                        .get(&key, &cache.ticket(), Wire::Memory)
                        .await
                        .is_none(),
                    "{name}"
                );
            }
        }
        for _ in 0..1000 {
            if cache.writing.lock().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cache.writing.lock().is_empty(), "every write has ended");
        // Reads skip the lock again.
        assert_eq!(
            cache
                .writing
                .held
                .load(std::sync::atomic::Ordering::Acquire),
            0
        );
        // The writes that ended after a purge did not bring their entry back.
        for name in &names {
            let key = CacheKey::new("s", name, Variant::Identity);
            let found = cache.get(&key, &cache.ticket(), Wire::Memory).await;
            assert_eq!(found.is_some(), !doomed(name), "{name} once written");
        }
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
            a.hash().to_string(),
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
