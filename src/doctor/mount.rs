//! Doctor checks of the mount: a dead mount point ("Transport endpoint is not connected"),
//! a daemon whose mount is gone, a run file left by a dead daemon, and two live daemons
//! serving one group store. Not mounted at all is fine. `--fix` clears a dead mount as
//! `ccsfs unmount` does and removes a dead daemon's run file; it never kills a process.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::{Ctx, Finding, quoted};
use crate::mount::{self, MountState};
use crate::runfile::RunFile;

/// How long a stat of a mount point may take before the mount counts as hung.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

/// What a `stat` of a mounted point says.
enum Probe {
    Answers,
    /// ENOTCONN: the daemon is gone.
    Dead,
    Other(std::io::Error),
    Hung,
}

/// `statfs` of `p` (never answered from the kernel's attribute cache, unlike `stat` of a
/// mount root), in a thread, so that a hung daemon cannot hang the doctor.
fn probe(p: &Path) -> Probe {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = p.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(mount::statfs_answer(&p));
    });
    match rx.recv_timeout(PROBE_LIMIT) {
        Ok(Ok(_)) => Probe::Answers,
        Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOTCONN) => Probe::Dead,
        Ok(Err(e)) => Probe::Other(e),
        Err(_) => Probe::Hung,
    }
}

/// Whether `pid` is a live ccsfs process (not a recycled pid now running something else).
fn daemon_alive(pid: i32) -> bool {
    if !crate::procs::pid_alive(pid) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => {
            let argv0 = raw.split(|&b| b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(argv0).contains("ccsfs")
        }
        // Hidden from us (hidepid): trust the pid.
        Err(_) => true,
    }
}

pub fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let mut live: Vec<(RunFile, PathBuf)> = Vec::new();
    for mp in &ctx.mount_points {
        let run = mount::run_file(&ctx.layout, mp);
        let alive = run.as_ref().filter(|r| daemon_alive(r.pid));
        if let Some(r) = alive {
            live.push((r.clone(), mp.clone()));
        }
        out.push(one(ctx, mp, run.as_ref(), alive.is_some()));
    }
    daemons(ctx, &live, out);
}

/// The finding for one mount point.
fn one(ctx: &Ctx, mp: &Path, run: Option<&RunFile>, alive: bool) -> Finding {
    const ID: &str = "mount";
    let shown = mp.display();
    let q = quoted(mp);
    let run_path = ctx
        .layout
        .run_file(&crate::layout::absolute_mount_point(mp));
    match mount::mount_state(mp) {
        MountState::Mounted(t) if !t.starts_with("fuse") => Finding::warn(
            ID,
            format!("{shown} is a {t} mount, not ccsfs"),
            format!("unmount it (`umount {q}`) or mount ccsfs elsewhere"),
        ),
        MountState::Mounted(_) => match probe(mp) {
            Probe::Dead => {
                let mut f = Finding::fail(
                    ID,
                    format!(
                        "{shown} is still mounted but its daemon is gone (Transport endpoint is not connected)"
                    ),
                    format!("`ccsfs unmount {q}`"),
                );
                if ctx.fix {
                    f.fixed = match mount::unmount(&ctx.layout, mp, false) {
                        Ok(()) => Some(format!("unmounted {shown} (as `ccsfs unmount` does)")),
                        Err(e) => {
                            f.message
                                .push_str(&format!(" (--fix could not unmount: {e})"));
                            None
                        }
                    };
                }
                f
            }
            Probe::Hung => Finding::fail(
                ID,
                format!(
                    "{shown} does not answer within {}s{}",
                    PROBE_LIMIT.as_secs(),
                    run.map(|r| format!(" (daemon pid {})", r.pid))
                        .unwrap_or_default()
                ),
                format!("`ccsfs unmount --lazy {q}`, then kill the daemon"),
            ),
            Probe::Other(e) => Finding::fail(
                ID,
                format!("{shown} is mounted but cannot be used: {e}"),
                format!("`ccsfs unmount {q}`, then `ccsfs mount`"),
            ),
            Probe::Answers => match run {
                Some(r) if alive => {
                    Finding::ok(ID, format!("{shown} mounted, daemon pid {}", r.pid))
                }
                _ => Finding::warn(
                    ID,
                    format!(
                        "{shown} is a FUSE mount with no live ccsfs daemon on record here (another CCS dir's?)"
                    ),
                    format!("`ccsfs unmount {q}`, then `ccsfs mount`"),
                ),
            },
        },
        MountState::NotMounted => match run {
            Some(r) if alive => Finding::fail(
                ID,
                format!(
                    "daemon pid {} serves {shown}, but {shown} is not mounted",
                    r.pid
                ),
                format!("`kill {}`, then `ccsfs mount`", r.pid),
            ),
            Some(r) => {
                let mut f = Finding::warn(
                    ID,
                    format!(
                        "{shown}: not mounted; its run file names daemon pid {}, which is gone",
                        r.pid
                    ),
                    format!("`rm {}` (or `ccsfs doctor --fix`)", quoted(&run_path)),
                );
                if ctx.fix {
                    f.fixed = match std::fs::remove_file(&run_path) {
                        Ok(()) => Some(format!("removed {}", run_path.display())),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            Some(format!("{} is gone already", run_path.display()))
                        }
                        Err(e) => {
                            f.message
                                .push_str(&format!(" (--fix could not remove it: {e})"));
                            None
                        }
                    };
                }
                f
            }
            None => Finding::ok(ID, format!("{shown}: not mounted; `ccsfs mount` mounts it")),
        },
    }
}

/// The group (name) a served route's store belongs to.
fn group_of(ctx: &Ctx, target: &str) -> Option<String> {
    let groups = ctx.layout.ccs_dir.join("shared").join("context-groups");
    match Path::new(target)
        .strip_prefix(&groups)
        .ok()?
        .components()
        .next()?
    {
        Component::Normal(g) => Some(g.to_string_lossy().into_owned()),
        _ => None,
    }
}

/// Two live daemons serving one group store.
fn daemons(ctx: &Ctx, live: &[(RunFile, PathBuf)], out: &mut Vec<Finding>) {
    const ID: &str = "mount.daemons";
    let mut by_group: BTreeMap<String, Vec<(i32, &Path)>> = BTreeMap::new();
    for (r, mp) in live {
        for s in &r.served {
            for (_, target) in &s.routes {
                if let Some(g) = group_of(ctx, target) {
                    let v = by_group.entry(g).or_default();
                    if !v.iter().any(|(pid, _)| *pid == r.pid) {
                        v.push((r.pid, mp));
                    }
                }
            }
        }
    }
    let mut any = false;
    for (g, v) in &by_group {
        if v.len() < 2 {
            continue;
        }
        any = true;
        let list: Vec<String> = v
            .iter()
            .map(|(pid, mp)| format!("pid {pid} on {}", mp.display()))
            .collect();
        out.push(Finding::warn(
            ID,
            format!(
                "{} daemons serve group store {g} ({}): a lock owner could write through both",
                v.len(),
                list.join(", ")
            ),
            format!("keep one: `ccsfs unmount {}`", quoted(v[v.len() - 1].1)),
        ));
    }
    if !any {
        let n = live.len();
        out.push(Finding::ok(
            ID,
            match n {
                0 => "no daemon running".to_string(),
                1 => "one daemon running".to_string(),
                _ => format!("{n} daemons, no group store served twice"),
            },
        ));
    }
}
