//! Doctor check of modes: each profile's instance dir and each group store dir
//! (`<ccs>/shared/context-groups/<g>`, its `projects/`, `continuity/` and continuity dirs)
//! open to nobody but the owner (0700), and each `.credentials.json` 0600. `--fix` chmods
//! what is wider (safe: the owner keeps every right).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::{Ctx, Finding, quoted, shown};
use crate::routes::CONTINUITY_DIRS;

/// The paths to check, each with the mode it should have.
fn paths(ctx: &Ctx) -> Vec<(PathBuf, u32)> {
    let l = &ctx.layout;
    let mut out = Vec::new();
    for p in ctx.profiles() {
        let inst = l.instance(&p.name);
        out.push((inst.clone(), 0o700));
        out.push((inst.join(".credentials.json"), 0o600));
    }
    for g in crate::unlock::groups(ctx.profiles()) {
        let dir = l.group_dir(&g);
        out.push((dir.clone(), 0o700));
        out.push((l.group_projects(&g), 0o700));
        out.push((dir.join("continuity"), 0o700));
        for d in CONTINUITY_DIRS {
            out.push((l.group_continuity(&g, d), 0o700));
        }
    }
    out
}

pub fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let mut checked = 0;
    let mut wrong = 0;
    for (path, want) in paths(ctx) {
        // A symlink's own mode means nothing; what it leads to is checked where it is served.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        checked += 1;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            continue;
        }
        wrong += 1;
        let what = if want == 0o600 { "credentials" } else { "dir" };
        let mut f = Finding::warn(
            "modes",
            format!(
                "{} is {mode:04o}: this {what} should be {want:04o} (others can read it)",
                shown(ctx, &path)
            ),
            format!("`chmod {want:04o} {}`", quoted(&path)),
        );
        if ctx.fix {
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want)) {
                Ok(()) => f.fixed = Some(format!("chmod {want:04o} {}", path.display())),
                Err(e) => f.message.push_str(&format!(" (--fix: {e})")),
            }
        }
        out.push(f);
    }
    if wrong == 0 {
        out.push(Finding::ok(
            "modes",
            format!("{checked} instance/store dirs and credentials files are private"),
        ));
    }
}
