//! Deletions of shared transcripts go to the group store's trash (`crate::trash`): an unlink
//! of a transcript's last name moves the file into `<group>/.ccsfs/trash/<id>/`, and a rename
//! over one first keeps the old file there (a hard link, undone if the rename fails). Only
//! what the single-writer lock covers is caught (`transcripts`), and only its last name: a
//! file that keeps another name loses nothing. If the trash cannot take the file, the delete
//! fails (ENOSPC, EDQUOT or EROFS as they are, anything else EIO) and nothing is deleted.

use std::ffi::CStr;
use std::os::fd::AsFd;

use fuser::{Errno, Request};

use super::CcsFs;
use super::inodes::Inode;
use super::sys::SysResult;
use super::transcripts::Transcript;
use crate::trash::store::{self, Entry, Pending, Reason, Trash};

impl CcsFs {
    fn trash_entry(&self, req: &Request, view: u32, t: &Transcript, why: Reason) -> Entry {
        let pid = self
            .threads
            .identify(req.pid())
            .map_or(req.pid(), |p| p.pid);
        Entry {
            format: store::FORMAT,
            path: t.path.clone(),
            size: t.size,
            deleted_at: store::iso_utc(store::unix_now()),
            profile: Some(self.topo().profile_name(view).to_string()),
            pid: Some(pid),
            reason: why,
        }
    }

    fn trash_begin(
        &self,
        req: &Request,
        view: u32,
        t: &Transcript,
        why: Reason,
    ) -> SysResult<(Trash, Pending)> {
        let trash = Trash::of_group(&t.group_dir);
        let entry = self.trash_entry(req, view, t, why);
        match trash.begin(&entry) {
            Ok(p) => Ok((trash, p)),
            Err(e) => Err(trash_failed(&trash, &t.path, &e)),
        }
    }

    /// Unlinks `parent/name`, the last name of the transcript `t`, by moving it to the trash.
    pub(super) fn unlink_to_trash(
        &self,
        req: &Request,
        parent: &Inode,
        name: &CStr,
        t: &Transcript,
    ) -> SysResult<()> {
        let (trash, pending) = self.trash_begin(req, parent.key.view, t, Reason::Unlink)?;
        match pending.move_in(parent.fd()?.as_fd(), name) {
            Ok(bytes) => {
                self.trash.added(&t.group_dir, pending.id.clone(), bytes);
                Ok(())
            }
            Err(e) => {
                pending.abandon();
                // The name itself is gone or not ours to move: the unlink's own error.
                match e.raw_os_error() {
                    Some(libc::ENOENT) | Some(libc::EACCES) | Some(libc::EPERM) => {
                        Err(Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO)))
                    }
                    _ => Err(trash_failed(&trash, &t.path, &e)),
                }
            }
        }
    }

    /// Before a rename replaces `parent/name`, the last name of the transcript `t`: keep the
    /// old file in the trash. `trash_kept` or `Pending::abandon` ends it.
    pub(super) fn keep_in_trash(
        &self,
        req: &Request,
        parent: &Inode,
        name: &CStr,
        t: &Transcript,
    ) -> SysResult<(Pending, u64)> {
        let (trash, pending) = self.trash_begin(req, parent.key.view, t, Reason::RenameOver)?;
        match pending.keep(parent.fd()?.as_fd(), name) {
            Ok(bytes) => Ok((pending, bytes)),
            Err(e) => {
                pending.abandon();
                Err(trash_failed(&trash, &t.path, &e))
            }
        }
    }

    /// The rename that `keep_in_trash` prepared for went through.
    pub(super) fn trash_kept(&self, t: &Transcript, kept: (Pending, u64)) {
        self.trash.added(&t.group_dir, kept.0.id.clone(), kept.1);
    }
}

/// One log line, and the errno the delete fails with.
fn trash_failed(trash: &Trash, path: &str, e: &std::io::Error) -> Errno {
    log::error!(
        "cannot move {path} to {}: {e}; the delete is refused, nothing was deleted",
        trash.dir.display()
    );
    match e.raw_os_error() {
        Some(c @ (libc::ENOSPC | libc::EDQUOT | libc::EROFS)) => Errno::from_i32(c),
        _ => Errno::EIO,
    }
}
