//! Finding and clearing locks by hand: `ccsfs status` lists the lock files of every group the
//! profiles use, each under the path its file has now, and `ccsfs unlock PATH` removes one
//! (asking for `--force` while its owner lives). PATH may be a path through the mount or in the
//! group store.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Profile;
use crate::layout::Layout;
use crate::locks::policy::{FileId, Record};
use crate::locks::{record, text, this_host};
use crate::procs;
use crate::routes::ProfileRoutes;

/// A lock as `status` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LockInfo {
    pub group: String,
    /// Where the file is now, relative to the group dir, escaped to one line (see `text`):
    /// found by the file's identity, so a file moved since it was locked shows where it went.
    /// When the file has no name left, the path it was locked under.
    pub file: String,
    /// The file has no name in the store any more (it was removed while open).
    pub deleted: bool,
    pub profile: String,
    pub pid: u32,
    pub host: String,
    pub since: u64,
    pub age_secs: u64,
    /// Whether the owner still holds it (alive here, or its lease still running elsewhere), or
    /// a write handle it opened is still open.
    pub live: bool,
    /// The owner has exited, but a write handle it opened (inherited by a child) is still
    /// open: the lock stays until that handle is closed.
    pub orphaned: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a record's owner still holds it: a live process on this host (or, once it exited,
/// a write handle it opened that its live daemon still counts), or an unexpired lease from
/// another host.
pub fn is_live(r: &Record) -> bool {
    if r.host == this_host() {
        procs::is_alive(r.owner) || (r.orphaned && procs::is_alive(r.daemon))
    } else {
        now() < r.lease_until
    }
}

/// The context groups the shared profiles use, sorted, each once.
pub fn groups(profiles: &[Profile]) -> Vec<String> {
    let mut g: Vec<String> = profiles
        .iter()
        .filter(|p| p.is_shared())
        .filter_map(|p| p.group.clone())
        .collect();
    g.sort();
    g.dedup();
    g
}

/// Whether `rel` (escaped) under `group_dir` is the file `file`.
fn is_at(group_dir: &Path, rel: &str, file: &FileId) -> bool {
    let Some(bytes) = text::unescape(rel) else {
        return false;
    };
    std::fs::symlink_metadata(group_dir.join(std::ffi::OsStr::from_bytes(&bytes)))
        .is_ok_and(|m| m.is_file() && FileId::of(&m).same_file(file))
}

/// Most entries a search for moved files reads in one group store.
const MAX_SEARCH: usize = crate::tunables::MAX_LOCK_SEARCH;

/// Where the files with inode numbers `inos` are now under `group_dir` (escaped paths,
/// relative to it): one walk of the store, reading inode numbers from the directory entries
/// (no stat per file). The lock dir is skipped; a file with several names is found under one.
fn find_files(group_dir: &Path, inos: &HashSet<u64>) -> HashMap<u64, String> {
    let mut found = HashMap::new();
    let mut dirs = vec![PathBuf::new()];
    let mut seen = 0;
    while let Some(rel) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(group_dir.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_SEARCH || found.len() == inos.len() {
                return found;
            }
            let Ok(kind) = e.file_type() else { continue };
            let path = rel.join(e.file_name());
            if kind.is_dir() && path != Path::new(".ccsfs") {
                dirs.push(path);
            } else if kind.is_file() && inos.contains(&e.ino()) {
                found
                    .entry(e.ino())
                    .or_insert_with(|| text::escape(path.as_os_str().as_bytes()));
            }
        }
    }
    found
}

/// Every lock file in the groups the profiles use.
pub fn list(layout: &Layout, profiles: &[Profile]) -> Vec<LockInfo> {
    let mut out = Vec::new();
    for g in groups(profiles) {
        let dir = layout.group_dir(&g);
        let records: Vec<Record> = record::list(&dir).into_iter().map(|(_, r)| r).collect();
        let moved: HashSet<u64> = records
            .iter()
            .filter(|r| !is_at(&dir, &r.path, &r.file))
            .map(|r| r.file.ino)
            .collect();
        let now_at = if moved.is_empty() {
            HashMap::new()
        } else {
            find_files(&dir, &moved)
        };
        for r in records {
            let (file, deleted) = if moved.contains(&r.file.ino) {
                match now_at.get(&r.file.ino) {
                    Some(p) => (p.clone(), false),
                    None => (r.path.clone(), true),
                }
            } else {
                (r.path.clone(), false)
            };
            out.push(LockInfo {
                group: g.clone(),
                file,
                deleted,
                profile: r.profile.clone(),
                pid: r.owner.pid,
                host: r.host.name.clone(),
                since: r.since,
                age_secs: now().saturating_sub(r.since),
                live: is_live(&r),
                orphaned: r.orphaned,
            });
        }
    }
    out.sort_by(|a, b| (&a.group, &a.file).cmp(&(&b.group, &b.file)));
    out
}

/// Lexically absolute, without touching the filesystem (the mount may be dead).
fn lexical_absolute(p: &Path) -> PathBuf {
    crate::layout::lexical(&std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// The group dir and group-relative path of a transcript given as a mount or store path.
pub fn resolve(
    layout: &Layout,
    profiles: &[Profile],
    mount_point: &Path,
    path: &Path,
) -> Result<(PathBuf, PathBuf), String> {
    let path = lexical_absolute(path);
    let shown = path.display();
    let mnt = crate::layout::absolute_mount_point(mount_point);
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
        let routes = ProfileRoutes::new(layout, p, &[]);
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
        return Ok((group_dir, rel.join(rest)));
    }
    let groups_root = layout.ccs_dir.join("shared").join("context-groups");
    if let Ok(rest) = path.strip_prefix(&groups_root) {
        let mut parts = rest.components();
        if let Some(g) = parts.next() {
            let rel: PathBuf = parts.collect();
            return Ok((groups_root.join(g), rel));
        }
    }
    Err(format!(
        "{shown} is neither under the mount {} nor in a group store; give the transcript's path",
        mnt.display()
    ))
}

/// Removes the lock on a transcript. Refuses while its owner still holds it unless `force`.
/// The lock is found by the file's identity; a file without that name any more (moved or
/// deleted) by the path it was locked under.
pub fn unlock(
    layout: &Layout,
    profiles: &[Profile],
    mount_point: &Path,
    path: &Path,
    force: bool,
) -> Result<String, String> {
    let (group_dir, rel) = resolve(layout, profiles, mount_point, path)?;
    let shown = text::escape(rel.as_os_str().as_bytes());
    let _mutex = record::GroupMutex::lock(&group_dir)
        .map_err(|e| format!("cannot lock {}: {e}", group_dir.display()))?;
    let by_file = std::fs::symlink_metadata(group_dir.join(&rel))
        .ok()
        .and_then(|m| {
            let file = record::lock_file(&group_dir, m.dev(), m.ino()).ok()?;
            let r = record::read(&file).filter(|r| r.file.same_file(&FileId::of(&m)))?;
            Some((file, r))
        });
    let found = by_file.or_else(|| {
        record::list(&group_dir)
            .into_iter()
            .find(|(_, r)| r.path == shown)
    });
    let Some((file, r)) = found else {
        return Ok(format!("{shown} is not locked"));
    };
    if is_live(&r) && !force {
        return Err(format!(
            "{shown} is held by pid {} (profile {}) on {} for {}s; stop that process, or pass --force to take the lock away",
            r.owner.pid,
            r.profile,
            r.host.name,
            now().saturating_sub(r.since)
        ));
    }
    record::remove(&file);
    Ok(format!(
        "unlocked {shown} (was held by pid {}, profile {})",
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
            shared_resources: crate::config::SharedResources::Shared,
        };
        (layout, vec![p, Profile::isolated("solo")])
    }

    #[test]
    fn mount_and_store_paths_resolve_to_the_same_lock() {
        let (l, p) = setup();
        let mnt = Path::new("/h/.ccs/mnt");
        let want = (
            PathBuf::from("/h/.ccs/shared/context-groups/team"),
            PathBuf::from("projects/x/s.jsonl"),
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
            Path::new("continuity/todos/t.jsonl")
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
