//! Who may write a shared transcript: the pure ownership rule, with no I/O. The caller supplies
//! the current record, who is asking, the time, and a liveness probe.
//!
//! - No record: the requester takes it.
//! - The record names the requester (same host, same pid *and* start time): it is the owner.
//! - Same host, owner alive: held, unless the owner lapsed: no write handle open and no write
//!   for the idle limit (when one is set). Only the daemon that granted the lock knows the
//!   owner's open handles, so only its activity report can make an owner lapse.
//! - Same host, owner dead (or its pid reused by another process): a write handle the owner
//!   opened may still be open in a child that inherited it, so the lock is free only once the
//!   granting daemon has seen every such handle released. This daemon's own grants: free when
//!   none is open, else draining. Another live daemon's: draining (that daemon releases the
//!   lock file as soon as the last handle closes). A dead daemon's: free (its handles died
//!   with it).
//! - Another host: held until the owning daemon's lease runs out; then the requester takes over.
//!
//! A record names its file by identity (`FileId`), never by path: the path it keeps is only
//! for people.

use std::time::Duration;

use crate::procs::ProcId;

/// Which machine (and which boot of it) a record was made on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostId {
    pub name: String,
    pub boot_id: String,
}

/// A file's identity in its store: its inode number and, where the filesystem keeps one, its
/// birth time in nanoseconds (so that a reused inode number is another file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    pub ino: u64,
    pub btime: Option<u64>,
}

impl FileId {
    /// The identity of the file `m` describes (its birth time where the filesystem has one).
    pub fn of(m: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            ino: m.ino(),
            btime: m
                .created()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as u64),
        }
    }

    /// Whether a record made for `self` speaks of `other`: the same inode number, born at the
    /// same time when both birth times are known.
    pub fn same_file(&self, other: &FileId) -> bool {
        self.ino == other.ino
            && match (self.btime, other.btime) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// What a lock file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The locked file.
    pub file: FileId,
    /// Where the file was when it was locked, relative to its group dir, escaped to one line
    /// (see `locks::text`). For people only: the file may have moved since.
    pub path: String,
    pub host: HostId,
    pub owner: ProcId,
    pub profile: String,
    /// Unix seconds when the owner took it.
    pub since: u64,
    /// Unix seconds until which the owning daemon vouches for it (renewed while held).
    pub lease_until: u64,
    /// The daemon that granted it: only that daemon knows the owner's open handles.
    pub daemon: ProcId,
    /// The owner has exited while a write handle it opened is still open (a child inherited
    /// it); the granting daemon keeps the lock until that handle is released.
    pub orphaned: bool,
}

/// How busy the owner has been, as far as this daemon knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activity {
    /// Write handles the owner has open on the transcript (through this daemon).
    pub open_writers: u32,
    /// Time since the transcript was last modified.
    pub since_write: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The requester already owns it.
    Owner,
    /// Nobody holds it (or the holder is gone, lapsed or expired): the requester takes it.
    Free,
    /// Someone else holds it: refuse.
    Held,
    /// The owner is gone, but a write handle it opened may still be open: wait a moment for
    /// its release, and refuse if it does not come.
    Draining,
}

pub struct Judge<'a> {
    pub here: &'a HostId,
    pub now: u64,
    pub idle_limit: Option<Duration>,
}

impl Judge<'_> {
    /// `activity` is this daemon's knowledge of the owner's handles: Some when the record is
    /// this daemon's grant (or there is none), None when another daemon granted it.
    pub fn judge(
        &self,
        record: Option<&Record>,
        requester: ProcId,
        alive: impl Fn(ProcId) -> bool,
        activity: Option<Activity>,
    ) -> Verdict {
        let Some(r) = record else {
            return Verdict::Free;
        };
        if r.host != *self.here {
            return if self.now >= r.lease_until {
                Verdict::Free
            } else {
                Verdict::Held
            };
        }
        if r.owner == requester {
            return Verdict::Owner;
        }
        if !alive(r.owner) {
            return match activity {
                Some(a) if a.open_writers > 0 => Verdict::Draining,
                Some(_) => Verdict::Free,
                None if alive(r.daemon) => Verdict::Draining,
                None => Verdict::Free,
            };
        }
        let lapsed = match (self.idle_limit, activity) {
            (Some(limit), Some(a)) => a.open_writers == 0 && a.since_write >= limit,
            _ => false,
        };
        if lapsed { Verdict::Free } else { Verdict::Held }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> HostId {
        HostId {
            name: name.into(),
            boot_id: "b1".into(),
        }
    }

    fn record(h: HostId, pid: u32, start: u64, lease_until: u64) -> Record {
        Record {
            file: FileId {
                ino: 7,
                btime: Some(1),
            },
            path: "projects/p/s.jsonl".into(),
            host: h,
            owner: ProcId { pid, start },
            profile: "work".into(),
            since: 100,
            lease_until,
            daemon: DAEMON,
            orphaned: false,
        }
    }

    const DAEMON: ProcId = ProcId { pid: 1, start: 1 };

    const BUSY: Option<Activity> = Some(Activity {
        open_writers: 1,
        since_write: Duration::ZERO,
    });
    const IDLE: Option<Activity> = Some(Activity {
        open_writers: 0,
        since_write: Duration::from_secs(3600),
    });

    fn judge<'a>(here: &'a HostId, idle: Option<u64>) -> Judge<'a> {
        Judge {
            here,
            now: 1000,
            idle_limit: idle.map(Duration::from_secs),
        }
    }

    #[test]
    fn nobody_holds_it() {
        let h = host("a");
        assert_eq!(
            judge(&h, None).judge(None, ProcId { pid: 1, start: 1 }, |_| true, BUSY),
            Verdict::Free
        );
    }

    #[test]
    fn the_owner_is_the_owner_and_others_are_refused_while_it_lives() {
        let h = host("a");
        let r = record(h.clone(), 10, 5, 0);
        let j = judge(&h, None);
        assert_eq!(
            j.judge(Some(&r), ProcId { pid: 10, start: 5 }, |_| true, BUSY),
            Verdict::Owner
        );
        assert_eq!(
            j.judge(Some(&r), ProcId { pid: 11, start: 5 }, |_| true, IDLE),
            Verdict::Held
        );
    }

    #[test]
    fn a_dead_owner_frees_it_once_its_handles_are_closed() {
        let h = host("a");
        let r = record(h.clone(), 10, 5, u64::MAX);
        let other = ProcId { pid: 11, start: 9 };
        let j = judge(&h, None);
        let closed = Some(Activity {
            open_writers: 0,
            since_write: Duration::ZERO,
        });
        assert_eq!(j.judge(Some(&r), other, |_| false, closed), Verdict::Free);
        // A child may write on through a handle the owner opened.
        assert_eq!(j.judge(Some(&r), other, |_| false, BUSY), Verdict::Draining);
    }

    #[test]
    fn another_daemons_dead_owner_waits_for_that_daemon() {
        // Only the granting daemon knows the handles: while it lives, it releases the lock
        // itself; once it is gone, its handles are gone too.
        let h = host("a");
        let r = record(h.clone(), 10, 5, u64::MAX);
        let other = ProcId { pid: 11, start: 9 };
        let j = judge(&h, None);
        assert_eq!(
            j.judge(Some(&r), other, |p| p == DAEMON, None),
            Verdict::Draining
        );
        assert_eq!(j.judge(Some(&r), other, |_| false, None), Verdict::Free);
    }

    #[test]
    fn a_reused_inode_number_is_another_file() {
        let a = FileId {
            ino: 5,
            btime: Some(100),
        };
        assert!(a.same_file(&a));
        assert!(!a.same_file(&FileId {
            btime: Some(101),
            ..a
        }));
        assert!(!a.same_file(&FileId { ino: 6, ..a }));
        // Without a birth time (a filesystem that keeps none), the number decides.
        assert!(a.same_file(&FileId { btime: None, ..a }));
    }

    #[test]
    fn a_reused_pid_is_not_the_owner() {
        let h = host("a");
        let r = record(h.clone(), 10, 5, u64::MAX);
        // Same pid, later start time: another process. It is neither the owner nor does the
        // old owner live on in it.
        let newcomer = ProcId { pid: 10, start: 77 };
        let alive = |p: ProcId| p == newcomer;
        assert_eq!(
            judge(&h, None).judge(Some(&r), newcomer, alive, IDLE),
            Verdict::Free
        );
    }

    #[test]
    fn an_idle_owner_lapses_only_with_an_idle_limit_and_no_open_handle() {
        let h = host("a");
        let r = record(h.clone(), 10, 5, 0);
        let other = ProcId { pid: 11, start: 5 };
        assert_eq!(
            judge(&h, None).judge(Some(&r), other, |_| true, IDLE),
            Verdict::Held
        );
        assert_eq!(
            judge(&h, Some(60)).judge(Some(&r), other, |_| true, IDLE),
            Verdict::Free
        );
        let open = Some(Activity {
            open_writers: 1,
            since_write: Duration::from_secs(3600),
        });
        assert_eq!(
            judge(&h, Some(60)).judge(Some(&r), other, |_| true, open),
            Verdict::Held
        );
        let recent = Some(Activity {
            open_writers: 0,
            since_write: Duration::from_secs(5),
        });
        assert_eq!(
            judge(&h, Some(60)).judge(Some(&r), other, |_| true, recent),
            Verdict::Held
        );
    }

    #[test]
    fn another_daemons_owner_never_lapses_here() {
        // Only the granting daemon knows the owner's open handles.
        let h = host("a");
        let r = record(h.clone(), 10, 5, 0);
        let other = ProcId { pid: 11, start: 5 };
        assert_eq!(
            judge(&h, Some(60)).judge(Some(&r), other, |_| true, None),
            Verdict::Held
        );
        assert_eq!(
            judge(&h, Some(60)).judge(Some(&r), other, |_| false, None),
            Verdict::Free
        );
    }

    #[test]
    fn another_hosts_lock_holds_until_its_lease_expires() {
        let here = host("a");
        let other = ProcId { pid: 11, start: 5 };
        let live = record(host("b"), 10, 5, 1001);
        // Liveness is never probed for another host's pid: it means nothing here.
        let probe = |_| panic!("probed a foreign pid");
        assert_eq!(
            judge(&here, None).judge(Some(&live), other, probe, IDLE),
            Verdict::Held
        );
        let expired = record(host("b"), 10, 5, 1000);
        assert_eq!(
            judge(&here, None).judge(Some(&expired), other, probe, IDLE),
            Verdict::Free
        );
        // The same host name after a reboot is another host too.
        let rebooted = Record {
            host: HostId {
                boot_id: "b0".into(),
                ..here.clone()
            },
            ..live
        };
        assert_eq!(
            judge(&here, None).judge(Some(&rebooted), other, probe, IDLE),
            Verdict::Held
        );
    }
}
