//! The last purge calls, newest first, for the status page.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

/// Purge calls kept.
pub const KEPT_PURGES: usize = 50;

/// One `POST /purge` (or `s3edge purge`) that was carried out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PurgeRecord {
    #[serde(serialize_with = "crate::status::serialize_time")]
    pub time: SystemTime,
    pub site: String,
    pub paths: Vec<String>,
    pub prefixes: Vec<String>,
    pub all: bool,
    /// Cache entries removed, every variant counted.
    pub purged: u64,
}

/// The last [`KEPT_PURGES`] purges.
#[derive(Debug, Default)]
pub struct RecentPurges(Mutex<VecDeque<PurgeRecord>>);

impl RecentPurges {
    pub fn record(&self, purge: PurgeRecord) {
        let mut purges = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if purges.len() == KEPT_PURGES {
            purges.pop_back();
        }
        purges.push_front(purge);
    }

    /// Newest first.
    pub fn list(&self) -> Vec<PurgeRecord> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_purges_are_kept_newest_first() {
        let purges = RecentPurges::default();
        for n in 0..KEPT_PURGES + 5 {
            purges.record(PurgeRecord {
                time: SystemTime::UNIX_EPOCH,
                site: format!("s{n}"),
                paths: vec![],
                prefixes: vec![],
                all: true,
                purged: n as u64,
            });
        }
        let list = purges.list();
        assert_eq!(list.len(), KEPT_PURGES);
        assert_eq!(list[0].purged, KEPT_PURGES as u64 + 4);
        assert_eq!(list.last().unwrap().purged, 5);
    }
}
