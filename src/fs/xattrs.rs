//! Extended attributes, passed through to the backing file via its `/proc/self/fd` path
//! (which also reaches symlinks and unlinked files). The virtual mount root has none.

use std::ffi::OsStr;
use std::os::fd::AsFd;

use fuser::Errno;

use super::CcsFs;
use super::inodes::{Inode, Role};
use super::sys::{self, SysResult};

impl CcsFs {
    pub(super) fn get_xattr(&self, inode: &Inode, name: &OsStr, size: u32) -> SysResult<Vec<u8>> {
        if inode.role == Role::MountRoot {
            return Err(Errno::NO_XATTR);
        }
        sys::getxattr(inode.fd()?.as_fd(), &sys::cstr(name)?, size as usize)
    }

    pub(super) fn list_xattr(&self, inode: &Inode, size: u32) -> SysResult<Vec<u8>> {
        if inode.role == Role::MountRoot {
            return Ok(Vec::new());
        }
        sys::listxattr(inode.fd()?.as_fd(), size as usize)
    }

    pub(super) fn set_xattr(
        &self,
        inode: &Inode,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> SysResult<()> {
        if inode.role == Role::MountRoot {
            return Err(Errno::EPERM);
        }
        sys::setxattr(inode.fd()?.as_fd(), &sys::cstr(name)?, value, flags)
    }

    pub(super) fn remove_xattr(&self, inode: &Inode, name: &OsStr) -> SysResult<()> {
        if inode.role == Role::MountRoot {
            return Err(Errno::EPERM);
        }
        sys::removexattr(inode.fd()?.as_fd(), &sys::cstr(name)?)
    }
}
