//! The trash of one group store, `<group>/.ccsfs/trash/` (invisible through the mount: only
//! `projects/` and `continuity/<dir>` of a group are routed). One entry per deleted file: a
//! dir `<id>/` (0700) holding the file as `data` and `entry.json` (what it was, who deleted
//! it, when). Ids sort by time: `20261202T013000Z-03f9a1` (the UTC second, then its
//! microsecond in hex).
//!
//! A file comes in by rename (same filesystem; its inode, mode and times move with it) or,
//! across filesystems, by copy + fsync (mode and mtime kept) before the original is unlinked.
//! `entry.json` is written first (temp + rename), so an entry with data always says what it
//! is; an entry without data (a crash in between) is not listed and is swept after an hour.
//! Plain file I/O and `*at()` calls only; nothing here knows about the mount.

use std::ffi::CStr;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, Timestamps};
use serde::{Deserialize, Serialize};

use crate::locks::text;
use crate::settings::TrashSettings;

/// `entry.json`'s format version.
pub const FORMAT: u32 = 1;
const DATA: &CStr = c"data";
const ENTRY: &str = "entry.json";
/// An entry without data this old is a crash's leftover, not an insert under way.
const STALE_PARTIAL_SECS: u64 = 3600;

/// Why the file was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Unlinked through the mount (Claude's cleanup, `rm`).
    Unlink,
    /// Replaced by a rename onto its name.
    RenameOver,
}

/// `entry.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub format: u32,
    /// Where it was, relative to the group dir, escaped to one line (`locks::text`).
    pub path: String,
    pub size: u64,
    /// `2026-12-02T01:30:00Z`
    pub deleted_at: String,
    /// The profile it was deleted through, and the deleting process.
    pub profile: Option<String>,
    pub pid: Option<u32>,
    pub reason: Reason,
}

impl Entry {
    /// The original path's bytes (None for an entry not written by `text::escape`).
    pub fn original(&self) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStringExt;
        text::unescape(&self.path).map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)))
    }
}

/// (id, bytes of its data) of the entries with data, oldest first, and the ids of stale
/// partial entries.
pub type Sizes = (Vec<(String, u64)>, Vec<String>);

/// One entry as found on disk.
#[derive(Clone, Debug)]
pub struct Listed {
    pub id: String,
    /// None: `entry.json` missing or unreadable (the data is still there).
    pub entry: Option<Entry>,
    /// The data file's size (what the entry costs).
    pub bytes: u64,
}

/// Seconds since the epoch to `YYYYMMDDTHHMMSSZ`.
fn compact_utc(secs: u64) -> String {
    let (y, m, d) = crate::config::civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Seconds since the epoch to `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso_utc(secs: u64) -> String {
    let c = compact_utc(secs);
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &c[0..4],
        &c[4..6],
        &c[6..8],
        &c[9..11],
        &c[11..13],
        &c[13..15]
    )
}

/// Days since the epoch of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The deletion time an id carries (None: not an id).
pub fn id_time(id: &str) -> Option<u64> {
    let b = id.as_bytes();
    let ok = b.len() == 23
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    if !ok {
        return None;
    }
    let n = |r: std::ops::Range<usize>| id[r].parse::<u32>().ok();
    let (y, mo, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (h, mi, s) = (n(9..11)?, n(11..13)?, n(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    u64::try_from(days * 86_400 + i64::from(h * 3600 + mi * 60 + s)).ok()
}

/// The id of a deletion `since` the epoch: its UTC second, then its microsecond in hex, so that
/// ids sort in the order the deletions happened (`begin` bumps the microsecond on a clash).
fn new_id(since: Duration) -> String {
    format!(
        "{}-{:06x}",
        compact_utc(since.as_secs()),
        since.subsec_micros()
    )
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mkdir_private(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// The trash of the group store at `group_dir`.
#[derive(Clone, Debug)]
pub struct Trash {
    pub group_dir: PathBuf,
    pub dir: PathBuf,
}

/// An entry being made: its dir exists and holds `entry.json`; the data comes next.
pub struct Pending {
    pub id: String,
    dir: PathBuf,
    dir_fd: OwnedFd,
}

impl Trash {
    pub fn of_group(group_dir: &Path) -> Trash {
        Trash {
            group_dir: group_dir.to_path_buf(),
            dir: group_dir.join(".ccsfs").join("trash"),
        }
    }

    fn entry_dir(&self, id: &str) -> io::Result<PathBuf> {
        if id_time(id).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{id:?} is not a trash id (see `ccsfs trash list`)"),
            ));
        }
        Ok(self.dir.join(id))
    }

    /// Starts an entry for `entry` (deleted now): its dir and `entry.json`.
    pub fn begin(&self, entry: &Entry) -> io::Result<Pending> {
        mkdir_private(&self.dir)?;
        let mut now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (id, dir) = loop {
            let id = new_id(now);
            now += Duration::from_micros(1);
            let dir = self.dir.join(&id);
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break (id, dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        let made = (|| {
            let tmp = dir.join(".entry.json.tmp");
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(entry).map_err(io::Error::other)?)?;
            f.write_all(b"\n")?;
            drop(f);
            fs::rename(&tmp, dir.join(ENTRY))?;
            rustix::fs::open(
                &dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)
        })();
        match made {
            Ok(dir_fd) => Ok(Pending { id, dir, dir_fd }),
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// Every entry, oldest first (entries without data are left out).
    pub fn list(&self) -> io::Result<Vec<Listed>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for de in rd {
            let de = de?;
            let Some(id) = de.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if id_time(&id).is_none() {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(de.path().join("data")) else {
                continue;
            };
            let entry = fs::read(de.path().join(ENTRY))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            out.push(Listed {
                id,
                entry,
                bytes: meta.len(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Ids and sizes of the entries with data, and the ids of stale partial entries (for the
    /// daemon's running total; no `entry.json` is read).
    pub fn sizes(&self) -> io::Result<Sizes> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(e),
        };
        let now = unix_now();
        let (mut full, mut partial) = (Vec::new(), Vec::new());
        for de in rd {
            let de = de?;
            let Some(id) = de.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Some(t) = id_time(&id) else { continue };
            match fs::symlink_metadata(de.path().join("data")) {
                Ok(m) => full.push((id, m.len())),
                Err(_) if now.saturating_sub(t) > STALE_PARTIAL_SECS => partial.push(id),
                Err(_) => {}
            }
        }
        full.sort();
        Ok((full, partial))
    }

    /// Removes one entry (gone already is fine).
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.entry_dir(id)?) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Which of `entries` (id, bytes; oldest first) go under `s` at `now`: those older than
    /// `keep_days`, then the oldest while the rest is over `max_mb`.
    pub fn victims(entries: &[(String, u64)], s: &TrashSettings, now: u64) -> Vec<usize> {
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        let mut out = Vec::new();
        for (i, (id, bytes)) in entries.iter().enumerate() {
            let expired = id_time(id).is_none_or(|t| now.saturating_sub(t) > s.keep_secs());
            if expired || total > s.max_bytes() {
                out.push(i);
                total -= bytes;
            } else {
                break;
            }
        }
        out
    }

    /// Purges what `s` no longer keeps (everything with `all`): the ids removed and the
    /// bytes freed.
    pub fn purge(&self, s: &TrashSettings, all: bool) -> io::Result<(Vec<String>, u64)> {
        let (entries, partial) = self.sizes()?;
        let chosen: Vec<usize> = if all {
            (0..entries.len()).collect()
        } else {
            Self::victims(&entries, s, unix_now())
        };
        let mut freed = 0;
        let mut ids = Vec::new();
        for i in chosen {
            self.remove(&entries[i].0)?;
            freed += entries[i].1;
            ids.push(entries[i].0.clone());
        }
        for id in partial {
            self.remove(&id)?;
        }
        Ok((ids, freed))
    }

    /// Puts entry `id` back where it was (or at `to`), never over an existing file, and
    /// removes the entry. Returns where it went.
    pub fn restore(&self, id: &str, to: Option<&Path>) -> Result<PathBuf, String> {
        let dir = self.entry_dir(id).map_err(|e| e.to_string())?;
        let data = dir.join("data");
        if fs::symlink_metadata(&data).is_err() {
            return Err(format!(
                "trash entry {id} has no data in {}; see `ccsfs trash list`",
                dir.display()
            ));
        }
        let dest = match to {
            Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
            None => {
                let e: Entry = fs::read(dir.join(ENTRY))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .ok_or_else(|| {
                        format!(
                            "trash entry {id} does not say where it came from; restore it with --to PATH"
                        )
                    })?;
                let rel = e.original().filter(|p| p.is_relative() && !escapes(p));
                let rel = rel.ok_or_else(|| {
                    format!(
                        "trash entry {id} has a bad path {:?}; restore it with --to PATH",
                        e.path
                    )
                })?;
                let dest = self.group_dir.join(rel);
                if let Some(parent) = dest.parent() {
                    mkdir_private(parent)
                        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                }
                dest
            }
        };
        let exists = || {
            format!(
                "{} exists; restore {id} elsewhere with --to PATH (nothing is overwritten)",
                dest.display()
            )
        };
        if fs::symlink_metadata(&dest).is_ok() {
            return Err(exists());
        }
        let cwd = rustix::fs::CWD;
        match rustix::fs::renameat_with(cwd, &data, cwd, &dest, RenameFlags::NOREPLACE) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => return Err(exists()),
            Err(rustix::io::Errno::XDEV) => copy_out(&data, &dest).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => exists(),
                _ => format!("cannot copy {} to {}: {e}", data.display(), dest.display()),
            })?,
            Err(e) => {
                return Err(format!(
                    "cannot move {} to {}: {e}",
                    data.display(),
                    dest.display()
                ));
            }
        }
        let _ = fs::remove_dir_all(&dir);
        Ok(dest)
    }

    /// The entry `id`'s `entry.json`.
    pub fn entry(&self, id: &str) -> Option<Entry> {
        let b = fs::read(self.entry_dir(id).ok()?.join(ENTRY)).ok()?;
        serde_json::from_slice(&b).ok()
    }
}

/// Whether a relative path climbs out (`..`).
fn escapes(p: &Path) -> bool {
    p.components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
}

/// Copies `data` to `dest` across filesystems: a temp file beside `dest`, fsync, then a link
/// that fails if `dest` appeared meanwhile; the source is removed by the caller.
fn copy_out(data: &Path, dest: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(data)?;
    let name = dest.file_name().map_or(b"x".as_slice(), OsStrExt::as_bytes);
    let tmp = dest.with_file_name(format!(
        ".{}.ccsfs-restore-{}",
        String::from_utf8_lossy(name),
        std::process::id()
    ));
    let src = fs::File::open(data)?;
    let copied = copy_file(&src, &tmp, &meta);
    let linked = copied.and_then(|()| fs::hard_link(&tmp, dest));
    let _ = fs::remove_file(&tmp);
    linked?;
    fs::remove_file(data)
}

/// Writes `src` to a new file `to` (mode and times of `meta`) and fsyncs it.
fn copy_file(src: &fs::File, to: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(meta.mode() & 0o7777)
        .open(to)?;
    io::copy(&mut &*src, &mut out)?;
    let ts = |s: i64, ns: i64| rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let _ = rustix::fs::futimens(
        &out,
        &Timestamps {
            last_access: ts(meta.atime(), meta.atime_nsec()),
            last_modification: ts(meta.mtime(), meta.mtime_nsec()),
        },
    );
    out.sync_all()
}

impl Pending {
    /// Moves `dir/name` in as the entry's data: a rename, or across filesystems a copy
    /// (fsynced) and then the unlink of the original. Returns the bytes it holds. An error
    /// from the source itself (ENOENT: the name is gone) comes back as it is.
    pub fn move_in(&self, dir: BorrowedFd, name: &CStr) -> io::Result<u64> {
        match rustix::fs::renameat(dir, name, &self.dir_fd, DATA) {
            Ok(()) => {}
            Err(rustix::io::Errno::XDEV) => {
                self.copy_in(dir, name)?;
                rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
            }
            Err(e) => return Err(e.into()),
        }
        self.bytes()
    }

    /// Keeps the current content of `dir/name` (about to be replaced by a rename) as the
    /// entry's data: a hard link, or across filesystems a copy. `abandon` undoes it.
    pub fn keep(&self, dir: BorrowedFd, name: &CStr) -> io::Result<u64> {
        match rustix::fs::linkat(dir, name, &self.dir_fd, DATA, AtFlags::empty()) {
            Ok(()) => {}
            Err(rustix::io::Errno::XDEV) => self.copy_in(dir, name)?,
            Err(e) => return Err(e.into()),
        }
        self.bytes()
    }

    fn bytes(&self) -> io::Result<u64> {
        Ok(rustix::fs::statat(&self.dir_fd, DATA, AtFlags::SYMLINK_NOFOLLOW)?.st_size as u64)
    }

    fn copy_in(&self, dir: BorrowedFd, name: &CStr) -> io::Result<()> {
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let src = fs::File::from(fd);
        let meta = src.metadata()?;
        let copied = copy_file(&src, &self.dir.join("data"), &meta);
        if copied.is_err() {
            let _ = rustix::fs::unlinkat(&self.dir_fd, DATA, AtFlags::empty());
        }
        copied
    }

    /// Drops the entry (the delete did not happen).
    pub fn abandon(self) {
        let _ = fs::remove_dir_all(&self.dir);
    }

    /// The entry dir's fd, for callers that need it.
    pub fn dir_fd(&self) -> BorrowedFd<'_> {
        self.dir_fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, size: u64) -> Entry {
        Entry {
            format: FORMAT,
            path: path.into(),
            size,
            deleted_at: iso_utc(unix_now()),
            profile: Some("work".into()),
            pid: Some(1),
            reason: Reason::Unlink,
        }
    }

    #[test]
    fn ids_sort_by_time_and_parse_back() {
        let t = 1_796_175_000; // 2026-12-02
        let id = new_id(Duration::new(t, 999_999_000));
        assert_eq!(id, "20261202T013000Z-0f423f");
        assert_eq!(id_time(&id), Some(t));
        assert!(new_id(Duration::new(t, 5_000)) < id);
        assert!(new_id(Duration::from_secs(t - 1)) < new_id(Duration::from_secs(t)));
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(id_time("20000229T235959Z-abcdef"), Some(951_868_799));
        for bad in [
            "x",
            "20261302T000000Z-abcdef",
            "20261202T000000Z-ABCDEF",
            "../etc",
        ] {
            assert_eq!(id_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn victims_are_expired_then_oldest_over_the_bound() {
        let now = 10_000_000;
        let mb = 1 << 20;
        let e = |age: u64, bytes: u64| (new_id(Duration::from_secs(now - age)), bytes);
        let s = TrashSettings {
            keep_days: 1,
            max_mb: 2,
        };
        let list = vec![e(3 * 86_400, 1), e(100, mb), e(50, mb), e(10, mb)];
        assert_eq!(Trash::victims(&list, &s, now), vec![0, 1]);
        let list = vec![e(100, 1), e(50, 1)];
        assert!(Trash::victims(&list, &s, now).is_empty());
    }

    #[test]
    fn insert_list_restore_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let group = tmp.path();
        fs::create_dir_all(group.join("projects/p")).unwrap();
        fs::write(group.join("projects/p/s.jsonl"), "{}\n").unwrap();
        let trash = Trash::of_group(group);
        let p = trash.begin(&entry("projects/p/s.jsonl", 3)).unwrap();
        let dir = rustix::fs::open(group.join("projects/p"), OFlags::PATH, Mode::empty()).unwrap();
        assert_eq!(p.move_in(dir.as_fd(), c"s.jsonl").unwrap(), 3);
        assert!(!group.join("projects/p/s.jsonl").exists());
        let mode = fs::metadata(&trash.dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let l = trash.list().unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].entry.as_ref().unwrap().path, "projects/p/s.jsonl");
        fs::write(group.join("projects/p/s.jsonl"), "new\n").unwrap();
        let e = trash.restore(&l[0].id, None).unwrap_err();
        assert!(e.contains("--to") && !e.contains('\n'), "{e}");
        assert_eq!(
            fs::read(group.join("projects/p/s.jsonl")).unwrap(),
            b"new\n"
        );
        let to = group.join("elsewhere.jsonl");
        assert_eq!(trash.restore(&l[0].id, Some(&to)).unwrap(), to);
        assert_eq!(fs::read(&to).unwrap(), b"{}\n");
        assert!(trash.list().unwrap().is_empty());
        assert!(trash.restore("../../x", None).is_err());
    }

    #[test]
    fn keep_then_abandon_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("s.jsonl"), "x").unwrap();
        let trash = Trash::of_group(tmp.path());
        let p = trash.begin(&entry("s.jsonl", 1)).unwrap();
        let dir = rustix::fs::open(tmp.path(), OFlags::PATH, Mode::empty()).unwrap();
        p.keep(dir.as_fd(), c"s.jsonl").unwrap();
        assert_eq!(fs::metadata(tmp.path().join("s.jsonl")).unwrap().nlink(), 2);
        p.abandon();
        assert_eq!(fs::metadata(tmp.path().join("s.jsonl")).unwrap().nlink(), 1);
        assert!(trash.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(&trash.dir).unwrap().count(), 0);
    }
}
