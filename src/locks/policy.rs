//! Who may write a shared transcript: the pure ownership rule, with no I/O. The caller supplies
//! the current record, who is asking, the time, and a liveness probe.
//!
//! - No record: the requester takes it.
//! - The record names the requester (same host, same pid *and* start time): it is the owner.
//! - Same host, owner dead (or its pid reused by another process): the requester takes over.
//! - Same host, owner alive: held, unless the owner lapsed: no write handle open and no write
//!   for the idle limit (when one is set). Only the daemon that granted the lock knows the
//!   owner's open handles, so only its activity report can make an owner lapse.
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
}

pub struct Judge<'a> {
    pub here: &'a HostId,
    pub now: u64,
    pub idle_limit: Option<Duration>,
}

impl Judge<'_> {
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
            return Verdict::Free;
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
    fn a_dead_owner_frees_it_at_once() {
        let h = host("a");
        let r = record(h.clone(), 10, 5, u64::MAX);
        assert_eq!(
            judge(&h, None).judge(Some(&r), ProcId { pid: 11, start: 9 }, |_| false, BUSY),
            Verdict::Free
        );
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
