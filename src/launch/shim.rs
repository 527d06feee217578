//! The shim file, `<ccs>/ccsfs/bin/claude`: a two-line `#!/bin/sh` script that execs
//! `ccsfs shim-exec -- "$@"` by the absolute path of the ccsfs binary. Its text, the marker
//! that tells any copy of it from a real claude, and writing it atomically and only when it
//! changed (first call, or ccsfs moved).

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::decide::shell_quote;
use crate::layout::Layout;

/// The line that marks a ccsfs shim (so PATH lookup never takes a shim for the real claude).
pub const MARKER: &str = "# ccsfs-shim:";

/// Where `ccsfs shim` puts the shim.
pub fn path(layout: &Layout) -> PathBuf {
    layout.ccs_dir.join("ccsfs").join("bin").join("claude")
}

/// The shim's text for the ccsfs binary at `exe`.
pub fn script(exe: &Path) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(b"#!/bin/sh\n");
    s.extend_from_slice(MARKER.as_bytes());
    s.extend_from_slice(
        b" runs Claude Code through the ccsfs mount. Use it as CCS_CLAUDE_PATH.\n\
          # Written by `ccsfs shim` (rewritten when ccsfs moves). The real claude is\n\
          # $CCSFS_CLAUDE, else the first other `claude` on PATH.\n\
          exec ",
    );
    s.extend(shell_quote(exe.as_os_str()));
    s.extend_from_slice(b" shim-exec -- \"$@\"\n");
    s
}

/// Whether a file's first bytes are a ccsfs shim's.
pub fn is_shim_text(head: &[u8]) -> bool {
    let mut marker = vec![b'\n'];
    marker.extend_from_slice(MARKER.as_bytes());
    head.starts_with(b"#!") && head.windows(marker.len()).any(|w| w == marker)
}

/// Whether the file at `p` is a ccsfs shim (reads its first 4 KiB).
pub fn is_shim_file(p: &Path) -> bool {
    let mut head = Vec::with_capacity(4096);
    fs::File::open(p)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .is_ok()
        && is_shim_text(&head)
}

/// The running ccsfs binary. After an in-place rebuild the kernel reports the old file as
/// `<path> (deleted)`; the new file at `<path>` is the one to run.
fn current_exe() -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the ccsfs binary's own path: {e}"))?;
    let bytes = exe.as_os_str().as_bytes();
    if let Some(stripped) = bytes.strip_suffix(b" (deleted)") {
        let p = Path::new(OsStr::from_bytes(stripped));
        if p.exists() {
            return Ok(p.to_path_buf());
        }
    }
    Ok(exe)
}

/// Whether the shim exists and is the one `install` would write for this ccsfs binary.
pub fn is_current(layout: &Layout) -> bool {
    match (fs::read(path(layout)), current_exe()) {
        (Ok(text), Ok(exe)) => text == script(&exe),
        _ => false,
    }
}

/// `ccsfs shim`: makes sure the shim exists for this binary and returns its path. Leaves an
/// up-to-date shim alone; otherwise writes a temp file beside it and renames it over.
pub fn install(layout: &Layout) -> Result<PathBuf, String> {
    let target = path(layout);
    let text = script(&current_exe()?);
    let dir = target.parent().expect("the shim path has a parent");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let Ok(old) = fs::read(&target)
        && old == text
    {
        let meta = fs::metadata(&target).map_err(|e| e.to_string())?;
        if meta.permissions().mode() & 0o7777 != 0o755 {
            fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("cannot chmod {}: {e}", target.display()))?;
        }
        return Ok(target);
    }
    // 0755 whatever the umask: CCS runs it.
    crate::atomic_file::replace(&target, &text, 0o755)
        .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_execs_the_binary_with_every_argument() {
        let text = script(Path::new("/opt/my tools/ccsfs"));
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"));
        assert!(text.ends_with("exec '/opt/my tools/ccsfs' shim-exec -- \"$@\"\n"));
        assert!(is_shim_text(text.as_bytes()));
    }

    #[test]
    fn a_real_claude_is_not_a_shim() {
        assert!(!is_shim_text(b"#!/usr/bin/env node\nconsole.log(1)\n"));
        assert!(!is_shim_text(b"\x7fELF\x02\x01"));
        assert!(!is_shim_text(b"# ccsfs-shim: but no shebang\n"));
        assert!(!is_shim_text(b""));
    }

    #[test]
    fn the_shim_lives_in_the_ccs_dir() {
        let l = Layout::new(PathBuf::from("/h/.ccs"));
        assert_eq!(path(&l), PathBuf::from("/h/.ccs/ccsfs/bin/claude"));
    }
}
