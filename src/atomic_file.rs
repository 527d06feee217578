//! Replacing a file atomically: a temp file beside it (`.<name>.ccsfs-tmp-<pid>`, created
//! exclusively with `mode`, whatever the umask), written, fsynced and renamed over the file.
//! On failure the old file is untouched and no temp file is left. Callers that must also
//! make the rename itself durable fsync the directory afterwards.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` by temp file and rename; the new file has `mode`.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_name(path);
    let write = || -> io::Result<()> {
        // A leftover from a crashed run with the same pid would block create_new.
        let _ = fs::remove_file(&tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// `<dir>/.<name>.ccsfs-tmp-<pid>`
pub fn temp_name(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    dir.join(format!(".{name}.ccsfs-tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_with_mode_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "old").unwrap();
        replace(&p, b"new", 0o640).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        // A rename that cannot happen (a dir in the way) leaves the old and no temp.
        let dir_in_way = d.path().join("sub");
        std::fs::create_dir(&dir_in_way).unwrap();
        std::fs::write(dir_in_way.join("x"), "").unwrap();
        assert!(replace(&dir_in_way, b"x", 0o600).is_err());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }
}
