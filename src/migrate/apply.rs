//! The file work of `ccsfs migrate`: reading the instance entries a route hides, walking each
//! source tree (never following a link inside it), comparing with the store, and, with
//! `--apply`, copying (temp file in the destination dir, fsync, rename without overwriting),
//! verifying (size and SHA-256) and only then removing the source. A dry run walks the same
//! way and keeps what it would have placed in memory, so its counts are the apply's.
//!
//! Interrupting is safe at any point: a source is removed only after its copy is verified,
//! a copy only ever appears under its final name whole (rename), and the temp files of an
//! interrupted run (`plan::TEMP_PREFIX`) are removed by the next run as it visits their dir.
//! A re-run finds what is already in place identical and only removes its sources.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::plan::{self, Compare, Counts, Decision, EntryFacts, EntryKind, Hidden};
use crate::config::Profile;
use crate::layout::Layout;
use crate::locks::policy::FileId;
use crate::locks::record::GroupMutex;
use crate::sessions::{self, Holder};

/// One conflict: the incoming file kept under another name (paths relative to the store).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Conflict {
    pub path: String,
    pub kept_as: String,
}

/// What happened (or would happen) to one hidden instance entry.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SourceReport {
    pub profile: String,
    /// `projects` or a continuity dir.
    pub name: String,
    pub entry: PathBuf,
    /// `in place`, `symlink`, `real dir`, `dangling symlink`, `overlaps the store`,
    /// `through a mount`, `not a dir`.
    pub kind: String,
    /// The symlink's target as written.
    pub target: Option<PathBuf>,
    /// Where it led (real path; left untouched).
    pub target_dir: Option<PathBuf>,
    pub store: PathBuf,
    pub counts: Counts,
    pub conflicts: Vec<Conflict>,
    /// Files left where they are, with the reason (links the mount would refuse, sockets…).
    pub left: Vec<String>,
    /// The instance entry is (or would be) removed: everything in it is in the store.
    pub entry_removed: bool,
}

/// The whole run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub applied: bool,
    /// Instance dirs renamed to CCS's lowercase name (or that would be).
    pub renamed: Vec<(PathBuf, PathBuf)>,
    /// Things left alone, for people (both spellings of an instance dir, …).
    pub notes: Vec<String>,
    pub sources: Vec<SourceReport>,
    pub totals: Counts,
}

impl Report {
    /// Whether anything is (or was) to be done.
    pub fn has_work(&self) -> bool {
        !self.renamed.is_empty()
            || self
                .sources
                .iter()
                .any(|s| s.counts.files > 0 || s.entry_removed)
    }
}

pub struct Options {
    pub apply: bool,
    /// Show a progress bar (stderr is a terminal).
    pub progress: bool,
    /// Where mounts of this CCS dir are (links through them are never followed).
    pub mount_points: Vec<PathBuf>,
}

/// Trees that big get a progress bar on a terminal.
const BAR_FILES: u64 = 500;
const BAR_BYTES: u64 = 64 << 20;

/// Runs the migration (a dry run unless `opts.apply`). Refuses, changing nothing, while a
/// store transcript it would touch is held by a live writer.
pub fn run(layout: &Layout, profiles: &[Profile], opts: &Options) -> Result<Report, String> {
    let _guard = if opts.apply {
        Some(run_lock(layout)?)
    } else {
        None
    };
    // Instance dirs spelt as the account (older CCS): renamed first, when they can be.
    let mut renames = Vec::new();
    let mut notes = Vec::new();
    for p in profiles {
        let old = layout.instances_dir().join(&p.name);
        let new = layout.instance(&p.name);
        let old_meta = fs::symlink_metadata(&old).ok();
        let new_meta = fs::symlink_metadata(&new).ok();
        let same = match (&old_meta, &new_meta) {
            (Some(a), Some(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        let old_is_dir = old_meta.as_ref().is_some_and(|m| m.is_dir());
        match plan::case_action(&p.name, old_is_dir, new_meta.is_some(), same) {
            plan::CaseAction::None => {}
            plan::CaseAction::Rename => renames.push((old, new)),
            plan::CaseAction::Both => notes.push(format!(
                "{} and {} both exist; CCS and the mount use {}; the other is left as it is \
                 (instances hold credentials and are never merged): move what you need by hand",
                old.display(),
                new.display(),
                new.display()
            )),
        }
    }
    let dry_instance = |p: &Profile| {
        renames
            .iter()
            .find(|(_, new)| *new == layout.instance(&p.name))
            .map_or_else(|| layout.instance(&p.name), |(old, _)| old.clone())
    };
    let hidden = plan::hidden_entries(layout, profiles, dry_instance);

    // The dry pass: decisions, counts, and the live writers in the way. A lock whose owner
    // has just exited lasts until its daemon sees the owner's last write handle closed (the
    // kernel's RELEASE comes asynchronously): wait that out, as a writer through the mount would.
    let drained_by = std::time::Instant::now() + crate::tunables::LOCK_DRAIN_WAIT;
    let (dry, sources) = loop {
        let mut dry = Engine::new(layout, false, &opts.mount_points, &hidden);
        dry.bar = if opts.progress {
            spinner()
        } else {
            ProgressBar::hidden()
        };
        let sources: Vec<SourceReport> = hidden.iter().map(|h| dry.source(h)).collect();
        dry.bar.finish_and_clear();
        let draining = !dry.held.is_empty() && dry.held.iter().all(|(_, h)| h.draining);
        if !draining || std::time::Instant::now() >= drained_by {
            break (dry, sources);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    if let Some((path, holder)) = dry.held.first() {
        let more = match dry.held.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Err(format!(
            "{} is being written by {holder}{more}; nothing was changed: run `ccsfs migrate` \
             again once it has exited (or `ccsfs unlock` it)",
            path.display()
        ));
    }
    let mut report = Report {
        applied: opts.apply,
        renamed: renames.clone(),
        notes,
        ..Report::default()
    };
    if !opts.apply {
        report.sources = sources;
        report.totals = total(&report.sources);
        return Ok(report);
    }

    for (old, new) in &renames {
        rename_noreplace(old, new).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}; rename it by hand, then run `ccsfs migrate --apply` again",
                old.display(),
                new.display()
            )
        })?;
    }
    let hidden = plan::hidden_entries(layout, profiles, |p| layout.instance(&p.name));
    let mut eng = Engine::new(layout, true, &opts.mount_points, &hidden);
    let all = total(&sources);
    eng.bar = if opts.progress && (all.files >= BAR_FILES || all.bytes >= BAR_BYTES) {
        let bar = ProgressBar::new(all.bytes);
        bar.set_style(
            ProgressStyle::with_template("migrating {bar:30} {bytes}/{total_bytes} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    report.sources = hidden.iter().map(|h| eng.source(h)).collect();
    eng.bar.finish_and_clear();
    report.totals = total(&report.sources);
    Ok(report)
}

fn spinner() -> ProgressBar {
    let s = ProgressBar::new_spinner();
    s.set_style(
        ProgressStyle::with_template("comparing {spinner} {pos} files {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    s
}

fn total(sources: &[SourceReport]) -> Counts {
    let mut t = Counts::default();
    for s in sources {
        t.merge(&s.counts);
    }
    t
}

/// One `migrate --apply` at a time per CCS dir (each removes the other's temp files).
fn run_lock(layout: &Layout) -> Result<File, String> {
    let dir = layout.ccs_dir.join("ccsfs");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("migrate.lock");
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(_) => Err(format!(
            "another `ccsfs migrate --apply` is running on {} (it holds {}); wait for it",
            layout.ccs_dir.display(),
            path.display()
        )),
    }
}

/// What one source's walk needs.
struct Ctx<'a> {
    h: &'a Hidden,
    /// The store's real path (for the symlink rule).
    store_real: PathBuf,
    /// Mount paths that show this store (`<mnt>/<p>/<name>`), for links written through one.
    aliases: Vec<(PathBuf, PathBuf)>,
    /// Remove each source file once it is in the store (a real dir; never a link's target).
    remove_sources: bool,
    report: SourceReport,
    /// Files handled in the current dir, settled (verified, source removed) after one fsync
    /// of their store dir.
    pending: Vec<Pending>,
}

/// A source whose content is in the store, waiting for its store dir's fsync.
struct Pending {
    src: PathBuf,
    meta: Metadata,
    /// Where it was copied to, and what was copied (`None`: it was there already).
    copy: Option<(PathBuf, Copied)>,
}

struct Engine<'a> {
    layout: &'a Layout,
    apply: bool,
    mounts: &'a [PathBuf],
    hidden: &'a [Hidden],
    /// Dry run: what each store path would hold (the source file that would be placed there).
    overlay: HashMap<PathBuf, PathBuf>,
    overlay_dirs: HashSet<PathBuf>,
    /// Live lock holders per group, read once.
    holders: HashMap<String, HashMap<u64, (FileId, Holder)>>,
    /// Store transcripts held by a live writer that this run would touch.
    held: Vec<(PathBuf, Holder)>,
    /// Dirs whose leftover temp files were removed this run.
    cleaned: HashSet<PathBuf>,
    temps: u64,
    bar: ProgressBar,
}

impl<'a> Engine<'a> {
    fn new(layout: &'a Layout, apply: bool, mounts: &'a [PathBuf], hidden: &'a [Hidden]) -> Self {
        Engine {
            layout,
            apply,
            mounts,
            hidden,
            overlay: HashMap::new(),
            overlay_dirs: HashSet::new(),
            holders: HashMap::new(),
            held: Vec::new(),
            cleaned: HashSet::new(),
            temps: 0,
            bar: ProgressBar::hidden(),
        }
    }

    fn facts(&self, entry: &Path) -> EntryFacts {
        let Ok(m) = fs::symlink_metadata(entry) else {
            return EntryFacts::default();
        };
        let link = m
            .file_type()
            .is_symlink()
            .then(|| fs::read_link(entry).ok())
            .flatten();
        let into_mount = link.as_ref().is_some_and(|t| {
            let abs = plan_abs(entry, t);
            self.mounts.iter().any(|mp| abs.starts_with(mp))
        });
        let resolved = if link.is_some() && !into_mount {
            fs::canonicalize(entry).ok().filter(|p| p.is_dir())
        } else {
            None
        };
        let has_credentials = resolved.as_ref().is_some_and(|r| {
            [".credentials.json", ".claude.json"]
                .iter()
                .any(|n| fs::symlink_metadata(r.join(n)).is_ok())
        });
        EntryFacts {
            exists: true,
            is_symlink: m.file_type().is_symlink(),
            is_dir: m.is_dir(),
            resolved,
            link,
            into_mount,
            has_credentials,
        }
    }

    fn source(&mut self, h: &Hidden) -> SourceReport {
        let store_real = fs::canonicalize(&h.store).unwrap_or_else(|_| h.store.clone());
        let facts = self.facts(&h.entry);
        let instances = self.layout.instances_dir();
        let instances_real = fs::canonicalize(&instances).unwrap_or(instances);
        let kind = plan::classify(&facts, &store_real, &instances_real);
        let mut report = SourceReport {
            profile: h.profile.clone(),
            name: h.name.to_string(),
            entry: h.entry.clone(),
            kind: String::new(),
            target: None,
            target_dir: None,
            store: h.store.clone(),
            counts: Counts::default(),
            conflicts: Vec::new(),
            left: Vec::new(),
            entry_removed: false,
        };
        let (root, remove_sources) = match &kind {
            EntryKind::Missing => {
                report.kind = "missing".into();
                return report;
            }
            EntryKind::InPlace => {
                report.kind = "in place".into();
                return report;
            }
            EntryKind::Dangling { target } => {
                report.kind = "dangling symlink".into();
                report.target = Some(target.clone());
                report.entry_removed = true;
                if self.apply {
                    report.entry_removed = fs::remove_file(&h.entry).is_ok();
                }
                return report;
            }
            EntryKind::Overlaps { target }
            | EntryKind::IntoMount { target }
            | EntryKind::ConfigDir { target } => {
                report.kind = match kind {
                    EntryKind::Overlaps { .. } => "overlaps the store",
                    EntryKind::IntoMount { .. } => "through a mount",
                    _ => "whole config dir",
                }
                .into();
                report.target = Some(target.clone());
                report.left.push(format!(
                    "{} -> {} is left as it is: move its files by hand",
                    h.entry.display(),
                    target.display()
                ));
                return report;
            }
            EntryKind::Other => {
                report.kind = "not a dir".into();
                report
                    .left
                    .push(format!("{} is not a dir; left as it is", h.entry.display()));
                return report;
            }
            EntryKind::Symlink { target } => {
                report.kind = "symlink".into();
                report.target = Some(target.clone());
                report.target_dir = facts.resolved.clone();
                (facts.resolved.clone().unwrap_or_default(), false)
            }
            EntryKind::RealDir => {
                report.kind = "real dir".into();
                (h.entry.clone(), true)
            }
        };
        if self.apply
            && let Err(e) = make_store(&h.store)
        {
            report
                .left
                .push(format!("cannot create {}: {e}", h.store.display()));
            return report;
        }
        let store_real = fs::canonicalize(&h.store).unwrap_or(store_real);
        self.bar.set_message(format!("{}: {}/", h.profile, h.name));
        let aliases = self
            .hidden
            .iter()
            .filter(|o| o.store == h.store)
            .flat_map(|o| {
                self.mounts
                    .iter()
                    .map(move |m| (m.join(&o.profile).join(o.name), o.store.clone()))
            })
            .map(|(from, _)| (from, store_real.clone()))
            .collect();
        let mut ctx = Ctx {
            h,
            store_real,
            aliases,
            remove_sources,
            report,
            pending: Vec::new(),
        };
        self.merge_dir(&root, &h.store.clone(), Path::new(""), &mut ctx);
        let mut report = ctx.report;
        report.entry_removed = report.left.is_empty();
        if self.apply && report.entry_removed {
            let gone = if remove_sources {
                fs::remove_dir(&h.entry)
            } else {
                fs::remove_file(&h.entry)
            };
            if let Err(e) = gone {
                report.entry_removed = false;
                report
                    .left
                    .push(format!("cannot remove {}: {e}", h.entry.display()));
            }
        }
        report
    }

    /// Merges the source dir `src` into the store dir `dst` (`rel` below the store).
    fn merge_dir(&mut self, src: &Path, dst: &Path, rel: &Path, ctx: &mut Ctx) {
        if self.apply {
            self.clean_temps(dst);
        }
        let mut names: Vec<OsString> = match fs::read_dir(src) {
            Ok(d) => d.flatten().map(|e| e.file_name()).collect(),
            Err(e) => {
                ctx.report
                    .left
                    .push(format!("cannot read {}: {e}", src.display()));
                return;
            }
        };
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let s = src.join(&name);
            let Ok(meta) = fs::symlink_metadata(&s) else {
                continue;
            };
            if meta.is_dir() {
                let Some(d) = self.dest_dir(&s, &meta, dst, &name, ctx) else {
                    continue;
                };
                let sub_rel = rel.join(d.file_name().unwrap_or(&name));
                subdirs.push((s, d, sub_rel));
            } else if meta.is_file() || meta.file_type().is_symlink() {
                self.merge_file(&s, &meta, dst, rel, &name, ctx);
            } else {
                ctx.report.left.push(format!(
                    "{} is not a file, dir or symlink; left as it is",
                    s.display()
                ));
            }
        }
        self.settle(dst, ctx);
        for (s, d, sub_rel) in subdirs {
            self.merge_dir(&s, &d, &sub_rel, ctx);
            if self.apply && ctx.remove_sources {
                let _ = fs::remove_dir(&s);
            }
        }
    }

    /// Makes the copies placed in the store dir `dst` durable (one fsync of the dir), verifies
    /// each, and only then removes its source (from a real dir; a link's target is kept).
    fn settle(&mut self, dst: &Path, ctx: &mut Ctx) {
        let pending = std::mem::take(&mut ctx.pending);
        if !self.apply || pending.is_empty() {
            return;
        }
        if let Err(e) = File::open(dst).and_then(|d| d.sync_all()) {
            ctx.report
                .left
                .push(format!("cannot fsync {}: {e}; sources kept", dst.display()));
            return;
        }
        for p in pending {
            if !unchanged(&p.src, &p.meta) {
                ctx.report.left.push(format!(
                    "{} changed during the run; left as it is (run again)",
                    p.src.display()
                ));
                continue;
            }
            if let Some((to, copied)) = &p.copy
                && let Err(e) = verify(&p.src, &p.meta, to, copied)
            {
                ctx.report.left.push(format!("{}: {e}", p.src.display()));
                continue;
            }
            if ctx.remove_sources
                && let Err(e) = fs::remove_file(&p.src)
            {
                ctx.report
                    .left
                    .push(format!("cannot remove {}: {e}", p.src.display()));
            }
        }
    }

    /// The store dir a source dir goes to: its own name, or (when a file has that name in the
    /// store) the first free conflict name. Made (with the source's mode) when applying.
    fn dest_dir(
        &mut self,
        src: &Path,
        meta: &Metadata,
        dst: &Path,
        name: &OsStr,
        ctx: &mut Ctx,
    ) -> Option<PathBuf> {
        let mut n = 0;
        let mut cand = dst.join(name);
        loop {
            let is_dir = self.overlay_dirs.contains(&cand)
                || fs::symlink_metadata(&cand).is_ok_and(|m| m.is_dir());
            let taken = !is_dir && self.lookup(&cand).is_some();
            if is_dir || !taken {
                break;
            }
            cand = dst.join(plan::conflict_name(name, &ctx.h.profile, n));
            n += 1;
        }
        if !self.apply {
            if fs::symlink_metadata(&cand).is_err() {
                self.overlay_dirs.insert(cand.clone());
            }
            return Some(cand);
        }
        match fs::DirBuilder::new().mode(0o700).create(&cand) {
            Ok(()) => {
                let _ =
                    fs::set_permissions(&cand, fs::Permissions::from_mode(meta.mode() & 0o7777));
                chown_like(&cand, meta);
                Some(cand)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(cand),
            Err(e) => {
                ctx.report.left.push(format!(
                    "{}: cannot create {}: {e}",
                    src.display(),
                    cand.display()
                ));
                None
            }
        }
    }

    /// What a store path holds now (or would, in a dry run): the file to compare with.
    fn lookup(&self, dst: &Path) -> Option<PathBuf> {
        if let Some(p) = self.overlay.get(dst) {
            return Some(p.clone());
        }
        fs::symlink_metadata(dst).ok().map(|_| dst.to_path_buf())
    }

    fn merge_file(
        &mut self,
        src: &Path,
        meta: &Metadata,
        dst_dir: &Path,
        rel: &Path,
        name: &OsStr,
        ctx: &mut Ctx,
    ) {
        let is_link = meta.file_type().is_symlink();
        let bytes = if is_link { 0 } else { meta.len() };
        if is_link {
            let target = match fs::read_link(src) {
                Ok(t) => t,
                Err(e) => {
                    ctx.report
                        .left
                        .push(format!("cannot read the link {}: {e}", src.display()));
                    return;
                }
            };
            let dir_real = ctx.store_real.join(rel);
            if let Err(why) = plan::link_verdict(&ctx.store_real, &dir_real, &target, &ctx.aliases)
            {
                ctx.report.left.push(format!(
                    "{} -> {} is left where it is: the mount would refuse it ({why})",
                    src.display(),
                    target.display()
                ));
                return;
            }
        }
        let dst = dst_dir.join(name);
        let existing = self.lookup(&dst);
        if let Some(e) = &existing
            && e == &dst
        {
            self.check_holder(ctx, &dst);
        }
        let cmp = match existing.as_deref().map(|e| compare(src, meta, e)) {
            Some(Err(e)) => {
                ctx.report
                    .left
                    .push(format!("cannot compare {}: {e}", src.display()));
                return;
            }
            Some(Ok(c)) => Some(c),
            None => None,
        };
        let mut decision = plan::decide(name, cmp);
        let result = match decision {
            Decision::New => self.place(src, meta, &dst, false),
            Decision::Identical | Decision::StoreLonger => Ok(None),
            Decision::Extends => self.extend(src, meta, &dst, ctx),
            Decision::Conflict => {
                let mut n = 0;
                loop {
                    let cname = plan::conflict_name(name, &ctx.h.profile, n);
                    let cand = dst_dir.join(&cname);
                    n += 1;
                    match self.lookup(&cand).map(|e| compare(src, meta, &e)) {
                        None => {
                            ctx.report.conflicts.push(Conflict {
                                path: rel.join(name).display().to_string(),
                                kept_as: rel.join(&cname).display().to_string(),
                            });
                            break self.place(src, meta, &cand, false);
                        }
                        // Placed by an earlier (interrupted) run.
                        Some(Ok(Compare::Equal)) => {
                            decision = Decision::Identical;
                            break Ok(None);
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => break Err(e),
                    }
                }
            }
        };
        ctx.report.counts.add(decision, bytes);
        self.bar.inc(if self.apply { bytes } else { 1 });
        match result {
            Err(e) => ctx.report.left.push(format!("{}: {e}", src.display())),
            Ok(copy) => ctx.pending.push(Pending {
                src: src.to_path_buf(),
                meta: meta.clone(),
                copy,
            }),
        }
    }

    /// Notes a live writer of the store file `dst` (the run is then refused).
    fn check_holder(&mut self, ctx: &Ctx, dst: &Path) {
        if !plan::is_transcript(dst.file_name().unwrap_or_default())
            && fs::symlink_metadata(dst).is_ok_and(|m| m.nlink() < 2)
        {
            return;
        }
        let group = ctx.h.group.clone();
        let layout = self.layout;
        let holders = self
            .holders
            .entry(group.clone())
            .or_insert_with(|| sessions::holders(layout, &group));
        if holders.is_empty() {
            return;
        }
        if let Ok(m) = fs::symlink_metadata(dst)
            && let Some(h) = sessions::holder_of(holders, &m)
        {
            self.held.push((dst.to_path_buf(), h));
        }
    }

    /// Copies `src` to `dst`, which must not exist unless `replace` (dry run: notes it in the
    /// overlay). Returns what to verify once the dir is synced.
    fn place(
        &mut self,
        src: &Path,
        meta: &Metadata,
        dst: &Path,
        replace: bool,
    ) -> io::Result<Option<(PathBuf, Copied)>> {
        if !self.apply {
            self.overlay.insert(dst.to_path_buf(), src.to_path_buf());
            return Ok(None);
        }
        let dir = dst.parent().unwrap_or(Path::new("/"));
        self.temps += 1;
        let tmp = dir.join(plan::temp_name(std::process::id(), self.temps));
        let copied = copy_to_temp(src, meta, &tmp);
        let copied = match copied {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let moved = if replace {
            fs::rename(&tmp, dst)
        } else {
            rename_noreplace(&tmp, dst)
        };
        if let Err(e) = moved {
            let _ = fs::remove_file(&tmp);
            return Err(if e.kind() == io::ErrorKind::AlreadyExists {
                io::Error::other(format!(
                    "{} appeared during the run; left the source as it is (run again)",
                    dst.display()
                ))
            } else {
                e
            });
        }
        Ok(Some((dst.to_path_buf(), copied)))
    }

    /// Replaces the store's shorter transcript with the longer incoming one, under the group's
    /// lock mutex, and only while no live writer holds it.
    fn extend(
        &mut self,
        src: &Path,
        meta: &Metadata,
        dst: &Path,
        ctx: &mut Ctx,
    ) -> io::Result<Option<(PathBuf, Copied)>> {
        if !self.apply {
            self.overlay.insert(dst.to_path_buf(), src.to_path_buf());
            return Ok(None);
        }
        let _mutex = GroupMutex::lock(&self.layout.group_dir(&ctx.h.group))?;
        let holders = sessions::holders(self.layout, &ctx.h.group);
        if let Ok(m) = fs::symlink_metadata(dst)
            && let Some(h) = sessions::holder_of(&holders, &m)
        {
            return Err(io::Error::other(format!(
                "{} is being written by {h}; left as it is (run again once it has exited)",
                dst.display()
            )));
        }
        self.place(src, meta, dst, true)
    }

    /// Removes the temp files an interrupted run left in `dir`.
    fn clean_temps(&mut self, dir: &Path) {
        if !self.cleaned.insert(dir.to_path_buf()) {
            return;
        }
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if plan::is_temp_name(&e.file_name()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// A link's target made absolute lexically (from the link's dir).
fn plan_abs(entry: &Path, target: &Path) -> PathBuf {
    crate::layout::lexical(&entry.parent().unwrap_or(Path::new("/")).join(target))
}

/// Creates the store dir (and missing parents) with mode 0700, as the mount does.
fn make_store(store: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(store)
}

fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // A filesystem without RENAME_NOREPLACE: a hard link never overwrites either.
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        Err(e) => Err(e.into()),
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn chown_like(path: &Path, meta: &Metadata) {
    if is_root() {
        let _ = std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()));
    }
}

/// What a copy wrote: its length and SHA-256 (of a link: its target).
struct Copied {
    len: u64,
    hash: [u8; 32],
}

/// Writes a copy of `src` (a file or a link) at the new name `tmp`: mode, owner (as root)
/// and times kept, fsynced.
fn copy_to_temp(src: &Path, meta: &Metadata, tmp: &Path) -> io::Result<Copied> {
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    };
    if meta.file_type().is_symlink() {
        let target = fs::read_link(src)?;
        std::os::unix::fs::symlink(&target, tmp)?;
        chown_like(tmp, meta);
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            tmp,
            &times,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
        return Ok(Copied {
            len: 0,
            hash: Sha256::digest(target.as_os_str().as_encoded_bytes()).into(),
        });
    }
    let mut from = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(src)?;
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut len = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        len += n as u64;
    }
    if is_root() {
        let _ = std::os::unix::fs::fchown(&to, Some(meta.uid()), Some(meta.gid()));
    }
    to.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    rustix::fs::futimens(&to, &times)?;
    to.sync_all()?;
    Ok(Copied {
        len,
        hash: hasher.finalize().into(),
    })
}

fn hash_file(path: &Path) -> io::Result<(u64, [u8; 32])> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hasher.finalize().into()))
}

/// `path` still has the size and mtime it had when it was compared or copied.
fn unchanged(path: &Path, meta: &Metadata) -> bool {
    fs::symlink_metadata(path).is_ok_and(|now| {
        now.len() == meta.len()
            && now.mtime() == meta.mtime()
            && now.mtime_nsec() == meta.mtime_nsec()
            && now.ino() == meta.ino()
    })
}

/// The copy at `dst` is what was copied, and the source did not change meanwhile.
fn verify(src: &Path, meta: &Metadata, dst: &Path, c: &Copied) -> io::Result<()> {
    let bad = |what: &str| {
        Err(io::Error::other(format!(
            "{what}; the source is left as it is (run again)"
        )))
    };
    if !unchanged(src, meta) {
        return bad("it changed during the copy");
    }
    if meta.file_type().is_symlink() {
        let t = fs::read_link(dst)?;
        let h: [u8; 32] = Sha256::digest(t.as_os_str().as_encoded_bytes()).into();
        return if h == c.hash {
            Ok(())
        } else {
            bad("the copied link differs")
        };
    }
    let d = fs::symlink_metadata(dst)?;
    if d.len() != c.len || c.len != meta.len() {
        return bad("the copy's size differs");
    }
    let (len, hash) = hash_file(dst)?;
    if len != c.len || hash != c.hash {
        return bad("the copy's content differs");
    }
    Ok(())
}

/// How the incoming `src` compares with what is at `other` (a file, a link or a dir).
fn compare(src: &Path, meta: &Metadata, other: &Path) -> io::Result<Compare> {
    let om = fs::symlink_metadata(other)?;
    let (a_link, b_link) = (meta.file_type().is_symlink(), om.file_type().is_symlink());
    if a_link || b_link {
        return Ok(
            if a_link && b_link && fs::read_link(src)? == fs::read_link(other)? {
                Compare::Equal
            } else {
                Compare::Differ
            },
        );
    }
    if !om.is_file() {
        return Ok(Compare::Differ);
    }
    let open = |p: &Path| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p)
    };
    let (mut a, mut b) = (open(src)?, open(other)?);
    let (la, lb) = (meta.len(), om.len());
    let mut left = la.min(lb);
    let mut ba = vec![0u8; 128 << 10];
    let mut bb = vec![0u8; 128 << 10];
    while left > 0 {
        let n = left.min(ba.len() as u64) as usize;
        a.read_exact(&mut ba[..n])?;
        b.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(Compare::Differ);
        }
        left -= n as u64;
    }
    Ok(match la.cmp(&lb) {
        std::cmp::Ordering::Equal => Compare::Equal,
        std::cmp::Ordering::Less => Compare::IncomingPrefix,
        std::cmp::Ordering::Greater => Compare::StorePrefix,
    })
}
