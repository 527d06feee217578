//! Coherence between profiles. One backing file in a group store is a separate kernel inode
//! in each profile that sees it, so a change made through one profile must reach the
//! others' caches before the change is acknowledged.
//!
//! - Attribute invalidation is sent inline: in the kernel it only takes a spinlock.
//! - Dentry and page-cache invalidation take directory and page locks that another request
//!   of ours may hold while it waits for a worker thread; sending them inline could deadlock
//!   (two profiles unlinking in the same shared dir would each wait for the other's dir
//!   lock). They go to a notifier thread, and the operation waits for it for at most
//!   `WAIT`: uncontended, the other profile sees the change at once; contended, the reply
//!   goes out anyway and the invalidation lands moments later.

use std::ffi::OsString;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fuser::{INodeNo, Notifier};
use parking_lot::Mutex;

use super::inodes::{InodeTable, Key, TreeId, View};

/// See `tunables::COHERENCE_WAIT`.
const WAIT: Duration = crate::tunables::COHERENCE_WAIT;

enum Job {
    Pages(u64),
    Entry(u64, OsString),
}

/// For each backing tree, the views that can reach it (`Topology::tree_views`).
pub type TreeViews = [Vec<View>];

pub struct Coherence {
    notifier: Arc<OnceLock<Notifier>>,
    jobs: Mutex<Sender<(Job, SyncSender<()>)>>,
}

impl Coherence {
    pub fn new() -> Coherence {
        let notifier: Arc<OnceLock<Notifier>> = Arc::new(OnceLock::new());
        let (tx, rx) = channel();
        let n = notifier.clone();
        let _ = std::thread::Builder::new()
            .name("ccsfs-notify".into())
            .spawn(move || run(&n, &rx));
        Coherence {
            notifier,
            jobs: Mutex::new(tx),
        }
    }

    /// Where the session's notifier goes once the mount exists.
    pub fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        self.notifier.clone()
    }

    /// Whether anything in `tree` is seen by more than one profile.
    pub fn is_shared(&self, tv: &TreeViews, tree: TreeId) -> bool {
        tv.get(tree as usize).is_some_and(|v| v.len() > 1)
    }

    /// The node ids of the same backing file in the other views that currently hold it.
    fn others(&self, inodes: &InodeTable, tv: &TreeViews, tree: TreeId, key: Key) -> Vec<u64> {
        let Some(views) = tv.get(tree as usize).filter(|v| v.len() > 1) else {
            return Vec::new();
        };
        views
            .iter()
            .filter(|&&v| v != key.view)
            .filter_map(|&view| inodes.find(Key { view, ..key }))
            .collect()
    }

    /// Drops the kernel's cached attributes of one node (any view). Attribute-only, so safe
    /// from inside a request handler.
    pub fn attrs_changed(&self, id: u64) {
        if let Some(n) = self.notifier.get() {
            let _ = n.inval_inode(INodeNo(id), -1, 0);
        }
    }

    /// Whether another view currently holds the same backing file.
    pub fn seen_elsewhere(
        &self,
        inodes: &InodeTable,
        tv: &TreeViews,
        tree: TreeId,
        key: Key,
    ) -> bool {
        !self.others(inodes, tv, tree, key).is_empty()
    }

    /// Drops cached dentries (dir node id, name) without waiting for it: for a config change
    /// and for a shared file replaced under every profile's root.
    pub fn forget_entries(&self, entries: Vec<(u64, OsString)>) {
        if self.notifier.get().is_none() {
            return;
        }
        for (dir, name) in entries {
            let (done_tx, _) = sync_channel(1);
            let _ = self.jobs.lock().send((Job::Entry(dir, name), done_tx));
        }
    }

    /// Hands jobs to the notifier thread and waits (bounded) until they are done.
    fn run_jobs(&self, jobs: Vec<Job>) {
        let waits: Vec<_> = jobs
            .into_iter()
            .filter_map(|job| {
                let (done_tx, done_rx) = sync_channel(1);
                self.jobs.lock().send((job, done_tx)).ok().map(|()| done_rx)
            })
            .collect();
        for w in waits {
            let _ = w.recv_timeout(WAIT);
        }
    }

    /// The file's data or attributes changed: drop the other views' cached attributes (and,
    /// when `data`, their cached pages).
    pub fn changed(&self, inodes: &InodeTable, tv: &TreeViews, tree: TreeId, key: Key, data: bool) {
        let Some(notifier) = self.notifier.get() else {
            return;
        };
        let others = self.others(inodes, tv, tree, key);
        for &id in &others {
            let _ = notifier.inval_inode(INodeNo(id), -1, 0);
        }
        if data && !others.is_empty() {
            self.run_jobs(others.into_iter().map(Job::Pages).collect());
        }
    }

    /// A name in the directory `dir` appeared, disappeared or changed target: drop the other
    /// views' cached attributes of that directory, their cached listing of it (its pages: the
    /// dentry invalidation resets a listing only when that view has a dentry for the name,
    /// and the dir's mtime may not have moved on a filesystem with coarse timestamps), and
    /// their dentry for the name.
    pub fn entry_changed(
        &self,
        inodes: &InodeTable,
        tv: &TreeViews,
        tree: TreeId,
        dir: Key,
        name: &std::ffi::OsStr,
    ) {
        let Some(notifier) = self.notifier.get() else {
            return;
        };
        let others = self.others(inodes, tv, tree, dir);
        for &id in &others {
            let _ = notifier.inval_inode(INodeNo(id), -1, 0);
        }
        if !others.is_empty() {
            self.run_jobs(
                others
                    .into_iter()
                    .flat_map(|id| [Job::Pages(id), Job::Entry(id, name.to_os_string())])
                    .collect(),
            );
        }
    }
}

fn run(notifier: &OnceLock<Notifier>, jobs: &Receiver<(Job, SyncSender<()>)>) {
    while let Ok((job, done)) = jobs.recv() {
        if let Some(n) = notifier.get() {
            let _ = match job {
                Job::Pages(id) => n.inval_inode(INodeNo(id), 0, 0),
                Job::Entry(dir, name) => n.inval_entry(INodeNo(dir), &name),
            };
        }
        let _ = done.try_send(());
    }
}
