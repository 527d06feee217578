//! Single-writer transcripts. One live process at a time may write a transcript in a group
//! store; other writers get EBUSY, readers are never involved. A lock belongs to the file (its
//! device and inode: every name, hard link and parent path of it leads to the same lock) and
//! is owned by a process (thread group + start time, so a recycled pid never inherits it). It
//! begins at the process's first write-open and lasts while the process lives and while any
//! write handle it opened is open (a child may inherit one), or until it lapses (see
//! `policy`). Lock files under `<group>/.ccsfs/locks/` make every daemon sharing the store
//! agree; this module keeps the owner's own re-opens cheap (memory plus one stat), notices
//! owners' exits at once (`watch`), and is otherwise lazy: a dead owner's lock is only
//! judged when someone else wants the file.

pub mod policy;
pub mod record;
pub mod text;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use parking_lot::Mutex;

use crate::procs::{self, ProcId};
use policy::{Activity, FileId, HostId, Judge, Record, Verdict};
use record::{GroupMutex, Spares, Written};
use watch::OwnerWatch;

/// Lock settings.
#[derive(Clone, Copy, Debug)]
pub struct LockConfig {
    /// An owner with no open write handle that has not written for this long loses the lock
    /// to the next writer (None: only its exit ends ownership).
    pub idle_limit: Option<Duration>,
    /// How long a lock file vouches for its owner without renewal (other hosts wait this out).
    pub lease: Duration,
}

impl Default for LockConfig {
    fn default() -> LockConfig {
        LockConfig {
            idle_limit: None,
            lease: crate::tunables::LOCK_LEASE,
        }
    }
}

/// How long a writer waits for an exited owner's last write handles to be released (the
/// kernel sends RELEASE asynchronously, also for the handles of a process just killed)
/// before it is refused because one is still open.
/// (see `tunables::LOCK_DRAIN_WAIT`)
const DRAIN_WAIT: Duration = crate::tunables::LOCK_DRAIN_WAIT;

/// A transcript a process wants to write or change.
pub struct Target<'a> {
    /// `<ccs>/shared/context-groups/<group>`
    pub group_dir: &'a Path,
    /// The file's device and identity.
    pub dev: u64,
    pub file: FileId,
    /// Where the file is now, relative to `group_dir`, escaped to one line (see `text`): for
    /// the record and the log, never to find the lock.
    pub path: String,
    /// How long ago the transcript was last modified.
    pub since_write: Duration,
}

impl Target<'_> {
    fn key(&self) -> (u64, u64) {
        (self.dev, self.file.ino)
    }
}

/// Who asks: the process and the profile it asks through.
pub struct Requester<'a> {
    pub proc: ProcId,
    pub profile: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Grant {
    /// The requester already owned it.
    Owner,
    /// The requester just became the owner (repair a torn tail now).
    NewOwner,
}

/// Why a write was refused: the current owner's record.
#[derive(Debug)]
pub struct Refusal(pub Box<Record>);

/// Why a write-open was not granted.
#[derive(Debug)]
pub enum Denied {
    /// Someone else holds the transcript.
    Held(Refusal),
    /// The lock could not be taken (the group mutex or the lock file failed): the open fails
    /// with this error, not with a refusal that names nobody.
    Failed(std::io::Error),
}

struct Held {
    owner: ProcId,
    lock_file: PathBuf,
    written: Written,
    record: Record,
    open_writers: u32,
    /// The owner has exited: the lock goes when its last write handle is released.
    owner_gone: bool,
}

/// What renewing a held lock found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Renewal {
    /// Still ours, its owner alive (or a handle it opened still open): the lease was renewed.
    Kept,
    /// Taken over, or unlocked by hand.
    Lost,
    /// Its owner exited and no handle it opened is left: the lock file is ours to release.
    Exited,
}

/// A transcript's (dev, ino) and the owner that opened a write handle on it.
type WriteHandle = ((u64, u64), ProcId);

pub struct LockManager {
    here: HostId,
    /// This daemon, as lock records name the daemon that granted them.
    me: ProcId,
    config: LockConfig,
    held: Mutex<HashMap<(u64, u64), Held>>,
    /// Open write handles on held transcripts: fh → (dev, ino) and the owner that opened it.
    writers: Mutex<HashMap<u64, WriteHandle>>,
    spares: Spares,
    /// The held locks that keep their lock file's fd open, most recently used first. A
    /// process may own thousands of transcripts; past this many, the least recently used
    /// lock lets go of its fd (and is checked by path), so that locks never use up the
    /// daemon's open files. Locked after `held`, never before.
    watched: Mutex<LruCache<(u64, u64), ()>>,
    /// The owners' exits, as they happen.
    owners: OwnerWatch,
    /// Each group dir's device (lock files are named relative to it; see `record::file_name`).
    group_devs: Mutex<HashMap<PathBuf, u64>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// This machine: host name plus boot id (a rebooted host is another host: its pids restart).
pub fn this_host() -> HostId {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length.
    let name = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".into()
    };
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    HostId { name, boot_id }
}

impl LockManager {
    /// A manager, plus the thread that renews leases and releases the locks of owners that
    /// exited.
    pub fn start(config: LockConfig) -> Arc<LockManager> {
        let pid = std::process::id();
        let m = Arc::new(LockManager {
            here: this_host(),
            me: procs::identify(pid).unwrap_or(ProcId { pid, start: 0 }),
            config,
            held: Mutex::default(),
            writers: Mutex::default(),
            spares: Spares::default(),
            watched: Mutex::new(LruCache::new(watched_fds())),
            owners: OwnerWatch::new(),
            group_devs: Mutex::default(),
        });
        let weak = Arc::downgrade(&m);
        let period = (config.lease / crate::tunables::LOCK_RENEWALS)
            .max(crate::tunables::LOCK_RENEW_MIN_PERIOD);
        let _ = std::thread::Builder::new()
            .name("ccsfs-leases".into())
            .spawn(move || renew_loop(&weak, period));
        m
    }

    fn judge(&self) -> Judge<'_> {
        Judge {
            here: &self.here,
            now: unix_now(),
            idle_limit: self.config.idle_limit,
        }
    }

    /// The lock file of the file `(dev, ino)` in the store at `group_dir`.
    fn lock_path(&self, group_dir: &Path, dev: u64, ino: u64) -> std::io::Result<PathBuf> {
        let known = self.group_devs.lock().get(group_dir).copied();
        let group_dev = match known {
            Some(d) => d,
            None => {
                let d = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(group_dir)?);
                self.group_devs.lock().insert(group_dir.to_path_buf(), d);
                d
            }
        };
        Ok(record::locks_dir(group_dir).join(record::file_name(group_dev, dev, ino)))
    }

    /// Whether the file `(dev, ino)` has a lock file (held, or left by an owner since gone):
    /// a file once locked stays single-writer under any name it is given.
    pub fn has_lock_file(&self, group_dir: &Path, dev: u64, ino: u64) -> bool {
        self.lock_path(group_dir, dev, ino)
            .is_ok_and(|p| std::fs::symlink_metadata(p).is_ok())
    }

    /// The group's flock, for a create that must not be claimed by anyone else before its
    /// creator (see `acquire_created`).
    pub fn lock_group(&self, group_dir: &Path) -> std::io::Result<GroupMutex> {
        GroupMutex::lock(group_dir)
    }

    /// A write-open of `t` by `who`: the owner gets on, anyone else is refused while the owner
    /// holds it.
    pub fn acquire(&self, t: &Target, who: &Requester) -> Result<Grant, Denied> {
        if self.owns(t.key(), who.proc) {
            return Ok(Grant::Owner);
        }
        let lock_file = self
            .lock_path(t.group_dir, t.dev, t.file.ino)
            .map_err(|e| failed(t.group_dir, e))?;
        let (_mutex, current, verdict) = self
            .judged(t, who, &lock_file)
            .map_err(|e| failed(t.group_dir, e))?;
        self.grant(t, who, lock_file, current, verdict)
    }

    /// `t` was just created by `who`, with the group's flock held from before the create: a
    /// new file, so any record for its inode number is a dead file's, and `who` takes it.
    pub fn acquire_created(
        &self,
        _mutex: &GroupMutex,
        t: &Target,
        who: &Requester,
    ) -> Result<Grant, Denied> {
        let lock_file = self
            .lock_path(t.group_dir, t.dev, t.file.ino)
            .map_err(|e| failed(t.group_dir, e))?;
        self.grant(t, who, lock_file, None, Verdict::Free)
    }

    /// The current record of `t` and the verdict on `who`, under the group's flock (returned
    /// held). While the verdict is `Draining` it waits (without the flock) for the exited
    /// owner's handles, up to `DRAIN_WAIT`; past that, `Held`.
    fn judged(
        &self,
        t: &Target,
        who: &Requester,
        lock_file: &Path,
    ) -> std::io::Result<(GroupMutex, Option<Record>, Verdict)> {
        let deadline = Instant::now() + DRAIN_WAIT;
        loop {
            let mutex = GroupMutex::lock(t.group_dir)?;
            let current = read_for(lock_file, &t.file);
            let activity = self.activity(t.key(), t.since_write, current.as_ref());
            let verdict = self
                .judge()
                .judge(current.as_ref(), who.proc, procs::is_alive, activity);
            if verdict != Verdict::Draining {
                return Ok((mutex, current, verdict));
            }
            if Instant::now() >= deadline {
                return Ok((mutex, current, Verdict::Held));
            }
            drop(mutex);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Writes `who`'s lock on `t` (the caller holds the group's flock), or refuses.
    fn grant(
        &self,
        t: &Target,
        who: &Requester,
        lock_file: PathBuf,
        current: Option<Record>,
        verdict: Verdict,
    ) -> Result<Grant, Denied> {
        if verdict == Verdict::Held || verdict == Verdict::Draining {
            return Err(Denied::Held(Refusal(Box::new(
                current.expect("held means a record"),
            ))));
        }
        let since = match (&verdict, &current) {
            (Verdict::Owner, Some(r)) => r.since,
            _ => unix_now(),
        };
        if let (Verdict::Free, Some(old)) = (&verdict, &current) {
            log::info!(
                "{}: taken over by pid {} ({}) from pid {} ({}), which is gone or idle",
                t.path,
                who.proc.pid,
                who.profile,
                old.owner.pid,
                old.profile
            );
        }
        let rec = self.record_for(t, who, since);
        let written = record::write(&lock_file, &rec, &self.spares).map_err(|e| {
            log::error!("cannot write {}: {e}", lock_file.display());
            Denied::Failed(e)
        })?;
        let key = t.key();
        {
            let mut held = self.held.lock();
            let open_writers = held
                .get(&key)
                .filter(|h| h.owner == who.proc)
                .map_or(0, |h| h.open_writers);
            held.insert(
                key,
                Held {
                    owner: who.proc,
                    lock_file,
                    written,
                    record: rec,
                    open_writers,
                    owner_gone: false,
                },
            );
            self.keep_fd(&mut held, key);
        }
        self.owners.watch(who.proc);
        Ok(if verdict == Verdict::Owner {
            Grant::Owner
        } else {
            Grant::NewOwner
        })
    }

    /// `key`'s lock keeps its lock file's fd; the least recently used one past the budget
    /// lets go of its own.
    fn keep_fd(&self, held: &mut HashMap<(u64, u64), Held>, key: (u64, u64)) {
        if let Some((old, ())) = self.watched.lock().push(key, ())
            && old != key
            && let Some(h) = held.get_mut(&old)
        {
            h.written.let_go_of_fd();
        }
    }

    /// Whether `proc` holds the transcript `key` (dev, ino) through this daemon: the owner's
    /// re-opens need no lock-file read, only a check that nobody replaced ours.
    pub fn owns(&self, key: (u64, u64), proc: ProcId) -> bool {
        let held = self.held.lock();
        let owns = held
            .get(&key)
            .is_some_and(|h| h.owner == proc && h.written.intact(&h.lock_file));
        if owns {
            self.watched.lock().promote(&key);
        }
        owns
    }

    /// An unlink, rename or truncate of `t` by `who`: refused while someone else holds it.
    pub fn check_change(&self, t: &Target, who: &Requester) -> Result<(), Refusal> {
        let Ok(lock_file) = self.lock_path(t.group_dir, t.dev, t.file.ino) else {
            return Ok(());
        };
        let deadline = Instant::now() + DRAIN_WAIT;
        loop {
            let Some(current) = read_for(&lock_file, &t.file) else {
                return Ok(());
            };
            let activity = self.activity(t.key(), t.since_write, Some(&current));
            match self
                .judge()
                .judge(Some(&current), who.proc, procs::is_alive, activity)
            {
                Verdict::Held => return Err(Refusal(Box::new(current))),
                Verdict::Draining if Instant::now() >= deadline => {
                    return Err(Refusal(Box::new(current)));
                }
                Verdict::Draining => std::thread::sleep(Duration::from_millis(5)),
                Verdict::Owner | Verdict::Free => return Ok(()),
            }
        }
    }

    fn record_for(&self, t: &Target, who: &Requester, since: u64) -> Record {
        Record {
            file: t.file,
            path: t.path.clone(),
            host: self.here.clone(),
            owner: who.proc,
            profile: who.profile.to_string(),
            since,
            lease_until: unix_now() + self.config.lease.as_secs(),
            daemon: self.me,
            orphaned: false,
        }
    }

    /// What this daemon knows of the current owner's activity: only the daemon that granted
    /// the lock counts its open handles (None: another daemon's lock, activity unknown).
    fn activity(
        &self,
        key: (u64, u64),
        since_write: Duration,
        current: Option<&Record>,
    ) -> Option<Activity> {
        let ours = current.is_none_or(|r| r.host == self.here && r.daemon == self.me);
        if !ours {
            return None;
        }
        let open_writers = self.held.lock().get(&key).map_or(0, |h| h.open_writers);
        Some(Activity {
            open_writers,
            since_write,
        })
    }

    /// The owner opened a write handle `fh` on a held transcript.
    pub fn opened(&self, fh: u64, dev: u64, ino: u64) {
        if let Some(h) = self.held.lock().get_mut(&(dev, ino)) {
            h.open_writers += 1;
            self.writers.lock().insert(fh, ((dev, ino), h.owner));
        }
    }

    /// Whether `fh` is an open write handle of its transcript's current owner.
    pub fn is_owner_handle(&self, fh: u64) -> bool {
        let Some((key, opener)) = self.writers.lock().get(&fh).copied() else {
            return false;
        };
        self.held
            .lock()
            .get(&key)
            .is_some_and(|h| h.owner == opener)
    }

    /// A file handle was released (by whichever process closed it last). A handle of a
    /// previous owner (taken over, or unlocked by hand) no longer counts for the current one.
    /// The last handle of an owner that has exited releases the lock.
    pub fn released(&self, fh: u64) {
        let Some((key, opener)) = self.writers.lock().remove(&fh) else {
            return;
        };
        let gone = {
            let mut held = self.held.lock();
            match held.get_mut(&key) {
                Some(h) if h.owner == opener => {
                    h.open_writers = h.open_writers.saturating_sub(1);
                    if h.open_writers == 0 && h.owner_gone {
                        self.watched.lock().pop(&key);
                        held.remove(&key)
                    } else {
                        None
                    }
                }
                _ => None,
            }
        };
        if let Some(h) = gone {
            log::info!(
                "{}: the last write handle of exited pid {} ({}) is closed; lock released",
                h.record.path,
                h.owner.pid,
                h.record.profile
            );
            self.recycle_exited(vec![h]);
        }
    }

    /// `owner` exited: its locks go now, or (where a write handle it opened is still open)
    /// once the last such handle is released; such a lock's record says so meanwhile.
    fn owner_exited(&self, owner: ProcId) {
        let mut gone = Vec::new();
        let mut orphaned = Vec::new();
        {
            let mut held = self.held.lock();
            let keys: Vec<(u64, u64)> = held
                .iter()
                .filter(|(_, h)| h.owner == owner)
                .map(|(k, _)| *k)
                .collect();
            for key in keys {
                let h = held.get_mut(&key).expect("just seen");
                h.owner_gone = true;
                if h.open_writers == 0 {
                    self.watched.lock().pop(&key);
                    gone.push(held.remove(&key).expect("just seen"));
                } else {
                    orphaned.push(key);
                }
            }
        }
        for h in &gone {
            log::info!(
                "{}: owner pid {} ({}) exited; lock released",
                h.record.path,
                h.owner.pid,
                h.record.profile
            );
        }
        self.recycle_exited(gone);
        for key in orphaned {
            self.mark_orphaned(key);
        }
    }

    /// Rewrites the record of `key` (held here, its owner gone, a handle still open) to say
    /// so, for `status`; the lock itself does not change.
    fn mark_orphaned(&self, key: (u64, u64)) {
        let Some(dir) = self
            .held
            .lock()
            .get(&key)
            .and_then(|h| h.lock_file.parent().map(Path::to_path_buf))
        else {
            return;
        };
        let Ok(_mutex) = GroupMutex::lock_in(&dir) else {
            return;
        };
        let mut held = self.held.lock();
        let Some(h) = held.get_mut(&key) else {
            return;
        };
        if !h.owner_gone
            || h.open_writers == 0
            || h.record.orphaned
            || !h.written.intact(&h.lock_file)
        {
            return;
        }
        let rec = Record {
            orphaned: true,
            lease_until: unix_now() + self.config.lease.as_secs(),
            ..h.record.clone()
        };
        match record::write(&h.lock_file, &rec, &self.spares) {
            Ok(w) => {
                log::info!(
                    "{}: owner pid {} ({}) exited with a write handle still open (inherited by a \
                     child); held until it is closed",
                    rec.path,
                    rec.owner.pid,
                    rec.profile
                );
                h.written = w;
                h.record = rec;
                self.keep_fd(&mut held, key);
            }
            Err(e) => log::warn!("cannot rewrite {}: {e}", h.lock_file.display()),
        }
    }

    /// The file `t` lost its last name (unlinked, or replaced by a rename) after `check_change`
    /// allowed it: its lock goes with it, whichever daemon granted it. A name left to it (a
    /// hard link) keeps the lock; the caller does not call this then.
    pub fn forget_file(&self, t: &Target) {
        let key = t.key();
        let h = self.held.lock().remove(&key);
        if h.is_some() {
            self.watched.lock().pop(&key);
        }
        let Ok(lock_file) = self.lock_path(t.group_dir, t.dev, t.file.ino) else {
            return;
        };
        if std::fs::symlink_metadata(&lock_file).is_err() {
            return;
        }
        let Ok(_mutex) = GroupMutex::lock(t.group_dir) else {
            return;
        };
        if read_for(&lock_file, &t.file).is_some() {
            self.spares.recycle(&lock_file);
        }
    }

    /// Renews the leases of live owners (a touch of their lock files) and drops the locks of
    /// owners that have exited with no handle left. One lock at a time: an owner's open waits
    /// for at most one lock file's I/O, however many locks are held (a process may own
    /// thousands).
    pub fn renew(&self) {
        let lease_until = unix_now() + self.config.lease.as_secs();
        let keys: Vec<(u64, u64)> = self.held.lock().keys().copied().collect();
        let mut exited = Vec::new();
        let mut orphaned = Vec::new();
        for key in keys {
            let mut held = self.held.lock();
            let Some(h) = held.get_mut(&key) else {
                continue;
            };
            let renewal = self.renew_one(h, lease_until);
            if renewal == Renewal::Kept && h.owner_gone && !h.record.orphaned {
                orphaned.push(key);
            }
            if renewal != Renewal::Kept {
                let h = held.remove(&key).expect("just seen");
                self.watched.lock().pop(&key);
                if renewal == Renewal::Exited {
                    exited.push(h);
                }
            }
        }
        self.recycle_exited(exited);
        for key in orphaned {
            self.mark_orphaned(key);
        }
    }

    /// Renews one held lock.
    fn renew_one(&self, h: &mut Held, lease_until: u64) -> Renewal {
        if !h.written.intact(&h.lock_file) {
            return Renewal::Lost;
        }
        if !h.owner_gone && !procs::is_alive(h.owner) {
            h.owner_gone = true;
        }
        if h.owner_gone && h.open_writers == 0 {
            log::info!(
                "{}: owner pid {} ({}) exited; lock released",
                h.record.path,
                h.owner.pid,
                h.record.profile
            );
            return Renewal::Exited;
        }
        if h.written.renew(&h.lock_file) {
            h.record.lease_until = lease_until;
        } else {
            log::warn!("cannot renew {}", h.lock_file.display());
        }
        Renewal::Kept
    }

    /// The lock files of owners that exited become spares, under their group's flock and
    /// only while still ours: a writer that saw the same owner gone may have replaced one
    /// meanwhile, and its new lock must stay.
    fn recycle_exited(&self, exited: Vec<Held>) {
        let mut by_dir: HashMap<PathBuf, Vec<Held>> = HashMap::new();
        for h in exited {
            if let Some(dir) = h.lock_file.parent() {
                by_dir.entry(dir.to_path_buf()).or_default().push(h);
            }
        }
        for (dir, hs) in by_dir {
            // Without the flock the files stay: the next writer takes over from the exited
            // owner as from any other.
            let Ok(_mutex) = GroupMutex::lock_in(&dir) else {
                continue;
            };
            for h in hs {
                if h.written.intact(&h.lock_file) {
                    self.spares.recycle(&h.lock_file);
                }
            }
        }
    }

    /// The daemon is going away: nothing can write through it any more.
    pub fn release_all(&self) {
        let mut held = self.held.lock();
        self.watched.lock().clear();
        for (_, h) in held.drain() {
            if h.written.intact(&h.lock_file) {
                self.spares.recycle(&h.lock_file);
            }
        }
    }
}

fn failed(group_dir: &Path, e: std::io::Error) -> Denied {
    log::error!("cannot lock {}: {e}", group_dir.display());
    Denied::Failed(e)
}

/// How many held locks keep their lock file open: a sixteenth of the open-file limit, within
/// 16..=1024 (the inode table takes three quarters; see `tunables::LOCK_FDS_DIVISOR`).
fn watched_fds() -> std::num::NonZeroUsize {
    use crate::tunables::{LOCK_FDS_DIVISOR, LOCK_FDS_MAX, LOCK_FDS_MIN};
    let n = (crate::limits::open_files() / LOCK_FDS_DIVISOR).clamp(LOCK_FDS_MIN, LOCK_FDS_MAX);
    std::num::NonZeroUsize::new(n.max(1)).expect("at least 1")
}

/// The record in `lock_file` if it is about `file`. Read without the group's flock, a lock
/// file may have been released and reused for another file meanwhile (see `Spares`); a
/// record of an earlier file with the same inode number is no lock either.
fn read_for(lock_file: &Path, file: &FileId) -> Option<Record> {
    record::read(lock_file).filter(|r| r.file.same_file(file))
}

/// Renews leases every `period`, and meanwhile releases the locks of owners as they exit.
fn renew_loop(m: &Weak<LockManager>, period: Duration) {
    let mut next = Instant::now() + period;
    loop {
        let Some(mgr) = m.upgrade() else { return };
        for owner in mgr
            .owners
            .wait(next.saturating_duration_since(Instant::now()))
        {
            mgr.owner_exited(owner);
        }
        if Instant::now() >= next {
            mgr.renew();
            next = Instant::now() + period;
        }
    }
}

/// A refusal as one log line: the file (`path`, where the refused writer met it), who was
/// refused, and who holds it since when.
pub fn describe_refusal(refused: &Record, path: &str, who: &Requester) -> String {
    let age = unix_now().saturating_sub(refused.since);
    format!(
        "refused write to {} by pid {} ({}): held by pid {} ({}) on {} for {}s",
        path, who.proc.pid, who.profile, refused.owner.pid, refused.profile, refused.host.name, age
    )
}
