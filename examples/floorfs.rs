//! The transport floor for `bench`'s write workloads: a FUSE daemon that does nothing but
//! answer. Names and sizes live in memory, every request is answered at once, and the daemon
//! is set up as ccsfs's (fuser 0.18, same thread count, `clone_fd`, `default_permissions`,
//! the same INIT flags, 1 s TTLs, negative entries). With `passthrough` (root), created
//! files are opened with kernel passthrough onto one scratch file in /dev/shm, so writes
//! skip the daemon as they do in ccsfs as root. So the kernel sends it exactly the requests
//! it sends ccsfs, and its time on a workload is the cost of those round trips with no
//! daemon work and no disk: what no FUSE daemon can go below.
//!
//! ```text
//! floorfs MOUNT_POINT [passthrough]      (foreground; unmount with `umount MOUNT_POINT`)
//! ```
//!
//! Only what `bench sessions` and `bench atomic` use is served: lookup, getattr, setattr
//! (size), mkdir, create, open, write, flush, release, fsync, rename, unlink, getxattr.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use fuser::{
    BackingId, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

const TTL: Duration = Duration::from_secs(1);

struct Node {
    attr: FileAttr,
    children: HashMap<OsString, u64>,
}

struct Floor {
    nodes: Mutex<(u64, HashMap<u64, Node>)>,
    passthrough: bool,
    scratch: File,
    backing: OnceLock<Arc<BackingId>>,
}

fn attr(ino: u64, kind: FileType, perm: u16, req: &Request) -> FileAttr {
    let now = SystemTime::now();
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind,
        perm,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: req.uid(),
        gid: req.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Floor {
    fn add(
        &self,
        parent: u64,
        name: &OsStr,
        kind: FileType,
        perm: u16,
        req: &Request,
    ) -> Result<FileAttr, Errno> {
        let mut g = self.nodes.lock().unwrap();
        let (next, nodes) = &mut *g;
        if nodes
            .get(&parent)
            .ok_or(Errno::ENOENT)?
            .children
            .contains_key(name)
        {
            return Err(Errno::EEXIST);
        }
        *next += 1;
        let a = attr(*next, kind, perm, req);
        nodes.insert(
            *next,
            Node {
                attr: a,
                children: HashMap::new(),
            },
        );
        nodes
            .get_mut(&parent)
            .unwrap()
            .children
            .insert(name.to_owned(), *next);
        Ok(a)
    }
}

impl Filesystem for Floor {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_AUTO_INVAL_DATA,
            InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        ] {
            let _ = config.add_capabilities(flag);
        }
        if self.passthrough {
            self.passthrough = config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(2).is_ok();
        }
        eprintln!("floorfs: passthrough {}", self.passthrough);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let g = self.nodes.lock().unwrap();
        let Some(p) = g.1.get(&parent.0) else {
            return reply.error(Errno::ENOENT);
        };
        match p.children.get(name) {
            Some(id) => reply.entry(&TTL, &g.1[id].attr, Generation(0)),
            None => reply.entry(
                &TTL,
                &FileAttr {
                    ino: INodeNo(0),
                    ..p.attr
                },
                Generation(0),
            ),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.nodes.lock().unwrap().1.get(&ino.0) {
            Some(n) => reply.attr(&TTL, &n.attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.nodes.lock().unwrap().1.get_mut(&ino.0) {
            Some(n) => {
                if let Some(s) = size {
                    n.attr.size = s;
                }
                reply.attr(&TTL, &n.attr)
            }
            None => reply.error(Errno::ENOENT),
        }
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
        match self.add(
            parent.0,
            name,
            FileType::Directory,
            (mode & !umask & 0o7777) as u16,
            req,
        ) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let a = match self.add(
            parent.0,
            name,
            FileType::RegularFile,
            (mode & !umask & 0o7777) as u16,
            req,
        ) {
            Ok(a) => a,
            Err(e) => return reply.error(e),
        };
        if self.passthrough {
            let id = match self.backing.get() {
                Some(id) => id.clone(),
                None => match reply.open_backing(&self.scratch) {
                    Ok(id) => self.backing.get_or_init(|| Arc::new(id)).clone(),
                    Err(_) => return reply.error(Errno::EIO),
                },
            };
            reply.created_passthrough(
                &TTL,
                &a,
                Generation(0),
                FileHandle(a.ino.0),
                FopenFlags::FOPEN_NOFLUSH,
                &id,
            );
        } else {
            reply.created(
                &TTL,
                &a,
                Generation(0),
                FileHandle(a.ino.0),
                FopenFlags::FOPEN_NOFLUSH,
            );
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.backing.get().filter(|_| self.passthrough) {
            Some(id) => reply.opened_passthrough(FileHandle(ino.0), FopenFlags::FOPEN_NOFLUSH, id),
            None => reply.opened(FileHandle(ino.0), FopenFlags::FOPEN_NOFLUSH),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if let Some(n) = self.nodes.lock().unwrap().1.get_mut(&ino.0) {
            n.attr.size = n.attr.size.max(offset + data.len() as u64);
        }
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut g = self.nodes.lock().unwrap();
        let Some(id) = g.1.get_mut(&parent.0).and_then(|p| p.children.remove(name)) else {
            return reply.error(Errno::ENOENT);
        };
        match g.1.get_mut(&newparent.0) {
            Some(np) => {
                np.children.insert(newname.to_owned(), id);
                reply.ok()
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self
            .nodes
            .lock()
            .unwrap()
            .1
            .get_mut(&parent.0)
            .and_then(|p| p.children.remove(name))
        {
            Some(_) => reply.ok(),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENODATA);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(mnt) = args.get(1) else {
        eprintln!("usage: floorfs MOUNT_POINT [passthrough]");
        std::process::exit(2);
    };
    let passthrough = args.get(2).is_some_and(|a| a == "passthrough");
    let req_root = FileAttr {
        ino: INodeNo(1),
        size: 0,
        blocks: 0,
        atime: SystemTime::now(),
        mtime: SystemTime::now(),
        ctime: SystemTime::now(),
        crtime: SystemTime::now(),
        kind: FileType::Directory,
        perm: 0o755,
        nlink: 2,
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    };
    let mut nodes = HashMap::new();
    nodes.insert(
        1,
        Node {
            attr: req_root,
            children: HashMap::new(),
        },
    );
    let scratch = tempfile::tempfile_in("/dev/shm").expect("a scratch file in /dev/shm");
    let fs = Floor {
        nodes: Mutex::new((1, nodes)),
        passthrough,
        scratch,
        backing: OnceLock::new(),
    };
    let mut config = Config::default();
    config.n_threads = Some(4);
    config.clone_fd = true;
    config.mount_options = vec![
        MountOption::FSName("floorfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if let Err(e) = fuser::mount(fs, mnt, &config) {
        eprintln!("floorfs: {e}");
        std::process::exit(1);
    }
}
