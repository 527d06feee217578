//! ccsfs: one FUSE mount that presents every CCS profile as a Claude Code config dir, with
//! private files kept per profile and `projects/` (and the continuity dirs) shared per group.

pub mod atomic_file;
pub mod ccs_lock;
pub mod config;
pub mod doctor;
pub mod failover;
pub mod fs;
pub mod fstab;
pub mod fusermount;
pub mod launch;
pub mod layout;
pub mod limits;
pub mod locks;
pub mod logfile;
pub mod migrate;
pub mod mount;
pub mod mount_helper;
pub mod mountpoint;
pub mod procs;
pub mod redact;
pub mod routes;
pub mod runfile;
pub mod sdnotify;
pub mod service;
pub mod sessions;
pub mod settings;
pub mod status;
pub mod symlink_rule;
pub mod trash;
pub mod tunables;
pub mod unlock;
