//! `ccsfs status`: what is mounted where, by which daemon, and how each profile is routed,
//! including instance entries that a route hides (old CCS symlinks or real dirs).

use std::fmt::Write;
use std::path::Path;

use crate::config::{ContinuityMode, Profile};
use crate::layout::Layout;
use crate::mount::{self, MountState};
use crate::routes::ProfileRoutes;

/// An instance entry that a route hides, described for the user.
pub fn hidden_entries(routes: &ProfileRoutes) -> Vec<String> {
    let mut out = Vec::new();
    for r in &routes.routes {
        let path = routes.instance.join(r.name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let what = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            if Path::new(&target) == r.target {
                format!(
                    "{} is a CCS symlink to the same store (left as it is)",
                    r.name
                )
            } else {
                format!(
                    "{} is a symlink to {target} (hidden by the route, left as it is)",
                    r.name
                )
            }
        } else {
            format!(
                "{} holds old data in the instance (hidden by the route, left as it is)",
                r.name
            )
        };
        out.push(what);
    }
    out
}

/// A profile's modes in a few words: `isolated`, `shared, group g`, `shared, group g, deeper`.
pub fn describe(p: &Profile) -> String {
    match (&p.group, p.continuity) {
        (Some(g), ContinuityMode::Deeper) if p.is_shared() => format!("shared, group {g}, deeper"),
        (Some(g), _) if p.is_shared() => format!("shared, group {g}"),
        _ => "isolated".to_string(),
    }
}

pub fn render(layout: &Layout, profiles: &[Profile], mount_point: &Path) -> String {
    let mut s = String::new();
    let mp = mount_point.display();
    let state = mount::mount_state(mount_point);
    let pid = mount::daemon_pid(layout, mount_point);
    let line = match (&state, pid) {
        (MountState::NotMounted, _) => format!("mount point: {mp} (not mounted)"),
        (MountState::Mounted(t), _) if !t.starts_with("fuse") => {
            format!("mount point: {mp} (a {t} mount, not ccsfs)")
        }
        (MountState::Mounted(_), Some(p)) if crate::procs::pid_alive(p) => {
            format!("mount point: {mp} (mounted, daemon pid {p})")
        }
        (MountState::Mounted(_), _) => {
            format!("mount point: {mp} (mounted, daemon not running: run `ccsfs unmount {mp}`)")
        }
    };
    let _ = writeln!(s, "{line}");
    let _ = writeln!(s, "ccs dir:     {}", layout.ccs_dir.display());
    let _ = writeln!(s, "passthrough: off");
    if profiles.is_empty() {
        let _ = writeln!(
            s,
            "profiles:    none (add one with `ccsfs profile add <name>`)"
        );
    } else {
        let _ = writeln!(s, "profiles:");
    }
    for p in profiles {
        let routes = ProfileRoutes::new(layout, p);
        let _ = writeln!(s, "  {} ({})", p.name, describe(p));
        let _ = writeln!(s, "    everything else -> {}", routes.instance.display());
        for r in &routes.routes {
            let _ = writeln!(s, "    {:<15} -> {}", r.name, r.target.display());
        }
        for h in hidden_entries(&routes) {
            let _ = writeln!(s, "    note: {h}");
        }
    }
    s
}
