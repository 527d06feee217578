//! The inode table: FUSE node ids ↔ backing files. A node is keyed by (view, st_dev, st_ino)
//! and holds an O_PATH fd, so operations are `*at()` calls and renames of parents cost
//! nothing. Each profile is its own view: the shared `projects/` seen through two profiles is
//! two directory inodes, so the kernel never sees one directory under two parents.
//!
//! fuser reports the node id as st_ino, so ids are derived from the key (stable across
//! forget and remount): `[device namespace:8][view:12][backing ino:44]`. Keys that do not fit
//! get an id from a reserved range, stable while the kernel holds the node.
//! Lookup counts are exact; a node is dropped on its last forget.
//!
//! A freed backing inode number can be given to a new file while the kernel still holds the
//! node of the old one (a node without a held fd does not keep its file alive). So a node
//! also has a generation, the file's birth time (`sys::statx_at`; 0 where the filesystem
//! keeps none), which FUSE replies carry: the kernel takes the same id with another
//! generation for a new inode and marks the old one bad. The table then puts a new node for
//! the new file under the id, its lookup count the sum of both (the old kernel inode's
//! FORGET comes later), and a node re-resolving its name refuses a file of another
//! generation (ESTALE) rather than act on it.
//!
//! Open fds are a bounded resource (RLIMIT_NOFILE may be 20,000 or even 1,024 for a user):
//! nodes keep their O_PATH fd while the table holds fewer than its fd budget. Past that, a
//! node (a file or a directory) keeps only its (parent, name) link and re-opens itself for
//! each operation, checking that (dev, ino) still match. The roots and the entries right
//! below them always keep theirs: a routed name there (`projects` leading to a group store)
//! cannot be found again through its parent's backing dir.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fuser::Errno;

use super::sys;

use parking_lot::{Mutex, RwLock};

/// View 0 is the mount root (and the `<profile>.lock` dirs beside the profiles); view `i + 1`
/// is profile `i`.
pub type View = u32;
/// Index of a backing tree (an instance or one group-store dir); renames and links across
/// trees are EXDEV.
pub type TreeId = u32;

pub const ROOT_ID: u64 = 1;

const INO_BITS: u32 = 44;
const VIEW_BITS: u32 = 12;
const NS_SHIFT: u32 = INO_BITS + VIEW_BITS;
const FALLBACK_NS: u64 = 0xff;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The virtual mount root: one dir per profile.
    MountRoot,
    /// `<mount>/<profile>`: the instance dir with routed names laid over it.
    ProfileRoot(usize),
    /// A routed dir some of whose names stay in the instance (`plugins/` of profile `.0`,
    /// route `.1`): otherwise plain.
    Routed(usize, &'static str),
    /// Everything below: plain pass-through.
    Plain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub view: View,
    pub dev: u64,
    pub ino: u64,
}

/// Where a file was last seen: its parent dir node and its name there.
pub type Link = (Arc<Inode>, OsString);

/// O_PATH fds held by nodes, across the process (for the fd budget).
static HELD_FDS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
pub struct Inode {
    pub id: u64,
    /// The O_PATH fd, unless the fd budget was spent (see the module comment).
    held: Option<OwnedFd>,
    /// How to find the file again without a held fd (None for the mount and profile roots).
    link: Mutex<Option<Link>>,
    /// An fd taken when the node's last known name went away (unlink, rename over it) while
    /// the kernel still holds the node: an open file stays usable.
    pinned: std::sync::OnceLock<OwnedFd>,
    pub key: Key,
    /// Which file of that key: its birth time in ns, 0 if unknown (see the module comment).
    pub generation: u64,
    /// S_IFMT bits of the backing file.
    pub kind: u32,
    pub tree: TreeId,
    pub role: Role,
    /// The kernel passthrough backing id all opens of this file share. Kept while the node
    /// lives: registering and dropping it around every open cost two ioctls per append.
    pub backing: Mutex<Option<Arc<fuser::BackingId>>>,
}

/// An fd for a node: its own held one, or a fresh one opened through its link.
pub enum FdRef<'a> {
    Held(BorrowedFd<'a>),
    Fresh(OwnedFd),
}

impl AsFd for FdRef<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            FdRef::Held(b) => b.as_fd(),
            FdRef::Fresh(o) => o.as_fd(),
        }
    }
}

impl Inode {
    /// An O_PATH fd on the backing file. ESTALE when a node without a held fd can no longer
    /// be found under its last name as the same file.
    pub fn fd(&self) -> Result<FdRef<'_>, Errno> {
        if let Some(fd) = self.held.as_ref().or(self.pinned.get()) {
            return Ok(FdRef::Held(fd.as_fd()));
        }
        let (parent, name) = self.link.lock().clone().ok_or(Errno::ESTALE)?;
        let fd = sys::open_path_at(parent.fd()?.as_fd(), &sys::cstr(&name)?)?;
        let (st, generation) = sys::statx_at(fd.as_fd(), c"")?;
        if (st.st_dev, st.st_ino, generation) != (self.key.dev, self.key.ino, self.generation) {
            return Err(Errno::ESTALE);
        }
        Ok(FdRef::Fresh(fd))
    }

    /// The fd the node holds (its own or a pinned one), without opening anything.
    pub fn held_fd(&self) -> Option<BorrowedFd<'_>> {
        self.held
            .as_ref()
            .or(self.pinned.get())
            .map(|fd| fd.as_fd())
    }

    /// Its name is about to go away: make sure the node keeps a way to its file.
    pub fn pin(&self) {
        if self.held.is_none()
            && self.pinned.get().is_none()
            && let Ok(FdRef::Fresh(fd)) = self.fd()
        {
            let _ = self.pinned.set(fd);
        }
    }

    /// The file is now known as `name` in `parent` (a rename, or a fresh lookup).
    pub fn relink(&self, parent: &Arc<Inode>, name: &std::ffi::OsStr) {
        if self.held.is_none() {
            *self.link.lock() = Some((parent.clone(), name.to_os_string()));
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }
}

impl Drop for Inode {
    fn drop(&mut self) {
        if self.held.is_some() {
            HELD_FDS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What a new node is made of when a lookup finds a file not yet in the table.
pub struct NewNode {
    pub fd: OwnedFd,
    pub key: Key,
    /// See `Inode::generation`.
    pub generation: u64,
    pub kind: u32,
    pub tree: TreeId,
    pub role: Role,
    /// Where it was found (None for the mount and profile roots, which always keep their fd).
    pub link: Option<Link>,
}

/// Derives node ids from keys.
struct IdScheme {
    home_dev: u64,
    dev_ns: Mutex<HashMap<u64, u64>>,
}

impl IdScheme {
    fn derive(&self, key: Key) -> Option<u64> {
        if key.ino >> INO_BITS != 0 || u64::from(key.view) >> VIEW_BITS != 0 {
            return None;
        }
        let ns = if key.dev == self.home_dev {
            0
        } else {
            let mut map = self.dev_ns.lock();
            let next = map.len() as u64 + 1;
            let ns = *map.entry(key.dev).or_insert(next);
            if ns >= FALLBACK_NS {
                return None;
            }
            ns
        };
        let id = (ns << NS_SHIFT) | (u64::from(key.view) << INO_BITS) | key.ino;
        (id > ROOT_ID).then_some(id)
    }
}

struct Entry {
    inode: Arc<Inode>,
    lookups: u64,
}

#[derive(Default)]
struct Maps {
    by_id: HashMap<u64, Entry>,
    /// Only for keys whose id could not be derived.
    fallback: HashMap<Key, u64>,
    next_fallback: u64,
}

pub struct InodeTable {
    maps: RwLock<Maps>,
    ids: IdScheme,
    /// Nodes keep their own fd while fewer than this many do.
    fd_budget: usize,
}

impl InodeTable {
    /// A table holding only the mount root. `home_dev` is the CCS dir's device.
    pub fn new(root: NewNode, home_dev: u64, fd_budget: usize) -> InodeTable {
        let mut maps = Maps {
            next_fallback: FALLBACK_NS << NS_SHIFT,
            ..Default::default()
        };
        HELD_FDS.fetch_add(1, Ordering::Relaxed);
        let inode = Arc::new(Inode {
            id: ROOT_ID,
            held: Some(root.fd),
            link: Mutex::new(None),
            pinned: Default::default(),
            key: root.key,
            generation: root.generation,
            kind: root.kind,
            tree: root.tree,
            role: root.role,
            backing: Mutex::new(None),
        });
        maps.by_id.insert(ROOT_ID, Entry { inode, lookups: 1 });
        InodeTable {
            maps: RwLock::new(maps),
            ids: IdScheme {
                home_dev,
                dev_ns: Mutex::new(HashMap::new()),
            },
            fd_budget,
        }
    }

    pub fn get(&self, id: u64) -> Option<Arc<Inode>> {
        self.maps.read().by_id.get(&id).map(|e| e.inode.clone())
    }

    /// The st_ino a directory listing reports for a key: its node id, or for a key without a
    /// derivable id that is not held, a non-zero stand-in (readdir's d_ino is informational).
    pub fn listing_ino(&self, key: Key) -> u64 {
        self.ids.derive(key).unwrap_or_else(|| {
            let held = self.maps.read().fallback.get(&key).copied();
            held.unwrap_or((FALLBACK_NS << NS_SHIFT) | (key.ino & ((1 << NS_SHIFT) - 1)) | 1)
        })
    }

    /// The node id held for `key`, if the kernel currently knows that file.
    pub fn find(&self, key: Key) -> Option<u64> {
        let derived = self.ids.derive(key);
        let maps = self.maps.read();
        let id = derived.or_else(|| maps.fallback.get(&key).copied())?;
        maps.by_id
            .get(&id)
            .filter(|e| e.inode.key == key)
            .map(|_| id)
    }

    /// The node held for `key`, if the kernel currently knows that file.
    pub fn find_node(&self, key: Key) -> Option<Arc<Inode>> {
        let derived = self.ids.derive(key);
        let maps = self.maps.read();
        let id = derived.or_else(|| maps.fallback.get(&key).copied())?;
        maps.by_id
            .get(&id)
            .filter(|e| e.inode.key == key)
            .map(|e| e.inode.clone())
    }

    /// Counts one lookup of `node` (found with `find_node`) if the table still has it and it
    /// is still that very file (`generation`): the same as `lookup_known` without finding the
    /// node a second time.
    pub fn count_lookup(&self, node: &Arc<Inode>, generation: u64) -> bool {
        let mut maps = self.maps.write();
        match maps.by_id.get_mut(&node.id) {
            Some(e) if Arc::ptr_eq(&e.inode, node) && e.inode.generation == generation => {
                e.lookups += 1;
                true
            }
            _ => false,
        }
    }

    /// Counts one lookup of the node with `key` if the table has it for that very file (no fd
    /// needed for that).
    pub fn lookup_known(&self, key: Key, generation: u64) -> Option<Arc<Inode>> {
        let derived = self.ids.derive(key);
        let mut maps = self.maps.write();
        let id = derived.or_else(|| maps.fallback.get(&key).copied())?;
        let e = maps
            .by_id
            .get_mut(&id)
            .filter(|e| e.inode.key == key && e.inode.generation == generation)?;
        e.lookups += 1;
        Some(e.inode.clone())
    }

    /// Counts one lookup of `node`: the existing inode with the same key, or a new one. A new
    /// file under a known key (another generation) replaces the node under the same id and
    /// lookup count (see the module comment).
    pub fn lookup(&self, node: NewNode) -> Arc<Inode> {
        let derived = self.ids.derive(node.key);
        let mut maps = self.maps.write();
        let existing = derived.or_else(|| maps.fallback.get(&node.key).copied());
        let mut lookups = 1;
        if let Some(e) = existing.and_then(|id| maps.by_id.get_mut(&id)) {
            if e.inode.generation == node.generation {
                e.lookups += 1;
                if let Some((parent, name)) = &node.link {
                    e.inode.relink(parent, name);
                }
                return e.inode.clone();
            }
            lookups += e.lookups;
        }
        let id = match existing.or(derived) {
            Some(id) => id,
            None => {
                let id = maps.next_fallback;
                maps.next_fallback += 1;
                maps.fallback.insert(node.key, id);
                id
            }
        };
        let routed = match &node.link {
            None => true,
            Some((parent, _)) => parent.role != Role::Plain,
        };
        let keep = routed || HELD_FDS.load(Ordering::Relaxed) < self.fd_budget;
        if keep {
            HELD_FDS.fetch_add(1, Ordering::Relaxed);
        }
        let inode = Arc::new(Inode {
            id,
            held: keep.then_some(node.fd),
            link: Mutex::new(node.link),
            pinned: Default::default(),
            key: node.key,
            generation: node.generation,
            kind: node.kind,
            tree: node.tree,
            role: node.role,
            backing: Mutex::new(None),
        });
        // A replaced node is dropped outside the lock once no operation holds it.
        let _replaced = maps.by_id.insert(
            id,
            Entry {
                inode: inode.clone(),
                lookups,
            },
        );
        drop(maps);
        inode
    }

    /// Counts one more lookup of a node already known (link replies).
    pub fn add_lookup(&self, id: u64) {
        if let Some(e) = self.maps.write().by_id.get_mut(&id) {
            e.lookups += 1;
        }
    }

    pub fn forget(&self, id: u64, n: u64) {
        if id == ROOT_ID {
            return;
        }
        let mut maps = self.maps.write();
        let Some(e) = maps.by_id.get_mut(&id) else {
            return;
        };
        e.lookups = e.lookups.saturating_sub(n);
        if e.lookups == 0 {
            let key = e.inode.key;
            let gone = maps.by_id.remove(&id);
            if maps.fallback.get(&key) == Some(&id) {
                maps.fallback.remove(&key);
            }
            // The node's last reference usually goes here, and with it its fd and its
            // passthrough backing id (a close and an ioctl): not under the table's lock,
            // which the next request (a rename's GETATTR, say) is already waiting for.
            drop(maps);
            drop(gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(view: View, dev: u64, ino: u64) -> NewNode {
        NewNode {
            fd: std::fs::File::open("/").unwrap().into(),
            key: Key { view, dev, ino },
            generation: 0,
            kind: libc::S_IFREG,
            tree: 0,
            role: Role::Plain,
            link: None,
        }
    }

    fn table() -> InodeTable {
        InodeTable::new(
            NewNode {
                role: Role::MountRoot,
                ..node(0, 1, 2)
            },
            1,
            usize::MAX,
        )
    }

    #[test]
    fn same_key_same_node_and_exact_counts() {
        let t = table();
        let a = t.lookup(node(1, 1, 10));
        let b = t.lookup(node(1, 1, 10));
        assert_eq!(a.id, b.id);
        t.forget(a.id, 1);
        assert!(t.get(a.id).is_some(), "one lookup left");
        t.forget(a.id, 1);
        assert!(t.get(a.id).is_none());
        assert_eq!(
            t.lookup(node(1, 1, 10)).id,
            a.id,
            "ids are stable across forget"
        );
    }

    #[test]
    fn a_new_file_under_a_known_key_replaces_the_node_and_sums_the_counts() {
        let t = table();
        let key = Key {
            view: 1,
            dev: 1,
            ino: 10,
        };
        let gen_of = |g| NewNode {
            generation: g,
            ..node(1, 1, 10)
        };
        let old = t.lookup(gen_of(7));
        assert_eq!(t.lookup_known(key, 7).map(|i| i.id), Some(old.id));
        assert!(
            t.lookup_known(key, 8).is_none(),
            "another file under that key"
        );
        let found = t.find_node(key).unwrap();
        assert!(t.count_lookup(&found, 7));
        assert!(!t.count_lookup(&found, 8), "another file under that key");
        let new = t.lookup(gen_of(8));
        assert!(!t.count_lookup(&found, 8), "a replaced node is not counted");
        assert_eq!(new.id, old.id, "the id derives from the key");
        assert_eq!(t.get(old.id).unwrap().generation, 8);
        assert!(!Arc::ptr_eq(&new, &old));
        t.forget(old.id, 3); // the old kernel inode's FORGET (3 lookups counted on it)
        assert!(
            t.get(old.id).is_some(),
            "the new kernel inode's lookup is left"
        );
        t.forget(old.id, 1);
        assert!(t.get(old.id).is_none());
    }

    #[test]
    fn views_and_devices_are_separate_nodes() {
        let t = table();
        let a = t.lookup(node(1, 1, 10)).id;
        assert_ne!(a, t.lookup(node(2, 1, 10)).id);
        assert_ne!(a, t.lookup(node(1, 9, 10)).id);
        assert_eq!(
            a & ((1 << INO_BITS) - 1),
            10,
            "the backing inode number shows through"
        );
        t.forget(ROOT_ID, 100);
        assert!(t.get(ROOT_ID).is_some(), "the root is never forgotten");
    }

    #[test]
    fn huge_inode_numbers_get_a_fallback_id_kept_while_held() {
        let t = table();
        let big = 1u64 << 50;
        let a = t.lookup(node(1, 1, big));
        assert_eq!(a.id >> NS_SHIFT, FALLBACK_NS);
        assert_eq!(t.lookup(node(1, 1, big)).id, a.id);
        assert_eq!(
            t.listing_ino(Key {
                view: 1,
                dev: 1,
                ino: big
            }),
            a.id
        );
        t.forget(a.id, 2);
        assert!(t.get(a.id).is_none());
        assert_ne!(
            t.listing_ino(Key {
                view: 1,
                dev: 1,
                ino: big
            }),
            0
        );
    }
}
