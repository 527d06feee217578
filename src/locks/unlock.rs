//! Finding and clearing locks by hand: `ccsfs status` lists the lock files of every group the
//! profiles use, and `ccsfs unlock PATH` removes one (asking for `--force` while its owner
//! lives). PATH may be a path through the mount or in the group store.

use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::policy::Record;
use super::record;
use super::this_host;
use crate::config::Profile;
use crate::layout::Layout;
use crate::procs;
use crate::routes::ProfileRoutes;

/// A lock as `status` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LockInfo {
    pub group: String,
    pub file: String,
    pub profile: String,
    pub pid: u32,
    pub host: String,
    pub since: u64,
    pub age_secs: u64,
    /// Whether the owner still holds it (alive here, or its lease still running elsewhere).
    pub live: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a record's owner still holds it: a live process on this host, or an unexpired
/// lease from another.
pub fn is_live(r: &Record) -> bool {
    if r.host == this_host() {
        procs::is_alive(r.owner)
    } else {
        now() < r.lease_until
    }
}

fn groups(profiles: &[Profile]) -> Vec<String> {
    let mut g: Vec<String> = profiles
        .iter()
        .filter(|p| p.is_shared())
        .filter_map(|p| p.group.clone())
        .collect();
    g.sort();
    g.dedup();
    g
}

/// Every lock file in the groups the profiles use.
pub fn list(layout: &Layout, profiles: &[Profile]) -> Vec<LockInfo> {
    let mut out = Vec::new();
    for g in groups(profiles) {
        for r in record::list(&layout.group_dir(&g)) {
            out.push(LockInfo {
                group: g.clone(),
                file: r.path.clone(),
                profile: r.profile.clone(),
                pid: r.owner.pid,
                host: r.host.name.clone(),
                since: r.since,
                age_secs: now().saturating_sub(r.since),
                live: is_live(&r),
            });
        }
    }
    out.sort_by(|a, b| (&a.group, &a.file).cmp(&(&b.group, &b.file)));
    out
}

/// Lexically absolute, without touching the filesystem (the mount may be dead).
fn lexical_absolute(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The group dir and group-relative path of a transcript given as a mount or store path.
pub fn resolve(
    layout: &Layout,
    profiles: &[Profile],
    mount_point: &Path,
    path: &Path,
) -> Result<(PathBuf, String), String> {
    let path = lexical_absolute(path);
    let shown = path.display();
    let mnt = crate::mount::absolute_mount_point(mount_point);
    if let Ok(rest) = path.strip_prefix(&mnt) {
        let mut parts = rest.components();
        let profile = parts
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let p = profiles
            .iter()
            .find(|p| p.name == profile)
            .ok_or_else(|| format!("{shown}: no profile `{profile}` in this mount"))?;
        let routes = ProfileRoutes::new(layout, p);
        let below: PathBuf = parts.collect();
        let route = below
            .components()
            .next()
            .and_then(|c| routes.route(c.as_os_str()));
        let (Some(route), Some(group)) = (route, p.group.as_deref()) else {
            return Err(format!(
                "{shown} is private to profile {profile}; only files in a group store are ever locked"
            ));
        };
        let group_dir = layout.group_dir(group);
        let rel = route
            .target
            .strip_prefix(&group_dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| route.name.into());
        let rest: PathBuf = below.components().skip(1).collect();
        return Ok((group_dir, rel.join(rest).to_string_lossy().into_owned()));
    }
    let groups_root = layout.ccs_dir.join("shared").join("context-groups");
    if let Ok(rest) = path.strip_prefix(&groups_root) {
        let mut parts = rest.components();
        if let Some(g) = parts.next() {
            let rel: PathBuf = parts.collect();
            return Ok((groups_root.join(g), rel.to_string_lossy().into_owned()));
        }
    }
    Err(format!(
        "{shown} is neither under the mount {} nor in a group store; give the transcript's path",
        mnt.display()
    ))
}

/// Removes the lock on a transcript. Refuses while its owner still holds it unless `force`.
pub fn unlock(
    layout: &Layout,
    profiles: &[Profile],
    mount_point: &Path,
    path: &Path,
    force: bool,
) -> Result<String, String> {
    let (group_dir, rel) = resolve(layout, profiles, mount_point, path)?;
    let file = record::locks_dir(&group_dir).join(record::file_name(&rel));
    let _mutex = record::GroupMutex::lock(&group_dir)
        .map_err(|e| format!("cannot lock {}: {e}", group_dir.display()))?;
    let Some(r) = record::read(&file) else {
        return Ok(format!("{rel} is not locked"));
    };
    if is_live(&r) && !force {
        return Err(format!(
            "{rel} is held by pid {} (profile {}) on {} for {}s; stop that process, or pass --force to take the lock away",
            r.owner.pid,
            r.profile,
            r.host.name,
            now().saturating_sub(r.since)
        ));
    }
    record::remove(&file);
    Ok(format!(
        "unlocked {rel} (was held by pid {}, profile {})",
        r.owner.pid, r.profile
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ContextMode, ContinuityMode};

    fn setup() -> (Layout, Vec<Profile>) {
        let layout = Layout::new(PathBuf::from("/h/.ccs"));
        let p = Profile {
            name: "work".into(),
            context: ContextMode::Shared,
            group: Some("team".into()),
            continuity: ContinuityMode::Deeper,
            ..Profile::isolated("work")
        };
        (layout, vec![p, Profile::isolated("solo")])
    }

    #[test]
    fn mount_and_store_paths_resolve_to_the_same_lock() {
        let (l, p) = setup();
        let mnt = Path::new("/h/.ccs/mnt");
        let want = (
            PathBuf::from("/h/.ccs/shared/context-groups/team"),
            "projects/x/s.jsonl".to_string(),
        );
        assert_eq!(
            resolve(
                &l,
                &p,
                mnt,
                Path::new("/h/.ccs/mnt/work/projects/x/s.jsonl")
            )
            .unwrap(),
            want
        );
        assert_eq!(
            resolve(
                &l,
                &p,
                mnt,
                Path::new("/h/.ccs/mnt/work/projects/y/../x/s.jsonl")
            )
            .unwrap(),
            want
        );
        assert_eq!(
            resolve(
                &l,
                &p,
                mnt,
                Path::new("/h/.ccs/shared/context-groups/team/projects/x/s.jsonl")
            )
            .unwrap(),
            want
        );
        assert_eq!(
            resolve(&l, &p, mnt, Path::new("/h/.ccs/mnt/work/todos/t.jsonl"))
                .unwrap()
                .1,
            "continuity/todos/t.jsonl"
        );
    }

    #[test]
    fn private_and_foreign_paths_are_explained() {
        let (l, p) = setup();
        let mnt = Path::new("/h/.ccs/mnt");
        assert!(
            resolve(&l, &p, mnt, Path::new("/h/.ccs/mnt/solo/projects/s.jsonl"))
                .unwrap_err()
                .contains("private")
        );
        assert!(
            resolve(&l, &p, mnt, Path::new("/h/.ccs/mnt/nobody/x"))
                .unwrap_err()
                .contains("no profile")
        );
        assert!(
            resolve(&l, &p, mnt, Path::new("/etc/passwd"))
                .unwrap_err()
                .contains("neither")
        );
    }
}
