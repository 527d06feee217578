//! What Claude Code does to its config dir, on a real mount: transcript appends (one
//! open/append/close per JSON line, also alternating between two profiles on the same file),
//! atomic config rewrites (tmp + fsync + rename) under a concurrent reader, proper-lockfile's
//! lock dirs beside and inside a profile, and the session picker listing every transcript
//! through the other profile.

mod common;
#[path = "common/sys.rs"]
mod sys;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Ccs, THREE_PROFILES};
use sys::{expect_errno, names, ts, utimensat};

fn uuid(i: usize) -> String {
    let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (h >> 20) & 0xfff,
        i
    )
}

/// One ~500-byte transcript line (ends in '\n'); the padding letter varies with `i`.
fn line(i: usize, who: &str) -> String {
    let head = format!(
        "{{\"type\":\"user\",\"seq\":{i},\"from\":\"{who}\",\"uuid\":\"{}\",\"message\":\"",
        uuid(i)
    );
    let tail = "\"}\n";
    let pad = 500 - head.len() - tail.len();
    let c = (b'a' + (i % 26) as u8) as char;
    format!("{head}{}{tail}", c.to_string().repeat(pad))
}

fn append_line(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for append: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

/// Asserts `got` is exactly `want`, naming the first differing line when it is not.
#[track_caller]
fn assert_same_lines(got: &[u8], want: &str, what: &str) {
    if got == want.as_bytes() {
        return;
    }
    let got = String::from_utf8_lossy(got);
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    let first = g.iter().zip(&w).position(|(a, b)| a != b);
    panic!(
        "{what}: {} bytes / {} lines, want {} bytes / {} lines; first differing line: {:?}",
        got.len(),
        g.len(),
        want.len(),
        w.len(),
        first.map(|i| (i, &g[i][..g[i].len().min(80)], &w[i][..w[i].len().min(80)]))
    );
}

#[test]
fn transcript_appends_keep_every_line_in_order() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let work = ccs.profile("work");
    fs::create_dir(work.join("projects/-tmp-proj")).unwrap();
    let name = format!("-tmp-proj/{}.jsonl", uuid(7));
    let path = work.join("projects").join(&name);
    let mut want = String::new();
    for i in 0..1000 {
        let l = line(i, "work");
        append_line(&path, &l);
        want.push_str(&l);
    }
    assert!(want.len() > 490_000);
    assert_same_lines(&fs::read(&path).unwrap(), &want, "via work");
    assert_same_lines(
        &fs::read(ccs.group_projects("team").join(&name)).unwrap(),
        &want,
        "group store",
    );
    let via_personal = ccs.profile("personal").join("projects").join(&name);
    assert_eq!(
        fs::metadata(&via_personal).unwrap().len(),
        want.len() as u64
    );
    assert_same_lines(&fs::read(&via_personal).unwrap(), &want, "via personal");
}

#[test]
fn appends_alternating_between_profiles_never_overwrite() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let rel = format!("projects/{}.jsonl", uuid(1));
    let paths = [
        ccs.profile("work").join(&rel),
        ccs.profile("personal").join(&rel),
    ];
    let mut want = String::new();
    for i in 0..200 {
        let who = ["work", "personal"][i % 2];
        let l = line(i, who);
        append_line(&paths[i % 2], &l);
        want.push_str(&l);
    }
    assert_same_lines(
        &fs::read(
            ccs.group_projects("team")
                .join(rel.trim_start_matches("projects/")),
        )
        .unwrap(),
        &want,
        "group store after alternating appends",
    );
    for (p, path) in ["work", "personal"].iter().zip(&paths) {
        assert_eq!(
            fs::metadata(path).unwrap().len(),
            want.len() as u64,
            "size via {p}"
        );
        assert_same_lines(&fs::read(path).unwrap(), &want, &format!("via {p}"));
    }
}

/// A self-checking JSON document: its length depends on `n`, so a mix of two is detectable.
fn doc(n: usize) -> String {
    let pad = "x".repeat(50 + (n * 37) % 3000);
    format!("{{\"n\":{n},\"pad\":\"{pad}\",\"end\":{n}}}\n")
}

fn check_doc(bytes: &[u8]) -> Result<usize, String> {
    let s = std::str::from_utf8(bytes).map_err(|_| format!("not UTF-8 ({} bytes)", bytes.len()))?;
    let n: usize = s
        .strip_prefix("{\"n\":")
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("not a document: {:?}", &s[..s.len().min(40)]))?;
    if s == doc(n) {
        Ok(n)
    } else {
        Err(format!(
            "document {n} damaged: {} bytes, want {}",
            s.len(),
            doc(n).len()
        ))
    }
}

fn atomic_rewrites_under_a_reader(ccs: &Ccs, profile: &str, file: &str) {
    let dir = ccs.profile(profile);
    let target = dir.join(file);
    fs::write(&target, doc(0)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, target) = (done.clone(), target.clone());
        std::thread::spawn(move || {
            let (mut reads, mut errors, mut last) = (0usize, Vec::new(), 0usize);
            while !done.load(Ordering::Relaxed) || reads < 50 {
                reads += 1;
                match fs::read(&target) {
                    Ok(b) => match check_doc(&b) {
                        Ok(n) if n < last => errors.push(format!("went back from {last} to {n}")),
                        Ok(n) => last = n,
                        Err(e) => errors.push(e),
                    },
                    Err(e) => errors.push(format!("read failed: {e}")),
                }
            }
            (reads, errors)
        })
    };
    for n in 1..=200 {
        let tmp = dir.join(format!("{file}.tmp-{n}"));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .unwrap();
        f.write_all(doc(n).as_bytes()).unwrap();
        f.sync_all().unwrap();
        drop(f);
        fs::rename(&tmp, &target).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let (reads, errors) = reader.join().unwrap();
    assert!(
        errors.is_empty(),
        "{profile}/{file}: {} of {reads} reads were bad, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), doc(200));
    assert_eq!(
        fs::read_to_string(ccs.instance(profile).join(file)).unwrap(),
        doc(200)
    );
    assert!(!names(&dir).iter().any(|n| n.contains(".tmp-")));
}

#[test]
fn atomic_claude_json_rewrites_are_never_seen_half_done() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    atomic_rewrites_under_a_reader(&ccs, "work", ".claude.json");
}

#[test]
fn atomic_settings_json_rewrites_are_never_seen_half_done() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    atomic_rewrites_under_a_reader(&ccs, "personal", "settings.json");
}

/// proper-lockfile: mkdir the lock, refresh its mtime, stat it, remove it.
fn lock_cycle(lock: &Path, backing: &Path) {
    fs::create_dir(lock).unwrap_or_else(|e| panic!("mkdir {}: {e}", lock.display()));
    expect_errno(
        fs::create_dir(lock),
        libc::EEXIST,
        &format!("second mkdir {}", lock.display()),
    );
    assert!(
        backing.is_dir(),
        "{} should back {}",
        backing.display(),
        lock.display()
    );
    let when = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 5;
    utimensat(lock, ts(when, 250_000_000), ts(when, 500_000_000))
        .unwrap_or_else(|e| panic!("utimes {}: {e}", lock.display()));
    let md = fs::metadata(lock).unwrap();
    assert!(md.is_dir());
    assert_eq!(
        (md.mtime(), md.mtime_nsec()),
        (when, 500_000_000),
        "{}",
        lock.display()
    );
    let bmd = fs::metadata(backing).unwrap();
    assert_eq!((bmd.mtime(), bmd.mtime_nsec()), (when, 500_000_000));
    fs::remove_dir(lock).unwrap_or_else(|e| panic!("rmdir {}: {e}", lock.display()));
    assert!(fs::symlink_metadata(lock).is_err());
    assert!(!backing.exists());
}

#[test]
fn lock_dirs_beside_and_inside_a_profile() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    lock_cycle(
        &ccs.mnt.join("work.lock"),
        &ccs.ccs.join("instances/work.lock"),
    );
    lock_cycle(
        &ccs.profile("work").join(".claude.json.lock"),
        &ccs.instance("work").join(".claude.json.lock"),
    );
    lock_cycle(
        &ccs.profile("work").join("projects/x.lock"),
        &ccs.group_projects("team").join("x.lock"),
    );
    expect_errno(
        fs::create_dir(ccs.mnt.join("nobody.lock")),
        libc::EPERM,
        "mkdir <mnt>/nobody.lock",
    );
    assert!(!ccs.ccs.join("instances/nobody.lock").exists());

    // The lock is listed while held, and a shared lock is seen by the other profile.
    fs::create_dir(ccs.mnt.join("work.lock")).unwrap();
    assert!(names(&ccs.mnt).contains("work.lock"));
    fs::create_dir(ccs.profile("work").join("projects/s.lock")).unwrap();
    expect_errno(
        fs::create_dir(ccs.profile("personal").join("projects/s.lock")),
        libc::EEXIST,
        "personal takes a lock work holds",
    );
}

#[test]
fn lock_dir_mkdir_race_has_exactly_one_winner() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    for round in 0..20 {
        let locks = [
            ccs.mnt.join("personal.lock"),
            ccs.profile("work").join("projects/r.lock"),
            ccs.profile("personal").join("projects/r.lock"),
        ];
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|t| {
                let barrier = barrier.clone();
                let lock = locks[t % 3].clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    match fs::create_dir(&lock) {
                        Ok(()) => Some(true),
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Some(false),
                        Err(e) => panic!("mkdir {}: {e}", lock.display()),
                    }
                })
            })
            .collect();
        let won: Vec<bool> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        // personal.lock is contended by threads 0 and 3; r.lock by 1, 2, 4, 5 via two profiles.
        assert_eq!(
            won[0] as u8 + won[3] as u8,
            1,
            "round {round}: personal.lock winners"
        );
        let shared_winners = [1, 2, 4, 5].iter().filter(|&&i| won[i]).count();
        assert_eq!(shared_winners, 1, "round {round}: projects/r.lock winners");
        fs::remove_dir(&locks[0]).unwrap();
        fs::remove_dir(&locks[1]).unwrap();
    }
}

#[test]
fn session_picker_sees_every_transcript_through_the_other_profile() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let work = ccs.profile("work").join("projects");
    let mut want = std::collections::BTreeMap::new();
    for d in 0..10 {
        let dir = format!("-home-u-proj{d}");
        fs::create_dir(work.join(&dir)).unwrap();
        for f in 0..20 {
            let i = d * 20 + f;
            let name = format!("{}.jsonl", uuid(i));
            let body = line(i, "work").repeat(1 + i % 5);
            fs::write(work.join(&dir).join(&name), &body).unwrap();
            want.insert(format!("{dir}/{name}"), body.len() as u64);
        }
    }
    let personal = ccs.profile("personal").join("projects");
    let mut got = std::collections::BTreeMap::new();
    for d in fs::read_dir(&personal).unwrap() {
        let d = d.unwrap();
        assert!(d.file_type().unwrap().is_dir());
        for f in fs::read_dir(d.path()).unwrap() {
            let f = f.unwrap();
            let md = f.metadata().unwrap();
            let key = format!(
                "{}/{}",
                d.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            );
            assert!(
                got.insert(key.clone(), md.len()).is_none(),
                "{key} listed twice"
            );
            assert!(md.modified().unwrap() > SystemTime::now() - Duration::from_secs(600));
        }
    }
    assert_eq!(got.len(), 200);
    assert_eq!(got, want);
}

#[test]
fn concurrent_appends_from_two_profiles_lose_nothing() {
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let rel = format!("projects/{}.jsonl", uuid(2));
    let writers: Vec<_> = ["work", "personal"]
        .into_iter()
        .map(|who| {
            let path = ccs.profile(who).join(&rel);
            std::thread::spawn(move || {
                for i in 0..500 {
                    append_line(&path, &line(i, who));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let data = fs::read(
        ccs.group_projects("team")
            .join(rel.trim_start_matches("projects/")),
    )
    .unwrap();
    assert_eq!(data.len(), 2 * 500 * 500, "total bytes in the group store");
    let text = String::from_utf8(data).unwrap();
    let mut next = std::collections::HashMap::from([("work", 0usize), ("personal", 0usize)]);
    for (n, l) in text.split_inclusive('\n').enumerate() {
        let who = if l.contains("\"from\":\"work\"") {
            "work"
        } else {
            "personal"
        };
        let i = next[who];
        assert_eq!(
            l,
            line(i, who),
            "line {n}: not {who}'s line {i}: {}",
            &l[..l.len().min(160)]
        );
        *next.get_mut(who).unwrap() += 1;
    }
    assert_eq!((next["work"], next["personal"]), (500, 500));
    for who in ["work", "personal"] {
        assert_eq!(
            fs::read(ccs.profile(who).join(&rel)).unwrap(),
            text.as_bytes(),
            "via {who}"
        );
    }
}
