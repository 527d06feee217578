//! Launching Claude through the mount, with real mounts and real processes: `ccsfs shim` (its
//! file, idempotent, refreshed when ccsfs moves), the shim run as CCS runs it (an instance's
//! CLAUDE_CONFIG_DIR is mounted and moved into the mount, every argument unchanged, the
//! transcript lands in the group store; other dirs and no dir pass through; a mount that
//! cannot be made stops the launch before claude runs), the real-claude lookup past shims,
//! `ccsfs run` and `ccsfs env`. The claude they start is a stand-in script that records its
//! CLAUDE_CONFIG_DIR and arguments and appends to `$CLAUDE_CONFIG_DIR/projects/p/s.jsonl`.
//! The last test drives the real `ccs` from npm (ignored by default; scripts/test.sh runs it).

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Ccs, Mounted, bin, is_mounted, stderr, stdout, wait_until};

/// work and personal share group `team`; solo is isolated.
const CONFIG: &str = common::TEAM_AND_SOLO;

const STANDIN: &str = r#"#!/bin/sh
# Stand-in claude: records CLAUDE_CONFIG_DIR and every argument (count first, then one per
# line) in $STANDIN_DIR/call.<pid>, appends {"pid":<pid>} to the transcript of the config dir.
rec="$STANDIN_DIR/call.$$"
{
  if [ "${CLAUDE_CONFIG_DIR+set}" = set ]; then
    printf 'CLAUDE_CONFIG_DIR=%s\n' "$CLAUDE_CONFIG_DIR"
  else
    printf 'CLAUDE_CONFIG_DIR unset\n'
  fi
  printf '%s\n' "$#"
  for a in "$@"; do printf '%s\n' "$a"; done
} > "$rec.tmp" && mv "$rec.tmp" "$rec"
if [ "$1" = --version ]; then echo "2.1.0 (Claude Code)"; exit 0; fi
if [ -n "$CLAUDE_CONFIG_DIR" ]; then
  mkdir -p "$CLAUDE_CONFIG_DIR/projects/p" &&
    printf '{"pid":%s}\n' "$$" >> "$CLAUDE_CONFIG_DIR/projects/p/${STANDIN_SESSION:-s}.jsonl" || exit 99
fi
exit "${STANDIN_EXIT:-0}"
"#;

/// What one run of the stand-in saw.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    pid: u32,
    config_dir: Option<String>,
    args: Vec<String>,
}

/// A CCS dir mounted (when mounted) at its default mount point `<ccs>/mnt`, its instance dirs
/// made as CCS makes them, and a stand-in claude.
struct Setup {
    ccs: Ccs,
    /// Holds the stand-in `claude` (and nothing else), for PATH.
    standin_dir: PathBuf,
    standin: PathBuf,
    /// Where the stand-in records its calls.
    calls_dir: PathBuf,
}

impl Setup {
    fn new(config: Option<&str>) -> Setup {
        let mut ccs = Ccs::new(config);
        ccs.mnt = ccs.ccs.join("mnt");
        std::fs::create_dir_all(&ccs.mnt).unwrap();
        for p in ["work", "personal", "solo"] {
            std::fs::create_dir_all(ccs.instance(p)).unwrap();
        }
        let standin_dir = ccs.tmp.path().join("standin");
        let calls_dir = ccs.tmp.path().join("calls");
        std::fs::create_dir_all(&standin_dir).unwrap();
        std::fs::create_dir_all(&calls_dir).unwrap();
        let standin = standin_dir.join("claude");
        install_executable(STANDIN.as_bytes(), &standin);
        Setup {
            ccs,
            standin_dir,
            standin,
            calls_dir,
        }
    }

    /// Unmounts `<ccs>/mnt` on drop, whether this test mounted it or the shim did.
    fn guard(&self) -> Mounted<'_> {
        Mounted { ccs: &self.ccs }
    }

    /// `ccsfs --ccs-dir <ccs> shim`, checked: its stdout is one line, the shim's path.
    fn shim(&self) -> PathBuf {
        let out = self.ccs.cli(&["shim"]);
        assert!(out.status.success(), "ccsfs shim: {}", stderr(&out));
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 1, "stdout: {text:?}");
        assert!(text.ends_with('\n'));
        PathBuf::from(text.trim_end_matches('\n'))
    }

    /// An environment as CCS gives its claude: the CCS dir from CCS_DIR, HOME in the temp
    /// dir, the stand-in's record dir, and nothing of the caller's that would steer a launch.
    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("CCS_DIR", &self.ccs.ccs)
            .env("HOME", self.ccs.tmp.path())
            .env("STANDIN_DIR", &self.calls_dir)
            .env_remove("CCS_HOME")
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("CCSFS_CLAUDE")
            .env_remove("CCS_CLAUDE_PATH")
            .stdin(Stdio::null());
        c
    }

    /// The shim as CCS runs it, the real claude named by CCSFS_CLAUDE.
    fn shim_command(&self, shim: &Path) -> Command {
        let mut c = self.command(shim);
        c.env("CCSFS_CLAUDE", &self.standin);
        c
    }

    fn calls(&self) -> Vec<Call> {
        read_calls(&self.calls_dir)
    }

    fn store_transcript(&self, group: &str) -> PathBuf {
        self.ccs.group_projects(group).join("p/s.jsonl")
    }
}

/// Writes an executable without this process ever holding a writable fd to it: a concurrent
/// test's fork could otherwise inherit that fd and make the exec fail with ETXTBSY.
fn install_executable(content: &[u8], dst: &Path) {
    let src = dst.with_extension("src");
    std::fs::write(&src, content).unwrap();
    install_file(&src, dst);
}

fn install_file(src: &Path, dst: &Path) {
    let st = Command::new("install")
        .arg("-m")
        .arg("755")
        .arg(src)
        .arg(dst)
        .status()
        .expect("run install(1)");
    assert!(st.success(), "install {} {}", src.display(), dst.display());
}

fn read_calls(dir: &Path) -> Vec<Call> {
    let mut calls = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("call.").and_then(|p| p.parse().ok()) else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let mut lines = text.split('\n');
        let first = lines.next().unwrap();
        let config_dir = first.strip_prefix("CLAUDE_CONFIG_DIR=").map(str::to_owned);
        assert!(config_dir.is_some() || first == "CLAUDE_CONFIG_DIR unset");
        let n: usize = lines.next().unwrap().parse().unwrap();
        let args: Vec<String> = lines.by_ref().take(n).map(str::to_owned).collect();
        assert_eq!(args.len(), n, "record {name}: {text:?}");
        calls.push(Call {
            pid,
            config_dir,
            args,
        });
    }
    calls
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Non-zero exit, exactly one line on stderr, starting `ccsfs: ` and containing every needle.
fn assert_refused(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected a refusal; stderr: {err}");
    assert_eq!(
        err.lines().count(),
        1,
        "want one line on stderr, got:\n{err}"
    );
    assert!(err.starts_with("ccsfs: ") && err.ends_with('\n'), "{err:?}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

/// Arguments that a parser would be tempted to touch.
const TRICKY: &[&str] = &[
    "-p",
    "--resume",
    "x",
    "--",
    "-h",
    "--help",
    "--version",
    "-V",
    "a b",
    "",
    "--ccs-dir",
    "/elsewhere",
    "shim-exec",
    "it's \"$HOME\" *",
];

#[test]
fn shim_is_written_once_and_follows_the_binary() {
    let t = Setup::new(Some(CONFIG));
    let shim = t.shim();
    assert_eq!(shim, t.ccs.ccs.join("ccsfs/bin/claude"));
    let meta = std::fs::metadata(&shim).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    for dir in [t.ccs.ccs.join("ccsfs"), t.ccs.ccs.join("ccsfs/bin")] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    let text = std::fs::read_to_string(&shim).unwrap();
    let exe = std::fs::canonicalize(bin()).unwrap();
    assert!(text.starts_with("#!/bin/sh\n"), "{text}");
    assert!(text.contains(exe.to_str().unwrap()), "{text}");
    assert!(text.contains("shim-exec -- \"$@\""), "{text}");

    // Again, and through CCS_DIR instead of --ccs-dir: the same path, the file untouched.
    assert_eq!(t.shim(), shim);
    let out = t.command(Path::new(&bin())).arg("shim").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", shim.display()));
    let again = std::fs::metadata(&shim).unwrap();
    assert_eq!(
        (again.ino(), again.mtime(), again.mtime_nsec()),
        (meta.ino(), meta.mtime(), meta.mtime_nsec()),
        "an unchanged shim was rewritten"
    );

    // ccsfs moved: the same path, rewritten to run the binary where it is now.
    let moved_dir = t.ccs.tmp.path().join("moved");
    std::fs::create_dir_all(&moved_dir).unwrap();
    let moved = moved_dir.join("ccsfs");
    install_file(&exe, &moved);
    let out = Command::new(&moved)
        .arg("--ccs-dir")
        .arg(&t.ccs.ccs)
        .arg("shim")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", shim.display()));
    let text = std::fs::read_to_string(&shim).unwrap();
    let moved = std::fs::canonicalize(&moved).unwrap();
    assert!(text.contains(moved.to_str().unwrap()), "{text}");
    assert!(!text.contains(exe.to_str().unwrap()), "{text}");
    let after = std::fs::metadata(&shim).unwrap();
    assert_ne!(after.ino(), meta.ino(), "not replaced by rename");
    assert_eq!(after.permissions().mode() & 0o7777, 0o755);
    let leftovers: Vec<_> = std::fs::read_dir(shim.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "claude")
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    // And it works: the moved binary runs the stand-in (no CLAUDE_CONFIG_DIR: pass-through).
    let out = t.shim_command(&shim).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "2.1.0 (Claude Code)\n");
}

#[test]
fn an_instance_is_launched_through_the_mount_with_every_argument() {
    let t = Setup::new(Some(CONFIG));
    let _m = t.guard();
    let shim = t.shim();
    assert!(!is_mounted(&t.ccs.mnt));
    std::fs::remove_dir_all(&t.ccs.mnt).ok(); // the shim makes the mount point as `mount` does

    let out = t
        .shim_command(&shim)
        .env("CLAUDE_CONFIG_DIR", t.ccs.instance("work"))
        .env("STANDIN_EXIT", "7")
        .args(TRICKY)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "claude's exit status is the launch's; stderr: {}",
        stderr(&out)
    );
    assert!(is_mounted(&t.ccs.mnt), "the shim did not mount");
    let calls = t.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].config_dir.as_deref(),
        Some(s(&t.ccs.mnt.join("work")).as_str())
    );
    assert_eq!(calls[0].args, strings(TRICKY));
    // The transcript went through the mount into the group store, not into the instance.
    let line = format!("{{\"pid\":{}}}\n", calls[0].pid);
    assert_eq!(
        std::fs::read_to_string(t.store_transcript("team")).unwrap(),
        line
    );
    assert!(!t.ccs.instance("work").join("projects/p").exists());

    // Mounted now: the next launch uses the same daemon. The instance is named another way
    // (through a link to the CCS dir, with `.` and a trailing slash): still the instance.
    let pid = t.ccs.daemon_pid().expect("daemon pid");
    let link = t.ccs.tmp.path().join("ccs-link");
    std::os::unix::fs::symlink(&t.ccs.ccs, &link).unwrap();
    let other_name = format!("{}/instances/./personal/", link.display());
    let out = t
        .shim_command(&shim)
        .env("CLAUDE_CONFIG_DIR", &other_name)
        .args(["-p", "hi"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(t.ccs.daemon_pid(), Some(pid), "a second daemon was started");
    let call = t
        .calls()
        .into_iter()
        .find(|c| c.args == strings(&["-p", "hi"]))
        .expect("second call");
    assert_eq!(
        call.config_dir.as_deref(),
        Some(s(&t.ccs.mnt.join("personal")).as_str())
    );
    let store = std::fs::read_to_string(t.store_transcript("team")).unwrap();
    assert_eq!(store, format!("{line}{{\"pid\":{}}}\n", call.pid));

    // An isolated profile: through the mount, into its own instance.
    let out = t
        .shim_command(&shim)
        .env("CLAUDE_CONFIG_DIR", t.ccs.instance("solo"))
        .arg("solo-run")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let call = t
        .calls()
        .into_iter()
        .find(|c| c.args == strings(&["solo-run"]))
        .unwrap();
    assert_eq!(
        call.config_dir.as_deref(),
        Some(s(&t.ccs.mnt.join("solo")).as_str())
    );
    assert_eq!(
        std::fs::read_to_string(t.ccs.instance("solo").join("projects/p/s.jsonl")).unwrap(),
        format!("{{\"pid\":{}}}\n", call.pid)
    );
}

#[test]
fn launches_at_once_make_one_mount() {
    let t = Setup::new(Some(CONFIG));
    let _m = t.guard();
    let shim = t.shim();
    let children: Vec<_> = ["work", "personal", "solo", "work"]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // One session each: two live writers of one shared transcript would rightly
            // get EBUSY (the single-writer rule), which is not what this test is about.
            t.shim_command(&shim)
                .env("CLAUDE_CONFIG_DIR", t.ccs.instance(p))
                .env("STANDIN_SESSION", format!("s{i}"))
                .arg(format!("launch-{i}"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(s(&t.ccs.mnt).as_str()))
        .count();
    assert_eq!(mounts, 1, "launches that raced stacked mounts");
    let calls = t.calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    for c in &calls {
        let dir = c.config_dir.as_deref().unwrap();
        assert!(dir.starts_with(&s(&t.ccs.mnt)), "{c:?}");
    }
}

#[test]
fn other_config_dirs_and_none_pass_through_unchanged() {
    let t = Setup::new(Some(CONFIG));
    let _m = t.guard();
    let shim = t.shim();
    let elsewhere = t.ccs.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let other_ccs = t.ccs.tmp.path().join("other-ccs/instances/work");
    std::fs::create_dir_all(&other_ccs).unwrap();
    let cases = [
        format!("{}/./", elsewhere.display()), // kept as given, not normalized
        s(&other_ccs),                         // another CCS dir's instance
        s(&t.ccs.ccs.join("instances")),       // the instances dir itself
        s(&t.ccs.ccs.join("instances/.locks")), // CCS's own, not a profile
        s(&t.ccs.ccs.join("instances/work.lock")), // Claude's lock dir beside a config dir
    ];
    for (i, dir) in cases.iter().enumerate() {
        let tag = format!("case-{i}");
        let out = t
            .shim_command(&shim)
            .env("CLAUDE_CONFIG_DIR", dir)
            .args([tag.as_str(), "--"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{dir}: {}", stderr(&out));
        let call = t
            .calls()
            .into_iter()
            .find(|c| c.args[0] == tag)
            .unwrap_or_else(|| panic!("{dir}: the stand-in did not run"));
        assert_eq!(call.config_dir.as_deref(), Some(dir.as_str()));
        assert_eq!(call.args, strings(&[&tag, "--"]));
    }
    // No CLAUDE_CONFIG_DIR at all, as in CCS's `claude --version` probe.
    let out = t.shim_command(&shim).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "2.1.0 (Claude Code)\n");
    let call = t
        .calls()
        .into_iter()
        .find(|c| c.args == strings(&["--version"]))
        .unwrap();
    assert_eq!(call.config_dir, None);
    assert!(!is_mounted(&t.ccs.mnt), "a pass-through mounted");
}

#[test]
fn the_real_claude_is_found_on_path_past_any_shim() {
    let t = Setup::new(Some(CONFIG));
    let shim = t.shim();
    // PATH: a link to the shim, a copy of it (another CCS dir's, say), then the stand-in.
    let link_dir = t.ccs.tmp.path().join("link-bin");
    let copy_dir = t.ccs.tmp.path().join("copy-bin");
    std::fs::create_dir_all(&link_dir).unwrap();
    std::fs::create_dir_all(&copy_dir).unwrap();
    std::os::unix::fs::symlink(&shim, link_dir.join("claude")).unwrap();
    install_file(&shim, &copy_dir.join("claude"));
    let path = |dirs: &[&Path]| std::env::join_paths(dirs).unwrap();

    let system = [Path::new("/usr/bin"), Path::new("/bin")];
    let out = t
        .command(&shim)
        .env(
            "PATH",
            path(&[&link_dir, &copy_dir, &t.standin_dir, system[0], system[1]]),
        )
        .arg("found-on-path")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(t.calls().iter().any(|c| c.args == ["found-on-path"]));

    // Only shims on PATH: one line naming the fix, and nothing runs (no loop either).
    let out = t
        .command(&shim)
        .env("PATH", path(&[&link_dir, &copy_dir]))
        .arg("nothing")
        .output()
        .unwrap();
    assert_refused(&out, &["CCSFS_CLAUDE", "install Claude Code"]);
    // CCSFS_CLAUDE naming the shim is refused the same way.
    let out = t
        .command(&shim)
        .env("PATH", path(&[&t.standin_dir]))
        .env("CCSFS_CLAUDE", link_dir.join("claude"))
        .arg("nothing")
        .output()
        .unwrap();
    assert_refused(&out, &["CCSFS_CLAUDE", "shim"]);
    // And a CCSFS_CLAUDE that is not there.
    let out = t
        .command(&shim)
        .env("CCSFS_CLAUDE", t.ccs.tmp.path().join("no-such-claude"))
        .arg("nothing")
        .output()
        .unwrap();
    assert_refused(&out, &["CCSFS_CLAUDE", "not an executable"]);
    assert!(!t.calls().iter().any(|c| c.args == ["nothing"]));
}

#[test]
fn a_mount_point_that_is_a_file_stops_the_launch() {
    let t = Setup::new(Some(CONFIG));
    let _m = t.guard();
    let shim = t.shim();
    std::fs::remove_dir_all(&t.ccs.mnt).ok();
    std::fs::write(&t.ccs.mnt, "not a dir").unwrap();
    let out = t
        .shim_command(&shim)
        .env("CLAUDE_CONFIG_DIR", t.ccs.instance("work"))
        .arg("-p")
        .output()
        .unwrap();
    assert_refused(&out, &["not a directory", &s(&t.ccs.mnt)]);
    assert!(t.calls().is_empty(), "claude ran: {:?}", t.calls());
    assert!(!t.ccs.instance("work").join("projects").exists());

    let out = t
        .command(Path::new(&bin()))
        .args(["run", "work"])
        .arg(&t.standin)
        .output()
        .unwrap();
    assert_refused(&out, &["not a directory"]);
    assert!(t.calls().is_empty(), "the command ran: {:?}", t.calls());
}

#[test]
fn a_dead_mount_stops_the_launch_and_names_unmount() {
    let t = Setup::new(Some(CONFIG));
    let m = t.ccs.mount();
    t.ccs.kill_daemon();
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::metadata(&t.ccs.mnt)
            .err()
            .is_some_and(|e| e.raw_os_error() == Some(libc::ENOTCONN))),
        "the dead mount never reported ENOTCONN"
    );
    let shim = t.shim();
    let out = t
        .shim_command(&shim)
        .env("CLAUDE_CONFIG_DIR", t.ccs.instance("work"))
        .arg("-p")
        .output()
        .unwrap();
    assert_refused(&out, &[&format!("ccsfs unmount {}", t.ccs.mnt.display())]);
    assert!(t.calls().is_empty(), "claude ran: {:?}", t.calls());
    assert!(!t.ccs.instance("work").join("projects").exists());
    drop(m);
    assert!(!is_mounted(&t.ccs.mnt));
}

#[test]
fn an_instance_the_mount_does_not_serve_stops_the_launch() {
    let t = Setup::new(Some(CONFIG));
    let _m = t.guard();
    let shim = t.shim();
    let ghost = t.ccs.instance("ghost"); // a dir under instances/ that no account has
    std::fs::create_dir_all(&ghost).unwrap();
    let out = t
        .shim_command(&shim)
        .env("CLAUDE_CONFIG_DIR", &ghost)
        .arg("-p")
        .output()
        .unwrap();
    assert_refused(&out, &["does not serve profile `ghost`", "ccsfs status"]);
    assert!(t.calls().is_empty(), "claude ran: {:?}", t.calls());
    assert!(!ghost.join("projects").exists());
}

#[test]
fn run_mounts_and_execs_the_command_in_the_profile() {
    let t = Setup::new(Some(CONFIG));
    let _m = t.guard();
    let ccsfs = PathBuf::from(bin());
    let out = t
        .command(&ccsfs)
        .args(["run", "work", "--"])
        .arg(&t.standin)
        .args(TRICKY)
        .env("STANDIN_EXIT", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert!(is_mounted(&t.ccs.mnt));
    let calls = t.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].config_dir.as_deref(),
        Some(s(&t.ccs.mnt.join("work")).as_str())
    );
    assert_eq!(calls[0].args, strings(TRICKY));
    assert_eq!(
        std::fs::read_to_string(t.store_transcript("team")).unwrap(),
        format!("{{\"pid\":{}}}\n", calls[0].pid)
    );

    // Without `--`, by another spelling of the name, with the mount already up.
    let out = t
        .command(&ccsfs)
        .args(["--ccs-dir", &s(&t.ccs.ccs), "run", "PERSONAL"])
        .arg(&t.standin)
        .args(["second", "--", "-x"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let call = t
        .calls()
        .into_iter()
        .find(|c| c.args[0] == "second")
        .unwrap();
    assert_eq!(call.args, strings(&["second", "--", "-x"]));
    assert_eq!(
        call.config_dir.as_deref(),
        Some(s(&t.ccs.mnt.join("personal")).as_str())
    );

    let out = t
        .command(&ccsfs)
        .args(["run", "nobody"])
        .arg(&t.standin)
        .output()
        .unwrap();
    assert_refused(
        &out,
        &["ccs auth create nobody", "ccsfs profile add nobody"],
    );
    assert_eq!(t.calls().len(), 2);
}

#[test]
fn env_prints_the_mount_path_and_does_not_mount() {
    let t = Setup::new(Some(CONFIG));
    let _m = t.guard();
    let ccsfs = PathBuf::from(bin());
    let out = t.command(&ccsfs).args(["env", "work"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "export CLAUDE_CONFIG_DIR={}\n",
            t.ccs.mnt.join("work").display()
        )
    );
    assert!(stderr(&out).contains("not mounted"), "{}", stderr(&out));
    let out = t
        .command(&ccsfs)
        .args(["env", "solo", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({ "CLAUDE_CONFIG_DIR": s(&t.ccs.mnt.join("solo")) })
    );
    assert!(!is_mounted(&t.ccs.mnt), "env mounted");
    let out = t.command(&ccsfs).args(["env", "nobody"]).output().unwrap();
    assert_refused(
        &out,
        &["ccs auth create nobody", "ccsfs profile add nobody"],
    );

    // Once mounted, no note; and a CCS dir whose path needs quoting comes back intact in sh.
    let odd = t.ccs.tmp.path().join("it's a \"ccs\" $dir");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(odd.join("config.yaml"), CONFIG).unwrap();
    let out = Command::new(&ccsfs)
        .arg("--ccs-dir")
        .arg(&odd)
        .args(["env", "work"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let shell = Command::new("sh")
        .arg("-c")
        .arg("eval \"$1\"; printf %s \"$CLAUDE_CONFIG_DIR\"")
        .arg("sh")
        .arg(OsStr::new(&stdout(&out)))
        .output()
        .unwrap();
    assert_eq!(stdout(&shell), s(&odd.join("mnt/work")));

    let _m2 = t.ccs.mount();
    let out = t.command(&ccsfs).args(["env", "work"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(stderr(&out), "", "a note although the mount is up");
}

// ---------------------------------------------------------------------------------------------
// with the real CCS
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs the real ccs (npm @kaitranntt/ccs) and node; scripts/test.sh installs and runs it"]
fn real_ccs_launches_claude_through_the_shim() {
    let ccs_bin = common::prereq::require_ccs();
    // HOME and the CCS dir (CCS_DIR=$HOME/.ccs) in the temp dir.
    let mut t = Setup::new(None);
    let home = t.ccs.tmp.path().join("home");
    t.ccs.ccs = home.join(".ccs");
    t.ccs.mnt = t.ccs.ccs.join("mnt");
    std::fs::create_dir_all(&home).unwrap();
    let _m = t.guard();
    let path = {
        let mut dirs = vec![t.standin_dir.clone()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(dirs).unwrap()
    };
    let ccs = |args: &[&str], shim: Option<&Path>| {
        let mut c = t.command(&ccs_bin);
        c.env("HOME", &home).env("PATH", &path).args(args);
        if let Some(shim) = shim {
            c.env("CCS_CLAUDE_PATH", shim);
        }
        c.output().unwrap()
    };
    let out = ccs(
        &[
            "auth",
            "create",
            "work",
            "--share-context",
            "--context-group",
            "team",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "ccs auth create: {}{}",
        stdout(&out),
        stderr(&out)
    );
    for c in t.calls() {
        std::fs::remove_file(t.calls_dir.join(format!("call.{}", c.pid))).unwrap();
    }

    let out = t
        .command(Path::new(&bin()))
        .env("HOME", &home)
        .arg("shim")
        .output()
        .unwrap();
    assert!(out.status.success(), "ccsfs shim: {}", stderr(&out));
    let shim = PathBuf::from(stdout(&out).trim_end());
    assert_eq!(shim, t.ccs.ccs.join("ccsfs/bin/claude"));

    // The real claude is the stand-in, found on PATH (the shim is not on it).
    let out = ccs(&["work", "-p", "hi"], Some(&shim));
    assert!(
        out.status.success(),
        "ccs work -p hi: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(is_mounted(&t.ccs.mnt), "the shim did not mount");
    let calls = t.calls();
    let run = calls
        .iter()
        .find(|c| c.args == ["-p", "hi"])
        .unwrap_or_else(|| panic!("claude never ran with -p hi: {calls:?}"));
    let in_mount = s(&t.ccs.mnt.join("work"));
    assert_eq!(run.config_dir.as_deref(), Some(in_mount.as_str()));
    for c in &calls {
        assert!(
            c.config_dir.is_none() || c.config_dir.as_deref() == Some(in_mount.as_str()),
            "a launch bypassed the mount: {c:?}"
        );
    }
    let store = std::fs::read_to_string(t.store_transcript("team")).unwrap();
    assert!(
        store
            .lines()
            .any(|l| l == format!("{{\"pid\":{}}}", run.pid)),
        "the transcript append is not in the group store: {store:?}"
    );
}
