//! Set-id bits are dropped as on a plain disk when an unprivileged user writes, truncates or
//! opens with O_TRUNC a set-uid (or group-executable set-gid) file, and kept when root
//! writes: ccsfs handles this itself (FUSE_HANDLE_KILLPRIV_V2), on private and shared paths.
//! Needs root (to act as another user): ignored by a plain `cargo test`, run by scripts/test.sh.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::{Ccs, THREE_PROFILES};

const USER: u32 = 65534;

fn as_user(script: &str) {
    let st = Command::new("setpriv")
        .args([
            format!("--reuid={USER}"),
            format!("--regid={USER}"),
            "--clear-groups".into(),
        ])
        .args(["sh", "-c", script])
        .status()
        .unwrap();
    assert!(st.success(), "{script}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

fn setid_file(dir: &Path, name: &str, m: u32) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, "x\n").unwrap();
    std::os::unix::fs::chown(&p, Some(USER), Some(USER)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    p
}

#[test]
#[ignore = "needs root (acts as another user); scripts/test.sh runs it"]
fn unprivileged_changes_drop_setid_bits_and_root_writes_keep_them() {
    common::prereq::require_root();
    let ccs = Ccs::new(Some(THREE_PROFILES));
    std::fs::set_permissions(ccs.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = ccs.mnt.to_str().unwrap();
    let extra = std::env::var("CCSFS_TEST_MOUNT_ARGS").unwrap_or_default();
    let mut args = vec!["mount", mnt, "-o", "allow_other"];
    args.extend(extra.split_whitespace());
    assert!(ccs.cli(&args).status.success());
    let _m = common::Mounted { ccs: &ccs };
    for dir in [
        ccs.instance("work"),
        ccs.continuity("team", "todos"),
        ccs.group_projects("team"),
    ]
    .iter()
    .chain(
        [
            ccs.ccs.clone(),
            ccs.ccs.join("instances"),
            ccs.ccs.join("shared"),
        ]
        .iter(),
    ) {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777));
    }
    for sub in ["shared/context-groups", "shared/context-groups/team"] {
        std::fs::set_permissions(ccs.ccs.join(sub), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    for base in [ccs.profile("work"), ccs.profile("work").join("projects")] {
        let f = setid_file(&base, "append", 0o4755);
        as_user(&format!("echo y >> {}", f.display()));
        assert_eq!(mode(&f), 0o755, "append by a user in {}", base.display());

        let f = setid_file(&base, "trunc", 0o4755);
        as_user(&format!("truncate -s 1 {}", f.display()));
        assert_eq!(mode(&f), 0o755, "truncate by a user in {}", base.display());

        let f = setid_file(&base, "otrunc", 0o4755);
        as_user(&format!("echo z > {}", f.display()));
        assert_eq!(
            mode(&f),
            0o755,
            "O_TRUNC open by a user in {}",
            base.display()
        );

        let f = setid_file(&base, "sgid", 0o2775);
        as_user(&format!("echo y >> {}", f.display()));
        assert_eq!(
            mode(&f),
            0o775,
            "set-gid, group-executable, in {}",
            base.display()
        );

        let f = setid_file(&base, "root", 0o4755);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&f)
            .map(|mut h| std::io::Write::write_all(&mut h, b"q\n"))
            .unwrap()
            .unwrap();
        assert_eq!(
            mode(&f),
            0o4755,
            "a write by root keeps set-uid in {}",
            base.display()
        );
    }
}
