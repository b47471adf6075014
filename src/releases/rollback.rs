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

/// The release a rollback makes live, and the history written with it:
/// `target` (the live release goes on the history), or the release that was
/// live before the live one (taken off the history, so that each rollback
/// goes one further back, as an undo does). The newest release older than
/// the live one could be one that was never live (published with
/// `--no-activate`, or that lost a race) or one already rolled back from.
/// A pointer written before the history was kept: the release listed after
/// the live one (the one before it in time).
pub fn choose(
    site: &str,
    releases: &[ReleaseInfo],
    pointer: &Pointer,
    live: &ReleaseId,
    target: Option<&ReleaseId>,
) -> Result<(ReleaseId, Vec<ReleaseId>), ReleaseError> {
    if let Some(target) = target {
        if target == live {
            return Err(ReleaseError::Usage(format!(
                "release `{target}` is already live"
            )));
        }
        return releases
            .iter()
            .find(|r| &r.id == target)
            .map(|r| (r.id.clone(), pointer.pushed()))
            .ok_or_else(|| {
                ReleaseError::Usage(format!(
                    "no release `{target}` in the bucket; `s3edge releases --site {site}` lists them"
                ))
            });
    }
    let listed = |id: &ReleaseId| releases.iter().any(|r| &r.id == id);
    let Some(history) = &pointer.history else {
        let position = releases.iter().position(|r| &r.id == live);
        return position
            .and_then(|i| releases.get(i + 1))
            .map(|r| (r.id.clone(), Vec::new()))
            .ok_or_else(|| {
                ReleaseError::Usage(format!(
                    "no release older than the live one (`{live}`); name one: `s3edge rollback --site {site} ID` (`s3edge releases --site {site}` lists them)"
                ))
            });
    };
    history
        .iter()
        .position(|id| id != live && listed(id))
        .map(|i| (history[i].clone(), history[i + 1..].to_vec()))
        .ok_or_else(|| {
            ReleaseError::Usage(format!(
                "no release was live before `{live}` (or it has been deleted); name one: `s3edge rollback --site {site} ID` (`s3edge releases --site {site}` lists them)"
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
                "site `{site}` has no live release; name a release to make live: `s3edge rollback --site {site} ID` (`s3edge releases --site {site}` lists them), or run `s3edge publish`",
                site = bucket.site()
            )));
        };
        return make_live(bucket, None, to, None, &[], admins).await;
    };
    let live = pointer.release().ok_or_else(|| {
        ReleaseError::Usage(format!(
            "the pointer names `{}`, which is not a release id; give the release to make live: `s3edge rollback --site {} ID`",
            pointer.names,
            bucket.site()
        ))
    })?;
    let releases = bucket.releases().await?;
    let (to, history) = choose(bucket.site(), &releases, &pointer, &live, target.as_ref())?;
    make_live(bucket, Some(live), to, Some(&pointer), &history, admins).await
}

/// Moves the pointer from `expected` (absent: none yet) to `to`, a release
/// with files, with `history`, and switches the `admins` nodes.
async fn make_live(
    bucket: &ReleaseBucket,
    from: Option<ReleaseId>,
    to: ReleaseId,
    expected: Option<&Pointer>,
    history: &[ReleaseId],
    admins: &[String],
) -> Result<RollbackReport, ReleaseError> {
    if !bucket.exists(&to).await? {
        return Err(ReleaseError::Usage(format!(
            "release `{to}` has no files in the bucket; choose another (`s3edge releases --site {}` lists them)",
            bucket.site()
        )));
    }
    bucket.move_pointer(&to, expected, history).await?;
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

    fn ids(texts: &[&str]) -> Vec<ReleaseId> {
        texts.iter().map(|t| id(t)).collect()
    }

    /// The pointer naming `live`, with `history` (`None`: written before
    /// the history was kept).
    fn pointer(live: &str, history: Option<&[&str]>) -> Pointer {
        Pointer {
            names: live.to_string(),
            etag: "\"e\"".to_string(),
            history: history.map(ids),
        }
    }

    #[test]
    fn without_an_id_the_release_live_before_is_chosen_and_taken_off_the_history() {
        // `fixed` was published after a rollback from `bad` to `good`; `preview`
        // was never live.
        let list = releases(&["fixed", "preview", "bad", "good"]);
        let live = pointer("fixed", Some(&["good"]));
        assert_eq!(
            choose("blog", &list, &live, &id("fixed"), None).expect("choice"),
            (id("good"), vec![])
        );
        let live = pointer("c", Some(&["b", "a"]));
        let list = releases(&["c", "b", "a"]);
        assert_eq!(
            choose("blog", &list, &live, &id("c"), None).expect("choice"),
            (id("b"), ids(&["a"]))
        );
        let err = choose("blog", &list, &pointer("a", Some(&[])), &id("a"), None).unwrap_err();
        assert!(
            err.to_string().contains("no release was live before"),
            "{err}"
        );
    }

    #[test]
    fn a_deleted_release_in_the_history_is_passed_over() {
        let list = releases(&["c", "a"]);
        let live = pointer("c", Some(&["b", "a"]));
        assert_eq!(
            choose("blog", &list, &live, &id("c"), None).expect("choice"),
            (id("a"), vec![])
        );
    }

    #[test]
    fn a_pointer_without_history_goes_back_in_time() {
        let list = releases(&["c", "b", "a"]);
        assert_eq!(
            choose("blog", &list, &pointer("c", None), &id("c"), None).expect("choice"),
            (id("b"), vec![])
        );
        let err = choose("blog", &list, &pointer("a", None), &id("a"), None).unwrap_err();
        assert!(err.to_string().contains("no release older"), "{err}");
    }

    #[test]
    fn a_named_release_must_exist_and_not_be_live_and_goes_on_the_history() {
        let list = releases(&["c", "b", "a"]);
        let live = pointer("c", Some(&["b"]));
        assert_eq!(
            choose("blog", &list, &live, &id("c"), Some(&id("a"))).expect("choice"),
            (id("a"), ids(&["c", "b"]))
        );
        let missing = choose("blog", &list, &live, &id("c"), Some(&id("z"))).unwrap_err();
        assert!(missing.to_string().contains("no release `z`"), "{missing}");
        let same = choose("blog", &list, &live, &id("c"), Some(&id("c"))).unwrap_err();
        assert!(same.to_string().contains("already live"), "{same}");
    }
}
