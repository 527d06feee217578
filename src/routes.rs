//! The routing table: for each profile, which backing directory serves each top-level name of
//! `<mount>/<profile>/`, plus the pure containment rule for symlink targets. Data only, no I/O.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use crate::config::{ContinuityMode, Profile};
use crate::layout::Layout;

/// The dir that group-shared profiles keep in the group store.
pub const PROJECTS: &str = "projects";
/// The dirs that `continuity_mode: deeper` adds to the group store.
pub const CONTINUITY_DIRS: [&str; 4] = ["session-env", "file-history", "shell-snapshots", "todos"];

/// One top-level name redirected away from the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub name: &'static str,
    pub target: PathBuf,
}

/// How one profile's tree is assembled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileRoutes {
    pub profile: Profile,
    /// `<ccs>/instances/<profile>`: everything not routed elsewhere.
    pub instance: PathBuf,
    /// Names served by the group store instead of the instance (empty when isolated).
    pub routes: Vec<Route>,
}

impl ProfileRoutes {
    pub fn new(layout: &Layout, profile: &Profile) -> ProfileRoutes {
        let mut routes = Vec::new();
        if let Some(group) = profile.group.as_deref().filter(|_| profile.is_shared()) {
            routes.push(Route {
                name: PROJECTS,
                target: layout.group_projects(group),
            });
            if profile.continuity == ContinuityMode::Deeper {
                for dir in CONTINUITY_DIRS {
                    routes.push(Route {
                        name: dir,
                        target: layout.group_continuity(group, dir),
                    });
                }
            }
        }
        ProfileRoutes {
            profile: profile.clone(),
            instance: layout.instance(&profile.name),
            routes,
        }
    }

    /// The route serving a top-level name, if that name is routed away from the instance.
    pub fn route(&self, name: &OsStr) -> Option<&Route> {
        self.routes.iter().find(|r| OsStr::new(r.name) == name)
    }

    /// The backing dir serving a top-level name.
    pub fn backing_for(&self, name: &OsStr) -> PathBuf {
        match self.route(name) {
            Some(r) => r.target.clone(),
            None => self.instance.join(name),
        }
    }
}

/// Name of the lock dir that Claude Code's proper-lockfile makes beside a config dir.
pub fn lock_dir_profile(name: &OsStr) -> Option<&str> {
    name.to_str()?
        .strip_suffix(".lock")
        .filter(|p| !p.is_empty())
}

/// Whether a symlink created `depth` levels below its profile root may point at `target`.
/// A relative target may not climb out of the profile (it would reach the mount root and from
/// there another profile). An absolute target may point into `own` (the profile's own dir in
/// the mount) but not into any `forbidden` tree (the instances dir and the rest of the mount),
/// which would bypass the routing.
pub fn symlink_target_allowed(
    target: &Path,
    depth: usize,
    own: Option<&Path>,
    forbidden: &[PathBuf],
) -> bool {
    if target.is_absolute() {
        if own.is_some_and(|own| starts_with_lexically(target, own)) {
            return true;
        }
        return !forbidden.iter().any(|f| starts_with_lexically(target, f));
    }
    let mut level = depth as isize;
    for c in target.components() {
        match c {
            Component::ParentDir => level -= 1,
            Component::Normal(_) => level += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if level < 0 {
            return false;
        }
    }
    true
}

fn starts_with_lexically(path: &Path, prefix: &Path) -> bool {
    let mut stack: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                stack.pop();
            }
            Component::Normal(n) => stack.push(n),
            _ => {}
        }
    }
    let normal: PathBuf = stack.iter().collect();
    let prefix: PathBuf = prefix
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    normal.starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ContextMode;

    fn layout() -> Layout {
        Layout::new(PathBuf::from("/h/.ccs"))
    }

    fn profile(name: &str, group: Option<&str>, deeper: bool) -> Profile {
        Profile {
            name: name.into(),
            context: if group.is_some() {
                ContextMode::Shared
            } else {
                ContextMode::Isolated
            },
            group: group.map(String::from),
            continuity: if deeper {
                ContinuityMode::Deeper
            } else {
                ContinuityMode::Standard
            },
            ..Profile::isolated(name)
        }
    }

    #[test]
    fn isolated_profile_routes_everything_to_its_instance() {
        let r = ProfileRoutes::new(&layout(), &profile("solo", None, false));
        assert!(r.routes.is_empty());
        for name in ["projects", "todos", ".credentials.json", "settings.json"] {
            assert_eq!(
                r.backing_for(OsStr::new(name)),
                PathBuf::from("/h/.ccs/instances/solo").join(name)
            );
        }
    }

    #[test]
    fn shared_standard_routes_only_projects() {
        let r = ProfileRoutes::new(&layout(), &profile("work", Some("team"), false));
        assert_eq!(
            r.backing_for(OsStr::new("projects")),
            PathBuf::from("/h/.ccs/shared/context-groups/team/projects")
        );
        for name in CONTINUITY_DIRS
            .iter()
            .chain(&[".credentials.json", ".claude.json", "sessions"])
        {
            assert_eq!(
                r.backing_for(OsStr::new(name)),
                PathBuf::from("/h/.ccs/instances/work").join(name)
            );
        }
    }

    #[test]
    fn shared_deeper_routes_projects_and_continuity_dirs() {
        let r = ProfileRoutes::new(&layout(), &profile("work", Some("team"), true));
        assert_eq!(r.routes.len(), 5);
        for dir in CONTINUITY_DIRS {
            assert_eq!(
                r.backing_for(OsStr::new(dir)),
                PathBuf::from("/h/.ccs/shared/context-groups/team/continuity").join(dir)
            );
        }
        for name in [
            ".credentials.json",
            ".claude.json",
            "sessions",
            "settings.json",
            "plugins",
        ] {
            assert!(
                r.route(OsStr::new(name)).is_none(),
                "{name} must stay private"
            );
        }
    }

    #[test]
    fn deeper_without_shared_routes_nothing() {
        let mut p = profile("odd", None, true);
        p.group = Some("team".into());
        assert!(ProfileRoutes::new(&layout(), &p).routes.is_empty());
    }

    #[test]
    fn lock_dir_names() {
        assert_eq!(lock_dir_profile(OsStr::new("work.lock")), Some("work"));
        assert_eq!(lock_dir_profile(OsStr::new(".lock")), None);
        assert_eq!(lock_dir_profile(OsStr::new("work")), None);
    }

    #[test]
    fn relative_symlinks_may_not_climb_out_of_the_profile() {
        let none: [PathBuf; 0] = [];
        assert!(symlink_target_allowed(Path::new("a/b"), 0, None, &none));
        assert!(symlink_target_allowed(Path::new("../x"), 1, None, &none));
        assert!(!symlink_target_allowed(Path::new("../x"), 0, None, &none));
        assert!(!symlink_target_allowed(
            Path::new("../../other/.credentials.json"),
            1,
            None,
            &none
        ));
        assert!(!symlink_target_allowed(
            Path::new("a/../../x"),
            0,
            None,
            &none
        ));
        assert!(symlink_target_allowed(
            Path::new("./a/../b"),
            0,
            None,
            &none
        ));
    }

    #[test]
    fn absolute_symlinks_may_not_point_into_instances_or_the_mount() {
        let forbidden = [
            PathBuf::from("/h/.ccs/instances"),
            PathBuf::from("/h/.ccs/mnt"),
        ];
        let own = Some(Path::new("/h/.ccs/mnt/b"));
        assert!(symlink_target_allowed(
            Path::new("/tmp/x"),
            0,
            own,
            &forbidden
        ));
        assert!(!symlink_target_allowed(
            Path::new("/h/.ccs/instances/a/.credentials.json"),
            3,
            own,
            &forbidden
        ));
        assert!(!symlink_target_allowed(
            Path::new("/h/.ccs/instances/b/.credentials.json"),
            3,
            own,
            &forbidden
        ));
        assert!(!symlink_target_allowed(
            Path::new("/h/.ccs/mnt/a"),
            3,
            own,
            &forbidden
        ));
        assert!(!symlink_target_allowed(
            Path::new("/h/.ccs/mnt/b/../a/x"),
            3,
            own,
            &forbidden
        ));
        assert!(symlink_target_allowed(
            Path::new("/h/.ccs/mnt/b/projects/x"),
            3,
            own,
            &forbidden
        ));
        assert!(!symlink_target_allowed(
            Path::new("/h/.ccs/x/../instances/a"),
            3,
            own,
            &forbidden
        ));
        assert!(symlink_target_allowed(
            Path::new("/h/.ccs/instancesx"),
            3,
            own,
            &forbidden
        ));
    }
}
