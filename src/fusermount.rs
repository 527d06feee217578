//! The setuid `fusermount3` helper that lets a normal user mount and unmount FUSE
//! filesystems: finding it, and unmounting with it. (fuser itself mounts through it.)

use std::path::{Path, PathBuf};
use std::process::Command;

/// The helper binary, looked up on PATH and in the usual system dirs.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    let dirs: Vec<PathBuf> = dirs.collect();
    for bin in ["fusermount3", "fusermount"] {
        if let Some(p) = dirs.iter().map(|d| d.join(bin)).find(|p| p.is_file()) {
            return Some(p);
        }
    }
    None
}

pub const NOT_FOUND: &str =
    "fusermount3 not found; install the fuse3 package (`sudo apt-get install fuse3`)";

/// `fusermount3 -u [-z] MOUNT_POINT`; the error is its own message on one line.
pub fn unmount(mount_point: &Path, lazy: bool) -> Result<(), String> {
    let bin = find().ok_or(NOT_FOUND)?;
    let mut cmd = Command::new(bin);
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg("--")
        .arg(mount_point)
        .output()
        .map_err(|e| format!("cannot run fusermount3: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .trim()
            .replace('\n', " "))
    }
}
