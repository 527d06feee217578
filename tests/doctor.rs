//! `ccsfs doctor [--fix] [--json]` on real set-ups: a healthy one with a live mount is all
//! `ok` (exit 0); then each broken one gives its line and its fix, `--fix` repairs the safe
//! ones and says so, and doctor is clean afterwards: wrong modes, a missing `version`, a
//! capitalised instance dir, a dead mount (daemon killed with SIGKILL) with a dead owner's
//! lock and a torn transcript tail, dead and live run files without a mount, two daemons on
//! one store, a hidden real dir holding transcripts the store lacks, `CCS_CLAUDE_PATH` unset
//! or set to the shim, `--json`, 10,000 transcripts in well under two seconds, and the
//! comparison with the real `ccs auth list --json`.

mod common;
#[path = "common/locking.rs"]
mod locking;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ccsfs::layout::Layout;
use ccsfs::runfile::RunFile;
use common::{Ccs, TEAM_AND_SOLO, TWO_IN_TEAM, is_mounted, prereq, stdout, wait_until};
use locking::{Kid, hold, mounted, s, second_mount};
use serde_json::Value;

/// A PATH without `ccs` (so the comparison is skipped, visibly) but with fusermount3.
const PLAIN_PATH: &str = "/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin";

/// `ccsfs --ccs-dir <ccs> doctor ARGS…` with `CCS_CLAUDE_PATH` set to `claude_path` (or unset).
fn doctor_with(ccs: &Ccs, args: &[&str], claude_path: Option<&Path>, path: &str) -> Output {
    let mut cmd = Command::new(common::bin());
    cmd.arg("--ccs-dir")
        .arg(&ccs.ccs)
        .arg("doctor")
        .args(args)
        .env("PATH", path)
        .stdin(Stdio::null());
    match claude_path {
        Some(p) => cmd.env("CCS_CLAUDE_PATH", p),
        None => cmd.env_remove("CCS_CLAUDE_PATH"),
    };
    cmd.output().expect("run ccsfs doctor")
}

/// The shim's path, as `ccsfs shim` prints it (and creates it).
fn shim(ccs: &Ccs) -> PathBuf {
    let out = ccs.cli(&["shim"]);
    assert!(out.status.success(), "ccsfs shim: {out:?}");
    PathBuf::from(stdout(&out).trim())
}

/// Doctor with the shim set up, as a user who followed "With CCS" has it.
fn doctor(ccs: &Ccs, args: &[&str]) -> Output {
    let shim = shim(ccs);
    doctor_with(ccs, args, Some(&shim), PLAIN_PATH)
}

/// The report's lines that are not `ok` (and the `fixed:` lines under them).
fn problems(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter(|l| !l.starts_with("ok "))
        .map(str::to_string)
        .collect()
}

/// The one line of check `id` with status `status` that contains every needle; panics with
/// the whole report otherwise.
#[track_caller]
fn line(out: &Output, status: &str, id: &str, needles: &[&str]) -> String {
    let text = stdout(out);
    let head = format!("{status:<4} {id}: ");
    text.lines()
        .find(|l| l.starts_with(&head) && needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no `{head}…` line with {needles:?} in:\n{text}"))
        .to_string()
}

/// The `fixed:` line right under the line that contains `needle`.
#[track_caller]
fn fixed_under(out: &Output, needle: &str) -> String {
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"));
    let next = lines.get(at + 1).copied().unwrap_or_default();
    assert!(
        next.trim_start().starts_with("fixed: "),
        "no `fixed:` line under {needle:?}:\n{text}"
    );
    next.trim().to_string()
}

#[track_caller]
fn assert_clean(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: exit status: {}",
        stdout(out)
    );
    let bad = problems(out);
    assert!(bad.is_empty(), "{what}: not all ok:\n{}", stdout(out));
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn chmod(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

/// A pid that no process has any more.
fn dead_pid() -> i32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id() as i32;
    c.wait().unwrap();
    pid
}

#[test]
fn a_healthy_set_up_with_a_live_mount_is_all_ok() {
    let ccs = Ccs::new(Some(TEAM_AND_SOLO));
    let _m = ccs.mount();
    let work = ccs.profile("work");
    fs::create_dir_all(work.join("projects/p")).unwrap();
    common::write_private(&work.join(".credentials.json"), "{}");
    // A transcript written (and released) by a process that has exited.
    let st = Command::new("bash")
        .arg("-c")
        .arg(r#"printf '{"a":1}\n' >> "$1""#)
        .arg("-")
        .arg(work.join("projects/p/s.jsonl"))
        .status()
        .unwrap();
    assert!(st.success());
    let locks = ccs.ccs.join("shared/context-groups/team/.ccsfs/locks");
    assert!(
        wait_until(Duration::from_secs(3), || locking::lock_files(&ccs)
            .is_empty()),
        "the writer's lock is still in {}",
        locks.display()
    );

    let t0 = Instant::now();
    let out = doctor(&ccs, &[]);
    eprintln!("doctor on a live mount took {:?}", t0.elapsed());
    assert_clean(&out, "healthy");
    let pid = ccs.daemon_pid().unwrap().to_string();
    line(&out, "ok", "mount", &["mounted, daemon pid", &pid]);
    line(&out, "ok", "config.ccs", &["ccs not on PATH: not compared"]);
    line(&out, "ok", "ccs.shim", &["current"]);
    line(&out, "ok", "torn", &["1 transcript(s) checked"]);
    for id in [
        "fuse.device",
        "fuse.passthrough",
        "config.version",
        "modes",
        "locks",
    ] {
        line(&out, "ok", id, &[]);
    }

    // --json: the same findings, each with id, status, message, fix and fixed.
    let out = doctor(&ccs, &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json is not JSON ({e}): {}", stdout(&out)));
    let list = v.as_array().expect("a JSON array");
    assert!(list.len() >= 12, "{v}");
    for f in list {
        assert!(f["id"].is_string() && f["message"].is_string(), "{f}");
        assert_eq!(f["status"], "ok", "{f}");
        assert!(f["fix"].is_null() && f["fixed"].is_null(), "{f}");
    }
    assert!(list.iter().any(|f| f["id"] == "mount"));
}

#[test]
fn a_dead_mount_a_dead_owners_lock_and_a_torn_tail_fail_then_fix_repairs_them() {
    let ccs = Ccs::new(Some(TEAM_AND_SOLO));
    let out = ccs.cli(&["mount", s(&ccs.mnt)]);
    assert!(out.status.success(), "{out:?}");
    let _m = mounted(&ccs);
    let f = ccs.profile("work").join("projects/p/s.jsonl");
    // The owner dies mid-record after its daemon: its lock file stays behind, and the
    // transcript ends in a fragment.
    let mut h = hold(
        &f,
        "{\"a\":1}\n{\"partial\":",
        &ccs.tmp.path().join("ready"),
    );
    let holder = h.pid();
    ccs.kill_daemon();
    h.kill9();
    let store = ccs.group_projects("team").join("p/s.jsonl");

    let out = doctor(&ccs, &[]);
    assert_eq!(out.status.code(), Some(1), "a dead mount fails: {out:?}");
    let mnt = ccs.mnt.display().to_string();
    line(
        &out,
        "fail",
        "mount",
        &[
            &mnt,
            "Transport endpoint is not connected",
            "fix: `ccsfs unmount",
        ],
    );
    line(
        &out,
        "warn",
        "locks",
        &[
            "team/projects/p/s.jsonl",
            &format!("pid {holder}"),
            "gone",
            "ccsfs unlock",
        ],
    );
    line(
        &out,
        "warn",
        "torn",
        &["1 of 1", "projects/p/s.jsonl", "one newline"],
    );
    // Nothing was changed without --fix.
    assert!(is_mounted(&ccs.mnt));
    assert_eq!(locking::lock_files(&ccs).len(), 1);
    assert_eq!(
        fs::read_to_string(&store).unwrap(),
        "{\"a\":1}\n{\"partial\":"
    );

    let out = doctor(&ccs, &["--fix"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the failure was repaired: {}",
        stdout(&out)
    );
    assert!(fixed_under(&out, "Transport endpoint").contains("unmounted"));
    assert!(fixed_under(&out, "warn locks:").contains("removed the lock"));
    assert!(fixed_under(&out, "warn torn:").contains("appended a newline to 1"));
    assert!(!is_mounted(&ccs.mnt));
    assert!(locking::lock_files(&ccs).is_empty());
    assert_eq!(
        fs::read_to_string(&store).unwrap(),
        "{\"a\":1}\n{\"partial\":\n",
        "the fragment is kept and ended with one newline"
    );

    let out = doctor(&ccs, &[]);
    assert_clean(&out, "after --fix");
    line(&out, "ok", "mount", &["not mounted; `ccsfs mount`"]);
}

#[test]
fn wrong_modes_are_warned_and_fix_chmods_them() {
    let ccs = Ccs::new(Some(TEAM_AND_SOLO));
    let inst = ccs.instance("work");
    let projects = ccs.group_projects("team");
    fs::create_dir_all(&inst).unwrap();
    fs::create_dir_all(&projects).unwrap();
    fs::write(inst.join(".credentials.json"), "{}").unwrap();
    chmod(&inst, 0o755);
    chmod(&inst.join(".credentials.json"), 0o644);
    chmod(&projects, 0o750);
    chmod(projects.parent().unwrap(), 0o700);

    let out = doctor(&ccs, &[]);
    assert_eq!(out.status.code(), Some(0), "warnings alone exit 0: {out:?}");
    line(
        &out,
        "warn",
        "modes",
        &["instances/work is 0755", "fix: `chmod 0700"],
    );
    line(
        &out,
        "warn",
        "modes",
        &[
            "instances/work/.credentials.json is 0644",
            "fix: `chmod 0600",
        ],
    );
    line(
        &out,
        "warn",
        "modes",
        &["team/projects is 0750", "chmod 0700"],
    );

    let out = doctor(&ccs, &["--fix"]);
    assert!(fixed_under(&out, "instances/work is 0755").starts_with("fixed: chmod 0700"));
    assert!(fixed_under(&out, ".credentials.json is 0644").starts_with("fixed: chmod 0600"));
    assert_eq!(mode(&inst), 0o700);
    assert_eq!(mode(&inst.join(".credentials.json")), 0o600);
    assert_eq!(mode(&projects), 0o700);
    assert_eq!(
        fs::read_to_string(inst.join(".credentials.json")).unwrap(),
        "{}"
    );
    assert_clean(&doctor(&ccs, &[]), "after --fix");
}

#[test]
fn a_missing_version_is_warned_and_fix_writes_it() {
    // TWO_IN_TEAM without its `version:` line, plus a key ccsfs does not own.
    let config = TWO_IN_TEAM.replace("version: 13\n", "") + "preferences:\n  theme: dark\n";
    let ccs = Ccs::new(Some(&config));
    let out = doctor(&ccs, &[]);
    line(
        &out,
        "warn",
        "config.version",
        &[
            "no numeric top-level `version`",
            "CCS rejects it",
            "ccsfs profile add",
        ],
    );
    let out = doctor(&ccs, &["--fix"]);
    assert!(fixed_under(&out, "config.version").contains("version: 13"));
    let text = fs::read_to_string(ccs.ccs.join("config.yaml")).unwrap();
    assert!(text.starts_with("version: 13\n"), "{text}");
    assert!(
        text.contains("theme: dark") && text.contains("personal:"),
        "{text}"
    );
    assert_clean(&doctor(&ccs, &[]), "after --fix");
}

#[test]
fn a_capitalised_instance_dir_is_warned_with_migrate_and_left_alone() {
    let ccs = Ccs::new(Some("version: 13\naccounts:\n  Delta: {}\n"));
    fs::create_dir_all(ccs.instance("Delta")).unwrap();
    chmod(&ccs.instance("Delta"), 0o700);
    let out = doctor(&ccs, &["--fix"]);
    line(
        &out,
        "warn",
        "config.instance_dirs",
        &[
            "instances/Delta (CCS uses instances/delta)",
            "ccsfs migrate --apply",
        ],
    );
    assert!(ccs.instance("Delta").is_dir(), "doctor never moves data");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn run_files_without_a_mount_dead_daemon_warns_and_is_removed_live_one_fails() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let layout = Layout::new(ccs.ccs.clone());
    let dead = dead_pid();
    let dead_run = layout.run_file(&ccs.mnt);
    RunFile {
        pid: dead,
        mount_point: ccs.mnt.clone(),
        ..RunFile::default()
    }
    .write(&dead_run)
    .unwrap();
    // A live process that looks like a daemon but has no mount.
    let stuck_mp = ccs.tmp.path().join("mnt2");
    fs::create_dir_all(&stuck_mp).unwrap();
    let stuck = Kid::bash("stand-in daemon", "exec -a ccsfs-daemon sleep 60", &[]);
    let stuck_pid = stuck.pid() as i32;
    assert!(wait_until(Duration::from_secs(5), || {
        fs::read(format!("/proc/{stuck_pid}/cmdline")).is_ok_and(|c| c.starts_with(b"ccsfs-daemon"))
    }));
    RunFile {
        pid: stuck_pid,
        mount_point: stuck_mp.clone(),
        ..RunFile::default()
    }
    .write(&layout.run_file(&stuck_mp))
    .unwrap();

    let out = doctor(&ccs, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    line(
        &out,
        "warn",
        "mount",
        &[&format!("daemon pid {dead}, which is gone"), "fix: `rm "],
    );
    line(
        &out,
        "fail",
        "mount",
        &[
            &format!("daemon pid {stuck_pid} serves {}", stuck_mp.display()),
            "is not mounted",
            &format!("fix: `kill {stuck_pid}`"),
        ],
    );

    let out = doctor(&ccs, &["--fix"]);
    assert!(fixed_under(&out, "which is gone").contains("removed"));
    assert!(!dead_run.exists());
    assert_eq!(
        out.status.code(),
        Some(1),
        "a live daemon is never killed by --fix"
    );
    assert!(common::wait_until(Duration::from_millis(1), || {
        !common::process_gone(stuck_pid)
    }));
    drop(stuck);
    let out = doctor(&ccs, &["--fix"]);
    assert!(fixed_under(&out, &format!("pid {stuck_pid}, which is gone")).contains("removed"));
    assert_clean(&doctor(&ccs, &[]), "after the stand-in exited and --fix");
}

#[test]
fn two_daemons_on_one_group_store_warn() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let _m = ccs.mount();
    let second = second_mount(&ccs, &[]);
    let out = doctor(&ccs, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    line(
        &out,
        "warn",
        "mount.daemons",
        &["2 daemons serve group store team", "ccsfs unmount"],
    );
    drop(second);
    let out = doctor(&ccs, &[]);
    line(&out, "ok", "mount.daemons", &["one daemon running"]);
}

#[test]
fn a_hidden_real_dir_with_transcripts_the_store_lacks_is_warned_with_migrate() {
    let ccs = Ccs::new(Some(
        "version: 13\naccounts:\n  work:\n    context_mode: shared\n    context_group: team\n  \
         personal:\n    context_mode: shared\n    context_group: team\n  \
         other:\n    context_mode: shared\n    context_group: team\n",
    ));
    let store = ccs.group_projects("team");
    fs::create_dir_all(store.join("p")).unwrap();
    fs::write(store.join("p/both.jsonl"), "{}\n").unwrap();
    // work: a real projects/ dir from before, with one transcript the store lacks.
    let old = ccs.instance("work").join("projects/p");
    fs::create_dir_all(&old).unwrap();
    fs::write(old.join("both.jsonl"), "{}\n").unwrap();
    fs::write(old.join("only-here.jsonl"), "{}\n").unwrap();
    // personal: CCS's symlink to the store (fine); other: a symlink elsewhere.
    fs::create_dir_all(ccs.instance("personal")).unwrap();
    std::os::unix::fs::symlink(&store, ccs.instance("personal").join("projects")).unwrap();
    let elsewhere = ccs.tmp.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::create_dir_all(ccs.instance("other")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, ccs.instance("other").join("projects")).unwrap();
    for p in ["work", "personal", "other"] {
        chmod(&ccs.instance(p), 0o700);
    }
    for d in [store.parent().unwrap(), &store] {
        chmod(d, 0o700);
    }

    let out = doctor(&ccs, &["--fix"]);
    let l = line(
        &out,
        "warn",
        "hidden",
        &[
            "instances/work/projects",
            "1 transcript(s) the store lacks",
            "p/only-here.jsonl",
            "ccsfs migrate",
        ],
    );
    assert!(!l.contains("both.jsonl"), "{l}");
    line(
        &out,
        "warn",
        "hidden",
        &[
            "instances/other/projects is a symlink to",
            "elsewhere",
            "ccsfs migrate --apply",
        ],
    );
    assert!(
        !stdout(&out).contains("instances/personal/projects"),
        "CCS's own symlink is fine: {}",
        stdout(&out)
    );
    assert!(old.join("only-here.jsonl").exists(), "doctor moves nothing");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn ccs_claude_path_unset_elsewhere_or_the_shim() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    // No CCS installed: nothing can run claude around the mount, so nothing to warn about.
    let out = doctor_with(&ccs, &[], None, PLAIN_PATH);
    line(&out, "ok", "ccs.shim", &["ccs not on PATH"]);
    // With a `ccs` on PATH, an unset CCS_CLAUDE_PATH means `ccs <p>` goes around the mount.
    let bin = ccs.ccs.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("ccs"), "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(bin.join("ccs"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let with_ccs = format!("{}:{PLAIN_PATH}", bin.display());
    let out = doctor_with(&ccs, &[], None, &with_ccs);
    line(
        &out,
        "warn",
        "ccs.shim",
        &[
            "CCS_CLAUDE_PATH is not set",
            "export CCS_CLAUDE_PATH=$(ccsfs shim)",
        ],
    );
    let out = doctor_with(&ccs, &[], Some(Path::new("/bin/true")), PLAIN_PATH);
    line(
        &out,
        "warn",
        "ccs.shim",
        &[
            "CCS_CLAUDE_PATH is /bin/true",
            "not the ccsfs shim",
            "export CCS_CLAUDE_PATH",
        ],
    );
    // Set to the shim's path before the shim exists: doctor does not create it without --fix.
    let want = ccs.ccs.join("ccsfs/bin/claude");
    let out = doctor_with(&ccs, &[], Some(&want), PLAIN_PATH);
    line(
        &out,
        "warn",
        "ccs.shim",
        &["does not exist", "`ccsfs shim`"],
    );
    assert!(!want.exists());
    let out = doctor_with(&ccs, &["--fix"], Some(&want), PLAIN_PATH);
    assert!(fixed_under(&out, "does not exist").contains("wrote the shim"));
    assert!(want.exists());
    let out = doctor_with(&ccs, &[], Some(&want), PLAIN_PATH);
    line(&out, "ok", "ccs.shim", &["is the shim", "current"]);
    assert_eq!(
        shim(&ccs),
        want,
        "the shim doctor wrote is the one `ccsfs shim` names"
    );
}

#[test]
fn ten_thousand_transcripts_are_checked_in_well_under_two_seconds() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let store = ccs.group_projects("team");
    let line_text = "{\"type\":\"user\",\"message\":\"hello\"}\n".repeat(20);
    for d in 0..100 {
        let dir = store.join(format!("-home-me-p{d}"));
        fs::create_dir_all(&dir).unwrap();
        for i in 0..100 {
            fs::write(dir.join(format!("{i:08}-session.jsonl")), &line_text).unwrap();
        }
    }
    fs::write(store.join("-home-me-p7/torn.jsonl"), "{\"a\":1}\n{\"b\"").unwrap();
    for d in [store.parent().unwrap(), &store] {
        chmod(d, 0o700);
    }
    let _ = doctor(&ccs, &[]); // warm the shim and the cache, as a second run would be
    let t0 = Instant::now();
    let out = doctor(&ccs, &[]);
    let took = t0.elapsed();
    eprintln!("doctor over 10,001 transcripts: {took:?}");
    line(&out, "warn", "torn", &["1 of 10001", "torn.jsonl"]);
    assert!(took < Duration::from_secs(2), "doctor took {took:?}");
}

#[test]
#[ignore = "needs the real ccs (npm @kaitranntt/ccs); scripts/test.sh runs it"]
fn the_config_is_compared_with_what_the_real_ccs_reads() {
    let ccs_bin = prereq::require_ccs();
    let ccs = Ccs::new(None);
    let home = ccs.tmp.path().join("home");
    let bin = ccs.tmp.path().join("bin");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&bin).unwrap();
    // A stand-in claude: CCS's `auth create` runs one as its login step.
    fs::write(bin.join("claude"), "#!/bin/sh\nexit 0\n").unwrap();
    chmod(&bin.join("claude"), 0o755);
    let node_dir = prereq::on_path("node").map(|n| n.parent().unwrap().to_path_buf());
    let ccs_dir = ccs_bin.parent().unwrap().to_path_buf();
    let mut path = format!("{}:{}", bin.display(), ccs_dir.display());
    if let Some(n) = node_dir {
        path = format!("{path}:{}", n.display());
    }
    path = format!("{path}:{PLAIN_PATH}");
    let run_ccs = |args: &[&str]| {
        let out = Command::new(&ccs_bin)
            .args(args)
            .env_clear()
            .env("HOME", &home)
            .env("CCS_DIR", &ccs.ccs)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "ccs {args:?}: {out:?}");
    };
    run_ccs(&[
        "auth",
        "create",
        "alpha",
        "--share-context",
        "--context-group",
        "team",
    ]);
    run_ccs(&["auth", "create", "Beta"]);

    let doctor_here = |args: &[&str]| {
        Command::new(common::bin())
            .arg("doctor")
            .args(args)
            .env_clear()
            .env("HOME", &home)
            .env("CCS_DIR", &ccs.ccs)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let out = doctor_here(&[]);
    line(
        &out,
        "ok",
        "config.ccs",
        &["ccs reads the same 2 account(s) and modes"],
    );

    // Two accounts CCS keeps apart but that share one instance dir: ccsfs serves one.
    let config = ccs.ccs.join("config.yaml");
    let text = fs::read_to_string(&config).unwrap();
    let text = text.replacen("accounts:\n", "accounts:\n  beta: {}\n", 1);
    fs::write(&config, text).unwrap();
    let out = doctor_here(&[]);
    line(
        &out,
        "warn",
        "config.names",
        &["Beta", "beta", "instances/beta"],
    );
    line(
        &out,
        "warn",
        "config.ccs",
        &["ccs reads config.yaml differently", "not read by ccsfs"],
    );
}

#[test]
#[ignore = "needs root: -o allow_other without user_allow_other in /etc/fuse.conf"]
fn a_mount_with_allow_other_is_named() {
    prereq::require_root();
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let out = locking::mount_at(&ccs, &ccs.mnt, &["-o", "allow_other"]);
    assert!(out.status.success(), "{out:?}");
    let _m = common::Mounted { ccs: &ccs };
    let out = doctor(&ccs, &[]);
    line(
        &out,
        "ok",
        "fuse.allow_other",
        &[
            &ccs.mnt.display().to_string(),
            "uses -o allow_other",
            "root needs no",
        ],
    );
    assert_clean(&out, "root with allow_other");
}
