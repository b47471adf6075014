//! The disk tier: one file per entry under `--cache-dir`, bounded by
//! `--disk-cache-size` with least-recently-used eviction (its "second
//! chance" approximation, [`Index::evict`]).
//!
//! A file is `MAGIC`, the body, then a trailer: a JSON header (the key, the
//! metadata, freshness, the body's length and a CRC-32 for every 1 MiB block of
//! it), the header's length and `TRAILER_MAGIC`. The body comes first so a fill
//! can stream into the file as the origin sends it (and waiters can read the
//! bytes already written) without holding the object in memory; the header is
//! written when the body is complete. Files are written under `tmp/` and renamed
//! into place only when complete and synced, so a crash leaves at most a
//! temporary file, removed at the next start. At start the index is rebuilt from
//! the trailers without reading the bodies. A body that was not written by this
//! process is checked whole before it is first served, so a corrupt or truncated
//! file is dropped (and refetched), never served. After that, every block read
//! through s3edge's memory is checked against its CRC again before any of its
//! bytes is used. A body (or range) sent with `sendfile` on a plain-HTTP/1
//! connection ([`DiskBody::send_file`], `Wire::sends_from_file`) goes from
//! the page cache to the socket unread: it is sent that way only
//! while the file is the one checked, as its [`Stamp`] (inode, length,
//! modification and change times) says, so a file written to, cut or replaced
//! since is checked whole again first. An I/O error on write turns the tier
//! off for the rest of the process; serving goes on. A header the tier would
//! refuse on reading (a time before 1970, a `Content-Length` other than the
//! body's) is no I/O error: only that write is given up.
//!
//! An entry served from its file stays open in its slot afterwards (at most
//! [`OPEN_FILES_MAX`] of them, the longest-kept not hit since closed first),
//! so the next hit on it costs one `fstat` instead of an `open`, an `fstat`,
//! a read of the trailer (the magic too, unless the file is the one checked),
//! the header's decoding and a `close` ([`DiskTier::get_file_cached`]). That `fstat`
//! still sees the file written to, cut, removed or replaced under its name,
//! as the `open` did.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Body, CacheKey, Entry, EntryKind, Freshness, KeyHash, Ticket};
use crate::origin::{BodyStream, ObjectMeta, OriginError};

/// First bytes of every cache file; a format change changes it.
const MAGIC: &[u8] = b"S3EDGE-CACHE-2\n";
/// Last bytes of every complete cache file.
const TRAILER_MAGIC: &[u8; 8] = b"S3EDGE-T";
/// Largest header accepted when reading (a corrupt length is not trusted).
const MAX_HEADER: u32 = 16 << 20;
/// The directory of this format's files under `--cache-dir`.
const LAYOUT_DIR: &str = "v2";
/// Directories of earlier formats, removed at start.
const OLD_LAYOUT_DIRS: &[&str] = &["v1"];
/// Bodies are checked (and read when streamed) in blocks of this size.
pub(super) const BLOCK: u64 = 1 << 20;

/// The largest file [`DiskTier::get_cached`] reads on the async side: the
/// default `--memory-object-max`, so every loadable body of a default node.
/// Copying 8 MiB from the page cache takes the worker about a millisecond;
/// the blocking pool's trip costs more CPU in all (two thread wakeups). With
/// 1 MiB here, `benches/workingset.sh` (sizes up to 4 MiB) ran at 17,832
/// req/s against 19,387 with 8 MiB, nginx at 23,849 and 23,036 (one run each,
/// back to back, 2026-11-29).
pub const INLINE_READ_MAX: u64 = 8 << 20;

/// How a read may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Io {
    /// For the disk, in a blocking task.
    Blocking,
    /// Not at all: only what the kernel's page cache holds, else `WouldBlock`.
    PageCacheOnly,
}

/// The most files the tier keeps open for the entries it serves from their
/// files, and at most a quarter of the process's open file limit: the rest
/// is for connections. nginx's `open_file_cache` is off by default and has
/// no default `max`. A working set's hits (`benches/workingset.sh`: 20,000
/// objects, a 256 MiB memory tier) fall on about 19,000 files; 16,384 open
/// entries ran it with about 6% less CPU per request (1.01x to 1.05x the
/// requests per second), but each open entry holds 944 bytes (its decoded
/// metadata, key, CRCs and the key's hash), and the run's RSS went from 303
/// to 314 MiB of the 320 MiB that the memory budget allows
/// (docs/PERFORMANCE.md, sessions 16 and 17).
pub const OPEN_FILES_MAX: usize = 4096;

/// A read that would have waited for the disk; see [`DiskTier::get_cached`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WouldBlock;

/// Fills `buf` from `offset`. With [`Io::PageCacheOnly`], `preadv2` with
/// `RWF_NOWAIT` (Linux): any shortfall or error is `WouldBlock`, and the
/// caller retries with [`Io::Blocking`], which reports real errors.
fn read_at(file: &File, buf: &mut [u8], offset: u64, io: Io) -> io::Result<()> {
    match io {
        Io::Blocking => file.read_exact_at(buf, offset),
        Io::PageCacheOnly => read_cached_at(file, buf, offset),
    }
}

#[cfg(target_os = "linux")]
fn read_cached_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use rustix::io::{preadv2, ReadWriteFlags};
    let wanted = buf.len();
    match preadv2(
        file,
        &mut [io::IoSliceMut::new(buf)],
        offset,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(read) if read == wanted => Ok(()),
        _ => Err(io::ErrorKind::WouldBlock.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn read_cached_at(_: &File, _: &mut [u8], _: u64) -> io::Result<()> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// An error that says nothing about a cache file: the process or the system
/// is out of file descriptors or memory for now (many clients at once under
/// a low open file limit). The entry is kept and the tier stays on; the
/// request goes on as a miss.
fn is_transient(e: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(e),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOMEM)
    )
}

/// Logs a transient error (see [`is_transient`]) at most once a second: they
/// come in floods.
fn warn_transient(what: &str, e: &io::Error) {
    static LAST: crate::throttle::Throttle = crate::throttle::Throttle::new();
    if LAST.ready(std::time::Duration::from_secs(1)) {
        tracing::warn!("disk cache: {what}, going on without it: {e}");
    }
}

/// A file at most this much larger than the largest body loaded into memory
/// is read whole, trailer included, in one read.
const WHOLE_READ_SLACK: u64 = 64 << 10;
/// Where the body starts in a file.
const BODY_OFFSET: u64 = MAGIC.len() as u64;

/// What a cache file says about its body.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    key: CacheKey,
    kind: EntryKind,
    meta: ObjectMeta,
    stored_at: SystemTime,
    freshness: Freshness,
    body_len: u64,
    block_size: u64,
    block_crc32: Vec<u32>,
}

#[derive(Debug)]
struct Slot {
    key: CacheKey,
    size: u64,
    last_used: u64,
    /// Which slot this is for `key`'s hash (a newer fill puts another):
    /// its items in [`Index::queue`] carry it.
    seq: u64,
    /// The file as it was when this process checked (or wrote) every block of
    /// its body; `None` until then.
    checked: Option<Stamp>,
    /// The entry as last served from its file, the file still open.
    open: Option<Open>,
}

impl Slot {
    fn new(key: CacheKey, size: u64, last_used: u64, checked: Option<Stamp>) -> Slot {
        Slot {
            key,
            size,
            last_used,
            seq: 0,
            checked,
            open: None,
        }
    }

    /// Whether the slot's open file is the one queued as `seq` in
    /// [`Index::opened`].
    fn is_open_as(&self, seq: u64) -> bool {
        self.open.as_ref().is_some_and(|o| o.seq == seq)
    }

    /// Whether this is the slot queued as `seq` in [`Index::queue`].
    fn is_queued_as(&self, seq: u64) -> bool {
        self.seq == seq
    }
}

/// Slots in the order the "second chance" (CLOCK) approximation of least
/// recently used gives them up, longest queued first, as (hash, what was
/// queued: a slot's or an open file's sequence number, the index's clock
/// when it was queued). An item whose slot no longer holds what it names
/// (removed, replaced, closed) is stale and skipped.
#[derive(Default)]
struct SecondChance(VecDeque<(KeyHash, u64, u64)>);

impl SecondChance {
    fn push(&mut self, hash: KeyHash, seq: u64, clock: u64) {
        self.0.push_back((hash, seq, clock));
    }

    /// The next slot to give up: the longest queued item that is not stale
    /// (`holds`) and whose slot was not used since it was queued; one used
    /// since, or `spared`, goes to the back (queued again at `clock`)
    /// instead. Within two passes, else `None`: a slot sent to the back is
    /// not used again while the index is locked, so its second turn at the
    /// front gives it up, unless it is spared.
    fn next(
        &mut self,
        slots: &HashMap<KeyHash, Slot>,
        clock: u64,
        holds: impl Fn(&Slot, u64) -> bool,
        spared: Option<&KeyHash>,
    ) -> Option<KeyHash> {
        for _ in 0..=2 * self.0.len() {
            let (hash, seq, queued) = self.0.pop_front()?;
            let Some(slot) = slots.get(&hash).filter(|slot| holds(slot, seq)) else {
                continue;
            };
            if slot.last_used > queued || spared == Some(&hash) {
                self.0.push_back((hash, seq, clock));
                continue;
            }
            return Some(hash);
        }
        None
    }

    /// Drops the stale items once the queue is longer than `most`.
    fn compact(
        &mut self,
        slots: &HashMap<KeyHash, Slot>,
        most: usize,
        holds: impl Fn(&Slot, u64) -> bool,
    ) {
        if self.0.len() > most {
            self.0
                .retain(|(hash, seq, _)| slots.get(hash).is_some_and(|s| holds(s, *seq)));
        }
    }
}

/// A slot as [`DiskTier::find`] found it for a hit.
pub struct Found {
    hash: KeyHash,
    /// The size of the entry's file.
    pub size: u64,
    /// The file as this process last checked it whole, if it has.
    checked: Option<Stamp>,
    /// The entry kept open in the slot, read from the file as checked.
    open: Option<Arc<Entry>>,
}

/// An entry served from its file, kept with the file open for the next hit.
#[derive(Debug)]
struct Open {
    /// The file as it was when the entry was read from it: the entry is
    /// served again only while the slot's `checked` and an `fstat` of the
    /// open file still say so.
    stamp: Stamp,
    entry: Arc<Entry>,
    /// Its place in [`Index::opened`].
    seq: u64,
}

/// Which version of a file this is, from its metadata: writing to a file
/// changes its modification and change times, cutting it its length,
/// replacing it its inode, and removing it (or renaming another file over
/// it) its link count, which an open file's `fstat` sees. A change made
/// within one tick of the file system's clock after a check (a few
/// milliseconds on Linux) can go unseen, as it can for `make` and `rsync`; a
/// change below the file system (a failing disk) is not seen at all, but is
/// caught by the CRCs wherever the bytes pass through s3edge's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    links: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            links: meta.nlink(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

#[derive(Default)]
struct Index {
    slots: HashMap<KeyHash, Slot>,
    total: u64,
    /// Bytes reserved by files being written (`DiskWriter`): counted against
    /// the bound with `total`, so the entries at rest make room for them.
    reserved: u64,
    clock: u64,
    /// Slots with an open file, by [`Open::seq`]: the order open files are
    /// closed in beyond the bound ([`keep_open`](Self::keep_open)).
    opened: SecondChance,
    /// How many slots have an open file.
    open_files: usize,
    /// Every slot, by [`Slot::seq`]: the order eviction goes by
    /// ([`evict`](Self::evict)).
    queue: SecondChance,
    /// The last sequence number given to a slot or an open file.
    seq: u64,
}

impl Index {
    /// Puts `slot` in place of any other for `hash`; returns the one it
    /// replaced. A slot returned here or by [`take`](Self::take) closes its
    /// open file when dropped: drop it after the lock.
    fn put(&mut self, hash: &KeyHash, mut slot: Slot) -> Option<Slot> {
        self.total += slot.size;
        slot.seq = self.next_seq();
        self.queue.push(*hash, slot.seq, slot.last_used);
        let old = self.slots.insert(*hash, slot)?;
        self.forget(&old);
        Some(old)
    }

    /// Removes the slot of `hash`; returns it.
    fn take(&mut self, hash: &KeyHash) -> Option<Slot> {
        let slot = self.slots.remove(hash)?;
        self.forget(&slot);
        Some(slot)
    }

    /// The counts without a slot that has left the map.
    fn forget(&mut self, old: &Slot) {
        self.total -= old.size;
        if old.open.is_some() {
            self.open_files -= 1;
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Takes slots out until the total is within `max`, least recently used
    /// first by the "second chance" approximation ([`SecondChance`]), as
    /// open files are closed ([`keep_open`](Self::keep_open)). `keep` (the
    /// entry just admitted) is never taken. Returns what it took
    /// (their open files close when dropped: drop them after the lock).
    ///
    /// Each eviction costs a few queue steps, where picking the least
    /// recently used slot exactly scanned every slot under the index's lock,
    /// which every lookup takes: 0.23 ms per entry evicted with 35,000
    /// entries (a default 1 GiB tier of 30 KiB objects), 21 ms with a
    /// million (a scan of a `HashMap` of that many, release build, 2026-12-02).
    fn evict(&mut self, max: u64, keep: Option<&KeyHash>) -> Vec<(KeyHash, Slot)> {
        let mut taken = Vec::new();
        while self.total + self.reserved > max {
            let holds = Slot::is_queued_as;
            let Some(victim) = self.queue.next(&self.slots, self.clock, holds, keep) else {
                break;
            };
            taken.extend(self.take(&victim).map(|slot| (victim, slot)));
        }
        // Items of slots since removed or replaced: dropped once they are
        // as many as the live ones.
        let most = 2 * self.slots.len() + 16;
        self.queue.compact(&self.slots, most, Slot::is_queued_as);
        taken
    }

    /// Takes the open file of the slot of `hash`, when it has one.
    fn close(&mut self, hash: &KeyHash) -> Option<Open> {
        let open = self.slots.get_mut(hash)?.open.take()?;
        self.open_files -= 1;
        Some(open)
    }

    /// Keeps `entry`, read from the file of `hash` as `stamp` says it was,
    /// open in its slot, unless the slot has changed since; closes open files
    /// beyond `max`, the longest queued first, except that one hit since it
    /// was queued goes to the back of the queue instead, once (the "second
    /// chance", or CLOCK, approximation of least recently used: on the
    /// working-set benchmark's sequence, 4,096 open files miss a sixth less
    /// often than first in, first out). Returns what it closed, to be
    /// dropped after the lock.
    fn keep_open(
        &mut self,
        hash: &KeyHash,
        stamp: Stamp,
        entry: &Arc<Entry>,
        max: usize,
    ) -> Vec<Open> {
        let mut closed = Vec::new();
        if max == 0 {
            return closed;
        }
        let seq = self.next_seq();
        let Some(slot) = self.slots.get_mut(hash) else {
            return closed;
        };
        if slot.checked != Some(stamp) {
            return closed;
        }
        let open = Open {
            stamp,
            entry: entry.clone(),
            seq,
        };
        match slot.open.replace(open) {
            Some(old) => closed.push(old),
            None => self.open_files += 1,
        }
        self.opened.push(*hash, seq, self.clock);
        while self.open_files > max {
            let holds = Slot::is_open_as;
            let Some(oldest) = self.opened.next(&self.slots, self.clock, holds, None) else {
                break;
            };
            closed.extend(self.close(&oldest));
        }
        // Items of slots since removed or reopened: dropped once they are
        // as many as the live ones.
        self.opened.compact(&self.slots, 2 * max, Slot::is_open_as);
        closed
    }
}

/// Entries on disk.
pub struct DiskTier {
    root: PathBuf,
    max_bytes: u64,
    /// The most files kept open ([`OPEN_FILES_MAX`], or a quarter of the
    /// process's open file limit).
    open_max: usize,
    index: Mutex<Index>,
    /// Held for reading while a trailer is read, for writing while one is
    /// rewritten in place (a revalidated large entry), so no reader sees half.
    trailers: RwLock<()>,
    /// Set by a write error, cleared by the next write that works.
    failing: AtomicBool,
    /// While `failing`: until when writes are paused.
    pause: Mutex<WritePause>,
    temp_counter: AtomicU64,
    /// `<dir>/s3edge.lock`, locked for as long as the tier is open: a second
    /// node on the same directory would delete this one's files being
    /// written and turn its tier off ([`DiskTier::open`] refuses it).
    _lock: File,
}

/// The first pause of the tier's writes after a write error (a full disk):
/// then writes are tried again, and each pause after another error is twice
/// the last, up to [`LONGEST_WRITE_PAUSE`], until a write works.
const FIRST_WRITE_PAUSE: Duration = Duration::from_secs(10);
const LONGEST_WRITE_PAUSE: Duration = Duration::from_secs(320);

/// Writes paused after a write error ([`DiskTier::disable`]).
#[derive(Debug, Default)]
struct WritePause {
    /// Writes are refused until then; `None` once it has passed (a write is
    /// being tried again) or before any error.
    until: Option<Instant>,
    /// The length of the last pause.
    last: Duration,
    /// Of the first pause (shortened by tests).
    first: Duration,
}

/// The file a node locks in its `--cache-dir`.
pub const LOCK_FILE: &str = "s3edge.lock";
/// The file in `--cache-dir` naming each site's origin as the entries were
/// stored (`Cache::reconcile_origins`).
pub const ORIGINS_FILE: &str = "origins.json";

/// Locks `dir` for this process ([`LOCK_FILE`], an advisory lock the
/// kernel drops when the process ends, however it ends), writing its pid
/// there for the message another node gets.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = io::Read::read_to_string(&mut file, &mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (process {pid})"),
            };
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "another s3edge{holder} is using this cache directory; give each node its own --cache-dir"
                ),
            ));
        }
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    file.set_len(0)?;
    io::Write::write_all(&mut file, format!("{}\n", std::process::id()).as_bytes())?;
    Ok(file)
}

impl DiskTier {
    /// Opens (creating) the tier under `dir`, removes leftover temporary files
    /// and earlier formats' files, and rebuilds the index from the trailers.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<DiskTier> {
        for old in OLD_LAYOUT_DIRS {
            let old = dir.join(old);
            if old.is_dir() {
                tracing::info!(dir = %old.display(), "removing a cache directory of an earlier format");
                let _ = fs::remove_dir_all(&old);
            }
        }
        let root = dir.join(LAYOUT_DIR);
        fs::create_dir_all(root.join("tmp"))?;
        let lock = lock_dir(dir)?;
        for leftover in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(leftover?.path());
        }
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let open_max = limit.map_or(OPEN_FILES_MAX, |l| {
            usize::try_from(l / 4)
                .unwrap_or(usize::MAX)
                .min(OPEN_FILES_MAX)
        });
        let tier = DiskTier {
            root,
            max_bytes,
            open_max,
            index: Mutex::new(Index::default()),
            trailers: RwLock::new(()),
            failing: AtomicBool::new(false),
            pause: Mutex::new(WritePause {
                first: FIRST_WRITE_PAUSE,
                ..WritePause::default()
            }),
            temp_counter: AtomicU64::new(0),
            _lock: lock,
        };
        tier.rebuild()?;
        Ok(tier)
    }

    /// Indexes the files found, least recently written first, then evicts
    /// down to the bound: a node restarted with a smaller
    /// `--disk-cache-size` keeps to it from the start, keeping the newest.
    fn rebuild(&self) -> io::Result<()> {
        let mut found = Vec::new();
        for shard in fs::read_dir(&self.root)? {
            let shard = shard?.path();
            if !shard.is_dir() || shard.file_name().is_some_and(|n| n == "tmp") {
                continue;
            }
            for file in fs::read_dir(&shard)? {
                let path = file?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                let read = File::open(&path).and_then(|f| {
                    let written = f.metadata()?.modified()?;
                    read_trailer(&f).map(|(header, size)| (written, header, size))
                });
                match read.map(|(written, header, size)| (header.key.hash(), written, header, size))
                {
                    Ok((hash, written, header, size)) if name == hash.to_string() => {
                        found.push((written, hash, header.key, size));
                    }
                    // Not the file's fault: no start rather than a lost cache.
                    Err(e) if is_transient(&e) => return Err(e),
                    _ => {
                        tracing::warn!(file = %path.display(), "dropping an unreadable cache file");
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        found.sort_by_key(|(written, ..)| *written);
        let evicted = {
            let mut index = self.lock();
            for (_, hash, key, size) in found {
                index.clock += 1;
                let slot = Slot::new(key, size, index.clock, None);
                index.put(&hash, slot);
            }
            index.evict(self.max_bytes, None)
        };
        if !evicted.is_empty() {
            let bytes: u64 = evicted.iter().map(|(_, slot)| slot.size).sum();
            tracing::info!(
                entries = evicted.len(),
                bytes,
                "disk cache: over --disk-cache-size ({}); the least recently written entries are removed",
                self.max_bytes
            );
        }
        self.discard(evicted);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn origins_path(&self) -> PathBuf {
        let dir = self.root.parent().unwrap_or(&self.root);
        dir.join(ORIGINS_FILE)
    }

    /// The sites' origins recorded by [`DiskTier::record_origins`]; `None`
    /// when there is no record (a directory of an earlier version) or it
    /// cannot be read.
    pub fn recorded_origins(&self) -> Option<BTreeMap<String, String>> {
        let path = self.origins_path();
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = %path.display(), "disk cache: cannot read the sites' origins: {e}");
                return None;
            }
        };
        serde_json::from_slice(&text)
            .map_err(|e| {
                tracing::warn!(file = %path.display(), "disk cache: the sites' origins are unreadable: {e}");
            })
            .ok()
    }

    /// Records which origin each site's entries come from, replacing the
    /// file whole (written aside, then renamed).
    pub fn record_origins(&self, origins: &BTreeMap<String, String>) {
        let path = self.origins_path();
        let aside = self.root.join("tmp").join(ORIGINS_FILE);
        let written = serde_json::to_vec_pretty(origins)
            .map_err(io::Error::other)
            .and_then(|json| fs::write(&aside, json))
            .and_then(|()| fs::rename(&aside, &path));
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), "disk cache: cannot record the sites' origins: {e}");
        }
    }

    fn path_of(&self, hash: &KeyHash) -> PathBuf {
        let name = hash.to_string();
        self.root.join(&name[..2]).join(name)
    }

    /// Whether the tier takes new entries: it has room at all, and its writes
    /// are not paused after a write error. Entries already on disk are served
    /// either way.
    pub fn is_enabled(&self) -> bool {
        if self.max_bytes == 0 {
            return false;
        }
        if !self.failing.load(Ordering::Relaxed) {
            return true;
        }
        let mut pause = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        match pause.until {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                pause.until = None;
                tracing::info!(dir = %self.root.display(), "disk cache: trying writes again");
                true
            }
            None => true,
        }
    }

    /// Whether the tier's last write worked (no error since): what the
    /// `s3edge_cache_tier_enabled` gauge and the status page show.
    pub fn is_healthy(&self) -> bool {
        self.max_bytes > 0 && !self.failing.load(Ordering::Relaxed)
    }

    /// A write worked: a pause after an error is over for good.
    fn wrote(&self) {
        if self.failing.load(Ordering::Relaxed) {
            let mut pause = self.pause.lock().unwrap_or_else(|e| e.into_inner());
            if self.failing.swap(false, Ordering::Relaxed) {
                pause.until = None;
                pause.last = Duration::ZERO;
                tracing::info!(dir = %self.root.display(), "disk cache: writes work again");
            }
        }
    }

    #[cfg(test)]
    fn set_first_write_pause(&self, first: Duration) {
        self.pause.lock().unwrap_or_else(|e| e.into_inner()).first = first;
    }

    /// The largest body stored: a quarter of the tier, so one object cannot
    /// flush the whole cache. Larger objects pass through.
    pub fn max_object(&self) -> u64 {
        self.max_bytes / 4
    }

    /// Pauses the tier's writes after a write error, unless the error says
    /// nothing about the disk ([`is_transient`]), or is not the system's at
    /// all but about the entry (a header that cannot be written): then only
    /// that write is given up. Entries on disk are still served; writes are
    /// tried again once the pause ends (see [`FIRST_WRITE_PAUSE`]). Errors of
    /// writes under way when the pause began do not lengthen it.
    fn disable(&self, error: &io::Error) {
        if is_transient(error) {
            warn_transient("a write could not be made", error);
            return;
        }
        if error.raw_os_error().is_none() {
            tracing::warn!(dir = %self.root.display(), "disk cache: an entry could not be written, going on: {error}");
            return;
        }
        let mut pause = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        if pause.until.is_some() {
            return;
        }
        let length = if self.failing.swap(true, Ordering::Relaxed) {
            (pause.last * 2).clamp(pause.first, LONGEST_WRITE_PAUSE)
        } else {
            pause.first
        };
        pause.until = Some(Instant::now() + length);
        pause.last = length;
        tracing::error!(
            dir = %self.root.display(),
            "disk cache writes paused after a write error: {error}; entries on disk are still \
             served, and writes are tried again in {} s",
            length.as_secs()
        );
    }

    /// `key`'s slot, marked used, and what a hit needs of it before any I/O:
    /// one hash of the key and one lock of the index. `None` when the tier
    /// has no entry for `key` (most misses: no trip to the blocking pool).
    pub fn find(&self, key: &CacheKey) -> Option<Found> {
        let hash = key.hash();
        let (size, checked, open) = self.touch_with(&hash, |slot| {
            let open = slot.open.as_ref();
            let open = open.filter(|open| slot.checked == Some(open.stamp));
            (slot.size, slot.checked, open.map(|open| open.entry.clone()))
        })?;
        Some(Found {
            hash,
            size,
            checked,
            open,
        })
    }

    /// Reads an entry (blocking I/O: call from a blocking task). A body of at
    /// most `load_max` bytes is read and checked whole, with its trailer, in
    /// one read; a larger one stays in its file and is read block by block as
    /// it is sent.
    pub fn get(self: &Arc<Self>, key: &CacheKey, load_max: u64) -> Option<Entry> {
        let found = self.find(key)?;
        self.lookup(key, &found, load_max, Io::Blocking)
            .unwrap_or(None)
    }

    /// [`get`](Self::get) for the async side: an entry small enough to load
    /// and already in the kernel's page cache is read here, without a trip
    /// to the blocking pool (most disk hits of a working set larger than
    /// memory: the trip's two thread wakeups cost more than the read). `Err`
    /// when that would mean waiting for the disk, or the file is larger than
    /// [`INLINE_READ_MAX`]: then call `get` from a blocking task.
    pub fn get_cached(
        self: &Arc<Self>,
        key: &CacheKey,
        load_max: u64,
    ) -> Result<Option<Entry>, WouldBlock> {
        self.find(key)
            .map_or(Ok(None), |found| self.load_cached(key, &found, load_max))
    }

    /// [`get_cached`](Self::get_cached) of the slot [`find`](Self::find)
    /// gave for `key`.
    pub fn load_cached(
        self: &Arc<Self>,
        key: &CacheKey,
        found: &Found,
        load_max: u64,
    ) -> Result<Option<Entry>, WouldBlock> {
        self.lookup(key, found, load_max, Io::PageCacheOnly)
    }

    /// [`get_cached`](Self::get_cached) for a client the kernel sends the
    /// file to (`sendfile`): the entry stays in its file whatever its size,
    /// and only its trailer is read, here, from the page cache; the entry
    /// is then kept with its file open in its slot, and the next call
    /// returns it after an `fstat` of that file. `Err` when that would wait
    /// for the disk, or this process has not checked the file whole yet, or
    /// the file has changed since it was: then call `get` from a blocking
    /// task, which checks it.
    pub fn get_file_cached(
        self: &Arc<Self>,
        key: &CacheKey,
    ) -> Result<Option<Arc<Entry>>, WouldBlock> {
        self.find(key)
            .map_or(Ok(None), |found| self.in_file_cached(key, found))
    }

    /// [`get_file_cached`](Self::get_file_cached) of the slot
    /// [`find`](Self::find) gave for `key`.
    pub fn in_file_cached(
        self: &Arc<Self>,
        key: &CacheKey,
        found: Found,
    ) -> Result<Option<Arc<Entry>>, WouldBlock> {
        let Found {
            hash,
            checked,
            open,
            ..
        } = found;
        let Some(checked) = checked else {
            return Err(WouldBlock);
        };
        if let Some(entry) = open.filter(|e| e.key == *key && still(e, checked)) {
            return Ok(Some(entry));
        }
        let path = self.path_of(&hash);
        let read = self.read_in_file(&path, &hash, key, checked);
        let entry = self.found(read, &hash, Io::PageCacheOnly)?.map(Arc::new);
        if let Some(entry) = &entry {
            let closed = self.lock().keep_open(&hash, checked, entry, self.open_max);
            drop(closed);
        }
        Ok(entry)
    }

    /// How many entries are kept with their files open.
    pub fn open_files(&self) -> usize {
        self.lock().open_files
    }

    /// Every block of the file of `hash`, as `stamp` says it was, has been
    /// checked by this process.
    fn mark_checked(&self, hash: &KeyHash, stamp: Stamp) {
        if let Some(slot) = self.lock().slots.get_mut(hash) {
            slot.checked = Some(stamp);
        }
    }

    /// Marks the slot of `hash` used and reads `what` of it.
    fn touch_with<R>(&self, hash: &KeyHash, what: impl FnOnce(&Slot) -> R) -> Option<R> {
        let mut index = self.lock();
        index.clock += 1;
        let clock = index.clock;
        let slot = index.slots.get_mut(hash)?;
        slot.last_used = clock;
        Some(what(slot))
    }

    fn lookup(
        self: &Arc<Self>,
        key: &CacheKey,
        found: &Found,
        load_max: u64,
        io: Io,
    ) -> Result<Option<Entry>, WouldBlock> {
        let hash = &found.hash;
        let path = self.path_of(hash);
        let read = self.read(&path, hash, key, load_max, found.checked, io);
        self.found(read, hash, io)
    }

    /// What a read of the file of `hash` comes to: a corrupt or vanished file
    /// loses its slot.
    fn found(
        &self,
        read: io::Result<Option<Entry>>,
        hash: &KeyHash,
        io: Io,
    ) -> Result<Option<Entry>, WouldBlock> {
        match read {
            Ok(found) => Ok(found),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && io == Io::PageCacheOnly => {
                Err(WouldBlock)
            }
            // Purged (or evicted) while this read was starting: a plain miss.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.remove(hash);
                Ok(None)
            }
            Err(e) => {
                self.unreadable(hash, &e);
                Ok(None)
            }
        }
    }

    /// After a read of the file of `hash` failed with `error`: a corrupt file
    /// loses its slot and is removed; an error that says nothing about the
    /// file ([`is_transient`]) leaves both.
    fn unreadable(&self, hash: &KeyHash, error: &io::Error) {
        if is_transient(error) {
            warn_transient("an entry could not be opened or read", error);
            return;
        }
        tracing::warn!(entry = %hash, "dropping a corrupt cache entry: {error}");
        self.remove(hash);
    }

    /// An entry served from its file, its trailer read from the page cache
    /// only: `WouldBlock` unless the file is still the one this process
    /// checked whole (`checked`).
    fn read_in_file(
        self: &Arc<Self>,
        path: &Path,
        hash: &KeyHash,
        key: &CacheKey,
        checked: Stamp,
    ) -> io::Result<Option<Entry>> {
        let file = File::open(path)?;
        let header = {
            // The length and the trailer under one lock (see `read`).
            let _reading = self.trailers.read().unwrap_or_else(|e| e.into_inner());
            let stamp = Stamp::of(&file.metadata()?);
            if stamp != checked {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            read_trailer_at(&file, stamp.len, Io::PageCacheOnly, Magic::Checked)?
        };
        if header.key != *key {
            return Ok(None);
        }
        self.read_from_file(file, hash, header, None)
    }

    fn read(
        self: &Arc<Self>,
        path: &Path,
        hash: &KeyHash,
        key: &CacheKey,
        load_max: u64,
        checked: Option<Stamp>,
        io: Io,
    ) -> io::Result<Option<Entry>> {
        let file = File::open(path)?;
        // The file's length is taken under the lock that a header rewritten
        // in place (a revalidated entry kept in its file) holds while it cuts
        // the file and writes the new trailer, which may be of another
        // length: taken before, it pointed into the middle of the new trailer,
        // and a sound entry was dropped as "an incomplete file".
        let reading = self.trailers.read().unwrap_or_else(|e| e.into_inner());
        let stamp = Stamp::of(&file.metadata()?);
        let verified = checked == Some(stamp);
        let size = stamp.len;
        if io == Io::PageCacheOnly && size > INLINE_READ_MAX {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // A file small enough to load is read whole, trailer and all, in one
        // read: no seeks, and the body is not copied again.
        if size <= load_max.saturating_add(WHOLE_READ_SLACK) {
            let whole = {
                let _reading = reading;
                let mut whole = read_buffer(size as usize);
                read_at(&file, &mut whole, 0, io)?;
                Bytes::from(whole)
            };
            let (header, body) = split_file(whole)?;
            if header.key != *key {
                return Ok(None);
            }
            if !verified {
                self.mark_checked(hash, stamp);
            }
            if header.body_len > load_max {
                if io == Io::PageCacheOnly {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                // Within the slack but larger than may be loaded: from its file.
                return self.read_from_file(file, hash, header, None);
            }
            return Ok(Some(Entry {
                key: header.key,
                kind: header.kind,
                meta: header.meta,
                body: Body::Memory(Arc::from(super::split_body(body))),
                stored_at: header.stored_at,
                freshness: header.freshness,
                prepared: Default::default(),
            }));
        }
        if io == Io::PageCacheOnly {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let header = {
            let _reading = reading;
            let magic = if verified {
                Magic::Checked
            } else {
                Magic::Read
            };
            read_trailer_at(&file, size, Io::Blocking, magic)?
        };
        if header.key != *key {
            return Ok(None);
        }
        self.read_from_file(file, hash, header, (!verified).then_some(stamp))
    }

    /// An entry whose body is served from its file; with `unchecked`, the
    /// version of the file this process has not checked yet: checked whole
    /// first, then marked.
    fn read_from_file(
        self: &Arc<Self>,
        file: File,
        hash: &KeyHash,
        header: Header,
        unchecked: Option<Stamp>,
    ) -> io::Result<Option<Entry>> {
        let body = DiskBody {
            file: Arc::new(file),
            len: header.body_len,
            block_size: header.block_size,
            crcs: header.block_crc32,
            tier: Arc::downgrade(self),
            hash: *hash,
        };
        if let Some(stamp) = unchecked {
            body.verify_all()?;
            self.mark_checked(hash, stamp);
        }
        Ok(Some(Entry {
            key: header.key,
            kind: header.kind,
            meta: header.meta,
            body: Body::Disk(Arc::new(body)),
            stored_at: header.stored_at,
            freshness: header.freshness,
            prepared: Default::default(),
        }))
    }

    /// Starts writing an entry's body (blocking I/O). `None` when the tier is
    /// off or the file cannot be created (which turns the tier off).
    pub fn writer(self: &Arc<Self>, key: &CacheKey) -> Option<DiskWriter> {
        if !self.is_enabled() {
            return None;
        }
        let hash = key.hash();
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .root
            .join("tmp")
            .join(format!("{hash}.{}.{n}", std::process::id()));
        let created = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .and_then(|file| file.write_all_at(MAGIC, 0).map(|()| file));
        match created {
            Ok(file) => Some(DiskWriter {
                tier: self.clone(),
                hash,
                temp,
                file: Arc::new(file),
                written: 0,
                reserved: 0,
                crcs: Vec::new(),
                block: crc32fast::Hasher::new(),
                in_block: 0,
                done: false,
            }),
            Err(e) => {
                let _ = fs::remove_file(&temp);
                self.disable(&e);
                None
            }
        }
    }

    /// Writes a complete entry whose body is in memory (blocking I/O), renamed
    /// into place through `ticket` (not at all when purged meanwhile). An
    /// error turns the tier off.
    pub fn insert(self: &Arc<Self>, entry: &Entry, ticket: &Ticket) {
        let Body::Memory(chunks) = &entry.body else {
            return;
        };
        let Some(mut writer) = self.writer(&entry.key) else {
            return;
        };
        for chunk in chunks.iter() {
            if writer.append(chunk).is_err() {
                return;
            }
        }
        let _ = writer.finish(entry, ticket);
    }

    /// Rewrites the header of an entry whose body stays in its file (a 304
    /// refreshed it), in place, unless the file has been replaced or purged
    /// meanwhile (`ticket`).
    pub fn rewrite_header(&self, entry: &Entry, ticket: &Ticket) {
        let Body::Disk(body) = &entry.body else {
            return;
        };
        if !self.is_enabled() {
            return;
        }
        let path = self.path_of(&body.hash);
        let rewrite = || -> io::Result<Option<(u64, Stamp, Stamp)>> {
            let _writing = self.trailers.write().unwrap_or_else(|e| e.into_inner());
            let file = OpenOptions::new().write(true).open(&path)?;
            let (now, then) = (file.metadata()?, body.file.metadata()?);
            if (now.dev(), now.ino()) != (then.dev(), then.ino()) {
                return Ok(None);
            }
            let header = header_of(entry, body.len, body.crcs.clone());
            let size = write_trailer(&file, body.len, &header)?;
            file.sync_data()?;
            Ok(Some((size, Stamp::of(&now), Stamp::of(&file.metadata()?))))
        };
        let result = ticket.commit(&entry.key, rewrite).unwrap_or(Ok(None));
        match result {
            Ok(Some((size, before, after))) => {
                self.wrote();
                let mut index = self.lock();
                if let Some(slot) = index.slots.get_mut(&body.hash) {
                    let old = std::mem::replace(&mut slot.size, size);
                    // Only the trailer changed: a body checked before still is.
                    if slot.checked == Some(before) {
                        slot.checked = Some(after);
                    }
                    index.total = index.total - old + size;
                    // The entry kept open has the old header.
                    let closed = index.close(&body.hash);
                    drop(index);
                    drop(closed);
                }
            }
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => self.disable(&e),
        }
    }

    /// Adds a renamed file this process wrote (`stamp`) to the index and
    /// evicts the least recently used entries beyond the bound
    /// ([`Index::evict`]).
    /// `reserved`: what its writer had reserved, given back as the file is
    /// counted.
    fn admit(&self, hash: &KeyHash, key: &CacheKey, size: u64, stamp: Stamp, reserved: u64) {
        // The slot replaced and those evicted are dropped (their open files
        // closed) after the lock.
        let (replaced, evicted) = {
            let mut index = self.lock();
            index.reserved = index.reserved.saturating_sub(reserved);
            index.clock += 1;
            let slot = Slot::new(key.clone(), size, index.clock, Some(stamp));
            let replaced = index.put(hash, slot);
            (replaced, index.evict(self.max_bytes, Some(hash)))
        };
        drop(replaced);
        self.discard(evicted);
    }

    /// Removes the files of slots taken out of the index by eviction, after
    /// the lock, closing their open files first.
    fn discard(&self, evicted: Vec<(KeyHash, Slot)>) {
        for (victim, slot) in evicted {
            drop(slot);
            let _ = fs::remove_file(self.path_of(&victim));
        }
    }

    /// Reserves `bytes` for a file being written, evicting the least recently
    /// used entries at rest to make room: the tier's bound holds for the
    /// files being written too. Without it a burst of concurrent misses (a
    /// site purged whole at a deploy) wrote past the bound by as much as they
    /// held, filled a disk sized with headroom, and the write error turned
    /// the tier off.
    fn reserve(&self, bytes: u64) {
        let evicted = {
            let mut index = self.lock();
            index.reserved += bytes;
            index.evict(self.max_bytes, None)
        };
        self.discard(evicted);
    }

    /// Gives back what a writer reserved and did not use.
    fn release(&self, bytes: u64) {
        let mut index = self.lock();
        index.reserved = index.reserved.saturating_sub(bytes);
    }

    fn remove(&self, hash: &KeyHash) {
        let removed = self.lock().take(hash);
        drop(removed);
        let _ = fs::remove_file(self.path_of(hash));
    }

    /// Removes the matching entries of a site; returns their keys.
    pub fn purge(&self, site: &str, matches: &dyn Fn(&str) -> bool) -> Vec<CacheKey> {
        let doomed: Vec<(KeyHash, CacheKey)> = self
            .lock()
            .slots
            .iter()
            .filter(|(_, s)| s.key.site == site && matches(&s.key.object_key))
            .map(|(h, s)| (*h, s.key.clone()))
            .collect();
        for (hash, _) in &doomed {
            self.remove(hash);
        }
        doomed.into_iter().map(|(_, key)| key).collect()
    }

    /// The tier's bound in bytes (`--disk-cache-size`).
    pub fn capacity(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes and entries on disk.
    pub fn usage(&self) -> (u64, u64) {
        let index = self.lock();
        (index.total, index.slots.len() as u64)
    }
}

/// A body being written to a temporary file. Dropped before [`finish`], it
/// removes the file: nothing half-written is ever renamed into place.
///
/// [`finish`]: DiskWriter::finish
pub struct DiskWriter {
    tier: Arc<DiskTier>,
    hash: KeyHash,
    temp: PathBuf,
    file: Arc<File>,
    written: u64,
    /// Bytes reserved against the tier's bound ([`DiskTier::reserve`]): the
    /// body written so far.
    reserved: u64,
    crcs: Vec<u32>,
    block: crc32fast::Hasher,
    in_block: u64,
    done: bool,
}

impl DiskWriter {
    /// The file being written, for readers of the bytes written so far.
    pub fn reader(&self) -> SpillReader {
        SpillReader {
            file: self.file.clone(),
        }
    }

    /// Appends body bytes (blocking I/O). An error turns the tier off.
    pub fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        // Room first: entries at rest are evicted before the bytes land.
        let needed = self.written + data.len() as u64;
        if needed > self.reserved {
            self.tier.reserve(needed - self.reserved);
            self.reserved = needed;
        }
        if let Err(e) = self.file.write_all_at(data, BODY_OFFSET + self.written) {
            self.tier.disable(&e);
            return Err(e);
        }
        self.written += data.len() as u64;
        while !data.is_empty() {
            let take = data.len().min((BLOCK - self.in_block) as usize);
            self.block.update(&data[..take]);
            self.in_block += take as u64;
            data = &data[take..];
            if self.in_block == BLOCK {
                let full = std::mem::replace(&mut self.block, crc32fast::Hasher::new());
                self.crcs.push(full.finalize());
                self.in_block = 0;
            }
        }
        Ok(())
    }

    /// Completes the file with `entry`'s header (its body is what was
    /// appended), syncs it, then renames it into place and indexes it through
    /// `ticket`. Returns the entry with its body in the file, or `None` when a
    /// purge since the ticket covers it (the file is removed). An error turns
    /// the tier off.
    pub fn finish(mut self, entry: &Entry, ticket: &Ticket) -> io::Result<Option<Entry>> {
        if self.in_block > 0 {
            let last = std::mem::replace(&mut self.block, crc32fast::Hasher::new());
            self.crcs.push(last.finalize());
            self.in_block = 0;
        }
        let header = header_of(entry, self.written, self.crcs.clone());
        let path = self.tier.path_of(&self.hash);
        let prepared = (|| {
            let size = write_trailer(&self.file, self.written, &header)?;
            self.file.sync_data()?;
            fs::create_dir_all(path.parent().unwrap_or(&self.tier.root))?;
            Ok(size)
        })();
        let placed = prepared.and_then(|size| {
            let place = || {
                fs::rename(&self.temp, &path)?;
                // After the rename, which sets the change time.
                let stamp = Stamp::of(&self.file.metadata()?);
                self.tier
                    .admit(&self.hash, &entry.key, size, stamp, self.reserved);
                self.reserved = 0;
                Ok(())
            };
            ticket.commit(&entry.key, place).transpose()
        });
        match placed {
            Ok(Some(())) => self.tier.wrote(),
            Ok(None) => return Ok(None),
            Err(e) => {
                self.tier.disable(&e);
                return Err(e);
            }
        }
        self.done = true;
        let body = DiskBody {
            file: self.file.clone(),
            len: self.written,
            block_size: BLOCK,
            crcs: std::mem::take(&mut self.crcs),
            tier: Arc::downgrade(&self.tier),
            hash: self.hash,
        };
        Ok(Some(Entry {
            body: Body::Disk(Arc::new(body)),
            ..entry.clone()
        }))
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.temp);
        }
        if self.reserved > 0 {
            self.tier.release(self.reserved);
        }
    }
}

/// Reads the body bytes a [`DiskWriter`] has written so far.
#[derive(Clone)]
pub struct SpillReader {
    file: Arc<File>,
}

impl SpillReader {
    /// Up to `max` body bytes from `offset` (blocking I/O); the caller knows
    /// they have been written.
    pub fn read(&self, offset: u64, max: usize) -> io::Result<Bytes> {
        let mut buf = read_buffer(max);
        self.file.read_exact_at(&mut buf, BODY_OFFSET + offset)?;
        Ok(Bytes::from(buf))
    }
}

/// A body kept in its cache file.
pub struct DiskBody {
    file: Arc<File>,
    len: u64,
    block_size: u64,
    crcs: Vec<u32>,
    /// Weak: the tier keeps entries open in its slots (an `Arc` would be a
    /// cycle).
    tier: Weak<DiskTier>,
    hash: KeyHash,
}

impl std::fmt::Debug for DiskBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskBody")
            .field("hash", &self.hash)
            .field("len", &self.len)
            .finish()
    }
}

impl DiskBody {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Block `index`, read and checked (blocking I/O).
    fn block(&self, index: u64) -> io::Result<Bytes> {
        self.read_block(index, Io::Blocking)
    }

    fn read_block(&self, index: u64, io: Io) -> io::Result<Bytes> {
        let start = index * self.block_size;
        let len = self.block_size.min(self.len.saturating_sub(start));
        let expected = self
            .crcs
            .get(index as usize)
            .ok_or_else(|| io::Error::other("block beyond the header's checksums"))?;
        let mut buf = ReadBuffer::take(len as usize);
        read_at(&self.file, buf.as_mut(), BODY_OFFSET + start, io)?;
        check_block(index, buf.as_ref(), *expected)?;
        Ok(Bytes::from_owner(buf))
    }

    fn blocks(&self) -> u64 {
        self.len.div_ceil(self.block_size.max(1))
    }

    fn check_shape(&self) -> io::Result<()> {
        check_shape(self.block_size, &self.crcs, self.len)
    }

    /// Checks every block without keeping them.
    fn verify_all(&self) -> io::Result<()> {
        self.check_shape()?;
        (0..self.blocks()).try_for_each(|index| self.block(index).map(drop))
    }

    /// Bytes `start..end` of the body as a file region for the HTTP/1
    /// dispatcher to send with `sendfile` on a plain TCP connection (where it
    /// does, the bytes are not read here, so not checked against their CRCs
    /// on this read: the file was checked whole when this process first
    /// served it, see [`DiskTier::get`]).
    pub fn send_file(&self, start: u64, end: u64) -> actix_http::h1::SendFile {
        let end = end.min(self.len);
        actix_http::h1::SendFile {
            file: self.file.clone(),
            offset: BODY_OFFSET.saturating_add(start),
            len: end.saturating_sub(start),
            sent: Arc::default(),
        }
    }

    /// Bytes `start..end` of the body as a stream, read one block at a time,
    /// each checked before any of its bytes is sent, and handed out in pieces
    /// of at most [`BODY_CHUNK`] bytes. A block that fails its check drops
    /// the entry and fails the stream (the response is cut, never completed
    /// with wrong bytes).
    ///
    /// [`BODY_CHUNK`]: super::BODY_CHUNK
    pub fn stream(self: &Arc<Self>, start: u64, end: u64) -> BodyStream {
        let end = end.min(self.len);
        Box::pin(futures_util::stream::unfold(
            (self.clone(), start, Bytes::new()),
            move |(body, pos, mut read_ahead)| async move {
                if pos >= end {
                    return None;
                }
                if !read_ahead.is_empty() {
                    let piece = read_ahead.split_to(read_ahead.len().min(super::BODY_CHUNK));
                    let next = pos + piece.len() as u64;
                    return Some((Ok(piece), (body, next, read_ahead)));
                }
                let index = pos / body.block_size;
                let from = (pos - index * body.block_size) as usize;
                let to = (end - index * body.block_size) as usize;
                // From the page cache right here when it is there; else in
                // the blocking pool.
                let read = match body.read_block(index, Io::PageCacheOnly) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let reader = body.clone();
                        tokio::task::spawn_blocking(move || reader.block(index))
                            .await
                            .unwrap_or_else(|e| Err(io::Error::other(e)))
                    }
                    read => read,
                }
                .map(|block| block.slice(from.min(block.len())..to.min(block.len())));
                match read {
                    Ok(mut bytes) if !bytes.is_empty() => {
                        let piece = bytes.split_to(bytes.len().min(super::BODY_CHUNK));
                        let next = pos + piece.len() as u64;
                        Some((Ok(piece), (body, next, bytes)))
                    }
                    Ok(_) => None,
                    Err(e) => {
                        if let Some(tier) = body.tier.upgrade() {
                            tier.unreadable(&body.hash, &e);
                        }
                        let error = OriginError::Invalid(format!("cache entry unreadable: {e}"));
                        Some((Err(error), (body, end, Bytes::new())))
                    }
                }
            },
        ))
    }
}

fn header_of(entry: &Entry, body_len: u64, block_crc32: Vec<u32>) -> Header {
    Header {
        key: entry.key.clone(),
        kind: entry.kind,
        meta: entry.meta.clone(),
        stored_at: entry.stored_at,
        freshness: entry.freshness,
        body_len,
        block_size: BLOCK,
        block_crc32,
    }
}

/// Writes the trailer after a body of `body_len` bytes, cutting the file
/// there first; returns the file's size. A header [`decode_header`] would
/// refuse is not written, and the file is left as it was (an error without
/// an errno: that entry's problem, not the disk's). Never the case for a
/// fill, whose length was checked as it came.
fn write_trailer(file: &File, body_len: u64, header: &Header) -> io::Result<u64> {
    check_length(header)?;
    let trailer = encode_trailer(header)?;
    let at = BODY_OFFSET + body_len;
    file.set_len(at)?;
    file.write_all_at(&trailer, at)?;
    Ok(at + trailer.len() as u64)
}

/// A trailer's bytes: the JSON header, its length, `TRAILER_MAGIC`.
fn encode_trailer(header: &Header) -> io::Result<Vec<u8>> {
    let mut trailer = serde_json::to_vec(header).map_err(io::Error::other)?;
    let len = u32::try_from(trailer.len()).map_err(io::Error::other)?;
    trailer.extend_from_slice(&len.to_le_bytes());
    trailer.extend_from_slice(TRAILER_MAGIC);
    Ok(trailer)
}

/// An object's header says the length its file holds: a client is told the
/// one and sent the other.
fn check_length(header: &Header) -> io::Result<()> {
    if header.kind == EntryKind::Object && header.meta.content_length != header.body_len {
        return Err(io::Error::other(format!(
            "body is {} bytes, its Content-Length says {}",
            header.body_len, header.meta.content_length
        )));
    }
    Ok(())
}

/// The length of a trailer's fixed end: the header's length, `TRAILER_MAGIC`.
const TAIL: usize = 4 + TRAILER_MAGIC.len();

/// Where the header of a file of `size` bytes starts and how long it is, from
/// the file's first bytes (`magic`) and its last [`TAIL`] bytes.
fn header_span(size: u64, magic: &[u8], tail: &[u8]) -> io::Result<(u64, usize)> {
    if magic != MAGIC {
        return Err(io::Error::other("not a cache file"));
    }
    let fixed = BODY_OFFSET + TAIL as u64;
    if size < fixed || tail.len() != TAIL {
        return Err(io::Error::other("no trailer"));
    }
    if &tail[4..] != TRAILER_MAGIC {
        return Err(io::Error::other("no trailer (an incomplete file)"));
    }
    let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if len > MAX_HEADER || u64::from(len) > size - fixed {
        return Err(io::Error::other("header length out of range"));
    }
    Ok((size - TAIL as u64 - u64::from(len), len as usize))
}

/// Whether `entry`'s file, kept open, is still as `stamp` says it was when
/// the entry was read from it (an `fstat`: not written to, cut, removed or
/// replaced under its name since).
fn still(entry: &Entry, stamp: Stamp) -> bool {
    match &entry.body {
        Body::Disk(body) => body.file.metadata().is_ok_and(|m| Stamp::of(&m) == stamp),
        Body::Memory(_) => false,
    }
}

/// A header read from `bytes`, found at `header_at`: its body must end there.
fn decode_header(bytes: &[u8], header_at: u64) -> io::Result<Header> {
    let header: Header = serde_json::from_slice(bytes).map_err(io::Error::other)?;
    if BODY_OFFSET.checked_add(header.body_len) != Some(header_at) {
        return Err(io::Error::other(format!(
            "body is {} bytes, header says {}",
            header_at.saturating_sub(BODY_OFFSET),
            header.body_len
        )));
    }
    check_length(&header)?;
    Ok(header)
}

/// Reads a file's header from its trailer; returns it and the file's size
/// (blocking I/O).
fn read_trailer(file: &File) -> io::Result<(Header, u64)> {
    let size = file.metadata()?.len();
    Ok((
        read_trailer_at(file, size, Io::Blocking, Magic::Read)?,
        size,
    ))
}

/// How much of a file's end [`read_trailer_at`] reads at once: most headers
/// fit, so one read finds both the header's length and the header.
const TRAILER_PEEK: u64 = 4 << 10;

/// Whether [`read_trailer_at`] reads a file's magic.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Magic {
    Read,
    /// The file is the one this process checked whole (its [`Stamp`] says
    /// so), magic included: not read again.
    Checked,
}

/// The header of a file of `size` bytes, read as `io` allows: the file's
/// last [`TRAILER_PEEK`] bytes, and its magic apart unless those hold it
/// or `magic` says it was checked; the header apart only when it does not
/// fit in those bytes.
fn read_trailer_at(file: &File, size: u64, io: Io, known: Magic) -> io::Result<Header> {
    let peek = size.min(TRAILER_PEEK);
    let mut buffer = [0u8; TRAILER_PEEK as usize];
    read_at(file, &mut buffer[..peek as usize], size - peek, io)?;
    let end = &buffer[..peek as usize];
    let mut first = [0u8; MAGIC.len()];
    let magic: &[u8] = if peek == size {
        // The whole file: its magic too (or all of a shorter file).
        end.get(..MAGIC.len()).unwrap_or(end)
    } else if known == Magic::Checked {
        MAGIC
    } else {
        read_at(file, &mut first, 0, io)?;
        &first
    };
    let tail = end
        .get(end.len().saturating_sub(TAIL)..)
        .unwrap_or_default();
    let (header_at, len) = header_span(size, magic, tail)?;
    if let Some(from) = header_at.checked_sub(size - peek) {
        let from = from as usize;
        return decode_header(&end[from..from + len], header_at);
    }
    let mut header = vec![0u8; len];
    read_at(file, &mut header, header_at, io)?;
    decode_header(&header, header_at)
}

/// A body of `len` bytes has one CRC per block of `block_size` bytes.
fn check_shape(block_size: u64, crcs: &[u32], len: u64) -> io::Result<()> {
    // A block is read into memory whole: never larger than the tier writes.
    if block_size == 0 || block_size > BLOCK || crcs.len() as u64 != len.div_ceil(block_size) {
        return Err(io::Error::other("header's checksums do not cover the body"));
    }
    Ok(())
}

/// Block `index` holds the bytes its CRC says.
fn check_block(index: u64, bytes: &[u8], expected: u32) -> io::Result<()> {
    if crc32fast::hash(bytes) != expected {
        return Err(io::Error::other(format!("block {index} checksum mismatch")));
    }
    Ok(())
}

/// A whole file read into memory: its header and its body, every block
/// checked. The body is a slice of `whole` unless the trailer would make it
/// hold much more memory than its length (a small body), then a copy.
fn split_file(whole: Bytes) -> io::Result<(Header, Bytes)> {
    let size = whole.len() as u64;
    let magic = whole.get(..MAGIC.len()).unwrap_or_default();
    let tail = whole
        .get(whole.len().saturating_sub(TAIL)..)
        .unwrap_or_default();
    let (header_at, len) = header_span(size, magic, tail)?;
    let at = header_at as usize;
    let header = decode_header(&whole[at..at + len], header_at)?;
    let body = whole.slice(BODY_OFFSET as usize..at);
    check_shape(header.block_size, &header.block_crc32, body.len() as u64)?;
    let block = usize::try_from(header.block_size).map_err(io::Error::other)?;
    for (index, (piece, expected)) in body.chunks(block).zip(&header.block_crc32).enumerate() {
        check_block(index as u64, piece, *expected)?;
    }
    let body = if size - body.len() as u64 > body.len() as u64 / 64 {
        Bytes::copy_from_slice(&body)
    } else {
        body
    };
    Ok((header, body))
}

/// A buffer of `len` bytes for a read to fill, zeroed by `memset`.
///
/// Not `vec![0; len]`: that asks the allocator for zeroed memory, and
/// jemalloc zeroes a large extent it reuses by handing the pages back to
/// the kernel (`madvise`, with a TLB flush on every core) and then faults
/// fresh zeroed pages in, one by one, as the read writes them. In the HTTPS
/// working set, where every disk hit is loaded whole, that was about a
/// seventh of s3edge's CPU (docs/PERFORMANCE.md); filled by `memset`, the
/// reused pages stay mapped, and the same run served 1.11 times the
/// requests per second. The fill byte goes through `black_box`, or the
/// compiler turns the allocation and `memset` back into a zeroed
/// allocation. (Reading into uninitialized memory would need `unsafe`.)
fn read_buffer(len: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(len);
    buf.resize(len, std::hint::black_box(0));
    buf
}

/// A block-sized read buffer, returned to a small pool when the last `Bytes`
/// made from it is dropped: reading a large body block by block into fresh
/// allocations cost about a fifth of the CPU of a disk hit in page faults
/// (docs/PERFORMANCE.md).
struct ReadBuffer {
    buf: Vec<u8>,
    len: usize,
}

/// Buffers kept for reuse: enough for several large bodies in flight, a
/// bounded amount of memory (16 MiB).
const POOLED_BUFFERS: usize = 16;

static READ_BUFFERS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

impl ReadBuffer {
    /// A buffer of `len` bytes (contents unspecified).
    fn take(len: usize) -> ReadBuffer {
        let pooled = if len <= BLOCK as usize {
            READ_BUFFERS.lock().unwrap_or_else(|e| e.into_inner()).pop()
        } else {
            None
        };
        let mut buf = pooled.unwrap_or_default();
        if buf.len() < len {
            buf = read_buffer(len.max(BLOCK as usize));
        }
        ReadBuffer { buf, len }
    }
}

impl AsRef<[u8]> for ReadBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl AsMut<[u8]> for ReadBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        if self.buf.len() != BLOCK as usize {
            return;
        }
        let mut pool = READ_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOLED_BUFFERS {
            pool.push(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Variant;
    use futures_util::StreamExt;
    use std::time::Duration;

    fn entry(key: &str, body: &[u8]) -> Entry {
        Entry {
            key: CacheKey::new("s", key, Variant::Identity),
            kind: EntryKind::Object,
            meta: ObjectMeta {
                content_length: body.len() as u64,
                etag: Some("\"e\"".into()),
                ..ObjectMeta::default()
            },
            body: Body::Memory(Arc::from(vec![Bytes::copy_from_slice(body)])),
            stored_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
            freshness: Freshness {
                ttl: Duration::from_secs(60),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
            },
            prepared: Default::default(),
        }
    }

    fn key(name: &str) -> CacheKey {
        CacheKey::new("s", name, Variant::Identity)
    }

    fn open(dir: &Path, max: u64) -> Arc<DiskTier> {
        Arc::new(DiskTier::open(dir, max).unwrap())
    }

    /// An entry written as a fill streams it (a writer, then `finish`).
    fn write_streamed(tier: &Arc<DiskTier>, name: &str, data: &[u8]) -> Entry {
        let mut writer = tier.writer(&key(name)).unwrap();
        writer.append(data).unwrap();
        writer
            .finish(&entry(name, data), &ticket())
            .unwrap()
            .unwrap()
    }

    fn memory_body(entry: &Entry) -> Vec<u8> {
        match &entry.body {
            Body::Memory(chunks) => chunks.concat(),
            Body::Disk(_) => panic!("expected a body in memory"),
        }
    }

    async fn collect(stream: BodyStream) -> Result<Vec<u8>, OriginError> {
        let mut out = Vec::new();
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// A ticket that no purge ever covers.
    fn ticket() -> Ticket {
        Ticket::new(Arc::new(crate::cache::PurgeBarrier::default()), 0)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// A header that cannot be written (serde has no form for a time
    /// before 1970) is that entry's problem, not the disk's: the write is
    /// given up, nothing is left behind, and the tier stays on.
    #[test]
    fn an_entry_whose_header_cannot_be_written_is_skipped_and_the_tier_stays_on() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 1 << 20);
        let mut odd = entry("odd.html", b"body");
        odd.meta.last_modified = SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(86_400));
        let mut writer = tier.writer(&key("odd.html")).unwrap();
        writer.append(b"body").unwrap();
        assert!(writer.finish(&odd, &ticket()).is_err());
        assert!(tier.is_enabled());
        assert!(tier.get(&key("odd.html"), u64::MAX).is_none());
        assert!(fs::read_dir(dir.path().join(LAYOUT_DIR).join("tmp"))
            .unwrap()
            .next()
            .is_none());
        write_streamed(&tier, "next.html", b"next");
        assert_eq!(tier.usage().1, 1);
    }

    /// A header read from a file must describe blocks the tier could have
    /// written: a block larger than BLOCK would be read into memory whole.
    #[test]
    fn a_header_s_block_size_is_at_most_the_tier_s() {
        assert!(check_shape(BLOCK, &[0, 0], BLOCK + 1).is_ok());
        assert!(check_shape(BLOCK * 2, &[0], BLOCK + 1).is_err());
        assert!(check_shape(0, &[], 0).is_err());
    }

    /// Files being written count against the bound: entries at rest are
    /// evicted to make room for them before their bytes land, and what a
    /// writer reserved is given back when it is dropped or counted as an
    /// entry. Without it twelve concurrent misses on a full tier wrote 69%
    /// past the bound and filled a disk sized with half again as much room.
    #[test]
    fn files_being_written_count_against_the_bound() {
        const MIB: usize = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 8 * MIB as u64);
        let data = pattern(MIB);
        for i in 0..7 {
            tier.insert(&entry(&format!("rest{i}"), &data), &ticket());
        }
        let at_rest = tier.usage().0;
        assert!(at_rest > 7 * MIB as u64, "{at_rest}");
        let on_disk = |tier: &DiskTier| {
            let index = tier.lock();
            (index.total, index.reserved)
        };
        let mut first = tier.writer(&key("new1")).unwrap();
        let mut second = tier.writer(&key("new2")).unwrap();
        for _ in 0..3 {
            first.append(&data).unwrap();
            second.append(&data).unwrap();
            let (total, reserved) = on_disk(&tier);
            assert!(total + reserved <= 8 * MIB as u64, "{total} + {reserved}");
        }
        assert_eq!(on_disk(&tier).1, 6 * MIB as u64);
        // Dropped unfinished: its reservation is given back.
        drop(second);
        assert_eq!(on_disk(&tier).1, 3 * MIB as u64);
        let entry = first
            .finish(&entry("new1", &pattern(3 * MIB)), &ticket())
            .unwrap()
            .expect("stored");
        let (total, reserved) = on_disk(&tier);
        assert_eq!(reserved, 0);
        assert!(total <= 8 * MIB as u64, "{total}");
        assert!(tier.get(&entry.key, 0).is_some(), "the new entry stays");
        let files = fs::read_dir(tier.root.join("tmp")).unwrap().count();
        assert_eq!(files, 0, "temporary files left");
    }

    /// A file whose header states another length than its body holds (a
    /// file edited by hand, or a bug) is no entry: a client would be told
    /// one Content-Length and sent another. Nor is such a file written.
    #[test]
    fn a_header_whose_length_is_not_its_body_s_is_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 1 << 20);
        let data = pattern(10_000);
        let stored = write_streamed(&tier, "told.bin", &data);
        let Body::Disk(body) = &stored.body else {
            panic!("a streamed fill stays on disk")
        };
        let path = tier.path_of(&body.hash);
        let mut told = header_of(&stored, data.len() as u64, body.crcs.clone());
        told.meta.content_length = data.len() as u64 + 5_000;
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(write_trailer(&file, data.len() as u64, &told).is_err());
        let at = BODY_OFFSET + data.len() as u64;
        file.set_len(at).unwrap();
        file.write_all_at(&encode_trailer(&told).unwrap(), at)
            .unwrap();
        drop((file, tier));
        let tier = open(dir.path(), 1 << 20);
        assert!(tier.get(&key("told.bin"), u64::MAX).is_none());
        assert!(tier.get(&key("told.bin"), 0).is_none());

        let mut writer = tier.writer(&key("short.bin")).unwrap();
        writer.append(&data[..100]).unwrap();
        assert!(writer
            .finish(&entry("short.bin", &data), &ticket())
            .is_err());
        assert!(tier.is_enabled());
        assert!(tier.get(&key("short.bin"), u64::MAX).is_none());
    }

    /// A second node on one directory would delete the first's files being
    /// written: it is refused while the first holds the tier, and the
    /// directory opens again once the first is gone.
    #[test]
    fn a_directory_is_used_by_one_tier_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path(), 1 << 20);
        let refused = DiskTier::open(dir.path(), 1 << 20).err().expect("refused");
        assert_eq!(refused.kind(), io::ErrorKind::ResourceBusy);
        let pid = std::process::id();
        assert_eq!(
            refused.to_string(),
            format!("another s3edge (process {pid}) is using this cache directory; give each node its own --cache-dir")
        );
        drop(first);
        assert!(DiskTier::open(dir.path(), 1 << 20).is_ok());
    }

    /// Reopened with a smaller bound, the tier keeps to it at once, keeping
    /// the most recently written entries.
    #[test]
    fn a_tier_reopened_with_a_smaller_bound_keeps_the_newest_entries_within_it() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 1 << 20);
        let body = vec![7u8; 10_000];
        let names: Vec<String> = (0..10).map(|i| format!("e{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            tier.insert(&entry(name, &body), &ticket());
            // Written in this order, a second apart as the file system sees it.
            let file = File::options()
                .write(true)
                .open(tier.path_of(&key(name).hash()))
                .unwrap();
            let written = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i as u64);
            file.set_modified(written).unwrap();
        }
        let (bytes, entries) = tier.usage();
        assert_eq!(entries, 10);
        drop(tier);
        let bound = bytes * 4 / 10 + 1;
        let tier = open(dir.path(), bound);
        let (kept_bytes, kept) = tier.usage();
        assert!(kept_bytes <= bound, "{kept_bytes} > {bound}");
        assert_eq!(kept, 4);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(tier.find(&key(name)).is_some(), i >= 6, "{name}");
        }
        assert_eq!(
            files_under(dir.path()).len(),
            4,
            "the files evicted are removed"
        );
    }

    #[test]
    fn entries_survive_a_reopen_and_come_back_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 1 << 20);
        tier.insert(&entry("a.html", b"hello"), &ticket());
        drop(tier);
        let tier = open(dir.path(), 1 << 20);
        assert_eq!(tier.usage().1, 1);
        let got = tier.get(&key("a.html"), u64::MAX).unwrap();
        assert_eq!(memory_body(&got), b"hello");
        assert_eq!(got.meta.etag.as_deref(), Some("\"e\""));
        assert_eq!(
            got.stored_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000)
        );
    }

    #[test]
    fn a_body_up_to_the_load_limit_is_read_whole_in_one_piece_and_a_larger_one_stays_in_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 16 << 20);
        let data = pattern(2 * BLOCK as usize + 12_345);
        tier.insert(&entry("b.bin", &data), &ticket());
        let loaded = tier.get(&key("b.bin"), data.len() as u64).unwrap();
        assert!(
            memory_body(&loaded) == data,
            "byte-exact, every block checked"
        );
        // Just above the limit, within the whole-read slack: still from the file.
        let large = tier.get(&key("b.bin"), data.len() as u64 - 1).unwrap();
        assert!(matches!(large.body, Body::Disk(_)));
        // A small body is copied out of the file's buffer: it does not hold
        // its trailer in memory.
        tier.insert(&entry("s.txt", b"tiny"), &ticket());
        let small = tier.get(&key("s.txt"), 1 << 20).unwrap();
        let Body::Memory(chunks) = &small.body else {
            panic!("in memory")
        };
        assert_eq!(&chunks[0][..], b"tiny");
        assert_eq!(chunks.len(), 1);
    }

    #[test]
    fn a_small_entry_in_the_page_cache_is_read_without_the_blocking_pool_and_a_large_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 16 << 20);
        let data = pattern(300 * 1024);
        tier.insert(&entry("small.bin", &data), &ticket());
        // Just written, so in the page cache: read here (Linux, on a file
        // system with RWF_NOWAIT reads; ext4, xfs, btrfs and tmpfs have them).
        let got = tier.get_cached(&key("small.bin"), u64::MAX);
        let got = got.expect("read from the page cache").expect("found");
        assert!(memory_body(&got) == data);
        assert!(matches!(
            tier.get_cached(&key("nothing"), u64::MAX),
            Ok(None)
        ));
        // Above the inline limit: always the blocking pool's.
        let large = pattern(INLINE_READ_MAX as usize + 1);
        tier.insert(&entry("large.bin", &large), &ticket());
        assert_eq!(
            tier.get_cached(&key("large.bin"), u64::MAX).err(),
            Some(WouldBlock)
        );
        assert!(memory_body(&tier.get(&key("large.bin"), u64::MAX).unwrap()) == large);
        // A corrupt file found on the async side is dropped there.
        let path = tier.path_of(&key("small.bin").hash());
        let mut bytes = fs::read(&path).unwrap();
        bytes[MAGIC.len() + 5] ^= 0x01;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(
            tier.get_cached(&key("small.bin"), u64::MAX),
            Ok(None)
        ));
        assert!(!path.exists());
    }

    /// The form served to a client the kernel sends files to: any size stays
    /// in its file, read from the page cache on the async side, but only once
    /// this process has checked the file whole.
    #[tokio::test]
    async fn an_entry_asked_for_in_its_file_stays_there_once_checked_whatever_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 16 << 20);
        let data = pattern(BLOCK as usize + 4_321);
        tier.insert(&entry("f.bin", &data), &ticket());
        // A header larger than the first read of the file's end: read apart.
        let mut long = entry("long.bin", b"long header");
        long.meta.headers = vec![("x-long".into(), "v".repeat(3 * TRAILER_PEEK as usize))];
        tier.insert(&long, &ticket());
        for (name, body) in [("f.bin", &data[..]), ("long.bin", b"long header")] {
            let got = tier.get_file_cached(&key(name));
            let got = got.expect("read from the page cache").expect("found");
            let Body::Disk(file) = &got.body else {
                panic!("{name}: expected the body in its file");
            };
            assert!(collect(file.stream(0, file.len())).await.unwrap() == body);
            assert_eq!(got.meta.etag.as_deref(), Some("\"e\""));
        }
        assert_eq!(
            tier.get_file_cached(&key("long.bin"))
                .unwrap()
                .unwrap()
                .meta
                .headers[0]
                .1
                .len(),
            3 * TRAILER_PEEK as usize
        );
        assert!(matches!(tier.get_file_cached(&key("nothing")), Ok(None)));
        // Files of an earlier process are checked whole (in the blocking
        // pool) before their first use in the file form.
        drop(tier);
        let tier = open(dir.path(), 16 << 20);
        assert_eq!(tier.get_file_cached(&key("f.bin")).err(), Some(WouldBlock));
        assert!(memory_body(&tier.get(&key("f.bin"), u64::MAX).unwrap()) == data);
        assert!(tier.get_file_cached(&key("f.bin")).unwrap().is_some());
        assert_eq!(
            tier.get_file_cached(&key("long.bin")).err(),
            Some(WouldBlock)
        );
        assert!(matches!(
            tier.get(&key("long.bin"), 0).unwrap().body,
            Body::Disk(_)
        ));
        // A trailer that does not hold together drops the entry (on the
        // check a changed file gets first).
        let path = tier.path_of(&key("long.bin").hash());
        let at = fs::metadata(&path).unwrap().len() - TAIL as u64 - 2;
        change_in_place(&path, at, b"\x01");
        assert_eq!(
            tier.get_file_cached(&key("long.bin")).err(),
            Some(WouldBlock)
        );
        assert!(tier.get(&key("long.bin"), 0).is_none());
        assert!(!path.exists());
    }

    /// Writes `bytes` at `offset` of the file at `path` in place, once the
    /// file system's clock has moved on from the file's last change (it
    /// moves in ticks of a few milliseconds).
    fn change_in_place(path: &Path, offset: u64, bytes: &[u8]) {
        let before = Stamp::of(&fs::metadata(path).unwrap());
        std::thread::sleep(Duration::from_millis(30));
        let file = OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(bytes, offset).unwrap();
        let after = Stamp::of(&fs::metadata(path).unwrap());
        assert_ne!(before, after, "the file system records the change");
    }

    /// The file form sends bytes unread, so it is only for the file this
    /// process checked: written to since (even with the same bytes), it is
    /// checked whole again, and dropped if it no longer matches its CRCs.
    #[test]
    fn a_file_changed_after_its_check_is_checked_again_before_it_is_sent_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 16 << 20);
        let data = pattern(100 * 1024);
        tier.insert(&entry("c.bin", &data), &ticket());
        let path = tier.path_of(&key("c.bin").hash());
        assert!(tier.get_file_cached(&key("c.bin")).unwrap().is_some());
        // The same bytes written again: checked again, then sent as before.
        change_in_place(&path, BODY_OFFSET + 10, &data[10..20]);
        assert_eq!(tier.get_file_cached(&key("c.bin")).err(), Some(WouldBlock));
        assert!(matches!(
            tier.get(&key("c.bin"), 0).unwrap().body,
            Body::Disk(_)
        ));
        assert!(tier.get_file_cached(&key("c.bin")).unwrap().is_some());
        // A header rewritten by this process (a 304) keeps the check.
        let mut refreshed = tier.get(&key("c.bin"), 0).unwrap();
        refreshed.stored_at = SystemTime::UNIX_EPOCH + Duration::from_secs(9_000);
        std::thread::sleep(Duration::from_millis(30));
        tier.rewrite_header(&refreshed, &ticket());
        let got = tier.get_file_cached(&key("c.bin")).unwrap().unwrap();
        assert_eq!(
            got.stored_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(9_000)
        );
        // Damaged in place, same length: never handed out in its file.
        change_in_place(&path, BODY_OFFSET + 50_000, b"damage");
        assert_eq!(tier.get_file_cached(&key("c.bin")).err(), Some(WouldBlock));
        assert!(tier.get(&key("c.bin"), 0).is_none(), "dropped on its check");
        assert!(!path.exists());
        assert!(matches!(tier.get_file_cached(&key("c.bin")), Ok(None)));
        // Replaced by another file of the same length: checked too.
        tier.insert(&entry("d.bin", &data), &ticket());
        let path = tier.path_of(&key("d.bin").hash());
        assert!(tier.get_file_cached(&key("d.bin")).unwrap().is_some());
        let mut bytes = fs::read(&path).unwrap();
        bytes[BODY_OFFSET as usize + 7] ^= 0x01;
        let other = dir.path().join("other");
        fs::write(&other, bytes).unwrap();
        fs::rename(&other, &path).unwrap();
        assert_eq!(tier.get_file_cached(&key("d.bin")).err(), Some(WouldBlock));
        assert!(tier.get(&key("d.bin"), 0).is_none());
    }

    #[test]
    fn an_entry_sent_from_its_file_stays_open_for_the_next_hit_until_its_slot_changes() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 16 << 20);
        let data = pattern(300 * 1024);
        tier.insert(&entry("o.bin", &data), &ticket());
        let first = tier.get_file_cached(&key("o.bin")).unwrap().unwrap();
        let again = tier.get_file_cached(&key("o.bin")).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the second hit reads nothing");
        assert_eq!(tier.open_files(), 1);
        // A 304's new header: read again, the old entry closed.
        let mut refreshed = tier.get(&key("o.bin"), 0).unwrap();
        refreshed.stored_at = SystemTime::UNIX_EPOCH + Duration::from_secs(5_000);
        std::thread::sleep(Duration::from_millis(30));
        tier.rewrite_header(&refreshed, &ticket());
        assert_eq!(tier.open_files(), 0);
        let got = tier.get_file_cached(&key("o.bin")).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&first, &got));
        assert_eq!(got.stored_at, refreshed.stored_at);
        // A new fill of the key: its file, not the one kept open.
        let mut newer = entry("o.bin", &pattern(200 * 1024));
        newer.stored_at = SystemTime::UNIX_EPOCH + Duration::from_secs(6_000);
        tier.insert(&newer, &ticket());
        assert_eq!(tier.open_files(), 0);
        let got = tier.get_file_cached(&key("o.bin")).unwrap().unwrap();
        assert_eq!(
            (got.stored_at, got.body_len()),
            (newer.stored_at, 200 * 1024)
        );
        // Removed behind the tier's back: not served from the open file.
        fs::remove_file(tier.path_of(&key("o.bin").hash())).unwrap();
        assert!(matches!(tier.get_file_cached(&key("o.bin")), Ok(None)));
        assert_eq!(tier.open_files(), 0);
        // Purged: gone with its slot.
        tier.insert(&entry("p.bin", &data), &ticket());
        assert!(tier.get_file_cached(&key("p.bin")).unwrap().is_some());
        assert_eq!(tier.open_files(), 1);
        tier.purge("s", &|_| true);
        assert_eq!(tier.open_files(), 0);
        assert!(matches!(tier.get_file_cached(&key("p.bin")), Ok(None)));
    }

    #[test]
    fn no_more_files_are_kept_open_than_the_bound_and_the_longest_kept_close_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut tier = DiskTier::open(dir.path(), 64 << 20).unwrap();
        assert!(tier.open_max >= 1 && tier.open_max <= OPEN_FILES_MAX);
        tier.open_max = 3;
        let tier = Arc::new(tier);
        let names: Vec<String> = (0..10).map(|i| format!("{i}.bin")).collect();
        for name in &names {
            tier.insert(&entry(name, name.as_bytes()), &ticket());
        }
        let mut kept = Vec::new();
        for round in 0..3 {
            for name in &names {
                kept.push(tier.get_file_cached(&key(name)).unwrap().unwrap());
                assert!(tier.open_files() <= 3, "round {round}, {name}");
            }
        }
        assert_eq!(tier.open_files(), 3);
        let index = tier.lock();
        assert!(
            index.opened.0.len() <= 2 * 3 + 1,
            "{} items",
            index.opened.0.len()
        );
        drop(index);
        // The last three stay open, the others were closed.
        let last = &kept[kept.len() - 3..];
        for (got, name) in last.iter().zip(&names[7..]) {
            let again = tier.get_file_cached(&key(name)).unwrap().unwrap();
            assert!(Arc::ptr_eq(got, &again), "{name}");
        }
        let early = tier.get_file_cached(&key("0.bin")).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&kept[kept.len() - 10], &early));
    }

    /// An open file hit again since it was opened is not the first closed:
    /// it goes to the back of the queue once (second chance), and the
    /// longest-kept file not hit since is closed in its place.
    #[test]
    fn a_file_hit_while_open_gets_a_second_chance_before_it_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut tier = DiskTier::open(dir.path(), 64 << 20).unwrap();
        tier.open_max = 3;
        let tier = Arc::new(tier);
        for name in ["a", "b", "c", "d", "e"] {
            tier.insert(&entry(name, name.as_bytes()), &ticket());
        }
        let hit = |name: &str| tier.get_file_cached(&key(name)).unwrap().unwrap();
        let (a, b, c) = (hit("a"), hit("b"), hit("c"));
        assert!(Arc::ptr_eq(&a, &hit("a")), "a is kept open and hit again");
        let d = hit("d");
        assert_eq!(tier.open_files(), 3);
        assert!(Arc::ptr_eq(&a, &hit("a")), "a, hit since, stays open");
        assert!(Arc::ptr_eq(&c, &hit("c")), "c stays open");
        assert!(Arc::ptr_eq(&d, &hit("d")), "d stays open");
        assert!(
            !Arc::ptr_eq(&b, &hit("b")),
            "b, never hit again, was closed"
        );
        // Each had its chance: a second pass closes in queue order again.
        let _e = hit("e");
        assert_eq!(tier.open_files(), 3);
    }

    /// Fills, hits and purges of one key at once, many times: a hit that
    /// starts after a fill (or a purge) has returned never gets an older
    /// version, whether from its open file or not, and the bytes in the file
    /// it gets are that version's.
    #[test]
    fn hits_racing_fills_and_purges_never_get_an_older_version_from_an_open_file() {
        const VERSIONS: u64 = 300;
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 64 << 20);
        let version_of = |v: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(v);
        let body_of = |v: u64| {
            let mut body = v.to_le_bytes().repeat(1024);
            body.truncate(6_000 + (v as usize % 7) * 1_000);
            body
        };
        let latest = AtomicU64::new(0);
        let purged = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    let mut served = 0u64;
                    while !done.load(Ordering::Acquire) {
                        let (at_least, after) = (
                            latest.load(Ordering::Acquire),
                            purged.load(Ordering::Acquire),
                        );
                        let Ok(Some(got)) = tier.get_file_cached(&key("race.bin")) else {
                            continue;
                        };
                        let v = got
                            .stored_at
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        assert!(
                            v >= at_least && v > after,
                            "version {v}: {at_least} was in, {after} purged"
                        );
                        let Body::Disk(body) = &got.body else {
                            panic!("not in its file");
                        };
                        let mut bytes = vec![0u8; body.len() as usize];
                        body.file.read_exact_at(&mut bytes, BODY_OFFSET).unwrap();
                        assert!(
                            bytes == body_of(v),
                            "the file of version {v} holds its bytes"
                        );
                        served += 1;
                    }
                    assert!(served > 0);
                });
            }
            for v in 1..=VERSIONS {
                let mut fill = entry("race.bin", &body_of(v));
                fill.stored_at = version_of(v);
                tier.insert(&fill, &ticket());
                latest.store(v, Ordering::Release);
                if v % 3 == 0 {
                    tier.purge("s", &|_| true);
                    purged.store(v, Ordering::Release);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            done.store(true, Ordering::Release);
        });
        assert!(tier.open_files() <= 1);
    }

    /// Whether this is the child process a test that changes a setting of
    /// the whole process (the open-file limit) runs in. In the parent (the
    /// test harness, whose other tests run on other threads), runs this test
    /// binary again with only the test `name`, asserts that it passed, and
    /// returns false.
    fn in_child_process(name: &str) -> bool {
        const CHILD: &str = "S3EDGE_TEST_CHILD_PROCESS";
        if std::env::var_os(CHILD).is_some() {
            return true;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}{errors}");
        assert!(text.contains("1 passed"), "the child ran the test: {text}");
        false
    }

    /// This process's open-file limit lowered so that only `more`
    /// descriptors can still be opened (a new one gets the lowest free
    /// number); set back when dropped.
    struct ShortOfDescriptors(rustix::process::Rlimit);

    impl ShortOfDescriptors {
        fn leaving(more: u64) -> ShortOfDescriptors {
            use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
            let lowest_free = {
                use std::os::fd::AsRawFd;
                File::open("/dev/null").unwrap().as_raw_fd() as u64
            };
            let limit = getrlimit(Resource::Nofile);
            let short = Rlimit {
                current: Some(lowest_free + more),
                maximum: limit.maximum,
            };
            setrlimit(Resource::Nofile, short).unwrap();
            ShortOfDescriptors(limit)
        }
    }

    impl Drop for ShortOfDescriptors {
        fn drop(&mut self) {
            rustix::process::setrlimit(rustix::process::Resource::Nofile, self.0).unwrap();
        }
    }

    /// The files a tier holds under `dir`, with their contents (not the lock).
    fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for item in fs::read_dir(&dir).unwrap() {
                let path = item.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if !path.ends_with(LOCK_FILE) {
                    files.push((path.clone(), fs::read(&path).unwrap()));
                }
            }
        }
        files.sort();
        files
    }

    #[test]
    fn a_rebuild_out_of_file_descriptors_refuses_to_open_the_tier_and_keeps_every_file() {
        const NAME: &str = "cache::disk::tests::\
            a_rebuild_out_of_file_descriptors_refuses_to_open_the_tier_and_keeps_every_file";
        if !in_child_process(NAME) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 64 << 20);
        for name in ["a", "b", "c"] {
            tier.insert(&entry(name, name.as_bytes()), &ticket());
        }
        write_streamed(&tier, "big", &pattern(BLOCK as usize + 1));
        drop(tier);
        let before = files_under(dir.path());
        assert_eq!(before.len(), 4);
        // Enough for the rebuild to list the tier's folder and one shard, but
        // not to open a file in it: the error says nothing about the file.
        let short = ShortOfDescriptors::leaving(2);
        let refused = DiskTier::open(dir.path(), 64 << 20);
        drop(short);

        let error = refused.err().expect("the tier does not open");
        let emfile = rustix::io::Errno::MFILE.raw_os_error();
        assert_eq!(error.raw_os_error(), Some(emfile), "{error}");
        assert!(
            files_under(dir.path()) == before,
            "every file kept as it was"
        );
        let tier = open(dir.path(), 64 << 20);
        assert_eq!(tier.usage().1, 4);
        for name in ["a", "b", "c"] {
            assert_eq!(
                memory_body(&tier.get(&key(name), u64::MAX).unwrap()),
                name.as_bytes()
            );
        }
    }

    /// Out of file descriptors (many clients at once under a low open file
    /// limit), nothing can be opened: that says nothing about the files. No
    /// entry is dropped and the tier stays on. The limit is the process's,
    /// so the test runs again as a child process of its own, alone.
    /// Reads racing a header rewritten in place (a 304 for an entry kept in
    /// its file), whose new trailer differs in length from the old: every
    /// read finds the entry, none drops it as corrupt.
    #[test]
    fn reads_racing_a_header_rewrite_always_find_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 64 << 20);
        let data = pattern(300 * 1024);
        tier.insert(&entry("r.bin", &data), &ticket());
        let stored = tier.get(&key("r.bin"), 0).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let rewriter = {
            let (tier, stop) = (tier.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut refreshed = stored.clone();
                    // Headers of two lengths, in turn.
                    refreshed.meta.cache_control = Some(if round.is_multiple_of(2) {
                        "max-age=1".into()
                    } else {
                        format!("max-age=1, stale-if-error={}", "9".repeat(200))
                    });
                    tier.rewrite_header(&refreshed, &ticket());
                    round += 1;
                }
                round
            })
        };
        let readers: Vec<_> = (0..2u64)
            .map(|reader| {
                let tier = tier.clone();
                std::thread::spawn(move || {
                    for i in 0..1500 {
                        // The in-file read (load limit 0) and the whole read.
                        let load_max = if (i + reader).is_multiple_of(2) {
                            0
                        } else {
                            1 << 20
                        };
                        let got = tier.get(&key("r.bin"), load_max);
                        assert!(got.is_some(), "read {i} of reader {reader}");
                    }
                })
            })
            .collect();
        for reader in readers {
            reader.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let rounds = rewriter.join().unwrap();
        assert!(rounds > 10, "{rounds} rewrites raced the reads");
    }

    /// A write error (here the tier's `tmp` directory replaced by a file,
    /// as a full disk fails every new file) pauses writes, not reads; writes
    /// are tried again after the pause, each pause twice the last while they
    /// keep failing, and the first write that works ends it.
    #[test]
    fn a_write_error_pauses_writes_until_one_works_again() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 64 << 20);
        let first = Duration::from_millis(300);
        tier.set_first_write_pause(first);
        tier.insert(&entry("kept", b"kept body"), &ticket());
        assert!(tier.is_enabled() && tier.is_healthy());

        let tmp = tier.root.join("tmp");
        fs::remove_dir_all(&tmp).unwrap();
        fs::write(&tmp, b"in the way").unwrap();
        let failed_at = Instant::now();
        assert!(tier.writer(&key("new")).is_none(), "the write fails");
        assert!(!tier.is_enabled(), "writes are paused");
        assert!(!tier.is_healthy(), "and the gauge says so");
        // Errors of writes under way do not lengthen the pause.
        tier.disable(&io::Error::from_raw_os_error(
            rustix::io::Errno::NOSPC.raw_os_error(),
        ));
        assert_eq!(tier.pause.lock().unwrap().last, first);
        // What is on disk is still served.
        let kept = tier.get(&key("kept"), 1 << 20).expect("still on disk");
        assert_eq!(memory_body(&kept), b"kept body");
        assert!(tier.writer(&key("new")).is_none(), "paused: not even tried");

        while failed_at.elapsed() < first {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(tier.is_enabled(), "tried again once the pause is over");
        assert!(tier.writer(&key("new")).is_none(), "and it fails again");
        assert!(!tier.is_enabled());
        assert_eq!(
            tier.pause.lock().unwrap().last,
            2 * first,
            "a pause twice as long"
        );

        fs::remove_file(&tmp).unwrap();
        fs::create_dir(&tmp).unwrap();
        let again = Instant::now();
        while !tier.is_enabled() {
            assert!(again.elapsed() < 4 * first, "the pause ends");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!tier.is_healthy(), "not until a write has worked");
        tier.insert(&entry("new", b"new body"), &ticket());
        assert!(tier.is_enabled() && tier.is_healthy(), "writes work again");
        let new = tier.get(&key("new"), 1 << 20).expect("written");
        assert_eq!(memory_body(&new), b"new body");
        // The next error starts from the first pause again.
        fs::remove_dir_all(&tmp).unwrap();
        fs::write(&tmp, b"in the way").unwrap();
        assert!(tier.writer(&key("third")).is_none());
        assert_eq!(tier.pause.lock().unwrap().last, first);
    }

    #[test]
    fn out_of_file_descriptors_no_entry_is_dropped_and_the_tier_stays_on() {
        const NAME: &str =
            "cache::disk::tests::out_of_file_descriptors_no_entry_is_dropped_and_the_tier_stays_on";
        if !in_child_process(NAME) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 64 << 20);
        tier.insert(&entry("small", b"kept"), &ticket());
        let mut big = write_streamed(&tier, "big", &pattern(BLOCK as usize + 1));
        // None can be had.
        let short = ShortOfDescriptors::leaving(0);
        let read = tier.get(&key("small"), u64::MAX);
        let file_read = tier.get_file_cached(&key("small"));
        let writer = tier.writer(&key("new"));
        big.stored_at = SystemTime::UNIX_EPOCH + Duration::from_secs(7_000);
        tier.rewrite_header(&big, &ticket());
        drop(short);

        assert!(read.is_none(), "could not be opened");
        assert!(matches!(file_read, Ok(None)));
        assert!(writer.is_none());
        assert!(tier.is_enabled(), "the tier stays on");
        assert_eq!(tier.usage().1, 2, "no entry dropped");
        assert_eq!(
            memory_body(&tier.get(&key("small"), u64::MAX).unwrap()),
            b"kept"
        );
        let big = tier.get(&key("big"), 0).unwrap();
        assert_eq!(
            big.stored_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000)
        );
        assert!(tier.writer(&key("new")).is_some());
    }

    #[test]
    fn a_flipped_or_truncated_file_is_dropped_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 1 << 20);
        for damage in ["flip", "truncate", "header", "tail"] {
            tier.insert(&entry("a.html", b"hello world"), &ticket());
            let path = tier.path_of(&key("a.html").hash());
            let mut bytes = fs::read(&path).unwrap();
            match damage {
                "flip" => bytes[MAGIC.len() + 3] ^= 0x01,
                "truncate" => bytes.truncate(bytes.len() - 3),
                "header" => bytes[MAGIC.len() + 20] ^= 0xff,
                _ => *bytes.last_mut().unwrap() ^= 0xff,
            }
            fs::write(&path, bytes).unwrap();
            // As after a restart: the body has not been checked by this process.
            tier.lock()
                .slots
                .values_mut()
                .for_each(|s| s.checked = None);
            assert!(tier.get(&key("a.html"), u64::MAX).is_none(), "{damage}");
            assert!(tier.get(&key("a.html"), 0).is_none(), "{damage}");
            assert!(!path.exists(), "{damage}: the file is removed");
            assert_eq!(tier.usage().1, 0, "{damage}");
        }
    }

    /// Eviction over many slots: it takes exactly what brings the total
    /// within the bound, never a slot used since it was queued while an
    /// unused one is left, never the one just admitted, and steps over
    /// the queue items of slots replaced or removed since.
    #[test]
    fn eviction_takes_the_unused_first_and_only_what_the_bound_needs() {
        const SLOTS: u64 = 100_000;
        let mut index = Index::default();
        let hash = |i: u64| key(&format!("k{i}")).hash();
        for i in 0..SLOTS {
            index.clock += 1;
            let slot = Slot::new(key(&format!("k{i}")), 10, index.clock, None);
            index.put(&hash(i), slot);
        }
        // Used since queued: every third slot. Replaced: slot 1 (a newer
        // fill, queued again at the back). Removed: slot 2 (a purge).
        let touch = |index: &mut Index, i: u64| {
            index.clock += 1;
            let clock = index.clock;
            index.slots.get_mut(&hash(i)).unwrap().last_used = clock;
        };
        for i in (0..SLOTS).step_by(3) {
            touch(&mut index, i);
        }
        index.clock += 1;
        let replaced = Slot::new(key("k1"), 10, index.clock, None);
        assert!(index.put(&hash(1), replaced).is_some());
        assert!(index.take(&hash(2)).is_some());
        assert_eq!(index.total, 10 * (SLOTS - 1));

        // 1,000 slots too many, and the newest (slot 1) kept.
        let taken = index.evict(10 * (SLOTS - 1_001), Some(&hash(1)));
        assert_eq!(taken.len(), 1_000);
        assert_eq!(index.total, 10 * (SLOTS - 1_001));
        for (taken_hash, slot) in &taken {
            let i: u64 = slot.key.object_key[1..].parse().unwrap();
            assert_eq!(*taken_hash, hash(i));
            assert!(!i.is_multiple_of(3), "k{i} was used since it was queued");
            assert!(i > 2, "k{i}: replaced or removed, never taken");
        }
        assert!(index.slots.contains_key(&hash(1)));

        // Down to the bound of ten slots: the used ones go too once every
        // unused one has, the newest last of all.
        let taken = index.evict(100, Some(&hash(1)));
        assert_eq!(index.total, 100);
        assert_eq!(taken.len() as u64, SLOTS - 1_001 - 10);
        assert!(index.slots.contains_key(&hash(1)));
        let queued_live = index
            .queue
            .0
            .iter()
            .filter(|(h, seq, _)| index.slots.get(h).is_some_and(|s| s.is_queued_as(*seq)))
            .count();
        assert_eq!(queued_live, index.slots.len(), "every slot queued once");
        assert!(
            index.queue.0.len() <= 2 * index.slots.len() + 16,
            "stale items dropped"
        );
    }

    #[test]
    fn temporary_files_and_old_formats_are_removed_and_the_least_recently_used_entry_is_evicted() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("v2/tmp")).unwrap();
        fs::write(dir.path().join("v2/tmp/leftover"), b"half a fill").unwrap();
        fs::create_dir_all(dir.path().join("v1/ab")).unwrap();
        fs::write(dir.path().join("v1/ab/old"), b"an old entry").unwrap();
        let tier = open(dir.path(), 4 * 1024);
        assert_eq!(fs::read_dir(dir.path().join("v2/tmp")).unwrap().count(), 0);
        assert!(!dir.path().join("v1").exists());
        let body = vec![7u8; 1000];
        tier.insert(&entry("one", &body), &ticket());
        tier.insert(&entry("two", &body), &ticket());
        assert!(tier.get(&key("one"), u64::MAX).is_some());
        tier.insert(&entry("three", &body), &ticket());
        assert!(tier.usage().0 <= 4 * 1024);
        assert!(
            tier.get(&key("two"), u64::MAX).is_none(),
            "the least recently used goes first"
        );
        assert!(tier.get(&key("one"), u64::MAX).is_some());
    }

    #[actix_rt::test]
    async fn a_streamed_fill_is_readable_while_written_and_served_from_its_file_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 64 << 20);
        let data = pattern(3 * BLOCK as usize + 12_345);
        let mut writer = tier.writer(&key("big")).unwrap();
        let reader = writer.reader();
        writer.append(&data[..100_000]).unwrap();
        assert_eq!(&reader.read(10, 20).unwrap()[..], &data[10..30]);
        for piece in data[100_000..].chunks(70_001) {
            writer.append(piece).unwrap();
        }
        let temp = writer.temp.clone();
        let stored = writer
            .finish(&entry("big", &data), &ticket())
            .unwrap()
            .unwrap();
        assert!(!temp.exists(), "renamed into place");
        let Body::Disk(body) = &stored.body else {
            panic!("a streamed fill stays on disk")
        };
        assert_eq!(body.len(), data.len() as u64);
        assert_eq!(collect(body.stream(0, u64::MAX)).await.unwrap(), data);

        drop(tier);
        let tier = open(dir.path(), 64 << 20);
        let got = tier.get(&key("big"), 1 << 20).unwrap();
        let Body::Disk(body) = &got.body else {
            panic!("larger than the load limit: stays on disk")
        };
        let (start, end) = (BLOCK - 5, 2 * BLOCK + 7);
        assert_eq!(
            collect(body.stream(start, end)).await.unwrap(),
            &data[start as usize..end as usize]
        );
        let got = tier.get(&key("big"), u64::MAX).unwrap();
        assert_eq!(memory_body(&got), data);
    }

    #[actix_rt::test]
    async fn any_range_streamed_from_a_file_is_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 64 << 20);
        let data = pattern(5 * BLOCK as usize + 777);
        let stored = write_streamed(&tier, "big", &data);
        let Body::Disk(body) = &stored.body else {
            panic!("on disk")
        };
        let len = data.len() as u64;
        let ranges = [
            (0, len),
            (1, len - 1),
            (BLOCK, 3 * BLOCK),
            (2 * BLOCK - 1, 2 * BLOCK + 1),
            (3 * BLOCK + 5, len),
            (len - 1, len),
            (7, 7),
        ];
        for (start, end) in ranges {
            assert_eq!(
                collect(body.stream(start, end)).await.unwrap(),
                &data[start as usize..end as usize],
                "{start}..{end}"
            );
        }
    }

    #[actix_rt::test]
    async fn a_block_corrupted_after_the_check_cuts_the_stream_and_drops_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 64 << 20);
        let data = pattern(2 * BLOCK as usize + 10);
        write_streamed(&tier, "big", &data);
        let got = tier.get(&key("big"), 0).unwrap();
        let Body::Disk(body) = &got.body else {
            panic!("on disk")
        };
        let path = tier.path_of(&key("big").hash());
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"X", BODY_OFFSET + BLOCK + 3).unwrap();
        let mut stream = body.stream(0, u64::MAX);
        let mut sent = Vec::new();
        let error = loop {
            match stream.next().await.unwrap() {
                Ok(piece) => {
                    assert!(piece.len() <= crate::cache::BODY_CHUNK);
                    sent.extend_from_slice(&piece);
                }
                Err(e) => break e,
            }
        };
        assert_eq!(
            sent,
            &data[..BLOCK as usize],
            "every byte of block 0, none of block 1"
        );
        assert!(error.to_string().contains("checksum"), "{error}");
        assert!(stream.next().await.is_none());
        assert!(!path.exists());
        assert_eq!(tier.usage().1, 0);
    }

    #[test]
    fn an_abandoned_writer_leaves_nothing_and_a_rewritten_header_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(dir.path(), 64 << 20);
        let mut writer = tier.writer(&key("gone")).unwrap();
        writer.append(&pattern(5000)).unwrap();
        drop(writer);
        assert_eq!(fs::read_dir(dir.path().join("v2/tmp")).unwrap().count(), 0);
        assert_eq!(tier.usage().1, 0);

        let data = pattern(BLOCK as usize + 1);
        let mut stored = write_streamed(&tier, "big", &data);
        stored.stored_at = SystemTime::UNIX_EPOCH + Duration::from_secs(5_000);
        stored.meta.cache_control = Some("max-age=600, and a longer header".into());
        tier.rewrite_header(&stored, &ticket());
        drop(tier);
        let tier = open(dir.path(), 64 << 20);
        let got = tier.get(&key("big"), u64::MAX).unwrap();
        assert_eq!(
            got.stored_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(5_000)
        );
        assert_eq!(
            got.meta.cache_control.as_deref(),
            Some("max-age=600, and a longer header")
        );
        assert_eq!(memory_body(&got), data);
        let size = fs::metadata(tier.path_of(&key("big").hash()))
            .unwrap()
            .len();
        assert_eq!(tier.usage().0, size);
    }
}
