//! Every route, on a real mount: the mount root lists exactly the profiles (and their lock
//! dirs); isolated, shared-standard and shared-deeper profiles send each top-level name to the
//! right backing dir (instance, group projects store, group continuity store); routed dirs are
//! real 0700 dirs made on demand under a normalised group name; instance entries with a routed
//! name are hidden and left untouched; existing store data shows up; writes are seen across
//! profiles; and the virtual names cannot be created, removed or renamed.

mod common;
#[path = "common/sys.rs"]
mod sys;

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Ccs, THREE_PROFILES};
use sys::{expect_errno, mode, names, names_list, set, tree_snapshot};

/// Writes `rel` below `root` (creating parent dirs through the same path) with `rel` as content.
fn write_rel(root: &Path, rel: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap())
        .unwrap_or_else(|e| panic!("mkdir -p {}: {e}", p.parent().unwrap().display()));
    fs::write(&p, rel).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// Asserts the backing file holds `rel` as content (written by `write_rel`).
#[track_caller]
fn assert_backed(backing: &Path, rel: &str) {
    match fs::read_to_string(backing) {
        Ok(s) => assert_eq!(s, rel, "{} has the wrong content", backing.display()),
        Err(e) => panic!("{rel} should be backed by {}: {e}", backing.display()),
    }
}

#[track_caller]
fn assert_absent(p: &Path) {
    assert!(
        fs::symlink_metadata(p).is_err(),
        "{} should not exist",
        p.display()
    );
}

#[test]
fn mount_root_lists_exactly_the_profiles_and_their_lock_dirs() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let inst = ccs.ccs.join("instances");
    fs::create_dir_all(inst.join("work.lock")).unwrap();
    fs::create_dir_all(inst.join("stray")).unwrap();
    fs::create_dir_all(inst.join("nobody.lock")).unwrap();
    fs::write(inst.join("notes.txt"), "x").unwrap();
    let _m = ccs.mount();

    let listed = names_list(&ccs.mnt);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["personal", "solo", "work", "work.lock"],
        "mount root listing"
    );
    for p in ["personal", "solo", "work", "work.lock"] {
        let md = fs::symlink_metadata(ccs.mnt.join(p)).unwrap();
        assert!(md.is_dir(), "{p} should be a dir");
    }
    for hidden in ["stray", "nobody.lock", "notes.txt", "config.yaml", "shared"] {
        expect_errno(
            fs::symlink_metadata(ccs.mnt.join(hidden)),
            libc::ENOENT,
            &format!("lstat <mnt>/{hidden}"),
        );
    }
}

#[test]
fn isolated_profile_keeps_everything_in_its_instance() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let solo = ccs.profile("solo");
    let files = [
        "projects/-tmp-proj/s1.jsonl",
        "todos/t.json",
        "session-env/s/env",
        "file-history/s/h@v1",
        "shell-snapshots/snap.sh",
        "sessions/1.json",
        "settings.json",
        ".claude.json",
        "plugins/p.json",
    ];
    for f in files {
        write_rel(&solo, f);
    }
    for f in files {
        assert_backed(&ccs.instance("solo").join(f), f);
    }
    let md = fs::symlink_metadata(ccs.instance("solo").join("projects")).unwrap();
    assert!(md.is_dir() && !md.file_type().is_symlink());
    assert!(names(&ccs.group_projects("team")).is_empty());
    for d in ["todos", "session-env", "file-history", "shell-snapshots"] {
        assert!(names(&ccs.continuity("team", d)).is_empty(), "{d}");
    }
}

#[test]
fn shared_standard_profile_routes_only_projects() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let personal = ccs.profile("personal");
    write_rel(&personal, "projects/-tmp-proj/s1.jsonl");
    assert_backed(
        &ccs.group_projects("team").join("-tmp-proj/s1.jsonl"),
        "projects/-tmp-proj/s1.jsonl",
    );
    assert_absent(&ccs.instance("personal").join("projects"));

    let private = [
        "todos/t.json",
        "session-env/s/env",
        "file-history/s/h@v1",
        "shell-snapshots/snap.sh",
        "sessions/1.json",
        "settings.json",
        ".claude.json",
    ];
    for f in private {
        write_rel(&personal, f);
    }
    for f in private {
        assert_backed(&ccs.instance("personal").join(f), f);
    }
    for d in ["todos", "session-env", "file-history", "shell-snapshots"] {
        assert!(
            names(&ccs.continuity("team", d)).is_empty(),
            "personal (standard) must not write into the continuity store {d}"
        );
    }
}

#[test]
fn shared_deeper_profile_routes_projects_and_continuity_dirs() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let work = ccs.profile("work");
    let routed = [
        (
            "projects/-tmp-proj/s1.jsonl",
            ccs.group_projects("team").join("-tmp-proj/s1.jsonl"),
        ),
        (
            "todos/t.json",
            ccs.continuity("team", "todos").join("t.json"),
        ),
        (
            "session-env/s/env",
            ccs.continuity("team", "session-env").join("s/env"),
        ),
        (
            "file-history/s/h@v1",
            ccs.continuity("team", "file-history").join("s/h@v1"),
        ),
        (
            "shell-snapshots/snap.sh",
            ccs.continuity("team", "shell-snapshots").join("snap.sh"),
        ),
    ];
    for (f, _) in &routed {
        write_rel(&work, f);
    }
    for (f, backing) in &routed {
        assert_backed(backing, f);
    }
    for d in [
        "projects",
        "todos",
        "session-env",
        "file-history",
        "shell-snapshots",
    ] {
        assert_absent(&ccs.instance("work").join(d));
    }
    let private = [
        "sessions/1.json",
        "settings.json",
        ".claude.json",
        "plugins/p.json",
    ];
    for f in private {
        write_rel(&work, f);
    }
    for f in private {
        assert_backed(&ccs.instance("work").join(f), f);
    }
}

#[test]
fn routed_dirs_are_real_private_dirs_created_on_demand() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    assert!(!ccs.ccs.join("shared").exists() && !ccs.ccs.join("instances").exists());
    let _m = ccs.mount();

    let routes: Vec<(&str, &str, PathBuf)> = vec![
        ("work", "projects", ccs.group_projects("team")),
        ("work", "todos", ccs.continuity("team", "todos")),
        ("work", "session-env", ccs.continuity("team", "session-env")),
        (
            "work",
            "file-history",
            ccs.continuity("team", "file-history"),
        ),
        (
            "work",
            "shell-snapshots",
            ccs.continuity("team", "shell-snapshots"),
        ),
        ("personal", "projects", ccs.group_projects("team")),
    ];
    for (profile, name, backing) in &routes {
        let p = ccs.profile(profile).join(name);
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
        assert!(
            md.is_dir() && !md.file_type().is_symlink(),
            "{profile}/{name} must be a real dir"
        );
        assert_eq!(mode(&p), 0o700, "{profile}/{name} mode through the mount");
        let bmd = fs::symlink_metadata(backing).unwrap();
        assert!(
            bmd.is_dir() && !bmd.file_type().is_symlink(),
            "{}",
            backing.display()
        );
        assert_eq!(mode(backing), 0o700, "{} mode", backing.display());
    }
    for profile in ["work", "personal", "solo"] {
        assert_eq!(mode(&ccs.instance(profile)), 0o700, "instance {profile}");
        assert!(fs::symlink_metadata(ccs.profile(profile)).unwrap().is_dir());
    }
    assert!(names_list(&ccs.profile("work")).contains(&"todos".to_string()));

    // A store dir removed behind the mount's back is made again on the next lookup.
    fs::remove_dir(ccs.continuity("team", "todos")).unwrap();
    fs::remove_dir(ccs.group_projects("team")).unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // past the 1 s entry TTL
    for (profile, name, backing) in [
        ("work", "todos", ccs.continuity("team", "todos")),
        ("personal", "projects", ccs.group_projects("team")),
    ] {
        let p = ccs.profile(profile).join(name);
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
        assert!(md.is_dir(), "{profile}/{name} again");
        fs::write(p.join("again.json"), "again")
            .unwrap_or_else(|e| panic!("write into {}: {e}", p.display()));
        assert_eq!(mode(&backing), 0o700, "{} recreated", backing.display());
        assert_eq!(
            fs::read_to_string(backing.join("again.json")).unwrap(),
            "again"
        );
    }
}

#[test]
fn group_name_is_normalised() {
    let ccs = Ccs::new(Some(
        "accounts:\n  work:\n    context_mode: shared\n    context_group: \" Team Alpha \"\n  personal:\n    context_mode: shared\n    context_group: \"team alpha\"\n",
    ));
    let _m = ccs.mount();
    write_rel(&ccs.profile("work"), "projects/-p/a.jsonl");
    assert_backed(
        &ccs.group_projects("team-alpha").join("-p/a.jsonl"),
        "projects/-p/a.jsonl",
    );
    assert_eq!(
        fs::read_to_string(ccs.profile("personal").join("projects/-p/a.jsonl")).unwrap(),
        "projects/-p/a.jsonl"
    );
    assert_eq!(
        names(&ccs.ccs.join("shared/context-groups")),
        set(["team-alpha"])
    );
}

#[test]
fn instance_entries_with_routed_names_are_hidden_and_left_untouched() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let inst = ccs.instance("work");
    fs::create_dir_all(&inst).unwrap();
    let elsewhere = ccs.tmp.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::write(elsewhere.join("old-link-target.jsonl"), "ccs-style").unwrap();
    symlink(&elsewhere, inst.join("projects")).unwrap(); // CCS-style absolute symlink
    fs::create_dir(inst.join("todos")).unwrap(); // a real dir holding an old file
    fs::write(inst.join("todos/old.json"), "old todo").unwrap();
    symlink("../nowhere/file-history", inst.join("file-history")).unwrap(); // dangling
    fs::write(inst.join("settings.json"), "{}").unwrap();
    fs::create_dir_all(ccs.group_projects("team")).unwrap();
    fs::write(ccs.group_projects("team").join("store.jsonl"), "from store").unwrap();
    let before = tree_snapshot(&inst);
    let elsewhere_before = tree_snapshot(&elsewhere);

    let m = ccs.mount();
    let work = ccs.profile("work");
    assert_eq!(names(&work.join("projects")), set(["store.jsonl"]));
    assert!(
        names(&work.join("todos")).is_empty(),
        "work/todos must show the continuity store"
    );
    for d in ["projects", "todos", "file-history"] {
        let md = fs::symlink_metadata(work.join(d)).unwrap();
        assert!(
            md.is_dir() && !md.file_type().is_symlink(),
            "work/{d} must be a real dir"
        );
    }
    let listing = names_list(&work);
    for d in ["projects", "todos", "file-history", "settings.json"] {
        assert_eq!(
            listing.iter().filter(|n| *n == d).count(),
            1,
            "{d} listed once in {listing:?}"
        );
    }
    fs::write(work.join("projects/new.jsonl"), "new").unwrap();
    fs::write(work.join("todos/new.json"), "new").unwrap();
    fs::write(work.join("file-history/new"), "new").unwrap();
    drop(m);
    assert!(!common::is_mounted(&ccs.mnt));

    assert_eq!(
        tree_snapshot(&inst),
        before,
        "the instance changed under the route"
    );
    assert_eq!(
        tree_snapshot(&elsewhere),
        elsewhere_before,
        "the old symlink target changed"
    );
    assert_eq!(
        names(&ccs.group_projects("team")),
        set(["new.jsonl", "store.jsonl"])
    );
    assert_eq!(names(&ccs.continuity("team", "todos")), set(["new.json"]));
    assert_eq!(names(&ccs.continuity("team", "file-history")), set(["new"]));
}

#[test]
fn existing_store_data_is_visible_in_both_shared_profiles() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let proj = ccs.group_projects("team").join("-home-u-proj");
    fs::create_dir_all(&proj).unwrap();
    fs::write(proj.join("abc.jsonl"), "{\"old\":1}\n").unwrap();
    fs::create_dir_all(ccs.continuity("team", "todos")).unwrap();
    fs::write(ccs.continuity("team", "todos").join("w.json"), "[]").unwrap();
    let _m = ccs.mount();
    for p in ["work", "personal"] {
        let f = ccs.profile(p).join("projects/-home-u-proj/abc.jsonl");
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "{\"old\":1}\n",
            "{}",
            f.display()
        );
        assert_eq!(
            names(&ccs.profile(p).join("projects")),
            set(["-home-u-proj"])
        );
    }
    assert_eq!(
        fs::read_to_string(ccs.profile("work").join("todos/w.json")).unwrap(),
        "[]"
    );
    expect_errno(
        fs::metadata(ccs.profile("personal").join("todos/w.json")),
        libc::ENOENT,
        "personal/todos is personal's own",
    );
    assert_absent(&ccs.profile("solo").join("projects/-home-u-proj"));
}

#[test]
fn a_write_through_one_profile_is_read_back_through_the_other() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    fs::create_dir(work.join("projects/-tmp-p")).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(work.join("projects/-tmp-p/s.jsonl"), &data).unwrap();
    let via = personal.join("projects/-tmp-p/s.jsonl");
    assert_eq!(
        fs::metadata(&via).unwrap().len(),
        data.len() as u64,
        "size via personal"
    );
    assert!(fs::read(&via).unwrap() == data, "bytes via personal differ");

    // And back: personal → work.
    fs::write(personal.join("projects/-tmp-p/p.jsonl"), b"from personal\n").unwrap();
    assert_eq!(
        fs::read(work.join("projects/-tmp-p/p.jsonl")).unwrap(),
        b"from personal\n"
    );

    // Deeper continuity dirs are not shared with the standard profile.
    fs::write(work.join("todos/t.json"), "work todo").unwrap();
    expect_errno(
        fs::metadata(personal.join("todos/t.json")),
        libc::ENOENT,
        "personal/todos/t.json",
    );
    fs::create_dir_all(personal.join("todos")).unwrap();
    fs::write(personal.join("todos/p.json"), "personal todo").unwrap();
    assert_eq!(names(&work.join("todos")), set(["t.json"]));
    assert_eq!(names(&personal.join("todos")), set(["p.json"]));
    assert_eq!(
        fs::read_to_string(ccs.instance("personal").join("todos/p.json")).unwrap(),
        "personal todo"
    );
}

#[test]
fn a_write_is_seen_at_once_by_a_profile_that_looked_before() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    let w = work.join("projects/s.jsonl");
    let p = personal.join("projects/s.jsonl");
    fs::write(&w, "line 0\n").unwrap();
    let mut want = String::from("line 0\n");
    assert_eq!(fs::read_to_string(&p).unwrap(), want);
    for i in 1..=200 {
        // personal has looked (its size is cached); work appends and closes.
        assert_eq!(fs::metadata(&p).unwrap().len(), want.len() as u64);
        let l = format!("line {i}\n");
        let mut f = fs::OpenOptions::new().append(true).open(&w).unwrap();
        f.write_all(l.as_bytes()).unwrap();
        drop(f);
        want.push_str(&l);
        assert_eq!(
            fs::metadata(&p).unwrap().len(),
            want.len() as u64,
            "size via personal right after work's append {i}"
        );
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            want,
            "content via personal right after work's append {i}"
        );
    }
}

#[test]
fn routed_names_cannot_be_created_removed_or_renamed_at_a_profile_root() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let work = ccs.profile("work");
    fs::write(work.join("projects/keep.jsonl"), "keep").unwrap();
    fs::write(work.join("notes.txt"), "n").unwrap();
    fs::create_dir(work.join("olddir")).unwrap();
    for d in [
        "projects",
        "todos",
        "session-env",
        "file-history",
        "shell-snapshots",
    ] {
        let p = work.join(d);
        expect_errno(fs::create_dir(&p), libc::EEXIST, &format!("mkdir work/{d}"));
        expect_errno(fs::remove_dir(&p), libc::EBUSY, &format!("rmdir work/{d}"));
        expect_errno(
            fs::rename(&p, work.join("moved")),
            libc::EBUSY,
            &format!("rename work/{d}"),
        );
        expect_errno(
            fs::remove_file(&p),
            libc::EISDIR,
            &format!("unlink work/{d}"),
        );
        // (A file onto a dir is refused by the kernel itself with EISDIR; a dir reaches ccsfs.)
        expect_errno(
            fs::rename(work.join("olddir"), &p),
            libc::EBUSY,
            &format!("rename a dir onto work/{d}"),
        );
    }
    expect_errno(
        fs::remove_dir(ccs.profile("personal").join("projects")),
        libc::EBUSY,
        "rmdir personal/projects",
    );
    assert_absent(&work.join("moved"));
    assert_eq!(fs::read_to_string(work.join("notes.txt")).unwrap(), "n");
    assert!(work.join("olddir").is_dir());
    assert_eq!(names(&ccs.group_projects("team")), set(["keep.jsonl"]));
    for d in ["todos", "session-env", "file-history", "shell-snapshots"] {
        assert!(ccs.continuity("team", d).is_dir(), "{d} store still there");
    }
}

#[test]
fn the_mount_root_refuses_everything_but_lock_dirs() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let mnt = &ccs.mnt;
    expect_errno(
        fs::File::create(mnt.join("foo")),
        libc::EPERM,
        "touch <mnt>/foo",
    );
    expect_errno(
        fs::create_dir(mnt.join("foo")),
        libc::EPERM,
        "mkdir <mnt>/foo",
    );
    expect_errno(
        symlink("work", mnt.join("w")),
        libc::EPERM,
        "symlink <mnt>/w",
    );
    expect_errno(
        fs::create_dir(mnt.join("nobody.lock")),
        libc::EPERM,
        "mkdir <mnt>/nobody.lock",
    );
    expect_errno(
        fs::File::create(mnt.join("work.lock")),
        libc::EPERM,
        "touch <mnt>/work.lock",
    );
    expect_errno(
        fs::create_dir(mnt.join("work")),
        libc::EEXIST,
        "mkdir <mnt>/work",
    );
    expect_errno(
        fs::remove_dir(mnt.join("work")),
        libc::EBUSY,
        "rmdir <mnt>/work",
    );
    expect_errno(
        fs::rename(mnt.join("work"), mnt.join("w2")),
        libc::EBUSY,
        "rename <mnt>/work",
    );
    fs::create_dir(mnt.join("solo.lock")).expect("mkdir <mnt>/solo.lock");
    fs::remove_dir(mnt.join("solo.lock")).expect("rmdir <mnt>/solo.lock");
    assert_eq!(names(mnt), set(["personal", "solo", "work"]));
    assert_eq!(
        names(&ccs.ccs.join("instances")),
        set(["personal", "solo", "work"])
    );
}

#[test]
fn names_changed_through_one_profile_are_seen_at_once_by_another() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    for i in 0..500 {
        let name = format!("projects/n{i}.jsonl");
        let (w, p) = (work.join(&name), personal.join(&name));
        let listed = |what: &str| names(&personal.join("projects")).contains(what);
        expect_errno(fs::metadata(&p), libc::ENOENT, "before the create");
        // Personal's listing is cached in the kernel now (FOPEN_CACHE_DIR).
        assert!(!listed(&format!("n{i}.jsonl")), "round {i}: listed early");
        fs::write(&w, format!("{i}\n")).unwrap();
        assert!(
            listed(&format!("n{i}.jsonl")),
            "round {i}: created via work, missing from personal's listing"
        );
        match fs::read_to_string(&p) {
            Ok(s) => assert_eq!(s, format!("{i}\n"), "round {i}"),
            Err(e) => panic!("round {i}: created via work, personal still says {e}"),
        }
        let moved = work.join(format!("projects/m{i}.jsonl"));
        fs::rename(&w, &moved).unwrap();
        assert!(
            listed(&format!("m{i}.jsonl")) && !listed(&format!("n{i}.jsonl")),
            "round {i}: renamed via work, personal's listing has the old name"
        );
        fs::remove_file(&moved).unwrap();
        assert!(
            !listed(&format!("m{i}.jsonl")),
            "round {i}: removed via work, still in personal's listing"
        );
        expect_errno(
            fs::metadata(&p),
            libc::ENOENT,
            &format!("round {i}: removed via work, personal still sees it"),
        );
    }
}

#[test]
fn atomic_rewrites_in_projects_are_seen_at_once_by_the_other_profile() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    let target = work.join("projects/memory.json");
    let via = personal.join("projects/memory.json");
    for n in 0..200 {
        let body = format!("{{\"version\":{n}}}\n");
        let tmp = work.join(format!("projects/memory.json.tmp-{n}"));
        fs::write(&tmp, &body).unwrap();
        fs::rename(&tmp, &target).unwrap();
        assert_eq!(
            fs::read_to_string(&via).unwrap(),
            body,
            "version {n} via personal right after work's rename"
        );
    }
}

#[test]
fn an_open_reader_in_one_profile_sees_appends_from_another() {
    use std::io::Read;
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let w = ccs.profile("work").join("projects/tail.jsonl");
    fs::write(&w, "line 0\n").unwrap();
    let mut reader = fs::File::open(ccs.profile("personal").join("projects/tail.jsonl")).unwrap();
    let mut got = String::new();
    reader.read_to_string(&mut got).unwrap();
    assert_eq!(got, "line 0\n");
    let mut want = got.clone();
    for i in 1..200 {
        let l = format!("line {i}\n");
        let mut f = fs::OpenOptions::new().append(true).open(&w).unwrap();
        f.write_all(l.as_bytes()).unwrap();
        drop(f);
        want.push_str(&l);
        let mut more = Vec::new();
        reader.read_to_end(&mut more).unwrap();
        got.push_str(&String::from_utf8_lossy(&more));
        assert_eq!(
            got, want,
            "after append {i}, the open reader in personal read {more:?}"
        );
    }
}

#[test]
fn changes_made_behind_the_mount_show_within_a_second() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let cases = [
        (
            ccs.profile("work").join("projects/p"),
            ccs.group_projects("team").join("p"),
        ),
        (
            ccs.profile("solo").join("notes"),
            ccs.instance("solo").join("notes"),
        ),
    ];
    for (through, backing) in &cases {
        fs::create_dir_all(through).unwrap();
        fs::write(through.join("f.jsonl"), "one\n").unwrap();
        // Cache it: attributes, pages and the listing.
        assert_eq!(
            fs::read_to_string(through.join("f.jsonl")).unwrap(),
            "one\n"
        );
        assert!(names(through).contains("f.jsonl"));
        // An editor, or another daemon, changes the backing dir directly.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(backing.join("f.jsonl"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"two\n").unwrap();
        fs::write(backing.join("new.jsonl"), "x\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100)); // the attribute and entry lifetime is 1 s
    for (through, _) in &cases {
        assert_eq!(
            fs::metadata(through.join("f.jsonl")).unwrap().len(),
            8,
            "{}",
            through.display()
        );
        assert_eq!(
            fs::read_to_string(through.join("f.jsonl")).unwrap(),
            "one\ntwo\n",
            "{}",
            through.display()
        );
        assert!(
            names(through).contains("new.jsonl"),
            "{}",
            through.display()
        );
    }
}
