//! Where a symlink target really leads: followed component by component on the backing dirs,
//! as the kernel would follow it through the mount, then judged by `symlink_rule` (pure).
//!
//! A relative target starts at the link's real dir, inside the mount: a routed name at a
//! profile root leads to its store, `..` at a store's root leads back to the profile root,
//! and `..` at a profile root to the mount root. An absolute target starts at `/` on the real
//! filesystem, and a path that reaches the mount point goes on inside the mount the same way
//! (never through it: the daemon does not call into its own mount). Every link met on the way
//! is read and followed, `..` after a link climbs from where the link led, and the first
//! missing component ends the real walk (the rest is joined as written). The walk is redone
//! at every readlink, so a link whose meaning changes later (a dir replaced by a link) is
//! judged by what it means now.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::CcsFs;
use super::inodes::{TreeId, View};
use super::topology::{Topology, resolve_file};
use crate::symlink_rule::{self, Home, MAX_LINKS, Refusal, Step, Walk};

/// `statfs.f_type` of procfs.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

impl CcsFs {
    /// Whether a symlink in the backing dir `dir` of `tree`, seen through `view`, may point at
    /// `target` (see `symlink_rule`).
    pub(super) fn symlink_verdict(
        &self,
        tree: TreeId,
        view: View,
        dir: &Path,
        target: &Path,
    ) -> Result<(), Refusal> {
        let topo = self.topo();
        let Some(t) = topo.trees.get(tree as usize) else {
            return Err(Refusal::IntoOtherProfile);
        };
        let Ok(below) = dir.strip_prefix(&t.root) else {
            return Err(Refusal::IntoOtherProfile);
        };
        let own_mount = match view {
            0 => None,
            v => topo
                .views
                .get(v as usize - 1)
                .map(|p| self.mount_abs.join(&p.dir)),
        };
        let instance = match view {
            0 => None,
            v => topo
                .views
                .get(v as usize - 1)
                .map(|p| topo.trees[p.instance_tree as usize].root.clone()),
        };
        let shared = tree != 0 && !topo.views.iter().any(|v| v.instance_tree == tree);
        if !shared {
            // The target as written may not climb out of the profile (or, from a lock dir
            // beside the profiles, out of the mount).
            let depth = t.depth + below.components().count();
            if !symlink_rule::symlink_target_allowed(
                target,
                depth,
                own_mount.as_deref(),
                &self.forbidden_symlink_roots,
            ) {
                return Err(if target.is_absolute() {
                    Refusal::IntoOtherProfile
                } else {
                    Refusal::LeavesProfile
                });
            }
        }
        let walk = Walker::new(&topo, &self.mount_abs, view).walk(dir, target);
        let forbidden = [topo.trees[0].root.clone(), self.mount_abs.clone()];
        // The CCS dir (the instances dir's parent) and the mount.
        let resource_forbidden = [
            topo.trees[0]
                .root
                .parent()
                .unwrap_or(&topo.trees[0].root)
                .to_path_buf(),
            self.mount_abs.clone(),
        ];
        let home = match (&instance, shared) {
            (_, true) if t.group.is_none() => Home::SharedResource {
                root: &t.root,
                forbidden: &resource_forbidden,
            },
            (_, true) => Home::Shared { root: &t.root },
            (Some(own), false) => Home::Private {
                own,
                forbidden: &forbidden,
            },
            // A lock dir at the mount root: it belongs to no profile.
            (None, false) => Home::Private {
                own: &t.root,
                forbidden: &forbidden[1..],
            },
        };
        symlink_rule::judge(home, &walk)
    }
}

/// One component of a path still to walk.
enum Part {
    Root,
    Up,
    Name(OsString),
}

fn parts(target: &Path) -> impl Iterator<Item = Part> + '_ {
    target.components().filter_map(|c| match c {
        Component::RootDir | Component::Prefix(_) => Some(Part::Root),
        Component::ParentDir => Some(Part::Up),
        Component::CurDir => None,
        Component::Normal(n) => Some(Part::Name(n.to_os_string())),
    })
}

/// Where the walk stands: a real path, or the mount root (which has no backing dir).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pos {
    Real(PathBuf),
    MountRoot,
}

struct Walker<'a> {
    topo: &'a Topology,
    mount: &'a Path,
    /// Inside the mount (names map through the profile's routes) or on the real filesystem.
    in_mount: bool,
    /// The profile whose part of the mount the walk is in (0: the mount root).
    view: View,
}

impl<'a> Walker<'a> {
    fn new(topo: &'a Topology, mount: &'a Path, view: View) -> Walker<'a> {
        Walker {
            topo,
            mount,
            in_mount: true,
            view,
        }
    }

    /// Follows `target` from the link's real dir `dir`.
    fn walk(mut self, dir: &Path, target: &Path) -> Walk {
        let mut relative = !target.is_absolute();
        let mut walk = Walk {
            steps: vec![Step {
                at: dir.to_path_buf(),
                relative,
            }],
            ..Walk::default()
        };
        let mut cur = Pos::Real(dir.to_path_buf());
        let mut todo: VecDeque<Part> = parts(target).collect();
        let mut missing = false;
        let mut links = 0;
        while let Some(part) = todo.pop_front() {
            match part {
                Part::Root => {
                    cur = Pos::Real(PathBuf::from("/"));
                    self.in_mount = false;
                    relative = false;
                }
                Part::Up => cur = self.parent(&cur),
                Part::Name(name) => {
                    let (next, gone) = self.child(&cur, &name);
                    missing |= gone;
                    if let (false, Pos::Real(p)) = (missing, &next) {
                        match std::fs::symlink_metadata(p) {
                            Err(_) => missing = true,
                            Ok(m) if m.file_type().is_symlink() => {
                                links += 1;
                                if links > MAX_LINKS {
                                    walk.looped = true;
                                    return walk;
                                }
                                match std::fs::read_link(p) {
                                    Ok(t) => {
                                        for part in parts(&t).collect::<Vec<_>>().into_iter().rev()
                                        {
                                            todo.push_front(part);
                                        }
                                        // The link's target goes on from the link's dir.
                                        continue;
                                    }
                                    Err(_) => missing = true,
                                }
                            }
                            Ok(m) if m.is_dir() && is_proc(p) => {
                                walk.through_proc = true;
                                return walk;
                            }
                            Ok(_) => {}
                        }
                    }
                    cur = next;
                }
            }
            walk.steps.push(Step {
                at: self.path(&cur),
                relative,
            });
        }
        walk
    }

    fn path(&self, pos: &Pos) -> PathBuf {
        match pos {
            Pos::Real(p) => p.clone(),
            Pos::MountRoot => self.mount.to_path_buf(),
        }
    }

    /// The instance dir (real) of the profile the walk is in.
    fn instance(&self) -> Option<&'a Path> {
        let v = self.topo.views.get((self.view as usize).checked_sub(1)?)?;
        Some(&self.topo.trees[v.instance_tree as usize].root)
    }

    /// `name` in `cur`, and whether it is known not to exist.
    fn child(&mut self, cur: &Pos, name: &OsStr) -> (Pos, bool) {
        let p = match cur {
            Pos::MountRoot => {
                if let Some(i) = self.topo.view_named(name) {
                    self.view = i as View + 1;
                    let tree = self.topo.views[i].instance_tree;
                    return (
                        Pos::Real(self.topo.trees[tree as usize].root.clone()),
                        false,
                    );
                }
                let instances = &self.topo.trees[0].root;
                let lock_dir = crate::routes::lock_dir_profile(name)
                    .is_some_and(|p| self.topo.view_named(OsStr::new(p)).is_some());
                return if lock_dir {
                    (Pos::Real(instances.join(name)), false)
                } else {
                    (Pos::Real(self.mount.join(name)), true)
                };
            }
            Pos::Real(p) => p,
        };
        if self.in_mount
            && let Some(v) = (self.view as usize)
                .checked_sub(1)
                .and_then(|i| self.topo.views.get(i))
        {
            let instance = &self.topo.trees[v.instance_tree as usize].root;
            for (r, &t) in v.routes.routes.iter().zip(&v.route_trees) {
                let root = &self.topo.trees[t as usize].root;
                if p == instance && OsStr::new(r.name) == name {
                    if r.kind == crate::routes::RouteKind::SharedFile {
                        return match resolve_file(&r.target) {
                            Some(f) => (Pos::Real(f), false),
                            None => (Pos::Real(p.join(name)), true),
                        };
                    }
                    return (Pos::Real(root.clone()), false);
                }
                if p == root && r.is_private(name) {
                    return (Pos::Real(instance.join(r.name).join(name)), false);
                }
            }
        }
        let next = p.join(name);
        if next == self.mount {
            self.in_mount = true;
            self.view = 0;
            return (Pos::MountRoot, false);
        }
        (Pos::Real(next), false)
    }

    /// `..` of `cur`.
    fn parent(&mut self, cur: &Pos) -> Pos {
        let p = match cur {
            Pos::MountRoot => {
                self.in_mount = false;
                return Pos::Real(self.mount.parent().unwrap_or(self.mount).to_path_buf());
            }
            Pos::Real(p) => p,
        };
        if self.in_mount {
            if let Some(instance) = self.instance() {
                if p == instance {
                    self.view = 0;
                    return Pos::MountRoot;
                }
                let v = &self.topo.views[self.view as usize - 1];
                let routed_root = v.routes.routes.iter().zip(&v.route_trees).any(|(r, &t)| {
                    r.kind != crate::routes::RouteKind::SharedFile
                        && self.topo.trees[t as usize].root == *p
                });
                if routed_root {
                    return Pos::Real(instance.to_path_buf());
                }
            } else if p.parent() == Some(self.topo.trees[0].root.as_path()) {
                // A lock dir beside the profiles.
                return Pos::MountRoot;
            }
        }
        Pos::Real(p.parent().unwrap_or(p).to_path_buf())
    }
}

/// Whether the dir `p` is on procfs.
fn is_proc(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is NUL-terminated and `st` is written by the kernel on success.
    if unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: initialised by the successful call above.
    let st = unsafe { st.assume_init() };
    // f_type's type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let kind = st.f_type as i64;
    kind == PROC_SUPER_MAGIC
}
