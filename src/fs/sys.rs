//! Safe wrappers over the raw syscalls the filesystem needs: `*at()` calls on O_PATH fds,
//! `/proc/self/fd` re-opens, getdents64, and per-thread fs credentials. Nothing here knows
//! about profiles or FUSE replies; every function returns the raw errno on failure.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use fuser::Errno;

pub type SysResult<T> = Result<T, Errno>;

pub fn errno() -> Errno {
    Errno::from_i32(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// A rustix error as the errno FUSE replies with.
fn rx(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

fn check(ret: libc::c_int) -> SysResult<libc::c_int> {
    if ret < 0 { Err(errno()) } else { Ok(ret) }
}

fn check_fd(ret: libc::c_int) -> SysResult<OwnedFd> {
    // SAFETY: a non-negative return of an fd-creating syscall is a new fd that we own.
    check(ret).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn cstr(name: &OsStr) -> SysResult<CString> {
    CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)
}

/// `/proc/self/fd/N`: re-opens, xattrs and times go through it, as in libfuse's passthrough_hp.
pub fn proc_path(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a proc path")
}

/// An O_PATH handle on `name` in `dir`, never following a final symlink.
pub fn open_path_at(dir: BorrowedFd, name: &CStr) -> SysResult<OwnedFd> {
    // SAFETY: valid dirfd and NUL-terminated name.
    check_fd(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

/// An O_PATH handle on a configured directory (instance or store root); symlinks are followed
/// because these paths come from the user's own configuration.
pub fn open_dir_path(path: &Path) -> SysResult<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: NUL-terminated path.
    check_fd(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

/// An O_PATH handle on a configured file (a shared resource such as `settings.json`), symlinks
/// followed as for `open_dir_path`.
pub fn open_file_path(path: &Path) -> SysResult<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: NUL-terminated path.
    check_fd(unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })
}

/// Opens the file behind an O_PATH fd with real access flags.
pub fn reopen(fd: BorrowedFd, flags: libc::c_int) -> SysResult<OwnedFd> {
    let p = proc_path(fd.as_raw_fd());
    // SAFETY: NUL-terminated path.
    check_fd(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) })
}

/// Opens a directory behind an O_PATH fd for reading entries.
pub fn open_dir(fd: BorrowedFd) -> SysResult<OwnedFd> {
    // SAFETY: valid dirfd and a static name.
    check_fd(unsafe {
        libc::openat(
            fd.as_raw_fd(),
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

pub fn fstat(fd: BorrowedFd) -> SysResult<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is written by the kernel on success.
    check(unsafe {
        libc::fstatat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            st.as_mut_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: initialised by the successful call above.
    Ok(unsafe { st.assume_init() })
}

/// `statx` of `name` in `dir`, or of `dir` itself when `name` is empty; never follows a final
/// symlink. Returns the attributes as a `stat`, and the file's generation as FUSE reports it:
/// its birth time in ns where the filesystem keeps one (a new file that got a freed inode
/// number has another), else 0.
pub fn statx_at(dir: BorrowedFd, name: &CStr) -> SysResult<(libc::stat, u64)> {
    let mut flags = libc::AT_SYMLINK_NOFOLLOW;
    if name.is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: a valid dirfd, a NUL-terminated path and a buffer of the right type.
    check(unsafe {
        libc::statx(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            stx.as_mut_ptr(),
        )
    })?;
    // SAFETY: filled in by the successful call (and zeroed before).
    let x = unsafe { stx.assume_init() };
    // SAFETY: `stat` is plain integers (and padding): all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    st.st_dev = libc::makedev(x.stx_dev_major, x.stx_dev_minor);
    st.st_ino = x.stx_ino;
    st.st_mode = u32::from(x.stx_mode);
    st.st_nlink = u64::from(x.stx_nlink);
    st.st_uid = x.stx_uid;
    st.st_gid = x.stx_gid;
    st.st_rdev = libc::makedev(x.stx_rdev_major, x.stx_rdev_minor);
    st.st_size = x.stx_size as libc::off_t;
    st.st_blksize = libc::blksize_t::from(x.stx_blksize);
    st.st_blocks = x.stx_blocks as libc::blkcnt_t;
    st.st_atime = x.stx_atime.tv_sec;
    st.st_atime_nsec = i64::from(x.stx_atime.tv_nsec);
    st.st_mtime = x.stx_mtime.tv_sec;
    st.st_mtime_nsec = i64::from(x.stx_mtime.tv_nsec);
    st.st_ctime = x.stx_ctime.tv_sec;
    st.st_ctime_nsec = i64::from(x.stx_ctime.tv_nsec);
    let generation = if x.stx_mask & libc::STATX_BTIME != 0 {
        (x.stx_btime.tv_sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(u64::from(x.stx_btime.tv_nsec))
    } else {
        0
    };
    Ok((st, generation))
}

pub fn fstatat(dir: BorrowedFd, name: &CStr) -> SysResult<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is written by the kernel on success.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: initialised by the successful call above.
    Ok(unsafe { st.assume_init() })
}

pub fn openat_create(
    dir: BorrowedFd,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> SysResult<OwnedFd> {
    // SAFETY: valid dirfd and NUL-terminated name.
    check_fd(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })
}

pub fn mkdirat(dir: BorrowedFd, name: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: valid dirfd and NUL-terminated name.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

pub fn mknodat(dir: BorrowedFd, name: &CStr, mode: u32, rdev: u64) -> SysResult<()> {
    // SAFETY: valid dirfd and NUL-terminated name.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, rdev) }).map(drop)
}

pub fn symlinkat(target: &CStr, dir: BorrowedFd, name: &CStr) -> SysResult<()> {
    // SAFETY: NUL-terminated strings and a valid dirfd.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// Hard-links the file behind an O_PATH fd as `dir/name` (no CAP_DAC_READ_SEARCH needed).
pub fn link_fd_at(fd: BorrowedFd, dir: BorrowedFd, name: &CStr) -> SysResult<()> {
    let p = proc_path(fd.as_raw_fd());
    // SAFETY: NUL-terminated strings and valid fds.
    check(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            p.as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(drop)
}

pub fn unlinkat(dir: BorrowedFd, name: &CStr, flags: libc::c_int) -> SysResult<()> {
    // SAFETY: valid dirfd and NUL-terminated name.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

pub fn renameat2(
    olddir: BorrowedFd,
    old: &CStr,
    newdir: BorrowedFd,
    new: &CStr,
    flags: u32,
) -> SysResult<()> {
    // SAFETY: valid dirfds and NUL-terminated names.
    check(unsafe {
        libc::renameat2(
            olddir.as_raw_fd(),
            old.as_ptr(),
            newdir.as_raw_fd(),
            new.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

pub fn readlink_fd(fd: BorrowedFd) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buffer is valid for its length; an O_PATH symlink fd with "" reads the link.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(errno());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// The current absolute backing path of an fd (for the symlink containment rule only).
pub fn fd_path(fd: BorrowedFd) -> SysResult<std::path::PathBuf> {
    std::fs::read_link(OsStr::from_bytes(proc_path(fd.as_raw_fd()).as_bytes())).map_err(Errno::from)
}

pub fn fchmod_path(fd: BorrowedFd, mode: u32) -> SysResult<()> {
    let p = proc_path(fd.as_raw_fd());
    // SAFETY: NUL-terminated path.
    check(unsafe { libc::chmod(p.as_ptr(), mode) }).map(drop)
}

pub fn fchown_fd(fd: BorrowedFd, uid: Option<u32>, gid: Option<u32>) -> SysResult<()> {
    let uid = uid.unwrap_or(u32::MAX);
    let gid = gid.unwrap_or(u32::MAX);
    // SAFETY: valid fd and a static empty name with AT_EMPTY_PATH.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

pub fn truncate_path(fd: BorrowedFd, size: u64) -> SysResult<()> {
    let p = proc_path(fd.as_raw_fd());
    // SAFETY: NUL-terminated path.
    check(unsafe { libc::truncate(p.as_ptr(), size as libc::off_t) }).map(drop)
}

/// The mode without S_ISUID, and without S_ISGID when group-executable (set-gid without group
/// execute marks mandatory locking and stays), as the kernel drops them when an unprivileged
/// user changes a file; None when nothing changes.
pub fn without_setid(mode: u32) -> Option<u32> {
    let old = mode & 0o7777;
    let mut m = old & !libc::S_ISUID;
    if old & libc::S_IXGRP != 0 {
        m &= !libc::S_ISGID;
    }
    (m != old).then_some(m)
}

/// Drops the set-id bits of the open file `fd`; Err(ENOENT) when there were none to drop.
pub fn drop_setid_fd(fd: BorrowedFd) -> SysResult<()> {
    let st = fstat(fd)?;
    match without_setid(st.st_mode) {
        // SAFETY: plain syscall on an open fd.
        Some(m) => check(unsafe { libc::fchmod(fd.as_raw_fd(), m) }).map(drop),
        None => Err(Errno::ENOENT),
    }
}

/// Drops the set-id bits of the file behind an O_PATH fd.
pub fn drop_setid_path(fd: BorrowedFd) -> SysResult<()> {
    match without_setid(fstat(fd)?.st_mode) {
        Some(m) => fchmod_path(fd, m),
        None => Ok(()),
    }
}

pub fn ftruncate(fd: BorrowedFd, size: u64) -> SysResult<()> {
    rustix::fs::ftruncate(fd, size).map_err(rx)
}

/// Sets times on the file behind an O_PATH fd; `None` leaves a time as it is (UTIME_OMIT).
pub fn utimens_fd(fd: BorrowedFd, times: [libc::timespec; 2]) -> SysResult<()> {
    let p = proc_path(fd.as_raw_fd());
    // SAFETY: NUL-terminated path and a two-element array.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) }).map(drop)
}

pub fn pread(fd: BorrowedFd, size: usize, offset: u64) -> SysResult<Vec<u8>> {
    let mut buf = Vec::<u8>::with_capacity(size);
    rustix::io::pread(fd, rustix::buffer::spare_capacity(&mut buf), offset).map_err(rx)?;
    Ok(buf)
}

pub fn pwrite(fd: BorrowedFd, data: &[u8], offset: u64) -> SysResult<usize> {
    rustix::io::pwrite(fd, data, offset).map_err(rx)
}

pub fn fsync(fd: BorrowedFd, datasync: bool) -> SysResult<()> {
    if datasync {
        rustix::fs::fdatasync(fd)
    } else {
        rustix::fs::fsync(fd)
    }
    .map_err(rx)
}

/// `lseek(2)` with a raw `whence` as FUSE passes it (SEEK_SET, _CUR, _END, _DATA, _HOLE).
pub fn lseek(fd: BorrowedFd, offset: i64, whence: i32) -> SysResult<i64> {
    use rustix::fs::SeekFrom;
    let pos = match whence {
        libc::SEEK_SET => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::EINVAL)?),
        libc::SEEK_CUR => SeekFrom::Current(offset),
        libc::SEEK_END => SeekFrom::End(offset),
        libc::SEEK_DATA => SeekFrom::Data(u64::try_from(offset).map_err(|_| Errno::ENXIO)?),
        libc::SEEK_HOLE => SeekFrom::Hole(u64::try_from(offset).map_err(|_| Errno::ENXIO)?),
        _ => return Err(Errno::EINVAL),
    };
    let at = rustix::fs::seek(fd, pos).map_err(rx)?;
    i64::try_from(at).map_err(|_| Errno::EOVERFLOW)
}

pub fn fallocate(fd: BorrowedFd, mode: i32, offset: u64, len: u64) -> SysResult<()> {
    let mode = rustix::fs::FallocateFlags::from_bits_retain(mode as u32);
    rustix::fs::fallocate(fd, mode, offset, len).map_err(rx)
}

pub fn copy_file_range(
    fd_in: BorrowedFd,
    off_in: u64,
    fd_out: BorrowedFd,
    off_out: u64,
    len: u64,
) -> SysResult<usize> {
    let (mut i, mut o) = (off_in, off_out);
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    rustix::fs::copy_file_range(fd_in, Some(&mut i), fd_out, Some(&mut o), len).map_err(rx)
}

pub fn fstatvfs(fd: BorrowedFd) -> SysResult<libc::statvfs> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: written by the kernel on success.
    check(unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: initialised by the successful call above.
    Ok(unsafe { st.assume_init() })
}

pub fn access_path(fd: BorrowedFd, mask: i32) -> SysResult<()> {
    let p = proc_path(fd.as_raw_fd());
    // SAFETY: NUL-terminated path.
    check(unsafe { libc::faccessat(libc::AT_FDCWD, p.as_ptr(), mask, 0) }).map(drop)
}

/// Runs a get/list-xattr style call with a buffer of `size` bytes (a null buffer when 0, which
/// asks for the length) and returns the bytes it filled (or `n` zeros for a length query).
fn xattr_buffer(
    size: usize,
    call: impl FnOnce(*mut libc::c_void, usize) -> isize,
) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; size];
    let ptr = if size == 0 {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    };
    let n = call(ptr, size);
    if n < 0 {
        return Err(errno());
    }
    buf.resize(n as usize, 0);
    Ok(buf)
}

/// getxattr on the file behind an O_PATH fd; `size` 0 asks for the value's length. (Through
/// the fd's /proc path: getxattrat(2) with AT_EMPTY_PATH refuses O_PATH fds, EBADF on 6.18.)
pub fn getxattr(fd: BorrowedFd, name: &CStr, size: usize) -> SysResult<Vec<u8>> {
    let p = proc_path(fd.as_raw_fd());
    // SAFETY: the buffer handed in is valid for `size` bytes (or null with size 0).
    xattr_buffer(size, |buf, size| unsafe {
        libc::getxattr(p.as_ptr(), name.as_ptr(), buf, size)
    })
}

/// listxattr on the file behind an O_PATH fd; `size` 0 asks for the list's length.
pub fn listxattr(fd: BorrowedFd, size: usize) -> SysResult<Vec<u8>> {
    let p = proc_path(fd.as_raw_fd());
    // SAFETY: as in getxattr.
    xattr_buffer(size, |buf, size| unsafe {
        libc::listxattr(p.as_ptr(), buf.cast(), size)
    })
}

pub fn setxattr(fd: BorrowedFd, name: &CStr, value: &[u8], flags: i32) -> SysResult<()> {
    let p = proc_path(fd.as_raw_fd());
    // SAFETY: valid strings and slice.
    check(unsafe {
        libc::setxattr(
            p.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

pub fn removexattr(fd: BorrowedFd, name: &CStr) -> SysResult<()> {
    let p = proc_path(fd.as_raw_fd());
    // SAFETY: valid strings.
    check(unsafe { libc::removexattr(p.as_ptr(), name.as_ptr()) }).map(drop)
}

/// One entry of a getdents64 batch.
pub struct RawDirent {
    pub ino: u64,
    pub next_offset: u64,
    pub dtype: u8,
    pub name: OsString,
}

/// Reads one batch of entries starting at `offset` (a cookie from an earlier entry, or 0).
pub fn getdents_from(fd: BorrowedFd, offset: u64, buf: &mut [u8]) -> SysResult<Vec<RawDirent>> {
    lseek(fd, offset as i64, libc::SEEK_SET)?;
    // SAFETY: buffer valid for its length.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(errno());
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < n as usize {
        let rec = &buf[pos..];
        let ino = u64::from_ne_bytes(rec[0..8].try_into().expect("8 bytes"));
        let off = i64::from_ne_bytes(rec[8..16].try_into().expect("8 bytes"));
        let reclen = u16::from_ne_bytes(rec[16..18].try_into().expect("2 bytes")) as usize;
        let dtype = rec[18];
        let name_bytes = &rec[19..reclen];
        let len = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        out.push(RawDirent {
            ino,
            next_offset: off as u64,
            dtype,
            name: OsString::from_vec(name_bytes[..len].to_vec()),
        });
        pos += reclen;
    }
    Ok(out)
}

/// Runs file-creating syscalls with the caller's uid/gid as fs credentials, so new files belong
/// to the caller when the daemon runs as root. Per thread; restored on drop.
pub struct CallerCreds {
    active: bool,
}

impl CallerCreds {
    pub fn assume(enabled: bool, uid: u32, gid: u32) -> CallerCreds {
        // A root caller of a root daemon already has the credentials it needs.
        let enabled = enabled && (uid, gid) != (0, 0);
        if enabled {
            // SAFETY: setfsgid/setfsuid only change this thread's fs credentials.
            unsafe {
                libc::setfsgid(gid);
                libc::setfsuid(uid);
            }
        }
        CallerCreds { active: enabled }
    }
}

impl Drop for CallerCreds {
    fn drop(&mut self) {
        if self.active {
            // SAFETY: restores this thread's fs credentials to the daemon's (root).
            unsafe {
                libc::setfsuid(0);
                libc::setfsgid(0);
            }
        }
    }
}
