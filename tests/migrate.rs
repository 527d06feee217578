//! `ccsfs migrate`, on real files: a CCS symlink layout (nothing to do), claude-failover's
//! layout (two instances linking `projects` to one external dir; bytes before = after, the
//! external dir untouched, a re-run finds nothing), conflicting real dirs in two instances
//! (identical, append-only prefix and diverging transcripts: the names kept, bytes in = bytes
//! out), the deeper continuity dirs, a capitalised instance dir, a run killed mid-way then
//! re-run (and a temp file left behind), a refusal while a transcript is held through a live
//! mount (then the merged sessions read through it), links the mount would refuse (reported,
//! left), and one pass with the real `ccs`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Ccs, TWO_IN_TEAM, prereq, stderr, stdout, wait_until};
use sha2::{Digest, Sha256};

/// Every entry under `root` (links not followed): relative path → "file <sha256>",
/// "link <target>" or "dir".
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let v = if m.file_type().is_symlink() {
                format!("link {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                dirs.push(p.clone());
                "dir".into()
            } else {
                format!("file {:x}", Sha256::digest(fs::read(&p).unwrap()))
            };
            out.insert(rel, v);
        }
    }
    out
}

/// Bytes of the regular files under `root` (links not followed).
fn tree_bytes(root: &Path) -> u64 {
    let mut n = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                dirs.push(e.path());
            } else if m.is_file() {
                n += m.len();
            }
        }
    }
    n
}

fn put(path: &Path, data: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

#[track_caller]
fn migrate(ccs: &Ccs, args: &[&str]) -> String {
    let mut a = vec!["migrate"];
    a.extend(args);
    let out = ccs.cli(&a);
    assert!(
        out.status.success(),
        "ccsfs migrate {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn json(ccs: &Ccs, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend(args);
    serde_json::from_str(&migrate(ccs, &a)).unwrap()
}

/// A Claude-like projects tree: transcripts, a subagent, tool results, memory.
fn claude_tree(root: &Path, tag: &str) {
    put(
        &root.join("-home-me-app/11111111.jsonl"),
        &format!("{{\"type\":\"user\",\"t\":\"{tag}\"}}\n"),
    );
    put(
        &root.join("-home-me-app/11111111/subagents/agent-1.jsonl"),
        "{\"sub\":1}\n",
    );
    put(
        &root.join("-home-me-app/11111111/tool-results/r1.txt"),
        "tool output\n",
    );
    put(&root.join("-home-me-app/memory/MEMORY.md"), "# memory\n");
    put(
        &root.join("-home-me-lib/22222222.jsonl"),
        &"{\"x\":2}\n".repeat(100),
    );
}

#[test]
fn ccs_symlink_layout_is_already_in_place() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let store = ccs.group_projects("team");
    claude_tree(&store, "s");
    for p in ["work", "personal"] {
        fs::create_dir_all(ccs.instance(p)).unwrap();
        symlink(&store, ccs.instance(p).join("projects")).unwrap();
    }
    let before = snapshot(&ccs.ccs);
    let dry = migrate(&ccs, &[]);
    assert!(dry.contains("work: projects/ in place"), "{dry}");
    assert!(dry.contains("personal: projects/ in place"), "{dry}");
    assert!(dry.contains("nothing to migrate"), "{dry}");
    let done = migrate(&ccs, &["--apply"]);
    assert!(done.contains("nothing to migrate"), "{done}");
    let mut after = snapshot(&ccs.ccs);
    after.retain(|p, _| !p.starts_with("ccsfs"));
    assert_eq!(before, after, "nothing changed");
}

#[test]
fn claude_failover_layout_merges_the_shared_dir_once() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    // ~/.claude-compteN/projects -> ~/.claude-projects-shared/, here as two CCS instances.
    let ext = ccs.tmp.path().join("home/.claude-projects-shared");
    claude_tree(&ext, "failover");
    symlink("11111111.jsonl", ext.join("-home-me-app/latest.jsonl")).unwrap();
    fs::create_dir_all(ccs.instance("work")).unwrap();
    fs::create_dir_all(ccs.instance("personal")).unwrap();
    symlink(&ext, ccs.instance("work").join("projects")).unwrap();
    symlink(
        "../../../home/.claude-projects-shared",
        ccs.instance("personal").join("projects"),
    )
    .unwrap();
    let ext_before = snapshot(&ext);
    let ext_bytes = tree_bytes(&ext);
    let mtime = fs::metadata(ext.join("-home-me-lib/22222222.jsonl"))
        .unwrap()
        .mtime();

    let dry = migrate(&ccs, &[]);
    assert!(
        dry.contains("would merge into <ccs>/shared/context-groups/team/projects"),
        "{dry}"
    );
    assert!(
        dry.contains("dry run, nothing changed; to apply: ccsfs --ccs-dir"),
        "{dry}"
    );
    assert!(
        !ccs.group_projects("team").exists(),
        "a dry run writes nothing"
    );
    let d = json(&ccs, &[]);
    assert_eq!(d["totals"]["new_bytes"], ext_bytes, "{d}");

    let done = migrate(&ccs, &["--apply"]);
    assert!(done.contains("left untouched"), "{done}");
    assert!(
        done.contains(ext.to_str().unwrap()),
        "names the dir to delete: {done}"
    );
    let store = ccs.group_projects("team");
    assert_eq!(tree_bytes(&store), ext_bytes, "bytes before = after");
    assert_eq!(
        snapshot(&store),
        ext_before,
        "the store holds the same tree"
    );
    assert_eq!(snapshot(&ext), ext_before, "the external dir is untouched");
    for p in ["work", "personal"] {
        assert!(fs::symlink_metadata(ccs.instance(p).join("projects")).is_err());
    }
    let m = fs::metadata(store.join("-home-me-lib/22222222.jsonl")).unwrap();
    assert_eq!(m.mtime(), mtime, "mtime kept");
    // The link inside the tree was copied as a link (relative to nothing outside the store).
    assert!(
        fs::symlink_metadata(store.join("-home-me-app/latest.jsonl"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let again = migrate(&ccs, &["--apply"]);
    assert!(again.contains("nothing to migrate"), "{again}");
}

#[test]
fn conflicting_real_dirs_keep_every_version() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let store = ccs.group_projects("team");
    let (w, p) = (
        ccs.instance("work").join("projects"),
        ccs.instance("personal").join("projects"),
    );
    let a = "-home-me-app";
    // Identical everywhere.
    for root in [&store, &w, &p] {
        put(&root.join(a).join("same.jsonl"), "{\"same\":1}\n");
    }
    // Append-only: personal < store < work.
    put(&p.join(a).join("grow.jsonl"), "{\"n\":1}\n");
    put(&store.join(a).join("grow.jsonl"), "{\"n\":1}\n{\"n\":2}\n");
    put(
        &w.join(a).join("grow.jsonl"),
        "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
    );
    // Diverging: three versions; a conflict name already taken by other bytes.
    put(&store.join(a).join("fork.jsonl"), "{\"v\":\"store\"}\n");
    put(&w.join(a).join("fork.jsonl"), "{\"v\":\"work\"}\n");
    put(&p.join(a).join("fork.jsonl"), "{\"v\":\"personal\"}\n");
    put(
        &store.join(a).join("fork.jsonl.migrated-from-work"),
        "{\"v\":\"older\"}\n",
    );
    // A memory file that is shorter is another version, not a prefix.
    put(&store.join(a).join("memory/MEMORY.md"), "# a\n# b\n");
    put(&w.join(a).join("memory/MEMORY.md"), "# a\n");
    // Only in one instance, with its mode.
    put(&p.join(a).join("only.jsonl"), "{\"only\":1}\n");
    fs::set_permissions(
        p.join(a).join("only.jsonl"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();

    let store_before = tree_bytes(&store);
    let incoming = tree_bytes(&w) + tree_bytes(&p);
    let d = json(&ccs, &[]);
    let t = &d["totals"];
    assert_eq!(t["bytes"], incoming, "{d}");
    assert_eq!(t["conflicts"], 3, "{d}");

    let done = migrate(&ccs, &["--apply"]);
    assert!(
        done.contains(
            "conflict: -home-me-app/fork.jsonl kept as -home-me-app/fork.jsonl.migrated-from-work-1"
        ),
        "{done}"
    );
    let r = |name: &str| fs::read_to_string(store.join(a).join(name)).unwrap();
    assert_eq!(r("same.jsonl"), "{\"same\":1}\n");
    assert_eq!(
        r("grow.jsonl"),
        "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
        "the longer is kept"
    );
    assert_eq!(r("fork.jsonl"), "{\"v\":\"store\"}\n");
    assert_eq!(r("fork.jsonl.migrated-from-work"), "{\"v\":\"older\"}\n");
    assert_eq!(r("fork.jsonl.migrated-from-work-1"), "{\"v\":\"work\"}\n");
    assert_eq!(
        r("fork.jsonl.migrated-from-personal"),
        "{\"v\":\"personal\"}\n"
    );
    assert_eq!(r("memory/MEMORY.md"), "# a\n# b\n");
    assert_eq!(r("memory/MEMORY.md.migrated-from-work"), "# a\n");
    assert_eq!(
        fs::metadata(store.join(a).join("only.jsonl"))
            .unwrap()
            .mode()
            & 0o777,
        0o640
    );
    // Bytes in = bytes out: the store gained exactly what was new, conflicting, or extended,
    // and the dropped copies were identical or prefixes of what is kept.
    let c = &json(&ccs, &[])["totals"];
    assert_eq!(c["files"], 0, "nothing left: {c}");
    let (new, conf) = (
        t["new_bytes"].as_u64().unwrap(),
        t["conflict_bytes"].as_u64().unwrap(),
    );
    let grown = "{\"n\":3}\n".len() as u64; // grow.jsonl went from 2 to 3 records
    assert_eq!(tree_bytes(&store), store_before + new + conf + grown);
    let dropped = t["identical_bytes"].as_u64().unwrap()
        + t["store_longer_bytes"].as_u64().unwrap()
        + (t["extended_bytes"].as_u64().unwrap() - grown);
    assert_eq!(incoming, new + conf + grown + dropped);
    for inst in ["work", "personal"] {
        assert!(
            !ccs.instance(inst).join("projects").exists(),
            "{inst} emptied"
        );
    }
}

#[test]
fn deeper_continuity_dirs_and_a_capitalised_instance() {
    let config = "\
version: 13
accounts:
  Delta:
    context_mode: shared
    context_group: team
    continuity_mode: deeper
  Echo:
    context_mode: shared
    context_group: team
";
    let ccs = Ccs::new(Some(config));
    let old = ccs.ccs.join("instances/Delta");
    put(&old.join(".credentials.json"), "{\"secret\":1}");
    put(&old.join("projects/-p/s.jsonl"), "{\"a\":1}\n");
    for (dir, file) in [
        ("session-env", "abc/env.sh"),
        ("file-history", "abc/f1@v1"),
        ("shell-snapshots", "snapshot-zsh-1.sh"),
        ("todos", "abc-agent-abc.json"),
    ] {
        put(&old.join(dir).join(file), dir);
    }
    // Both spellings of Echo: left alone.
    put(&ccs.ccs.join("instances/Echo/.credentials.json"), "old");
    put(&ccs.instance("echo").join(".credentials.json"), "new");

    let dry = migrate(&ccs, &[]);
    assert!(
        dry.contains("would rename <ccs>/instances/Delta to <ccs>/instances/delta"),
        "{dry}"
    );
    assert!(dry.contains("instances/Echo and"), "{dry}");
    assert!(old.exists());
    migrate(&ccs, &["--apply"]);
    assert!(!old.exists());
    let new = ccs.instance("delta");
    assert_eq!(
        fs::read_to_string(new.join(".credentials.json")).unwrap(),
        "{\"secret\":1}"
    );
    assert_eq!(
        fs::read_to_string(ccs.group_projects("team").join("-p/s.jsonl")).unwrap(),
        "{\"a\":1}\n"
    );
    for (dir, file) in [
        ("session-env", "abc/env.sh"),
        ("file-history", "abc/f1@v1"),
        ("shell-snapshots", "snapshot-zsh-1.sh"),
        ("todos", "abc-agent-abc.json"),
    ] {
        assert_eq!(
            fs::read_to_string(ccs.continuity("team", dir).join(file)).unwrap(),
            dir
        );
        assert!(!new.join(dir).exists(), "{dir} moved out of the instance");
    }
    assert_eq!(
        fs::read_to_string(ccs.ccs.join("instances/Echo/.credentials.json")).unwrap(),
        "old"
    );
    assert_eq!(
        fs::read_to_string(ccs.instance("echo").join(".credentials.json")).unwrap(),
        "new"
    );
    let again = migrate(&ccs, &["--apply"]);
    assert!(again.contains("nothing to migrate"), "{again}");
}

#[test]
fn killed_mid_way_then_rerun_loses_and_doubles_nothing() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let src = ccs.instance("work").join("projects");
    let store = ccs.group_projects("team");
    let mut expected = BTreeMap::new();
    for d in 0..20 {
        for s in 0..30 {
            let rel = PathBuf::from(format!("-p{d}/{s:04}.jsonl"));
            let body = format!("{{\"d\":{d},\"s\":{s}}}\n").repeat(200);
            put(&src.join(&rel), &body);
            expected.insert(rel, format!("file {:x}", Sha256::digest(body.as_bytes())));
        }
    }
    // A temp file an earlier interrupted run left in a store dir.
    put(&store.join("-p0/.ccsfs-migrate.1.1.tmp"), "half a copy");
    let mut child = Command::new(common::bin())
        .args(["--ccs-dir", ccs.ccs.to_str().unwrap(), "migrate", "--apply"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has placed some files (or at once if it is faster than we look).
    wait_until(Duration::from_secs(20), || tree_bytes(&store) > 100_000);
    let mid_way = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let again = migrate(&ccs, &["--apply"]);
    if mid_way {
        assert!(
            again.contains("done"),
            "the re-run finishes the job: {again}"
        );
    } else {
        eprintln!("note: the first run finished before it could be killed");
    }
    let mut got = snapshot(&store);
    got.retain(|_, v| v != "dir");
    assert_eq!(got, expected, "every file once, no temp file left");
    assert!(!src.exists(), "the source is gone");
    let last = migrate(&ccs, &["--apply"]);
    assert!(last.contains("nothing to migrate"), "{last}");
}

#[test]
fn refused_while_a_transcript_is_held_then_seen_through_the_mount() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let store = ccs.group_projects("team");
    put(&store.join("-p/s.jsonl"), "{\"n\":1}\n");
    let src = ccs.instance("personal").join("projects");
    put(&src.join("-p/s.jsonl"), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    put(&src.join("-p/t.jsonl"), "{\"t\":1}\n");
    fs::create_dir_all(ccs.instance("work")).unwrap();
    let _m = ccs.mount();
    let held = ccs.profile("work").join("projects/-p/s.jsonl");
    let ready = ccs.tmp.path().join("ready");
    let mut holder = Command::new("bash")
        .arg("-c")
        .arg(r#"exec 3>>"$F" || exit 3; echo '{"w":2}' >&3; : > "$READY"; exec sleep 60"#)
        .env("F", &held)
        .env("READY", &ready)
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || ready.exists()));
    let before = (snapshot(&store), snapshot(&src));
    let out = ccs.cli(&["migrate", "--apply"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("s.jsonl") && err.contains("work"), "{err}");
    assert!(err.contains(&format!("pid {}", holder.id())), "{err}");
    assert_eq!(
        (snapshot(&store), snapshot(&src)),
        before,
        "nothing changed"
    );
    let _ = holder.kill();
    let _ = holder.wait();

    let done = migrate(&ccs, &["--apply"]);
    assert!(
        done.contains("kept as -p/s.jsonl.migrated-from-personal"),
        "{done}"
    );
    // The merged sessions show through both profiles within the 1 s cache lifetime.
    let through = ccs.profile("personal").join("projects/-p");
    assert!(wait_until(Duration::from_secs(3), || through
        .join("t.jsonl")
        .exists()));
    let mut names: Vec<String> = fs::read_dir(&through)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["s.jsonl", "s.jsonl.migrated-from-personal", "t.jsonl"]
    );
    assert_eq!(
        fs::read_to_string(through.join("t.jsonl")).unwrap(),
        "{\"t\":1}\n"
    );
    assert_eq!(
        fs::read_to_string(ccs.profile("work").join("projects/-p/s.jsonl")).unwrap(),
        "{\"n\":1}\n{\"w\":2}\n"
    );
    assert_eq!(
        fs::read_to_string(through.join("s.jsonl.migrated-from-personal")).unwrap(),
        "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"
    );
}

/// The stand-in `claude` that `ccs auth create` runs as its login step.
const STANDIN: &str = "#!/bin/sh\nexit 0\n";

#[test]
#[ignore = "needs the ccs CLI (scripts/test.sh installs it)"]
fn real_ccs_accounts_migrate_and_ccs_still_lists_them() {
    let ccs_bin = prereq::require_ccs();
    let tmp = tempfile::Builder::new()
        .prefix("ccsfs-mig-")
        .tempdir()
        .unwrap();
    let (home, dir, bin) = (
        tmp.path().join("home"),
        tmp.path().join("ccs"),
        tmp.path().join("bin"),
    );
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&bin).unwrap();
    fs::write(bin.join("claude"), STANDIN).unwrap();
    fs::set_permissions(bin.join("claude"), fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |program: &Path, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .env_clear()
            .env("HOME", &home)
            .env("CCS_DIR", &dir)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} {args:?}: {}{}",
            program.display(),
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };
    for name in ["Work", "personal"] {
        run(
            &ccs_bin,
            &[
                "auth",
                "create",
                name,
                "--share-context",
                "--context-group",
                "team",
            ],
        );
    }
    // Pre-existing data in a real dir where CCS put its symlink.
    let entry = dir.join("instances/work/projects");
    assert!(
        fs::symlink_metadata(&entry)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    fs::remove_file(&entry).unwrap();
    put(&entry.join("-home-me-app/s.jsonl"), "{\"old\":1}\n");
    let ccsfs = PathBuf::from(common::bin());
    let dry = run(&ccsfs, &["migrate"]);
    assert!(dry.contains("personal: projects/ in place"), "{dry}");
    assert!(dry.contains("work: projects/"), "{dry}");
    run(&ccsfs, &["migrate", "--apply"]);
    assert_eq!(
        fs::read_to_string(dir.join("shared/context-groups/team/projects/-home-me-app/s.jsonl"))
            .unwrap(),
        "{\"old\":1}\n"
    );
    assert!(fs::symlink_metadata(&entry).is_err());
    let list: serde_json::Value =
        serde_json::from_str(&run(&ccs_bin, &["auth", "list", "--json"])).unwrap();
    let names: Vec<&str> = list["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        names.contains(&"Work") && names.contains(&"personal"),
        "{list}"
    );
    let again = run(&ccsfs, &["migrate", "--apply"]);
    assert!(again.contains("nothing to migrate"), "{again}");
}

#[test]
fn a_link_the_mount_would_refuse_is_reported_and_left() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let src = ccs.instance("work").join("projects/-p");
    put(&src.join("s.jsonl"), "{\"a\":1}\n");
    symlink("s.jsonl", src.join("inside")).unwrap();
    symlink("/etc/passwd", src.join("outside")).unwrap();
    symlink("../../.credentials.json", src.join("creds")).unwrap();
    let out = migrate(&ccs, &["--apply"]);
    assert_eq!(out.matches("the mount would refuse it").count(), 2, "{out}");
    let store = ccs.group_projects("team").join("-p");
    assert_eq!(
        fs::read_link(store.join("inside")).unwrap(),
        Path::new("s.jsonl")
    );
    for name in ["outside", "creds"] {
        assert!(
            fs::symlink_metadata(store.join(name)).is_err(),
            "{name} not made"
        );
        assert!(fs::symlink_metadata(src.join(name)).is_ok(), "{name} left");
    }
    assert!(!src.join("s.jsonl").exists(), "the rest moved");
    // A re-run reports them again and moves nothing.
    let again = migrate(&ccs, &["--apply"]);
    assert!(again.contains("the mount would refuse it"), "{again}");
    assert!(again.contains("nothing to migrate"), "{again}");
}
