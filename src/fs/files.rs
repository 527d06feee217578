//! Opening files: `open` and `create` open the backing file and hand out a handle that owns
//! it, so read, write, fsync, lseek, fallocate and copy_file_range are one syscall on its fd;
//! a passed-through re-open gets a handle that opens an fd only if needed (see `handles`).

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::sync::Arc;

use fuser::{Errno, FileAttr, FopenFlags, Request};

use super::inodes::{Inode, Role};
use super::lookup::Change;
use super::sys::{self, SysResult};
use super::{CcsFs, transcripts};

/// Open flags that make no sense (or are unsafe) on the backing file: creation is done by
/// `create`, the backing open goes through /proc (so O_NOFOLLOW would refuse it), and the
/// kernel's page cache does not honour O_DIRECT alignment for us.
const STRIPPED_OPEN_FLAGS: i32 =
    libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_DIRECT | libc::O_NOFOLLOW;

impl CcsFs {
    pub(super) fn create_file(
        &self,
        req: &Request,
        parent: &Arc<Inode>,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> SysResult<(Arc<Inode>, FileAttr, u64, FopenFlags)> {
        let flags = (flags & !STRIPPED_OPEN_FLAGS) | (flags & libc::O_EXCL);
        if let Some(r) = self.redirect(parent, name)? {
            // settings.json that does not exist yet, or a private file of a routed dir.
            let file = {
                let _c = self.creds(req);
                sys::openat_create(r.dir.as_fd(), &sys::cstr(&r.name)?, flags, mode)?
            };
            let path_fd = sys::open_path_at(r.dir.as_fd(), &sys::cstr(&r.name)?)?;
            let (inode, attr) = self.remember(
                path_fd,
                parent.key.view,
                r.tree,
                Role::Plain,
                Some((parent.clone(), name.to_os_string())),
            )?;
            if r.shared {
                self.shared_file_replaced(parent, name);
            }
            let fh = self.files.opened(file);
            let cache = self.cache_flags(&inode, flags);
            return Ok((inode, attr, fh, cache));
        }
        self.guard(parent, name, Change::Create)?;
        let mutex = self.before_create(parent, name)?;
        let (file, created) = {
            let _c = self.creds(req);
            open_or_create(parent.fd()?.as_fd(), &sys::cstr(name)?, flags, mode)?
        };
        // Another profile may hold a cached listing of `parent` (FOPEN_CACHE_DIR).
        self.touched_entry(parent, name);
        // One statx of the file as opened, for its lock, the inode table and the reply.
        let stat = sys::statx_at(file.as_fd(), c"")?;
        let claimed = self.claim_created(req, parent, name, created, mutex, &stat)?;
        let path_fd = path_fd_of_created(&file, &stat.0, parent, name)?;
        let (inode, attr) = self.remember_stat(
            path_fd,
            stat,
            parent.key.view,
            parent.tree,
            Role::Plain,
            Some((parent.clone(), name.to_os_string())),
        )?;
        let fh = self.files.opened(file);
        if let Some((dev, ino)) = claimed {
            self.locks.opened(fh, dev, ino);
        }
        Ok((inode, attr, fh, self.cache_flags(parent, flags)))
    }

    /// How the kernel should cache an open file (when it is not passed through):
    /// - an `O_APPEND` write handle on a group-store file uses direct I/O. Its writes land at
    ///   the backing file's end, wherever another profile (another kernel inode) has moved it
    ///   meanwhile, which the offset this kernel inode computed from its cached size may not
    ///   be: a buffered write would leave this view's page cache holding the record at the
    ///   wrong place. (One `write(2)` is one WRITE either way: FUSE_BIG_WRITES.)
    /// - every other open keeps the page cache across opens, so a file just written reads back
    ///   from memory; writes through any profile invalidate the others' pages, and
    ///   FUSE_AUTO_INVAL_DATA drops pages that changed behind the mount once the attributes
    ///   are refreshed.
    ///
    /// No open needs a FLUSH: data reaches the backing file at write time (see `flush`).
    pub(super) fn cache_flags(&self, inode: &Inode, flags: i32) -> FopenFlags {
        let store = self.in_store(inode.tree);
        let mut f = FopenFlags::FOPEN_NOFLUSH;
        if store && flags & libc::O_APPEND != 0 && transcripts::writes(flags) {
            f |= FopenFlags::FOPEN_DIRECT_IO;
        } else {
            f |= FopenFlags::FOPEN_KEEP_CACHE;
        }
        f
    }

    /// Flags for a passed-through open. Writes bypass the daemon, so when another profile
    /// holds this file in its cache, its cached attributes are dropped at close: such opens
    /// keep their FLUSH. (A profile that looks the file up later gets fresh attributes then.)
    pub(super) fn passthrough_flags(&self, inode: &Inode, flags: i32) -> FopenFlags {
        if transcripts::writes(flags)
            && self.coherence.seen_elsewhere(
                &self.inodes,
                &self.topo().tree_views,
                inode.tree,
                inode.key,
            )
        {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_NOFLUSH
        }
    }

    pub(super) fn open_file(
        &self,
        req: &Request,
        inode: &Arc<Inode>,
        flags: i32,
    ) -> SysResult<(u64, FopenFlags)> {
        if inode.is_dir() {
            return Err(Errno::EISDIR);
        }
        let claimed = self.claim_for_open(req, inode, flags)?;
        // Passed through with a backing id already registered, the kernel needs nothing of
        // ours for this open (an O_TRUNC must still truncate here).
        let fh = if self.passthrough.enabled()
            && inode.kind == libc::S_IFREG
            && flags & libc::O_TRUNC == 0
            && inode.backing.lock().is_some()
        {
            self.files
                .deferred(inode.clone(), flags & !STRIPPED_OPEN_FLAGS)
        } else {
            let file = sys::reopen(inode.fd()?.as_fd(), flags & !STRIPPED_OPEN_FLAGS)?;
            // KILLPRIV_V2: an O_TRUNC open by a user drops set-id bits (see `kills_setid`).
            if flags & libc::O_TRUNC != 0
                && req.uid() != 0
                && sys::drop_setid_fd(file.as_fd()).is_ok()
            {
                self.coherence.attrs_changed(inode.id);
            }
            self.files.opened(file)
        };
        if let Some((dev, ino)) = claimed {
            self.locks.opened(fh, dev, ino);
        }
        Ok((fh, self.cache_flags(inode, flags)))
    }
}

/// Opens `name` in `dir`, creating it if missing, and says whether this call created it (a
/// new file cannot be anyone's transcript yet). An exclusive create comes first; a file that
/// exists is opened as it is (following `openat(O_CREAT)` without O_EXCL), unless the caller
/// asked for O_EXCL itself.
fn open_or_create(
    dir: std::os::fd::BorrowedFd,
    name: &std::ffi::CStr,
    flags: i32,
    mode: u32,
) -> SysResult<(std::os::fd::OwnedFd, bool)> {
    if flags & libc::O_EXCL != 0 {
        return sys::openat_create(dir, name, flags, mode).map(|f| (f, true));
    }
    // A file removed between the two opens is created again; give up on a name that keeps
    // flipping, as a plain O_CREAT open would have opened whichever it met.
    for _ in 0..8 {
        match sys::openat_create(dir, name, flags | libc::O_EXCL, mode) {
            Ok(f) => return Ok((f, true)),
            Err(e) if e == Errno::EEXIST => {}
            Err(e) => return Err(e),
        }
        match sys::open_path_at(dir, name).and_then(|p| sys::reopen(p.as_fd(), flags)) {
            Ok(f) => return Ok((f, false)),
            Err(e) if e == Errno::ENOENT => {}
            Err(e) => return Err(e),
        }
    }
    sys::openat_create(dir, name, flags, mode).map(|f| (f, false))
}

/// An O_PATH fd on a file just created as `parent/name` and open as `file` (whose stat is
/// `st`): a one-name lookup when the name still leads to it (the common case, and cheaper
/// than a walk through /proc/self/fd), else through the open file itself.
fn path_fd_of_created(
    file: &std::os::fd::OwnedFd,
    st: &libc::stat,
    parent: &Inode,
    name: &OsStr,
) -> SysResult<std::os::fd::OwnedFd> {
    let by_name = sys::open_path_at(parent.fd()?.as_fd(), &sys::cstr(name)?);
    if let Ok(fd) = by_name {
        let a = sys::fstat(fd.as_fd())?;
        if (a.st_dev, a.st_ino) == (st.st_dev, st.st_ino) {
            return Ok(fd);
        }
    }
    sys::reopen(file.as_fd(), libc::O_PATH)
}
