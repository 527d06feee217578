//! Kernel FUSE passthrough (Linux ≥ 6.9, needs CAP_SYS_ADMIN, so root only): once a file is
//! open, the kernel reads, writes and maps the backing file itself, with no round trip to the
//! daemon. All opens of one inode share one backing id (the kernel refuses mixed modes on an
//! inode); it is closed with the inode's last open. Profiles that see one store file share
//! its backing file's page cache, so they are coherent by construction.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fuser::BackingId;
use parking_lot::Mutex;

use super::inodes::Inode;

#[derive(Default)]
pub struct Passthrough {
    /// The user did not turn it off (`mount --no-passthrough`).
    wanted: AtomicBool,
    enabled: AtomicBool,
    /// Each open file handle keeps its backing id alive.
    open: Mutex<HashMap<u64, Arc<BackingId>>>,
}

impl Passthrough {
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    pub fn set_wanted(&self, on: bool) {
        self.wanted.store(on, Ordering::Relaxed);
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// The backing id for a new open `fh` of `inode` (made with `open_backing` on `fd` when the
    /// inode has none). On failure passthrough is switched off for the rest of the session and
    /// the caller answers without it.
    pub fn attach(
        &self,
        inode: &Inode,
        fh: u64,
        fd: BorrowedFd,
        open_backing: impl FnOnce(BorrowedFd) -> std::io::Result<BackingId>,
    ) -> Option<Arc<BackingId>> {
        let id = {
            let mut slot = inode.backing.lock();
            match slot.upgrade() {
                Some(id) => id,
                None => match open_backing(fd) {
                    Ok(id) => {
                        let id = Arc::new(id);
                        *slot = Arc::downgrade(&id);
                        id
                    }
                    Err(e) => {
                        log::warn!(
                            "kernel passthrough unavailable ({e}); serving file data through the daemon"
                        );
                        self.set_enabled(false);
                        return None;
                    }
                },
            }
        };
        self.open.lock().insert(fh, id.clone());
        Some(id)
    }

    /// A handle was released; its backing id goes when no other open of the inode needs it.
    pub fn released(&self, fh: u64) {
        self.open.lock().remove(&fh);
    }
}
