//! The command line on bad input and the `profile` commands, against the real binary: every
//! refusal (malformed YAML, unknown modes, bad group and profile names, deeper without shared,
//! missing / already mounted / dead mount points, no /dev/fuse, no fusermount3 when unprivileged,
//! unknown `-o` options) exits non-zero with exactly one `ccsfs: ` line naming the fix and leaves
//! no mount or daemon behind; unknown config keys are ignored; `profile add/remove/list` keep
//! every other key and value of config.yaml and never touch it when they refuse.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    Ccs, THREE_PROFILES, assert_refused, bin, fs_type, is_mounted, mount_count, prereq,
    process_gone, processes_mentioning, stderr, stdout, wait_until,
};
use yaml_serde::Value;

const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// The mount point is not mounted, no daemon for this CCS dir runs and none is recorded.
fn assert_nothing_left(ccs: &Ccs, mp: &Path) {
    assert!(!is_mounted(mp), "{} was left mounted", mp.display());
    let procs = processes_mentioning(&ccs.ccs);
    assert!(procs.is_empty(), "processes left behind: {procs:?}");
    // `<mount point>.lock` files stay (the lock of `mount`, see `mountpoint`); they record
    // nothing.
    let run_files: Vec<PathBuf> = std::fs::read_dir(ccs.ccs.join("run"))
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "lock"))
        .collect();
    assert!(
        run_files.is_empty(),
        "daemon records left behind: {run_files:?}"
    );
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn mnt(ccs: &Ccs) -> &str {
    ccs.mnt.to_str().unwrap()
}

/// Mounts a CCS dir holding `config` and expects a refusal naming all `needles`, with nothing
/// left behind.
fn config_is_refused(config: &str, needles: &[&str]) -> String {
    let ccs = Ccs::new(Some(config));
    let out = ccs.cli(&["mount", mnt(&ccs)]);
    let line = assert_refused(&out, needles);
    assert_nothing_left(&ccs, &ccs.mnt);
    line
}

fn config_text(ccs: &Ccs) -> Vec<u8> {
    std::fs::read(ccs.ccs.join("config.yaml")).unwrap()
}

fn config_value(ccs: &Ccs) -> Value {
    yaml_serde::from_slice(&config_text(ccs)).expect("config.yaml parses")
}

/// `doc.accounts[name]`
fn account<'a>(doc: &'a Value, name: &str) -> Option<&'a Value> {
    doc.get("accounts")?.get(name)
}

/// `doc` without `accounts[name]`.
fn without_account(doc: &Value, name: &str) -> Value {
    let mut doc = doc.clone();
    if let Some(Value::Mapping(accounts)) = doc.get_mut("accounts") {
        accounts.shift_remove(name);
    }
    doc
}

fn top_level_keys(doc: &Value) -> Vec<Value> {
    doc.as_mapping().unwrap().keys().cloned().collect()
}

/// A CCS-style config with other sections, extra keys in accounts and awkward values.
const RICH_CONFIG: &str = r#"version: 8
# a comment CCS would regenerate
default: work
accounts:
  work:
    created: "2026-02-24T10:00:00.000Z"
    last_used: 2026-03-01T09:30:00.000Z
    context_mode: shared
    context_group: team
    continuity_mode: deeper
    notes: "keep: this"
  solo:
    created: 2026-02-24
    last_used: null
    context_group: ignored-for-isolated
    extra:
      nested: [1, 2.5, "three", true, null]
      deeper: {a: {b: {c: d}}}
  bare:
profiles:
  glm:
    type: api
    settings: ~/.ccs/glm.settings.json
    env: {ANTHROPIC_BASE_URL: "https://example.com/api", API_TIMEOUT_MS: "3000"}
cliproxy:
  oauth_accounts: {}
  providers: [gemini, codex, agy]
  variants: []
preferences:
  theme: auto
  telemetry: false
  yes_string: "yes"
  on_plain: on
  multi: |
    line one
    line "two"
  tilde: ~
  number_string: "0123"
  float: 1.5
  neg: -3
  big: 12345678901234
  unicode: "café ☕"
  quote: 'it''s'
  colon: "a: b"
  hash: "a # b"
  empty: ""
  spaces: "  padded  "
  list_of_maps:
    - name: one
      value: 1
    - name: two
      value: [x, y]
anchors:
  base: &base {x: 1, y: [a, b]}
  copy: *base
"#;

// ---------------------------------------------------------------------------------------------
// 5. bad config
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_yaml_is_refused_with_its_line_number() {
    config_is_refused(
        "accounts:\n  work:\n  bad: x: y\n",
        &["config.yaml", "line 3", "YAML"],
    );
}

#[test]
fn unknown_context_mode_is_refused() {
    config_is_refused(
        "accounts:\n  work:\n    context_mode: sharded\n",
        &["sharded", "context_mode", "isolated or shared"],
    );
}

#[test]
fn unknown_continuity_mode_is_refused() {
    config_is_refused(
        "accounts:\n  work:\n    context_mode: shared\n    continuity_mode: deepest\n",
        &["deepest", "continuity_mode", "standard or deeper"],
    );
}

#[test]
fn bad_group_names_are_refused() {
    for group in ["1team", "\"te am!\""] {
        let config =
            format!("accounts:\n  work:\n    context_mode: shared\n    context_group: {group}\n");
        let shown = group.trim_matches('"');
        config_is_refused(&config, &[shown, "context_group", "letter"]);
    }
}

#[test]
fn bad_profile_name_is_refused() {
    config_is_refused(
        "accounts:\n  9lives:\n    context_mode: isolated\n",
        &["9lives", "letter"],
    );
}

#[test]
fn deeper_without_shared_is_refused() {
    config_is_refused(
        "accounts:\n  work:\n    continuity_mode: deeper\n",
        &["deeper", "context_mode: shared"],
    );
    config_is_refused(
        "accounts:\n  work:\n    context_mode: isolated\n    continuity_mode: deeper\n",
        &["deeper", "context_mode: shared"],
    );
}

// ---------------------------------------------------------------------------------------------
// 5. bad mount points and environments
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_mount_point_is_refused_with_mkdir_hint() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let mp = ccs.tmp.path().join("no/such/dir");
    let out = ccs.cli(&["mount", mp.to_str().unwrap()]);
    assert_refused(&out, &[&format!("mkdir -p {}", mp.display())]);
    assert!(!mp.exists(), "the missing mount point was created anyway");
    assert_nothing_left(&ccs, &mp);
}

#[test]
fn mounting_twice_is_refused_and_the_first_mount_keeps_working() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let pid = ccs.daemon_pid().expect("daemon pid");
    assert!(
        processes_mentioning(&ccs.ccs)
            .iter()
            .any(|(p, _)| *p == pid),
        "the process scan does not find the running daemon {pid}"
    );

    let out = ccs.cli(&["mount", mnt(&ccs)]);
    assert_refused(&out, &["already mounted", "ccsfs unmount"]);
    assert_eq!(mount_count(&ccs.mnt), 1, "a second mount was stacked");
    assert_eq!(ccs.daemon_pid(), Some(pid));
    assert!(!process_gone(pid), "the first daemon died");
    let daemons: Vec<_> = processes_mentioning(&ccs.ccs)
        .into_iter()
        .filter(|(p, _)| *p != pid)
        .collect();
    assert!(daemons.is_empty(), "extra processes: {daemons:?}");

    assert_eq!(fs_type(&ccs.mnt), Ok(FUSE_SUPER_MAGIC));
    assert_eq!(names(&ccs.mnt), set(&["personal", "solo", "work"]));
    std::fs::write(ccs.profile("solo").join("still-works"), "yes").unwrap();
    assert_eq!(
        std::fs::read_to_string(ccs.instance("solo").join("still-works")).unwrap(),
        "yes"
    );
}

#[test]
fn mount_point_with_a_dead_daemon_is_refused_with_unmount_hint() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    ccs.kill_daemon();
    assert!(
        wait_until(Duration::from_secs(5), || {
            std::fs::metadata(&ccs.mnt)
                .err()
                .is_some_and(|e| e.raw_os_error() == Some(libc::ENOTCONN))
        }),
        "the dead mount never reported ENOTCONN"
    );

    let out = ccs.cli(&["mount", mnt(&ccs)]);
    assert_refused(&out, &[&format!("ccsfs unmount {}", ccs.mnt.display())]);
    assert_eq!(
        mount_count(&ccs.mnt),
        1,
        "a mount was stacked on the dead one"
    );
    let procs = processes_mentioning(&ccs.ccs);
    assert!(procs.is_empty(), "a daemon was started: {procs:?}");
}

#[test]
#[ignore = "needs root (unshare -m hides /dev/fuse); scripts/test.sh runs it"]
fn missing_dev_fuse_is_refused() {
    prereq::require_root();
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs none /dev && exec "$0" --ccs-dir "$1" mount "$2""#)
        .arg(bin())
        .arg(&ccs.ccs)
        .arg(&ccs.mnt)
        .output()
        .expect("run unshare");
    assert_refused(&out, &["/dev/fuse", "modprobe fuse"]);
    assert_nothing_left(&ccs, &ccs.mnt);
}

#[test]
#[ignore = "needs root (unshare -m hides fusermount3); scripts/test.sh runs it"]
fn missing_fusermount3_is_refused_for_an_unprivileged_user() {
    prereq::require_root();
    const NOBODY: u32 = 65534;
    let ccs = Ccs::new(Some(THREE_PROFILES));
    std::fs::set_permissions(ccs.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for p in [&ccs.ccs, &ccs.ccs.join("config.yaml"), &ccs.mnt] {
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    // Every fusermount the binary could find: PATH, /bin and /usr/bin.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut hide: BTreeSet<PathBuf> = BTreeSet::new();
    for dir in
        std::env::split_paths(&path).chain([PathBuf::from("/bin"), PathBuf::from("/usr/bin")])
    {
        for name in ["fusermount3", "fusermount"] {
            if let Ok(real) = dir.join(name).canonicalize()
                && real.is_file()
            {
                hide.insert(real);
            }
        }
    }
    let mut script = String::new();
    for p in &hide {
        script.push_str(&format!(
            "mount --bind /dev/null '{}' || exit 99; ",
            p.display()
        ));
    }
    script.push_str(&format!(
        r#"exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "$0" --ccs-dir "$1" mount "$2""#
    ));
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .arg(bin())
        .arg(&ccs.ccs)
        .arg(&ccs.mnt)
        .output()
        .expect("run unshare");
    assert_ne!(
        out.status.code(),
        Some(99),
        "setup failed: {}",
        stderr(&out)
    );
    assert_refused(&out, &["fusermount3", "fuse3"]);
    assert_nothing_left(&ccs, &ccs.mnt);
}

#[test]
fn unknown_mount_option_is_refused() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let out = ccs.cli(&["mount", "-o", "ro", mnt(&ccs)]);
    assert_refused(&out, &["ro", "allow_other"]);
    assert_nothing_left(&ccs, &ccs.mnt);
    let out = ccs.cli(&["mount", "-o", "allow_other,debug", mnt(&ccs)]);
    assert_refused(&out, &["debug", "allow_other"]);
    assert_nothing_left(&ccs, &ccs.mnt);
}

// ---------------------------------------------------------------------------------------------
// 7. unknown keys
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_config_keys_are_ignored_without_complaint() {
    let ccs = Ccs::new(Some(RICH_CONFIG));
    let out = ccs.cli(&["mount", mnt(&ccs)]);
    let _guard = common::Mounted { ccs: &ccs };
    assert!(out.status.success(), "mount failed: {}", stderr(&out));
    assert_eq!(stderr(&out), "", "mount complained");
    assert_eq!(names(&ccs.mnt), set(&["bare", "solo", "work"]));

    let out = ccs.cli(&["status", mnt(&ccs)]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "", "status complained");

    let out = ccs.cli(&["profile", "list"]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "", "profile list complained");
    let list = stdout(&out);
    let line = |name: &str| {
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"))
            .to_string()
    };
    let work = line("work");
    assert!(
        work.contains("shared") && work.contains("team") && work.contains("deeper"),
        "{work}"
    );
    assert!(line("solo").contains("isolated"));
    assert!(line("bare").contains("isolated"));
}

// ---------------------------------------------------------------------------------------------
// 8. profile add / remove / list
// ---------------------------------------------------------------------------------------------

#[test]
fn profile_add_creates_the_instance_and_keeps_everything_else() {
    let ccs = Ccs::new(Some(RICH_CONFIG));
    let before = config_value(&ccs);

    let out = ccs.cli(&["profile", "add", "newbie", "--group", "team", "--deeper"]);
    assert!(out.status.success(), "profile add failed: {}", stderr(&out));
    let inst = ccs.instance("newbie");
    let meta = std::fs::metadata(&inst).expect("instance dir created");
    assert!(meta.is_dir());
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o700,
        "instance dir mode"
    );

    let after = config_value(&ccs);
    let entry = account(&after, "newbie").expect("account entry added");
    assert_eq!(
        entry.get("context_mode").and_then(Value::as_str),
        Some("shared")
    );
    assert_eq!(
        entry.get("context_group").and_then(Value::as_str),
        Some("team")
    );
    assert_eq!(
        entry.get("continuity_mode").and_then(Value::as_str),
        Some("deeper")
    );
    assert_eq!(
        without_account(&after, "newbie"),
        before,
        "other keys or values changed"
    );
    assert_eq!(
        top_level_keys(&after),
        top_level_keys(&before),
        "top-level order changed"
    );

    let out = ccs.cli(&["profile", "add", "loner"]);
    assert!(out.status.success(), "profile add failed: {}", stderr(&out));
    let after2 = config_value(&ccs);
    let entry = account(&after2, "loner").expect("account entry added");
    assert!(
        matches!(
            entry.get("context_mode").and_then(Value::as_str),
            None | Some("isolated")
        ),
        "{entry:?}"
    );
    assert_ne!(
        entry.get("continuity_mode").and_then(Value::as_str),
        Some("deeper")
    );
    assert_eq!(without_account(&after2, "loner"), after);
    assert!(ccs.instance("loner").is_dir());

    let list = stdout(&ccs.cli(&["profile", "list"]));
    assert!(
        list.lines().any(|l| l.starts_with("newbie")
            && l.contains("shared")
            && l.contains("team")
            && l.contains("deeper")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("loner") && l.contains("isolated")),
        "{list}"
    );
}

/// Beyond the issue's list: re-adding an existing account changes only its modes and keeps its
/// own other keys (CCS's `created`, `last_used`, …).
#[test]
fn profile_add_on_an_existing_account_keeps_its_other_keys() {
    let ccs = Ccs::new(Some(RICH_CONFIG));
    let before = config_value(&ccs);
    let out = ccs.cli(&["profile", "add", "solo", "--group", "crew"]);
    assert!(out.status.success(), "profile add failed: {}", stderr(&out));
    let after = config_value(&ccs);
    assert_eq!(
        without_account(&after, "solo"),
        without_account(&before, "solo")
    );
    let (old, new) = (
        account(&before, "solo").unwrap().as_mapping().unwrap(),
        account(&after, "solo").unwrap().as_mapping().unwrap(),
    );
    for key in ["created", "last_used", "extra"] {
        assert_eq!(new.get(key), old.get(key), "solo.{key} changed");
    }
    assert_eq!(
        new.get("context_mode").and_then(Value::as_str),
        Some("shared")
    );
    assert_eq!(
        new.get("context_group").and_then(Value::as_str),
        Some("crew")
    );
}

#[test]
fn profile_remove_removes_only_the_entry_and_keeps_the_data() {
    let ccs = Ccs::new(Some(RICH_CONFIG));
    std::fs::create_dir_all(ccs.instance("solo").join("projects/p")).unwrap();
    std::fs::write(ccs.instance("solo").join("projects/p/s.jsonl"), "kept\n").unwrap();
    std::fs::write(ccs.instance("solo").join(".credentials.json"), "{}").unwrap();
    let before = config_value(&ccs);

    let out = ccs.cli(&["profile", "remove", "solo"]);
    assert!(
        out.status.success(),
        "profile remove failed: {}",
        stderr(&out)
    );
    let after = config_value(&ccs);
    assert!(account(&after, "solo").is_none(), "solo still configured");
    assert_eq!(
        after,
        without_account(&before, "solo"),
        "other keys or values changed"
    );
    assert_eq!(top_level_keys(&after), top_level_keys(&before));
    assert_eq!(
        std::fs::read_to_string(ccs.instance("solo").join("projects/p/s.jsonl")).unwrap(),
        "kept\n"
    );
    assert!(ccs.instance("solo").join(".credentials.json").is_file());

    let list = stdout(&ccs.cli(&["profile", "list"]));
    assert!(!list.lines().any(|l| l.starts_with("solo")), "{list}");
}

#[test]
fn profile_remove_of_an_unknown_profile_is_refused_without_touching_config() {
    let ccs = Ccs::new(Some(RICH_CONFIG));
    let before = config_text(&ccs);
    assert_refused(&ccs.cli(&["profile", "remove", "ghost"]), &["ghost"]);
    assert_eq!(config_text(&ccs), before);
}

#[test]
fn profile_list_prints_every_profile_with_its_modes() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let out = ccs.cli(&["profile", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    let find = |name: &str| {
        *lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"))
    };
    let work = find("work");
    assert!(
        work.contains("shared") && work.contains("team") && work.contains("deeper"),
        "{work}"
    );
    let personal = find("personal");
    assert!(
        personal.contains("shared") && personal.contains("team"),
        "{personal}"
    );
    assert!(!personal.contains("deeper"), "{personal}");
    let solo = find("solo");
    assert!(
        solo.contains("isolated") && !solo.contains("shared"),
        "{solo}"
    );
}

#[test]
fn profile_add_refuses_bad_names_and_groups_without_touching_config() {
    let ccs = Ccs::new(Some(RICH_CONFIG));
    let before = config_text(&ccs);
    let cases: &[(&[&str], &str)] = &[
        (&["9lives"], "9lives"),
        (&["te am"], "te am"),
        (&["a/b"], "a/b"),
        (&["fine", "--group", "1team"], "1team"),
        (&["fine", "--group", "te am!"], "te am!"),
    ];
    for (args, named) in cases {
        let mut argv = vec!["profile", "add"];
        argv.extend_from_slice(args);
        let out = ccs.cli(&argv);
        assert_refused(&out, &[named]);
        assert_eq!(config_text(&ccs), before, "config.yaml changed by {argv:?}");
        let instances: Vec<_> = std::fs::read_dir(ccs.ccs.join("instances"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(instances.is_empty(), "{argv:?} created {instances:?}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&ccs.ccs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "config.yaml")
        .collect();
    assert!(leftovers.is_empty(), "left in the CCS dir: {leftovers:?}");
}

#[test]
fn profile_add_and_remove_refuse_a_malformed_config_without_touching_it() {
    let bad = "accounts:\n  work:\n  bad: x: y\nprofiles: {}\n";
    let ccs = Ccs::new(Some(bad));
    assert_refused(&ccs.cli(&["profile", "add", "newbie"]), &["line 3"]);
    assert_eq!(config_text(&ccs), bad.as_bytes());
    assert!(
        !ccs.instance("newbie").exists(),
        "instance created despite the refusal"
    );
    assert_refused(&ccs.cli(&["profile", "remove", "work"]), &["line 3"]);
    assert_eq!(config_text(&ccs), bad.as_bytes());
    assert_refused(&ccs.cli(&["profile", "list"]), &["line 3"]);
}

#[test]
fn argument_errors_are_one_line_too() {
    let ccs = Ccs::new(None);
    for args in [
        &["mount", "--bogus"][..],
        &["profile", "add"][..],
        &["mount", "-o"][..],
    ] {
        let out = ccs.cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?} printed: {err}");
        assert!(
            err.starts_with("ccsfs: ") && err.contains("ccsfs --help"),
            "{err}"
        );
    }
}

/// What CCS needs to read the file back (its `version`, a quoted `created`) and where it keeps
/// the instance (lowercased), on a fresh dir; the real CCS reading it is in tests/ccs_config.rs.
#[test]
fn profile_add_on_a_fresh_dir_writes_what_ccs_expects() {
    let ccs = Ccs::new(None);
    let out = ccs.cli(&["profile", "add", "Delta", "--group", "Team"]);
    assert!(out.status.success(), "profile add failed: {}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("serves it as delta") && !said.contains("remount"),
        "{said}"
    );
    let text = String::from_utf8(config_text(&ccs)).unwrap();
    assert!(
        text.starts_with("version: 13\naccounts:\n  Delta:\n    created: \""),
        "{text}"
    );
    assert!(
        text.contains("Z\"\n    last_used: null\n    context_mode: shared\n"),
        "{text}"
    );
    assert_eq!(names(&ccs.ccs.join("instances")), set(&["delta"]));
    assert_eq!(names(&ccs.ccs), set(&["config.yaml", "instances"]));

    let out = ccs.cli(&["profile", "add", "Own", "--profile-local"]);
    assert!(out.status.success(), "profile add failed: {}", stderr(&out));
    let own = account(&config_value(&ccs), "Own").unwrap().clone();
    assert_eq!(
        own.get("shared_resource_mode").and_then(Value::as_str),
        Some("profile-local")
    );
    assert_eq!(own.get("bare").and_then(Value::as_bool), Some(true));

    let list = stdout(&ccs.cli(&["profile", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("delta\tshared, group team") && lines[0].ends_with("\taccount Delta"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("own\t") && lines[1].ends_with("\taccount Own"),
        "{list}"
    );
}
