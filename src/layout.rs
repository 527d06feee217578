//! Where things live inside a CCS dir: how the dir is found (flag, `CCS_DIR`, `$CCS_HOME/.ccs`,
//! `~/.ccs`), how an account name becomes its instance dir name, and the paths of instances,
//! group stores, logs and runtime files, and the absolute form of a mount point. Path logic:
//! nothing here reads a config or touches a mount.

use std::path::{Path, PathBuf};

/// The CCS directory and the fixed places inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub ccs_dir: PathBuf,
}

/// Finds the CCS dir the way CCS does: `--ccs-dir`, then `CCS_DIR`, then `$CCS_HOME/.ccs`,
/// then `~/.ccs`. `env` is injected so the rule is testable.
pub fn find_ccs_dir(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PathBuf, String> {
    let non_empty = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = non_empty("CCS_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(home) = non_empty("CCS_HOME") {
        return Ok(PathBuf::from(home).join(".ccs"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".ccs")),
        None => Err("cannot find the CCS dir: HOME is not set; pass --ccs-dir DIR".into()),
    }
}

/// The name of an account's instance dir, as CCS makes it (`InstanceManager.sanitizeName`):
/// every character outside `[a-zA-Z0-9_-]` becomes `-`, then the whole is lowercased. So account
/// `Delta` lives in `instances/delta`. The mount shows each profile under this name too.
/// (JavaScript replaces per UTF-16 unit, so a character outside the BMP becomes `--`.)
pub fn instance_dir_name(account: &str) -> String {
    let mut dir = String::with_capacity(account.len());
    for c in account.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            dir.push(c.to_ascii_lowercase());
        } else {
            dir.extend(std::iter::repeat_n('-', c.len_utf16()));
        }
    }
    dir
}

impl Layout {
    pub fn new(ccs_dir: PathBuf) -> Layout {
        Layout { ccs_dir }
    }

    pub fn config_file(&self) -> PathBuf {
        self.ccs_dir.join("config.yaml")
    }

    pub fn instances_dir(&self) -> PathBuf {
        self.ccs_dir.join("instances")
    }

    /// `<ccs>/instances/<dir>` of an account (see `instance_dir_name`).
    pub fn instance(&self, account: &str) -> PathBuf {
        self.instances_dir().join(instance_dir_name(account))
    }

    /// `<ccs>/shared/<name>`: where CCS links a shared resource (to `~/.claude/<name>`).
    pub fn shared_resource(&self, name: &str) -> PathBuf {
        self.ccs_dir.join("shared").join(name)
    }

    /// Which of CCS's shared resources (`routes::SHARED_RESOURCES`) exist in `<ccs>/shared/`
    /// (links CCS made; dangling ones count). One `lstat` each.
    pub fn shared_resources_present(&self) -> Vec<&'static str> {
        crate::routes::SHARED_RESOURCES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| std::fs::symlink_metadata(self.shared_resource(n)).is_ok())
            .collect()
    }

    pub fn group_dir(&self, group: &str) -> PathBuf {
        self.ccs_dir
            .join("shared")
            .join("context-groups")
            .join(group)
    }

    pub fn group_projects(&self, group: &str) -> PathBuf {
        self.group_dir(group).join("projects")
    }

    pub fn group_continuity(&self, group: &str, dir: &str) -> PathBuf {
        self.group_dir(group).join("continuity").join(dir)
    }

    pub fn default_mount_point(&self) -> PathBuf {
        self.ccs_dir.join("mnt")
    }

    pub fn log_file(&self) -> PathBuf {
        self.ccs_dir.join("logs").join("ccsfs.log")
    }

    /// Runtime record of the daemon serving `mount_point` (pid, mount point, features).
    pub fn run_file(&self, mount_point: &Path) -> PathBuf {
        let mut name = String::from("ccsfs");
        for c in mount_point.to_string_lossy().chars() {
            name.push(if c.is_ascii_alphanumeric() { c } else { '_' });
        }
        self.ccs_dir.join("run").join(name + ".pid")
    }
}

/// `path` with `.` and `..` resolved lexically, without touching the filesystem (`..` of a
/// symlink is not where the kernel would go; callers that care follow links themselves).
pub fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The absolute form of a mount point without touching the mount itself (a dead FUSE mount
/// fails every stat with ENOTCONN): canonical parent plus the last component.
pub fn absolute_mount_point(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .unwrap_or(parent.to_path_buf())
            .join(name),
        _ => abs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn flag_wins_over_everything() {
        let env = env_of(&[("CCS_DIR", "/a"), ("CCS_HOME", "/b"), ("HOME", "/c")]);
        assert_eq!(
            find_ccs_dir(Some(Path::new("/f")), env).unwrap(),
            PathBuf::from("/f")
        );
    }

    #[test]
    fn ccs_dir_then_ccs_home_then_home() {
        let all = env_of(&[("CCS_DIR", "/a"), ("CCS_HOME", "/b"), ("HOME", "/c")]);
        assert_eq!(find_ccs_dir(None, all).unwrap(), PathBuf::from("/a"));
        let no_dir = env_of(&[("CCS_DIR", ""), ("CCS_HOME", "/b"), ("HOME", "/c")]);
        assert_eq!(
            find_ccs_dir(None, no_dir).unwrap(),
            PathBuf::from("/b/.ccs")
        );
        let home = env_of(&[("HOME", "/c")]);
        assert_eq!(find_ccs_dir(None, home).unwrap(), PathBuf::from("/c/.ccs"));
        assert!(
            find_ccs_dir(None, env_of(&[]))
                .unwrap_err()
                .contains("--ccs-dir")
        );
    }

    #[test]
    fn instance_dir_names_follow_ccs_sanitize_name() {
        for (account, dir) in [
            ("work", "work"),
            ("Delta", "delta"),
            ("MyWork_2-B", "mywork_2-b"),
            ("a.b c/d", "a-b-c-d"),
            ("..", "--"),
            ("café", "caf-"),
            ("\u{1F600}x", "--x"),
            ("", ""),
        ] {
            assert_eq!(instance_dir_name(account), dir, "{account:?}");
        }
        let l = Layout::new(PathBuf::from("/h/.ccs"));
        assert_eq!(
            l.instance("Delta"),
            PathBuf::from("/h/.ccs/instances/delta")
        );
        assert_eq!(
            l.instance("a/../b"),
            PathBuf::from("/h/.ccs/instances/a----b")
        );
    }

    #[test]
    fn store_paths_match_ccs_symlink_targets() {
        let l = Layout::new(PathBuf::from("/h/.ccs"));
        assert_eq!(l.instance("work"), PathBuf::from("/h/.ccs/instances/work"));
        assert_eq!(
            l.group_projects("team"),
            PathBuf::from("/h/.ccs/shared/context-groups/team/projects")
        );
        assert_eq!(
            l.group_continuity("team", "todos"),
            PathBuf::from("/h/.ccs/shared/context-groups/team/continuity/todos")
        );
    }

    #[test]
    fn instance_dir_names_follow_ccs() {
        assert_eq!(instance_dir_name("work"), "work");
        assert_eq!(instance_dir_name("Delta"), "delta");
        assert_eq!(instance_dir_name("My_Acct-2"), "my_acct-2");
        assert_eq!(instance_dir_name("a b.c"), "a-b-c");
        assert_eq!(instance_dir_name("É"), "-");
        assert_eq!(instance_dir_name("x😀"), "x--");
        let l = Layout::new(PathBuf::from("/h/.ccs"));
        assert_eq!(
            l.instance("Delta"),
            PathBuf::from("/h/.ccs/instances/delta")
        );
    }

    #[test]
    fn run_file_is_one_flat_name_per_mount_point() {
        let l = Layout::new(PathBuf::from("/h/.ccs"));
        let a = l.run_file(Path::new("/h/.ccs/mnt"));
        assert_eq!(a.parent().unwrap(), Path::new("/h/.ccs/run"));
        assert_ne!(a, l.run_file(Path::new("/h/.ccs/mnt2")));
    }
}
