//! ccsfs's `config.yaml` against the real CCS (`@kaitranntt/ccs` from npm, run offline with a
//! stand-in `claude` that exits 0): what `ccsfs profile add/remove` writes, `ccs auth list --json`
//! parses with the same accounts, modes and groups (also on a fresh dir); accounts that
//! `ccs auth create` makes are listed by ccsfs under CCS's instance dir name; and with both
//! writing at once, under CCS's config lock, no update is lost.
//!
//! The real `ccs` is `$CCS_BIN`, else `ccs` on PATH, else
//! `$CCSFS_E2E_CACHE/node_modules/.bin/ccs` (the cache scripts/test.sh installs it into, see
//! tests/common/prereq.rs). These tests are
//! `#[ignore]`d so that a plain `cargo test` lists them as ignored; `scripts/test.sh` runs them,
//! and when run they fail (never pass) if `ccs` is missing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, stderr, stdout};
use serde_json::Value as Json;
use yaml_serde::Value as Yaml;

/// The real `ccs`, or a panic that says how to get it.
fn ccs_bin() -> PathBuf {
    common::prereq::require_ccs()
}

/// A private HOME with its CCS dir (`$HOME/.ccs`, also given as `CCS_DIR`), and a dir holding
/// the stand-in `claude`, put first on PATH for ccs.
struct World {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    ccs_dir: PathBuf,
    path: std::ffi::OsString,
    ccs: PathBuf,
}

impl World {
    fn new() -> World {
        let ccs = ccs_bin();
        let tmp = tempfile::Builder::new()
            .prefix("ccsfs-ccs-")
            .tempdir()
            .unwrap();
        let home = tmp.path().join("home");
        let stand_in = tmp.path().join("bin");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&stand_in).unwrap();
        let claude = stand_in.join("claude");
        std::fs::write(&claude, "#!/bin/sh\nexit 0\n").unwrap();
        let mut perms = std::fs::metadata(&claude).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&claude, perms).unwrap();
        let mut dirs = vec![stand_in];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        World {
            ccs_dir: home.join(".ccs"),
            home,
            path: std::env::join_paths(dirs).unwrap(),
            ccs,
            _tmp: tmp,
        }
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("HOME", &self.home)
            .env("CCS_DIR", &self.ccs_dir)
            .env("PATH", &self.path)
            .env_remove("CCS_HOME")
            .env_remove("CCS_CLAUDE_PATH")
            .env_remove("CLAUDE_CONFIG_DIR")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the real `ccs ARGS…`.
    fn ccs(&self, args: &[&str]) -> Output {
        self.command(&self.ccs)
            .args(args)
            .output()
            .expect("run ccs")
    }

    /// Runs `ccsfs ARGS…` on the same CCS dir (found through `CCS_DIR`, as a user's would be).
    fn ccsfs(&self, args: &[&str]) -> Output {
        self.command(Path::new(&bin()))
            .args(args)
            .output()
            .expect("run ccsfs")
    }

    /// `ccs ARGS…`, which must succeed.
    fn ccs_ok(&self, args: &[&str]) -> String {
        let out = self.ccs(args);
        assert!(
            out.status.success(),
            "ccs {args:?} failed ({}):\n{}{}\nconfig.yaml:\n{}",
            out.status,
            stdout(&out),
            stderr(&out),
            self.config_text()
        );
        stdout(&out)
    }

    /// `ccsfs ARGS…`, which must succeed.
    fn ccsfs_ok(&self, args: &[&str]) -> String {
        let out = self.ccsfs(args);
        assert!(
            out.status.success(),
            "ccsfs {args:?} failed: {}",
            stderr(&out)
        );
        stdout(&out)
    }

    fn config_text(&self) -> String {
        std::fs::read_to_string(self.ccs_dir.join("config.yaml")).unwrap_or_default()
    }

    fn config(&self) -> Yaml {
        yaml_serde::from_str(&self.config_text()).expect("config.yaml parses")
    }

    /// Account names in config.yaml.
    fn accounts(&self) -> BTreeSet<String> {
        match self.config().get("accounts") {
            Some(Yaml::Mapping(m)) => m.keys().map(|k| k.as_str().unwrap().to_string()).collect(),
            _ => BTreeSet::new(),
        }
    }

    /// `ccs auth list --json`: it must exit 0; its profiles by name.
    fn ccs_profiles(&self) -> Vec<Json> {
        let text = self.ccs_ok(&["auth", "list", "--json"]);
        // CCS's first run in a new HOME prints its set-up notes before the JSON.
        let json = match text.find("\n{") {
            Some(at) if !text.starts_with('{') => &text[at + 1..],
            _ => &text,
        };
        let doc: Json = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("ccs auth list --json is not JSON ({e}):\n{text}"));
        doc["profiles"]
            .as_array()
            .unwrap_or_else(|| panic!("no profiles array:\n{text}"))
            .clone()
    }

    fn instance_dirs(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.ccs_dir.join("instances"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn find<'a>(profiles: &'a [Json], name: &str) -> &'a Json {
    profiles
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("ccs does not list {name}: {profiles:#?}"))
}

fn names(profiles: &[Json]) -> BTreeSet<String> {
    profiles
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
#[ignore = "needs the real ccs from npm; scripts/test.sh runs ignored tests"]
fn profile_add_on_a_fresh_dir_is_read_by_ccs() {
    let w = World::new();
    assert!(!w.ccs_dir.exists());
    let said = w.ccsfs_ok(&["profile", "add", "Delta", "--group", "Team"]);
    assert!(!said.contains("remount"), "{said}");
    assert!(said.contains("serves it as delta"), "{said}");

    let text = w.config_text();
    assert!(text.starts_with("version: 13\n"), "{text}");
    assert!(
        text.contains("    created: \""),
        "created is not quoted:\n{text}"
    );
    assert!(text.contains("    last_used: null\n"), "{text}");
    // Only CCS's (lowercase) instance dir, and no lock left behind.
    assert_eq!(w.instance_dirs(), set(&["delta"]));
    assert!(!w.ccs_dir.join("config.yaml.lock").exists());

    let profiles = w.ccs_profiles();
    assert_eq!(names(&profiles), set(&["Delta"]), "{profiles:#?}");
    let delta = find(&profiles, "Delta");
    assert_eq!(delta["context_mode"], "shared", "{delta:#}");
    assert_eq!(delta["context_group"], "team", "{delta:#}");
    assert_eq!(delta["continuity_mode"], "standard", "{delta:#}");
    assert_eq!(delta["shared_resource_mode"], "shared", "{delta:#}");
    assert!(
        delta["created"].as_str().is_some_and(|c| c.ends_with('Z')),
        "{delta:#}"
    );
    let instance = w.ccs_dir.join("instances/delta");
    assert_eq!(
        delta["instance_path"].as_str(),
        Some(instance.to_str().unwrap()),
        "{delta:#}"
    );

    // More modes, read back the same way.
    w.ccsfs_ok(&["profile", "add", "solo"]);
    w.ccsfs_ok(&["profile", "add", "deep", "--group", "team", "--deeper"]);
    w.ccsfs_ok(&["profile", "add", "Own", "--profile-local"]);
    let profiles = w.ccs_profiles();
    assert_eq!(
        names(&profiles),
        set(&["Delta", "Own", "deep", "solo"]),
        "{profiles:#?}"
    );
    assert_eq!(find(&profiles, "solo")["context_mode"], "isolated");
    let deep = find(&profiles, "deep");
    assert_eq!(deep["context_mode"], "shared", "{deep:#}");
    assert_eq!(deep["context_group"], "team", "{deep:#}");
    assert_eq!(deep["continuity_mode"], "deeper", "{deep:#}");
    assert_eq!(
        find(&profiles, "Own")["shared_resource_mode"],
        "profile-local"
    );
    assert_eq!(w.instance_dirs(), set(&["deep", "delta", "own", "solo"]));
}

#[test]
#[ignore = "needs the real ccs from npm; scripts/test.sh runs ignored tests"]
fn accounts_made_by_ccs_are_listed_under_their_dir_name() {
    let w = World::new();
    w.ccs_ok(&[
        "auth",
        "create",
        "Echo",
        "--share-context",
        "--context-group",
        "g2",
    ]);
    // CCS's own `.locks` is there too, and is no profile.
    assert!(
        w.instance_dirs().contains("echo"),
        "{:?}",
        w.instance_dirs()
    );

    let list = w.ccsfs_ok(&["profile", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 1, "{list}");
    let fields: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(fields[0], "echo", "{list}");
    assert!(
        fields[1].contains("shared") && fields[1].contains("g2"),
        "{list}"
    );
    assert!(
        lines[0].contains("Echo"),
        "the account name is not shown: {list}"
    );

    // Changing it through ccsfs keeps what CCS wrote, and CCS reads the change.
    let created = w.config()["accounts"]["Echo"]["created"].clone();
    assert!(created.is_string(), "{created:?}");
    w.ccsfs_ok(&["profile", "add", "Echo", "--group", "g2", "--deeper"]);
    assert_eq!(w.config()["accounts"]["Echo"]["created"], created);
    let echo = w.ccs_profiles();
    let echo = find(&echo, "Echo");
    assert_eq!(echo["continuity_mode"], "deeper", "{echo:#}");
    assert_eq!(echo["context_group"], "g2", "{echo:#}");
    let mut dirs = w.instance_dirs();
    dirs.remove(".locks");
    assert_eq!(dirs, set(&["echo"]));
}

#[test]
#[ignore = "needs the real ccs from npm; scripts/test.sh runs ignored tests"]
fn profile_remove_leaves_a_config_ccs_parses() {
    let w = World::new();
    w.ccs_ok(&["auth", "create", "Echo"]);
    w.ccsfs_ok(&["profile", "add", "Delta", "--group", "team"]);
    assert_eq!(names(&w.ccs_profiles()), set(&["Delta", "Echo"]));

    w.ccsfs_ok(&["profile", "remove", "Echo"]);
    let profiles = w.ccs_profiles();
    assert_eq!(names(&profiles), set(&["Delta"]));
    assert_eq!(find(&profiles, "Delta")["context_group"], "team");
    // The data stays.
    assert!(w.ccs_dir.join("instances/echo").is_dir());

    w.ccsfs_ok(&["profile", "remove", "Delta"]);
    assert!(w.ccs_profiles().is_empty());
    // CCS still works on it: it can create again.
    w.ccs_ok(&["auth", "create", "Foxtrot"]);
    assert_eq!(names(&w.ccs_profiles()), set(&["Foxtrot"]));
}

#[test]
#[ignore = "needs the real ccs from npm; scripts/test.sh runs ignored tests"]
fn ccs_and_ccsfs_writing_at_once_lose_no_update() {
    const N: usize = 5;
    let w = World::new();
    // CCS's first run sets up its dir (and writes config.yaml outside any mutate); let it
    // finish first, so that only the two writers' account updates race.
    w.ccs_ok(&["auth", "list"]);
    assert!(w.ccs_dir.join("config.yaml").is_file());

    let started = Instant::now();
    let ccs_names: Vec<String> = (0..N).map(|i| format!("Ccs{i}")).collect();
    let ccsfs_names = std::thread::scope(|s| {
        let creator = s.spawn(|| {
            for name in &ccs_names {
                w.ccs_ok(&["auth", "create", name]);
            }
        });
        // Add profiles for as long as CCS keeps creating (at least a few), so the two overlap.
        let mut added = Vec::new();
        while added.len() < 3 || (!creator.is_finished() && added.len() < 400) {
            let name = format!("fs{}", added.len());
            w.ccsfs_ok(&["profile", "add", &name, "--group", "race"]);
            added.push(name);
            std::thread::sleep(Duration::from_millis(20));
        }
        creator.join().expect("ccs auth create failed");
        added
    });
    let elapsed = started.elapsed();

    let mut want: BTreeSet<String> = ccs_names.iter().cloned().collect();
    want.extend(ccsfs_names.iter().cloned());
    let have = w.accounts();
    let lost: Vec<_> = want.difference(&have).collect();
    assert!(
        lost.is_empty(),
        "lost updates: {lost:?} ({} by ccs, {} by ccsfs in {elapsed:?})",
        N,
        ccsfs_names.len()
    );
    assert_eq!(names(&w.ccs_profiles()), want);
    assert!(!w.ccs_dir.join("config.yaml.lock").exists());
    eprintln!(
        "{N} ccs auth create and {} ccsfs profile add at once in {elapsed:?}: none lost",
        ccsfs_names.len()
    );
}
