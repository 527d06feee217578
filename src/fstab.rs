//! The `mount.fuse.ccsfs` helper's arguments, as mount(8) passes them for an fstab line
//! `<ccs-dir> <mount-point> fuse.ccsfs <options> 0 0`:
//! `<source> <mount-point> [-s] [-f] [-n] [-v] [-o opts] [-t type]` (pure: no mount here).
//! fstab's own options are dropped, `allow_other` and `noexec` are kept, `setuid=USER` says
//! whom to run as, `ro` and anything unknown are refused with one line.

use std::ffi::{OsStr, OsString};

/// The helper's name: mount(8) runs `/sbin/mount.fuse.ccsfs` for type `fuse.ccsfs`.
pub const HELPER_NAME: &str = "mount.fuse.ccsfs";

/// One mount, as the helper's arguments ask for it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HelperMount {
    /// The CCS dir (fstab's first field).
    pub ccs_dir: OsString,
    pub mount_point: OsString,
    pub allow_other: bool,
    pub noexec: bool,
    /// Drop to this user before mounting (`setuid=USER`, for root's mount at boot).
    pub setuid: Option<String>,
    /// `-f`: mount(8)'s fake run; do everything but mount.
    pub fake: bool,
}

/// Options that only mean something to mount(8), fstab or other tools (mount(8) passes some
/// of them on), and the flags ccsfs always has (`nosuid`, `nodev`) or that are the default.
const DROPPED: &[&str] = &[
    "defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "nofail", "_netdev",
    "rw", "nosuid", "nodev", "suid", "dev", "exec",
];

fn dropped(opt: &str) -> bool {
    DROPPED.contains(&opt)
        || opt.starts_with("x-")
        || opt.starts_with("comment=")
        || opt.starts_with("user=")
}

/// Reads the helper's arguments (after argv[0]).
pub fn parse(args: &[OsString]) -> Result<HelperMount, String> {
    let usage = format!(
        "usage: {HELPER_NAME} <ccs-dir> <mount-point> [-o options]; it is run by mount(8) for a `fuse.ccsfs` fstab line"
    );
    let (Some(source), Some(target)) = (args.first(), args.get(1)) else {
        return Err(usage);
    };
    if source.is_empty() || target.is_empty() || source.as_encoded_bytes().starts_with(b"-") {
        return Err(usage);
    }
    if !source.as_encoded_bytes().starts_with(b"/") {
        return Err(format!(
            "the fstab line's first field must be the CCS dir as an absolute path (like /home/me/.ccs), not {}",
            source.display()
        ));
    }
    let mut m = HelperMount {
        ccs_dir: source.clone(),
        mount_point: target.clone(),
        ..HelperMount::default()
    };
    let mut rest = args[2..].iter();
    while let Some(arg) = rest.next() {
        let arg = text(arg)?;
        match arg {
            "-s" | "-n" | "-v" | "-w" => {}
            "-f" => m.fake = true,
            "-r" => return Err(read_only()),
            "-o" => options(&mut m, text(rest.next().ok_or("-o needs options")?)?)?,
            "-t" => {
                let t = text(rest.next().ok_or("-t needs a type")?)?;
                if !matches!(t, "fuse.ccsfs" | "ccsfs") {
                    return Err(format!(
                        "{HELPER_NAME} mounts type fuse.ccsfs, not {t}; fix the fstab line's type"
                    ));
                }
            }
            a if a.starts_with("-o") => options(&mut m, &a[2..])?,
            a => {
                return Err(format!(
                    "unsupported argument `{a}` to {HELPER_NAME}; {usage}"
                ));
            }
        }
    }
    Ok(m)
}

fn text(arg: &OsStr) -> Result<&str, String> {
    arg.to_str()
        .ok_or_else(|| format!("argument {arg:?} is not UTF-8; fix the fstab line"))
}

fn read_only() -> String {
    "ccsfs serves read-write only (Claude writes its config dir); remove `ro` from the fstab options"
        .into()
}

fn options(m: &mut HelperMount, list: &str) -> Result<(), String> {
    for opt in list.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "allow_other" => m.allow_other = true,
            "noexec" => m.noexec = true,
            "exec" => m.noexec = false,
            "ro" => return Err(read_only()),
            o if o.starts_with("setuid=") => {
                let user = &o["setuid=".len()..];
                if user.is_empty() {
                    return Err(
                        "setuid= needs a user name (setuid=alice); fix the fstab line".into(),
                    );
                }
                m.setuid = Some(user.to_string());
            }
            o if dropped(o) => {}
            o => {
                return Err(format!(
                    "unknown mount option `{o}` for ccsfs; it takes allow_other, noexec and setuid=USER (plus fstab's defaults, noauto, user, nofail, _netdev, x-*)"
                ));
            }
        }
    }
    Ok(())
}

impl HelperMount {
    /// The `ccsfs` arguments (after the program name) that make this mount.
    pub fn ccsfs_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--ccs-dir".into(),
            self.ccs_dir.clone(),
            "mount".into(),
            self.mount_point.clone(),
        ];
        let opts: Vec<&str> = [(self.allow_other, "allow_other"), (self.noexec, "noexec")]
            .into_iter()
            .filter_map(|(on, o)| on.then_some(o))
            .collect();
        if !opts.is_empty() {
            args.push("-o".into());
            args.push(opts.join(",").into());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<HelperMount, String> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn a_user_line_as_mount_passes_it() {
        // What util-linux passes for `defaults,noauto,user,allow_other` mounted by a user.
        let m = p(&[
            "/h/.ccs",
            "/h/.ccs/mnt",
            "-o",
            "rw,noexec,nosuid,nodev,allow_other,user",
        ])
        .unwrap();
        assert_eq!(m.ccs_dir, "/h/.ccs");
        assert_eq!(m.mount_point, "/h/.ccs/mnt");
        assert!(m.allow_other && m.noexec && m.setuid.is_none() && !m.fake);
        assert_eq!(
            m.ccsfs_args(),
            [
                "--ccs-dir",
                "/h/.ccs",
                "mount",
                "/h/.ccs/mnt",
                "-o",
                "allow_other,noexec"
            ]
            .map(OsString::from)
        );
    }

    #[test]
    fn fstab_only_options_are_dropped() {
        let m = p(&[
            "/c", "/m", "-s", "-n", "-v", "-o",
            "defaults,auto,noauto,user,users,nouser,owner,nofail,_netdev,x-systemd.automount,comment=x,user=bob,rw,exec",
        ])
        .unwrap();
        assert_eq!(
            m.ccsfs_args(),
            ["--ccs-dir", "/c", "mount", "/m"].map(OsString::from)
        );
    }

    #[test]
    fn setuid_fake_and_type() {
        let m = p(&["/c", "/m", "-f", "-o", "setuid=alice", "-t", "fuse.ccsfs"]).unwrap();
        assert_eq!(m.setuid.as_deref(), Some("alice"));
        assert!(m.fake);
        assert!(p(&["/c", "/m", "-oallow_other"]).unwrap().allow_other);
        // Later options win, as in mount(8): `user,exec` undoes user's noexec.
        assert!(!p(&["/c", "/m", "-o", "noexec,exec"]).unwrap().noexec);
    }

    #[test]
    fn refusals_are_one_line_naming_the_option() {
        for (args, needle) in [
            (&["/c", "/m", "-o", "rw,bogus=1"][..], "`bogus=1`"),
            (&["/c", "/m", "-o", "ro"], "remove `ro`"),
            (&["/c", "/m", "-r"], "remove `ro`"),
            (&["/c", "/m", "-o", "setuid="], "setuid= needs"),
            (&["/c", "/m", "-t", "fuse.sshfs"], "not fuse.sshfs"),
            (&["/c", "/m", "-N", "/proc/1/ns/mnt"], "`-N`"),
            (&["/c"], "usage"),
            (&["ccsfs", "/m"], "absolute path"),
            (&["-o", "x", "/m"], "usage"),
        ] {
            let e = p(args).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
