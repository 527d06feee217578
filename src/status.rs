//! `ccsfs status`: what is mounted where, by which daemon, and how each profile is routed,
//! including instance entries that a route hides (old CCS symlinks or real dirs).

use std::fmt::Write;
use std::path::Path;

use crate::config::{ContinuityMode, Profile};
use crate::layout::Layout;
use crate::locks::unlock::LockInfo;
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

/// Everything `status` reports, as data (rendered as text, or as JSON with `--json`).
#[derive(serde::Serialize)]
pub struct Status {
    pub mount_point: String,
    /// `not mounted`, `mounted`, `dead` (mounted, daemon gone) or `foreign` (another fs).
    pub state: &'static str,
    pub daemon_pid: Option<i32>,
    pub ccs_dir: String,
    pub passthrough: bool,
    pub profiles: Vec<ProfileStatus>,
    pub locks: Vec<LockInfo>,
}

#[derive(serde::Serialize)]
pub struct ProfileStatus {
    pub name: String,
    pub mode: String,
    pub instance: String,
    /// (routed name, store dir)
    pub routes: Vec<(String, String)>,
    /// Instance entries hidden by a route.
    pub notes: Vec<String>,
}

pub fn collect(layout: &Layout, profiles: &[Profile], mount_point: &Path) -> Status {
    let pid = mount::daemon_pid(layout, mount_point).filter(|&p| crate::procs::pid_alive(p));
    let state = match mount::mount_state(mount_point) {
        MountState::NotMounted => "not mounted",
        MountState::Mounted(t) if !t.starts_with("fuse") => "foreign",
        MountState::Mounted(_) if pid.is_some() => "mounted",
        MountState::Mounted(_) => "dead",
    };
    let shown = profiles
        .iter()
        .map(|p| {
            let routes = ProfileRoutes::new(layout, p);
            ProfileStatus {
                name: p.name.clone(),
                mode: describe(p),
                instance: routes.instance.display().to_string(),
                routes: routes
                    .routes
                    .iter()
                    .map(|r| (r.name.to_string(), r.target.display().to_string()))
                    .collect(),
                notes: hidden_entries(&routes),
            }
        })
        .collect();
    Status {
        mount_point: mount_point.display().to_string(),
        state,
        daemon_pid: if state == "mounted" { pid } else { None },
        ccs_dir: layout.ccs_dir.display().to_string(),
        passthrough: state == "mounted" && mount::daemon_passthrough(layout, mount_point),
        profiles: shown,
        locks: crate::locks::unlock::list(layout, profiles),
    }
}

pub fn render(st: &Status) -> String {
    let mut s = String::new();
    let mp = &st.mount_point;
    let line = match (st.state, st.daemon_pid) {
        ("mounted", Some(p)) => format!("mount point: {mp} (mounted, daemon pid {p})"),
        ("dead", _) => {
            format!("mount point: {mp} (mounted, daemon not running: run `ccsfs unmount {mp}`)")
        }
        ("foreign", _) => format!("mount point: {mp} (another filesystem, not ccsfs)"),
        _ => format!("mount point: {mp} (not mounted)"),
    };
    let _ = writeln!(s, "{line}");
    let _ = writeln!(s, "ccs dir:     {}", st.ccs_dir);
    let _ = writeln!(
        s,
        "passthrough: {}",
        if st.passthrough { "on" } else { "off" }
    );
    if st.profiles.is_empty() {
        let _ = writeln!(
            s,
            "profiles:    none (add one with `ccsfs profile add <name>`)"
        );
    } else {
        let _ = writeln!(s, "profiles:");
    }
    for p in &st.profiles {
        let _ = writeln!(s, "  {} ({})", p.name, p.mode);
        let _ = writeln!(s, "    everything else -> {}", p.instance);
        for (name, target) in &p.routes {
            let _ = writeln!(s, "    {name:<15} -> {target}");
        }
        for n in &p.notes {
            let _ = writeln!(s, "    note: {n}");
        }
    }
    if st.locks.is_empty() {
        let _ = writeln!(s, "locks:       none");
    } else {
        let _ = writeln!(s, "locks:");
    }
    for l in &st.locks {
        let state = if l.live {
            ""
        } else {
            " (owner gone: the next writer takes over)"
        };
        let _ = writeln!(
            s,
            "  {}/{}  profile {}, pid {} on {}, {}s{state}",
            l.group, l.file, l.profile, l.pid, l.host, l.age_secs
        );
    }
    s
}
