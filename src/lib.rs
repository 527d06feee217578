//! ccsfs: one FUSE mount that presents every CCS profile as a Claude Code config dir, with
//! private files kept per profile and `projects/` (and the continuity dirs) shared per group.

pub mod ccs_lock;
pub mod config;
pub mod fs;
pub mod fusermount;
pub mod launch;
pub mod layout;
pub mod limits;
pub mod locks;
pub mod logfile;
pub mod migrate;
pub mod mount;
pub mod mountpoint;
pub mod procs;
pub mod redact;
pub mod routes;
pub mod runfile;
pub mod sessions;
pub mod status;
pub mod symlink_rule;
pub mod tunables;
pub mod unlock;
