//! Negative entries (the kernel remembering that a name does not exist) never hide a name: a
//! name made through any profile of the daemon after another profile looked it up in vain
//! shows there at once (create, mkdir, mknod, symlink, link, rename), also for `mkdir -p`
//! from two profiles at once; a name made behind the mount shows within the attribute TTL;
//! at the mount root nothing is remembered, so a profile added to config.yaml and a lock dir
//! `<mnt>/<p>.lock` appear right after a miss.

mod common;
#[path = "common/sys.rs"]
mod sys;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Ccs, TWO_IN_TEAM, wait_until};

#[track_caller]
fn assert_missing(p: &Path) {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => panic!("{} should not exist yet: {other:?}", p.display()),
    }
}

#[track_caller]
fn assert_there(p: &Path, what: &str) {
    if let Err(e) = fs::symlink_metadata(p) {
        panic!("{what}: {} should show at once: {e}", p.display());
    }
}

/// A miss that the kernel remembers: looked up twice, so that the second answer comes from
/// the negative entry (when the kernel keeps it).
fn miss(p: &Path) {
    assert_missing(p);
    assert_missing(p);
}

#[test]
fn a_name_made_through_one_profile_shows_at_once_in_another_that_missed_it() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let _m = ccs.mount();
    let (a, b) = (
        ccs.profile("work").join("projects/p"),
        ccs.profile("personal").join("projects/p"),
    );
    fs::create_dir_all(&a).unwrap();
    fs::write(a.join("existing"), "x").unwrap();
    assert_there(&b.join("existing"), "setup");

    type Make = fn(&Path, &str);
    let makers: [(&str, Make); 7] = [
        ("create", |d, n| fs::write(d.join(n), "x").unwrap()),
        ("create a transcript", |d, n| {
            fs::write(d.join(format!("{n}.jsonl")), "{}\n").unwrap()
        }),
        ("mkdir", |d, n| fs::create_dir(d.join(n)).unwrap()),
        ("mkfifo", |d, n| sys::mkfifo(&d.join(n), 0o600).unwrap()),
        ("symlink", |d, n| symlink("existing", d.join(n)).unwrap()),
        ("link", |d, n| {
            fs::hard_link(d.join("existing"), d.join(n)).unwrap()
        }),
        ("rename", |d, n| {
            fs::write(d.join(format!("{n}.tmp")), "x").unwrap();
            fs::rename(d.join(format!("{n}.tmp")), d.join(n)).unwrap()
        }),
    ];
    for (i, (what, make)) in makers.iter().enumerate() {
        let name = format!("n{i}");
        let seen = |d: &Path| {
            if *what == "create a transcript" {
                d.join(format!("{name}.jsonl"))
            } else {
                d.join(&name)
            }
        };
        miss(&seen(&b));
        make(&a, &name);
        assert_there(&seen(&b), what);
        // And back: a miss in work, made through personal.
        let name = format!("m{i}");
        let seen = |d: &Path| {
            if *what == "create a transcript" {
                d.join(format!("{name}.jsonl"))
            } else {
                d.join(&name)
            }
        };
        miss(&seen(&a));
        make(&b, &name);
        assert_there(&seen(&a), what);
    }
}

#[test]
fn mkdir_p_from_two_profiles_after_misses_sees_every_level() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let _m = ccs.mount();
    let (a, b) = (
        ccs.profile("work").join("projects"),
        ccs.profile("personal").join("projects"),
    );
    // personal misses every level, work makes part of the path, personal makes the rest.
    for rel in ["x", "x/y", "x/y/z"] {
        miss(&b.join(rel));
    }
    fs::create_dir_all(a.join("x/y")).unwrap();
    fs::create_dir_all(b.join("x/y/z/w")).unwrap();
    assert_there(&a.join("x/y/z/w"), "mkdir -p through the other profile");

    // Both at once, each after its own misses, into the same new dirs; then every file of
    // both shows in both.
    for round in 0..20 {
        let rel = format!("r{round}/s/t");
        miss(&a.join(&rel));
        miss(&b.join(&rel));
        let (da, db) = (a.join(&rel), b.join(&rel));
        let ta = std::thread::spawn(move || {
            fs::create_dir_all(&da).unwrap();
            fs::write(da.join("from-work.jsonl"), "{}\n").unwrap();
        });
        let tb = std::thread::spawn(move || {
            fs::create_dir_all(&db).unwrap();
            fs::write(db.join("from-personal.jsonl"), "{}\n").unwrap();
        });
        ta.join().unwrap();
        tb.join().unwrap();
        for side in [&a, &b] {
            for f in ["from-work.jsonl", "from-personal.jsonl"] {
                assert_there(&side.join(&rel).join(f), "concurrent mkdir -p");
            }
        }
    }
}

#[test]
fn a_name_made_behind_the_mount_shows_within_the_attribute_ttl() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let _m = ccs.mount();
    let seen = ccs.profile("work").join("projects/p");
    fs::create_dir_all(&seen).unwrap();
    let backing = ccs.group_projects("team").join("p");
    // A private name (in the instance) and a shared one (in the group store).
    for (view, real) in [
        (
            ccs.profile("work").join("notes.md"),
            ccs.instance("work").join("notes.md"),
        ),
        (seen.join("s.jsonl"), backing.join("s.jsonl")),
        (seen.join("d"), backing.join("d")),
    ] {
        let t = Instant::now();
        miss(&view);
        if real.ends_with("d") {
            fs::create_dir(&real).unwrap();
        } else {
            fs::write(&real, "{}\n").unwrap();
        }
        // The miss is remembered (that is what this file tests): right after, the name made
        // behind the mount is not seen yet.
        let hidden = fs::symlink_metadata(&view).is_err();
        if t.elapsed() < Duration::from_millis(300) {
            assert!(
                hidden,
                "{}: the kernel did not keep the miss",
                view.display()
            );
        }
        assert!(
            wait_until(Duration::from_secs(3), || fs::symlink_metadata(&view)
                .is_ok()),
            "{} made behind the mount never showed",
            view.display()
        );
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "{} showed only after {took:?} (the TTL is 1 s)",
            view.display()
        );
    }
}

#[test]
fn the_mount_root_remembers_no_miss() {
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let _m = ccs.mount();
    // A profile CCS adds right after a lookup of its name missed.
    let new = ccs.mnt.join("extra");
    miss(&new);
    let config =
        format!("{TWO_IN_TEAM}  extra:\n    context_mode: shared\n    context_group: team\n");
    fs::write(ccs.ccs.join("config.yaml.tmp"), config).unwrap();
    fs::rename(ccs.ccs.join("config.yaml.tmp"), ccs.ccs.join("config.yaml")).unwrap();
    assert_there(&new, "a profile added to config.yaml");

    // Claude's lock dir beside the profile, through the mount and behind it.
    let lock = ccs.mnt.join("work.lock");
    miss(&lock);
    fs::create_dir(&lock).unwrap();
    assert_there(&lock, "mkdir of <mnt>/work.lock");
    fs::remove_dir(&lock).unwrap();
    miss(&lock);
    fs::create_dir(ccs.ccs.join("instances/work.lock")).unwrap();
    assert_there(&lock, "<p>.lock made in the instances dir");
    fs::remove_dir(ccs.ccs.join("instances/work.lock")).unwrap();
}

#[test]
fn a_lock_dir_in_a_profile_is_made_after_a_miss() {
    // proper-lockfile's pattern (`.claude.json.lock` in the profile root): mkdir, and on
    // EEXIST a stat; the dir comes and goes.
    let ccs = Ccs::new(Some(TWO_IN_TEAM));
    let _m = ccs.mount();
    let lock = ccs.profile("work").join(".claude.json.lock");
    for _ in 0..20 {
        miss(&lock);
        fs::create_dir(&lock).unwrap();
        assert_there(&lock, "mkdir of the lock dir");
        sys::expect_errno(fs::create_dir(&lock), libc::EEXIST, "second mkdir");
        fs::remove_dir(&lock).unwrap();
    }
}
