//! Directory handles and listings. Backing dirs are read with getdents64 and their own d_off
//! cookies, which the backing filesystem keeps valid while entries come and go. The virtual
//! dirs (mount root, profile roots) are listed from a snapshot taken at the start of a
//! listing, so their offsets are plain indexes that cannot shift under a reader.
//! Also when the kernel may serve a backing dir's listing from its own cache (`CcsFs::dir_cache_flags`).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use fuser::{Errno, FileType, FopenFlags, INodeNo, ReplyDirectory, ReplyDirectoryPlus};
use parking_lot::Mutex;

use super::inodes::{Inode, Key, Role};
use super::sys::{self, SysResult};
use super::{CcsFs, TTL, attr};

const DENTS_BUF: usize = 16 * 1024;

struct Listed {
    name: OsString,
    ino: u64,
    kind: FileType,
}

enum DirState {
    Backing(OwnedFd),
    /// Built at offset 0; `None` until then.
    Snapshot(Option<Vec<Listed>>),
}

#[derive(Default)]
pub struct DirHandles {
    open: Mutex<HashMap<u64, Arc<Mutex<DirState>>>>,
    next: AtomicU64,
    /// When each backing dir (by inode id) was last listed with attributes: a READDIRPLUS
    /// from offset 0 gave the kernel its entries with their attributes and a fresh TTL.
    plus_listed: Mutex<HashMap<u64, Instant>>,
}

/// `plus_listed` is pruned of expired records when it grows past this.
const PLUS_LISTED_PRUNE: usize = 4096;

impl DirHandles {
    fn insert(&self, state: DirState) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.open.lock().insert(fh, Arc::new(Mutex::new(state)));
        fh
    }

    fn get(&self, fh: u64) -> SysResult<Arc<Mutex<DirState>>> {
        self.open.lock().get(&fh).cloned().ok_or(Errno::EBADF)
    }

    pub fn release(&self, fh: u64) {
        self.open.lock().remove(&fh);
    }

    fn note_plus_listing(&self, id: u64) {
        let now = Instant::now();
        let mut listed = self.plus_listed.lock();
        if listed.len() >= PLUS_LISTED_PRUNE {
            listed.retain(|_, at| now.duration_since(*at) < attr::TTL);
        }
        listed.insert(id, now);
    }

    /// Whether the kernel got this dir's entries with attributes recently enough that they
    /// are still valid while a listing is read and each entry looked at.
    fn plus_listed_recently(&self, id: u64) -> bool {
        self.plus_listed
            .lock()
            .get(&id)
            .is_some_and(|at| at.elapsed() < attr::LISTING_REUSE)
    }
}

/// One entry to emit: its name, the offset *after* it, and (for plain readdir) ino and type.
struct Emit<'a> {
    name: &'a OsStr,
    next_offset: u64,
    ino: u64,
    kind: FileType,
    /// The backing inode number getdents gave (backing dirs only).
    d_ino: Option<u64>,
}

impl CcsFs {
    /// How the kernel may cache a listing. A backing dir's listing is kept in the kernel's
    /// page cache across opens (FOPEN_CACHE_DIR): a warm session picker then costs no READDIR
    /// at all. It stays coherent: a change through this profile resets it; one through
    /// another profile resets it through `Coherence::entry_changed` (which bumps the dir's
    /// version); and one behind the mount changes the dir's mtime, which the kernel checks
    /// (FUSE_AUTO_INVAL_DATA) once the attributes expire, at the start of every listing.
    ///
    /// But a cached listing carries no attributes, so once its entries' attributes have
    /// expired (`TTL`) every name the reader then looks at costs a LOOKUP round trip of its
    /// own: a session picker over transcripts made minutes ago paid one per file. So the
    /// cached listing is kept (FOPEN_KEEP_CACHE) only while the kernel's copy of the entries
    /// is fresh (a READDIRPLUS from offset 0 less than `LISTING_REUSE` ago); otherwise the
    /// open drops it and the kernel reads the dir again with READDIRPLUS, a dir's worth of
    /// entries and attributes per request, filling the cache anew.
    /// The virtual dirs are built per listing.
    pub(super) fn dir_cache_flags(&self, inode: &Inode) -> FopenFlags {
        match inode.role {
            Role::Plain | Role::Routed(..) if self.dirs.plus_listed_recently(inode.id) => {
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE
            }
            Role::Plain | Role::Routed(..) => FopenFlags::FOPEN_CACHE_DIR,
            _ => FopenFlags::empty(),
        }
    }

    pub(super) fn open_dir(&self, inode: &Inode) -> SysResult<u64> {
        let state = match inode.role {
            Role::Plain | Role::Routed(..) => {
                DirState::Backing(sys::open_dir(inode.fd()?.as_fd())?)
            }
            _ => DirState::Snapshot(None),
        };
        Ok(self.dirs.insert(state))
    }

    /// Calls `emit` for each entry from `offset` on until it returns true (buffer full).
    fn walk_dir(
        &self,
        inode: &Inode,
        fh: u64,
        offset: u64,
        mut emit: impl FnMut(Emit) -> bool,
    ) -> SysResult<()> {
        let state = self.dirs.get(fh)?;
        let mut state = state.lock();
        match &mut *state {
            DirState::Backing(fd) => {
                let mut buf = vec![0u8; DENTS_BUF];
                let mut off = offset;
                loop {
                    let batch = sys::getdents_from(fd.as_fd(), off, &mut buf)?;
                    if batch.is_empty() {
                        return Ok(());
                    }
                    for d in &batch {
                        let key = Key {
                            view: inode.key.view,
                            dev: inode.key.dev,
                            ino: d.ino,
                        };
                        let e = Emit {
                            name: &d.name,
                            next_offset: d.next_offset,
                            ino: self.inodes.listing_ino(key),
                            kind: attr::dtype_file_type(d.dtype),
                            d_ino: Some(d.ino),
                        };
                        if emit(e) {
                            return Ok(());
                        }
                        off = d.next_offset;
                    }
                }
            }
            DirState::Snapshot(snap) => {
                if offset == 0 || snap.is_none() {
                    *snap = Some(self.snapshot(inode)?);
                }
                let entries = snap.as_ref().expect("just built");
                for (i, l) in entries.iter().enumerate().skip(offset as usize) {
                    let e = Emit {
                        name: &l.name,
                        next_offset: i as u64 + 1,
                        ino: l.ino,
                        kind: l.kind,
                        d_ino: None,
                    };
                    if emit(e) {
                        break;
                    }
                }
                Ok(())
            }
        }
    }

    pub(super) fn read_dir(&self, inode: &Inode, fh: u64, offset: u64, mut reply: ReplyDirectory) {
        let r = self.walk_dir(inode, fh, offset, |e| {
            reply.add(INodeNo(e.ino), e.next_offset, e.kind, e.name)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    pub(super) fn read_dir_plus(
        &self,
        inode: &Arc<Inode>,
        fh: u64,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let dir_attr = match self.attr_of(inode) {
            Ok(a) => a,
            Err(e) => return reply.error(e),
        };
        if offset == 0 && matches!(inode.role, Role::Plain | Role::Routed(..)) {
            self.dirs.note_plus_listing(inode.id);
        }
        let r = self.walk_dir(inode, fh, offset, |e| {
            if e.name == "." || e.name == ".." {
                // The kernel links no dentry for these; the attributes only feed the dirent.
                let attr = fuser::FileAttr {
                    ino: INodeNo(e.ino.max(1)),
                    ..dir_attr
                };
                return reply.add(
                    INodeNo(e.ino),
                    e.next_offset,
                    e.name,
                    &TTL,
                    &attr,
                    fuser::Generation(0),
                );
            }
            let Ok((child, attr)) = self.plus_entry(inode, e.name, e.d_ino) else {
                return false; // gone since the listing was read
            };
            let full = reply.add(
                INodeNo(child.id),
                e.next_offset,
                e.name,
                &TTL,
                &attr,
                fuser::Generation(child.generation),
            );
            if full {
                self.inodes.forget(child.id, 1);
            }
            full
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// Resolves a READDIRPLUS entry as a lookup does, and counts it. In a plain dir, a file
    /// the table does not know (by the inode number getdents gave) is opened at once and its
    /// attributes read through the new fd: a cold listing after the kernel dropped its nodes
    /// then costs two syscalls an entry, not the lookup's three (statx by name first, to find
    /// known files without an open). A wrong guess only costs speed: `remember` counts a file
    /// it already holds as a lookup of that node, and drops the new fd.
    fn plus_entry(
        &self,
        parent: &Arc<Inode>,
        name: &OsStr,
        d_ino: Option<u64>,
    ) -> SysResult<(Arc<Inode>, fuser::FileAttr)> {
        if let (Role::Plain, Some(ino)) = (parent.role, d_ino) {
            let key = Key {
                view: parent.key.view,
                dev: parent.key.dev,
                ino,
            };
            if self.inodes.find(key).is_none() {
                let fd = sys::open_path_at(parent.fd()?.as_fd(), &sys::cstr(name)?)?;
                return self.remember(
                    fd,
                    parent.key.view,
                    parent.tree,
                    Role::Plain,
                    Some((parent.clone(), name.to_os_string())),
                );
            }
        }
        self.lookup_child(parent, name)
    }

    /// The listing of a virtual dir: `.`, `..`, then the profiles (mount root) or the routed
    /// names and the instance's own entries (profile root).
    fn snapshot(&self, inode: &Inode) -> SysResult<Vec<Listed>> {
        let dir = |name: &str, ino: u64| Listed {
            name: name.into(),
            ino,
            kind: FileType::Directory,
        };
        let mut out = vec![dir(".", inode.id), dir("..", super::inodes::ROOT_ID)];
        match inode.role {
            Role::MountRoot => {
                // A listing right after `ccs auth create` shows the new account.
                self.live.check();
                let topo = self.topo();
                for (i, p) in topo.active() {
                    let ino = std::fs::metadata(&p.routes.instance)
                        .map(|m| {
                            use std::os::unix::fs::MetadataExt;
                            self.inodes.listing_ino(Key {
                                view: i as u32 + 1,
                                dev: m.dev(),
                                ino: m.ino(),
                            })
                        })
                        .unwrap_or(0);
                    out.push(dir(&p.dir, ino));
                    let lock = format!("{}.lock", p.dir);
                    if let Ok(st) =
                        sys::fstatat(inode.fd()?.as_fd(), &sys::cstr(OsStr::new(&lock))?)
                    {
                        let key = Key {
                            view: 0,
                            dev: st.st_dev,
                            ino: st.st_ino,
                        };
                        out.push(Listed {
                            name: lock.into(),
                            ino: self.inodes.listing_ino(key),
                            kind: attr::file_type(st.st_mode),
                        });
                    }
                }
            }
            Role::ProfileRoot(i) => {
                let topo = self.topo();
                let p = &topo.views[i];
                if !p.active {
                    return Ok(out);
                }
                for r in &p.routes.routes {
                    // Following CCS's links; a route that leads nowhere yet is not listed.
                    let Ok(m) = std::fs::metadata(&r.target) else {
                        continue;
                    };
                    use std::os::unix::fs::MetadataExt;
                    out.push(Listed {
                        name: r.name.into(),
                        ino: self.inodes.listing_ino(Key {
                            view: inode.key.view,
                            dev: m.dev(),
                            ino: m.ino(),
                        }),
                        kind: attr::file_type(m.mode()),
                    });
                }
                let fd = sys::open_dir(inode.fd()?.as_fd())?;
                let mut buf = vec![0u8; DENTS_BUF];
                let mut off = 0;
                loop {
                    let batch = sys::getdents_from(fd.as_fd(), off, &mut buf)?;
                    if batch.is_empty() {
                        break;
                    }
                    for d in batch {
                        off = d.next_offset;
                        if d.name == "." || d.name == ".." || p.routes.route(&d.name).is_some() {
                            continue;
                        }
                        let key = Key {
                            view: inode.key.view,
                            dev: inode.key.dev,
                            ino: d.ino,
                        };
                        out.push(Listed {
                            ino: self.inodes.listing_ino(key),
                            kind: attr::dtype_file_type(d.dtype),
                            name: d.name,
                        });
                    }
                }
            }
            Role::Routed(..) | Role::Plain => {}
        }
        Ok(out)
    }
}
