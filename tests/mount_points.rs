//! Where a mount may go, and the daemon's start and end, against the real binary, real mounts
//! and real processes (issue 11, items 8–10):
//! - a mount point that is the CCS dir, contains it, or lies inside (or around) a tree the
//!   mount serves (instances, group stores, CCS's shared resources in `~/.claude`), also when
//!   reached through a symlink or `..`, is refused with one line and leaves no mount and no
//!   daemon; the default `<ccs>/mnt` still mounts;
//! - `mount`s of one point at once give one mount and one daemon, the others one line;
//! - a `mount` killed (SIGKILL) before its daemon is ready leaves nothing mounted, and one killed
//!   later leaves a mount that `unmount` ends, daemon included;
//! - the daemon exits when its mount goes away: `umount`, `fusermount3 -u`, and SIGTERM while a
//!   request it serves is stuck (in another FUSE mount that is frozen);
//! - ioctls (Python's `open()` asks TCGETS) get ENOTTY and add no line to the log;
//! - an unprivileged mount that fails says why on stderr: a log it cannot open, fusermount3's
//!   own refusal.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    Ccs, THREE_PROFILES, assert_refused, bin, is_mounted, is_root, mount_count, process_gone,
    stderr, wait_until,
};

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// The pids of live processes (other than this one) whose command line mentions `needle`.
fn processes_mentioning(needle: &Path) -> Vec<i32> {
    common::processes_mentioning(needle)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

/// The processes whose parent is `parent` (a single-threaded one: its main thread's children
/// file when the kernel has it, else a scan of /proc).
fn children_of(parent: i32) -> Vec<i32> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")) {
        return text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so split after the last `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid, sig) };
}

/// SIGSTOPs `pid` and waits until every thread of it has stopped (kill(2) returns before they
/// do, and a thread may still finish a request meanwhile). A thread in a killable kernel wait
/// ('D': a statfs of its own mount waiting for a reply from a worker that is stopped now)
/// counts: it stops as soon as it returns to user space.
fn freeze(pid: i32) {
    signal(pid, libc::SIGSTOP);
    let all_stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return true;
        };
        tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with(['T', 't', 'Z', 'X', 'D']))
                })
                .unwrap_or(true)
        })
    };
    if !wait_until(Duration::from_secs(10), all_stopped) {
        // Which thread did not, and where it waits.
        let states: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                let wchan = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
                let state = stat
                    .rsplit_once(')')
                    .map_or("?", |(_, r)| &r.trim_start()[..1]);
                format!("{} {state} {wchan}", t.file_name().to_string_lossy())
            })
            .collect();
        panic!("process {pid} did not stop: {states:?}");
    }
}

/// Detaches whatever is mounted at `mp` (root: umount -l; others: fusermount3 -u -z).
fn force_unmount(mp: &Path) {
    for _ in 0..4 {
        if !is_mounted(mp) {
            return;
        }
        let _ = if is_root() {
            Command::new("umount").arg("-l").arg(mp).output()
        } else {
            Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(mp)
                .output()
        };
    }
}

/// On drop (also when a test fails, or a binary without the fixes hangs): SIGKILLs every
/// process that mentions `needle` (the test's own temp dir) and detaches `mount_points`.
struct Leftovers {
    needle: PathBuf,
    mount_points: Vec<PathBuf>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for pid in processes_mentioning(&self.needle) {
            signal(pid, libc::SIGCONT);
            signal(pid, libc::SIGKILL);
        }
        for mp in &self.mount_points {
            force_unmount(mp);
        }
    }
}

/// Runs `cmd`, killing it after `limit`: its output, or None if it had to be killed.
fn output_within(cmd: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child.wait_with_output().unwrap())
}

fn ccsfs(ccs: &Path, args: &[&Path]) -> Command {
    let mut c = Command::new(bin());
    c.arg("--ccs-dir").arg(ccs).args(args);
    c
}

/// The mount point is not mounted and no process of this CCS dir runs.
fn assert_nothing_left(ccs: &Ccs, mp: &Path) {
    assert!(!is_mounted(mp), "{} was left mounted", mp.display());
    assert!(
        wait_until(Duration::from_secs(5), || processes_mentioning(&ccs.ccs)
            .is_empty()),
        "processes left behind: {:?}",
        processes_mentioning(&ccs.ccs)
    );
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}",
        out.status,
        stderr(out)
    );
}

// ---------------------------------------------------------------------------------------------
// 8. dangerous mount points
// ---------------------------------------------------------------------------------------------

#[test]
fn mount_points_the_mount_serves_are_refused_and_leave_nothing() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let tmp = ccs.tmp.path().to_path_buf();
    // CCS's layout: instances, a group store, shared resources linked into ~/.claude.
    let claude = tmp.join("home/.claude");
    for d in ["commands/sub", "skills"] {
        std::fs::create_dir_all(claude.join(d)).unwrap();
    }
    for p in ["work", "personal", "solo"] {
        std::fs::create_dir_all(ccs.instance(p)).unwrap();
    }
    std::fs::create_dir_all(ccs.group_projects("team").join("p")).unwrap();
    for name in ["commands", "skills"] {
        std::os::unix::fs::symlink(claude.join(name), ccs.ccs.join("shared").join(name)).unwrap();
    }
    let link = tmp.join("to-work");
    std::os::unix::fs::symlink(ccs.instance("work"), &link).unwrap();

    let cases: Vec<(PathBuf, &str)> = vec![
        (ccs.ccs.clone(), "the CCS dir itself"),
        (tmp.clone(), "contains the CCS dir"),
        (ccs.ccs.join("instances"), "instances"),
        (ccs.instance("work"), "instances"),
        (ccs.ccs.join("instances/work/../solo"), "instances"),
        (link.clone(), "instances"),
        (ccs.ccs.join("shared"), "shared"),
        (ccs.group_projects("team").join("p"), "shared"),
        (claude.join("commands/sub"), ".claude/commands"),
        (claude.clone(), ".claude/"),
        (ccs.ccs.join("logs"), "logs"),
    ];
    std::fs::create_dir_all(ccs.ccs.join("logs")).unwrap();
    let _leftovers = Leftovers {
        needle: tmp.clone(),
        mount_points: cases.iter().map(|(p, _)| p.clone()).collect(),
    };
    for (mp, needle) in &cases {
        let out = output_within(
            &mut ccsfs(&ccs.ccs, &[Path::new("mount"), mp]),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|| panic!("`mount {}` hung for 15 s", mp.display()));
        let line = assert_refused(&out, &[needle, "ccsfs mount"]);
        // Named as given, or (with `..`) as resolved.
        let named = [mp.clone(), mp.canonicalize().unwrap()];
        assert!(
            named
                .iter()
                .any(|n| line.contains(&n.display().to_string())),
            "the refusal does not name {}: {line}",
            mp.display()
        );
        assert_nothing_left(&ccs, mp);
        assert!(!is_mounted(&link) && !is_mounted(&ccs.instance("solo")));
    }

    // The default mount point, inside the CCS dir, is fine.
    ok(&ccs.cli(&["mount"]), "mount at the default <ccs>/mnt");
    let default = ccs.ccs.join("mnt");
    assert!(is_mounted(&default));
    assert!(default.join("work").is_dir());
    ok(&ccs.cli(&["unmount"]), "unmount of the default");
    assert_nothing_left(&ccs, &default);
}

// ---------------------------------------------------------------------------------------------
// 8. one mount per mount point
// ---------------------------------------------------------------------------------------------

#[test]
fn mounts_of_one_point_at_once_give_one_mount_and_one_daemon() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _leftovers = Leftovers {
        needle: ccs.ccs.clone(),
        mount_points: vec![ccs.mnt.clone()],
    };
    for round in 0..8 {
        let children: Vec<Child> = (0..3)
            .map(|_| {
                ccsfs(&ccs.ccs, &[Path::new("mount"), &ccs.mnt])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let winners = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(
            (winners, mount_count(&ccs.mnt)),
            (1, 1),
            "round {round}: {winners} mounts succeeded, the table lists {} mounts; stderr: {:?}",
            mount_count(&ccs.mnt),
            outs.iter().map(stderr).collect::<Vec<_>>()
        );
        for o in outs.iter().filter(|o| !o.status.success()) {
            assert_refused(o, &["already mounted", "ccsfs unmount"]);
        }
        let daemons = processes_mentioning(&ccs.ccs);
        assert_eq!(daemons.len(), 1, "round {round}: daemons {daemons:?}");
        assert_eq!(ccs.daemon_pid(), Some(daemons[0]));
        assert!(ccs.profile("solo").is_dir());
        ok(&ccs.cli(&["unmount", ccs.mnt.to_str().unwrap()]), "unmount");
        assert!(
            wait_until(Duration::from_secs(5), || process_gone(daemons[0])),
            "round {round}: the daemon outlived its unmount"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. a killed `mount`
// ---------------------------------------------------------------------------------------------

/// The `mount` command is SIGKILLed while its daemon is held (SIGSTOP) before it has mounted;
/// the daemon then goes on, mounts, finds nobody waiting for it, and must undo the mount.
#[test]
fn a_mount_killed_before_its_daemon_is_ready_leaves_nothing_mounted() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _leftovers = Leftovers {
        needle: ccs.ccs.clone(),
        mount_points: vec![ccs.mnt.clone()],
    };
    for attempt in 0..30 {
        let mut cli = ccsfs(&ccs.ccs, &[Path::new("mount"), &ccs.mnt])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let cli_pid = cli.id() as i32;
        // A tight loop: the whole mount takes a few milliseconds.
        let deadline = Instant::now() + Duration::from_secs(5);
        let daemon = loop {
            if let Some(&d) = children_of(cli_pid).first() {
                break Some(d);
            }
            if cli.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break None;
            }
        };
        let Some(daemon) = daemon else {
            eprintln!("attempt {attempt}: the mount finished before its fork was seen");
            let _ = cli.kill();
            let _ = cli.wait();
            let _ = ccs.cli(&["unmount", ccs.mnt.to_str().unwrap()]);
            continue;
        };
        freeze(daemon);
        let too_late = is_mounted(&ccs.mnt);
        signal(cli_pid, libc::SIGKILL);
        let _ = cli.wait();
        signal(daemon, libc::SIGCONT);
        if too_late {
            // It had mounted already, and may have said so: not this test's case.
            assert!(wait_until(Duration::from_secs(5), || is_mounted(&ccs.mnt)
                || process_gone(daemon)));
            let _ = ccs.cli(&["unmount", ccs.mnt.to_str().unwrap()]);
            assert!(wait_until(Duration::from_secs(10), || process_gone(daemon)));
            eprintln!("attempt {attempt}: the daemon had mounted before it was stopped");
            continue;
        }
        assert!(
            wait_until(Duration::from_secs(15), || process_gone(daemon)
                && !is_mounted(&ccs.mnt)),
            "the daemon of a killed `mount` still runs ({}) or its mount is still there ({}) after 15 s",
            !process_gone(daemon),
            is_mounted(&ccs.mnt)
        );
        assert_nothing_left(&ccs, &ccs.mnt);
        // And the point mounts again at once.
        ok(
            &ccs.cli(&["mount", ccs.mnt.to_str().unwrap()]),
            "mount again",
        );
        ok(&ccs.cli(&["unmount", ccs.mnt.to_str().unwrap()]), "unmount");
        return;
    }
    panic!("never caught a daemon before it mounted in 30 attempts");
}

/// Killed once the mount is there: the mount stays or goes, but `unmount` always ends it and
/// its daemon.
#[test]
fn a_mount_killed_after_its_daemon_mounted_is_ended_by_unmount() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _leftovers = Leftovers {
        needle: ccs.ccs.clone(),
        mount_points: vec![ccs.mnt.clone()],
    };
    let mut cli = ccsfs(&ccs.ccs, &[Path::new("mount"), &ccs.mnt])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cli_pid = cli.id() as i32;
    let mut daemon = None;
    assert!(wait_until(Duration::from_secs(10), || {
        daemon = daemon.or(children_of(cli_pid).first().copied());
        is_mounted(&ccs.mnt)
    }));
    signal(cli_pid, libc::SIGKILL);
    let _ = cli.wait();
    let daemon = daemon.or(ccs.daemon_pid()).expect("daemon pid");
    std::thread::sleep(Duration::from_millis(500));
    if is_mounted(&ccs.mnt) {
        ok(&ccs.cli(&["unmount", ccs.mnt.to_str().unwrap()]), "unmount");
    }
    assert!(
        wait_until(Duration::from_secs(10), || process_gone(daemon)),
        "daemon {daemon} still runs after unmount"
    );
    assert_nothing_left(&ccs, &ccs.mnt);
}

// ---------------------------------------------------------------------------------------------
// 8. the daemon ends with its mount
// ---------------------------------------------------------------------------------------------

#[test]
fn the_daemon_exits_when_its_mount_is_removed_from_outside() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _leftovers = Leftovers {
        needle: ccs.ccs.clone(),
        mount_points: vec![ccs.mnt.clone()],
    };
    let mut ways = vec![vec!["fusermount3", "-u"]];
    if is_root() {
        ways.push(vec!["umount"]);
    }
    for way in ways {
        ok(&ccs.cli(&["mount", ccs.mnt.to_str().unwrap()]), "mount");
        let pid = ccs.daemon_pid().expect("daemon pid");
        ok(
            &Command::new(way[0])
                .args(&way[1..])
                .arg(&ccs.mnt)
                .output()
                .unwrap(),
            &way.join(" "),
        );
        assert!(!is_mounted(&ccs.mnt));
        assert!(
            wait_until(Duration::from_secs(10), || process_gone(pid)),
            "daemon {pid} still runs 10 s after `{}`",
            way.join(" ")
        );
        assert_eq!(ccs.daemon_pid(), None, "the run file outlived the daemon");
    }
}

/// SIGTERM reaches the daemon while one of its requests is stuck: profile `solo`'s instance
/// dir lies (through a symlink) in a second ccsfs mount whose daemon is frozen (SIGSTOP), so a
/// lookup in `solo` waits on the frozen mount, and keeps the first mount busy. SIGTERM must
/// still take the mount away and end the daemon.
#[test]
fn sigterm_ends_the_daemon_while_a_request_is_stuck() {
    let ccs = Ccs::new(Some("accounts:\n  solo: {}\n"));
    let outer = Ccs::new(Some("accounts:\n  elsewhere: {}\n"));
    // Dropped in reverse order: the frozen daemon is thawed first, then the tested mount
    // goes, then the outer one.
    let _outer_leftovers = Leftovers {
        needle: outer.ccs.clone(),
        mount_points: vec![outer.mnt.clone()],
    };
    let _leftovers = Leftovers {
        needle: ccs.ccs.clone(),
        mount_points: vec![ccs.mnt.clone()],
    };
    ok(
        &outer.cli(&["mount", outer.mnt.to_str().unwrap()]),
        "outer mount",
    );
    let outer_pid = outer.daemon_pid().expect("outer daemon pid");
    let elsewhere = outer.profile("elsewhere").join("solo");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(ccs.ccs.join("instances")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, ccs.instance("solo")).unwrap();
    ok(&ccs.cli(&["mount", ccs.mnt.to_str().unwrap()]), "mount");
    let pid = ccs.daemon_pid().expect("daemon pid");
    std::fs::write(ccs.profile("solo").join("seen"), "x").unwrap();
    assert_eq!(std::fs::read(elsewhere.join("seen")).unwrap(), b"x");

    struct Thaw(i32);
    impl Drop for Thaw {
        fn drop(&mut self) {
            signal(self.0, libc::SIGCONT);
        }
    }
    let _thaw = Thaw(outer_pid);
    freeze(outer_pid);
    let mut stuck = Command::new("stat")
        .arg(ccs.profile("solo").join("never-looked-up"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    if let Some(st) = stuck.try_wait().unwrap() {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut stuck.stderr.take().unwrap(), &mut err);
        let state = std::fs::read_to_string(format!("/proc/{outer_pid}/stat")).unwrap_or_default();
        panic!(
            "the lookup did not get stuck in the frozen mount: {st:?} {err}; outer daemon: {state}"
        );
    }

    signal(pid, libc::SIGTERM);
    let gone = wait_until(Duration::from_secs(15), || {
        process_gone(pid) && !is_mounted(&ccs.mnt)
    });
    let (alive, mounted) = (!process_gone(pid), is_mounted(&ccs.mnt));
    signal(outer_pid, libc::SIGCONT);
    let _ = stuck.kill();
    let _ = stuck.wait();
    assert!(
        gone,
        "15 s after SIGTERM: daemon still running: {alive}, still mounted: {mounted}"
    );
    assert_eq!(ccs.daemon_pid(), None, "the run file outlived the daemon");
}

// ---------------------------------------------------------------------------------------------
// 9. ioctl
// ---------------------------------------------------------------------------------------------

fn tcgets(fd: i32) -> i32 {
    let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: TCGETS writes at most one termios into the buffer.
    if unsafe { libc::ioctl(fd, libc::TCGETS, termios.as_mut_ptr()) } == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

#[test]
fn ioctls_get_enotty_and_leave_no_line_in_the_log() {
    use std::os::fd::AsRawFd;
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let log = ccs.ccs.join("logs/ccsfs.log");
    let notes = ccs.profile("solo").join("notes.txt");
    let shared = ccs.profile("work").join("projects/notes.md");
    std::fs::write(&notes, "n\n").unwrap();
    std::fs::write(&shared, "s\n").unwrap();
    let before = std::fs::read_to_string(&log).unwrap();

    for p in [&notes, &shared, &ccs.profile("work")] {
        let f = std::fs::File::open(p).unwrap();
        assert_eq!(
            tcgets(f.as_raw_fd()),
            libc::ENOTTY,
            "TCGETS on {}",
            p.display()
        );
    }
    let python = ["python3", "/usr/bin/python3"].into_iter().find(|p| {
        Command::new(p)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if let Some(python) = python {
        for p in [&notes, &shared] {
            let out = Command::new(python)
                .arg("-c")
                .arg("import sys\nopen(sys.argv[1]).read()\nopen(sys.argv[1], 'a').write('x')")
                .arg(p)
                .output()
                .unwrap();
            ok(&out, "python3 open()");
        }
    } else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "python3 is missing"
        );
        eprintln!("note: no python3; only the direct ioctl calls were made");
    }
    let after = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        after.strip_prefix(&before).unwrap_or(&after),
        "",
        "ioctls added lines to the log"
    );
}

// ---------------------------------------------------------------------------------------------
// 10. an unprivileged mount that fails says why
// ---------------------------------------------------------------------------------------------

const NOBODY: u32 = 65534;

/// A mount as an ordinary user: `nobody` when the tests run as root, else the user running them.
fn as_user(args: &[&Path]) -> Output {
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
        ])
        .arg(bin());
        c
    } else {
        Command::new(bin())
    };
    c.args(args)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap()
}

fn chown_to_user(p: &Path) {
    if is_root() {
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// Whether an ordinary user can mount here at all (fusermount3, /dev/fuse open to users).
fn users_can_mount() -> bool {
    let mode = std::fs::metadata("/dev/fuse")
        .map(|m| m.permissions().mode())
        .unwrap_or(0);
    let helper = ["/usr/bin/fusermount3", "/bin/fusermount3"]
        .iter()
        .any(|p| Path::new(p).exists());
    if mode & 0o006 == 0o006 && helper {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "ordinary users cannot mount here (/dev/fuse {mode:o}, fusermount3 present: {helper})"
    );
    eprintln!(
        "skipped: ordinary users cannot mount here (/dev/fuse {mode:o}, fusermount3: {helper})"
    );
    false
}

#[test]
fn an_unprivileged_mount_that_cannot_open_its_log_says_why() {
    if !users_can_mount() {
        return;
    }
    let ccs = Ccs::new(Some(THREE_PROFILES));
    std::fs::set_permissions(ccs.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_to_user(ccs.tmp.path());
    let _leftovers = Leftovers {
        needle: ccs.ccs.clone(),
        mount_points: vec![ccs.mnt.clone()],
    };
    let logs = ccs.ccs.join("logs");
    let log = logs.join("ccsfs.log");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(&log, "").unwrap();
    let args = [
        Path::new("--ccs-dir"),
        &ccs.ccs,
        Path::new("mount"),
        &ccs.mnt,
    ];
    if is_root() {
        // Left by an earlier `sudo ccsfs mount`: the log root's and 0600, its dir the user's.
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = as_user(&args);
        assert_refused(
            &out,
            &["Permission denied", &log.display().to_string(), "chown"],
        );
        assert_nothing_left(&ccs, &ccs.mnt);
        // The whole dir root's, 0700.
        std::os::unix::fs::chown(&logs, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o700)).unwrap();
        let out = as_user(&args);
        assert_refused(
            &out,
            &["Permission denied", &logs.display().to_string(), "chown"],
        );
        assert_nothing_left(&ccs, &ccs.mnt);
    } else {
        // The user's own log, made unwritable.
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o400)).unwrap();
        let out = as_user(&args);
        assert_refused(&out, &["Permission denied", &log.display().to_string()]);
        assert_nothing_left(&ccs, &ccs.mnt);
    }
}

#[test]
fn an_unprivileged_mount_refused_by_fusermount3_says_why() {
    if !users_can_mount() {
        return;
    }
    let ccs = Ccs::new(Some(THREE_PROFILES));
    std::fs::set_permissions(ccs.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_to_user(ccs.tmp.path());
    // A mount point the user may not write: fusermount3 refuses it.
    let theirs = ccs.tmp.path().join("not-yours");
    std::fs::create_dir_all(&theirs).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&theirs, Some(0), Some(0)).unwrap();
    }
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o555)).unwrap();
    let _leftovers = Leftovers {
        needle: ccs.ccs.clone(),
        mount_points: vec![theirs.clone(), ccs.mnt.clone()],
    };
    let out = as_user(&[
        Path::new("--ccs-dir"),
        &ccs.ccs,
        Path::new("mount"),
        &theirs,
    ]);
    let line = assert_refused(&out, &["fusermount3", &theirs.display().to_string()]);
    assert!(
        !line.contains("see "),
        "points at the log instead of saying why: {line}"
    );
    assert_nothing_left(&ccs, &theirs);
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).unwrap();
}
