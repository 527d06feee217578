//! `ccsfs sessions export`: a session as one lossless JSON document. Every line of the
//! transcript is kept as it is, in order (as a raw JSON value, byte for byte; a line that is
//! not JSON as a JSON string), with the session's own dir (`<project>/<id>/`: subagent
//! transcripts, tool results) and a header: format version, exported_at, source session id,
//! project cwd, counts, models used, an optional `--limit` and a sha256 checksum of the content
//! that `import` verifies. Reading never takes or needs the session's lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::model::{is_message, model};

/// What an export calls itself.
pub const FORMAT: &str = "ccsfs-session-export";
/// The version of the export format this ccsfs writes and reads.
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub records: u64,
    pub messages: u64,
    pub user: u64,
    pub assistant: u64,
    pub subagent_transcripts: u64,
    pub subagent_records: u64,
    pub files: u64,
}

/// What `--limit` dropped.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limit {
    /// The messages kept (the last N).
    pub messages: u64,
    pub dropped_records: u64,
    pub dropped_messages: u64,
}

/// A transcript in the session's dir (a subagent's), relative to `<project>/<id>/`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Transcript {
    pub path: String,
    pub records: Vec<Box<RawValue>>,
}

/// Any other file in the session's dir (tool results), relative to `<project>/<id>/`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Attachment {
    pub path: String,
    /// The content when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Otherwise, in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hex: Option<String>,
}

/// The export document.
#[derive(Debug, Serialize, Deserialize)]
pub struct Export {
    pub format: String,
    pub version: u32,
    pub exported_at: String,
    pub session_id: String,
    pub project_cwd: Option<String>,
    pub project_dir: String,
    pub counts: Counts,
    pub models: Vec<String>,
    #[serde(default)]
    pub limit: Option<Limit>,
    /// Secrets replaced, per kind (`--redact`).
    #[serde(default)]
    pub redacted: Option<BTreeMap<String, u64>>,
    /// `sha256:<hex>` of the records, transcripts and files (see `checksum`).
    pub checksum: String,
    pub records: Vec<Box<RawValue>>,
    #[serde(default)]
    pub subagents: Vec<Transcript>,
    #[serde(default)]
    pub files: Vec<Attachment>,
}

/// Replaces secrets, for `--redact` (the redaction engine behind an adapter).
pub trait Redactor {
    /// A record's raw JSON with its secrets replaced, or `None` when it has none. The result
    /// is valid JSON.
    fn record(&mut self, raw: &str) -> Option<String>;
    /// A text with its secrets replaced, or `None` when it has none.
    fn text(&mut self, text: &str) -> Option<String>;
    /// How many secrets of each kind were replaced so far.
    fn counts(&self) -> BTreeMap<String, u64>;
}

/// Options of `export`.
#[derive(Default)]
pub struct ExportOptions<'a> {
    pub limit: Option<u64>,
    pub redactor: Option<&'a mut dyn Redactor>,
    pub progress: bool,
}

/// The checksum over an export's content: each main record's raw JSON and a newline, then for
/// each transcript a NUL, its path, a newline and its records likewise, then for each file a
/// NUL, its path, a newline and its content.
pub fn checksum(
    records: &[Box<RawValue>],
    subagents: &[Transcript],
    files: &[Attachment],
) -> String {
    let mut h = Sha256::new();
    for r in records {
        h.update(r.get().as_bytes());
        h.update(b"\n");
    }
    for t in subagents {
        h.update(b"\0");
        h.update(t.path.as_bytes());
        h.update(b"\n");
        for r in &t.records {
            h.update(r.get().as_bytes());
            h.update(b"\n");
        }
    }
    for f in files {
        h.update(b"\0");
        h.update(f.path.as_bytes());
        h.update(b"\n");
        h.update(f.content.as_deref().unwrap_or("").as_bytes());
        h.update(f.content_hex.as_deref().unwrap_or("").as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The lines of a transcript as raw JSON values. A line that is not JSON is kept as a JSON
/// string, except a last line without its newline (a record still being written), which is
/// left out and reported.
pub fn read_records(path: &Path, warnings: &mut Vec<String>) -> Result<Vec<Box<RawValue>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(format!(
                "{} is not all UTF-8; bad bytes are replaced by U+FFFD",
                path.display()
            ));
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Box<RawValue>>(line) {
            Ok(v)
                if !line.starts_with(char::is_whitespace)
                    && !line.ends_with(char::is_whitespace) =>
            {
                out.push(v)
            }
            _ if i + 1 == lines.len() && !complete => warnings.push(format!(
                "the last record of {} is incomplete (being written?) and is left out",
                path.display()
            )),
            _ => {
                let s = serde_json::to_string(line).map_err(|e| e.to_string())?;
                out.push(RawValue::from_string(s).map_err(|e| e.to_string())?);
            }
        }
    }
    Ok(out)
}

fn rel(base: &Path, p: &Path) -> String {
    p.strip_prefix(base)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// Every file under `dir`, sorted, relative paths.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

fn parse(r: &RawValue) -> Value {
    serde_json::from_str(r.get()).unwrap_or(Value::Null)
}

/// The ISO 8601 UTC time now, with milliseconds (as Claude writes timestamps).
pub fn now_iso() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let day = super::scan::utc(d.as_secs()).replace(' ', "T");
    format!("{day}:{:02}.{:03}Z", d.as_secs() % 60, d.subsec_millis())
}

/// Builds the export of the session in `file` (`<project>/<id>.jsonl`). Warnings (left-out
/// fragments, bad bytes) go to `warnings`.
pub fn export(
    id: &str,
    file: &Path,
    opts: &mut ExportOptions,
    warnings: &mut Vec<String>,
) -> Result<Export, String> {
    let mut records = read_records(file, warnings)?;
    let project = file.parent().unwrap_or(Path::new("."));
    let session_dir = project.join(id);
    let mut subagents = Vec::new();
    let mut files = Vec::new();
    for p in walk(&session_dir) {
        let path = rel(&session_dir, &p);
        if path.ends_with(".jsonl") {
            subagents.push(Transcript {
                records: read_records(&p, warnings)?,
                path,
            });
        } else {
            let bytes =
                std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            files.push(match String::from_utf8(bytes) {
                Ok(s) => Attachment {
                    path,
                    content: Some(s),
                    content_hex: None,
                },
                Err(e) => Attachment {
                    path,
                    content: None,
                    content_hex: Some(e.as_bytes().iter().map(|b| format!("{b:02x}")).collect()),
                },
            });
        }
    }
    // --limit: keep the records from the Nth-last message on.
    let mut limit = None;
    if let Some(n) = opts.limit {
        let msgs: Vec<usize> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| is_message(&parse(r)))
            .map(|(i, _)| i)
            .collect();
        let cut = if (msgs.len() as u64) > n {
            msgs[msgs.len() - n as usize]
        } else {
            0
        };
        let dropped_messages = msgs.iter().filter(|i| **i < cut).count() as u64;
        records.drain(..cut);
        limit = Some(Limit {
            messages: n,
            dropped_records: cut as u64,
            dropped_messages,
        });
    }
    // --redact: every record, transcript and text file.
    let mut redacted = None;
    if let Some(r) = opts.redactor.as_deref_mut() {
        let total = records.len() + subagents.iter().map(|t| t.records.len()).sum::<usize>();
        let mut done = 0usize;
        let mut step = |rec: &mut Box<RawValue>, r: &mut dyn Redactor| -> Result<(), String> {
            if let Some(new) = r.record(rec.get()) {
                *rec = RawValue::from_string(new)
                    .map_err(|e| format!("redaction broke a record: {e}"))?;
            }
            done += 1;
            if opts.progress && total > 5000 && done.is_multiple_of(1000) {
                eprint!("\rccsfs: redacting {done}/{total} records");
            }
            Ok(())
        };
        for rec in records.iter_mut() {
            step(rec, r)?;
        }
        for t in subagents.iter_mut() {
            for rec in t.records.iter_mut() {
                step(rec, r)?;
            }
        }
        for f in files.iter_mut() {
            if let Some(new) = f.content.as_deref().and_then(|c| r.text(c)) {
                f.content = Some(new);
            }
        }
        if opts.progress && total > 5000 {
            eprintln!("\rccsfs: redacted {total} records            ");
        }
        redacted = Some(r.counts());
    }
    let mut counts = Counts {
        records: records.len() as u64,
        subagent_transcripts: subagents.len() as u64,
        subagent_records: subagents.iter().map(|t| t.records.len() as u64).sum(),
        files: files.len() as u64,
        ..Counts::default()
    };
    let mut models: Vec<String> = Vec::new();
    let mut cwd = None;
    for r in &records {
        let v = parse(r);
        match v.get("type").and_then(Value::as_str) {
            Some("user") => counts.user += 1,
            Some("assistant") => counts.assistant += 1,
            _ => {}
        }
        if cwd.is_none() {
            cwd = v.get("cwd").and_then(Value::as_str).map(str::to_string);
        }
        if let Some(m) = model(&v)
            && !models.iter().any(|x| x == m)
        {
            models.push(m.to_string());
        }
    }
    counts.messages = counts.user + counts.assistant;
    Ok(Export {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: now_iso(),
        session_id: id.to_string(),
        project_cwd: cwd,
        project_dir: project
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        counts,
        models,
        limit,
        redacted,
        checksum: checksum(&records, &subagents, &files),
        records,
        subagents,
        files,
    })
}

/// The export as JSON text: the header fields first, each record on a line of its own.
pub fn to_json(e: &Export) -> Result<String, String> {
    let mut s = serde_json::to_string_pretty(e).map_err(|e| e.to_string())?;
    s.push('\n');
    Ok(s)
}
