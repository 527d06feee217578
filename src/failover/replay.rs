//! A headless run's stdin, kept for its retry.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

/// At most this much of a headless run's stdin is kept for the retry.
const STDIN_KEEP: usize = 16 << 20;

/// A headless run's stdin, read once and kept, so that a retry gets the same bytes: the first
/// child gets them as they arrive (claude waits up to 3 s for piped input), a retry all that
/// arrived.
pub struct Replay {
    kept: Arc<Mutex<(Vec<u8>, bool)>>,
    first: Arc<Mutex<Option<std::process::ChildStdin>>>,
}

impl Replay {
    pub fn start() -> Replay {
        let kept = Arc::new(Mutex::new((Vec::new(), false)));
        let first: Arc<Mutex<Option<std::process::ChildStdin>>> = Arc::new(Mutex::new(None));
        let (k, f) = (kept.clone(), first.clone());
        std::thread::spawn(move || {
            let mut input = std::io::stdin().lock();
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                // The pipe's lock first, as `feed` takes them: the bytes go either into
                // what `feed` writes or to the pipe it set, never both.
                let mut pipe = f.lock().expect("not poisoned");
                {
                    let mut k = k.lock().expect("not poisoned");
                    if n == 0 {
                        k.1 = true;
                    } else if k.0.len() + n <= STDIN_KEEP {
                        k.0.extend_from_slice(&buf[..n]);
                    }
                }
                if n == 0 {
                    *pipe = None;
                    return;
                }
                if let Some(p) = pipe.as_mut()
                    && p.write_all(&buf[..n]).is_err()
                {
                    *pipe = None;
                }
            }
        });
        Replay { kept, first }
    }

    /// Gives the child its stdin: the live stream for the first run (what was read before it
    /// started, then the rest as it comes), everything kept for a retry.
    pub fn feed(&self, mut pipe: std::process::ChildStdin, first: bool) {
        if first {
            let mut slot = self.first.lock().expect("not poisoned");
            let (kept, done) = {
                let k = self.kept.lock().expect("not poisoned");
                (k.0.clone(), k.1)
            };
            if pipe.write_all(&kept).is_ok() && !done {
                *slot = Some(pipe);
            }
            return;
        }
        let kept = self.kept.lock().expect("not poisoned").0.clone();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&kept);
        });
    }
}
