//! The daemon's side of the trash bounds: a running list (id, bytes) and total per group
//! store, so that an insert costs a map insert and, when over a bound, the removal of the
//! oldest entries, never a scan (Claude's cleanup may delete hundreds of files in a burst).
//! A group's trash is scanned in full the first time it is used, and by the sweeper thread
//! at mount and every `tunables::TRASH_SCAN_PERIOD` (which also re-reads the settings and
//! notices what `ccsfs trash` or another daemon changed).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::store::{Trash, unix_now};
use crate::settings::{self, TrashSettings};

struct Group {
    /// id → bytes, oldest first.
    entries: BTreeMap<String, u64>,
    total: u64,
}

pub struct Keeper {
    ccs_dir: PathBuf,
    settings: Mutex<TrashSettings>,
    groups: Mutex<HashMap<PathBuf, Group>>,
}

impl Keeper {
    pub fn new(ccs_dir: &Path) -> Arc<Keeper> {
        Arc::new(Keeper {
            ccs_dir: ccs_dir.to_path_buf(),
            settings: Mutex::new(settings::load_or_default(ccs_dir).trash),
            groups: Mutex::default(),
        })
    }

    /// Runs the sweeper: every group store `groups` names now is scanned and swept at once,
    /// then every `period`.
    pub fn start_sweeper(
        self: &Arc<Self>,
        period: Duration,
        groups: impl Fn() -> Vec<PathBuf> + Send + 'static,
    ) {
        let me = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("ccsfs-trash".into())
            .spawn(move || {
                while let Some(k) = me.upgrade() {
                    k.reload_settings();
                    for g in groups() {
                        k.rescan(&g);
                    }
                    drop(k);
                    std::thread::sleep(period);
                }
            });
    }

    fn reload_settings(&self) {
        *self.settings.lock() = settings::load_or_default(&self.ccs_dir).trash;
    }

    /// Scans `group_dir`'s trash in full and sweeps it.
    fn rescan(&self, group_dir: &Path) {
        let trash = Trash::of_group(group_dir);
        if !trash.dir.exists() {
            self.groups.lock().remove(group_dir);
            return;
        }
        let (entries, partial) = match trash.sizes() {
            Ok(x) => x,
            Err(e) => {
                log::warn!("cannot read {}: {e}", trash.dir.display());
                return;
            }
        };
        for id in partial {
            let _ = trash.remove(&id);
        }
        let total = entries.iter().map(|e| e.1).sum();
        self.groups.lock().insert(
            group_dir.to_path_buf(),
            Group {
                entries: entries.into_iter().collect(),
                total,
            },
        );
        self.sweep(&trash);
    }

    /// A new entry `id` of `bytes` in `group_dir`'s trash: count it, and drop what the bounds
    /// no longer keep.
    pub fn added(&self, group_dir: &Path, id: String, bytes: u64) {
        let known = self.groups.lock().contains_key(group_dir);
        if !known {
            // The first use of this trash (or the sweeper has not got to it yet): one scan,
            // which finds the new entry too.
            self.reload_settings();
            self.rescan(group_dir);
            return;
        }
        if let Some(g) = self.groups.lock().get_mut(group_dir) {
            g.total += bytes;
            g.entries.insert(id, bytes);
        }
        self.sweep(&Trash::of_group(group_dir));
    }

    /// Removes the oldest entries while they are expired or the total is over the bound.
    fn sweep(&self, trash: &Trash) {
        let s = *self.settings.lock();
        let now = unix_now();
        let victims: Vec<String> = {
            let mut groups = self.groups.lock();
            let Some(g) = groups.get_mut(&trash.group_dir) else {
                return;
            };
            let mut out = Vec::new();
            while let Some((id, &bytes)) = g.entries.first_key_value() {
                let expired =
                    super::store::id_time(id).is_none_or(|t| now.saturating_sub(t) > s.keep_secs());
                if !expired && g.total <= s.max_bytes() {
                    break;
                }
                let id = id.clone();
                g.entries.remove(&id);
                g.total = g.total.saturating_sub(bytes);
                out.push(id);
            }
            out
        };
        if victims.is_empty() {
            return;
        }
        for id in &victims {
            if let Err(e) = trash.remove(id) {
                log::warn!("cannot purge {}/{id}: {e}", trash.dir.display());
            }
        }
        log::info!(
            "trash of {}: purged {} entr{} (older than {} days or over {} MiB)",
            trash.group_dir.display(),
            victims.len(),
            if victims.len() == 1 { "y" } else { "ies" },
            s.keep_days,
            s.max_mb
        );
    }
}
