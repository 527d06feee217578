//! Doctor checks of FUSE itself: `/dev/fuse` and its mode, the setuid `fusermount3` helper a
//! normal user mounts through, `user_allow_other` where a mount uses `-o allow_other`, and
//! whether kernel passthrough is available. Nothing here is repaired by `--fix` (these are
//! the system's, not ccsfs's).

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::{Ctx, Finding};

pub fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    out.push(device(ctx));
    out.push(fusermount(ctx));
    out.push(allow_other(ctx));
    out.push(passthrough(ctx));
}

fn device(ctx: &Ctx) -> Finding {
    const ID: &str = "fuse.device";
    let Ok(m) = std::fs::metadata("/dev/fuse") else {
        return Finding::fail(
            ID,
            "/dev/fuse does not exist, so nothing can mount",
            "load the module (`modprobe fuse`), or give the container the device (`--device /dev/fuse`)",
        );
    };
    let mode = m.permissions().mode() & 0o777;
    if mode & 0o666 == 0o666 {
        return Finding::ok(ID, format!("/dev/fuse is {mode:04o}"));
    }
    let fix = "as root: `chmod 0666 /dev/fuse` (what the distribution's udev rule sets)";
    // SAFETY: NUL-terminated path.
    let usable = unsafe { libc::access(c"/dev/fuse".as_ptr(), libc::R_OK | libc::W_OK) } == 0;
    if ctx.root || usable {
        Finding::warn(
            ID,
            format!("/dev/fuse is {mode:04o}: users other than root cannot mount"),
            fix,
        )
    } else {
        Finding::fail(
            ID,
            format!("/dev/fuse is {mode:04o}: you cannot open it, so you cannot mount"),
            fix,
        )
    }
}

fn fusermount(ctx: &Ctx) -> Finding {
    const ID: &str = "fuse.fusermount";
    let Some(bin) = crate::fusermount::find() else {
        return if ctx.root {
            Finding::ok(ID, "fusermount3 not found (root mounts without it)")
        } else {
            Finding::fail(
                ID,
                "fusermount3 not found: a normal user mounts through it",
                "install the fuse3 package (`sudo apt-get install fuse3`)",
            )
        };
    };
    let setuid_root = std::fs::metadata(&bin).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o4000 != 0);
    let shown = bin.display();
    match (setuid_root, ctx.root) {
        (true, _) => Finding::ok(ID, format!("{shown} (setuid root)")),
        (false, true) => Finding::ok(
            ID,
            format!("{shown} is not setuid root (root mounts without it; other users cannot)"),
        ),
        (false, false) => Finding::fail(
            ID,
            format!("{shown} is not setuid root, so it cannot mount for you"),
            "reinstall it: `sudo apt-get install --reinstall fuse3`",
        ),
    }
}

/// Whether `/etc/fuse.conf` has an uncommented `user_allow_other`.
fn user_allow_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf").is_ok_and(|t| {
        t.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .any(|l| l == "user_allow_other")
    })
}

fn allow_other(ctx: &Ctx) -> Finding {
    const ID: &str = "fuse.allow_other";
    let using: Vec<String> = ctx
        .mount_points
        .iter()
        .filter(|m| {
            crate::mount::mount_options(m)
                .is_some_and(|o| o.split(',').any(|opt| opt == "allow_other"))
        })
        .map(|m| m.display().to_string())
        .collect();
    if using.is_empty() {
        return Finding::ok(ID, "no mount uses -o allow_other");
    }
    let list = using.join(", ");
    if ctx.root {
        return Finding::ok(
            ID,
            format!("{list} uses -o allow_other (root needs no user_allow_other)"),
        );
    }
    if user_allow_other() {
        Finding::ok(
            ID,
            format!("{list} uses -o allow_other; /etc/fuse.conf has user_allow_other"),
        )
    } else {
        Finding::warn(
            ID,
            format!(
                "{list} uses -o allow_other but /etc/fuse.conf lacks user_allow_other: the next mount with it fails"
            ),
            "as root, add a line `user_allow_other` to /etc/fuse.conf",
        )
    }
}

/// (major, minor) of the running kernel.
fn kernel() -> Option<(String, (u32, u32))> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let release = release.trim().to_string();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((release, (major, minor)))
}

fn passthrough(ctx: &Ctx) -> Finding {
    const ID: &str = "fuse.passthrough";
    match kernel() {
        Some((r, v)) if v >= (6, 9) && ctx.root => {
            Finding::ok(ID, format!("kernel passthrough available (Linux {r})"))
        }
        Some((r, v)) if v >= (6, 9) => Finding::ok(
            ID,
            format!("kernel passthrough off: needs root (Linux {r})"),
        ),
        Some((r, _)) => Finding::ok(
            ID,
            format!("kernel passthrough off: needs Linux 6.9 or later (this is {r})"),
        ),
        None => Finding::ok(ID, "kernel passthrough: kernel version unknown"),
    }
}
