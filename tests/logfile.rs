//! The daemon's log survives CCS's cleanup: after `<ccs>/logs/ccsfs.log` is deleted (alone, with
//! every other file in `<ccs>/logs/` as `ccs cleanup --force` does, or with the whole dir), the
//! next refused write is logged to a re-created `ccsfs.log` (0600, in a 0700 dir), and the
//! daemon's stdout and stderr point at the new file too. The last test runs the real
//! `ccs cleanup --force` from npm (ignored by default; `scripts/test.sh` runs ignored tests).

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Ccs, Mounted, THREE_PROFILES, wait_until};

/// A process that opened a transcript for appending through profile `work`, wrote to it and
/// sleeps with it open: the transcript's owner. Killed on drop.
struct Holder(Child);

impl Holder {
    fn start(file: &Path, ready: &Path) -> Holder {
        let child = Command::new("bash")
            .arg("-c")
            .arg(r#"exec 3>>"$F" || exit 3; printf '{}\n' >&3 || exit 4; : > "$READY"; exec sleep 60"#)
            .env("F", file)
            .env("READY", ready)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn bash");
        let mut h = Holder(child);
        assert!(
            wait_until(Duration::from_secs(10), || ready.exists()
                || !matches!(h.0.try_wait(), Ok(None))),
            "the holder never got ready"
        );
        assert!(ready.exists(), "the holder exited: {:?}", h.0.try_wait());
        h
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A mount of work, personal (group `team`) and solo, with a transcript held through `work`.
/// The holder is declared first so that it is killed before the unmount.
struct Setup<'a> {
    holder: Holder,
    ccs: &'a Ccs,
    _mount: Mounted<'a>,
}

impl<'a> Setup<'a> {
    fn new(ccs: &'a Ccs) -> Setup<'a> {
        let mount = ccs.mount();
        let dir = ccs.profile("work").join("projects/p");
        fs::create_dir_all(&dir).unwrap();
        let holder = Holder::start(&dir.join("s.jsonl"), &ccs.tmp.path().join("ready"));
        Setup {
            holder,
            ccs,
            _mount: mount,
        }
    }

    fn log(&self) -> PathBuf {
        self.ccs.ccs.join("logs/ccsfs.log")
    }

    /// Opens the held transcript for writing through `personal`: EBUSY, and the daemon logs a
    /// refusal naming this process and the holder. Returns that part of the line.
    fn refuse(&self) -> String {
        let f = self.ccs.profile("personal").join("projects/p/s.jsonl");
        let err = OpenOptions::new()
            .append(true)
            .open(&f)
            .expect_err("a write-open of a held transcript succeeded");
        assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
        format!(
            "refused write to projects/p/s.jsonl by pid {} (personal): held by pid {} (work)",
            std::process::id(),
            self.holder.0.id()
        )
    }

    /// Asserts that `want` shows up in a `WARN` line of the log within 3 s.
    #[track_caller]
    fn assert_logged(&self, want: &str) {
        let mut text = String::new();
        let found = wait_until(Duration::from_secs(3), || {
            text = fs::read_to_string(self.log()).unwrap_or_default();
            text.lines().any(|l| l.contains("WARN") && l.contains(want))
        });
        assert!(
            found,
            "no WARN `{want}` in {}:\n{text}",
            self.log().display()
        );
    }

    /// The re-created log is 0600 in a 0700 dir, and the daemon's fds 1 and 2 are on it.
    #[track_caller]
    fn assert_daemon_follows(&self) {
        let log = self.log();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&log), 0o600, "{}", log.display());
        assert_eq!(mode(log.parent().unwrap()), 0o700);
        let pid = self.ccs.daemon_pid().expect("daemon pid");
        for fd in [1, 2] {
            let target = fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
            assert_eq!(
                target, log,
                "the daemon's fd {fd} is not on the current log"
            );
        }
    }
}

/// Removes every regular file directly in `dir` and one level below (CCS also cleans
/// `logs/archive/`), as `ccs cleanup --force` does.
fn remove_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in fs::read_dir(dir).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if t.is_file() {
            fs::remove_file(e.path()).unwrap();
            n += 1;
        } else if t.is_dir() {
            n += remove_files(&e.path());
        }
    }
    n
}

#[test]
fn a_deleted_log_is_recreated_for_the_next_refusal() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let s = Setup::new(&ccs);
    let before = s.refuse();
    s.assert_logged(&before);

    fs::remove_file(s.log()).unwrap();
    let after = s.refuse();
    s.assert_logged(&after);
    s.assert_daemon_follows();
    let text = fs::read_to_string(s.log()).unwrap();
    assert!(
        !text.contains("mounted "),
        "the re-created log holds lines from before the delete:\n{text}"
    );

    // And again: the re-opened file is followed the same way.
    fs::remove_file(s.log()).unwrap();
    s.assert_logged(&s.refuse());
    s.assert_daemon_follows();
}

#[test]
fn a_cleaned_logs_dir_and_a_removed_logs_dir_are_recreated() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let s = Setup::new(&ccs);
    let logs = ccs.ccs.join("logs");
    fs::write(logs.join("current.jsonl"), "{}\n").unwrap();
    fs::create_dir(logs.join("archive")).unwrap();
    fs::write(logs.join("archive/old.jsonl"), "{}\n").unwrap();
    assert_eq!(remove_files(&logs), 3);
    s.assert_logged(&s.refuse());
    s.assert_daemon_follows();

    fs::remove_dir_all(&logs).unwrap();
    s.assert_logged(&s.refuse());
    s.assert_daemon_follows();
}

#[test]
#[ignore = "needs the real ccs (npm @kaitranntt/ccs) and node; scripts/test.sh installs and runs it"]
fn a_refusal_after_the_real_ccs_cleanup_force_is_still_logged() {
    let ccs_bin = common::prereq::require_ccs();
    // CCS rejects a config.yaml without a numeric `version`.
    let ccs = Ccs::new(Some(&format!("version: 13\n{THREE_PROFILES}")));
    let s = Setup::new(&ccs);
    s.assert_logged(&s.refuse());

    let home = ccs.tmp.path().join("home");
    let bin = ccs.tmp.path().join("bin");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&bin).unwrap();
    let claude = bin.join("claude");
    fs::write(&claude, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&claude, fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = Command::new(&ccs_bin)
        .args(["cleanup", "--force"])
        .env("HOME", &home)
        .env("CCS_DIR", &ccs.ccs)
        .env_remove("CCS_HOME")
        .env("PATH", path)
        .current_dir(ccs.tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", ccs_bin.display()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ccs cleanup --force: {said}");
    assert!(
        said.contains("Deleted"),
        "ccs cleanup deleted nothing: {said}"
    );
    assert!(
        !s.log().exists(),
        "ccs cleanup --force left {}: {said}",
        s.log().display()
    );

    s.assert_logged(&s.refuse());
    s.assert_daemon_follows();
}
