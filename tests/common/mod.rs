//! Shared harness for the integration tests: a private CCS dir in a temp dir, the real
//! `ccsfs` binary, and a mount guard that unmounts on drop (even when a test panics).
//! Prerequisites beyond FUSE (root, claude, ccs…) are checked in `prereq`.
#![allow(dead_code)]

pub mod prereq;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// work and personal share group `team` (work with deeper continuity); solo is isolated.
pub const THREE_PROFILES: &str = "\
accounts:
  work:
    context_mode: shared
    context_group: team
    continuity_mode: deeper
  personal:
    context_mode: shared
    context_group: team
  solo:
    context_mode: isolated
";

/// work and personal share group `team` (standard continuity).
pub const TWO_IN_TEAM: &str = "\
version: 13
accounts:
  work:
    context_mode: shared
    context_group: team
  personal:
    context_mode: shared
    context_group: team
";

/// work and personal share group `team` (standard continuity); solo is isolated.
pub const TEAM_AND_SOLO: &str = "\
version: 13
accounts:
  work:
    context_mode: shared
    context_group: team
  personal:
    context_mode: shared
    context_group: team
  solo:
    context_mode: isolated
";

/// Lays out `~/.claude` (at `<tmp>/home/.claude`) and CCS's links to it as `ccs auth create`
/// makes them: `<ccs>/shared/<name>` -> `~/.claude/<name>` for commands, skills, agents,
/// plugins and settings.json; in each of `profiles`' instances, links to `<ccs>/shared/<name>`,
/// and a real `plugins/` dir whose cache, marketplaces and installed_plugins.json link to the
/// shared ones while `known_marketplaces.json` is the instance's own (`{"of":"<profile>"}`).
pub fn ccs_shared_layout(ccs: &Ccs, profiles: &[&str]) -> PathBuf {
    use std::os::unix::fs::symlink;
    let claude = ccs.tmp.path().join("home/.claude");
    for d in [
        "commands",
        "skills",
        "agents",
        "plugins/cache",
        "plugins/marketplaces",
    ] {
        std::fs::create_dir_all(claude.join(d)).unwrap();
    }
    std::fs::write(claude.join("settings.json"), "{}\n").unwrap();
    std::fs::write(claude.join("plugins/installed_plugins.json"), "{\"v\":2}\n").unwrap();
    std::fs::write(claude.join("plugins/known_marketplaces.json"), "{}\n").unwrap();
    let shared = ccs.ccs.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    for name in ["commands", "skills", "agents", "plugins", "settings.json"] {
        symlink(claude.join(name), shared.join(name)).unwrap();
    }
    for p in profiles {
        let inst = ccs.instance(p);
        std::fs::create_dir_all(inst.join("plugins")).unwrap();
        for name in ["commands", "skills", "agents", "settings.json"] {
            symlink(shared.join(name), inst.join(name)).unwrap();
        }
        for name in ["cache", "marketplaces", "installed_plugins.json"] {
            symlink(
                shared.join("plugins").join(name),
                inst.join("plugins").join(name),
            )
            .unwrap();
        }
        std::fs::write(
            inst.join("plugins/known_marketplaces.json"),
            format!("{{\"of\":\"{p}\"}}\n"),
        )
        .unwrap();
    }
    claude
}

/// Writes a 0600 file (as Claude writes credentials) and syncs it.
pub fn write_private(path: &Path, data: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(data.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

/// The binary under test: `CCSFS_BIN` when set (the unprivileged run copies it somewhere any
/// user can execute), else the one cargo built.
pub fn bin() -> String {
    std::env::var("CCSFS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ccsfs").to_string())
}

#[allow(unused_imports)]
pub use prereq::is_root;

/// A temporary CCS dir with a mount point beside it.
pub struct Ccs {
    pub tmp: TempDir,
    pub ccs: PathBuf,
    pub mnt: PathBuf,
}

impl Ccs {
    /// A CCS dir with `config.yaml` holding `config` (no file when `None`).
    pub fn new(config: Option<&str>) -> Ccs {
        let tmp = tempfile::Builder::new()
            .prefix("ccsfs-test-")
            .tempdir()
            .expect("temp dir");
        let ccs = tmp.path().join("ccs");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir_all(&ccs).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        if let Some(text) = config {
            std::fs::write(ccs.join("config.yaml"), text).unwrap();
        }
        Ccs { tmp, ccs, mnt }
    }

    /// Runs `ccsfs --ccs-dir <ccs> ARGS…`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--ccs-dir")
            .arg(&self.ccs)
            .args(args)
            .output()
            .expect("run ccsfs")
    }

    /// Mounts at `self.mnt` (daemonized) and returns a guard that unmounts on drop.
    /// Extra mount arguments come from `CCSFS_TEST_MOUNT_ARGS` (e.g. `--no-passthrough`, so
    /// that a root run also covers the path unprivileged users get).
    pub fn mount(&self) -> Mounted<'_> {
        let extra = std::env::var("CCSFS_TEST_MOUNT_ARGS").unwrap_or_default();
        let mut args = vec!["mount", self.mnt.to_str().unwrap()];
        args.extend(extra.split_whitespace());
        let out = self.cli(&args);
        assert!(
            out.status.success(),
            "mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mounted { ccs: self }
    }

    /// `<mnt>/<profile>`
    pub fn profile(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// `<ccs>/instances/<profile>`
    pub fn instance(&self, name: &str) -> PathBuf {
        self.ccs.join("instances").join(name)
    }

    /// `<ccs>/shared/context-groups/<group>/projects`
    pub fn group_projects(&self, group: &str) -> PathBuf {
        self.ccs
            .join("shared/context-groups")
            .join(group)
            .join("projects")
    }

    /// `<ccs>/shared/context-groups/<group>/continuity/<dir>`
    pub fn continuity(&self, group: &str, dir: &str) -> PathBuf {
        self.ccs
            .join("shared/context-groups")
            .join(group)
            .join("continuity")
            .join(dir)
    }

    /// Kills the daemon with SIGKILL and waits until it is gone; returns its pid.
    pub fn kill_daemon(&self) -> i32 {
        let pid = self.daemon_pid().expect("daemon pid");
        // SAFETY: plain kill(2), no memory involved.
        let killed = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(killed, 0, "kill -9 {pid}");
        assert!(
            wait_until(Duration::from_secs(10), || process_gone(pid)),
            "SIGKILLed daemon {pid} still there"
        );
        pid
    }

    /// The daemon pid recorded for this mount (from `ccsfs status`).
    pub fn daemon_pid(&self) -> Option<i32> {
        let out = self.cli(&["status", self.mnt.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        let at = text.find("daemon pid ")? + "daemon pid ".len();
        text[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }
}

pub struct Mounted<'a> {
    pub ccs: &'a Ccs,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let mnt = self.ccs.mnt.to_str().unwrap();
        let out = self.ccs.cli(&["unmount", mnt]);
        if !out.status.success() && is_mounted(&self.ccs.mnt) {
            let _ = self.ccs.cli(&["unmount", "--lazy", mnt]);
        }
    }
}

/// Whether `path` is a mount point right now (per /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.to_string_lossy().replace(' ', "\\040");
    table
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The process has exited: `kill(pid, 0)` fails, or it is a zombie waiting for init to reap it
/// (the daemon is re-parented to init, which may reap it late; it has exited all the same). A
/// zombie leader whose other threads still run (and may hold the FUSE fd) does not count.
pub fn process_gone(pid: i32) -> bool {
    // SAFETY: signal 0 only checks existence.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    zombie && threads <= 1
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; says whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `statfs(path).f_type`, or the errno.
pub fn fs_type(path: &Path) -> Result<i64, i32> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `st` is written on success.
    if unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) } == 0 {
        // SAFETY: initialised by the successful call.
        let st = unsafe { st.assume_init() };
        // f_type's type differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        let f_type = st.f_type as i64;
        Ok(f_type)
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// Non-zero exit, exactly one line on stderr, starting `ccsfs: ` and containing every `needle`.
/// Returns the line.
#[track_caller]
pub fn assert_refused(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected a refusal, got success; stderr:\n{err}"
    );
    assert_eq!(
        err.lines().count(),
        1,
        "want exactly one line on stderr, got:\n{err}"
    );
    assert!(err.ends_with('\n'), "stderr is not one full line: {err:?}");
    assert!(
        err.starts_with("ccsfs: "),
        "stderr does not start with `ccsfs: `: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    err
}

/// Live processes (other than this one, zombies excluded) whose command line mentions
/// `needle`: (pid, command line).
pub fn processes_mentioning(needle: &Path) -> Vec<(i32, String)> {
    let needle = needle.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if pid != me && cmd.contains(&needle) && !process_gone(pid) {
            out.push((pid, cmd));
        }
    }
    out
}

/// How many entries the mount table has for `path`.
pub fn mount_count(path: &Path) -> usize {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.to_string_lossy().replace(' ', "\\040");
    table
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .count()
}
