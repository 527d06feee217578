//! `ccsfs sessions import`: an export written back as a session of a profile. Every record is
//! checked first (the error names the record number and the reason); by default the session
//! gets a new UUID v4 and every record a new `uuid`, with `parentUuid` (and every other field
//! naming one of them, such as `leafUuid` or a snapshot's `messageId`) mapped the same way, so
//! the chain stays intact. A parent left out by `--limit` becomes `null`, the chain's start.
//! The transcript lands in the profile's routed `projects/<Claude's encoding of the cwd>/`,
//! written beside and linked into place, so an existing session is never overwritten.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_json::value::RawValue;

use super::export::{Export, FORMAT, VERSION, checksum};
use super::model::{is_uuid, project_dir_name, rewrite_cwd, rewrite_ids};

/// How to import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The project cwd (default: the export's).
    pub cwd: Option<String>,
    /// Keep the session id and the record ids.
    pub keep_id: bool,
    /// Import even when the checksum does not match.
    pub force: bool,
}

/// What an import did.
#[derive(Clone, Debug)]
pub struct Imported {
    pub id: String,
    pub file: PathBuf,
    pub cwd: String,
    pub records: usize,
    /// Parent links to records that are not in the export (left out by `--limit`), now null.
    pub cut_links: usize,
    pub warnings: Vec<String>,
}

/// Parses an export, checking its header and every record.
pub fn parse(text: &str) -> Result<Export, String> {
    let head: Value = match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(e) => {
            return Err(format!(
                "not a JSON export (line {}, column {}: {e}); make one with `ccsfs sessions export ID`",
                e.line(),
                e.column()
            ));
        }
    };
    if head.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(format!(
            "not a ccsfs session export (no \"format\": \"{FORMAT}\"); make one with `ccsfs sessions export ID`"
        ));
    }
    let v = head.get("version").and_then(Value::as_u64).unwrap_or(0);
    if v != u64::from(VERSION) {
        return Err(format!(
            "export format version {v} is not supported (this ccsfs reads {VERSION}); use a matching ccsfs"
        ));
    }
    let e: Export = serde_json::from_str(text)
        .map_err(|e| format!("malformed export header: {e}; re-export the session"))?;
    check_records(&e.records, "record")?;
    for t in &e.subagents {
        if t.path.split('/').any(|c| c == ".." || c.is_empty()) || t.path.starts_with('/') {
            return Err(format!(
                "subagent transcript path `{}` is not inside the session dir",
                t.path
            ));
        }
        check_records(&t.records, &format!("{} record", t.path))?;
    }
    for f in &e.files {
        if f.path.split('/').any(|c| c == ".." || c.is_empty()) || f.path.starts_with('/') {
            return Err(format!(
                "file path `{}` is not inside the session dir",
                f.path
            ));
        }
    }
    Ok(e)
}

/// Each record is an object with a string `type`, and a string (or absent) `uuid`,
/// `parentUuid` (or null) and `sessionId`; a JSON string is a line kept as it was.
fn check_records(records: &[Box<RawValue>], what: &str) -> Result<(), String> {
    let mut seen = HashSet::new();
    for (i, r) in records.iter().enumerate() {
        let n = i + 1;
        let v: Value = serde_json::from_str(r.get()).map_err(|e| format!("{what} {n}: {e}"))?;
        let Value::Object(o) = &v else {
            if v.is_string() {
                continue;
            }
            return Err(format!("{what} {n}: not a JSON object"));
        };
        if !o.get("type").is_some_and(Value::is_string) {
            return Err(format!("{what} {n}: no string \"type\" field"));
        }
        for (field, nullable) in [("uuid", false), ("parentUuid", true), ("sessionId", false)] {
            match o.get(field) {
                None => {}
                Some(Value::Null) if nullable => {}
                Some(Value::String(s)) if is_uuid(s.as_bytes()) => {}
                Some(other) => {
                    return Err(format!("{what} {n}: \"{field}\" is not a UUID: {other}"));
                }
            }
        }
        if let Some(u) = o.get("uuid").and_then(Value::as_str)
            && !seen.insert(u.to_string())
        {
            return Err(format!("{what} {n}: \"uuid\" {u} appears twice"));
        }
        if r.get().contains('\n') {
            return Err(format!(
                "{what} {n}: spans several lines (records are one line each)"
            ));
        }
    }
    Ok(())
}

/// The old → new id map for a copy: the session id and every record's `uuid`, in all
/// transcripts. With `keep`, empty (nothing changes).
pub fn id_map(
    session: &str,
    new_session: &str,
    transcripts: &[&[Box<RawValue>]],
) -> HashMap<String, String> {
    let mut map = HashMap::new();
    map.insert(session.to_string(), new_session.to_string());
    for records in transcripts {
        for r in records.iter() {
            if let Ok(v) = serde_json::from_str::<Value>(r.get())
                && let Some(u) = v.get("uuid").and_then(Value::as_str)
            {
                map.insert(u.to_string(), uuid::Uuid::new_v4().to_string());
            }
        }
    }
    map
}

/// The lines of a transcript: each record rewritten (ids, cwd), a kept string written as it
/// was, and a parent outside the transcript's records set to null. Returns the text and how
/// many parent links were cut.
pub fn transcript_text(
    records: &[Box<RawValue>],
    map: &HashMap<String, String>,
    cwd: Option<(&str, &str)>,
) -> (String, usize) {
    let own: HashSet<String> = records
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(r.get()).ok())
        .filter_map(|v| v.get("uuid").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut out = String::new();
    let mut cut = 0;
    for r in records {
        let raw = r.get();
        if raw.starts_with('"') {
            let line: String = serde_json::from_str(raw).unwrap_or_default();
            out.push_str(&line);
            out.push('\n');
            continue;
        }
        let mut line = raw.to_string();
        if let Ok(v) = serde_json::from_str::<Value>(raw)
            && let Some(p) = v.get("parentUuid").and_then(Value::as_str)
            && !own.contains(p)
        {
            let from = format!("\"parentUuid\":\"{p}\"");
            if line.contains(&from) {
                line = line.replacen(&from, "\"parentUuid\":null", 1);
                cut += 1;
            }
        }
        if !map.is_empty() {
            line = rewrite_ids(&line, map);
        }
        if let Some((old, new)) = cwd
            && old != new
        {
            line = rewrite_cwd(&line, old, new);
        }
        out.push_str(&line);
        out.push('\n');
    }
    (out, cut)
}

/// Writes `text` to `path` only if nothing is there: into a temp file beside it, then a hard
/// link into place (which fails if the name exists), then the temp name is removed.
pub fn write_new(path: &Path, text: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.ccsfs-{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        f.write_all(text)
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::hard_link(&tmp, path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "{} exists; a session is never overwritten (import without --keep-id for a new id)",
                path.display()
            ),
            _ => format!("cannot create {}: {e}", path.display()),
        })
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Writes a session (main transcript, subagent transcripts, files) as `new_id` into the
/// project dir `project`, with its `cwd` fields set to `cwd`; refuses if the session or its dir
/// exists.
pub fn place(
    project: &Path,
    e: &Export,
    new_id: &str,
    map: &HashMap<String, String>,
    cwd: &str,
) -> Result<Imported, String> {
    let file = project.join(format!("{new_id}.jsonl"));
    let dir = project.join(new_id);
    if file.exists() || dir.exists() {
        return Err(format!(
            "session {new_id} already exists in {}; a session is never overwritten (import without --keep-id for a new id)",
            project.display()
        ));
    }
    let old_cwd = e.project_cwd.as_deref();
    let cwd_change = old_cwd.map(|o| (o, cwd));
    let (text, cut_links) = transcript_text(&e.records, map, cwd_change);
    // The session dir first, so that the session appears complete.
    for t in &e.subagents {
        let (text, _) = transcript_text(&t.records, map, cwd_change);
        write_new(&dir.join(&t.path), text.as_bytes())?;
    }
    for f in &e.files {
        let bytes = match (&f.content, &f.content_hex) {
            (Some(s), _) => s.clone().into_bytes(),
            (None, Some(h)) => (0..h.len() / 2)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| format!("file {}: content_hex is not hex", f.path))?,
            (None, None) => Vec::new(),
        };
        write_new(&dir.join(&f.path), &bytes)?;
    }
    write_new(&file, text.as_bytes())?;
    Ok(Imported {
        id: new_id.to_string(),
        file,
        cwd: cwd.to_string(),
        records: e.records.len(),
        cut_links,
        warnings: Vec::new(),
    })
}

/// Imports the export `text` into the `projects/` dir `projects`.
pub fn import(text: &str, projects: &Path, opts: &ImportOptions) -> Result<Imported, String> {
    let e = parse(text)?;
    let mut warnings = Vec::new();
    let sum = checksum(&e.records, &e.subagents, &e.files);
    if sum != e.checksum {
        let msg = format!(
            "checksum mismatch: the export says {} but its content is {sum} (edited or damaged since export)",
            e.checksum
        );
        if !opts.force {
            return Err(format!(
                "{msg}; re-export it, or pass --force to import it anyway"
            ));
        }
        warnings.push(msg);
    }
    let cwd = match (&opts.cwd, &e.project_cwd) {
        (Some(c), _) => c.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => {
            return Err("the export names no project cwd; pass --cwd DIR".to_string());
        }
    };
    let (new_id, map) = if opts.keep_id {
        (e.session_id.clone(), HashMap::new())
    } else {
        let new_id = uuid::Uuid::new_v4().to_string();
        let mut all: Vec<&[Box<RawValue>]> = vec![&e.records];
        all.extend(e.subagents.iter().map(|t| t.records.as_slice()));
        let map = id_map(&e.session_id, &new_id, &all);
        (new_id, map)
    };
    let mut done = place(
        &projects.join(project_dir_name(&cwd)),
        &e,
        &new_id,
        &map,
        &cwd,
    )?;
    done.warnings = warnings;
    Ok(done)
}
