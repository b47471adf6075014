//! The disk tier: one file per entry under `--cache-dir`, bounded by
//! `--disk-cache-size` with least-recently-used eviction.
//!
//! Each file is written to `tmp/` and renamed into place only when complete, so
//! a crash leaves at most a temporary file (removed at the next start). A file
//! holds a magic line, a JSON header (the key, the metadata, freshness, the
//! body's length and SHA-256) and the body. At start the index is rebuilt from
//! the headers without reading the bodies; a body is verified against its
//! checksum every time it is read, and a corrupt or truncated file is dropped
//! (and refetched), never served. An I/O error on write turns the tier off
//! for the rest of the process; serving goes on.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CacheKey, Entry, EntryKind, Freshness};
use crate::origin::ObjectMeta;

/// First bytes of every cache file; a format change changes it.
const MAGIC: &[u8] = b"S3EDGE-CACHE-1\n";
/// Largest header accepted when reading (a corrupt length is not trusted).
const MAX_HEADER: u32 = 1 << 20;
/// The directory of this format's files under `--cache-dir`.
const LAYOUT_DIR: &str = "v1";

/// What a cache file says about its body.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    key: CacheKey,
    kind: EntryKind,
    meta: ObjectMeta,
    stored_at: SystemTime,
    freshness: Freshness,
    body_len: u64,
    body_sha256: String,
}

#[derive(Debug, Clone)]
struct Slot {
    key: CacheKey,
    size: u64,
    last_used: u64,
}

#[derive(Default)]
struct Index {
    slots: HashMap<String, Slot>,
    total: u64,
    clock: u64,
}

/// Entries on disk.
pub struct DiskTier {
    root: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    disabled: AtomicBool,
    temp_counter: AtomicU64,
}

fn sha256_hex(chunks: &[Bytes]) -> String {
    let mut h = Sha256::new();
    for c in chunks {
        h.update(c);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl DiskTier {
    /// Opens (creating) the tier under `dir`, removes leftover temporary files,
    /// and rebuilds the index from the files' headers.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<DiskTier> {
        let root = dir.join(LAYOUT_DIR);
        fs::create_dir_all(root.join("tmp"))?;
        for leftover in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(leftover?.path());
        }
        let tier = DiskTier {
            root,
            max_bytes,
            index: Mutex::new(Index::default()),
            disabled: AtomicBool::new(max_bytes == 0),
            temp_counter: AtomicU64::new(0),
        };
        tier.rebuild()?;
        Ok(tier)
    }

    fn rebuild(&self) -> io::Result<()> {
        let mut index = self.lock();
        for shard in fs::read_dir(&self.root)? {
            let shard = shard?.path();
            if !shard.is_dir() || shard.file_name().is_some_and(|n| n == "tmp") {
                continue;
            }
            for file in fs::read_dir(&shard)? {
                let path = file?.path();
                match read_header(&path) {
                    Ok((header, _))
                        if path.file_name().is_some_and(|n| *n == *header.key.hash()) =>
                    {
                        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                        index.clock += 1;
                        let slot = Slot {
                            key: header.key,
                            size,
                            last_used: index.clock,
                        };
                        index.total += size;
                        let name = path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .unwrap_or_default()
                            .to_string();
                        index.slots.insert(name, slot);
                    }
                    _ => {
                        tracing::warn!(file = %path.display(), "dropping an unreadable cache file");
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path_of(&self, hash: &str) -> PathBuf {
        self.root.join(&hash[..2]).join(hash)
    }

    pub fn is_enabled(&self) -> bool {
        !self.disabled.load(Ordering::Relaxed)
    }

    /// Reads and verifies an entry (blocking I/O: call from a blocking task).
    pub fn get(&self, key: &CacheKey) -> Option<Entry> {
        let hash = key.hash();
        {
            let mut index = self.lock();
            index.clock += 1;
            let clock = index.clock;
            index.slots.get_mut(&hash)?.last_used = clock;
        }
        let path = self.path_of(&hash);
        match read_entry(&path) {
            Ok(entry) if entry.key == *key => Some(entry),
            Ok(_) => None,
            // Purged (or evicted) while this read was starting: a plain miss.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.remove(&hash);
                None
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), "dropping a corrupt cache entry: {e}");
                self.remove(&hash);
                None
            }
        }
    }

    /// Writes an entry (blocking I/O). An error turns the tier off.
    pub fn insert(&self, entry: &Entry) {
        if !self.is_enabled() {
            return;
        }
        let hash = entry.key.hash();
        let size = match self.write(&hash, entry) {
            Ok(size) => size,
            Err(e) => {
                tracing::error!(dir = %self.root.display(), "disk cache turned off after a write error: {e}");
                self.disabled.store(true, Ordering::Relaxed);
                return;
            }
        };
        let doomed = {
            let mut index = self.lock();
            index.clock += 1;
            let slot = Slot {
                key: entry.key.clone(),
                size,
                last_used: index.clock,
            };
            if let Some(old) = index.slots.insert(hash.clone(), slot) {
                index.total -= old.size;
            }
            index.total += size;
            let mut doomed = Vec::new();
            while index.total > self.max_bytes {
                let Some(victim) = index
                    .slots
                    .iter()
                    .filter(|(h, _)| **h != hash)
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(h, _)| h.clone())
                else {
                    break;
                };
                if let Some(slot) = index.slots.remove(&victim) {
                    index.total -= slot.size;
                }
                doomed.push(victim);
            }
            doomed
        };
        for victim in doomed {
            let _ = fs::remove_file(self.path_of(&victim));
        }
    }

    fn write(&self, hash: &str, entry: &Entry) -> io::Result<u64> {
        let header = Header {
            key: entry.key.clone(),
            kind: entry.kind,
            meta: entry.meta.clone(),
            stored_at: entry.stored_at,
            freshness: entry.freshness,
            body_len: entry.body_len(),
            body_sha256: sha256_hex(&entry.body),
        };
        let header = serde_json::to_vec(&header).map_err(io::Error::other)?;
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .root
            .join("tmp")
            .join(format!("{hash}.{}.{n}", std::process::id()));
        let result = (|| {
            let mut file = io::BufWriter::new(fs::File::create(&temp)?);
            file.write_all(MAGIC)?;
            file.write_all(&(header.len() as u32).to_le_bytes())?;
            file.write_all(&header)?;
            for chunk in entry.body.iter() {
                file.write_all(chunk)?;
            }
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_data()?;
            let size = file.metadata()?.len();
            let path = self.path_of(hash);
            fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
            fs::rename(&temp, &path)?;
            Ok(size)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    fn remove(&self, hash: &str) {
        {
            let mut index = self.lock();
            if let Some(slot) = index.slots.remove(hash) {
                index.total -= slot.size;
            }
        }
        let _ = fs::remove_file(self.path_of(hash));
    }

    /// Removes the matching entries of a site; returns their keys.
    pub fn purge(&self, site: &str, matches: &dyn Fn(&str) -> bool) -> Vec<CacheKey> {
        let doomed: Vec<(String, CacheKey)> = self
            .lock()
            .slots
            .iter()
            .filter(|(_, s)| s.key.site == site && matches(&s.key.object_key))
            .map(|(h, s)| (h.clone(), s.key.clone()))
            .collect();
        for (hash, _) in &doomed {
            self.remove(hash);
        }
        doomed.into_iter().map(|(_, key)| key).collect()
    }

    /// Bytes and entries on disk.
    pub fn usage(&self) -> (u64, u64) {
        let index = self.lock();
        (index.total, index.slots.len() as u64)
    }
}

fn read_header(path: &Path) -> io::Result<(Header, fs::File)> {
    let mut file = fs::File::open(path)?;
    let mut magic = [0u8; MAGIC.len()];
    file.read_exact(&mut magic)?;
    if magic != MAGIC {
        return Err(io::Error::other("not a cache file"));
    }
    let mut len = [0u8; 4];
    file.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(io::Error::other("header too large"));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)?;
    let header: Header = serde_json::from_slice(&header).map_err(io::Error::other)?;
    Ok((header, file))
}

fn read_entry(path: &Path) -> io::Result<Entry> {
    let (header, mut file) = read_header(path)?;
    let mut body = Vec::with_capacity(header.body_len.min(64 << 20) as usize);
    file.read_to_end(&mut body)?;
    if body.len() as u64 != header.body_len {
        return Err(io::Error::other(format!(
            "body is {} bytes, header says {}",
            body.len(),
            header.body_len
        )));
    }
    let body = Bytes::from(body);
    if sha256_hex(std::slice::from_ref(&body)) != header.body_sha256 {
        return Err(io::Error::other("body checksum mismatch"));
    }
    let body = super::split_body(body);
    Ok(Entry {
        key: header.key,
        kind: header.kind,
        meta: header.meta,
        body: Arc::from(body),
        stored_at: header.stored_at,
        freshness: header.freshness,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Variant;
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
            body: Arc::from(vec![Bytes::copy_from_slice(body)]),
            stored_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
            freshness: Freshness {
                ttl: Duration::from_secs(60),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
            },
        }
    }

    #[test]
    fn entries_survive_a_reopen_and_come_back_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let tier = DiskTier::open(dir.path(), 1 << 20).unwrap();
        tier.insert(&entry("a.html", b"hello"));
        drop(tier);
        let tier = DiskTier::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(tier.usage().1, 1);
        let got = tier
            .get(&CacheKey::new("s", "a.html", Variant::Identity))
            .unwrap();
        assert_eq!(&got.body[0][..], b"hello");
        assert_eq!(got.meta.etag.as_deref(), Some("\"e\""));
        assert_eq!(
            got.stored_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000)
        );
    }

    #[test]
    fn a_flipped_or_truncated_file_is_dropped_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let tier = DiskTier::open(dir.path(), 1 << 20).unwrap();
        let key = CacheKey::new("s", "a.html", Variant::Identity);
        for damage in ["flip", "truncate", "header"] {
            tier.insert(&entry("a.html", b"hello world"));
            let path = tier.path_of(&key.hash());
            let mut bytes = fs::read(&path).unwrap();
            match damage {
                "flip" => *bytes.last_mut().unwrap() ^= 0x01,
                "truncate" => bytes.truncate(bytes.len() - 3),
                _ => bytes[MAGIC.len() + 6] ^= 0xff,
            }
            fs::write(&path, bytes).unwrap();
            assert!(tier.get(&key).is_none(), "{damage}");
            assert!(!path.exists(), "{damage}: the file is removed");
            assert_eq!(tier.usage().1, 0, "{damage}");
        }
    }

    #[test]
    fn temporary_files_are_removed_and_the_least_recently_used_entry_is_evicted() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("v1/tmp")).unwrap();
        fs::write(dir.path().join("v1/tmp/leftover"), b"half a fill").unwrap();
        let tier = DiskTier::open(dir.path(), 4 * 1024).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("v1/tmp")).unwrap().count(), 0);
        let body = vec![7u8; 1000];
        tier.insert(&entry("one", &body));
        tier.insert(&entry("two", &body));
        assert!(tier
            .get(&CacheKey::new("s", "one", Variant::Identity))
            .is_some());
        tier.insert(&entry("three", &body));
        assert!(tier.usage().0 <= 4 * 1024);
        assert!(
            tier.get(&CacheKey::new("s", "two", Variant::Identity))
                .is_none(),
            "the least recently used goes first"
        );
        assert!(tier
            .get(&CacheKey::new("s", "one", Variant::Identity))
            .is_some());
    }
}
