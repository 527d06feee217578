//! `ccsfs install-service`: the systemd user unit that mounts at login and unmounts at logout.
//! The unit is `scripts/ccsfs.service` (compiled in) with this binary's absolute path and
//! `--ccs-dir` filled in (pure: `unit_text`), written to
//! `${XDG_CONFIG_HOME:-~/.config}/systemd/user/ccsfs.service` and enabled with
//! `systemctl --user` when a user manager answers, else the steps are printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The unit template; `@CCSFS@` stands for the binary and its global arguments.
pub const TEMPLATE: &str = include_str!("../scripts/ccsfs.service");
pub const UNIT_NAME: &str = "ccsfs.service";

/// The unit for `exe` (absolute) and, when given, `--ccs-dir ccs_dir`.
pub fn unit_text(exe: &Path, ccs_dir: Option<&Path>) -> Result<String, String> {
    if !exe.is_absolute() {
        return Err(format!(
            "the ccsfs binary path {} is not absolute",
            exe.display()
        ));
    }
    let mut cmd = exec_word(exe)?;
    if let Some(dir) = ccs_dir {
        cmd.push_str(" --ccs-dir ");
        cmd.push_str(&exec_word(dir)?);
    }
    Ok(TEMPLATE.replace("@CCSFS@", &cmd))
}

/// One word of an `ExecStart=` line: `%` and `$` doubled (systemd expands specifiers and
/// variables), and double-quoted with C escapes when it holds blanks, quotes or backslashes.
pub fn exec_word(path: &Path) -> Result<String, String> {
    let s = path.to_str().ok_or_else(|| {
        format!(
            "{} is not UTF-8, which a systemd unit cannot name; use another path",
            path.display()
        )
    })?;
    if s.chars().any(char::is_control) {
        return Err(format!(
            "{s:?} holds a control character, which a systemd unit cannot name; use another path"
        ));
    }
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    let quote = s.is_empty() || s.chars().any(|c| c.is_whitespace() || "\"'\\;".contains(c));
    Ok(if quote { format!("\"{out}\"") } else { out })
}

/// `${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user` (a relative XDG_CONFIG_HOME is ignored, as
/// the XDG spec says).
pub fn unit_dir(env: impl Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    let base =
        match set("XDG_CONFIG_HOME").filter(|v| v.starts_with('/')) {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(set("HOME").ok_or(
                "cannot find ~/.config: neither XDG_CONFIG_HOME nor HOME is set; set HOME",
            )?)
            .join(".config"),
        };
    Ok(base.join("systemd/user"))
}

/// What `install-service` does.
pub struct ServiceOptions {
    /// The `--ccs-dir` the unit passes (None: the daemon finds `~/.ccs` itself).
    pub ccs_dir: Option<PathBuf>,
    /// The mount point the unit mounts (to tell when it is mounted already).
    pub mount_point: PathBuf,
    pub uninstall: bool,
    pub print: bool,
}

const ENABLE: [&str; 4] = ["--user", "enable", "--now", UNIT_NAME];
const DISABLE: [&str; 4] = ["--user", "disable", "--now", UNIT_NAME];
const RELOAD: [&str; 2] = ["--user", "daemon-reload"];

/// Installs (or removes) the unit. Returns what to print, one line each.
pub fn install(opts: &ServiceOptions) -> Result<Vec<String>, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot tell where the ccsfs binary is: {e}"))?;
    let text = unit_text(&exe, opts.ccs_dir.as_deref())?;
    if opts.print {
        return Ok(vec![text.trim_end().to_string()]);
    }
    let dir = unit_dir(|k| std::env::var(k).ok())?;
    let path = dir.join(UNIT_NAME);
    if opts.uninstall {
        return uninstall(&dir, &path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write_atomically(&path, text.as_bytes())?;
    let mut said = vec![format!("wrote {}", path.display())];
    let mounted = matches!(
        crate::mount::mount_state(&opts.mount_point),
        crate::mount::MountState::Mounted(_)
    );
    // Already mounted (by hand, or the shim): enable only; starting now would fail on it.
    let enable: &[&str] = if mounted { &ENABLE[..3] } else { &ENABLE };
    if !manager_reachable() {
        said.push(
            "no systemd user manager answers here; to mount at every login, run in your login session:"
                .into(),
        );
        said.push(format!("  systemctl {}", RELOAD.join(" ")));
        said.push(format!("  systemctl {}", ENABLE.join(" ")));
        return Ok(said);
    }
    systemctl(&RELOAD)?;
    systemctl(enable)?;
    said.push(if mounted {
        format!(
            "enabled {UNIT_NAME}; {} is mounted already, so the unit mounts it from the next login on",
            opts.mount_point.display()
        )
    } else {
        format!(
            "enabled and started {UNIT_NAME}: {} is mounted now and at every login",
            opts.mount_point.display()
        )
    });
    Ok(said)
}

fn uninstall(dir: &Path, path: &Path) -> Result<Vec<String>, String> {
    let reachable = manager_reachable();
    let mut said = Vec::new();
    if reachable && path.exists() {
        systemctl(&DISABLE)?;
        said.push(format!("stopped and disabled {UNIT_NAME}"));
    }
    // What `enable` made; removed by hand when no manager could `disable`.
    let wants = dir.join("default.target.wants").join(UNIT_NAME);
    if std::fs::read_link(&wants).is_ok_and(|t| t == path) {
        let _ = std::fs::remove_file(&wants);
    }
    match std::fs::remove_file(path) {
        Ok(()) => said.push(format!("removed {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            said.push(format!(
                "{} is not installed; nothing to do",
                path.display()
            ));
            return Ok(said);
        }
        Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
    }
    if reachable {
        systemctl(&RELOAD)?;
    } else {
        said.push("no systemd user manager answers here; in your login session run:".into());
        said.push(format!("  systemctl {}", DISABLE.join(" ")));
        said.push(format!("  systemctl {}", RELOAD.join(" ")));
    }
    Ok(said)
}

/// Whether `systemctl --user` reaches a user manager (false too when systemctl is missing).
fn manager_reachable() -> bool {
    Command::new("systemctl")
        .args(["--user", "show-environment"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn systemctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    let why = why
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("failed");
    Err(format!(
        "`systemctl {}` failed: {}; see `systemctl --user status {UNIT_NAME}` and `journalctl --user -u {UNIT_NAME}`",
        args.join(" "),
        why.trim()
    ))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::atomic_file::replace(path, bytes, 0o644)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_stay_as_they_are() {
        assert_eq!(
            exec_word(Path::new("/usr/local/bin/ccsfs")).unwrap(),
            "/usr/local/bin/ccsfs"
        );
    }

    #[test]
    fn specifiers_variables_blanks_and_quotes_are_escaped() {
        assert_eq!(exec_word(Path::new("/a/100%/b")).unwrap(), "/a/100%%/b");
        assert_eq!(exec_word(Path::new("/a/$HOME")).unwrap(), "/a/$$HOME");
        assert_eq!(
            exec_word(Path::new("/my dir/ccsfs")).unwrap(),
            "\"/my dir/ccsfs\""
        );
        assert_eq!(
            exec_word(Path::new("/a\"b\\c")).unwrap(),
            "\"/a\\\"b\\\\c\""
        );
        assert!(exec_word(Path::new("/a\nb")).is_err());
    }

    #[test]
    fn the_unit_names_the_binary_and_the_ccs_dir() {
        let t = unit_text(Path::new("/opt/ccsfs"), Some(Path::new("/srv/my ccs"))).unwrap();
        assert!(t.contains("\nExecStart=/opt/ccsfs --ccs-dir \"/srv/my ccs\" mount -f\n"));
        assert!(
            t.contains("\nExecStopPost=-/opt/ccsfs --ccs-dir \"/srv/my ccs\" unmount --if-dead\n")
        );
        assert!(t.contains("\nType=notify\n"));
        assert!(!t.contains("@CCSFS@"));
        let t = unit_text(Path::new("/opt/ccsfs"), None).unwrap();
        assert!(t.contains("\nExecStart=/opt/ccsfs mount -f\n"));
        assert!(unit_text(Path::new("ccsfs"), None).is_err());
    }

    #[test]
    fn the_unit_dir_follows_xdg() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            unit_dir(env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])).unwrap(),
            PathBuf::from("/x/systemd/user")
        );
        assert_eq!(
            unit_dir(env(&[("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")])).unwrap(),
            PathBuf::from("/h/.config/systemd/user")
        );
        assert!(unit_dir(env(&[])).is_err());
    }
}
