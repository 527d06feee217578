//! Auto-mount and the shell: the systemd user unit (checked by `systemd-analyze verify`, and
//! its ExecStart run with a NOTIFY_SOCKET of our own: READY=1 once the mount answers, SIGTERM
//! unmounts, ExecStopPost clears only a dead mount), the `mount.fuse.ccsfs` fstab helper (run
//! as mount(8) runs it, and as root through the real mount(8)), completions and the man page.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{Ccs, TWO_IN_TEAM, bin, fs_type, is_mounted, stderr, stdout, wait_until};

const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// `ccsfs ARGS…` with a home and config dir of its own, and no way to reach a real user
/// manager (XDG_RUNTIME_DIR is an empty dir, no session bus): install-service writes the unit
/// and prints the systemctl steps.
fn isolated(args: &[&str], home: &Path) -> Output {
    let runtime = home.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    Command::new(bin())
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("CCS_DIR")
        .env_remove("CCS_HOME")
        .output()
        .unwrap()
}

/// The value of `key=` in the unit, split into words (the test's paths hold no blanks).
fn unit_command(unit: &str, key: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit:\n{unit}"));
    line.trim_start_matches('-')
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// `systemd-analyze verify --user UNIT`: (success, every line that mentions the unit).
fn verify(unit: &Path, runtime: &Path) -> (bool, Vec<String>) {
    let tool = common::prereq::require_tool("systemd-analyze", "systemd");
    let out = Command::new(tool)
        .args(["verify", "--user"])
        .arg(unit)
        .env("XDG_RUNTIME_DIR", runtime)
        .output()
        .unwrap();
    let name = unit.file_name().unwrap().to_string_lossy().into_owned();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let lines = text
        .lines()
        .filter(|l| l.contains(&name))
        .map(str::to_string)
        .collect();
    (out.status.success(), lines)
}

#[test]
#[ignore = "needs systemd-analyze (apt-get install systemd); scripts/test.sh runs it"]
fn install_service_writes_a_unit_that_systemd_analyze_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let ccs = home.join("my ccs");
    let ccs_arg = ccs.to_str().unwrap();
    let out = isolated(&["--ccs-dir", ccs_arg, "install-service"], home);
    assert!(out.status.success(), "{}", stderr(&out));
    let unit_path = home.join("config/systemd/user/ccsfs.service");
    let said = stdout(&out);
    // No user manager here: the file is written and the steps are printed, one a line.
    assert!(
        said.contains(&format!("wrote {}", unit_path.display())),
        "{said}"
    );
    assert!(
        said.contains("\n  systemctl --user daemon-reload\n"),
        "{said}"
    );
    assert!(
        said.contains("\n  systemctl --user enable --now ccsfs.service\n"),
        "{said}"
    );
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let exe = std::fs::canonicalize(bin()).unwrap();
    let quoted = format!("--ccs-dir \"{}\"", ccs.display());
    assert!(
        unit.contains(&format!(
            "\nExecStart={} {quoted} mount -f\n",
            exe.display()
        )),
        "{unit}"
    );
    assert!(
        unit.contains(&format!(
            "\nExecStopPost=-{} {quoted} unmount --if-dead\n",
            exe.display()
        )),
        "{unit}"
    );
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "WantedBy=default.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    // --print shows exactly what was written.
    let printed = isolated(&["--ccs-dir", ccs_arg, "install-service", "--print"], home);
    assert_eq!(stdout(&printed), unit);

    let (ok, complaints) = verify(&unit_path, &home.join("runtime"));
    assert!(
        ok && complaints.is_empty(),
        "systemd-analyze verify: {complaints:?}"
    );
    // The check has teeth: a broken copy is reported.
    let broken = home.join("broken/ccsfs.service");
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    std::fs::write(&broken, unit.replace("Type=notify", "Type=notifyy")).unwrap();
    let (_, complaints) = verify(&broken, &home.join("runtime"));
    assert!(
        complaints.iter().any(|l| l.contains("notifyy")),
        "systemd-analyze did not flag a bad Type=: {complaints:?}"
    );

    let out = isolated(&["install-service", "--uninstall"], home);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!unit_path.exists());
    assert!(
        stdout(&out).contains("systemctl --user daemon-reload"),
        "{}",
        stdout(&out)
    );
}

/// Stops a child and clears a mount point, whatever happened in the test.
struct Cleanup {
    child: Option<Child>,
    ccs: PathBuf,
    mnt: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new(bin())
                .arg("--ccs-dir")
                .arg(&self.ccs)
                .args(["unmount", "--lazy"])
                .arg(&self.mnt)
                .output();
        }
    }
}

fn run(cmd: &[String]) -> Output {
    Command::new(&cmd[0]).args(&cmd[1..]).output().unwrap()
}

/// The unit's ExecStart, started with NOTIFY_SOCKET=`notify` (a path or `@name`); returns once
/// READY=1 arrived, after checking that the mount answered by then.
fn start_as_systemd_would(
    exec_start: &[String],
    notify: &str,
    server: &UnixDatagram,
    mnt: &Path,
) -> Child {
    let child = Command::new(&exec_start[0])
        .args(&exec_start[1..])
        .env("NOTIFY_SOCKET", notify)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    let (text, sender) = recv_with_sender(server);
    // At the moment READY=1 arrives, the mount answers and serves the profiles.
    assert_eq!(
        fs_type(mnt),
        Ok(FUSE_SUPER_MAGIC),
        "READY=1 came before the mount"
    );
    assert!(mnt.join("work").is_dir() && mnt.join("personal").is_dir());
    assert_eq!(text, "READY=1");
    // From the main process itself: systemd (NotifyAccess=main) ignores anyone else.
    assert_eq!(sender, child.id() as i32, "READY=1 sent by another process");
    child
}

/// One datagram and the pid that sent it (SCM_CREDENTIALS, as systemd reads it).
fn recv_with_sender(server: &UnixDatagram) -> (String, i32) {
    use std::os::fd::AsRawFd;
    let fd = server.as_raw_fd();
    let on: libc::c_int = 1;
    // SAFETY: a valid socket fd and an int option.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_PASSCRED: {}", std::io::Error::last_os_error());
    let mut buf = [0u8; 256];
    let mut control = [0u64; 16]; // aligned room for one ucred message
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers (the read timeout bounds the wait).
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    assert!(
        n >= 0,
        "no READY=1 within 25 s: {}",
        std::io::Error::last_os_error()
    );
    let mut pid = 0;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS {
                pid = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::ucred>()).pid;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let text = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
    (text, pid)
}

#[test]
fn the_units_daemon_says_ready_once_mounted_sigterm_unmounts_and_stop_post_clears_a_dead_mount() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let ccs_arg = ccs.ccs.to_str().unwrap();
    let out = ccs.cli(&["install-service", "--print"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let unit = stdout(&out);
    assert!(
        unit.contains(&format!("--ccs-dir {ccs_arg} mount -f")),
        "{unit}"
    );
    let exec_start = unit_command(&unit, "ExecStart");
    let stop_post = unit_command(&unit, "ExecStopPost");
    let mnt = ccs.ccs.join("mnt"); // the unit mounts at the default mount point
    let mut guard = Cleanup {
        child: None,
        ccs: ccs.ccs.clone(),
        mnt: mnt.clone(),
    };

    // 1. A socket file, as systemd's own $NOTIFY_SOCKET; then SIGTERM, as at logout.
    let sock = ccs.tmp.path().join("notify");
    let server = UnixDatagram::bind(&sock).unwrap();
    let child = start_as_systemd_would(&exec_start, sock.to_str().unwrap(), &server, &mnt);
    let pid = child.id() as i32;
    guard.child = Some(child);
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut child = guard.child.take().unwrap();
    let status =
        wait_child(&mut child, Duration::from_secs(10)).expect("still running 10 s after SIGTERM");
    assert!(status.success(), "daemon exit after SIGTERM: {status}");
    assert!(!is_mounted(&mnt), "SIGTERM left {} mounted", mnt.display());
    // ExecStopPost after a clean stop: nothing to do, exit 0.
    let out = run(&stop_post);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );

    // 2. An abstract address (`@name`); the daemon dies (kill -9), ExecStopPost clears the
    //    dead mount, and leaves a live one alone.
    let name = format!("ccsfs-test-notify-{}", std::process::id());
    let server = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        UnixDatagram::bind_addr(&addr).unwrap()
    };
    let child = start_as_systemd_would(&exec_start, &format!("@{name}"), &server, &mnt);
    let pid = child.id() as i32;
    guard.child = Some(child);
    let out = run(&stop_post);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs_type(&mnt),
        Ok(FUSE_SUPER_MAGIC),
        "--if-dead unmounted a live mount"
    );
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let mut child = guard.child.take().unwrap();
    wait_child(&mut child, Duration::from_secs(10)).expect("SIGKILLed daemon still there");
    assert_eq!(
        fs_type(&mnt),
        Err(libc::ENOTCONN),
        "the mount should be dead now"
    );
    let out = run(&stop_post);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !is_mounted(&mnt),
        "ExecStopPost left the dead mount: {stop_post:?}: {}{}; {}",
        stdout(&out),
        stderr(&out),
        std::fs::read_to_string("/proc/self/mountinfo").unwrap()
    );
}

fn wait_child(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let mut status = None;
    wait_until(limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status
}

/// A dir holding `mount.fuse.ccsfs` -> the binary, as `ln -s $(command -v ccsfs)` makes it.
fn helper_link(dir: &Path) -> PathBuf {
    let link = dir.join("mount.fuse.ccsfs");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    link
}

/// Whether this user may mount with allow_other (root, or user_allow_other in fuse.conf).
fn may_allow_other() -> bool {
    common::is_root()
        || std::fs::read_to_string("/etc/fuse.conf")
            .is_ok_and(|t| t.lines().any(|l| l.trim() == "user_allow_other"))
}

/// The mount options /proc/self/mountinfo lists for `mnt`.
fn mount_options(mnt: &Path) -> String {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = mnt.to_string_lossy().replace(' ', "\\040");
    table
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .and_then(|l| l.split(' ').nth(5))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_fstab_helper_mounts_as_mount_8_runs_it() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let link = helper_link(ccs.tmp.path());
    let (ccs_arg, mnt_arg) = (ccs.ccs.to_str().unwrap(), ccs.mnt.to_str().unwrap());
    let _guard = Cleanup {
        child: None,
        ccs: ccs.ccs.clone(),
        mnt: ccs.mnt.clone(),
    };
    let other = if may_allow_other() {
        ",allow_other"
    } else {
        ""
    };
    // The fstab line's options as written, then as util-linux passes those of a `user` line.
    for opts in [
        format!("rw,noauto,user{other}"),
        format!("rw,noexec,nosuid,nodev{other},user"),
    ] {
        let out = Command::new(&link)
            .args([ccs_arg, mnt_arg, "-o", &opts])
            .env_clear() // mount(8) gives helpers no environment
            .output()
            .unwrap();
        assert!(out.status.success(), "-o {opts}: {}", stderr(&out));
        assert_eq!(fs_type(&ccs.mnt), Ok(FUSE_SUPER_MAGIC), "-o {opts}");
        assert!(ccs.profile("work").is_dir() && ccs.profile("personal").is_dir());
        let mounted = mount_options(&ccs.mnt);
        assert_eq!(
            mounted.split(',').any(|o| o == "noexec"),
            opts.contains("noexec"),
            "{mounted}"
        );
        let out = ccs.cli(&["unmount", mnt_arg]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!is_mounted(&ccs.mnt));
    }
    // mount -f (a fake run) mounts nothing and succeeds.
    let out = Command::new(&link)
        .args([ccs_arg, mnt_arg, "-f", "-o", "rw"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!is_mounted(&ccs.mnt));
}

#[test]
fn the_fstab_helper_refuses_bad_options_in_one_line_and_mounts_nothing() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let link = helper_link(ccs.tmp.path());
    let (ccs_arg, mnt_arg) = (ccs.ccs.to_str().unwrap(), ccs.mnt.to_str().unwrap());
    for (opts, needle) in [
        ("rw,noauto,user,bogus_opt", "`bogus_opt`"),
        ("ro,noauto", "remove `ro`"),
        (
            "rw,setuid=no-such-user-ccsfs",
            "no user `no-such-user-ccsfs`",
        ),
    ] {
        let out = Command::new(&link)
            .args([ccs_arg, mnt_arg, "-o", opts])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "-o {opts}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("mount.fuse.ccsfs: ") && err.contains(needle),
            "{err}"
        );
        assert!(!is_mounted(&ccs.mnt));
    }
    // A mount that fails (the mount point is missing) is mount(8)'s "mount failure", 32.
    let out = Command::new(&link)
        .args([ccs_arg, ccs.tmp.path().join("absent").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(32), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

/// Removes /sbin/mount.fuse.ccsfs when the test ends, also when it fails.
struct HelperInSbin(PathBuf);

impl Drop for HelperInSbin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const NOBODY: u32 = 65534;

fn as_nobody(cmd: &str) -> Output {
    Command::new("setpriv")
        .args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
        ])
        .args(["sh", "-c", cmd])
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs root (installs /sbin/mount.fuse.ccsfs, runs mount(8) as root and as a user); scripts/test.sh runs it"]
fn real_mount_8_with_the_installed_helper_a_root_line_with_setuid_and_a_user_line() {
    common::prereq::require_root();
    let helper = Path::new("/sbin/mount.fuse.ccsfs");
    assert!(
        std::fs::symlink_metadata(helper).is_err(),
        "{} exists already; this test installs and removes its own",
        helper.display()
    );
    let _remove = HelperInSbin(helper.to_path_buf());
    let out = Command::new(bin())
        .arg("install-mount-helper")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_link(helper).unwrap(),
        std::fs::canonicalize(bin()).unwrap()
    );
    // Again: already there, still fine.
    let out = Command::new(bin())
        .arg("install-mount-helper")
        .output()
        .unwrap();
    assert!(
        out.status.success() && stdout(&out).contains("already there"),
        "{}",
        stdout(&out)
    );

    // The store belongs to the user the line names, as a user's ~/.ccs does.
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    std::fs::set_permissions(ccs.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for p in [&ccs.ccs, &ccs.mnt, &ccs.ccs.join("config.yaml")] {
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let (ccs_arg, mnt_arg) = (ccs.ccs.to_str().unwrap(), ccs.mnt.to_str().unwrap());
    let _guard = Cleanup {
        child: None,
        ccs: ccs.ccs.clone(),
        mnt: ccs.mnt.clone(),
    };
    // 1. Root's line for the boot, naming the user: `mount -t fuse.ccsfs SRC MNT -o …`.
    let out = Command::new("mount")
        .args(["-t", "fuse.ccsfs", ccs_arg, mnt_arg, "-o"])
        .arg("defaults,noauto,nofail,_netdev,x-systemd.automount,setuid=nobody")
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount: {}{}",
        stdout(&out),
        stderr(&out)
    );
    // The mount is nobody's (no allow_other): nobody sees the profiles.
    let seen = as_nobody(&format!("stat -f -c %t {mnt_arg} && ls {mnt_arg}"));
    assert!(seen.status.success(), "{}", stderr(&seen));
    assert_eq!(stdout(&seen), "65735546\npersonal\nwork\n");
    // The daemon runs as nobody (every uid: real, effective, saved, fs).
    let status = Command::new(bin())
        .args(["--ccs-dir", ccs_arg, "status", mnt_arg])
        .output()
        .unwrap();
    let text = stdout(&status);
    let pid: i32 = text
        .split("daemon pid ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no daemon pid in status: {text}"));
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = proc_status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == NOBODY.to_string()),
        "{uid_line}"
    );
    // umount(8) ends it, and the daemon with it.
    let out = Command::new("umount").arg(mnt_arg).output().unwrap();
    assert!(out.status.success(), "umount: {}", stderr(&out));
    assert!(!is_mounted(&ccs.mnt));
    assert!(wait_until(
        Duration::from_secs(10),
        || common::process_gone(pid)
    ));

    // 2. A user's own line, `defaults,noauto,user,allow_other`: nobody runs mount(8) and
    //    umount(8) themselves. The line goes into a private mount namespace's /etc/fstab (a bind
    //    mount), with a fuse.conf that has user_allow_other, so the machine's stay untouched.
    user_line_through_mount_8(&ccs);
}

/// Kills what is left of a daemon serving `ccs` (a failed run inside a private namespace).
struct KillLeftovers(PathBuf);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        for (pid, _) in common::processes_mentioning(&self.0) {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn user_line_through_mount_8(ccs: &Ccs) {
    let (ccs_arg, mnt_arg) = (ccs.ccs.to_str().unwrap(), ccs.mnt.to_str().unwrap());
    let _leftovers = KillLeftovers(ccs.ccs.clone());
    let fstab = ccs.tmp.path().join("fstab");
    std::fs::write(
        &fstab,
        format!("{ccs_arg} {mnt_arg} fuse.ccsfs defaults,noauto,user,allow_other 0 0\n"),
    )
    .unwrap();
    let fuse_conf = ccs.tmp.path().join("fuse.conf");
    std::fs::write(&fuse_conf, "user_allow_other\n").unwrap();
    assert!(
        Path::new("/etc/fuse.conf").exists(),
        "/etc/fuse.conf is missing; install fuse3, which ships it"
    );
    let conf_bind = format!("mount --bind {} /etc/fuse.conf &&", fuse_conf.display());
    let as_user = format!(
        "mount {mnt_arg} && stat -f -c %t {mnt_arg} && ls {mnt_arg} && grep -F ' {mnt_arg} ' /proc/self/mountinfo && umount {mnt_arg} && echo unmounted && ! grep -F ' {mnt_arg} ' /proc/self/mountinfo"
    );
    let script = format!(
        "mount --bind {} /etc/fstab && {conf_bind} setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups sh -c \"{as_user}\"",
        fstab.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..3], ["65735546", "personal", "work"], "{text}");
    // mount(8) made it `user`'s way: nosuid, nodev, noexec; owned by nobody; allow_other.
    let entry = lines[3];
    assert!(entry.contains("nosuid,nodev,noexec"), "{entry}");
    assert!(entry.contains(&format!("user_id={NOBODY}")), "{entry}");
    assert!(entry.contains("allow_other"), "{entry}");
    assert_eq!(lines.get(4), Some(&"unmounted"), "{text}");
}

#[test]
fn completions_parse_and_name_the_subcommands() {
    let out = Command::new(bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let script = stdout(&out);
    for sub in [
        "mount",
        "unmount",
        "sessions",
        "install-service",
        "completions",
        "man",
    ] {
        assert!(script.contains(sub), "bash completion lacks {sub}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ccsfs.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", stderr(&check));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("install-service"), "{shell}");
    }
    let out = Command::new(bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn the_man_page_renders() {
    let out = Command::new(bin()).arg("man").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH ccsfs 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "no {section}");
    }
    assert!(page.contains("install\\-service") || page.contains("install-service"));
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["man", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for page in [
        "ccsfs.1",
        "ccsfs-mount.1",
        "ccsfs-install-service.1",
        "ccsfs-sessions-export.1",
    ] {
        assert!(tmp.path().join(page).is_file(), "{page} not written");
    }
    // Rendered by man(1) where it is installed (roff checked above otherwise).
    if common::prereq::on_path("man").is_some() {
        let out = Command::new("man")
            .arg("-l")
            .arg(tmp.path().join("ccsfs-mount.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(out.status.success(), "man -l: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("NAME") && text.contains("--foreground"),
            "{text}"
        );
    }
}
