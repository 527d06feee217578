//! Doctor check of torn transcript tails: a `*.jsonl` in a group store (`projects/` and the
//! continuity dirs) or in an isolated profile's own `projects/` whose last byte is not `\n`
//! (its last writer died mid-record). One `open`, `statx` and 1-byte `pread` per file, so a
//! 10,000-session store costs little. A file whose lock a live owner holds is skipped (it is
//! being written); so is a file of an isolated profile written in the last few seconds.
//! `--fix` appends one `\n`, as the lock engine does for a new owner: nothing is deleted.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{Ctx, Finding, shown};
use crate::locks::policy::FileId;
use crate::locks::record;
use crate::routes::{CONTINUITY_DIRS, PROJECTS};
use crate::unlock::is_live;

const ID: &str = "torn";
/// A file of an isolated profile written this recently may be mid-write: left alone.
const QUIET: Duration = Duration::from_secs(5);
/// How many paths a finding names.
const SHOWN: usize = 5;

/// A tree to scan: its dirs, the group dir whose locks apply (None: an isolated instance).
struct Tree {
    dirs: Vec<PathBuf>,
    group_dir: Option<PathBuf>,
}

fn trees(ctx: &Ctx) -> Vec<Tree> {
    let l = &ctx.layout;
    let mut out = Vec::new();
    for g in crate::unlock::groups(ctx.profiles()) {
        let mut dirs = vec![l.group_projects(&g)];
        dirs.extend(CONTINUITY_DIRS.iter().map(|d| l.group_continuity(&g, d)));
        out.push(Tree {
            dirs,
            group_dir: Some(l.group_dir(&g)),
        });
    }
    for p in ctx.profiles().iter().filter(|p| !p.is_shared()) {
        let dir = l.instance(&p.name).join(PROJECTS);
        // A symlinked projects/ leads into a store scanned above, or somewhere not ours.
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            out.push(Tree {
                dirs: vec![dir],
                group_dir: None,
            });
        }
    }
    out
}

/// A transcript whose last byte is not a newline.
struct Torn {
    path: PathBuf,
    file: FileId,
    recent: bool,
}

/// Whether the file ends without a newline (reads its last byte only).
fn ends_torn(f: &File, len: u64) -> bool {
    let mut b = [0u8; 1];
    len > 0 && f.read_at(&mut b, len - 1).is_ok_and(|n| n == 1) && b[0] != b'\n'
}

fn open(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// Every torn `*.jsonl` under `dir`; `checked` counts the transcripts looked at.
fn scan(dir: &Path, checked: &mut usize, out: &mut Vec<Torn>) {
    let now = SystemTime::now();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                dirs.push(e.path());
                continue;
            }
            if !kind.is_file() || !e.file_name().as_encoded_bytes().ends_with(b".jsonl") {
                continue;
            }
            *checked += 1;
            let path = e.path();
            let Ok(f) = open(&path) else { continue };
            let Ok(m) = f.metadata() else { continue };
            if m.is_file() && ends_torn(&f, m.len()) {
                let recent = m
                    .modified()
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_none_or(|age| age < QUIET);
                out.push(Torn {
                    path,
                    file: FileId::of(&m),
                    recent,
                });
            }
        }
    }
}

/// The files whose lock a live owner holds in `group_dir`.
fn held(group_dir: &Path) -> Vec<FileId> {
    record::list(group_dir)
        .into_iter()
        .filter(|(_, r)| is_live(r))
        .map(|(_, r)| r.file)
        .collect()
}

/// Appends one `\n` if the file still ends torn. Ok(false): it no longer does.
fn end_line(path: &Path) -> std::io::Result<bool> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let len = f.metadata()?.len();
    if !ends_torn(&f, len) {
        return Ok(false);
    }
    f.write_all(b"\n")?;
    Ok(true)
}

pub fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let mut checked = 0;
    let mut torn: Vec<PathBuf> = Vec::new();
    let mut fixed: Vec<PathBuf> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for t in trees(ctx) {
        let mut found = Vec::new();
        for d in &t.dirs {
            scan(d, &mut checked, &mut found);
        }
        if found.is_empty() {
            continue;
        }
        // The group's mutex keeps any daemon from granting a lock while we look and append.
        let _mutex = match (&t.group_dir, ctx.fix) {
            (Some(g), true) => record::GroupMutex::lock(g).ok(),
            _ => None,
        };
        let live = t.group_dir.as_deref().map(held).unwrap_or_default();
        for f in found {
            let is_held = live.iter().any(|h| h.same_file(&f.file));
            let busy = is_held || (t.group_dir.is_none() && f.recent);
            if busy {
                continue;
            }
            if ctx.fix {
                match end_line(&f.path) {
                    Ok(true) => fixed.push(f.path.clone()),
                    Ok(false) => continue,
                    Err(e) => errors.push(format!("{}: {e}", f.path.display())),
                }
            }
            torn.push(f.path);
        }
    }
    if torn.is_empty() {
        out.push(Finding::ok(
            ID,
            format!("{checked} transcript(s) checked, none ends mid-record"),
        ));
        return;
    }
    let list = |v: &[PathBuf]| {
        let mut s: Vec<String> = v.iter().take(SHOWN).map(|p| shown(ctx, p)).collect();
        if v.len() > SHOWN {
            s.push(format!("and {} more", v.len() - SHOWN));
        }
        s.join(", ")
    };
    let mut f = Finding::warn(
        ID,
        format!(
            "{} of {checked} transcript(s) end mid-record (no final newline; the writer died): {}",
            torn.len(),
            list(&torn)
        ),
        "`ccsfs doctor --fix` ends each with one newline, as the next writer would (nothing is deleted)",
    );
    if !errors.is_empty() {
        f.message
            .push_str(&format!(" (--fix failed for {})", errors.join("; ")));
    }
    if !fixed.is_empty() {
        f.fixed = Some(format!(
            "appended a newline to {} transcript(s): {}",
            fixed.len(),
            list(&fixed)
        ));
    }
    out.push(f);
}
