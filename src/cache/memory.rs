//! The memory tier: moka, weighted by bytes, bounded by `--memory-cache-size`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{CacheKey, Entry};

/// Bytes counted for an entry besides its body (key, metadata, bookkeeping).
const ENTRY_OVERHEAD: u64 = 512;

/// Entries in memory.
pub struct MemoryTier {
    entries: moka::sync::Cache<CacheKey, Arc<Entry>>,
    max_bytes: u64,
    /// Bytes inserted since evictions last ran.
    unmaintained: AtomicU64,
}

fn weight(key: &CacheKey, entry: &Entry) -> u64 {
    entry.body_len() + key.object_key.len() as u64 + ENTRY_OVERHEAD
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
        })
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
