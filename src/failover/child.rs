//! The supervised child process: passing on the signals sent to `ccsfs run`, ending an
//! interactive claude so that its lock is free, the exit status to exit with, and the held-back
//! stdout of a headless run.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How long an interactive claude has to exit after SIGTERM before it is killed.
const END_GRACE: Duration = Duration::from_secs(5);

/// The child being supervised (0: none), for the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A SIGTERM or SIGHUP that reached `ccsfs run` (0: none): it is passed on, and no failover
/// follows.
static STOP: AtomicI32 = AtomicI32::new(0);

/// Names the running child for the signal handler (None: no child runs).
pub fn set_current(child: Option<&Child>) {
    CHILD.store(child.map_or(0, |c| c.id() as i32), Ordering::SeqCst);
}

/// Whether `ccsfs run` was told to stop (SIGTERM, SIGHUP).
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst) != 0
}

pub fn emit(stdout: &[u8]) {
    if !stdout.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(stdout);
        let _ = out.flush();
    }
}

pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Ends an interactive claude: SIGTERM (it restores the terminal and exits), SIGKILL after
/// `END_GRACE`. Returns once it is reaped, so its lock is free for the next.
pub fn end(child: &mut Child) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + END_GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
}

/// SIGINT and SIGQUIT from the terminal reach the child directly (same process group), so
/// `ccsfs run` itself waits them out; SIGTERM and SIGHUP sent to it are passed on.
pub fn install_signal_handlers() {
    extern "C" fn pass_on(sig: libc::c_int) {
        if sig == libc::SIGTERM || sig == libc::SIGHUP {
            STOP.store(sig, Ordering::SeqCst);
            let pid = CHILD.load(Ordering::SeqCst);
            if pid > 0 {
                // SAFETY: kill(2) is async-signal-safe.
                unsafe { libc::kill(pid, sig) };
            }
        }
    }
    for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a handler that only touches atomics and calls kill(2); a caught signal is
        // reset to its default in the child at exec.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = pass_on as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}
