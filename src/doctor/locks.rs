//! Doctor check of transcript locks whose owner is gone: on this host a dead (or recycled)
//! owner pid, from another host a lease that ran out (`unlock::is_live` decides, as for
//! `ccsfs status`). `--fix` removes such a lock file as `ccsfs unlock` does for a dead owner
//! (under the group's mutex, re-checked there), never a live owner's; a lock whose granting
//! daemon still runs is left to that daemon, which releases it as it sees the owner exit.

use super::{Ctx, Finding, quoted};
use crate::locks::{record, this_host};
use crate::procs;
use crate::unlock::is_live;

const ID: &str = "locks";

pub fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let here = this_host();
    let mut held = 0;
    let mut stale = 0;
    for g in crate::unlock::groups(ctx.profiles()) {
        let dir = ctx.layout.group_dir(&g);
        for (file, r) in record::list(&dir) {
            if is_live(&r) {
                held += 1;
                continue;
            }
            stale += 1;
            let daemon_runs = r.host == here && procs::is_alive(r.daemon);
            let mut f = Finding::warn(
                ID,
                format!(
                    "{g}/{}: locked by pid {} (profile {}) on {}, which is gone{}",
                    r.path,
                    r.owner.pid,
                    r.profile,
                    r.host.name,
                    if daemon_runs {
                        format!("; its daemon pid {} releases it", r.daemon.pid)
                    } else {
                        String::new()
                    }
                ),
                format!("`ccsfs unlock {}`", quoted(&dir.join(&r.path))),
            );
            if ctx.fix && !daemon_runs {
                match clear(&dir, &file, &r) {
                    Ok(true) => {
                        f.fixed = Some(format!(
                            "removed the lock on {g}/{} (pid {} was gone)",
                            r.path, r.owner.pid
                        ))
                    }
                    Ok(false) => f.message.push_str(" (changed meanwhile: left as it is)"),
                    Err(e) => f.message.push_str(&format!(" (--fix: {e})")),
                }
            }
            out.push(f);
        }
    }
    if stale == 0 {
        out.push(Finding::ok(
            ID,
            format!("no lock whose owner is gone ({held} held by live owners)"),
        ));
    }
}

/// Removes the lock file if it still holds the same dead owner's record (under the group's
/// mutex, so no daemon grants it meanwhile).
fn clear(
    group_dir: &std::path::Path,
    file: &std::path::Path,
    was: &crate::locks::policy::Record,
) -> std::io::Result<bool> {
    let _mutex = record::GroupMutex::lock(group_dir)?;
    match record::read(file) {
        Some(now) if now.owner == was.owner && now.file == was.file && !is_live(&now) => {
            record::remove(file);
            Ok(true)
        }
        _ => Ok(false),
    }
}
