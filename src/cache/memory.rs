//! The memory tier: moka, weighted by bytes, bounded by `--memory-cache-size`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Body, CacheKey, Entry};

/// Bytes counted for an entry besides its body: key, metadata, bookkeeping,
/// and the response fields its hits share once it has been hit (`Prepared`:
/// about 500 bytes).
const ENTRY_OVERHEAD: u64 = 1024;

/// Entries in memory.
pub struct MemoryTier {
    entries: moka::sync::Cache<CacheKey, Arc<Entry>>,
    max_bytes: u64,
    /// Bytes inserted since evictions last ran.
    unmaintained: AtomicU64,
}

/// What an entry costs the process: its body's allocations as the allocator
/// sizes them, its key, and the rest. Counting the bodies' lengths instead
/// held the tier at its bound in bytes while the allocations were a few
/// percent larger, which the working-set benchmark's RSS showed.
fn weight(key: &CacheKey, entry: &Entry) -> u64 {
    let body = match &entry.body {
        Body::Memory(chunks) => chunks.iter().map(|c| allocated(c.len() as u64)).sum(),
        Body::Disk(_) => 0,
    };
    body + key.object_key.len() as u64 + ENTRY_OVERHEAD
}

/// The size jemalloc (the global allocator, `main.rs`) gives a request of
/// `len` bytes: its size classes are multiples of 16 up to 128, then four per
/// doubling (128 < n <= 256 gets 160, 192, 224 or 256, and so on). A chunk
/// sliced from a larger buffer (a body read whole from disk) is counted as if
/// it were allocated alone, which comes to the same within a class.
fn allocated(len: u64) -> u64 {
    if len <= 128 {
        return len.div_ceil(16) * 16;
    }
    // The largest power of two below `len`, and a quarter of it.
    let step = 1u64 << (63 - (len - 1).leading_zeros() - 2);
    len.div_ceil(step) * step
}

impl MemoryTier {
    pub fn new(max_bytes: u64) -> MemoryTier {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &CacheKey, entry: &Arc<Entry>| {
                u32::try_from(weight(key, entry)).unwrap_or(u32::MAX)
            })
            .build();
        MemoryTier {
            entries,
            max_bytes,
            unmaintained: AtomicU64::new(0),
        }
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.entries.get(key)
    }

    /// Inserts an entry. moka evicts in batches during later operations, so
    /// once a thirty-second of the budget has been inserted since the last
    /// batch, the evictions run now: the tier (and the process's memory) never
    /// sits far over its bound after a burst of fills, even if nothing follows.
    pub fn insert(&self, entry: Arc<Entry>) {
        let added = weight(&entry.key, &entry);
        self.entries.insert(entry.key.clone(), entry);
        let pending = self.unmaintained.fetch_add(added, Ordering::Relaxed) + added;
        if pending > self.max_bytes / 32 {
            self.unmaintained.store(0, Ordering::Relaxed);
            self.entries.run_pending_tasks();
        }
    }

    /// Removes the matching entries of a site; returns their keys.
    pub fn purge(&self, site: &str, matches: &dyn Fn(&str) -> bool) -> Vec<CacheKey> {
        let doomed: Vec<Arc<CacheKey>> = self
            .entries
            .iter()
            .filter(|(key, _)| key.site == site && matches(&key.object_key))
            .map(|(key, _)| key)
            .collect();
        for key in &doomed {
            self.entries.invalidate(key.as_ref());
        }
        doomed.iter().map(|key| CacheKey::clone(key)).collect()
    }

    /// The tier's bound in bytes (`--memory-cache-size`).
    pub fn capacity(&self) -> u64 {
        self.max_bytes
    }

    /// Weighted bytes and entries held (after pending maintenance).
    pub fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.weighted_size(), self.entries.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Body, EntryKind, Freshness, Variant};
    use bytes::Bytes;
    use std::time::{Duration, SystemTime};

    fn entry(name: &str, len: usize) -> Arc<Entry> {
        Arc::new(Entry {
            key: CacheKey::new("s", name, Variant::Identity),
            kind: EntryKind::Object,
            meta: crate::origin::ObjectMeta::default(),
            body: Body::Memory(Arc::from(vec![Bytes::from(vec![0u8; len])])),
            stored_at: SystemTime::now(),
            freshness: Freshness {
                ttl: Duration::from_secs(60),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
            },
            prepared: Default::default(),
        })
    }

    #[test]
    fn entries_weigh_what_the_allocator_gives_their_bodies() {
        // jemalloc's size classes (`malloc_usable_size` of each request).
        for (len, class) in [
            (0, 0),
            (1, 16),
            (100, 112),
            (128, 128),
            (129, 160),
            (257, 320),
            (4096, 4096),
            (4097, 5120),
            (30_000, 32_768),
            (100 * 1024, 112 * 1024),
            (256 * 1024, 256 * 1024),
            (256 * 1024 + 1, 320 * 1024),
            (4 << 20, 4 << 20),
        ] {
            assert_eq!(allocated(len), class, "{len} bytes");
        }
        let e = entry("page", 129);
        assert_eq!(weight(&e.key, &e), 160 + 4 + ENTRY_OVERHEAD);
    }

    #[test]
    fn a_burst_of_inserts_is_evicted_down_to_the_budget_without_a_later_operation() {
        let max = 1u64 << 20;
        let tier = MemoryTier::new(max);
        for i in 0..40 {
            tier.insert(entry(&format!("e{i}"), 100 * 1024));
        }
        // What the tier still holds, with no read or scrape to run evictions.
        let held: u64 = tier
            .entries
            .iter()
            .map(|(key, entry)| weight(&key, &entry))
            .sum();
        assert!(
            held <= max + max / 32 + 100 * 1024 + ENTRY_OVERHEAD,
            "holds {held} bytes for a budget of {max}"
        );
        assert!(held > 0);
    }
}
