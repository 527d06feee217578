//! `ccsfs status`: what is mounted where, by which daemon, and how each profile is routed,
//! including instance entries that a route hides (old CCS symlinks or real dirs).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::config::{ContinuityMode, Profile};
use crate::layout::Layout;
use crate::mount::{self, MountState};
use crate::routes::{ProfileRoutes, Route};
use crate::unlock::LockInfo;

/// What an instance entry hidden by a route is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HiddenKind {
    /// A symlink to the store the route serves (as CCS makes them).
    SameStore,
    /// A symlink that leads elsewhere (its target as written).
    Elsewhere(PathBuf),
    /// A real dir or file with data of its own.
    Data,
}

/// An instance entry with a routed name, which the route hides.
#[derive(Clone, Debug)]
pub struct Hidden<'a> {
    pub route: &'a Route,
    /// `<instance>/<routed name>`
    pub path: PathBuf,
    pub kind: HiddenKind,
}

/// The instance entries that `routes` hide (one `lstat` per route; CCS's own layout inside
/// `plugins/` is not hidden, see `routes::PLUGINS_PRIVATE`).
pub fn hidden(routes: &ProfileRoutes) -> Vec<Hidden<'_>> {
    let mut out = Vec::new();
    for r in &routes.routes {
        if !r.private.is_empty() {
            continue;
        }
        let path = routes.instance.join(r.name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let kind = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap_or_default();
            if target == r.target {
                HiddenKind::SameStore
            } else {
                HiddenKind::Elsewhere(target)
            }
        } else {
            HiddenKind::Data
        };
        out.push(Hidden {
            route: r,
            path,
            kind,
        });
    }
    out
}

/// An instance entry that a route hides, described for the user.
pub fn hidden_entries(routes: &ProfileRoutes) -> Vec<String> {
    hidden(routes)
        .into_iter()
        .map(|h| {
            let name = h.route.name;
            match h.kind {
                HiddenKind::SameStore => {
                    format!("{name} is a CCS symlink to the same store (left as it is)")
                }
                HiddenKind::Elsewhere(target) => format!(
                    "{name} is a symlink to {} (hidden by the route; `ccsfs migrate` moves its data into the store)",
                    target.display()
                ),
                HiddenKind::Data => format!(
                    "{name} holds old data in the instance (hidden by the route; `ccsfs migrate` moves it into the store)"
                ),
            }
        })
        .collect()
}

/// A profile's modes in a few words: `isolated`, `shared, group g`, `shared, group g, deeper`,
/// and `, profile-local` when it keeps its own commands, skills, agents, plugins and settings.
pub fn describe(p: &Profile) -> String {
    let mode = match (&p.group, p.continuity) {
        (Some(g), ContinuityMode::Deeper) if p.is_shared() => format!("shared, group {g}, deeper"),
        (Some(g), _) if p.is_shared() => format!("shared, group {g}"),
        _ => "isolated".to_string(),
    };
    match p.shared_resources {
        crate::config::SharedResources::Shared => mode,
        crate::config::SharedResources::ProfileLocal => mode + ", profile-local",
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
    /// Where the profiles shown come from: `daemon` (what the running daemon serves) or
    /// `config.yaml` (not mounted).
    pub source: &'static str,
    pub profiles: Vec<ProfileStatus>,
    /// How `config.yaml` differs from what the daemon serves (empty when they agree).
    pub differences: Vec<String>,
    /// Why the daemon is not serving `config.yaml` as it is (a malformed edit).
    pub config_error: Option<String>,
    pub locks: Vec<LockInfo>,
}

#[derive(serde::Serialize)]
pub struct ProfileStatus {
    pub name: String,
    /// Its name in the mount (the instance dir's name).
    pub dir: String,
    pub mode: String,
    pub instance: String,
    /// (routed name, store dir)
    pub routes: Vec<(String, String)>,
    /// Instance entries hidden by a route.
    pub notes: Vec<String>,
    /// Unix seconds until which the account is cooling down after hitting its limit (see
    /// `failover`), or None.
    pub cooling_until: Option<i64>,
    /// What Claude Code said when it hit the limit.
    pub cooling_message: Option<String>,
}

/// What `status` shows: the daemon's own view when it runs (its run file), else the config's.
/// `profiles` is what `config.yaml` says now (Err: it is malformed).
pub fn collect(
    layout: &Layout,
    profiles: Result<&[Profile], String>,
    mount_point: &Path,
) -> Status {
    let run = mount::run_file(layout, mount_point);
    let pid = run
        .as_ref()
        .map(|r| r.pid)
        .filter(|&p| crate::procs::pid_alive(p));
    let state = match mount::mount_state(mount_point) {
        MountState::NotMounted => "not mounted",
        MountState::Mounted(t) if !t.starts_with("fuse") => "foreign",
        MountState::Mounted(_) if pid.is_some() => "mounted",
        MountState::Mounted(_) => "dead",
    };
    let present = layout.shared_resources_present();
    let from_config: Vec<ProfileStatus> = profiles
        .as_ref()
        .map(|ps| {
            ps.iter()
                .map(|p| config_view(layout, p, &present))
                .collect()
        })
        .unwrap_or_default();
    let served = run.filter(|_| state == "mounted");
    let (source, shown, differences, config_error) = match served {
        Some(r) => {
            let shown: Vec<ProfileStatus> = r
                .served
                .iter()
                .map(|s| {
                    let routes = from_config
                        .iter()
                        .find(|c| c.dir == s.dir)
                        .map(|c| c.notes.clone())
                        .unwrap_or_default();
                    ProfileStatus {
                        name: s.name.clone(),
                        dir: s.dir.clone(),
                        mode: s.mode.clone(),
                        instance: layout.instance(&s.dir).display().to_string(),
                        routes: s.routes.clone(),
                        notes: routes,
                        cooling_until: None,
                        cooling_message: None,
                    }
                })
                .collect();
            let mut diff = Vec::new();
            match &profiles {
                Err(e) => diff.push(format!(
                    "config.yaml is malformed ({e}); the daemon keeps serving the last good config"
                )),
                Ok(_) => diff.extend(differences(&shown, &from_config)),
            }
            ("daemon", shown, diff, r.config_error)
        }
        None => (
            "config.yaml",
            from_config,
            Vec::new(),
            profiles.as_ref().err().cloned(),
        ),
    };
    let mut shown = shown;
    let cooling = crate::failover::cooling::load(&layout.ccs_dir);
    let now = jiff::Timestamp::now().as_second();
    for p in &mut shown {
        if let Some(c) = cooling.active(&p.dir, now) {
            p.cooling_until = Some(c.until);
            p.cooling_message = Some(c.message.clone());
        }
    }
    let profiles_for_locks: Vec<Profile> = profiles.map(<[Profile]>::to_vec).unwrap_or_default();
    Status {
        mount_point: mount_point.display().to_string(),
        state,
        daemon_pid: if state == "mounted" { pid } else { None },
        ccs_dir: layout.ccs_dir.display().to_string(),
        passthrough: state == "mounted" && mount::daemon_passthrough(layout, mount_point),
        source,
        profiles: shown,
        differences,
        config_error,
        locks: crate::unlock::list(layout, &profiles_for_locks),
    }
}

/// A profile as `config.yaml` describes it.
fn config_view(layout: &Layout, p: &Profile, present: &[&str]) -> ProfileStatus {
    let routes = ProfileRoutes::new(layout, p, present);
    ProfileStatus {
        name: p.name.clone(),
        dir: crate::layout::instance_dir_name(&p.name),
        mode: describe(p),
        instance: routes.instance.display().to_string(),
        routes: routes
            .routes
            .iter()
            .map(|r| (r.name.to_string(), r.target.display().to_string()))
            .collect(),
        notes: hidden_entries(&routes),
        cooling_until: None,
        cooling_message: None,
    }
}

/// How the config's profiles differ from the served ones, one line each.
fn differences(served: &[ProfileStatus], config: &[ProfileStatus]) -> Vec<String> {
    let mut out = Vec::new();
    for c in config {
        match served.iter().find(|s| s.dir == c.dir) {
            None => out.push(format!("{} is in config.yaml but not served yet", c.dir)),
            Some(s) if s.mode != c.mode || s.routes != c.routes => out.push(format!(
                "{} is served as {} but config.yaml says {}",
                c.dir, s.mode, c.mode
            )),
            Some(_) => {}
        }
    }
    for s in served {
        if !config.iter().any(|c| c.dir == s.dir) {
            out.push(format!("{} is served but no longer in config.yaml", s.dir));
        }
    }
    out
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
    if let Some(e) = &st.config_error {
        let _ = writeln!(s, "config:      {e}");
    }
    for d in &st.differences {
        let _ = writeln!(s, "differs:     {d}");
    }
    if st.profiles.is_empty() {
        let _ = writeln!(
            s,
            "profiles:    none (add one with `ccsfs profile add <name>`)"
        );
    } else {
        let _ = writeln!(s, "profiles ({}):", st.source);
    }
    for p in &st.profiles {
        let shown_as = if p.dir == p.name {
            String::new()
        } else {
            format!(", in the mount as {}", p.dir)
        };
        let _ = writeln!(s, "  {} ({}{shown_as})", p.name, p.mode);
        let _ = writeln!(s, "    everything else -> {}", p.instance);
        for (name, target) in &p.routes {
            let _ = writeln!(s, "    {name:<15} -> {target}");
        }
        for n in &p.notes {
            let _ = writeln!(s, "    note: {n}");
        }
    }
    if !st.profiles.is_empty() {
        let _ = writeln!(s, "limits:");
    }
    for p in &st.profiles {
        match (p.cooling_until, &p.cooling_message) {
            (Some(until), msg) => {
                let said = msg
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  {}: cooling down until {}{said}; `ccsfs run` fails over past it",
                    p.dir,
                    crate::failover::when(until)
                );
            }
            (None, _) => {
                let _ = writeln!(s, "  {}: ready", p.dir);
            }
        }
    }
    if st.locks.is_empty() {
        let _ = writeln!(s, "locks:       none");
    } else {
        let _ = writeln!(s, "locks:");
    }
    for l in &st.locks {
        let mut state = match (l.live, l.orphaned) {
            (true, false) => String::new(),
            (true, true) => " (owner exited; a write handle it opened is still open)".into(),
            (false, _) => " (owner gone: the next writer takes over)".into(),
        };
        if l.deleted {
            state.push_str(" (file removed while open)");
        }
        let _ = writeln!(
            s,
            "  {}/{}  profile {}, pid {} on {}, {}s{state}",
            l.group, l.file, l.profile, l.pid, l.host, l.age_secs
        );
    }
    s
}
