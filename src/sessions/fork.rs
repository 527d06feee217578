//! `ccsfs sessions fork`: a copy of a session under a new id in the same project dir, with the
//! same id rewriting as `import`, so that two accounts can carry one conversation on in two
//! directions without fighting over its lock. The source is only read: a session held by a
//! writer may be forked (the copy starts from what it has written so far), and it is reported.

use std::collections::HashMap;

use serde_json::value::RawValue;

use super::export::{ExportOptions, export};
use super::import::{Imported, id_map, place};
use super::{Found, Holder, holder_of, holders};
use crate::layout::Layout;

/// What a fork did.
#[derive(Debug)]
pub struct Forked {
    pub from: String,
    pub imported: Imported,
    /// Who held the source while it was read.
    pub held_by: Option<Holder>,
}

/// Forks the session `src`.
pub fn fork(layout: &Layout, src: &Found) -> Result<Forked, String> {
    let held_by = src.store.group.as_deref().and_then(|g| {
        let m = std::fs::metadata(&src.file).ok()?;
        holder_of(&holders(layout, g), &m)
    });
    let mut warnings = Vec::new();
    let e = export(
        &src.id,
        &src.file,
        &mut ExportOptions::default(),
        &mut warnings,
    )?;
    let new_id = uuid::Uuid::new_v4().to_string();
    let mut all: Vec<&[Box<RawValue>]> = vec![&e.records];
    all.extend(e.subagents.iter().map(|t| t.records.as_slice()));
    let map: HashMap<String, String> = id_map(&src.id, &new_id, &all);
    let cwd = e.project_cwd.clone().unwrap_or_default();
    let mut imported = place(src.project_dir(), &e, &new_id, &map, &cwd)?;
    imported.warnings = warnings;
    Ok(Forked {
        from: src.id.clone(),
        imported,
        held_by,
    })
}
