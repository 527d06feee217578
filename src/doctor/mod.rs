//! `ccsfs doctor [--fix] [--json]`: runs every check (FUSE, config, modes, the mount, CCS
//! integration, hidden instance entries, stale locks, torn transcript tails), prints one line
//! per finding (`ok`, `warn` or `fail`, what was found, and the fix), and with `--fix` repairs
//! what is safe, saying what it did. The exit status is non-zero when a failure is left.
//!
//! Each check module gets a [`Ctx`] and pushes [`Finding`]s; with `ctx.fix` it repairs its
//! safe findings itself and records what it did in `fixed`. Nothing here deletes user data.

pub mod ccs;
pub mod config;
pub mod fuse;
pub mod hidden;
pub mod locks;
pub mod modes;
pub mod mount;
pub mod torn;

use std::fmt::Write;
use std::path::PathBuf;

use crate::config::Profile;
use crate::layout::Layout;

/// How a finding stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    /// The check, e.g. `fuse.device`, `modes`, `mount`, `locks`.
    pub id: &'static str,
    pub status: Status,
    /// What was found.
    pub message: String,
    /// For warn and fail: a command or a one-line instruction.
    pub fix: Option<String>,
    /// With `--fix`: what was done about it (None: nothing).
    pub fixed: Option<String>,
}

impl Finding {
    pub fn ok(id: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            id,
            status: Status::Ok,
            message: message.into(),
            fix: None,
            fixed: None,
        }
    }

    pub fn warn(id: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            status: Status::Warn,
            fix: Some(fix.into()),
            ..Finding::ok(id, message)
        }
    }

    pub fn fail(id: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            status: Status::Fail,
            ..Finding::warn(id, message, fix)
        }
    }
}

/// What every check reads.
pub struct Ctx {
    pub layout: Layout,
    /// `config.yaml`'s profiles (Err: it does not load; the config check reports why).
    pub profiles: Result<Vec<Profile>, String>,
    /// Repair what is safe.
    pub fix: bool,
    pub root: bool,
    /// The mount points to look at: `<ccs>/mnt` and every one a run file records.
    pub mount_points: Vec<PathBuf>,
}

impl Ctx {
    pub fn new(layout: Layout, fix: bool) -> Ctx {
        let profiles = crate::config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string());
        let mut mount_points = vec![layout.default_mount_point()];
        mount_points.extend(crate::mount::recorded_mount_points(&layout));
        let mut seen = Vec::new();
        mount_points.retain(|m| {
            let abs = crate::layout::absolute_mount_point(m);
            let new = !seen.contains(&abs);
            seen.push(abs);
            new
        });
        Ctx {
            layout,
            profiles,
            fix,
            // SAFETY: no preconditions.
            root: unsafe { libc::geteuid() } == 0,
            mount_points,
        }
    }

    /// The profiles, or none when `config.yaml` does not load.
    pub fn profiles(&self) -> &[Profile] {
        self.profiles.as_deref().unwrap_or(&[])
    }
}

/// Runs every check, in order; the mount comes first so that `--fix` clears a dead mount
/// before anything else looks around.
pub fn run(ctx: &Ctx) -> Vec<Finding> {
    let mut out = Vec::new();
    fuse::check(ctx, &mut out);
    mount::check(ctx, &mut out);
    config::check(ctx, &mut out);
    modes::check(ctx, &mut out);
    ccs::check(ctx, &mut out);
    hidden::check(ctx, &mut out);
    locks::check(ctx, &mut out);
    torn::check(ctx, &mut out);
    out
}

/// Whether a failure is left (one that `--fix` repaired does not count).
pub fn failed(findings: &[Finding]) -> bool {
    findings
        .iter()
        .any(|f| f.status == Status::Fail && f.fixed.is_none())
}

/// The text report: one line per finding, `<status> <id>: <message>; fix: <fix>`, and a
/// `fixed: …` line under each repaired one.
pub fn render(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let _ = write!(s, "{:<4} {}: {}", f.status.as_str(), f.id, f.message);
        if let Some(fix) = &f.fix {
            let _ = write!(s, "; fix: {fix}");
        }
        s.push('\n');
        if let Some(done) = &f.fixed {
            let _ = writeln!(s, "     fixed: {done}");
        }
    }
    s
}

/// A path for a message: relative to the CCS dir when inside it.
pub fn shown(ctx: &Ctx, p: &std::path::Path) -> String {
    match p.strip_prefix(&ctx.layout.ccs_dir) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => p.display().to_string(),
    }
}

/// A path quoted for the shell, for fixes that are commands.
pub fn quoted(p: &std::path::Path) -> String {
    String::from_utf8_lossy(&crate::launch::decide::shell_quote(p.as_os_str())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repaired_failure_does_not_fail_the_run() {
        let mut f = Finding::fail("mount", "dead", "ccsfs unmount");
        assert!(failed(std::slice::from_ref(&f)));
        f.fixed = Some("unmounted".into());
        assert!(!failed(&[f.clone(), Finding::warn("modes", "x", "chmod")]));
        let text = render(&[f]);
        assert_eq!(
            text,
            "fail mount: dead; fix: ccsfs unmount\n     fixed: unmounted\n"
        );
    }
}
