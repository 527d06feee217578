//! Where the single-writer rule meets the filesystem: which files are shared transcripts
//! (`*.jsonl` in a group store), who is asking (the calling thread's process), and what open,
//! create, unlink, rename and truncate must check. The rule itself is `crate::locks`.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, Request};

use super::CcsFs;
use super::inodes::Inode;
use super::sys::{self, SysResult};
use crate::locks::{self, Grant, Requester, Target};
use crate::procs;

/// A group-store tree: its group dir and where the tree sits in it (`projects`,
/// `continuity/todos`, …), so that lock names are the same for every profile and daemon.
#[derive(Clone, Debug)]
pub struct StoreTree {
    pub group_dir: PathBuf,
    pub prefix: PathBuf,
}

/// A transcript about to be written or changed, resolved once per operation.
pub(super) struct Transcript {
    group_dir: PathBuf,
    path: String,
    dev: u64,
    ino: u64,
    since_write: Duration,
}

fn is_transcript_name(name: &OsStr) -> bool {
    name.as_encoded_bytes().ends_with(b".jsonl")
}

/// Whether open flags ask to change the file.
pub(super) fn writes(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_TRUNC | libc::O_APPEND) != 0
}

fn age(st: &libc::stat) -> Duration {
    let mtime = UNIX_EPOCH + Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32);
    SystemTime::now().duration_since(mtime).unwrap_or_default()
}

impl CcsFs {
    /// Whether `tree` is part of a group store (its `*.jsonl` are single-writer).
    pub(super) fn in_store(&self, tree: u32) -> bool {
        self.topo()
            .trees
            .get(tree as usize)
            .is_some_and(|t| t.group.is_some())
    }

    /// The transcript behind `fd` (a file in tree `tree` named `name`), if it is one.
    fn transcript(&self, tree: u32, fd: BorrowedFd, name: Option<&OsStr>) -> Option<Transcript> {
        let topo = self.topo();
        let t = topo.trees.get(tree as usize)?;
        let store = t.group.as_ref()?;
        let here = sys::fd_path(fd).ok()?;
        if !is_transcript_name(name.unwrap_or(here.as_os_str())) {
            return None;
        }
        let below = match name {
            Some(n) => here.strip_prefix(&t.root).ok()?.join(n),
            None => here.strip_prefix(&t.root).ok()?.to_path_buf(),
        };
        let st = match name {
            Some(n) => sys::fstatat(fd, &sys::cstr(n).ok()?).ok()?,
            None => sys::fstat(fd).ok()?,
        };
        Some(Transcript {
            group_dir: store.group_dir.clone(),
            path: store.prefix.join(below).to_string_lossy().into_owned(),
            dev: st.st_dev,
            ino: st.st_ino,
            since_write: age(&st),
        })
    }

    fn target<'a>(&self, t: &'a Transcript) -> Target<'a> {
        Target {
            dev: t.dev,
            ino: t.ino,
            group_dir: &t.group_dir,
            path: t.path.clone(),
            since_write: t.since_write,
        }
    }

    /// Claims the transcript `t` for `proc`, the process behind the request (None when it is
    /// already gone: nothing will write through its open), or refuses with EBUSY.
    fn claim(
        &self,
        proc: Option<procs::ProcId>,
        view: u32,
        t: &Transcript,
        repair_fd: Option<BorrowedFd>,
    ) -> SysResult<()> {
        let proc = proc.ok_or(Errno::EBUSY)?;
        let topo = self.topo();
        let who = Requester {
            proc,
            profile: topo.profile_name(view),
        };
        match self.locks.acquire(&self.target(t), &who) {
            Ok(Grant::Owner) => Ok(()),
            Ok(Grant::NewOwner) => {
                if let Some(fd) = repair_fd {
                    repair_torn_tail(fd, &t.path);
                }
                Ok(())
            }
            Err(locks::Denied::Held(locks::Refusal(r))) => {
                log::warn!("{}", locks::describe_refusal(&r, &who));
                Err(Errno::EBUSY)
            }
            Err(locks::Denied::Failed(e)) => {
                Err(e.raw_os_error().map_or(Errno::EIO, Errno::from_i32))
            }
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
        let repair = if flags & libc::O_TRUNC == 0 {
            Some(fd.as_fd())
        } else {
            None
        };
        self.claim(proc, inode.key.view, &t, repair)?;
        Ok(Some((t.dev, t.ino)))
    }

    /// The transcript at `parent/name`, if that is one.
    fn transcript_named(&self, parent: &Inode, name: &OsStr) -> SysResult<Option<Transcript>> {
        Ok(self.transcript(parent.tree, parent.fd()?.as_fd(), Some(name)))
    }

    /// After `create` made `parent/name`: the creator owns it (if it is a transcript).
    pub(super) fn claim_created(
        &self,
        req: &Request,
        parent: &Inode,
        name: &OsStr,
    ) -> SysResult<Option<(u64, u64)>> {
        match self.transcript_named(parent, name)? {
            Some(t) => self
                .claim(self.threads.identify(req.pid()), parent.key.view, &t, None)
                .map(|()| Some((t.dev, t.ino))),
            None => Ok(None),
        }
    }

    /// Before unlinking, renaming away or replacing `parent/name`: refused (EBUSY) if another
    /// live process holds it. Returns the transcript's (dev, ino) for `forget_file`.
    pub(super) fn check_change(
        &self,
        req: &Request,
        parent: &Inode,
        name: &OsStr,
    ) -> SysResult<Option<(u64, u64)>> {
        match self.transcript_named(parent, name)? {
            Some(t) => self
                .check_transcript_change(req, parent.key.view, &t)
                .map(|()| Some((t.dev, t.ino))),
            None => Ok(None),
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
        let who = Requester {
            proc,
            profile: topo.profile_name(view),
        };
        self.locks
            .check_change(&self.target(t), &who)
            .map_err(|locks::Refusal(r)| {
                log::warn!(
                    "{} (unlink/rename/truncate)",
                    locks::describe_refusal(&r, &who)
                );
                Errno::EBUSY
            })
    }
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
