//! The routing table: for each profile, which backing directory (or file) serves each
//! top-level name of `<mount>/<profile>/`. Data only, no I/O.
//!
//! Two kinds of names leave the instance:
//! - the group store: `projects/` (and, with deeper continuity, the four continuity dirs) go to
//!   `<ccs>/shared/context-groups/<group>/`;
//! - CCS's shared resources: `commands/`, `skills/`, `agents/`, `plugins/` and `settings.json`
//!   go to `<ccs>/shared/<name>` (which CCS links to `~/.claude/<name>`), unless the account
//!   keeps its own (`shared_resource_mode: profile-local`, or `bare: true`). Inside
//!   `plugins/`, `known_marketplaces.json` stays in the instance, as CCS lays it out.
//!
//! Credentials, `.claude.json` and every other name are never routed.

use std::ffi::OsStr;
use std::path::PathBuf;

use crate::config::{ContinuityMode, Profile, SharedResources};
use crate::layout::Layout;

/// The dir that group-shared profiles keep in the group store.
pub const PROJECTS: &str = "projects";
/// The dirs that `continuity_mode: deeper` adds to the group store.
pub const CONTINUITY_DIRS: [&str; 4] = ["session-env", "file-history", "shell-snapshots", "todos"];

/// CCS's shared resources, as `SharedManager.sharedItems` lists them: (name, is a dir).
pub const SHARED_RESOURCES: [(&str, bool); 5] = [
    ("commands", true),
    ("skills", true),
    ("agents", true),
    ("plugins", true),
    ("settings.json", false),
];

/// Names inside a shared resource dir that CCS keeps per instance.
pub const PLUGINS_PRIVATE: &[&str] = &["known_marketplaces.json"];

/// Where a routed name leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// A dir of the group store (shared transcripts, single-writer rule).
    Group,
    /// A shared resource dir (`<ccs>/shared/<name>`).
    SharedDir,
    /// A shared resource file (`<ccs>/shared/settings.json`).
    SharedFile,
}

/// One top-level name redirected away from the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub name: &'static str,
    pub target: PathBuf,
    pub kind: RouteKind,
    /// Names directly inside the routed dir that stay in the instance's dir of that name.
    pub private: &'static [&'static str],
}

impl Route {
    /// Whether `child` of this routed dir stays in the instance.
    pub fn is_private(&self, child: &OsStr) -> bool {
        self.private.iter().any(|p| OsStr::new(p) == child)
    }
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
    /// The routes of `profile`. `shared_present` names the shared resources that exist in
    /// `<ccs>/shared/` (CCS made them); the others stay in the instance.
    pub fn new(layout: &Layout, profile: &Profile, shared_present: &[&str]) -> ProfileRoutes {
        let mut routes = Vec::new();
        let group_dir = |name, target| Route {
            name,
            target,
            kind: RouteKind::Group,
            private: &[],
        };
        if let Some(group) = profile.group.as_deref().filter(|_| profile.is_shared()) {
            routes.push(group_dir(PROJECTS, layout.group_projects(group)));
            if profile.continuity == ContinuityMode::Deeper {
                for dir in CONTINUITY_DIRS {
                    routes.push(group_dir(dir, layout.group_continuity(group, dir)));
                }
            }
        }
        if profile.shared_resources == SharedResources::Shared {
            for (name, is_dir) in SHARED_RESOURCES {
                if !shared_present.contains(&name) {
                    continue;
                }
                routes.push(Route {
                    name,
                    target: layout.shared_resource(name),
                    kind: if is_dir {
                        RouteKind::SharedDir
                    } else {
                        RouteKind::SharedFile
                    },
                    private: if name == "plugins" {
                        PLUGINS_PRIVATE
                    } else {
                        &[]
                    },
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(PathBuf::from("/h/.ccs"))
    }

    const ALL_SHARED: [&str; 5] = ["commands", "skills", "agents", "plugins", "settings.json"];

    #[test]
    fn shared_resources_route_to_the_ccs_shared_dir() {
        for p in [
            Profile::for_test("solo", None, false),
            Profile::for_test("work", Some("team"), true),
        ] {
            let r = ProfileRoutes::new(&layout(), &p, &ALL_SHARED);
            for name in ALL_SHARED {
                let route = r.route(OsStr::new(name)).expect(name);
                assert_eq!(route.target, PathBuf::from("/h/.ccs/shared").join(name));
            }
            let settings = r.route(OsStr::new("settings.json")).unwrap();
            assert_eq!(settings.kind, RouteKind::SharedFile);
            let plugins = r.route(OsStr::new("plugins")).unwrap();
            assert_eq!(plugins.kind, RouteKind::SharedDir);
            assert!(plugins.is_private(OsStr::new("known_marketplaces.json")));
            assert!(!plugins.is_private(OsStr::new("installed_plugins.json")));
        }
    }

    #[test]
    fn profile_local_and_missing_shared_resources_stay_in_the_instance() {
        let mut p = Profile::for_test("own", Some("team"), false);
        p.shared_resources = SharedResources::ProfileLocal;
        let r = ProfileRoutes::new(&layout(), &p, &ALL_SHARED);
        assert_eq!(r.routes.len(), 1, "only projects: {:?}", r.routes);
        let r = ProfileRoutes::new(&layout(), &Profile::for_test("a", None, false), &["skills"]);
        assert_eq!(r.routes.len(), 1);
        assert!(r.route(OsStr::new("commands")).is_none());
    }

    #[test]
    fn credentials_and_state_are_never_routed() {
        let r = ProfileRoutes::new(
            &layout(),
            &Profile::for_test("w", Some("t"), true),
            &ALL_SHARED,
        );
        for name in [
            ".credentials.json",
            ".claude.json",
            "sessions",
            "history.jsonl",
        ] {
            assert!(
                r.route(OsStr::new(name)).is_none(),
                "{name} must stay private"
            );
            assert_eq!(
                r.backing_for(OsStr::new(name)),
                PathBuf::from("/h/.ccs/instances/w").join(name)
            );
        }
    }

    #[test]
    fn isolated_profile_routes_everything_to_its_instance() {
        let r = ProfileRoutes::new(&layout(), &Profile::for_test("solo", None, false), &[]);
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
        let r = ProfileRoutes::new(
            &layout(),
            &Profile::for_test("work", Some("team"), false),
            &[],
        );
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
        let r = ProfileRoutes::new(
            &layout(),
            &Profile::for_test("work", Some("team"), true),
            &[],
        );
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
        let mut p = Profile::for_test("odd", None, true);
        p.group = Some("team".into());
        assert!(ProfileRoutes::new(&layout(), &p, &[]).routes.is_empty());
    }

    #[test]
    fn lock_dir_names() {
        assert_eq!(lock_dir_profile(OsStr::new("work.lock")), Some("work"));
        assert_eq!(lock_dir_profile(OsStr::new(".lock")), None);
        assert_eq!(lock_dir_profile(OsStr::new("work")), None);
    }
}
