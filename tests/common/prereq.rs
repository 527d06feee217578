//! Prerequisites beyond FUSE itself: root, a `/dev/fuse` open to users, the real `claude` and
//! `ccs` clients from npm, and tools such as tmux. No test passes without testing:
//!
//! - A test that needs one of these is marked `#[ignore = "needs …; scripts/test.sh runs it"]`,
//!   so a plain `cargo test` reports it as ignored (visibly, with the reason), never as ok.
//! - `scripts/test.sh` installs what it can (the npm clients into the e2e cache, apt packages
//!   as root) and runs every test with `--include-ignored`. When it cannot give a test its
//!   prerequisite (not root, or a 0600 `/dev/fuse`), it leaves that test out of the run and
//!   lists it as ignored instead, and its closing line counts it under "skipped"; with
//!   `CI=true` it leaves nothing out.
//! - Once a test runs, its `require_*` calls panic when the prerequisite is missing, with one
//!   line naming the fix. So under `CI=true`, or with `--include-ignored` by hand, a missing
//!   prerequisite is a failure, not a silent pass.
//!
//! The ignore reasons are read by `scripts/test.sh` and `scripts/unprivileged-tests.sh`:
//! a reason that starts with "needs root" marks a root-only test, and one that mentions
//! "/dev/fuse" a test that needs `/dev/fuse` open to users.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Fails the running test: `what` is missing, `fix` says how to provide it.
#[track_caller]
pub fn missing(what: &str, fix: &str) -> ! {
    let ci = if std::env::var("CI").as_deref() == Ok("true") {
        " (CI=true: every prerequisite must be there)"
    } else {
        ""
    };
    panic!(
        "missing prerequisite: {what}; {fix}{ci}. This test is #[ignore]d for that reason: \
         a plain `cargo test` skips it, and scripts/test.sh installs what it can and lists \
         the rest as skipped"
    );
}

pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The test acts as root (switches users, mounts namespaces, chowns).
#[track_caller]
pub fn require_root() {
    if !is_root() {
        missing("root", "run it as root (sudo scripts/test.sh)");
    }
}

/// `/dev/fuse` is open to every user, so that an ordinary user can mount through fusermount3.
#[track_caller]
pub fn require_user_fuse() {
    let mode = std::fs::metadata("/dev/fuse")
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    if mode & 0o006 != 0o006 {
        missing(
            &format!("a /dev/fuse open to users (it is {mode:o})"),
            "chmod 0666 /dev/fuse, as distributions set it",
        );
    }
}

fn executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `name` as found on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

fn nonempty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A tool the test runs, found on PATH.
#[track_caller]
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        missing(
            &format!("{name} on PATH"),
            &format!("install it (apt-get install {package})"),
        )
    })
}

/// Where scripts/test.sh and scripts/e2e-claude.sh install the npm clients:
/// `$CCSFS_E2E_CACHE`, else `${XDG_CACHE_HOME:-$HOME/.cache}/ccsfs-e2e`.
pub fn e2e_cache() -> Option<PathBuf> {
    if let Some(dir) = nonempty_env("CCSFS_E2E_CACHE") {
        return Some(PathBuf::from(dir));
    }
    let base = nonempty_env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| nonempty_env("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("ccsfs-e2e"))
}

/// An npm client: `$<env>` (which must be executable), else `name` on PATH, else the e2e
/// cache's `node_modules/.bin`.
#[track_caller]
fn npm_client(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(bin) = nonempty_env(env) {
        if !executable(Path::new(&bin)) {
            missing(
                &format!("{env}={bin} as an executable"),
                &format!("point {env} at the real {name}, or unset it"),
            );
        }
        return Some(PathBuf::from(bin));
    }
    if let Some(bin) = on_path(name) {
        return Some(bin);
    }
    let bin = e2e_cache()?.join("node_modules/.bin").join(name);
    executable(&bin).then_some(bin)
}

/// The real Claude Code CLI (`@anthropic-ai/claude-code`): `CLAUDE_BIN`, `claude` on PATH, or
/// the e2e cache.
#[track_caller]
pub fn require_claude() -> PathBuf {
    npm_client("CLAUDE_BIN", "claude").unwrap_or_else(|| {
        missing(
            "the claude CLI",
            "run scripts/test.sh (it installs @anthropic-ai/claude-code into $CCSFS_E2E_CACHE), \
             or set CLAUDE_BIN",
        )
    })
}

/// The real CCS CLI (`@kaitranntt/ccs`) and the node that runs it: `CCS_BIN`, `ccs` on PATH, or
/// the e2e cache.
#[track_caller]
pub fn require_ccs() -> PathBuf {
    require_tool("node", "nodejs");
    npm_client("CCS_BIN", "ccs").unwrap_or_else(|| {
        missing(
            "the ccs CLI",
            "run scripts/test.sh (it installs @kaitranntt/ccs into $CCSFS_E2E_CACHE), or set CCS_BIN",
        )
    })
}

/// Runs `scripts/<script>` from the repo with bash, `CCSFS` set to the binary under test and
/// `envs` (the clients' paths), prints what it printed, and asserts that it exited 0 (naming
/// its last line, the `N passed, N failed` summary, when it did not).
pub fn run_e2e_script(script: &str, envs: &[(&str, &Path)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    eprintln!("running {} with {envs:?}", path.display());
    let out = std::process::Command::new("bash")
        .arg(&path)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CCSFS", env!("CARGO_BIN_EXE_ccsfs"))
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if !stderr.is_empty() {
        println!("stderr:\n{stderr}");
    }
    assert!(
        out.status.success(),
        "scripts/{script} failed ({}); its last line: {}",
        out.status,
        stdout.lines().last().unwrap_or("")
    );
}
