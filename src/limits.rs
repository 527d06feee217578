//! The open-file limit: raising it at mount, and reading it to size the fd budgets (the inode
//! table's O_PATH fds, the lock manager's watched lock files).

fn nofile() -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain read of a resource limit into a local.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim)
}

/// The soft open-file limit (1,024 when it cannot be read), capped at 2^24.
pub fn open_files() -> usize {
    nofile().map_or(1024, |l| l.rlim_cur.min(1 << 24) as usize)
}

/// Raises the soft open-file limit to the hard limit: every inode the kernel holds may keep
/// an fd.
pub fn raise_open_files() {
    if let Some(mut lim) = nofile()
        && lim.rlim_cur < lim.rlim_max
    {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: plain set of a resource limit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}
