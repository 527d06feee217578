//! End to end with the real Claude Code client: runs `scripts/e2e-claude.sh` (sharing,
//! resuming across profiles, isolation, the single-writer lock under a live interactive
//! session, private files, remount; all offline against `scripts/mock-anthropic.py`) with
//! `CCSFS` set to the binary under test, and asserts that it exits 0.
//!
//! Runs only when a `claude` binary is already there: `CLAUDE_BIN`, `claude` on PATH, or the
//! script's npm cache dir (`$CCSFS_E2E_CACHE`, else `${XDG_CACHE_HOME:-$HOME/.cache}/ccsfs-e2e`)
//! populated by an earlier run of the script. It also needs tmux and python3 on PATH.
//! Otherwise it prints a one-line note and passes: this test never downloads anything.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

fn nonempty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The claude binary the script would use without installing anything, if any.
fn available_claude() -> Option<PathBuf> {
    if let Some(bin) = nonempty_env("CLAUDE_BIN") {
        return Some(PathBuf::from(bin));
    }
    if let Some(bin) = on_path("claude") {
        return Some(bin);
    }
    let cache = match nonempty_env("CCSFS_E2E_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let base = nonempty_env("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| nonempty_env("HOME").map(|h| Path::new(&h).join(".cache")))?;
            base.join("ccsfs-e2e")
        }
    };
    let bin = cache.join("node_modules/.bin/claude");
    executable(&bin).then_some(bin)
}

#[test]
fn real_claude_through_the_mount() {
    let Some(claude) = available_claude() else {
        eprintln!(
            "skipped: no claude binary (set CLAUDE_BIN, put claude on PATH, or run scripts/e2e-claude.sh once to install it)"
        );
        return;
    };
    for tool in ["tmux", "python3"] {
        if on_path(tool).is_none() {
            eprintln!("skipped: the end-to-end script needs {tool} on PATH");
            return;
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/e2e-claude.sh");
    eprintln!(
        "running {} with claude {}",
        script.display(),
        claude.display()
    );
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CCSFS", env!("CARGO_BIN_EXE_ccsfs"))
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/e2e-claude.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if !stderr.is_empty() {
        println!("stderr:\n{stderr}");
    }
    assert!(
        out.status.success(),
        "scripts/e2e-claude.sh failed ({}); its last line: {}",
        out.status,
        stdout.lines().last().unwrap_or("")
    );
}
