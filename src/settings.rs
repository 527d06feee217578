//! ccsfs's own settings, `<ccs-dir>/ccsfs/config.yaml` (pure: parse, defaults, one-line
//! errors). CCS rewrites its own `config.yaml` from the sections it knows and drops any other
//! top-level key, so ccsfs cannot keep its settings there. A missing file means every default;
//! unknown keys are ignored (a newer ccsfs may have written them). One section per feature:
//!
//! ```yaml
//! trash:
//!   keep_days: 30   # how long a deleted shared transcript stays restorable
//!   max_mb: 1024    # at most this much trash per group store; the oldest goes first
//! failover:         # `ccsfs run`: when an account hits its limit, go on under the next
//!   order: [work, personal, spare]   # (of the same group, after the one that ran)
//!   cooldown_minutes: 60             # when Claude's message names no reset time
//! ```
//! (`failover: [work, personal]` is the order alone.)

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Claude Code's own default `cleanupPeriodDays`: a transcript its cleanup swept stays
/// restorable for as long again.
pub const DEFAULT_KEEP_DAYS: u64 = 30;
/// Per group store.
pub const DEFAULT_MAX_MB: u64 = 1024;
/// How long an account that hit its limit is passed over when Claude Code's message names no
/// reset time (an API key's rate limit says "try again later").
pub const DEFAULT_COOLDOWN_MINUTES: u64 = 60;

/// Everything in `<ccs-dir>/ccsfs/config.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub trash: TrashSettings,
    pub failover: FailoverSettings,
}

/// `failover:`: the order `ccsfs run` goes on in when no `--failover` is given, and the
/// cooldown of an account whose reset time is not known.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "FailoverForm")]
pub struct FailoverSettings {
    /// Profiles (account or instance dir names), in failover order.
    pub order: Vec<String>,
    pub cooldown_minutes: u64,
}

impl Default for FailoverSettings {
    fn default() -> FailoverSettings {
        FailoverSettings {
            order: Vec::new(),
            cooldown_minutes: DEFAULT_COOLDOWN_MINUTES,
        }
    }
}

/// Either spelling of `failover:`: a list (the order alone) or a section.
#[derive(Deserialize)]
#[serde(untagged)]
enum FailoverForm {
    Order(Vec<String>),
    Section {
        #[serde(default)]
        order: Vec<String>,
        #[serde(default = "default_cooldown")]
        cooldown_minutes: u64,
    },
}

fn default_cooldown() -> u64 {
    DEFAULT_COOLDOWN_MINUTES
}

impl From<FailoverForm> for FailoverSettings {
    fn from(f: FailoverForm) -> FailoverSettings {
        match f {
            FailoverForm::Order(order) => FailoverSettings {
                order,
                ..FailoverSettings::default()
            },
            FailoverForm::Section {
                order,
                cooldown_minutes,
            } => FailoverSettings {
                order,
                cooldown_minutes,
            },
        }
    }
}

/// `trash:`: how long and how much of the shared deletions is kept (see `crate::trash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TrashSettings {
    /// Entries older than this many days are purged.
    pub keep_days: u64,
    /// Past this many MiB in one group store's trash, the oldest entries are purged.
    pub max_mb: u64,
}

impl Default for TrashSettings {
    fn default() -> TrashSettings {
        TrashSettings {
            keep_days: DEFAULT_KEEP_DAYS,
            max_mb: DEFAULT_MAX_MB,
        }
    }
}

impl TrashSettings {
    pub fn max_bytes(&self) -> u64 {
        self.max_mb.saturating_mul(1024 * 1024)
    }

    pub fn keep_secs(&self) -> u64 {
        self.keep_days.saturating_mul(86_400)
    }
}

/// `<ccs-dir>/ccsfs/config.yaml`
pub fn settings_file(ccs_dir: &Path) -> PathBuf {
    ccs_dir.join("ccsfs").join("config.yaml")
}

/// Parses the text of the settings file (`file` names it in the error).
pub fn parse(text: &str, file: &Path) -> Result<Settings, String> {
    if text.trim().is_empty() {
        return Ok(Settings::default());
    }
    // A file of comments only is YAML null: every default.
    let value: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| bad(file, &e))?;
    if value.is_null() {
        return Ok(Settings::default());
    }
    yaml_serde::from_value(value).map_err(|e| bad(file, &e))
}

fn bad(file: &Path, e: &dyn std::fmt::Display) -> String {
    let why = e.to_string().replace('\n', " ");
    format!(
        "{}: {why}; fix or remove the file (settings: trash: keep_days: N, max_mb: N; failover: order: [profiles], cooldown_minutes: N)",
        file.display()
    )
}

/// Reads the settings of the CCS dir: defaults when the file is missing, one line naming the
/// file and the fix when it cannot be read or parsed.
pub fn load(ccs_dir: &Path) -> Result<Settings, String> {
    let file = settings_file(ccs_dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => parse(&text, &file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(format!(
            "cannot read {}: {e}; fix its permissions or remove it",
            file.display()
        )),
    }
}

/// For the daemon: the settings, or the defaults and one log line when the file is bad.
pub fn load_or_default(ccs_dir: &Path) -> Settings {
    load(ccs_dir).unwrap_or_else(|e| {
        log::warn!("{e}; using the defaults");
        Settings::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Settings, String> {
        parse(text, Path::new("/c/ccsfs/config.yaml"))
    }

    #[test]
    fn missing_or_empty_is_default() {
        assert_eq!(p("").unwrap(), Settings::default());
        assert_eq!(p("# nothing yet\n").unwrap(), Settings::default());
        assert_eq!(Settings::default().trash.keep_days, 30);
        assert_eq!(Settings::default().trash.max_mb, 1024);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), Settings::default());
    }

    #[test]
    fn partial_sections_keep_the_other_defaults() {
        let s = p("trash:\n  max_mb: 1\n").unwrap();
        assert_eq!(s.trash.max_mb, 1);
        assert_eq!(s.trash.keep_days, DEFAULT_KEEP_DAYS);
        assert_eq!(s.trash.max_bytes(), 1 << 20);
        let s = p("trash:\n  keep_days: 0\n").unwrap();
        assert_eq!(s.trash.keep_secs(), 0);
        assert_eq!(s.trash.max_mb, DEFAULT_MAX_MB);
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let s = p("later:\n  order: [a, b]\ntrash:\n  keep_days: 7\n  colour: red\n").unwrap();
        assert_eq!(s.trash.keep_days, 7);
    }

    #[test]
    fn failover_both_forms() {
        let s = p("failover: [work, personal]\n").unwrap();
        assert_eq!(s.failover.order, ["work", "personal"]);
        assert_eq!(s.failover.cooldown_minutes, DEFAULT_COOLDOWN_MINUTES);
        let s = p("failover:\n  order: [a, b]\n  cooldown_minutes: 5\n").unwrap();
        assert_eq!(s.failover.order, ["a", "b"]);
        assert_eq!(s.failover.cooldown_minutes, 5);
        let s = p("failover:\n  cooldown_minutes: 5\n").unwrap();
        assert!(s.failover.order.is_empty());
        assert_eq!(
            p("trash: {}\n").unwrap().failover,
            FailoverSettings::default()
        );
        let e = p("failover: personal\n").unwrap_err();
        assert!(e.contains("failover: order:"), "{e}");
    }

    #[test]
    fn malformed_is_one_line_naming_file_and_fix() {
        for text in [
            "trash: [1, 2\n",
            "trash:\n  keep_days: soon\n",
            "- a\n- b\n",
        ] {
            let e = p(text).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
            assert!(e.starts_with("/c/ccsfs/config.yaml: "), "{e}");
            assert!(e.contains("fix or remove the file"), "{e}");
        }
    }

    #[test]
    fn load_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ccsfs")).unwrap();
        std::fs::write(settings_file(dir.path()), "trash:\n  max_mb: 5\n").unwrap();
        assert_eq!(load(dir.path()).unwrap().trash.max_mb, 5);
        std::fs::write(settings_file(dir.path()), "trash: {max_mb: -1}\n").unwrap();
        assert!(load(dir.path()).is_err());
        assert_eq!(load_or_default(dir.path()), Settings::default());
    }
}
