//! Launching Claude Code through the mount: `ccsfs shim` (the executable for CCS's
//! `CCS_CLAUDE_PATH`), the shim's hidden `shim-exec` (an instance's `CLAUDE_CONFIG_DIR` becomes
//! `<mount>/<dir>`, after mounting if needed; anything else passes through), `ccsfs run` and
//! `ccsfs env`. The decisions are pure (`decide`); this file gathers the facts, mounts, waits
//! and execs. A launch that cannot go through the mount fails: it never runs claude on the
//! instance dir, which would bypass the single-writer lock.

pub mod decide;
pub mod shim;

use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config;
use crate::layout::{Layout, find_ccs_dir};
use crate::mount::{self, MountOptions, MountState};
use decide::{CLAUDE_ENV, Candidate, Launch};

/// How long a launch waits for its profile to appear in a running mount (the daemon follows
/// `config.yaml`, so an account CCS has just made shows up shortly).
const PROFILE_WAIT: Duration = crate::tunables::PROFILE_WAIT;
/// How long a launch waits for another launch that is mounting.
const MOUNT_LOCK_WAIT: Duration = crate::tunables::MOUNT_LOCK_WAIT;

/// `ccsfs shim`: the shim's path, created or refreshed first.
pub fn install_shim(layout: &Layout) -> Result<PathBuf, String> {
    shim::install(layout)
}

/// `ccsfs shim-exec -- ARGS…`, what the shim runs: execs the real claude with ARGS unchanged,
/// with `CLAUDE_CONFIG_DIR` moved into the mount when it names an instance of the CCS dir
/// (found as CCS finds it, from the same environment CCS gave us). Returns only on failure.
pub fn shim_exec(args: &[OsString]) -> Result<Infallible, String> {
    let args = decide::shim_args(args);
    let layout = find_ccs_dir(None, |k| std::env::var(k).ok())
        .ok()
        .and_then(|d| std::path::absolute(d).ok())
        .map(Layout::new);
    let config_dir = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty());
    let launch = match (&layout, &config_dir) {
        (Some(layout), Some(dir)) => classify(layout, Path::new(dir)),
        _ => Launch::PassThrough,
    };
    let claude = real_claude(layout.as_ref())?;
    match (launch, layout) {
        (Launch::Mount { dir }, Some(layout)) => {
            let config_dir = mounted_profile_dir(&layout, &dir)
                .map_err(|e| format!("not starting claude: {e}"))?;
            // The settings' failover order applies to `ccs <p>` as to `ccsfs run <p>`.
            if let Some(code) =
                crate::failover::from_shim(&layout, &dir.to_string_lossy(), &claude, args)
            {
                std::process::exit(code?);
            }
            Err(exec(&claude, args, Some(&config_dir)))
        }
        _ => Err(exec(&claude, args, None)),
    }
}

/// `ccsfs run PROFILE CMD…` without failover: mounts if needed, then execs CMD with
/// `CLAUDE_CONFIG_DIR` set to the dir of the profile whose instance dir is `dir` (resolved by
/// the caller). Returns only on failure.
pub fn run(layout: &Layout, dir: &str, cmd: &[OsString]) -> Result<Infallible, String> {
    let (program, args) = cmd
        .split_first()
        .ok_or("no command given; usage: ccsfs run <profile> [--] <cmd>...")?;
    let config_dir = mounted_profile_dir(layout, OsStr::new(dir))
        .map_err(|e| format!("not running {}: {e}", program.to_string_lossy()))?;
    Err(exec(Path::new(program), args, Some(&config_dir)))
}

/// `ccsfs env PROFILE [--json]`: the text to print. It does not mount (the path is fixed, so
/// it can go into settings once); `mount_note` says when the mount is not up.
pub fn env_text(layout: &Layout, profile: &str, json: bool) -> Result<Vec<u8>, String> {
    let dir = profile_dir_name(layout, profile)?;
    let config_dir = layout.default_mount_point().join(dir);
    if json {
        decide::env_json(&config_dir).map(String::into_bytes)
    } else {
        Ok(decide::export_line(&config_dir))
    }
}

/// A one-line note when the default mount is not up and answering, else None.
pub fn mount_note(layout: &Layout) -> Option<String> {
    let mp = layout.default_mount_point();
    match mount::mount_state(&mp) {
        MountState::NotMounted => Some(format!(
            "note: {} is not mounted; `ccsfs mount` mounts it (the shim and `ccsfs run` do it themselves)",
            mp.display()
        )),
        MountState::Mounted(t) => live(&mp, &t).err().map(|e| format!("note: {e}")),
    }
}

/// The instance dir name of a profile given by account or dir name (one line naming
/// `ccs auth create` / `ccsfs profile add` when there is no such profile).
fn profile_dir_name(layout: &Layout, profile: &str) -> Result<String, String> {
    let profiles = config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string())?;
    decide::resolve_profile(&profiles, profile).map(|(_, dir)| dir)
}

/// Resolves `config_dir` both ways (canonical parent + last name; fully canonical) and asks
/// `decide::classify`.
fn classify(layout: &Layout, config_dir: &Path) -> Launch {
    let abs = std::path::absolute(config_dir).unwrap_or_else(|_| config_dir.to_path_buf());
    let mut resolved = Vec::new();
    if let (Some(parent), Some(name)) = (abs.parent(), abs.file_name())
        && let Ok(parent) = parent.canonicalize()
    {
        resolved.push(parent.join(name));
    }
    if let Ok(full) = abs.canonicalize() {
        resolved.push(full);
    }
    let instances = layout.instances_dir().canonicalize().ok();
    decide::classify(&resolved, instances.as_deref())
}

fn probe(path: PathBuf) -> Candidate {
    let is_file = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
    let executable = is_file
        && std::ffi::CString::new(path.as_os_str().as_bytes())
            // SAFETY: NUL-terminated path.
            .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0);
    Candidate {
        canonical: path.canonicalize().ok(),
        is_shim: shim::is_shim_file(&path),
        executable,
        path,
    }
}

/// The real claude: `$CCSFS_CLAUDE`, else PATH without any ccsfs shim.
fn real_claude(layout: Option<&Layout>) -> Result<PathBuf, String> {
    let from_env = std::env::var_os(CLAUDE_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| probe(std::path::absolute(&v).unwrap_or_else(|_| PathBuf::from(v))));
    let on_path: Vec<Candidate> = match (&from_env, std::env::var_os("PATH")) {
        (None, Some(path)) => std::env::split_paths(&path)
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| probe(d.join("claude")))
            .collect(),
        _ => Vec::new(),
    };
    let own_shim = layout.and_then(|l| shim::path(l).canonicalize().ok());
    decide::pick_claude(from_env.as_ref(), &on_path, own_shim.as_deref())
}

/// Replaces this process with `program ARGS…` (same stdio, tty, signals; its exit status is
/// the caller's), `CLAUDE_CONFIG_DIR` set when given. Returns the error when exec fails.
fn exec(program: &Path, args: &[OsString], config_dir: Option<&Path>) -> String {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    if let Some(dir) = config_dir {
        cmd.env("CLAUDE_CONFIG_DIR", dir);
    }
    let err = cmd.exec();
    format!("cannot run {}: {err}", program.display())
}

/// `<mount>/<dir>` of the default mount, mounting it first if nothing is mounted there, once
/// the profile is there (waiting up to `PROFILE_WAIT` for a daemon to pick it up).
pub fn mounted_profile_dir(layout: &Layout, dir: &OsStr) -> Result<PathBuf, String> {
    let mp = ensure_mounted(layout)?;
    let target = mp.join(dir);
    let deadline = Instant::now() + PROFILE_WAIT;
    loop {
        match std::fs::symlink_metadata(&target) {
            Ok(_) => return Ok(target),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot use {}: {e}", target.display())),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the mount {} does not serve profile `{}` (an account must be in {}); `ccsfs status` shows what it serves",
                mp.display(),
                dir.to_string_lossy(),
                layout.config_file().display(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes sure the default mount point (`<ccs>/mnt`) holds a live ccsfs mount, mounting it as
/// `ccsfs mount` would (daemonized, default options) when nothing is mounted there. A dead or
/// foreign mount is an error naming the fix. Launches that race are serialized, so that two
/// of them never stack two mounts.
pub fn ensure_mounted(layout: &Layout) -> Result<PathBuf, String> {
    let mp = layout.default_mount_point();
    let _lock = LaunchLock::take(layout)?;
    if let MountState::Mounted(t) = mount::mount_state(&mp) {
        live(&mp, &t)?;
        return Ok(mp);
    }
    match std::fs::symlink_metadata(&mp) {
        Ok(m) if !m.is_dir() => {
            return Err(format!(
                "{} is not a directory, so ccsfs cannot mount there; move it out of the way",
                mp.display()
            ));
        }
        Ok(_) => {}
        Err(_) => std::fs::create_dir_all(&mp)
            .map_err(|e| format!("cannot create {}: {e}", mp.display()))?,
    }
    let profiles = config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string())?;
    if let Err(e) = mount::mount(layout, &profiles, &MountOptions::defaults(mp.clone())) {
        // A `ccsfs mount` of the same point that was under way (it holds the mount point's
        // lock, not ours) may have won: its mount serves the launch just as well.
        match mount::mount_state(&mp) {
            MountState::Mounted(t) if live(&mp, &t).is_ok() => {}
            _ => return Err(e),
        }
    }
    Ok(mp)
}

/// Whether a mount found at `mp` (of type `fstype`) is a ccsfs mount that answers.
fn live(mp: &Path, fstype: &str) -> Result<(), String> {
    let shown = mp.display();
    // A root mount shows as plain `fuse` (source `ccsfs`), a fusermount3 one as `fuse.ccsfs`.
    if fstype != "fuse" && fstype != "fuse.ccsfs" {
        return Err(format!(
            "{shown} is a {fstype} mount, not ccsfs; unmount it (`umount {shown}`), then launch again"
        ));
    }
    match std::fs::metadata(mp) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Err(format!(
            "{shown} is still mounted but its daemon is gone; run `ccsfs unmount {shown}`, then launch again"
        )),
        Err(e) => Err(format!("cannot use the mount {shown}: {e}")),
        Ok(_) => Ok(()),
    }
}

/// A POSIX record lock on `<ccs>/run/launch.lock`, held while a launch checks and makes the
/// mount. Record locks (unlike `flock`) are not inherited by the daemon that `mount` forks, so
/// the lock ends with the launch even though the daemon keeps a copy of the fd.
struct LaunchLock(#[allow(dead_code)] std::fs::File);

impl LaunchLock {
    fn take(layout: &Layout) -> Result<LaunchLock, String> {
        let path = layout.ccs_dir.join("run").join("launch.lock");
        let file = crate::mountpoint::open_lock_file(&path)?;
        // SAFETY: a zeroed `flock` is a valid value; the fields that matter are set below.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        let deadline = Instant::now() + MOUNT_LOCK_WAIT;
        loop {
            // SAFETY: a valid fd and a valid `flock`.
            if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
                return Ok(LaunchLock(file));
            }
            let err = std::io::Error::last_os_error();
            if !matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) {
                return Err(format!("cannot lock {}: {err}", path.display()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "another launch has been mounting {} for {}s and still holds {}; check `ccsfs status` and try again",
                    layout.default_mount_point().display(),
                    MOUNT_LOCK_WAIT.as_secs(),
                    path.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
