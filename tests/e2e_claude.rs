//! End to end with the real Claude Code client: runs `scripts/e2e-claude.sh` (sharing,
//! resuming across profiles, isolation, the single-writer lock under a live interactive
//! session, private files, remount; all offline against `scripts/mock-anthropic.py`) with
//! `CCSFS` set to the binary under test, and asserts that it exits 0.
//!
//! Needs the claude CLI (`CLAUDE_BIN`, `claude` on PATH, or the npm cache dir that
//! scripts/test.sh and the script install it into: `$CCSFS_E2E_CACHE`, else
//! `${XDG_CACHE_HOME:-$HOME/.cache}/ccsfs-e2e`), the ccs CLI found the same way (the script's
//! `ccs <profile>` steps), tmux and python3. So it is ignored by a plain `cargo test` and run by
//! scripts/test.sh (`--include-ignored`); run without them, it fails naming what is missing.
//! This test never downloads anything.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::prereq;

#[test]
#[ignore = "needs the claude and ccs CLIs, tmux and python3; scripts/test.sh installs and runs it"]
fn real_claude_through_the_mount() {
    let claude = prereq::require_claude();
    let ccs = prereq::require_ccs();
    prereq::require_tool("tmux", "tmux");
    prereq::require_tool("python3", "python3");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/e2e-claude.sh");
    eprintln!(
        "running {} with claude {} and ccs {}",
        script.display(),
        claude.display(),
        ccs.display()
    );
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CCSFS", env!("CARGO_BIN_EXE_ccsfs"))
        .env("CLAUDE_BIN", &claude)
        .env("CCS_BIN", &ccs)
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
