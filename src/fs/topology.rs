//! The profiles as the daemon serves them right now: one view per profile (its routes and the
//! backing trees they land in), the trees themselves with the group store each belongs to,
//! and which views see each tree.
//!
//! Built from `config.yaml` at mount time and rebuilt whenever it changes (see `live`). A
//! rebuild keeps every view id (one per profile dir name) and every tree id (one per real
//! path): node ids the kernel holds stay valid, and an open file keeps its file. A profile
//! that left the config keeps its slot, inactive, so its id is never given to another.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::Profile;
use crate::layout::Layout;
use crate::routes::{ProfileRoutes, RouteKind};

use super::inodes::{TreeId, View};
use super::mkdir_private;
use super::transcripts::StoreTree;

/// One profile as the filesystem serves it: its routes and the backing trees they land in.
#[derive(Clone, Debug)]
pub struct ProfileView {
    pub routes: ProfileRoutes,
    /// The instance dir's name, which is the profile's name in the mount root.
    pub dir: String,
    pub instance_tree: TreeId,
    /// Tree of each entry of `routes.routes`, in the same order.
    pub route_trees: Vec<TreeId>,
    /// False once the profile left `config.yaml`.
    pub active: bool,
}

/// A backing dir that whole subtrees of the mount are served from.
#[derive(Clone, Debug)]
pub struct Tree {
    /// Its real (canonical) path.
    pub root: PathBuf,
    /// How deep below a profile root it appears (for the symlink containment rule).
    pub depth: usize,
    /// The group store it belongs to (None: an instance or a shared resource).
    pub group: Option<StoreTree>,
}

/// Everything routing-related the filesystem reads per operation.
#[derive(Clone, Debug)]
pub struct Topology {
    /// View `i + 1` is `views[i]`; view 0 is the mount root.
    pub views: Vec<ProfileView>,
    pub trees: Vec<Tree>,
    /// For each tree, the views that can reach it (only ever grows: a view that saw a tree
    /// may still hold nodes in it).
    pub tree_views: Vec<Vec<View>>,
}

impl Topology {
    /// The first topology (`prev` None), or the next one after `prev`: same view per dir
    /// name, same tree per real path. Creates missing instance and group-store dirs of the
    /// configured profiles that are new to this daemon (0700); never anything for a profile that
    /// is not configured.
    pub fn build(
        layout: &Layout,
        profiles: &[Profile],
        prev: Option<&Topology>,
    ) -> io::Result<Topology> {
        let instances = layout.instances_dir();
        let mut topo = match prev {
            Some(p) => {
                let mut t = p.clone();
                for v in &mut t.views {
                    v.active = false;
                }
                t
            }
            None => {
                mkdir_private(&instances)?;
                Topology {
                    views: Vec::new(),
                    trees: vec![Tree {
                        root: instances.canonicalize()?,
                        depth: 0,
                        group: None,
                    }],
                    tree_views: vec![vec![0]],
                }
            }
        };
        let shared_present = layout.shared_resources_present();
        let mut seen = BTreeSet::new();
        for p in profiles {
            let dir = crate::layout::instance_dir_name(&p.name);
            if !seen.insert(dir.clone()) {
                log::warn!(
                    "accounts {:?} and another share the instance dir {dir}; serving the first",
                    p.name
                );
                continue;
            }
            let mut routes = ProfileRoutes::new(layout, p, &shared_present);
            // A new account's instance is made as CCS makes it at its first launch; one the
            // daemon already served is not made again (CCS may be deleting it right now).
            let is_new = prev.is_none_or(|t| !t.views.iter().any(|v| v.active && v.dir == dir));
            let instance_tree = match topo.tree_of(&routes.instance, 0, is_new) {
                Ok(t) => t,
                Err(e) => {
                    log::warn!("not serving {dir}: {}: {e}", routes.instance.display());
                    continue;
                }
            };
            let mut route_trees = Vec::with_capacity(routes.routes.len());
            let mut kept = Vec::with_capacity(routes.routes.len());
            for r in routes.routes.drain(..) {
                let tree = match r.kind {
                    RouteKind::Group => Some(topo.tree_of(&r.target, 1, true)?),
                    RouteKind::SharedDir => topo.tree_of(&r.target, 1, false).ok(),
                    RouteKind::SharedFile => resolve_file(&r.target)
                        .and_then(|f| f.parent().map(Path::to_path_buf))
                        .and_then(|d| topo.tree_of(&d, 0, false).ok()),
                };
                match tree {
                    Some(t) => {
                        if r.kind == RouteKind::Group {
                            topo.set_group(layout, p, &r.target, r.name, t);
                        }
                        route_trees.push(t);
                        kept.push(r);
                    }
                    None => log::warn!(
                        "{} leads nowhere ({}); {} keeps the instance's own",
                        r.target.display(),
                        r.name,
                        dir
                    ),
                }
            }
            routes.routes = kept;
            let view = ProfileView {
                routes,
                dir: dir.clone(),
                instance_tree,
                route_trees,
                active: true,
            };
            let slot = match topo.views.iter().position(|v| v.dir == dir) {
                Some(i) => {
                    topo.views[i] = view;
                    i
                }
                None => {
                    topo.views.push(view);
                    topo.views.len() - 1
                }
            };
            let v = &topo.views[slot];
            let trees: Vec<TreeId> = std::iter::once(v.instance_tree)
                .chain(v.route_trees.iter().copied())
                .collect();
            for t in trees {
                let views = &mut topo.tree_views[t as usize];
                if !views.contains(&(slot as View + 1)) {
                    views.push(slot as View + 1);
                }
            }
        }
        Ok(topo)
    }

    /// The tree whose root is `path` (made real), added if new; `create` makes a missing dir.
    fn tree_of(&mut self, path: &Path, depth: usize, create: bool) -> io::Result<TreeId> {
        if create {
            mkdir_private(path)?;
        }
        let real = path.canonicalize()?;
        if !real.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        Ok(match self.trees.iter().position(|t| t.root == real) {
            Some(i) => i as TreeId,
            None => {
                self.trees.push(Tree {
                    root: real,
                    depth,
                    group: None,
                });
                self.tree_views.push(Vec::new());
                (self.trees.len() - 1) as TreeId
            }
        })
    }

    /// Records that tree `t` (route `name` of `p`, at `target`) is part of `p`'s group store.
    fn set_group(&mut self, layout: &Layout, p: &Profile, target: &Path, name: &str, t: TreeId) {
        let Some(group) = p.group.as_deref() else {
            return;
        };
        let group_dir = layout.group_dir(group);
        let group_dir = group_dir.canonicalize().unwrap_or(group_dir);
        let target = target
            .canonicalize()
            .unwrap_or_else(|_| target.to_path_buf());
        let prefix = target
            .strip_prefix(&group_dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| name.into());
        self.trees[t as usize].group = Some(StoreTree { group_dir, prefix });
    }

    /// The active profile whose dir name (its name in the mount root) is `name`.
    pub fn view_named(&self, name: &OsStr) -> Option<usize> {
        self.views
            .iter()
            .position(|v| v.active && OsStr::new(&v.dir) == name)
    }

    /// The account name behind a view ("" for the mount root).
    pub fn profile_name(&self, view: View) -> &str {
        match view {
            0 => "",
            v => self
                .views
                .get(v as usize - 1)
                .map_or("", |p| p.routes.profile.name.as_str()),
        }
    }

    /// The profiles served now, in mount-root order.
    pub fn active(&self) -> impl Iterator<Item = (usize, &ProfileView)> {
        self.views.iter().enumerate().filter(|(_, v)| v.active)
    }
}

/// The real path a shared file route leads to, also when the file itself does not exist yet
/// (CCS's link to `~/.claude/settings.json` may dangle): the link's target with its dir made
/// real. None when not even the dir exists.
pub fn resolve_file(path: &Path) -> Option<PathBuf> {
    if let Ok(real) = path.canonicalize() {
        return Some(real);
    }
    let meta = std::fs::symlink_metadata(path).ok()?;
    let target = if meta.file_type().is_symlink() {
        let t = std::fs::read_link(path).ok()?;
        path.parent()?.join(t)
    } else {
        path.to_path_buf()
    };
    let dir = target.parent()?.canonicalize().ok()?;
    Some(dir.join(target.file_name()?))
}
