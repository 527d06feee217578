//! The transport floor of the session picker: a FUSE daemon that does nothing but answer
//! from memory. It reads a tree two levels deep (`SOURCE/<dir>/<file>`, the layout of
//! `bench sessions`) once at start and serves it read-only under `MOUNTPOINT` through the
//! same protocol ccsfs uses for listings: fuser with the same threads and mount options,
//! READDIRPLUS (auto), no OPENDIR (answered ENOSYS), 1 s TTLs, and a listing re-read with
//! READDIRPLUS every time (its cached copy is dropped before the empty reply that would
//! complete it), as ccsfs re-reads a listing older than half the TTL (the cold picker).
//! What ccsfs costs beyond this is its own work: getdents and a statx (or an O_PATH open
//! and a statx) of the backing file per entry, and its inode table.
//!
//!   cargo run --release --example picker_floor -- SOURCE MOUNTPOINT   (unmount: umount)

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, InitFlags,
    KernelConfig, MountOption, Notifier, OpenFlags, ReplyAttr, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEntry, ReplyOpen, Request, Session,
};

const TTL: Duration = Duration::from_secs(1);

struct Node {
    attr: FileAttr,
    /// Children by name, in listing order (dirs only).
    names: Vec<OsString>,
    children: HashMap<OsString, u64>,
}

struct Floor {
    nodes: Vec<Node>,
    notifier: Arc<OnceLock<Notifier>>,
}

fn attr_of(ino: u64, m: &std::fs::Metadata) -> FileAttr {
    let t = |s: i64, ns: i64| UNIX_EPOCH + Duration::new(s.max(0) as u64, ns as u32);
    FileAttr {
        ino: INodeNo(ino),
        size: m.size(),
        blocks: m.blocks(),
        atime: t(m.atime(), m.atime_nsec()),
        mtime: t(m.mtime(), m.mtime_nsec()),
        ctime: t(m.ctime(), m.ctime_nsec()),
        crtime: SystemTime::UNIX_EPOCH,
        kind: if m.is_dir() {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Floor {
    /// Node 1 is SOURCE; ids follow in the order the tree is read.
    fn load(source: &Path) -> std::io::Result<Floor> {
        let mut nodes = vec![];
        let add = |nodes: &mut Vec<Node>, m: &std::fs::Metadata| {
            let ino = nodes.len() as u64 + 1;
            nodes.push(Node {
                attr: attr_of(ino, m),
                names: vec![],
                children: HashMap::new(),
            });
            ino
        };
        add(&mut nodes, &std::fs::metadata(source)?);
        let mut level = vec![(1u64, source.to_path_buf())];
        for _ in 0..2 {
            let mut next = vec![];
            for (dir, path) in level {
                for e in std::fs::read_dir(&path)? {
                    let e = e?;
                    let m = e.metadata()?;
                    let ino = add(&mut nodes, &m);
                    let n = &mut nodes[dir as usize - 1];
                    n.names.push(e.file_name());
                    n.children.insert(e.file_name(), ino);
                    if m.is_dir() {
                        next.push((ino, e.path()));
                    }
                }
            }
            level = next;
        }
        Ok(Floor {
            nodes,
            notifier: Arc::default(),
        })
    }

    fn node(&self, ino: INodeNo) -> Option<&Node> {
        self.nodes.get((ino.0 as usize).wrapping_sub(1))
    }
}

impl Filesystem for Floor {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_AUTO_INVAL_DATA,
        ] {
            let _ = config.add_capabilities(flag);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.node(parent).and_then(|p| p.children.get(name)) {
            Some(&ino) => reply.entry(&TTL, &self.nodes[ino as usize - 1].attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Some(n) => reply.attr(&TTL, &n.attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(n) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        for (i, name) in n.names.iter().enumerate().skip(offset as usize) {
            let child = &self.nodes[n.children[name] as usize - 1].attr;
            if reply.add(child.ino, i as u64 + 1, child.kind, name) {
                return reply.ok();
            }
        }
        self.listing_ended(ino);
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(n) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let mut any = false;
        for (i, name) in n.names.iter().enumerate().skip(offset as usize) {
            let child = &self.nodes[n.children[name] as usize - 1].attr;
            if reply.add(child.ino, i as u64 + 1, name, &TTL, child, Generation(0)) {
                return reply.ok();
            }
            any = true;
        }
        if !any {
            self.listing_ended(ino);
        }
        reply.ok();
    }
}

impl Floor {
    /// Every listing is read anew with READDIRPLUS (see the module comment).
    fn listing_ended(&self, ino: INodeNo) {
        if let Some(n) = self.notifier.get() {
            let _ = n.inval_inode(ino, 0, 0);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: picker_floor SOURCE MOUNTPOINT");
        std::process::exit(2);
    }
    let fs = match Floor::load(Path::new(&args[1])) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("picker_floor: cannot read {}: {e}", args[1]);
            std::process::exit(1);
        }
    };
    let slot = fs.notifier.clone();
    let mut config = Config::default();
    config.n_threads = Some(4);
    config.clone_fd = true;
    config.mount_options = vec![
        MountOption::FSName("picker_floor".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    let session = match Session::new(fs, &args[2], &config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("picker_floor: cannot mount {}: {e}", args[2]);
            std::process::exit(1);
        }
    };
    let _ = slot.set(session.notifier());
    if let Err(e) = session.run() {
        eprintln!("picker_floor: {e}");
        std::process::exit(1);
    }
}
