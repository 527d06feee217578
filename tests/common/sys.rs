//! Thin libc wrappers and small assertions for the mount tests (routing, isolation,
//! claude_patterns, posix): errno checks, renameat2, xattrs, lseek, fallocate,
//! copy_file_range, utimensat, statfs, raw getdents64 and telldir/seekdir, dir snapshots.
//! Included with `#[path = "common/sys.rs"] mod sys;`.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::{CStr, CString};
use std::fmt::Debug;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in a test path")
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

pub fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::EBUSY => "EBUSY",
        libc::EXDEV => "EXDEV",
        libc::EISDIR => "EISDIR",
        libc::ENOTDIR => "ENOTDIR",
        libc::ERANGE => "ERANGE",
        libc::ENODATA => "ENODATA",
        libc::ENXIO => "ENXIO",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EINVAL => "EINVAL",
        libc::EACCES => "EACCES",
        libc::ELOOP => "ELOOP",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => "(other)",
    }
}

/// Asserts that `r` failed with exactly `want`.
#[track_caller]
pub fn expect_errno<T: Debug>(r: io::Result<T>, want: i32, what: &str) {
    match r {
        Ok(v) => panic!(
            "{what}: expected {} but it succeeded ({v:?})",
            errno_name(want)
        ),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(want),
            "{what}: expected {}, got {e} ({})",
            errno_name(want),
            errno_name(e.raw_os_error().unwrap_or(0))
        ),
    }
}

/// The names in a dir (without `.` and `..`).
pub fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// The names in a dir in listing order, duplicates kept.
pub fn names_list(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

pub fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A recursive picture of a tree that never follows symlinks: relative path → kind, mode and
/// contents (file bytes, link target, or nothing for dirs).
pub fn tree_snapshot(root: &Path) -> Vec<(String, String, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String, u32, Vec<u8>)>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let md = fs::symlink_metadata(&p).unwrap();
            let mode = md.mode() & 0o7777;
            if md.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.push((rel, "link".into(), mode, t.as_os_str().as_bytes().to_vec()));
            } else if md.is_dir() {
                out.push((rel, "dir".into(), mode, Vec::new()));
                walk(root, &p, out);
            } else {
                out.push((rel, "file".into(), mode, fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

pub fn renameat2(from: &Path, to: &Path, flags: u32) -> io::Result<()> {
    let (a, b) = (cpath(from), cpath(to));
    // SAFETY: NUL-terminated paths.
    cvt(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

pub fn mkfifo(p: &Path, mode: u32) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: NUL-terminated path.
    cvt(unsafe { libc::mkfifo(c.as_ptr(), mode) }).map(drop)
}

pub fn ts(sec: i64, nsec: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

pub fn utimensat(p: &Path, atime: libc::timespec, mtime: libc::timespec) -> io::Result<()> {
    let c = cpath(p);
    let times = [atime, mtime];
    // SAFETY: NUL-terminated path and a two-element array.
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) }).map(drop)
}

pub fn truncate(p: &Path, len: i64) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: NUL-terminated path.
    cvt(unsafe { libc::truncate(c.as_ptr(), len) }).map(drop)
}

pub fn setxattr(p: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let (c, n) = (cpath(p), CString::new(name).unwrap());
    // SAFETY: valid strings and slice.
    cvt(unsafe {
        libc::setxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

/// getxattr with a buffer of exactly `size` bytes (0 asks for the length; the result is then
/// a vector of that many zero bytes).
pub fn getxattr(p: &Path, name: &str, size: usize) -> io::Result<Vec<u8>> {
    let (c, n) = (cpath(p), CString::new(name).unwrap());
    let mut buf = vec![0u8; size];
    let ptr = if size == 0 {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    };
    // SAFETY: the buffer is valid for `size` bytes.
    let n = cvt_size(unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), ptr, size) })?;
    if size == 0 {
        return Ok(vec![0; n]);
    }
    buf.truncate(n);
    Ok(buf)
}

pub fn listxattr(p: &Path) -> io::Result<Vec<String>> {
    let c = cpath(p);
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: the buffer is valid for its length.
    let n = cvt_size(unsafe { libc::listxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(buf[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

pub fn removexattr(p: &Path, name: &str) -> io::Result<()> {
    let (c, n) = (cpath(p), CString::new(name).unwrap());
    // SAFETY: valid strings.
    cvt(unsafe { libc::removexattr(c.as_ptr(), n.as_ptr()) }).map(drop)
}

pub fn lseek(fd: RawFd, off: i64, whence: i32) -> io::Result<i64> {
    // SAFETY: plain syscall.
    let r = unsafe { libc::lseek(fd, off, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn fallocate(fd: RawFd, mode: i32, off: i64, len: i64) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::fallocate(fd, mode, off, len) }).map(drop)
}

pub fn copy_file_range(
    fd_in: RawFd,
    off_in: i64,
    fd_out: RawFd,
    off_out: i64,
    len: usize,
) -> io::Result<usize> {
    let (mut i, mut o) = (off_in, off_out);
    // SAFETY: the offsets point at valid locals.
    cvt_size(unsafe { libc::copy_file_range(fd_in, &mut i, fd_out, &mut o, len, 0) })
}

pub fn statfs(p: &Path) -> io::Result<libc::statfs> {
    let c = cpath(p);
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: written by the kernel on success.
    cvt(unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: initialised by the successful call.
    Ok(unsafe { st.assume_init() })
}

pub fn open_dir(p: &Path) -> io::Result<OwnedFd> {
    let c = cpath(p);
    // SAFETY: NUL-terminated path; a non-negative result is a new fd we own.
    let fd = cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One getdents64 record.
#[derive(Clone, Debug)]
pub struct Dirent {
    pub ino: u64,
    pub off: i64,
    pub name: String,
}

/// One getdents64 call with a buffer of `bufsize` bytes; empty at the end of the dir.
pub fn getdents(fd: &OwnedFd, bufsize: usize) -> io::Result<Vec<Dirent>> {
    let mut buf = vec![0u8; bufsize];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < n as usize {
        let rec = &buf[pos..];
        let ino = u64::from_ne_bytes(rec[0..8].try_into().unwrap());
        let off = i64::from_ne_bytes(rec[8..16].try_into().unwrap());
        let reclen = u16::from_ne_bytes(rec[16..18].try_into().unwrap()) as usize;
        let name = &rec[19..reclen];
        let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        out.push(Dirent {
            ino,
            off,
            name: String::from_utf8_lossy(&name[..len]).into_owned(),
        });
        pos += reclen;
    }
    Ok(out)
}

/// A libc `DIR*` stream (opendir/readdir/telldir/seekdir), closed on drop.
pub struct DirStream(*mut libc::DIR);

impl DirStream {
    pub fn open(p: &Path) -> io::Result<DirStream> {
        let c = cpath(p);
        // SAFETY: NUL-terminated path.
        let d = unsafe { libc::opendir(c.as_ptr()) };
        if d.is_null() {
            Err(io::Error::last_os_error())
        } else {
            Ok(DirStream(d))
        }
    }

    /// The next name, or None at the end.
    pub fn next_name(&mut self) -> Option<String> {
        // SAFETY: a valid DIR*; the returned dirent is valid until the next readdir.
        unsafe {
            let e = libc::readdir(self.0);
            if e.is_null() {
                return None;
            }
            Some(
                CStr::from_ptr((*e).d_name.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    }

    pub fn tell(&mut self) -> libc::c_long {
        // SAFETY: a valid DIR*.
        unsafe { libc::telldir(self.0) }
    }

    pub fn seek(&mut self, pos: libc::c_long) {
        // SAFETY: a valid DIR* and a position from telldir.
        unsafe { libc::seekdir(self.0, pos) }
    }

    pub fn rewind(&mut self) {
        // SAFETY: a valid DIR*.
        unsafe { libc::rewinddir(self.0) }
    }
}

impl Drop for DirStream {
    fn drop(&mut self) {
        // SAFETY: a valid DIR* closed once.
        unsafe { libc::closedir(self.0) };
    }
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches` (root only).
pub fn drop_caches() {
    // SAFETY: plain syscall.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3\n").expect("drop caches (needs root)");
}

/// The mode bits of a backing file.
pub fn perm(md: &fs::Metadata) -> u32 {
    md.permissions().mode() & 0o7777
}

/// `symlink(target, link)` is refused with EPERM and leaves nothing at `link`.
#[track_caller]
pub fn refused_to_make(target: impl AsRef<Path>, link: &Path) {
    let target = target.as_ref();
    expect_errno(
        std::os::unix::fs::symlink(target, link),
        libc::EPERM,
        &format!("symlink {} -> {}", link.display(), target.display()),
    );
    assert!(
        std::fs::symlink_metadata(link).is_err(),
        "{} was made",
        link.display()
    );
}
