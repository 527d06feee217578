//! Doctor check of the CCS integration: `CCS_CLAUDE_PATH` names the shim
//! (`<ccs>/ccsfs/bin/claude`, see `launch::shim`), and the shim exists and runs this ccsfs,
//! so that `ccs <profile>` goes through the mount. `--fix` writes a missing or outdated shim
//! (as `ccsfs shim` does); it cannot change the caller's environment.

use std::path::Path;

use super::{Ctx, Finding};
use crate::launch::shim;

const ID: &str = "ccs.shim";
const EXPORT: &str = "add `export CCS_CLAUDE_PATH=$(ccsfs shim)` to your shell profile";

pub fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    out.push(one(ctx));
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || match (a.canonicalize(), b.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
}

fn one(ctx: &Ctx) -> Finding {
    let want = shim::path(&ctx.layout);
    let set = std::env::var_os("CCS_CLAUDE_PATH").filter(|v| !v.is_empty());
    let Some(set) = set else {
        if super::config::ccs_on_path().is_none() {
            return Finding::ok(
                ID,
                "ccs not on PATH and CCS_CLAUDE_PATH not set: nothing runs claude around the mount",
            );
        }
        return Finding::warn(
            ID,
            "CCS_CLAUDE_PATH is not set: `ccs <profile>` runs claude on the instance dir, around the mount and its lock",
            EXPORT,
        );
    };
    let set = Path::new(&set);
    if !same_file(set, &want) {
        let what = if shim::is_shim_file(set) {
            "another CCS dir's ccsfs shim"
        } else {
            "not the ccsfs shim"
        };
        return Finding::warn(
            ID,
            format!(
                "CCS_CLAUDE_PATH is {} ({what}; this CCS dir's is {}): `ccs <profile>` may bypass the mount",
                set.display(),
                want.display()
            ),
            EXPORT,
        );
    }
    let problem = if !want.exists() {
        "does not exist"
    } else if !shim::is_current(&ctx.layout) {
        "runs another ccsfs binary than this one"
    } else {
        return Finding::ok(
            ID,
            format!("CCS_CLAUDE_PATH is the shim {}, current", want.display()),
        );
    };
    let mut f = Finding::warn(
        ID,
        format!(
            "CCS_CLAUDE_PATH is the shim {}, but it {problem}",
            want.display()
        ),
        "`ccsfs shim` (re)writes it",
    );
    if ctx.fix {
        match shim::install(&ctx.layout) {
            Ok(p) => f.fixed = Some(format!("wrote the shim {}", p.display())),
            Err(e) => f.message.push_str(&format!(" (--fix: {e})")),
        }
    }
    f
}
