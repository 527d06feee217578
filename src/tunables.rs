//! Every tunable of ccsfs in one place: cache lifetimes, polling periods, lock timing, fd
//! budgets, size limits. Each says what it trades, so a change is made knowing its cost. The
//! modules that use them refer here; nothing else is decided in this file (no I/O, no
//! imports beyond `std`).

use std::time::Duration;

// --- The kernel's caches -------------------------------------------------------------------

/// How long the kernel may cache entries and attributes (`fs::attr::TTL`). Longer: fewer
/// LOOKUP/GETATTR round trips. Shorter: changes made behind the mount (by CCS, an editor in the
/// instance dir, another daemon) show sooner; changes through the mount invalidate at once
/// anyway (`fs::coherence`).
pub const ATTR_TTL: Duration = Duration::from_secs(1);

/// How long the kernel may remember that a name does not exist (a negative dentry,
/// `fs::lookup`). Claude looks a new transcript's name up three times before it creates it,
/// and a project dir's name before `mkdir`; each remembered miss saves a LOOKUP round trip.
/// A create through any profile drops the miss at once (`fs::coherence`); a name made behind
/// the mount shows after at most this long, so it must not exceed `ATTR_TTL`.
pub const NEGATIVE_TTL: Duration = ATTR_TTL;

/// How long an operation that changed a shared file waits for the notifier thread to
/// invalidate the other profiles' caches (`fs::coherence`). Longer: under contention another
/// profile is more surely coherent when this reply goes out. Shorter: a contended change
/// (two profiles busy in one shared dir) is answered sooner; the invalidation still lands
/// moments later.
pub const COHERENCE_WAIT: Duration = Duration::from_millis(20);

// --- Following config.yaml -----------------------------------------------------------------

/// How often the daemon looks at `config.yaml` (`fs::live`), and how often `mount` checks its
/// daemon while waiting. Shorter: an account CCS adds is served sooner. Longer: fewer stats
/// of an idle CCS dir.
pub const CONFIG_POLL: Duration = Duration::from_millis(250);

// --- The single-writer lock ----------------------------------------------------------------

/// How long a lock file vouches for its owner without renewal (`locks::LockConfig::lease`).
/// Other hosts sharing a store wait this out before taking a lock whose owner they cannot
/// see. Longer: fewer renewals (one write per held lock per `lease / LOCK_RENEWALS`).
/// Shorter: a crashed host's locks free sooner.
pub const LOCK_LEASE: Duration = Duration::from_secs(30);

/// Leases are renewed this many times per lease (`locks`): a renewal may be late by up to
/// `lease / LOCK_RENEWALS` before the lease lapses. More: more writes; fewer: less slack.
pub const LOCK_RENEWALS: u32 = 3;

/// The renewal period never drops below this, whatever the lease (a tiny `--lock-lease` in
/// tests must not spin the renewal thread).
pub const LOCK_RENEW_MIN_PERIOD: Duration = Duration::from_millis(100);

/// How long a writer waits for an exited owner's last write handles to be released before it
/// is refused because one is still open (`locks`). The kernel sends RELEASE asynchronously,
/// also for a process just killed. Longer: fewer spurious EBUSY right after an owner exits.
/// Shorter: a writer that will be refused learns it sooner.
pub const LOCK_DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Held locks keep their lock file open (renewal and intactness checks without an open) up to
/// this fraction of the open-file limit (`locks`), within `LOCK_FDS_MIN..=LOCK_FDS_MAX`. Past
/// it, the least recently used lock re-opens its file when needed.
pub const LOCK_FDS_DIVISOR: usize = 16;
pub const LOCK_FDS_MIN: usize = 16;
pub const LOCK_FDS_MAX: usize = 1024;

/// Released lock files kept as spares per daemon (`locks::record::Spares`): a new lock renames
/// a spare into place instead of making an inode, the dearest part of taking a lock on some
/// filesystems. More: more empty files in `<group>/.ccsfs/locks/.spare/`.
pub const MAX_SPARE_LOCK_FILES: usize = 4096;

/// Most entries `status`/`unlock` read in one group store while looking for where locked files
/// moved (`unlock`). More: finds moves in bigger stores; fewer: bounds the time of `status`.
pub const MAX_LOCK_SEARCH: usize = 200_000;

// --- File descriptors and threads ----------------------------------------------------------

/// Nodes may keep their own O_PATH fd up to this fraction of the open-file limit, less
/// `FD_BUDGET_RESERVE`, and at least `FD_BUDGET_MIN` (`fs`, unless `--fd-budget`). More: fewer
/// re-resolutions of a node's path when the kernel holds many inodes. Less: more fds left for
/// open files and lock files.
pub const FD_BUDGET_NUMERATOR: usize = 3;
pub const FD_BUDGET_DENOMINATOR: usize = 4;
pub const FD_BUDGET_RESERVE: usize = 64;
pub const FD_BUDGET_MIN: usize = 64;

/// Thread → process entries cached for the write-open check (`procs::ThreadIds`), each holding
/// a pidfd. More: fewer /proc reads (~30 µs each) with many writer threads; each costs an fd.
pub const THREAD_IDS_CACHED: usize = 1024;

/// FUSE worker threads of `ccsfs mount` unless `--threads` says otherwise. More: more
/// operations in flight (a slow backing disk blocks fewer callers); each is a thread.
pub const FUSE_THREADS: usize = 4;

// --- The daemon's log ----------------------------------------------------------------------

/// The size at which the log is rotated to `<name>.1` (`logfile`). One old file is kept, so
/// the logs take at most about twice this. More: longer history; less: less disk.
pub const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;

/// After a failed re-open of the log (a full disk, a dir made unwritable), how long the old
/// file is used before the next attempt (`logfile`). Shorter: the log returns sooner; longer:
/// fewer failing opens while the problem lasts.
pub const LOG_RETRY_AFTER: Duration = Duration::from_secs(1);

// --- Waiting on other commands -------------------------------------------------------------

/// How long `ccsfs` waits for CCS's live `config.yaml.lock` holder (`ccs_lock`; CCS itself
/// waits 10 × 100 ms). Longer: fewer failures beside a slow CCS; shorter: a stuck holder is
/// reported sooner.
pub const CCS_LOCK_WAIT: Duration = Duration::from_secs(5);

/// How often that wait looks at the lock file again (`ccs_lock`).
pub const CCS_LOCK_POLL: Duration = Duration::from_millis(50);

/// A CCS lock file whose content cannot be read as `<pid>\n…` counts as abandoned once it is
/// this old (`ccs_lock`); a writer between creating and filling it is much faster.
pub const CCS_LOCK_UNREADABLE_GRACE: Duration = Duration::from_secs(2);

/// How long `mount` (and a launch that mounts) waits for another `mount` of the same point to
/// finish (`mountpoint`, `launch`). Longer: survives a slow start of the other mount;
/// shorter: a stuck one is reported sooner.
pub const MOUNT_LOCK_WAIT: Duration = Duration::from_secs(20);

/// How long a launch waits for its profile to appear in a running mount (`launch`): the
/// daemon follows `config.yaml` every `CONFIG_POLL`, so an account CCS has just made shows up
/// shortly.
pub const PROFILE_WAIT: Duration = Duration::from_secs(2);

// --- The trash -----------------------------------------------------------------------------

/// How often the daemon scans each group store's trash in full, re-reads
/// `<ccs>/ccsfs/config.yaml` and purges what is past `keep_days` or over `max_mb`
/// (`trash::keeper`; between scans each insert keeps a running total). Shorter: purges by
/// `ccsfs trash` and expiries are noticed sooner; longer: fewer directory scans.
pub const TRASH_SCAN_PERIOD: Duration = Duration::from_secs(300);

// --- The daemon's start and end ------------------------------------------------------------

/// How long the daemon may take from its start to a mount that answers (`mount`); past it, it
/// gives up and leaves nothing mounted. Longer: survives a slow FUSE start; shorter: a hung
/// start is cleaned up sooner.
pub const MOUNT_STARTUP_LIMIT: Duration = Duration::from_secs(20);

/// How long `mount` waits for the daemon's word (`mount`): a little longer than
/// `MOUNT_STARTUP_LIMIT`, so that the daemon's own verdict normally arrives first.
pub const MOUNT_STARTUP_WAIT: Duration = Duration::from_secs(25);

/// Once the mount is gone (or a signal asked the daemon to stop), how long requests still
/// being handled may take before the daemon exits anyway (`mount`). Longer: a slow last write
/// may finish; shorter: `unmount` returns sooner.
pub const DAEMON_EXIT_GRACE: Duration = Duration::from_secs(3);

/// How often the daemon checks that its FUSE connection still exists (`mount`): a mount that
/// went away ends the daemon within this.
pub const CONNECTION_CHECK: Duration = Duration::from_secs(1);

// The relations the values above rely on, checked at compile time.
const _: () = assert!(MOUNT_STARTUP_WAIT.as_secs() > MOUNT_STARTUP_LIMIT.as_secs());
const _: () = assert!(LOCK_FDS_MIN >= 1 && LOCK_FDS_MIN <= LOCK_FDS_MAX);
const _: () = assert!(FD_BUDGET_NUMERATOR < FD_BUDGET_DENOMINATOR && FD_BUDGET_MIN >= 1);
const _: () = assert!(LOCK_RENEWALS >= 2);
const _: () = assert!(NEGATIVE_TTL.as_nanos() <= ATTR_TTL.as_nanos());
