//! End to end failover (issue #15) with the real Claude Code client: runs
//! `scripts/e2e-failover.sh` (an account over its quota hands the same session to the next
//! profile of its group, headless and interactive; cooling down and `ccsfs status`; the
//! refused chain; the `failover:` settings; the API-key variant; all accounts over quota; no
//! lock refusal on the way; all offline against `scripts/mock-anthropic.py`) with `CCSFS` set
//! to the binary under test, and asserts that it exits 0.
//!
//! Needs the claude CLI (`CLAUDE_BIN`, `claude` on PATH, or the npm cache dir that
//! scripts/test.sh installs it into: `$CCSFS_E2E_CACHE`, else
//! `${XDG_CACHE_HOME:-$HOME/.cache}/ccsfs-e2e`), tmux and python3. So it is ignored by a plain
//! `cargo test` and run by scripts/test.sh (`--include-ignored`); run without them, it fails
//! naming what is missing. This test never downloads anything.

mod common;

use common::prereq;

#[test]
#[ignore = "needs the claude CLI, tmux and python3; scripts/test.sh installs and runs it"]
fn failover_with_real_claude() {
    let claude = prereq::require_claude();
    prereq::require_tool("tmux", "tmux");
    prereq::require_tool("python3", "python3");
    prereq::run_e2e_script("e2e-failover.sh", &[("CLAUDE_BIN", &claude)]);
}
