//! The ways around the single-writer lock that issue 11 found, each with real processes on a
//! real mount: the lock belongs to the file (its identity in the store), not to the name it
//! was first met under. A hard link, a renamed parent dir or a rename of the file itself lead
//! to the same lock; a file name cannot forge a lock record (newlines) or share one with
//! another name (non-UTF-8 bytes); a create is never refused for another file's lock and
//! leaves nothing behind when its lock cannot be taken; and a write handle the owner opened
//! keeps the lock after the owner exits, while a forked child still writes through it.

mod common;
#[path = "common/locking.rs"]
mod locking;
#[path = "common/sys.rs"]
mod sys;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Ccs, process_gone, stderr, wait_until};
use locking::*;
use serde_json::Value;
use sys::expect_errno;

/// `: > FILE` (open O_WRONLY|O_TRUNC) from a fresh shell: its exit status and stderr.
fn shell_truncate(f: &Path) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(r#": > "$F""#)
        .env("F", f)
        .output()
        .expect("run bash")
}

#[track_caller]
fn assert_busy_shell(out: &std::process::Output, what: &str) {
    assert!(
        !out.status.success() && stderr(out).contains("Device or resource busy"),
        "{what}: expected EBUSY, got {} with stderr: {}",
        out.status,
        stderr(out)
    );
}

/// The lock files in the store parse as JSON records; returns them.
fn lock_records(ccs: &Ccs) -> Vec<Value> {
    let dir = ccs.ccs.join("shared/context-groups/team/.ccsfs/locks");
    lock_files(ccs)
        .iter()
        .map(|n| {
            let text = fs::read_to_string(dir.join(n)).unwrap();
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("lock file {n} is not JSON ({e}): {text:?}"))
        })
        .collect()
}

/// Break 1: `ln s.jsonl s.txt`, then another profile writes or truncates `s.txt`. The lock
/// follows the inode: every name of a held transcript is held, whoever made the link and
/// wherever (through the mount or behind it), and a file with several names is locked even
/// under a name that is not `*.jsonl`.
#[test]
fn every_name_of_a_held_transcript_is_held() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let work = ccs.profile("work").join("projects/p");
    let personal = ccs.profile("personal").join("projects/p");
    let body = "{\"owner\":1}\n";
    let mut h = hold(&work.join("s.jsonl"), body, &tmp.join("ready"));

    // A hard link is not a write: anyone may make it (the lock comes along). Personal has
    // never looked up `s.jsonl`, so it meets the file under the new names first.
    fs::hard_link(work.join("s.jsonl"), work.join("s.txt")).expect("ln through work");
    let behind = ccs.group_projects("team").join("p");
    fs::hard_link(behind.join("s.jsonl"), behind.join("s.log")).expect("ln behind the mount");
    for name in ["s.txt", "s.log"] {
        let f = personal.join(name);
        assert_busy(
            &child_append(&f, "{\"intruder\":1}\n").1,
            &format!("a write-open of {name} by personal"),
        );
        assert_busy(
            &child_append(&work.join(name), "{\"intruder\":1}\n").1,
            &format!("a write-open of {name} by another process through work"),
        );
        assert_busy_shell(&shell_truncate(&f), &format!(": > {name} by personal"));
        expect_errno(
            sys::truncate(&f, 0),
            EBUSY,
            &format!("truncate(2) of {name}"),
        );
        expect_errno(
            fs::OpenOptions::new().write(true).open(&f),
            EBUSY,
            &format!("O_WRONLY open of {name} by this process"),
        );
        expect_errno(
            fs::remove_file(&f),
            EBUSY,
            &format!("unlink of {name} by a non-owner"),
        );
        fs::write(personal.join("other.tmp"), "x").unwrap();
        expect_errno(
            fs::rename(personal.join("other.tmp"), &f),
            EBUSY,
            &format!("rename over {name} by a non-owner"),
        );
        assert_eq!(read(&f), body, "{name}: the owner's records are intact");
    }
    assert!(h.alive());
    h.kill9();
    // Once the owner is gone, the next writer takes over through any name.
    append(&personal.join("s.txt"), "{\"next\":1}\n").expect("takeover through s.txt");
    assert_busy(
        &child_append(&work.join("s.jsonl"), "{\"x\":1}\n").1,
        "the new owner (through s.txt) holds s.jsonl as well",
    );
    assert_eq!(read(&work.join("s.jsonl")), "{\"owner\":1}\n{\"next\":1}\n");

    // A link made before anyone holds the file: writing through the other name takes the
    // lock for every name.
    let store_a = behind.join("a.jsonl");
    fs::write(&store_a, "").unwrap();
    fs::hard_link(&store_a, behind.join("a.txt")).unwrap();
    let mut h2 = hold(
        &personal.join("a.txt"),
        "{\"via\":\"txt\"}\n",
        &tmp.join("ready-2"),
    );
    assert_busy(
        &child_append(&work.join("a.jsonl"), "{\"x\":1}\n").1,
        "a.jsonl while a.txt's writer owns the file",
    );
    h2.kill9();
}

/// Break 2: `mv projects/de projects/de2` while work appends to `de/s.jsonl`, then personal
/// writes `de2/s.jsonl`. Renaming the dir is allowed (it writes no transcript), the lock goes
/// with the file, and `status` shows it under the path it has now, also after a move behind
/// the mount. The owner may rename the file itself, even to a name that is not `*.jsonl`:
/// it stays locked.
#[test]
fn the_lock_follows_its_file_through_renames() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let work = ccs.profile("work").join("projects");
    let personal = ccs.profile("personal").join("projects");
    fs::create_dir_all(work.join("de")).unwrap();
    let mut h = hold(
        &work.join("de/s.jsonl"),
        "{\"owner\":1}\n",
        &tmp.join("ready"),
    );
    fs::rename(personal.join("de"), personal.join("de2")).expect("mv de de2 by personal");
    assert_busy(
        &child_append(&personal.join("de2/s.jsonl"), "{\"intruder\":1}\n").1,
        "personal writes de2/s.jsonl while work's owner lives",
    );
    expect_errno(
        append(&work.join("de2/s.jsonl"), "{\"intruder\":2}\n"),
        EBUSY,
        "this process through work",
    );
    let locks = status_locks(&ccs);
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["file"], "projects/de2/s.jsonl", "{locks:?}");
    assert_eq!(locks[0]["pid"], h.pid());
    let text = status_text(&ccs);
    assert!(
        text.contains("team/projects/de2/s.jsonl  profile work")
            && !text.contains("projects/de/s.jsonl"),
        "status shows the lock where the file is now:\n{text}"
    );

    // Moved behind the mount: status still finds it, and the lock still holds.
    let store = ccs.group_projects("team");
    fs::create_dir(store.join("deep")).unwrap();
    fs::rename(store.join("de2"), store.join("deep/de3")).unwrap();
    assert_busy(
        &child_append(&personal.join("deep/de3/s.jsonl"), "{\"intruder\":3}\n").1,
        "after a move behind the mount",
    );
    let locks = status_locks(&ccs);
    assert_eq!(locks[0]["file"], "projects/deep/de3/s.jsonl", "{locks:?}");
    assert_eq!(read(&store.join("deep/de3/s.jsonl")), "{\"owner\":1}\n");
    assert!(h.alive());
    drop(h);

    // The owner renames its own transcript away from `*.jsonl`: still its, still locked.
    let mine = work.join("p/mine.jsonl");
    append(&mine, "{\"mine\":1}\n").unwrap();
    fs::rename(&mine, work.join("p/mine.bak")).expect("the owner renames its transcript");
    assert_busy(
        &child_append(&personal.join("p/mine.bak"), "{\"intruder\":4}\n").1,
        "another process on the renamed transcript",
    );
    append(&work.join("p/mine.bak"), "{\"mine\":2}\n").expect("the owner writes on");
    assert_eq!(
        read(&personal.join("p/mine.bak")),
        "{\"mine\":1}\n{\"mine\":2}\n"
    );
}

/// Break 3: a transcript named `inj\nhost=evilhost\n…\n.jsonl` must not inject fields into
/// its lock record (which made the lock read as free, and `status` show a forged owner).
#[test]
fn a_newline_in_a_name_cannot_forge_a_lock_record() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let name = "inj\nhost=evilhost\nboot_id=x\npid=1\nstart=1\nprofile=injected\nsince=1\nlease=99999\ndaemon=1\n.jsonl";
    let work = ccs.profile("work").join("projects/p").join(name);
    let h = hold(&work, "{\"owner\":1}\n", &tmp.join("ready"));
    let personal = ccs.profile("personal").join("projects/p").join(name);
    assert_busy(
        &child_append(&personal, "{\"intruder\":1}\n").1,
        "personal writes the transcript with newlines in its name",
    );
    expect_errno(
        append(&personal, "{\"intruder\":2}\n"),
        EBUSY,
        "this process",
    );
    assert_eq!(read(&work), "{\"owner\":1}\n");
    let locks = status_locks(&ccs);
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["profile"], "work");
    assert_eq!(locks[0]["pid"], h.pid());
    assert_eq!(locks[0]["host"], hostname());
    assert_eq!(
        locks[0]["file"],
        format!("projects/p/{}", name.replace('\n', "\\n")),
        "the name is shown escaped, on one line"
    );
    let text = status_text(&ccs);
    assert!(
        !text.contains("evilhost") || text.contains("inj\\nhost=evilhost"),
        "{text}"
    );
    assert!(!text.contains("profile injected"), "{text}");
    let recs = lock_records(&ccs);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["profile"], "work", "{:?}", recs[0]);
    assert_eq!(recs[0]["pid"], h.pid(), "{:?}", recs[0]);
}

/// Break 4: `$'\xfe'.jsonl` and `$'\xfd'.jsonl` shared one lock (a lossy path string), so an
/// unrelated create got EBUSY and left an empty file behind. They are two files, two locks.
#[test]
fn non_utf8_names_are_two_locks() {
    let (ccs, tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let dir = ccs.profile("work").join("projects/p");
    let fe = dir.join(OsStr::from_bytes(b"\xfe.jsonl"));
    let fd = ccs
        .profile("personal")
        .join("projects/p")
        .join(OsStr::from_bytes(b"\xfd.jsonl"));
    let h = hold(&fe, "{\"fe\":1}\n", &tmp.join("ready"));
    append(&fd, "{\"fd\":1}\n").expect("creating \\xfd.jsonl while \\xfe.jsonl is held");
    assert_eq!(read(&fd), "{\"fd\":1}\n");
    assert_busy(
        &child_append(&fd, "{\"x\":1}\n").1,
        "\\xfd.jsonl is this process's",
    );
    assert_busy(
        &child_append(&fe, "{\"x\":1}\n").1,
        "\\xfe.jsonl is the holder's",
    );
    let mut locks: Vec<(String, u64)> = status_locks(&ccs)
        .iter()
        .map(|l| {
            (
                l["file"].as_str().unwrap().to_string(),
                l["pid"].as_u64().unwrap(),
            )
        })
        .collect();
    locks.sort();
    assert_eq!(
        locks,
        vec![
            ("projects/p/\\xfd.jsonl".to_string(), u64::from(me())),
            ("projects/p/\\xfe.jsonl".to_string(), u64::from(h.pid())),
        ]
    );
    assert_eq!(lock_files(&ccs).len(), 2);
}

/// A create whose lock cannot be taken (here: the store's lock dir is a plain file) fails
/// and leaves no empty transcript behind; files that need no lock are created as usual.
#[test]
fn a_create_that_cannot_be_locked_leaves_no_file() {
    let (ccs, _tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let group = ccs.ccs.join("shared/context-groups/team");
    let _ = fs::remove_dir_all(group.join(".ccsfs"));
    fs::create_dir_all(group.join(".ccsfs")).unwrap();
    fs::write(group.join(".ccsfs/locks"), "not a dir").unwrap();
    let f = ccs.profile("work").join("projects/p/new.jsonl");
    let r = append(&f, "{\"a\":1}\n");
    assert!(r.is_err(), "the create cannot be locked, yet succeeded");
    assert!(
        !ccs.group_projects("team").join("p/new.jsonl").exists(),
        "a refused create left its file behind"
    );
    fs::write(ccs.profile("work").join("projects/p/note.txt"), "x").expect("no lock needed");
    fs::remove_file(group.join(".ccsfs/locks")).unwrap();
    append(&f, "{\"a\":1}\n").expect("with the lock dir back");
    assert_eq!(read(&f), "{\"a\":1}\n");
}

/// Kills a process on drop (the forked child of the fork test), unless it is gone already.
struct KillOnDrop(Option<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // SAFETY: plain kill(2) of a pid this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Break 5: the owner opens the transcript O_APPEND, forks and exits; its child writes on
/// through the inherited handle. The lock is not free while that handle is open: another
/// profile's write-open is EBUSY (through either daemon) until the child closes it, and the
/// records never interleave.
#[test]
fn a_forked_child_keeps_the_lock_while_the_inherited_handle_is_open() {
    let (ccs, tmp) = setup(&["--lock-lease", "3"]);
    let _m = mounted(&ccs);
    let m2 = second_mount(&ccs, &["--lock-lease", "3"]);
    let f = ccs.profile("work").join("projects/p/s.jsonl");
    let (child_pid, child_ready, stop) = (
        tmp.join("child-pid"),
        tmp.join("child-ready"),
        tmp.join("stop"),
    );
    let script = r#"exec 3>>"$F" || exit 3
printf '%s\n' '{"parent":1}' >&3 || exit 4
(
  echo "$BASHPID" > "$CHILD_PID"
  n=0
  while [ ! -e "$STOP" ] && [ $n -lt 600 ]; do
    printf '%s\n' "{\"child\":$n}" >&3 || exit 4
    [ $n = 0 ] && : > "$CHILD_READY"
    n=$((n+1))
    sleep 0.02
  done
) </dev/null >/dev/null 2>&1 &
exit 0"#;
    let parent = Kid::bash(
        "forking owner",
        script,
        &[
            ("F", f.to_str().unwrap()),
            ("CHILD_PID", child_pid.to_str().unwrap()),
            ("CHILD_READY", child_ready.to_str().unwrap()),
            ("STOP", stop.to_str().unwrap()),
        ],
    );
    let parent_pid = parent.pid();
    assert_ok(&parent.finish(), "the owner forks and exits");
    assert!(
        wait_until(Duration::from_secs(10), || child_ready.exists()),
        "the child never wrote"
    );
    let pid: i32 = fs::read_to_string(&child_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _kill = KillOnDrop(Some(pid));
    assert!(process_gone(parent_pid as i32), "the owner has exited");
    // Past a lease renewal (every second with --lock-lease 3), which drops exited owners.
    std::thread::sleep(Duration::from_millis(1500));
    let personal = ccs.profile("personal").join("projects/p/s.jsonl");
    assert_busy(
        &child_append(&personal, "{\"intruder\":1}\n").1,
        "personal while the owner's child writes through its handle",
    );
    expect_errno(
        append(&personal, "{\"intruder\":2}\n"),
        EBUSY,
        "this process through personal",
    );
    expect_errno(
        append(
            &m2.1.join("personal/projects/p/s.jsonl"),
            "{\"intruder\":3}\n",
        ),
        EBUSY,
        "through the second daemon",
    );
    let locks = status_locks(&ccs);
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["pid"], parent_pid);
    assert_eq!(locks[0]["live"], true, "held by its open handle: {locks:?}");

    fs::write(&stop, "").unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || process_gone(pid)),
        "the child did not stop"
    );
    append(&personal, "{\"next\":1}\n").expect("once the child closed the handle");
    let text = read(&f);
    assert_jsonl(&text, "transcript");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "{\"parent\":1}");
    assert_eq!(*lines.last().unwrap(), "{\"next\":1}");
    for (i, l) in lines[1..lines.len() - 1].iter().enumerate() {
        assert_eq!(
            *l,
            format!("{{\"child\":{i}}}"),
            "only the child's records between"
        );
    }
}

#[test]
fn the_owner_keeps_working_through_every_name() {
    let (ccs, _tmp) = setup(&[]);
    let _m = mounted(&ccs);
    let dir = ccs.profile("work").join("projects/p");
    append(&dir.join("s.jsonl"), "{\"a\":1}\n").unwrap();
    fs::hard_link(dir.join("s.jsonl"), dir.join("s.txt")).unwrap();
    append(&dir.join("s.txt"), "{\"b\":1}\n").expect("the owner through the link");
    fs::remove_file(dir.join("s.jsonl")).expect("the owner unlinks one name");
    assert_busy(
        &child_append(&dir.join("s.txt"), "{\"x\":1}\n").1,
        "the other name stays locked",
    );
    fs::remove_file(dir.join("s.txt")).expect("the owner unlinks the last name");
    assert!(lock_files(&ccs).is_empty(), "{:?}", lock_files(&ccs));
}
