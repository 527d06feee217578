//! Symlinks in a shared store stay in the store, judged by where they resolve, on real mounts
//! (issue 11, items 6 and 7). A relative link in `projects/` is followed by each reader in its
//! own profile, so `../../.credentials.json` there would be every reader's own credentials:
//! such links are refused when made through the mount (EPERM) and refused when read
//! (readlink is EPERM, so nothing is read or written through them) when planted in the
//! backing store directly. Also: `/proc/self/root/…` and `/proc/self/cwd/…` targets, a chain
//! of links that escapes, `..` after a link to a dir, a dir that later becomes a link, the
//! shared resource dirs (`commands/`, `plugins/`), and the links that must keep working (a
//! sibling in the store, Claude's own links in a private instance and in `projects/`).

mod common;
#[path = "common/sys.rs"]
mod sys;

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Ccs, THREE_PROFILES, write_private};
use sys::{expect_errno, refused_to_make};

const CREDS: &str = ".credentials.json";

fn secret(profile: &str) -> String {
    format!("{{\"claudeAiOauth\":{{\"accessToken\":\"secret-of-{profile}\"}}}}")
}

/// A mount with work and personal (group `team`, work with deeper continuity) and solo, each
/// with its own credentials.
fn with_credentials(ccs: &Ccs) {
    for p in ["work", "personal", "solo"] {
        write_private(&ccs.profile(p).join(CREDS), &secret(p));
    }
}

/// Every profile's credentials are still exactly what they were.
#[track_caller]
fn credentials_untouched(ccs: &Ccs) {
    for p in ["work", "personal", "solo"] {
        assert_eq!(
            fs::read_to_string(ccs.instance(p).join(CREDS)).unwrap(),
            secret(p),
            "{p}'s credentials changed"
        );
    }
}

/// Reading, appending to and readlink of `link` all fail with EPERM, and no secret shows.
#[track_caller]
fn refused_to_follow(link: &Path) {
    let what = link.display();
    let read = fs::read_to_string(link);
    if let Ok(text) = &read {
        assert!(
            !text.contains("secret-of-"),
            "{what} showed credentials: {text}"
        );
    }
    expect_errno(read, libc::EPERM, &format!("read {what}"));
    let cat = Command::new("cat").arg(link).output().unwrap();
    assert!(!cat.status.success(), "cat {what} succeeded");
    assert!(!String::from_utf8_lossy(&cat.stdout).contains("secret-of-"));
    expect_errno(
        fs::OpenOptions::new()
            .append(true)
            .open(link)
            .and_then(|mut f| f.write_all(b"{\"type\":\"user\"}\n")),
        libc::EPERM,
        &format!("append to {what}"),
    );
    expect_errno(
        fs::read_link(link),
        libc::EPERM,
        &format!("readlink {what}"),
    );
}

fn log_text(ccs: &Ccs) -> String {
    fs::read_to_string(ccs.ccs.join("logs/ccsfs.log")).unwrap_or_default()
}

#[test]
fn a_relative_link_to_credentials_cannot_be_made_in_the_store() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    with_credentials(&ccs);
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    fs::create_dir(personal.join("projects/app")).unwrap();

    // The issue's own case: made through personal, it would be work's credentials for work.
    refused_to_make(
        "../../.credentials.json",
        &personal.join("projects/app/sess.jsonl"),
    );
    refused_to_make("../.credentials.json", &work.join("projects/creds"));
    refused_to_make("../.credentials.json", &work.join("todos/creds"));
    refused_to_make("../../settings.json", &work.join("projects/app/s"));
    refused_to_make("../todos", &work.join("projects/t"));
    // Out and back in still means the reader's own projects/: refused too.
    refused_to_make("../projects/app", &work.join("projects/back"));
    refused_to_make(
        ccs.instance("work").join(CREDS),
        &work.join("projects/app/abs"),
    );
    refused_to_make("/tmp", &work.join("projects/app/tmp"));
    assert!(
        fs::read_dir(ccs.group_projects("team").join("app"))
            .unwrap()
            .next()
            .is_none(),
        "a refused link reached the store"
    );
    assert!(
        log_text(&ccs)
            .lines()
            .any(|l| l.contains("refused symlink") && l.contains("../../.credentials.json")),
        "no log line for the refused symlink:\n{}",
        log_text(&ccs)
    );
    credentials_untouched(&ccs);
}

#[test]
fn a_link_planted_in_the_store_is_refused_to_every_reader() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    with_credentials(&ccs);
    let store = ccs.group_projects("team");
    fs::create_dir(store.join("app")).unwrap();
    fs::write(store.join("app/real.jsonl"), "{}\n").unwrap();
    // Planted behind the mount's back (or made before ccsfs).
    symlink("../../.credentials.json", store.join("app/sess.jsonl")).unwrap();
    symlink("../.credentials.json", store.join("creds")).unwrap();
    let todos = ccs.continuity("team", "todos");
    symlink("../.credentials.json", todos.join("t.json")).unwrap();

    for p in ["work", "personal"] {
        let dir = ccs.profile(p);
        refused_to_follow(&dir.join("projects/app/sess.jsonl"));
        refused_to_follow(&dir.join("projects/creds"));
        // The link itself is still there to see and to remove.
        assert!(
            fs::symlink_metadata(dir.join("projects/app/sess.jsonl"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(dir.join("projects/app/real.jsonl")).unwrap(),
            "{}\n"
        );
    }
    refused_to_follow(&ccs.profile("work").join("todos/t.json"));
    credentials_untouched(&ccs);
    assert!(
        log_text(&ccs)
            .lines()
            .any(|l| l.contains("refused to follow") && l.contains("sess.jsonl")),
        "no log line for the refused readlink:\n{}",
        log_text(&ccs)
    );
    fs::remove_file(ccs.profile("work").join("projects/app/sess.jsonl")).unwrap();
    assert!(fs::symlink_metadata(store.join("app/sess.jsonl")).is_err());
}

#[test]
fn proc_targets_are_judged_where_they_resolve() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    with_credentials(&ccs);
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    let via_root = |p: &Path| Path::new("/proc/self/root").join(p.strip_prefix("/").unwrap());
    let work_creds = via_root(&ccs.instance("work").join(CREDS));
    let personal_creds = via_root(&ccs.instance("personal").join(CREDS));
    let cwd_personal = PathBuf::from("/proc/self/cwd/personal").join(CREDS);
    let pid1 = Path::new("/proc/1/root").join(
        ccs.instance("personal")
            .join(CREDS)
            .strip_prefix("/")
            .unwrap(),
    );

    // In the shared store and in a private instance alike.
    for (target, link) in [
        (&work_creds, work.join("projects/p")),
        (&personal_creds, personal.join("projects/p")),
        (&personal_creds, work.join("p")),
        (&cwd_personal, work.join("c")),
        (&pid1, work.join("one")),
        (&personal_creds, ccs.profile("solo").join("p")),
    ] {
        refused_to_make(target, &link);
    }

    // Planted: read through the mount from a process whose cwd is the mount root.
    symlink(&work_creds, ccs.group_projects("team").join("planted")).unwrap();
    symlink(&personal_creds, ccs.instance("work").join("planted")).unwrap();
    symlink(&cwd_personal, ccs.instance("work").join("cwd")).unwrap();
    for link in [
        work.join("projects/planted"),
        personal.join("projects/planted"),
        work.join("planted"),
    ] {
        refused_to_follow(&link);
    }
    let cat = Command::new("cat")
        .arg("work/cwd")
        .current_dir(&ccs.mnt)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&cat.stdout).contains("secret-of-personal"),
        "work/cwd read personal's credentials through /proc/self/cwd"
    );
    assert!(!cat.status.success());
    credentials_untouched(&ccs);
}

#[test]
fn a_chain_of_links_that_escapes_is_refused() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    with_credentials(&ccs);
    let work = ccs.profile("work");
    // A hop outside the CCS dir that leads into another instance.
    let hops = ccs.tmp.path().join("hops");
    fs::create_dir(&hops).unwrap();
    symlink(ccs.instance("personal").join(CREDS), hops.join("creds")).unwrap();

    refused_to_make(hops.join("creds"), &work.join("x"));
    refused_to_make(hops.join("creds"), &work.join("projects/x"));

    // A chain inside the store whose last link leads out.
    let store = ccs.group_projects("team");
    symlink("b", store.join("a")).unwrap();
    symlink("c", store.join("b")).unwrap();
    symlink(hops.join("creds"), store.join("c")).unwrap();
    for p in ["work", "personal"] {
        refused_to_follow(&ccs.profile(p).join("projects/a"));
    }

    // A link made while its target did not exist yet, which later becomes a hop out.
    symlink(hops.join("later"), work.join("later")).expect("a dangling link to /tmp-like dir");
    symlink(ccs.instance("personal").join(CREDS), hops.join("later")).unwrap();
    refused_to_follow(&work.join("later"));
    credentials_untouched(&ccs);
}

#[test]
fn dotdot_after_a_link_to_a_dir_is_judged_where_it_lands() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    with_credentials(&ccs);
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    fs::create_dir_all(work.join("projects/app/sub/inner")).unwrap();
    fs::write(work.join("projects/app/sub/x"), "x\n").unwrap();

    // up -> .. is the store root: fine. Then up/.. is the profile root, not app.
    symlink("..", work.join("projects/app/up")).expect("a link to the store root");
    refused_to_make("up/../.credentials.json", &work.join("projects/app/esc"));
    symlink(
        "up/../.credentials.json",
        ccs.group_projects("team").join("app/planted"),
    )
    .unwrap();
    for p in ["work", "personal"] {
        refused_to_follow(&ccs.profile(p).join("projects/app/planted"));
    }

    // The same in a private instance: up/.. is the mount root, and then another profile.
    fs::create_dir(work.join("a")).unwrap();
    symlink("..", work.join("a/up")).expect("a link to the profile root");
    refused_to_make("up/../personal/.credentials.json", &work.join("a/esc"));
    symlink(
        "up/../personal/.credentials.json",
        ccs.instance("work").join("a/planted"),
    )
    .unwrap();
    refused_to_follow(&work.join("a/planted"));

    // `..` after a link that stays inside is fine: d -> sub/inner, d/../x is sub/x.
    symlink("sub/inner", work.join("projects/app/d")).unwrap();
    symlink("d/../x", work.join("projects/app/ok")).expect("d/../x stays in the store");
    for p in [&work, &personal] {
        assert_eq!(
            fs::read_to_string(p.join("projects/app/ok")).unwrap(),
            "x\n"
        );
    }
    credentials_untouched(&ccs);
}

#[test]
fn a_dir_that_becomes_a_link_is_judged_again() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    with_credentials(&ccs);
    let work = ccs.profile("work");
    fs::create_dir_all(work.join("projects/app/sub")).unwrap();
    // While sub is a dir, sub/../.credentials.json is projects/app/.credentials.json.
    symlink("sub/../.credentials.json", work.join("projects/app/l"))
        .expect("a link that stays in the store while sub is a dir");
    fs::remove_dir(work.join("projects/app/sub")).unwrap();
    // sub -> .. is the store root, allowed on its own; l now climbs to the profile root.
    symlink("..", work.join("projects/app/sub")).unwrap();
    for p in ["work", "personal"] {
        refused_to_follow(&ccs.profile(p).join("projects/app/l"));
    }
    credentials_untouched(&ccs);
}

#[test]
fn moving_a_link_to_where_it_would_lead_out_is_refused() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    with_credentials(&ccs);
    let work = ccs.profile("work");
    fs::create_dir_all(work.join("projects/app")).unwrap();
    // ../x from projects/app is projects/x; from projects/ it would be the profile's x.
    symlink("../x", work.join("projects/app/l")).unwrap();
    expect_errno(
        fs::rename(work.join("projects/app/l"), work.join("projects/l")),
        libc::EPERM,
        "rename projects/app/l (-> ../x) to projects/l",
    );
    expect_errno(
        fs::hard_link(work.join("projects/app/l"), work.join("projects/l")),
        libc::EPERM,
        "link projects/app/l (-> ../x) to projects/l",
    );
    assert!(fs::symlink_metadata(work.join("projects/l")).is_err());
    // Moving its dir up makes it lead out: following it is refused.
    fs::create_dir_all(work.join("projects/a/b")).unwrap();
    symlink("../../.credentials.json", work.join("projects/a/b/l")).unwrap();
    fs::rename(work.join("projects/a/b"), work.join("projects/b")).unwrap();
    refused_to_follow(&work.join("projects/b/l"));
    credentials_untouched(&ccs);
}

/// `~/.claude` and CCS's `<ccs>/shared/<name>` links to it, as `ccs auth create` makes them.
fn shared_resources(ccs: &Ccs) -> PathBuf {
    let claude = common::ccs_shared_layout(ccs, &["work", "personal"]);
    fs::write(claude.join("commands/review.md"), "# review\n").unwrap();
    fs::write(claude.join(CREDS), secret("default claude")).unwrap();
    claude
}

#[test]
fn the_shared_resource_dirs_keep_their_links_inside() {
    let ccs = Ccs::new(Some(common::TWO_IN_TEAM));
    let claude = shared_resources(&ccs);
    let _m = ccs.mount();
    for p in ["work", "personal"] {
        write_private(&ccs.profile(p).join(CREDS), &secret(p));
    }
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));

    refused_to_make("../.credentials.json", &work.join("commands/creds.md"));
    // known_marketplaces.json is each profile's own, not the shared dir's.
    refused_to_make(
        "../known_marketplaces.json",
        &work.join("plugins/cache/km.json"),
    );
    refused_to_make("known_marketplaces.json", &work.join("plugins/km.json"));

    symlink("../.credentials.json", claude.join("commands/planted.md")).unwrap();
    symlink(
        "../known_marketplaces.json",
        claude.join("plugins/cache/km"),
    )
    .unwrap();
    for p in [&work, &personal] {
        refused_to_follow(&p.join("commands/planted.md"));
        refused_to_follow(&p.join("plugins/cache/km"));
    }

    // An absolute link out of the CCS dir (a dotfiles repo) means the same to every reader:
    // it works. One into an instance does not.
    let dotfiles = ccs.tmp.path().join("dotfiles");
    fs::create_dir_all(&dotfiles).unwrap();
    fs::write(dotfiles.join("lint.md"), "# lint\n").unwrap();
    symlink(dotfiles.join("lint.md"), claude.join("commands/lint.md")).unwrap();
    for p in [&work, &personal] {
        assert_eq!(
            fs::read_to_string(p.join("commands/lint.md")).unwrap(),
            "# lint\n"
        );
    }
    refused_to_make(
        ccs.instance("personal").join(CREDS).to_str().unwrap(),
        &work.join("commands/abs.md"),
    );

    // A link among the shared files works for everyone.
    symlink("review.md", work.join("commands/r.md")).expect("a link beside review.md");
    for p in [&work, &personal] {
        assert_eq!(
            fs::read_to_string(p.join("commands/r.md")).unwrap(),
            "# review\n"
        );
    }
    for p in ["work", "personal"] {
        assert_eq!(
            fs::read_to_string(ccs.instance(p).join(CREDS)).unwrap(),
            secret(p)
        );
    }
}

#[test]
fn links_inside_the_store_and_claudes_own_links_keep_working() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    with_credentials(&ccs);
    let (work, personal) = (ccs.profile("work"), ccs.profile("personal"));
    fs::create_dir_all(work.join("projects/app/s1/subagents/workflows/run")).unwrap();
    fs::write(work.join("projects/app/s.jsonl"), "{\"n\":1}\n").unwrap();
    fs::write(
        work.join("projects/app/s1/subagents/workflows/run/agent.jsonl"),
        "{}\n",
    )
    .unwrap();

    // A sibling, and a walk up and back down inside the store.
    symlink("s.jsonl", work.join("projects/app/alias.jsonl")).unwrap();
    symlink("../app/s.jsonl", personal.join("projects/app/up.jsonl")).unwrap();
    // Claude's workflow links: absolute, through the config dir, into the same store.
    symlink(
        work.join("projects/app/s1/subagents/workflows/run"),
        work.join("projects/app/s2-run"),
    )
    .expect("an absolute link through work's config dir into the store");
    for p in [&work, &personal] {
        for l in ["alias.jsonl", "up.jsonl"] {
            assert_eq!(
                fs::read_to_string(p.join("projects/app").join(l)).unwrap(),
                "{\"n\":1}\n",
                "{}",
                p.join(l).display()
            );
        }
        assert_eq!(
            fs::read_to_string(p.join("projects/app/s2-run/agent.jsonl")).unwrap(),
            "{}\n"
        );
    }
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(personal.join("projects/app/alias.jsonl"))
        .unwrap();
    f.write_all(b"{\"n\":2}\n").unwrap();
    drop(f);
    assert_eq!(
        fs::read_to_string(ccs.group_projects("team").join("app/s.jsonl")).unwrap(),
        "{\"n\":1}\n{\"n\":2}\n"
    );

    // Claude's links in a private instance: debug/latest, absolute through the config dir
    // and relative; a link to the profile's own projects; a link out of the CCS dir.
    fs::create_dir(work.join("debug")).unwrap();
    fs::write(work.join("debug/abc.txt"), "log\n").unwrap();
    symlink(work.join("debug/abc.txt"), work.join("debug/latest")).unwrap();
    symlink("abc.txt", work.join("debug/latest2")).unwrap();
    symlink("projects/app/s.jsonl", work.join("last-session")).unwrap();
    symlink("../.credentials.json", work.join("debug/creds")).unwrap();
    let outside = ccs.tmp.path().join("outside.txt");
    fs::write(&outside, "out\n").unwrap();
    symlink(&outside, work.join("debug/out")).unwrap();
    for (l, want) in [
        ("debug/latest", "log\n".to_string()),
        ("debug/latest2", "log\n".into()),
        ("last-session", "{\"n\":1}\n{\"n\":2}\n".into()),
        ("debug/creds", secret("work")),
        ("debug/out", "out\n".into()),
    ] {
        assert_eq!(fs::read_to_string(work.join(l)).unwrap(), want, "{l}");
    }
    // Claude's atomic update of a link: a temp link renamed over the old one.
    symlink("abc.txt", work.join("debug/latest.tmp")).unwrap();
    fs::rename(work.join("debug/latest.tmp"), work.join("debug/latest")).unwrap();
    assert_eq!(
        fs::read_link(work.join("debug/latest")).unwrap(),
        Path::new("abc.txt")
    );
    // Loops are the kernel's to report (ELOOP), in the store and in an instance.
    for dir in [work.join("projects/app"), work.join("debug")] {
        symlink("n1", dir.join("n0")).unwrap();
        symlink("n0", dir.join("n1")).unwrap();
        expect_errno(fs::read(dir.join("n0")), libc::ELOOP, "a loop of two links");
    }
}
