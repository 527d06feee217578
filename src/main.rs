//! The `ccsfs` command line: parse, call into the library, print one-line errors.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

use ccsfs::config;
use ccsfs::launch;
use ccsfs::layout::{Layout, find_ccs_dir};
use ccsfs::locks::LockConfig;
use ccsfs::mount::{self, MountOptions};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ccsfs",
    version,
    about = "Share Claude Code sessions across CCS accounts through one FUSE mount"
)]
struct Cli {
    /// The CCS dir (default: $CCS_DIR, $CCS_HOME/.ccs, ~/.ccs)
    #[arg(long, global = true, value_name = "DIR")]
    ccs_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum CooldownCmd {
    /// Forget PROFILE's cool-down (it is tried again at the next run), or every one with --all
    Clear {
        profile: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Mount every profile under MOUNT_POINT/<profile> (default: <ccs-dir>/mnt)
    Mount {
        mount_point: Option<PathBuf>,
        /// Stay in the foreground and log to stderr
        #[arg(short, long)]
        foreground: bool,
        /// Mount options: `allow_other` (needs user_allow_other in /etc/fuse.conf), `noexec`
        #[arg(short = 'o', value_delimiter = ',', value_name = "OPTS")]
        options: Vec<String>,
        /// FUSE worker threads
        #[arg(long, default_value_t = mount::DEFAULT_THREADS, hide = true)]
        threads: usize,
        /// A transcript's writer loses it to the next writer after this many seconds with no
        /// open handle and no write (default: only when the writer exits)
        #[arg(long, value_name = "SECS")]
        lock_idle: Option<u64>,
        /// How long a lock file vouches for its owner without renewal (renewed every third)
        #[arg(long, value_name = "SECS", default_value_t = LockConfig::default().lease.as_secs(), hide = true)]
        lock_lease: u64,
        /// Serve file data through the daemon even as root (no kernel passthrough)
        #[arg(long)]
        no_passthrough: bool,
        /// How many nodes keep an open fd (default: 3/4 of the open-file limit)
        #[arg(long, value_name = "N", hide = true)]
        fd_budget: Option<usize>,
    },
    /// Unmount (also when the daemon has died)
    Unmount {
        mount_point: Option<PathBuf>,
        /// Detach now even if busy; the kernel finishes when the last user leaves
        #[arg(short = 'z', long)]
        lazy: bool,
        /// Only a mount whose daemon is gone; nothing (exit 0) otherwise (the user unit's stop)
        #[arg(long, conflicts_with = "lazy")]
        if_dead: bool,
    },
    /// Show the mount, the daemon, each profile's routes and the held transcript locks
    Status {
        mount_point: Option<PathBuf>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Remove the single-writer lock on a shared transcript (PATH through the mount or in the store)
    Unlock {
        path: PathBuf,
        /// Take the lock away even though its owner is still running
        #[arg(long)]
        force: bool,
        /// The mount PATH is under (default: <ccs-dir>/mnt)
        #[arg(long, value_name = "DIR")]
        mount_point: Option<PathBuf>,
    },
    /// Check FUSE, config, modes, the mount, CCS, hidden entries, locks and torn transcripts
    Doctor {
        /// Repair what is safe (modes, a dead mount, stale run files and locks, torn tails)
        #[arg(long)]
        fix: bool,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Manage profiles in <ccs-dir>/config.yaml
    Profile {
        #[command(subcommand)]
        cmd: ProfileCmd,
    },
    /// Print the path of the claude shim for CCS: `export CCS_CLAUDE_PATH=$(ccsfs shim)`
    #[command(
        long_about = "Print the path of the claude shim, <ccs-dir>/ccsfs/bin/claude, \
        creating it (or refreshing it when ccsfs has moved).\n\n\
        With `export CCS_CLAUDE_PATH=$(ccsfs shim)`, `ccs <profile>` starts Claude Code through \
        the mount: when claude is run with CLAUDE_CONFIG_DIR=<ccs-dir>/instances/<dir>, the shim \
        mounts <ccs-dir>/mnt if nothing is mounted there and runs the real claude with \
        CLAUDE_CONFIG_DIR=<ccs-dir>/mnt/<dir> and the same arguments. Any other CLAUDE_CONFIG_DIR \
        (or none) passes through unchanged. If the mount cannot be made, claude is not run.\n\n\
        The real claude is $CCSFS_CLAUDE if set, else the first `claude` on PATH that is not a \
        ccsfs shim. The shim finds the CCS dir at run time as CCS does (CCS_DIR, CCS_HOME, HOME)."
    )]
    Shim,
    /// Run a command with CLAUDE_CONFIG_DIR set to PROFILE's dir in the mount (mounts if needed)
    #[command(
        long_about = "Run a command with CLAUDE_CONFIG_DIR set to PROFILE's dir in the mount \
        (mounting it if needed).\n\n\
        With --failover (or PROFILE in the `failover: order` of <ccs-dir>/ccsfs/config.yaml), \
        when claude is refused for its account's limit (HTTP 429), the same session goes on \
        under the next profile of the group that is not cooling down: `claude --resume \
        <session>` in the same dir and terminal. A headless run (-p) re-runs the turn and \
        prints only that run's output; an interactive one is ended and resumed with the refused \
        prompt. A profile that hit its limit cools down until the reset time Claude names \
        (else `cooldown_minutes`, default 60); `ccsfs status` and `ccsfs cooldown` show it."
    )]
    Run {
        /// Account name or instance dir name
        profile: String,
        /// Go on under these profiles (of PROFILE's group, in order) when an account hits its limit
        #[arg(
            long,
            value_delimiter = ',',
            value_name = "P1,P2",
            conflicts_with = "no_failover"
        )]
        failover: Option<Vec<String>>,
        /// Do not fail over, even when the settings' `failover: order` names PROFILE
        #[arg(long)]
        no_failover: bool,
        /// The command and its arguments, passed on unchanged
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        cmd: Vec<OsString>,
    },
    /// Show which profiles are cooling down after hitting their limit, or forget one
    Cooldown {
        #[command(subcommand)]
        action: Option<CooldownCmd>,
    },
    /// Print `export CLAUDE_CONFIG_DIR=<ccs-dir>/mnt/<dir>` for PROFILE (does not mount)
    #[command(
        long_about = "Print `export CLAUDE_CONFIG_DIR=<ccs-dir>/mnt/<dir>` for PROFILE, \
        shell-quoted, for `eval \"$(ccsfs env work)\"`; --json prints \
        {\"CLAUDE_CONFIG_DIR\": \"...\"} for an IDE's environment settings.\n\n\
        It does not mount: the path is fixed, so it can go into settings once. A note on stderr \
        says when the mount is not up; `ccsfs mount` mounts it, and the shim and `ccsfs run` \
        mount it themselves."
    )]
    Env {
        /// Account name or instance dir name
        profile: String,
        /// Print {"CLAUDE_CONFIG_DIR": "..."} instead of the export line
        #[arg(long)]
        json: bool,
    },
    /// List, export, import and fork Claude Code sessions (works on the CCS dir; no mount needed)
    Sessions {
        #[command(subcommand)]
        cmd: SessionsCmd,
    },
    /// Install the systemd user unit that mounts at login and unmounts at logout
    InstallService {
        /// Stop, disable and remove the unit instead
        #[arg(long, conflicts_with = "print")]
        uninstall: bool,
        /// Print the unit instead of installing it
        #[arg(long)]
        print: bool,
    },
    /// Link /sbin/mount.fuse.ccsfs to this binary, so that a `fuse.ccsfs` fstab line mounts (root)
    InstallMountHelper {
        /// Where mount(8) looks for helpers
        #[arg(long, value_name = "DIR", default_value = ccsfs::mount_helper::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page ccsfs(1), or write one page per subcommand into DIR
    Man {
        /// Write ccsfs.1, ccsfs-mount.1, … into DIR instead
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Move data of older layouts (symlinks, real dirs in the instances) into the group stores
    Migrate {
        /// Do it (default: a dry run that says what would move where)
        #[arg(long)]
        apply: bool,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Shared transcripts deleted through the mount: list, restore, purge (no mount needed)
    Trash {
        #[command(subcommand)]
        cmd: TrashCmd,
    },
}

#[derive(Subcommand)]
enum TrashCmd {
    /// List the trash of every group store, oldest first: id, deleted, size, group, profile, path
    List {
        /// Only this context group's store
        #[arg(long)]
        group: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Put an entry back where it was (never over an existing file)
    Restore {
        /// The entry's id (from `trash list`)
        id: String,
        /// Restore to this path instead
        #[arg(long, value_name = "PATH")]
        to: Option<PathBuf>,
    },
    /// Empty the trash (with --expired: only what is past keep_days or over max_mb)
    Purge {
        /// Only entries the settings no longer keep (<ccs-dir>/ccsfs/config.yaml, trash:)
        #[arg(long)]
        expired: bool,
        /// Only this context group's store
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Subcommand)]
enum SessionsCmd {
    /// List sessions, newest first: id, modified, messages, size, lock holder, project, first prompt
    List {
        /// Only this profile's sessions (account or instance dir name)
        #[arg(long, conflicts_with = "group")]
        profile: Option<String>,
        /// Only this context group's store
        #[arg(long)]
        group: Option<String>,
        /// Only sessions that ran in this dir
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
        /// Count messages exactly (reads whole transcripts; `~N` marks an estimate otherwise)
        #[arg(long)]
        count: bool,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Export a session as lossless JSON (for import) or a markdown transcript
    Export {
        /// Session id (or a unique prefix)
        id: String,
        /// Look only in this profile's sessions
        #[arg(long)]
        profile: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: ExportFormat,
        /// Replace secrets with [REDACTED:<kind>] (counts per kind on stderr)
        #[arg(long)]
        redact: bool,
        /// Keep only the last N messages (the header says so)
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Write to FILE instead of stdout
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Import a JSON export as a new session of PROFILE (prints the `claude --resume` line)
    Import {
        /// The export file, or `-` for stdin
        file: PathBuf,
        /// The profile to import into (its sessions dir, as the mount routes it)
        #[arg(long)]
        profile: String,
        /// The project dir it belongs to (default: the exported one)
        #[arg(long, value_name = "DIR")]
        cwd: Option<PathBuf>,
        /// Keep the session and record ids (refused if that session exists)
        #[arg(long)]
        keep_id: bool,
        /// Import even if the content does not match the export's checksum
        #[arg(long)]
        force: bool,
    },
    /// Copy a session under a new id in the same project (the source is only read)
    Fork {
        /// Session id (or a unique prefix)
        id: String,
        /// Look only in this profile's sessions
        #[arg(long)]
        profile: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Json,
    Markdown,
}

#[derive(Subcommand)]
enum ProfileCmd {
    /// Add a profile (or change an existing one's modes) and create its instance dir
    Add {
        name: String,
        /// Share projects/ with this context group
        #[arg(long)]
        group: Option<String>,
        /// Also share session-env, file-history, shell-snapshots and todos (implies shared)
        #[arg(long)]
        deeper: bool,
        /// Keep this profile's own commands, skills, agents, plugins and settings.json
        #[arg(long)]
        profile_local: bool,
    },
    /// Remove a profile's entry; its data stays in the instance dir
    Remove { name: String },
    /// List the profiles
    List,
}

fn main() -> ExitCode {
    // The shim's entry, before clap: every argument after `shim-exec --` is claude's, untouched
    // (`-h`, `--version`, `--`, empty strings, bytes that are not UTF-8).
    let argv: Vec<OsString> = std::env::args_os().collect();
    // Run by mount(8) as /sbin/mount.fuse.ccsfs for a `fuse.ccsfs` fstab line.
    if argv
        .first()
        .is_some_and(|a| ccsfs::mount_helper::invoked_as_helper(a))
    {
        return mount_helper(&argv[1..]);
    }
    if argv.get(1).is_some_and(|a| a == "shim-exec") {
        let Err(e) = launch::shim_exec(&argv[2..]);
        eprintln!("ccsfs: {e}");
        return ExitCode::FAILURE;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if !e.use_stderr()
                || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            // One line, like every other error: clap's first line, then where the usage is.
            let text = e.to_string();
            let head: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let head = head.join(" ");
            eprintln!(
                "ccsfs: {}; see `ccsfs --help`",
                head.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccsfs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The fstab helper: mount(8)'s arguments, then `ccsfs mount`. Exit status as mount(8) wants it
/// of a helper: 1 for a bad line, 32 when the mount fails.
fn mount_helper(args: &[OsString]) -> ExitCode {
    let name = ccsfs::fstab::HELPER_NAME;
    let ccsfs_args = match ccsfs::mount_helper::prepare(args) {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(1);
        }
    };
    let cli = match Cli::try_parse_from(std::iter::once(OsString::from("ccsfs")).chain(ccsfs_args))
    {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("{name}: {}", e.to_string().lines().next().unwrap_or(""));
            return ExitCode::from(1);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(32)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    // Those that need no CCS dir.
    match &cli.cmd {
        Cmd::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "ccsfs", &mut out);
            return write_stdout(&out);
        }
        Cmd::Man { out: None } => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(|e| e.to_string())?;
            return write_stdout(&out);
        }
        Cmd::Man { out: Some(dir) } => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
                .map_err(|e| format!("cannot write the man pages into {}: {e}", dir.display()))?;
            println!("wrote the man pages into {}", dir.display());
            return Ok(());
        }
        Cmd::InstallMountHelper { dir } => {
            println!("{}", ccsfs::mount_helper::install_link(dir)?);
            return Ok(());
        }
        _ => {}
    }
    let explicit_ccs_dir = cli.ccs_dir.is_some()
        || ["CCS_DIR", "CCS_HOME"]
            .iter()
            .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    let ccs_dir = find_ccs_dir(cli.ccs_dir.as_deref(), |k| std::env::var(k).ok())?;
    // The daemon leaves the caller's cwd behind, so every path is made absolute up front.
    let ccs_dir = std::path::absolute(&ccs_dir)
        .map_err(|e| format!("bad CCS dir {}: {e}", ccs_dir.display()))?;
    let layout = Layout::new(ccs_dir);
    match cli.cmd {
        Cmd::Mount {
            mount_point,
            foreground,
            options,
            threads,
            lock_idle,
            lock_lease,
            no_passthrough,
            fd_budget,
        } => {
            let (mut allow_other, mut noexec) = (false, false);
            for o in options {
                match o.as_str() {
                    "allow_other" => allow_other = true,
                    "noexec" => noexec = true,
                    other => {
                        return Err(format!(
                            "unknown mount option `{other}`; ccsfs takes `-o allow_other` and `-o noexec`"
                        ));
                    }
                }
            }
            let profiles = config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string())?;
            let mount_point = match mount_point {
                Some(p) => mount::absolute_mount_point(&p),
                None => {
                    let p = layout.default_mount_point();
                    if !p.exists() && mount::mount_state(&p) == mount::MountState::NotMounted {
                        std::fs::create_dir_all(&p)
                            .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
                    }
                    p
                }
            };
            if profiles.is_empty() {
                eprintln!(
                    "ccsfs: no profiles yet; the mount is empty until you add one with `ccsfs profile add <name>`"
                );
            }
            mount::mount(
                &layout,
                &profiles,
                &MountOptions {
                    mount_point,
                    foreground,
                    allow_other,
                    noexec,
                    threads,
                    passthrough: !no_passthrough,
                    fd_budget,
                    locks: LockConfig {
                        idle_limit: lock_idle.map(Duration::from_secs),
                        lease: Duration::from_secs(lock_lease.max(1)),
                    },
                },
            )
        }
        Cmd::Unmount {
            mount_point,
            lazy,
            if_dead,
        } => {
            let mp = mount_point.unwrap_or_else(|| layout.default_mount_point());
            if if_dead {
                return mount::unmount_if_dead(&layout, &mp).map(|_| ());
            }
            mount::unmount(&layout, &mp, lazy)
        }
        Cmd::Status { mount_point, json } => {
            let mp = mount_point.map_or_else(
                || layout.default_mount_point(),
                |p| mount::absolute_mount_point(&p),
            );
            let profiles = config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string());
            let st =
                ccsfs::status::collect(&layout, profiles.as_deref().map_err(Clone::clone), &mp);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&st).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", ccsfs::status::render(&st));
            }
            Ok(())
        }
        Cmd::Unlock {
            path,
            force,
            mount_point,
        } => {
            // The mount the path is under: the one given, else any this CCS dir has used.
            let abs = std::path::absolute(&path).unwrap_or(path.clone());
            let mp = mount_point.unwrap_or_else(|| {
                let mut known = mount::recorded_mount_points(&layout);
                known.push(layout.default_mount_point());
                known
                    .into_iter()
                    .find(|m| abs.starts_with(m))
                    .unwrap_or_else(|| layout.default_mount_point())
            });
            let profiles = config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string())?;
            println!(
                "{}",
                ccsfs::unlock::unlock(&layout, &profiles, &mp, &path, force)?
            );
            Ok(())
        }
        Cmd::InstallService { uninstall, print } => {
            let opts = ccsfs::service::ServiceOptions {
                // Baked in when it was chosen (flag or environment): the unit runs without them.
                ccs_dir: explicit_ccs_dir.then(|| layout.ccs_dir.clone()),
                mount_point: layout.default_mount_point(),
                uninstall,
                print,
            };
            for line in ccsfs::service::install(&opts)? {
                println!("{line}");
            }
            Ok(())
        }
        Cmd::Completions { .. } | Cmd::Man { .. } | Cmd::InstallMountHelper { .. } => {
            unreachable!("handled above")
        }
        Cmd::Doctor { fix, json } => doctor(layout, fix, json),
        Cmd::Profile { cmd } => profile(&layout, cmd),
        Cmd::Sessions { cmd } => sessions(&layout, cmd),
        Cmd::Trash { cmd } => trash(&layout, cmd),
        Cmd::Migrate { apply, json } => {
            write_stdout(ccsfs::migrate::main(&layout, apply, json)?.as_bytes())
        }
        Cmd::Shim => {
            println!("{}", launch::install_shim(&layout)?.display());
            Ok(())
        }
        Cmd::Run {
            profile,
            failover,
            no_failover,
            cmd,
        } => {
            let code =
                ccsfs::failover::run(&layout, &profile, failover.as_deref(), no_failover, &cmd)?;
            std::process::exit(code)
        }
        Cmd::Cooldown { action } => cooldown(&layout, action),
        Cmd::Env { profile, json } => {
            let text = launch::env_text(&layout, &profile, json)?;
            if let Some(note) = launch::mount_note(&layout) {
                eprintln!("ccsfs: {note}");
            }
            std::io::stdout()
                .write_all(&text)
                .map_err(|e| format!("cannot write to stdout: {e}"))
        }
    }
}

/// `ccsfs doctor`: the report on stdout; a failure left makes the exit status 1.
/// `ccsfs cooldown`: list the cool-downs, or forget one (or all).
fn cooldown(layout: &Layout, action: Option<CooldownCmd>) -> Result<(), String> {
    use ccsfs::failover::{cooling, when};
    let now = jiff::Timestamp::now().as_second();
    match action {
        None => {
            let state = cooling::load(&layout.ccs_dir);
            let mut any = false;
            for (dir, c) in state.profiles.iter().filter(|(_, c)| c.until > now) {
                any = true;
                println!(
                    "{dir}: cooling down until {} ({})",
                    when(c.until),
                    c.message
                );
            }
            if !any {
                println!("no profile is cooling down");
            }
            Ok(())
        }
        Some(CooldownCmd::Clear { profile, all }) => {
            let dir = match (&profile, all) {
                (Some(p), false) => {
                    let profiles =
                        config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string())?;
                    Some(ccsfs::launch::decide::resolve_profile(&profiles, p)?.1)
                }
                (None, true) => None,
                _ => {
                    return Err(
                        "name one profile, or --all; e.g. `ccsfs cooldown clear work`".into(),
                    );
                }
            };
            let n = cooling::clear(&layout.ccs_dir, dir.as_deref(), now)?;
            println!("forgot {n} cool-down{}", if n == 1 { "" } else { "s" });
            Ok(())
        }
    }
}

fn doctor(layout: Layout, fix: bool, json: bool) -> Result<(), String> {
    use ccsfs::doctor;
    let findings = doctor::run(&doctor::Ctx::new(layout, fix));
    let text = if json {
        serde_json::to_string_pretty(&findings).map_err(|e| e.to_string())? + "\n"
    } else {
        doctor::render(&findings)
    };
    write_stdout(text.as_bytes())?;
    if doctor::failed(&findings) {
        std::process::exit(1);
    }
    Ok(())
}

fn trash(layout: &Layout, cmd: TrashCmd) -> Result<(), String> {
    use ccsfs::trash;
    let text = match cmd {
        TrashCmd::List { group, json } => {
            let items = trash::list(layout, group.as_deref())?;
            if json {
                serde_json::to_string_pretty(&items).map_err(|e| e.to_string())? + "\n"
            } else {
                trash::render(&items)
            }
        }
        TrashCmd::Restore { id, to } => trash::restore(layout, &id, to.as_deref())? + "\n",
        TrashCmd::Purge { expired, group } => trash::purge(layout, group.as_deref(), expired)?,
    };
    write_stdout(text.as_bytes())
}

fn sessions(layout: &Layout, cmd: SessionsCmd) -> Result<(), String> {
    use ccsfs::sessions::{self, Scope, export, fork, import, markdown, scan};
    let progress = sessions::progress_wanted();
    match cmd {
        SessionsCmd::List {
            profile,
            group,
            project,
            count,
            json,
        } => {
            let opts = scan::ListOptions {
                scope: Scope { profile, group },
                project,
                count,
                progress,
            };
            let list = scan::list(layout, &opts)?;
            let text = if json {
                serde_json::to_string_pretty(&list).map_err(|e| e.to_string())? + "\n"
            } else {
                scan::render(&list)
            };
            write_stdout(text.as_bytes())
        }
        SessionsCmd::Export {
            id,
            profile,
            format,
            redact,
            limit,
            output,
        } => {
            let found = find_session(layout, profile, &id)?;
            let mut warnings = Vec::new();
            let mut engine = sessions::redaction::Engine::default();
            let mut opts = export::ExportOptions {
                limit,
                redactor: redact.then_some(&mut engine as &mut dyn export::Redactor),
                progress,
            };
            let e = export::export(&found.id, &found.file, &mut opts, &mut warnings)?;
            for w in &warnings {
                eprintln!("ccsfs: {w}");
            }
            if redact {
                eprintln!("ccsfs: redacted {}", engine.summary());
            }
            let text = match format {
                ExportFormat::Json => export::to_json(&e)?,
                ExportFormat::Markdown => markdown::render(&e),
            };
            match output {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display())),
                None => write_stdout(text.as_bytes()),
            }
        }
        SessionsCmd::Import {
            file,
            profile,
            cwd,
            keep_id,
            force,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| format!("cannot read stdin: {e}"))?
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?
            };
            let p = sessions::find_profile(layout, &profile)?;
            let projects = sessions::projects_dir(layout, &p);
            let cwd = cwd.map(|c| {
                std::path::absolute(&c)
                    .unwrap_or(c)
                    .to_string_lossy()
                    .into_owned()
            });
            let done = import::import(
                &text,
                &projects,
                &import::ImportOptions {
                    cwd,
                    keep_id,
                    force,
                },
            )?;
            for w in &done.warnings {
                eprintln!("ccsfs: {w}");
            }
            if done.cut_links > 0 {
                eprintln!(
                    "ccsfs: {} parent link(s) led to records not in the export; they start the chain now",
                    done.cut_links
                );
            }
            eprintln!(
                "ccsfs: imported {} records as session {} into {}",
                done.records,
                done.id,
                done.file.display()
            );
            println!("cd {} && claude --resume {}", quote(&done.cwd), done.id);
            Ok(())
        }
        SessionsCmd::Fork { id, profile } => {
            let found = find_session(layout, profile, &id)?;
            let f = fork::fork(layout, &found)?;
            for w in &f.imported.warnings {
                eprintln!("ccsfs: {w}");
            }
            if let Some(h) = &f.held_by {
                eprintln!(
                    "ccsfs: {} is held by {h}; forked what it has written so far (it was only read)",
                    f.from
                );
            }
            eprintln!(
                "ccsfs: forked {} into {} ({} records)",
                f.from,
                f.imported.file.display(),
                f.imported.records
            );
            println!(
                "cd {} && claude --resume {}",
                quote(&f.imported.cwd),
                f.imported.id
            );
            Ok(())
        }
    }
}

/// A path quoted for the shell.
fn quote(s: &str) -> String {
    String::from_utf8_lossy(&launch::decide::shell_quote(std::ffi::OsStr::new(s))).into_owned()
}

fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

fn profile(layout: &Layout, cmd: ProfileCmd) -> Result<(), String> {
    match cmd {
        ProfileCmd::Add {
            name,
            group,
            deeper,
            profile_local,
        } => {
            let opts = config::AddOptions {
                group: group.as_deref(),
                deeper,
                profile_local,
            };
            let (p, added) = config::add_profile_with(&layout.ccs_dir, &name, &opts)
                .map_err(|e| e.to_string())?;
            let verb = if added { "added" } else { "updated" };
            println!(
                "{verb} profile {} ({}); a running mount serves it as {} within a second",
                p.name,
                ccsfs::status::describe(&p),
                p.dir_name()
            );
            Ok(())
        }
        ProfileCmd::Remove { name } => {
            config::remove_profile(&layout.ccs_dir, &name).map_err(|e| e.to_string())?;
            println!(
                "removed profile {name}; its data stays in {}",
                layout.instance(&name).display()
            );
            Ok(())
        }
        ProfileCmd::List => {
            for p in config::load_profiles(&layout.ccs_dir).map_err(|e| e.to_string())? {
                // Listed under its mount (and instance dir) name, then the account if it differs.
                let (dir, describe) = (p.dir_name(), ccsfs::status::describe(&p));
                if dir == p.name {
                    println!("{dir}\t{describe}");
                } else {
                    println!("{dir}\t{describe}\taccount {}", p.name);
                }
            }
            Ok(())
        }
    }
}

/// The session `id` (or a unique prefix), in one profile's store or in any.
fn find_session(
    layout: &Layout,
    profile: Option<String>,
    id: &str,
) -> Result<ccsfs::sessions::Found, String> {
    ccsfs::sessions::find_session(
        layout,
        &ccsfs::sessions::Scope {
            profile,
            group: None,
        },
        id,
    )
}
