//! Helpers for the single-writer lock tests (tests/locks.rs, tests/lock_bypass.rs): `bash`
//! children that hold or append to a transcript, a three-profile mount, a second daemon, and
//! what `ccsfs status` and the store's lock dir show. Included with
//! `#[path = "common/locking.rs"] mod locking;` next to `mod common;` and `mod sys;`.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Ccs, Mounted, THREE_PROFILES, is_mounted, stderr, stdout};

pub const EBUSY: i32 = libc::EBUSY;

/// A `bash -c` child, killed (SIGKILL) and reaped on drop so that a failing test leaves no
/// writer behind. Its stdin is a pipe, which doubles as a start barrier (`read -r _`).
pub struct Kid {
    child: Option<Child>,
    pub what: String,
}

impl Kid {
    pub fn bash(what: &str, script: &str, env: &[(&str, &str)]) -> Kid {
        let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, OsStr::new(v))).collect();
        Kid::bash_os(what, script, &env)
    }

    /// `bash` with environment values that need not be UTF-8 (file names).
    pub fn bash_os(what: &str, script: &str, env: &[(&str, &OsStr)]) -> Kid {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Kid {
            child: Some(child),
            what: what.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("running")
    }

    /// Lets a child waiting in `read -r _` go on.
    pub fn go(&mut self) {
        let stdin = self.child().stdin.as_mut().expect("piped stdin");
        let _ = stdin.write_all(b"\n");
        let _ = stdin.flush();
    }

    /// SIGKILL and reap: when this returns the process is gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn collect(mut c: Child, status: ExitStatus) -> Output {
        let mut out = Output {
            status,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        if let Some(mut s) = c.stdout.take() {
            let _ = s.read_to_end(&mut out.stdout);
        }
        if let Some(mut s) = c.stderr.take() {
            let _ = s.read_to_end(&mut out.stderr);
        }
        out
    }

    /// Waits (at most 20 s) for the child to exit and returns what it printed.
    pub fn finish(mut self) -> Output {
        let mut c = self.child.take().expect("running");
        drop(c.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = c.try_wait().expect("try_wait") {
                return Kid::collect(c, status);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let status = c.wait().expect("wait");
                let out = Kid::collect(c, status);
                panic!("{} did not finish: stderr {}", self.what, stderr(&out));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the child to create `ready`; fails if it exits first.
    pub fn wait_for(&mut self, ready: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            if let Some(status) = self.child().try_wait().expect("try_wait") {
                let c = self.child.take().unwrap();
                let out = Kid::collect(c, status);
                panic!(
                    "{} exited ({}) before it was ready: {}",
                    self.what,
                    out.status,
                    stderr(&out)
                );
            }
            assert!(Instant::now() < deadline, "{} never got ready", self.what);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Opens `$F` for append (fd 3, kept open), writes `$DATA`, signals `$READY` and then sleeps
/// as the same process (exec keeps pid and start time, so it stays the owner).
pub const HOLD: &str =
    r#"exec 3>>"$F" || exit 3; printf '%s' "$DATA" >&3 || exit 4; : > "$READY"; exec sleep 60"#;

/// One append of `$DATA` to `$F` by a fresh process; exit 3 when the open is refused.
pub const APPEND: &str = r#"exec 3>>"$F" || exit 3; printf '%s' "$DATA" >&3 || exit 4"#;

pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// A process that owns `file` (has written `data` through an fd it keeps open) until killed.
pub fn hold(file: &Path, data: &str, ready: &Path) -> Kid {
    let mut k = Kid::bash_os(
        &format!("holder of {}", file.display()),
        HOLD,
        &[
            ("F", file.as_os_str()),
            ("DATA", OsStr::new(data)),
            ("READY", ready.as_os_str()),
        ],
    );
    k.wait_for(ready);
    k
}

/// A fresh process appends `data` to `file`: its pid and output.
pub fn child_append(file: &Path, data: &str) -> (u32, Output) {
    let k = Kid::bash_os(
        &format!("appender to {}", file.display()),
        APPEND,
        &[("F", file.as_os_str()), ("DATA", OsStr::new(data))],
    );
    (k.pid(), k.finish())
}

#[track_caller]
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: expected success, got {} with stderr: {}",
        out.status,
        stderr(out)
    );
}

#[track_caller]
pub fn assert_busy(out: &Output, what: &str) {
    assert!(
        out.status.code() == Some(3) && stderr(out).contains("Device or resource busy"),
        "{what}: expected the open to fail with EBUSY (exit 3), got {} with stderr: {}",
        out.status,
        stderr(out)
    );
}

/// This process appends `text` to `path` (open O_APPEND|O_CREAT, write, close).
pub fn append(path: &Path, text: &str) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every line parses as JSON and the text ends with a newline.
#[track_caller]
pub fn assert_jsonl(text: &str, what: &str) {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{what}: not newline-terminated: {text:?}"
    );
    for (n, l) in text.lines().enumerate() {
        serde_json::from_str::<Value>(l)
            .unwrap_or_else(|e| panic!("{what}: line {} is not JSON ({e}): {l:?}", n + 1));
    }
}

/// `ccsfs mount MNT EXTRA…`, plus the arguments in `CCSFS_TEST_MOUNT_ARGS` (e.g.
/// `--no-passthrough --fd-budget 0`: the data path an unprivileged user gets, with every node
/// re-opened by name).
pub fn mount_at(ccs: &Ccs, mnt: &Path, extra: &[&str]) -> Output {
    let env = std::env::var("CCSFS_TEST_MOUNT_ARGS").unwrap_or_default();
    let mut args = vec!["mount", s(mnt)];
    args.extend_from_slice(extra);
    args.extend(env.split_whitespace());
    ccs.cli(&args)
}

/// A three-profile CCS dir, mounted with `extra` mount flags (wrap it in `mounted` at once),
/// and a scratch dir beside it.
pub fn setup(extra: &[&str]) -> (Ccs, PathBuf) {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let mnt = ccs.mnt.clone();
    let out = mount_at(&ccs, &mnt, extra);
    assert!(out.status.success(), "mount failed: {}", stderr(&out));
    let tmp = ccs.tmp.path().to_path_buf();
    (ccs, tmp)
}

/// The unmount guard for a mounted `ccs`, with `work/projects/p` made.
pub fn mounted(ccs: &Ccs) -> Mounted<'_> {
    let m = Mounted { ccs };
    fs::create_dir_all(ccs.profile("work").join("projects/p")).unwrap();
    m
}

/// A second daemon on the same CCS dir, at `<tmp>/mnt2`; unmounted on drop.
pub struct Second<'a>(pub &'a Ccs, pub PathBuf);

impl Drop for Second<'_> {
    fn drop(&mut self) {
        let out = self.0.cli(&["unmount", s(&self.1)]);
        if !out.status.success() && is_mounted(&self.1) {
            let _ = self.0.cli(&["unmount", "--lazy", s(&self.1)]);
        }
    }
}

pub fn second_mount<'a>(ccs: &'a Ccs, extra: &[&str]) -> Second<'a> {
    let mnt2 = ccs.tmp.path().join("mnt2");
    fs::create_dir(&mnt2).unwrap();
    let out = mount_at(ccs, &mnt2, extra);
    assert_ok(&out, "second mount");
    Second(ccs, mnt2)
}

pub fn status_text(ccs: &Ccs) -> String {
    let out = ccs.cli(&["status", s(&ccs.mnt)]);
    assert_ok(&out, "status");
    stdout(&out)
}

pub fn status_locks(ccs: &Ccs) -> Vec<Value> {
    let out = ccs.cli(&["status", s(&ccs.mnt), "--json"]);
    assert_ok(&out, "status --json");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", stdout(&out)));
    v["locks"]
        .as_array()
        .unwrap_or_else(|| panic!("no locks array in {v}"))
        .clone()
}

pub fn lock_files(ccs: &Ccs) -> Vec<String> {
    let dir = ccs.ccs.join("shared/context-groups/team/.ccsfs/locks");
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

pub fn me() -> u32 {
    std::process::id()
}
