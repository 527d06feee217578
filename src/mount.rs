//! Mount lifecycle: preflight checks, daemonizing behind a readiness pipe, serving until
//! SIGINT/SIGTERM or an external unmount, and unmounting (a dead daemon's mount included).

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fuser::{Config, MountOption, Session, SessionACL};

use crate::config::Profile;
use crate::fs::CcsFs;
use crate::fusermount;
use crate::layout::Layout;
use crate::logfile::LogFile;
use crate::mountpoint::{self, MountLock};
use crate::procs::pid_alive;
use crate::runfile::{RunFile, Served};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::layout::absolute_mount_point;

const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    pub mount_point: PathBuf,
    pub foreground: bool,
    pub allow_other: bool,
    /// Mount `noexec` (what an fstab `user` line implies).
    pub noexec: bool,
    pub threads: usize,
    pub locks: crate::locks::LockConfig,
    /// Use kernel passthrough when the kernel and privileges allow it.
    pub passthrough: bool,
    /// How many file nodes keep their own fd (default: from the open-file limit).
    pub fd_budget: Option<usize>,
}

/// FUSE worker threads of `ccsfs mount` unless `--threads` says otherwise.
pub const DEFAULT_THREADS: usize = crate::tunables::FUSE_THREADS;

impl MountOptions {
    /// What a plain `ccsfs mount MOUNT_POINT` uses: daemonized, private to the user,
    /// passthrough when possible, default locks. (The launchers mount with these too.)
    pub fn defaults(mount_point: PathBuf) -> MountOptions {
        MountOptions {
            mount_point,
            foreground: false,
            allow_other: false,
            noexec: false,
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
    match mount_entry(mount_point) {
        Some((fstype, _)) => MountState::Mounted(fstype),
        None => MountState::NotMounted,
    }
}

/// The options of the mount on `mount_point` (per-mount and filesystem options, comma
/// separated: `rw,nosuid,…,allow_other`), if it is mounted.
pub fn mount_options(mount_point: &Path) -> Option<String> {
    mount_entry(mount_point).map(|(_, opts)| opts)
}

/// The last mount on `mount_point` in this process's mount table: (type, options).
fn mount_entry(mount_point: &Path) -> Option<(String, String)> {
    let want = absolute_mount_point(mount_point);
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut found = None;
    for line in table.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() > sep + 1 && fields.len() > 5 && unescape_mountinfo(fields[4]) == want {
            let mut opts = fields[5].to_string();
            if let Some(sup) = fields.get(sep + 3) {
                opts = format!("{opts},{sup}");
            }
            found = Some((fields[sep + 1].to_string(), opts));
        }
    }
    found
}

/// The filesystem type of what answers at `path`, by `statfs`. Unlike `stat` of a mount root,
/// which the kernel may answer from cached attributes for a second after the daemon died,
/// `statfs` always asks the filesystem: a FUSE mount whose daemon is gone fails with ENOTCONN.
pub fn statfs_answer(path: &Path) -> std::io::Result<i64> {
    let st = rustix::fs::statfs(path).map_err(std::io::Error::from)?;
    Ok(st.f_type as i64)
}

/// Whether `mount_point` is a mount whose daemon is gone ("Transport endpoint is not connected").
pub fn is_dead(mount_point: &Path) -> bool {
    matches!(statfs_answer(mount_point), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN))
}

/// Every reason a mount would fail that can be told before trying, as one line with the fix.
pub fn preflight(mount_point: &Path) -> Result<(), String> {
    let mp = mount_point.display();
    if is_dead(mount_point) {
        return Err(format!(
            "{mp} is still mounted but its daemon is gone; run `ccsfs unmount {mp}` first"
        ));
    }
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

/// How long the daemon may take from its start to a mount that answers. Past it, it gives up
/// and leaves nothing mounted.
const STARTUP_LIMIT: Duration = crate::tunables::MOUNT_STARTUP_LIMIT;
/// How long `mount` waits for the daemon's word: a little longer than the daemon gives itself.
const STARTUP_WAIT: Duration = crate::tunables::MOUNT_STARTUP_WAIT;
/// Once the mount is gone (or a signal asked the daemon to stop), how long requests still being
/// handled may take before the daemon exits anyway.
const EXIT_GRACE: Duration = crate::tunables::DAEMON_EXIT_GRACE;
/// How often the daemon checks that its FUSE connection still exists.
const CONNECTION_CHECK: Duration = crate::tunables::CONNECTION_CHECK;

/// Mounts and serves. Daemonized (the default), returns in the parent once the mount answers.
///
/// A mount point the mount would serve itself is refused first. The mount point's lock
/// (`mountpoint::MountLock`) is taken before the point is checked for a mount and held until
/// the mount answers or has failed, so two `mount`s of one point give one mount. Every failure
/// reaches the caller as one line: the daemon sends its own over the readiness pipe, and when
/// it sends none (it died, or hangs) the command stops it and removes what it mounted.
pub fn mount(layout: &Layout, profiles: &[Profile], opts: &MountOptions) -> Result<(), String> {
    mountpoint::refuse_served(layout, profiles, &opts.mount_point)?;
    let abs = absolute_mount_point(&opts.mount_point);
    let lock = MountLock::take(layout, &abs, mountpoint::MOUNT_LOCK_WAIT)?;
    preflight(&opts.mount_point)?;
    if opts.foreground {
        init_logging(None);
        let startup = Arc::new(Startup::new(None, lock));
        return serve(layout, profiles, opts, &startup);
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
            let startup = Arc::new(Startup::new(Some(write_end.into()), lock));
            let result =
                become_daemon(layout).and_then(|()| serve(layout, profiles, opts, &startup));
            let code = match result {
                Ok(()) => 0,
                Err(e) => {
                    startup.fail(&e);
                    log::error!("{e}");
                    1
                }
            };
            std::process::exit(code);
        }
        child => {
            drop(write_end);
            let result = await_daemon(read_end, child, layout, &abs);
            drop(lock);
            result
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

/// The command's side of the start: the daemon's "OK", or its one-line error. Without either
/// (it died, or it hangs past `STARTUP_WAIT`) the daemon is stopped. After any failure, a FUSE
/// mount left at the mount point is detached: the mount lock is still held and the point was
/// not mounted under it, so such a mount can only be the daemon's.
fn await_daemon(
    read_end: OwnedFd,
    child: libc::pid_t,
    layout: &Layout,
    mount_point: &Path,
) -> Result<(), String> {
    let error = match read_until_eof(read_end, STARTUP_WAIT) {
        Some(msg) if msg.starts_with("OK") => return Ok(()),
        Some(msg) if !msg.trim().is_empty() => {
            if reap(child, Duration::from_secs(5)).is_none() {
                kill_and_reap(child);
            }
            msg.trim().replace('\n', " ")
        }
        Some(_) => {
            let how = reap(child, Duration::from_secs(2)).unwrap_or_else(|| {
                kill_and_reap(child);
                "closed its pipe".to_string()
            });
            format!(
                "the daemon (pid {child}) {how} before the mount was ready; see {}",
                layout.log_file().display()
            )
        }
        None => {
            kill_and_reap(child);
            format!(
                "the daemon (pid {child}) did not get {} ready within {}s, so it was stopped; see {}",
                mount_point.display(),
                STARTUP_WAIT.as_secs(),
                layout.log_file().display()
            )
        }
    };
    if let MountState::Mounted(t) = mount_state(mount_point)
        && t.starts_with("fuse")
    {
        let _ = do_unmount(mount_point, true);
    }
    Err(error)
}

/// Everything the daemon writes before it closes the pipe; None if that takes over `limit`.
fn read_until_eof(fd: OwnedFd, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return None;
        }
        if n <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match file.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(k) => bytes.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Some(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }
}

/// Waits up to `limit` for `child` to exit and reaps it: how it ended, in words, or None if it
/// still runs.
fn reap(child: libc::pid_t, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid on our own child.
        let r = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if r == child {
            return Some(if libc::WIFSIGNALED(status) {
                format!("was killed by signal {}", libc::WTERMSIG(status))
            } else {
                format!("exited with status {}", libc::WEXITSTATUS(status))
            });
        }
        if r < 0 {
            return Some("exited".into());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill_and_reap(child: libc::pid_t) {
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child, libc::SIGKILL) };
    reap(child, Duration::from_secs(5));
}

/// Detaches from the terminal and logs to `<ccs>/logs/ccsfs.log`, stdout and stderr included;
/// the log follows the path when the file is deleted or rotated (see `logfile`).
fn become_daemon(layout: &Layout) -> Result<(), String> {
    let log_path = layout.log_file();
    let log = LogFile::open(&log_path).map_err(|e| log_error(&log_path, &e))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    // SAFETY: plain fd plumbing in the freshly forked, single-threaded child.
    unsafe {
        libc::setsid();
        libc::dup2(null.as_raw_fd(), 0);
    }
    log.redirect_stdio().map_err(|e| log_error(&log_path, &e))?;
    let _ = std::env::set_current_dir("/");
    init_logging(Some(log));
    Ok(())
}

/// Why the daemon cannot use its log, naming the fix; when the file or its dir belongs to
/// someone else (say root, from an earlier `sudo ccsfs mount`), whom and how to take it back.
fn log_error(path: &Path, e: &std::io::Error) -> String {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    if e.kind() != std::io::ErrorKind::PermissionDenied {
        return format!("cannot open the daemon log {shown}: {e}");
    }
    let me = euid();
    let dir = path.parent().unwrap_or(Path::new("/"));
    let foreign = [path, dir].into_iter().find_map(|p| {
        std::fs::metadata(p)
            .ok()
            .filter(|m| m.uid() != me)
            .map(|m| (p, m.uid()))
    });
    match foreign {
        Some((p, uid)) => format!(
            "cannot open the daemon log {shown}: {e}; {} belongs to uid {uid}, not to you (uid {me}): take it back with `sudo chown -R {me} {}`, or remove it",
            p.display(),
            dir.display()
        ),
        None => format!(
            "cannot open the daemon log {shown}: {e}; give yourself write access to it and to {} (`chmod u+w`), or remove it",
            dir.display()
        ),
    }
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

/// The daemon's last check before it reports ready: the mount point shows a FUSE filesystem
/// that answers (statfs is a round trip to the session threads).
fn wait_until_answering(mount_point: &Path, deadline: Instant) -> Result<(), String> {
    loop {
        if matches!(statfs_answer(mount_point), Ok(t) if t == FUSE_SUPER_MAGIC) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} was mounted but does not answer",
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

/// The daemon's side of its start: the readiness pipe to the `mount` command that forked it
/// (none in the foreground) and its copy of the mount point's lock. Whichever comes first of
/// `ready` and `give_up` ends it; `fail` reports an error while the command still listens.
struct Startup {
    state: parking_lot::Mutex<StartupState>,
}

struct StartupState {
    pipe: Option<std::fs::File>,
    lock: Option<MountLock>,
    done: bool,
}

impl Startup {
    fn new(pipe: Option<std::fs::File>, lock: MountLock) -> Startup {
        Startup {
            state: parking_lot::Mutex::new(StartupState {
                pipe,
                lock: Some(lock),
                done: false,
            }),
        }
    }

    /// Tells the command that the mount answers, and lets the lock go. Err when the command no
    /// longer listens: it was killed before it could learn that the mount is there.
    fn ready(&self) -> Result<(), ()> {
        let mut st = self.state.lock();
        if std::mem::replace(&mut st.done, true) {
            // The startup watchdog gave up first; it ends the process.
            return Err(());
        }
        let delivered = match st.pipe.take() {
            Some(mut pipe) => pipe.write_all(b"OK\n").is_ok(),
            None => true,
        };
        st.lock = None;
        if delivered { Ok(()) } else { Err(()) }
    }

    /// Sends `error` (as one line) to the command if it still listens, and lets the lock go.
    fn fail(&self, error: &str) {
        let mut st = self.state.lock();
        st.done = true;
        if let Some(mut pipe) = st.pipe.take() {
            let _ = writeln!(pipe, "{}", error.replace('\n', " "));
        }
        st.lock = None;
    }

    /// For the startup watchdog: true (and the start is over) unless `ready` or `fail` came first.
    fn give_up(&self) -> bool {
        let mut st = self.state.lock();
        !std::mem::replace(&mut st.done, true)
    }

    fn is_done(&self) -> bool {
        self.state.lock().done
    }
}

/// Ends a start that takes longer than `STARTUP_LIMIT` (a mount that never answers, a hung
/// helper): detaches whatever was mounted, tells the command why, and exits.
fn watch_startup(startup: Arc<Startup>, mount_point: PathBuf) {
    let _ = std::thread::Builder::new()
        .name("ccsfs-startup".into())
        .spawn(move || {
            let deadline = Instant::now() + STARTUP_LIMIT;
            while Instant::now() < deadline {
                if startup.is_done() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !startup.give_up() {
                return;
            }
            if let MountState::Mounted(t) = mount_state(&mount_point)
                && t.starts_with("fuse")
            {
                let _ = do_unmount(&mount_point, true);
            }
            let error = format!(
                "the mount of {} was not ready within {}s, so the daemon gave up",
                mount_point.display(),
                STARTUP_LIMIT.as_secs()
            );
            if let Some(mut pipe) = startup.state.lock().pipe.take() {
                let _ = writeln!(pipe, "{error}");
            }
            log::error!("{error}");
            std::process::exit(1);
        });
}

/// Unmounts the daemon's own mount: normally, and when that fails (a program still has a file
/// or its cwd there), lazily, so that the mount point is free at once either way.
struct Detach {
    unmounter: parking_lot::Mutex<fuser::SessionUnmounter>,
    mount_point: PathBuf,
    privileged: bool,
}

impl Detach {
    fn detach(&self) {
        let mp = &self.mount_point;
        let normal = if self.privileged {
            self.unmounter.lock().unmount().map_err(|e| e.to_string())
        } else {
            fusermount::unmount(mp, false)
        };
        let Err(e) = normal else { return };
        if matches!(mount_state(mp), MountState::Mounted(t) if t.starts_with("fuse")) {
            let lazy = do_unmount(mp, true);
            log::warn!(
                "unmount of {} failed ({e}); detached it lazily",
                mp.display()
            );
            if let Err(e) = lazy {
                log::error!("lazy unmount of {} failed: {e}", mp.display());
            }
        }
    }
}

/// Ends the daemon for good once its mount is gone, even when a request handler is stuck: the
/// session normally ends by itself at once, and if it has not after `EXIT_GRACE`, the process
/// exits (closing /dev/fuse fails whatever was still waiting on it).
#[derive(Clone)]
struct Ender {
    run_file: PathBuf,
    armed: Arc<AtomicBool>,
}

impl Ender {
    fn arm(&self, why: String) {
        if self.armed.swap(true, Ordering::SeqCst) {
            return;
        }
        let run_file = self.run_file.clone();
        let _ = std::thread::Builder::new()
            .name("ccsfs-exit".into())
            .spawn(move || {
                std::thread::sleep(EXIT_GRACE);
                let _ = std::fs::remove_file(&run_file);
                // The log may be what hangs (a log dir on a dead network filesystem): the
                // line gets a moment, and the exit does not wait for it.
                let _ = std::thread::Builder::new().spawn(move || {
                    log::warn!(
                        "{why}, yet requests are still being handled after {}s; exiting",
                        EXIT_GRACE.as_secs()
                    );
                });
                std::thread::sleep(Duration::from_millis(200));
                std::process::exit(0);
            });
    }

    fn now(&self) -> ! {
        let _ = std::fs::remove_file(&self.run_file);
        std::process::exit(0);
    }
}

/// Notices the end of the FUSE connection (every unmount ends it, a lazy one once the last
/// user has left) even when no session thread is free to read the kernel's word: a poll of a
/// copy of the device fd, once a `CONNECTION_CHECK`, reports POLLERR then. (A blocking poll
/// would wake this thread on every request.)
fn watch_connection(device: OwnedFd, ender: Ender) {
    let _ = std::thread::Builder::new()
        .name("ccsfs-conn".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CONNECTION_CHECK);
                let mut pfd = libc::pollfd {
                    fd: device.as_raw_fd(),
                    events: 0,
                    revents: 0,
                };
                // SAFETY: one valid pollfd; a zero timeout never blocks.
                let n = unsafe { libc::poll(&mut pfd, 1, 0) };
                if n > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                    ender.arm("the mount is gone".into());
                    return;
                }
            }
        });
}

/// Serves until the mount goes away. Errors before the mount answers are the caller's to
/// report (`Startup::fail`).
fn serve(
    layout: &Layout,
    profiles: &[Profile],
    opts: &MountOptions,
    startup: &Arc<Startup>,
) -> Result<(), String> {
    crate::limits::raise_open_files();
    // Requests carry the caller's umask and the filesystem applies it; the daemon's own must
    // not be applied a second time by the backing filesystem.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0) };
    let signals = block_signals();
    let abs = absolute_mount_point(&opts.mount_point);
    watch_startup(startup.clone(), abs.clone());
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
    if opts.noexec {
        config.mount_options.push(MountOption::NoExec);
    }
    let privileged = euid() == 0;
    let live = fs.live();
    let notifier_slot = fs.notifier_slot();
    let passthrough = fs.passthrough_state();
    passthrough.set_wanted(opts.passthrough);
    let session = Session::new(fs, &opts.mount_point, &config);
    let mut session = session.map_err(|e| mount_error(&opts.mount_point, &e))?;
    let _ = notifier_slot.set(session.notifier());
    let run_file = layout.run_file(&abs);
    let record = {
        let (run_file, layout, passthrough) =
            (run_file.clone(), layout.clone(), passthrough.clone());
        let mount_point = abs.clone();
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
    let device = session
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("cannot watch the FUSE connection: {e}"))?;
    let detach = Arc::new(Detach {
        unmounter: parking_lot::Mutex::new(session.unmount_callable()),
        mount_point: abs.clone(),
        privileged,
    });
    let ender = Ender {
        run_file: run_file.clone(),
        armed: Arc::new(AtomicBool::new(false)),
    };
    let loop_thread = std::thread::Builder::new()
        .name("ccsfs-session".into())
        .spawn(move || session.run())
        .map_err(|e| e.to_string())?;
    {
        let (detach, ender, mount_point) = (detach.clone(), ender.clone(), abs.clone());
        let _ = std::thread::Builder::new()
            .name("ccsfs-signals".into())
            .spawn(move || {
                // Unmount first and log after: the log itself may hang.
                let mut sig = 0;
                // SAFETY: waits on the signals blocked above.
                unsafe { libc::sigwait(&signals, &mut sig) };
                detach.detach();
                ender.arm(format!("signal {sig}: unmounted {}", mount_point.display()));
                log::info!("signal {sig}: unmounted {}", mount_point.display());
                // A second signal: exit at once.
                // SAFETY: as above.
                unsafe { libc::sigwait(&signals, &mut sig) };
                ender.now();
            });
    }
    watch_connection(device, ender.clone());
    if let Err(e) = wait_until_answering(&abs, Instant::now() + STARTUP_LIMIT) {
        detach.detach();
        let _ = std::fs::remove_file(&run_file);
        return Err(e);
    }
    let abandoned = startup.ready().is_err();
    if opts.foreground && !abandoned {
        // Under the `Type=notify` unit: `systemctl --user start` returns now.
        if let Err(e) = crate::sdnotify::notify("READY=1") {
            log::warn!("cannot tell systemd that the mount is ready: {e}");
        }
    }
    if abandoned {
        log::warn!(
            "the `ccsfs mount` that started this daemon was gone before the mount was ready; unmounting {}",
            abs.display()
        );
        detach.detach();
        ender.arm("the mount was undone".into());
    }
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
    if abandoned {
        return Err("nobody waited for the mount any more, so it was undone".into());
    }
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
    if text.contains("write access to mountpoint") || text.contains("not owned by user") {
        return format!(
            "cannot mount {}: {text}; mount on a dir you own and can write to",
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
    let dead = is_dead(mount_point);
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

/// `unmount --if-dead` (the user unit's ExecStopPost): clears `mount_point` only when it is a
/// FUSE mount whose daemon is gone, never a live one. Ok(false) when there was nothing to clear.
pub fn unmount_if_dead(layout: &Layout, mount_point: &Path) -> Result<bool, String> {
    let fuse = matches!(mount_state(mount_point), MountState::Mounted(t) if t.starts_with("fuse"));
    let dead = is_dead(mount_point);
    if !(fuse && dead) {
        return Ok(false);
    }
    unmount(layout, mount_point, true).map(|()| true)
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
