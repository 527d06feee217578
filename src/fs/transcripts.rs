//! Where the single-writer rule meets the filesystem: which files are shared transcripts, who
//! is asking (the calling thread's process), and what open, create, unlink, rename and
//! truncate must check. The rule itself is `crate::locks`.
//!
//! A transcript is a regular file in a group store that is named `*.jsonl`, or has more than
//! one name (a hard link may be named anything, and every name of a locked file is locked), or
//! has a lock file (it was locked, then renamed to another name). Its lock is found by its
//! identity (device, inode, birth time), so the name or path a profile met it under decides
//! nothing.

use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, Request};

use super::CcsFs;
use super::inodes::Inode;
use super::sys::{self, SysResult};
use crate::locks::policy::FileId;
use crate::locks::record::GroupMutex;
use crate::locks::{self, Grant, Requester, Target, text};
use crate::procs;

/// A group-store tree: its group dir and where the tree sits in it (`projects`,
/// `continuity/todos`, …), so that paths in lock records read the same for every profile.
#[derive(Clone, Debug)]
pub struct StoreTree {
    pub group_dir: PathBuf,
    pub prefix: PathBuf,
}

/// A transcript about to be written or changed, resolved once per operation.
pub(super) struct Transcript {
    pub(super) group_dir: PathBuf,
    /// Relative to the group dir, escaped to one line (for the record, the log and the trash).
    pub(super) path: String,
    pub(super) dev: u64,
    pub(super) file: FileId,
    nlink: u64,
    pub(super) size: u64,
    since_write: Duration,
    /// Named `*.jsonl`: a JSONL transcript, whose torn last record a new owner ends (a file
    /// locked for another reason, a hard link named anything, is left as it is).
    jsonl: bool,
}

impl Transcript {
    /// Whether this is the file's only name (removing it removes the file, and its lock).
    pub(super) fn last_name(&self) -> bool {
        self.nlink <= 1
    }
}

fn is_transcript_name(name: &OsStr) -> bool {
    name.as_encoded_bytes().ends_with(b".jsonl")
}

/// Whether open flags ask to change the file.
pub(super) fn writes(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_TRUNC | libc::O_APPEND) != 0
}

/// What the lock needs to know of a file: one `statx`.
struct Stat {
    mode: u32,
    nlink: u64,
    size: u64,
    dev: u64,
    file: FileId,
    since_write: Duration,
}

impl Stat {
    /// The same facts from `sys::statx_at` (whose generation is the birth time in ns, 0 where
    /// the filesystem keeps none).
    fn of((st, generation): &(libc::stat, u64)) -> Stat {
        let mtime = UNIX_EPOCH
            + Duration::new(
                st.st_mtime.max(0) as u64,
                st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
            );
        Stat {
            mode: st.st_mode,
            nlink: st.st_nlink,
            size: st.st_size.max(0) as u64,
            dev: st.st_dev,
            file: FileId {
                ino: st.st_ino,
                btime: (*generation != 0).then_some(*generation),
            },
            since_write: SystemTime::now().duration_since(mtime).unwrap_or_default(),
        }
    }
}

/// `statx` of `name` in `dir`, or of `dir` itself when `name` is None; never follows a final
/// symlink. The birth time is used where the filesystem keeps one.
fn stat(dir: BorrowedFd, name: Option<&CStr>) -> SysResult<Stat> {
    let (path, flags) = match name {
        Some(n) => (n, libc::AT_SYMLINK_NOFOLLOW),
        None => (c"", libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW),
    };
    let mut st = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: a valid dirfd, a NUL-terminated path and a buffer of the right type.
    let r = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            path.as_ptr(),
            flags,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            st.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(sys::errno());
    }
    // SAFETY: filled in by the successful call (and zeroed before).
    let st = unsafe { st.assume_init() };
    let ts = |t: libc::statx_timestamp| {
        Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.min(999_999_999))
    };
    let mtime = UNIX_EPOCH + ts(st.stx_mtime);
    Ok(Stat {
        mode: u32::from(st.stx_mode),
        nlink: u64::from(st.stx_nlink),
        size: st.stx_size,
        dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
        file: FileId {
            ino: st.stx_ino,
            btime: (st.stx_mask & libc::STATX_BTIME != 0)
                .then(|| ts(st.stx_btime).as_nanos() as u64),
        },
        since_write: SystemTime::now().duration_since(mtime).unwrap_or_default(),
    })
}

impl CcsFs {
    /// Whether `tree` is part of a group store (its transcripts are single-writer).
    pub(super) fn in_store(&self, tree: u32) -> bool {
        self.topo()
            .trees
            .get(tree as usize)
            .is_some_and(|t| t.group.is_some())
    }

    /// The store of `tree`, if it is part of one.
    fn store_of(&self, tree: u32) -> Option<StoreTree> {
        self.topo().trees.get(tree as usize)?.group.clone()
    }

    /// The transcript behind `fd` (a file in tree `tree`), or `name` in the dir `fd`, if it is
    /// one.
    fn transcript(&self, tree: u32, fd: BorrowedFd, name: Option<&OsStr>) -> Option<Transcript> {
        self.transcript_as(tree, fd, name, None)
    }

    /// `transcript`, with the file's statx already made (`known`, of the file `name` leads
    /// to in `fd` as the caller opened it): no second look-up by name.
    fn transcript_as(
        &self,
        tree: u32,
        fd: BorrowedFd,
        name: Option<&OsStr>,
        known: Option<Stat>,
    ) -> Option<Transcript> {
        let topo = self.topo();
        let t = topo.trees.get(tree as usize)?;
        let store = t.group.as_ref()?;
        let c_name = match name {
            Some(n) => Some(sys::cstr(n).ok()?),
            None => None,
        };
        let st = match known {
            Some(st) => st,
            None => stat(fd, c_name.as_deref()).ok()?,
        };
        if st.mode & libc::S_IFMT != libc::S_IFREG {
            return None;
        }
        let here = sys::fd_path(fd).ok()?;
        let jsonl = is_transcript_name(name.or(here.file_name())?);
        let locked = jsonl
            || st.nlink > 1
            || self
                .locks
                .has_lock_file(&store.group_dir, st.dev, st.file.ino);
        if !locked {
            return None;
        }
        let below = match name {
            Some(n) => here.strip_prefix(&t.root).ok()?.join(n),
            None => here.strip_prefix(&t.root).ok()?.to_path_buf(),
        };
        Some(Transcript {
            group_dir: store.group_dir.clone(),
            path: text::escape(store.prefix.join(below).as_os_str().as_bytes()),
            dev: st.dev,
            file: st.file,
            nlink: st.nlink,
            size: st.size,
            since_write: st.since_write,
            jsonl,
        })
    }

    fn target<'a>(&self, t: &'a Transcript) -> Target<'a> {
        Target {
            group_dir: &t.group_dir,
            dev: t.dev,
            file: t.file,
            path: t.path.clone(),
            since_write: t.since_write,
        }
    }

    fn requester<'a>(
        &self,
        topo: &'a super::topology::Topology,
        proc: procs::ProcId,
        view: u32,
    ) -> Requester<'a> {
        Requester {
            proc,
            profile: topo.profile_name(view),
        }
    }

    /// Claims the transcript `t` for `proc`, the process behind the request (None when it is
    /// already gone: nothing will write through its open), or refuses with EBUSY. With
    /// `created`, `t` is a file the requester has just made, with the group's flock held since
    /// before: it is the requester's.
    fn claim(
        &self,
        proc: Option<procs::ProcId>,
        view: u32,
        t: &Transcript,
        repair_fd: Option<BorrowedFd>,
        created: Option<&GroupMutex>,
    ) -> SysResult<()> {
        let proc = proc.ok_or(Errno::EBUSY)?;
        let topo = self.topo();
        let who = self.requester(&topo, proc, view);
        let target = self.target(t);
        let granted = match created {
            Some(m) => self.locks.acquire_created(m, &target, &who),
            None => self.locks.acquire(&target, &who),
        };
        match granted {
            Ok(Grant::Owner) => Ok(()),
            Ok(Grant::NewOwner) => {
                if let Some(fd) = repair_fd {
                    repair_torn_tail(fd, &t.path);
                }
                Ok(())
            }
            Err(locks::Denied::Held(locks::Refusal(r))) => {
                log::warn!("{}", locks::describe_refusal(&r, &t.path, &who));
                Err(Errno::EBUSY)
            }
            Err(locks::Denied::Failed(e)) => Err(errno_of(&e)),
        }
    }

    /// Before a write-open of `inode`: the single-writer check. Returns the transcript's
    /// (dev, ino) when the handle must be tracked.
    pub(super) fn claim_for_open(
        &self,
        req: &Request,
        inode: &Inode,
        flags: i32,
    ) -> SysResult<Option<(u64, u64)>> {
        if !writes(flags) || !self.in_store(inode.tree) {
            return Ok(None);
        }
        // The hot path, a transcript append by its owner: memory and one fstat, without
        // naming the file (the owner's claim is by (dev, ino)).
        let key = (inode.key.dev, inode.key.ino);
        let proc = self.threads.identify(req.pid());
        if proc.is_some_and(|p| self.locks.owns(key, p)) {
            return Ok(Some(key));
        }
        let fd = inode.fd()?;
        let Some(t) = self.transcript(inode.tree, fd.as_fd(), None) else {
            return Ok(None);
        };
        let repair = if flags & libc::O_TRUNC == 0 && t.jsonl {
            Some(fd.as_fd())
        } else {
            None
        };
        self.claim(proc, inode.key.view, &t, repair, None)?;
        Ok(Some((t.dev, t.file.ino)))
    }

    /// The transcript at `parent/name`, if that is one.
    fn transcript_named(&self, parent: &Inode, name: &OsStr) -> SysResult<Option<Transcript>> {
        Ok(self.transcript(parent.tree, parent.fd()?.as_fd(), Some(name)))
    }

    /// `parent/name` as just opened by a create, `opened` being the opened file's statx.
    fn transcript_opened(
        &self,
        parent: &Inode,
        name: &OsStr,
        opened: &(libc::stat, u64),
    ) -> SysResult<Option<Transcript>> {
        Ok(self.transcript_as(
            parent.tree,
            parent.fd()?.as_fd(),
            Some(name),
            Some(Stat::of(opened)),
        ))
    }

    /// Before `create` makes `parent/name`: for a transcript in a group store, the group's
    /// flock, held until the new file's lock is written (`claim_created`), so that nobody can
    /// claim the file between the two and the creator always gets the file it made. Fails
    /// (and nothing is created) when the flock cannot be taken.
    pub(super) fn before_create(
        &self,
        parent: &Inode,
        name: &OsStr,
    ) -> SysResult<Option<GroupMutex>> {
        if !is_transcript_name(name) {
            return Ok(None);
        }
        let Some(store) = self.store_of(parent.tree) else {
            return Ok(None);
        };
        match self.locks.lock_group(&store.group_dir) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                log::error!("cannot lock {}: {e}", store.group_dir.display());
                Err(errno_of(&e))
            }
        }
    }

    /// After `create` opened `parent/name` (`created`: it made the file, with `mutex` from
    /// `before_create`): the creator owns it if it is a transcript. A new transcript whose
    /// lock cannot be written is removed again, so a refused create leaves nothing behind.
    /// A new file of any other name needs no lock; an existing one is claimed as an open is.
    pub(super) fn claim_created(
        &self,
        req: &Request,
        parent: &Inode,
        name: &OsStr,
        created: bool,
        mutex: Option<GroupMutex>,
        opened: &(libc::stat, u64),
    ) -> SysResult<Option<(u64, u64)>> {
        // Who is asking matters only for a lock (not for a new file of any other name, such
        // as every temp file of an atomic config save): identify it only then.
        let proc = || self.threads.identify(req.pid());
        match (mutex, created) {
            (Some(mutex), true) => {
                let Some(t) = self.transcript_opened(parent, name, opened)? else {
                    return Ok(None);
                };
                let claimed = self.claim(proc(), parent.key.view, &t, None, Some(&mutex));
                if claimed.is_err() {
                    self.remove_new_file(parent, name, &t);
                }
                claimed.map(|()| Some((t.dev, t.file.ino)))
            }
            (None, true) => Ok(None),
            (mutex, false) => {
                // An existing file (made behind the mount since the lookup): an open. The
                // flock is let go first: `acquire` takes it itself.
                drop(mutex);
                match self.transcript_opened(parent, name, opened)? {
                    Some(t) => self
                        .claim(proc(), parent.key.view, &t, None, None)
                        .map(|()| Some((t.dev, t.file.ino))),
                    None => Ok(None),
                }
            }
        }
    }

    /// Removes the file this create made at `parent/name`, if the name still leads to it.
    fn remove_new_file(&self, parent: &Inode, name: &OsStr, t: &Transcript) {
        let Ok(fd) = parent.fd() else { return };
        let Ok(c) = sys::cstr(name) else { return };
        if stat(fd.as_fd(), Some(&c)).is_ok_and(|st| (st.dev, st.file.ino) == (t.dev, t.file.ino))
            && sys::unlinkat(fd.as_fd(), &c, 0).is_ok()
        {
            self.touched_entry(parent, name);
        }
    }

    /// Before unlinking, renaming away or replacing `parent/name`: refused (EBUSY) if another
    /// live process holds it. Returns the transcript (for `name_removed`).
    pub(super) fn check_change(
        &self,
        req: &Request,
        parent: &Inode,
        name: &OsStr,
    ) -> SysResult<Option<Transcript>> {
        match self.transcript_named(parent, name)? {
            Some(t) => self
                .check_transcript_change(req, parent.key.view, &t)
                .map(|()| Some(t)),
            None => Ok(None),
        }
    }

    /// A name of the transcript `t` was removed (unlinked, or replaced by a rename): when it
    /// was the last one, the file's lock goes with it.
    pub(super) fn name_removed(&self, t: &Transcript) {
        if t.last_name() {
            self.locks.forget_file(&self.target(t));
        }
    }

    /// Before truncating `inode` without an owner's handle.
    pub(super) fn check_truncate(
        &self,
        req: &Request,
        inode: &Inode,
        fh: Option<u64>,
    ) -> SysResult<()> {
        if fh.is_some_and(|fh| self.locks.is_owner_handle(fh)) {
            return Ok(());
        }
        match self.transcript(inode.tree, inode.fd()?.as_fd(), None) {
            Some(t) => self.check_transcript_change(req, inode.key.view, &t),
            None => Ok(()),
        }
    }

    fn check_transcript_change(&self, req: &Request, view: u32, t: &Transcript) -> SysResult<()> {
        let proc = self.threads.identify(req.pid()).unwrap_or(procs::ProcId {
            pid: req.pid(),
            start: 0,
        });
        let topo = self.topo();
        let who = self.requester(&topo, proc, view);
        self.locks
            .check_change(&self.target(t), &who)
            .map_err(|locks::Refusal(r)| {
                log::warn!(
                    "{} (unlink/rename/truncate)",
                    locks::describe_refusal(&r, &t.path, &who)
                );
                Errno::EBUSY
            })
    }
}

fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
}

/// A new owner takes a transcript whose last writer died mid-record: end the fragment with a
/// newline so that the next record starts on its own line. Nothing is removed.
fn repair_torn_tail(path_fd: BorrowedFd, name: &str) {
    let Ok(f) = sys::reopen(path_fd, libc::O_RDWR | libc::O_APPEND) else {
        return;
    };
    let Ok(st) = sys::fstat(f.as_fd()) else {
        return;
    };
    if st.st_size <= 0 {
        return;
    }
    let last = sys::pread(f.as_fd(), 1, st.st_size as u64 - 1);
    if last.is_ok_and(|b| b.first() != Some(&b'\n'))
        && sys::pwrite(f.as_fd(), b"\n", st.st_size as u64).is_ok()
    {
        log::warn!("{name}: the last writer stopped mid-record; ended the fragment with a newline");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_opens_write() {
        assert!(!writes(libc::O_RDONLY));
        assert!(writes(libc::O_WRONLY | libc::O_APPEND));
        assert!(writes(libc::O_RDWR));
        assert!(writes(libc::O_RDONLY | libc::O_TRUNC));
        assert!(is_transcript_name(OsStr::new("a.jsonl")));
        assert!(!is_transcript_name(OsStr::new("a.json")));
    }
}
