//! `s3edge rollback` and `s3edge releases`: the releases in the bucket, newest
//! first, and moving the pointer back to one of them (the same conditional
//! write as `publish`, then the same switch on each `--admin` node).

use super::bucket::{Pointer, ReleaseBucket, ReleaseError, ReleaseInfo};
use super::notify::switch_nodes;
use super::ReleaseId;

/// A release as `s3edge releases` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub release: ReleaseInfo,
    pub live: bool,
}

/// Every release, newest first, the live one marked.
pub async fn list(bucket: &ReleaseBucket) -> Result<Vec<Listed>, ReleaseError> {
    let live = bucket.pointer().await?.and_then(|p| p.release());
    Ok(bucket
        .releases()
        .await?
        .into_iter()
        .map(|release| Listed {
            live: Some(&release.id) == live.as_ref(),
            release,
        })
        .collect())
}

/// The release a rollback makes live: `target`, or the one listed after the
/// live release (the one before it in time).
pub fn choose(
    releases: &[ReleaseInfo],
    live: &ReleaseId,
    target: Option<&ReleaseId>,
) -> Result<ReleaseId, ReleaseError> {
    if let Some(target) = target {
        if target == live {
            return Err(ReleaseError::Usage(format!(
                "release `{target}` is already live"
            )));
        }
        return releases
            .iter()
            .find(|r| &r.id == target)
            .map(|r| r.id.clone())
            .ok_or_else(|| {
                ReleaseError::Usage(format!(
                    "no release `{target}` in the bucket; `s3edge releases` lists them"
                ))
            });
    }
    let position = releases.iter().position(|r| &r.id == live);
    position
        .and_then(|i| releases.get(i + 1))
        .map(|r| r.id.clone())
        .ok_or_else(|| {
            ReleaseError::Usage(format!(
                "no release older than the live one (`{live}`); name one: `s3edge rollback ID` (`s3edge releases` lists them)"
            ))
        })
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackReport {
    /// The release that was live; `None` when none was (the first release
    /// published with `--no-activate`, now made live).
    pub from: Option<ReleaseId>,
    pub to: ReleaseId,
    pub nodes_failed: Vec<String>,
}

/// Makes `target` (or the previous release) live. With no live release yet
/// (every release published with `--no-activate`), a named `target` is
/// made live, the pointer written only if still absent (`If-None-Match: *`,
/// as `publish` writes the first one): preview, then promote.
pub async fn rollback(
    bucket: &ReleaseBucket,
    target: Option<ReleaseId>,
    admins: &[String],
) -> Result<RollbackReport, ReleaseError> {
    let Some(pointer) = bucket.pointer().await? else {
        let Some(to) = target else {
            return Err(ReleaseError::Usage(format!(
                "site `{}` has no live release; name a release to make live: `s3edge rollback ID` (`s3edge releases` lists them), or run `s3edge publish`",
                bucket.site()
            )));
        };
        return make_live(bucket, None, to, None, admins).await;
    };
    let live = pointer.release().ok_or_else(|| {
        ReleaseError::Usage(format!(
            "the pointer names `{}`, which is not a release id; give the release to make live: `s3edge rollback ID`",
            pointer.names
        ))
    })?;
    let releases = bucket.releases().await?;
    let to = choose(&releases, &live, target.as_ref())?;
    make_live(bucket, Some(live), to, Some(&pointer), admins).await
}

/// Moves the pointer from `expected` (absent: none yet) to `to`, a release
/// with files, and switches the `admins` nodes.
async fn make_live(
    bucket: &ReleaseBucket,
    from: Option<ReleaseId>,
    to: ReleaseId,
    expected: Option<&Pointer>,
    admins: &[String],
) -> Result<RollbackReport, ReleaseError> {
    if !bucket.exists(&to).await? {
        return Err(ReleaseError::Usage(format!(
            "release `{to}` has no files in the bucket; choose another (`s3edge releases` lists them)"
        )));
    }
    bucket.move_pointer(&to, expected).await?;
    let nodes_failed = switch_nodes(admins, bucket.site(), &to).await;
    Ok(RollbackReport {
        from,
        to,
        nodes_failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn releases(ids: &[&str]) -> Vec<ReleaseInfo> {
        ids.iter()
            .map(|id| ReleaseInfo {
                id: ReleaseId::parse(id).expect("id"),
                created: None,
            })
            .collect()
    }

    fn id(text: &str) -> ReleaseId {
        ReleaseId::parse(text).expect("id")
    }

    #[test]
    fn without_an_id_the_release_before_the_live_one_is_chosen() {
        let list = releases(&["c", "b", "a"]);
        assert_eq!(choose(&list, &id("c"), None).expect("choice"), id("b"));
        assert_eq!(choose(&list, &id("b"), None).expect("choice"), id("a"));
    }

    #[test]
    fn the_oldest_release_has_nothing_to_roll_back_to() {
        let err = choose(&releases(&["b", "a"]), &id("a"), None).unwrap_err();
        assert!(err.to_string().contains("no release older"), "{err}");
    }

    #[test]
    fn a_named_release_must_exist_and_not_be_live() {
        let list = releases(&["c", "b", "a"]);
        assert_eq!(
            choose(&list, &id("c"), Some(&id("a"))).expect("choice"),
            id("a")
        );
        let missing = choose(&list, &id("c"), Some(&id("z"))).unwrap_err();
        assert!(missing.to_string().contains("no release `z`"), "{missing}");
        let live = choose(&list, &id("c"), Some(&id("c"))).unwrap_err();
        assert!(live.to_string().contains("already live"), "{live}");
    }
}
