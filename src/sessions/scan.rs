//! `ccsfs sessions list`: every session of the chosen stores, newest first, reading only what
//! it needs. A directory entry and one `stat` give id, size and last modified; the first
//! `HEAD` bytes of the transcript give the project cwd (the records' `cwd` field: the dir name
//! is a lossy encoding) and the first prompt. The message count is exact when the head holds
//! the whole file; for a bigger file it is estimated from the head (messages per byte times
//! size) and marked `~`, unless `--count` asks for an exact count (a streamed pass over each
//! whole file counting records, still without parsing them).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use super::model::{self, is_message, one_line, user_prompt};
use super::{Holder, Scope, holder_of, holders, stores};
use crate::layout::Layout;

/// Bytes read from the start of each transcript.
pub const HEAD: usize = 64 * 1024;
/// Characters of the first prompt shown.
pub const PROMPT_CHARS: usize = 80;

/// One session, as `list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub id: String,
    /// The cwd the session ran in (from its records), else the encoded dir name.
    pub project: String,
    /// The dir under `projects/`.
    pub project_dir: String,
    pub file: PathBuf,
    pub first_prompt: Option<String>,
    pub messages: u64,
    /// Whether `messages` was counted (else estimated from the head).
    pub messages_exact: bool,
    /// Unix seconds.
    pub modified: u64,
    pub size: u64,
    pub locked_by: Option<Holder>,
}

/// Options of `list`.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub scope: Scope,
    /// Only sessions of this cwd.
    pub project: Option<PathBuf>,
    /// Count messages exactly (reads whole files).
    pub count: bool,
    /// Show progress on stderr.
    pub progress: bool,
}

/// What the head of a transcript says.
struct Head {
    cwd: Option<String>,
    prompt: Option<String>,
    messages: u64,
    /// Bytes of complete lines parsed.
    parsed: u64,
    /// The head is the whole file.
    whole: bool,
}

fn read_head(f: &mut File, size: u64) -> std::io::Result<Head> {
    let mut buf = vec![0; HEAD.min(size as usize)];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    buf.truncate(n);
    let whole = (n as u64) >= size;
    let mut h = Head {
        cwd: None,
        prompt: None,
        messages: 0,
        parsed: 0,
        whole,
    };
    let mut rest: &[u8] = &buf;
    while !rest.is_empty() {
        let (line, next, complete) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..], true),
            None => (rest, &[][..], whole),
        };
        if !complete {
            break;
        }
        h.parsed += line.len() as u64 + 1;
        rest = next;
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if h.cwd.is_none() {
            h.cwd = v.get("cwd").and_then(Value::as_str).map(str::to_string);
        }
        if h.prompt.is_none() {
            h.prompt = user_prompt(&v).map(|p| one_line(&p, PROMPT_CHARS));
        }
        if is_message(&v) {
            h.messages += 1;
        }
    }
    Ok(h)
}

/// Counts the messages of a whole transcript: lines holding a user or assistant record,
/// recognised by their `"type":` field without parsing them.
fn count_messages(f: File) -> u64 {
    let mut r = BufReader::with_capacity(256 * 1024, f);
    let mut line = Vec::new();
    let mut n = 0;
    while r.read_until(b'\n', &mut line).is_ok_and(|k| k > 0) {
        let has = |pat: &[u8]| line.windows(pat.len()).any(|w| w == pat);
        if has(br#""type":"user""#) || has(br#""type":"assistant""#) {
            n += 1;
        }
        line.clear();
    }
    n
}

fn secs(t: std::io::Result<SystemTime>) -> u64 {
    t.ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Every session in `opts.scope`, newest first.
pub fn list(layout: &Layout, opts: &ListOptions) -> Result<Vec<Session>, String> {
    let want_dir = opts
        .project
        .as_ref()
        .map(|p| std::path::absolute(p).unwrap_or(p.clone()))
        .map(|p| {
            (
                p.to_string_lossy().into_owned(),
                model::project_dir_name(&p.to_string_lossy()),
            )
        });
    // First the names (cheap), so progress can say how many.
    let mut files: Vec<(PathBuf, String, String, usize)> = Vec::new();
    let stores = stores(layout, &opts.scope)?;
    let locks: Vec<_> = stores
        .iter()
        .map(|s| {
            s.group
                .as_deref()
                .map(|g| holders(layout, g))
                .unwrap_or_default()
        })
        .collect();
    for (si, store) in stores.iter().enumerate() {
        let Ok(dirs) = std::fs::read_dir(&store.projects) else {
            continue;
        };
        for d in dirs.flatten() {
            let dir_name = d.file_name().to_string_lossy().into_owned();
            if let Some((_, enc)) = &want_dir
                && &dir_name != enc
            {
                continue;
            }
            if !d.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")) else {
                    continue;
                };
                files.push((e.path(), id.to_string(), dir_name.clone(), si));
            }
        }
    }
    let total = files.len();
    let mut out = Vec::with_capacity(total);
    for (i, (path, id, dir_name, si)) in files.into_iter().enumerate() {
        if opts.progress && i % 500 == 0 && total > 1000 {
            eprint!("\rccsfs: reading sessions {i}/{total}");
        }
        if let Some(s) = read_session(&path, id, dir_name, &locks[si], opts.count) {
            if let Some((cwd, _)) = &want_dir {
                // The dir name is lossy: keep only the sessions that ran in this very cwd.
                if s.project != *cwd && s.project != s.project_dir {
                    continue;
                }
            }
            out.push(s);
        }
    }
    if opts.progress && total > 1000 {
        eprintln!("\rccsfs: read {total} sessions          ");
    }
    out.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

fn read_session(
    path: &Path,
    id: String,
    dir_name: String,
    locks: &std::collections::HashMap<u64, (crate::locks::policy::FileId, Holder)>,
    count: bool,
) -> Option<Session> {
    let mut f = File::open(path).ok()?;
    let m = f.metadata().ok()?;
    if !m.is_file() {
        return None;
    }
    let size = m.len();
    // Only the head is wanted: no readahead past it (the kernel would otherwise read 128 KiB
    // or more of each transcript from disk, most of a typical one).
    if size as usize > HEAD && !count {
        let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Random);
    }
    let head = read_head(&mut f, size).ok()?;
    let (messages, messages_exact) = if head.whole {
        (head.messages, true)
    } else if count {
        (count_messages(File::open(path).ok()?), true)
    } else if head.parsed > 0 {
        let est = (head.messages as f64) * (size as f64) / (head.parsed as f64);
        (est.round() as u64, false)
    } else {
        (0, false)
    };
    Some(Session {
        id,
        project: head.cwd.unwrap_or_else(|| dir_name.clone()),
        project_dir: dir_name,
        file: path.to_path_buf(),
        first_prompt: head.prompt,
        messages,
        messages_exact,
        modified: secs(m.modified()),
        size,
        locked_by: holder_of(locks, &m),
    })
}

/// A UTC time as `YYYY-MM-DD HH:MM`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let (h, mi) = ((secs % 86400) / 3600, (secs % 3600) / 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}")
}

fn human(size: u64) -> String {
    match size {
        s if s < 1024 => format!("{s} B"),
        s if s < 1024 * 1024 => format!("{:.1} KiB", s as f64 / 1024.0),
        s => format!("{:.1} MiB", s as f64 / (1024.0 * 1024.0)),
    }
}

/// The table `list` prints: one session a line, tab-separated.
pub fn render(sessions: &[Session]) -> String {
    let mut out =
        String::from("SESSION\tMODIFIED (UTC)\tMESSAGES\tSIZE\tLOCKED BY\tPROJECT\tFIRST PROMPT\n");
    for s in sessions {
        out.push_str(&format!(
            "{}\t{}\t{}{}\t{}\t{}\t{}\t{}\n",
            s.id,
            utc(s.modified),
            if s.messages_exact { "" } else { "~" },
            s.messages,
            human(s.size),
            s.locked_by
                .as_ref()
                .map_or("-".to_string(), |h| h.to_string()),
            s.project,
            s.first_prompt.as_deref().unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00");
        assert_eq!(super::utc(1_764_632_096), "2025-12-01 23:34");
    }
}
