//! Lock files: one per held transcript under `<group>/.ccsfs/locks/`, so that every daemon
//! sharing the store (on this host or another) sees the same owner. A lock file is named after
//! the file's identity (its inode number; see `file_name`) and holds one JSON record (serde),
//! which no file name can break. Also the read/write/remove operations, spare files, and the
//! per-group `flock` that makes a daemon's read-decide-write atomic against the others (flock
//! is honoured across NFS clients too).
//!
//! Lock files of earlier versions (key=value text, named after the transcript's path) are
//! never read: their names cannot be matched to a file, and none is named like a new one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::policy::{FileId, HostId, Record};
use crate::procs::ProcId;

pub const LOCKS_DIR: &str = ".ccsfs/locks";

/// The record format this version writes and reads.
const FORMAT: u32 = 2;

pub fn locks_dir(group_dir: &Path) -> PathBuf {
    group_dir.join(LOCKS_DIR)
}

/// The lock file name for the file `(dev, ino)` in a store whose group dir is on `group_dev`.
/// A file on the group dir's own filesystem is named by its inode number alone, so that
/// machines sharing the store over NFS (each with its own device number for it) agree; a file
/// on another filesystem mounted inside the store has its device in the name too.
pub fn file_name(group_dev: u64, dev: u64, ino: u64) -> String {
    if dev == group_dev {
        format!("ino-{ino}.lock")
    } else {
        format!("dev-{dev}-ino-{ino}.lock")
    }
}

/// The lock file of the file `(dev, ino)` in the store at `group_dir`.
pub fn lock_file(group_dir: &Path, dev: u64, ino: u64) -> io::Result<PathBuf> {
    let group_dev = std::fs::metadata(group_dir)?.dev();
    Ok(locks_dir(group_dir).join(file_name(group_dev, dev, ino)))
}

/// A record as stored: JSON, one object. The lease is stored as a length: it runs from the
/// file's mtime, so that renewing it is a `touch`, not a rewrite.
#[derive(Serialize, Deserialize)]
struct Stored {
    v: u32,
    ino: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    btime_ns: Option<u64>,
    path: String,
    host: String,
    boot_id: String,
    pid: u32,
    start: u64,
    profile: String,
    since: u64,
    lease: u64,
    daemon_pid: u32,
    daemon_start: u64,
    #[serde(default)]
    orphaned: bool,
}

/// The text of a lock file written at `now` (Unix seconds).
pub fn to_text(r: &Record, now: u64) -> String {
    let stored = Stored {
        v: FORMAT,
        ino: r.file.ino,
        btime_ns: r.file.btime,
        path: r.path.clone(),
        host: r.host.name.clone(),
        boot_id: r.host.boot_id.clone(),
        pid: r.owner.pid,
        start: r.owner.start,
        profile: r.profile.clone(),
        since: r.since,
        lease: r.lease_until.saturating_sub(now),
        daemon_pid: r.daemon.pid,
        daemon_start: r.daemon.start,
        orphaned: r.orphaned,
    };
    let mut text = serde_json::to_string(&stored).expect("a record serializes");
    text.push('\n');
    text
}

/// Parses a lock file whose mtime (the start of its current lease) is `mtime` (Unix seconds).
/// Anything else (an older version's text, a torn or foreign file) is no record.
pub fn parse(text: &str, mtime: u64) -> Option<Record> {
    let s: Stored = serde_json::from_str(text).ok()?;
    if s.v != FORMAT {
        return None;
    }
    Some(Record {
        file: FileId {
            ino: s.ino,
            btime: s.btime_ns,
        },
        path: s.path,
        host: HostId {
            name: s.host,
            boot_id: s.boot_id,
        },
        owner: ProcId {
            pid: s.pid,
            start: s.start,
        },
        profile: s.profile,
        since: s.since,
        lease_until: mtime.saturating_add(s.lease),
        daemon: ProcId {
            pid: s.daemon_pid,
            start: s.daemon_start,
        },
        orphaned: s.orphaned,
    })
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

/// A lock file this daemon wrote. While it keeps the fd it was written with, it is watched
/// through that: if anyone else replaces it (temp file + rename) or removes it, its link count
/// drops to zero, and only our own renewals move its mtime. One `fstat`, no path walk: this
/// check runs on every write-open by a transcript's owner. A process may own thousands of
/// transcripts, so the manager keeps fds only for the most recently used locks (see
/// `LockManager`); a lock without one is checked by path: the same file (dev, ino) with our
/// mtime.
#[derive(Debug)]
pub struct Written {
    file: Option<File>,
    /// The lock file's (dev, ino).
    id: (u64, u64),
    /// Its mtime as we last set it.
    mtime_ns: i64,
}

impl Written {
    fn new(file: File, m: &std::fs::Metadata) -> Written {
        Written {
            file: Some(file),
            id: (m.dev(), m.ino()),
            mtime_ns: mtime_ns(m),
        }
    }

    /// Whether the lock file at `path` is still the one we wrote, as we left it.
    pub fn intact(&self, path: &Path) -> bool {
        match &self.file {
            Some(f) => f
                .metadata()
                .is_ok_and(|m| m.nlink() > 0 && self.is_ours(&m)),
            None => std::fs::symlink_metadata(path)
                .is_ok_and(|m| (m.dev(), m.ino()) == self.id && self.is_ours(&m)),
        }
    }

    fn is_ours(&self, m: &std::fs::Metadata) -> bool {
        mtime_ns(m) == self.mtime_ns
    }

    /// Closes the watching fd: from now on the lock is checked by path.
    pub fn let_go_of_fd(&mut self) {
        self.file = None;
    }

    /// Renews the lease (the lease runs from the file's mtime): false if the file at `path`
    /// is no longer ours.
    pub fn renew(&mut self, path: &Path) -> bool {
        let opened;
        let f = match &self.file {
            Some(f) => f,
            None => {
                // Opened without following links, and checked to be ours through the fd
                // before it is touched.
                let Ok(f) = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                else {
                    return false;
                };
                opened = f;
                &opened
            }
        };
        let ours = |m: &std::fs::Metadata| m.nlink() > 0 && (m.dev(), m.ino()) == self.id;
        if !f.metadata().is_ok_and(|m| ours(&m) && self.is_ours(&m)) {
            return false;
        }
        // SAFETY: an fd we own; null times mean "now".
        if unsafe { libc::futimens(f.as_raw_fd(), std::ptr::null()) } != 0 {
            return false;
        }
        match f.metadata() {
            Ok(m) if ours(&m) => {
                self.mtime_ns = mtime_ns(&m);
                true
            }
            _ => false,
        }
    }
}

/// Reads a lock file; a missing or unreadable one is no lock.
pub fn read(path: &Path) -> Option<Record> {
    let f = std::fs::File::open(path).ok()?;
    let mtime = f.metadata().ok()?.mtime().max(0) as u64;
    parse(&std::io::read_to_string(f).ok()?, mtime)
}

/// Creates `<group>/.ccsfs/locks` when a first open in it finds it missing.
fn open_in_locks_dir(dir: &Path, open: impl Fn() -> io::Result<File>) -> io::Result<File> {
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            open()
        }
        r => r,
    }
}

/// Where released lock files wait to be used again, under a group's locks dir.
pub const SPARE_DIR: &str = ".spare";

/// At most this many spares are kept (per daemon's count); past that, released lock files
/// are deleted.
const MAX_SPARES: usize = crate::tunables::MAX_SPARE_LOCK_FILES;

/// Spare lock files. Making an inode is the dearest part of taking a lock on some filesystems
/// (ext2/3/4 without a journal scan for an inode not deleted recently: about 0.5 ms a file on
/// the CI machine, as much as the transcript's own create), and deleting one makes the next
/// make dearer still. So a released lock file is renamed into `<locks>/.spare/`, and a new
/// lock is written into a spare and renamed into place. The spare dir is shared by every
/// daemon: spares are only taken under the group's flock, so no two daemons take the same
/// one, and a crashed daemon's spares are simply used by the next.
#[derive(Default)]
pub struct Spares {
    /// Per locks dir: spare names known to exist, and whether a scan found it empty.
    known: parking_lot::Mutex<std::collections::HashMap<PathBuf, (Vec<PathBuf>, bool)>>,
    next: std::sync::atomic::AtomicU64,
}

impl Spares {
    /// A spare in `locks_dir`, if there is one (the caller holds the group's flock).
    fn take(&self, locks_dir: &Path) -> Option<PathBuf> {
        let mut known = self.known.lock();
        let (names, scanned_empty) = known.entry(locks_dir.to_path_buf()).or_default();
        if names.is_empty() && !*scanned_empty {
            // Spares left by other daemons (or before a restart).
            *names = std::fs::read_dir(locks_dir.join(SPARE_DIR))
                .map(|d| d.flatten().map(|e| e.path()).take(MAX_SPARES).collect())
                .unwrap_or_default();
            *scanned_empty = names.is_empty();
        }
        names.pop()
    }

    /// A lock file we held and no longer need: kept as a spare (or deleted past the limit).
    pub fn recycle(&self, path: &Path) {
        let Some(dir) = path.parent() else { return };
        let mut known = self.known.lock();
        let (names, scanned_empty) = known.entry(dir.to_path_buf()).or_default();
        if names.len() < MAX_SPARES {
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let spare = dir
                .join(SPARE_DIR)
                .join(format!("{}-{n}", std::process::id()));
            let moved = std::fs::rename(path, &spare).or_else(|e| {
                if e.kind() != io::ErrorKind::NotFound || !path.exists() {
                    return Err(e);
                }
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(dir.join(SPARE_DIR))?;
                std::fs::rename(path, &spare)
            });
            if moved.is_ok() {
                names.push(spare);
                *scanned_empty = false;
                return;
            }
        }
        remove(path);
    }
}

/// Writes `text` into a spare and renames it to `path`; None when no spare could be used.
fn write_into_spare(spares: &Spares, path: &Path, text: &str) -> Option<io::Result<Written>> {
    let dir = path.parent()?;
    loop {
        let spare = spares.take(dir)?;
        // Gone (another daemon took it, or someone cleaned up): try the next.
        let Ok(f) = OpenOptions::new().write(true).open(&spare) else {
            continue;
        };
        // Written over the old record: no block is freed and made again.
        let done = f
            .metadata()
            .and_then(|m| overwrite(&f, text, m.len()))
            .and_then(|()| std::fs::rename(&spare, path))
            .and_then(|()| f.metadata());
        return Some(done.map(|m| Written::new(f, &m)));
    }
}

/// A spare longer than this is cut to length rather than padded (a record with a very long
/// path must not make every later record in that file as long).
const MAX_PADDED: u64 = 4096;

/// Puts `text` (one JSON line) in place of a spare's old record of `old_len` bytes. A shorter
/// record is padded with spaces before its newline to the old length (JSON allows trailing
/// whitespace, so every reader parses it as before): one `pwrite`, where cutting the file to
/// length was an `ftruncate` as well, which on ext4 is a journalled inode change of its own
/// (about 4.8 µs against 1.3 µs for the write here). A crash in between leaves a spare or a
/// lock file of a dead owner, which is harmless either way.
fn overwrite(f: &File, text: &str, old_len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = text.len() as u64;
    if old_len <= len || old_len > MAX_PADDED {
        f.write_all_at(text.as_bytes(), 0)?;
        if old_len > len {
            f.set_len(len)?;
        }
        return Ok(());
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut padded = String::with_capacity(old_len as usize);
    padded.push_str(body);
    padded.extend(std::iter::repeat_n(' ', (old_len - len) as usize));
    padded.push('\n');
    f.write_all_at(padded.as_bytes(), 0)
}

/// Writes a lock file atomically (a spare or a new temp file, renamed into place), to be
/// watched through its fd. The caller holds the group's flock.
pub fn write(path: &Path, r: &Record, spares: &Spares) -> io::Result<Written> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let text = to_text(r, now);
    if let Some(done) = write_into_spare(spares, path, &text) {
        return done;
    }
    let dir = path.parent().expect("lock files live in a dir");
    let tmp = dir.join(format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut f = open_in_locks_dir(dir, || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
    })?;
    f.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, path)?;
    let m = f.metadata()?;
    Ok(Written::new(f, &m))
}

pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Every readable lock record under a group dir, with its lock file.
pub fn list(group_dir: &Path) -> Vec<(PathBuf, Record)> {
    let Ok(entries) = std::fs::read_dir(locks_dir(group_dir)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().as_encoded_bytes().ends_with(b".lock"))
        .filter_map(|e| Some((e.path(), read(&e.path())?)))
        .collect()
}

/// Holds the per-group mutex (an exclusive flock) until dropped.
pub struct GroupMutex {
    _file: File,
}

impl GroupMutex {
    pub fn lock(group_dir: &Path) -> io::Result<GroupMutex> {
        Self::lock_in(&locks_dir(group_dir))
    }

    /// The same mutex, named by the group's locks dir.
    pub fn lock_in(dir: &Path) -> io::Result<GroupMutex> {
        let f = open_in_locks_dir(dir, || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .truncate(false)
                .open(dir.join(".mutex"))
        })?;
        // SAFETY: flock on an fd we own; blocks until the other daemons let go.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(GroupMutex { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str) -> Record {
        Record {
            file: FileId {
                ino: path.len() as u64,
                btime: Some(1_700_000_000_123_456_789),
            },
            path: path.into(),
            host: HostId {
                name: "box".into(),
                boot_id: "1234-ab".into(),
            },
            owner: ProcId {
                pid: 42,
                start: 9000,
            },
            profile: "work".into(),
            since: 1_700_000_000,
            lease_until: 1_700_000_030,
            daemon: ProcId { pid: 7, start: 70 },
            orphaned: false,
        }
    }

    #[test]
    fn text_round_trips() {
        let r = rec("projects/-home-me/abc.jsonl");
        // The lease is stored as a length from the file's mtime.
        assert_eq!(
            parse(&to_text(&r, 1_700_000_000), 1_700_000_000),
            Some(r.clone())
        );
        let later = parse(&to_text(&r, 1_700_000_000), 1_700_000_100).unwrap();
        assert_eq!(
            later.lease_until,
            r.lease_until + 100,
            "a touch renews the lease"
        );
        let orphaned = Record {
            orphaned: true,
            file: FileId {
                ino: 3,
                btime: None,
            },
            ..r.clone()
        };
        assert_eq!(
            parse(&to_text(&orphaned, 1_700_000_000), 1_700_000_000),
            Some(orphaned)
        );
        assert_eq!(
            parse("{\"pid\":1}", 0),
            None,
            "an incomplete file is no lock"
        );
        assert_eq!(parse("", 0), None);
    }

    #[test]
    fn a_name_cannot_forge_fields() {
        let evil = "projects/p/inj\nhost=evilhost\npid=1\n\",\"host\":\"evil\",\".jsonl";
        let r = rec(evil);
        let text = to_text(&r, 1_700_000_000);
        assert_eq!(text.lines().count(), 1, "one line: {text}");
        assert_eq!(parse(&text, 1_700_000_000), Some(r));
    }

    #[test]
    fn an_older_versions_text_is_no_record() {
        let old = "path=projects/p/s.jsonl\nhost=box\nboot_id=1\npid=42\nstart=9000\nprofile=work\nsince=1\nlease=30\ndaemon=7\n";
        assert_eq!(parse(old, 0), None);
        let future = to_text(&rec("p"), 0).replace("\"v\":2", "\"v\":3");
        assert_eq!(
            parse(&future, 0),
            None,
            "an unknown format is not guessed at"
        );
    }

    #[test]
    fn names_are_the_files_identity() {
        assert_eq!(file_name(10, 10, 1234), "ino-1234.lock");
        assert_eq!(file_name(10, 11, 1234), "dev-11-ino-1234.lock");
        assert_ne!(file_name(10, 10, 1234), file_name(10, 11, 1234));
    }

    #[test]
    fn released_lock_files_are_used_again() {
        let d = tempfile::tempdir().unwrap();
        let dir = locks_dir(d.path());
        let spares = Spares::default();
        let (a, b) = (rec("projects/p/a.jsonl"), rec("projects/p/b.jsonl"));
        let pa = dir.join(file_name(1, 1, 1));
        let pb = dir.join(file_name(1, 1, 2));
        write(&pa, &a, &spares).unwrap();
        let ino = std::fs::metadata(&pa).unwrap().ino();
        spares.recycle(&pa);
        assert!(!pa.exists(), "a released lock is gone from its name");
        assert!(list(d.path()).is_empty(), "spares are no locks");
        let w = write(&pb, &b, &spares).unwrap();
        assert!(w.intact(&pb));
        assert_eq!(
            std::fs::metadata(&pb).unwrap().ino(),
            ino,
            "the new lock reuses the inode"
        );
        assert_eq!(read(&pb).map(|r| r.path), Some(b.path.clone()));
        assert_eq!(
            std::fs::read_dir(dir.join(SPARE_DIR)).unwrap().count(),
            0,
            "the spare was used"
        );
        // Another daemon finds spares left behind by this one.
        spares.recycle(&pb);
        let other = Spares::default();
        write(&pa, &a, &other).unwrap();
        assert_eq!(std::fs::metadata(&pa).unwrap().ino(), ino);
        // With no spare, a new file is made.
        write(&pb, &b, &other).unwrap();
        assert_ne!(std::fs::metadata(&pb).unwrap().ino(), ino);
    }

    #[test]
    fn a_spare_is_written_over_without_cutting_it() {
        let d = tempfile::tempdir().unwrap();
        let spares = Spares::default();
        let long = rec(&"projects/p/".repeat(20));
        let short = rec("projects/p/s.jsonl");
        let dir = locks_dir(d.path());
        let (pa, pb) = (dir.join(file_name(1, 1, 1)), dir.join(file_name(1, 1, 2)));
        write(&pa, &long, &spares).unwrap();
        let long_len = std::fs::metadata(&pa).unwrap().len();
        spares.recycle(&pa);
        // The short record in the long spare: padded to its length, read back the same.
        write(&pb, &short, &spares).unwrap();
        let text = std::fs::read_to_string(&pb).unwrap();
        assert_eq!(text.len() as u64, long_len);
        assert!(
            text.ends_with(" \n") && text.lines().count() == 1,
            "{text:?}"
        );
        assert_eq!(read(&pb).map(|r| r.path), Some(short.path.clone()));
        // And the long one in that spare again: exactly its own text.
        spares.recycle(&pb);
        write(&pa, &long, &spares).unwrap();
        assert_eq!(std::fs::metadata(&pa).unwrap().len(), long_len);
        assert_eq!(read(&pa).map(|r| r.path), Some(long.path));
    }

    #[test]
    fn write_read_list_remove() {
        let d = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let r = Record {
            lease_until: now + 30,
            ..rec("projects/p/s.jsonl")
        };
        let path = locks_dir(d.path()).join(file_name(1, 1, 5));
        let w1 = write(&path, &r, &Spares::default()).unwrap();
        assert!(w1.intact(&path));
        let back = read(&path).unwrap();
        assert!(
            back.lease_until.abs_diff(r.lease_until) <= 1,
            "lease runs from the write"
        );
        assert_eq!(
            Record {
                lease_until: r.lease_until,
                ..back.clone()
            },
            r
        );
        assert_eq!(list(d.path()), vec![(path.clone(), back)]);
        let mut w2 = write(
            &path,
            &Record {
                lease_until: 5,
                ..r
            },
            &Spares::default(),
        )
        .unwrap();
        assert!(!w1.intact(&path), "a rewrite by anyone else is noticed");
        assert!(w2.intact(&path));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(w2.renew(&path), "renewing our own file");
        assert!(w2.intact(&path), "our own renewal keeps it intact");
        let _m = GroupMutex::lock(d.path()).unwrap();
        remove(&path);
        assert!(!w2.intact(&path), "a removal is noticed");
        assert!(!w2.renew(&path), "a removed file is not renewed");
        assert!(list(d.path()).is_empty(), "the mutex file is not a lock");
    }

    #[test]
    fn a_lock_without_its_fd_is_checked_by_path() {
        let d = tempfile::tempdir().unwrap();
        let r = rec("projects/p/s.jsonl");
        let path = locks_dir(d.path()).join(file_name(1, 1, 5));
        let mut w1 = write(&path, &r, &Spares::default()).unwrap();
        w1.let_go_of_fd();
        assert!(w1.intact(&path));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(w1.renew(&path), "renewed through a fresh open");
        assert!(w1.intact(&path), "our own renewal keeps it intact");
        let mut w2 = write(&path, &r, &Spares::default()).unwrap();
        assert!(!w1.intact(&path), "a replacement is noticed");
        assert!(!w1.renew(&path), "a replacement is not renewed");
        w2.let_go_of_fd();
        assert!(w2.intact(&path));
        let f = File::options().write(true).open(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        // SAFETY: an fd we own; null times mean "now".
        let touched = unsafe { libc::futimens(f.as_raw_fd(), std::ptr::null()) };
        assert_eq!(touched, 0);
        assert!(!w2.intact(&path), "a touch by anyone else is noticed");
        assert!(!w2.renew(&path));
        remove(&path);
        assert!(!w2.intact(&path), "a removal is noticed");
    }
}
