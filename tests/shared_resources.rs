//! CCS's shared resources through the mount, on real mounts, laid out as CCS 7.x lays them
//! out (`<ccs>/shared/<name>` -> `~/.claude/<name>`, and each instance linking to
//! `<ccs>/shared/<name>`): `commands/`, `skills/`, `agents/`, `plugins/` and `settings.json`
//! are real dirs and files through every profile, served from where CCS's links lead; an
//! atomic rewrite (temp file + rename) through one profile lands in the shared copy and every
//! other profile reads it; `plugins/known_marketplaces.json` stays per instance; a
//! profile-local account keeps its own; credentials never leave the instance.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Ccs, wait_until};

const CONFIG: &str = "\
version: 13
accounts:
  work:
    context_mode: shared
    context_group: team
  personal:
    context_mode: isolated
  own:
    context_mode: isolated
    shared_resource_mode: profile-local
";

/// CCS's layout for work and personal; own keeps its own settings.json.
fn ccs_layout(ccs: &Ccs) -> PathBuf {
    let claude = common::ccs_shared_layout(ccs, &["work", "personal"]);
    fs::create_dir_all(ccs.instance("own")).unwrap();
    fs::write(ccs.instance("own").join("settings.json"), "{\"own\":1}\n").unwrap();
    claude
}

/// Claude's atomic write: a temp file beside the target, then rename over it.
fn atomic_write(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        "{}.tmp.{}",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename onto {}: {e}", path.display()));
}

#[test]
fn shared_resources_are_real_dirs_and_files_in_every_profile() {
    let ccs = Ccs::new(Some(CONFIG));
    let claude = ccs_layout(&ccs);
    let _m = ccs.mount();
    for p in ["work", "personal"] {
        let root = ccs.profile(p);
        for d in ["commands", "skills", "agents", "plugins"] {
            let m = fs::symlink_metadata(root.join(d)).unwrap();
            assert!(m.is_dir(), "{p}/{d} must be a real dir, not {m:?}");
        }
        let m = fs::symlink_metadata(root.join("settings.json")).unwrap();
        assert!(m.is_file(), "{p}/settings.json must be a real file");
    }
    fs::write(ccs.profile("work").join("commands/review.md"), "# review\n").unwrap();
    assert_eq!(
        fs::read_to_string(ccs.profile("personal").join("commands/review.md")).unwrap(),
        "# review\n"
    );
    assert!(claude.join("commands/review.md").is_file());
}

#[test]
fn an_atomic_settings_rewrite_lands_in_the_shared_copy() {
    let ccs = Ccs::new(Some(CONFIG));
    let claude = ccs_layout(&ccs);
    let _m = ccs.mount();
    // Read first, so that personal's kernel caches the old file.
    assert_eq!(
        fs::read_to_string(ccs.profile("personal").join("settings.json")).unwrap(),
        "{}\n"
    );
    atomic_write(
        &ccs.profile("work").join("settings.json"),
        "{\"theme\":\"dark\"}\n",
    );
    assert_eq!(
        fs::read_to_string(claude.join("settings.json")).unwrap(),
        "{\"theme\":\"dark\"}\n"
    );
    assert!(
        wait_until(Duration::from_secs(1), || fs::read_to_string(
            ccs.profile("personal").join("settings.json")
        )
        .unwrap()
            == "{\"theme\":\"dark\"}\n"),
        "personal does not see work's settings"
    );
    // CCS's links are untouched, and nothing private was left behind.
    for p in ["work", "personal"] {
        let link = ccs.instance(p).join("settings.json");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{} was replaced",
            link.display()
        );
    }
    let leftovers: Vec<_> = fs::read_dir(ccs.instance("work"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    // A plain rewrite in place works too.
    fs::write(ccs.profile("personal").join("settings.json"), "{\"n\":2}\n").unwrap();
    assert_eq!(
        fs::read_to_string(claude.join("settings.json")).unwrap(),
        "{\"n\":2}\n"
    );
    // Removing or moving the shared file away through one profile is refused.
    let e = fs::remove_file(ccs.profile("work").join("settings.json")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    assert!(claude.join("settings.json").exists());
}

#[test]
fn known_marketplaces_stays_per_instance_and_the_rest_of_plugins_is_shared() {
    let ccs = Ccs::new(Some(CONFIG));
    let claude = ccs_layout(&ccs);
    let _m = ccs.mount();
    let work = ccs.profile("work").join("plugins");
    let personal = ccs.profile("personal").join("plugins");
    assert_eq!(
        fs::read_to_string(work.join("known_marketplaces.json")).unwrap(),
        "{\"of\":\"work\"}\n"
    );
    assert_eq!(
        fs::read_to_string(personal.join("known_marketplaces.json")).unwrap(),
        "{\"of\":\"personal\"}\n"
    );
    atomic_write(&work.join("known_marketplaces.json"), "{\"of\":\"w2\"}\n");
    assert_eq!(
        fs::read_to_string(ccs.instance("work").join("plugins/known_marketplaces.json")).unwrap(),
        "{\"of\":\"w2\"}\n"
    );
    assert_eq!(
        fs::read_to_string(personal.join("known_marketplaces.json")).unwrap(),
        "{\"of\":\"personal\"}\n"
    );
    assert_eq!(
        fs::read_to_string(claude.join("plugins/known_marketplaces.json")).unwrap(),
        "{}\n",
        "the shared registry must not change"
    );
    atomic_write(&personal.join("installed_plugins.json"), "{\"v\":3}\n");
    assert_eq!(
        fs::read_to_string(claude.join("plugins/installed_plugins.json")).unwrap(),
        "{\"v\":3}\n"
    );
    assert_eq!(
        fs::read_to_string(work.join("installed_plugins.json")).unwrap(),
        "{\"v\":3}\n"
    );
    fs::create_dir_all(work.join("cache/p1")).unwrap();
    assert!(personal.join("cache/p1").is_dir());
}

#[test]
fn a_profile_local_account_keeps_its_own() {
    let ccs = Ccs::new(Some(CONFIG));
    let claude = ccs_layout(&ccs);
    let _m = ccs.mount();
    assert_eq!(
        fs::read_to_string(ccs.profile("own").join("settings.json")).unwrap(),
        "{\"own\":1}\n"
    );
    atomic_write(&ccs.profile("own").join("settings.json"), "{\"own\":2}\n");
    assert_eq!(
        fs::read_to_string(ccs.instance("own").join("settings.json")).unwrap(),
        "{\"own\":2}\n"
    );
    assert_eq!(
        fs::read_to_string(claude.join("settings.json")).unwrap(),
        "{}\n"
    );
    fs::create_dir_all(ccs.profile("own").join("commands")).unwrap();
    assert!(ccs.instance("own").join("commands").is_dir());
}

#[test]
fn credentials_and_state_never_reach_the_shared_dir() {
    let ccs = Ccs::new(Some(CONFIG));
    let claude = ccs_layout(&ccs);
    let _m = ccs.mount();
    for name in [".credentials.json", ".claude.json"] {
        atomic_write(&ccs.profile("work").join(name), "{\"secret\":1}\n");
        assert!(ccs.instance("work").join(name).is_file());
        assert!(!claude.join(name).exists());
        assert!(!ccs.ccs.join("shared").join(name).exists());
        assert!(!ccs.profile("personal").join(name).exists());
    }
}

#[test]
fn only_a_file_made_beside_settings_json_replaces_it() {
    let ccs = Ccs::new(Some(CONFIG));
    let claude = ccs_layout(&ccs);
    let _m = ccs.mount();
    let work = ccs.profile("work");
    fs::write(work.join(".credentials.json"), "{\"secret\":1}\n").unwrap();
    let e = fs::rename(work.join(".credentials.json"), work.join("settings.json")).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::EXDEV),
        "credentials must not become settings"
    );
    fs::create_dir_all(work.join("projects/p")).unwrap();
    fs::write(work.join("projects/p/s.jsonl"), "{}\n").unwrap();
    let e = fs::rename(work.join("projects/p/s.jsonl"), work.join("settings.json")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EXDEV));
    assert_eq!(
        fs::read_to_string(claude.join("settings.json")).unwrap(),
        "{}\n"
    );
    assert!(ccs.instance("work").join(".credentials.json").is_file());
}

#[test]
fn without_ccs_links_settings_stay_in_the_instance() {
    let ccs = Ccs::new(Some(CONFIG));
    let _m = ccs.mount();
    fs::write(ccs.profile("work").join("settings.json"), "{\"w\":1}\n").unwrap();
    assert!(ccs.instance("work").join("settings.json").is_file());
    assert!(!ccs.profile("personal").join("settings.json").exists());
    assert!(!ccs.ccs.join("shared/settings.json").exists());
}
