//! Releases: atomic deploys, instant rollback and preview hosts (`[releases]`).
//!
//! With `[releases]`, a site's files live under `<prefix>releases/<id>/` and a
//! small object, the pointer (`<prefix>_releases/live` by default), names the
//! live release. Every object key a request makes is `<prefix>releases/<L>/<key>`
//! where `L` is the live release at the moment the request was routed, so cache
//! entries, purges and the website rules all apply within one release, and a
//! switch changes the prefix for every new request at once while the old
//! release's cache entries stay (a rollback to it needs no origin request).
//!
//! - Node side: [`LiveRelease`] holds the live id of one site; `watch.rs`
//!   re-reads the pointer every `check_every` (a conditional GET) and switches
//!   only to a release that has objects; `admin.rs` is `POST /releases/switch`,
//!   which `publish` and `rollback` call so nodes switch before they return;
//!   `Site::release_view` (in `site/`) picks the release of a request (the live
//!   one, or the one a preview host `<id>.preview.example.com` names).
//! - Command side (`s3edge publish`, `rollback`, `releases`): `bucket.rs` speaks
//!   to the bucket (listing, uploads, CopyObject, the pointer's conditional
//!   write), `publish.rs` and `rollback.rs` are the commands, `notify.rs` calls
//!   the nodes' admin API.

pub mod admin;
pub mod bucket;
mod id;
pub mod notify;
pub mod publish;
pub mod record;
pub mod rollback;
pub mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use id::{InvalidReleaseId, ReleaseId};

/// The folder (after `origin.prefix`) holding one sub-folder per release.
pub const RELEASES_DIR: &str = "releases/";

/// The key prefix of release `id` (after `origin.prefix`): `releases/<id>/`.
pub fn release_dir(id: &ReleaseId) -> String {
    format!("{RELEASES_DIR}{id}/")
}

/// The live release of one site on this node, switched atomically. Shared
/// by the builds of a site that read the same pointer, so a switch made
/// while a reload builds the next one is not lost with the build it
/// replaces.
#[derive(Debug, Default)]
pub struct LiveRelease {
    state: RwLock<LiveState>,
    /// The last [`Ticket`] given.
    tickets: AtomicU64,
}

/// What the node knows of the pointer.
#[derive(Debug, Default, Clone)]
struct LiveState {
    /// `None` until a pointer naming an existing release has been read.
    id: Option<ReleaseId>,
    /// The pointer's ETag when `id` was read from it (for If-None-Match).
    etag: Option<String>,
    /// The ticket of the check whose read is in force: a check that began
    /// earlier applies nothing ([`LiveRelease::switch_if`]).
    applied: u64,
}

/// The order in which checks of a [`LiveRelease`] began reading the pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

impl LiveRelease {
    /// The live release id, if one is known.
    pub fn id(&self) -> Option<ReleaseId> {
        self.read().id.clone()
    }

    /// The pointer ETag that `id` came from.
    pub fn etag(&self) -> Option<String> {
        self.read().etag.clone()
    }

    /// Puts `id` in force if no release is (with no pointer ETag).
    pub fn adopt_if_none(&self, id: ReleaseId) -> bool {
        let mut state = self.write();
        if state.id.is_some() {
            return false;
        }
        state.id = Some(id);
        true
    }

    /// A ticket for a check about to read the pointer, to give
    /// [`LiveRelease::switch_if`] with what it read.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.tickets.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Puts what the check of `ticket` read in force for every request
    /// routed from now on (returning the release it replaced), unless a
    /// check that began later has put its read in force: a read that began
    /// before the pointer last changed must not put an older release back (a
    /// periodic check outrun by a publish's switch, a reload's read by a
    /// publish during the reload). `Err` holds the release in force.
    pub fn switch_if(
        &self,
        ticket: Ticket,
        id: ReleaseId,
        etag: Option<String>,
    ) -> Result<Option<ReleaseId>, Option<ReleaseId>> {
        let mut state = self.write();
        if ticket.0 < state.applied {
            return Err(state.id.clone());
        }
        state.applied = ticket.0;
        state.etag = etag;
        Ok(state.id.replace(id))
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, LiveState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> LiveState {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Which release a [`crate::site::Site`] serves its keys from.
#[derive(Debug, Clone)]
pub enum ReleaseBinding {
    /// No `[releases]`: keys are used as they are.
    Off,
    /// The site as configured: its live release, switched by the pointer.
    Live(Arc<LiveRelease>),
    /// A view of the site for one request: one release, fixed.
    Pinned(ReleaseId),
}

/// Why a request to a site with `[releases]` has no release to read from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseUnavailable {
    #[error("No release of this site is live yet.")]
    NoneLive,
    #[error("No release has this name.")]
    NotARelease,
}

impl ReleaseUnavailable {
    /// The status the client gets.
    pub fn http_status(&self) -> u16 {
        match self {
            ReleaseUnavailable::NoneLive => 503,
            ReleaseUnavailable::NotARelease => 404,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::{LiveRelease, ReleaseId};

    fn release(version: u64) -> ReleaseId {
        ReleaseId::parse(&format!("v{version}")).unwrap()
    }

    fn version(id: &ReleaseId) -> u64 {
        id.as_str()[1..].parse().unwrap()
    }

    /// A check as `watch::check` makes one: a ticket, then a read of the
    /// pointer after `before`, then `after` until what it read is applied.
    async fn check(live: &LiveRelease, pointer: &AtomicU64, before: u64, after: u64) {
        let ticket = live.ticket();
        tokio::time::sleep(Duration::from_micros(before)).await;
        let read = pointer.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_micros(after)).await;
        let _ = live.switch_if(ticket, release(read), None);
    }

    /// Publishes race periodic checks that read the pointer at any moment and
    /// take any time to apply it. Every time: when a publish's own check
    /// (the admin switch) returns, the node serves that release or a newer
    /// one; once every check has ended, the last one, never an older one
    /// put back by a slower check.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_check_that_read_the_pointer_earlier_never_puts_an_older_release_back() {
        for round in 0..50u64 {
            let live = Arc::new(LiveRelease::default());
            let pointer = Arc::new(AtomicU64::new(0));
            let mut periodic = Vec::new();
            for n in 0..16u64 {
                let (live, pointer) = (live.clone(), pointer.clone());
                let (before, after) = ((n * 37 + round * 11) % 400, (n * 53 + round * 7) % 900);
                periodic.push(tokio::spawn(async move {
                    check(&live, &pointer, before, after).await;
                }));
            }
            let publishes: Vec<_> = (0..4u64)
                .map(|p| {
                    let (live, pointer) = (live.clone(), pointer.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_micros(p * 150 + round % 5)).await;
                        let written = pointer.fetch_add(1, Ordering::SeqCst) + 1;
                        check(&live, &pointer, 0, (p * 91 + round) % 300).await;
                        let serving = version(&live.id().expect("a release"));
                        assert!(
                            serving >= written,
                            "round {round}: published v{written}, serving v{serving}"
                        );
                    })
                })
                .collect();
            for task in publishes.into_iter().chain(periodic) {
                task.await.expect("no assertion failed");
            }
            // No check put an older release back after the last publish's.
            assert_eq!(live.id(), Some(release(4)), "round {round}");
        }
    }

    #[test]
    fn a_recorded_release_is_adopted_only_when_none_is_in_force() {
        let live = LiveRelease::default();
        assert!(live.adopt_if_none(release(1)));
        assert!(!live.adopt_if_none(release(2)));
        assert_eq!(live.id(), Some(release(1)));
    }
}
