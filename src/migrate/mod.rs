//! `ccsfs migrate [--apply] [--json]`: brings data that older layouts keep in the instances
//! (CCS's symlinks, claude-swap's and claude-failover's symlinks to dirs of their own, real
//! dirs) into the group stores the mount serves, and renames instance dirs spelt with
//! capitals to CCS's lowercase name. A dry run by default; this module reads the config, runs
//! `apply` and renders the report. The decisions are in `plan` (pure), the file work in `apply`.

pub mod apply;
pub mod plan;

use std::fmt::Write;
use std::path::Path;

use crate::config;
use crate::layout::{Layout, find_ccs_dir};

pub use apply::Report;

/// Runs `ccsfs migrate` and returns what to print on stdout.
pub fn main(layout: &Layout, do_apply: bool, json: bool) -> Result<String, String> {
    let profiles = config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string())?;
    let mut mount_points = crate::mount::recorded_mount_points(layout);
    mount_points.push(layout.default_mount_point());
    let opts = apply::Options {
        apply: do_apply,
        progress: crate::sessions::progress_wanted(),
        mount_points,
    };
    let report = apply::run(layout, &profiles, &opts)?;
    if json {
        return serde_json::to_string_pretty(&report)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string());
    }
    Ok(render(layout, &report, &apply_command(layout)))
}

/// The command that applies a dry run (with `--ccs-dir` when the dir is not the default one).
fn apply_command(layout: &Layout) -> String {
    let default = find_ccs_dir(None, |k| std::env::var(k).ok())
        .ok()
        .and_then(|d| std::path::absolute(d).ok());
    if default.as_deref() == Some(layout.ccs_dir.as_path()) {
        "ccsfs migrate --apply".into()
    } else {
        let q = crate::launch::decide::shell_quote(layout.ccs_dir.as_os_str());
        format!(
            "ccsfs --ccs-dir {} migrate --apply",
            String::from_utf8_lossy(&q)
        )
    }
}

fn short<'a>(layout: &Layout, p: &'a Path) -> std::borrow::Cow<'a, str> {
    match p.strip_prefix(&layout.ccs_dir) {
        Ok(rel) => format!("<ccs>/{}", rel.display()).into(),
        Err(_) => p.to_string_lossy(),
    }
}

/// The report for people.
pub fn render(layout: &Layout, r: &Report, apply_cmd: &str) -> String {
    let mut out = String::new();
    let done = r.applied;
    for (old, new) in &r.renamed {
        let verb = if done { "renamed" } else { "would rename" };
        let _ = writeln!(
            out,
            "{verb} {} to {} (CCS's instance dir name)",
            short(layout, old),
            short(layout, new)
        );
    }
    for s in &r.sources {
        if s.kind == "missing" {
            continue;
        }
        let head = format!("{}: {}/", s.profile, s.name);
        if s.kind == "in place" {
            let _ = writeln!(out, "{head} in place (CCS's symlink to the group store)");
            continue;
        }
        let what = match &s.target {
            Some(t) => format!(
                "{} (a {} to {})",
                short(layout, &s.entry),
                s.kind,
                t.display()
            ),
            None => format!("{} (a {})", short(layout, &s.entry), s.kind),
        };
        let _ = writeln!(out, "{head} {what}");
        if s.counts.files > 0 {
            let verb = match (done, s.kind.as_str()) {
                (true, "real dir") => "moved into",
                (true, _) => "merged into",
                (false, "real dir") => "would move into",
                (false, _) => "would merge into",
            };
            let _ = writeln!(
                out,
                "  {verb} {}: {}",
                short(layout, &s.store),
                s.counts.describe()
            );
        }
        for c in &s.conflicts {
            let _ = writeln!(out, "  conflict: {} kept as {}", c.path, c.kept_as);
        }
        for l in &s.left {
            let _ = writeln!(out, "  left: {l}");
        }
        if s.entry_removed {
            let verb = if done {
                "was removed"
            } else {
                "would be removed"
            };
            match (s.kind.as_str(), &s.target_dir) {
                ("symlink", Some(t)) => {
                    let _ = writeln!(
                        out,
                        "  the symlink {verb}; its target {} is left untouched (other tools may use \
                         it): delete it yourself once nothing needs it",
                        t.display()
                    );
                }
                _ => {
                    let _ = writeln!(out, "  {} {verb}", short(layout, &s.entry));
                }
            }
        }
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    if !r.has_work() {
        let _ = writeln!(out, "nothing to migrate");
        return out;
    }
    if r.totals.files > 0 {
        let _ = writeln!(out, "total: {}", r.totals.describe());
    }
    if done {
        let _ = writeln!(out, "done");
    } else {
        let _ = writeln!(out, "dry run, nothing changed; to apply: {apply_cmd}");
    }
    out
}
