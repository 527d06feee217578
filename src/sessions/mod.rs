//! `ccsfs sessions`: list, export, import and fork Claude Code sessions straight from the CCS
//! dir (no mount needed). This module finds where sessions live: each profile's `projects/`
//! as its routes say (the instance's, or the group store's for a shared profile), and who
//! holds a session's single-writer lock (read from the group's lock files, never taken).

pub mod export;
pub mod fork;
pub mod import;
pub mod markdown;
pub mod model;
pub mod redaction;
pub mod scan;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::{self, Profile};
use crate::layout::Layout;
use crate::locks::record;
use crate::routes::{PROJECTS, ProfileRoutes};

/// One `projects/` dir to look in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    /// The backing `projects/` dir.
    pub projects: PathBuf,
    /// The group it belongs to (its lock files are in the group dir), or none (isolated).
    pub group: Option<String>,
    /// The profiles that see it.
    pub profiles: Vec<String>,
}

/// Which stores to look in.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub profile: Option<String>,
    pub group: Option<String>,
}

/// The profile named `name` (account name or instance dir name).
pub fn find_profile(layout: &Layout, name: &str) -> Result<Profile, String> {
    let profiles = config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string())?;
    profiles
        .iter()
        .find(|p| p.name == name)
        .or_else(|| profiles.iter().find(|p| p.dir_name() == name))
        .cloned()
        .ok_or_else(|| {
            format!("no profile `{name}` in config.yaml; `ccsfs profile list` shows them")
        })
}

/// The `projects/` dir a profile's sessions live in, as the mount routes it.
pub fn projects_dir(layout: &Layout, p: &Profile) -> PathBuf {
    ProfileRoutes::new(layout, p, &layout.shared_resources_present())
        .backing_for(std::ffi::OsStr::new(PROJECTS))
}

/// The stores in `scope`: one per distinct `projects/` dir, in config order.
pub fn stores(layout: &Layout, scope: &Scope) -> Result<Vec<Store>, String> {
    if let Some(g) = &scope.group {
        return Ok(vec![Store {
            projects: layout.group_projects(g),
            group: Some(g.clone()),
            profiles: Vec::new(),
        }]);
    }
    let profiles = match &scope.profile {
        Some(name) => vec![find_profile(layout, name)?],
        None => config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string())?,
    };
    let mut out: Vec<Store> = Vec::new();
    for p in &profiles {
        let projects = projects_dir(layout, p);
        let group = p.group.clone().filter(|_| p.is_shared());
        match out.iter_mut().find(|s| s.projects == projects) {
            Some(s) => s.profiles.push(p.name.clone()),
            None => out.push(Store {
                projects,
                group,
                profiles: vec![p.name.clone()],
            }),
        }
    }
    Ok(out)
}

/// Who holds a session's single-writer lock.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    pub profile: String,
    pub pid: u32,
    pub host: String,
    /// The owner has exited and the lock lasts only until its granting daemon sees the last
    /// write handle it opened closed (within `tunables::LOCK_DRAIN_WAIT`, as a rule).
    #[serde(skip)]
    pub draining: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {} on {})", self.profile, self.pid, self.host)
    }
}

/// The live locks of a group store, by the locked file's inode number.
pub fn holders(
    layout: &Layout,
    group: &str,
) -> HashMap<u64, (crate::locks::policy::FileId, Holder)> {
    record::list(&layout.group_dir(group))
        .into_iter()
        .filter(|(_, r)| crate::unlock::is_live(r))
        .map(|(_, r)| {
            (
                r.file.ino,
                (
                    r.file,
                    Holder {
                        profile: r.profile.clone(),
                        pid: r.owner.pid,
                        host: r.host.name.clone(),
                        draining: r.host == crate::locks::this_host()
                            && !crate::procs::is_alive(r.owner),
                    },
                ),
            )
        })
        .collect()
}

/// The holder of the file with metadata `m`, among a store's `holders`.
pub fn holder_of(
    holders: &HashMap<u64, (crate::locks::policy::FileId, Holder)>,
    m: &std::fs::Metadata,
) -> Option<Holder> {
    let (id, h) = holders.get(&m.ino())?;
    let btime = m
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64);
    let me = crate::locks::policy::FileId {
        ino: m.ino(),
        btime,
    };
    id.same_file(&me).then(|| h.clone())
}

/// A session found on disk.
#[derive(Clone, Debug)]
pub struct Found {
    pub id: String,
    /// `<projects>/<dir>/<id>.jsonl`
    pub file: PathBuf,
    pub store: Store,
}

impl Found {
    /// `<projects>/<dir>`
    pub fn project_dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }
}

/// Finds session `id` (or a unique prefix of one) in `scope`.
pub fn find_session(layout: &Layout, scope: &Scope, id: &str) -> Result<Found, String> {
    if id.is_empty() || id.contains('/') {
        return Err(format!(
            "`{id}` is not a session id; `ccsfs sessions list` shows them"
        ));
    }
    let mut hits = Vec::new();
    let mut exacts: Vec<Found> = Vec::new();
    for store in stores(layout, scope)? {
        let Ok(dirs) = std::fs::read_dir(&store.projects) else {
            continue;
        };
        for d in dirs.flatten() {
            let exact = d.path().join(format!("{id}.jsonl"));
            if exact.is_file() {
                exacts.push(Found {
                    id: id.to_string(),
                    file: exact,
                    store: store.clone(),
                });
                continue;
            }
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name();
                let Some(sid) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")) else {
                    continue;
                };
                if sid.starts_with(id) && f.path().is_file() {
                    hits.push(Found {
                        id: sid.to_string(),
                        file: f.path(),
                        store: store.clone(),
                    });
                }
            }
        }
    }
    match exacts.len() {
        0 => {}
        1 => return Ok(exacts.remove(0)),
        _ => {
            let mut where_: Vec<String> = exacts
                .iter()
                .flat_map(|f| f.store.profiles.clone())
                .collect();
            where_.dedup();
            return Err(format!(
                "session {id} is in {} places (profiles {}); pick one with --profile",
                exacts.len(),
                where_.join(", ")
            ));
        }
    }
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => Err(format!(
            "no session `{id}` here; `ccsfs sessions list` shows the sessions"
        )),
        n => Err(format!(
            "`{id}` matches {n} sessions; give more of the id (`ccsfs sessions list`)"
        )),
    }
}

/// Whether stderr is a terminal (progress is shown only there).
pub fn progress_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
