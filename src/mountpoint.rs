//! Where a mount may go, and one `mount` per mount point at a time.
//!
//! A mount point must not be the CCS dir, contain it, or lie inside (or contain) a tree the
//! daemon reads and writes by path: `<ccs>/instances`, `<ccs>/shared` and what its links
//! resolve to (group stores, CCS's shared resources in `~/.claude`), its log and run dirs.
//! Otherwise the daemon's own file accesses would go through its own mount: the mount would
//! serve itself, and a daemon that stats its own mount before answering the kernel's INIT
//! deadlocks. Paths are compared after resolving symlinks (`resolve`), so no link and no
//! `..` hides where a mount point or a tree really is. The default `<ccs>/mnt` is fine.
//!
//! `MountLock` makes `mount` of one point exclusive: an exclusive `flock` on
//! `<ccs>/run/<mount point>.lock`, taken by the `mount` command before it checks the mount
//! point and held until the mount answers or has failed. `flock` belongs to the open file
//! description, which the forked daemon shares: the lock lasts while either the command or the
//! daemon still holds it, so killing the command mid-mount does not let a second `mount` in
//! before the daemon has finished (it drops its copy once ready). Once mounted, the mount
//! table itself refuses the next `mount`. Lock files stay (one per mount point ever used):
//! removing them would let two processes lock two different files of one name.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::Profile;
use crate::layout::Layout;
use crate::routes::ProfileRoutes;

/// A tree the daemon works in by path, with what it is (for the refusal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub path: PathBuf,
    pub what: String,
}

/// Why `mount_point` (resolved) may not be mounted on, given the resolved CCS dir and the
/// resolved trees it serves; None when it may. Pure.
pub fn conflict(mount_point: &Path, ccs_dir: &Path, served: &[Served]) -> Option<String> {
    if mount_point == ccs_dir {
        return Some("it is the CCS dir itself".into());
    }
    if ccs_dir.starts_with(mount_point) {
        return Some(format!("it contains the CCS dir {}", ccs_dir.display()));
    }
    for s in served {
        if mount_point.starts_with(&s.path) {
            return Some(format!(
                "it lies inside {} ({}), which the mount serves",
                s.path.display(),
                s.what
            ));
        }
        if s.path.starts_with(mount_point) {
            return Some(format!(
                "it contains {} ({}), which the mount serves",
                s.path.display(),
                s.what
            ));
        }
    }
    None
}

/// Refuses (one line naming the fix) a mount point that the daemon would serve from.
pub fn refuse_served(
    layout: &Layout,
    profiles: &[Profile],
    mount_point: &Path,
) -> Result<(), String> {
    let mp = mount_point
        .canonicalize()
        .unwrap_or_else(|_| resolve(mount_point));
    let ccs = resolve(&layout.ccs_dir);
    match conflict(&mp, &ccs, &served_trees(layout, profiles)) {
        None => Ok(()),
        Some(why) => Err(format!(
            "cannot mount on {}: {why}, so the daemon would go through its own mount; mount on an empty dir outside the CCS dir's instances/ and shared/ (the default, `ccsfs mount`, uses {})",
            mount_point.display(),
            layout.default_mount_point().display()
        )),
    }
}

/// Every tree the daemon reads or writes by path, resolved: the instances (each one too), the
/// shared dir and what each entry of it (and of each group store) leads to, each profile's
/// routes, and the daemon's log and run dirs.
pub fn served_trees(layout: &Layout, profiles: &[Profile]) -> Vec<Served> {
    let mut out = Vec::new();
    let mut add = |path: &Path, what: &str| {
        let path = resolve(path);
        if !out.iter().any(|s: &Served| s.path == path) {
            out.push(Served {
                path,
                what: what.to_string(),
            });
        }
    };
    let instances = layout.instances_dir();
    let shared = layout.ccs_dir.join("shared");
    let groups = shared.join("context-groups");
    add(&instances, "the profiles' instance dirs");
    add(&shared, "the group stores and shared resources");
    add(&layout.ccs_dir.join("logs"), "the daemon's log");
    add(&layout.ccs_dir.join("run"), "the daemon's run files");
    for entry in entries(&instances) {
        add(&entry, "an instance dir");
    }
    for entry in entries(&shared) {
        add(&entry, "a shared resource of CCS");
    }
    for group in entries(&groups) {
        add(&group, "a group store");
        for dir in entries(&group) {
            add(&dir, "a group store");
        }
        for dir in entries(&group.join("continuity")) {
            add(&dir, "a group store");
        }
    }
    let present = layout.shared_resources_present();
    for p in profiles {
        let routes = ProfileRoutes::new(layout, p, &present);
        add(&routes.instance, "an instance dir");
        for r in &routes.routes {
            add(&r.target, "a routed dir");
        }
    }
    out
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Where `path` really is: absolute, every symlink on the way followed (dangling ones too,
/// as far as they lead), `..` taken after the link before it. Parts that do not exist are
/// kept as written. Unlike `canonicalize`, it answers for paths not made yet.
pub fn resolve(path: &Path) -> PathBuf {
    let mut hops = 0;
    resolve_from(path, &mut hops)
}

fn resolve_from(path: &Path, hops: &mut u32) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut cur = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                cur.pop();
            }
            Component::Normal(name) => {
                let next = cur.join(name);
                match std::fs::read_link(&next) {
                    Ok(target) if *hops < 40 => {
                        *hops += 1;
                        // An absolute target replaces `cur` in the join.
                        cur = resolve_from(&cur.join(target), hops);
                    }
                    _ => cur = next,
                }
            }
        }
    }
    cur
}

/// How long `mount` waits for another `mount` of the same point to finish.
pub const MOUNT_LOCK_WAIT: Duration = crate::tunables::MOUNT_LOCK_WAIT;

/// The exclusive lock on mounting one mount point (see the module comment). Dropping every
/// copy (the command's and the forked daemon's) lets it go; it is never unlocked explicitly,
/// which would release the other process's copy too.
#[derive(Debug)]
pub struct MountLock {
    _file: File,
}

impl MountLock {
    /// `<ccs>/run/<mount point>.lock` (beside the daemon's run file for that mount point).
    pub fn path(layout: &Layout, mount_point: &Path) -> PathBuf {
        layout.run_file(mount_point).with_extension("lock")
    }

    /// Takes the lock for the absolute `mount_point`, waiting up to `wait` for a `mount` of the
    /// same point that is under way.
    pub fn take(layout: &Layout, mount_point: &Path, wait: Duration) -> Result<MountLock, String> {
        let path = MountLock::path(layout, mount_point);
        let file = open_lock_file(&path)?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(MountLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "another `ccsfs mount` of {} has been under way for {}s (it holds {}); wait for it, or see `ccsfs status {}`",
                    mount_point.display(),
                    wait.as_secs(),
                    path.display(),
                    mount_point.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Opens (creating it 0600, its dir 0700) a lock file under `<ccs>/run`. O_CLOEXEC (std's
/// default): no program the daemon runs keeps it.
pub(crate) fn open_lock_file(path: &Path) -> Result<std::fs::File, String> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(path: &str) -> Served {
        Served {
            path: PathBuf::from(path),
            what: "x".into(),
        }
    }

    #[test]
    fn the_ccs_dir_and_what_contains_it_conflict() {
        let served = [s("/h/.ccs/instances"), s("/h/.ccs/shared")];
        let ccs = Path::new("/h/.ccs");
        for mp in ["/h/.ccs", "/h", "/"] {
            assert!(conflict(Path::new(mp), ccs, &served).is_some(), "{mp}");
        }
    }

    #[test]
    fn inside_or_around_a_served_tree_conflicts() {
        let served = [
            s("/h/.ccs/instances"),
            s("/h/.ccs/shared"),
            s("/h/.claude/commands"),
        ];
        let ccs = Path::new("/h/.ccs");
        for mp in [
            "/h/.ccs/instances",
            "/h/.ccs/instances/work",
            "/h/.ccs/shared/context-groups/team/projects/p",
            "/h/.claude/commands/sub",
            "/h/.claude",
        ] {
            let why = conflict(Path::new(mp), ccs, &served);
            assert!(why.is_some(), "{mp}");
        }
        assert!(
            conflict(Path::new("/h/.claude"), ccs, &served)
                .unwrap()
                .contains("contains /h/.claude/commands")
        );
    }

    #[test]
    fn the_default_and_unrelated_dirs_are_fine() {
        let served = [
            s("/h/.ccs/instances"),
            s("/h/.ccs/shared"),
            s("/h/.ccs/logs"),
            s("/h/.claude/commands"),
        ];
        let ccs = Path::new("/h/.ccs");
        // Prefixes are by component: `instances2` is not inside `instances`.
        for mp in ["/h/.ccs/mnt", "/h/mnt", "/h/.ccs/instances2", "/mnt/x"] {
            assert_eq!(conflict(Path::new(mp), ccs, &served), None, "{mp}");
        }
    }

    #[test]
    fn resolve_follows_links_dangling_ones_too() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("missing/deeper", root.join("dangling")).unwrap();
        assert_eq!(resolve(&root.join("link/sub")), root.join("real/sub"));
        assert_eq!(resolve(&root.join("link/../real")), root.join("real"));
        assert_eq!(
            resolve(&root.join("dangling/x")),
            root.join("missing/deeper/x")
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let _ = resolve(&root.join("loop/x")); // ends, whatever it says
    }
}
