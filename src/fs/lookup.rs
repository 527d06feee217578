//! Name resolution: where a child of a node lives. This is where the routing table is applied,
//! once per lookup: profile names at the mount root, routed names at a profile root, and plain
//! `*at()` lookups below. Also the guard that keeps the virtual names (profiles, routes, lock
//! dirs) from being created, removed or renamed away.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use fuser::{Errno, FileAttr};

use super::inodes::{Inode, Key, Link, NewNode, Role, TreeId};
use super::{CcsFs, attr, mkdir_private, sys};
use crate::routes::lock_dir_profile;

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

impl CcsFs {
    pub(super) fn profile_index(&self, name: &OsStr) -> Option<usize> {
        self.profiles
            .iter()
            .position(|p| OsStr::new(&p.routes.profile.name) == name)
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
        let (fd, tree, role) = match parent.role {
            Role::MountRoot => match self.profile_index(name) {
                Some(i) => {
                    let p = &self.profiles[i];
                    (
                        open_routed_dir(&p.routes.instance)?,
                        p.instance_tree,
                        Role::ProfileRoot(i),
                    )
                }
                None if self.is_lock_dir_name(name) => {
                    (open_child(parent, name)?, parent.tree, Role::Plain)
                }
                None => return Err(Errno::ENOENT),
            },
            Role::ProfileRoot(i) => {
                let p = &self.profiles[i];
                match p
                    .routes
                    .routes
                    .iter()
                    .position(|r| OsStr::new(r.name) == name)
                {
                    Some(r) => (
                        open_routed_dir(&p.routes.routes[r].target)?,
                        p.route_trees[r],
                        Role::Plain,
                    ),
                    None => (open_child(parent, name)?, parent.tree, Role::Plain),
                }
            }
            Role::Plain => return self.lookup_plain(parent, name),
        };
        let link = match role {
            Role::ProfileRoot(_) => None,
            _ => Some((parent.clone(), name.to_os_string())),
        };
        self.remember(fd, parent.key.view, tree, role, link)
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
        let st = sys::fstatat(pfd.as_fd(), &cname)?;
        let key = Key {
            view: parent.key.view,
            dev: st.st_dev,
            ino: st.st_ino,
        };
        if let Some(inode) = self.inodes.lookup_known(key) {
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
        let st = sys::fstat(std::os::fd::AsFd::as_fd(&fd))?;
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
        lock_dir_profile(name).is_some_and(|p| self.profile_index(OsStr::new(p)).is_some())
    }

    /// Refuses changes to the names that ccsfs itself provides.
    pub(super) fn guard(&self, parent: &Inode, name: &OsStr, change: Change) -> Result<(), Errno> {
        match parent.role {
            Role::MountRoot => {
                if self.profile_index(name).is_some() {
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
            Role::ProfileRoot(i) if self.profiles[i].routes.route(name).is_some() => {
                Err(match change {
                    Change::Create | Change::Mkdir => Errno::EEXIST,
                    Change::Unlink => Errno::EISDIR,
                    Change::Rmdir | Change::Rename => Errno::EBUSY,
                })
            }
            _ => Ok(()),
        }
    }
}

fn open_child(parent: &Inode, name: &OsStr) -> Result<OwnedFd, Errno> {
    sys::open_path_at(parent.fd()?.as_fd(), &sys::cstr(name)?)
}

/// Opens a routed or instance dir, creating it (0700) when it does not exist yet.
fn open_routed_dir(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    match sys::open_dir_path(path) {
        Err(e) if e == Errno::ENOENT => {
            mkdir_private(path).map_err(Errno::from)?;
            sys::open_dir_path(path)
        }
        r => r,
    }
}
