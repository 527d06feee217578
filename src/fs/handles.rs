//! File handles. A FUSE file handle is normally the backing fd itself, so that read, write,
//! fsync and the rest are one syscall on it. A passed-through re-open of a file that already
//! has a kernel backing id needs no fd of ours (the kernel reads and writes its own backing
//! file), so it gets a token instead: an fd is opened only if an operation that still comes to
//! the daemon (fsync, fallocate, ftruncate, ...) needs one. That spares every transcript append
//! an open and a close of the backing file.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use fuser::Errno;
use parking_lot::Mutex;

use super::inodes::Inode;
use super::sys::{self, SysResult};

/// Tokens start here; fds are far below.
const TOKEN_BASE: u64 = 1 << 40;

struct Deferred {
    inode: Arc<Inode>,
    /// The flags to open the backing file with, should it be needed.
    flags: i32,
    fd: OnceLock<OwnedFd>,
}

#[derive(Default)]
pub struct Handles {
    deferred: Mutex<HashMap<u64, Arc<Deferred>>>,
    next: AtomicU64,
}

impl Handles {
    /// A handle for an open of `inode` whose backing fd is opened only when needed.
    pub fn deferred(&self, inode: Arc<Inode>, flags: i32) -> u64 {
        let fh = TOKEN_BASE + self.next.fetch_add(1, Ordering::Relaxed);
        let d = Arc::new(Deferred {
            inode,
            flags,
            fd: OnceLock::new(),
        });
        self.deferred.lock().insert(fh, d);
        fh
    }

    /// Whether `fh` is a token (it may have no fd yet).
    pub fn is_token(fh: u64) -> bool {
        fh >= TOKEN_BASE
    }

    /// The backing fd of a handle, opened now for a token that has none. The kernel sends no
    /// operation on a handle after its release, so the fd stays valid while it is used.
    pub fn fd(&self, fh: u64) -> SysResult<i32> {
        if !Self::is_token(fh) {
            return Ok(fh as i32);
        }
        let d = self.deferred.lock().get(&fh).cloned().ok_or(Errno::EBADF)?;
        if let Some(fd) = d.fd.get() {
            return Ok(fd.as_raw_fd());
        }
        let fd = sys::reopen(d.inode.fd()?.as_fd(), d.flags)?;
        // Two racing first uses: one fd wins, the other is closed here.
        Ok(d.fd.get_or_init(|| fd).as_raw_fd())
    }

    /// The handle is released: its fd (if any) is closed.
    pub fn release(&self, fh: u64) {
        if Self::is_token(fh) {
            self.deferred.lock().remove(&fh);
        } else {
            sys::close(fh as i32);
        }
    }
}
