//! A backing inode number freed and given to a new file while the kernel still holds the node
//! of the old one: the mount must show the new file, not the old file's cached pages. Node ids
//! derive from backing inode numbers, so only the FUSE generation (the file's birth time) tells
//! the kernel that the id now names another file.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::{Ccs, Mounted, THREE_PROFILES};

/// Mounts with no fd budget (so nodes keep no fd that would keep the old file alive) and no
/// passthrough (whose backing file would too).
fn mount_without_fds(ccs: &Ccs) -> Mounted<'_> {
    let out = ccs.cli(&[
        "mount",
        ccs.mnt.to_str().unwrap(),
        "--no-passthrough",
        "--fd-budget",
        "0",
    ]);
    assert!(
        out.status.success(),
        "mount failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Mounted { ccs }
}

/// Replaces `path` (removed first) with a new file of inode number `ino` holding `data`;
/// false if the filesystem handed out other numbers every time.
fn recreate_with_ino(path: &Path, ino: u64, data: &str) -> bool {
    fs::remove_file(path).unwrap();
    let dir = path.parent().unwrap();
    let mut others = Vec::new();
    let mut found = false;
    for i in 0..200 {
        let p = dir.join(format!("filler-{i}"));
        fs::write(&p, data).unwrap();
        if fs::metadata(&p).unwrap().ino() == ino {
            fs::rename(&p, path).unwrap();
            found = true;
            break;
        }
        others.push(p);
    }
    for p in others {
        fs::remove_file(p).unwrap();
    }
    found
}

#[test]
fn a_new_file_with_a_reused_inode_number_is_not_the_old_file() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let backing_dir = ccs.instance("solo").join("d");
    fs::create_dir_all(&backing_dir).unwrap();
    let backing = backing_dir.join("gen.txt");
    fs::write(&backing, "old contents").unwrap();
    let _m = mount_without_fds(&ccs);
    let through = ccs.profile("solo").join("d").join("gen.txt");

    // The kernel holds the node and caches its pages (FOPEN_KEEP_CACHE).
    assert_eq!(fs::read_to_string(&through).unwrap(), "old contents");
    let before = fs::metadata(&through).unwrap();
    let old = fs::metadata(&backing).unwrap();

    // Behind the mount: another file of the same size and mtime gets the freed inode number.
    assert!(
        recreate_with_ino(&backing, old.ino(), "new contents"),
        "the filesystem of {} gave no new file inode number {} again in 200 creates; this \
         test needs one that reuses freed inode numbers (ext4, xfs, btrfs do)",
        backing_dir.display(),
        old.ino()
    );
    fs::File::options()
        .write(true)
        .open(&backing)
        .unwrap()
        .set_modified(old.modified().unwrap())
        .unwrap();
    let new = fs::metadata(&backing).unwrap();
    assert_eq!(
        (new.ino(), new.len(), new.mtime(), new.mtime_nsec()),
        (old.ino(), old.len(), old.mtime(), old.mtime_nsec())
    );

    // Past the entry and attribute TTL, the name is looked up again.
    std::thread::sleep(Duration::from_millis(1500));
    let after = fs::metadata(&through).unwrap();
    assert_eq!(
        after.ino(),
        before.ino(),
        "the node id derives from the (same) backing inode number"
    );
    assert_eq!(
        fs::read_to_string(&through).unwrap(),
        "new contents",
        "the new file read back as the old one's cached pages"
    );
    // And it stays readable: the node under that id is the new file's.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fs::read_to_string(&through).unwrap(), "new contents");
}
