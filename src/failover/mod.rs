//! Failover for `ccsfs run`: when the running claude is refused for its account's limit, the
//! same session goes on under the next profile of the group that is not cooling down
//! (`claude --resume <session>` in the same working dir and terminal).
//!
//! Without a chain (`--failover`, or the settings' `failover:` order), `run` execs the command
//! as before. With one, it supervises: the command runs as a child with `CLAUDE_CONFIG_DIR`
//! in the mount; a headless run (`-p`) is judged when it exits (its JSON's
//! `api_error_status: 429`, else its transcript), its stdout held back so the caller sees
//! one answer, and its stdin replayed to the retry; an interactive run is watched through its
//! transcript (`watch`) and ended when the refusal appears, then resumed under the next
//! profile with the refused prompt. The old process is reaped before the next starts, so the
//! single-writer lock passes to it without a refusal. Decisions are in `plan`, reset times in
//! `reset`, the cool-down record in `cooling`.

mod child;
pub mod cooling;
pub mod plan;
mod replay;
pub mod reset;
pub mod watch;

use std::ffi::{OsStr, OsString};
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::config;
use crate::launch;
use crate::layout::Layout;
use crate::settings;
use cooling::Cooling;
use plan::{Link, Next};
use watch::{LimitHit, Watch};

/// How often a running claude's transcripts are looked at.
const POLL: Duration = Duration::from_millis(50);

/// `ccsfs run PROFILE [--failover a,b] [--no-failover] CMD…`. Returns the exit status to
/// exit with (a run without failover execs and does not return unless exec fails).
pub fn run(
    layout: &Layout,
    start: &str,
    requested: Option<&[String]>,
    no_failover: bool,
    cmd: &[OsString],
) -> Result<i32, String> {
    let (program, args) = cmd
        .split_first()
        .ok_or("no command given; usage: ccsfs run <profile> [--failover p1,p2] [--] <cmd>...")?;
    let profiles = config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string())?;
    let settings = settings::load(&layout.ccs_dir)?.failover;
    let chain = plan::chain(&profiles, start, requested, &settings.order, no_failover)?;
    let now = Timestamp::now().as_second();
    if chain.len() == 1 {
        if let Some(c) = cooling::load(&layout.ccs_dir).active(&chain[0].dir, now) {
            eprintln!(
                "ccsfs: note: {} is cooling down until {} ({}); running it anyway",
                chain[0].name,
                when(c.until),
                c.message
            );
        }
        match launch::run(layout, &chain[0].dir, cmd)? {}
    }
    supervise(
        layout,
        &profiles,
        &chain,
        &settings,
        Path::new(program),
        args,
    )
}

/// For the shim (`ccs <p>` with `CCS_CLAUDE_PATH=$(ccsfs shim)`): when the settings'
/// `failover: order` gives instance dir `dir` a chain, runs the real claude under it as
/// `ccsfs run` would and returns its exit status; None when there is no chain (or the
/// settings cannot be read: then claude runs as CCS asked, and a note says why).
pub fn from_shim(
    layout: &Layout,
    dir: &str,
    claude: &Path,
    args: &[OsString],
) -> Option<Result<i32, String>> {
    let settings = match settings::load(&layout.ccs_dir) {
        Ok(s) => s.failover,
        Err(e) => {
            eprintln!("ccsfs: note: no failover for this run: {e}");
            return None;
        }
    };
    if settings.order.is_empty() {
        return None;
    }
    let profiles = config::load_profiles(&layout.ccs_dir).ok()?;
    let chain = plan::chain(&profiles, dir, None, &settings.order, false).ok()?;
    (chain.len() > 1).then(|| supervise(layout, &profiles, &chain, &settings, claude, args))
}

fn supervise(
    layout: &Layout,
    profiles: &[config::Profile],
    chain: &[Link],
    settings: &settings::FailoverSettings,
    program: &Path,
    args: &[OsString],
) -> Result<i32, String> {
    let group = profiles
        .iter()
        .find(|p| crate::layout::instance_dir_name(&p.name) == chain[0].dir)
        .and_then(|p| p.group.clone())
        .expect("a chain of two is in a group");
    Supervisor {
        layout,
        chain,
        group_dir: layout.group_dir(&group),
        cooldown: settings.cooldown_minutes.saturating_mul(60) as i64,
        headless: plan::is_headless(args),
    }
    .run(program, args)
}

struct Supervisor<'a> {
    layout: &'a Layout,
    chain: &'a [Link],
    group_dir: std::path::PathBuf,
    /// Seconds.
    cooldown: i64,
    headless: bool,
}

/// How one attempt ended.
struct Outcome {
    status: ExitStatus,
    stdout: Vec<u8>,
    hit: Option<LimitHit>,
}

impl Supervisor<'_> {
    fn run(&self, program: &Path, args: &[OsString]) -> Result<i32, String> {
        let now = Timestamp::now().as_second();
        let mut current = match plan::next(self.chain, &cooling::load(&self.layout.ccs_dir), now) {
            Next::Ready(l) => l.clone(),
            Next::AllCooling { first, until } => {
                eprintln!("ccsfs: {}", self.all_cooling(first, until));
                return Ok(1);
            }
        };
        if current.dir != self.chain[0].dir {
            let c = cooling::load(&self.layout.ccs_dir);
            let until = c.active(&self.chain[0].dir, now).map_or(now, |c| c.until);
            eprintln!(
                "ccsfs: {} is cooling down until {}; starting under {}",
                self.chain[0].name,
                when(until),
                current.name
            );
        }
        child::install_signal_handlers();
        let stdin = if self.headless && !std::io::stdin().is_terminal() {
            Some(replay::Replay::start())
        } else {
            None
        };
        let tty = rustix::termios::tcgetattr(std::io::stdin()).ok();
        let mut argv = args.to_vec();
        let mut first = true;
        loop {
            let outcome = self.attempt(program, &argv, &current, stdin.as_ref(), first)?;
            first = false;
            if let Some(t) = &tty {
                // A claude ended mid-screen leaves the terminal as it had set it.
                let _ = rustix::termios::tcsetattr(
                    std::io::stdin(),
                    rustix::termios::OptionalActions::Now,
                    t,
                );
            }
            let stopped = child::stopped();
            let Some(hit) = outcome.hit.filter(|_| !stopped) else {
                child::emit(&outcome.stdout);
                return Ok(child::exit_code(outcome.status));
            };
            let now = Timestamp::now().as_second();
            match plan::next(self.chain, &cooling::load(&self.layout.ccs_dir), now) {
                Next::Ready(next) => {
                    eprintln!(
                        "ccsfs: {} hit its limit ({}); {} takes over session {}",
                        current.name, hit.message, next.name, hit.session
                    );
                    let retry = if self.headless {
                        None
                    } else {
                        hit.prompt.as_deref()
                    };
                    argv = plan::resume_args(args, &hit.session, retry);
                    current = next.clone();
                }
                Next::AllCooling { first, until } => {
                    child::emit(&outcome.stdout);
                    eprintln!("ccsfs: {}", self.all_cooling(first, until));
                    return Ok(1);
                }
            }
        }
    }

    /// Runs the command once under `link`. An interactive run is ended as soon as its
    /// transcript shows a refusal and another profile is ready to go on.
    fn attempt(
        &self,
        program: &Path,
        argv: &[OsString],
        link: &Link,
        stdin: Option<&replay::Replay>,
        first: bool,
    ) -> Result<Outcome, String> {
        let config_dir = launch::mounted_profile_dir(self.layout, OsStr::new(&link.dir))
            .map_err(|e| format!("not running {}: {e}", program.display()))?;
        let started = Timestamp::now();
        let mut cmd = Command::new(program);
        cmd.args(argv).env("CLAUDE_CONFIG_DIR", &config_dir);
        if self.headless {
            cmd.stdout(Stdio::piped());
        }
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        child::set_current(Some(&child));
        if let (Some(replay), Some(pipe)) = (stdin, child.stdin.take()) {
            replay.feed(pipe, first);
        }
        let stdout = child.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = out.read_to_end(&mut buf);
                buf
            })
        });
        let mut watch = Watch::new(self.group_dir.clone(), child.id(), started);
        let mut hit = None;
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| format!("cannot wait for claude: {e}"))?
            {
                break status;
            }
            if hit.is_none()
                && let Some(h) = watch.poll()
            {
                if self.headless {
                    // Judged when it exits (below).
                    hit = Some(h);
                    continue;
                }
                self.mark(link, &h);
                let ready = matches!(
                    plan::next(
                        self.chain,
                        &cooling::load(&self.layout.ccs_dir),
                        Timestamp::now().as_second()
                    ),
                    Next::Ready(_)
                );
                if !self.headless && ready && !child::stopped() {
                    child::end(&mut child);
                }
                hit = Some(h);
            }
            std::thread::sleep(POLL);
        };
        child::set_current(None);
        if let Some(h) = &mut hit {
            watch.settle(h);
        }
        let stdout = stdout
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        if self.headless {
            // Judged by how it ended: exit status 1 with the API's 429 (in its JSON, else in
            // its transcript).
            let seen = hit.take().or_else(|| watch.poll()).or_else(|| {
                std::env::current_dir()
                    .ok()
                    .and_then(|cwd| watch.sweep(&cwd))
            });
            if status.code() == Some(1) {
                hit = plan::refused_in_output(&stdout)
                    .map(|(session, message)| LimitHit {
                        session,
                        message,
                        at: Timestamp::now(),
                        prompt: None,
                        path: std::path::PathBuf::new(),
                    })
                    .or(seen);
                if let Some(h) = &hit {
                    self.mark(link, h);
                }
            }
        }
        Ok(Outcome {
            status,
            stdout,
            hit,
        })
    }

    /// Records `link` as cooling down until the reset Claude named, else for the cooldown.
    fn mark(&self, link: &Link, hit: &LimitHit) {
        let now = Timestamp::now().as_second();
        let parsed = reset::parse(&hit.message, hit.at, &TimeZone::system())
            .map(|t| t.as_second())
            .filter(|&t| t > now);
        let entry = Cooling {
            until: parsed.unwrap_or(now + self.cooldown.max(1)),
            since: now,
            message: hit.message.clone(),
            reset_from_message: parsed.is_some(),
            session: Some(hit.session.clone()),
        };
        if let Err(e) = cooling::mark(&self.layout.ccs_dir, &link.dir, entry, now) {
            eprintln!("ccsfs: warning: {e}");
        }
    }

    fn all_cooling(&self, first: &Link, until: i64) -> String {
        let c = cooling::load(&self.layout.ccs_dir);
        let now = Timestamp::now().as_second();
        let each: Vec<String> = self
            .chain
            .iter()
            .filter_map(|l| {
                Some(format!(
                    "{} until {}",
                    l.name,
                    when(c.active(&l.dir, now)?.until)
                ))
            })
            .collect();
        format!(
            "every profile of this run is cooling down ({}); the first resets at {} ({}); run again then, or `ccsfs cooldown clear <profile>` if one is ready sooner",
            each.join(", "),
            when(until),
            first.name
        )
    }
}

/// A unix time as the local date and time, for people.
pub fn when(secs: i64) -> String {
    match Timestamp::from_second(secs) {
        Ok(t) => t
            .to_zoned_datetime(TimeZone::system())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => secs.to_string(),
    }
}
