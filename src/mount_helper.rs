//! `mount.fuse.ccsfs`, the fstab helper: the ccsfs binary run under that name (a symlink in
//! /sbin, made by `ccsfs install-mount-helper`). It reads mount(8)'s arguments (`fstab`),
//! becomes the `setuid=` user when asked (HOME from passwd), and hands over to `ccsfs mount`.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::fstab::{self, HELPER_NAME};

/// Where mount(8) looks for helpers.
pub const DEFAULT_DIR: &str = "/sbin";

/// Whether the binary runs as the fstab helper (argv[0]'s file name is `mount.fuse.ccsfs`).
pub fn invoked_as_helper(argv0: &OsStr) -> bool {
    Path::new(argv0).file_name() == Some(OsStr::new(HELPER_NAME))
}

/// The `ccsfs` arguments for the mount mount(8) asks for, after becoming the `setuid=` user;
/// None for mount(8)'s fake run (`-f`), which mounts nothing.
pub fn prepare(args: &[OsString]) -> Result<Option<Vec<OsString>>, String> {
    let m = fstab::parse(args)?;
    let me = Passwd::of_uid(
        // SAFETY: no preconditions.
        unsafe { libc::geteuid() },
    );
    let user = match &m.setuid {
        Some(name) => {
            let pw = Passwd::of_name(name)?;
            become_user(&pw)?;
            Some(pw)
        }
        None => me,
    };
    // mount(8) runs helpers with an empty environment (and at boot there is none): the daemon
    // and the programs it runs get the user's HOME and a plain PATH.
    // SAFETY: the helper is still single-threaded; nothing reads the environment concurrently.
    unsafe {
        if let Some(pw) = &user
            && (m.setuid.is_some() || std::env::var_os("HOME").is_none())
        {
            std::env::set_var("HOME", &pw.home);
            std::env::set_var("USER", &pw.name);
            std::env::set_var("LOGNAME", &pw.name);
        }
        if std::env::var_os("PATH").is_none() {
            std::env::set_var(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
        }
    }
    Ok((!m.fake).then(|| m.ccsfs_args()))
}

/// A passwd entry: what the helper needs of it.
struct Passwd {
    name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
    home: PathBuf,
}

impl Passwd {
    fn of_name(name: &str) -> Result<Passwd, String> {
        let c = CString::new(name).map_err(|_| format!("bad user name {name:?} in setuid="))?;
        lookup(|pw, buf, out| {
            // SAFETY: valid pointers to a passwd, a buffer of the given size and a result slot.
            unsafe { libc::getpwnam_r(c.as_ptr(), pw, buf.as_mut_ptr(), buf.len(), out) }
        })
        .ok_or_else(|| format!("no user `{name}` (setuid={name}); fix the fstab line"))
    }

    fn of_uid(uid: libc::uid_t) -> Option<Passwd> {
        lookup(|pw, buf, out| {
            // SAFETY: as above.
            unsafe { libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), out) }
        })
    }
}

/// getpwnam_r or getpwuid_r, called as `get(entry, buffer, result)`.
fn lookup(
    mut get: impl FnMut(*mut libc::passwd, &mut [libc::c_char], *mut *mut libc::passwd) -> i32,
) -> Option<Passwd> {
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: an all-zero passwd is a valid value to be overwritten.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    if get(&mut pw, &mut buf, &mut out) != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success the strings point into `buf`, NUL-terminated.
    let (name, dir) = unsafe { (CStr::from_ptr(pw.pw_name), CStr::from_ptr(pw.pw_dir)) };
    Some(Passwd {
        name: name.to_string_lossy().into_owned(),
        uid: pw.pw_uid,
        gid: pw.pw_gid,
        home: PathBuf::from(OsStr::from_bytes(dir.to_bytes())),
    })
}

/// Drops to `pw` for good: its groups, gid and uid (root only; becoming yourself is a no-op).
fn become_user(pw: &Passwd) -> Result<(), String> {
    // SAFETY: no preconditions.
    let (euid, uid) = unsafe { (libc::geteuid(), libc::getuid()) };
    if euid != 0 {
        if pw.uid == euid && pw.uid == uid {
            return Ok(());
        }
        return Err(format!(
            "setuid={} needs root: it is for root's mount at boot; a user's own fstab line needs no setuid=",
            pw.name
        ));
    }
    let name = CString::new(pw.name.as_str()).map_err(|e| e.to_string())?;
    let fail = |what: &str| {
        format!(
            "cannot become {} ({what}): {}",
            pw.name,
            std::io::Error::last_os_error()
        )
    };
    // SAFETY: plain credential syscalls with valid arguments, before any thread exists.
    unsafe {
        if libc::initgroups(name.as_ptr(), pw.gid) != 0 {
            return Err(fail("initgroups"));
        }
        if libc::setgid(pw.gid) != 0 {
            return Err(fail("setgid"));
        }
        if libc::setuid(pw.uid) != 0 {
            return Err(fail("setuid"));
        }
        if pw.uid != 0 && libc::setuid(0) == 0 {
            return Err(format!(
                "cannot drop root for {}: setuid(0) still works",
                pw.name
            ));
        }
    }
    Ok(())
}

/// `ccsfs install-mount-helper`: links `<dir>/mount.fuse.ccsfs` to this binary. Returns what
/// to print.
pub fn install_link(dir: &Path) -> Result<String, String> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "install-mount-helper needs root (mount(8) runs {}/{HELPER_NAME} as root at boot): `sudo ccsfs install-mount-helper`",
            dir.display()
        ));
    }
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("cannot tell where the ccsfs binary is: {e}"))?;
    let link = dir.join(HELPER_NAME);
    match std::fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => {
            if std::fs::read_link(&link).is_ok_and(|t| t == exe) {
                return Ok(format!(
                    "{} -> {} (already there)",
                    link.display(),
                    exe.display()
                ));
            }
        }
        Ok(_) => {
            return Err(format!(
                "{} exists and is not a link; remove it first if it is an old ccsfs helper",
                link.display()
            ));
        }
        Err(_) => {}
    }
    // A new link beside it, renamed over the old one: never a moment without a helper.
    let tmp = dir.join(format!(".{HELPER_NAME}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&exe, &tmp)
        .and_then(|()| std::fs::rename(&tmp, &link))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                format!(
                    "cannot create {}: {e}; it needs root: `sudo {} install-mount-helper`",
                    link.display(),
                    exe.display()
                )
            } else {
                format!("cannot create {}: {e}", link.display())
            }
        })?;
    Ok(format!("{} -> {}", link.display(), exe.display()))
}
