//! A trash for shared deletions: a transcript unlinked (or replaced by a rename) in a group
//! store through the mount goes to `<group>/.ccsfs/trash/` instead of away, because one
//! account's start-up cleanup would otherwise delete the whole group's history. `store` is
//! one group's trash on disk, `keeper` the daemon's bounds; this module is `ccsfs trash
//! list|restore|purge`, which work on the CCS dir directly, mounted or not (a restore shows
//! through the mount within the 1 s cache lifetime).

pub mod keeper;
pub mod store;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::layout::Layout;
use crate::settings;
pub use keeper::Keeper;
pub use store::{Entry, Reason, Trash};

/// The group stores to look in: `group`, or every dir under `<ccs>/shared/context-groups/`.
fn groups(layout: &Layout, group: Option<&str>) -> Result<Vec<(String, PathBuf)>, String> {
    if let Some(g) = group {
        let dir = layout.group_dir(g);
        if !dir.is_dir() {
            return Err(format!(
                "no group store {} (groups are dirs under {}); check --group",
                dir.display(),
                layout.group_dir("").display()
            ));
        }
        return Ok(vec![(g.to_string(), dir)]);
    }
    let root = layout.group_dir("");
    let mut out = Vec::new();
    match std::fs::read_dir(&root) {
        Ok(rd) => {
            for de in rd.flatten() {
                let name = de.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') && de.path().is_dir() {
                    out.push((name, de.path()));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", root.display())),
    }
    out.sort();
    Ok(out)
}

/// One line of `trash list`.
#[derive(Debug, Serialize)]
pub struct Item {
    pub group: String,
    pub id: String,
    pub deleted_at: String,
    pub size: u64,
    /// Relative to the group dir (escaped to one line).
    pub path: Option<String>,
    pub profile: Option<String>,
    pub pid: Option<u32>,
    pub reason: Option<Reason>,
}

/// Every entry of the chosen groups, oldest first within a group.
pub fn list(layout: &Layout, group: Option<&str>) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    for (name, dir) in groups(layout, group)? {
        let trash = Trash::of_group(&dir);
        let listed = trash
            .list()
            .map_err(|e| format!("cannot read {}: {e}", trash.dir.display()))?;
        for l in listed {
            let at = store::id_time(&l.id)
                .map(store::iso_utc)
                .unwrap_or_default();
            let e = l.entry.as_ref();
            out.push(Item {
                group: name.clone(),
                deleted_at: e.map_or(at, |e| e.deleted_at.clone()),
                size: l.bytes,
                path: e.map(|e| e.path.clone()),
                profile: e.and_then(|e| e.profile.clone()),
                pid: e.and_then(|e| e.pid),
                reason: e.map(|e| e.reason),
                id: l.id,
            });
        }
    }
    Ok(out)
}

/// `trash list` as text.
pub fn render(items: &[Item]) -> String {
    if items.is_empty() {
        return "trash is empty\n".into();
    }
    let mut s = String::new();
    for i in items {
        s.push_str(&format!(
            "{}  {}  {:>9}  {}  {:<8}  {:<11}  {}\n",
            i.id,
            i.deleted_at,
            human(i.size),
            i.group,
            i.profile.as_deref().unwrap_or("?"),
            match i.reason {
                Some(Reason::Unlink) => "unlink",
                Some(Reason::RenameOver) => "rename-over",
                None => "?",
            },
            i.path.as_deref().unwrap_or("?")
        ));
    }
    let total: u64 = items.iter().map(|i| i.size).sum();
    s.push_str(&format!(
        "{} entr{}, {}; restore one with `ccsfs trash restore <id>`\n",
        items.len(),
        if items.len() == 1 { "y" } else { "ies" },
        human(total)
    ));
    s
}

/// `trash restore ID [--to PATH]`: the line to print.
pub fn restore(layout: &Layout, id: &str, to: Option<&Path>) -> Result<String, String> {
    if store::id_time(id).is_none() {
        return Err(format!(
            "{id:?} is not a trash id; `ccsfs trash list` shows them"
        ));
    }
    let found: Vec<_> = groups(layout, None)?
        .into_iter()
        .filter(|(_, d)| Trash::of_group(d).dir.join(id).is_dir())
        .collect();
    let Some((_, dir)) = found.first() else {
        return Err(format!(
            "no trash entry {id}; `ccsfs trash list` shows them"
        ));
    };
    let dest = Trash::of_group(dir).restore(id, to)?;
    Ok(format!("restored {id} to {}", dest.display()))
}

/// `trash purge [--expired] [--group G]`: one line per group that lost something.
pub fn purge(layout: &Layout, group: Option<&str>, expired: bool) -> Result<String, String> {
    let s = settings::load(&layout.ccs_dir)?.trash;
    let mut out = String::new();
    for (name, dir) in groups(layout, group)? {
        let trash = Trash::of_group(&dir);
        let (ids, freed) = trash
            .purge(&s, !expired)
            .map_err(|e| format!("cannot purge {}: {e}", trash.dir.display()))?;
        if !ids.is_empty() {
            out.push_str(&format!(
                "{name}: purged {} entr{} ({})\n",
                ids.len(),
                if ids.len() == 1 { "y" } else { "ies" },
                human(freed)
            ));
        }
    }
    if out.is_empty() {
        out.push_str("nothing to purge\n");
    }
    Ok(out)
}

fn human(size: u64) -> String {
    match size {
        s if s < 1024 => format!("{s} B"),
        s if s < 1024 * 1024 => format!("{:.1} KiB", s as f64 / 1024.0),
        s => format!("{:.1} MiB", s as f64 / (1024.0 * 1024.0)),
    }
}
