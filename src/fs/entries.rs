//! Namespace and metadata operations: create, mkdir, mknod, symlink, link, unlink, rmdir,
//! rename (with RENAME_NOREPLACE / RENAME_EXCHANGE) and setattr. Each one is a guarded
//! `*at()` call on the parent's O_PATH fd; moves between backing trees are EXDEV.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use fuser::{Errno, FileAttr, Request, TimeOrNow};

use super::inodes::{Inode, Key, Role};
use super::lookup::Change;
use super::sys::{self, CallerCreds, SysResult};
use super::{CcsFs, attr};

/// The fields of one setattr request.
pub struct AttrChanges {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
    /// Only a new ctime was asked for.
    pub ctime: bool,
    pub fh: Option<u64>,
}

impl CcsFs {
    pub(super) fn creds(&self, req: &Request) -> CallerCreds {
        CallerCreds::assume(self.as_root, req.uid(), req.gid())
    }

    /// Looks up a name just created in `parent` and returns its attributes.
    fn created(&self, parent: &Arc<Inode>, name: &OsStr) -> SysResult<FileAttr> {
        self.touched_entry(parent, name);
        self.lookup_child(parent, name).map(|(_, a)| a)
    }

    /// Whether a setattr must drop set-id bits (FUSE_HANDLE_KILLPRIV_V2 leaves that to us).
    /// The kernel marks it FATTR_KILL_SUIDGID, which fuser does not pass on, so: a request
    /// that sets nothing at all is that mark alone (a write by an unprivileged user), and a
    /// truncate by anyone but root carries it (the kernel sends it to callers without
    /// CAP_FSETID; uid 0 stands in for that).
    fn kills_setid(&self, req: &Request, c: &AttrChanges) -> bool {
        let nothing = c.mode.is_none()
            && c.uid.is_none()
            && c.gid.is_none()
            && c.size.is_none()
            && c.atime.is_none()
            && c.mtime.is_none()
            && !c.ctime;
        nothing || (c.size.is_some() && c.mode.is_none() && req.uid() != 0)
    }

    pub(super) fn set_attr(
        &self,
        req: &Request,
        inode: &Inode,
        c: &AttrChanges,
    ) -> SysResult<FileAttr> {
        if inode.role == Role::MountRoot {
            return Err(Errno::EPERM);
        }
        if c.size.is_some() {
            self.check_truncate(req, inode, c.fh)?;
        }
        let fd_ref = inode.fd()?;
        let fd = fd_ref.as_fd();
        if self.kills_setid(req, c) && inode.kind == libc::S_IFREG {
            sys::drop_setid_path(fd)?;
        }
        if let Some(mode) = c.mode {
            if inode.kind == libc::S_IFLNK {
                return Err(Errno::EOPNOTSUPP);
            }
            sys::fchmod_path(fd, mode & 0o7777)?;
        }
        if c.uid.is_some() || c.gid.is_some() {
            sys::fchown_fd(fd, c.uid, c.gid)?;
        }
        if let Some(size) = c.size {
            match c.fh {
                Some(fh) => sys::ftruncate(self.files.get(fh)?.fd()?, size)?,
                None => sys::truncate_path(fd, size)?,
            }
        }
        if c.atime.is_some() || c.mtime.is_some() {
            sys::utimens_fd(fd, [attr::timespec(c.atime), attr::timespec(c.mtime)])?;
        }
        self.touched(inode, c.size.is_some());
        self.attr_of(inode)
    }

    pub(super) fn make_dir(
        &self,
        req: &Request,
        parent: &Arc<Inode>,
        name: &OsStr,
        mode: u32,
    ) -> SysResult<FileAttr> {
        self.guard(parent, name, Change::Mkdir)?;
        {
            let _c = self.creds(req);
            sys::mkdirat(parent.fd()?.as_fd(), &sys::cstr(name)?, mode)?;
        }
        self.created(parent, name)
    }

    pub(super) fn make_node(
        &self,
        req: &Request,
        parent: &Arc<Inode>,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> SysResult<FileAttr> {
        self.guard(parent, name, Change::Create)?;
        {
            let _c = self.creds(req);
            sys::mknodat(
                parent.fd()?.as_fd(),
                &sys::cstr(name)?,
                mode,
                u64::from(rdev),
            )?;
        }
        self.created(parent, name)
    }

    pub(super) fn make_symlink(
        &self,
        req: &Request,
        parent: &Arc<Inode>,
        name: &OsStr,
        target: &Path,
    ) -> SysResult<FileAttr> {
        self.guard(parent, name, Change::Create)?;
        self.check_symlink_target(parent, target)?;
        {
            let _c = self.creds(req);
            sys::symlinkat(
                &sys::cstr(target.as_os_str())?,
                parent.fd()?.as_fd(),
                &sys::cstr(name)?,
            )?;
        }
        self.created(parent, name)
    }

    /// Refuses to create (or move) a symlink in `parent` whose target would lead where the
    /// containment rule forbids (see `symlink_rule`): out of its shared store, or out of its
    /// profile.
    fn check_symlink_target(&self, parent: &Inode, target: &Path) -> SysResult<()> {
        let here = sys::fd_path(parent.fd()?.as_fd())?;
        self.symlink_verdict(parent.tree, parent.key.view, &here, target)
            .map_err(|why| {
                log::warn!("refused symlink in {} to {target:?}: {why}", here.display());
                Errno::EPERM
            })
    }

    /// readlink, with the containment rule applied again where the link is now, for the
    /// profile reading it, and with what its target resolves to now: the link may have been
    /// planted in the backing dir or made before ccsfs, a directory may have moved since, and
    /// a dir on its path may since have become a symlink.
    pub(super) fn read_link(&self, inode: &Inode) -> SysResult<Vec<u8>> {
        let target = sys::readlink_fd(inode.fd()?.as_fd())?;
        let here = sys::fd_path(inode.fd()?.as_fd())?;
        let dir = here.parent().unwrap_or(&here);
        let written = Path::new(OsStr::from_bytes(&target));
        match self.symlink_verdict(inode.tree, inode.key.view, dir, written) {
            Ok(()) => Ok(target),
            Err(why) => {
                log::warn!("refused to follow {} -> {written:?}: {why}", here.display());
                Err(Errno::EPERM)
            }
        }
    }

    pub(super) fn hard_link(
        &self,
        inode: &Inode,
        newparent: &Inode,
        newname: &OsStr,
    ) -> SysResult<FileAttr> {
        self.guard(newparent, newname, Change::Create)?;
        if inode.role != Role::Plain || inode.is_dir() {
            return Err(Errno::EPERM);
        }
        if inode.tree != newparent.tree {
            return Err(Errno::EXDEV);
        }
        if inode.kind == libc::S_IFLNK {
            let target = sys::readlink_fd(inode.fd()?.as_fd())?;
            self.check_symlink_target(newparent, Path::new(OsStr::from_bytes(&target)))?;
        }
        sys::link_fd_at(
            inode.fd()?.as_fd(),
            newparent.fd()?.as_fd(),
            &sys::cstr(newname)?,
        )?;
        self.touched(inode, false);
        self.touched_entry(newparent, newname);
        let attr = self.attr_of(inode)?;
        self.inodes.add_lookup(inode.id);
        Ok(attr)
    }

    pub(super) fn remove(
        &self,
        req: &Request,
        parent: &Inode,
        name: &OsStr,
        dir: bool,
    ) -> SysResult<()> {
        self.guard(
            parent,
            name,
            if dir { Change::Rmdir } else { Change::Unlink },
        )?;
        if let Some(r) = self.redirect(parent, name)? {
            sys::unlinkat(r.dir.as_fd(), &sys::cstr(&r.name)?, 0)?;
            return Ok(());
        }
        let transcript = if dir {
            None
        } else {
            self.check_change(req, parent, name)?
        };
        self.pin_child(parent, name);
        let child = self.shared_child(parent, name);
        let c_name = sys::cstr(name)?;
        match &transcript {
            // A shared transcript's last name: the file goes to the group's trash.
            Some(t) if t.last_name() => self.unlink_to_trash(req, parent, &c_name, t)?,
            _ => sys::unlinkat(
                parent.fd()?.as_fd(),
                &c_name,
                if dir { libc::AT_REMOVEDIR } else { 0 },
            )?,
        }
        self.touched_key(parent, child);
        self.touched_entry(parent, name);
        if let Some(t) = transcript {
            self.name_removed(&t);
        }
        Ok(())
    }

    pub(super) fn rename_entry(
        &self,
        req: &Request,
        parent: &Arc<Inode>,
        name: &OsStr,
        newparent: &Arc<Inode>,
        newname: &OsStr,
        flags: u32,
    ) -> SysResult<()> {
        self.guard(parent, name, Change::Rename)?;
        if let Some(r) = self.redirect(newparent, newname)? {
            return self.rename_onto_redirect(parent, name, newparent, newname, r, flags);
        }
        self.guard(newparent, newname, Change::Rename)?;
        if parent.tree != newparent.tree {
            return Err(Errno::EXDEV);
        }
        let (old, new) = (sys::cstr(name)?, sys::cstr(newname)?);
        if parent.id != newparent.id {
            self.check_moved_symlink(parent, &old, newparent)?;
            if flags & libc::RENAME_EXCHANGE != 0 {
                self.check_moved_symlink(newparent, &new, parent)?;
            }
        }
        // The moved file keeps its lock wherever it goes; only its owner may move it.
        self.check_change(req, parent, name)?;
        let over = self.check_change(req, newparent, newname)?;
        let replaced = self.shared_child(newparent, newname);
        let key_at = |dir: &Inode, n: &std::ffi::CStr| {
            let st = sys::fstatat(dir.fd().ok()?.as_fd(), n).ok()?;
            Some(Key {
                view: dir.key.view,
                dev: st.st_dev,
                ino: st.st_ino,
            })
        };
        let moving = key_at(parent, &old);
        self.pin_child(newparent, newname);
        let exchanged = if flags & libc::RENAME_EXCHANGE != 0 {
            key_at(newparent, &new)
        } else {
            None
        };
        // A rename onto a transcript's last name deletes it: keep the old file in the trash
        // first. A rename of a file onto another name of itself replaces nothing.
        let over = over.filter(|o| moving.is_none_or(|k| (k.dev, k.ino) != (o.dev, o.file.ino)));
        let kept = match &over {
            Some(o)
                if o.last_name()
                    && flags & (libc::RENAME_EXCHANGE | libc::RENAME_NOREPLACE) == 0 =>
            {
                Some(self.keep_in_trash(req, newparent, &new, o)?)
            }
            _ => None,
        };
        let renamed = sys::renameat2(
            parent.fd()?.as_fd(),
            &old,
            newparent.fd()?.as_fd(),
            &new,
            flags,
        );
        match (renamed, kept) {
            (Err(e), kept) => {
                if let Some((pending, _)) = kept {
                    pending.abandon();
                }
                return Err(e);
            }
            (Ok(()), Some(kept)) => self.trash_kept(over.as_ref().expect("kept one"), kept),
            (Ok(()), None) => {}
        }
        // Nodes without a held fd find themselves by name: follow them to their new names.
        for (key, dir, n) in [(moving, newparent, newname), (exchanged, parent, name)] {
            if let Some(i) = key
                .and_then(|k| self.inodes.find(k))
                .and_then(|id| self.inodes.get(id))
            {
                i.relink(dir, n);
            }
        }
        // A replaced transcript lost a name: if that was its last, its lock goes with it.
        if let Some(o) = over
            && flags & libc::RENAME_EXCHANGE == 0
        {
            self.name_removed(&o);
        }
        self.touched_key(newparent, replaced);
        self.touched_entry(parent, name);
        self.touched_entry(newparent, newname);
        Ok(())
    }

    /// Claude's atomic write of a routed file (`settings.json.tmp.…` renamed onto
    /// `settings.json`, or the same inside `plugins/`): the temp file lives in the instance
    /// (or the shared dir), the name in the other tree. The new content replaces the routed
    /// file where it really is, so every profile sees it; across filesystems it is copied
    /// there first (temp file, fsync, rename), and the source removed.
    fn rename_onto_redirect(
        &self,
        parent: &Arc<Inode>,
        name: &OsStr,
        newparent: &Arc<Inode>,
        newname: &OsStr,
        r: super::lookup::Redirect,
        flags: u32,
    ) -> SysResult<()> {
        // Only the atomic-write pattern crosses trees: a file made beside the routed name.
        // Anything else (a transcript, credentials) is moved the ordinary way, by copying.
        if flags & libc::RENAME_EXCHANGE != 0 || parent.id != newparent.id || is_private_state(name)
        {
            return Err(Errno::EXDEV);
        }
        let old = sys::cstr(name)?;
        let st = sys::fstatat(parent.fd()?.as_fd(), &old)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Errno::EXDEV);
        }
        let new = sys::cstr(&r.name)?;
        let moving = Key {
            view: parent.key.view,
            dev: st.st_dev,
            ino: st.st_ino,
        };
        self.pin_child(newparent, newname);
        match sys::renameat2(parent.fd()?.as_fd(), &old, r.dir.as_fd(), &new, flags) {
            Err(e) if e == Errno::EXDEV => {
                copy_into(parent, &old, &r, &new, flags, &st)?;
                sys::unlinkat(parent.fd()?.as_fd(), &old, 0)?;
            }
            other => other?,
        }
        if let Some(i) = self.inodes.find(moving).and_then(|id| self.inodes.get(id)) {
            i.relink(newparent, newname);
        }
        self.touched_entry(parent, name);
        if r.shared {
            self.shared_file_replaced(newparent, newname);
        }
        Ok(())
    }

    /// The node at `parent/name` (if the kernel holds it) is about to lose that name.
    fn pin_child(&self, parent: &Inode, name: &OsStr) {
        let Ok(st) = sys::cstr(name).and_then(|c| sys::fstatat(parent.fd()?.as_fd(), &c)) else {
            return;
        };
        let key = Key {
            view: parent.key.view,
            dev: st.st_dev,
            ino: st.st_ino,
        };
        if let Some(i) = self.inodes.find(key).and_then(|id| self.inodes.get(id)) {
            i.pin();
        }
    }

    /// A symlink moved to another dir must still obey the containment rule there.
    fn check_moved_symlink(
        &self,
        from: &Inode,
        name: &std::ffi::CStr,
        to: &Inode,
    ) -> SysResult<()> {
        let Ok(st) = sys::fstatat(from.fd()?.as_fd(), name) else {
            return Ok(());
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return Ok(());
        }
        let fd = sys::open_path_at(from.fd()?.as_fd(), name)?;
        let target = sys::readlink_fd(fd.as_fd())?;
        self.check_symlink_target(to, Path::new(OsStr::from_bytes(&target)))
    }
}

/// Files that stay in their profile whatever they are renamed to.
fn is_private_state(name: &OsStr) -> bool {
    name == ".credentials.json" || name == ".claude.json"
}

/// Copies the regular file `dir/name` to `r.dir/new` as an atomic replacement: a temp file
/// beside the target, the same mode, fsync, rename (RENAME_NOREPLACE honoured).
fn copy_into(
    parent: &Inode,
    name: &std::ffi::CStr,
    r: &super::lookup::Redirect,
    new: &std::ffi::CStr,
    flags: u32,
    st: &libc::stat,
) -> SysResult<()> {
    use std::io::Write;
    let src = sys::reopen(
        sys::open_path_at(parent.fd()?.as_fd(), name)?.as_fd(),
        libc::O_RDONLY,
    )?;
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(src), &mut data).map_err(Errno::from)?;
    let tmp = sys::cstr(OsStr::new(&format!(
        ".{}.ccsfs-{}",
        r.name.to_string_lossy(),
        std::process::id()
    )))?;
    let fd = sys::openat_create(
        r.dir.as_fd(),
        &tmp,
        libc::O_WRONLY | libc::O_TRUNC,
        st.st_mode & 0o7777,
    )?;
    let mut f = std::fs::File::from(fd);
    let written = f.write_all(&data).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = sys::unlinkat(r.dir.as_fd(), &tmp, 0);
        return Err(Errno::from(e));
    }
    sys::renameat2(r.dir.as_fd(), &tmp, r.dir.as_fd(), new, flags).inspect_err(|_| {
        let _ = sys::unlinkat(r.dir.as_fd(), &tmp, 0);
    })
}
