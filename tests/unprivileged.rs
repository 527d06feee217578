//! A normal user mounts through fusermount3: the mount works, files in the backing dirs are
//! that user's, other users (root included, without allow_other) cannot read it, and the
//! same user unmounts it. Needs root to switch users, and /dev/fuse open to users
//! (distributions make it 0666): ignored by a plain `cargo test`, run by scripts/test.sh.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use common::{Ccs, THREE_PROFILES, bin};

const USER: u32 = 65534;

fn as_user(uid: u32, script: &str) -> Output {
    Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".into(),
        ])
        .args(["sh", "-c", script])
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .expect("run setpriv")
}

fn chown_tree(path: &Path) {
    let st = Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
#[ignore = "needs root (switches users) and a 0666 /dev/fuse; scripts/test.sh runs it"]
fn a_normal_user_mounts_writes_and_unmounts() {
    common::prereq::require_root();
    common::prereq::require_user_fuse();
    let ccs = Ccs::new(Some(THREE_PROFILES));
    chown_tree(ccs.tmp.path());
    std::fs::set_permissions(ccs.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (c, m) = (ccs.ccs.display().to_string(), ccs.mnt.display().to_string());
    let b = bin();

    let out = as_user(USER, &format!("{b} --ccs-dir {c} mount {m}"));
    assert!(
        out.status.success(),
        "mount as uid {USER}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(common::is_mounted(&ccs.mnt));

    let out = as_user(
        USER,
        &format!(
            "echo line >> {m}/work/projects/s.jsonl && cat {m}/personal/projects/s.jsonl && echo secret > {m}/work/.credentials.json && chmod 600 {m}/work/.credentials.json"
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line\n");

    // The backing files belong to the user, with the modes it chose.
    let shared = ccs.group_projects("team").join("s.jsonl");
    assert_eq!(std::fs::metadata(&shared).unwrap().uid(), USER);
    let creds = std::fs::metadata(ccs.instance("work").join(".credentials.json")).unwrap();
    assert_eq!((creds.uid(), creds.mode() & 0o777), (USER, 0o600));

    // Nobody else gets in: not another user, and not root either (no allow_other).
    let other = as_user(USER - 1, &format!("ls {m}/work"));
    assert!(!other.status.success(), "another user listed the mount");
    let err = std::fs::read_dir(ccs.profile("work")).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EACCES),
        "root read the mount: {err}"
    );

    let status = as_user(USER, &format!("{b} --ccs-dir {c} status {m}"));
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("daemon pid"), "{status}");
    assert!(
        status.contains("passthrough: off"),
        "a normal user gets no kernel passthrough: {status}"
    );
    let out = as_user(USER, &format!("{b} --ccs-dir {c} unmount {m}"));
    assert!(
        out.status.success(),
        "unmount: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!common::is_mounted(&ccs.mnt));
}

/// Linux 6.9 brought FUSE passthrough.
fn kernel_has_passthrough() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 9)
}

#[test]
#[ignore = "needs root (kernel passthrough is root's); scripts/test.sh runs it"]
fn root_gets_kernel_passthrough_unless_told_not_to() {
    common::prereq::require_root();
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let m = ccs.mnt.to_str().unwrap();
    for (args, want) in [
        (vec!["mount", m], kernel_has_passthrough()),
        (vec!["mount", m, "--no-passthrough"], false),
    ] {
        let out = ccs.cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status = common::stdout(&ccs.cli(&["status", m]));
        let line = if want {
            "passthrough: on"
        } else {
            "passthrough: off"
        };
        assert!(status.contains(line), "{args:?}: {status}");
        // Data still flows either way.
        std::fs::write(ccs.profile("work").join("projects/p.jsonl"), b"{}\n").unwrap();
        assert_eq!(
            std::fs::read(ccs.profile("personal").join("projects/p.jsonl")).unwrap(),
            b"{}\n"
        );
        assert!(ccs.cli(&["unmount", m]).status.success());
    }
}
