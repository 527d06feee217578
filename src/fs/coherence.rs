//! Coherence between profiles. One backing file in a group store is a separate kernel inode
//! in each profile that sees it, so a change made through one profile must reach the
//! others' caches. Attribute invalidation is sent at once (it only takes a spinlock in the
//! kernel); page-cache and dentry invalidation go through a notifier thread, because they
//! take page and directory locks that an in-flight request of ours may be holding.

use std::ffi::OsString;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, OnceLock};

use fuser::{INodeNo, Notifier};
use parking_lot::Mutex;

use super::inodes::{InodeTable, Key, TreeId, View};

enum Job {
    Pages(u64),
    Entry(u64, OsString),
}

pub struct Coherence {
    notifier: Arc<OnceLock<Notifier>>,
    /// For each backing tree, the views that can reach it.
    tree_views: Vec<Vec<View>>,
    jobs: Mutex<Sender<Job>>,
}

impl Coherence {
    pub fn new(tree_views: Vec<Vec<View>>) -> Coherence {
        let notifier: Arc<OnceLock<Notifier>> = Arc::new(OnceLock::new());
        let (tx, rx) = channel();
        let n = notifier.clone();
        let _ = std::thread::Builder::new()
            .name("ccsfs-notify".into())
            .spawn(move || run(&n, &rx));
        Coherence {
            notifier,
            tree_views,
            jobs: Mutex::new(tx),
        }
    }

    /// Where the session's notifier goes once the mount exists.
    pub fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        self.notifier.clone()
    }

    /// Whether anything in `tree` is seen by more than one profile.
    pub fn is_shared(&self, tree: TreeId) -> bool {
        self.tree_views
            .get(tree as usize)
            .is_some_and(|v| v.len() > 1)
    }

    /// The node ids of the same backing file in the other views that currently hold it.
    fn others(&self, inodes: &InodeTable, tree: TreeId, key: Key) -> Vec<u64> {
        let Some(views) = self.tree_views.get(tree as usize).filter(|v| v.len() > 1) else {
            return Vec::new();
        };
        views
            .iter()
            .filter(|&&v| v != key.view)
            .filter_map(|&view| inodes.find(Key { view, ..key }))
            .collect()
    }

    /// The file's data or attributes changed: drop the other views' cached attributes now and
    /// (when `data`) their cached pages soon.
    pub fn changed(&self, inodes: &InodeTable, tree: TreeId, key: Key, data: bool) {
        let Some(notifier) = self.notifier.get() else {
            return;
        };
        for id in self.others(inodes, tree, key) {
            let _ = notifier.inval_inode(INodeNo(id), -1, 0);
            if data {
                let _ = self.jobs.lock().send(Job::Pages(id));
            }
        }
    }

    /// A name in the directory `dir` appeared, disappeared or changed target: drop the other
    /// views' cached attributes of that directory and their dentry for the name.
    pub fn entry_changed(
        &self,
        inodes: &InodeTable,
        tree: TreeId,
        dir: Key,
        name: &std::ffi::OsStr,
    ) {
        let Some(notifier) = self.notifier.get() else {
            return;
        };
        for id in self.others(inodes, tree, dir) {
            let _ = notifier.inval_inode(INodeNo(id), -1, 0);
            let _ = self.jobs.lock().send(Job::Entry(id, name.to_os_string()));
        }
    }
}

fn run(notifier: &OnceLock<Notifier>, jobs: &Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        let Some(n) = notifier.get() else { continue };
        let _ = match job {
            Job::Pages(id) => n.inval_inode(INodeNo(id), 0, 0),
            Job::Entry(dir, name) => n.inval_entry(INodeNo(dir), &name),
        };
    }
}
