//! The order lock: only one node orders a site's certificate at a time.
//!
//! As Caddy's storage modules do, the lock is a value created with
//! [`Storage::create_new`] (an `If-None-Match: *` PutObject on a bucket), holding
//! the holder's name and when the lock expires. A node that finds the lock held
//! waits and reads the certificate the holder stores. A lock older than its
//! expiry (its holder died mid-order) is removed and taken again.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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

/// Removes its key from storage when dropped (also when the order task is
/// cancelled): a lock, or a published challenge answer.
pub struct KeyGuard {
    storage: Arc<dyn Storage>,
    key: String,
}

impl KeyGuard {
    pub fn new(storage: &Arc<dyn Storage>, key: &str) -> KeyGuard {
        KeyGuard {
            storage: Arc::clone(storage),
            key: key.to_string(),
        }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let storage = Arc::clone(&self.storage);
        let key = std::mem::take(&mut self.key);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = storage.delete(&key).await {
                    tracing::warn!("ACME: cannot remove {key} from storage: {e}");
                }
            });
        }
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Tries once to take the lock `key` for `holder`.
pub async fn try_lock(
    storage: &Arc<dyn Storage>,
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
    let guard = || KeyGuard::new(storage, key);
    if storage.create_new(key, &record(SystemTime::now())).await? {
        return Ok(Locking::Held(guard()));
    }
    let existing = storage.load(key).await?;
    let parsed = existing
        .as_deref()
        .and_then(|bytes| serde_json::from_slice::<LockRecord>(bytes).ok());
    match parsed {
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

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_dropped_guard_releases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage: Arc<dyn Storage> = Arc::new(DirStorage::new(dir.path().to_path_buf()));
        let Locking::Held(guard) = try_lock(&storage, "ca/locks/s", "a").await.expect("lock")
        else {
            panic!("the first node takes the lock");
        };
        match try_lock(&storage, "ca/locks/s", "b").await.expect("lock") {
            Locking::Busy { holder } => assert_eq!(holder, "a"),
            Locking::Held(_) => panic!("the second node must wait"),
        }
        drop(guard);
        for _ in 0..100 {
            if storage.load("ca/locks/s").await.expect("load").is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(matches!(
            try_lock(&storage, "ca/locks/s", "b").await.expect("lock"),
            Locking::Held(_)
        ));
    }

    #[tokio::test]
    async fn an_expired_lock_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage: Arc<dyn Storage> = Arc::new(DirStorage::new(dir.path().to_path_buf()));
        let stale = serde_json::to_vec(&LockRecord {
            holder: "dead".into(),
            expires: 1,
        })
        .expect("json");
        storage.store("ca/locks/s", &stale).await.expect("store");
        assert!(matches!(
            try_lock(&storage, "ca/locks/s", "b").await.expect("lock"),
            Locking::Held(_)
        ));
    }
}
