//! The live release of each site, recorded in `--cache-dir/releases.json`
//! whenever it changes, so that a node restarted while its bucket cannot be
//! read serves the release it served before from its disk tier, as a site
//! without `[releases]` does, instead of answering 503 for the whole site
//! until the bucket answers again.
//!
//! A record is used only for the pointer it was read from (the site's
//! objects and pointer key) and only when reading the pointer fails; the
//! pointer, once read, decides as always.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::ReleaseId;

/// The file's name in `--cache-dir`.
pub const RELEASES_FILE: &str = "releases.json";

/// One site's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Recorded {
    /// Which pointer: the site's objects and the pointer's key.
    pointer: String,
    /// The release it named, live when recorded.
    live: String,
}

/// The records of every site, by site name.
#[derive(Debug)]
pub struct ReleaseRecord {
    path: PathBuf,
    sites: Mutex<BTreeMap<String, Recorded>>,
}

impl ReleaseRecord {
    /// The record in `dir` (made if missing), read now (none when the file
    /// is missing; a file that cannot be read is logged and treated as none).
    pub fn open(dir: &Path) -> ReleaseRecord {
        if let Err(e) = fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), "releases: cannot make the directory of the record of live releases: {e}");
        }
        let path = dir.join(RELEASES_FILE);
        let sites = match fs::read(&path) {
            Ok(text) => serde_json::from_slice(&text).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), "releases: the record of live releases is unreadable, ignored: {e}");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(file = %path.display(), "releases: cannot read the record of live releases: {e}");
                BTreeMap::new()
            }
        };
        ReleaseRecord {
            path,
            sites: Mutex::new(sites),
        }
    }

    /// The release recorded live for `site` when it read `pointer`.
    pub fn live(&self, site: &str, pointer: &str) -> Option<ReleaseId> {
        let sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        sites
            .get(site)
            .filter(|r| r.pointer == pointer)
            .and_then(|r| ReleaseId::parse(&r.live).ok())
    }

    /// Records `live` for `site` and `pointer`; writes the file (aside, then
    /// renamed over it) only when that changes it. A failed write is logged.
    pub fn note(&self, site: &str, pointer: &str, live: &ReleaseId) {
        let recorded = Recorded {
            pointer: pointer.to_owned(),
            live: live.as_str().to_owned(),
        };
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        if sites.get(site) == Some(&recorded) {
            return;
        }
        sites.insert(site.to_owned(), recorded);
        let aside = self.path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(&*sites)
            .map_err(io::Error::other)
            .and_then(|json| fs::write(&aside, json))
            .and_then(|()| fs::rename(&aside, &self.path));
        if let Err(e) = written {
            tracing::warn!(file = %self.path.display(), "releases: cannot record the live release: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_read_back_for_its_pointer_only() {
        let dir = tempfile::tempdir().unwrap();
        let id = ReleaseId::parse("20261203-070000-0a1b2c3d").unwrap();
        ReleaseRecord::open(dir.path()).note("site", "s3 embedded b/ _releases/live", &id);
        let record = ReleaseRecord::open(dir.path());
        assert_eq!(
            record.live("site", "s3 embedded b/ _releases/live"),
            Some(id)
        );
        assert_eq!(
            record.live("site", "s3 embedded other/ _releases/live"),
            None
        );
        assert_eq!(record.live("other", "s3 embedded b/ _releases/live"), None);
        std::fs::write(dir.path().join(RELEASES_FILE), "not json").unwrap();
        assert_eq!(
            ReleaseRecord::open(dir.path()).live("site", "s3 embedded b/ _releases/live"),
            None
        );
    }
}
