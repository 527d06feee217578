//! Following `config.yaml` while mounted. `Live` holds the current `Topology`; `check` notices
//! a changed file (or, with no config, a changed `instances/` dir) by its stat, re-reads it,
//! and swaps in the next topology: an added account appears, a removed one disappears from the
//! mount root (its instance dir is never made again), and a changed mode, group or continuity
//! re-routes new lookups. Nodes the kernel holds keep their files, so nothing in flight is
//! lost. A malformed edit keeps the last good config and logs one line.
//!
//! `check` runs from the watcher thread every `POLL` and from a lookup of an unknown name in
//! the mount root (so `ccs auth create x && ls <mount>/x` needs no wait).

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::config::{self, Profile};
use crate::layout::Layout;

use super::coherence::Coherence;
use super::inodes::{InodeTable, Key, ROOT_ID};
use super::topology::Topology;

/// How often the watcher looks at `config.yaml`: changes apply within a second (see
/// `tunables::CONFIG_POLL`).
pub const POLL: Duration = crate::tunables::CONFIG_POLL;

/// What the daemon serves, for its run file: the profiles, and why the file on disk is not
/// what is served (a malformed edit).
pub type OnChange = Box<dyn Fn(&[Profile], Option<&str>) + Send + Sync>;

/// The identity and version of `config.yaml` and `instances/` as stat shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stamp {
    config: Option<(u64, u64, i64, i64, i64, i64, u64)>,
    instances: Option<(u64, u64, i64, i64)>,
}

fn stamp(layout: &Layout) -> Stamp {
    let config = std::fs::metadata(layout.config_file()).ok().map(|m| {
        (
            m.dev(),
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.size(),
        )
    });
    let instances = std::fs::metadata(layout.instances_dir())
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec()));
    Stamp { config, instances }
}

struct State {
    stamp: Stamp,
    profiles: Vec<Profile>,
    error: Option<String>,
}

pub struct Live {
    layout: Layout,
    topo: ArcSwap<Topology>,
    inodes: Arc<InodeTable>,
    coherence: Arc<Coherence>,
    state: Mutex<State>,
    on_change: Mutex<Option<OnChange>>,
}

impl Live {
    pub fn new(
        layout: Layout,
        profiles: Vec<Profile>,
        topo: Topology,
        inodes: Arc<InodeTable>,
        coherence: Arc<Coherence>,
    ) -> Live {
        Live {
            state: Mutex::new(State {
                stamp: stamp(&layout),
                profiles,
                error: None,
            }),
            layout,
            topo: ArcSwap::from_pointee(topo),
            inodes,
            coherence,
            on_change: Mutex::new(None),
        }
    }

    /// The topology now. Cheap (no lock, no refcount); hold it for one operation.
    pub fn get(&self) -> arc_swap::Guard<Arc<Topology>> {
        self.topo.load()
    }

    /// Called with what is served after every change (and once right away).
    pub fn set_on_change(&self, f: OnChange) {
        {
            let st = self.state.lock();
            f(&st.profiles, st.error.as_deref());
        }
        *self.on_change.lock() = Some(f);
    }

    /// Re-reads the config if it changed on disk and applies it. Returns whether the served
    /// profiles changed.
    pub fn check(&self) -> bool {
        let mut st = self.state.lock();
        let now = stamp(&self.layout);
        if now == st.stamp {
            return false;
        }
        st.stamp = now;
        let profiles = match config::load_profiles(&self.layout.ccs_dir) {
            Ok(p) => p,
            Err(e) => {
                let msg = e.to_string();
                if st.error.as_deref() != Some(&msg) {
                    log::warn!("{msg} (keeping the last good config until it is fixed)");
                    st.error = Some(msg);
                    self.notify(&st);
                }
                return false;
            }
        };
        let had_error = st.error.take().is_some();
        if profiles == st.profiles {
            if had_error {
                log::info!("config.yaml is valid again");
                self.notify(&st);
            }
            return false;
        }
        let old = self.topo.load_full();
        let new = match Topology::build(&self.layout, &profiles, Some(&old)) {
            Ok(t) => t,
            Err(e) => {
                let msg =
                    format!("cannot apply the changed config: {e}; keeping the last good one");
                log::warn!("{msg}");
                st.error = Some(msg);
                self.notify(&st);
                return false;
            }
        };
        log::info!("config.yaml changed: {}", describe_change(&old, &new));
        self.topo.store(Arc::new(new));
        self.invalidate(&old, &self.topo.load());
        st.profiles = profiles;
        self.notify(&st);
        true
    }

    fn notify(&self, st: &State) {
        if let Some(f) = self.on_change.lock().as_ref() {
            f(&st.profiles, st.error.as_deref());
        }
    }

    /// Drops the kernel's cached entries that the change made wrong: removed profiles at the
    /// mount root, and the routed names of re-routed profiles.
    fn invalidate(&self, old: &Topology, new: &Topology) {
        let mut entries: Vec<(u64, OsString)> = Vec::new();
        for (i, o) in old.views.iter().enumerate() {
            let n = &new.views[i];
            if o.active && !n.active {
                entries.push((ROOT_ID, OsString::from(&o.dir)));
                continue;
            }
            if !(o.active && n.active) || o.routes.routes == n.routes.routes {
                continue;
            }
            let Ok(m) = std::fs::metadata(&o.routes.instance) else {
                continue;
            };
            let key = Key {
                view: i as u32 + 1,
                dev: m.dev(),
                ino: m.ino(),
            };
            let Some(root) = self.inodes.find(key) else {
                continue;
            };
            let names: std::collections::BTreeSet<&str> = o
                .routes
                .routes
                .iter()
                .chain(&n.routes.routes)
                .map(|r| r.name)
                .collect();
            for name in names {
                entries.push((root, OsStr::new(name).to_os_string()));
            }
        }
        self.coherence.forget_entries(entries);
    }
}

/// "added a, b; removed c; re-routed d" for the log.
fn describe_change(old: &Topology, new: &Topology) -> String {
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut rerouted = Vec::new();
    for (i, n) in new.views.iter().enumerate() {
        match old.views.get(i) {
            Some(o) if o.active && !n.active => removed.push(n.dir.as_str()),
            Some(o) if !o.active && n.active => added.push(n.dir.as_str()),
            None if n.active => added.push(n.dir.as_str()),
            Some(o) if o.active && n.active && o.routes != n.routes => {
                rerouted.push(n.dir.as_str())
            }
            _ => {}
        }
    }
    let mut parts = Vec::new();
    for (what, list) in [
        ("added", added),
        ("removed", removed),
        ("re-routed", rerouted),
    ] {
        if !list.is_empty() {
            parts.push(format!("{what} {}", list.join(", ")));
        }
    }
    if parts.is_empty() {
        "nothing served changed".into()
    } else {
        parts.join("; ")
    }
}
