//! CCS `config.yaml` → validated profiles (pure parsing and validation), and the only writer of
//! `config.yaml` (`profile add/remove`).
//!
//! Of each account we read `context_mode`, `context_group`, `continuity_mode` and
//! `shared_resource_mode` (or the older `bare`); everything else is read past and, when writing,
//! carried over unchanged. Writes are what CCS itself would accept and write: a numeric top-level
//! `version`, `created`/`last_used` on a new account, under CCS's own `config.yaml.lock`.

use crate::ccs_lock::ConfigLock;
use crate::layout::{Layout, instance_dir_name};
use std::fmt::{self, Display, Write as _};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use yaml_serde::{Mapping, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextMode {
    Isolated,
    Shared,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContinuityMode {
    Standard,
    Deeper,
}

impl ContextMode {
    /// The spelling used in `config.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContextMode::Isolated => "isolated",
            ContextMode::Shared => "shared",
        }
    }
}

impl ContinuityMode {
    /// The spelling used in `config.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContinuityMode::Standard => "standard",
            ContinuityMode::Deeper => "deeper",
        }
    }
}

/// Whether an account's `commands/`, `skills/`, `agents/`, `plugins/` and `settings.json` are the
/// ones shared by every account (CCS links them to `<ccs>/shared/…`), or its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SharedResources {
    /// `shared_resource_mode: shared`, the default.
    #[default]
    Shared,
    /// `shared_resource_mode: profile-local`, or the older `bare: true`.
    ProfileLocal,
}

impl SharedResources {
    /// The spelling used in `config.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            SharedResources::Shared => "shared",
            SharedResources::ProfileLocal => "profile-local",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The account name, as spelt in `config.yaml` (may have capitals).
    pub name: String,
    pub context: ContextMode,
    /// `Some(normalized group)` iff `context == Shared`.
    pub group: Option<String>,
    /// `Deeper` only if shared.
    pub continuity: ContinuityMode,
    /// Independent of the context mode.
    pub shared_resources: SharedResources,
}

impl Profile {
    /// A profile for unit tests: shared in `group` when given (deeper continuity if asked),
    /// else isolated; shared resources on.
    #[cfg(test)]
    pub fn for_test(name: &str, group: Option<&str>, deeper: bool) -> Profile {
        Profile {
            name: name.into(),
            context: if group.is_some() {
                ContextMode::Shared
            } else {
                ContextMode::Isolated
            },
            group: group.map(String::from),
            continuity: if deeper {
                ContinuityMode::Deeper
            } else {
                ContinuityMode::Standard
            },
            shared_resources: SharedResources::Shared,
        }
    }

    pub fn isolated(name: &str) -> Profile {
        Profile {
            name: name.to_string(),
            context: ContextMode::Isolated,
            group: None,
            continuity: ContinuityMode::Standard,
            shared_resources: SharedResources::Shared,
        }
    }

    pub fn is_shared(&self) -> bool {
        self.context == ContextMode::Shared
    }

    /// The name of its instance dir (`<ccs>/instances/<dir_name>`), which is also its name in
    /// the mount: the account name as CCS sanitizes it (lowercased).
    pub fn dir_name(&self) -> String {
        instance_dir_name(&self.name)
    }
}

/// The config format version CCS 7.x writes; CCS rejects a file without a numeric `version`.
pub const CCS_CONFIG_VERSION: u64 = 13;

/// Context group of a shared account that names none.
pub const DEFAULT_GROUP: &str = "default";
const MAX_GROUP_LEN: usize = 64;

/// A one-line, user-facing message that says what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Builds an error, flattening any line breaks so every error stays on one line.
fn error(msg: impl Display) -> ConfigError {
    ConfigError(msg.to_string().replace(['\r', '\n'], " "))
}

/// Builds an error prefixed with the file it is about.
fn file_error(path: &Path, msg: impl Display) -> ConfigError {
    error(format_args!("{}: {msg}", path.display()))
}

/// `^[a-zA-Z][a-zA-Z0-9_-]*$`, shared by profile names and context groups.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// CCS normalisation: trim, lowercase, runs of whitespace → `-`; then the result must be a letter
/// followed by letters, digits, `_` or `-`, at most 64 characters.
pub fn normalize_group(raw: &str) -> Result<String, ConfigError> {
    let group = raw
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("-")
        .to_lowercase();
    if group.len() <= MAX_GROUP_LEN && is_identifier(&group) {
        Ok(group)
    } else {
        Err(error(format_args!(
            "invalid context group {raw:?}: use a letter followed by letters, digits, '_' or '-' \
             (at most {MAX_GROUP_LEN} characters)"
        )))
    }
}

/// Account names must match `^[a-zA-Z][a-zA-Z0-9_-]*$`; `default` is reserved by CCS (it means
/// the plain `~/.claude` account).
pub fn validate_profile_name(name: &str) -> Result<(), ConfigError> {
    if !is_identifier(name) {
        return Err(error(format_args!(
            "invalid profile name {name:?}: use a letter followed by letters, digits, '_' or '-'"
        )));
    }
    if name.eq_ignore_ascii_case("default") {
        return Err(error(format_args!(
            "profile name {name:?} is reserved by CCS; choose another name"
        )));
    }
    Ok(())
}

/// Parse config text. Ok(None) when there is no usable `accounts` mapping (key absent, null, or
/// empty mapping). Keys we do not own are ignored. Profiles come back in file order.
pub fn parse_accounts(yaml: &str, source: &Path) -> Result<Option<Vec<Profile>>, ConfigError> {
    let mut doc = parse_document(yaml, source)?;
    doc.apply_merge()
        .map_err(|e| file_error(source, format_args!("{e}; fix the YAML merge keys (<<)")))?;
    let top = match &doc {
        Value::Mapping(top) => top,
        Value::Null => return Ok(None),
        _ => return Err(not_a_mapping(source)),
    };
    let accounts = match top.get("accounts") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Mapping(m)) if m.is_empty() => return Ok(None),
        Some(Value::Mapping(m)) => m,
        Some(_) => return Err(accounts_not_mapping(source)),
    };
    let mut profiles = Vec::with_capacity(accounts.len());
    for (key, value) in accounts {
        let Value::String(name) = key else {
            return Err(file_error(
                source,
                format_args!(
                    "account key {} is not a string; rename the account (names start with a letter)",
                    inline(key)
                ),
            ));
        };
        let profile = parse_account(name, value)
            .map_err(|msg| file_error(source, format_args!("account {name:?}: {msg}")))?;
        profiles.push(profile);
    }
    Ok(Some(profiles))
}

/// One account entry; the error message gets the path and account name prefixed by the caller.
fn parse_account(name: &str, value: &Value) -> Result<Profile, String> {
    validate_profile_name(name).map_err(|e| e.0)?;
    let entry = match value {
        Value::Null => return Ok(Profile::isolated(name)),
        Value::Mapping(m) => m,
        other => {
            return Err(format!(
                "entry is {}, not a mapping; make it a mapping such as `context_mode: isolated` \
                 or leave it empty",
                inline(other)
            ));
        }
    };
    let shared_resources = shared_resources_of(entry)?;
    let context = match string_key(entry, "context_mode")? {
        None | Some("isolated") => ContextMode::Isolated,
        Some("shared") => ContextMode::Shared,
        Some(other) => {
            return Err(format!(
                "unknown context_mode {other:?} (expected isolated or shared); fix or remove that key"
            ));
        }
    };
    let continuity = match string_key(entry, "continuity_mode")? {
        None | Some("standard") => ContinuityMode::Standard,
        Some("deeper") => ContinuityMode::Deeper,
        Some(other) => {
            return Err(format!(
                "unknown continuity_mode {other:?} (expected standard or deeper); fix or remove \
                 that key"
            ));
        }
    };
    if context == ContextMode::Isolated {
        if continuity == ContinuityMode::Deeper {
            let fix = "set context_mode: shared or remove continuity_mode";
            return Err(format!(
                "continuity_mode: deeper requires context_mode: shared; {fix}"
            ));
        }
        // context_group means nothing for an isolated account, so it is not checked.
        return Ok(Profile {
            shared_resources,
            ..Profile::isolated(name)
        });
    }
    let group = match string_key(entry, "context_group")? {
        // CCS treats a blank group like a missing one.
        Some(raw) if !raw.trim().is_empty() => {
            normalize_group(raw).map_err(|e| format!("{e}; fix or remove context_group"))?
        }
        _ => DEFAULT_GROUP.to_string(),
    };
    Ok(Profile {
        name: name.to_string(),
        context,
        group: Some(group),
        continuity,
        shared_resources,
    })
}

/// `shared_resource_mode` when present (it wins, as in CCS), else the older `bare`, of which only
/// `true` counts (as in CCS).
fn shared_resources_of(entry: &Mapping) -> Result<SharedResources, String> {
    match string_key(entry, "shared_resource_mode")? {
        Some("shared") => Ok(SharedResources::Shared),
        Some("profile-local") => Ok(SharedResources::ProfileLocal),
        Some(other) => Err(format!(
            "unknown shared_resource_mode {other:?} (expected shared or profile-local); fix or \
             remove that key"
        )),
        None if entry.get("bare") == Some(&Value::Bool(true)) => Ok(SharedResources::ProfileLocal),
        None => Ok(SharedResources::Shared),
    }
}

/// A key of an account entry that must be a string when present; null counts as absent.
fn string_key<'a>(entry: &'a Mapping, key: &str) -> Result<Option<&'a str>, String> {
    match entry.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "{key} is {}, not a string; fix or remove that key",
            inline(other)
        )),
    }
}

/// A short one-line rendering of a YAML value for error messages.
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

fn parse_document(yaml: &str, source: &Path) -> Result<Value, ConfigError> {
    yaml_serde::from_str(yaml).map_err(|e| match e.location() {
        Some(loc) => file_error(
            source,
            format_args!("line {}: {e}; fix the YAML syntax", loc.line()),
        ),
        None => file_error(source, format_args!("{e}; fix the YAML syntax")),
    })
}

fn not_a_mapping(source: &Path) -> ConfigError {
    file_error(
        source,
        "the top level is not a mapping; config.yaml must consist of `key: value` entries",
    )
}

fn accounts_not_mapping(source: &Path) -> ConfigError {
    file_error(
        source,
        "`accounts` is not a mapping of account names; fix or remove it",
    )
}

fn config_path(ccs_dir: &Path) -> PathBuf {
    ccs_dir.join("config.yaml")
}

/// Reads `config.yaml`; Ok(None) when it does not exist.
fn read_config(path: &Path) -> Result<Option<String>, ConfigError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_error(
            path,
            format_args!("cannot read: {e}; check that it is a readable UTF-8 file"),
        )),
    }
}

/// Profiles for a CCS dir: from `<ccs>/config.yaml` accounts when present; otherwise (file
/// missing, or no usable accounts) every directory under `<ccs>/instances/` whose name is a valid,
/// lowercase profile name is an isolated profile (skipping dot-dirs such as CCS's `.locks`,
/// `*.lock`, other names and non-directories; a missing instances dir gives an empty list).
///
/// Sorted by [`Profile::dir_name`]. When two accounts share a dir name (`Work` and `work`), the
/// first in the file is kept and the other is left out with a warning in the log.
pub fn load_profiles(ccs_dir: &Path) -> Result<Vec<Profile>, ConfigError> {
    let path = config_path(ccs_dir);
    let from_config = match read_config(&path)? {
        Some(text) => parse_accounts(&text, &path)?,
        None => None,
    };
    let profiles = match from_config {
        Some(profiles) => profiles,
        None => instance_profiles(&ccs_dir.join("instances"))?,
    };
    let mut by_dir = std::collections::BTreeMap::new();
    for p in profiles {
        match by_dir.entry(p.dir_name()) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(p);
            }
            std::collections::btree_map::Entry::Occupied(first) => log::warn!(
                "{}: accounts {:?} and {:?} both live in instances/{}; ignoring {:?} (rename or \
                 remove one of them)",
                path.display(),
                first.get().name,
                p.name,
                first.key(),
                p.name
            ),
        }
    }
    Ok(by_dir.into_values().collect())
}

fn instance_profiles(instances: &Path) -> Result<Vec<Profile>, ConfigError> {
    let entries = match fs::read_dir(instances) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(file_error(
                instances,
                format_args!("cannot list: {e}; check its permissions"),
            ));
        }
    };
    let mut profiles = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            file_error(
                instances,
                format_args!("cannot list: {e}; check its permissions"),
            )
        })?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // CCS's own `.locks`, and the lock dirs beside a config dir.
        if name.starts_with('.') || name.ends_with(".lock") {
            continue;
        }
        if validate_profile_name(&name).is_err() {
            log::debug!(
                "ignoring {}: not a valid profile name",
                entry.path().display()
            );
            continue;
        }
        // Follows symlinks, so a linked instance directory counts.
        if !fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        if instance_dir_name(&name) != name {
            log::warn!(
                "ignoring {}: CCS names instance dirs in lowercase; rename it to {}",
                entry.path().display(),
                instance_dir_name(&name)
            );
            continue;
        }
        profiles.push(Profile::isolated(&name));
    }
    Ok(profiles)
}

/// What `ccsfs profile add` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddOptions<'a> {
    /// Share `projects/` with this group (normalized).
    pub group: Option<&'a str>,
    /// Also share the continuity dirs (implies shared, group "default" unless given).
    pub deeper: bool,
    /// Keep the account's own commands/skills/agents/plugins/settings.json (CCS's
    /// `shared_resource_mode: profile-local`). When false, an existing account keeps its mode.
    pub profile_local: bool,
}

/// [`add_profile_with`] without `profile_local`.
pub fn add_profile(
    ccs_dir: &Path,
    name: &str,
    group: Option<&str>,
    deeper: bool,
) -> Result<(Profile, bool), ConfigError> {
    let opts = AddOptions {
        group,
        deeper,
        profile_local: false,
    };
    add_profile_with(ccs_dir, name, &opts)
}

/// `ccsfs profile add`: group Some(g) → shared with normalized g; deeper → shared (group defaults
/// to "default") + deeper; neither → isolated. Adds the account entry the way CCS writes one
/// (`created` as a quoted ISO time, `last_used: null`, then the mode keys), or, if it already
/// exists, updates only the mode keys in it (keeping its other keys). Makes sure the file has the
/// numeric top-level `version` CCS requires. Creates `<ccs>/instances/<dir name>` (mode 0700,
/// parents too) if missing, and no other dir. The whole read-modify-write holds CCS's
/// `config.yaml.lock`. Returns (the profile as now configured, true if newly added / false if
/// updated).
///
/// The file is rewritten from its parsed form, so YAML comments and formatting are not kept (CCS
/// regenerates its own comments on its next save); every key, value and key order is. One
/// nuance: an unquoted date such as `2026-02-24` comes back as the quoted string it parsed to.
pub fn add_profile_with(
    ccs_dir: &Path,
    name: &str,
    opts: &AddOptions,
) -> Result<(Profile, bool), ConfigError> {
    validate_profile_name(name)?;
    let wanted = match (opts.group, opts.deeper) {
        (None, false) => Profile::isolated(name),
        (group, deeper) => Profile {
            name: name.to_string(),
            context: ContextMode::Shared,
            group: Some(normalize_group(group.unwrap_or(DEFAULT_GROUP))?),
            continuity: if deeper {
                ContinuityMode::Deeper
            } else {
                ContinuityMode::Standard
            },
            shared_resources: SharedResources::Shared,
        },
    };

    let _lock = take_lock(ccs_dir)?;
    let path = config_path(ccs_dir);
    let mut doc = read_document(&path)?;
    ensure_version(&mut doc);
    let accounts = accounts_mut(&mut doc, &path)?;
    let dir = instance_dir_name(name);
    if !accounts.contains_key(name)
        && let Some(other) = accounts
            .keys()
            .filter_map(Value::as_str)
            .find(|k| instance_dir_name(k) == dir)
    {
        return Err(file_error(
            &path,
            format_args!(
                "account {other:?} already lives in instances/{dir}, so {name:?} cannot have its \
                 own; use {other:?} or choose another name"
            ),
        ));
    }
    let added = match accounts.get_mut(name) {
        Some(Value::Mapping(entry)) => {
            set_mode_keys(entry, &wanted, opts.profile_local);
            false
        }
        Some(existing @ Value::Null) => {
            let mut entry = Mapping::new();
            set_mode_keys(&mut entry, &wanted, opts.profile_local);
            *existing = Value::Mapping(entry);
            false
        }
        Some(other) => {
            return Err(file_error(
                &path,
                format_args!(
                    "account {name:?} is {}, not a mapping; fix it by hand first",
                    inline(other)
                ),
            ));
        }
        None => {
            let mut entry = Mapping::new();
            entry.insert("created".into(), utc_timestamp(SystemTime::now()).into());
            entry.insert("last_used".into(), Value::Null);
            set_mode_keys(&mut entry, &wanted, opts.profile_local);
            accounts.insert(name.into(), Value::Mapping(entry));
            true
        }
    };
    // What the file now says (an existing account may keep a profile-local mode, say).
    let profile = parse_account(name, &accounts[name])
        .map_err(|msg| file_error(&path, format_args!("account {name:?}: {msg}")))?;
    let text = emit_document(&doc, &path)?;

    create_private_dir(&Layout::new(ccs_dir.to_path_buf()).instance(name))?;
    write_atomic(&path, &text)?;
    Ok((profile, added))
}

/// `ccsfs profile remove`: removes only that entry; leaves the instance dir and its data. Error if
/// no such account. Comments are lost as with [`add_profile`].
pub fn remove_profile(ccs_dir: &Path, name: &str) -> Result<(), ConfigError> {
    let path = config_path(ccs_dir);
    let no_account = || {
        file_error(
            &path,
            format_args!("no account {name:?} under `accounts`; check the profile name"),
        )
    };
    if !ccs_dir.is_dir() {
        return Err(no_account());
    }
    let _lock = take_lock(ccs_dir)?;
    let mut doc = read_document(&path)?;
    let removed = match &mut doc {
        Value::Mapping(top) => match top.get_mut("accounts") {
            Some(Value::Mapping(accounts)) => accounts.shift_remove(name).is_some(),
            None | Some(Value::Null) => false,
            Some(_) => return Err(accounts_not_mapping(&path)),
        },
        _ => false,
    };
    if !removed {
        return Err(no_account());
    }
    ensure_version(&mut doc);
    write_atomic(&path, &emit_document(&doc, &path)?)
}

/// Whether config text has the numeric top-level `version` CCS requires (a number, at least
/// 1). A file that does not parse is an error; an empty one has none.
pub fn has_version(yaml: &str, source: &Path) -> Result<bool, ConfigError> {
    let doc = parse_document(yaml, source)?;
    let mut fixed = doc.clone();
    ensure_version(&mut fixed);
    Ok(matches!(doc, Value::Mapping(_)) && fixed == doc)
}

/// Gives `config.yaml` the `version` CCS requires when it lacks one (as `profile add` does:
/// under CCS's lock, rewritten atomically, every other key kept). Returns whether it wrote.
pub fn write_version(ccs_dir: &Path) -> Result<bool, ConfigError> {
    let _lock = take_lock(ccs_dir)?;
    let path = config_path(ccs_dir);
    let mut doc = read_document(&path)?;
    let before = doc.clone();
    ensure_version(&mut doc);
    if doc == before {
        return Ok(false);
    }
    write_atomic(&path, &emit_document(&doc, &path)?)?;
    Ok(true)
}

/// CCS's config lock, as a config error.
fn take_lock(ccs_dir: &Path) -> Result<ConfigLock, ConfigError> {
    ConfigLock::acquire(ccs_dir).map_err(error)
}

/// Gives a top-level mapping the `version` CCS requires (a number, at least 1): an existing
/// valid one is kept, whatever its value; a missing or unusable one becomes
/// [`CCS_CONFIG_VERSION`], placed first as CCS places it.
fn ensure_version(doc: &mut Value) {
    let Value::Mapping(top) = doc else {
        return;
    };
    match top.get_mut("version") {
        Some(Value::Number(n)) if n.as_f64().is_some_and(|v| v >= 1.0) => {}
        Some(other) => *other = CCS_CONFIG_VERSION.into(),
        None => {
            let rest = std::mem::take(top);
            top.insert("version".into(), CCS_CONFIG_VERSION.into());
            top.extend(rest);
        }
    }
}

/// The current document for rewriting: an empty mapping when the file is missing; an error (and
/// no write) when it does not parse or is not a mapping.
fn read_document(path: &Path) -> Result<Value, ConfigError> {
    let Some(text) = read_config(path)? else {
        return Ok(Value::Mapping(Mapping::new()));
    };
    match parse_document(&text, path) {
        Ok(Value::Null) => Ok(Value::Mapping(Mapping::new())),
        Ok(doc @ Value::Mapping(_)) => Ok(doc),
        Ok(_) => Err(not_a_mapping(path)),
        Err(e) => Err(error(format_args!("{e}; config.yaml was not changed"))),
    }
}

/// The `accounts` mapping of a top-level mapping, created (at the end) if absent or null.
fn accounts_mut<'a>(doc: &'a mut Value, path: &Path) -> Result<&'a mut Mapping, ConfigError> {
    let Value::Mapping(top) = doc else {
        return Err(not_a_mapping(path));
    };
    let slot = top
        .entry("accounts".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if slot.is_null() {
        *slot = Value::Mapping(Mapping::new());
    }
    match slot {
        Value::Mapping(accounts) => Ok(accounts),
        _ => Err(accounts_not_mapping(path)),
    }
}

/// Writes the mode keys the way CCS does: shared → mode, group and continuity; isolated → mode
/// only; profile-local → `shared_resource_mode: profile-local` and `bare: true`, as CCS writes
/// it (otherwise the account's resource mode is left as it is).
fn set_mode_keys(entry: &mut Mapping, profile: &Profile, profile_local: bool) {
    set_context_keys(entry, profile);
    if profile_local {
        let mode = SharedResources::ProfileLocal.as_str();
        entry.insert("shared_resource_mode".into(), mode.into());
        entry.insert("bare".into(), true.into());
    }
}

fn set_context_keys(entry: &mut Mapping, profile: &Profile) {
    entry.insert("context_mode".into(), profile.context.as_str().into());
    match &profile.group {
        Some(group) => {
            entry.insert("context_group".into(), group.as_str().into());
            entry.insert("continuity_mode".into(), profile.continuity.as_str().into());
        }
        None => {
            entry.shift_remove("context_group");
            entry.shift_remove("continuity_mode");
        }
    }
}

/// `2026-02-24T00:00:00.000Z` (JavaScript `toISOString`, as CCS writes).
fn utc_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let sec_of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sec_of_day / 3600,
        sec_of_day % 3600 / 60,
        sec_of_day % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Renders the document as block YAML. The crate's own emitter leaves strings such as
/// `2026-02-24T00:00:00.000Z` unquoted, which CCS's js-yaml would then read back as a date; here
/// every string that is not a plain word is double-quoted, so each value reads back exactly as it
/// was.
fn emit_document(doc: &Value, path: &Path) -> Result<String, ConfigError> {
    let mut out = String::new();
    let emitted = match doc {
        Value::Mapping(top) if !top.is_empty() => emit_mapping(&mut out, top, 0),
        _ => {
            out.push_str("{}\n");
            Ok(())
        }
    };
    emitted.map_err(|()| {
        file_error(
            path,
            "a mapping key is itself a list, mapping or tagged value, which ccsfs cannot \
             rewrite; simplify that key by hand",
        )
    })?;
    Ok(out)
}

fn emit_mapping(out: &mut String, map: &Mapping, indent: usize) -> Result<(), ()> {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        emit_key(out, key)?;
        out.push(':');
        emit_node(out, value, indent + 2)?;
    }
    Ok(())
}

fn emit_sequence(out: &mut String, seq: &[Value], indent: usize) -> Result<(), ()> {
    for item in seq {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        // A nested block starts on the dash's line: `- key: value`, `- - item`.
        let mut block = String::new();
        match item {
            Value::Mapping(m) if !m.is_empty() => emit_mapping(&mut block, m, indent + 2)?,
            Value::Sequence(s) if !s.is_empty() => emit_sequence(&mut block, s, indent + 2)?,
            _ => {
                emit_node(out, item, indent + 2)?;
                continue;
            }
        }
        out.push(' ');
        out.push_str(&block[indent + 2..]);
    }
    Ok(())
}

/// Emits what follows a `key:` or `-`: a scalar on the same line, or a block on the next lines.
fn emit_node(out: &mut String, value: &Value, indent: usize) -> Result<(), ()> {
    match value {
        Value::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            emit_mapping(out, m, indent)
        }
        Value::Sequence(s) if !s.is_empty() => {
            out.push('\n');
            emit_sequence(out, s, indent)
        }
        Value::Tagged(tagged) => {
            let _ = write!(out, " {}", tagged.tag);
            emit_node(out, &tagged.value, indent)
        }
        scalar => {
            out.push(' ');
            emit_scalar(out, scalar);
            out.push('\n');
            Ok(())
        }
    }
}

fn emit_key(out: &mut String, key: &Value) -> Result<(), ()> {
    match key {
        // A plain `<<` stays a merge key.
        Value::String(s) if s == "<<" => out.push_str(s),
        Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_) => return Err(()),
        scalar => emit_scalar(out, scalar),
    }
    Ok(())
}

/// Strings that read back as the same string without quotes, in yaml_serde and in js-yaml alike.
fn is_plain(s: &str) -> bool {
    const RESERVED: [&str; 9] = ["null", "true", "false", "yes", "no", "on", "off", "y", "n"];
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !RESERVED.iter().any(|r| s.eq_ignore_ascii_case(r))
}

fn emit_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) if is_plain(s) => out.push_str(s),
        Value::String(s) => emit_quoted(out, s),
        Value::Mapping(_) => out.push_str("{}"),
        Value::Sequence(_) => out.push_str("[]"),
        Value::Tagged(_) => unreachable!("tagged values are emitted by emit_node"),
    }
}

/// A YAML double-quoted scalar; line breaks and other invisible characters are escaped.
fn emit_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `mkdir -p` with mode 0700 for every directory it creates.
fn create_private_dir(dir: &Path) -> Result<(), ConfigError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            file_error(
                dir,
                format_args!("cannot create directory: {e}; check the permissions of its parent"),
            )
        })
}

/// Replaces `path` atomically: temp file in the same directory, fsync, rename, fsync the
/// directory; on failure the old file is untouched and no temp file is left. Keeps the old file's permission bits (0600 for a new file). A symlinked
/// `config.yaml` is followed, so the link stays and its target is replaced.
fn write_atomic(path: &Path, text: &str) -> Result<(), ConfigError> {
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;
    let mode = fs::metadata(&target).map_or(0o600, |m| m.permissions().mode() & 0o777);
    crate::atomic_file::replace(&target, text.as_bytes(), mode).map_err(|e| {
        file_error(
            &target,
            format_args!(
                "cannot write: {e}; check the permissions of {} (config.yaml was not changed)",
                dir.display()
            ),
        )
    })?;
    // The new file is in place; this only makes the rename itself durable.
    if let Err(e) = fs::File::open(&dir).and_then(|d| d.sync_all()) {
        log::warn!("{}: cannot fsync the directory: {e}", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::tempdir;

    fn src() -> &'static Path {
        Path::new("/ccs/config.yaml")
    }

    fn parse(yaml: &str) -> Result<Option<Vec<Profile>>, ConfigError> {
        parse_accounts(yaml, src())
    }

    fn one(yaml: &str) -> Profile {
        let mut profiles = parse(yaml).unwrap().unwrap();
        assert_eq!(profiles.len(), 1);
        profiles.remove(0)
    }

    /// The error for a config, checked to be a single line naming the file.
    fn err(yaml: &str) -> String {
        let e = parse(yaml).unwrap_err();
        assert_single_line(&e);
        assert!(e.0.starts_with("/ccs/config.yaml: "), "{e}");
        e.0
    }

    fn assert_single_line(e: &ConfigError) {
        assert!(!e.0.contains('\n') && !e.0.contains('\r'), "{:?}", e.0);
        assert_eq!(e.to_string(), e.0);
    }

    fn shared(name: &str, group: &str, continuity: ContinuityMode) -> Profile {
        Profile {
            name: name.into(),
            context: ContextMode::Shared,
            group: Some(group.into()),
            continuity,
            shared_resources: SharedResources::Shared,
        }
    }

    fn profile_local(p: Profile) -> Profile {
        Profile {
            shared_resources: SharedResources::ProfileLocal,
            ..p
        }
    }

    fn names_of(profiles: &[Profile]) -> Vec<&str> {
        profiles.iter().map(|p| p.name.as_str()).collect()
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn read_yaml(path: &Path) -> Value {
        yaml_serde::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    const FULL: &str = r#"# CCS Unified Configuration
version: 8
default: "work"
accounts:
  work:
    created: "2026-02-24T00:00:00.000Z"
    last_used: null
    context_mode: "shared"
    context_group: "team-alpha"
    continuity_mode: "deeper"
    bare: true
  personal:
    created: "2026-01-01T10:00:00.000Z"
    last_used: "2026-02-01T10:00:00.000Z"
profiles:
  glm:
    type: api
    settings: "~/.ccs/glm.settings.json"
cliproxy:
  oauth_accounts: {}
  providers: [gemini, codex]
  variants:
    - name: fast
      port: 8318
      ratio: 0.5
      on: "yes"
preferences:
  theme: "dark"
  multi: "line one\nline two"
  date: 2026-02-24
  quote: 'it''s "x"'
  weird keys:
    "123": 1
    "true": 2
    7: seven
    null: nothing
"#;

    // ---- parse_accounts ----

    #[test]
    fn defaults_are_isolated() {
        assert_eq!(one("accounts:\n  work: {}\n"), Profile::isolated("work"));
        assert_eq!(
            one("accounts:\n  work:\n    created: x\n    last_used: null\n"),
            Profile::isolated("work")
        );
        assert_eq!(
            one("accounts:\n  work:\n    context_mode: null\n    continuity_mode: null\n"),
            Profile::isolated("work")
        );
        assert_eq!(
            one("accounts:\n  work:\n    context_mode: isolated\n"),
            Profile::isolated("work")
        );
        assert!(!Profile::isolated("work").is_shared());
    }

    #[test]
    fn null_account_is_isolated() {
        assert_eq!(one("accounts:\n  work:\n"), Profile::isolated("work"));
        assert_eq!(one("accounts: {work: ~}\n"), Profile::isolated("work"));
    }

    #[test]
    fn shared_with_group() {
        let p =
            one("accounts:\n  work:\n    context_mode: shared\n    context_group: team-alpha\n");
        assert_eq!(p, shared("work", "team-alpha", ContinuityMode::Standard));
        assert!(p.is_shared());
    }

    #[test]
    fn shared_without_group_uses_default() {
        for extra in ["", "    context_group: null\n", "    context_group: '  '\n"] {
            let yaml = format!("accounts:\n  work:\n    context_mode: shared\n{extra}");
            assert_eq!(
                one(&yaml),
                shared("work", DEFAULT_GROUP, ContinuityMode::Standard)
            );
        }
    }

    #[test]
    fn shared_deeper() {
        let p = one("accounts:\n  work:\n    context_mode: shared\n    continuity_mode: deeper\n");
        assert_eq!(p, shared("work", "default", ContinuityMode::Deeper));
        let p =
            one("accounts:\n  work:\n    context_mode: shared\n    continuity_mode: standard\n");
        assert_eq!(p, shared("work", "default", ContinuityMode::Standard));
    }

    #[test]
    fn group_in_config_is_normalized() {
        let p = one(
            "accounts:\n  work:\n    context_mode: shared\n    context_group: '  Team Alpha '\n",
        );
        assert_eq!(p.group.as_deref(), Some("team-alpha"));
    }

    #[test]
    fn group_ignored_when_isolated() {
        let p = one("accounts:\n  work:\n    context_group: '1 bad!'\n");
        assert_eq!(p, Profile::isolated("work"));
        let p = one("accounts:\n  work:\n    context_mode: isolated\n    context_group: [x]\n");
        assert_eq!(p, Profile::isolated("work"));
    }

    #[test]
    fn standard_with_isolated_is_accepted() {
        let p = one("accounts:\n  work:\n    continuity_mode: standard\n");
        assert_eq!(p, Profile::isolated("work"));
    }

    #[test]
    fn bad_group_in_config() {
        let e = err("accounts:\n  work:\n    context_mode: shared\n    context_group: 9lives\n");
        assert!(e.contains("account \"work\""), "{e}");
        assert!(e.contains("invalid context group \"9lives\""), "{e}");
        assert!(e.contains("fix or remove context_group"), "{e}");
    }

    #[test]
    fn unknown_context_mode() {
        let e = err("accounts:\n  work:\n    context_mode: foo\n");
        assert_eq!(
            e,
            "/ccs/config.yaml: account \"work\": unknown context_mode \"foo\" (expected isolated \
             or shared); fix or remove that key"
        );
        // Case matters, as in CCS.
        err("accounts:\n  work:\n    context_mode: Shared\n");
    }

    #[test]
    fn unknown_continuity_mode() {
        let e = err("accounts:\n  work:\n    context_mode: shared\n    continuity_mode: deep\n");
        assert!(
            e.contains("account \"work\": unknown continuity_mode \"deep\""),
            "{e}"
        );
        assert!(e.contains("(expected standard or deeper)"), "{e}");
    }

    #[test]
    fn deeper_without_shared() {
        for mode in ["", "    context_mode: isolated\n"] {
            let e = err(&format!(
                "accounts:\n  work:\n{mode}    continuity_mode: deeper\n"
            ));
            assert!(
                e.contains("continuity_mode: deeper requires context_mode: shared"),
                "{e}"
            );
        }
    }

    #[test]
    fn non_string_mode_values() {
        let e = err("accounts:\n  work:\n    context_mode: 1\n");
        assert!(e.contains("context_mode is 1, not a string"), "{e}");
        let e = err("accounts:\n  work:\n    context_mode: shared\n    continuity_mode: true\n");
        assert!(e.contains("continuity_mode is true, not a string"), "{e}");
        let e = err("accounts:\n  work:\n    context_mode: shared\n    context_group: {a: 1}\n");
        assert!(
            e.contains("context_group is a mapping, not a string"),
            "{e}"
        );
        let e = err("accounts:\n  work:\n    context_mode: !x shared\n");
        assert!(e.contains("context_mode is a value tagged !x"), "{e}");
    }

    #[test]
    fn shared_resource_modes() {
        let base = "accounts:\n  work:\n    context_mode: shared\n";
        let shared_std = shared("work", "default", ContinuityMode::Standard);
        for (extra, local) in [
            ("", false),
            ("    shared_resource_mode: shared\n", false),
            ("    shared_resource_mode: null\n", false),
            ("    shared_resource_mode: profile-local\n", true),
            ("    bare: true\n", true),
            ("    bare: false\n", false),
            // Only `true` counts, as in CCS.
            ("    bare: \"yes\"\n", false),
            ("    bare: 1\n", false),
            // The explicit mode wins over `bare`, as in CCS.
            ("    shared_resource_mode: shared\n    bare: true\n", false),
            (
                "    shared_resource_mode: profile-local\n    bare: false\n",
                true,
            ),
        ] {
            let want = if local {
                profile_local(shared_std.clone())
            } else {
                shared_std.clone()
            };
            assert_eq!(one(&format!("{base}{extra}")), want, "{extra:?}");
        }
        // Isolated accounts have one too.
        assert_eq!(
            one("accounts:\n  solo:\n    bare: true\n"),
            profile_local(Profile::isolated("solo"))
        );
        assert_eq!(
            Profile::isolated("x").shared_resources,
            SharedResources::Shared
        );
        assert_eq!(SharedResources::ProfileLocal.as_str(), "profile-local");
    }

    #[test]
    fn unknown_shared_resource_mode() {
        let e = err("accounts:\n  work:\n    shared_resource_mode: bare\n");
        assert_eq!(
            e,
            "/ccs/config.yaml: account \"work\": unknown shared_resource_mode \"bare\" \
             (expected shared or profile-local); fix or remove that key"
        );
        let e = err("accounts:\n  work:\n    shared_resource_mode: true\n");
        assert!(
            e.contains("shared_resource_mode is true, not a string"),
            "{e}"
        );
    }

    #[test]
    fn dir_name_is_the_ccs_instance_name() {
        assert_eq!(Profile::isolated("Delta").dir_name(), "delta");
        assert_eq!(Profile::isolated("work_2-X").dir_name(), "work_2-x");
    }

    #[test]
    fn non_mapping_account() {
        let e = err("accounts:\n  work: shared\n");
        assert!(
            e.contains("account \"work\": entry is \"shared\", not a mapping"),
            "{e}"
        );
        let e = err("accounts:\n  work: [a]\n");
        assert!(e.contains("entry is a list"), "{e}");
    }

    #[test]
    fn non_string_account_key() {
        let e = err("accounts:\n  123: {}\n");
        assert!(e.contains("account key 123 is not a string"), "{e}");
        let e = err("accounts:\n  true: {}\n");
        assert!(e.contains("account key true is not a string"), "{e}");
    }

    #[test]
    fn bad_profile_names_in_config() {
        for name in [
            "\"1abc\"",
            "\"a.b\"",
            "\"-x\"",
            "\"work space\"",
            "\"\"",
            "default",
        ] {
            let e = err(&format!("accounts:\n  {name}: {{}}\n"));
            assert!(e.contains("account \""), "{e}");
            assert!(
                e.contains("invalid profile name") || e.contains("reserved"),
                "{e}"
            );
        }
    }

    #[test]
    fn accounts_not_a_mapping() {
        let e = err("accounts: [work]\n");
        assert!(e.contains("`accounts` is not a mapping"), "{e}");
        let e = err("- a\n- b\n");
        assert!(e.contains("top level is not a mapping"), "{e}");
    }

    #[test]
    fn no_accounts_is_none() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        assert_eq!(parse("profiles: {}\n").unwrap(), None);
        assert_eq!(parse("accounts:\n").unwrap(), None);
        assert_eq!(parse("accounts: null\n").unwrap(), None);
        assert_eq!(parse("accounts: {}\n").unwrap(), None);
    }

    #[test]
    fn unknown_keys_ignored() {
        let profiles = parse(FULL).unwrap().unwrap();
        assert_eq!(
            profiles,
            vec![
                // `bare: true`: CCS's older spelling of profile-local.
                profile_local(shared("work", "team-alpha", ContinuityMode::Deeper)),
                Profile::isolated("personal"),
            ]
        );
    }

    #[test]
    fn merge_keys_are_applied() {
        let yaml =
            "base: &b {context_mode: shared, context_group: g}\naccounts:\n  work:\n    <<: *b\n";
        assert_eq!(one(yaml), shared("work", "g", ContinuityMode::Standard));
    }

    #[test]
    fn malformed_yaml_reports_line() {
        let e = err("accounts:\n  work:\n    context_mode: [shared\n  other: {}\n");
        assert!(e.starts_with("/ccs/config.yaml: line "), "{e}");
        assert!(e.ends_with("; fix the YAML syntax"), "{e}");
        let e = err("accounts:\n  work: {}\n   bad: x\n");
        assert!(e.starts_with("/ccs/config.yaml: line 3: "), "{e}");
        let e = err("a: 1\na: 2\n");
        assert!(e.contains("duplicate entry"), "{e}");
    }

    // ---- names and groups ----

    #[test]
    fn profile_names() {
        for ok in ["a", "work", "Work_2", "a-b-c", "x_", "defaults"] {
            validate_profile_name(ok).unwrap();
        }
        for bad in [
            "", "1a", "_a", "-a", "a.b", "a b", "a/b", "x.lock", "é", "default", "Default",
        ] {
            let e = validate_profile_name(bad).unwrap_err();
            assert_single_line(&e);
            assert!(e.0.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn group_normalisation() {
        assert_eq!(normalize_group("  Team Alpha ").unwrap(), "team-alpha");
        assert_eq!(normalize_group("a \t  b\nC").unwrap(), "a-b-c");
        assert_eq!(normalize_group("X_1-y").unwrap(), "x_1-y");
        assert_eq!(normalize_group(&"a".repeat(64)).unwrap(), "a".repeat(64));
    }

    #[test]
    fn bad_groups() {
        for bad in [
            "1team",
            "team!",
            "te.am",
            "",
            "   ",
            "-x",
            "équipe",
            &"a".repeat(65),
        ] {
            let e = normalize_group(bad).unwrap_err();
            assert_single_line(&e);
            assert!(e.0.contains("invalid context group"), "{e}");
        }
        // The newline is escaped in the message, never printed raw.
        assert_single_line(&normalize_group("bad\n!").unwrap_err());
    }

    #[test]
    fn errors_are_single_line() {
        // A path with a newline cannot break the line either.
        let e = parse_accounts("accounts: [\n", Path::new("/a\nb/config.yaml")).unwrap_err();
        assert_single_line(&e);
        let e = parse("accounts:\n  \"a\\nb\": {}\n").unwrap_err();
        assert_single_line(&e);
    }

    // ---- load_profiles ----

    #[test]
    fn load_from_config_sorted() {
        let dir = tempdir().unwrap();
        write(
            &dir.path().join("config.yaml"),
            "accounts:\n  zed: {}\n  alpha:\n    context_mode: shared\n",
        );
        fs::create_dir_all(dir.path().join("instances/other")).unwrap();
        let profiles = load_profiles(dir.path()).unwrap();
        let names: Vec<_> = profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["alpha", "zed"]);
        assert!(profiles[0].is_shared());
    }

    #[test]
    fn load_sorts_by_dir_name_and_keeps_the_first_of_one_dir() {
        let dir = tempdir().unwrap();
        write(
            &dir.path().join("config.yaml"),
            "accounts:\n  Zed: {}\n  Work:\n    context_mode: shared\n  alpha: {}\n  work: {}\n  \
             WORK: {}\n",
        );
        let profiles = load_profiles(dir.path()).unwrap();
        // "Zed" < "alpha" by name, but zed > alpha by dir; the first of Work/work/WORK stays.
        assert_eq!(names_of(&profiles), ["alpha", "Work", "Zed"]);
        assert!(profiles[1].is_shared());
    }

    #[test]
    fn load_falls_back_to_instance_dirs() {
        let dir = tempdir().unwrap();
        let instances = dir.path().join("instances");
        for d in [
            "work", "alpha", "x.lock", "1bad", "has.dot", "default", ".locks", ".hidden", "Caps",
        ] {
            fs::create_dir_all(instances.join(d)).unwrap();
        }
        fs::write(instances.join("file"), "").unwrap();
        fs::write(instances.join("work.lock"), "").unwrap();
        std::os::unix::fs::symlink(instances.join("work"), instances.join("linked")).unwrap();
        let expected = vec![
            Profile::isolated("alpha"),
            Profile::isolated("linked"),
            Profile::isolated("work"),
        ];
        // No config file.
        assert_eq!(load_profiles(dir.path()).unwrap(), expected);
        // A config file without usable accounts.
        for text in ["", "profiles: {}\n", "accounts: {}\n", "accounts:\n"] {
            fs::write(dir.path().join("config.yaml"), text).unwrap();
            assert_eq!(load_profiles(dir.path()).unwrap(), expected);
        }
    }

    #[test]
    fn load_missing_instances_dir_is_empty() {
        let dir = tempdir().unwrap();
        assert_eq!(load_profiles(dir.path()).unwrap(), vec![]);
        assert_eq!(load_profiles(&dir.path().join("nope")).unwrap(), vec![]);
    }

    #[test]
    fn load_reports_config_errors() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        write(&path, "accounts:\n  work:\n    context_mode: foo\n");
        let e = load_profiles(dir.path()).unwrap_err();
        assert_single_line(&e);
        assert!(
            e.0.starts_with(&format!("{}: account \"work\"", path.display())),
            "{e}"
        );
        fs::write(&path, [0xff, 0xfe]).unwrap();
        let e = load_profiles(dir.path()).unwrap_err();
        assert_single_line(&e);
        assert!(e.0.contains("cannot read"), "{e}");
    }

    // ---- add_profile ----

    #[test]
    fn add_to_missing_config() {
        let dir = tempdir().unwrap();
        let ccs = dir.path().join("ccs");
        let (p, added) = add_profile(&ccs, "work", None, false).unwrap();
        assert!(added);
        assert_eq!(p, Profile::isolated("work"));
        assert_eq!(mode_of(&ccs), 0o700);
        assert_eq!(mode_of(&ccs.join("instances")), 0o700);
        assert_eq!(mode_of(&ccs.join("instances/work")), 0o700);
        let path = ccs.join("config.yaml");
        assert_eq!(mode_of(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("version: 13\naccounts:\n  work:\n    created: \"20"),
            "{text}"
        );
        assert!(
            text.ends_with("Z\"\n    last_used: null\n    context_mode: isolated\n"),
            "{text}"
        );
        assert_eq!(load_profiles(&ccs).unwrap(), vec![p]);
        // No temp file and no lock left behind.
        assert_eq!(dir_entries(&ccs), ["config.yaml", "instances"]);
    }

    #[test]
    fn add_writes_the_version_ccs_requires() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        // Missing, null or unusable (CCS rejects them): 13, first when it was missing.
        for (before, after) in [
            (
                "preferences: {theme: dark}\n",
                "version: 13\npreferences:\n  theme: dark\n",
            ),
            ("accounts: {}\nversion: null\n", "accounts:\n"),
            (
                "version: \"13\"\naccounts: {}\n",
                "version: 13\naccounts:\n",
            ),
            ("version: 0\n", "version: 13\naccounts:\n"),
            ("version: [1]\n", "version: 13\naccounts:\n"),
        ] {
            fs::write(&path, before).unwrap();
            add_profile(dir.path(), "work", None, false).unwrap();
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.starts_with(after), "{before:?} became {text:?}");
            assert_eq!(read_yaml(&path)["version"], 13, "{text}");
        }
        // A valid one is kept, lower (CCS upgrades it itself) or higher.
        for version in ["1", "8", "13", "99", "13.5"] {
            let before = format!("version: {version}\naccounts: {{}}\n");
            fs::write(&path, &before).unwrap();
            add_profile(dir.path(), "work", None, false).unwrap();
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.starts_with(&format!("version: {version}\n")), "{text}");
        }
    }

    #[test]
    fn remove_writes_the_version_ccs_requires() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        write(&path, "accounts:\n  a: {}\n  b: {}\n");
        remove_profile(dir.path(), "a").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "version: 13\naccounts:\n  b: {}\n"
        );
        write(&path, "version: 99\naccounts:\n  b: {}\n");
        remove_profile(dir.path(), "b").unwrap();
        assert_eq!(read_yaml(&path)["version"], 99);
        assert_eq!(dir_entries(dir.path()), ["config.yaml"]);
    }

    #[test]
    fn add_uses_the_lowercase_instance_dir() {
        let dir = tempdir().unwrap();
        let ccs = dir.path();
        let (p, added) = add_profile(ccs, "Delta", Some("Team"), false).unwrap();
        assert!(added);
        assert_eq!(p, shared("Delta", "team", ContinuityMode::Standard));
        assert_eq!(p.dir_name(), "delta");
        assert_eq!(dir_entries(&ccs.join("instances")), ["delta"]);
        let doc = read_yaml(&ccs.join("config.yaml"));
        assert_eq!(doc["accounts"]["Delta"]["context_group"], "team");
        assert_eq!(load_profiles(ccs).unwrap(), vec![p]);
        // Updating it touches the same dir; no other dir appears.
        add_profile(ccs, "Delta", None, false).unwrap();
        assert_eq!(dir_entries(&ccs.join("instances")), ["delta"]);
    }

    #[test]
    fn add_refuses_a_second_account_for_one_instance_dir() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        let text = "version: 13\naccounts:\n  Work: {}\n";
        write(&path, text);
        let e = add_profile(dir.path(), "work", None, false).unwrap_err();
        assert_single_line(&e);
        assert!(
            e.0.contains("\"Work\" already lives in instances/work"),
            "{e}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        assert!(!dir.path().join("instances").exists());
        assert_eq!(dir_entries(dir.path()), ["config.yaml"]);
        // The account itself can still be updated.
        add_profile(dir.path(), "Work", Some("g"), false).unwrap();
    }

    #[test]
    fn add_profile_local() {
        let dir = tempdir().unwrap();
        let ccs = dir.path();
        let path = ccs.join("config.yaml");
        let opts = AddOptions {
            group: Some("g"),
            profile_local: true,
            ..AddOptions::default()
        };
        let (p, added) = add_profile_with(ccs, "work", &opts).unwrap();
        assert!(added);
        assert_eq!(
            p,
            profile_local(shared("work", "g", ContinuityMode::Standard))
        );
        let doc = read_yaml(&path);
        let keys: Vec<_> = doc["accounts"]["work"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "created",
                "last_used",
                "context_mode",
                "context_group",
                "continuity_mode",
                "shared_resource_mode",
                "bare"
            ]
        );
        assert_eq!(
            doc["accounts"]["work"]["shared_resource_mode"],
            "profile-local"
        );
        assert_eq!(doc["accounts"]["work"]["bare"], true);
        // Without the flag, an existing account keeps its resource mode (as `ccs auth create`).
        let (p, added) = add_profile(ccs, "work", None, false).unwrap();
        assert!(!added);
        assert_eq!(p, profile_local(Profile::isolated("work")));
        assert_eq!(load_profiles(ccs).unwrap(), vec![p]);
        // A new account without the flag gets no resource keys: shared is CCS's default.
        let (p, _) = add_profile(ccs, "other", None, false).unwrap();
        assert_eq!(p.shared_resources, SharedResources::Shared);
        let entry = &read_yaml(&path)["accounts"]["other"];
        assert!(entry.get("shared_resource_mode").is_none());
        assert!(entry.get("bare").is_none());
    }

    #[test]
    fn add_waits_for_ccs_config_lock() {
        let dir = tempdir().unwrap();
        let ccs = dir.path().to_path_buf();
        let held = ConfigLock::acquire(&ccs).unwrap();
        let token = held.token().to_string();
        let writer = {
            let ccs = ccs.clone();
            std::thread::spawn(move || add_profile(&ccs, "work", None, false).map(|_| ()))
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        // Still waiting: nothing written, and our lock is intact.
        assert!(!ccs.join("config.yaml").exists());
        assert!(
            fs::read_to_string(ccs.join(crate::ccs_lock::LOCK_FILE))
                .unwrap()
                .ends_with(&token)
        );
        drop(held);
        writer.join().unwrap().unwrap();
        assert_eq!(
            load_profiles(&ccs).unwrap(),
            vec![Profile::isolated("work")]
        );
        assert_eq!(dir_entries(&ccs), ["config.yaml", "instances"]);
    }

    #[test]
    fn add_modes() {
        let dir = tempdir().unwrap();
        let ccs = dir.path();
        let (p, _) = add_profile(ccs, "a", Some("  Team Alpha "), false).unwrap();
        assert_eq!(p, shared("a", "team-alpha", ContinuityMode::Standard));
        let (p, _) = add_profile(ccs, "b", None, true).unwrap();
        assert_eq!(p, shared("b", "default", ContinuityMode::Deeper));
        let (p, _) = add_profile(ccs, "c", Some("g"), true).unwrap();
        assert_eq!(p, shared("c", "g", ContinuityMode::Deeper));
        let (p, _) = add_profile(ccs, "d", None, false).unwrap();
        assert_eq!(p, Profile::isolated("d"));
        let loaded = load_profiles(ccs).unwrap();
        assert_eq!(loaded.len(), 4);
        for (name, got) in ["a", "b", "c", "d"].iter().zip(&loaded) {
            assert_eq!(&got.name, name);
        }
        assert_eq!(loaded[2], shared("c", "g", ContinuityMode::Deeper));
        let entry = &read_yaml(&ccs.join("config.yaml"))["accounts"]["b"];
        assert_eq!(entry["context_mode"], "shared");
        assert_eq!(entry["context_group"], "default");
        assert_eq!(entry["continuity_mode"], "deeper");
        assert!(entry["last_used"].is_null());
    }

    #[test]
    fn add_rejects_bad_input_without_writing() {
        let dir = tempdir().unwrap();
        for (name, group) in [
            ("1bad", None),
            ("default", None),
            ("ok", Some("9x")),
            ("ok", Some("")),
        ] {
            let e = add_profile(dir.path(), name, group, false).unwrap_err();
            assert_single_line(&e);
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn add_preserves_everything_else() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        write(&path, FULL);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let before = read_yaml(&path);

        let (p, added) = add_profile(dir.path(), "newbie", Some("crew"), false).unwrap();
        assert!(added);
        assert_eq!(p, shared("newbie", "crew", ContinuityMode::Standard));
        assert_eq!(mode_of(&path), 0o640);

        let mut after = read_yaml(&path);
        let accounts = after["accounts"].as_mapping_mut().unwrap();
        let entry = accounts.shift_remove("newbie").unwrap();
        assert_eq!(after, before);
        let keys: Vec<_> = entry.as_mapping().unwrap().keys().cloned().collect();
        let expected: Vec<Value> = [
            "created",
            "last_used",
            "context_mode",
            "context_group",
            "continuity_mode",
        ]
        .map(Value::from)
        .into();
        assert_eq!(keys, expected);
        assert!(entry["created"].as_str().unwrap().ends_with('Z'));

        // Key order is kept everywhere: the rendering is identical.
        assert_eq!(
            emit_document(&after, src()).unwrap(),
            emit_document(&before, src()).unwrap()
        );
        // Strings that look like dates stay quoted strings for CCS's js-yaml.
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("created: \"2026-02-24T00:00:00.000Z\""),
            "{text}"
        );
        assert!(text.contains("\"on\": \"yes\""), "{text}");
    }

    #[test]
    fn add_updates_existing_entry() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        write(&path, FULL);
        let before = read_yaml(&path);

        // shared deeper → isolated: drops group and continuity, keeps the rest.
        let (p, added) = add_profile(dir.path(), "work", None, false).unwrap();
        assert!(!added);
        assert_eq!(p, profile_local(Profile::isolated("work")));
        let after = read_yaml(&path);
        let entry = after["accounts"]["work"].as_mapping().unwrap();
        let keys: Vec<_> = entry.keys().map(|k| k.as_str().unwrap()).collect();
        assert_eq!(keys, ["created", "last_used", "context_mode", "bare"]);
        assert_eq!(entry["created"], "2026-02-24T00:00:00.000Z");
        assert_eq!(entry["context_mode"], "isolated");
        assert_eq!(entry["bare"], true);
        assert_eq!(
            after["accounts"]["personal"],
            before["accounts"]["personal"]
        );
        assert_eq!(after["profiles"], before["profiles"]);
        assert_eq!(after["preferences"], before["preferences"]);

        // isolated → shared, in place.
        let (_, added) = add_profile(dir.path(), "personal", Some("Team Beta"), true).unwrap();
        assert!(!added);
        let after = read_yaml(&path);
        let names: Vec<_> = after["accounts"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(names, ["work", "personal"]);
        let entry = &after["accounts"]["personal"];
        assert_eq!(entry["created"], "2026-01-01T10:00:00.000Z");
        assert_eq!(entry["last_used"], "2026-02-01T10:00:00.000Z");
        assert_eq!(entry["context_group"], "team-beta");
        assert_eq!(entry["continuity_mode"], "deeper");
        assert_eq!(
            load_profiles(dir.path()).unwrap(),
            vec![
                shared("personal", "team-beta", ContinuityMode::Deeper),
                profile_local(Profile::isolated("work")),
            ]
        );
    }

    #[test]
    fn add_updates_null_entry_and_null_accounts() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        write(&path, "accounts:\n  work:\nversion: 1\n");
        let (_, added) = add_profile(dir.path(), "work", Some("g"), false).unwrap();
        assert!(!added);
        assert_eq!(read_yaml(&path)["accounts"]["work"]["context_group"], "g");

        fs::write(&path, "accounts:\nversion: 1\n").unwrap();
        let (_, added) = add_profile(dir.path(), "work", None, false).unwrap();
        assert!(added);
        let doc = read_yaml(&path);
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["accounts"]["work"]["context_mode"], "isolated");
    }

    #[test]
    fn add_keeps_existing_instance_dir_data() {
        let dir = tempdir().unwrap();
        let inst = dir.path().join("instances/work");
        fs::create_dir_all(&inst).unwrap();
        fs::set_permissions(&inst, fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(inst.join(".credentials.json"), "secret").unwrap();
        add_profile(dir.path(), "work", None, false).unwrap();
        assert_eq!(
            fs::read_to_string(inst.join(".credentials.json")).unwrap(),
            "secret"
        );
        assert_eq!(mode_of(&inst), 0o750);
    }

    #[test]
    fn add_refuses_malformed_config() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        let bad = "accounts:\n  work: {}\n   broken: [\n";
        write(&path, bad);
        let e = add_profile(dir.path(), "new", None, false).unwrap_err();
        assert_single_line(&e);
        assert!(e.0.contains(": line "), "{e}");
        assert!(e.0.contains("was not changed"), "{e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), bad);
        assert!(!dir.path().join("instances").exists());
        let e = remove_profile(dir.path(), "work").unwrap_err();
        assert_single_line(&e);
        assert_eq!(fs::read_to_string(&path).unwrap(), bad);
    }

    #[test]
    fn failed_write_leaves_config_untouched() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        write(&path, "version: 1\n");
        // A directory squatting on the temp file's name makes the write fail (even for root).
        let tmp = dir
            .path()
            .join(format!(".config.yaml.ccsfs-tmp-{}", std::process::id()));
        fs::create_dir(&tmp).unwrap();
        let e = add_profile(dir.path(), "work", None, false).unwrap_err();
        assert_single_line(&e);
        assert!(e.0.contains("cannot write"), "{e}");
        assert!(e.0.contains("config.yaml was not changed"), "{e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "version: 1\n");
        // Once the obstacle is gone, a stale temp file does not get in the way.
        fs::remove_dir(&tmp).unwrap();
        fs::write(&tmp, "stale").unwrap();
        add_profile(dir.path(), "work", None, false).unwrap();
        assert!(!tmp.exists());
        assert_eq!(read_yaml(&path)["version"], 1);
    }

    #[test]
    fn add_refuses_unrewritable_structure() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        for bad in [
            "accounts: [a]\n",
            "- a\n",
            "accounts:\n  work: text\n",
            "accounts: {}\n? [a, b]\n: x\n",
        ] {
            fs::write(&path, bad).unwrap();
            let e = add_profile(dir.path(), "work", None, false).unwrap_err();
            assert_single_line(&e);
            assert!(e.0.starts_with(&path.display().to_string()), "{e}");
            assert_eq!(fs::read_to_string(&path).unwrap(), bad);
        }
    }

    #[test]
    fn add_follows_symlinked_config() {
        let dir = tempdir().unwrap();
        let real = dir.path().join("dotfiles/ccs-config.yaml");
        write(&real, "version: 1\n");
        let ccs = dir.path().join("ccs");
        fs::create_dir(&ccs).unwrap();
        std::os::unix::fs::symlink(&real, ccs.join("config.yaml")).unwrap();
        add_profile(&ccs, "work", None, false).unwrap();
        assert!(
            fs::symlink_metadata(ccs.join("config.yaml"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            read_yaml(&real)["accounts"]["work"]["context_mode"],
            "isolated"
        );
    }

    // ---- remove_profile ----

    #[test]
    fn remove_keeps_data_and_other_keys() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        write(&path, FULL);
        let inst = dir.path().join("instances/work");
        fs::create_dir_all(&inst).unwrap();
        fs::write(inst.join("history.jsonl"), "data").unwrap();
        let mut expected = read_yaml(&path);
        expected["accounts"]
            .as_mapping_mut()
            .unwrap()
            .shift_remove("work");

        remove_profile(dir.path(), "work").unwrap();
        assert_eq!(read_yaml(&path), expected);
        assert_eq!(
            fs::read_to_string(inst.join("history.jsonl")).unwrap(),
            "data"
        );
        assert_eq!(
            load_profiles(dir.path()).unwrap(),
            vec![Profile::isolated("personal")]
        );

        // Removing the last account leaves an empty mapping (and the fallback applies).
        remove_profile(dir.path(), "personal").unwrap();
        assert_eq!(read_yaml(&path)["accounts"], Value::Mapping(Mapping::new()));
        assert_eq!(read_yaml(&path)["profiles"], expected["profiles"]);
        assert_eq!(
            load_profiles(dir.path()).unwrap(),
            vec![Profile::isolated("work")]
        );
    }

    #[test]
    fn remove_unknown_is_error() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        // No file at all.
        let e = remove_profile(dir.path(), "work").unwrap_err();
        assert_single_line(&e);
        assert!(e.0.contains("no account \"work\""), "{e}");
        assert!(!path.exists());
        // A file without that account.
        for text in ["version: 1\n", "accounts:\n", "accounts:\n  other: {}\n"] {
            fs::write(&path, text).unwrap();
            let e = remove_profile(dir.path(), "work").unwrap_err();
            assert_single_line(&e);
            assert!(e.0.contains("no account \"work\""), "{e}");
            assert_eq!(fs::read_to_string(&path).unwrap(), text);
        }
    }

    #[test]
    fn remove_works_for_invalid_names() {
        let dir = tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        write(&path, "accounts:\n  bad.name: {}\n  ok: {}\n");
        remove_profile(dir.path(), "bad.name").unwrap();
        assert_eq!(
            load_profiles(dir.path()).unwrap(),
            vec![Profile::isolated("ok")]
        );
    }

    // ---- helpers ----

    #[test]
    fn timestamps() {
        let at = |secs: u64, millis: u64| {
            utc_timestamp(UNIX_EPOCH + std::time::Duration::from_millis(secs * 1000 + millis))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_771_891_200, 0), "2026-02-24T00:00:00.000Z");
        assert_eq!(at(951_782_400 + 3723, 45), "2000-02-29T01:02:03.045Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
        assert_eq!(at(1_709_251_199, 7), "2024-02-29T23:59:59.007Z");
    }

    #[test]
    fn emitter_round_trips() {
        let doc: Value = yaml_serde::from_str(FULL).unwrap();
        let text = emit_document(&doc, src()).unwrap();
        assert_eq!(yaml_serde::from_str::<Value>(&text).unwrap(), doc);
        for expected in [
            "\n    type: api\n",
            "\n  providers:\n    - gemini\n    - codex\n",
            "\n    - name: fast\n      port: 8318\n      ratio: 0.5\n      \"on\": \"yes\"\n",
            "\n  date: \"2026-02-24\"\n",
            "\n  oauth_accounts: {}\n",
            "\n    \"123\": 1\n    \"true\": 2\n    7: seven\n    null: nothing\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }

        let tricky = "a: \"x\\u0007\\u2028\\\\\\\"'\\t\\r\"\nb: !local {k: []}\nc: [[], {}, [1, [2]], {d: e}, !t [x]]\n\
                      '': empty key\n'a: b': colon\n'#x': hash\nf: -.inf\ng: 1.5e+300\nh: ''\n\
                      <<: {m: 1}\n";
        let doc: Value = yaml_serde::from_str(tricky).unwrap();
        let text = emit_document(&doc, src()).unwrap();
        assert_eq!(yaml_serde::from_str::<Value>(&text).unwrap(), doc, "{text}");
        assert!(text.contains("\n<<:\n"), "{text}");
    }
}
