//! Name resolution: where a child of a node lives. This is where the routing table is applied,
//! once per lookup: profile names at the mount root, routed names at a profile root, and plain
//! `*at()` lookups below; and where the kernel may remember a miss (`negative_ttl`). Also the
//! guard that keeps the virtual names (profiles, routes, lock dirs) from being created,
//! removed or renamed away.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use fuser::{Errno, FileAttr};

use super::inodes::{Inode, Key, Link, NewNode, Role, TreeId};
use super::topology::resolve_file;
use super::{CcsFs, attr, mkdir_private, sys};
use crate::routes::{RouteKind, lock_dir_profile};

/// What a namespace operation wants to do with a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// create, mknod, symlink, link
    Create,
    Mkdir,
    Unlink,
    Rmdir,
    Rename,
}

/// A name that lives somewhere other than its parent's backing dir: a shared file route at a
/// profile root (`settings.json`, in `<ccs>/shared/`, really `~/.claude/`), or a private name
/// inside a routed dir (`plugins/known_marketplaces.json`, in the instance's `plugins/`).
pub struct Redirect {
    /// The real dir holding it (O_PATH).
    pub dir: OwnedFd,
    pub name: std::ffi::OsString,
    pub tree: TreeId,
    /// A shared file every profile sees under this name (others must drop their entry).
    pub shared: bool,
}

impl CcsFs {
    /// Where `name` in `parent` really lives, if not in `parent`'s backing dir.
    pub(super) fn redirect(&self, parent: &Inode, name: &OsStr) -> Result<Option<Redirect>, Errno> {
        let topo = self.topo();
        match parent.role {
            Role::ProfileRoot(i) => {
                let p = &topo.views[i];
                let Some(r) =
                    p.routes.routes.iter().position(|r| {
                        OsStr::new(r.name) == name && r.kind == RouteKind::SharedFile
                    })
                else {
                    return Ok(None);
                };
                let real = resolve_file(&p.routes.routes[r].target).ok_or(Errno::ENOENT)?;
                let (Some(dir), Some(file)) = (real.parent(), real.file_name()) else {
                    return Err(Errno::ENOENT);
                };
                Ok(Some(Redirect {
                    dir: sys::open_dir_path(dir)?,
                    name: file.to_os_string(),
                    tree: p.route_trees[r],
                    shared: true,
                }))
            }
            Role::Routed(i, route) => {
                let p = &topo.views[i];
                match p.routes.route(OsStr::new(route)) {
                    Some(r) if r.is_private(name) => {
                        let dir = p.routes.instance.join(route);
                        Ok(Some(Redirect {
                            dir: open_routed_dir(&dir)?,
                            name: name.to_os_string(),
                            tree: p.instance_tree,
                            shared: false,
                        }))
                    }
                    _ => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    /// Resolves `name` in `parent`, counts a lookup, and returns the node with its attributes.
    pub(super) fn lookup_child(
        &self,
        parent: &Arc<Inode>,
        name: &OsStr,
    ) -> Result<(Arc<Inode>, FileAttr), Errno> {
        if name == "." || name == ".." {
            return Err(Errno::EINVAL);
        }
        let topo = self.topo();
        let (fd, tree, role) = match parent.role {
            Role::MountRoot => {
                // An account CCS has just made: look at config.yaml now, not in 250 ms. (Not
                // for Claude's `<profile>.lock` dirs, looked up at every config write.)
                let found = topo.view_named(name).or_else(|| {
                    (!self.is_lock_dir_name(name) && self.live.check())
                        .then(|| self.topo().view_named(name))
                        .flatten()
                });
                match found {
                    Some(i) => {
                        let topo = self.topo();
                        let p = &topo.views[i];
                        (
                            sys::open_dir_path(&p.routes.instance)?,
                            p.instance_tree,
                            Role::ProfileRoot(i),
                        )
                    }
                    None if self.is_lock_dir_name(name) => {
                        (open_child(parent, name)?, parent.tree, Role::Plain)
                    }
                    None => return Err(Errno::ENOENT),
                }
            }
            Role::ProfileRoot(i) => {
                let p = &topo.views[i];
                if !p.active {
                    return Err(Errno::ENOENT);
                }
                match p
                    .routes
                    .routes
                    .iter()
                    .position(|r| OsStr::new(r.name) == name)
                {
                    Some(r) => {
                        let route = &p.routes.routes[r];
                        let fd = match route.kind {
                            RouteKind::Group => open_routed_dir(&route.target)?,
                            RouteKind::SharedDir => sys::open_dir_path(&route.target)?,
                            RouteKind::SharedFile => sys::open_file_path(&route.target)?,
                        };
                        let role = if route.private.is_empty() {
                            Role::Plain
                        } else {
                            Role::Routed(i, route.name)
                        };
                        (fd, p.route_trees[r], role)
                    }
                    // A profile's own file (`.claude.json`, rewritten by rename at every
                    // config save): as in any plain dir, a known file costs one statx.
                    None => return self.lookup_plain(parent, name),
                }
            }
            Role::Routed(..) => match self.redirect(parent, name)? {
                Some(r) => (
                    sys::open_path_at(r.dir.as_fd(), &sys::cstr(&r.name)?)?,
                    r.tree,
                    Role::Plain,
                ),
                None => return self.lookup_plain(parent, name),
            },
            Role::Plain => return self.lookup_plain(parent, name),
        };
        let link = match role {
            Role::ProfileRoot(_) => None,
            _ => Some((parent.clone(), name.to_os_string())),
        };
        self.remember(fd, parent.key.view, tree, role, link)
    }

    /// How long the kernel may remember that `name` is missing in `parent` (a negative entry),
    /// or None to answer a plain ENOENT. Everywhere but the mount root: a miss there makes the
    /// daemon look at config.yaml (an account CCS has just made must appear at once), and a
    /// profile's `<p>.lock` dir comes and goes with every config write. Not in the root of a
    /// profile that is no longer served. Elsewhere a create, mkdir, mknod, symlink, link or
    /// rename through this profile replaces the kernel's negative entry itself; through
    /// another profile it is dropped with the other views' entries (`touched_entry`, and
    /// `shared_file_replaced` for a shared file's route); re-routing a profile drops its routed
    /// names (`live`). A name made behind the mount shows once the TTL (≤ the attribute TTL)
    /// has passed.
    pub(super) fn negative_ttl(&self, parent: &Inode) -> Option<std::time::Duration> {
        match parent.role {
            Role::MountRoot => None,
            Role::ProfileRoot(i) if !self.topo().views.get(i).is_some_and(|v| v.active) => None,
            _ => Some(crate::tunables::NEGATIVE_TTL),
        }
    }

    /// A plain child: one `fstatat`, and only a file the table does not know yet is opened.
    /// (Listings look up every entry: most are known, and the open/close pair was most of
    /// the cost of a warm session picker.)
    fn lookup_plain(
        &self,
        parent: &Arc<Inode>,
        name: &OsStr,
    ) -> Result<(Arc<Inode>, FileAttr), Errno> {
        let pfd = parent.fd()?;
        let cname = sys::cstr(name)?;
        let (st, generation) = sys::statx_at(pfd.as_fd(), &cname)?;
        let key = Key {
            view: parent.key.view,
            dev: st.st_dev,
            ino: st.st_ino,
        };
        if let Some(inode) = self.inodes.lookup_known(key, generation) {
            inode.relink(parent, name);
            return Ok((inode.clone(), attr::to_attr(&st, inode.id)));
        }
        let fd = sys::open_path_at(pfd.as_fd(), &cname)?;
        self.remember(
            fd,
            parent.key.view,
            parent.tree,
            Role::Plain,
            Some((parent.clone(), name.to_os_string())),
        )
    }

    /// Adds a freshly opened O_PATH fd to the table (one lookup) and returns its attributes.
    pub(super) fn remember(
        &self,
        fd: OwnedFd,
        parent_view: u32,
        tree: TreeId,
        role: Role,
        link: Option<Link>,
    ) -> Result<(Arc<Inode>, FileAttr), Errno> {
        let stat = sys::statx_at(fd.as_fd(), c"")?;
        self.remember_stat(fd, stat, parent_view, tree, role, link)
    }

    /// `remember` with the fd's statx already made (`(stat, generation)` of that very file).
    pub(super) fn remember_stat(
        &self,
        fd: OwnedFd,
        (st, generation): (libc::stat, u64),
        parent_view: u32,
        tree: TreeId,
        role: Role,
        link: Option<Link>,
    ) -> Result<(Arc<Inode>, FileAttr), Errno> {
        let view = match role {
            Role::ProfileRoot(i) => i as u32 + 1,
            _ => parent_view,
        };
        let node = NewNode {
            fd,
            key: Key {
                view,
                dev: st.st_dev,
                ino: st.st_ino,
            },
            generation,
            kind: st.st_mode & libc::S_IFMT,
            tree,
            role,
            link,
        };
        let inode = self.inodes.lookup(node);
        Ok((inode.clone(), attr::to_attr(&st, inode.id)))
    }

    /// `<profile>.lock` beside a known profile: Claude Code's proper-lockfile dir.
    pub(super) fn is_lock_dir_name(&self, name: &OsStr) -> bool {
        lock_dir_profile(name).is_some_and(|p| self.topo().view_named(OsStr::new(p)).is_some())
    }

    /// Refuses changes to the names that ccsfs itself provides.
    pub(super) fn guard(&self, parent: &Inode, name: &OsStr, change: Change) -> Result<(), Errno> {
        match parent.role {
            Role::MountRoot => {
                if self.topo().view_named(name).is_some() {
                    return Err(match change {
                        Change::Create | Change::Mkdir => Errno::EEXIST,
                        _ => Errno::EBUSY,
                    });
                }
                match change {
                    Change::Mkdir | Change::Rmdir if self.is_lock_dir_name(name) => Ok(()),
                    _ => Err(Errno::EPERM),
                }
            }
            Role::ProfileRoot(i) => match self.topo().views[i].routes.route(name) {
                Some(r) if r.kind == RouteKind::SharedFile => Err(match change {
                    // A shared file is replaced by a rename onto it (see `rename_entry`),
                    // never removed or moved away through one profile.
                    Change::Create | Change::Mkdir => Errno::EEXIST,
                    Change::Unlink | Change::Rmdir | Change::Rename => Errno::EPERM,
                }),
                Some(_) => Err(match change {
                    Change::Create | Change::Mkdir => Errno::EEXIST,
                    Change::Unlink => Errno::EISDIR,
                    Change::Rmdir | Change::Rename => Errno::EBUSY,
                }),
                None => Ok(()),
            },
            // Private names of a routed dir: only plain files, through the redirect.
            Role::Routed(i, route) => match self.topo().views[i].routes.route(OsStr::new(route)) {
                Some(r) if r.is_private(name) && change != Change::Unlink => Err(Errno::EPERM),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

fn open_child(parent: &Inode, name: &OsStr) -> Result<OwnedFd, Errno> {
    sys::open_path_at(parent.fd()?.as_fd(), &sys::cstr(name)?)
}

/// Opens a group-store dir (or the instance's own dir of a routed name), creating it (0700)
/// when it does not exist yet.
fn open_routed_dir(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    match sys::open_dir_path(path) {
        Err(e) if e == Errno::ENOENT => {
            mkdir_private(path).map_err(Errno::from)?;
            sys::open_dir_path(path)
        }
        r => r,
    }
}
