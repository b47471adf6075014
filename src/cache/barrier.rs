//! The purge barrier (README "The cache", docs/ARCHITECTURE.md): once a purge has
//! returned, no later request can get a version it removed.
//!
//! Every purge takes a new [`Generation`] and records its [`PurgeScope`]; a
//! request captures the current generation before it reads the cache, and
//! everything it stores afterwards (a fill, a 304 refresh, an encoding
//! variant, a background range fill or stale-while-revalidate refresh, the
//! promotion of a disk entry to memory, a disk file renamed into place) is
//! committed through [`PurgeBarrier::commit`] with that generation: when a
//! purge recorded since then covers the key, nothing is stored.
//!
//! Commits hold the barrier shared and a purge holds it exclusively while it
//! records its scope, so a commit lands either wholly before a purge's
//! record (and the purge then removes what it stored) or after it (and sees
//! the record). The maps in memory are emptied of the purge's entries
//! with it; the disk tier's files are removed after that, with the barrier
//! free: requests, hits and commits of every key go on meanwhile (a purge of
//! a large site unlinks thousands of files). What keeps a removed version out
//! is the generation requests are issued: it moves past a purge only once
//! that purge (and every purge recorded before it) has removed its entries.
//! A request issued a generation during the removal may still read an entry
//! not removed yet, but whatever it would store of a covered key (a fill,
//! the promotion of that entry to memory) is refused; a request issued the
//! new generation comes after the removal and cannot read what it removed.
//!
//! The record is kept for [`RECORD_WINDOW`] and at most [`RECORD_MAX`]
//! purges. A commit whose generation is older than the oldest record kept
//! cannot tell what was purged since and stores nothing: only a fill that
//! took longer than the window is affected.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use super::CacheKey;

/// How long a purge's record is kept for commits that began before it.
pub const RECORD_WINDOW: Duration = Duration::from_secs(600);
/// Most purge records kept.
pub const RECORD_MAX: usize = 4096;

/// A point in the sequence of purges: generation `g` has seen the first `g`.
pub type Generation = u64;

/// What one purge removes from one site: exact object keys (with their
/// precompressed sidecars `key.br` and `key.gz`, which encoding variants are
/// made from) and key prefixes (the site's `origin.prefix` included; `all` is
/// the prefix itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeScope {
    pub keys: Vec<String>,
    pub prefixes: Vec<String>,
}

impl PurgeScope {
    /// Everything of a site whose keys live under `site_prefix`.
    pub fn all(site_prefix: &str) -> PurgeScope {
        PurgeScope {
            keys: Vec::new(),
            prefixes: vec![site_prefix.to_string()],
        }
    }

    /// Whether an entry's object key is covered: a key covers itself, its
    /// precompressed sidecars, and (HTTP origins) its responses selected by
    /// `Vary` (`key` + [`VARY_SEPARATOR`] + the selecting values).
    pub fn matches(&self, object_key: &str) -> bool {
        self.keys.iter().any(|k| {
            object_key.strip_prefix(k.as_str()).is_some_and(|rest| {
                matches!(rest, "" | ".br" | ".gz") || rest.starts_with(VARY_SEPARATOR)
            })
        }) || self
            .prefixes
            .iter()
            .any(|p| object_key.starts_with(p.as_str()))
    }
}

/// Separates an HTTP origin's URL from the selecting header values of a
/// response stored under it (`Vary`): a character no request target has.
pub const VARY_SEPARATOR: char = '\0';

struct Record {
    generation: Generation,
    site: String,
    scope: PurgeScope,
    at: Instant,
}

#[derive(Default)]
struct Log {
    /// The last purge recorded.
    generation: Generation,
    /// Commits older than this cannot be judged: their purges were forgotten.
    floor: Generation,
    records: VecDeque<Record>,
    /// Purges recorded whose entries are still being removed.
    removing: BTreeSet<Generation>,
}

impl Log {
    /// The generation requests are issued: the last purge recorded, or the
    /// one before the oldest whose entries are still being removed.
    fn issued(&self) -> Generation {
        self.removing
            .first()
            .map_or(self.generation, |oldest| oldest - 1)
    }
}

impl Log {
    fn covers(&self, key: &CacheKey, since: Generation) -> bool {
        since < self.floor
            || self.records.iter().rev().any(|r| {
                r.generation > since && r.site == key.site && r.scope.matches(&key.object_key)
            })
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some(oldest) = self.records.front() {
            let expired = now.duration_since(oldest.at) > RECORD_WINDOW;
            if !expired && self.records.len() <= RECORD_MAX {
                break;
            }
            self.floor = oldest.generation;
            self.records.pop_front();
        }
    }
}

/// The barrier between stores and purges of one cache.
#[derive(Default)]
pub struct PurgeBarrier {
    log: RwLock<Log>,
    /// [`Log::issued`], read by every request without the lock.
    issued: AtomicU64,
    /// Purges removing their entries now (`Log::removing.len()`).
    removing: AtomicU64,
    /// Woken when a purge's removal is done.
    removed: tokio::sync::Notify,
}

impl PurgeBarrier {
    fn read(&self) -> RwLockReadGuard<'_, Log> {
        self.log.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Log> {
        self.log.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation a request captures before it reads the cache. Never
    /// waits: a purge removing entries holds up no request.
    pub fn generation(&self) -> Generation {
        self.issued.load(Ordering::Acquire)
    }

    /// The generation a request for `object_key` of `site` captures before
    /// it reads the cache: at once, unless a purge covering the key is
    /// removing its entries, then once that removal is done. Requests for
    /// the keys a purge removes wait for it as they did when every request
    /// did: they then read a cache without what it removed and coalesce
    /// into one origin request per key, where a request issued the
    /// generation before the purge could store nothing of such a key, and
    /// each asked the origin itself. Requests for other keys go on.
    pub async fn generation_for(&self, site: &str, object_key: &str) -> Generation {
        loop {
            if self.removing.load(Ordering::Acquire) == 0 {
                return self.generation();
            }
            let removed = self.removed.notified();
            let mut removed = std::pin::pin!(removed);
            removed.as_mut().enable();
            let covered = {
                let log = self.read();
                // Only the records from the oldest removal under way on.
                let oldest = log.removing.first().copied().unwrap_or(Generation::MAX);
                log.records
                    .iter()
                    .rev()
                    .take_while(|r| r.generation >= oldest)
                    .any(|r| {
                        log.removing.contains(&r.generation)
                            && r.site == site
                            && r.scope.matches(object_key)
                    })
            };
            if !covered {
                return self.generation();
            }
            removed.await;
        }
    }

    /// Runs `store` unless a purge recorded after `since` covers `key`; a
    /// purge waits until it is done. `None` when it was not run.
    pub fn commit<T>(
        &self,
        key: &CacheKey,
        since: Generation,
        store: impl FnOnce() -> T,
    ) -> Option<T> {
        let log = self.read();
        if log.covers(key, since) {
            return None;
        }
        let stored = store();
        drop(log);
        Some(stored)
    }

    /// Runs `f` with the barrier held shared, giving it `covers(key, since)`:
    /// whether a purge recorded after `since` covers `key`. Held like a
    /// commit, so no purge runs meanwhile (locks taken inside `f` come after
    /// the barrier's, as in a purge).
    pub fn holding<T>(&self, f: impl FnOnce(&dyn Fn(&CacheKey, Generation) -> bool) -> T) -> T {
        let log = self.read();
        f(&|key, since| log.covers(key, since))
    }

    /// Records a purge of `scope` on `site`, then runs `remove` (which takes
    /// the entries out of every tier) with the barrier free; requests are
    /// issued its generation once `remove` has returned (see the module doc).
    pub fn purge<T>(
        &self,
        site: &str,
        scope: PurgeScope,
        remove: impl FnOnce(&PurgeScope) -> T,
    ) -> T {
        self.purge_in_two(site, scope, |_| (), |scope, ()| remove(scope))
    }

    /// [`purge`](Self::purge) in two steps: `held` runs with the record,
    /// the barrier still held, so no commit interleaves with it (what it
    /// takes out of the maps in memory, entries on their way to disk
    /// included, is all there is: a write refused meanwhile cannot leave
    /// the map uncounted); `free`, given what `held` returned, runs with the
    /// barrier free (the disk tier's unlinks).
    pub fn purge_in_two<H, T>(
        &self,
        site: &str,
        scope: PurgeScope,
        held: impl FnOnce(&PurgeScope) -> H,
        free: impl FnOnce(&PurgeScope, H) -> T,
    ) -> T {
        // Declared before the lock, so that it is dropped after it: the
        // generation is issued even if `held` or `free` panics (a blocking
        // task's panic is caught), or requests would wait for good.
        let mut removed = Removed {
            barrier: self,
            generation: None,
        };
        let taken = {
            let mut log = self.write();
            let now = Instant::now();
            log.generation += 1;
            let generation = log.generation;
            log.records.push_back(Record {
                generation,
                site: site.to_string(),
                scope: scope.clone(),
                at: now,
            });
            log.forget_old(now);
            log.removing.insert(generation);
            self.removing.fetch_add(1, Ordering::AcqRel);
            removed.generation = Some(generation);
            held(&scope)
        };
        free(&scope, taken)
    }

    /// A purge's entries are removed: requests may be issued its generation
    /// once every purge recorded before it is done too.
    fn removed(&self, generation: Generation) {
        let mut log = self.write();
        log.removing.remove(&generation);
        self.issued.store(log.issued(), Ordering::Release);
        self.removing.fetch_sub(1, Ordering::AcqRel);
        drop(log);
        self.removed.notify_waiters();
    }
}

/// Marks a purge's removal done when dropped, once it has been recorded.
struct Removed<'a> {
    barrier: &'a PurgeBarrier,
    generation: Option<Generation>,
}

impl Drop for Removed<'_> {
    fn drop(&mut self) {
        if let Some(generation) = self.generation {
            self.barrier.removed(generation);
        }
    }
}

/// What a fill carries to commit what it stores: the barrier and the
/// generation its request captured. Cheap to clone into blocking tasks.
#[derive(Clone)]
pub struct Ticket {
    barrier: Arc<PurgeBarrier>,
    since: Generation,
}

impl Ticket {
    pub fn new(barrier: Arc<PurgeBarrier>, since: Generation) -> Ticket {
        Ticket { barrier, since }
    }

    /// The generation it was issued at.
    pub fn since(&self) -> Generation {
        self.since
    }

    /// [`PurgeBarrier::commit`] with this ticket's generation.
    pub fn commit<T>(&self, key: &CacheKey, store: impl FnOnce() -> T) -> Option<T> {
        self.barrier.commit(key, self.since, store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Variant;

    fn key(object_key: &str) -> CacheKey {
        CacheKey::new("site", object_key, Variant::Identity)
    }

    fn paths(keys: &[&str]) -> PurgeScope {
        PurgeScope {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            prefixes: Vec::new(),
        }
    }

    #[test]
    fn a_commit_begun_before_a_matching_purge_is_refused_and_others_are_not() {
        let barrier = PurgeBarrier::default();
        let before = barrier.generation();
        barrier.purge("site", paths(&["a.html"]), |_| ());
        let after = barrier.generation();
        assert!(barrier.commit(&key("a.html"), before, || ()).is_none());
        assert!(barrier.commit(&key("b.html"), before, || ()).is_some());
        assert!(barrier.commit(&key("a.html.br"), before, || ()).is_none());
        assert!(barrier.commit(&key("a.html.bak"), before, || ()).is_some());
        assert!(barrier.commit(&key("a.html"), after, || ()).is_some());
        let other_site = CacheKey::new("other", "a.html", Variant::Brotli);
        assert!(barrier.commit(&other_site, before, || ()).is_some());
    }

    #[test]
    fn prefixes_and_all_cover_every_key_under_them_in_every_variant() {
        let barrier = PurgeBarrier::default();
        let before = barrier.generation();
        barrier.purge(
            "site",
            PurgeScope {
                keys: Vec::new(),
                prefixes: vec!["blog/".into()],
            },
            |_| (),
        );
        assert!(barrier.commit(&key("blog/x.html"), before, || ()).is_none());
        let br = CacheKey::new("site", "blog/x.html", Variant::Brotli);
        assert!(barrier.commit(&br, before, || ()).is_none());
        assert!(barrier.commit(&key("about.html"), before, || ()).is_some());
        let before = barrier.generation();
        barrier.purge("site", PurgeScope::all(""), |_| ());
        assert!(barrier.commit(&key("about.html"), before, || ()).is_none());
    }

    /// While a purge removes its entries, requests are issued the
    /// generation before it without waiting, and other keys' commits go
    /// through; a covered key's commit is refused, whatever it read (an
    /// entry not removed yet, promoted to memory, would outlive the purge).
    /// The new generation is issued once the removal, and every removal
    /// recorded before it, is done.
    /// A purge of `key` on another thread, held in its removal until the
    /// sender is used (or dropped); returns once the removal has begun.
    fn purge_held(
        barrier: &Arc<PurgeBarrier>,
        key: &'static str,
    ) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (started, removing) = std::sync::mpsc::channel();
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let purging = {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.purge("site", paths(&[key]), |_| {
                    started.send(()).unwrap();
                    let _ = finished.recv();
                })
            })
        };
        removing.recv().unwrap();
        (finish, purging)
    }

    #[test]
    fn requests_go_on_while_a_purge_removes_its_entries() {
        use std::sync::mpsc;
        let barrier = Arc::new(PurgeBarrier::default());
        let before = barrier.generation();
        let (finish, purging) = purge_held(&barrier, "a.html");
        // The purge is removing: nothing here may wait for it (every request
        // waited on the barrier for as long as a purge removed entries).
        let (sent, issued) = mpsc::channel();
        {
            let barrier = barrier.clone();
            std::thread::spawn(move || sent.send(barrier.generation()));
        }
        let during = issued
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("a request waited for the purge's removal");
        assert_eq!(during, before);
        assert!(barrier.commit(&key("b.html"), during, || ()).is_some());
        assert!(barrier.commit(&key("a.html"), during, || ()).is_none());
        // A second purge recorded meanwhile, removed at once: still the old
        // generation, as the first is not done.
        barrier.purge("site", paths(&["c.html"]), |_| ());
        assert_eq!(barrier.generation(), before);
        assert!(barrier.commit(&key("c.html"), before, || ()).is_none());
        finish.send(()).unwrap();
        purging.join().unwrap();
        let after = barrier.generation();
        assert_eq!(after, before + 2);
        assert!(barrier.commit(&key("a.html"), after, || ()).is_some());
        assert!(barrier.commit(&key("c.html"), after, || ()).is_some());
    }

    /// A request for a key the purge is removing waits for the removal and
    /// then gets the new generation (it would otherwise store nothing, and
    /// every such request would ask the origin itself); others do not wait.
    #[tokio::test]
    async fn requests_for_keys_being_removed_wait_for_the_removal() {
        let barrier = Arc::new(PurgeBarrier::default());
        let before = barrier.generation();
        let (finish, purging) = purge_held(&barrier, "a.html");
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            barrier.generation_for("site", "b.html"),
        )
        .await
        .expect("a key the purge does not cover waited");
        assert_eq!(other, before);
        let elsewhere = barrier.generation_for("other", "a.html").await;
        assert_eq!(elsewhere, before);
        let waiting = {
            let barrier = barrier.clone();
            tokio::spawn(async move { barrier.generation_for("site", "a.html.br").await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "did not wait for the removal");
        finish.send(()).unwrap();
        purging.join().unwrap();
        let after = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken when the removal was done")
            .unwrap();
        assert_eq!(after, before + 1);
        assert!(barrier.commit(&key("a.html"), after, || ()).is_some());
    }

    #[test]
    fn a_commit_older_than_every_record_kept_is_refused() {
        let barrier = PurgeBarrier::default();
        let ancient = barrier.generation();
        for i in 0..=RECORD_MAX {
            barrier.purge("site", paths(&[&format!("k{i}")]), |_| ());
        }
        // The purge of `k0` was forgotten: the commit cannot be judged.
        assert!(barrier.commit(&key("unrelated"), ancient, || ()).is_none());
        let recent = barrier.generation();
        assert!(barrier.commit(&key("unrelated"), recent, || ()).is_some());
    }
}
