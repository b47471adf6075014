//! The node side of the pointer: read it at start, re-read it every
//! `check_every` with a conditional GET (If-None-Match on the ETag it was read
//! with), and switch the site's live release only to a release that has files.
//! A pointer that names a missing release, or that cannot be read, keeps the
//! release in force and is logged.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use super::{release_dir, InvalidReleaseId, ReleaseId};
use crate::origin::{Fetched, ObjectRequest, OriginError};
use crate::site::Site;

/// Largest pointer body read: an id and some whitespace.
pub const MAX_POINTER_BYTES: usize = 1024;

/// How a check asks for the pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revalidate {
    /// With If-None-Match on the ETag last read (the periodic check).
    Conditional,
    /// Unconditionally (at start, and when an admin asks the node to switch).
    Always,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointerCheck {
    /// The pointer is unchanged (304), or names the release in force.
    Unchanged(ReleaseId),
    /// The pointer names another release, now in force.
    Switched {
        from: Option<ReleaseId>,
        to: ReleaseId,
    },
}

impl PointerCheck {
    /// The release in force after the check.
    pub fn live(&self) -> &ReleaseId {
        match self {
            PointerCheck::Unchanged(id) | PointerCheck::Switched { to: id, .. } => id,
        }
    }
}

/// Why the release in force was kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    #[error(
        "the pointer `{0}` does not exist: no release has been published (run `s3edge publish`)"
    )]
    Missing(String),
    #[error("the pointer names release `{0}`, which has no files under `{1}`; keeping the release in force")]
    UnknownRelease(ReleaseId, String),
    #[error("the pointer's body is not a release id: {0}")]
    NotAnId(InvalidReleaseId),
    #[error(
        "the pointer is larger than {MAX_POINTER_BYTES} bytes; it must hold a release id only"
    )]
    TooLarge,
    #[error("the site has no [releases] section")]
    NoReleases,
    #[error("reading the pointer failed: {0}")]
    Origin(#[from] OriginError),
}

/// Reads the site's pointer and switches to the release it names when that
/// release has files, unless another check switched meanwhile (its read is
/// the newer one). The release in force afterwards is recorded for the next
/// start ([`super::record`]).
pub async fn check(site: &Site, how: Revalidate) -> Result<PointerCheck, PointerError> {
    let result = read_and_switch(site, how).await;
    if let (Ok(check), Some(record), Some(pointer)) =
        (&result, site.release_record(), site.pointer_identity())
    {
        record.note(site.name(), &pointer, check.live());
    }
    result
}

async fn read_and_switch(site: &Site, how: Revalidate) -> Result<PointerCheck, PointerError> {
    let (Some(config), Some(live)) = (&site.config.releases, site.live_release()) else {
        return Err(PointerError::NoReleases);
    };
    let ticket = live.ticket();
    let prefix = &site.config.origin.prefix;
    let key = format!("{prefix}{}", config.pointer);
    let mut request = ObjectRequest::new(key.clone());
    if how == Revalidate::Conditional && live.id().is_some() {
        request.if_none_match = live.etag();
    }
    let (meta, mut body) = match site.origin.get(&request).await {
        Ok(Fetched::Object { meta, body }) => (meta, body),
        Ok(Fetched::NotModified { .. }) => {
            return live
                .id()
                .map(PointerCheck::Unchanged)
                .ok_or(PointerError::Missing(key))
        }
        Err(OriginError::NotFound { .. }) => return Err(PointerError::Missing(key)),
        Err(e) => return Err(e.into()),
    };
    let mut text = Vec::new();
    while let Some(chunk) = body.next().await {
        text.extend_from_slice(&chunk?);
        if text.len() > MAX_POINTER_BYTES {
            return Err(PointerError::TooLarge);
        }
    }
    let named = String::from_utf8_lossy(&text);
    let id = ReleaseId::parse(named.trim()).map_err(PointerError::NotAnId)?;
    if live.id().as_ref() != Some(&id) {
        let dir = format!("{prefix}{}", release_dir(&id));
        if !site.origin.has_objects_under(&dir).await? {
            return Err(PointerError::UnknownRelease(id, dir));
        }
    }
    Ok(match live.switch_if(ticket, id.clone(), meta.etag) {
        Ok(from) if from.as_ref() == Some(&id) => PointerCheck::Unchanged(id),
        Ok(from) => PointerCheck::Switched { from, to: id },
        // A check that began later has put what it read in force.
        Err(now) => PointerCheck::Unchanged(now.unwrap_or(id)),
    })
}

/// Logs what a check found.
pub fn log(site: &Site, result: &Result<PointerCheck, PointerError>) {
    match result {
        Ok(PointerCheck::Unchanged(_)) => {}
        Ok(PointerCheck::Switched { from, to }) => tracing::info!(
            site = site.name(),
            from = from.as_ref().map_or("(none)", |id| id.as_str()),
            to = to.as_str(),
            "release switched"
        ),
        Err(e) => tracing::warn!(
            site = site.name(),
            live = site
                .live_release()
                .and_then(|l| l.id())
                .as_ref()
                .map_or("(none)", |id| id.as_str()),
            "release pointer: {e}"
        ),
    }
}

/// At start (and on reload): reads the pointer once, before the site serves.
/// Failures are logged. When the pointer cannot be read (the bucket is
/// unreachable) and no release is in force, the release recorded live at the
/// last run is put in force until the pointer can be read; with none, the
/// site answers 503 until a release is known.
pub async fn load(site: &Site) {
    if site.config.releases.is_none() {
        return;
    }
    let result = check(site, Revalidate::Always).await;
    log(site, &result);
    let (Err(PointerError::Origin(_)), Some(live)) = (&result, site.live_release()) else {
        return;
    };
    let recorded = site
        .release_record()
        .zip(site.pointer_identity())
        .and_then(|(record, pointer)| record.live(site.name(), &pointer));
    if let Some(id) = recorded.filter(|id| live.adopt_if_none(id.clone())) {
        tracing::warn!(
            site = site.name(),
            live = id.as_str(),
            "release pointer: serving the release live at the last run until the pointer can be read"
        );
    }
}

/// Starts the pointer watch of a site with `[releases]`. It ends when the site
/// has been dropped (a reload replaced or removed it).
pub fn spawn(site: &Arc<Site>) {
    if let Some(config) = &site.config.releases {
        tokio::spawn(watch(Arc::downgrade(site), config.check_every));
    }
}

async fn watch(site: Weak<Site>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(site) = site.upgrade() else {
            return;
        };
        let result = check(&site, Revalidate::Conditional).await;
        log(&site, &result);
    }
}
