//! `ccsfs sessions list|export|import|fork` on real files in a temp CCS dir (no mount), plus
//! one test on a real mount where the lock holder shows in `list`. Round trip export → import
//! keeps every record (apart from the rewritten ids) with the parent chain intact; `--limit`;
//! markdown; malformed input refused with its record number; nothing overwritten; fork; list
//! order and fields; and `list` over 10,000 small sessions, timed.

mod common;
#[path = "common/locking.rs"]
mod locking;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::{Ccs, stderr, stdout};
use serde_json::{Value, json};

/// work and personal share group `team`; solo is isolated.
const CONFIG: &str = common::TEAM_AND_SOLO;

const CWD: &str = "/home/me/my.app";
const ENC: &str = "-home-me-my-app";

fn uuid(n: u32, salt: u32) -> String {
    format!("{salt:08x}-0000-4000-8000-{n:012x}")
}

/// A session of `turns` user/assistant exchanges (each with a tool call and its result),
/// bookkeeping records around them, a subagent transcript and a tool-results file.
fn write_session(projects: &Path, id: &str, turns: u32, salt: u32) -> PathBuf {
    let dir = projects.join(ENC);
    fs::create_dir_all(&dir).unwrap();
    let mut lines = vec![
        json!({"type":"summary","summary":"A test","leafUuid":uuid(4 * turns, salt)}).to_string(),
    ];
    let mut parent: Value = Value::Null;
    let mut n = 0;
    let mut next = |parent: &mut Value| {
        n += 1;
        let u = uuid(n, salt);
        let p = std::mem::replace(parent, Value::String(u.clone()));
        (u, p)
    };
    for t in 0..turns {
        let ts = format!("2026-01-01T00:{:02}:00.000Z", t % 60);
        let (u, p) = next(&mut parent);
        lines.push(json!({"parentUuid":p,"isSidechain":false,"userType":"external","cwd":CWD,"sessionId":id,"version":"2.1.0","type":"user","message":{"role":"user","content":format!("question {t}: what is in my.app?")},"uuid":u,"timestamp":ts}).to_string());
        lines.push(json!({"type":"file-history-snapshot","messageId":u,"snapshot":{"messageId":u,"trackedFileBackups":{}},"isSnapshotUpdate":false}).to_string());
        let (u, p) = next(&mut parent);
        let tool = format!("toolu_{salt}_{t}");
        lines.push(json!({"parentUuid":p,"cwd":CWD,"sessionId":id,"type":"assistant","message":{"model":"claude-sonnet-4-5","role":"assistant","content":[{"type":"text","text":format!("answer {t} \u{e9}")},{"type":"tool_use","id":tool,"name":"Bash","input":{"command":"ls -la"}}]},"uuid":u,"timestamp":ts}).to_string());
        let (u, p) = next(&mut parent);
        lines.push(json!({"parentUuid":p,"cwd":CWD,"sessionId":id,"type":"user","message":{"role":"user","content":[{"tool_use_id":tool,"type":"tool_result","content":format!("result-{t}.txt")}]},"uuid":u,"timestamp":ts}).to_string());
        let (u, p) = next(&mut parent);
        lines.push(json!({"parentUuid":p,"cwd":CWD,"sessionId":id,"type":"assistant","message":{"model":"claude-opus-4-1","role":"assistant","content":[{"type":"text","text":format!("done {t}")}]},"uuid":u,"timestamp":ts}).to_string());
    }
    let file = dir.join(format!("{id}.jsonl"));
    fs::write(&file, lines.join("\n") + "\n").unwrap();
    let sub = dir.join(id).join("subagents");
    fs::create_dir_all(&sub).unwrap();
    fs::write(
        sub.join("agent-a1.jsonl"),
        json!({"parentUuid":null,"isSidechain":true,"cwd":CWD,"sessionId":id,"agentId":"a1","type":"user","message":{"role":"user","content":"sub task"},"uuid":uuid(9999, salt)}).to_string() + "\n",
    )
    .unwrap();
    fs::create_dir_all(dir.join(id).join("tool-results")).unwrap();
    fs::write(dir.join(id).join("tool-results/t1.txt"), "big output\n").unwrap();
    file
}

const SID: &str = "5e55104e-0000-4000-8000-000000000001";

fn setup() -> (Ccs, PathBuf) {
    let ccs = Ccs::new(Some(CONFIG));
    let file = write_session(&ccs.group_projects("team"), SID, 3, 1);
    (ccs, file)
}

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        stderr(out),
        stdout(out)
    );
}

fn export(ccs: &Ccs, args: &[&str]) -> String {
    let mut a = vec!["sessions", "export"];
    a.extend_from_slice(args);
    let out = ccs.cli(&a);
    ok(&out, "export");
    stdout(&out)
}

/// Imports `file` into `profile`: the new id (from the printed resume line).
fn import(ccs: &Ccs, file: &Path, profile: &str, extra: &[&str]) -> String {
    let mut a = vec![
        "sessions",
        "import",
        file.to_str().unwrap(),
        "--profile",
        profile,
    ];
    a.extend_from_slice(extra);
    let out = ccs.cli(&a);
    ok(&out, "import");
    resume_id(&stdout(&out))
}

fn resume_id(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.contains("claude --resume "))
        .unwrap_or_else(|| panic!("no resume line in {text}"));
    line.rsplit(' ').next().unwrap().to_string()
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Checks that `new` is `old` with ids mapped (one consistent map, the session id to
/// `new_id`), every parent in the file or null, and returns the map.
fn same_apart_from_ids(old: &[String], new: &[String], new_id: &str) -> HashMap<String, String> {
    assert_eq!(old.len(), new.len(), "record counts differ");
    let mut map: HashMap<String, String> = HashMap::new();
    let mut uuids = HashSet::new();
    for (o, n) in old.iter().zip(new) {
        let (ov, nv): (Value, Value) = (
            serde_json::from_str(o).unwrap(),
            serde_json::from_str(n).unwrap(),
        );
        if let Some(u) = nv.get("uuid").and_then(Value::as_str) {
            uuids.insert(u.to_string());
            let prev = map.insert(ov["uuid"].as_str().unwrap().to_string(), u.to_string());
            assert!(prev.is_none());
            assert_ne!(ov["uuid"], nv["uuid"], "uuid not rewritten");
        }
        if nv.get("sessionId").is_some() {
            assert_eq!(nv["sessionId"], new_id);
        }
    }
    for (o, n) in old.iter().zip(new) {
        // Mapping the new ids back gives the old line byte for byte.
        let mut back = n.clone();
        for (old_u, new_u) in &map {
            back = back.replace(new_u.as_str(), old_u);
        }
        back = back.replace(new_id, SID);
        assert_eq!(&back, o, "record differs beyond its ids");
        let nv: Value = serde_json::from_str(n).unwrap();
        if let Some(p) = nv.get("parentUuid").and_then(Value::as_str) {
            assert!(
                uuids.contains(p),
                "parent {p} not in the session: chain broken"
            );
        }
    }
    map
}

#[test]
fn round_trip_export_import_keeps_records_and_chain() {
    let (ccs, file) = setup();
    let text = export(&ccs, &[SID]);
    let e: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(e["format"], "ccsfs-session-export");
    assert_eq!(e["version"], 1);
    assert_eq!(e["session_id"], SID);
    assert_eq!(e["project_cwd"], CWD);
    assert_eq!(e["counts"]["messages"], 12);
    assert_eq!(e["counts"]["records"], 16);
    assert_eq!(e["models"], json!(["claude-sonnet-4-5", "claude-opus-4-1"]));
    assert!(e["checksum"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(e["subagents"][0]["path"], "subagents/agent-a1.jsonl");
    assert_eq!(e["files"][0]["content"], "big output\n");
    // The records are the transcript's lines, byte for byte.
    let exp = tempfile::NamedTempFile::new().unwrap();
    fs::write(exp.path(), &text).unwrap();
    for line in lines(&file) {
        assert!(text.contains(&line), "export lacks the exact line {line}");
    }

    // Into an isolated profile (its instance) and a shared one (the group store).
    for (profile, projects) in [
        ("solo", ccs.instance("solo").join("projects")),
        ("personal", ccs.group_projects("team")),
    ] {
        let id = import(&ccs, exp.path(), profile, &[]);
        assert_ne!(id, SID);
        let new_file = projects.join(ENC).join(format!("{id}.jsonl"));
        let map = same_apart_from_ids(&lines(&file), &lines(&new_file), &id);
        // The subagent's record ids and session id are mapped too; the files come along.
        let sub = lines(
            &projects
                .join(ENC)
                .join(&id)
                .join("subagents/agent-a1.jsonl"),
        );
        let sv: Value = serde_json::from_str(&sub[0]).unwrap();
        assert_eq!(sv["sessionId"], id.as_str());
        assert_ne!(sv["uuid"], uuid(9999, 1).as_str());
        assert_eq!(
            fs::read_to_string(projects.join(ENC).join(&id).join("tool-results/t1.txt")).unwrap(),
            "big output\n"
        );
        // The summary's leafUuid and the snapshots' messageId follow their records.
        let first: Value = serde_json::from_str(&lines(&new_file)[0]).unwrap();
        assert_eq!(
            first["leafUuid"].as_str(),
            map.get(&uuid(12, 1)).map(String::as_str)
        );
    }
    // From stdin, with --cwd: the project dir is Claude's encoding of the new cwd.
    let out = std::process::Command::new(common::bin())
        .args([
            "--ccs-dir",
            ccs.ccs.to_str().unwrap(),
            "sessions",
            "import",
            "-",
            "--profile",
            "solo",
            "--cwd",
            "/srv/x_y.z",
        ])
        .stdin(fs::File::open(exp.path()).unwrap())
        .output()
        .unwrap();
    ok(&out, "import from stdin");
    let id = resume_id(&stdout(&out));
    let f = ccs
        .instance("solo")
        .join("projects/-srv-x-y-z")
        .join(format!("{id}.jsonl"));
    let l = lines(&f);
    assert!(l[1].contains(r#""cwd":"/srv/x_y.z""#), "{}", l[1]);
}

#[test]
fn limit_keeps_last_messages_and_says_so() {
    let (ccs, _) = setup();
    let text = export(&ccs, &[&SID[..8], "--limit", "3"]);
    let e: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        e["limit"],
        json!({"messages":3,"dropped_records":13,"dropped_messages":9})
    );
    assert_eq!(e["counts"]["messages"], 3);
    let recs = e["records"].as_array().unwrap();
    assert_eq!(recs.len(), 3);
    let exp = tempfile::NamedTempFile::new().unwrap();
    fs::write(exp.path(), &text).unwrap();
    let out = ccs.cli(&[
        "sessions",
        "import",
        exp.path().to_str().unwrap(),
        "--profile",
        "solo",
    ]);
    ok(&out, "import limited");
    assert!(stderr(&out).contains("1 parent link"), "{}", stderr(&out));
    let id = resume_id(&stdout(&out));
    let l = lines(
        &ccs.instance("solo")
            .join("projects")
            .join(ENC)
            .join(format!("{id}.jsonl")),
    );
    let first: Value = serde_json::from_str(&l[0]).unwrap();
    assert_eq!(
        first["parentUuid"],
        Value::Null,
        "the chain starts at the first kept message"
    );
}

#[test]
fn markdown_has_the_conversation() {
    let (ccs, _) = setup();
    let md = export(&ccs, &[SID, "--format", "markdown"]);
    for want in [
        "# Session 5e55104e",
        CWD,
        "question 0: what is in my.app?",
        "answer 2 é",
        "**Tool call** `Bash`",
        "ls -la",
        "> result-1.txt",
        "done 2",
        "2026-01-01T00:02:00.000Z",
        "claude-opus-4-1",
    ] {
        assert!(md.contains(want), "markdown lacks {want:?}:\n{md}");
    }
    let out_file = ccs.tmp.path().join("s.md");
    export(
        &ccs,
        &[
            SID,
            "--format",
            "markdown",
            "--limit",
            "1",
            "-o",
            out_file.to_str().unwrap(),
        ],
    );
    let md = fs::read_to_string(out_file).unwrap();
    assert!(md.contains("done 2") && !md.contains("question 0"), "{md}");
}

/// A change made to an export.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn malformed_input_is_refused_with_record_number() {
    let (ccs, _) = setup();
    let e: Value = serde_json::from_str(&export(&ccs, &[SID])).unwrap();
    let try_import = |v: &Value, extra: &[&str]| {
        let f = tempfile::NamedTempFile::new().unwrap();
        fs::write(f.path(), v.to_string()).unwrap();
        let mut a = vec![
            "sessions",
            "import",
            f.path().to_str().unwrap(),
            "--profile",
            "solo",
        ];
        a.extend_from_slice(extra);
        ccs.cli(&a)
    };
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|v| v["records"][2] = json!([1])),
            "record 3: not a JSON object",
        ),
        (
            Box::new(|v| v["records"][4]["uuid"] = json!(7)),
            "record 5: \"uuid\" is not a UUID",
        ),
        (
            Box::new(|v| {
                v["records"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("type")
                    .map(|_| ())
                    .unwrap()
            }),
            "record 2: no string \"type\"",
        ),
        (
            Box::new(|v| v["records"][6]["parentUuid"] = json!("nope")),
            "record 7: \"parentUuid\" is not a UUID",
        ),
        (
            Box::new(|v| v["format"] = json!("other")),
            "not a ccsfs session export",
        ),
        (
            Box::new(|v| v["subagents"][0]["path"] = json!("../../x.jsonl")),
            "not inside the session dir",
        ),
    ];
    for (edit, want) in cases {
        let mut v = e.clone();
        edit(&mut v);
        let out = try_import(&v, &["--force"]);
        assert!(!out.status.success(), "accepted: {want}");
        let err = stderr(&out);
        assert!(err.contains(want), "wanted {want:?}, got {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    let out = ccs.cli(&[
        "sessions",
        "import",
        "/nonexistent.json",
        "--profile",
        "solo",
    ]);
    assert!(!out.status.success());
    // A changed record: checksum mismatch, refused unless --force (and then reported).
    let mut v = e.clone();
    v["records"][2]["message"]["content"] = json!("tampered");
    let out = try_import(&v, &[]);
    assert!(
        !out.status.success() && stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
    let out = try_import(&v, &["--force"]);
    ok(&out, "import --force");
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
    assert!(
        !ccs.instance("solo")
            .join("projects")
            .join(ENC)
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp"))
    );
}

#[test]
fn never_overwrites() {
    let (ccs, file) = setup();
    let before = fs::read(&file).unwrap();
    let exp = ccs.tmp.path().join("e.json");
    export(&ccs, &[SID, "-o", exp.to_str().unwrap()]);
    // --keep-id into the store that has it.
    let out = ccs.cli(&[
        "sessions",
        "import",
        exp.to_str().unwrap(),
        "--profile",
        "personal",
        "--keep-id",
    ]);
    assert!(!out.status.success(), "overwrote");
    assert!(
        stderr(&out).contains("never overwritten"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&file).unwrap(), before);
    // --keep-id into another store works once, then is refused.
    let id = import(&ccs, &exp, "solo", &["--keep-id"]);
    assert_eq!(id, SID);
    let placed = ccs
        .instance("solo")
        .join("projects")
        .join(ENC)
        .join(format!("{SID}.jsonl"));
    assert_eq!(
        fs::read(&placed).unwrap(),
        before,
        "--keep-id is byte for byte"
    );
    // Now two stores hold that id: an export without --profile asks which.
    let out = ccs.cli(&["sessions", "export", SID]);
    assert!(
        !out.status.success() && stderr(&out).contains("--profile"),
        "{}",
        stderr(&out)
    );
    export(&ccs, &[SID, "--profile", "solo"]);
    let out = ccs.cli(&[
        "sessions",
        "import",
        exp.to_str().unwrap(),
        "--profile",
        "solo",
        "--keep-id",
    ]);
    assert!(!out.status.success() && stderr(&out).contains("never overwritten"));
}

#[test]
fn fork_copies_under_new_id_in_same_project() {
    let (ccs, file) = setup();
    let out = ccs.cli(&["sessions", "fork", SID, "--profile", "work"]);
    ok(&out, "fork");
    let id = resume_id(&stdout(&out));
    let new = file.parent().unwrap().join(format!("{id}.jsonl"));
    same_apart_from_ids(&lines(&file), &lines(&new), &id);
    assert!(
        file.parent()
            .unwrap()
            .join(&id)
            .join("subagents/agent-a1.jsonl")
            .is_file()
    );
    // Both show in list, for both profiles of the group.
    let out = ccs.cli(&["sessions", "list", "--profile", "personal", "--json"]);
    ok(&out, "list");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&SID) && ids.contains(&id.as_str()), "{ids:?}");
    // Unknown ids: one line naming the fix.
    let out = ccs.cli(&["sessions", "fork", "nope"]);
    assert!(!out.status.success() && stderr(&out).contains("ccsfs sessions list"));
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

#[test]
fn list_order_and_fields() {
    let (ccs, file) = setup();
    set_mtime(&file, 300);
    let a = write_session(
        &ccs.instance("solo").join("projects"),
        "aaaaaaaa-0000-4000-8000-000000000001",
        1,
        2,
    );
    set_mtime(&a, 100);
    let b = write_session(
        &ccs.instance("solo").join("projects"),
        "bbbbbbbb-0000-4000-8000-000000000001",
        40,
        3,
    );
    set_mtime(&b, 200);
    let out = ccs.cli(&["sessions", "list", "--json"]);
    ok(&out, "list --json");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v.as_array().unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "aaaaaaaa-0000-4000-8000-000000000001",
            "bbbbbbbb-0000-4000-8000-000000000001",
            SID
        ],
        "newest first"
    );
    let s = &list[2];
    assert_eq!(
        s["project"], CWD,
        "the cwd from the records, not the lossy dir name"
    );
    assert_eq!(s["project_dir"], ENC);
    assert_eq!(s["first_prompt"], "question 0: what is in my.app?");
    assert_eq!(s["messages"], 12);
    assert_eq!(s["messages_exact"], true);
    assert_eq!(s["size"], fs::metadata(&file).unwrap().len());
    assert_eq!(s["locked_by"], Value::Null);
    let m = s["modified"].as_u64().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now - m >= 299 && now - m < 400, "{m}");
    // Scopes and the project filter.
    let out = ccs.cli(&["sessions", "list", "--group", "team", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let out = ccs.cli(&[
        "sessions",
        "list",
        "--profile",
        "solo",
        "--project",
        "/home/me/my-app",
    ]);
    ok(&out, "list --project");
    assert_eq!(
        stdout(&out).lines().count(),
        1,
        "a different cwd with the same encoding: {}",
        stdout(&out)
    );
    let out = ccs.cli(&["sessions", "list", "--profile", "solo", "--project", CWD]);
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    // The table, and an exact count on request.
    let out = ccs.cli(&["sessions", "list", "--count"]);
    ok(&out, "list --count");
    let t = stdout(&out);
    assert!(t.starts_with("SESSION\t"), "{t}");
    assert!(t.contains("\t160\t"), "40 turns = 160 messages: {t}");
}

#[test]
fn list_ten_thousand_sessions() {
    let ccs = Ccs::new(Some(CONFIG));
    let projects = ccs.group_projects("team");
    let t0 = Instant::now();
    for p in 0..20 {
        let dir = projects.join(format!("-home-me-p{p}"));
        fs::create_dir_all(&dir).unwrap();
        for s in 0..500 {
            let id = format!("{p:08x}-0000-4000-8000-{s:012x}");
            let rec = |t: &str, u: u32| {
                json!({"type":t,"cwd":format!("/home/me/p{p}"),"sessionId":id,"uuid":uuid(u, p),"message":{"role":t,"content":format!("prompt {s} {}", "x".repeat(300))}}).to_string()
            };
            let text: String = (0..8)
                .map(|i| rec(if i % 2 == 0 { "user" } else { "assistant" }, i) + "\n")
                .collect();
            fs::write(dir.join(format!("{id}.jsonl")), text).unwrap();
        }
    }
    let made = t0.elapsed();
    let t1 = Instant::now();
    let out = ccs.cli(&["sessions", "list", "--json"]);
    let took = t1.elapsed();
    ok(&out, "list");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 10_000);
    assert!(v.as_array().unwrap().iter().all(|s| s["messages"] == 8));
    println!("sessions list over 10,000 sessions: {took:?} (making them took {made:?})");
    assert!(took < Duration::from_secs(60), "list took {took:?}");
}

/// On a real mount: a process holding a shared transcript shows as its holder in `list`, and
/// `fork` copies it (reporting the holder) without touching it.
#[test]
fn list_shows_the_lock_holder_on_a_mount() {
    let ccs = Ccs::new(Some(CONFIG));
    let _m = ccs.mount();
    let proj = ccs.profile("work").join("projects").join(ENC);
    fs::create_dir_all(&proj).unwrap();
    let file = proj.join(format!("{SID}.jsonl"));
    let rec = json!({"type":"user","cwd":CWD,"sessionId":SID,"uuid":uuid(1, 1),"parentUuid":null,"message":{"role":"user","content":"held"}}).to_string() + "\n";
    let ready = ccs.tmp.path().join("ready");
    let mut holder = locking::hold(&file, &rec, &ready);
    let out = ccs.cli(&["sessions", "list", "--json"]);
    ok(&out, "list");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v.as_array().unwrap()[0];
    assert_eq!(s["id"], SID);
    assert_eq!(s["locked_by"]["profile"], "work", "{s}");
    assert_eq!(s["locked_by"]["pid"], holder.pid());
    let out = ccs.cli(&["sessions", "list"]);
    assert!(
        stdout(&out).contains(&format!("work (pid {}", holder.pid())),
        "{}",
        stdout(&out)
    );
    let out = ccs.cli(&["sessions", "fork", SID]);
    ok(&out, "fork of a held session");
    assert!(stderr(&out).contains("is held by work"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(
            ccs.group_projects("team")
                .join(ENC)
                .join(format!("{SID}.jsonl"))
        )
        .unwrap(),
        rec
    );
    holder.kill9();
}

/// The real client, offline against scripts/mock-anthropic.py: a session `claude -p` made in
/// one CCS dir is exported, imported into a profile of another CCS dir under a new id, and
/// `claude --resume <new-id> -p` continues it there: the mock sees the whole history.
#[test]
#[ignore = "needs the claude CLI and python3; scripts/test.sh runs it"]
fn real_claude_resumes_an_imported_session() {
    let claude = common::prereq::require_claude();
    common::prereq::require_tool("python3", "python3");
    let src = Ccs::new(Some(
        "version: 13\naccounts:\n  alpha:\n    context_mode: isolated\n",
    ));
    let dst = Ccs::new(Some(CONFIG));
    let tmp = src.tmp.path();
    let proj = tmp.join("proj.dir");
    let home = tmp.join("home");
    fs::create_dir_all(&proj).unwrap();
    fs::create_dir_all(&home).unwrap();
    let proj = proj.canonicalize().unwrap();
    let key = "sk-ant-api03-ccsfs-e2e-0123456789abcdefghijklmnop";
    for (ccs, p) in [(&src, "alpha"), (&dst, "solo")] {
        let inst = ccs.instance(p);
        fs::create_dir_all(&inst).unwrap();
        let cfg = json!({"hasCompletedOnboarding": true, "theme": "dark",
            "customApiKeyResponses": {"approved": [&key[key.len() - 20..]], "rejected": []},
            "projects": {proj.to_str().unwrap(): {"hasTrustDialogAccepted": true, "allowedTools": []}}});
        fs::write(inst.join(".claude.json"), cfg.to_string()).unwrap();
    }
    // The mock, on a free loopback port.
    let port_file = tmp.join("mock.port");
    let log = tmp.join("mock.log");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mock-anthropic.py");
    let mut mock = std::process::Command::new("python3")
        .arg(&script)
        .arg("--port-file")
        .arg(&port_file)
        .arg("--log")
        .arg(&log)
        .spawn()
        .expect("start the mock");
    let t0 = Instant::now();
    while fs::read_to_string(&port_file).map_or(true, |s| s.trim().is_empty()) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the mock did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = fs::read_to_string(&port_file).unwrap().trim().to_string();
    let run = |config_dir: &Path, args: &[&str]| {
        std::process::Command::new(&claude)
            .args(args)
            .current_dir(&proj)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("TMPDIR", tmp)
            .env("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{port}"))
            .env("ANTHROPIC_API_KEY", key)
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CONFIG_DIR", config_dir)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run claude")
    };
    let result = |out: &std::process::Output| -> Value {
        ok(out, "claude");
        let last = stdout(out).lines().last().unwrap_or("").to_string();
        serde_json::from_str(&last)
            .unwrap_or_else(|e| panic!("claude printed no JSON ({e}): {}", stdout(out)))
    };
    let out = run(
        &src.instance("alpha"),
        &[
            "-p",
            "first prompt of the exported session",
            "--output-format",
            "json",
        ],
    );
    let r = result(&out);
    assert_eq!(r["result"], "mock reply: user turns=1");
    let id = r["session_id"].as_str().unwrap().to_string();

    let exp = tmp.join("export.json");
    let out = src.cli(&["sessions", "export", &id, "-o", exp.to_str().unwrap()]);
    ok(&out, "export");
    let out = dst.cli(&[
        "sessions",
        "import",
        exp.to_str().unwrap(),
        "--profile",
        "solo",
    ]);
    ok(&out, "import");
    let new_id = resume_id(&stdout(&out));
    assert_ne!(new_id, id);
    assert!(
        dst.instance("solo")
            .join("projects")
            .join(
                proj.to_str()
                    .unwrap()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
            )
            .join(format!("{new_id}.jsonl"))
            .is_file()
    );

    let out = run(
        &dst.instance("solo"),
        &[
            "--resume",
            &new_id,
            "-p",
            "second prompt after import",
            "--output-format",
            "json",
        ],
    );
    let r = result(&out);
    let _ = mock.kill();
    let _ = mock.wait();
    assert_eq!(
        r["result"], "mock reply: user turns=2",
        "the resumed session lacks its history"
    );
    let last: Value = serde_json::from_str(
        fs::read_to_string(&log)
            .unwrap()
            .lines()
            .rfind(|l| l.contains("second prompt after import"))
            .unwrap(),
    )
    .unwrap();
    let texts: Vec<&str> = last["user_texts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("first prompt of the exported session")),
        "{texts:?}"
    );
    assert!(
        texts.last().unwrap().contains("second prompt after import"),
        "{texts:?}"
    );
}

/// `--redact`: secrets in prompts, tool calls, tool results, subagent transcripts and
/// tool-results files are replaced in both formats, the JSON stays valid (and imports), the
/// counts per kind go to stderr, and a near miss is kept.
#[test]
fn redact_in_json_and_markdown() {
    let (ccs, file) = setup();
    let gh = "ghp_RFImCgHaPiZzGFOsDwO1y2A5HbT2rb7jFW2x";
    let ant = "sk-ant-api03-8ISsWbV9J6Das4VuRAhzjRZlchCl24o2rOugvkZ189XdkyHTUXNoGEQUVwdW3edC2fXAnCwjJe3J-Sg6VARK689Ev7UxyAA";
    let near = "ghp_abc123 is too short";
    let mut l = lines(&file);
    let mut v: Value = serde_json::from_str(&l[1]).unwrap();
    v["message"]["content"] = json!(format!("use {gh} and \"{ant}\"; {near}"));
    l[1] = v.to_string();
    fs::write(&file, l.join("\n") + "\n").unwrap();
    let dir = file.parent().unwrap().join(SID);
    fs::write(dir.join("tool-results/t1.txt"), format!("token {gh}\n")).unwrap();
    for format in ["json", "markdown"] {
        let out = ccs.cli(&["sessions", "export", SID, "--redact", "--format", format]);
        ok(&out, "export --redact");
        let text = stdout(&out);
        assert!(
            !text.contains(gh) && !text.contains(ant),
            "{format}: a secret is left: {text}"
        );
        assert!(
            text.contains("[REDACTED:github-token]") && text.contains(near),
            "{format}: {text}"
        );
        let err = stderr(&out);
        assert!(
            err.contains("redacted") && err.contains("github-token: "),
            "{err}"
        );
        if format == "json" {
            assert!(
                err.contains("github-token: 2") && err.contains("anthropic-key: 1"),
                "{err}"
            );
            let e: Value = serde_json::from_str(&text).expect("redacted export is JSON");
            assert_eq!(e["redacted"]["github-token"], 2);
            // Untouched records stay byte for byte; the export imports (checksum of what it holds).
            assert!(text.contains(&l[3]));
            let f = ccs.tmp.path().join("r.json");
            fs::write(&f, &text).unwrap();
            import(&ccs, &f, "solo", &[]);
        }
    }
}
