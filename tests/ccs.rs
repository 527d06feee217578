//! Against the real CCS (`ccs` from npm `@kaitranntt/ccs`): accounts that CCS makes (one with
//! capitals) mounted and routed as CCS routes them, a config written by `ccsfs profile add`
//! that CCS reads back, `ccs auth create/remove` and a mode change while mounted (seen within a
//! second, no instance re-created), a refused write still logged after `ccs cleanup --force`,
//! `settings.json` rewritten by temp file + rename through one profile and read through
//! another, and `ccs <profile> -p` launching claude through `ccsfs shim`.
//!
//! Each test gets a temp HOME and CCS_DIR (CCS keeps `~/.claude` under HOME), a stand-in
//! `claude` first on PATH (a shell script that exits 0, records its CLAUDE_CONFIG_DIR and
//! arguments, and appends a transcript line when asked), and runs `ccs` with stdin from
//! /dev/null and nothing else from the caller's environment but PATH.
//!
//! Needs the ccs CLI and node: ignored by a plain `cargo test`; scripts/test.sh installs ccs
//! into its npm cache and runs these (`--include-ignored`), also as an ordinary user.

mod common;

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{is_mounted, prereq, stderr, stdout, wait_until};
use serde_json::Value;

/// How long the daemon may take to follow a change of config.yaml (issue #10: "within a second").
const FOLLOW: Duration = Duration::from_secs(1);

/// The stand-in for `claude`. `@CALLS@` is replaced by the record file: one line per run,
/// `<CLAUDE_CONFIG_DIR or (unset)>\t<arguments>`. With `STANDIN_TRANSCRIPT` set (a path under
/// the config dir), a `-p` run appends `STANDIN_LINE` to it and exits 3 if it cannot.
const STANDIN: &str = r#"#!/bin/sh
printf '%s\t%s\n' "${CLAUDE_CONFIG_DIR-(unset)}" "$*" >> '@CALLS@'
if [ "$1" = -p ] && [ -n "${STANDIN_TRANSCRIPT:-}" ]; then
  f="$CLAUDE_CONFIG_DIR/$STANDIN_TRANSCRIPT"
  mkdir -p "$(dirname "$f")" && printf '%s\n' "$STANDIN_LINE" >> "$f" ||
    { echo "stand-in claude: cannot append to $f" >&2; exit 3; }
fi
exit 0
"#;

/// A temp world for CCS: HOME, CCS_DIR (`<tmp>/ccs`), the mount point CCS users get
/// (`<ccs>/mnt`, where `ccsfs mount` and the shim mount by default), the stand-in claude.
struct World {
    tmp: tempfile::TempDir,
    home: PathBuf,
    ccs: PathBuf,
    mnt: PathBuf,
    proj: PathBuf,
    standin: PathBuf,
    calls: PathBuf,
    path: String,
    ccs_bin: PathBuf,
}

impl World {
    fn new() -> World {
        let ccs_bin = prereq::require_ccs();
        let tmp = tempfile::Builder::new()
            .prefix("ccsfs-ccs-")
            .tempdir()
            .expect("temp dir");
        let root = tmp.path().to_path_buf();
        let (home, ccs, proj, bin) = (
            root.join("home"),
            root.join("ccs"),
            root.join("proj"),
            root.join("bin"),
        );
        for d in [&home, &proj, &bin] {
            fs::create_dir_all(d).unwrap();
        }
        let calls = root.join("claude-calls.txt");
        let standin = bin.join("claude");
        fs::write(
            &standin,
            STANDIN.replace("@CALLS@", calls.to_str().expect("utf-8 temp path")),
        )
        .unwrap();
        fs::set_permissions(&standin, fs::Permissions::from_mode(0o755)).unwrap();
        let outer = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        World {
            mnt: ccs.join("mnt"),
            path: format!("{}:{outer}", bin.display()),
            tmp,
            home,
            ccs,
            proj,
            standin,
            calls,
            ccs_bin,
        }
    }

    /// A command with this world's environment only: HOME, CCS_DIR, PATH (stand-in first).
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("CCS_DIR", &self.ccs)
            .env("PATH", &self.path)
            .env("TMPDIR", self.tmp.path())
            .env("NO_COLOR", "1")
            .current_dir(&self.proj)
            .stdin(Stdio::null());
        if let Ok(level) = std::env::var("RUST_LOG") {
            cmd.env("RUST_LOG", level);
        }
        cmd
    }

    /// Runs the real `ccs ARGS…` with extra environment; fails the test after 60 s.
    fn ccs_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(&self.ccs_bin);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_with_timeout(cmd, &format!("ccs {}", args.join(" ")))
    }

    fn ccs(&self, args: &[&str]) -> Output {
        self.ccs_env(args, &[])
    }

    /// `ccs ARGS…`, which must exit 0.
    #[track_caller]
    fn ccs_ok(&self, args: &[&str]) -> Output {
        let out = self.ccs(args);
        assert!(
            out.status.success(),
            "ccs {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            stdout(&out),
            stderr(&out)
        );
        out
    }

    /// `ccs auth create NAME FLAGS…` (it runs the stand-in claude as its login step).
    #[track_caller]
    fn create(&self, name: &str, flags: &[&str]) {
        let mut args = vec!["auth", "create", name];
        args.extend(flags);
        self.ccs_ok(&args);
    }

    /// `ccsfs ARGS…` (finding the CCS dir through CCS_DIR, as a user's shell would).
    fn ccsfs(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(Path::new(&common::bin()));
        cmd.args(args);
        run_with_timeout(cmd, &format!("ccsfs {}", args.join(" ")))
    }

    #[track_caller]
    fn ccsfs_ok(&self, args: &[&str]) -> String {
        let out = self.ccsfs(args);
        assert!(
            out.status.success(),
            "ccsfs {} failed: {}",
            args.join(" "),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Mounts `<ccs>/mnt` (with `CCSFS_TEST_MOUNT_ARGS`, like the other suites).
    fn mount(&self) -> Unmount<'_> {
        let extra = std::env::var("CCSFS_TEST_MOUNT_ARGS").unwrap_or_default();
        let mut args = vec!["mount", self.mnt.to_str().unwrap()];
        args.extend(extra.split_whitespace());
        fs::create_dir_all(&self.mnt).unwrap();
        self.ccsfs_ok(&args);
        assert!(
            is_mounted(&self.mnt),
            "{} is not mounted",
            self.mnt.display()
        );
        Unmount(self)
    }

    /// `ccs auth list --json`, as a name → profile map.
    fn accounts(&self) -> serde_json::Map<String, Value> {
        let text = stdout(&self.ccs_ok(&["auth", "list", "--json"]));
        // CCS's first run in a new HOME prints its set-up notes before the JSON.
        let json = match text.find("\n{") {
            Some(at) if !text.starts_with('{') => &text[at + 1..],
            _ => &text,
        };
        let v: Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("ccs auth list --json: {e}: {text}"));
        v["profiles"]
            .as_array()
            .unwrap_or_else(|| panic!("no profiles in {v}"))
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_string(), p.clone()))
            .collect()
    }

    fn instance(&self, dir: &str) -> PathBuf {
        self.ccs.join("instances").join(dir)
    }

    fn store(&self, group: &str) -> PathBuf {
        self.ccs.join("shared/context-groups").join(group)
    }

    /// The stand-in's runs so far: (CLAUDE_CONFIG_DIR or "(unset)", arguments).
    fn calls(&self) -> Vec<(String, String)> {
        fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (dir, args) = l.split_once('\t').unwrap_or((l, ""));
                (dir.to_string(), args.to_string())
            })
            .collect()
    }

    /// The daemon's log file: what `ccsfs status --json` names, else `<ccs>/logs/ccsfs.log`.
    fn log_file(&self) -> PathBuf {
        let out = self.ccsfs(&["status", self.mnt.to_str().unwrap(), "--json"]);
        let named = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| {
                ["log", "log_file", "log_path"]
                    .iter()
                    .find_map(|k| v[*k].as_str().map(PathBuf::from))
            });
        named.unwrap_or_else(|| self.ccs.join("logs/ccsfs.log"))
    }
}

/// Unmounts `<ccs>/mnt` on drop if it is mounted (also when a test panics, and also when the
/// shim made the mount).
struct Unmount<'a>(&'a World);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let mnt = self.0.mnt.to_str().unwrap();
        if is_mounted(&self.0.mnt) && !self.0.ccsfs(&["unmount", mnt]).status.success() {
            let _ = self.0.ccsfs(&["unmount", "--lazy", mnt]);
        }
    }
}

/// Runs `cmd` with its output captured; fails the test if it has not exited after 60 s.
/// A process it leaves behind holding the pipes (a daemon) does not hold up the test.
fn run_with_timeout(mut cmd: Command, what: &str) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::clone(&buf);
        let t = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        (buf, t)
    };
    let (out, t_out) = drain(Box::new(child.stdout.take().unwrap()));
    let (err, t_err) = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish in 60 s: {}",
                String::from_utf8_lossy(&err.lock().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    wait_until(Duration::from_secs(2), || {
        t_out.is_finished() && t_err.is_finished()
    });
    let take = |b: &Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *b.lock().unwrap());
    Output {
        status,
        stdout: take(&out),
        stderr: take(&err),
    }
}

/// A process that holds a transcript: it appends a line through the mount, then sleeps in
/// the same process (so it stays the lock's owner) until it is killed on drop.
struct Holder(Child);

impl Holder {
    fn start(w: &World, file: &Path, line: &str) -> Holder {
        let child = w
            .command(Path::new("/bin/sh"))
            .args([
                "-c",
                r#"printf '%s\n' "$2" >> "$1" && exec sleep 60"#,
                "holder",
            ])
            .arg(file)
            .arg(line)
            .spawn()
            .expect("spawn holder");
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Profile dirs at the mount root (the `<profile>.lock` dirs Claude makes are not profiles).
fn profiles_in(mnt: &Path) -> BTreeSet<String> {
    names(mnt)
        .into_iter()
        .filter(|n| !n.ends_with(".lock"))
        .collect()
}

#[track_caller]
fn write_file(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", dir.display()));
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn absent(path: &Path) -> bool {
    matches!(fs::symlink_metadata(path), Err(e) if e.kind() == ErrorKind::NotFound)
}

/// Writes `body` to `dir/name` the way Claude Code saves its settings: a new
/// `name.tmp.<pid>.<hex>` (O_CREAT|O_EXCL), fsync, rename over `name`.
#[track_caller]
fn atomic_write(dir: &Path, name: &str, body: &str) {
    let tmp = dir.join(format!(
        "{name}.tmp.{}.{:012x}",
        std::process::id(),
        0xc0ffee_u64
    ));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
    f.write_all(body.as_bytes()).unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::rename(&tmp, dir.join(name))
        .unwrap_or_else(|e| panic!("rename {} over {name}: {e}", tmp.display()));
}

#[test]
#[ignore = "needs the real ccs (npm @kaitranntt/ccs) and node; scripts/test.sh installs and runs it"]
fn accounts_made_by_ccs_are_mounted_and_routed_as_ccs_routes_them() {
    let w = World::new();
    w.create("Delta", &["--share-context", "--context-group", "team"]);
    w.create(
        "echo",
        &[
            "--share-context",
            "--context-group",
            "team",
            "--deeper-continuity",
        ],
    );
    w.create("solo", &[]);
    let accounts = w.accounts();
    assert_eq!(
        accounts.keys().cloned().collect::<BTreeSet<_>>(),
        set(&["Delta", "echo", "solo"])
    );
    let _m = w.mount();

    // One dir per account, under the name of CCS's instance dir: an instance path maps to a
    // mount path one to one.
    let mut dirs = BTreeSet::new();
    for (name, p) in &accounts {
        let inst = PathBuf::from(p["instance_path"].as_str().expect("instance_path"));
        assert_eq!(
            inst.parent(),
            Some(w.ccs.join("instances").as_path()),
            "{name}"
        );
        let dir = inst.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            w.mnt.join(&dir).is_dir(),
            "{name}: no {}",
            w.mnt.join(&dir).display()
        );
        dirs.insert(dir);
    }
    assert_eq!(dirs, set(&["delta", "echo", "solo"]));
    assert_eq!(
        profiles_in(&w.mnt),
        dirs,
        "the mount root lists the instance dirs only"
    );
    assert!(
        absent(&w.mnt.join("Delta")),
        "the mount also answers to Delta"
    );

    // Every context dir CCS linked (or kept) in an instance is served from where CCS's link
    // leads: a file written through the mount appears there.
    for dir in &dirs {
        for sub in [
            "projects",
            "session-env",
            "file-history",
            "shell-snapshots",
            "todos",
        ] {
            let inst = w.instance(dir).join(sub);
            let Ok(md) = fs::symlink_metadata(&inst) else {
                continue;
            };
            let target = if md.file_type().is_symlink() {
                fs::canonicalize(&inst).unwrap_or_else(|e| panic!("{}: {e}", inst.display()))
            } else {
                inst.clone()
            };
            let probe = format!("probe-{dir}-{sub}.json");
            write_file(&w.mnt.join(dir).join(sub).join(&probe), dir);
            assert_eq!(
                read(&target.join(&probe)).as_deref(),
                Some(dir.as_str()),
                "{dir}/{sub} through the mount is not {} (where CCS's instance leads)",
                target.display()
            );
        }
    }

    // projects of Delta and echo is the group store; solo's is its own.
    let t = "projects/-p/s.jsonl";
    write_file(&w.mnt.join("delta").join(t), "{\"from\":\"delta\"}\n");
    assert_eq!(
        read(&w.store("team").join("projects/-p/s.jsonl")).as_deref(),
        Some("{\"from\":\"delta\"}\n")
    );
    assert_eq!(
        read(&w.mnt.join("echo").join(t)).as_deref(),
        Some("{\"from\":\"delta\"}\n")
    );
    assert!(
        absent(&w.mnt.join("solo").join(t)),
        "solo sees the group's session"
    );
    // echo's deeper continuity dirs are the group's.
    write_file(&w.mnt.join("echo/todos/t.json"), "[]");
    assert_eq!(
        read(&w.store("team").join("continuity/todos/t.json")).as_deref(),
        Some("[]")
    );

    // Credentials written through <mnt>/delta land in instances/delta, 0600.
    let creds = w.mnt.join("delta/.credentials.json");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&creds)
        .and_then(|mut f| f.write_all(b"{\"secret\":\"delta\"}"))
        .unwrap_or_else(|e| panic!("write {}: {e}", creds.display()));
    let backing = w.instance("delta").join(".credentials.json");
    assert_eq!(read(&backing).as_deref(), Some("{\"secret\":\"delta\"}"));
    assert_eq!(
        fs::metadata(&backing).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(absent(&w.instance("echo").join(".credentials.json")));

    drop(_m);
    assert_eq!(
        names(&w.ccs.join("instances"))
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect::<BTreeSet<_>>(),
        dirs,
        "an instance dir CCS would not make (instances/Delta?)"
    );
}

#[test]
#[ignore = "needs the real ccs (npm @kaitranntt/ccs) and node; scripts/test.sh installs and runs it"]
fn ccs_reads_the_config_that_ccsfs_profile_add_writes_on_a_fresh_dir() {
    let w = World::new();
    w.ccsfs_ok(&["profile", "add", "Work", "--group", "team", "--deeper"]);
    w.ccsfs_ok(&["profile", "add", "personal", "--group", "team"]);
    w.ccsfs_ok(&["profile", "add", "solo"]);
    let accounts = w.accounts();
    assert_eq!(
        accounts.keys().cloned().collect::<BTreeSet<_>>(),
        set(&["Work", "personal", "solo"])
    );
    for (name, mode, group, continuity, dir) in [
        ("Work", "shared", Some("team"), Some("deeper"), "work"),
        (
            "personal",
            "shared",
            Some("team"),
            Some("standard"),
            "personal",
        ),
        // As for an isolated account CCS makes: no group, no continuity.
        ("solo", "isolated", None, None, "solo"),
    ] {
        let p = &accounts[name];
        assert_eq!(p["context_mode"], mode, "{name}: {p}");
        assert_eq!(p["context_group"].as_str(), group, "{name}: {p}");
        assert_eq!(p["continuity_mode"].as_str(), continuity, "{name}: {p}");
        assert_eq!(
            p["instance_path"].as_str(),
            w.instance(dir).to_str(),
            "{name}: {p}"
        );
    }
    assert!(absent(&w.instance("Work")), "ccsfs made instances/Work");
    // And the other way: an account CCS adds to that file is one ccsfs lists.
    w.create("Later", &["--share-context", "--context-group", "team"]);
    let list = w.ccsfs_ok(&["profile", "list"]);
    for name in ["Work", "personal", "solo", "Later"] {
        assert!(
            list.contains(name),
            "ccsfs profile list lacks {name}: {list}"
        );
    }
}

#[test]
#[ignore = "needs the real ccs (npm @kaitranntt/ccs) and node; scripts/test.sh installs and runs it"]
fn ccs_add_remove_and_mode_change_show_in_the_mount_within_a_second() {
    let w = World::new();
    w.create("alpha", &["--share-context", "--context-group", "team"]);
    let _m = w.mount();
    let t = "projects/-p/s.jsonl";
    write_file(&w.mnt.join("alpha").join(t), "{\"n\":1}\n");

    // Add: `ccs auth create Bravo` shows as <mnt>/bravo, in the group, within a second.
    w.create("Bravo", &["--share-context", "--context-group", "team"]);
    let since = Instant::now();
    assert!(
        wait_until(FOLLOW, || read(&w.mnt.join("bravo").join(t)).as_deref()
            == Some("{\"n\":1}\n")),
        "after ccs auth create Bravo, {} did not show the group's session within {FOLLOW:?} \
         (root: {:?})",
        w.mnt.join("bravo").join(t).display(),
        profiles_in(&w.mnt)
    );
    eprintln!("add seen after {:?}", since.elapsed());
    assert_eq!(profiles_in(&w.mnt), set(&["alpha", "bravo"]));

    // Mode change: `ccs auth create alpha --force` without --share-context makes it isolated
    // (CCS copies the group's sessions into a real projects/ dir in the instance). From then
    // on a session new in the group is not alpha's; a handle opened before keeps its file.
    let mut open = OpenOptions::new()
        .append(true)
        .open(w.mnt.join("alpha").join(t))
        .expect("open the shared transcript through alpha");
    w.ccs_ok(&["auth", "create", "alpha", "--force"]);
    assert_eq!(w.accounts()["alpha"]["context_mode"], "isolated");
    let since = Instant::now();
    let after = "projects/-p/after.jsonl";
    write_file(&w.mnt.join("bravo").join(after), "{\"n\":0}\n");
    assert!(
        wait_until(FOLLOW, || absent(&w.mnt.join("alpha").join(after))),
        "alpha, now isolated, still sees the group's new session {FOLLOW:?} after the change"
    );
    eprintln!("isolated seen after {:?}", since.elapsed());
    open.write_all(b"{\"n\":2}\n")
        .expect("write through the handle opened before the change");
    drop(open);
    assert_eq!(
        read(&w.store("team").join("projects/-p/s.jsonl")).as_deref(),
        Some("{\"n\":1}\n{\"n\":2}\n"),
        "the open handle's write went elsewhere"
    );
    write_file(&w.mnt.join("alpha/projects/-q/own.jsonl"), "{}\n");
    assert_eq!(
        read(&w.instance("alpha").join("projects/-q/own.jsonl")).as_deref(),
        Some("{}\n"),
        "an isolated profile's new transcript is not in its instance"
    );
    assert!(absent(&w.store("team").join("projects/-q")));

    // And back to shared (CCS merges alpha's own sessions into the group store).
    w.create(
        "alpha",
        &["--force", "--share-context", "--context-group", "team"],
    );
    let since = Instant::now();
    assert!(
        wait_until(FOLLOW, || read(&w.mnt.join("alpha").join(after)).is_some()),
        "alpha, shared again, does not see the group's session {FOLLOW:?} after the change"
    );
    eprintln!("shared again seen after {:?}", since.elapsed());

    // Remove: `ccs auth remove Bravo --yes` deletes its instance; the mount drops it within a
    // second and never re-creates it, whatever is asked of <mnt>/bravo.
    w.ccs_ok(&["auth", "remove", "Bravo", "--yes"]);
    assert!(absent(&w.instance("bravo")), "ccs left instances/bravo");
    let since = Instant::now();
    assert!(
        wait_until(FOLLOW, || absent(&w.mnt.join("bravo"))
            && !profiles_in(&w.mnt).contains("bravo")),
        "<mnt>/bravo is still there {FOLLOW:?} after ccs auth remove (root: {:?})",
        profiles_in(&w.mnt)
    );
    eprintln!("removal seen after {:?}", since.elapsed());
    for _ in 0..3 {
        let _ = fs::metadata(w.mnt.join("bravo/.credentials.json"));
        assert!(fs::write(w.mnt.join("bravo/.credentials.json"), "x").is_err());
        assert!(fs::create_dir(w.mnt.join("bravo")).is_err());
        let _ = fs::read_dir(w.mnt.join("bravo/projects"));
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(
        absent(&w.instance("bravo")),
        "instances/bravo was re-created"
    );
    assert!(absent(&w.instance("Bravo")), "instances/Bravo was created");
    assert_eq!(profiles_in(&w.mnt), set(&["alpha"]));
}

#[test]
#[ignore = "needs the real ccs (npm @kaitranntt/ccs) and node; scripts/test.sh installs and runs it"]
fn a_refused_write_is_still_logged_after_ccs_cleanup() {
    let w = World::new();
    w.create("alpha", &["--share-context", "--context-group", "team"]);
    w.create("bravo", &["--share-context", "--context-group", "team"]);
    let _m = w.mount();
    let log = w.log_file();
    w.ccs_ok(&["cleanup", "--force"]);
    eprintln!(
        "after ccs cleanup --force, {} {}",
        log.display(),
        if log.exists() { "exists" } else { "is gone" }
    );

    let t = "projects/-p/s.jsonl";
    let store = w.store("team").join("projects/-p/s.jsonl");
    fs::create_dir_all(w.mnt.join("alpha/projects/-p")).unwrap();
    let holder = Holder::start(&w, &w.mnt.join("alpha").join(t), "{\"by\":\"alpha\"}");
    assert!(
        wait_until(Duration::from_secs(10), || read(&store)
            .is_some_and(|s| s.contains("alpha"))),
        "the holder did not write"
    );
    let err = OpenOptions::new()
        .append(true)
        .open(w.mnt.join("bravo").join(t))
        .expect_err("bravo opened a transcript held by alpha's live process");
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");

    let want = format!(
        "refused write to {t} by pid {} (bravo): held by pid {} (alpha)",
        std::process::id(),
        holder.0.id()
    );
    let logged = || read(&log).is_some_and(|s| s.contains(&want));
    assert!(
        wait_until(Duration::from_secs(5), logged),
        "no '{want}' in {} after ccs cleanup --force; it holds: {:?}",
        log.display(),
        read(&log)
    );
}

#[test]
#[ignore = "needs the real ccs (npm @kaitranntt/ccs) and node; scripts/test.sh installs and runs it"]
fn settings_json_rewritten_through_one_profile_is_read_through_another() {
    let w = World::new();
    w.create("alpha", &["--share-context", "--context-group", "team"]);
    w.create("bravo", &[]);
    w.create("loner", &["--bare"]);
    let shared = w.ccs.join("shared/settings.json");
    let before = read(&shared).expect("CCS made <ccs>/shared/settings.json");
    let _m = w.mount();

    let body = format!(
        "{{\"model\":\"haiku\",\"ccsfsTest\":{}}}\n",
        std::process::id()
    );
    let alpha = w.mnt.join("alpha");
    atomic_write(&alpha, "settings.json", &body);
    assert!(
        fs::symlink_metadata(alpha.join("settings.json"))
            .unwrap()
            .file_type()
            .is_file(),
        "settings.json through the mount is not a plain file"
    );
    assert_eq!(
        read(&w.mnt.join("bravo/settings.json")).as_deref(),
        Some(body.as_str()),
        "bravo does not read what alpha saved"
    );
    assert_eq!(
        read(&shared).as_deref(),
        Some(body.as_str()),
        "<ccs>/shared/settings.json"
    );
    assert_eq!(
        read(&w.home.join(".claude/settings.json")).as_deref(),
        Some(body.as_str()),
        "~/.claude/settings.json, where CCS's shared link leads"
    );
    let inst = w.instance("alpha").join("settings.json");
    assert!(
        fs::symlink_metadata(&inst)
            .unwrap()
            .file_type()
            .is_symlink(),
        "alpha's instance settings.json is no longer CCS's link: the accounts drift apart"
    );
    let leftovers: Vec<String> = names(&w.instance("alpha"))
        .into_iter()
        .chain(names(&w.ccs.join("shared")))
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    // commands/ is shared too.
    write_file(&w.mnt.join("bravo/commands/hello.md"), "hello\n");
    assert_eq!(
        read(&w.mnt.join("alpha/commands/hello.md")).as_deref(),
        Some("hello\n")
    );
    assert_eq!(
        read(&w.home.join(".claude/commands/hello.md")).as_deref(),
        Some("hello\n")
    );

    // A profile-local (bare) account keeps its own settings.
    atomic_write(&w.mnt.join("loner"), "settings.json", "{\"mine\":true}\n");
    assert_eq!(
        read(&w.instance("loner").join("settings.json")).as_deref(),
        Some("{\"mine\":true}\n")
    );
    assert_eq!(
        read(&shared).as_deref(),
        Some(body.as_str()),
        "loner wrote the shared copy"
    );
    assert!(absent(&w.mnt.join("loner/commands/hello.md")));

    // plugins/known_marketplaces.json stays per instance (CCS gives each its own).
    let bravo_known = read(&w.instance("bravo").join("plugins/known_marketplaces.json"));
    let mine = "{\"alpha-only\":{}}\n";
    write_file(&w.mnt.join("alpha/plugins/known_marketplaces.json"), mine);
    assert_eq!(
        read(&w.instance("alpha").join("plugins/known_marketplaces.json")).as_deref(),
        Some(mine)
    );
    assert_eq!(
        read(&w.mnt.join("bravo/plugins/known_marketplaces.json")),
        bravo_known,
        "bravo sees alpha's known_marketplaces.json"
    );
    assert_ne!(before, body);
}

#[test]
#[ignore = "needs the real ccs (npm @kaitranntt/ccs) and node; scripts/test.sh installs and runs it"]
fn ccs_launches_claude_through_the_shim_into_the_mount() {
    let w = World::new();
    w.create("alpha", &["--share-context", "--context-group", "team"]);
    w.create("bravo", &["--share-context", "--context-group", "team"]);
    let _m = Unmount(&w);
    assert!(!is_mounted(&w.mnt));

    let shim = w.ccsfs_ok(&["shim"]);
    assert_eq!(shim.lines().count(), 1, "ccsfs shim printed {shim:?}");
    let shim = shim.trim_end().to_string();
    assert!(Path::new(&shim).is_absolute(), "{shim}");
    assert!(
        fs::metadata(&shim).unwrap().permissions().mode() & 0o111 != 0,
        "{shim} is not executable"
    );
    assert_eq!(w.ccsfs_ok(&["shim"]).trim_end(), shim, "ccsfs shim again");

    let standin = w.standin.to_str().unwrap();
    let line = "{\"type\":\"user\",\"from\":\"ccs alpha\"}";
    let env = [
        ("CCS_CLAUDE_PATH", shim.as_str()),
        ("CCSFS_CLAUDE", standin),
        ("STANDIN_TRANSCRIPT", "projects/-proj/s1.jsonl"),
        ("STANDIN_LINE", line),
    ];
    fs::write(&w.calls, "").unwrap(); // forget the login runs of `ccs auth create`
    let out = w.ccs_env(&["alpha", "-p", "hi"], &env);
    assert!(
        out.status.success(),
        "ccs alpha -p hi through the shim ({}): {}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    assert!(
        is_mounted(&w.mnt),
        "the shim did not mount {}",
        w.mnt.display()
    );
    let calls = w.calls();
    let mount_dir = w.mnt.join("alpha").to_string_lossy().into_owned();
    let run = calls
        .iter()
        .find(|(_, args)| args == "-p hi")
        .unwrap_or_else(|| panic!("the stand-in never got `-p hi`: {calls:?}"));
    assert_eq!(
        run.0, mount_dir,
        "CLAUDE_CONFIG_DIR of the real run: {calls:?}"
    );
    for (dir, args) in &calls {
        assert!(
            dir == "(unset)" || dir == &mount_dir,
            "the stand-in ran `{args}` with CLAUDE_CONFIG_DIR={dir}, not inside the mount"
        );
    }
    let store = w.store("team").join("projects/-proj/s1.jsonl");
    assert_eq!(read(&store).as_deref(), Some(format!("{line}\n").as_str()));

    // The lock now applies to `ccs` launches: while bravo's process holds the transcript,
    // the stand-in launched by `ccs alpha` cannot append to it.
    let holder = Holder::start(
        &w,
        &w.mnt.join("bravo/projects/-proj/s1.jsonl"),
        "{\"by\":\"bravo\"}",
    );
    assert!(
        wait_until(Duration::from_secs(10), || read(&store)
            .is_some_and(|s| s.contains("bravo"))),
        "the holder did not write"
    );
    let held = read(&store).unwrap();
    let out = w.ccs_env(&["alpha", "-p", "again"], &env);
    assert!(
        stderr(&out).contains("cannot append") || stdout(&out).contains("cannot append"),
        "the stand-in under ccs alpha appended to a held transcript ({}): {}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(read(&store).unwrap(), held);
    drop(holder);

    // Any other CLAUDE_CONFIG_DIR passes through the shim unchanged.
    let other = w.tmp.path().join("plain-config");
    fs::create_dir_all(&other).unwrap();
    let mut cmd = w.command(Path::new(&shim));
    cmd.args(["--version"])
        .env("CLAUDE_CONFIG_DIR", &other)
        .env("CCSFS_CLAUDE", standin);
    let out = run_with_timeout(cmd, "the shim with another CLAUDE_CONFIG_DIR");
    assert!(out.status.success(), "{}", stderr(&out));
    let last = w.calls().pop().unwrap();
    assert_eq!(
        last,
        (other.to_string_lossy().into_owned(), "--version".into())
    );
}
