//! Processes as ccsfs sees them: whether a pid is alive (a zombie is not), a thread's
//! thread group, and a process identity that survives pid reuse ((tgid, start time)).
//! `ThreadIds` caches thread → process for the hot path: reading /proc costs ~30 µs, about a
//! whole FUSE round trip, while a cached entry is checked with one poll on a thread pidfd.

use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;

use lru::LruCache;
use parking_lot::Mutex;

/// A process, identified so that a recycled pid never matches: its thread group id and its
/// start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcId {
    pub pid: u32,
    pub start: u64,
}

/// Parses the state and start time out of `/proc/<pid>/stat` text. The command name may
/// contain spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3) come fields 4..; start time is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

/// The parent of process `pid` (field 4 of `/proc/<pid>/stat`), if it is there.
pub fn parent_of(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The thread group (process) of a thread id, from `/proc/<tid>/status`.
pub fn tgid_of(tid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The identity of the process that thread `tid` belongs to, if it is alive.
pub fn identify(tid: u32) -> Option<ProcId> {
    let pid = tgid_of(tid)?;
    let (state, start) = parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    (state != 'Z' && state != 'X').then_some(ProcId { pid, start })
}

/// Whether `id` is still that same process, alive (not a zombie, not a reused pid).
pub fn is_alive(id: ProcId) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", id.pid))
        .ok()
        .as_deref()
        .and_then(parse_stat)
    {
        Some((state, start)) => start == id.start && state != 'Z' && state != 'X',
        None => false,
    }
}

/// Whether any live (non-zombie) process has this pid.
pub fn pid_alive(pid: i32) -> bool {
    pid > 0
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat)
            .is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// Linux ≥ 6.9: a pidfd for one thread rather than a thread group (`PIDFD_THREAD`).
const PIDFD_THREAD: libc::c_int = libc::O_EXCL;

/// A pidfd that refers to exactly one thread, whatever becomes of its id later.
fn thread_pidfd(tid: u32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(tid).ok()?)?;
    let flags = rustix::process::PidfdFlags::from_bits_retain(PIDFD_THREAD as u32);
    rustix::process::pidfd_open(pid, flags).ok()
}

/// Whether the thread behind a pidfd is still running (its pidfd polls readable once it exits).
fn pidfd_alive(fd: &OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut p = [PollFd::new(fd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut p, Some(&now)) == Ok(0)
}

/// Thread id → process identity, cached. A cached entry holds a pidfd on that very thread:
/// while the thread runs, its id cannot have been reused, so its process is still the one
/// recorded. Bounded (LRU); evicted entries close their pidfd.
pub struct ThreadIds {
    cache: Mutex<LruCache<u32, (OwnedFd, ProcId)>>,
}

impl Default for ThreadIds {
    fn default() -> ThreadIds {
        ThreadIds {
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(crate::tunables::THREAD_IDS_CACHED).expect("non-zero"),
            )),
        }
    }
}

impl ThreadIds {
    /// The live process that thread `tid` belongs to.
    pub fn identify(&self, tid: u32) -> Option<ProcId> {
        if let Some((fd, id)) = self.cache.lock().get(&tid)
            && pidfd_alive(fd)
        {
            return Some(*id);
        }
        let Some(fd) = thread_pidfd(tid) else {
            return identify(tid);
        };
        let id = identify(tid)?;
        // The pidfd was opened first: if the thread is still alive now, /proc described it.
        if !pidfd_alive(&fd) {
            return None;
        }
        self.cache.lock().put(tid, (fd, id));
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        let line = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 12345 67 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_identified() {
        let me = identify(std::process::id()).expect("own identity");
        assert_eq!(me.pid, std::process::id());
        assert!(is_alive(me));
        assert!(
            !is_alive(ProcId {
                start: me.start + 1,
                ..me
            }),
            "another start time is another process"
        );
        assert!(pid_alive(me.pid as i32));
    }

    /// Runs `f` with the tid of a second thread that stays alive until `f` returns, then
    /// joins that thread and returns its (now dead) tid.
    fn with_live_thread(f: impl FnOnce(u32)) -> u32 {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            tx.send(rustix::thread::gettid().as_raw_nonzero().get() as u32)
                .unwrap();
            done_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        f(tid);
        done_tx.send(()).unwrap();
        h.join().unwrap();
        tid
    }

    #[test]
    fn a_thread_maps_to_its_process() {
        with_live_thread(|tid| {
            assert_ne!(tid, std::process::id());
            assert_eq!(tgid_of(tid), Some(std::process::id()));
            assert_eq!(identify(tid).map(|p| p.pid), Some(std::process::id()));
        });
    }

    #[test]
    fn the_cache_follows_threads_and_forgets_exited_ones() {
        let ids = ThreadIds::default();
        let me = std::process::id();
        assert_eq!(ids.identify(me).map(|p| p.pid), Some(me));
        assert_eq!(
            ids.identify(me),
            ids.identify(me),
            "cached answer is the same"
        );
        let tid = with_live_thread(|tid| assert_eq!(ids.identify(tid).map(|p| p.pid), Some(me)));
        // join() returns when the thread clears its tid, a moment before the kernel finishes
        // its exit (and makes its pidfd readable); a tid is never reused before that.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while ids.identify(tid).is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(ids.identify(tid), None, "an exited thread is nobody");
    }

    #[test]
    fn a_reaped_child_is_dead_and_a_zombie_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not yet waited for: once it exits it is a zombie, which counts as dead.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!pid_alive(pid as i32), "a zombie is not alive");
        child.wait().unwrap();
        assert!(!pid_alive(pid as i32));
    }
}
