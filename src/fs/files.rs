//! Opening files: `open` and `create` hand out the backing fd itself as the FUSE file handle,
//! so read, write, fsync, lseek, fallocate and copy_file_range are one syscall on it.

use std::ffi::OsStr;
use std::os::fd::{AsFd, IntoRawFd};

use fuser::{Errno, FileAttr, FopenFlags, Request};

use super::CcsFs;
use super::inodes::{Inode, Role};
use super::lookup::Change;
use super::sys::{self, SysResult};

/// Open flags that make no sense (or are unsafe) on the backing file: creation is done by
/// `create`, the backing open goes through /proc (so O_NOFOLLOW would refuse it), and the
/// kernel's page cache does not honour O_DIRECT alignment for us.
const STRIPPED_OPEN_FLAGS: i32 =
    libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_DIRECT | libc::O_NOFOLLOW;

impl CcsFs {
    pub(super) fn create_file(
        &self,
        req: &Request,
        parent: &Inode,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> SysResult<(FileAttr, u64, FopenFlags)> {
        self.guard(parent, name, Change::Create)?;
        let flags = (flags & !STRIPPED_OPEN_FLAGS) | (flags & libc::O_EXCL);
        let file = {
            let _c = self.creds(req);
            sys::openat_create(parent.fd(), &sys::cstr(name)?, flags, mode)?
        };
        let claimed = self.claim_created(req, parent, name)?;
        let path_fd = sys::reopen(file.as_fd(), libc::O_PATH)?;
        let (_, attr) = self.remember(path_fd, parent.key.view, parent.tree, Role::Plain)?;
        let fh = file.into_raw_fd() as u64;
        if let Some((dev, ino)) = claimed {
            self.locks.opened(fh, dev, ino);
        }
        Ok((attr, fh, self.open_flags(parent)))
    }

    /// Files in a group store bypass the page cache: each profile is its own kernel inode, so
    /// a cached page could hide another profile's append, and a buffered write can be split
    /// at a page boundary, letting another profile's append land between the halves.
    fn open_flags(&self, inode: &Inode) -> FopenFlags {
        if self.tree_groups[inode.tree as usize].is_some() {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
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
        let fh = sys::reopen(inode.fd(), flags & !STRIPPED_OPEN_FLAGS)?.into_raw_fd() as u64;
        if let Some((dev, ino)) = claimed {
            self.locks.opened(fh, dev, ino);
        }
        Ok((fh, self.open_flags(inode)))
    }
}
