//! Which accounts are cooling down after hitting their limit, and until when:
//! `<ccs-dir>/ccsfs/cooling.json`, a serde record per instance dir. Written atomically (temp
//! file, fsync, rename) under an flock on `cooling.lock`, so two runs that hit limits at once
//! both land; entries past their reset are dropped at the next write and ignored before.
//! The reading (`CoolingFile::active`) is pure.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One account's cool-down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cooling {
    /// Unix seconds at which the account may be used again.
    pub until: i64,
    /// Unix seconds at which it hit its limit.
    pub since: i64,
    /// What Claude Code said (its limit message), for `ccsfs status`.
    pub message: String,
    /// `until` was read from the message (else it is the default cooldown).
    pub reset_from_message: bool,
    /// The session that was refused.
    #[serde(default)]
    pub session: Option<String>,
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoolingFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Cooling>,
}

impl CoolingFile {
    /// The cool-down of instance dir `dir` still running at `now`.
    pub fn active(&self, dir: &str, now: i64) -> Option<&Cooling> {
        self.profiles.get(dir).filter(|c| c.until > now)
    }

    fn prune(&mut self, now: i64) {
        self.profiles.retain(|_, c| c.until > now);
    }
}

/// `<ccs-dir>/ccsfs/cooling.json`
pub fn file(ccs_dir: &Path) -> PathBuf {
    ccs_dir.join("ccsfs").join("cooling.json")
}

/// The recorded cool-downs; none when the file is missing or unreadable (a damaged file only
/// loses what it remembered: the accounts are tried again and re-marked when refused).
pub fn load(ccs_dir: &Path) -> CoolingFile {
    std::fs::read(file(ccs_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Records `entry` for instance dir `dir` (replacing an older one), dropping expired ones.
pub fn mark(ccs_dir: &Path, dir: &str, entry: Cooling, now: i64) -> Result<(), String> {
    update(ccs_dir, now, |f| {
        f.profiles.insert(dir.to_string(), entry);
    })
}

/// Forgets `dir`'s cool-down (all of them when None). Returns how many were forgotten.
pub fn clear(ccs_dir: &Path, dir: Option<&str>, now: i64) -> Result<usize, String> {
    let mut n = 0;
    update(ccs_dir, now, |f| {
        n = match dir {
            Some(d) => usize::from(f.profiles.remove(d).is_some()),
            None => std::mem::take(&mut f.profiles).len(),
        };
    })?;
    Ok(n)
}

fn update(ccs_dir: &Path, now: i64, change: impl FnOnce(&mut CoolingFile)) -> Result<(), String> {
    let path = file(ccs_dir);
    let dir = path.parent().expect("a parent");
    let fail = |what: &str, e: std::io::Error| {
        format!(
            "cannot {what} {}: {e}; check that the CCS dir is yours and writable",
            dir.display()
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("create", e))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("cooling.lock"))
        .map_err(|e| fail("lock a file in", e))?;
    rustix::fs::flock(lock.as_fd(), rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| fail("lock a file in", e.into()))?;
    let mut state = load(ccs_dir);
    change(&mut state);
    state.prune(now);
    let mut bytes = serde_json::to_vec_pretty(&state).expect("plain data serializes");
    bytes.push(b'\n');
    crate::atomic_file::replace(&path, &bytes, 0o600).map_err(|e| fail("write a file in", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(until: i64) -> Cooling {
        Cooling {
            until,
            since: 10,
            message: "You've hit your session limit · resets 5am (UTC)".into(),
            reset_from_message: true,
            session: Some("s".into()),
        }
    }

    #[test]
    fn mark_load_clear() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()), CoolingFile::default());
        mark(d.path(), "work", entry(100), 50).unwrap();
        mark(d.path(), "personal", entry(200), 50).unwrap();
        let f = load(d.path());
        assert_eq!(f.active("work", 50), Some(&entry(100)));
        assert_eq!(f.active("work", 100), None);
        // An expired entry goes at the next write.
        mark(d.path(), "spare", entry(300), 150).unwrap();
        let f = load(d.path());
        assert!(!f.profiles.contains_key("work"));
        assert_eq!(f.profiles.len(), 2);
        assert_eq!(clear(d.path(), Some("spare"), 150).unwrap(), 1);
        assert_eq!(clear(d.path(), Some("spare"), 150).unwrap(), 0);
        assert_eq!(clear(d.path(), None, 150).unwrap(), 1);
        assert!(load(d.path()).profiles.is_empty());
        // No temp file is left beside it.
        let names: Vec<_> = std::fs::read_dir(d.path().join("ccsfs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with(".cooling")),
            "{names:?}"
        );
    }

    #[test]
    fn damaged_file_is_empty() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("ccsfs")).unwrap();
        std::fs::write(file(d.path()), b"{\"profiles\": [").unwrap();
        assert_eq!(load(d.path()), CoolingFile::default());
        mark(d.path(), "work", entry(100), 50).unwrap();
        assert!(load(d.path()).active("work", 60).is_some());
    }
}
