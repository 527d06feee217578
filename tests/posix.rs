//! POSIX semantics through a profile dir on a real mount, each checked both on an instance path
//! (`solo/`) and on a shared group-store path (`work/projects/`): rename (plain, NOREPLACE,
//! EXCHANGE, dirs, cross-tree EXDEV with `mv` falling back to a copy), hard links and link
//! counts, symlinks, fifos and sockets, chmod/chown, truncate, utimensat, open flags, fsync,
//! unlinked-but-open files, xattrs, SEEK_DATA/SEEK_HOLE, fallocate, copy_file_range, stable
//! inode numbers (remount, drop_caches), readdir offsets under churn (getdents64, telldir/
//! seekdir) and statfs.

mod common;
#[path = "common/sys.rs"]
mod sys;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt, PermissionsExt, symlink};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Ccs, THREE_PROFILES, is_root};
use sys::{DirStream, expect_errno, getdents, names, open_dir, renameat2, ts, utimensat};

/// The two kinds of place a test runs in: (path through the mount, backing dir).
fn bases(ccs: &Ccs) -> [(PathBuf, PathBuf); 2] {
    [
        (ccs.profile("solo"), ccs.instance("solo")),
        (
            ccs.profile("work").join("projects"),
            ccs.group_projects("team"),
        ),
    ]
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn read_str(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn rw(p: &Path) -> fs::File {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)
        .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
}

#[test]
fn rename_over_an_existing_file_replaces_it() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        let (a, b) = (base.join("a"), base.join("b"));
        fs::write(&a, "A").unwrap();
        fs::write(&b, "B-old").unwrap();
        let old = fs::File::open(&b).unwrap();
        let a_ino = fs::metadata(&a).unwrap().ino();
        assert_ne!(a_ino, old.metadata().unwrap().ino());
        fs::rename(&a, &b).unwrap();
        assert_eq!(read_str(&b), "A", "{}", b.display());
        assert_eq!(fs::metadata(&b).unwrap().ino(), a_ino, "b is now a's inode");
        expect_errno(fs::metadata(&a), libc::ENOENT, "old name after rename");
        assert_eq!(
            old.metadata().unwrap().nlink(),
            0,
            "the replaced inode is gone"
        );
        let mut s = String::new();
        (&old).read_to_string(&mut s).unwrap();
        assert_eq!(s, "B-old", "an open fd keeps the replaced file's data");
        assert_eq!(read_str(&backing.join("b")), "A");
        assert!(!backing.join("a").exists());
    }
}

#[test]
fn renameat2_noreplace_and_exchange() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        let (a, b, c, d) = (
            base.join("a"),
            base.join("b"),
            base.join("c"),
            base.join("d"),
        );
        fs::write(&a, "A").unwrap();
        fs::write(&b, "B").unwrap();
        expect_errno(
            renameat2(&a, &b, libc::RENAME_NOREPLACE),
            libc::EEXIST,
            "NOREPLACE onto b",
        );
        assert_eq!((read_str(&a), read_str(&b)), ("A".into(), "B".into()));
        renameat2(&a, &c, libc::RENAME_NOREPLACE).expect("NOREPLACE onto a new name");
        assert!(fs::symlink_metadata(&a).is_err());
        assert_eq!(read_str(&c), "A");

        let (ino_b, ino_c) = (
            fs::metadata(&b).unwrap().ino(),
            fs::metadata(&c).unwrap().ino(),
        );
        renameat2(&c, &b, libc::RENAME_EXCHANGE).expect("EXCHANGE b and c");
        assert_eq!(
            (read_str(&b), read_str(&c)),
            ("A".into(), "B".into()),
            "swapped contents"
        );
        assert_eq!(fs::metadata(&b).unwrap().ino(), ino_c);
        assert_eq!(fs::metadata(&c).unwrap().ino(), ino_b);
        expect_errno(
            renameat2(&c, &base.join("missing"), libc::RENAME_EXCHANGE),
            libc::ENOENT,
            "EXCHANGE with a missing name",
        );

        fs::create_dir(&d).unwrap();
        fs::write(d.join("inside"), "in").unwrap();
        renameat2(&b, &d, libc::RENAME_EXCHANGE).expect("EXCHANGE a file and a dir");
        assert!(fs::metadata(&b).unwrap().is_dir());
        assert_eq!(read_str(&b.join("inside")), "in");
        assert_eq!(read_str(&d), "A");
        assert!(backing.join("b").is_dir());
        assert_eq!(read_str(&backing.join("d")), "A");
    }
}

#[test]
fn rename_a_directory() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        let d1 = base.join("d1");
        fs::create_dir_all(d1.join("sub")).unwrap();
        fs::write(d1.join("f"), "f").unwrap();
        fs::write(d1.join("sub/g"), "g").unwrap();
        fs::rename(&d1, base.join("d2")).unwrap();
        assert_eq!(read_str(&base.join("d2/f")), "f");
        assert_eq!(read_str(&base.join("d2/sub/g")), "g");
        expect_errno(fs::metadata(&d1), libc::ENOENT, "d1 after rename");

        fs::create_dir(base.join("e")).unwrap();
        fs::rename(base.join("d2"), base.join("e/d3")).unwrap();
        assert_eq!(read_str(&base.join("e/d3/sub/g")), "g");

        fs::create_dir(base.join("empty")).unwrap();
        fs::rename(base.join("e/d3"), base.join("empty")).expect("a dir over an empty dir");
        assert_eq!(read_str(&base.join("empty/sub/g")), "g");
        fs::create_dir(base.join("full")).unwrap();
        fs::write(base.join("full/x"), "x").unwrap();
        expect_errno(
            fs::rename(base.join("empty"), base.join("full")),
            libc::ENOTEMPTY,
            "a dir over a non-empty dir",
        );
        assert_eq!(read_str(&backing.join("empty/sub/g")), "g");
        assert_eq!(names(&backing.join("e")), BTreeSet::new());
    }
}

#[test]
fn cross_tree_rename_is_exdev_and_mv_copies() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let work = ccs.profile("work");
    fs::write(work.join("notes.txt"), "notes").unwrap();
    expect_errno(
        fs::rename(work.join("notes.txt"), work.join("projects/notes.txt")),
        libc::EXDEV,
        "instance -> projects",
    );
    fs::write(work.join("projects/t.json"), "t").unwrap();
    expect_errno(
        fs::rename(work.join("projects/t.json"), work.join("todos/t.json")),
        libc::EXDEV,
        "projects -> todos (two group stores)",
    );
    fs::create_dir_all(work.join("scratch/sub")).unwrap();
    fs::write(work.join("scratch/sub/f"), "deep").unwrap();
    expect_errno(
        fs::rename(work.join("scratch"), work.join("projects/scratch")),
        libc::EXDEV,
        "a dir, instance -> projects",
    );
    expect_errno(
        fs::rename(
            work.join("notes.txt"),
            ccs.profile("solo").join("notes.txt"),
        ),
        libc::EXDEV,
        "work -> solo",
    );

    for (from, to) in [
        ("notes.txt", "projects/notes.txt"),
        ("scratch", "projects/scratch"),
    ] {
        let out = Command::new("mv")
            .arg(work.join(from))
            .arg(work.join(to))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mv {from} {to}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            fs::symlink_metadata(work.join(from)).is_err(),
            "{from} still there after mv"
        );
    }
    assert_eq!(read_str(&work.join("projects/notes.txt")), "notes");
    assert_eq!(read_str(&work.join("projects/scratch/sub/f")), "deep");
    assert_eq!(
        read_str(&ccs.group_projects("team").join("scratch/sub/f")),
        "deep"
    );
    assert_eq!(
        read_str(&ccs.profile("personal").join("projects/notes.txt")),
        "notes"
    );
    assert!(!ccs.instance("work").join("notes.txt").exists());

    // In an isolated profile, projects/ is part of the instance: a plain rename.
    let solo = ccs.profile("solo");
    fs::create_dir(solo.join("projects")).unwrap();
    fs::write(solo.join("n"), "n").unwrap();
    fs::rename(solo.join("n"), solo.join("projects/n")).expect("solo/n -> solo/projects/n");
    assert_eq!(read_str(&ccs.instance("solo").join("projects/n")), "n");
}

#[test]
fn hard_links_share_the_inode_and_count_links_at_once() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        let (f, g) = (base.join("f"), base.join("g"));
        fs::write(&f, "data").unwrap();
        assert_eq!(fs::metadata(&f).unwrap().nlink(), 1);
        fs::hard_link(&f, &g).unwrap();
        let (mf, mg) = (fs::metadata(&f).unwrap(), fs::metadata(&g).unwrap());
        assert_eq!(mf.ino(), mg.ino(), "{}: same st_ino", base.display());
        assert_eq!(
            (mf.nlink(), mg.nlink()),
            (2, 2),
            "{}: st_nlink after link",
            base.display()
        );
        assert_eq!(fs::metadata(backing.join("f")).unwrap().nlink(), 2);
        fs::OpenOptions::new()
            .append(true)
            .open(&g)
            .unwrap()
            .write_all(b"+g")
            .unwrap();
        assert_eq!(read_str(&f), "data+g");
        fs::remove_file(&g).unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().nlink(),
            1,
            "{}: st_nlink after unlink",
            base.display()
        );
        expect_errno(fs::metadata(&g), libc::ENOENT, "unlinked link");
    }
    let work = ccs.profile("work");
    fs::write(work.join("x"), "x").unwrap();
    expect_errno(
        fs::hard_link(work.join("x"), work.join("projects/x")),
        libc::EXDEV,
        "instance -> projects",
    );
    fs::write(work.join("projects/y"), "y").unwrap();
    expect_errno(
        fs::hard_link(work.join("projects/y"), work.join("todos/y")),
        libc::EXDEV,
        "projects -> todos",
    );
    expect_errno(
        fs::hard_link(work.join("projects/y"), ccs.profile("solo").join("y")),
        libc::EXDEV,
        "work/projects -> solo",
    );
    assert_eq!(fs::metadata(work.join("x")).unwrap().nlink(), 1);
}

#[test]
fn symlink_and_readlink() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        fs::write(base.join("target"), "T").unwrap();
        symlink("target", base.join("l")).unwrap();
        assert_eq!(fs::read_link(base.join("l")).unwrap(), Path::new("target"));
        assert!(
            fs::symlink_metadata(base.join("l"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(read_str(&base.join("l")), "T");
        assert_eq!(fs::symlink_metadata(base.join("l")).unwrap().len(), 6);
        symlink("missing", base.join("dangling")).unwrap();
        expect_errno(
            fs::read(base.join("dangling")),
            libc::ENOENT,
            "dangling symlink",
        );
        fs::create_dir(base.join("sub")).unwrap();
        fs::write(base.join("sub/x"), "x").unwrap();
        symlink("sub", base.join("ls")).unwrap();
        assert_eq!(read_str(&base.join("ls/x")), "x");
        assert_eq!(
            fs::read_link(backing.join("l")).unwrap(),
            Path::new("target")
        );
        assert_eq!(fs::read_link(backing.join("ls")).unwrap(), Path::new("sub"));
    }
}

#[test]
fn fifos_and_sockets() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        let fifo = base.join("fifo");
        sys::mkfifo(&fifo, 0o600).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(
            fs::symlink_metadata(backing.join("fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                fs::OpenOptions::new()
                    .write(true)
                    .open(&fifo)
                    .unwrap()
                    .write_all(b"through the fifo")
                    .unwrap();
            })
        };
        let mut got = String::new();
        fs::File::open(&fifo)
            .unwrap()
            .read_to_string(&mut got)
            .unwrap();
        writer.join().unwrap();
        assert_eq!(got, "through the fifo");

        let sock = base.join("s.sock");
        let listener =
            UnixListener::bind(&sock).unwrap_or_else(|e| panic!("bind {}: {e}", sock.display()));
        assert!(fs::symlink_metadata(&sock).unwrap().file_type().is_socket());
        assert!(
            fs::symlink_metadata(backing.join("s.sock"))
                .unwrap()
                .file_type()
                .is_socket()
        );
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"ping");
            s.write_all(b"pong").unwrap();
        });
        let mut c = UnixStream::connect(&sock)
            .unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        server.join().unwrap();
    }
}

#[test]
fn chmod_and_chown() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        let f = base.join("f");
        fs::write(&f, "f").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(sys::mode(&f), 0o640);
        assert_eq!(sys::mode(&backing.join("f")), 0o640);
        fs::create_dir(base.join("d")).unwrap();
        fs::set_permissions(base.join("d"), fs::Permissions::from_mode(0o750)).unwrap();
        assert_eq!(sys::mode(&base.join("d")), 0o750);
        assert_eq!(sys::mode(&backing.join("d")), 0o750);

        if !is_root() {
            continue;
        }
        std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
        let md = fs::metadata(&f).unwrap();
        assert_eq!((md.uid(), md.gid()), (65534, 65534), "through the mount");
        let bmd = fs::metadata(backing.join("f")).unwrap();
        assert_eq!((bmd.uid(), bmd.gid()), (65534, 65534), "backing owner");

        fs::write(base.join("g"), "g").unwrap();
        symlink("g", base.join("lg")).unwrap();
        std::os::unix::fs::lchown(base.join("lg"), Some(65534), Some(65534)).unwrap();
        let lmd = fs::symlink_metadata(base.join("lg")).unwrap();
        assert_eq!(
            (lmd.uid(), lmd.gid()),
            (65534, 65534),
            "lchown on a symlink"
        );
        assert_eq!(
            fs::metadata(base.join("g")).unwrap().uid(),
            0,
            "lchown must not follow"
        );
        assert_eq!(
            fs::symlink_metadata(backing.join("lg")).unwrap().uid(),
            65534
        );
    }
}

#[test]
fn truncate_grows_and_shrinks() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        let f = base.join("f");
        fs::write(&f, [b'a'; 100]).unwrap();
        rw(&f).set_len(1000).unwrap();
        let data = fs::read(&f).unwrap();
        assert_eq!(data.len(), 1000);
        assert!(data[..100].iter().all(|&b| b == b'a') && data[100..].iter().all(|&b| b == 0));
        sys::truncate(&f, 10).expect("truncate(2) to shrink");
        assert_eq!(fs::metadata(&f).unwrap().len(), 10);
        assert_eq!(fs::read(&f).unwrap(), [b'a'; 10]);
        sys::truncate(&f, 5000).expect("truncate(2) to grow");
        assert_eq!(fs::metadata(&f).unwrap().len(), 5000);
        assert_eq!(fs::metadata(backing.join("f")).unwrap().len(), 5000);
        let file = rw(&f);
        file.set_len(3).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 3);
        assert_eq!(fs::read(&f).unwrap(), b"aaa");
    }
}

#[test]
fn utimensat_explicit_now_and_omit() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        for f in [base.join("f"), base.join("d")] {
            if f.ends_with("d") {
                fs::create_dir(&f).unwrap();
            } else {
                fs::write(&f, "f").unwrap();
            }
            let times = |p: &Path| {
                let m = fs::metadata(p).unwrap();
                (m.atime(), m.atime_nsec(), m.mtime(), m.mtime_nsec())
            };
            utimensat(
                &f,
                ts(1_000_000_000, 123_456_789),
                ts(1_500_000_000, 987_654_321),
            )
            .unwrap();
            let want = (1_000_000_000, 123_456_789, 1_500_000_000, 987_654_321);
            assert_eq!(times(&f), want, "{} explicit times", f.display());
            assert_eq!(
                times(&backing.join(f.file_name().unwrap())),
                want,
                "backing"
            );

            let before = now_secs();
            utimensat(&f, ts(0, libc::UTIME_OMIT), ts(0, libc::UTIME_NOW)).unwrap();
            let (as_, ans, ms, _) = times(&f);
            assert_eq!(
                (as_, ans),
                (1_000_000_000, 123_456_789),
                "UTIME_OMIT keeps atime"
            );
            assert!(
                ms >= before - 1 && ms <= now_secs() + 1,
                "UTIME_NOW mtime {ms}"
            );
            let (_, _, ms2, mns2) = times(&f);

            utimensat(&f, ts(1_200_000_000, 5), ts(0, libc::UTIME_OMIT)).unwrap();
            assert_eq!(
                times(&f),
                (1_200_000_000, 5, ms2, mns2),
                "UTIME_OMIT keeps mtime"
            );

            utimensat(&f, ts(0, libc::UTIME_NOW), ts(0, libc::UTIME_NOW)).unwrap();
            let (a3, _, m3, _) = times(&f);
            assert!(a3 >= before - 1 && m3 >= before - 1, "UTIME_NOW both");
        }
    }
}

#[test]
fn open_flags_and_fsync() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        let f = base.join("f");
        fs::write(&f, "abc").unwrap();
        expect_errno(
            fs::OpenOptions::new().write(true).create_new(true).open(&f),
            libc::EEXIST,
            "O_EXCL on an existing file",
        );
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(base.join("new"))
            .expect("O_EXCL on a new name");

        let mut a = fs::OpenOptions::new().append(true).open(&f).unwrap();
        a.write_all(b"def").unwrap();
        a.seek(SeekFrom::Start(0)).unwrap();
        a.write_all(b"ghi").unwrap();
        drop(a);
        assert_eq!(read_str(&f), "abcdefghi", "O_APPEND writes go to the end");

        let mut t = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&f)
            .unwrap();
        assert_eq!(t.metadata().unwrap().len(), 0, "O_TRUNC");
        t.write_all(b"new").unwrap();
        t.sync_all().expect("fsync");
        t.sync_data().expect("fdatasync");
        drop(t);
        assert_eq!(read_str(&f), "new");
        assert_eq!(read_str(&backing.join("f")), "new");
        fs::File::open(&base)
            .unwrap()
            .sync_all()
            .expect("fsync on a dir");
    }
}

/// Re-opening a file that was open before (with kernel passthrough, a handle whose backing fd
/// ccsfs opens only when an operation needs one): every fd operation still works, also after
/// the name is gone.
#[test]
fn a_reopened_file_supports_every_fd_operation() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        let p = base.join("again");
        fs::write(&p, "0123456789").unwrap();
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        f.sync_all().expect("fsync");
        f.sync_data().expect("fdatasync");
        f.set_len(4).expect("ftruncate");
        assert_eq!(read_str(&backing.join("again")), "0123");
        sys::fallocate(f.as_raw_fd(), 0, 0, 8192).expect("fallocate");
        assert_eq!(f.metadata().unwrap().len(), 8192);
        assert_eq!(sys::lseek(f.as_raw_fd(), 0, libc::SEEK_END).unwrap(), 8192);
        assert_eq!(sys::lseek(f.as_raw_fd(), 0, libc::SEEK_DATA).unwrap(), 0);
        f.set_len(4).unwrap();
        let mut a = fs::OpenOptions::new().append(true).open(&p).unwrap();
        a.write_all(b"abc").unwrap();
        f.write_all_at(b"XY", 0).unwrap();
        let mut buf = [0u8; 7];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"XY23abc");
        fs::remove_file(&p).unwrap();
        a.write_all(b"!").unwrap();
        a.sync_all().expect("fsync of an unlinked file");
        f.set_len(2).expect("ftruncate of an unlinked file");
        assert_eq!(f.metadata().unwrap().len(), 2);
        assert_eq!(f.metadata().unwrap().nlink(), 0);
    }
}

#[test]
fn an_unlinked_open_file_stays_usable() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        let p = base.join("f");
        let f = rw(&p);
        f.write_all_at(b"hello", 0).unwrap();
        fs::remove_file(&p).unwrap();
        expect_errno(fs::metadata(&p), libc::ENOENT, "the unlinked name");
        assert!(!backing.join("f").exists());
        assert_eq!(
            f.metadata().unwrap().nlink(),
            0,
            "fstat st_nlink of an unlinked file"
        );
        let mut buf = [0u8; 5];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello");
        f.write_all_at(b" world", 5).unwrap();
        let mut buf = [0u8; 11];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello world");
        assert_eq!(f.metadata().unwrap().len(), 11);
    }
}

#[test]
fn user_xattrs() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        for name in ["f", "d"] {
            let p = base.join(name);
            if name == "d" {
                fs::create_dir(&p).unwrap();
            } else {
                fs::write(&p, "f").unwrap();
            }
            sys::setxattr(&p, "user.test", b"value", 0).unwrap();
            assert_eq!(
                sys::getxattr(&p, "user.test", 0).unwrap().len(),
                5,
                "size query"
            );
            assert_eq!(sys::getxattr(&p, "user.test", 64).unwrap(), b"value");
            expect_errno(
                sys::getxattr(&p, "user.test", 2),
                libc::ERANGE,
                "too small a buffer",
            );
            assert!(
                sys::listxattr(&p)
                    .unwrap()
                    .contains(&"user.test".to_string())
            );
            expect_errno(
                sys::setxattr(&p, "user.test", b"x", libc::XATTR_CREATE),
                libc::EEXIST,
                "XATTR_CREATE on an existing name",
            );
            expect_errno(
                sys::setxattr(&p, "user.other", b"x", libc::XATTR_REPLACE),
                libc::ENODATA,
                "XATTR_REPLACE on a missing name",
            );
            assert_eq!(
                sys::getxattr(&backing.join(name), "user.test", 64).unwrap(),
                b"value"
            );
            sys::removexattr(&p, "user.test").unwrap();
            expect_errno(
                sys::getxattr(&p, "user.test", 64),
                libc::ENODATA,
                "removed xattr",
            );
            expect_errno(
                sys::getxattr(&p, "user.missing", 64),
                libc::ENODATA,
                "missing xattr",
            );
            expect_errno(
                sys::removexattr(&p, "user.test"),
                libc::ENODATA,
                "remove twice",
            );
            assert!(
                !sys::listxattr(&p)
                    .unwrap()
                    .contains(&"user.test".to_string())
            );
        }
    }
}

const MIB: i64 = 1 << 20;

#[test]
fn seek_data_and_seek_hole_on_a_sparse_file() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, _) in bases(&ccs) {
        let f = rw(&base.join("sparse"));
        f.write_all_at(&[b'A'; 4096], 0).unwrap();
        f.write_all_at(&[b'B'; 4096], (MIB + 4096) as u64).unwrap();
        let fd = f.as_raw_fd();
        let end = MIB + 8192;
        assert_eq!(f.metadata().unwrap().len(), end as u64);
        assert_eq!(sys::lseek(fd, 0, libc::SEEK_DATA).unwrap(), 0);
        assert_eq!(
            sys::lseek(fd, 0, libc::SEEK_HOLE).unwrap(),
            4096,
            "first hole"
        );
        assert_eq!(
            sys::lseek(fd, 4096, libc::SEEK_DATA).unwrap(),
            MIB + 4096,
            "second data"
        );
        assert_eq!(
            sys::lseek(fd, MIB + 4096, libc::SEEK_HOLE).unwrap(),
            end,
            "EOF hole"
        );
        expect_errno(
            sys::lseek(fd, end, libc::SEEK_DATA),
            libc::ENXIO,
            "SEEK_DATA at EOF",
        );
        assert!(
            f.metadata().unwrap().blocks() * 512 < MIB as u64,
            "the file is sparse"
        );
        let mut mid = [1u8; 16];
        f.read_exact_at(&mut mid, 4096 * 10).unwrap();
        assert_eq!(mid, [0u8; 16]);
    }
}

#[test]
fn fallocate_grows_and_punches_holes() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for (base, backing) in bases(&ccs) {
        let f = rw(&base.join("falloc"));
        let fd = f.as_raw_fd();
        sys::fallocate(fd, 0, 0, 65536).expect("fallocate mode 0");
        assert_eq!(f.metadata().unwrap().len(), 65536);
        assert_eq!(fs::metadata(base.join("falloc")).unwrap().len(), 65536);
        assert_eq!(fs::metadata(backing.join("falloc")).unwrap().len(), 65536);
        assert!(fs::metadata(backing.join("falloc")).unwrap().blocks() >= 128);
        f.write_all_at(&[b'X'; 65536], 0).unwrap();
        sys::fallocate(
            fd,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            4096,
            8192,
        )
        .expect("punch a hole");
        assert_eq!(f.metadata().unwrap().len(), 65536, "KEEP_SIZE");
        let data = fs::read(base.join("falloc")).unwrap();
        assert_eq!(data.len(), 65536);
        assert!(data[..4096].iter().all(|&b| b == b'X'));
        assert!(
            data[4096..12288].iter().all(|&b| b == 0),
            "the hole reads as zeros"
        );
        assert!(data[12288..].iter().all(|&b| b == b'X'));
        assert_eq!(sys::lseek(fd, 0, libc::SEEK_HOLE).unwrap(), 4096);
        sys::fallocate(fd, libc::FALLOC_FL_KEEP_SIZE, 65536, 65536).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 65536);
        sys::fallocate(fd, 0, 65536, 4096).unwrap();
        assert_eq!(
            fs::metadata(base.join("falloc")).unwrap().len(),
            65536 + 4096
        );
    }
}

#[test]
fn copy_file_range_copies_bytes() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let src_data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
    for (base, backing) in bases(&ccs) {
        fs::write(base.join("src"), &src_data).unwrap();
        let src = fs::File::open(base.join("src")).unwrap();
        let dst = rw(&base.join("dst"));
        let mut done = 0usize;
        while done < 100_000 {
            let n = sys::copy_file_range(
                src.as_raw_fd(),
                1000 + done as i64,
                dst.as_raw_fd(),
                done as i64,
                100_000 - done,
            )
            .expect("copy_file_range");
            assert!(n > 0, "copy_file_range made no progress");
            done += n;
        }
        assert_eq!(dst.metadata().unwrap().len(), 100_000);
        assert!(fs::read(base.join("dst")).unwrap() == src_data[1000..101_000]);
        assert!(fs::read(backing.join("dst")).unwrap() == src_data[1000..101_000]);
    }
    // Between a file in an instance and one in the group store.
    let src = fs::File::open(ccs.profile("solo").join("src")).unwrap();
    let dst = rw(&ccs.profile("work").join("projects/cross"));
    let n = sys::copy_file_range(src.as_raw_fd(), 0, dst.as_raw_fd(), 0, 5000).unwrap();
    assert!(n > 0);
    assert!(fs::read(ccs.profile("work").join("projects/cross")).unwrap() == src_data[..n]);
}

#[test]
fn inode_numbers_are_stable_across_cache_drops_and_remounts() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let rels = [
        "solo",
        "solo/d",
        "solo/d/f",
        "solo/.claude.json",
        "work",
        "work/projects",
        "work/projects/-p",
        "work/projects/-p/s.jsonl",
        "work/todos",
        "work/todos/t.json",
        "personal/projects/-p/s.jsonl",
        "work.lock",
    ];
    let inos = |ccs: &Ccs| -> Vec<u64> {
        rels.iter()
            .map(|r| fs::symlink_metadata(ccs.mnt.join(r)).unwrap().ino())
            .collect()
    };
    let m = ccs.mount();
    fs::create_dir(ccs.mnt.join("solo/d")).unwrap();
    fs::write(ccs.mnt.join("solo/d/f"), "f").unwrap();
    fs::write(ccs.mnt.join("solo/.claude.json"), "{}").unwrap();
    fs::create_dir(ccs.mnt.join("work/projects/-p")).unwrap();
    fs::write(ccs.mnt.join("work/projects/-p/s.jsonl"), "s").unwrap();
    fs::write(ccs.mnt.join("work/todos/t.json"), "t").unwrap();
    fs::create_dir(ccs.mnt.join("work.lock")).unwrap();
    let first = inos(&ccs);
    let unique: BTreeSet<u64> = first.iter().copied().collect();
    assert_eq!(
        unique.len(),
        first.len(),
        "distinct files have distinct st_ino: {first:?}"
    );

    // Listings report the same numbers as stat.
    for dir in [
        "",
        "solo",
        "solo/d",
        "work",
        "work/projects/-p",
        "personal/projects/-p",
    ] {
        for e in fs::read_dir(ccs.mnt.join(dir)).unwrap() {
            let e = e.unwrap();
            let st = fs::symlink_metadata(e.path()).unwrap().ino();
            assert_eq!(e.ino(), st, "d_ino vs st_ino of {}", e.path().display());
        }
    }
    if is_root() {
        sys::drop_caches();
        assert_eq!(inos(&ccs), first, "after drop_caches");
    }
    drop(m);
    let _m = ccs.mount();
    assert_eq!(inos(&ccs), first, "after unmount + mount");
}

/// Reads `dir` with getdents64 in 512-byte batches; after each batch deletes up to two files
/// already listed and creates three new ones. Returns every name returned, in order.
fn list_under_churn(dir: &Path, originals: &BTreeSet<String>) -> Vec<String> {
    let fd = open_dir(dir).unwrap();
    let mut seen = Vec::new();
    let mut deletable = Vec::new();
    let mut created = 0;
    loop {
        let batch = getdents(&fd, 512).unwrap();
        if batch.is_empty() {
            break;
        }
        for e in batch {
            if originals.contains(&e.name) {
                deletable.push(e.name.clone());
            }
            seen.push(e.name);
        }
        for _ in 0..2 {
            if let Some(victim) = deletable.pop() {
                fs::remove_file(dir.join(&victim)).unwrap();
            }
        }
        for _ in 0..3 {
            fs::write(dir.join(format!("new-{created:04}")), "n").unwrap();
            created += 1;
        }
    }
    assert!(
        created > 10,
        "only {created} batches: the churn did not happen"
    );
    seen
}

#[track_caller]
fn assert_listed_once(seen: &[String], must: &BTreeSet<String>, what: &str) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for n in seen {
        *counts.entry(n).or_default() += 1;
    }
    let mut dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    dups.sort();
    assert!(dups.is_empty(), "{what}: names returned twice: {dups:?}");
    let missing: Vec<_> = must
        .iter()
        .filter(|n| !counts.contains_key(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: {} names never returned: {missing:?}",
        missing.len()
    );
}

#[test]
fn readdir_offsets_are_stable_while_entries_change() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();

    let big = ccs.profile("solo").join("big");
    fs::create_dir(&big).unwrap();
    let originals: BTreeSet<String> = (0..500).map(|i| format!("o{i:03}")).collect();
    for n in &originals {
        fs::write(big.join(n), "o").unwrap();
    }
    let seen = list_under_churn(&big, &originals);
    let mut must = originals.clone();
    must.extend([".".to_string(), "..".to_string()]);
    assert_listed_once(&seen, &must, "solo/big");

    let work = ccs.profile("work");
    let originals: BTreeSet<String> = (0..300).map(|i| format!("w{i:03}")).collect();
    for n in &originals {
        fs::write(work.join(n), "w").unwrap();
    }
    let seen = list_under_churn(&work, &originals);
    let mut must = originals.clone();
    for n in [
        ".",
        "..",
        "projects",
        "todos",
        "session-env",
        "file-history",
        "shell-snapshots",
    ] {
        must.insert(n.to_string());
    }
    assert_listed_once(&seen, &must, "work/");
}

#[test]
fn telldir_and_seekdir_return_to_the_same_place() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let big = ccs.profile("solo").join("big");
    fs::create_dir(&big).unwrap();
    let work = ccs.profile("work");
    for i in 0..300 {
        fs::write(big.join(format!("f{i:03}")), "f").unwrap();
        fs::write(work.join(format!("w{i:03}")), "w").unwrap();
    }
    for (dir, total) in [(big, 302), (work, 307)] {
        let mut d = DirStream::open(&dir).unwrap();
        for _ in 0..100 {
            d.next_name().expect("an entry");
        }
        let pos = d.tell();
        let next: Vec<String> = (0..10).map(|_| d.next_name().unwrap()).collect();
        for _ in 0..150 {
            d.next_name();
        }
        d.seek(pos);
        let again: Vec<String> = (0..10).map(|_| d.next_name().unwrap()).collect();
        assert_eq!(
            again,
            next,
            "{}: seekdir(telldir()) went elsewhere",
            dir.display()
        );
        d.rewind();
        let mut all = Vec::new();
        while let Some(n) = d.next_name() {
            all.push(n);
        }
        assert_eq!(
            all.len(),
            total,
            "{}: full listing after rewinddir",
            dir.display()
        );
        let unique: BTreeSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), total);
    }
}

#[test]
fn statfs_on_a_profile_dir() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let backing = sys::statfs(&ccs.ccs).unwrap();
    for p in [
        ccs.profile("solo"),
        ccs.profile("work").join("projects"),
        ccs.mnt.clone(),
    ] {
        let s = sys::statfs(&p).unwrap_or_else(|e| panic!("statfs {}: {e}", p.display()));
        assert!(s.f_bsize > 0, "{}: f_bsize", p.display());
        assert!(
            s.f_namelen >= 255,
            "{}: f_namelen {}",
            p.display(),
            s.f_namelen
        );
        assert!(s.f_blocks > 0);
        assert_eq!(
            s.f_blocks,
            backing.f_blocks,
            "{}: f_blocks of the backing fs",
            p.display()
        );
    }
}
