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

use common::prereq;

#[test]
#[ignore = "needs the claude and ccs CLIs, tmux and python3; scripts/test.sh installs and runs it"]
fn real_claude_through_the_mount() {
    let claude = prereq::require_claude();
    let ccs = prereq::require_ccs();
    prereq::require_tool("tmux", "tmux");
    prereq::require_tool("python3", "python3");
    prereq::run_e2e_script(
        "e2e-claude.sh",
        &[("CLAUDE_BIN", &claude), ("CCS_BIN", &ccs)],
    );
}
