//! Credentials never cross profiles, on a real mount: each profile's `.credentials.json` is
//! its own (also via `projects/..`), a `../.credentials.json` symlink in the shared projects
//! (which each reader would follow to its own file) is refused, symlinks leading out of a
//! profile are refused (EPERM), credentials cannot be hard-linked or renamed into the shared
//! store (EXDEV), and they keep mode 0600 through Claude's write-tmp-then-rename pattern.
//! `tests/symlink_escape.rs` has the rest of the symlink rule.

mod common;
#[path = "common/sys.rs"]
mod sys;

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::time::Duration;

use common::{Ccs, THREE_PROFILES, wait_until, write_private};
use sys::{expect_errno, mode, names};

const CREDS: &str = ".credentials.json";

fn secret(profile: &str) -> String {
    format!("{{\"claudeAiOauth\":{{\"accessToken\":\"secret-of-{profile}\"}}}}")
}

#[test]
fn each_profile_sees_only_its_own_credentials() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    write_private(&work.join(CREDS), &secret("work"));
    expect_errno(
        fs::metadata(personal.join(CREDS)),
        libc::ENOENT,
        "personal/.credentials.json before personal has one",
    );
    expect_errno(
        fs::metadata(personal.join("projects/..").join(CREDS)),
        libc::ENOENT,
        "personal/projects/../.credentials.json before personal has one",
    );
    assert!(!names(&personal).contains(CREDS));
    expect_errno(
        fs::metadata(ccs.profile("solo").join(CREDS)),
        libc::ENOENT,
        "solo/.credentials.json",
    );

    write_private(&personal.join(CREDS), &secret("personal"));
    for p in ["work", "personal"] {
        let dir = ccs.profile(p);
        assert_eq!(
            fs::read_to_string(dir.join(CREDS)).unwrap(),
            secret(p),
            "{p}"
        );
        assert_eq!(
            fs::read_to_string(dir.join("projects/..").join(CREDS)).unwrap(),
            secret(p),
            "{p}/projects/../.credentials.json"
        );
        assert_eq!(
            fs::read_to_string(dir.join("projects/../projects/..").join(CREDS)).unwrap(),
            secret(p)
        );
        assert_eq!(mode(&dir.join(CREDS)), 0o600, "{p} through the mount");
        let backing = ccs.instance(p).join(CREDS);
        assert_eq!(fs::read_to_string(&backing).unwrap(), secret(p));
        assert_eq!(mode(&backing), 0o600, "{}", backing.display());
    }
    assert!(!ccs.group_projects("team").join(CREDS).exists());
    assert!(
        !ccs.group_projects("team")
            .parent()
            .unwrap()
            .join(CREDS)
            .exists()
    );
}

#[test]
fn a_shared_symlink_to_credentials_is_refused() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    write_private(&work.join(CREDS), &secret("work"));
    write_private(&personal.join(CREDS), &secret("personal"));

    // Followed by each reader in its own profile, these would be every reader's credentials.
    expect_errno(
        symlink("../.credentials.json", work.join("projects/creds")),
        libc::EPERM,
        "symlink in work/projects",
    );
    fs::create_dir(personal.join("projects/-p")).unwrap();
    expect_errno(
        symlink(
            "../../.credentials.json",
            personal.join("projects/-p/creds"),
        ),
        libc::EPERM,
        "symlink in personal/projects/-p",
    );
    assert_eq!(names(&ccs.group_projects("team")), sys::set(["-p"]));

    // Planted in the store directly: refused to every reader.
    symlink(
        "../.credentials.json",
        ccs.group_projects("team").join("creds"),
    )
    .unwrap();
    for p in ["work", "personal"] {
        let path = ccs.profile(p).join("projects/creds");
        // The refused symlink() above left the kernel remembering that `creds` was missing (a
        // negative entry, up to 1 s); a name made behind the mount shows once that expires.
        assert!(
            wait_until(Duration::from_secs(3), || fs::symlink_metadata(&path)
                .is_ok()),
            "{} never appeared",
            path.display()
        );
        expect_errno(
            fs::read(&path),
            libc::EPERM,
            &format!("read {}", path.display()),
        );
        expect_errno(
            fs::read_link(&path),
            libc::EPERM,
            &format!("readlink {}", path.display()),
        );
    }
}

#[test]
fn symlinks_leading_out_of_the_profile_are_refused() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    write_private(&work.join(CREDS), &secret("work"));
    write_private(&personal.join(CREDS), &secret("personal"));
    fs::create_dir(work.join("projects/-p")).unwrap();

    let mnt = ccs.mnt.clone();
    let inst = ccs.ccs.join("instances");
    let refused: Vec<(std::path::PathBuf, std::path::PathBuf)> = vec![
        (
            work.join("projects/x"),
            "../../personal/.credentials.json".into(),
        ),
        (
            work.join("projects/-p/x"),
            "../../../personal/.credentials.json".into(),
        ),
        (work.join("projects/y"), "-p/../../../personal".into()),
        (work.join("x"), "../personal/.credentials.json".into()),
        (work.join("todos/x"), "../../personal".into()),
        (
            ccs.profile("solo").join("x"),
            "../work/.credentials.json".into(),
        ),
        (
            work.join("projects/a1"),
            inst.join("personal/.credentials.json"),
        ),
        (
            work.join("projects/a2"),
            inst.join("work/.credentials.json"),
        ),
        (work.join("a3"), inst.clone()),
        (
            work.join("projects/a4"),
            mnt.join("personal/.credentials.json"),
        ),
        (
            work.join("projects/a5"),
            mnt.join("work/../personal/.credentials.json"),
        ),
        (work.join("a6"), mnt.join("personal")),
        (work.join("a7"), mnt.clone()),
        // In the shared store, links that stay in the profile but leave the store.
        (work.join("projects/ok"), "../.credentials.json".into()),
        (work.join("projects/-p/ok"), "../../settings.json".into()),
    ];
    for (link, target) in &refused {
        sys::refused_to_make(target, link);
    }
    assert!(!names(&ccs.group_projects("team")).iter().any(|n| n != "-p"));

    // Into the profile's own part of the mount: allowed, and it reads the own file.
    let own = mnt.join("work/.credentials.json");
    symlink(&own, work.join("own")).expect("absolute symlink into work's own part of the mount");
    assert_eq!(
        fs::read_to_string(work.join("own")).unwrap(),
        secret("work")
    );
    symlink(mnt.join("work/projects"), work.join("projects/-p/own-dir"))
        .expect("absolute symlink to work/projects");
    // Relative links that stay inside a private part of the profile are fine.
    fs::create_dir_all(work.join("d/e")).unwrap();
    symlink("../.credentials.json", work.join("d/ok")).unwrap();
    symlink("../../settings.json", work.join("d/e/ok")).unwrap();
    assert_eq!(
        fs::read_to_string(work.join("d/ok")).unwrap(),
        secret("work")
    );

    // Moving a symlink up so that it would lead out is refused too.
    symlink("../../x", work.join("d/e/up")).unwrap();
    expect_errno(
        fs::rename(work.join("d/e/up"), work.join("d/up")),
        libc::EPERM,
        "rename d/e/up (-> ../../x) to d/up",
    );
    assert!(fs::symlink_metadata(work.join("d/e/up")).is_ok());
}

#[test]
fn credentials_cannot_be_linked_or_moved_into_shared_projects() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let work = ccs.profile("work");
    let creds = work.join(CREDS);
    write_private(&creds, &secret("work"));
    let ino = fs::metadata(&creds).unwrap().ino();

    expect_errno(
        fs::hard_link(&creds, work.join("projects/c")),
        libc::EXDEV,
        "link creds into projects",
    );
    expect_errno(
        fs::hard_link(&creds, work.join("todos/c")),
        libc::EXDEV,
        "link creds into todos",
    );
    expect_errno(
        fs::rename(&creds, work.join("projects/c")),
        libc::EXDEV,
        "rename creds into projects",
    );
    expect_errno(
        fs::rename(&creds, work.join("session-env/c")),
        libc::EXDEV,
        "rename creds into session-env",
    );

    let md = fs::metadata(&creds).unwrap();
    assert_eq!(md.ino(), ino);
    assert_eq!(md.nlink(), 1);
    assert_eq!(md.mode() & 0o7777, 0o600);
    assert_eq!(fs::read_to_string(&creds).unwrap(), secret("work"));
    for p in ["work", "personal"] {
        assert!(fs::symlink_metadata(ccs.profile(p).join("projects/c")).is_err());
    }
    assert!(names(&ccs.group_projects("team")).is_empty());
    assert!(names(&ccs.continuity("team", "todos")).is_empty());
    let backing = ccs.instance("work").join(CREDS);
    assert_eq!(mode(&backing), 0o600);
    assert_eq!(fs::metadata(&backing).unwrap().nlink(), 1);
}

#[test]
fn credentials_keep_mode_0600_through_claudes_rewrite() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for p in ["work", "solo"] {
        let dir = ccs.profile(p);
        let creds = dir.join(CREDS);
        write_private(&creds, &secret(p));
        for n in 0..20 {
            let tmp = dir.join(".credentials.json.tmp");
            let body = format!("{}{}", secret(p), " ".repeat(n * 7));
            write_private(&tmp, &body);
            fs::rename(&tmp, &creds).unwrap();
            assert_eq!(mode(&creds), 0o600, "{p} rewrite {n} through the mount");
            assert_eq!(fs::read_to_string(&creds).unwrap(), body, "{p} rewrite {n}");
            let backing = ccs.instance(p).join(CREDS);
            assert_eq!(mode(&backing), 0o600, "{p} rewrite {n}: backing");
            assert_eq!(fs::read_to_string(&backing).unwrap(), body);
        }
        assert!(!names(&dir).contains(".credentials.json.tmp"));
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            fs::metadata(ccs.instance(p).join(CREDS)).unwrap().uid(),
            euid
        );
    }
}

#[test]
fn hard_linking_a_symlink_cannot_make_it_lead_out() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    write_private(&work.join(CREDS), &secret("work"));
    write_private(&personal.join(CREDS), &secret("personal"));
    fs::create_dir_all(work.join("a/b/c")).unwrap();
    // Three levels down this stays inside work (it names work/personal/.credentials.json).
    symlink("../../../personal/.credentials.json", work.join("a/b/c/l"))
        .expect("a deep symlink that stays inside the profile");
    // Linked two levels up, the same target would climb to the mount root.
    let r = fs::hard_link(work.join("a/b/c/l"), work.join("a/l"));
    if r.is_ok() {
        let leaked = fs::read_to_string(work.join("a/l")).ok();
        assert_ne!(
            leaked.as_deref(),
            Some(secret("personal").as_str()),
            "a hard link moved a symlink so that work/a/l reads personal's credentials"
        );
        panic!("hard link of a symlink to a shallower dir was allowed (it now leads out)");
    }
    expect_errno(r, libc::EPERM, "hard link of a symlink to a shallower dir");
}

#[test]
fn moving_a_dir_cannot_make_a_symlink_inside_it_lead_out() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    write_private(&work.join(CREDS), &secret("work"));
    write_private(&personal.join(CREDS), &secret("personal"));
    fs::create_dir_all(work.join("a/b/c")).unwrap();
    symlink("../../../personal/.credentials.json", work.join("a/b/c/l"))
        .expect("a deep symlink that stays inside the profile");
    // Moving b/c up one level: its symlink would now climb to the mount root.
    let r = fs::rename(work.join("a/b/c"), work.join("a/c"));
    let leaked = fs::read_to_string(work.join("a/c/l")).ok();
    assert_ne!(
        leaked.as_deref(),
        Some(secret("personal").as_str()),
        "after moving a dir (rename -> {r:?}), work/a/c/l reads personal's credentials"
    );
    expect_errno(
        fs::read_link(work.join("a/c/l")),
        libc::EPERM,
        "readlink a/c/l",
    );
}
