//! The FUSE glue: `CcsFs` and its `fuser::Filesystem` impl. Each operation delegates to a
//! method in one of the sibling modules and maps its `Result` onto the reply; no policy here.

mod attr;
mod coherence;
mod dirs;
mod entries;
mod files;
mod handles;
mod inodes;
mod live;
mod lookup;
mod passthrough;
mod symlinks;
pub(crate) mod sys;
mod topology;
mod transcripts;
mod trashing;
mod xattrs;

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, Filesystem,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::config::Profile;
use crate::layout::Layout;
use crate::locks::{LockConfig, LockManager};

pub use attr::TTL;
use coherence::Coherence;
use dirs::DirHandles;
use handles::Handles;
use inodes::{Inode, InodeTable, Key, NewNode, Role};
pub use live::{Live, POLL as CONFIG_POLL};
use passthrough::Passthrough;
use sys::SysResult;
use topology::Topology;

/// The routed filesystem.
pub struct CcsFs {
    /// The profiles and routes served now; replaced when `config.yaml` changes.
    live: Arc<Live>,
    inodes: Arc<InodeTable>,
    dirs: DirHandles,
    files: Handles,
    /// The daemon runs as root: create files with the caller's fs credentials.
    as_root: bool,
    /// Absolute symlink targets under these would bypass the routing.
    forbidden_symlink_roots: Vec<PathBuf>,
    /// The mount point, absolute: symlinks into the profile's own part of it are fine.
    mount_abs: PathBuf,
    locks: Arc<LockManager>,
    passthrough: Arc<Passthrough>,
    /// Thread -> process, for the single-writer check on every write-open.
    threads: crate::procs::ThreadIds,
    coherence: Arc<Coherence>,
    /// The bounds of the group stores' trash (deleted transcripts go there: `trashing`).
    trash: Arc<crate::trash::Keeper>,
}

pub(crate) fn mkdir_private(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

impl CcsFs {
    /// Builds the filesystem for `profiles`, creating missing instance dirs (0700).
    pub fn new(
        layout: &Layout,
        profiles: &[Profile],
        mount_point: &Path,
        locks: LockConfig,
        fd_budget: Option<usize>,
    ) -> io::Result<CcsFs> {
        let topo = Topology::build(layout, profiles, None)?;
        let instances = layout.instances_dir();
        let root_fd = sys::open_dir_path(&instances).map_err(io_err)?;
        let st = sys::fstat(std::os::fd::AsFd::as_fd(&root_fd)).map_err(io_err)?;
        let home_dev =
            std::fs::metadata(&layout.ccs_dir).map(|m| std::os::unix::fs::MetadataExt::dev(&m))?;
        let root = NewNode {
            fd: root_fd,
            key: Key {
                view: 0,
                dev: st.st_dev,
                ino: st.st_ino,
            },
            generation: 0,
            kind: libc::S_IFDIR,
            tree: 0,
            role: Role::MountRoot,
            link: None,
        };
        let mount_abs = crate::layout::absolute_mount_point(mount_point);
        let inodes = Arc::new(InodeTable::new(
            root,
            home_dev,
            fd_budget.unwrap_or_else(default_fd_budget),
        ));
        let coherence = Arc::new(Coherence::new());
        let live = Arc::new(Live::new(
            layout.clone(),
            profiles.to_vec(),
            topo,
            inodes.clone(),
            coherence.clone(),
        ));
        let trash = crate::trash::Keeper::new(&layout.ccs_dir);
        let l = live.clone();
        trash.start_sweeper(crate::tunables::TRASH_SCAN_PERIOD, move || {
            let groups: std::collections::BTreeSet<PathBuf> = l
                .get()
                .trees
                .iter()
                .filter_map(|t| t.group.as_ref().map(|g| g.group_dir.clone()))
                .collect();
            groups.into_iter().collect()
        });
        Ok(CcsFs {
            live,
            dirs: DirHandles::new(coherence.notifier_slot()),
            inodes,
            files: Handles::default(),
            // SAFETY: geteuid has no preconditions.
            as_root: rustix::process::geteuid().is_root(),
            forbidden_symlink_roots: vec![instances, mount_abs.clone()],
            mount_abs,
            locks: LockManager::start(locks),
            passthrough: Arc::default(),
            threads: Default::default(),
            coherence,
            trash,
        })
    }

    /// The live config: the watcher thread calls `check` on it.
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    /// The topology for one operation.
    fn topo(&self) -> arc_swap::Guard<Arc<Topology>> {
        self.live.get()
    }

    /// Whether kernel passthrough is on (known once the kernel has answered INIT).
    pub fn passthrough_state(&self) -> Arc<Passthrough> {
        self.passthrough.clone()
    }

    /// Where the session's notifier goes once mounted (for cross-profile invalidation).
    pub fn notifier_slot(&self) -> Arc<std::sync::OnceLock<fuser::Notifier>> {
        self.coherence.notifier_slot()
    }

    /// A file changed through `inode`: tell the other profiles that see it.
    fn touched(&self, inode: &Inode, data: bool) {
        self.coherence.changed(
            &self.inodes,
            &self.topo().tree_views,
            inode.tree,
            inode.key,
            data,
        );
    }

    /// A name in `parent` changed: tell the other profiles that see the directory.
    fn touched_entry(&self, parent: &Inode, name: &OsStr) {
        self.coherence.entry_changed(
            &self.inodes,
            &self.topo().tree_views,
            parent.tree,
            parent.key,
            name,
        );
    }

    /// A shared file (settings.json) was replaced at `name` under `root` (a profile root):
    /// every other profile that routes that name drops its cached entry, so that it looks
    /// the new file up.
    fn shared_file_replaced(&self, root: &Inode, name: &OsStr) {
        let topo = self.topo();
        let Role::ProfileRoot(me) = root.role else {
            return;
        };
        let Some(target) = topo.views[me].routes.route(name).map(|r| r.target.clone()) else {
            return;
        };
        let mut entries = Vec::new();
        for (i, v) in topo.active() {
            if i == me || v.routes.route(name).map(|r| &r.target) != Some(&target) {
                continue;
            }
            let Ok(m) = std::fs::metadata(&v.routes.instance) else {
                continue;
            };
            let key = Key {
                view: i as u32 + 1,
                dev: std::os::unix::fs::MetadataExt::dev(&m),
                ino: std::os::unix::fs::MetadataExt::ino(&m),
            };
            if let Some(id) = self.inodes.find(key) {
                entries.push((id, name.to_os_string()));
            }
        }
        self.coherence.forget_entries(entries);
    }

    /// The key of the file at `parent/name` in a shared tree (before it is unlinked or
    /// replaced, so that its other views can be told afterwards).
    fn shared_child(&self, parent: &Inode, name: &OsStr) -> Option<Key> {
        if !self
            .coherence
            .is_shared(&self.topo().tree_views, parent.tree)
        {
            return None;
        }
        let st = sys::cstr(name)
            .and_then(|c| sys::fstatat(parent.fd()?.as_fd(), &c))
            .ok()?;
        Some(Key {
            view: parent.key.view,
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }

    /// Tells the other views that the file found by `shared_child` changed.
    fn touched_key(&self, parent: &Inode, key: Option<Key>) {
        if let Some(key) = key {
            self.coherence.changed(
                &self.inodes,
                &self.topo().tree_views,
                parent.tree,
                key,
                false,
            );
        }
    }

    /// Registers `fh` for kernel passthrough when it is on and `inode` is a regular file.
    fn pass_through(
        &self,
        inode: &Inode,
        fh: u64,
        open_backing: impl FnOnce(std::os::fd::BorrowedFd) -> io::Result<fuser::BackingId>,
    ) -> Option<Arc<fuser::BackingId>> {
        if !self.passthrough.enabled() || inode.kind != libc::S_IFREG {
            return None;
        }
        let handle = self.files.get(fh).ok()?;
        self.passthrough.attach(inode, || handle.fd(), open_backing)
    }

    /// An entry reply, with the generation of the node the attributes are of.
    fn reply_entry(&self, reply: ReplyEntry, r: SysResult<FileAttr>) {
        match r {
            Ok(attr) => {
                let generation = self.inodes.get(attr.ino.0).map_or(0, |i| i.generation);
                reply.entry(&TTL, &attr, Generation(generation));
            }
            Err(e) => reply.error(e),
        }
    }

    fn inode(&self, id: INodeNo) -> SysResult<Arc<Inode>> {
        self.inodes.get(id.0).ok_or(Errno::ESTALE)
    }

    /// Current attributes of a node as FUSE reports them.
    fn attr_of(&self, inode: &Inode) -> SysResult<FileAttr> {
        let st = sys::fstat(inode.fd()?.as_fd())?;
        Ok(attr::to_attr(&st, inode.id))
    }
}

/// How many nodes may keep their own O_PATH fd: three quarters of the open-file limit,
/// leaving the rest for open files, lock files and everything else (see `tunables`).
fn default_fd_budget() -> usize {
    use crate::tunables::{
        FD_BUDGET_DENOMINATOR, FD_BUDGET_MIN, FD_BUDGET_NUMERATOR, FD_BUDGET_RESERVE,
    };
    (crate::limits::open_files() * FD_BUDGET_NUMERATOR / FD_BUDGET_DENOMINATOR)
        .saturating_sub(FD_BUDGET_RESERVE)
        .max(FD_BUDGET_MIN)
}

fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.code())
}

fn reply_attr(reply: ReplyAttr, r: SysResult<FileAttr>) {
    match r {
        Ok(attr) => reply.attr(&TTL, &attr),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(reply: ReplyEmpty, r: SysResult<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn reply_xattr(reply: ReplyXattr, size: u32, r: SysResult<Vec<u8>>) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for CcsFs {
    fn destroy(&mut self) {
        self.locks.release_all();
    }

    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
            InitFlags::FUSE_AUTO_INVAL_DATA,
            // We drop set-id bits ourselves (see `entries::drop_setid_for`), so the kernel need
            // not ask for security.capability before every single write: a round trip per
            // transcript append.
            InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        ] {
            if config.add_capabilities(flag).is_err() {
                log::debug!("kernel lacks {flag:?}");
            }
        }
        let _ = config.set_max_write(1 << 20);
        // Passthrough needs CAP_SYS_ADMIN to register backing files. Depth 2 lets the stores
        // live on a stacked filesystem themselves (overlayfs in a container).
        if self.passthrough.wanted()
            && rustix::process::geteuid().is_root()
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(2).is_ok()
        {
            self.passthrough.set_enabled(true);
        }
        log::info!(
            "kernel passthrough: {}",
            if self.passthrough.enabled() {
                "on"
            } else {
                "off"
            }
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let parent = match self.inode(parent) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        match self.lookup_child(&parent, name) {
            // A miss the kernel may remember (see `negative_ttl`).
            Err(e) if e == Errno::ENOENT => match self.negative_ttl(&parent) {
                Some(ttl) => reply.entry(&ttl, &attr::NEGATIVE, Generation(0)),
                None => reply.error(e),
            },
            r => self.reply_entry(reply, r.map(|(_, a)| a)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.inodes.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        // An open file answers through its handle (it may have no name left; a node whose name
        // went away keeps a pinned fd, which answers for a handle without an fd of its own).
        // The kernel sends a handle only for regular files.
        let handle = fh.and_then(|fh| self.files.get(fh.0).ok());
        let r = match handle.as_ref().and_then(|h| h.opened_fd()) {
            Some(fd) => sys::fstat(fd).map(|st| attr::to_attr(&st, ino.0)),
            None => self.inode(ino).and_then(|i| self.attr_of(&i)),
        };
        reply_attr(reply, r);
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let changes = entries::AttrChanges {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            ctime: ctime.is_some(),
            fh: fh.map(|f| f.0),
        };
        reply_attr(
            reply,
            self.inode(ino)
                .and_then(|i| self.set_attr(req, &i, &changes)),
        );
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inode(ino).and_then(|i| self.read_link(&i)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = self
            .inode(parent)
            .and_then(|p| self.make_node(req, &p, name, mode & !umask, rdev));
        self.reply_entry(reply, r);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self
            .inode(parent)
            .and_then(|p| self.make_dir(req, &p, name, mode & !umask));
        self.reply_entry(reply, r);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(
            reply,
            self.inode(parent)
                .and_then(|p| self.remove(req, &p, name, false)),
        );
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(
            reply,
            self.inode(parent)
                .and_then(|p| self.remove(req, &p, name, true)),
        );
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.reply_entry(
            reply,
            self.inode(parent)
                .and_then(|p| self.make_symlink(req, &p, link_name, target)),
        );
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = self
            .inode(parent)
            .and_then(|p| Ok((p, self.inode(newparent)?)))
            .and_then(|(p, np)| self.rename_entry(req, &p, name, &np, newname, flags.bits()));
        reply_empty(reply, r);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = self
            .inode(ino)
            .and_then(|i| Ok((i, self.inode(newparent)?)))
            .and_then(|(i, np)| self.hard_link(&i, &np, newname));
        self.reply_entry(reply, r);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let opened = self
            .inode(ino)
            .and_then(|i| Ok((self.open_file(req, &i, flags.0)?, i)));
        match opened {
            Ok(((fh, cache), i)) => {
                if let Some(id) = self.pass_through(&i, fh, |fd| reply.open_backing(fd)) {
                    reply.opened_passthrough(
                        FileHandle(fh),
                        self.passthrough_flags(&i, flags.0),
                        &id,
                    );
                } else {
                    reply.opened(FileHandle(fh), cache);
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self
            .files
            .get(fh.0)
            .and_then(|h| sys::pread(h.fd()?, size as usize, offset))
        {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // KILLPRIV_V2: the writer lacks CAP_FSETID and the file is set-id; the kernel has not
        // changed its cached mode, so tell it.
        let handle = match self.files.get(fh.0) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        let fd = match handle.fd() {
            Ok(fd) => fd,
            Err(e) => return reply.error(e),
        };
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            && sys::drop_setid_fd(fd).is_ok()
        {
            self.coherence.attrs_changed(ino.0);
        }
        match sys::pwrite(fd, data, offset) {
            Ok(n) => {
                if let Ok(i) = self.inode(ino) {
                    self.touched(&i, true);
                }
                reply.written(n as u32);
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Only passed-through write handles on shared files ask for a flush (all other opens
        // say FOPEN_NOFLUSH): their writes bypassed us, so this close is when the other
        // profiles must drop their cached size. (Never ENOSYS: that disables flush for good.)
        if let Ok(i) = self.inode(ino) {
            self.touched(&i, false);
        }
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.locks.released(fh.0);
        self.files.release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            self.files
                .get(fh.0)
                .and_then(|h| sys::fsync(h.fd()?, datasync)),
        );
    }

    /// Not implemented, on purpose: after this ENOSYS the kernel sends no OPENDIR or
    /// RELEASEDIR again (two round trips per listing) and caches listings itself (see
    /// `dirs`). Listings need no handle.
    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        match self.inode(ino) {
            Ok(i) => self.read_dir(&i, offset, reply),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        match self.inode(ino) {
            Ok(i) => self.read_dir_plus(&i, offset, reply),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.inode(ino).and_then(|i| {
            let fd = sys::open_dir(i.fd()?.as_fd())?;
            sys::fsync(fd.as_fd(), datasync)
        });
        reply_empty(reply, r);
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        match self.inode(ino).and_then(|i| sys::fstatvfs(i.fd()?.as_fd())) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let r = self.inode(ino).and_then(|i| {
            self.set_xattr(&i, name, value, flags)?;
            self.touched(&i, false);
            Ok(())
        });
        reply_empty(reply, r);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply_xattr(
            reply,
            size,
            self.inode(ino).and_then(|i| self.get_xattr(&i, name, size)),
        );
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        reply_xattr(
            reply,
            size,
            self.inode(ino).and_then(|i| self.list_xattr(&i, size)),
        );
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.inode(ino).and_then(|i| {
            self.remove_xattr(&i, name)?;
            self.touched(&i, false);
            Ok(())
        });
        reply_empty(reply, r);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        reply_empty(
            reply,
            self.inode(ino)
                .and_then(|i| sys::access_path(i.fd()?.as_fd(), mask.bits())),
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self
            .inode(parent)
            .and_then(|p| self.create_file(req, &p, name, mode & !umask, flags))
        {
            Ok((i, attr, fh, cache)) => {
                if let Some(id) = self.pass_through(&i, fh, |fd| reply.open_backing(fd)) {
                    let pt = self.passthrough_flags(&i, flags);
                    reply.created_passthrough(
                        &TTL,
                        &attr,
                        Generation(i.generation),
                        FileHandle(fh),
                        pt,
                        &id,
                    );
                } else {
                    reply.created(&TTL, &attr, Generation(i.generation), FileHandle(fh), cache);
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = self
            .files
            .get(fh.0)
            .and_then(|h| sys::fallocate(h.fd()?, mode, offset, length));
        if let (Ok(()), Ok(i)) = (&r, self.inode(ino)) {
            self.touched(&i, true);
        }
        reply_empty(reply, r);
    }

    /// No ioctl is served: every one gets ENOTTY (what a file that is no terminal answers),
    /// without a log line. Python asks `TCGETS` of every file it opens; fuser's default would
    /// log a warning each time.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        match self
            .files
            .get(fh.0)
            .and_then(|h| sys::lseek(h.fd()?, offset, whence))
        {
            Ok(o) => reply.offset(o),
            Err(e) => reply.error(e),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let handles = self
            .files
            .get(fh_in.0)
            .and_then(|i| Ok((i, self.files.get(fh_out.0)?)));
        let copied = handles
            .and_then(|(i, o)| sys::copy_file_range(i.fd()?, offset_in, o.fd()?, offset_out, len));
        match copied {
            Ok(n) => {
                if let Ok(i) = self.inode(ino_out) {
                    self.touched(&i, true);
                }
                reply.written(n as u32);
            }
            Err(e) => reply.error(e),
        }
    }
}
