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
pub mod rollback;
pub mod watch;

use std::sync::{Arc, RwLock};

pub use id::{InvalidReleaseId, ReleaseId};

/// The folder (after `origin.prefix`) holding one sub-folder per release.
pub const RELEASES_DIR: &str = "releases/";

/// The key prefix of release `id` (after `origin.prefix`): `releases/<id>/`.
pub fn release_dir(id: &ReleaseId) -> String {
    format!("{RELEASES_DIR}{id}/")
}

/// The live release of one site on this node, switched atomically.
#[derive(Debug, Default)]
pub struct LiveRelease {
    state: RwLock<LiveState>,
}

/// What the node knows of the pointer.
#[derive(Debug, Default, Clone)]
struct LiveState {
    /// `None` until a pointer naming an existing release has been read.
    id: Option<ReleaseId>,
    /// The pointer's ETag when `id` was read from it (for If-None-Match).
    etag: Option<String>,
}

impl LiveRelease {
    /// The live release id, if one is known.
    pub fn id(&self) -> Option<ReleaseId> {
        self.read().id.clone()
    }

    /// The pointer ETag that `id` came from.
    pub fn etag(&self) -> Option<String> {
        self.read().etag.clone()
    }

    /// Puts `id` in force for every request routed from now on. Returns the
    /// release it replaced.
    pub fn switch(&self, id: ReleaseId, etag: Option<String>) -> Option<ReleaseId> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let previous = state.id.replace(id);
        state.etag = etag;
        previous
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
