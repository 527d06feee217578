//! One benchmark workload against one directory; `scripts/bench.sh` runs it side by side on
//! several filesystems and reports medians. Only the work itself is timed (not process start,
//! not untimed setup such as creating the file a read workload reads).
//!
//! ```text
//! bench WORKLOAD DIR [key=value ...]
//! ```
//!
//! Prints one line per measurement, `workload=NAME seconds=S ops=N`, on stdout. Any failing
//! syscall ends the run with a message on stderr and exit status 1.
//!
//! | workload   | keys (default)                   | what is timed |
//! |------------|----------------------------------|---------------|
//! | `appends`  | n=4000 size=500                  | n × (open `O_WRONLY\|O_APPEND\|O_CREAT`, one write of a JSONL line, close) on `DIR/transcript.jsonl` |
//! | `sessions` | n=2000 dirs=40 size=2048         | n × (mkdir -p `DIR/proj-K`, create a new `*.jsonl`, write, close), round-robin over the dirs |
//! | `picker`   | reps=5                           | reps × (readdir `DIR`, readdir each subdir, lstat each entry); one untimed pass first |
//! | `picker_cold` | reps=3 wait_ms=1500 drop=0    | reps × the same pass, each cold: first (untimed) a wait of `wait_ms` so that the kernel's cached entries and attributes expire, and with `drop=1` (root) `echo 2 > /proc/sys/vm/drop_caches` so that its dentries and inodes are gone too |
//! | `atomic`   | n=1000 size=4096                 | n × (write `DIR/.claude.json.tmp.PID.I`, fsync, rename over `DIR/.claude.json`) |
//! | `seqrw`    | mib=512                          | write `DIR/seq.bin` in 1 MiB blocks + fsync + close (`seqwrite`), then read it back in 1 MiB blocks (`seqread`); `seqrw` is the sum |
//! | `reads`    | mib=64                           | `DIR/read.bin` (written untimed, fsynced) read start to end in 4 KiB `read()` calls (`reads4k_seq`), then the same number of 4 KiB `pread()`s at random aligned offsets (`reads4k_rand`) |
//! | `populate` | dirs=100 files=100000            | untimed helper: `files` empty files spread over `DIR/dNNN` |
//! | `statall`  | dirs=100 files=100000            | lstat of every file `populate` made; failures are counted (`errors=N`), not fatal |

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::exit;
use std::time::Instant;

type Res<T> = Result<T, String>;

fn ctx<T>(what: &str, path: &Path, r: std::io::Result<T>) -> Res<T> {
    r.map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn report(workload: &str, seconds: f64, ops: u64) {
    println!("workload={workload} seconds={seconds:.6} ops={ops}");
}

/// A deterministic, non-zero payload of `len` bytes ending in a newline (a JSONL record).
fn jsonl_line(i: usize, len: usize) -> Vec<u8> {
    let mut s = format!(
        "{{\"type\":\"assistant\",\"uuid\":\"{i:08x}-0000-4000-8000-{i:012x}\",\"message\":{{\"role\":\"assistant\",\"content\":\""
    );
    let tail = "\"}}\n";
    while s.len() + tail.len() < len {
        s.push(char::from(b'a' + (s.len() % 26) as u8));
    }
    s.push_str(tail);
    s.into_bytes()
}

fn block(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 + 1).collect()
}

struct Args {
    kv: HashMap<String, String>,
}

impl Args {
    fn num(&self, key: &str, default: u64) -> Res<u64> {
        match self.kv.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{key}={v}: expected a number")),
        }
    }
}

fn appends(dir: &Path, a: &Args) -> Res<()> {
    let n = a.num("n", 4000)? as usize;
    let size = a.num("size", 500)? as usize;
    let path = dir.join("transcript.jsonl");
    let lines: Vec<Vec<u8>> = (0..n).map(|i| jsonl_line(i, size)).collect();
    let t = Instant::now();
    for line in &lines {
        let mut f = ctx(
            "open",
            &path,
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&path),
        )?;
        ctx("write", &path, f.write_all(line))?;
    }
    let secs = t.elapsed().as_secs_f64();
    let len = ctx("stat", &path, fs::metadata(&path))?.len();
    if len != (n * size) as u64 {
        return Err(format!(
            "{}: {len} bytes after {n} appends of {size}",
            path.display()
        ));
    }
    report("appends", secs, n as u64);
    Ok(())
}

fn session_path(dir: &Path, i: usize, dirs: usize) -> (PathBuf, PathBuf) {
    let d = dir.join(format!("proj-{:02}", i % dirs));
    let f = d.join(format!("{i:08x}-0000-4000-8000-{:012x}.jsonl", i * 7919));
    (d, f)
}

fn sessions(dir: &Path, a: &Args) -> Res<()> {
    let n = a.num("n", 2000)? as usize;
    let dirs = a.num("dirs", 40)?.max(1) as usize;
    let size = a.num("size", 2048)? as usize;
    let data = jsonl_line(0, size);
    let t = Instant::now();
    for i in 0..n {
        let (d, f) = session_path(dir, i, dirs);
        ctx("mkdir -p", &d, fs::create_dir_all(&d))?;
        let mut file = ctx(
            "create",
            &f,
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&f),
        )?;
        ctx("write", &f, file.write_all(&data))?;
    }
    report("sessions", t.elapsed().as_secs_f64(), n as u64);
    Ok(())
}

/// One picker pass: every project dir's entries, each lstat'ed. Returns the number of files.
fn picker_pass(dir: &Path) -> Res<u64> {
    let mut files = 0;
    for proj in ctx("readdir", dir, fs::read_dir(dir))? {
        let proj = ctx("readdir", dir, proj)?;
        if !ctx("lstat", &proj.path(), proj.file_type())?.is_dir() {
            continue;
        }
        let pdir = proj.path();
        for e in ctx("readdir", &pdir, fs::read_dir(&pdir))? {
            let p = ctx("readdir", &pdir, e)?.path();
            ctx("lstat", &p, fs::symlink_metadata(&p))?;
            files += 1;
        }
    }
    Ok(files)
}

fn picker(dir: &Path, a: &Args) -> Res<()> {
    let reps = a.num("reps", 5)?;
    let files = picker_pass(dir)?;
    let t = Instant::now();
    for _ in 0..reps {
        let again = picker_pass(dir)?;
        if again != files {
            return Err(format!("{}: {files} files, then {again}", dir.display()));
        }
    }
    report("picker", t.elapsed().as_secs_f64(), reps * files);
    Ok(())
}

/// The picker as `claude --resume` meets it: sessions made minutes or days ago, whose cached
/// entries and attributes have long expired. Each timed pass follows an untimed wait past
/// the attribute TTL (ccsfs's and the peers' defaults are 1 s) and, with `drop=1`, dropping
/// the kernel's dentries and inodes (FUSE inodes are then forgotten and looked up again).
fn picker_cold(dir: &Path, a: &Args) -> Res<()> {
    let reps = a.num("reps", 3)?;
    let wait = std::time::Duration::from_millis(a.num("wait_ms", 1500)?);
    let drop = a.num("drop", 0)? != 0;
    let files = picker_pass(dir)?;
    let mut secs = 0.0;
    for _ in 0..reps {
        std::thread::sleep(wait);
        if drop {
            let path = Path::new("/proc/sys/vm/drop_caches");
            ctx("write 2 to", path, fs::write(path, "2\n"))?;
        }
        let t = Instant::now();
        let again = picker_pass(dir)?;
        secs += t.elapsed().as_secs_f64();
        if again != files {
            return Err(format!("{}: {files} files, then {again}", dir.display()));
        }
    }
    report("picker_cold", secs, reps * files);
    Ok(())
}

fn atomic(dir: &Path, a: &Args) -> Res<()> {
    let n = a.num("n", 1000)? as usize;
    let size = a.num("size", 4096)? as usize;
    let target = dir.join(".claude.json");
    let data = jsonl_line(1, size);
    let pid = std::process::id();
    let t = Instant::now();
    for i in 0..n {
        let tmp = dir.join(format!(".claude.json.tmp.{pid}.{i}"));
        let mut f = ctx(
            "create",
            &tmp,
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp),
        )?;
        ctx("write", &tmp, f.write_all(&data))?;
        ctx("fsync", &tmp, f.sync_all())?;
        drop(f);
        ctx("rename", &tmp, fs::rename(&tmp, &target))?;
    }
    report("atomic", t.elapsed().as_secs_f64(), n as u64);
    Ok(())
}

/// Writes `mib` MiB in 1 MiB blocks, fsyncs and closes.
fn write_file(path: &Path, mib: u64) -> Res<()> {
    let buf = block(1 << 20);
    let mut f = ctx(
        "create",
        path,
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path),
    )?;
    for _ in 0..mib {
        ctx("write", path, f.write_all(&buf))?;
    }
    ctx("fsync", path, f.sync_all())
}

/// Reads the whole file with `read()` calls of `bs` bytes; returns the bytes read.
fn read_file(path: &Path, bs: usize) -> Res<u64> {
    let mut f = ctx("open", path, File::open(path))?;
    let mut buf = vec![0u8; bs];
    let mut total = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(k) => total += k as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read {}: {e}", path.display())),
        }
    }
}

fn seqrw(dir: &Path, a: &Args) -> Res<()> {
    let mib = a.num("mib", 512)?;
    let path = dir.join("seq.bin");
    let t = Instant::now();
    write_file(&path, mib)?;
    let w = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let got = read_file(&path, 1 << 20)?;
    let r = t.elapsed().as_secs_f64();
    if got != mib << 20 {
        return Err(format!(
            "{}: read {got} bytes of {}",
            path.display(),
            mib << 20
        ));
    }
    ctx("unlink", &path, fs::remove_file(&path))?;
    report("seqwrite", w, mib);
    report("seqread", r, mib);
    report("seqrw", w + r, 2 * mib);
    Ok(())
}

fn reads(dir: &Path, a: &Args) -> Res<()> {
    let mib = a.num("mib", 64)?;
    let path = dir.join("read.bin");
    write_file(&path, mib)?;
    let blocks = (mib << 20) / 4096;
    let t = Instant::now();
    let got = read_file(&path, 4096)?;
    let secs = t.elapsed().as_secs_f64();
    if got != mib << 20 {
        return Err(format!(
            "{}: read {got} bytes of {}",
            path.display(),
            mib << 20
        ));
    }
    report("reads4k_seq", secs, blocks);
    let f = ctx("open", &path, File::open(&path))?;
    let mut buf = [0u8; 4096];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let t = Instant::now();
    for _ in 0..blocks {
        // xorshift64: cheap, deterministic, uniform enough for offsets.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = (x % blocks) * 4096;
        ctx("pread", &path, f.read_exact_at(&mut buf, off))?;
    }
    report("reads4k_rand", t.elapsed().as_secs_f64(), blocks);
    ctx("unlink", &path, fs::remove_file(&path))?;
    Ok(())
}

fn rss_files(dir: &Path, a: &Args) -> Res<Vec<PathBuf>> {
    let dirs = a.num("dirs", 100)?.max(1) as usize;
    let files = a.num("files", 100_000)? as usize;
    Ok((0..files)
        .map(|i| {
            dir.join(format!("d{:03}", i % dirs))
                .join(format!("f{i:06}"))
        })
        .collect())
}

fn populate(dir: &Path, a: &Args) -> Res<()> {
    let paths = rss_files(dir, a)?;
    let t = Instant::now();
    for p in &paths {
        let d = p.parent().expect("file has a parent");
        if !d.exists() {
            ctx("mkdir -p", d, fs::create_dir_all(d))?;
        }
        ctx(
            "create",
            p,
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(p),
        )?;
    }
    report("populate", t.elapsed().as_secs_f64(), paths.len() as u64);
    Ok(())
}

fn statall(dir: &Path, a: &Args) -> Res<()> {
    let paths = rss_files(dir, a)?;
    let mut failed = 0u64;
    let mut first = None;
    let t = Instant::now();
    for p in &paths {
        if let Err(e) = fs::symlink_metadata(p) {
            failed += 1;
            first.get_or_insert_with(|| format!("lstat {}: {e}", p.display()));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    // Keep going past failures (e.g. a daemon out of fds): the daemon's memory is still worth
    // reading, so failures are counted rather than fatal.
    if let Some(first) = first {
        eprintln!(
            "bench statall: {failed} of {} lstat calls failed; first: {first}",
            paths.len()
        );
    }
    println!(
        "workload=statall seconds={secs:.6} ops={} errors={failed}",
        paths.len()
    );
    Ok(())
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.len() < 2 {
        eprintln!(
            "usage: bench appends|sessions|picker|picker_cold|atomic|seqrw|reads|populate|statall DIR [key=value ...]"
        );
        exit(2);
    }
    let dir = PathBuf::from(&argv[1]);
    let mut kv = HashMap::new();
    for s in &argv[2..] {
        match s.split_once('=') {
            Some((k, v)) => {
                kv.insert(k.to_string(), v.to_string());
            }
            None => {
                eprintln!("bench: {s}: expected key=value");
                exit(2);
            }
        }
    }
    let a = Args { kv };
    let run = match argv[0].as_str() {
        "appends" => appends,
        "sessions" => sessions,
        "picker" => picker,
        "picker_cold" => picker_cold,
        "atomic" => atomic,
        "seqrw" => seqrw,
        "reads" => reads,
        "populate" => populate,
        "statall" => statall,
        w => {
            eprintln!("bench: unknown workload {w}");
            exit(2);
        }
    };
    if let Err(e) = run(&dir, &a) {
        eprintln!("bench {}: {e}", argv[0]);
        exit(1);
    }
}
