//! The decisions of a launch, as pure functions: whether a `CLAUDE_CONFIG_DIR` is a CCS
//! instance (and so is served as `<mount>/<dir>`) or passes through, which `claude` is the real
//! one, which profile a name on the command line means, and how `ccsfs env` prints a path.
//! No I/O: the callers in `launch` gather the facts (canonical paths, file probes) and act.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::Profile;

/// The variable that names the real claude, ahead of PATH.
pub const CLAUDE_ENV: &str = "CCSFS_CLAUDE";

/// What the shim does with the `CLAUDE_CONFIG_DIR` it was started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Not an instance of this CCS dir (another dir, or none): run claude with the environment
    /// unchanged.
    PassThrough,
    /// `<ccs>/instances/<dir>`: run claude with `CLAUDE_CONFIG_DIR=<mount>/<dir>`.
    Mount { dir: OsString },
}

/// The instance dir name when `path` is `<instances>/<name>` (both already resolved). Entries
/// that no account has are not instances: hidden ones (CCS's `.locks`) and the `<name>.lock`
/// dirs that Claude's proper-lockfile makes beside a config dir. Any other entry counts, also
/// one the mount does not serve: that one must fail at the mount, never run on the instance.
pub fn instance_dir(path: &Path, instances: &Path) -> Option<OsString> {
    if path.parent()? != instances {
        return None;
    }
    let name = path.file_name()?;
    let bytes = name.as_bytes();
    if bytes.starts_with(b".") || bytes.ends_with(b".lock") {
        return None;
    }
    Some(name.to_os_string())
}

/// Decides a launch from the config dir's resolved forms (its canonical parent joined with its
/// last name, so an instance that is itself a symlink still counts; then its fully canonical
/// path, so a link elsewhere that leads to an instance counts too) and the canonical
/// `<ccs>/instances` (None when it does not exist, so nothing can be an instance).
pub fn classify(resolved: &[PathBuf], instances: Option<&Path>) -> Launch {
    let Some(instances) = instances else {
        return Launch::PassThrough;
    };
    resolved
        .iter()
        .find_map(|p| instance_dir(p, instances))
        .map_or(Launch::PassThrough, |dir| Launch::Mount { dir })
}

/// The facts about one candidate for the real claude.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// As found (`$CCSFS_CLAUDE`, or `<PATH entry>/claude`).
    pub path: PathBuf,
    /// Its canonical path, when it exists.
    pub canonical: Option<PathBuf>,
    /// A regular file with an execute bit for us.
    pub executable: bool,
    /// Its first lines carry the ccsfs shim marker (any CCS dir's shim, or a copy of one).
    pub is_shim: bool,
}

impl Candidate {
    fn is_the_shim(&self, own_shim: Option<&Path>) -> bool {
        self.is_shim || (own_shim.is_some() && self.canonical.as_deref() == own_shim)
    }
}

/// The real claude: `$CCSFS_CLAUDE` when set (refused if it is not executable or is a shim,
/// since exec'ing the shim from the shim would loop), else the first executable `claude` on
/// PATH that is neither this CCS dir's shim (`own_shim`, canonical) nor any other ccsfs shim.
pub fn pick_claude(
    from_env: Option<&Candidate>,
    on_path: &[Candidate],
    own_shim: Option<&Path>,
) -> Result<PathBuf, String> {
    if let Some(c) = from_env {
        let shown = c.path.display();
        if c.is_the_shim(own_shim) {
            return Err(format!(
                "{CLAUDE_ENV}={shown} is the ccsfs shim itself; set {CLAUDE_ENV} to the real claude (e.g. the npm one)"
            ));
        }
        if !c.executable {
            return Err(format!(
                "{CLAUDE_ENV}={shown} is not an executable file; set {CLAUDE_ENV} to the real claude's path, or unset it to use PATH"
            ));
        }
        return Ok(c.path.clone());
    }
    on_path
        .iter()
        .find(|c| c.executable && !c.is_the_shim(own_shim))
        .map(|c| c.path.clone())
        .ok_or_else(|| {
            format!(
                "no real `claude` on PATH (the ccsfs shim does not count); install Claude Code (`npm install -g @anthropic-ai/claude-code`) or set {CLAUDE_ENV} to its path"
            )
        })
}

/// The profile `wanted` names, by account name (exactly) or by instance dir name, and that
/// profile's instance dir name (the name it has in the mount).
pub fn resolve_profile<'a>(
    profiles: &'a [Profile],
    wanted: &str,
) -> Result<(&'a Profile, String), String> {
    let by = |f: &dyn Fn(&Profile) -> bool| profiles.iter().find(|p| f(p));
    let found = by(&|p| p.name == wanted)
        .or_else(|| by(&|p| crate::layout::instance_dir_name(&p.name) == wanted))
        .or_else(|| {
            by(&|p| {
                crate::layout::instance_dir_name(&p.name)
                    == crate::layout::instance_dir_name(wanted)
            })
        });
    match found {
        Some(p) => Ok((p, crate::layout::instance_dir_name(&p.name))),
        None => {
            let known: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
            let known = if known.is_empty() {
                "there are none yet".to_string()
            } else {
                format!("known: {}", known.join(", "))
            };
            Err(format!(
                "unknown profile `{wanted}` ({known}); create it with `ccs auth create {wanted}` or `ccsfs profile add {wanted}`"
            ))
        }
    }
}

/// The command-line arguments of `ccsfs shim-exec`: everything after one leading `--`, which
/// the shim always writes so that no argument of claude's can look like one of ccsfs's.
pub fn shim_args(args: &[OsString]) -> &[OsString] {
    match args.first() {
        Some(first) if first == "--" => &args[1..],
        _ => args,
    }
}

/// `s` quoted for a POSIX shell: bare when every byte is plainly safe, else in single quotes
/// with each `'` written as `'\''`.
pub fn shell_quote(s: &OsStr) -> Vec<u8> {
    let b = s.as_bytes();
    let safe = |c: &u8| c.is_ascii_alphanumeric() || b"_-./:@%+=,".contains(c);
    if !b.is_empty() && b.iter().all(safe) && b[0] != b'=' {
        return b.to_vec();
    }
    let mut out = Vec::with_capacity(b.len() + 2);
    out.push(b'\'');
    for &c in b {
        if c == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(c);
        }
    }
    out.push(b'\'');
    out
}

/// `ccsfs env`: the export line for a shell.
pub fn export_line(config_dir: &Path) -> Vec<u8> {
    let mut out = b"export CLAUDE_CONFIG_DIR=".to_vec();
    out.extend(shell_quote(config_dir.as_os_str()));
    out.push(b'\n');
    out
}

/// `ccsfs env --json`: the object for an IDE's environment settings.
pub fn env_json(config_dir: &Path) -> Result<String, String> {
    let dir = config_dir.to_str().ok_or_else(|| {
        format!(
            "{} is not valid UTF-8, so JSON cannot carry it; use the shell form (`ccsfs env` without --json)",
            config_dir.display()
        )
    })?;
    let value = serde_json::to_string(dir).map_err(|e| e.to_string())?;
    Ok(format!("{{\"CLAUDE_CONFIG_DIR\": {value}}}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Profile;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    const INST: &str = "/h/.ccs/instances";

    #[test]
    fn an_instance_maps_to_its_dir_name() {
        assert_eq!(
            instance_dir(&p("/h/.ccs/instances/work"), &p(INST)),
            Some(OsString::from("work"))
        );
        assert_eq!(
            classify(&[p("/h/.ccs/instances/work")], Some(&p(INST))),
            Launch::Mount { dir: "work".into() }
        );
    }

    #[test]
    fn anything_else_passes_through() {
        for other in [
            "/h/.ccs/instances",
            "/h/.ccs/instances/work/projects",
            "/h/.ccs/mnt/work",
            "/h/.claude",
            "/h/.ccs/instances/.locks",
            "/h/.ccs/instances/work.lock",
            "/other/instances/work",
            "/",
        ] {
            assert_eq!(
                classify(&[p(other)], Some(&p(INST))),
                Launch::PassThrough,
                "{other}"
            );
        }
        assert_eq!(classify(&[], Some(&p(INST))), Launch::PassThrough);
        assert_eq!(
            classify(&[p("/h/.ccs/instances/work")], None),
            Launch::PassThrough,
            "no instances dir, no instance"
        );
    }

    #[test]
    fn either_resolved_form_may_name_the_instance() {
        // A link ~/w -> ~/.ccs/instances/work: its parent is ~, its canonical form matches.
        assert_eq!(
            classify(&[p("/h/w"), p("/h/.ccs/instances/work")], Some(&p(INST))),
            Launch::Mount { dir: "work".into() }
        );
        // An instance that is itself a link elsewhere: the parent form matches.
        assert_eq!(
            classify(
                &[p("/h/.ccs/instances/work"), p("/data/work")],
                Some(&p(INST))
            ),
            Launch::Mount { dir: "work".into() }
        );
    }

    fn cand(path: &str, executable: bool, is_shim: bool) -> Candidate {
        Candidate {
            path: p(path),
            canonical: Some(p(path)),
            executable,
            is_shim,
        }
    }

    #[test]
    fn path_lookup_skips_shims_and_non_executables() {
        let shim = p("/h/.ccs/ccsfs/bin/claude");
        let path = [
            cand("/h/.ccs/ccsfs/bin/claude", true, false), // own shim, by canonical path
            cand("/h/bin/claude", true, true),             // another ccsfs shim, by marker
            cand("/usr/local/bin/claude", false, false),   // not executable
            cand("/usr/bin/claude", true, false),
            cand("/opt/claude", true, false),
        ];
        assert_eq!(
            pick_claude(None, &path, Some(&shim)).unwrap(),
            p("/usr/bin/claude")
        );
        let err = pick_claude(None, &path[..3], Some(&shim)).unwrap_err();
        assert!(
            err.contains(CLAUDE_ENV) && err.contains("npm install"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn a_link_to_the_shim_is_the_shim() {
        let shim = p("/h/.ccs/ccsfs/bin/claude");
        let link = Candidate {
            path: p("/h/bin/claude"),
            canonical: Some(shim.clone()),
            executable: true,
            is_shim: false,
        };
        assert!(pick_claude(None, &[link], Some(&shim)).is_err());
    }

    #[test]
    fn the_env_variable_wins_but_never_names_a_shim() {
        let path = [cand("/usr/bin/claude", true, false)];
        let env = cand("/opt/real/claude", true, false);
        assert_eq!(
            pick_claude(Some(&env), &path, None).unwrap(),
            p("/opt/real/claude")
        );
        let shim = cand("/h/.ccs/ccsfs/bin/claude", true, true);
        let err = pick_claude(Some(&shim), &path, None).unwrap_err();
        assert!(err.contains("shim"), "{err}");
        let missing = Candidate {
            path: p("/nope/claude"),
            canonical: None,
            executable: false,
            is_shim: false,
        };
        let err = pick_claude(Some(&missing), &path, None).unwrap_err();
        assert!(err.contains("not an executable") && err.contains(CLAUDE_ENV));
    }

    #[test]
    fn profiles_resolve_by_account_or_dir_name() {
        let profiles = vec![Profile::isolated("Delta"), Profile::isolated("work")];
        let (pr, dir) = resolve_profile(&profiles, "Delta").unwrap();
        assert_eq!((pr.name.as_str(), dir.as_str()), ("Delta", "delta"));
        let (pr, dir) = resolve_profile(&profiles, "delta").unwrap();
        assert_eq!((pr.name.as_str(), dir.as_str()), ("Delta", "delta"));
        let (pr, _) = resolve_profile(&profiles, "WORK").unwrap();
        assert_eq!(pr.name, "work");
        let err = resolve_profile(&profiles, "nope").unwrap_err();
        assert!(
            err.contains("ccs auth create nope")
                && err.contains("ccsfs profile add nope")
                && err.contains("Delta, work"),
            "{err}"
        );
        let err = resolve_profile(&[], "x").unwrap_err();
        assert!(err.contains("none yet"), "{err}");
    }

    #[test]
    fn exactly_one_leading_separator_is_dropped() {
        let v = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(shim_args(&v(&["--", "-p", "--"])), &v(&["-p", "--"])[..]);
        assert_eq!(shim_args(&v(&["--", "--"])), &v(&["--"])[..]);
        assert_eq!(shim_args(&v(&["-p"])), &v(&["-p"])[..]);
        assert!(shim_args(&v(&["--"])).is_empty());
        assert!(shim_args(&[]).is_empty());
    }

    #[test]
    fn shell_quoting_is_bare_or_single_quoted() {
        assert_eq!(
            shell_quote(OsStr::new("/h/.ccs/mnt/work")),
            b"/h/.ccs/mnt/work"
        );
        assert_eq!(shell_quote(OsStr::new("")), b"''");
        assert_eq!(shell_quote(OsStr::new("a b")), b"'a b'");
        assert_eq!(shell_quote(OsStr::new("it's")), b"'it'\\''s'");
        assert_eq!(shell_quote(OsStr::new("~x")), b"'~x'");
        assert_eq!(shell_quote(OsStr::new("$HOME")), b"'$HOME'");
        assert_eq!(
            export_line(Path::new("/a b/mnt/w")),
            b"export CLAUDE_CONFIG_DIR='/a b/mnt/w'\n"
        );
    }

    #[test]
    fn json_form_is_one_object() {
        let text = env_json(Path::new("/h/\"q\"/mnt/w")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["CLAUDE_CONFIG_DIR"], "/h/\"q\"/mnt/w");
        assert_eq!(text.lines().count(), 1);
        let bad = Path::new(OsStr::from_bytes(b"/h/\xff"));
        assert!(env_json(bad).unwrap_err().contains("--json"));
    }
}
