//! File handles. A FUSE file handle (`fh`) is a number from a counter, never reused in a
//! mount, that names an `Arc<Handle>` in a table; the `Handle` owns its backing fd. Every
//! operation takes the Arc from the table and borrows the fd from it for its own duration,
//! and `release` only takes the handle out of the table: the fd closes when the last
//! operation still using it is done, so a read racing a release never meets a closed fd, nor
//! a reused fd number that now belongs to another file.
//!
//! A passed-through re-open of a file that already has a kernel backing id needs no fd of
//! ours (the kernel reads and writes its own backing file), so its handle opens one only if
//! an operation that still comes to the daemon (fsync, fallocate, ftruncate, ...) needs it.
//! That spares every transcript append an open and a close of the backing file.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use fuser::Errno;
use parking_lot::RwLock;

use super::inodes::Inode;
use super::sys::{self, SysResult};

/// One open file.
pub struct Handle {
    fd: OnceLock<OwnedFd>,
    /// For a deferred open: the inode and the flags to open its backing file with, should an
    /// operation need an fd.
    deferred: Option<(Arc<Inode>, i32)>,
}

impl Handle {
    /// The backing fd, opened now for a deferred handle that has none yet. Borrowed from the
    /// handle, so it stays open for as long as the caller holds the handle.
    pub fn fd(&self) -> SysResult<BorrowedFd<'_>> {
        if let Some(fd) = self.fd.get() {
            return Ok(fd.as_fd());
        }
        let (inode, flags) = self.deferred.as_ref().ok_or(Errno::EBADF)?;
        let fd = sys::reopen(inode.fd()?.as_fd(), *flags)?;
        // Two racing first uses: one fd wins, the other is closed here.
        Ok(self.fd.get_or_init(|| fd).as_fd())
    }

    /// The backing fd if the handle has one (a deferred handle may not).
    pub fn opened_fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.get().map(|fd| fd.as_fd())
    }
}

/// Shards of the table: operations on different handles rarely meet on one lock.
const SHARDS: usize = 16;

/// fh values come from a counter, so they are their own hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = RwLock<HashMap<u64, Arc<Handle>, BuildHasherDefault<IdHasher>>>;

pub struct Handles {
    shards: [Shard; SHARDS],
    /// The last fh handed out (0 is never one).
    next: AtomicU64,
}

impl Default for Handles {
    fn default() -> Self {
        Handles {
            shards: std::array::from_fn(|_| RwLock::default()),
            next: AtomicU64::new(0),
        }
    }
}

impl Handles {
    fn shard(&self, fh: u64) -> &Shard {
        &self.shards[fh as usize % SHARDS]
    }

    fn insert(&self, h: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.shard(fh).write().insert(fh, Arc::new(h));
        fh
    }

    /// A handle owning `fd`, the backing file opened for this open.
    pub fn opened(&self, fd: OwnedFd) -> u64 {
        self.insert(Handle {
            fd: OnceLock::from(fd),
            deferred: None,
        })
    }

    /// A handle for an open of `inode` whose backing fd is opened only when needed.
    pub fn deferred(&self, inode: Arc<Inode>, flags: i32) -> u64 {
        self.insert(Handle {
            fd: OnceLock::new(),
            deferred: Some((inode, flags)),
        })
    }

    /// The open handle `fh` (EBADF once released, or for a number never handed out).
    pub fn get(&self, fh: u64) -> SysResult<Arc<Handle>> {
        self.shard(fh).read().get(&fh).cloned().ok_or(Errno::EBADF)
    }

    /// The handle is released: it leaves the table, and its fd (if any) closes once no
    /// operation holds it any more.
    pub fn release(&self, fh: u64) {
        // Dropped outside the shard's lock: the close may take a while.
        let h = self.shard(fh).write().remove(&fh);
        drop(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_handle_keeps_its_fd_while_in_use_and_numbers_are_not_reused() {
        let handles = Handles::default();
        let file = tempfile::tempfile().unwrap();
        let fh = handles.opened(OwnedFd::from(file));
        let h = handles.get(fh).unwrap();
        handles.release(fh);
        assert_eq!(handles.get(fh).err(), Some(Errno::EBADF));
        // Still open: the in-flight operation owns a reference.
        assert_eq!(sys::pwrite(h.fd().unwrap(), b"abc", 0), Ok(3));
        assert_eq!(sys::pread(h.fd().unwrap(), 3, 0).unwrap(), b"abc");
        let again = handles.opened(OwnedFd::from(tempfile::tempfile().unwrap()));
        assert_ne!(again, fh);
        drop(h);
    }
}
