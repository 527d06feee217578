//! What `ccsfs migrate` does, decided from facts (pure: no file access here). Which instance
//! entries a profile's group routes hide and what each one is; for one file, whether it is new,
//! already there, the shorter side of an append-only transcript, or a conflict; the name a
//! conflict copy gets (CCS's own form); the temp names a run leaves behind and the next one
//! removes; whether a symlink copied into a store would be served by the mount; what to do
//! with an instance dir named with capitals; and the counts the report shows.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

use crate::config::Profile;
use crate::layout::Layout;
use crate::routes::{ProfileRoutes, RouteKind};
use crate::symlink_rule::{self, Home, Refusal, Step, Walk};

/// One instance entry a group route hides, and where the route leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hidden {
    /// The account name.
    pub account: String,
    /// Its instance dir name (CCS's form; also the suffix of conflict copies).
    pub profile: String,
    pub group: String,
    /// `projects` or a continuity dir.
    pub name: &'static str,
    /// `<ccs>/instances/<profile>/<name>`
    pub entry: PathBuf,
    /// The group store dir the mount serves for `name`.
    pub store: PathBuf,
}

/// Every instance entry that the mount's group routes hide, per profile, in config order:
/// exactly the routes `ProfileRoutes` gives the mount (shared resources are not migrated).
/// `instance` says where a profile's instance dir is (its lowercase dir, or the capitalised
/// one a dry run would rename).
pub fn hidden_entries(
    layout: &Layout,
    profiles: &[Profile],
    instance: impl Fn(&Profile) -> PathBuf,
) -> Vec<Hidden> {
    let mut out = Vec::new();
    for p in profiles {
        let routes = ProfileRoutes::new(layout, p, &[]);
        let Some(group) = p.group.clone() else {
            continue;
        };
        for r in routes.routes.iter().filter(|r| r.kind == RouteKind::Group) {
            out.push(Hidden {
                account: p.name.clone(),
                profile: p.dir_name(),
                group: group.clone(),
                name: r.name,
                entry: instance(p).join(r.name),
                store: r.target.clone(),
            });
        }
    }
    out
}

/// What an instance entry is, for the migration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Nothing there.
    Missing,
    /// A symlink to the store itself (CCS's layout): nothing to do.
    InPlace,
    /// A symlink to another dir (claude-failover, claude-swap, an old group): its target's
    /// files are merged; the link is removed, the target left as it is.
    Symlink { target: PathBuf },
    /// A symlink that leads nowhere: it hides nothing and is removed.
    Dangling { target: PathBuf },
    /// A symlink into the store, or to a dir the store is in: left alone, reported.
    Overlaps { target: PathBuf },
    /// A symlink that leads through a mount point: never read through the mount.
    IntoMount { target: PathBuf },
    /// A symlink to a whole config dir (an instance, `instances/`, one holding credentials):
    /// never merged into a shared store.
    ConfigDir { target: PathBuf },
    /// A real dir: its files are merged, then removed.
    RealDir,
    /// A file or something else with a routed name: left alone, reported.
    Other,
}

/// Facts about an instance entry, gathered by the caller.
#[derive(Clone, Debug, Default)]
pub struct EntryFacts {
    pub exists: bool,
    pub is_symlink: bool,
    pub is_dir: bool,
    /// The link's target as written.
    pub link: Option<PathBuf>,
    /// Its target's real path (`None`: dangling).
    pub resolved: Option<PathBuf>,
    /// The link's target, made absolute lexically, lies under a mount point.
    pub into_mount: bool,
    /// The target holds `.credentials.json` or `.claude.json` at its top.
    pub has_credentials: bool,
}

/// What the entry is, given its facts, the store's real path and the real path of
/// `<ccs>/instances`.
pub fn classify(f: &EntryFacts, store_real: &Path, instances_real: &Path) -> EntryKind {
    if !f.exists {
        return EntryKind::Missing;
    }
    if !f.is_symlink {
        return if f.is_dir {
            EntryKind::RealDir
        } else {
            EntryKind::Other
        };
    }
    let target = f.link.clone().unwrap_or_default();
    if f.into_mount {
        return EntryKind::IntoMount { target };
    }
    match &f.resolved {
        None => EntryKind::Dangling { target },
        Some(r) if r == store_real => EntryKind::InPlace,
        Some(r)
            if f.has_credentials
                || instances_real.starts_with(r)
                || r.parent() == Some(instances_real) =>
        {
            EntryKind::ConfigDir { target }
        }
        Some(r) if r.starts_with(store_real) || store_real.starts_with(r) => {
            EntryKind::Overlaps { target }
        }
        Some(_) => EntryKind::Symlink { target },
    }
}

/// How an incoming file compares with the one at its place in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// Same kind and bytes (or the same link target).
    Equal,
    /// The incoming file is a byte-prefix of the store's (the store's is longer).
    IncomingPrefix,
    /// The store's file is a byte-prefix of the incoming one (the incoming is longer).
    StorePrefix,
    /// Anything else (other bytes, another kind, another link target).
    Differ,
}

/// What happens to one incoming file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Nothing at its place: copied there.
    New,
    /// The same file is there: kept once.
    Identical,
    /// An append-only transcript the store already has more of: the store's is kept.
    StoreLonger,
    /// An append-only transcript the incoming has more of: it replaces the store's.
    Extends,
    /// Both kept: the incoming one under a conflict name.
    Conflict,
}

/// Whether the append-only rule applies to a file of this name (transcripts only).
pub fn is_transcript(name: &OsStr) -> bool {
    name.as_encoded_bytes().ends_with(b".jsonl")
}

/// The decision for an incoming file, from how it compares with the store's (`None`: the
/// store has nothing there).
pub fn decide(name: &OsStr, cmp: Option<Compare>) -> Decision {
    match cmp {
        None => Decision::New,
        Some(Compare::Equal) => Decision::Identical,
        Some(Compare::IncomingPrefix) if is_transcript(name) => Decision::StoreLonger,
        Some(Compare::StorePrefix) if is_transcript(name) => Decision::Extends,
        Some(_) => Decision::Conflict,
    }
}

/// The `n`th name a conflict copy of `name` from `profile` may take, as CCS names its own
/// (`SharedManager.getConflictCopyPath`): `<name>.migrated-from-<profile>`, then `-1`, `-2`, …
/// (`profile` sanitized and lowercased as CCS does).
pub fn conflict_name(name: &OsStr, profile: &str, n: u32) -> OsString {
    let mut out = name.to_os_string();
    out.push(".migrated-from-");
    out.push(crate::layout::instance_dir_name(profile));
    if n > 0 {
        out.push(format!("-{n}"));
    }
    out
}

/// Prefix of the temp files a run makes in a store dir before renaming them into place.
pub const TEMP_PREFIX: &str = ".ccsfs-migrate.";

/// The temp name for the `n`th copy of process `pid`.
pub fn temp_name(pid: u32, n: u64) -> OsString {
    format!("{TEMP_PREFIX}{pid}.{n}.tmp").into()
}

/// Whether a name is a temp file a (possibly interrupted) run left behind.
pub fn is_temp_name(name: &OsStr) -> bool {
    let b = name.as_encoded_bytes();
    b.starts_with(TEMP_PREFIX.as_bytes()) && b.ends_with(b".tmp")
}

/// Whether a symlink with `target`, placed in the store dir `dir` (real path) of the store
/// `root` (real path), is one the mount would serve (`symlink_rule`, `Home::Shared`). The
/// target is followed lexically (links met on the way are not read: the mount judges each
/// link again at every readlink, so this only keeps a run from making links that would not
/// work). `aliases` maps a path through the mount (`<mnt>/<p>/projects`) to the store it
/// shows, as Claude writes absolute links through its config dir.
pub fn link_verdict(
    root: &Path,
    dir: &Path,
    target: &Path,
    aliases: &[(PathBuf, PathBuf)],
) -> Result<(), Refusal> {
    let mut walk = Walk::default();
    let relative = !target.is_absolute();
    let mut at = if relative {
        dir.to_path_buf()
    } else {
        PathBuf::from("/")
    };
    walk.steps.push(Step {
        at: at.clone(),
        relative,
    });
    for c in target.components() {
        match c {
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(n) => at.push(n),
            _ => continue,
        }
        if at.starts_with("/proc") || at.starts_with("/dev/fd") {
            walk.through_proc = true;
            break;
        }
        walk.steps.push(Step {
            at: at.clone(),
            relative,
        });
    }
    if let Some(last) = walk.steps.last_mut() {
        let end = crate::layout::lexical(&last.at);
        for (from, to) in aliases {
            if let Ok(rest) = end.strip_prefix(from) {
                last.at = to.join(rest);
                break;
            }
        }
    }
    symlink_rule::judge(Home::Shared { root }, &walk)
}

/// What to do with an instance dir spelt as the account is (capitals, older CCS) when CCS
/// now uses the sanitized, lowercased name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseAction {
    /// Nothing to do (same name, no old dir, or the two names are one dir).
    None,
    /// Rename the old dir to the new name.
    Rename,
    /// Both exist: report, leave both (private instances hold credentials; never merged).
    Both,
}

pub fn case_action(
    account: &str,
    old_is_dir: bool,
    new_exists: bool,
    same_dir: bool,
) -> CaseAction {
    if account == crate::layout::instance_dir_name(account) || !old_is_dir || same_dir {
        CaseAction::None
    } else if new_exists {
        CaseAction::Both
    } else {
        CaseAction::Rename
    }
}

/// Counts for one source (and totals).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Files (and links) the source holds.
    pub files: u64,
    pub bytes: u64,
    pub new: u64,
    pub new_bytes: u64,
    pub identical: u64,
    pub identical_bytes: u64,
    /// Transcripts the store has more of (the incoming copy is dropped).
    pub store_longer: u64,
    pub store_longer_bytes: u64,
    /// Transcripts the incoming copy extends (it replaces the store's).
    pub extended: u64,
    pub extended_bytes: u64,
    pub conflicts: u64,
    pub conflict_bytes: u64,
}

impl Counts {
    pub fn add(&mut self, d: Decision, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
        let (n, b) = match d {
            Decision::New => (&mut self.new, &mut self.new_bytes),
            Decision::Identical => (&mut self.identical, &mut self.identical_bytes),
            Decision::StoreLonger => (&mut self.store_longer, &mut self.store_longer_bytes),
            Decision::Extends => (&mut self.extended, &mut self.extended_bytes),
            Decision::Conflict => (&mut self.conflicts, &mut self.conflict_bytes),
        };
        *n += 1;
        *b += bytes;
    }

    pub fn merge(&mut self, o: &Counts) {
        self.files += o.files;
        self.bytes += o.bytes;
        self.new += o.new;
        self.new_bytes += o.new_bytes;
        self.identical += o.identical;
        self.identical_bytes += o.identical_bytes;
        self.store_longer += o.store_longer;
        self.store_longer_bytes += o.store_longer_bytes;
        self.extended += o.extended;
        self.extended_bytes += o.extended_bytes;
        self.conflicts += o.conflicts;
        self.conflict_bytes += o.conflict_bytes;
    }

    /// "12 files, 3.4 MiB: 8 new, 2 identical, 1 extended, 1 conflict".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.new, "new"),
            (self.identical, "identical"),
            (
                self.extended,
                "extended (longer transcript replaces the store's)",
            ),
            (self.store_longer, "already in the store, longer"),
            (
                self.conflicts,
                "conflicting (kept under .migrated-from names)",
            ),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        format!(
            "{} file{}, {}{}{}",
            self.files,
            if self.files == 1 { "" } else { "s" },
            human_bytes(self.bytes),
            if parts.is_empty() { "" } else { ": " },
            parts.join(", ")
        )
    }
}

/// Bytes for people: `812 B`, `3.4 KiB`, `12.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Per-store totals (the key is the store dir), for the closing lines.
pub type StoreTotals = BTreeMap<PathBuf, Counts>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_entries_are_the_group_routes_only() {
        let l = Layout::new(PathBuf::from("/h/.ccs"));
        let profiles = [
            Profile::for_test("Work", Some("team"), true),
            Profile::for_test("personal", Some("team"), false),
            Profile::for_test("solo", None, false),
        ];
        let h = hidden_entries(&l, &profiles, |p| l.instance(&p.name));
        let names: Vec<_> = h.iter().map(|e| (e.profile.as_str(), e.name)).collect();
        assert_eq!(
            names,
            [
                ("work", "projects"),
                ("work", "session-env"),
                ("work", "file-history"),
                ("work", "shell-snapshots"),
                ("work", "todos"),
                ("personal", "projects"),
            ]
        );
        assert_eq!(h[0].entry, PathBuf::from("/h/.ccs/instances/work/projects"));
        assert_eq!(
            h[0].store,
            PathBuf::from("/h/.ccs/shared/context-groups/team/projects")
        );
        assert_eq!(
            h[4].store,
            PathBuf::from("/h/.ccs/shared/context-groups/team/continuity/todos")
        );
    }

    #[test]
    fn entries_are_classified_by_where_they_lead() {
        let store = Path::new("/h/.ccs/shared/context-groups/team/projects");
        let inst = Path::new("/h/.ccs/instances");
        let link = |resolved: Option<&str>| EntryFacts {
            exists: true,
            is_symlink: true,
            link: Some("x".into()),
            resolved: resolved.map(PathBuf::from),
            ..Default::default()
        };
        assert_eq!(
            classify(&EntryFacts::default(), store, inst),
            EntryKind::Missing
        );
        assert_eq!(
            classify(&link(Some(store.to_str().unwrap())), store, inst),
            EntryKind::InPlace
        );
        assert!(matches!(
            classify(&link(Some("/h/.claude-projects-shared")), store, inst),
            EntryKind::Symlink { .. }
        ));
        assert!(matches!(
            classify(&link(None), store, inst),
            EntryKind::Dangling { .. }
        ));
        assert!(matches!(
            classify(
                &link(Some("/h/.ccs/shared/context-groups/team/projects/a")),
                store,
                inst
            ),
            EntryKind::Overlaps { .. }
        ));
        assert!(matches!(
            classify(&link(Some("/h/.ccs/shared")), store, inst),
            EntryKind::Overlaps { .. }
        ));
        for config_dir in [
            "/h/.ccs/instances/work",
            "/h/.ccs/instances",
            "/h/.ccs",
            "/h",
        ] {
            assert!(
                matches!(
                    classify(&link(Some(config_dir)), store, inst),
                    EntryKind::ConfigDir { .. }
                ),
                "{config_dir}"
            );
        }
        assert!(matches!(
            classify(&link(Some("/h/.ccs/instances/work/projects")), store, inst),
            EntryKind::Symlink { .. }
        ));
        let mut creds = link(Some("/h/.claude"));
        creds.has_credentials = true;
        assert!(matches!(
            classify(&creds, store, inst),
            EntryKind::ConfigDir { .. }
        ));
        let mut m = link(Some("/elsewhere"));
        m.into_mount = true;
        assert!(matches!(
            classify(&m, store, inst),
            EntryKind::IntoMount { .. }
        ));
        let dir = EntryFacts {
            exists: true,
            is_dir: true,
            ..Default::default()
        };
        assert_eq!(classify(&dir, store, inst), EntryKind::RealDir);
        let file = EntryFacts {
            exists: true,
            ..Default::default()
        };
        assert_eq!(classify(&file, store, inst), EntryKind::Other);
    }

    #[test]
    fn decisions_follow_the_merge_rules() {
        let t = OsStr::new("s.jsonl");
        let other = OsStr::new("notes.md");
        assert_eq!(decide(t, None), Decision::New);
        assert_eq!(decide(t, Some(Compare::Equal)), Decision::Identical);
        assert_eq!(
            decide(t, Some(Compare::IncomingPrefix)),
            Decision::StoreLonger
        );
        assert_eq!(decide(t, Some(Compare::StorePrefix)), Decision::Extends);
        assert_eq!(decide(t, Some(Compare::Differ)), Decision::Conflict);
        // Only transcripts are append-only: a shorter memory file is another version.
        assert_eq!(
            decide(other, Some(Compare::IncomingPrefix)),
            Decision::Conflict
        );
        assert_eq!(
            decide(other, Some(Compare::StorePrefix)),
            Decision::Conflict
        );
        assert_eq!(decide(other, Some(Compare::Equal)), Decision::Identical);
    }

    #[test]
    fn conflict_names_match_ccs() {
        let n = OsStr::new("s.jsonl");
        assert_eq!(conflict_name(n, "work", 0), "s.jsonl.migrated-from-work");
        assert_eq!(conflict_name(n, "Work", 0), "s.jsonl.migrated-from-work");
        assert_eq!(conflict_name(n, "a.b", 2), "s.jsonl.migrated-from-a-b-2");
    }

    #[test]
    fn temp_names_are_recognised() {
        let t = temp_name(42, 7);
        assert!(is_temp_name(&t));
        assert!(t.as_encoded_bytes().starts_with(b"."));
        assert!(!is_transcript(&t));
        assert!(!is_temp_name(OsStr::new("s.jsonl")));
        assert!(!is_temp_name(OsStr::new(".ccsfs")));
    }

    #[test]
    fn links_are_judged_as_the_mount_would() {
        let root = Path::new("/s/projects");
        let dir = Path::new("/s/projects/app");
        let ok = |t: &str| link_verdict(root, dir, Path::new(t), &[]);
        assert!(ok("s.jsonl").is_ok());
        assert!(ok("../other/s.jsonl").is_ok());
        assert_eq!(ok("../../.credentials.json"), Err(Refusal::LeavesStore));
        assert!(ok("/s/projects/b/x").is_ok());
        assert_eq!(ok("/etc/passwd"), Err(Refusal::LeavesStore));
        assert_eq!(ok("/proc/self/root/etc"), Err(Refusal::ThroughProc));
        let aliases = [(PathBuf::from("/m/work/projects"), root.to_path_buf())];
        assert!(link_verdict(root, dir, Path::new("/m/work/projects/b/x"), &aliases).is_ok());
        assert!(link_verdict(root, dir, Path::new("/m/work/.claude.json"), &aliases).is_err());
    }

    #[test]
    fn capitalised_instance_dirs() {
        assert_eq!(case_action("work", true, true, true), CaseAction::None);
        assert_eq!(case_action("Work", false, false, false), CaseAction::None);
        assert_eq!(case_action("Work", true, false, false), CaseAction::Rename);
        assert_eq!(case_action("Work", true, true, false), CaseAction::Both);
        assert_eq!(case_action("Work", true, true, true), CaseAction::None);
    }

    #[test]
    fn counts_add_up() {
        let mut c = Counts::default();
        c.add(Decision::New, 10);
        c.add(Decision::Conflict, 5);
        c.add(Decision::Identical, 1);
        assert_eq!((c.files, c.bytes, c.new_bytes, c.conflicts), (3, 16, 10, 1));
        assert!(
            c.describe()
                .starts_with("3 files, 16 B: 1 new, 1 identical")
        );
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
