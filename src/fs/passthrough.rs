//! Kernel FUSE passthrough (Linux ≥ 6.9, needs CAP_SYS_ADMIN, so root only): once a file is
//! open, the kernel reads, writes and maps the backing file itself, with no round trip to the
//! daemon. All opens of one inode share one backing id (the kernel refuses mixed modes on an
//! inode), registered at its first open and closed when the node is forgotten. Profiles that
//! see one store file share its backing file's page cache, so they are coherent by
//! construction.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fuser::BackingId;

use super::inodes::Inode;

#[derive(Default)]
pub struct Passthrough {
    /// The user did not turn it off (`mount --no-passthrough`).
    wanted: AtomicBool,
    enabled: AtomicBool,
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

    /// The backing id for a new open of `inode` (made with `open_backing` on the open's fd
    /// when the inode has none yet). On failure passthrough is switched off for the rest of the
    /// session and the caller answers without it.
    pub fn attach<'a>(
        &self,
        inode: &Inode,
        fd: impl FnOnce() -> Result<BorrowedFd<'a>, fuser::Errno>,
        open_backing: impl FnOnce(BorrowedFd) -> std::io::Result<BackingId>,
    ) -> Option<Arc<BackingId>> {
        let id = {
            let mut slot = inode.backing.lock();
            match slot.as_ref() {
                Some(id) => id.clone(),
                None => match fd()
                    .map_err(|e| std::io::Error::from_raw_os_error(e.code()))
                    .and_then(open_backing)
                {
                    Ok(id) => {
                        let id = Arc::new(id);
                        *slot = Some(id.clone());
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
        Some(id)
    }
}
