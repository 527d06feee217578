//! Mount lifecycle: preflight checks, daemonizing behind a readiness pipe, serving until
//! SIGINT/SIGTERM or an external unmount, and unmounting (a dead daemon's mount included).

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fuser::{Config, MountOption, Session, SessionACL};

use crate::config::Profile;
use crate::fs::CcsFs;
use crate::fusermount;
use crate::layout::Layout;
use crate::logfile::LogFile;
use crate::procs::pid_alive;
use crate::runfile::{RunFile, Served};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    pub mount_point: PathBuf,
    pub foreground: bool,
    pub allow_other: bool,
    pub threads: usize,
    pub locks: crate::locks::LockConfig,
    /// Use kernel passthrough when the kernel and privileges allow it.
    pub passthrough: bool,
    /// How many file nodes keep their own fd (default: from the open-file limit).
    pub fd_budget: Option<usize>,
}

/// FUSE worker threads of `ccsfs mount` unless `--threads` says otherwise.
pub const DEFAULT_THREADS: usize = 4;

impl MountOptions {
    /// What a plain `ccsfs mount MOUNT_POINT` uses: daemonized, private to the user,
    /// passthrough when possible, default locks. (The launchers mount with these too.)
    pub fn defaults(mount_point: PathBuf) -> MountOptions {
        MountOptions {
            mount_point,
            foreground: false,
            allow_other: false,
            threads: DEFAULT_THREADS,
            locks: crate::locks::LockConfig::default(),
            passthrough: true,
            fd_budget: None,
        }
    }
}

/// What `/proc/self/mountinfo` says about a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountState {
    NotMounted,
    /// Mounted with this filesystem type (e.g. `fuse.ccsfs`).
    Mounted(String),
}

fn euid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() }
}

/// The absolute form of a mount point without touching the mount itself (a dead FUSE mount
/// fails every stat with ENOTCONN): canonical parent plus the last component.
pub fn absolute_mount_point(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .unwrap_or(parent.to_path_buf())
            .join(name),
        _ => abs,
    }
}

fn unescape_mountinfo(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

/// Looks `mount_point` up in this process's mount table (the last mount on it wins).
pub fn mount_state(mount_point: &Path) -> MountState {
    let want = absolute_mount_point(mount_point);
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return MountState::NotMounted;
    };
    let mut state = MountState::NotMounted;
    for line in table.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() > sep + 1 && fields.len() > 4 && unescape_mountinfo(fields[4]) == want {
            state = MountState::Mounted(fields[sep + 1].to_string());
        }
    }
    state
}

/// Every reason a mount would fail that can be told before trying, as one line with the fix.
pub fn preflight(mount_point: &Path) -> Result<(), String> {
    let mp = mount_point.display();
    match std::fs::metadata(mount_point) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(format!(
                "{mp} is still mounted but its daemon is gone; run `ccsfs unmount {mp}` first"
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "mount point {mp} does not exist; create it with `mkdir -p {mp}`"
            ));
        }
        Err(e) => return Err(format!("cannot use mount point {mp}: {e}")),
        Ok(m) if !m.is_dir() => {
            return Err(format!(
                "mount point {mp} is not a directory; pick a directory"
            ));
        }
        Ok(_) => {}
    }
    if let MountState::Mounted(fstype) = mount_state(mount_point) {
        return Err(format!(
            "{mp} is already mounted ({fstype}); run `ccsfs unmount {mp}` first"
        ));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse does not exist; load the fuse module (`modprobe fuse`) or give the container the device (`--device /dev/fuse`)".into());
    }
    if euid() != 0 {
        if fusermount::find().is_none() {
            return Err(fusermount::NOT_FOUND.into());
        }
        // fusermount3 opens /dev/fuse with the user's own rights; distributions make it 0666.
        // SAFETY: NUL-terminated path.
        if unsafe { libc::access(c"/dev/fuse".as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
            return Err("/dev/fuse is not readable and writable by you, so fusermount3 cannot mount; have root run `chmod 0666 /dev/fuse` (what the distribution's udev rule does)".into());
        }
    }
    Ok(())
}

/// Mounts and serves. Daemonized (the default), returns in the parent once the mount answers.
pub fn mount(layout: &Layout, profiles: &[Profile], opts: &MountOptions) -> Result<(), String> {
    preflight(&opts.mount_point)?;
    if opts.foreground {
        init_logging(None);
        return serve(layout, profiles, opts, None);
    }
    let (read_end, write_end) = pipe()?;
    // SAFETY: called from the single-threaded CLI before any thread is spawned.
    match unsafe { libc::fork() } {
        -1 => Err(format!(
            "cannot fork the daemon: {}",
            std::io::Error::last_os_error()
        )),
        0 => {
            drop(read_end);
            let code = match become_daemon(layout)
                .and_then(|()| serve(layout, profiles, opts, Some(write_end)))
            {
                Ok(()) => 0,
                Err(e) => {
                    log::error!("{e}");
                    1
                }
            };
            std::process::exit(code);
        }
        child => {
            drop(write_end);
            let mut msg = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut msg);
            match msg.strip_prefix("OK") {
                Some(_) => wait_until_answering(&opts.mount_point, child),
                None if msg.is_empty() => Err(format!(
                    "the daemon exited before the mount was ready; see {}",
                    layout.log_file().display()
                )),
                None => Err(msg.trim().to_string()),
            }
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!(
            "cannot create a pipe: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: both fds are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Detaches from the terminal and logs to `<ccs>/logs/ccsfs.log`, stdout and stderr included;
/// the log follows the path when the file is deleted or rotated (see `logfile`).
fn become_daemon(layout: &Layout) -> Result<(), String> {
    let log_path = layout.log_file();
    let log =
        LogFile::open(&log_path).map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    // SAFETY: plain fd plumbing in the freshly forked, single-threaded child.
    unsafe {
        libc::setsid();
        libc::dup2(null.as_raw_fd(), 0);
    }
    log.redirect_stdio()
        .map_err(|e| format!("cannot send output to {}: {e}", log_path.display()))?;
    let _ = std::env::set_current_dir("/");
    init_logging(Some(log));
    Ok(())
}

/// env_logger at `warn,ccsfs=info` (or `RUST_LOG`), to `log` when daemonized, else stderr.
fn init_logging(log: Option<LogFile>) {
    let env = env_logger::Env::default().default_filter_or("warn,ccsfs=info");
    let mut builder = env_logger::Builder::from_env(env);
    builder.format_timestamp_millis();
    if let Some(log) = log {
        log.follow_on_panic();
        builder.target(env_logger::Target::Pipe(Box::new(log)));
    }
    let _ = builder.try_init();
}

/// The parent's last check: the mount point now reports a FUSE filesystem, answered by the
/// daemon itself (statfs is a round trip).
fn wait_until_answering(mount_point: &Path, child: libc::pid_t) -> Result<(), String> {
    let c =
        std::ffi::CString::new(mount_point.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: `st` is written on success.
        if unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) } == 0 {
            // SAFETY: initialised by the successful call.
            if unsafe { st.assume_init() }.f_type == FUSE_SUPER_MAGIC {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the daemon (pid {child}) started but {} does not answer",
                mount_point.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local; the mask is inherited by threads spawned later.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn serve(
    layout: &Layout,
    profiles: &[Profile],
    opts: &MountOptions,
    ready: Option<OwnedFd>,
) -> Result<(), String> {
    let mut ready = ready.map(std::fs::File::from);
    let result = serve_inner(layout, profiles, opts, &mut ready);
    if let (Err(e), Some(pipe)) = (&result, ready.as_mut()) {
        let _ = writeln!(pipe, "{e}");
    }
    result
}

fn serve_inner(
    layout: &Layout,
    profiles: &[Profile],
    opts: &MountOptions,
    ready: &mut Option<std::fs::File>,
) -> Result<(), String> {
    crate::limits::raise_open_files();
    // Requests carry the caller's umask and the filesystem applies it; the daemon's own must
    // not be applied a second time by the backing filesystem.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0) };
    let signals = block_signals();
    let fs = CcsFs::new(
        layout,
        profiles,
        &opts.mount_point,
        opts.locks,
        opts.fd_budget,
    )
    .map_err(|e| format!("cannot prepare {}: {e}", layout.ccs_dir.display()))?;
    let mut config = Config::default();
    config.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = true;
    config.mount_options = vec![
        MountOption::FSName("ccsfs".into()),
        MountOption::Subtype("ccsfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    let privileged = euid() == 0;
    let live = fs.live();
    let notifier_slot = fs.notifier_slot();
    let passthrough = fs.passthrough_state();
    passthrough.set_wanted(opts.passthrough);
    let session = Session::new(fs, &opts.mount_point, &config);
    let mut session = session.map_err(|e| mount_error(&opts.mount_point, &e))?;
    let _ = notifier_slot.set(session.notifier());
    let run_file = layout.run_file(&absolute_mount_point(&opts.mount_point));
    let record = {
        let (run_file, layout, passthrough) =
            (run_file.clone(), layout.clone(), passthrough.clone());
        let mount_point = absolute_mount_point(&opts.mount_point);
        move |profiles: &[Profile], error: Option<&str>| {
            let rf = RunFile {
                pid: std::process::id() as i32,
                mount_point: mount_point.clone(),
                passthrough: passthrough.enabled(),
                served: served(&layout, profiles),
                config_error: error.map(str::to_string),
            };
            if let Err(e) = rf.write(&run_file) {
                log::warn!("cannot write {}: {e}", run_file.display());
            }
        }
    };
    live.set_on_change(Box::new(record));
    log::info!(
        "mounted {} (pid {}, {} profiles)",
        opts.mount_point.display(),
        std::process::id(),
        profiles.len()
    );
    let mut unmounter = session.unmount_callable();
    let mount_point = opts.mount_point.clone();
    let mut unmount = move || -> Result<(), String> {
        if privileged {
            unmounter.unmount().map_err(|e| e.to_string())
        } else {
            fusermount::unmount(&mount_point, false)
                .or_else(|_| fusermount::unmount(&mount_point, true))
        }
    };
    let loop_thread = std::thread::Builder::new()
        .name("ccsfs-session".into())
        .spawn(move || session.run())
        .map_err(|e| e.to_string())?;
    if let Some(mut pipe) = ready.take() {
        let _ = pipe.write_all(b"OK\n");
    }
    let mount_point = opts.mount_point.clone();
    let _ = std::thread::Builder::new()
        .name("ccsfs-signals".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: waits on the signals blocked above.
            unsafe { libc::sigwait(&signals, &mut sig) };
            log::info!("signal {sig}: unmounting {}", mount_point.display());
            if let Err(e) = unmount() {
                log::error!("unmount of {} failed: {e}", mount_point.display());
            }
        });
    // Follow config.yaml until the session ends.
    let watching = Arc::new(AtomicBool::new(true));
    {
        let watching = watching.clone();
        let _ = std::thread::Builder::new()
            .name("ccsfs-config".into())
            .spawn(move || {
                while watching.load(Ordering::Relaxed) {
                    std::thread::sleep(crate::fs::CONFIG_POLL);
                    live.check();
                }
            });
    }
    let result = loop_thread
        .join()
        .map_err(|_| "the session thread panicked".to_string())?;
    watching.store(false, Ordering::Relaxed);
    let _ = std::fs::remove_file(&run_file);
    log::info!("session ended");
    result.map_err(|e| format!("session ended with an error: {e}"))
}

fn mount_error(mount_point: &Path, e: &std::io::Error) -> String {
    let text = e.to_string().replace('\n', " ");
    let text = text.trim();
    if text.contains("allow_other") {
        return format!(
            "cannot mount {}: {text}; add `user_allow_other` to /etc/fuse.conf or drop `-o allow_other`",
            mount_point.display()
        );
    }
    format!("cannot mount {}: {text}", mount_point.display())
}

/// The profiles as the daemon serves them, for the run file.
fn served(layout: &Layout, profiles: &[Profile]) -> Vec<Served> {
    let present = layout.shared_resources_present();
    profiles
        .iter()
        .map(|p| {
            let routes = crate::routes::ProfileRoutes::new(layout, p, &present);
            Served {
                name: p.name.clone(),
                dir: crate::layout::instance_dir_name(&p.name),
                mode: crate::status::describe(p),
                routes: routes
                    .routes
                    .iter()
                    .map(|r| (r.name.to_string(), r.target.display().to_string()))
                    .collect(),
            }
        })
        .collect()
}

/// The mount points that daemons of this CCS dir have recorded (mounted or not).
pub fn recorded_mount_points(layout: &Layout) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(layout.ccs_dir.join("run")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| RunFile::read(&e.path()))
        .map(|r| r.mount_point)
        .collect()
}

/// The run file of the daemon serving `mount_point`, if it has one.
pub fn run_file(layout: &Layout, mount_point: &Path) -> Option<RunFile> {
    RunFile::read(&layout.run_file(&absolute_mount_point(mount_point)))
}

/// The daemon pid recorded for a mount point, if its run file exists.
pub fn daemon_pid(layout: &Layout, mount_point: &Path) -> Option<i32> {
    run_file(layout, mount_point).map(|r| r.pid)
}

/// Whether the daemon serving `mount_point` got kernel passthrough.
pub fn daemon_passthrough(layout: &Layout, mount_point: &Path) -> bool {
    run_file(layout, mount_point).is_some_and(|r| r.passthrough)
}

/// Unmounts `mount_point`, also when its daemon has died ("Transport endpoint is not connected").
pub fn unmount(layout: &Layout, mount_point: &Path, lazy: bool) -> Result<(), String> {
    let mp = mount_point.display();
    let abs = absolute_mount_point(mount_point);
    match mount_state(mount_point) {
        MountState::NotMounted => {
            let _ = std::fs::remove_file(layout.run_file(&abs));
            return Err(format!("{mp} is not mounted; nothing to do"));
        }
        MountState::Mounted(t) if !t.starts_with("fuse") => {
            return Err(format!(
                "{mp} is a {t} mount, not ccsfs; unmount it with umount"
            ));
        }
        MountState::Mounted(_) => {}
    }
    let dead = matches!(std::fs::metadata(mount_point), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN));
    let pid = daemon_pid(layout, mount_point);
    do_unmount(&abs, lazy || dead)?;
    if let Some(pid) = pid {
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = std::fs::remove_file(layout.run_file(&abs));
    Ok(())
}

fn do_unmount(mount_point: &Path, lazy: bool) -> Result<(), String> {
    let mp = mount_point.display();
    if euid() == 0 {
        let c = std::ffi::CString::new(mount_point.as_os_str().as_bytes())
            .map_err(|e| e.to_string())?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EBUSY) {
            return Err(format!(
                "{mp} is busy (a program has a file or its cwd there); close it, or use `ccsfs unmount --lazy {mp}`"
            ));
        }
        return Err(format!("cannot unmount {mp}: {err}"));
    }
    fusermount::unmount(mount_point, lazy).map_err(|text| {
        if text.contains("busy") {
            format!("{mp} is busy (a program has a file or its cwd there); close it, or use `ccsfs unmount --lazy {mp}`")
        } else {
            format!("cannot unmount {mp}: {text}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape_mountinfo("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape_mountinfo("/x\\134y"), PathBuf::from("/x\\y"));
    }

    #[test]
    fn root_is_mounted_and_a_temp_dir_is_not() {
        assert!(matches!(
            mount_state(Path::new("/")),
            MountState::Mounted(_)
        ));
        let d = tempfile::tempdir().unwrap();
        assert_eq!(mount_state(d.path()), MountState::NotMounted);
    }
}
