//! The daemon follows `config.yaml` while mounted, on real mounts: an added account is served
//! within a second (seen by the daemon's own status, without touching the mount), a removed one
//! disappears and its instance dir is never made again, a mode change re-routes new lookups
//! while an open file keeps its file, a malformed edit keeps the last good config (and status
//! says so), and accounts with capitals are served under their lowercased instance dir, as
//! CCS keeps them.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Ccs, stdout, wait_until};

const TWO: &str = common::TWO_IN_TEAM;

/// The dirs the daemon says it serves (its status, from its run file).
fn served(ccs: &Ccs) -> Vec<String> {
    let out = ccs.cli(&["status", ccs.mnt.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("status --json");
    assert_eq!(
        v["source"], "daemon",
        "status must come from the daemon: {v}"
    );
    v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["dir"].as_str().unwrap().to_string())
        .collect()
}

fn status_json(ccs: &Ccs) -> serde_json::Value {
    let out = ccs.cli(&["status", ccs.mnt.to_str().unwrap(), "--json"]);
    serde_json::from_str(&stdout(&out)).expect("status --json")
}

/// Writes config.yaml the way CCS does: temp file, rename.
fn write_config(ccs: &Ccs, text: &str) {
    let tmp = ccs.ccs.join("config.yaml.tmp.1");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, ccs.ccs.join("config.yaml")).unwrap();
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn an_added_account_is_served_within_a_second() {
    let ccs = Ccs::new(Some(TWO));
    let _m = ccs.mount();
    assert_eq!(served(&ccs), ["personal", "work"]);
    let out = ccs.cli(&["profile", "add", "spare", "--group", "team"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        !stdout(&out).contains("remount"),
        "profile add must not ask for a remount: {}",
        stdout(&out)
    );
    let t = Instant::now();
    assert!(
        wait_until(Duration::from_secs(1), || served(&ccs)
            .contains(&"spare".into())),
        "spare not served within a second"
    );
    eprintln!("served after {:?}", t.elapsed());
    assert_eq!(listing(&ccs.mnt), ["personal", "spare", "work"]);
    // Routed like the others: its projects/ is the group store.
    fs::create_dir_all(ccs.profile("spare").join("projects/p")).unwrap();
    fs::write(ccs.profile("spare").join("projects/p/s.jsonl"), "{}\n").unwrap();
    assert!(ccs.group_projects("team").join("p/s.jsonl").exists());
    assert!(ccs.profile("work").join("projects/p/s.jsonl").exists());
}

#[test]
fn a_name_looked_up_right_after_the_change_needs_no_wait() {
    let ccs = Ccs::new(Some(TWO));
    let _m = ccs.mount();
    // What `ccs auth create x && cd <mount>/x` does: the lookup itself re-reads the config.
    write_config(
        &ccs,
        &format!("{TWO}  quick:\n    context_mode: isolated\n"),
    );
    fs::create_dir_all(ccs.instance("quick")).unwrap();
    assert!(ccs.profile("quick").is_dir(), "quick not served at once");
}

#[test]
fn a_removed_account_disappears_and_its_instance_is_never_made_again() {
    let ccs = Ccs::new(Some(TWO));
    let _m = ccs.mount();
    fs::write(ccs.profile("personal").join("notes.txt"), "x").unwrap();
    // What `ccs auth remove personal` does: drop the entry, delete the instance.
    let out = ccs.cli(&["profile", "remove", "personal"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    fs::remove_dir_all(ccs.instance("personal")).unwrap();
    assert!(
        wait_until(Duration::from_secs(1), || !served(&ccs)
            .contains(&"personal".into())),
        "personal still served"
    );
    assert_eq!(listing(&ccs.mnt), ["work"]);
    for p in [
        ccs.profile("personal"),
        ccs.profile("personal").join("projects"),
        ccs.profile("personal").join(".credentials.json"),
    ] {
        let e = fs::metadata(&p).expect_err("a removed profile must be gone");
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{}", p.display());
    }
    assert!(
        !ccs.instance("personal").exists(),
        "the removed account's instance dir was made again"
    );
    // The other profile is untouched.
    fs::write(ccs.profile("work").join("x"), "y").unwrap();
    assert!(ccs.instance("work").join("x").exists());
}

#[test]
fn a_mode_change_reroutes_new_lookups_and_open_files_keep_their_file() {
    let ccs = Ccs::new(Some(TWO));
    let _m = ccs.mount();
    let dir = ccs.profile("work").join("projects/p");
    fs::create_dir_all(&dir).unwrap();
    let mut open = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("s.jsonl"))
        .unwrap();
    open.write_all(b"{\"n\":1}\n").unwrap();
    // work leaves the group.
    write_config(
        &ccs,
        "version: 13\naccounts:\n  work:\n    context_mode: isolated\n  personal:\n    context_mode: shared\n    context_group: team\n",
    );
    assert!(
        wait_until(Duration::from_secs(1), || {
            status_json(&ccs)["profiles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["dir"] == "work" && p["mode"] == "isolated")
        }),
        "work not re-routed within a second"
    );
    // The open handle still writes to the group store: nothing in flight is lost.
    open.write_all(b"{\"n\":2}\n").unwrap();
    drop(open);
    let shared = fs::read_to_string(ccs.group_projects("team").join("p/s.jsonl")).unwrap();
    assert_eq!(shared, "{\"n\":1}\n{\"n\":2}\n");
    // New lookups go to the instance now: the group's session is not there.
    assert!(
        wait_until(Duration::from_secs(2), || !ccs
            .profile("work")
            .join("projects/p/s.jsonl")
            .exists()),
        "work still sees the group's projects"
    );
    fs::create_dir_all(ccs.profile("work").join("projects/q")).unwrap();
    assert!(ccs.instance("work").join("projects/q").is_dir());
    assert!(ccs.profile("personal").join("projects/p/s.jsonl").exists());
}

#[test]
fn a_malformed_edit_keeps_the_last_good_config() {
    let ccs = Ccs::new(Some(TWO));
    let _m = ccs.mount();
    write_config(&ccs, "version: 13\naccounts:\n  work: [unclosed\n");
    assert!(
        wait_until(Duration::from_secs(2), || {
            !status_json(&ccs)["config_error"].is_null()
        }),
        "the daemon did not report the malformed config"
    );
    let st = status_json(&ccs);
    assert_eq!(served(&ccs), ["personal", "work"], "{st}");
    let diffs = st["differences"].as_array().unwrap();
    assert!(
        diffs
            .iter()
            .any(|d| d.as_str().unwrap().contains("malformed")),
        "{st}"
    );
    let text = stdout(&ccs.cli(&["status", ccs.mnt.to_str().unwrap()]));
    assert!(text.contains("config:"), "{text}");
    assert!(ccs.profile("work").is_dir());
    let log = fs::read_to_string(ccs.ccs.join("logs/ccsfs.log")).unwrap_or_default();
    let lines = log
        .lines()
        .filter(|l| l.contains("keeping the last good config"))
        .count();
    assert_eq!(lines, 1, "one clear line in the log:\n{log}");
    // Fixed: applied again.
    write_config(&ccs, "version: 13\naccounts:\n  work: {}\n");
    assert!(
        wait_until(Duration::from_secs(1), || served(&ccs) == ["work"]),
        "the fixed config was not applied"
    );
    assert!(status_json(&ccs)["config_error"].is_null());
}

#[test]
fn accounts_with_capitals_are_served_under_their_lowercased_instance() {
    let ccs = Ccs::new(Some(
        "version: 13\naccounts:\n  Delta:\n    context_mode: shared\n    context_group: team\n",
    ));
    fs::create_dir_all(ccs.instance("delta")).unwrap();
    fs::write(ccs.instance("delta").join(".credentials.json"), "{\"t\":1}").unwrap();
    let _m = ccs.mount();
    assert_eq!(listing(&ccs.mnt), ["delta"]);
    assert_eq!(
        fs::read_to_string(ccs.profile("delta").join(".credentials.json")).unwrap(),
        "{\"t\":1}"
    );
    assert!(!ccs.ccs.join("instances/Delta").exists());
    let text = stdout(&ccs.cli(&["status", ccs.mnt.to_str().unwrap()]));
    assert!(
        text.contains("Delta (shared, group team, in the mount as delta)"),
        "{text}"
    );
}
