//! The trash for shared deletions, on real mounts with real processes: a cleanup-style unlink
//! of a shared transcript through one profile is gone in every profile and lands in the group
//! store's trash, from which `ccsfs trash restore` brings it back byte for byte; a rename over
//! a transcript keeps the old one; private files, other files and all but the last name of a
//! hard-linked file are plain deletes; the single-writer lock still decides who may delete,
//! and a trashed transcript's lock is gone; the trash is invisible through the mount; and its
//! bounds (`<ccs>/ccsfs/config.yaml`: keep_days, max_mb) hold, by the daemon and by
//! `trash purge --expired`.

mod common;
#[path = "common/locking.rs"]
mod locking;
#[path = "common/sys.rs"]
mod sys;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{Ccs, TWO_IN_TEAM, stderr, stdout, wait_until};
use locking::{append, assert_busy, assert_ok, child_append, read};
use serde_json::Value;

fn team_trash(ccs: &Ccs) -> PathBuf {
    ccs.ccs.join("shared/context-groups/team/.ccsfs/trash")
}

/// `ccsfs trash list --json`.
fn listed(ccs: &Ccs) -> Vec<Value> {
    let out = ccs.cli(&["trash", "list", "--json"]);
    assert!(out.status.success(), "trash list: {}", stderr(&out));
    serde_json::from_str::<Value>(&stdout(&out))
        .expect("trash list --json is JSON")
        .as_array()
        .expect("an array")
        .clone()
}

fn rm(path: &Path) -> Output {
    Command::new("rm").arg(path).output().expect("run rm")
}

fn settings(ccs: &Ccs, text: &str) {
    fs::create_dir_all(ccs.ccs.join("ccsfs")).unwrap();
    fs::write(ccs.ccs.join("ccsfs/config.yaml"), text).unwrap();
}

fn gone(p: &Path) -> bool {
    fs::symlink_metadata(p).is_err()
}

/// Claude's start-up cleanup, as another process through another profile: the session is gone
/// from every profile at once and kept in the trash; `trash restore` brings back the same
/// bytes, visible through the mount; restoring over an existing file is refused.
#[test]
fn cleanup_unlink_goes_to_trash_and_restores() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let store = ccs.group_projects("team").join("-home-me-app");
    fs::create_dir_all(&store).unwrap();
    let body: String = (0..200)
        .map(|i| format!("{{\"type\":\"user\",\"n\":{i}}}\n"))
        .collect();
    fs::write(store.join("s1.jsonl"), &body).unwrap();
    let _m = ccs.mount();
    let work = ccs.profile("work").join("projects/-home-me-app/s1.jsonl");
    let personal = ccs
        .profile("personal")
        .join("projects/-home-me-app/s1.jsonl");
    assert_eq!(read(&work), body);
    assert_eq!(read(&personal), body);

    let out = rm(&personal);
    assert_ok(&out, "rm through personal");
    assert!(
        gone(&personal) && gone(&work),
        "gone in every profile at once"
    );
    assert!(gone(&store.join("s1.jsonl")), "gone from the store");

    let l = listed(&ccs);
    assert_eq!(l.len(), 1, "{l:?}");
    let e = &l[0];
    assert_eq!(e["group"], "team");
    assert_eq!(e["path"], "projects/-home-me-app/s1.jsonl");
    assert_eq!(e["profile"], "personal");
    assert_eq!(e["reason"], "unlink");
    assert_eq!(e["size"], body.len() as u64);
    let id = e["id"].as_str().unwrap().to_string();
    let dir = team_trash(&ccs).join(&id);
    assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    assert_eq!(fs::read_to_string(dir.join("data")).unwrap(), body);
    let text = stdout(&ccs.cli(&["trash", "list"]));
    assert!(text.contains(&id) && text.contains("s1.jsonl"), "{text}");

    // Something new took the name meanwhile: restore refuses, naming --to.
    fs::write(store.join("s1.jsonl"), "{\"new\":1}\n").unwrap();
    let out = ccs.cli(&["trash", "restore", &id]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--to") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert_eq!(read(&store.join("s1.jsonl")), "{\"new\":1}\n");
    fs::remove_file(store.join("s1.jsonl")).unwrap();

    let out = ccs.cli(&["trash", "restore", &id]);
    assert_ok(&out, "trash restore");
    assert!(stdout(&out).contains("s1.jsonl"), "{}", stdout(&out));
    assert!(
        wait_until(Duration::from_secs(3), || fs::read_to_string(&work)
            .is_ok_and(|t| t == body)),
        "the restored transcript shows through the mount with the same bytes"
    );
    assert_eq!(read(&personal), body);
    assert!(listed(&ccs).is_empty());
    // The restored file is writable by a fresh process: no lock stayed behind.
    let (_, out) = child_append(&personal, "{\"after\":1}\n");
    assert_ok(&out, "append to the restored transcript");
}

/// A rename over a transcript deletes the old one: it is kept in the trash. An exchange and a
/// no-replace rename delete nothing.
#[test]
fn rename_over_a_transcript_keeps_the_old_one() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let store = ccs.group_projects("team").join("p");
    fs::create_dir_all(&store).unwrap();
    fs::write(store.join("a.jsonl"), "{\"old\":1}\n").unwrap();
    fs::write(store.join("b.tmp"), "{\"new\":1}\n").unwrap();
    fs::write(store.join("c.jsonl"), "{\"c\":1}\n").unwrap();
    let _m = ccs.mount();
    let work = ccs.profile("work").join("projects/p");
    fs::rename(work.join("b.tmp"), work.join("a.jsonl")).expect("rename over");
    assert_eq!(
        read(&ccs.profile("personal").join("projects/p/a.jsonl")),
        "{\"new\":1}\n"
    );
    let l = listed(&ccs);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["reason"], "rename-over");
    assert_eq!(l[0]["path"], "projects/p/a.jsonl");
    let id = l[0]["id"].as_str().unwrap();
    assert_eq!(
        fs::read_to_string(team_trash(&ccs).join(id).join("data")).unwrap(),
        "{\"old\":1}\n"
    );
    // The old file is only in the trash now: one name.
    assert_eq!(
        fs::metadata(team_trash(&ccs).join(id).join("data"))
            .unwrap()
            .nlink(),
        1
    );

    // RENAME_EXCHANGE swaps, nothing is deleted.
    sys::renameat2(
        &work.join("a.jsonl"),
        &work.join("c.jsonl"),
        libc::RENAME_EXCHANGE,
    )
    .expect("exchange");
    assert_eq!(read(&work.join("a.jsonl")), "{\"c\":1}\n");
    assert_eq!(listed(&ccs).len(), 1, "an exchange trashes nothing");
    // RENAME_NOREPLACE onto an existing name fails and trashes nothing.
    sys::expect_errno(
        sys::renameat2(
            &work.join("a.jsonl"),
            &work.join("c.jsonl"),
            libc::RENAME_NOREPLACE,
        ),
        libc::EEXIST,
        "no-replace onto a transcript",
    );
    assert_eq!(listed(&ccs).len(), 1, "no-replace trashes nothing");
    // A rename onto another name of the same file replaces nothing.
    fs::hard_link(work.join("a.jsonl"), work.join("a2.jsonl")).unwrap();
    fs::rename(work.join("a.jsonl"), work.join("a2.jsonl")).unwrap();
    assert_eq!(
        listed(&ccs).len(),
        1,
        "a rename onto itself trashes nothing"
    );
    assert!(work.join("a.jsonl").exists() && work.join("c.jsonl").exists());
}

/// Private files (the instance's own, even `*.jsonl`), shared files that are not transcripts,
/// and all but the last name of a hard-linked transcript are deleted as usual.
#[test]
fn other_deletes_are_plain() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let _m = ccs.mount();
    let work = ccs.profile("work");
    fs::write(work.join("history.jsonl"), "{}\n").unwrap();
    fs::create_dir_all(work.join("projects/p")).unwrap();
    fs::write(work.join("projects/p/notes.txt"), "x").unwrap();
    fs::write(work.join("projects/p/s.jsonl"), "{\"s\":1}\n").unwrap();
    fs::hard_link(
        work.join("projects/p/s.jsonl"),
        work.join("projects/p/s2.jsonl"),
    )
    .unwrap();
    for f in [
        "history.jsonl",
        "projects/p/notes.txt",
        "projects/p/s.jsonl",
    ] {
        fs::remove_file(work.join(f)).unwrap_or_else(|e| panic!("rm {f}: {e}"));
        assert!(gone(&work.join(f)), "{f}");
    }
    assert!(gone(&ccs.instance("work").join("history.jsonl")));
    assert!(listed(&ccs).is_empty(), "nothing trashed yet");
    // The last name goes to the trash.
    fs::remove_file(work.join("projects/p/s2.jsonl")).unwrap();
    let l = listed(&ccs);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["path"], "projects/p/s2.jsonl");

    // The trash is not reachable through the mount: no `.ccsfs` anywhere under a profile.
    for p in ["work", "personal"] {
        let mut stack = vec![ccs.profile(p)];
        while let Some(d) = stack.pop() {
            for de in fs::read_dir(&d).unwrap().flatten() {
                assert_ne!(de.file_name(), ".ccsfs", "{}", de.path().display());
                if de.file_type().unwrap().is_dir() {
                    stack.push(de.path());
                }
            }
        }
        assert!(gone(&ccs.profile(p).join("projects/../.ccsfs")));
        assert!(gone(&ccs.profile(p).join(".ccsfs")));
    }
}

/// The lock still decides: a non-owner's unlink of a held transcript is EBUSY and trashes
/// nothing; the owner's unlink trashes it and frees the lock, so that after a restore a
/// second process may write it.
#[test]
fn held_transcripts_need_their_owner_and_the_trash_frees_the_lock() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let _m = ccs.mount();
    let work = ccs.profile("work").join("projects/p");
    fs::create_dir_all(&work).unwrap();
    let f = work.join("s.jsonl");
    let personal = ccs.profile("personal").join("projects/p/s.jsonl");
    // This test process owns it (its first write).
    append(&f, "{\"owner\":1}\n").unwrap();
    let (_, out) = child_append(&personal, "{\"x\":1}\n");
    assert_busy(&out, "the owner holds it");
    let out = rm(&personal);
    assert!(
        !out.status.success() && stderr(&out).contains("Device or resource busy"),
        "non-owner rm: {} {}",
        out.status,
        stderr(&out)
    );
    assert!(f.exists());
    assert!(listed(&ccs).is_empty(), "a refused unlink trashes nothing");

    fs::remove_file(&f).expect("the owner's unlink");
    let l = listed(&ccs);
    assert_eq!(l.len(), 1, "{l:?}");
    let locks = ccs.ccs.join("shared/context-groups/team/.ccsfs/locks");
    let held: Vec<_> = fs::read_dir(&locks)
        .unwrap()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with("ino-"))
        .collect();
    assert!(held.is_empty(), "the trashed file's lock is released");
    let out = ccs.cli(&["trash", "restore", l[0]["id"].as_str().unwrap()]);
    assert_ok(&out, "restore");
    assert!(wait_until(Duration::from_secs(3), || personal.exists()));
    let (_, out) = child_append(&personal, "{\"next\":1}\n");
    assert_ok(&out, "a second process writes the restored transcript");
    assert_eq!(read(&personal), "{\"owner\":1}\n{\"next\":1}\n");
}

/// The daemon keeps the trash within `max_mb` (oldest out first) and drops entries past
/// `keep_days` (an old entry made before the mount is gone once it has scanned).
#[test]
fn the_daemon_enforces_the_bounds() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    settings(&ccs, "trash:\n  max_mb: 1\n  keep_days: 30\n");
    let old = team_trash(&ccs).join("20000101T000000Z-abcdef");
    fs::create_dir_all(&old).unwrap();
    fs::write(old.join("data"), "old\n").unwrap();
    let store = ccs.group_projects("team").join("p");
    fs::create_dir_all(&store).unwrap();
    let chunk = "x".repeat(399) + "\n";
    let big = chunk.repeat(1000); // 400,000 bytes
    for i in 0..4 {
        fs::write(store.join(format!("s{i}.jsonl")), &big).unwrap();
    }
    let _m = ccs.mount();
    assert!(
        wait_until(Duration::from_secs(5), || gone(&old)),
        "an entry past keep_days is purged by the daemon's scan at mount"
    );
    let work = ccs.profile("work").join("projects/p");
    for i in 0..4 {
        fs::remove_file(work.join(format!("s{i}.jsonl"))).unwrap();
        let l = listed(&ccs);
        let total: u64 = l.iter().map(|e| e["size"].as_u64().unwrap()).sum();
        assert!(total <= 1 << 20, "after {i}: {total} bytes in the trash");
    }
    let l = listed(&ccs);
    let paths: Vec<&str> = l.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["projects/p/s2.jsonl", "projects/p/s3.jsonl"],
        "the newest stay"
    );
}

/// `trash purge --expired` drops what the settings no longer keep (and nothing else);
/// `trash purge` empties; both work without a mount. A bad settings file is one line.
#[test]
fn purge_by_the_cli() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let trash = team_trash(&ccs);
    let mk = |id: &str, bytes: usize| {
        let d = trash.join(id);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("data"), "y".repeat(bytes)).unwrap();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Ids carry their deletion time (UTC): entries made by hand, `age` seconds old.
    let recent = |age: u64, tag: &str| {
        let out = Command::new("date")
            .args(["-u", "-d", &format!("@{}", now - age), "+%Y%m%dT%H%M%SZ"])
            .output()
            .unwrap();
        format!("{}-{tag}", stdout(&out).trim())
    };
    mk("20200101T000000Z-000001", 10); // past keep_days
    mk(&recent(300, "000002"), 700 * 1024);
    mk(&recent(200, "000003"), 700 * 1024);
    mk(&recent(100, "000004"), 10);
    settings(&ccs, "trash:\n  max_mb: 1\n");
    let out = ccs.cli(&["trash", "purge", "--expired"]);
    assert_ok(&out, "purge --expired");
    assert!(
        stdout(&out).contains("team: purged 2 entries"),
        "{}",
        stdout(&out)
    );
    let ids: Vec<String> = listed(&ccs)
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [recent(200, "000003"), recent(100, "000004")]);

    settings(&ccs, "trash: [oops\n");
    let out = ccs.cli(&["trash", "purge", "--expired"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("ccsfs/config.yaml") && err.trim().lines().count() == 1,
        "{err}"
    );
    fs::remove_file(ccs.ccs.join("ccsfs/config.yaml")).unwrap();
    assert_ok(&ccs.cli(&["trash", "purge"]), "purge");
    assert!(listed(&ccs).is_empty());
    let out = ccs.cli(&["trash", "restore", "20200101T000000Z-000009"]);
    assert!(!out.status.success() && stderr(&out).contains("trash list"));
}

/// When the trash cannot take the file (here `.ccsfs/trash` is a plain file), the unlink fails
/// and nothing is deleted: data is never dropped silently.
#[test]
fn no_trash_no_delete() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let store = ccs.group_projects("team").join("p");
    fs::create_dir_all(&store).unwrap();
    fs::write(store.join("s.jsonl"), "{\"keep\":1}\n").unwrap();
    fs::create_dir_all(team_trash(&ccs).parent().unwrap()).unwrap();
    fs::write(team_trash(&ccs), "not a dir").unwrap();
    let _m = ccs.mount();
    let f = ccs.profile("work").join("projects/p/s.jsonl");
    let out = rm(&f);
    assert!(
        !out.status.success() && stderr(&out).contains("Input/output error"),
        "rm with no trash: {} {}",
        out.status,
        stderr(&out)
    );
    assert_eq!(read(&store.join("s.jsonl")), "{\"keep\":1}\n");
    assert_eq!(read(&f), "{\"keep\":1}\n");
}

/// Unmounts a tmpfs on drop.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A store whose `projects/` is another filesystem than its `.ccsfs/`: the deleted file is
/// copied into the trash (fsynced, mode and mtime kept) before its unlink, and copied back by
/// a restore.
#[test]
#[ignore = "needs root (mounts a tmpfs on the store's projects/); scripts/test.sh runs it"]
fn across_filesystems_the_trash_copies() {
    common::prereq::require_root();
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let projects = ccs.group_projects("team");
    fs::create_dir_all(&projects).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "mode=0700", "tmpfs"])
        .arg(&projects)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs on {}", projects.display());
    let _t = Tmpfs(projects.clone());
    fs::create_dir_all(projects.join("p")).unwrap();
    let body = "{\"far\":1}\n".repeat(1000);
    let f = projects.join("p/s.jsonl");
    fs::write(&f, &body).unwrap();
    let mtime = fs::metadata(&f).unwrap().mtime();
    let _m = ccs.mount();
    let through = ccs.profile("personal").join("projects/p/s.jsonl");
    assert_ok(&rm(&through), "rm across filesystems");
    assert!(gone(&f) && gone(&through));
    let l = listed(&ccs);
    assert_eq!(l.len(), 1, "{l:?}");
    let data = team_trash(&ccs)
        .join(l[0]["id"].as_str().unwrap())
        .join("data");
    assert_eq!(fs::read_to_string(&data).unwrap(), body);
    assert_eq!(fs::metadata(&data).unwrap().mtime(), mtime, "mtime kept");
    assert_ok(
        &ccs.cli(&["trash", "restore", l[0]["id"].as_str().unwrap()]),
        "restore across filesystems",
    );
    assert_eq!(read(&f), body);
    assert_eq!(fs::metadata(&f).unwrap().mtime(), mtime);
    assert!(wait_until(Duration::from_secs(3), || through.exists()));
    assert!(listed(&ccs).is_empty());
}

/// The deeper continuity dirs are part of the group store: a `*.jsonl` deleted there goes to
/// the trash too, under its path in the store, and comes back there.
#[test]
fn continuity_transcripts_are_kept_too() {
    let ccs = Ccs::new(Some(common::THREE_PROFILES));
    let _m = ccs.mount();
    let f = ccs.profile("work").join("todos/agent.jsonl");
    fs::write(&f, "{\"todo\":1}\n").unwrap();
    fs::remove_file(&f).unwrap();
    let l = listed(&ccs);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["path"], "continuity/todos/agent.jsonl");
    assert_ok(
        &ccs.cli(&["trash", "restore", l[0]["id"].as_str().unwrap()]),
        "restore",
    );
    assert_eq!(
        read(&ccs.continuity("team", "todos").join("agent.jsonl")),
        "{\"todo\":1}\n"
    );
    assert!(wait_until(Duration::from_secs(3), || f.exists()));
}
