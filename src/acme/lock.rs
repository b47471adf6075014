//! The order lock: only one node orders a site's certificate at a time.
//!
//! As Caddy's storage modules do, the lock is a value created with
//! [`Storage::create_new`] (an `If-None-Match: *` PutObject on a bucket), holding
//! the holder's name and when the lock expires. A node that finds the lock held
//! waits and reads the certificate the holder stores. A lock older than its
//! expiry (its holder died mid-order) is removed and taken again. A lock this
//! node left itself (a process killed mid-order, then restarted) is taken over
//! at once: on storage only this node uses (`--acme-dir`) every lock is its
//! own; on shared storage, those held under its name (`--node-id`).
//!
//! A guard releases its key when dropped; the delete runs on the runtime and
//! is tracked by [`Releases`], which a clean shutdown waits for.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio_util::task::TaskTracker;

use super::storage::{Storage, StorageError};

/// How long a lock holds without being released: longer than any order takes
/// (the CA's polling gives up after a few minutes).
pub const LOCK_TTL: Duration = Duration::from_secs(600);

#[derive(Serialize, Deserialize)]
struct LockRecord {
    holder: String,
    /// Seconds since the Unix epoch.
    expires: u64,
}

/// The outcome of trying to take a lock.
pub enum Locking {
    /// This node holds the lock until the guard drops.
    Held(KeyGuard),
    /// Another node holds it.
    Busy { holder: String },
}

/// The deletes that dropped guards started, so that shutdown can wait for
/// them: a task cancelled at shutdown drops its guard while the runtime is
/// about to stop, and a delete nobody waits for never runs.
#[derive(Clone, Default)]
pub struct Releases(TaskTracker);

impl Releases {
    /// Waits until every delete started so far has finished.
    pub async fn wait(&self) {
        self.0.close();
        self.0.wait().await;
        self.0.reopen();
    }
}

/// Removes its key from storage when dropped (also when the order task is
/// cancelled): a lock, or a published challenge answer.
pub struct KeyGuard {
    storage: Arc<dyn Storage>,
    releases: Releases,
    key: String,
}

impl KeyGuard {
    pub fn new(storage: &Arc<dyn Storage>, releases: &Releases, key: &str) -> KeyGuard {
        KeyGuard {
            storage: Arc::clone(storage),
            releases: releases.clone(),
            key: key.to_string(),
        }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let storage = Arc::clone(&self.storage);
        let key = std::mem::take(&mut self.key);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.releases.0.spawn_on(
                async move {
                    if let Err(e) = storage.delete(&key).await {
                        tracing::warn!("ACME: cannot remove {key} from storage: {e}");
                    }
                },
                &runtime,
            );
        }
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Tries once to take the lock `key` for `holder` (this node's name).
pub async fn try_lock(
    storage: &Arc<dyn Storage>,
    releases: &Releases,
    key: &str,
    holder: &str,
) -> Result<Locking, StorageError> {
    let record = |now: SystemTime| {
        serde_json::to_vec(&LockRecord {
            holder: holder.to_string(),
            expires: seconds(now + LOCK_TTL),
        })
        .unwrap_or_default()
    };
    let guard = || KeyGuard::new(storage, releases, key);
    if storage.create_new(key, &record(SystemTime::now())).await? {
        return Ok(Locking::Held(guard()));
    }
    let existing = storage.load(key).await?;
    let parsed = existing
        .as_deref()
        .and_then(|bytes| serde_json::from_slice::<LockRecord>(bytes).ok());
    match parsed {
        // Left by an earlier process of this node: it orders no more.
        Some(lock) if !storage.is_shared() || lock.holder == holder => {
            tracing::info!(
                key,
                holder = lock.holder,
                "ACME: taking over the order lock this node left"
            );
            storage.store(key, &record(SystemTime::now())).await?;
            Ok(Locking::Held(guard()))
        }
        Some(lock) if lock.expires > seconds(SystemTime::now()) => Ok(Locking::Busy {
            holder: lock.holder,
        }),
        // Expired, unreadable, or released meanwhile: remove it and try once more.
        _ => {
            storage.delete(key).await?;
            if storage.create_new(key, &record(SystemTime::now())).await? {
                Ok(Locking::Held(guard()))
            } else {
                Ok(Locking::Busy {
                    holder: "another node".into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::storage::DirStorage;
    use async_trait::async_trait;

    /// A directory that says it is shared, as a ring's bucket is.
    struct SharedDir(DirStorage);

    #[async_trait]
    impl Storage for SharedDir {
        async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
            self.0.load(key).await
        }
        async fn store(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
            self.0.store(key, value).await
        }
        async fn create_new(&self, key: &str, value: &[u8]) -> Result<bool, StorageError> {
            self.0.create_new(key, value).await
        }
        async fn delete(&self, key: &str) -> Result<(), StorageError> {
            self.0.delete(key).await
        }
        fn describe(&self) -> String {
            self.0.describe()
        }
        fn is_shared(&self) -> bool {
            true
        }
    }

    fn shared(dir: &tempfile::TempDir) -> Arc<dyn Storage> {
        Arc::new(SharedDir(DirStorage::new(dir.path().to_path_buf())))
    }

    fn local(dir: &tempfile::TempDir) -> Arc<dyn Storage> {
        Arc::new(DirStorage::new(dir.path().to_path_buf()))
    }

    /// A lock record as a process that died left it: `expires` from now.
    async fn leave_lock(storage: &Arc<dyn Storage>, holder: &str, expires: u64) {
        let record = serde_json::to_vec(&LockRecord {
            holder: holder.into(),
            expires,
        })
        .expect("json");
        storage.store("ca/locks/s", &record).await.expect("store");
    }

    fn in_ten_minutes() -> u64 {
        seconds(SystemTime::now() + LOCK_TTL)
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_dropped_guard_releases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = shared(&dir);
        let releases = Releases::default();
        let Locking::Held(guard) = try_lock(&storage, &releases, "ca/locks/s", "a")
            .await
            .expect("lock")
        else {
            panic!("the first node takes the lock");
        };
        match try_lock(&storage, &releases, "ca/locks/s", "b")
            .await
            .expect("lock")
        {
            Locking::Busy { holder } => assert_eq!(holder, "a"),
            Locking::Held(_) => panic!("the second node must wait"),
        }
        drop(guard);
        releases.wait().await;
        assert_eq!(storage.load("ca/locks/s").await.expect("load"), None);
        assert!(matches!(
            try_lock(&storage, &releases, "ca/locks/s", "b")
                .await
                .expect("lock"),
            Locking::Held(_)
        ));
    }

    #[tokio::test]
    async fn an_expired_lock_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = shared(&dir);
        leave_lock(&storage, "dead", 1).await;
        assert!(matches!(
            try_lock(&storage, &Releases::default(), "ca/locks/s", "b")
                .await
                .expect("lock"),
            Locking::Held(_)
        ));
    }

    #[tokio::test]
    async fn a_lock_this_node_left_in_a_ring_is_taken_over_at_once_and_another_nodes_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = shared(&dir);
        let releases = Releases::default();
        leave_lock(&storage, "edge-1", in_ten_minutes()).await;
        assert!(matches!(
            try_lock(&storage, &releases, "ca/locks/s", "edge-2")
                .await
                .expect("lock"),
            Locking::Busy { holder } if holder == "edge-1"
        ));
        let Locking::Held(guard) = try_lock(&storage, &releases, "ca/locks/s", "edge-1")
            .await
            .expect("lock")
        else {
            panic!("edge-1 restarted: its own lock is its to take");
        };
        // Taken over with a new expiry, still telling the others who holds it.
        assert!(matches!(
            try_lock(&storage, &releases, "ca/locks/s", "edge-2")
                .await
                .expect("lock"),
            Locking::Busy { holder } if holder == "edge-1"
        ));
        drop(guard);
        releases.wait().await;
        assert_eq!(storage.load("ca/locks/s").await.expect("load"), None);
    }

    #[tokio::test]
    async fn any_lock_in_a_local_directory_is_this_nodes_and_taken_over_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = local(&dir);
        // Whatever name the earlier process had ($HOSTNAME unset under systemd).
        leave_lock(&storage, "s3edge", in_ten_minutes()).await;
        assert!(matches!(
            try_lock(&storage, &Releases::default(), "ca/locks/s", "edge-1")
                .await
                .expect("lock"),
            Locking::Held(_)
        ));
    }
}
