//! Opening files: `open` and `create` hand out the backing fd itself as the FUSE file handle,
//! so read, write, fsync, lseek, fallocate and copy_file_range are one syscall on it.

use std::ffi::OsStr;
use std::os::fd::{AsFd, IntoRawFd};
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
        self.guard(parent, name, Change::Create)?;
        let flags = (flags & !STRIPPED_OPEN_FLAGS) | (flags & libc::O_EXCL);
        let file = {
            let _c = self.creds(req);
            sys::openat_create(parent.fd()?.as_fd(), &sys::cstr(name)?, flags, mode)?
        };
        let claimed = self.claim_created(req, parent, name)?;
        let path_fd = sys::reopen(file.as_fd(), libc::O_PATH)?;
        let (inode, attr) = self.remember(
            path_fd,
            parent.key.view,
            parent.tree,
            Role::Plain,
            Some((parent.clone(), name.to_os_string())),
        )?;
        let fh = file.into_raw_fd() as u64;
        if let Some((dev, ino)) = claimed {
            self.locks.opened(fh, dev, ino);
        }
        Ok((inode, attr, fh, self.cache_flags(parent, flags)))
    }

    /// How the kernel should cache an open file (when it is not passed through):
    /// - a write handle on a group-store file uses direct I/O, so that one `write(2)` is one
    ///   backing `pwrite` on an `O_APPEND` fd: a buffered write may be split at a page
    ///   boundary, and another profile (another kernel inode) could append between the halves;
    /// - every other open keeps the page cache across opens; writes through any profile
    ///   invalidate the others' pages, and FUSE_AUTO_INVAL_DATA drops pages that changed behind
    ///   the mount once the attributes are refreshed.
    ///
    /// No open needs a FLUSH: data reaches the backing file at write time (see `flush`).
    pub(super) fn cache_flags(&self, inode: &Inode, flags: i32) -> FopenFlags {
        let store = self.tree_groups[inode.tree as usize].is_some();
        let mut f = FopenFlags::FOPEN_NOFLUSH;
        if store && transcripts::writes(flags) {
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
            && self
                .coherence
                .seen_elsewhere(&self.inodes, inode.tree, inode.key)
        {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_NOFLUSH
        }
    }

    pub(super) fn open_file(
        &self,
        req: &Request,
        inode: &Inode,
        flags: i32,
    ) -> SysResult<(u64, FopenFlags)> {
        if inode.is_dir() {
            return Err(Errno::EISDIR);
        }
        let claimed = self.claim_for_open(req, inode, flags)?;
        let fh =
            sys::reopen(inode.fd()?.as_fd(), flags & !STRIPPED_OPEN_FLAGS)?.into_raw_fd() as u64;
        // KILLPRIV_V2: an O_TRUNC open by a user drops set-id bits (see `kills_setid`).
        if flags & libc::O_TRUNC != 0 && req.uid() != 0 && sys::drop_setid_fd(fh as i32).is_ok() {
            self.coherence.attrs_changed(inode.id);
        }
        if let Some((dev, ino)) = claimed {
            self.locks.opened(fh, dev, ino);
        }
        Ok((fh, self.cache_flags(inode, flags)))
    }
}
