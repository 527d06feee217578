//! CCS's own lock on `config.yaml`: `<ccs>/config.yaml.lock`, taken around every
//! read-modify-write of the file so that neither CCS nor ccsfs loses the other's update.
//!
//! The protocol is CCS's (`dist/config/loader/io-locks.js` in `@kaitranntt/ccs`):
//! - the lock file holds `<pid>\n<Date.now() ms>\n<uuid token>` (no trailing newline), mode 0600,
//!   and is created only if absent;
//! - a lock whose pid is alive is respected; a lock whose pid is dead (or unreadable) is
//!   removed and taken anew;
//! - release removes the file only if its token (third line) is still ours.
//!
//! Differences, all on the careful side: the file appears with its content already in it (a
//! hard link of a finished temp file), so CCS never sees it empty; an unreadable lock is
//! waited on for a moment before it counts as dead, since its writer may be mid-write; a pid
//! we may not signal (EPERM) counts as alive; and we wait up to [`DEFAULT_WAIT`] where CCS
//! gives up after a second. File operations only.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The lock file's name inside the CCS dir.
pub const LOCK_FILE: &str = "config.yaml.lock";

/// How long [`ConfigLock::acquire`] waits for a live holder (CCS itself waits 10 × 100 ms).
pub const DEFAULT_WAIT: Duration = crate::tunables::CCS_LOCK_WAIT;

/// A lock file whose content cannot be read as `<pid>\n…` counts as abandoned once it is this
/// old (a writer between creating and filling it is much faster than this).
const UNREADABLE_GRACE: Duration = crate::tunables::CCS_LOCK_UNREADABLE_GRACE;

const POLL: Duration = crate::tunables::CCS_LOCK_POLL;

/// CCS's config lock, held until dropped.
#[derive(Debug)]
pub struct ConfigLock {
    path: PathBuf,
    token: String,
}

/// Who holds the lock when we could not take it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holder {
    /// A live process.
    Pid(i32),
    /// A file that does not (yet) name a pid.
    Unreadable,
}

impl ConfigLock {
    /// Takes `<ccs_dir>/config.yaml.lock`, waiting up to [`DEFAULT_WAIT`] for a live holder.
    /// Creates `ccs_dir` (mode 0700) if missing, as CCS does.
    pub fn acquire(ccs_dir: &Path) -> Result<ConfigLock, String> {
        ConfigLock::acquire_within(ccs_dir, DEFAULT_WAIT)
    }

    /// [`ConfigLock::acquire`] with another wait budget. The error is one line naming the
    /// holder and the fix.
    pub fn acquire_within(ccs_dir: &Path, wait: Duration) -> Result<ConfigLock, String> {
        let path = ccs_dir.join(LOCK_FILE);
        let token = new_token();
        let content = format!("{}\n{}\n{token}", std::process::id(), now_ms());
        let deadline = Instant::now() + wait;
        loop {
            let holder = match try_take(ccs_dir, &path, &token, &content) {
                Ok(None) => return Ok(ConfigLock { path, token }),
                Ok(Some(holder)) => holder,
                Err(e) => {
                    return Err(format!(
                        "cannot take {}: {e}; check the permissions of {}",
                        path.display(),
                        ccs_dir.display()
                    ));
                }
            };
            if Instant::now() >= deadline {
                return Err(busy_error(&path, &holder, wait));
            }
            thread::sleep(POLL);
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token this lock wrote (the lock file's third line).
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for ConfigLock {
    /// Removes the lock file only if it still carries our token, so a lock that someone took
    /// over (after deciding we were dead) is never removed by us.
    fn drop(&mut self) {
        if let Ok(content) = fs::read_to_string(&self.path)
            && content.trim().split('\n').nth(2) == Some(self.token.as_str())
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// One attempt: Ok(None) when the lock is now ours, Ok(Some(holder)) when a live holder has it.
fn try_take(ccs_dir: &Path, path: &Path, token: &str, content: &str) -> io::Result<Option<Holder>> {
    // A few rounds, in case the holder's file vanishes or is cleared between our looks.
    for _ in 0..3 {
        match create_exclusive(ccs_dir, path, token, content) {
            Ok(()) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let Some(seen) = read_existing(path)? else {
            continue; // released meanwhile
        };
        match holder_of(&seen, path) {
            Some(holder) => return Ok(Some(holder)),
            None => {
                // Dead holder: remove its file, but only if it is still the file we judged.
                if read_existing(path)?.as_deref() == Some(seen.as_str()) {
                    match fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    // Still contended after several rounds: report whoever holds it now.
    Ok(Some(
        read_existing(path)?
            .and_then(|seen| holder_of(&seen, path))
            .unwrap_or(Holder::Unreadable),
    ))
}

/// `Some(holder)` while the lock described by `content` is to be respected; None when its
/// owner is gone (as in CCS: a pid that is not a live process), or when it never named one and
/// is older than [`UNREADABLE_GRACE`].
fn holder_of(content: &str, path: &Path) -> Option<Holder> {
    let lines: Vec<&str> = content.trim().split('\n').collect();
    // A whole lock has three lines; fewer may be a writer caught mid-write.
    let pid = match lines[..] {
        [pid, _, _, ..] => pid.trim().parse::<i64>().ok(),
        _ => None,
    };
    match pid {
        Some(pid) => match i32::try_from(pid) {
            Ok(pid) if pid > 0 && pid_alive(pid) => Some(Holder::Pid(pid)),
            _ => None,
        },
        None => {
            let young = fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < UNREADABLE_GRACE);
            young.then_some(Holder::Unreadable)
        }
    }
}

/// Whether `pid` exists. EPERM means it does (someone else's process).
fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The lock file's content; None when it does not exist.
fn read_existing(path: &Path) -> io::Result<Option<String>> {
    let mut bytes = Vec::new();
    match fs::File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates `path` with `content` only if it does not exist (AlreadyExists otherwise). The file
/// is written under a private temp name and hard-linked into place, so it never appears empty;
/// where hard links are not supported, falls back to O_EXCL like CCS.
fn create_exclusive(ccs_dir: &Path, path: &Path, token: &str, content: &str) -> io::Result<()> {
    let tmp = ccs_dir.join(format!(".{LOCK_FILE}.ccsfs-{}-{token}", std::process::id()));
    let written = match write_new(&tmp, content) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // No CCS dir yet: make it as CCS does.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(ccs_dir)?;
            write_new(&tmp, content)
        }
        other => other,
    };
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::ENOTSUP | libc::ENOSYS | libc::EMLINK)
            ) =>
        {
            write_new(path, content)
        }
        other => other,
    }
}

/// Creates a new file (O_EXCL, mode 0600) holding `content`.
fn write_new(path: &Path, content: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())
}

fn busy_error(path: &Path, holder: &Holder, wait: Duration) -> String {
    let secs = wait.as_secs_f64();
    match holder {
        Holder::Pid(pid) => {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let comm = comm.trim();
            let who = if comm.is_empty() {
                format!("pid {pid}")
            } else {
                format!("pid {pid} ({comm})")
            };
            format!(
                "{} is held by {who} for more than {secs:.0} s; wait for it to finish and retry, \
                 or stop that process (kill {pid}) if it is stuck",
                path.display()
            )
        }
        Holder::Unreadable => format!(
            "{} is being rewritten by another process for more than {secs:.0} s; retry, or \
             delete that file if no ccs or ccsfs command is running",
            path.display()
        ),
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// A random RFC 4122 version-4 UUID, as CCS's `crypto.randomUUID()` makes.
fn new_token() -> String {
    let mut b = [0u8; 16];
    let random = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if random.is_err() {
        // Unique enough without /dev/urandom: time, pid and a per-process counter.
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        b[..8].copy_from_slice(&(now_ms() as u64).to_le_bytes());
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
        b[12..].copy_from_slice(&n.to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Child, Command};
    use tempfile::tempdir;

    fn lock_path(dir: &Path) -> PathBuf {
        dir.join(LOCK_FILE)
    }

    /// A pid that has exited (and been reaped).
    fn dead_pid() -> i32 {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    }

    /// A live process other than this one, killed on drop.
    struct Sleeper(Child);
    impl Sleeper {
        fn new() -> Sleeper {
            Sleeper(Command::new("sleep").arg("60").spawn().unwrap())
        }
        fn pid(&self) -> i32 {
            self.0.id() as i32
        }
    }
    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn ccs_style_lock(pid: i32, token: &str) -> String {
        format!("{pid}\n{}\n{token}", now_ms())
    }

    #[test]
    fn takes_and_releases_in_ccs_format() {
        let dir = tempdir().unwrap();
        let path = lock_path(dir.path());
        let lock = ConfigLock::acquire(dir.path()).unwrap();
        assert_eq!(lock.path(), path);
        let content = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = content.split('\n').collect();
        assert_eq!(lines.len(), 3, "{content:?}");
        assert_eq!(lines[0], std::process::id().to_string());
        let ms: u128 = lines[1].parse().unwrap();
        assert!(now_ms() - ms < 10_000);
        assert_eq!(lines[2], lock.token());
        assert_eq!(lines[2].len(), 36);
        assert_eq!(&lines[2][14..15], "4", "{}", lines[2]);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(lock);
        assert!(!path.exists());
        // Nothing else is left in the dir (no temp files).
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn creates_a_missing_ccs_dir_private() {
        let dir = tempdir().unwrap();
        let ccs = dir.path().join("a/ccs");
        let lock = ConfigLock::acquire(&ccs).unwrap();
        assert!(lock.path().is_file());
        assert_eq!(
            fs::metadata(&ccs).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_live_holder_blocks_and_is_named() {
        let dir = tempdir().unwrap();
        let path = lock_path(dir.path());
        let holder = Sleeper::new();
        let theirs = ccs_style_lock(holder.pid(), "their-token");
        fs::write(&path, &theirs).unwrap();
        let started = Instant::now();
        let e = ConfigLock::acquire_within(dir.path(), Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains(&format!("pid {} (sleep)", holder.pid())), "{e}");
        assert!(e.contains(&format!("kill {}", holder.pid())), "{e}");
        assert!(e.contains("config.yaml.lock"), "{e}");
        // Their lock is untouched, even though its timestamp is old by CCS's 5 s rule.
        assert_eq!(fs::read_to_string(&path).unwrap(), theirs);
        let old = format!("{}\n1\ntheir-token", holder.pid());
        fs::write(&path, &old).unwrap();
        ConfigLock::acquire_within(dir.path(), Duration::from_millis(100)).unwrap_err();
        assert_eq!(fs::read_to_string(&path).unwrap(), old);
    }

    #[test]
    fn waits_for_a_holder_that_releases() {
        let dir = tempdir().unwrap();
        let path = lock_path(dir.path());
        let holder = Sleeper::new();
        fs::write(&path, ccs_style_lock(holder.pid(), "t")).unwrap();
        let releaser = {
            let path = path.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(300));
                fs::remove_file(path).unwrap();
            })
        };
        let started = Instant::now();
        let lock = ConfigLock::acquire_within(dir.path(), Duration::from_secs(5)).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
        releaser.join().unwrap();
        assert!(fs::read_to_string(&path).unwrap().ends_with(lock.token()));
    }

    #[test]
    fn a_dead_holders_lock_is_taken_over() {
        let dir = tempdir().unwrap();
        let path = lock_path(dir.path());
        for stale in [
            ccs_style_lock(dead_pid(), "dead-token"),
            "0\n0\nzero".to_string(),
            "-1\n0\nnegative".to_string(),
        ] {
            fs::write(&path, &stale).unwrap();
            let lock = ConfigLock::acquire_within(dir.path(), Duration::ZERO).unwrap();
            let now = fs::read_to_string(&path).unwrap();
            assert!(now.ends_with(lock.token()), "{now:?}");
            drop(lock);
            assert!(!path.exists());
        }
    }

    #[test]
    fn an_unreadable_lock_is_waited_on_then_taken_over() {
        let dir = tempdir().unwrap();
        let path = lock_path(dir.path());
        // A fresh empty file may be a CCS lock being written: respected for a moment.
        fs::write(&path, "").unwrap();
        let e = ConfigLock::acquire_within(dir.path(), Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("being rewritten"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        // Once old, it is abandoned.
        let old = SystemTime::now() - Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let lock = ConfigLock::acquire_within(dir.path(), Duration::ZERO).unwrap();
        assert!(fs::read_to_string(&path).unwrap().ends_with(lock.token()));
    }

    #[test]
    fn release_never_removes_someone_elses_lock() {
        let dir = tempdir().unwrap();
        let path = lock_path(dir.path());
        let lock = ConfigLock::acquire(dir.path()).unwrap();
        // Someone judged us dead and took the lock over.
        let theirs = ccs_style_lock(std::process::id() as i32, "someone-else");
        fs::remove_file(&path).unwrap();
        fs::write(&path, &theirs).unwrap();
        drop(lock);
        assert_eq!(fs::read_to_string(&path).unwrap(), theirs);
        let e = ConfigLock::acquire_within(dir.path(), Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("held by pid"), "{e}");
        // And a lock that vanished is no error.
        fs::remove_file(&path).unwrap();
        let lock = ConfigLock::acquire(dir.path()).unwrap();
        fs::remove_file(&path).unwrap();
        drop(lock);
        assert!(!path.exists());
    }

    #[test]
    fn threads_take_turns() {
        let dir = tempdir().unwrap();
        let counter = dir.path().join("counter");
        fs::write(&counter, "0").unwrap();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (ccs, counter) = (dir.path().to_path_buf(), counter.clone());
                thread::spawn(move || {
                    for _ in 0..25 {
                        let _lock = ConfigLock::acquire(&ccs).unwrap();
                        let n: u32 = fs::read_to_string(&counter).unwrap().parse().unwrap();
                        thread::yield_now();
                        fs::write(&counter, (n + 1).to_string()).unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(fs::read_to_string(&counter).unwrap(), "100");
        assert!(!lock_path(dir.path()).exists());
    }

    #[test]
    fn an_unwritable_dir_is_a_one_line_error() {
        let e =
            ConfigLock::acquire_within(Path::new("/proc/self/ccs"), Duration::ZERO).unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("check the permissions"), "{e}");
    }
}
