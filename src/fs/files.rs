//! Opening files: `open` and `create` hand out the backing fd itself as the FUSE file handle,
//! so read, write, fsync, lseek, fallocate and copy_file_range are one syscall on it.

use std::ffi::OsStr;
use std::os::fd::{AsFd, IntoRawFd};

use fuser::{Errno, FileAttr, Request};

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
    ) -> SysResult<(FileAttr, u64)> {
        self.guard(parent, name, Change::Create)?;
        let flags = (flags & !STRIPPED_OPEN_FLAGS) | (flags & libc::O_EXCL);
        let file = {
            let _c = self.creds(req);
            sys::openat_create(parent.fd(), &sys::cstr(name)?, flags, mode)?
        };
        let path_fd = sys::reopen(file.as_fd(), libc::O_PATH)?;
        let (_, attr) = self.remember(path_fd, parent.key.view, parent.tree, Role::Plain)?;
        Ok((attr, file.into_raw_fd() as u64))
    }

    pub(super) fn open_file(&self, inode: &Inode, flags: i32) -> SysResult<u64> {
        if inode.is_dir() {
            return Err(Errno::EISDIR);
        }
        let fd = sys::reopen(inode.fd(), flags & !STRIPPED_OPEN_FLAGS)?;
        Ok(fd.into_raw_fd() as u64)
    }
}
