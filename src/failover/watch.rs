//! Noticing that a running claude was refused for its account's limit, from its transcript.
//! Claude Code writes the refusal into the session as an assistant record with
//! `isApiErrorMessage: true` and `apiErrorStatus: 429` (`error: "rate_limit"`). The transcripts
//! a process writes are the ones whose single-writer lock it owns, so the watcher reads the
//! lock records of the group store, keeps those owned by the supervised process or its
//! descendants, and reads what each of their transcripts gained since the last look, straight
//! from the store (with passthrough the writes never reach the daemon). Only records written
//! after the run began count. Reading is by the lock's file identity, so a record cannot make
//! the watcher read another file.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use jiff::Timestamp;
use serde_json::Value;

use crate::locks::policy::FileId;
use crate::locks::{record, text};

/// A refusal for the account's limit, as the transcript has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitHit {
    pub session: String,
    /// Claude Code's words ("You've hit your session limit · resets 5am (UTC)").
    pub message: String,
    /// When it was written.
    pub at: Timestamp,
    /// The refused turn's prompt: the last prompt the transcript had when the refusal was
    /// read (`Watch::settle` reads it again once the writer has ended: Claude Code may write
    /// the refusal before the prompt's own record).
    pub prompt: Option<String>,
    /// The transcript.
    pub path: PathBuf,
}

/// What the watcher knows of one transcript.
#[derive(Default)]
struct Tail {
    /// The locked file's identity: only that file is read under this path.
    id: Option<FileId>,
    offset: u64,
    /// A line not yet ended by `\n`.
    partial: Vec<u8>,
    last_prompt: Option<String>,
    /// Found by `sweep` rather than by its lock: only records written in this working dir
    /// count.
    cwd: Option<String>,
}

/// Watches the transcripts written by one process tree in one group store.
pub struct Watch {
    group_dir: PathBuf,
    root_pid: u32,
    since: Timestamp,
    tails: HashMap<PathBuf, Tail>,
}

impl Watch {
    /// For the process `root_pid` (and its descendants) started at `since`, writing into
    /// `group_dir`.
    pub fn new(group_dir: PathBuf, root_pid: u32, since: Timestamp) -> Watch {
        Watch {
            group_dir,
            root_pid,
            since,
            tails: HashMap::new(),
        }
    }

    /// The first refusal written since the last call, if any. Transcripts found once are
    /// read again at every call, also after their lock is gone (the daemon lets it go the
    /// moment the writer exits, which may be right after it wrote the refusal).
    pub fn poll(&mut self) -> Option<LimitHit> {
        for (_, rec) in record::list(&self.group_dir) {
            if !descends_from(rec.owner.pid, self.root_pid) {
                continue;
            }
            let Some(rel) =
                text::unescape(&rec.path).map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)))
            else {
                continue;
            };
            if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                continue;
            }
            let tail = self.tails.entry(self.group_dir.join(&rel)).or_default();
            if tail.id.is_some_and(|id| id.ino != rec.file.ino) {
                *tail = Tail::default();
            }
            tail.id = Some(rec.file);
        }
        self.read_tails()
    }

    /// Reads what `hit`'s transcript gained since (its writer has ended, so every record it
    /// wrote is there) and takes the last prompt it holds.
    pub fn settle(&mut self, hit: &mut LimitHit) {
        if let Some(tail) = self.tails.get_mut(&hit.path)
            && let Some(id) = tail.id
        {
            let _ = read_new(&hit.path, id, tail, self.since);
            if tail.last_prompt.is_some() {
                hit.prompt = tail.last_prompt.clone();
            }
        }
    }

    fn read_tails(&mut self) -> Option<LimitHit> {
        for (path, tail) in &mut self.tails {
            if let Some(id) = tail.id
                && let Some(hit) = read_new(path, id, tail, self.since)
            {
                return Some(hit);
            }
        }
        None
    }

    /// For a headless run that has ended: claude -p writes its transcript at the end, so its
    /// lock may have come and gone between two polls. Then the transcripts of `cwd`'s project
    /// dir changed since the start are read, and only records written in `cwd` count (its
    /// own records say where they were written).
    pub fn sweep(&mut self, cwd: &Path) -> Option<LimitHit> {
        let cwd_text = cwd.to_str()?.to_string();
        let encoded = project_dir_prefix(&cwd_text);
        let projects = self.group_dir.join("projects");
        let since = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(self.since.as_second().max(1) as u64 - 1);
        for dir in std::fs::read_dir(&projects).ok()?.flatten() {
            if !dir
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&encoded))
            {
                continue;
            }
            for f in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = f.path();
                let Ok(meta) = f.metadata() else { continue };
                if path.extension().is_none_or(|e| e != "jsonl")
                    || !meta.is_file()
                    || meta.modified().is_ok_and(|m| m < since)
                    || self.tails.contains_key(&path)
                {
                    continue;
                }
                self.tails.insert(
                    path,
                    Tail {
                        id: Some(FileId::of(&meta)),
                        cwd: Some(cwd_text.clone()),
                        ..Tail::default()
                    },
                );
            }
        }
        self.read_tails()
    }
}

/// The start of the name Claude Code gives the project dir of `cwd`: every character that is
/// not an ASCII letter or digit becomes `-`; a name past 200 characters is cut there and a
/// hash added, so the first 200 are compared.
fn project_dir_prefix(cwd: &str) -> String {
    cwd.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(200)
        .collect()
}

/// Whether `pid` is `root` or one of its descendants (by /proc's parent links).
fn descends_from(pid: u32, root: u32) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        if p == root {
            return true;
        }
        if p <= 1 {
            return false;
        }
        let Some(ppid) = crate::procs::parent_of(p) else {
            return false;
        };
        p = ppid;
    }
    false
}

/// Reads what `path` gained past `tail.offset`, when it is still the locked file `id`.
fn read_new(path: &Path, id: FileId, tail: &mut Tail, since: Timestamp) -> Option<LimitHit> {
    let mut f = std::fs::File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    if FileId::of(&meta).ino != id.ino || !meta.is_file() {
        return None;
    }
    if meta.len() < tail.offset {
        // Cut: start over.
        *tail = Tail {
            id: tail.id,
            ..Tail::default()
        };
    }
    if meta.len() == tail.offset {
        return None;
    }
    f.seek(SeekFrom::Start(tail.offset)).ok()?;
    let mut buf = Vec::new();
    f.take(meta.len() - tail.offset)
        .read_to_end(&mut buf)
        .ok()?;
    tail.offset += buf.len() as u64;
    let mut data = std::mem::take(&mut tail.partial);
    data.extend_from_slice(&buf);
    let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    tail.partial = data.split_off(complete);
    let mut found = None;
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if let Some(p) = user_prompt(&v).or_else(|| last_prompt(&v)) {
            tail.last_prompt = Some(p);
        }
        let here = match &tail.cwd {
            Some(cwd) => v.get("cwd").and_then(Value::as_str) == Some(cwd.as_str()),
            None => true,
        };
        if found.is_none()
            && here
            && let Some(mut hit) = limit_hit(&v, since)
        {
            hit.path = path.to_path_buf();
            found = Some(hit);
        }
    }
    if let Some(hit) = &mut found {
        hit.prompt = tail.last_prompt.clone();
    }
    found
}

/// Claude Code's own note of the session's last prompt (`{"type":"last-prompt",
/// "lastPrompt":…}`).
fn last_prompt(v: &Value) -> Option<String> {
    if v.get("type")?.as_str()? != "last-prompt" {
        return None;
    }
    let p = v.get("lastPrompt")?.as_str()?;
    (!p.trim().is_empty()).then(|| p.to_string())
}

/// The text a person typed, when `v` is a user record of it (not a tool result, not a meta
/// record Claude Code added itself).
fn user_prompt(v: &Value) -> Option<String> {
    let flag = |k: &str| v.get(k).and_then(Value::as_bool) == Some(true);
    if v.get("type")?.as_str()? != "user"
        || flag("isMeta")
        || flag("isSidechain")
        || flag("isCompactSummary")
    {
        return None;
    }
    let content = v.get("message")?.get("content")?;
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => {
            if blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            {
                return None;
            }
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        }
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// The refusal `v` records, when it is one written at or after `since` (a resumed session's
/// transcript holds the refusal that started the failover; it must not count again).
pub fn limit_hit(v: &Value, since: Timestamp) -> Option<LimitHit> {
    // A subagent's refusal (its own transcript, `isSidechain`) is followed by the main
    // thread's, which names the prompt to ask again.
    if v.get("type")?.as_str()? != "assistant"
        || v.get("isApiErrorMessage").and_then(Value::as_bool) != Some(true)
        || v.get("isSidechain").and_then(Value::as_bool) == Some(true)
    {
        return None;
    }
    let status = v.get("apiErrorStatus").and_then(Value::as_i64);
    let kind = v.get("error").and_then(Value::as_str);
    if status != Some(429) && kind != Some("rate_limit") {
        return None;
    }
    let at: Timestamp = v.get("timestamp")?.as_str()?.parse().ok()?;
    if at < since {
        return None;
    }
    let message = v
        .get("message")
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .and_then(|blocks| {
            blocks
                .iter()
                .find_map(|b| b.get("text").and_then(Value::as_str))
        })
        .unwrap_or("rate limited")
        .to_string();
    Some(LimitHit {
        session: v.get("sessionId")?.as_str()?.to_string(),
        message,
        at,
        prompt: None,
        path: PathBuf::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSAL: &str = r#"{"parentUuid":"b","type":"assistant","uuid":"c","timestamp":"2026-12-02T03:07:18.056Z","message":{"model":"<synthetic>","role":"assistant","content":[{"type":"text","text":"You've hit your session limit · resets 5am (UTC)"}]},"error":"rate_limit","isApiErrorMessage":true,"apiErrorStatus":429,"sessionId":"S"}"#;

    #[test]
    fn refusal_record() {
        let v: Value = serde_json::from_str(REFUSAL).unwrap();
        let since: Timestamp = "2026-12-02T03:07:00Z".parse().unwrap();
        let hit = limit_hit(&v, since).unwrap();
        assert_eq!(hit.session, "S");
        assert_eq!(
            hit.message,
            "You've hit your session limit · resets 5am (UTC)"
        );
        // Older than the run: an earlier refusal in a resumed session does not count.
        assert_eq!(limit_hit(&v, "2026-12-02T03:08:00Z".parse().unwrap()), None);
        let other: Value = serde_json::from_str(
            &REFUSAL
                .replace("429", "500")
                .replace("rate_limit", "api_error"),
        )
        .unwrap();
        assert_eq!(limit_hit(&other, since), None);
        let sidechain: Value = serde_json::from_str(&REFUSAL.replace(
            "\"type\":\"assistant\"",
            "\"isSidechain\":true,\"type\":\"assistant\"",
        ))
        .unwrap();
        assert_eq!(limit_hit(&sidechain, since), None);
    }

    #[test]
    fn prompts() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(
            user_prompt(&v(r#"{"type":"user","message":{"content":"hi"}}"#)).as_deref(),
            Some("hi")
        );
        assert_eq!(
            user_prompt(&v(r#"{"type":"user","message":{"content":[{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}]}}"#)).as_deref(),
            Some("a\nb")
        );
        assert_eq!(
            user_prompt(&v(
                r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"x"}]}}"#
            )),
            None
        );
        assert_eq!(
            user_prompt(&v(
                r#"{"type":"user","isMeta":true,"message":{"content":"x"}}"#
            )),
            None
        );
        assert_eq!(
            user_prompt(&v(r#"{"type":"assistant","message":{"content":"x"}}"#)),
            None
        );
    }

    #[test]
    fn tails_a_growing_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.jsonl");
        std::fs::write(&path, "{\"type\":\"user\",\"message\":{\"content\":\"first\"}}\n{\"type\":\"user\",\"message\":{\"content\":\"the turn\"}}\n").unwrap();
        let id = FileId::of(&std::fs::metadata(&path).unwrap());
        let mut tail = Tail::default();
        let since: Timestamp = "2026-12-02T03:07:00Z".parse().unwrap();
        assert_eq!(read_new(&path, id, &mut tail, since), None);
        // Half a record: nothing yet.
        let (a, b) = REFUSAL.split_at(40);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let append = |s: &str| {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap()
                .write_all(s.as_bytes())
                .unwrap();
        };
        append(a);
        assert_eq!(read_new(&path, id, &mut tail, since), None);
        append(&format!("{b}\n"));
        let hit = read_new(&path, id, &mut tail, since).unwrap();
        assert_eq!(hit.prompt.as_deref(), Some("the turn"));
        assert_eq!(read_new(&path, id, &mut tail, since), None);
        // Another file under the same name is not read.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, format!("{REFUSAL}\n")).unwrap();
        let other = FileId::of(&std::fs::metadata(&path).unwrap());
        if other.ino != id.ino {
            assert_eq!(read_new(&path, id, &mut Tail::default(), since), None);
        }
    }

    #[test]
    fn project_dir_names() {
        assert_eq!(project_dir_prefix("/tmp/fo/proj"), "-tmp-fo-proj");
        assert_eq!(project_dir_prefix("/home/a.b/é x"), "-home-a-b---x");
        assert_eq!(project_dir_prefix(&"/a".repeat(150)).len(), 200);
    }

    #[test]
    fn process_tree() {
        let me = std::process::id();
        assert!(descends_from(me, me));
        let parent = std::os::unix::process::parent_id();
        assert!(descends_from(me, parent));
        assert!(!descends_from(parent, me));
        assert!(!descends_from(1, me));
    }
}
