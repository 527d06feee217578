//! The decisions of a failover, as pure functions: which profiles a run may go on under (its
//! chain), which of them is next, how claude's command line becomes the resumed one, and
//! whether a finished headless run was refused for its account's limit.
//! No I/O: `failover` gathers the facts and acts.

use std::ffi::{OsStr, OsString};

use crate::config::Profile;
use crate::launch::decide::resolve_profile;
use crate::layout::instance_dir_name;

use super::cooling::CoolingFile;

/// One profile of a chain: its account name (for people) and instance dir name (the key of
/// the mount, the cooling file and the settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub dir: String,
}

/// The profiles a run of `start` may go on under, `start` first. `requested` is
/// `--failover a,b`; without it, `configured` (the settings' `failover:` order) supplies the
/// profiles that follow `start` in it (wrapping round) and share its group, unless
/// `no_failover`. A requested profile outside `start`'s group is refused: the session would
/// not be found there. A chain of one means no failover.
pub fn chain(
    profiles: &[Profile],
    start: &str,
    requested: Option<&[String]>,
    configured: &[String],
    no_failover: bool,
) -> Result<Vec<Link>, String> {
    let (first, first_dir) = resolve_profile(profiles, start)?;
    let mut out = vec![Link {
        name: first.name.clone(),
        dir: first_dir.clone(),
    }];
    if no_failover {
        return Ok(out);
    }
    if let Some(requested) = requested {
        let Some(group) = first.group.as_deref() else {
            return Err(format!(
                "cannot fail over from {}: it shares no context group, so its sessions would not be found under another account; put it in one with `ccsfs profile add {} --group <group>` (or `ccs auth create … --share-context`)",
                first.name, first.name
            ));
        };
        for wanted in requested.iter().filter(|w| !w.trim().is_empty()) {
            let (p, dir) = resolve_profile(profiles, wanted.trim())?;
            if p.group.as_deref() != Some(group) {
                let theirs = p
                    .group
                    .as_deref()
                    .map_or("no group".to_string(), |g| format!("group {g}"));
                return Err(format!(
                    "cannot fail over from {} to {}: {} is not in {}'s context group {group} ({theirs}), so the session would not be found there; use profiles of group {group}, or `ccsfs profile add {} --group {group}`",
                    first.name, p.name, p.name, first.name, p.name
                ));
            }
            push_unique(&mut out, &p.name, dir);
        }
        return Ok(out);
    }
    let Some(group) = first.group.as_deref() else {
        return Ok(out);
    };
    let dirs: Vec<String> = configured.iter().map(|c| instance_dir_name(c)).collect();
    let Some(at) = dirs.iter().position(|d| *d == first_dir) else {
        return Ok(out);
    };
    for dir in dirs[at + 1..].iter().chain(&dirs[..at]) {
        // Names the settings know but the config does not (any more), or of other groups,
        // are passed over: the order may span groups.
        if let Ok((p, dir)) = resolve_profile(profiles, dir)
            && p.group.as_deref() == Some(group)
        {
            push_unique(&mut out, &p.name, dir);
        }
    }
    Ok(out)
}

fn push_unique(out: &mut Vec<Link>, name: &str, dir: String) {
    if !out.iter().any(|l| l.dir == dir) {
        out.push(Link {
            name: name.to_string(),
            dir,
        });
    }
}

/// What to run under next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// The first profile of the chain that is not cooling down.
    Ready(&'a Link),
    /// Every profile is cooling down; the one that resets first, and when (unix seconds).
    AllCooling { first: &'a Link, until: i64 },
}

/// The first profile of `chain` not cooling down at `now`.
pub fn next<'a>(chain: &'a [Link], cooling: &CoolingFile, now: i64) -> Next<'a> {
    if let Some(l) = chain.iter().find(|l| cooling.active(&l.dir, now).is_none()) {
        return Next::Ready(l);
    }
    let (first, until) = chain
        .iter()
        .filter_map(|l| Some((l, cooling.active(&l.dir, now)?.until)))
        .min_by_key(|(_, u)| *u)
        .expect("a chain is never empty");
    Next::AllCooling { first, until }
}

/// Whether claude's arguments ask for a headless run (`-p`/`--print`).
pub fn is_headless(args: &[OsString]) -> bool {
    for a in args {
        let a = a.as_encoded_bytes();
        if a == b"--" {
            return false;
        }
        if a == b"-p" || a == b"--print" {
            return true;
        }
        // A cluster of short flags (`-cp`): every one of them boolean.
        if a.len() > 2
            && a[0] == b'-'
            && a[1] != b'-'
            && a[1..].iter().all(|c| b"cpvh".contains(c))
            && a.contains(&b'p')
        {
            return true;
        }
    }
    false
}

/// claude's options that take one value (`--model x`, `--model=x`).
const ONE_VALUE: &[&str] = &[
    "--agent",
    "--agents",
    "--append-system-prompt",
    "--append-system-prompt-file",
    "--debug-file",
    "--effort",
    "--fallback-model",
    "--input-format",
    "--json-schema",
    "--max-budget-usd",
    "--max-turns",
    "--model",
    "-n",
    "--name",
    "--output-format",
    "--permission-mode",
    "--permission-prompt-tool",
    "--plugin-dir",
    "--plugin-url",
    "--remote-control-session-name-prefix",
    "--session-id",
    "--setting-sources",
    "--settings",
    "--system-prompt",
    "--system-prompt-file",
];
/// Options that take every following argument up to the next option.
const MANY_VALUES: &[&str] = &[
    "--add-dir",
    "--allowedTools",
    "--allowed-tools",
    "--betas",
    "--disallowedTools",
    "--disallowed-tools",
    "--file",
    "--mcp-config",
    "--tools",
];
/// Options whose value is optional (taken when the next argument is not an option).
const MAYBE_VALUE: &[&str] = &[
    "-d",
    "--debug",
    "--from-pr",
    "--prompt-suggestions",
    "--remote-control",
    "-r",
    "--resume",
    "-w",
    "--worktree",
];
/// Options that pick the session (dropped from a resumed run, which names its own).
const SESSION_PICKERS: &[&str] = &[
    "-c",
    "--continue",
    "-r",
    "--resume",
    "--session-id",
    "--fork-session",
    "--from-pr",
];

/// One parsed piece of claude's command line.
#[derive(Debug)]
struct Piece {
    /// The option (or the positional argument) and the values it took.
    args: Vec<OsString>,
    option: Option<String>,
}

fn parse_pieces(args: &[OsString]) -> Vec<Piece> {
    let is_opt = |a: &OsStr| a.as_encoded_bytes().first() == Some(&b'-') && a.len() > 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let text = a.to_string_lossy();
        if text == "--" {
            // Everything after is positional.
            for rest in &args[i..] {
                out.push(Piece {
                    args: vec![rest.clone()],
                    option: None,
                });
            }
            break;
        }
        if !is_opt(a) {
            out.push(Piece {
                args: vec![a.clone()],
                option: None,
            });
            i += 1;
            continue;
        }
        let (name, inline) = match text.split_once('=') {
            Some((n, _)) if n.starts_with("--") => (n.to_string(), true),
            _ => (text.to_string(), false),
        };
        let mut piece = Piece {
            args: vec![a.clone()],
            option: Some(name.clone()),
        };
        i += 1;
        if !inline {
            if ONE_VALUE.contains(&name.as_str()) {
                if i < args.len() {
                    piece.args.push(args[i].clone());
                    i += 1;
                }
            } else if MANY_VALUES.contains(&name.as_str()) {
                while i < args.len() && !is_opt(&args[i]) {
                    piece.args.push(args[i].clone());
                    i += 1;
                }
            } else if MAYBE_VALUE.contains(&name.as_str()) && i < args.len() && !is_opt(&args[i]) {
                piece.args.push(args[i].clone());
                i += 1;
            }
        }
        out.push(piece);
    }
    out
}

/// The command line of the run that goes on with `session`: `--resume <session>` first, the
/// original options and arguments minus those that pick a session (`-c`, `-r`, `--session-id`,
/// `--fork-session`, `--from-pr`). A headless run keeps its prompt (the turn is re-run with
/// the same words and stdin); an interactive one (`retry` is the refused turn's prompt) has
/// its starting prompt, which is already in the session, replaced by `retry`, so that the
/// refused turn is asked again.
pub fn resume_args(original: &[OsString], session: &str, retry: Option<&str>) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec!["--resume".into(), session.into()];
    let mut after_dashes = false;
    for piece in parse_pieces(original) {
        match &piece.option {
            Some(o) if SESSION_PICKERS.contains(&o.as_str()) => continue,
            Some(_) => out.extend(piece.args),
            None => {
                if piece.args[0] == "--" {
                    after_dashes = true;
                    if retry.is_some() {
                        continue;
                    }
                }
                if retry.is_none() {
                    out.extend(piece.args);
                } else if after_dashes {
                    // Positional words after `--` are the starting prompt too.
                    continue;
                }
            }
        }
    }
    if let Some(prompt) = retry.filter(|p| !p.trim().is_empty()) {
        out.push("--".into());
        out.push(prompt.into());
    }
    out
}

/// A headless run's result, as `--output-format json` (or the last line of `stream-json`)
/// prints it: the session and Claude's message when the API refused it with 429.
pub fn refused_in_output(stdout: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let v: serde_json::Value = serde_json::from_str(last.trim()).ok()?;
    if v.get("api_error_status").and_then(|s| s.as_i64()) != Some(429) {
        return None;
    }
    let session = v.get("session_id")?.as_str()?.to_string();
    let message = v
        .get("result")
        .and_then(|r| r.as_str())
        .unwrap_or("rate limited")
        .to_string();
    Some((session, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::cooling::Cooling;

    fn profiles() -> Vec<Profile> {
        vec![
            Profile::for_test("work", Some("g"), false),
            Profile::for_test("Personal", Some("g"), true),
            Profile::for_test("spare", Some("g"), false),
            Profile::for_test("other", Some("h"), false),
            Profile::for_test("solo", None, false),
        ]
    }

    fn dirs(c: &[Link]) -> Vec<&str> {
        c.iter().map(|l| l.dir.as_str()).collect()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn requested_chain_in_group() {
        let p = profiles();
        let c = chain(
            &p,
            "work",
            Some(&s(&["personal", "spare", "work", "Personal"])),
            &[],
            false,
        )
        .unwrap();
        assert_eq!(dirs(&c), ["work", "personal", "spare"]);
        assert_eq!(c[1].name, "Personal");
    }

    #[test]
    fn requested_outside_group_refused() {
        let p = profiles();
        let e = chain(&p, "work", Some(&s(&["solo"])), &[], false).unwrap_err();
        assert!(
            e.contains("solo is not in work's context group g (no group)"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let e = chain(&p, "work", Some(&s(&["other"])), &[], false).unwrap_err();
        assert!(
            e.contains("(group h)") && e.contains("would not be found"),
            "{e}"
        );
        let e = chain(&p, "solo", Some(&s(&["work"])), &[], false).unwrap_err();
        assert!(e.contains("shares no context group"), "{e}");
        let e = chain(&p, "work", Some(&s(&["nobody"])), &[], false).unwrap_err();
        assert!(e.contains("unknown profile `nobody`"), "{e}");
    }

    #[test]
    fn configured_order_rotates_and_filters() {
        let p = profiles();
        let order = s(&["other", "spare", "solo", "work", "ghost", "Personal"]);
        let c = chain(&p, "work", None, &order, false).unwrap();
        assert_eq!(dirs(&c), ["work", "personal", "spare"]);
        let c = chain(&p, "spare", None, &order, false).unwrap();
        assert_eq!(dirs(&c), ["spare", "work", "personal"]);
        // Not in the order, or asked not to: no failover.
        assert_eq!(
            dirs(&chain(&p, "work", None, &s(&["spare"]), false).unwrap()),
            ["work"]
        );
        assert_eq!(
            dirs(&chain(&p, "work", None, &order, true).unwrap()),
            ["work"]
        );
        assert_eq!(
            dirs(&chain(&p, "solo", None, &order, false).unwrap()),
            ["solo"]
        );
    }

    #[test]
    fn next_skips_cooling() {
        let p = profiles();
        let c = chain(&p, "work", Some(&s(&["personal", "spare"])), &[], false).unwrap();
        let mut cool = CoolingFile::default();
        assert_eq!(next(&c, &cool, 100), Next::Ready(&c[0]));
        let entry = |until| Cooling {
            until,
            since: 0,
            message: String::new(),
            reset_from_message: true,
            session: None,
        };
        cool.profiles.insert("work".into(), entry(500));
        cool.profiles.insert("personal".into(), entry(300));
        assert_eq!(next(&c, &cool, 100), Next::Ready(&c[2]));
        cool.profiles.insert("spare".into(), entry(400));
        assert_eq!(
            next(&c, &cool, 100),
            Next::AllCooling {
                first: &c[1],
                until: 300
            }
        );
        // Past its reset, a profile is ready again.
        assert_eq!(next(&c, &cool, 350), Next::Ready(&c[1]));
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn headless() {
        assert!(is_headless(&os(&["-p", "hi"])));
        assert!(is_headless(&os(&["--model", "x", "--print"])));
        assert!(is_headless(&os(&["-cp", "hi"])));
        assert!(!is_headless(&os(&["hi", "-x"])));
        assert!(!is_headless(&os(&["--", "-p"])));
        assert!(!is_headless(&os(&["--resume"])));
    }

    #[test]
    fn resumed_headless_keeps_everything_but_the_session_pickers() {
        let a = os(&[
            "-c",
            "-p",
            "q1",
            "--output-format",
            "json",
            "--model",
            "-weird",
            "--fork-session",
        ]);
        assert_eq!(
            resume_args(&a, "S", None),
            os(&[
                "--resume",
                "S",
                "-p",
                "q1",
                "--output-format",
                "json",
                "--model",
                "-weird"
            ])
        );
        let a = os(&["--resume", "OLD", "-p", "--", "q1"]);
        assert_eq!(
            resume_args(&a, "S", None),
            os(&["--resume", "S", "-p", "--", "q1"])
        );
        let a = os(&["-p", "--session-id=abc", "--resume=OLD", "q"]);
        assert_eq!(
            resume_args(&a, "S", None),
            os(&["--resume", "S", "-p", "q"])
        );
        // A bare --resume (the picker) takes no value when an option follows.
        let a = os(&["--resume", "--model", "m", "-p", "q"]);
        assert_eq!(
            resume_args(&a, "S", None),
            os(&["--resume", "S", "--model", "m", "-p", "q"])
        );
    }

    #[test]
    fn resumed_interactive_asks_the_refused_turn_again() {
        let a = os(&["--model", "opus", "start here", "--add-dir", "a", "b"]);
        assert_eq!(
            resume_args(&a, "S", Some("the refused turn")),
            os(&[
                "--resume",
                "S",
                "--model",
                "opus",
                "--add-dir",
                "a",
                "b",
                "--",
                "the refused turn"
            ])
        );
        let a = os(&["-c", "--", "-starts with a dash"]);
        assert_eq!(
            resume_args(&a, "S", Some("-x")),
            os(&["--resume", "S", "--", "-x"])
        );
        assert_eq!(
            resume_args(&os(&[]), "S", Some("  ")),
            os(&["--resume", "S"])
        );
    }

    #[test]
    fn refused_output() {
        let out = r#"{"type":"result","is_error":true,"api_error_status":429,"result":"You've hit your session limit · resets 5am (UTC)","session_id":"abc"}
"#.as_bytes();
        assert_eq!(
            refused_in_output(out),
            Some((
                "abc".into(),
                "You've hit your session limit · resets 5am (UTC)".into()
            ))
        );
        let stream = b"{\"type\":\"system\"}\n{\"type\":\"result\",\"api_error_status\":429,\"session_id\":\"x\"}\n\n";
        assert_eq!(refused_in_output(stream).unwrap().0, "x");
        assert_eq!(
            refused_in_output(br#"{"api_error_status":500,"session_id":"x"}"#),
            None
        );
        assert_eq!(refused_in_output(b"API Error: 429"), None);
        assert_eq!(refused_in_output(b""), None);
    }
}
