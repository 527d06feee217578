//! The daemon's log file (`<ccs>/logs/ccsfs.log`): a writer for env_logger that survives the
//! file being deleted or replaced under it (`ccs cleanup --force` deletes every file in
//! `<ccs>/logs/`) by re-opening the path, that keeps its size bounded by rotating to
//! `ccsfs.log.1`, and that keeps fds 1 and 2 on the current file so panics and stray prints
//! follow it.
//!
//! Before each write it `stat`s the path (one syscall; log lines are rare) and compares the
//! (dev, ino) with the file it holds: a missing path or another inode means the file was
//! deleted or replaced, so the path is opened again (the dir created 0700, the file 0600).
//! When the file has reached [`MAX_LOG_BYTES`], it is renamed to `<name>.1` (replacing the
//! previous one) and a new file is started. Several daemons of one CCS dir may share the log:
//! the rename happens under an exclusive `flock` of the full file and only if the path still
//! names it, so a second writer sees a new inode and follows instead of rotating again.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The size at which the log is rotated to `<name>.1`. One old file is kept, so the logs take
/// at most about twice this (plus one record).
pub const MAX_LOG_BYTES: u64 = crate::tunables::MAX_LOG_BYTES;

/// After a failed re-open (a full disk, a dir made unwritable), how long the old file is used
/// before the next attempt.
const RETRY_AFTER: Duration = crate::tunables::LOG_RETRY_AFTER;

/// An append-only log file that follows its path. Cloning gives another handle on the same
/// file (for the panic hook); every write goes through one lock.
#[derive(Clone)]
pub struct LogFile {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    path: PathBuf,
    rotated: PathBuf,
    max_bytes: u64,
    /// dup2 every newly opened file onto fds 1 and 2.
    stdio: bool,
    file: File,
    /// (dev, ino) of `file`.
    id: (u64, u64),
    /// No re-open attempt before this instant (set when one failed).
    retry_at: Option<Instant>,
}

impl LogFile {
    /// Opens (creating) `path` for appending, with the dir made 0700 and the file 0600 when
    /// they are new. A relative path is made absolute first, so a later `chdir` does not move
    /// the log. Rotates at [`MAX_LOG_BYTES`]; fds 1 and 2 are left alone until
    /// [`LogFile::redirect_stdio`].
    pub fn open(path: &Path) -> io::Result<LogFile> {
        let path = std::path::absolute(path)?;
        let mut name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "log path has no name"))?
            .to_os_string();
        name.push(".1");
        let rotated = path.with_file_name(name);
        let (file, id) = open_append(&path)?;
        Ok(LogFile {
            inner: Arc::new(Mutex::new(Inner {
                path,
                rotated,
                max_bytes: MAX_LOG_BYTES,
                stdio: false,
                file,
                id,
                retry_at: None,
            })),
        })
    }

    /// Rotates at `max_bytes` instead of [`MAX_LOG_BYTES`] (tests use a small limit).
    pub fn with_max_bytes(self, max_bytes: u64) -> LogFile {
        self.inner.lock().max_bytes = max_bytes;
        self
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.inner.lock().path.clone()
    }

    /// Where the previous file goes on rotation: the path with `.1` appended.
    pub fn rotated_path(&self) -> PathBuf {
        self.inner.lock().rotated.clone()
    }

    /// Points fds 1 and 2 at the log file now and after every re-open or rotation. For the
    /// daemon only: a process's stdout and stderr are replaced for good.
    pub fn redirect_stdio(&self) -> io::Result<()> {
        let mut inner = self.inner.lock();
        inner.stdio = true;
        onto_stdio(&inner.file)
    }

    /// Makes a panic message land in the current file: before the default hook prints it to
    /// stderr, the log (and with [`LogFile::redirect_stdio`], fd 2) follows a deleted or
    /// replaced file.
    pub fn follow_on_panic(&self) {
        let log = self.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A panic while the log is locked (inside a write) must not deadlock here.
            if let Some(mut inner) = log.inner.try_lock() {
                inner.follow();
            }
            previous(info);
        }));
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut inner = self.inner.lock();
        inner.follow();
        inner.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Inner {
    /// Re-opens the path when the file there is not ours any more, and rotates ours when it
    /// is full. Failures keep the current file (a log line in a deleted file beats none).
    fn follow(&mut self) {
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.id => {
                if m.len() >= self.max_bytes {
                    self.rotate();
                }
            }
            _ => self.reopen(),
        }
    }

    fn rotate(&mut self) {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        // Another daemon sharing this log may be rotating it too: whoever gets the lock first
        // renames; the other then finds a new inode at the path and only re-opens.
        // Without flock (some network filesystems) the rename is still done, unguarded.
        let locked = self.file.lock().is_ok();
        let still_ours = std::fs::metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.id && m.len() >= self.max_bytes);
        let renamed = !still_ours || std::fs::rename(&self.path, &self.rotated).is_ok();
        if locked {
            let _ = self.file.unlock();
        }
        if !renamed {
            self.retry_at = Some(Instant::now() + RETRY_AFTER);
            return;
        }
        self.reopen();
    }

    fn reopen(&mut self) {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        match open_append(&self.path) {
            Ok((file, id)) => {
                if self.stdio {
                    let _ = onto_stdio(&file);
                }
                self.file = file;
                self.id = id;
                self.retry_at = None;
            }
            Err(_) => self.retry_at = Some(Instant::now() + RETRY_AFTER),
        }
    }
}

/// Opens `path` for appending, creating its dir (0700) and itself (0600) as needed; returns
/// the file and its (dev, ino).
fn open_append(path: &Path) -> io::Result<(File, (u64, u64))> {
    if let Some(dir) = path.parent() {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let m = file.metadata()?;
    Ok((file, (m.dev(), m.ino())))
}

/// Makes fds 1 and 2 refer to `file` (the same open file description, so O_APPEND holds).
fn onto_stdio(file: &File) -> io::Result<()> {
    for target in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: `file` is open for the whole call. dup2 atomically closes whatever fd 1 or 2
        // was and makes it a copy of `file`; fds 1 and 2 are the process's stdio, which no Rust
        // object owns (std's Stdout/Stderr only name the numbers), so no owner is invalidated.
        if unsafe { libc::dup2(file.as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn temp() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("ccsfs-logfile-")
            .tempdir()
            .unwrap()
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_the_dir_0700_and_the_file_0600_and_appends() {
        let tmp = temp();
        let path = tmp.path().join("logs/ccsfs.log");
        let mut log = LogFile::open(&path).unwrap();
        assert_eq!(mode(&tmp.path().join("logs")), 0o700);
        assert_eq!(mode(&path), 0o600);
        log.write_all(b"one\n").unwrap();
        drop(log);
        let mut log = LogFile::open(&path).unwrap();
        log.write_all(b"two\n").unwrap();
        assert_eq!(read(&path), "one\ntwo\n");
        assert_eq!(log.rotated_path(), tmp.path().join("logs/ccsfs.log.1"));
    }

    #[test]
    fn a_deleted_file_is_recreated_by_the_next_write() {
        let tmp = temp();
        let path = tmp.path().join("logs/ccsfs.log");
        let mut log = LogFile::open(&path).unwrap();
        log.write_all(b"before\n").unwrap();
        fs::remove_file(&path).unwrap();
        log.write_all(b"after\n").unwrap();
        assert_eq!(read(&path), "after\n");
        assert_eq!(mode(&path), 0o600);
        // And again: the re-opened file is followed the same way.
        fs::remove_file(&path).unwrap();
        log.write_all(b"again\n").unwrap();
        assert_eq!(read(&path), "again\n");
    }

    #[test]
    fn a_deleted_dir_is_recreated_0700() {
        let tmp = temp();
        let dir = tmp.path().join("logs");
        let path = dir.join("ccsfs.log");
        let mut log = LogFile::open(&path).unwrap();
        log.write_all(b"before\n").unwrap();
        fs::remove_dir_all(&dir).unwrap();
        log.write_all(b"after\n").unwrap();
        assert_eq!(read(&path), "after\n");
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_replaced_file_is_followed_and_appended_to() {
        let tmp = temp();
        let path = tmp.path().join("ccsfs.log");
        let mut log = LogFile::open(&path).unwrap();
        log.write_all(b"old\n").unwrap();
        let other = tmp.path().join("other");
        fs::write(&other, "someone else's\n").unwrap();
        fs::rename(&other, &path).unwrap();
        log.write_all(b"new\n").unwrap();
        assert_eq!(read(&path), "someone else's\nnew\n");
    }

    #[test]
    fn rotates_to_dot_1_at_the_limit_and_keeps_one_old_file() {
        let tmp = temp();
        let path = tmp.path().join("ccsfs.log");
        let rotated = tmp.path().join("ccsfs.log.1");
        let mut log = LogFile::open(&path).unwrap().with_max_bytes(20);
        log.write_all(b"0123456789\n").unwrap(); // 11 bytes
        log.write_all(b"abcdefghij\n").unwrap(); // 22: over the limit after this record
        assert!(!rotated.exists(), "rotated before the limit was reached");
        log.write_all(b"third\n").unwrap();
        assert_eq!(read(&rotated), "0123456789\nabcdefghij\n");
        assert_eq!(read(&path), "third\n");
        assert_eq!(mode(&path), 0o600);
        log.write_all(b"fourth line!\n").unwrap(); // 19
        log.write_all(b"fifth\n").unwrap(); // 25
        log.write_all(b"sixth\n").unwrap(); // rotates again: .1 replaced, no .2
        assert_eq!(read(&rotated), "third\nfourth line!\nfifth\n");
        assert_eq!(read(&path), "sixth\n");
        let names: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn the_default_limit_is_8_mib() {
        let tmp = temp();
        let log = LogFile::open(&tmp.path().join("ccsfs.log")).unwrap();
        assert_eq!(log.inner.lock().max_bytes, 8 << 20);
        assert_eq!(MAX_LOG_BYTES, 8 << 20);
    }

    #[test]
    fn two_writers_of_one_log_rotate_once_and_lose_nothing() {
        let tmp = temp();
        let path = tmp.path().join("ccsfs.log");
        let rotated = tmp.path().join("ccsfs.log.1");
        let mut a = LogFile::open(&path).unwrap().with_max_bytes(20);
        let mut b = LogFile::open(&path).unwrap().with_max_bytes(20);
        a.write_all(b"a1 ..................\n").unwrap(); // 22 bytes: full
        b.write_all(b"b1\n").unwrap(); // b rotates, then writes to the new file
        a.write_all(b"a2\n").unwrap(); // a finds a new inode and follows; no second rotation
        assert_eq!(read(&rotated), "a1 ..................\n");
        assert_eq!(read(&path), "b1\na2\n");
    }

    #[test]
    fn a_failed_reopen_keeps_writing_to_the_old_file() {
        let tmp = temp();
        let dir = tmp.path().join("logs");
        let path = dir.join("ccsfs.log");
        let mut log = LogFile::open(&path).unwrap();
        let kept = fs::File::open(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        // A file where the dir was: the dir cannot be created, so the re-open fails.
        fs::write(&dir, "not a dir").unwrap();
        log.write_all(b"still logged\n").unwrap();
        let mut text = String::new();
        io::Read::read_to_string(&mut &kept, &mut text).unwrap();
        assert_eq!(text, "still logged\n");
        // Once the way is clear again (and the retry delay passed), the path is re-created.
        fs::remove_file(&dir).unwrap();
        log.inner.lock().retry_at = None;
        log.write_all(b"back\n").unwrap();
        assert_eq!(read(&path), "back\n");
    }
}
