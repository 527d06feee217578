//! Where a symlink in the mount may lead: the containment rule, pure. The fs layer follows a
//! target as the kernel would (`fs::symlinks`) and hands the walk here; nothing here touches
//! the filesystem.
//!
//! - **A tree shared between profiles** (a group store, a shared resource dir): a link may lead
//!   only inside that tree. A relative target is followed by each reader in its own profile
//!   (`../../.credentials.json` in `projects/app/` is the reader's own credentials), so it may
//!   not leave the tree at any step, not even to come back; an absolute target means the same
//!   to every reader, so only where it ends counts.
//! - **A profile's private tree** (its instance): a relative target may not climb above the
//!   profile dir (counted on the target as written), and no target may end in `instances/`
//!   (other than the profile's own) or in another profile's part of the mount.
//! - In both, a walk through `/proc` is refused: `/proc/self/cwd`, `/proc/self/fd/N` and their
//!   kin name whatever process follows the link, so no single answer holds for every reader.
//!
//! A walk that meets more than [`MAX_LINKS`] links is allowed: the kernel stops the same walk
//! with ELOOP, so it leads nowhere.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Links the kernel follows in one path walk before it gives up with ELOOP.
pub const MAX_LINKS: usize = 40;

/// One place a walk stood on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Its real path (past a missing component, the rest is joined as written).
    pub at: PathBuf,
    /// Reached before the walk jumped to an absolute path, so where it is depends on the
    /// profile the reader looks through.
    pub relative: bool,
}

/// How a symlink target resolves: the link's own dir first, then where the walk stood after
/// each component, the last step being where the target leads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    pub steps: Vec<Step>,
    /// It went through `/proc` (and stopped there).
    pub through_proc: bool,
    /// It met more than [`MAX_LINKS`] links (and stopped there).
    pub looped: bool,
}

/// The tree a symlink lives in, as the rule sees it.
#[derive(Clone, Copy, Debug)]
pub enum Home<'a> {
    /// A group store, shared between profiles; `root` is its real path.
    Shared { root: &'a Path },
    /// A shared resource dir (`commands/`, `skills/`, …, really in `~/.claude/`): as `Shared`
    /// for relative targets, but an absolute target may also lead anywhere outside
    /// `forbidden` (the CCS dir and the mount). It means the same to every reader, and
    /// people keep their commands and skills in dotfiles repos.
    SharedResource {
        root: &'a Path,
        forbidden: &'a [PathBuf],
    },
    /// A profile's own tree: `own` is its instance (real path); `forbidden` the instances dir
    /// and the mount point.
    Private {
        own: &'a Path,
        forbidden: &'a [PathBuf],
    },
}

/// Why a symlink was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Out of the shared store or dir it lives in.
    LeavesStore,
    /// Above the profile dir (a relative target, counted as written).
    LeavesProfile,
    /// Into `instances/` or another profile's part of the mount.
    IntoOtherProfile,
    /// Through `/proc`.
    ThroughProc,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::LeavesStore => "it leads out of the shared store it lives in",
            Refusal::LeavesProfile => "it climbs out of the profile",
            Refusal::IntoOtherProfile => {
                "it leads into instances/ or another profile's part of the mount"
            }
            Refusal::ThroughProc => "it goes through /proc, which means another place per reader",
        })
    }
}

/// Whether a symlink at `home` whose target resolves as `walk` describes may stay.
pub fn judge(home: Home, walk: &Walk) -> Result<(), Refusal> {
    if walk.through_proc {
        return Err(Refusal::ThroughProc);
    }
    match home {
        Home::Shared { root } | Home::SharedResource { root, .. } => {
            if walk
                .steps
                .iter()
                .any(|s| s.relative && !s.at.starts_with(root))
            {
                return Err(Refusal::LeavesStore);
            }
            if walk.looped {
                return Ok(());
            }
            match (walk.steps.last(), home) {
                (Some(end), _) if end.at.starts_with(root) => Ok(()),
                (Some(end), Home::SharedResource { forbidden, .. })
                    if !forbidden.iter().any(|f| end.at.starts_with(f)) =>
                {
                    Ok(())
                }
                _ => Err(Refusal::LeavesStore),
            }
        }
        Home::Private { own, forbidden } => {
            if walk.looped {
                return Ok(());
            }
            let Some(end) = walk.steps.last() else {
                return Err(Refusal::IntoOtherProfile);
            };
            if end.at.starts_with(own) || !forbidden.iter().any(|f| end.at.starts_with(f)) {
                Ok(())
            } else {
                Err(Refusal::IntoOtherProfile)
            }
        }
    }
}

/// The rule on a private link's target as written: a relative target created `depth` levels
/// below its profile root may not climb out of the profile (it would reach the mount root and
/// from there another profile). An absolute target may point into `own` (the profile's own dir
/// in the mount) but not into any `forbidden` tree (the instances dir and the rest of the
/// mount), which would bypass the routing. `judge` then checks where it really resolves.
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
mod resource_tests {
    use super::*;

    fn walk(steps: &[(&str, bool)]) -> Walk {
        Walk {
            steps: steps
                .iter()
                .map(|(p, r)| Step {
                    at: PathBuf::from(p),
                    relative: *r,
                })
                .collect(),
            through_proc: false,
            looped: false,
        }
    }

    #[test]
    fn shared_resource_dirs_may_link_out_absolutely_but_not_into_ccs_or_relatively() {
        let forbidden = [PathBuf::from("/h/.ccs"), PathBuf::from("/h/.ccs/mnt")];
        let home = Home::SharedResource {
            root: Path::new("/h/.claude/commands"),
            forbidden: &forbidden,
        };
        let dotfiles = walk(&[("/h/.claude/commands", true), ("/h/dotfiles/x.md", false)]);
        assert_eq!(judge(home, &dotfiles), Ok(()));
        let store = Home::Shared {
            root: Path::new("/h/.claude/commands"),
        };
        assert_eq!(judge(store, &dotfiles), Err(Refusal::LeavesStore));
        let into_ccs = walk(&[
            ("/h/.claude/commands", true),
            ("/h/.ccs/instances/a/.credentials.json", false),
        ]);
        assert_eq!(judge(home, &into_ccs), Err(Refusal::LeavesStore));
        let climbing = walk(&[
            ("/h/.claude/commands", true),
            ("/h/.ccs/instances/a", true),
            ("/h/.ccs/instances/a/.credentials.json", true),
        ]);
        assert_eq!(judge(home, &climbing), Err(Refusal::LeavesStore));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = "/h/.ccs/shared/context-groups/team/projects";
    const OWN: &str = "/h/.ccs/instances/work";

    fn forbidden() -> [PathBuf; 2] {
        [
            PathBuf::from("/h/.ccs/instances"),
            PathBuf::from("/h/.ccs/mnt"),
        ]
    }

    /// A walk from steps written as "r:/path" (reached relatively) or "a:/path" (after an
    /// absolute jump).
    fn walk(steps: &[&str]) -> Walk {
        Walk {
            steps: steps
                .iter()
                .map(|s| {
                    let (kind, at) = s.split_at(2);
                    Step {
                        at: PathBuf::from(at),
                        relative: kind == "r:",
                    }
                })
                .collect(),
            ..Walk::default()
        }
    }

    #[test]
    fn shared_links_stay_inside_their_store() {
        let s = |p: &str| format!("r:{STORE}{p}");
        let a = |p: &str| format!("a:{p}");
        let store = Home::Shared {
            root: Path::new(STORE),
        };
        #[rustfmt::skip]
        let table: Vec<(&str, Vec<String>, Result<(), Refusal>)> = vec![
            ("a sibling file", vec![s("/app"), s("/app/s.jsonl")], Ok(())),
            ("up and into another project",
             vec![s("/app"), s(""), s("/other"), s("/other/s.jsonl")], Ok(())),
            ("the store root itself", vec![s("/app"), s("")], Ok(())),
            ("../../.credentials.json from projects/app",
             vec![s("/app"), s(""), "r:/h/.ccs/shared/context-groups/team".into(),
                  "r:/h/.ccs/shared/context-groups/team/.credentials.json".into()],
             Err(Refusal::LeavesStore)),
            ("out to the profile root and back in (means the reader's projects/)",
             vec![s(""), "r:/h/.ccs/instances/work".into(), s(""), s("/x")],
             Err(Refusal::LeavesStore)),
            ("through a link to a dir, then .. past the root",
             vec![s("/app"), s(""), "r:/h/.ccs/instances/work".into(),
                  "r:/h/.ccs/instances/work/.credentials.json".into()],
             Err(Refusal::LeavesStore)),
            ("absolute, into the store", vec![s("/app"), a("/"), a("/h"), a(&format!("{STORE}/x"))],
             Ok(())),
            ("absolute, out and back in: the same place for every reader",
             vec![s("/app"), a("/h/.ccs/shared"), a(&format!("{STORE}/x"))], Ok(())),
            ("absolute, into an instance",
             vec![s("/app"), a("/"), a("/h/.ccs/instances/work/.credentials.json")],
             Err(Refusal::LeavesStore)),
            ("absolute, elsewhere", vec![s("/app"), a("/tmp/x")], Err(Refusal::LeavesStore)),
            ("a dir that only shares the prefix",
             vec![s("/app"), a(&format!("{STORE}x/y"))], Err(Refusal::LeavesStore)),
        ];
        for (what, steps, want) in table {
            let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
            assert_eq!(judge(store, &walk(&steps)), want, "{what}");
        }
    }

    #[test]
    fn private_links_stay_in_the_profile_or_go_outside_the_ccs_dir() {
        let forbidden = forbidden();
        let home = Home::Private {
            own: Path::new(OWN),
            forbidden: &forbidden,
        };
        #[rustfmt::skip]
        let table: Vec<(&str, Vec<&str>, Result<(), Refusal>)> = vec![
            ("a file of the own instance",
             vec!["r:/h/.ccs/instances/work/debug", "r:/h/.ccs/instances/work/debug/a.txt"],
             Ok(())),
            ("the own projects (a group store)",
             vec!["r:/h/.ccs/instances/work", "r:/h/.ccs/shared/context-groups/team/projects",
                  "r:/h/.ccs/shared/context-groups/team/projects/app"],
             Ok(())),
            ("elsewhere on the machine", vec!["r:/h/.ccs/instances/work", "a:/tmp/x"], Ok(())),
            ("another instance",
             vec!["r:/h/.ccs/instances/work", "a:/h/.ccs/instances/personal/.credentials.json"],
             Err(Refusal::IntoOtherProfile)),
            ("the mount root", vec!["r:/h/.ccs/instances/work", "r:/h/.ccs/mnt"],
             Err(Refusal::IntoOtherProfile)),
            ("the instances dir", vec!["r:/h/.ccs/instances/work", "a:/h/.ccs/instances"],
             Err(Refusal::IntoOtherProfile)),
            ("an instance whose name only shares the prefix",
             vec!["r:/h/.ccs/instances/work", "a:/h/.ccs/instances/workshop/x"],
             Err(Refusal::IntoOtherProfile)),
        ];
        for (what, steps, want) in table {
            assert_eq!(judge(home, &walk(&steps)), want, "{what}");
        }
    }

    #[test]
    fn proc_is_refused_and_loops_are_left_to_the_kernel() {
        let forbidden = forbidden();
        let homes = [
            Home::Shared {
                root: Path::new(STORE),
            },
            Home::Private {
                own: Path::new(OWN),
                forbidden: &forbidden,
            },
        ];
        for home in homes {
            let mut w = walk(&["a:/proc"]);
            w.through_proc = true;
            assert_eq!(judge(home, &w), Err(Refusal::ThroughProc), "{home:?}");
            let inside = match home {
                Home::Shared { root } | Home::SharedResource { root, .. } => root,
                Home::Private { own, .. } => own,
            };
            let mut w = Walk {
                steps: vec![Step {
                    at: inside.join("a"),
                    relative: true,
                }],
                looped: true,
                ..Walk::default()
            };
            assert_eq!(judge(home, &w), Ok(()), "{home:?}: a loop");
            w.steps.push(Step {
                at: "/h/.ccs/instances/work".into(),
                relative: true,
            });
            if matches!(home, Home::Shared { .. }) {
                assert_eq!(
                    judge(home, &w),
                    Err(Refusal::LeavesStore),
                    "out, then a loop"
                );
            }
        }
        assert_eq!(
            judge(
                Home::Shared {
                    root: Path::new(STORE)
                },
                &Walk::default()
            ),
            Err(Refusal::LeavesStore)
        );
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
        let forbidden = forbidden();
        let own = Some(Path::new("/h/.ccs/mnt/b"));
        let table = [
            ("/tmp/x", true),
            ("/h/.ccs/instances/a/.credentials.json", false),
            ("/h/.ccs/instances/b/.credentials.json", false),
            ("/h/.ccs/mnt/a", false),
            ("/h/.ccs/mnt/b/../a/x", false),
            ("/h/.ccs/mnt/b/projects/x", true),
            ("/h/.ccs/x/../instances/a", false),
            ("/h/.ccs/instancesx", true),
        ];
        for (target, want) in table {
            assert_eq!(
                symlink_target_allowed(Path::new(target), 3, own, &forbidden),
                want,
                "{target}"
            );
        }
    }
}
