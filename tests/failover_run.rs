//! `ccsfs run --failover` with real mounts and real processes, where no claude is needed: chains
//! outside the group are refused before anything runs, a cooling profile is passed over (and
//! said so), every profile cooling ends with the first reset named and exit status 1, the
//! settings' `failover:` order, `--no-failover`, the note on a cooling profile without
//! failover, exit statuses and signals passed through the supervisor, a headless run's stdout
//! and stdin, `ccsfs cooldown` and `ccsfs status`, and the interactive path with a stand-in that
//! writes Claude Code's refusal record through the mount (ended and resumed with the refused
//! prompt; left running when nobody is ready). The 429 itself, with the real claude, is
//! tests/failover.rs (scripts/e2e-failover.sh).

mod common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Ccs, Mounted, bin, stderr, stdout};

const CONFIG: &str = "\
version: 13
accounts:
  work:
    context_mode: shared
    context_group: team
  personal:
    context_mode: shared
    context_group: team
  spare:
    context_mode: shared
    context_group: team
  solo:
    context_mode: isolated
";

/// A CCS dir mounted at its default mount point by the first `ccsfs run`.
fn setup() -> Ccs {
    let mut ccs = Ccs::new(Some(CONFIG));
    ccs.mnt = ccs.ccs.join("mnt");
    std::fs::create_dir_all(&ccs.mnt).unwrap();
    for p in ["work", "personal", "spare", "solo"] {
        std::fs::create_dir_all(ccs.instance(p)).unwrap();
    }
    ccs
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Writes `<ccs>/ccsfs/cooling.json` with these (profile, until) entries.
fn cool(ccs: &Ccs, entries: &[(&str, i64)]) {
    let profiles: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(p, until)| {
            (
                p.to_string(),
                serde_json::json!({"until": until, "since": now(), "reset_from_message": true,
                    "message": "You've hit your session limit · resets 5am (UTC)", "session": null}),
            )
        })
        .collect();
    std::fs::create_dir_all(ccs.ccs.join("ccsfs")).unwrap();
    std::fs::write(
        ccs.ccs.join("ccsfs/cooling.json"),
        serde_json::to_vec(&serde_json::json!({ "profiles": profiles })).unwrap(),
    )
    .unwrap();
}

/// `ccsfs --ccs-dir <ccs> run`, stdin from /dev/null unless changed, no CLAUDE_CONFIG_DIR.
fn run_command(ccs: &Ccs) -> Command {
    let mut c = Command::new(bin());
    c.arg("--ccs-dir").arg(&ccs.ccs).arg("run");
    c.env_remove("CLAUDE_CONFIG_DIR").stdin(Stdio::null());
    c
}

fn run(ccs: &Ccs, args: &[&str]) -> Output {
    run_command(ccs).args(args).output().expect("run ccsfs run")
}

const SHOW_DIR: &str = "printf %s \"$CLAUDE_CONFIG_DIR\"";

#[test]
fn chains_outside_the_group_are_refused_and_nothing_runs() {
    let ccs = setup();
    let _m = Mounted { ccs: &ccs };
    let marker = ccs.tmp.path().join("ran");
    let m = marker.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["work", "--failover", "personal,solo"],
            "solo is not in work's context group team (no group), so the session would not be found there",
        ),
        (
            vec!["solo", "--failover", "work"],
            "solo: it shares no context group",
        ),
        (
            vec!["work", "--failover", "nobody"],
            "unknown profile `nobody`",
        ),
    ] {
        let mut a = args.clone();
        a.extend(["--", "touch", m]);
        let out = run(&ccs, &a);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("ccsfs: "), "{err}");
        assert!(!marker.exists(), "{args:?} ran the command");
    }
    let out = run(
        &ccs,
        &[
            "work",
            "--failover",
            "personal",
            "--no-failover",
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_cooling_profile_is_passed_over_and_status_shows_it() {
    let ccs = setup();
    let _m = Mounted { ccs: &ccs };
    let until = now() + 3600;
    cool(&ccs, &[("work", until)]);
    let out = run(
        &ccs,
        &[
            "work",
            "--failover",
            "personal,spare",
            "--",
            "sh",
            "-c",
            SHOW_DIR,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), ccs.mnt.join("personal").to_str().unwrap());
    let err = stderr(&out);
    assert!(
        err.contains("ccsfs: work is cooling down until ")
            && err.contains("; starting under personal"),
        "{err}"
    );

    let st = ccs.cli(&["status"]);
    let text = stdout(&st);
    assert!(text.contains("limits:\n"), "{text}");
    assert!(text.contains("  work: cooling down until "), "{text}");
    assert!(
        text.contains("(You've hit your session limit · resets 5am (UTC))"),
        "{text}"
    );
    assert!(text.contains("  personal: ready\n"), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&ccs.cli(&["status", "--json"]).stdout).unwrap();
    let of = |dir: &str| {
        json["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["dir"] == dir)
            .unwrap()["cooling_until"]
            .clone()
    };
    assert_eq!(of("work"), serde_json::json!(until));
    assert_eq!(of("personal"), serde_json::Value::Null);

    // Without failover: said, and run anyway.
    let out = run(&ccs, &["work", "--", "sh", "-c", SHOW_DIR]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), ccs.mnt.join("work").to_str().unwrap());
    let err = stderr(&out);
    assert!(
        err.contains("ccsfs: note: work is cooling down until ")
            && err.contains("running it anyway"),
        "{err}"
    );

    // Past its reset, a profile is ready again.
    cool(&ccs, &[("work", now() - 1)]);
    let out = run(
        &ccs,
        &["work", "--failover", "personal", "--", "sh", "-c", SHOW_DIR],
    );
    assert_eq!(stdout(&out), ccs.mnt.join("work").to_str().unwrap());
    assert_eq!(stderr(&out), "");
}

#[test]
fn every_profile_cooling_names_the_first_reset_and_exits_1() {
    let ccs = setup();
    let _m = Mounted { ccs: &ccs };
    let marker = ccs.tmp.path().join("ran");
    let t = now();
    cool(
        &ccs,
        &[
            ("work", t + 7200),
            ("personal", t + 600),
            ("spare", t + 3600),
        ],
    );
    let out = run(
        &ccs,
        &[
            "work",
            "--failover",
            "personal,spare",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!marker.exists());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("every profile of this run is cooling down (work until "),
        "{err}"
    );
    assert!(
        err.contains("; the first resets at ") && err.contains(" (personal); run again then"),
        "{err}"
    );
}

#[test]
fn the_settings_order_fails_over_without_the_flag() {
    let ccs = setup();
    let _m = Mounted { ccs: &ccs };
    cool(&ccs, &[("work", now() + 3600), ("personal", now() + 3600)]);
    std::fs::write(
        ccs.ccs.join("ccsfs/config.yaml"),
        "failover:\n  order: [solo, work, personal, spare]\n",
    )
    .unwrap();
    let out = run(&ccs, &["work", "--", "sh", "-c", SHOW_DIR]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), ccs.mnt.join("spare").to_str().unwrap());
    // Off for one run.
    let out = run(&ccs, &["work", "--no-failover", "--", "sh", "-c", SHOW_DIR]);
    assert_eq!(stdout(&out), ccs.mnt.join("work").to_str().unwrap());
    assert!(stderr(&out).contains("note: work is cooling down"));
    // The short form, and a bad one named in one line.
    std::fs::write(
        ccs.ccs.join("ccsfs/config.yaml"),
        "failover: [work, personal, spare]\n",
    )
    .unwrap();
    let out = run(&ccs, &["work", "--", "sh", "-c", SHOW_DIR]);
    assert_eq!(stdout(&out), ccs.mnt.join("spare").to_str().unwrap());
    std::fs::write(ccs.ccs.join("ccsfs/config.yaml"), "failover: spare\n").unwrap();
    let out = run(&ccs, &["work", "--", "true"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("config.yaml") && err.contains("failover: order:"),
        "{err}"
    );
}

#[test]
fn exit_status_signals_stdout_and_stdin_pass_through_the_supervisor() {
    let ccs = setup();
    let _m = Mounted { ccs: &ccs };
    let chain = ["work", "--failover", "personal", "--"];
    let with =
        |cmd: &[&str]| -> Vec<String> { chain.iter().chain(cmd).map(|s| s.to_string()).collect() };
    let runv = |args: Vec<String>| run(&ccs, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(runv(with(&["sh", "-c", "exit 7"])).status.code(), Some(7));
    assert_eq!(
        runv(with(&["sh", "-c", "kill -TERM $$"])).status.code(),
        Some(143)
    );
    // A headless run that fails for anything but a 429 ends as it ended, its stdout given.
    let out = runv(with(&["sh", "-c", "echo answer; exit 1", "-p"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "answer\n");
    assert_eq!(stderr(&out), "");

    // Piped stdin reaches a headless run.
    let mut c = run_command(&ccs);
    c.args(with(&["sh", "-c", "cat", "-p"]));
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out), "from stdin\n");

    // SIGTERM to `ccsfs run` reaches the command; no failover follows.
    let pidfile: PathBuf = ccs.tmp.path().join("child.pid");
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let mut c = run_command(&ccs);
    c.args(with(&["sh", "-c", &script]));
    let mut sup = c.spawn().unwrap();
    assert!(common::wait_until(Duration::from_secs(10), || pidfile.exists()));
    let started = Instant::now();
    // SAFETY: plain kill(2).
    unsafe { libc::kill(sup.id() as i32, libc::SIGTERM) };
    let status = sup.wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        status.code().or(status.signal().map(|s| 128 + s)),
        Some(143)
    );
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(common::wait_until(Duration::from_secs(5), || {
        common::process_gone(child)
    }));
}

#[test]
fn cooldown_lists_and_clears() {
    let ccs = setup();
    let out = ccs.cli(&["cooldown"]);
    assert_eq!(stdout(&out), "no profile is cooling down\n");
    cool(
        &ccs,
        &[
            ("work", now() + 3600),
            ("personal", now() + 60),
            ("spare", now() - 5),
        ],
    );
    let text = stdout(&ccs.cli(&["cooldown"]));
    assert!(
        text.contains("personal: cooling down until ")
            && text.contains("work: cooling down until "),
        "{text}"
    );
    assert!(!text.contains("spare"), "{text}");
    assert_eq!(
        stdout(&ccs.cli(&["cooldown", "clear", "WORK"])),
        "forgot 1 cool-down\n"
    );
    assert!(!stdout(&ccs.cli(&["cooldown"])).contains("work"));
    let out = ccs.cli(&["cooldown", "clear", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown profile `nobody`"));
    let out = ccs.cli(&["cooldown", "clear"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&ccs.cli(&["cooldown", "clear", "--all"])),
        "forgot 1 cool-down\n"
    );
    assert_eq!(
        stdout(&ccs.cli(&["cooldown"])),
        "no profile is cooling down\n"
    );
}

#[test]
fn the_shim_follows_the_settings_order_for_ccs() {
    use std::os::unix::fs::PermissionsExt;
    let ccs = setup();
    let _m = Mounted { ccs: &ccs };
    cool(&ccs, &[("work", now() + 3600)]);
    std::fs::write(
        ccs.ccs.join("ccsfs/config.yaml"),
        "failover: [work, personal]\n",
    )
    .unwrap();
    let shim = stdout(&ccs.cli(&["shim"])).trim().to_string();
    let standin = ccs.tmp.path().join("claude-standin");
    std::fs::write(&standin, "#!/bin/sh\nprintf %s \"$CLAUDE_CONFIG_DIR\"\n").unwrap();
    std::fs::set_permissions(&standin, std::fs::Permissions::from_mode(0o755)).unwrap();
    // As `ccs work -p hi` runs it with CCS_CLAUDE_PATH=$(ccsfs shim).
    let launch = || {
        Command::new(&shim)
            .args(["-p", "hi"])
            .env("CCS_DIR", &ccs.ccs)
            .env("CCSFS_CLAUDE", &standin)
            .env("CLAUDE_CONFIG_DIR", ccs.instance("work"))
            .env_remove("CCS_HOME")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = launch();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), ccs.mnt.join("personal").to_str().unwrap());
    assert!(
        stderr(&out).contains("work is cooling down until "),
        "{}",
        stderr(&out)
    );
    // Without an order, claude runs as CCS asked.
    std::fs::remove_file(ccs.ccs.join("ccsfs/config.yaml")).unwrap();
    let out = launch();
    assert_eq!(stdout(&out), ccs.mnt.join("work").to_str().unwrap());
}

/// A stand-in for an interactive claude: records its config dir and arguments, and under
/// `work` writes a prompt and Claude Code's 429 refusal into a transcript through the mount
/// (so it holds the transcript's lock, as claude does), then waits as claude does.
const INTERACTIVE: &str = r#"#!/bin/sh
{ printf '%s\n' "$CLAUDE_CONFIG_DIR"; for a in "$@"; do printf '%s\n' "$a"; done; } > "$REC_DIR/call.$$"
case "$CLAUDE_CONFIG_DIR" in
  */work)
    d="$CLAUDE_CONFIG_DIR/projects/-p"
    mkdir -p "$d" || exit 99
    ts=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
    printf '{"type":"assistant","isApiErrorMessage":true,"apiErrorStatus":429,"error":"rate_limit","sessionId":"S1","timestamp":"%s","message":{"content":[{"type":"text","text":"You have hit your session limit · resets in 2h"}]}}\n' "$ts" >> "$d/S1.jsonl"
    printf '{"type":"user","message":{"content":"the refused turn"},"sessionId":"S1","timestamp":"%s"}\n' "$ts" >> "$d/S1.jsonl"
    exec sleep "${STANDIN_WAIT:-30}" ;;
esac
"#;

fn interactive_setup(ccs: &Ccs) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let standin = ccs.tmp.path().join("claude");
    std::fs::write(&standin, INTERACTIVE).unwrap();
    std::fs::set_permissions(&standin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rec = ccs.tmp.path().join("calls");
    std::fs::create_dir_all(&rec).unwrap();
    (standin, rec)
}

/// Every recorded call: (config dir, arguments), in no particular order.
fn calls(rec: &std::path::Path) -> Vec<(String, Vec<String>)> {
    std::fs::read_dir(rec)
        .unwrap()
        .map(|e| {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let mut lines = text.lines().map(String::from);
            (lines.next().unwrap_or_default(), lines.collect())
        })
        .collect()
}

#[test]
fn an_interactive_refusal_ends_that_run_and_resumes_with_the_refused_prompt() {
    let ccs = setup();
    let _m = Mounted { ccs: &ccs };
    let (standin, rec) = interactive_setup(&ccs);
    let started = Instant::now();
    let out = run_command(&ccs)
        .args(["work", "--failover", "personal", "--"])
        .arg(&standin)
        .args(["--model", "m", "start here"])
        .env("REC_DIR", &rec)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // Not the stand-in's 30 s: it was ended when the refusal reached its transcript.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.contains("ccsfs: work hit its limit (You have hit your session limit · resets in 2h); personal takes over session S1"),
        "{err}"
    );
    let mut seen = calls(&rec);
    seen.sort();
    let personal = ccs.mnt.join("personal").to_str().unwrap().to_string();
    let work = ccs.mnt.join("work").to_str().unwrap().to_string();
    assert_eq!(
        seen,
        vec![
            (
                personal,
                ["--resume", "S1", "--model", "m", "--", "the refused turn"]
                    .map(String::from)
                    .to_vec()
            ),
            (
                work,
                ["--model", "m", "start here"].map(String::from).to_vec()
            ),
        ]
    );
    // Cooling until the reset it named (in 2 h).
    let json: serde_json::Value =
        serde_json::from_slice(&ccs.cli(&["status", "--json"]).stdout).unwrap();
    let work_until = json["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["dir"] == "work")
        .unwrap()["cooling_until"]
        .as_i64()
        .unwrap();
    assert!((work_until - (now() + 7200)).abs() < 120, "{work_until}");
}

#[test]
fn an_interactive_refusal_with_nobody_ready_is_left_running_then_named() {
    let ccs = setup();
    let _m = Mounted { ccs: &ccs };
    let (standin, rec) = interactive_setup(&ccs);
    cool(&ccs, &[("personal", now() + 600)]);
    let out = run_command(&ccs)
        .args(["work", "--failover", "personal", "--"])
        .arg(&standin)
        .env("REC_DIR", &rec)
        .env("STANDIN_WAIT", "2")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(calls(&rec).len(), 1, "only work ran");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("every profile of this run is cooling down (work until "),
        "{err}"
    );
    assert!(err.contains(" (personal); run again then"), "{err}");
}
