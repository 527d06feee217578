//! Noticing at once that a lock owner exited: one pidfd per owner process in an epoll set, which
//! the lease thread waits on between renewals. So the daemon that granted a lock releases it as
//! soon as its owner is gone and no write handle it opened is left, and another daemon on the
//! same store (which must wait for that, see `policy`) takes over within milliseconds.
//! Without pidfds (Linux < 5.3) the lease thread's periodic check does the same, later.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use parking_lot::Mutex;

use crate::procs::{self, ProcId};

pub struct OwnerWatch {
    epoll: Option<OwnedFd>,
    /// The owners watched, by pid (the epoll data), with their pidfds.
    watched: Mutex<HashMap<u32, (ProcId, OwnedFd)>>,
}

impl OwnerWatch {
    pub fn new() -> OwnerWatch {
        // SAFETY: plain syscall; a non-negative result is a new fd we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        OwnerWatch {
            // SAFETY: see above.
            epoll: (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) }),
            watched: Mutex::default(),
        }
    }

    /// Watches `owner` (once per process): its exit will be reported by `wait`.
    pub fn watch(&self, owner: ProcId) {
        let Some(epoll) = &self.epoll else { return };
        let mut watched = self.watched.lock();
        if watched.get(&owner.pid).is_some_and(|(p, _)| *p == owner) {
            return;
        }
        // SAFETY: plain syscall; a non-negative result is a new fd we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, owner.pid as libc::pid_t, 0) };
        if fd < 0 {
            return;
        }
        // SAFETY: see above.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // The pidfd was opened first: if the process is alive now with the same start time,
        // the pidfd is that process (not a later one with its pid).
        if !procs::is_alive(owner) {
            return;
        }
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: u64::from(owner.pid),
        };
        // SAFETY: both fds are open; `ev` is a valid event.
        if unsafe {
            libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        } == 0
        {
            // A pid reused since an earlier owner exited replaces its (stale) entry; closing
            // that pidfd drops it from the epoll set.
            watched.insert(owner.pid, (owner, fd));
        }
    }

    /// Waits up to `timeout` for watched owners to exit; returns those that did (each is
    /// reported once).
    pub fn wait(&self, timeout: Duration) -> Vec<ProcId> {
        let Some(epoll) = &self.epoll else {
            std::thread::sleep(timeout);
            return Vec::new();
        };
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `events` is valid for its length.
        let n = unsafe {
            libc::epoll_wait(
                epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                ms,
            )
        };
        let mut exited = Vec::new();
        let mut watched = self.watched.lock();
        for ev in events.iter().take(n.max(0) as usize) {
            let pid = ev.u64 as u32;
            if let Some((owner, _fd)) = watched.remove(&pid) {
                exited.push(owner);
            }
        }
        exited
    }
}

impl Default for OwnerWatch {
    fn default() -> OwnerWatch {
        OwnerWatch::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_is_reported_once() {
        let w = OwnerWatch::new();
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let id = procs::identify(child.id()).unwrap();
        w.watch(id);
        w.watch(id);
        assert!(
            w.wait(Duration::from_millis(10)).is_empty(),
            "still running"
        );
        let _ = child.wait();
        assert_eq!(w.wait(Duration::from_secs(5)), vec![id]);
        assert!(
            w.wait(Duration::from_millis(10)).is_empty(),
            "reported once"
        );
    }
}
