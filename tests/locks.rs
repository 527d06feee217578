//! Single-writer transcripts, with real processes on a real mount: one live process at a time
//! may write a `*.jsonl` in a group store (projects, subagent transcripts, deeper continuity
//! dirs); every other process's write-open, unlink, rename and truncate fails with EBUSY,
//! through either profile and through a second daemon on the same store, while reads always
//! work. Covers the 8-writer race, same-profile refusal, many threads of one owner, a reader
//! during writes, takeover right after kill -9 (with the torn last record ended by a newline),
//! private files that are never locked, `ccsfs status` / `--json` / `unlock [--force]`, the
//! refusal log line, lease cleanup of exited owners and the `--lock-idle` lapse (which must
//! spare an owner whose write handle is open, also through another daemon or after a forced
//! unlock). The ways around the lock (other names, renamed dirs, odd names, a fork) are in
//! tests/lock_bypass.rs.

mod common;
#[path = "common/locking.rs"]
mod locking;
#[path = "common/sys.rs"]
mod sys;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Ccs, THREE_PROFILES, is_mounted, stderr, stdout, wait_until};
use locking::*;
use serde_json::Value;
use sys::expect_errno;

// ---------------------------------------------------------------------------------------------

/// 8 processes, 4 through each profile, race to open one transcript for append: one wins and
/// writes its 50 records, the others' opens fail with EBUSY.
fn race(fresh: bool) {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    if !fresh {
        fs::write(ccs.group_projects("team").join("p/race.jsonl"), "").unwrap();
    }
    let script = r#": > "$READY"; read -r _; exec 3>>"$F" || exit 3; for i in $(seq 50); do echo "{\"w\":$ID,\"i\":$i}" >&3 || exit 4; sleep 0.005; done"#;
    let mut kids: Vec<Kid> = (0..8)
        .map(|id| {
            let profile = if id % 2 == 0 { "work" } else { "personal" };
            let f = ccs.profile(profile).join("projects/p/race.jsonl");
            let ready = tmp.join(format!("ready-{id}"));
            Kid::bash(
                &format!("racer {id} ({profile})"),
                script,
                &[("F", s(&f)), ("READY", s(&ready)), ("ID", &id.to_string())],
            )
        })
        .collect();
    for (id, k) in kids.iter_mut().enumerate() {
        k.wait_for(&tmp.join(format!("ready-{id}")));
    }
    for k in &mut kids {
        k.go();
    }
    let outs: Vec<Output> = kids.into_iter().map(Kid::finish).collect();
    let winners: Vec<usize> = (0..8).filter(|&i| outs[i].status.success()).collect();
    let report: Vec<String> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| format!("racer {i}: {} {}", o.status, stderr(o).trim()))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one winner:\n{}",
        report.join("\n")
    );
    for (i, o) in outs.iter().enumerate() {
        if i != winners[0] {
            assert_busy(o, &format!("racer {i}"));
        }
    }
    let w = winners[0];
    let text = read(&ccs.group_projects("team").join("p/race.jsonl"));
    assert_jsonl(&text, "race transcript");
    let want: String = (1..=50)
        .map(|i| format!("{{\"w\":{w},\"i\":{i}}}\n"))
        .collect();
    assert_eq!(text, want, "only the winner's records, in order");
    // Both profiles show the same bytes.
    assert_eq!(
        read(&ccs.profile("personal").join("projects/p/race.jsonl")),
        want
    );
}

#[test]
fn eight_writers_race_to_create_a_transcript_one_wins() {
    race(true);
}

#[test]
fn eight_writers_race_on_an_existing_transcript_one_wins() {
    race(false);
}

/// One process may own far more transcripts than the daemon may keep files open: each lock
/// still holds, and neither the owner nor anyone else runs into the daemon's fd limit.
#[test]
fn an_owner_of_more_transcripts_than_the_daemon_has_fds_keeps_them_all() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let out = Command::new("prlimit")
        .arg("--nofile=256:256")
        .arg(common::bin())
        .arg("--ccs-dir")
        .arg(&ccs.ccs)
        .args(["mount", s(&ccs.mnt)])
        .args(
            std::env::var("CCSFS_TEST_MOUNT_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .output()
        .expect("run prlimit");
    assert_ok(&out, "mount with 256 open files");
    let _m = mounted(&ccs);
    let dir = ccs.profile("work").join("projects/p");
    let n = 600;
    for i in 0..n {
        append(&dir.join(format!("s{i}.jsonl")), "{\"first\":1}\n")
            .unwrap_or_else(|e| panic!("transcript {i} of {n}: {e}"));
    }
    for i in [0, n / 2, n - 1] {
        let f = dir.join(format!("s{i}.jsonl"));
        append(&f, "{\"again\":1}\n").unwrap_or_else(|e| panic!("owner re-open of {i}: {e}"));
        let (_, out) = child_append(&f, "{\"other\":1}\n");
        assert_busy(&out, &format!("another process on transcript {i}"));
        assert_eq!(read(&f), "{\"first\":1}\n{\"again\":1}\n");
    }
    assert_eq!(lock_files(&ccs).len(), n, "one lock file per transcript");
}

#[test]
fn a_second_process_in_the_same_profile_is_refused() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let f = ccs.profile("work").join("projects/p/s.jsonl");
    let mut h = hold(&f, "{\"first\":1}\n", &tmp.join("ready"));
    let (_, out) = child_append(&f, "{\"second\":1}\n");
    assert_busy(&out, "second process through work");
    expect_errno(
        append(&f, "{\"third\":1}\n"),
        EBUSY,
        "the test process through work",
    );
    assert!(h.alive(), "the owner is untouched");
    assert_eq!(read(&f), "{\"first\":1}\n");
}

#[test]
fn all_threads_of_the_owner_may_write() {
    let (ccs, _tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let work = ccs.profile("work").join("projects/p/s.jsonl");
    let personal = ccs.profile("personal").join("projects/p/s.jsonl");
    std::thread::scope(|sc| {
        for t in 0..8 {
            let f = if t % 2 == 0 { &work } else { &personal };
            sc.spawn(move || {
                for i in 0..100 {
                    append(f, &format!("{{\"t\":{t},\"i\":{i}}}\n"))
                        .unwrap_or_else(|e| panic!("thread {t} append {i}: {e}"));
                }
            });
        }
    });
    let text = read(&work);
    assert_jsonl(&text, "threads transcript");
    let mut next = [0u64; 8];
    let mut n = 0;
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let (t, i) = (v["t"].as_u64().unwrap() as usize, v["i"].as_u64().unwrap());
        assert_eq!(i, next[t], "thread {t}'s records in order");
        next[t] += 1;
        n += 1;
    }
    assert_eq!(n, 800, "800 complete lines");
    let locks = status_locks(&ccs);
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["pid"], me(), "the test process owns it");
}

#[test]
fn a_reader_process_reads_complete_lines_while_the_owner_writes() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let f = ccs.profile("work").join("projects/p/s.jsonl");
    let snaps = tmp.join("snaps");
    fs::create_dir(&snaps).unwrap();
    let pad = "x".repeat(300);
    let ready = tmp.join("ready");
    let mut writer = Kid::bash(
        "writer",
        r#"exec 3>>"$F" || exit 3; for i in $(seq 200); do echo "{\"i\":$i,\"pad\":\"$PAD\"}" >&3 || exit 4; [ $i = 1 ] && : > "$READY"; sleep 0.003; done"#,
        &[("F", s(&f)), ("PAD", &pad), ("READY", s(&ready))],
    );
    writer.wait_for(&ready);
    let other = ccs.profile("personal").join("projects/p/s.jsonl");
    let reader = Kid::bash(
        "reader",
        r#"for n in $(seq 40); do cat "$F" > "$SNAPS/$n" || exit 4; sleep 0.01; done"#,
        &[("F", s(&other)), ("SNAPS", s(&snaps))],
    );
    let r = reader.finish();
    assert_ok(&r, "reader (every read succeeds)");
    assert_ok(&writer.finish(), "writer");
    let final_text = read(&f);
    let all: Vec<&str> = final_text.lines().collect();
    assert_eq!(all.len(), 200);
    assert_jsonl(&final_text, "final transcript");
    let mut partial_views = 0;
    for n in 1..=40 {
        let snap = fs::read(snaps.join(n.to_string())).unwrap();
        let complete = match snap.iter().rposition(|&b| b == b'\n') {
            Some(end) => &snap[..=end],
            None => &snap[..0],
        };
        let text = std::str::from_utf8(complete).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.len() <= all.len() && lines[..] == all[..lines.len()],
            "snapshot {n}: its complete lines are not a prefix of the final file"
        );
        if !lines.is_empty() && lines.len() < all.len() {
            partial_views += 1;
        }
    }
    assert!(
        partial_views > 0,
        "no read overlapped the writes (the test proves nothing)"
    );
}

#[test]
fn kill9_of_the_owner_then_an_immediate_takeover() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let work = ccs.profile("work").join("projects/p/s.jsonl");
    let personal = ccs.profile("personal").join("projects/p/s.jsonl");
    let mut h = hold(&work, "{\"a\":1}\n", &tmp.join("ready"));
    let (_, out) = child_append(&personal, "{\"b\":1}\n");
    assert_busy(&out, "while the owner lives");
    h.kill9();
    // No sleep: the owner has been reaped, so its lock is free now.
    let (_, out) = child_append(&personal, "{\"b\":2}\n");
    assert_ok(&out, "takeover right after waitpid of the killed owner");
    assert_eq!(read(&work), "{\"a\":1}\n{\"b\":2}\n");

    // The taker has exited as well: the daemon sees it exit and releases its lock at once
    // (no lease to wait out).
    assert!(
        wait_until(Duration::from_secs(3), || status_locks(&ccs).is_empty()),
        "the exited taker's lock is still listed: {:?}",
        status_locks(&ccs)
    );

    // The next writer takes over again. A lock whose daemon died with it still held is shown
    // as gone once its owner is.
    let mut h = hold(&work, "{\"d\":4}\n", &tmp.join("ready-2"));
    assert_eq!(read(&work), "{\"a\":1}\n{\"b\":2}\n{\"d\":4}\n");
    let pid = h.pid();
    ccs.kill_daemon();
    h.kill9();
    let text = status_text(&ccs);
    let want = format!(
        "team/projects/p/s.jsonl  profile work, pid {pid} on {}",
        hostname()
    );
    let line = text
        .lines()
        .find(|l| l.contains(&want))
        .unwrap_or_else(|| panic!("no `{want}` in status:\n{text}"));
    assert!(line.contains("(owner gone: "), "{line}");
    let locks = status_locks(&ccs);
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["live"], false);
}

#[test]
fn a_torn_last_record_is_ended_with_a_newline_on_takeover() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let work = ccs.profile("work").join("projects/p/s.jsonl");
    let personal = ccs.profile("personal").join("projects/p/s.jsonl");
    let mut h = hold(&work, "{\"a\":1}\n{\"partial\":", &tmp.join("ready"));
    h.kill9();
    let (_, out) = child_append(&personal, "{\"ok\":1}\n");
    assert_ok(&out, "the next writer");
    assert_eq!(
        read(&work),
        "{\"a\":1}\n{\"partial\":\n{\"ok\":1}\n",
        "fragment kept, one newline added, the new record on its own line"
    );
    // A clean tail is left alone by the next takeover.
    append(&work, "{\"b\":2}\n").unwrap();
    assert_eq!(
        read(&personal),
        "{\"a\":1}\n{\"partial\":\n{\"ok\":1}\n{\"b\":2}\n"
    );
}

#[test]
fn a_non_owner_cannot_unlink_rename_or_truncate_but_the_owner_can() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let body = "{\"l\":1}\n{\"l\":2}\n";
    let store = ccs.group_projects("team").join("p/s.jsonl");
    let mut h = hold(
        &ccs.profile("work").join("projects/p/s.jsonl"),
        body,
        &tmp.join("ready"),
    );
    let ino = fs::metadata(&store).unwrap().ino();
    for profile in ["work", "personal"] {
        let dir = ccs.profile(profile).join("projects/p");
        let f = dir.join("s.jsonl");
        let other = dir.join(format!("other-{profile}.tmp"));
        fs::write(&other, "{\"new\":1}\n").unwrap();
        let w = |what: &str| format!("{what} through {profile}");
        expect_errno(fs::remove_file(&f), EBUSY, &w("unlink"));
        expect_errno(
            fs::rename(&f, dir.join("moved.jsonl")),
            EBUSY,
            &w("rename away"),
        );
        expect_errno(
            fs::rename(&f, dir.join("moved.txt")),
            EBUSY,
            &w("rename away to a non-transcript name"),
        );
        expect_errno(fs::rename(&other, &f), EBUSY, &w("rename over"));
        expect_errno(
            sys::renameat2(&other, &f, libc::RENAME_EXCHANGE),
            EBUSY,
            &w("rename exchange"),
        );
        expect_errno(sys::truncate(&f, 0), EBUSY, &w("truncate(2)"));
        expect_errno(
            OpenOptions::new().write(true).truncate(true).open(&f),
            EBUSY,
            &w("OpenOptions::truncate"),
        );
        expect_errno(
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_TRUNC)
                .open(&f),
            EBUSY,
            &w("O_RDONLY|O_TRUNC open"),
        );
        expect_errno(
            OpenOptions::new().write(true).open(&f),
            EBUSY,
            &w("O_WRONLY open (so no set_len either)"),
        );
        expect_errno(
            OpenOptions::new().read(true).write(true).open(&f),
            EBUSY,
            &w("O_RDWR open"),
        );
        let out = Command::new("truncate")
            .args(["-s", "0", s(&f)])
            .output()
            .unwrap();
        assert!(
            !out.status.success() && stderr(&out).contains("Device or resource busy"),
            "truncate -s 0 through {profile}: {} {}",
            out.status,
            stderr(&out)
        );
        let out = Command::new("rm").arg(&f).output().unwrap();
        assert!(
            !out.status.success() && stderr(&out).contains("Device or resource busy"),
            "rm through {profile}: {}",
            stderr(&out)
        );
        assert_eq!(read(&f), body, "unchanged ({profile})");
        assert_eq!(
            read(&other),
            "{\"new\":1}\n",
            "the other file is still there"
        );
        assert_eq!(fs::metadata(&store).unwrap().ino(), ino, "same file");
        // Reading is fine.
        let mut buf = String::new();
        fs::File::open(&f)
            .unwrap()
            .read_to_string(&mut buf)
            .unwrap();
        assert_eq!(buf, body);
    }
    assert!(h.alive());
    h.kill9();

    // Now this process owns it, and may do all of it; another process still may not.
    let dir = ccs.profile("personal").join("projects/p");
    let f = dir.join("s.jsonl");
    let work_f = ccs.profile("work").join("projects/p/s.jsonl");
    append(&f, "{\"l\":3}\n").expect("takeover");
    let out = Command::new("rm").arg(&work_f).output().unwrap();
    assert!(
        stderr(&out).contains("Device or resource busy"),
        "rm by another process while this one owns it: {}",
        stderr(&out)
    );
    {
        let fh = OpenOptions::new().append(true).open(&f).unwrap();
        fh.set_len(8).expect("owner set_len");
    }
    assert_eq!(read(&f), "{\"l\":1}\n");
    sys::truncate(&work_f, 0).expect("owner truncate(2) through the other profile");
    assert_eq!(read(&f), "");
    append(&f, "{\"l\":4}\n").unwrap();
    {
        let mut fh = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&f)
            .expect("owner O_TRUNC open");
        fh.write_all(b"{\"l\":5}\n").unwrap();
    }
    assert_eq!(read(&f), "{\"l\":5}\n");
    let other = dir.join("other-personal.tmp");
    fs::rename(&other, &f).expect("owner renames another file over it");
    assert_eq!(read(&f), "{\"new\":1}\n");
    append(&f, "{\"l\":6}\n").expect("owner writes the replacement");
    let moved = dir.join("moved.jsonl");
    fs::rename(&f, &moved).expect("owner renames it away");
    append(&moved, "{\"l\":7}\n").expect("owner writes the moved file");
    fs::remove_file(&moved).expect("owner unlinks it");
    assert!(!store.exists());
}

#[test]
fn two_daemons_on_one_store_agree_on_the_owner() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let m2 = second_mount(&ccs, &[]);
    let mnt2 = m2.1.clone();
    let via1 = ccs.profile("work").join("projects/p/s.jsonl");
    let via2 = mnt2.join("personal/projects/p/s.jsonl");
    let via2_work = mnt2.join("work/projects/p/s.jsonl");
    let mut h = hold(&via1, "{\"d\":1}\n", &tmp.join("ready"));
    expect_errno(
        append(&via2, "{\"d\":2}\n"),
        EBUSY,
        "write through daemon 2 (personal)",
    );
    expect_errno(
        append(&via2_work, "{\"d\":2}\n"),
        EBUSY,
        "write through daemon 2 (work)",
    );
    assert_busy(
        &child_append(&via2, "{\"d\":2}\n").1,
        "child through daemon 2",
    );
    expect_errno(fs::remove_file(&via2), EBUSY, "unlink through daemon 2");
    h.kill9();
    append(&via2, "{\"d\":3}\n").expect("daemon 2's writer takes over at once");
    // And daemon 1 now refuses others on behalf of daemon 2's owner.
    assert_busy(
        &child_append(&via1, "{\"d\":4}\n").1,
        "child through daemon 1 while daemon 2's writer owns it",
    );
    assert_eq!(read(&via1), "{\"d\":1}\n{\"d\":3}\n");
    drop(m2);
    assert!(!is_mounted(&mnt2), "the second mount is gone");
}

#[test]
fn private_files_are_never_locked() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    fs::create_dir_all(ccs.profile("solo").join("projects")).unwrap();
    let script = r#"exec 3>>"$F" || exit 3; echo "{\"id\":$ID,\"n\":1}" >&3 || exit 4; : > "$READY"; while [ ! -e "$OTHER" ]; do sleep 0.01; done; echo "{\"id\":$ID,\"n\":2}" >&3 || exit 4"#;
    for (k, f) in [
        ccs.profile("work").join("history.jsonl"),
        ccs.profile("solo").join("projects/x.jsonl"),
    ]
    .iter()
    .enumerate()
    {
        let r = |i: usize| tmp.join(format!("ready-{k}-{i}"));
        let kids: Vec<Kid> = (0..2)
            .map(|i| {
                Kid::bash(
                    &format!("writer {i} of {}", f.display()),
                    script,
                    &[
                        ("F", s(f)),
                        ("ID", &i.to_string()),
                        ("READY", s(&r(i))),
                        ("OTHER", s(&r(1 - i))),
                    ],
                )
            })
            .collect();
        for (i, kid) in kids.into_iter().enumerate() {
            assert_ok(
                &kid.finish(),
                &format!("concurrent writer {i} of {}", f.display()),
            );
        }
        let text = read(f);
        assert_jsonl(&text, "private file");
        assert_eq!(text.lines().count(), 4, "{text}");
    }
    assert!(
        lock_files(&ccs).is_empty(),
        "no locks: {:?}",
        lock_files(&ccs)
    );
    assert!(status_locks(&ccs).is_empty());
}

#[test]
fn subagent_and_deeper_continuity_transcripts_are_locked() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let work = ccs.profile("work");
    let personal = ccs.profile("personal");
    fs::create_dir_all(work.join("projects/p/sid/subagents")).unwrap();
    let mut files = vec![("projects/p/sid/subagents/agent-1.jsonl", true)];
    for d in ["todos", "session-env", "file-history", "shell-snapshots"] {
        fs::create_dir_all(work.join(d)).unwrap();
        // personal is not deeper: its dir of the same name is private.
        fs::create_dir_all(personal.join(d)).unwrap();
        files.push((
            match d {
                "todos" => "todos/t.jsonl",
                "session-env" => "session-env/t.jsonl",
                "file-history" => "file-history/t.jsonl",
                _ => "shell-snapshots/t.jsonl",
            },
            false,
        ));
    }
    let mut holders = Vec::new();
    for (i, (rel, _)) in files.iter().enumerate() {
        holders.push(hold(
            &work.join(rel),
            "{\"h\":1}\n",
            &tmp.join(format!("ready-{i}")),
        ));
    }
    for (rel, in_projects) in &files {
        expect_errno(
            append(&work.join(rel), "{\"x\":1}\n"),
            EBUSY,
            &format!("work/{rel}"),
        );
        assert_busy(
            &child_append(&work.join(rel), "{\"x\":1}\n").1,
            &format!("a child through work/{rel}"),
        );
        if *in_projects {
            expect_errno(
                append(&personal.join(rel), "{\"x\":1}\n"),
                EBUSY,
                &format!("personal/{rel}"),
            );
        } else {
            append(&personal.join(rel), "{\"x\":1}\n")
                .unwrap_or_else(|e| panic!("personal/{rel} is private to personal: {e}"));
        }
    }
    // One lock file per file, named by its inode number.
    let names = lock_files(&ccs);
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("ino-") && n.ends_with(".lock")),
        "{names:?}"
    );
    assert_eq!(
        read(&ccs.continuity("team", "todos").join("t.jsonl")),
        "{\"h\":1}\n",
        "the todos transcript is in the group store, unchanged"
    );
    let locks = status_locks(&ccs);
    let mut shown: Vec<&str> = locks.iter().map(|l| l["file"].as_str().unwrap()).collect();
    shown.sort();
    assert_eq!(
        shown,
        [
            "continuity/file-history/t.jsonl",
            "continuity/session-env/t.jsonl",
            "continuity/shell-snapshots/t.jsonl",
            "continuity/todos/t.jsonl",
            "projects/p/sid/subagents/agent-1.jsonl",
        ]
    );
}

#[test]
fn status_shows_held_locks_and_the_lease_drops_exited_owners() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let out = mount_at(&ccs, &ccs.mnt, &["--lock-lease", "3"]);
    assert_ok(&out, "mount --lock-lease 3");
    let _m = mounted(&ccs);
    let f = ccs.profile("work").join("projects/p/s.jsonl");
    let mut h = hold(&f, "{\"a\":1}\n", &ccs.tmp.path().join("ready"));
    let pid = h.pid();

    let text = status_text(&ccs);
    let want = format!(
        "  team/projects/p/s.jsonl  profile work, pid {pid} on {}, ",
        hostname()
    );
    let line = text
        .lines()
        .find(|l| l.starts_with(&want))
        .unwrap_or_else(|| panic!("no `{want}` in status:\n{text}"));
    let age = line[want.len()..].strip_suffix('s').unwrap_or("");
    assert!(
        !age.is_empty() && age.bytes().all(|b| b.is_ascii_digit()),
        "`<group>/<file>  profile P, pid N on HOST, Ns`: {line}"
    );
    assert!(text.contains("\nlocks:\n"), "{text}");

    let locks = status_locks(&ccs);
    assert_eq!(locks.len(), 1, "{locks:?}");
    let l = &locks[0];
    assert_eq!(l["group"], "team");
    assert_eq!(l["file"], "projects/p/s.jsonl");
    assert_eq!(l["profile"], "work");
    assert_eq!(l["pid"], pid);
    assert_eq!(l["host"], hostname());
    assert_eq!(l["live"], true);
    assert!(l["since"].as_u64().unwrap() > 1_600_000_000, "{l}");
    assert!(l["age_secs"].as_u64().unwrap() < 10, "{l}");

    // Held across a renewal (every lease/3 = 1 s), then dropped once the owner exits, with
    // nobody else asking for the file.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(status_locks(&ccs).len(), 1, "a live owner keeps its lock");
    h.kill9();
    let t0 = Instant::now();
    assert!(
        wait_until(Duration::from_secs(4), || status_locks(&ccs).is_empty()),
        "the exited owner's lock is still listed after 4 s: {:?}",
        status_locks(&ccs)
    );
    assert!(lock_files(&ccs).is_empty());
    assert!(
        t0.elapsed() < Duration::from_millis(3500),
        "{:?}",
        t0.elapsed()
    );
    assert!(status_text(&ccs).contains("locks:       none"));
}

#[test]
fn unlock_refuses_a_live_owner_without_force() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let f = ccs.profile("work").join("projects/p/s.jsonl");
    let mut h = hold(&f, "{\"a\":1}\n", &tmp.join("ready"));
    let out = ccs.cli(&["unlock", s(&f)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unlock without --force: {out:?}"
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("ccsfs: ") && err.contains("--force"),
        "names --force: {err}"
    );
    assert!(
        err.contains(&h.pid().to_string()),
        "names the owner's pid: {err}"
    );
    assert!(stdout(&out).is_empty());
    expect_errno(append(&f, "{\"b\":1}\n"), EBUSY, "still held");

    let out = ccs.cli(&["unlock", "--force", s(&f)]);
    assert_ok(&out, "unlock --force");
    assert!(
        stdout(&out).contains("unlocked projects/p/s.jsonl"),
        "{out:?}"
    );
    let personal = ccs.profile("personal").join("projects/p/s.jsonl");
    append(&personal, "{\"b\":2}\n").expect("another process writes after --force");
    assert!(h.alive(), "the old owner was not touched");
    drop(h);

    // Now this process holds it: the store path works as well.
    let store = ccs.group_projects("team").join("p/s.jsonl");
    let out = ccs.cli(&["unlock", s(&store)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "store path, live owner: {out:?}"
    );
    assert!(stderr(&out).contains("--force"));
    let out = ccs.cli(&["unlock", "--force", s(&store)]);
    assert_ok(&out, "unlock --force by store path");
    let out = ccs.cli(&["unlock", s(&f)]);
    assert_ok(&out, "unlock of an unlocked file");
    assert!(
        stdout(&out).contains("projects/p/s.jsonl is not locked"),
        "{out:?}"
    );
    assert_eq!(read(&f), "{\"a\":1}\n{\"b\":2}\n");

    // A dead owner's lock goes without --force. (A live daemon releases it itself as the
    // owner exits; here the daemon died first and left it.)
    let mut h = hold(&f, "{\"c\":3}\n", &tmp.join("ready-2"));
    let pid = h.pid();
    ccs.kill_daemon();
    h.kill9();
    let out = ccs.cli(&["unlock", s(&f)]);
    assert_ok(&out, "unlock of a dead owner's lock");
    assert!(
        stdout(&out).contains(&format!("was held by pid {pid}")),
        "{out:?}"
    );
}

#[test]
fn refusals_are_logged_with_both_pids() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let f = ccs.profile("work").join("projects/p/s.jsonl");
    let h = hold(&f, "{\"a\":1}\n", &tmp.join("ready"));
    let personal = ccs.profile("personal").join("projects/p/s.jsonl");
    expect_errno(append(&personal, "{\"b\":1}\n"), EBUSY, "refused");
    expect_errno(fs::remove_file(&personal), EBUSY, "refused unlink");
    let log = ccs.ccs.join("logs/ccsfs.log");
    let want = format!(
        "refused write to projects/p/s.jsonl by pid {} (personal): held by pid {} (work)",
        me(),
        h.pid()
    );
    let mut text = String::new();
    let found = wait_until(Duration::from_secs(3), || {
        text = fs::read_to_string(&log).unwrap_or_default();
        let hits: Vec<&str> = text.lines().filter(|l| l.contains(&want)).collect();
        hits.iter().any(|l| !l.contains("(unlink/rename/truncate)"))
            && hits.iter().any(|l| l.ends_with("(unlink/rename/truncate)"))
    });
    assert!(
        found,
        "no `{want}` (and unlink refusal) in the log:\n{text}"
    );
}

#[test]
fn lock_idle_lets_an_idle_owner_lose_the_lock_and_the_default_never_does() {
    let (idle, idle_tmp) = setup(&["--lock-idle", "1"]);
    let _mi = mounted(&idle);
    let (dflt, dflt_tmp) = setup(&[]);
    let _md = mounted(&dflt);
    // Each owner wrote once (open, write, close) and lives on without a handle; on the idle
    // mount a second owner keeps its handle open.
    let script = r#"echo '{"a":1}' >> "$F" || exit 3; : > "$READY"; exec sleep 60"#;
    let idle_f = idle.profile("work").join("projects/p/s.jsonl");
    let dflt_f = dflt.profile("work").join("projects/p/s.jsonl");
    let open_f = idle.profile("work").join("projects/p/open.jsonl");
    let mut owners = Vec::new();
    for (f, ready) in [
        (&idle_f, idle_tmp.join("ready")),
        (&dflt_f, dflt_tmp.join("ready")),
    ] {
        let mut k = Kid::bash("idle owner", script, &[("F", s(f)), ("READY", s(&ready))]);
        k.wait_for(&ready);
        owners.push(k);
    }
    owners.push(hold(&open_f, "{\"a\":1}\n", &idle_tmp.join("ready-open")));
    let idle_p = idle.profile("personal").join("projects/p/s.jsonl");
    let dflt_p = dflt.profile("personal").join("projects/p/s.jsonl");
    let open_p = idle.profile("personal").join("projects/p/open.jsonl");
    expect_errno(
        append(&idle_p, "{\"b\":1}\n"),
        EBUSY,
        "idle limit not reached yet",
    );
    std::thread::sleep(Duration::from_millis(1600));
    append(&idle_p, "{\"b\":2}\n").expect("an owner idle for > 1 s loses the lock");
    expect_errno(
        append(&dflt_p, "{\"b\":2}\n"),
        EBUSY,
        "without --lock-idle an idle owner keeps the lock",
    );
    expect_errno(
        append(&open_p, "{\"b\":2}\n"),
        EBUSY,
        "an owner with an open handle keeps the lock",
    );
    for o in &mut owners {
        assert!(o.alive(), "{} is still running", o.what);
    }
    assert_eq!(read(&idle_f), "{\"a\":1}\n{\"b\":2}\n");
    assert_eq!(read(&dflt_f), "{\"a\":1}\n");
}

/// `--lock-idle` spares an owner with an open write handle, also when that handle is open
/// through another daemon on the same store.
#[test]
fn lock_idle_spares_an_owner_whose_handle_is_open_through_another_daemon() {
    let (ccs, tmp) = setup(&["--lock-idle", "1"]);
    let _m = mounted(&ccs);
    let m2 = second_mount(&ccs, &["--lock-idle", "1"]);
    let mnt2 = m2.1.clone();
    let f = ccs.profile("work").join("projects/p/s.jsonl");
    let mut h = hold(&f, "{\"a\":1}\n", &tmp.join("ready"));
    std::thread::sleep(Duration::from_millis(1600));
    expect_errno(
        append(
            &ccs.profile("personal").join("projects/p/s.jsonl"),
            "{\"b\":1}\n",
        ),
        EBUSY,
        "through the owner's daemon: its handle is open",
    );
    expect_errno(
        append(&mnt2.join("personal/projects/p/s.jsonl"), "{\"b\":2}\n"),
        EBUSY,
        "through the second daemon: the owner (alive, write handle open through daemon 1, \
         idle > 1 s) must keep the lock",
    );
    assert!(h.alive());
    assert_eq!(read(&f), "{\"a\":1}\n");
}

/// `--lock-idle` counts the current owner's open handles only: a forced-out owner closing
/// its old handle does not make the new owner (whose handle is open) look idle.
#[test]
fn lock_idle_spares_a_new_owner_when_the_forced_out_owner_closes_its_handle() {
    let (ccs, tmp) = setup(&["--lock-idle", "1"]);
    let _m = mounted(&ccs);
    let f = ccs.profile("work").join("projects/p/s.jsonl");
    let (ready_a, closed_a) = (tmp.join("ready-a"), tmp.join("closed-a"));
    let mut a = Kid::bash(
        "old owner",
        r#"exec 3>>"$F" || exit 3; echo '{"a":1}' >&3; : > "$READY"; read -r _; exec 3>&-; : > "$CLOSED"; exec sleep 60"#,
        &[
            ("F", s(&f)),
            ("READY", s(&ready_a)),
            ("CLOSED", s(&closed_a)),
        ],
    );
    a.wait_for(&ready_a);
    assert_ok(&ccs.cli(&["unlock", "--force", s(&f)]), "unlock --force");
    let mut b = hold(&f, "{\"b\":1}\n", &tmp.join("ready-b"));
    a.go();
    a.wait_for(&closed_a);
    std::thread::sleep(Duration::from_millis(1600));
    expect_errno(
        append(
            &ccs.profile("personal").join("projects/p/s.jsonl"),
            "{\"c\":1}\n",
        ),
        EBUSY,
        "the new owner still has its write handle open",
    );
    assert!(b.alive());
    assert_eq!(read(&f), "{\"a\":1}\n{\"b\":1}\n");
}
