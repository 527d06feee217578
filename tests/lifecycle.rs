//! Mount lifecycle of the real binary on real FUSE mounts: `mount` daemonizes and returns only
//! once the mount answers; `status` shows the mount, the daemon and each profile's routes
//! (including instance entries a route hides); `unmount` removes the mount and ends the daemon;
//! foreground mode logs to stderr and unmounts on SIGTERM/SIGINT; the daemon logs to
//! `<ccs>/logs/ccsfs.log` and unmounts on SIGTERM; a SIGKILLed daemon's mount (ENOTCONN) is
//! recovered by `unmount` with the data intact; empty and config-less CCS dirs; the default mount
//! point and the CCS dir discovery from `CCS_DIR` / `CCS_HOME` / `HOME`.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    Ccs, THREE_PROFILES, bin, fs_type, is_mounted, process_gone, stderr, stdout, wait_until,
};

const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

fn assert_fuse(path: &Path) {
    assert_eq!(
        fs_type(path),
        Ok(FUSE_SUPER_MAGIC),
        "{} is not a FUSE mount",
        path.display()
    );
}

/// The names in a directory.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: plain kill(2).
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}",
        out.status,
        stderr(out)
    );
}

/// The lines of `status` output that belong to one profile (its header and the indented lines
/// below it).
fn status_section(status: &str, profile: &str) -> Vec<String> {
    let header = format!("  {profile} (");
    let mut lines = status.lines().skip_while(|l| !l.starts_with(&header));
    let Some(first) = lines.next() else {
        panic!("no section for {profile} in status:\n{status}");
    };
    let mut out = vec![first.to_string()];
    out.extend(
        lines
            .take_while(|l| l.starts_with("    "))
            .map(str::to_string),
    );
    out
}

/// A route line `NAME -> TARGET` in a status section.
fn has_route(section: &[String], name: &str, target: &Path) -> bool {
    let want = format!("-> {}", target.display());
    section.iter().any(|l| {
        let l = l.trim_start();
        l.starts_with(name) && l[name.len()..].starts_with(' ') && l.trim_end().ends_with(&want)
    })
}

/// Unmounts an arbitrary mount point on drop (for mounts the common guard does not know about).
struct Unmounter {
    ccs: PathBuf,
    mp: PathBuf,
}

impl Drop for Unmounter {
    fn drop(&mut self) {
        if is_mounted(&self.mp) {
            let run = |lazy: bool| {
                let mut c = Command::new(bin());
                c.arg("--ccs-dir").arg(&self.ccs).arg("unmount");
                if lazy {
                    c.arg("--lazy");
                }
                let _ = c.arg(&self.mp).output();
            };
            run(false);
            if is_mounted(&self.mp) {
                run(true);
            }
        }
    }
}

/// A foreground `ccsfs mount -f` child whose stderr is collected; killed and unmounted on drop.
struct Foreground {
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// Unmounts after the child is gone.
    _guard: Unmounter,
}

impl Foreground {
    fn start(ccs: &Ccs, flag: &str) -> Foreground {
        let mut child = Command::new(bin())
            .arg("--ccs-dir")
            .arg(&ccs.ccs)
            .args(["mount", flag])
            .arg(&ccs.mnt)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ccsfs mount -f");
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        });
        Foreground {
            child,
            stderr: Some(stderr),
            _guard: Unmounter {
                ccs: ccs.ccs.clone(),
                mp: ccs.mnt.clone(),
            },
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for the exit (at most 10 s) and returns the exit code and everything on stderr.
    fn wait(&mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "foreground ccsfs did not exit within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = self.stderr.take().unwrap().join().unwrap();
        (status.code(), text)
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // `_guard` unmounts after this.
    }
}

/// A command line with a controlled environment: only PATH, HOME and `env`.
fn ccsfs_with_env(home: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("HOME", home);
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().expect("run ccsfs")
}

// ---------------------------------------------------------------------------------------------
// 1. mount / status / unmount
// ---------------------------------------------------------------------------------------------

#[test]
fn mount_returns_only_once_the_mount_answers() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let out = ccs.cli(&["mount", ccs.mnt.to_str().unwrap()]);
    let _guard = Unmounter {
        ccs: ccs.ccs.clone(),
        mp: ccs.mnt.clone(),
    };
    assert_ok(&out, "mount");
    // No polling: the mount must already answer when `mount` returns.
    assert_fuse(&ccs.mnt);
    assert_eq!(names(&ccs.mnt), set(&["personal", "solo", "work"]));
    assert!(is_mounted(&ccs.mnt));
    assert_eq!(
        stderr(&out),
        "",
        "a daemonized mount logs to its log file, not to stderr"
    );
}

#[test]
fn status_shows_the_mount_the_daemon_and_each_profiles_routes() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let out = ccs.cli(&["status", ccs.mnt.to_str().unwrap()]);
    assert_ok(&out, "status");
    let text = stdout(&out);
    assert!(
        text.contains(&ccs.mnt.display().to_string()),
        "status does not name the mount point:\n{text}"
    );
    let pid = ccs.daemon_pid().expect("status shows `daemon pid N`");
    assert!(
        !process_gone(pid),
        "status names daemon pid {pid}, which is not running"
    );

    let work = status_section(&text, "work");
    for word in ["shared", "team", "deeper"] {
        assert!(
            work[0].contains(word),
            "work header lacks {word}: {}",
            work[0]
        );
    }
    assert!(
        has_route(&work, "projects", &ccs.group_projects("team")),
        "{work:#?}"
    );
    for dir in ["session-env", "file-history", "shell-snapshots", "todos"] {
        assert!(
            has_route(&work, dir, &ccs.continuity("team", dir)),
            "work lacks the {dir} route: {work:#?}"
        );
    }

    let personal = status_section(&text, "personal");
    assert!(personal[0].contains("shared") && personal[0].contains("team"));
    assert!(!personal[0].contains("deeper"), "{}", personal[0]);
    assert!(has_route(
        &personal,
        "projects",
        &ccs.group_projects("team")
    ));
    assert!(
        !personal.iter().any(|l| l.trim_start().starts_with("todos")),
        "personal is not deeper, yet has a todos route: {personal:#?}"
    );

    let solo = status_section(&text, "solo");
    assert!(solo[0].contains("isolated"), "{}", solo[0]);
    assert!(
        !solo.iter().any(|l| l.trim_start().starts_with("projects")),
        "isolated solo has a projects route: {solo:#?}"
    );
    assert!(
        solo.iter().any(|l| l
            .trim_end()
            .ends_with(&format!("-> {}", ccs.instance("solo").display()))),
        "solo is not routed to its instance: {solo:#?}"
    );
}

#[test]
fn unmount_removes_the_mount_and_ends_the_daemon() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let m = ccs.mount();
    let pid = ccs.daemon_pid().expect("daemon pid");
    let out = ccs.cli(&["unmount", ccs.mnt.to_str().unwrap()]);
    assert_ok(&out, "unmount");
    assert!(
        !is_mounted(&ccs.mnt),
        "the mount table still lists the mount"
    );
    assert!(
        wait_until(Duration::from_secs(5), || process_gone(pid)),
        "daemon {pid} still runs 5 s after unmount"
    );
    assert_ne!(fs_type(&ccs.mnt), Ok(FUSE_SUPER_MAGIC));
    let status = stdout(&ccs.cli(&["status", ccs.mnt.to_str().unwrap()]));
    assert!(status.contains("not mounted"), "{status}");
    drop(m);
}

// ---------------------------------------------------------------------------------------------
// 2. foreground
// ---------------------------------------------------------------------------------------------

fn foreground_signal_unmounts_cleanly(flag: &str, sig: i32) {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let mut fg = Foreground::start(&ccs, flag);
    assert!(
        wait_until(Duration::from_secs(10), || fs_type(&ccs.mnt)
            == Ok(FUSE_SUPER_MAGIC)),
        "the foreground mount never answered"
    );
    assert_eq!(names(&ccs.mnt), set(&["personal", "solo", "work"]));
    // Still in the foreground: the process we started is the one serving the mount.
    assert!(
        fg.child.try_wait().unwrap().is_none(),
        "`mount {flag}` returned instead of staying in the foreground"
    );
    assert_eq!(ccs.daemon_pid(), Some(fg.pid()));

    signal(fg.pid(), sig);
    let (code, err) = fg.wait();
    assert_eq!(code, Some(0), "exit after signal {sig}; stderr:\n{err}");
    assert!(
        !is_mounted(&ccs.mnt),
        "still mounted after signal {sig} and exit"
    );
    assert!(
        err.contains(&ccs.mnt.display().to_string()),
        "the foreground mount did not log to stderr:\n{err}"
    );
    assert!(
        !ccs.ccs.join("logs/ccsfs.log").exists(),
        "the foreground mount wrote the daemon log file"
    );
}

#[test]
fn foreground_mount_logs_to_stderr_and_unmounts_on_sigterm() {
    foreground_signal_unmounts_cleanly("--foreground", libc::SIGTERM);
}

#[test]
fn foreground_mount_unmounts_on_sigint() {
    foreground_signal_unmounts_cleanly("-f", libc::SIGINT);
}

// ---------------------------------------------------------------------------------------------
// 3. the daemon: log file, SIGTERM
// ---------------------------------------------------------------------------------------------

#[test]
fn daemon_logs_to_the_log_file_and_unmounts_on_sigterm() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let m = ccs.mount();
    let log = ccs.ccs.join("logs/ccsfs.log");
    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert!(
        text.contains(&ccs.mnt.display().to_string()),
        "the log does not mention the mount:\n{text}"
    );

    let pid = ccs.daemon_pid().expect("daemon pid");
    signal(pid, libc::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(10), || !is_mounted(&ccs.mnt)),
        "still mounted 10 s after SIGTERM to the daemon"
    );
    assert!(
        wait_until(Duration::from_secs(10), || process_gone(pid)),
        "daemon {pid} still runs 10 s after SIGTERM"
    );
    assert_eq!(ccs.daemon_pid(), None, "status still names a daemon");
    drop(m);
}

// ---------------------------------------------------------------------------------------------
// 4. a dead daemon
// ---------------------------------------------------------------------------------------------

#[test]
fn killed_daemon_is_recovered_by_unmount_and_data_survives() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let first = ccs.mount();
    std::fs::write(ccs.profile("solo").join("notes.txt"), "before the crash\n").unwrap();
    std::fs::create_dir_all(ccs.profile("work").join("projects/p")).unwrap();
    std::fs::write(ccs.profile("work").join("projects/p/s.jsonl"), "{}\n").unwrap();

    ccs.kill_daemon();
    // The kernel may answer stat from its attribute cache for up to the TTL; after that, and
    // from the first failure on, it must be ENOTCONN.
    let mut err = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            err = std::fs::metadata(&ccs.mnt).err();
            err.is_some()
        }),
        "stat of the dead mount still succeeds 5 s after the daemon died"
    );
    let err = err.unwrap();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENOTCONN),
        "stat of the dead mount: {err}"
    );

    let out = ccs.cli(&["unmount", ccs.mnt.to_str().unwrap()]);
    assert_ok(&out, "unmount of a dead mount");
    assert!(
        !is_mounted(&ccs.mnt),
        "the dead mount is still in the mount table"
    );
    drop(first);

    let _second = ccs.mount();
    assert_fuse(&ccs.mnt);
    assert_eq!(
        std::fs::read_to_string(ccs.profile("solo").join("notes.txt")).unwrap(),
        "before the crash\n"
    );
    assert_eq!(
        std::fs::read_to_string(ccs.profile("personal").join("projects/p/s.jsonl")).unwrap(),
        "{}\n"
    );
}

/// Beyond the list: once the daemon has exited, `status` must not keep naming it as
/// running (the daemon is re-parented to init, so it can linger as a zombie until init reaps it).
#[test]
fn status_says_the_daemon_is_not_running_as_soon_as_it_has_exited() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let pid = ccs.kill_daemon();
    let status = stdout(&ccs.cli(&["status", ccs.mnt.to_str().unwrap()]));
    assert!(
        status.contains("daemon not running") && !status.contains("daemon pid"),
        "daemon {pid} has exited, yet status says:\n{status}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. no config
// ---------------------------------------------------------------------------------------------

#[test]
fn mount_without_config_or_instances_is_empty_and_says_how_to_add_a_profile() {
    let ccs = Ccs::new(None);
    let out = ccs.cli(&["mount", ccs.mnt.to_str().unwrap()]);
    let _guard = Unmounter {
        ccs: ccs.ccs.clone(),
        mp: ccs.mnt.clone(),
    };
    assert_ok(&out, "mount with no profiles");
    let err = stderr(&out);
    assert_eq!(
        err.lines().count(),
        1,
        "want one line on stderr, got:\n{err}"
    );
    assert!(err.starts_with("ccsfs: "), "{err}");
    assert!(err.contains("ccsfs profile add"), "{err}");
    assert_fuse(&ccs.mnt);
    assert_eq!(names(&ccs.mnt), BTreeSet::new());
}

#[test]
fn instance_dirs_without_config_are_isolated_profiles() {
    let ccs = Ccs::new(None);
    std::fs::create_dir_all(ccs.instance("a")).unwrap();
    std::fs::create_dir_all(ccs.instance("b")).unwrap();
    let _m = ccs.mount();
    assert_eq!(names(&ccs.mnt), set(&["a", "b"]));

    // Isolated: even projects/ stays in the profile's own instance.
    std::fs::create_dir_all(ccs.profile("a").join("projects/p")).unwrap();
    std::fs::write(ccs.profile("a").join("projects/p/s.jsonl"), "a\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(ccs.instance("a").join("projects/p/s.jsonl")).unwrap(),
        "a\n"
    );
    assert!(!ccs.profile("b").join("projects/p").exists());
    assert!(!ccs.ccs.join("shared/context-groups").exists());

    let status = stdout(&ccs.cli(&["status", ccs.mnt.to_str().unwrap()]));
    assert!(
        status_section(&status, "a")[0].contains("isolated"),
        "{status}"
    );
    assert!(
        status_section(&status, "b")[0].contains("isolated"),
        "{status}"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. the default mount point and the CCS dir discovery
// ---------------------------------------------------------------------------------------------

#[test]
fn default_mount_point_is_created_and_used_by_mount_status_unmount() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let mp = ccs.ccs.join("mnt");
    assert!(!mp.exists());
    let _guard = Unmounter {
        ccs: ccs.ccs.clone(),
        mp: mp.clone(),
    };
    assert_ok(&ccs.cli(&["mount"]), "mount with no mount point");
    assert!(is_mounted(&mp), "{} is not mounted", mp.display());
    assert_fuse(&mp);
    assert_eq!(names(&mp), set(&["personal", "solo", "work"]));

    let status = stdout(&ccs.cli(&["status"]));
    assert!(
        status.contains(&format!("{} (mounted, daemon pid", mp.display())),
        "{status}"
    );
    let pid: i32 = status
        .split("daemon pid ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .expect("daemon pid in status");

    assert_ok(&ccs.cli(&["unmount"]), "unmount with no mount point");
    assert!(!is_mounted(&mp));
    assert!(wait_until(Duration::from_secs(5), || process_gone(pid)));
}

#[test]
fn ccs_dir_env_is_used_without_the_flag() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let home = ccs.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mp = ccs.ccs.join("mnt");
    let _guard = Unmounter {
        ccs: ccs.ccs.clone(),
        mp: mp.clone(),
    };
    let env = [("CCS_DIR", ccs.ccs.as_path())];
    assert_ok(
        &ccsfs_with_env(&home, &env, &["mount"]),
        "mount with CCS_DIR",
    );
    assert!(is_mounted(&mp), "CCS_DIR/mnt is not mounted");
    assert_eq!(names(&mp), set(&["personal", "solo", "work"]));
    let status = stdout(&ccsfs_with_env(&home, &env, &["status"]));
    assert!(status.contains("daemon pid"), "{status}");
    assert_ok(
        &ccsfs_with_env(&home, &env, &["unmount"]),
        "unmount with CCS_DIR",
    );
    assert!(!is_mounted(&mp));
    assert!(!home.join(".ccs").exists(), "fell back to $HOME/.ccs");
}

#[test]
fn ccs_home_env_means_ccs_home_dot_ccs() {
    let tmp = Ccs::new(None);
    let ccs_home = tmp.tmp.path().join("ccs-home");
    let ccs_dir = ccs_home.join(".ccs");
    std::fs::create_dir_all(&ccs_dir).unwrap();
    std::fs::write(ccs_dir.join("config.yaml"), THREE_PROFILES).unwrap();
    let home = tmp.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mp = ccs_dir.join("mnt");
    let _guard = Unmounter {
        ccs: ccs_dir.clone(),
        mp: mp.clone(),
    };
    let env = [("CCS_HOME", ccs_home.as_path())];
    assert_ok(
        &ccsfs_with_env(&home, &env, &["mount"]),
        "mount with CCS_HOME",
    );
    assert!(is_mounted(&mp), "$CCS_HOME/.ccs/mnt is not mounted");
    assert_eq!(names(&mp), set(&["personal", "solo", "work"]));
    assert_ok(
        &ccsfs_with_env(&home, &env, &["unmount"]),
        "unmount with CCS_HOME",
    );
    assert!(!is_mounted(&mp));
    assert!(!home.join(".ccs").exists(), "fell back to $HOME/.ccs");
}

#[test]
fn ccs_dir_precedence_flag_then_ccs_dir_then_ccs_home_then_home() {
    let t = Ccs::new(None);
    let root = t.tmp.path();
    let (flag, dir, ccs_home, home) = (
        root.join("flag"),
        root.join("dir"),
        root.join("ccs-home"),
        root.join("home"),
    );
    for d in [&flag, &dir, &ccs_home, &home] {
        std::fs::create_dir_all(d).unwrap();
    }
    let config_in = |d: &Path| d.join("config.yaml").exists();

    let all = [("CCS_DIR", dir.as_path()), ("CCS_HOME", ccs_home.as_path())];
    let flag_s = flag.to_str().unwrap();
    assert_ok(
        &ccsfs_with_env(&home, &all, &["--ccs-dir", flag_s, "profile", "add", "p1"]),
        "add with --ccs-dir",
    );
    assert!(config_in(&flag));
    assert!(
        !config_in(&dir) && !config_in(&ccs_home.join(".ccs")) && !config_in(&home.join(".ccs"))
    );

    assert_ok(
        &ccsfs_with_env(&home, &all, &["profile", "add", "p2"]),
        "add with CCS_DIR",
    );
    assert!(config_in(&dir), "CCS_DIR was not used");
    assert!(!config_in(&ccs_home.join(".ccs")) && !config_in(&home.join(".ccs")));

    let only_home = [("CCS_HOME", ccs_home.as_path())];
    assert_ok(
        &ccsfs_with_env(&home, &only_home, &["profile", "add", "p3"]),
        "add with CCS_HOME",
    );
    assert!(
        config_in(&ccs_home.join(".ccs")),
        "$CCS_HOME/.ccs was not used"
    );
    assert!(!config_in(&home.join(".ccs")));

    assert_ok(
        &ccsfs_with_env(&home, &[], &["profile", "add", "p4"]),
        "add with HOME only",
    );
    assert!(config_in(&home.join(".ccs")), "$HOME/.ccs was not used");
}

// ---------------------------------------------------------------------------------------------
// 10. instance entries hidden by a route
// ---------------------------------------------------------------------------------------------

fn mount_and_unmount(ccs: &Ccs) {
    let m = ccs.mount();
    assert_fuse(&ccs.mnt);
    drop(m);
    assert!(!is_mounted(&ccs.mnt));
}

#[test]
fn status_notes_a_foreign_symlink_hidden_by_a_route_and_mount_leaves_it() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let elsewhere = ccs.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("old.jsonl"), "old\n").unwrap();
    std::fs::create_dir_all(ccs.instance("work")).unwrap();
    let link = ccs.instance("work").join("projects");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();

    let status = stdout(&ccs.cli(&["status", ccs.mnt.to_str().unwrap()]));
    let work = status_section(&status, "work");
    assert!(
        work.iter()
            .any(|l| l.contains("projects") && l.contains("hidden by the route")),
        "status does not note the hidden projects symlink: {work:#?}"
    );

    let m = ccs.mount();
    assert!(
        !ccs.profile("work").join("projects/old.jsonl").exists(),
        "the mount shows the hidden symlink's content instead of the group store"
    );
    drop(m);
    assert!(!is_mounted(&ccs.mnt));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), elsewhere);
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("old.jsonl")).unwrap(),
        "old\n"
    );
    mount_and_unmount(&ccs);
    assert_eq!(std::fs::read_link(&link).unwrap(), elsewhere);
}

#[test]
fn status_notes_old_instance_data_hidden_by_a_route_and_mount_leaves_it() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let old = ccs.instance("work").join("projects/p");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("s.jsonl"), "old session\n").unwrap();

    let status = stdout(&ccs.cli(&["status", ccs.mnt.to_str().unwrap()]));
    let work = status_section(&status, "work");
    assert!(
        work.iter()
            .any(|l| l.contains("projects") && l.contains("hidden by the route")),
        "status does not note the hidden projects dir: {work:#?}"
    );

    let m = ccs.mount();
    assert!(!ccs.profile("work").join("projects/p/s.jsonl").exists());
    drop(m);
    assert!(!is_mounted(&ccs.mnt));
    assert_eq!(
        std::fs::read_to_string(old.join("s.jsonl")).unwrap(),
        "old session\n"
    );
    assert!(
        !std::fs::symlink_metadata(ccs.instance("work").join("projects"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn status_notes_a_ccs_symlink_to_the_same_store_and_mount_leaves_it() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let store = ccs.group_projects("team");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::create_dir_all(ccs.instance("personal")).unwrap();
    let link = ccs.instance("personal").join("projects");
    std::os::unix::fs::symlink(&store, &link).unwrap();

    let status = stdout(&ccs.cli(&["status", ccs.mnt.to_str().unwrap()]));
    let personal = status_section(&status, "personal");
    assert!(
        personal
            .iter()
            .any(|l| l.contains("projects") && l.contains("CCS symlink")),
        "status does not note the CCS symlink: {personal:#?}"
    );
    mount_and_unmount(&ccs);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), store);
}

// ---------------------------------------------------------------------------------------------
// Beyond the list: relative paths on the command line.
// ---------------------------------------------------------------------------------------------

/// `ccsfs --ccs-dir R/ccs mount R/mnt` from a working directory W: the daemon must serve W/R/ccs
/// on W/R/mnt (it changes its cwd to `/` when it detaches, so it has to resolve them first).
/// R is the temp dir's own path without the leading `/`, so a daemon that wrongly resolves
/// against `/` lands in the temp dir (T/ccs, T/mnt) and never outside it.
#[test]
fn relative_ccs_dir_and_mount_point_are_resolved_against_the_callers_cwd() {
    let t = Ccs::new(None);
    let rel = t.tmp.path().strip_prefix("/").unwrap().to_path_buf();
    let cwd = t.tmp.path().join("cwd");
    let ccs_dir = cwd.join(&rel).join("ccs");
    let mnt = cwd.join(&rel).join("mnt");
    std::fs::create_dir_all(&ccs_dir).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::write(ccs_dir.join("config.yaml"), THREE_PROFILES).unwrap();
    let _guards = [
        Unmounter {
            ccs: ccs_dir.clone(),
            mp: mnt.clone(),
        },
        // Where a daemon that resolves against `/` would mount.
        Unmounter {
            ccs: t.ccs.clone(),
            mp: t.mnt.clone(),
        },
    ];
    let (rel_ccs, rel_mnt) = (rel.join("ccs"), rel.join("mnt"));
    let run = |cmd: &str| {
        Command::new(bin())
            .current_dir(&cwd)
            .arg("--ccs-dir")
            .arg(&rel_ccs)
            .arg(cmd)
            .arg(&rel_mnt)
            .output()
            .unwrap()
    };
    assert_ok(&run("mount"), "mount with relative paths");
    assert!(
        !is_mounted(&t.mnt),
        "mounted relative to / instead of the cwd"
    );
    assert!(is_mounted(&mnt));
    assert_fuse(&mnt);
    assert_eq!(names(&mnt), set(&["personal", "solo", "work"]));
    std::fs::write(mnt.join("solo/x"), "x").unwrap();
    assert_eq!(
        std::fs::read_to_string(ccs_dir.join("instances/solo/x")).unwrap(),
        "x",
        "the daemon serves another CCS dir than the one named"
    );
    assert_ok(&run("unmount"), "unmount with relative paths");
    assert!(!is_mounted(&mnt));
}

/// A daemon may not keep an fd per directory: under a 256-file limit, 600 project dirs (and
/// a file in each) are made, walked, read, renamed and written through the mount.
#[test]
fn a_daemon_limited_to_256_files_serves_600_directories() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let extra = std::env::var("CCSFS_TEST_MOUNT_ARGS").unwrap_or_default();
    let out = Command::new("prlimit")
        .arg("--nofile=256:256")
        .arg(bin())
        .arg("--ccs-dir")
        .arg(&ccs.ccs)
        .args(["mount", ccs.mnt.to_str().unwrap()])
        .args(extra.split_whitespace())
        .output()
        .expect("run prlimit");
    assert_ok(&out, "mount with 256 open files");
    let _m = common::Mounted { ccs: &ccs };
    let projects = ccs.profile("work").join("projects");
    let n = 600;
    for i in 0..n {
        let d = projects.join(format!("-home-me-p{i}"));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {i}: {e}"));
        std::fs::write(d.join("s.jsonl"), format!("{{\"n\":{i}}}\n"))
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
    // A walk like the session picker's, through the other profile: every dir and file looked up.
    let other = ccs.profile("personal").join("projects");
    let mut seen = 0;
    for e in std::fs::read_dir(&other).unwrap() {
        let d = e.unwrap().path();
        for f in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let f = f.unwrap().path();
            std::fs::symlink_metadata(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            seen += 1;
        }
    }
    assert_eq!(seen, n);
    for i in [0, n / 2, n - 1] {
        let d = projects.join(format!("-home-me-p{i}"));
        assert_eq!(
            std::fs::read_to_string(d.join("s.jsonl")).unwrap(),
            format!("{{\"n\":{i}}}\n")
        );
        let moved = projects.join(format!("-home-me-moved{i}"));
        std::fs::rename(&d, &moved).unwrap();
        std::fs::write(moved.join("t.jsonl"), "{}\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(other.join(format!("-home-me-moved{i}/s.jsonl"))).unwrap(),
            format!("{{\"n\":{i}}}\n")
        );
    }
    assert_eq!(names(&projects).len(), n);
}
