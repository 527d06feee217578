//! Doctor check of instance entries hidden by a group-store route (see
//! `status::hidden`): a CCS symlink to the right store is fine; a symlink elsewhere, or a
//! real dir still holding transcripts (`*.jsonl`) that the store lacks (compared by path
//! relative to the routed dir), is data the mount no longer shows: `ccsfs migrate` brings it
//! in. Nothing is changed here, also with `--fix`.

use std::path::{Path, PathBuf};

use super::{Ctx, Finding, shown};
use crate::routes::{ProfileRoutes, RouteKind};
use crate::status::{HiddenKind, hidden};

const ID: &str = "hidden";
const FIX: &str = "`ccsfs migrate` (a dry run) shows what would move; then `ccsfs migrate --apply`";

/// The `*.jsonl` files under `dir` (paths relative to it), not following symlinks.
pub fn transcripts_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let path = rel.join(e.file_name());
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() && e.file_name().as_encoded_bytes().ends_with(b".jsonl") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

pub fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let present = ctx.layout.shared_resources_present();
    let mut fine = 0;
    let mut any = false;
    for p in ctx.profiles() {
        let routes = ProfileRoutes::new(&ctx.layout, p, &present);
        for h in hidden(&routes) {
            if h.route.kind != RouteKind::Group {
                continue;
            }
            let at = shown(ctx, &h.path);
            let store = shown(ctx, &h.route.target);
            match &h.kind {
                HiddenKind::SameStore => fine += 1,
                // Written another way (relative, through another link) but the same dir.
                HiddenKind::Elsewhere(_)
                    if h.route.target.exists()
                        && std::fs::canonicalize(&h.path).ok()
                            == std::fs::canonicalize(&h.route.target).ok() =>
                {
                    fine += 1
                }
                HiddenKind::Elsewhere(t) => {
                    any = true;
                    out.push(Finding::warn(
                        ID,
                        format!(
                            "{at} is a symlink to {}, not to the group store {store}: the mount shows the store, not what the link leads to",
                            t.display()
                        ),
                        FIX,
                    ));
                }
                HiddenKind::Data => {
                    let lacking: Vec<PathBuf> = transcripts_under(&h.path)
                        .into_iter()
                        .filter(|rel| std::fs::symlink_metadata(h.route.target.join(rel)).is_err())
                        .collect();
                    if lacking.is_empty() {
                        fine += 1;
                        continue;
                    }
                    any = true;
                    let first: Vec<String> = lacking
                        .iter()
                        .take(3)
                        .map(|r| r.display().to_string())
                        .collect();
                    let more = if lacking.len() > 3 {
                        format!(" and {} more", lacking.len() - 3)
                    } else {
                        String::new()
                    };
                    out.push(Finding::warn(
                        ID,
                        format!(
                            "{at} is a real dir hidden by the route to {store}, holding {} transcript(s) the store lacks: {}{more}",
                            lacking.len(),
                            first.join(", ")
                        ),
                        FIX,
                    ));
                }
            }
        }
    }
    if !any {
        out.push(Finding::ok(
            ID,
            if fine == 0 {
                "no instance entry is hidden by a route".to_string()
            } else {
                format!("{fine} instance entr(ies) hidden by a route lead to, or are already in, the group store")
            },
        ));
    }
}
