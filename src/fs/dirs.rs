//! Directory listings. Backing dirs are read with getdents64 and their own d_off cookies,
//! which the backing filesystem keeps valid while entries come and go (and across opens).
//! The virtual dirs (mount root, profile roots) are listed from a snapshot taken at offset 0,
//! so their offsets are plain indexes that cannot shift under a reader.
//!
//! There are no directory handles: OPENDIR is answered ENOSYS, after which the kernel sends
//! no OPENDIR or RELEASEDIR at all (two round trips per listing) and keeps every listing in
//! its cache (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR, its default then). So this module also
//! decides how long the kernel may serve a listing from that cache (`DirHandles` below).

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use fuser::{FileType, INodeNo, Notifier, ReplyDirectory, ReplyDirectoryPlus};
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
    Snapshot(Vec<Listed>),
}

/// Listings in progress, by dir node id: the fd (backing dir) or the snapshot (virtual dir)
/// that offset 0 began with, reused by the requests for the later offsets and dropped at the
/// end of the listing (an empty reply). A reader that stops early leaves its state until
/// the next listing of that dir from offset 0 replaces it, or the map is pruned.
///
/// The kernel's cached listings: the cache of a backing dir carries no attributes, so once
/// its entries' attributes have expired (`TTL`) every name the reader looks at would cost a
/// LOOKUP round trip of its own (a session picker over transcripts made minutes ago paid one
/// per file). So a listing is served from the cache only while the kernel's copy of the
/// entries is fresh: `LISTING_REUSE` after a READDIRPLUS from offset 0, the expiry thread
/// drops the kernel's cached listing (an inode invalidation from offset 0), and the next
/// listing reads the dir again with READDIRPLUS, a dir's worth of entries and attributes per
/// request. It stays coherent meanwhile: a change through this profile resets the cache in
/// the kernel itself; one through another profile drops it through
/// `Coherence::entry_changed`; one behind the mount changes the dir's mtime, which the
/// kernel checks (FUSE_AUTO_INVAL_DATA) at the start of a listing once the dir's attributes
/// have expired. A virtual dir's listing is never served from the cache: its cache is
/// dropped before its listing's last (empty) reply completes it (`read_dir_plus`), so each
/// listing is built anew (a new account shows at once).
pub struct DirHandles {
    listing: Mutex<HashMap<u64, Arc<Mutex<DirState>>>>,
    /// When each backing dir (by node id) was last listed with attributes from offset 0.
    plus_listed: Arc<Mutex<HashMap<u64, Instant>>>,
    expiry: Arc<Expiry>,
    notifier: Arc<OnceLock<Notifier>>,
}

/// `listing` is cleared when it grows past this (readers that stopped early).
const LISTING_PRUNE: usize = 256;

impl DirHandles {
    pub fn new(notifier: Arc<OnceLock<Notifier>>) -> DirHandles {
        let plus_listed: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let expiry: Arc<Expiry> = Arc::default();
        let (n, listed, e) = (notifier.clone(), plus_listed.clone(), expiry.clone());
        let _ = std::thread::Builder::new()
            .name("ccsfs-listings".into())
            .spawn(move || expire(&e, &listed, &n));
        DirHandles {
            listing: Mutex::default(),
            plus_listed,
            expiry,
            notifier,
        }
    }

    /// The state of the listing of `id` at `offset`: a new one at offset 0 (or when none is
    /// kept), else the one that offset 0 began.
    fn state(
        &self,
        id: u64,
        offset: u64,
        open: impl FnOnce() -> SysResult<DirState>,
    ) -> SysResult<Arc<Mutex<DirState>>> {
        if offset != 0
            && let Some(s) = self.listing.lock().get(&id)
        {
            return Ok(s.clone());
        }
        let s = Arc::new(Mutex::new(open()?));
        let mut listing = self.listing.lock();
        if listing.len() >= LISTING_PRUNE {
            listing.clear();
        }
        listing.insert(id, s.clone());
        Ok(s)
    }

    /// The listing of `id` reached its end.
    fn done(&self, id: u64) {
        self.listing.lock().remove(&id);
    }

    /// A READDIRPLUS from offset 0 gave the kernel the dir's entries with fresh attributes:
    /// its cached listing is dropped `LISTING_REUSE` from now.
    fn note_plus_listing(&self, id: u64) {
        let now = Instant::now();
        self.plus_listed.lock().insert(id, now);
        let mut queue = self.expiry.queue.lock();
        queue.push_back((id, now + attr::LISTING_REUSE));
        // Deadlines come in order: the thread needs waking only for a first one.
        if queue.len() == 1 {
            self.expiry.wake.notify_one();
        }
    }

    /// Drops the kernel's cached listing of `id` now (a virtual dir's, at its end).
    fn drop_cached_listing(&self, id: u64) {
        if let Some(n) = self.notifier.get() {
            let _ = n.inval_inode(INodeNo(id), 0, 0);
        }
    }
}

/// Deadlines for the expiry thread, in order.
#[derive(Default)]
struct Expiry {
    queue: Mutex<VecDeque<(u64, Instant)>>,
    wake: parking_lot::Condvar,
    closed: AtomicBool,
}

impl Drop for DirHandles {
    fn drop(&mut self) {
        self.expiry.closed.store(true, Ordering::Relaxed);
        self.expiry.wake.notify_one();
    }
}

/// The expiry thread: drops each cached listing `LISTING_REUSE` after the READDIRPLUS that
/// filled it, unless a later one refilled it (that one has its own deadline). Dropping a
/// dir's cached pages takes only that dir's page locks, which no request holds while it
/// waits for the daemon.
fn expire(expiry: &Expiry, listed: &Mutex<HashMap<u64, Instant>>, notifier: &OnceLock<Notifier>) {
    let mut due_ids = Vec::new();
    loop {
        {
            let mut queue = expiry.queue.lock();
            loop {
                if expiry.closed.load(Ordering::Relaxed) {
                    return;
                }
                let now = Instant::now();
                match queue.front() {
                    None => expiry.wake.wait(&mut queue),
                    Some(&(_, due)) if due > now => {
                        let _ = expiry.wake.wait_for(&mut queue, due - now);
                    }
                    Some(_) => break,
                }
            }
            let now = Instant::now();
            while let Some(&(id, due)) = queue.front() {
                if due > now {
                    break;
                }
                queue.pop_front();
                due_ids.push(id);
            }
        }
        let now = Instant::now();
        for id in due_ids.drain(..) {
            let stale = {
                let mut listed = listed.lock();
                let stale = listed
                    .get(&id)
                    .is_some_and(|at| now.duration_since(*at) >= attr::LISTING_REUSE);
                if stale {
                    listed.remove(&id);
                }
                stale
            };
            if stale && let Some(n) = notifier.get() {
                let _ = n.inval_inode(INodeNo(id), 0, 0);
            }
        }
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
    /// Calls `emit` for each entry from `offset` on until it returns true (buffer full).
    /// Returns whether any entry was emitted (none: the end of the listing).
    fn walk_dir(
        &self,
        inode: &Inode,
        offset: u64,
        mut emit: impl FnMut(Emit) -> bool,
    ) -> SysResult<bool> {
        let state = self.dirs.state(inode.id, offset, || match inode.role {
            Role::Plain | Role::Routed(..) => {
                Ok(DirState::Backing(sys::open_dir(inode.fd()?.as_fd())?))
            }
            _ => Ok(DirState::Snapshot(self.snapshot(inode)?)),
        })?;
        let mut state = state.lock();
        let mut any = false;
        match &mut *state {
            DirState::Backing(fd) => {
                let mut buf = vec![0u8; DENTS_BUF];
                let mut off = offset;
                loop {
                    let batch = sys::getdents_from(fd.as_fd(), off, &mut buf)?;
                    if batch.is_empty() {
                        break;
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
                            return Ok(true);
                        }
                        any = true;
                        off = d.next_offset;
                    }
                }
            }
            DirState::Snapshot(entries) => {
                for (i, l) in entries.iter().enumerate().skip(offset as usize) {
                    let e = Emit {
                        name: &l.name,
                        next_offset: i as u64 + 1,
                        ino: l.ino,
                        kind: l.kind,
                        d_ino: None,
                    };
                    if emit(e) {
                        return Ok(true);
                    }
                    any = true;
                }
            }
        }
        if !any {
            self.listing_ended(inode);
        }
        Ok(any)
    }

    /// The last (empty) reply of a listing is about to go out, which completes the kernel's
    /// cached copy: a virtual dir's is dropped first (see `DirHandles`).
    fn listing_ended(&self, inode: &Inode) {
        self.dirs.done(inode.id);
        if !matches!(inode.role, Role::Plain | Role::Routed(..)) {
            self.dirs.drop_cached_listing(inode.id);
        }
    }

    pub(super) fn read_dir(&self, inode: &Inode, offset: u64, mut reply: ReplyDirectory) {
        let r = self.walk_dir(inode, offset, |e| {
            reply.add(INodeNo(e.ino), e.next_offset, e.kind, e.name)
        });
        match r {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    pub(super) fn read_dir_plus(
        &self,
        inode: &Arc<Inode>,
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
        let r = self.walk_dir(inode, offset, |e| {
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
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// Resolves a READDIRPLUS entry as a lookup does, and counts it. In a plain dir the
    /// inode number getdents just gave finds the node: a known file is stat'ed through the
    /// fd its node holds (no path walk; the fresh getdents vouches that the name leads to it,
    /// and the held fd keeps its inode number from being reused), a file the table does not
    /// know is opened at once and its attributes read through the new fd (two syscalls, not
    /// the lookup's three: statx by name first, to find known files without an open).
    /// Otherwise, or when the guess is wrong (a filesystem
    /// whose d_ino is not st_ino, like overlayfs, a node without a held fd), it is a lookup
    /// by name; `remember` counts a file it already holds as a lookup of that node, and
    /// drops the new fd.
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
            match self.inodes.find_node(key) {
                None => {
                    let fd = sys::open_path_at(parent.fd()?.as_fd(), &sys::cstr(name)?)?;
                    return self.remember(
                        fd,
                        parent.key.view,
                        parent.tree,
                        Role::Plain,
                        Some((parent.clone(), name.to_os_string())),
                    );
                }
                Some(node) => {
                    if let Some(fd) = node.held_fd()
                        && let Ok((st, generation)) = sys::statx_at(fd, c"")
                        && (st.st_dev, st.st_ino) == (key.dev, key.ino)
                        && self.inodes.count_lookup(&node, generation)
                    {
                        node.relink(parent, name);
                        let attr = attr::to_attr(&st, node.id);
                        return Ok((node, attr));
                    }
                }
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
