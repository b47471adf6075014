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

impl PurgeRecord {
    /// Whether `later` is this purge again (the same scope, within
    /// [`SAME_PURGE_WITHIN`]).
    fn is_again(&self, later: &PurgeRecord) -> bool {
        let close = later
            .time
            .duration_since(self.time)
            .is_ok_and(|gap| gap <= SAME_PURGE_WITHIN);
        close
            && later.site == self.site
            && later.paths == self.paths
            && later.prefixes == self.prefixes
            && later.all == self.all
    }
}

/// The last [`KEPT_PURGES`] purges.
#[derive(Debug, Default)]
pub struct RecentPurges(Mutex<VecDeque<PurgeRecord>>);

/// How close together the same purge, arriving again, is one purge: a
/// cluster purge reaches each node in two rounds a few milliseconds apart
/// (`cluster/purge.rs`), which the page shows as one line, its counts added.
const SAME_PURGE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

impl RecentPurges {
    pub fn record(&self, purge: PurgeRecord) {
        let mut purges = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = purges.front_mut().filter(|last| last.is_again(&purge)) {
            last.purged = last.purged.saturating_add(purge.purged);
            return;
        }
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

    #[test]
    fn the_same_purge_again_within_seconds_is_one_line_with_its_counts_added() {
        let purges = RecentPurges::default();
        let at = |ms: u64, path: &str, purged: u64| PurgeRecord {
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms),
            site: "web".into(),
            paths: vec![path.into()],
            prefixes: vec![],
            all: false,
            purged,
        };
        // A cluster purge's two rounds, then another path, then the first
        // path again much later.
        purges.record(at(1_000, "/a", 3));
        purges.record(at(1_002, "/a", 1));
        purges.record(at(1_500, "/b", 2));
        purges.record(at(9_000, "/b", 4));
        let lines: Vec<(String, u64)> = purges
            .list()
            .into_iter()
            .map(|p| (p.paths[0].clone(), p.purged))
            .collect();
        assert_eq!(
            lines,
            [("/b".into(), 4), ("/b".into(), 2), ("/a".into(), 4)]
        );
    }
}
