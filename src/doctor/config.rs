//! Doctor checks of `config.yaml`: that it loads, that it has the numeric top-level `version`
//! CCS requires, that no two accounts share an instance dir and no instance dir is
//! capitalised (CCS lowercases them), and, when the real `ccs` is on PATH, that
//! `ccs auth list --json` reads the same accounts and modes. `--fix` only adds a missing
//! `version` (as `ccsfs profile add` does, under CCS's lock).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Ctx, Finding};
use crate::config::{self as cfg, Profile};
use crate::layout::instance_dir_name;

/// How long `ccs auth list --json` may take.
const CCS_LIMIT: Duration = Duration::from_secs(10);

pub fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let path = ctx.layout.config_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            out.push(Finding::fail(
                "config",
                format!("cannot read {}: {e}", path.display()),
                "make it a readable UTF-8 file",
            ));
            return;
        }
    };
    match (&text, &ctx.profiles) {
        (_, Err(e)) => {
            out.push(Finding::fail(
                "config",
                e.clone(),
                "edit config.yaml as the message says (CCS cannot read it either)",
            ));
            return;
        }
        (None, Ok(ps)) => out.push(Finding::ok(
            "config",
            format!(
                "no config.yaml: {} isolated profile(s) from instances/",
                ps.len()
            ),
        )),
        (Some(_), Ok(ps)) => out.push(Finding::ok(
            "config",
            format!("config.yaml loads: {} profile(s)", ps.len()),
        )),
    }
    if let Some(text) = &text {
        out.push(version(ctx, text));
        out.extend(duplicates(ctx, text));
    }
    out.push(instance_dirs(ctx));
    out.push(match text {
        Some(_) => compare_with_ccs(ctx),
        None => Finding::ok("config.ccs", "no config.yaml: nothing to compare with ccs"),
    });
}

fn version(ctx: &Ctx, text: &str) -> Finding {
    const ID: &str = "config.version";
    let path = ctx.layout.config_file();
    match cfg::has_version(text, &path) {
        Ok(true) => Finding::ok(ID, "config.yaml has a numeric version"),
        Ok(false) => {
            let mut f = Finding::warn(
                ID,
                "config.yaml has no numeric top-level `version`: CCS rejects it (\"Invalid config format\")",
                format!(
                    "`ccsfs doctor --fix` adds `version: {}` (so does any `ccsfs profile add`)",
                    cfg::CCS_CONFIG_VERSION
                ),
            );
            if ctx.fix {
                match cfg::write_version(&ctx.layout.ccs_dir) {
                    Ok(_) => {
                        f.fixed = Some(format!(
                            "wrote `version: {}` into config.yaml",
                            cfg::CCS_CONFIG_VERSION
                        ))
                    }
                    Err(e) => f.message.push_str(&format!(" (--fix: {e})")),
                }
            }
            f
        }
        Err(e) => Finding::fail(ID, e.to_string(), "fix the YAML"),
    }
}

/// Accounts that CCS would put in one instance dir (`Work` and `work`): ccsfs serves the
/// first only.
fn duplicates(ctx: &Ctx, text: &str) -> Vec<Finding> {
    let Ok(Some(all)) = cfg::parse_accounts(text, &ctx.layout.config_file()) else {
        return Vec::new();
    };
    let mut by_dir: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in all {
        by_dir.entry(p.dir_name()).or_default().push(p.name);
    }
    by_dir
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(dir, names)| {
            Finding::warn(
                "config.names",
                format!(
                    "accounts {} all live in instances/{dir}; ccsfs serves only {:?}",
                    names.join(", "),
                    names[0]
                ),
                format!(
                    "rename or remove all but one (`ccs auth remove {}`)",
                    names[1]
                ),
            )
        })
        .collect()
}

/// Instance dirs whose names CCS would never make (capitals): an account's data there is
/// not where CCS and ccsfs look.
fn instance_dirs(ctx: &Ctx) -> Finding {
    const ID: &str = "config.instance_dirs";
    let dir = ctx.layout.instances_dir();
    let mut bad: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.') && !n.ends_with(".lock"))
                .filter(|n| instance_dir_name(n) != *n)
                .collect()
        })
        .unwrap_or_default();
    bad.sort();
    if bad.is_empty() {
        return Finding::ok(
            ID,
            "every instance dir is named as CCS names it (lowercase)",
        );
    }
    let list: Vec<String> = bad
        .iter()
        .map(|n| {
            format!(
                "instances/{n} (CCS uses instances/{})",
                instance_dir_name(n)
            )
        })
        .collect();
    Finding::warn(
        ID,
        format!("{}: CCS and ccsfs do not look there", list.join(", ")),
        "`ccsfs migrate` shows the move, `ccsfs migrate --apply` makes it",
    )
}

/// `ccs` on PATH, if any.
pub(super) fn ccs_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ccs"))
        .find(|p| p.is_file())
}

/// Runs `ccs auth list --json` with a time limit: its stdout, or why not.
fn ccs_auth_list(ctx: &Ctx, bin: &Path) -> Result<String, String> {
    let mut child = Command::new(bin)
        .args(["auth", "list", "--json"])
        .env("CCS_DIR", &ctx.layout.ccs_dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CCS_LIMIT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let text = reader.join().unwrap_or_default();
                return if status.success() {
                    Ok(text)
                } else {
                    Err(format!("`ccs auth list --json` exited with {status}"))
                };
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`ccs auth list --json` did not finish within {}s",
                    CCS_LIMIT.as_secs()
                ));
            }
        }
    }
}

/// One account as compared: (context mode, group when shared, continuity when shared).
fn ours(p: &Profile) -> (String, String, String) {
    if p.is_shared() {
        (
            "shared".into(),
            p.group.clone().unwrap_or_default(),
            p.continuity.as_str().to_string(),
        )
    } else {
        ("isolated".into(), String::new(), String::new())
    }
}

fn theirs(v: &serde_json::Value) -> (String, String, String) {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let mode = s("context_mode");
    let mode = if mode.is_empty() {
        "isolated".into()
    } else {
        mode
    };
    if mode == "shared" {
        let group = s("context_group");
        let cont = s("continuity_mode");
        (
            mode,
            if group.is_empty() {
                cfg::DEFAULT_GROUP.into()
            } else {
                group
            },
            if cont.is_empty() {
                "standard".into()
            } else {
                cont
            },
        )
    } else {
        (mode, String::new(), String::new())
    }
}

fn compare_with_ccs(ctx: &Ctx) -> Finding {
    const ID: &str = "config.ccs";
    let Some(bin) = ccs_on_path() else {
        return Finding::ok(ID, "ccs not on PATH: not compared");
    };
    let fix = "run `ccs auth list` and make config.yaml say what you mean (`ccsfs profile add`)";
    let text = match ccs_auth_list(ctx, &bin) {
        Ok(t) => t,
        Err(e) => return Finding::warn(ID, format!("{e}: not compared"), fix),
    };
    // CCS's first run in a new HOME prints set-up notes before the JSON.
    let json = text.find('{').map_or("", |at| &text[at..]);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Finding::warn(
            ID,
            "`ccs auth list --json` printed no JSON: not compared",
            fix,
        );
    };
    let Some(list) = v["profiles"].as_array() else {
        return Finding::warn(
            ID,
            "`ccs auth list --json` lists no profiles: not compared",
            fix,
        );
    };
    let theirs: BTreeMap<String, (String, String, String)> = list
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), theirs(p))))
        .collect();
    let ours: BTreeMap<String, (String, String, String)> = ctx
        .profiles()
        .iter()
        .map(|p| (p.name.clone(), ours(p)))
        .collect();
    let mut diffs = Vec::new();
    for (name, o) in &ours {
        match theirs.get(name) {
            None => diffs.push(format!("{name} is not in ccs's list")),
            Some(t) if t != o => diffs.push(format!(
                "{name}: ccsfs reads {}, ccs {}",
                describe(o),
                describe(t)
            )),
            Some(_) => {}
        }
    }
    for name in theirs.keys() {
        if !ours.contains_key(name) {
            diffs.push(format!("{name} is listed by ccs but not read by ccsfs"));
        }
    }
    if diffs.is_empty() {
        Finding::ok(
            ID,
            format!("ccs reads the same {} account(s) and modes", ours.len()),
        )
    } else {
        Finding::warn(
            ID,
            format!("ccs reads config.yaml differently: {}", diffs.join("; ")),
            fix,
        )
    }
}

fn describe((mode, group, cont): &(String, String, String)) -> String {
    if mode == "shared" {
        format!("shared, group {group}, {cont}")
    } else {
        mode.clone()
    }
}
