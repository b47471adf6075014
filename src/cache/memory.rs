//! The memory tier: moka, weighted by bytes, bounded by `--memory-cache-size`.

use std::sync::Arc;

use super::{CacheKey, Entry};

/// Bytes counted for an entry besides its body (key, metadata, bookkeeping).
const ENTRY_OVERHEAD: u64 = 512;

/// Entries in memory.
pub struct MemoryTier {
    entries: moka::sync::Cache<CacheKey, Arc<Entry>>,
}

impl MemoryTier {
    pub fn new(max_bytes: u64) -> MemoryTier {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &CacheKey, entry: &Arc<Entry>| {
                let weight = entry.body_len() + key.object_key.len() as u64 + ENTRY_OVERHEAD;
                u32::try_from(weight).unwrap_or(u32::MAX)
            })
            .build();
        MemoryTier { entries }
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.entries.get(key)
    }

    pub fn insert(&self, entry: Arc<Entry>) {
        self.entries.insert(entry.key.clone(), entry);
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

    /// Weighted bytes and entries held (after pending maintenance).
    pub fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.weighted_size(), self.entries.entry_count())
    }
}
