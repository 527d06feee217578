//! Directory listings as the session picker makes them (list a dir, stat every entry), cold
//! and warm: a listing the kernel keeps in its cache stays coherent across profiles and with
//! changes made behind the mount, and the entries a READDIRPLUS hands the kernel (each one a
//! lookup) are forgotten exactly, so the daemon keeps nothing once the kernel drops them.

mod common;
#[path = "common/sys.rs"]
mod sys;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::{Ccs, THREE_PROFILES, prereq, wait_until};

/// The attribute TTL has passed (1 s), with a margin.
const PAST_TTL: Duration = Duration::from_millis(1300);

/// The picker: every name in `dir` with its size, each entry stat'ed by path.
fn picker(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            let md = fs::symlink_metadata(e.path())
                .unwrap_or_else(|err| panic!("stat {}: {err}", e.path().display()));
            (e.file_name().into_string().unwrap(), md.len())
        })
        .collect();
    out.sort();
    out
}

fn names(listing: &[(String, u64)]) -> BTreeSet<String> {
    listing.iter().map(|(n, _)| n.clone()).collect()
}

fn session(i: usize) -> String {
    format!("{i:08x}-0000-4000-8000-000000000000.jsonl")
}

#[test]
fn a_cached_listing_shows_other_profiles_at_once_and_changes_behind_the_mount_after_the_ttl() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let work = ccs.profile("work").join("projects/-p");
    let personal = ccs.profile("personal").join("projects/-p");
    let store = ccs.group_projects("team").join("-p");
    fs::create_dir_all(&work).unwrap();
    for i in 0..40 {
        fs::write(work.join(session(i)), "{}\n").unwrap();
    }
    // Listed warm several times (the kernel keeps the listing), then cold.
    for _ in 0..3 {
        assert_eq!(picker(&work).len(), 40);
    }
    std::thread::sleep(PAST_TTL);
    assert_eq!(picker(&work).len(), 40, "cold listing");
    assert_eq!(picker(&work).len(), 40, "warm again");

    // Through another profile: seen at once, in a listing the kernel has cached.
    fs::write(personal.join(session(100)), "{\"a\":1}\n").unwrap();
    fs::remove_file(personal.join(session(0))).unwrap();
    let listed = picker(&work);
    assert!(names(&listed).contains(&session(100)), "{listed:?}");
    assert!(!names(&listed).contains(&session(0)), "{listed:?}");

    // Behind the mount: a new session, a deleted one and an append show within the TTL.
    assert_eq!(picker(&work).len(), 40);
    fs::write(store.join(session(200)), "{}\n").unwrap();
    fs::remove_file(store.join(session(1))).unwrap();
    fs::write(store.join(session(2)), "{\"longer\":true}\n").unwrap();
    std::thread::sleep(PAST_TTL);
    for dir in [&work, &personal] {
        let listed = picker(dir);
        let seen = names(&listed);
        assert!(
            seen.contains(&session(200)),
            "{}: {listed:?}",
            dir.display()
        );
        assert!(!seen.contains(&session(1)), "{}: {listed:?}", dir.display());
        assert!(
            listed.contains(&(session(2), 16)),
            "{}: the size of a file rewritten behind the mount: {listed:?}",
            dir.display()
        );
        assert_eq!(listed.len(), 40, "{}", dir.display());
    }
}

/// The daemon's open fds: one O_PATH fd per node it holds (within the fd budget).
fn daemon_fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[test]
#[ignore = "needs root (drop_caches makes the kernel forget its nodes); scripts/test.sh runs it"]
fn readdirplus_entries_are_forgotten_exactly() {
    prereq::require_root();
    let ccs = Ccs::new(Some(THREE_PROFILES));
    // The daemon's fds are the probe (one O_PATH fd per node it holds), so this mount keeps
    // them even in the `--fd-budget 0` pass; every other mount argument of the pass applies.
    let env = std::env::var("CCSFS_TEST_MOUNT_ARGS").unwrap_or_default();
    let mut args = vec!["mount", ccs.mnt.to_str().unwrap()];
    let mut it = env.split_whitespace();
    while let Some(a) = it.next() {
        match a {
            "--fd-budget" => {
                it.next();
            }
            a if a.starts_with("--fd-budget=") => {}
            a => args.push(a),
        }
    }
    let out = ccs.cli(&args);
    assert!(out.status.success(), "mount: {out:?}");
    let _m = common::Mounted { ccs: &ccs };
    let pid = ccs.daemon_pid().expect("daemon pid");
    let dir = ccs.profile("work").join("projects/-p");
    fs::create_dir_all(&dir).unwrap();
    // Made behind the mount: the kernel knows none of them.
    let store = ccs.group_projects("team").join("-p");
    let n = 300;
    for i in 0..n {
        fs::write(store.join(session(i)), "{}\n").unwrap();
    }
    sys::drop_caches();
    let settled = |what: &str| -> usize {
        let mut last = daemon_fds(pid);
        assert!(
            wait_until(Duration::from_secs(5), || {
                let now = daemon_fds(pid);
                let same = now == last;
                last = now;
                std::thread::sleep(Duration::from_millis(200));
                same
            }),
            "{what}: the daemon's fds do not settle"
        );
        last
    };
    let baseline = settled("baseline");

    // Cold, twice: each time READDIRPLUS hands the kernel every entry (a lookup each) and
    // the picker's stats are answered from them. Then small getdents buffers, so that replies
    // fill up and the entry that did not fit is not counted.
    assert_eq!(picker(&dir).len(), n);
    assert!(
        daemon_fds(pid) >= baseline + n,
        "the listing gave the kernel its entries: {} fds, baseline {baseline}",
        daemon_fds(pid)
    );
    std::thread::sleep(PAST_TTL);
    assert_eq!(picker(&dir).len(), n);
    std::thread::sleep(PAST_TTL);
    let fd = sys::open_dir(&dir).unwrap();
    let mut small = 0;
    loop {
        let batch = sys::getdents(&fd, 512).unwrap();
        if batch.is_empty() {
            break;
        }
        small += batch.iter().filter(|e| !e.name.starts_with('.')).count();
    }
    drop(fd);
    assert_eq!(small, n, "listed in small batches");
    // Every node the kernel holds still works (none was forgotten early).
    for i in 0..n {
        let md = fs::symlink_metadata(dir.join(session(i))).unwrap();
        assert_eq!(md.size(), 3);
    }

    // The kernel forgets them all: so does the daemon, to the last lookup.
    sys::drop_caches();
    assert!(
        wait_until(Duration::from_secs(10), || {
            sys::drop_caches();
            daemon_fds(pid) <= baseline
        }),
        "nodes leaked: {} fds after the kernel forgot everything, baseline {baseline}",
        daemon_fds(pid)
    );
    assert_eq!(picker(&dir).len(), n, "listed again afterwards");
}
