//! Where a mount may go, and the daemon's start and end, against the real binary, real mounts
//! and real processes (issue 11, items 8–10):
//! - ioctls (Python's `open()` asks TCGETS) get ENOTTY and add no line to the log.

mod common;

use std::process::{Command, Output};

use common::{Ccs, THREE_PROFILES, stderr};

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}",
        out.status,
        stderr(out)
    );
}

// ---------------------------------------------------------------------------------------------
// 9. ioctl
// ---------------------------------------------------------------------------------------------

fn tcgets(fd: i32) -> i32 {
    let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: TCGETS writes at most one termios into the buffer.
    if unsafe { libc::ioctl(fd, libc::TCGETS, termios.as_mut_ptr()) } == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

#[test]
fn ioctls_get_enotty_and_leave_no_line_in_the_log() {
    use std::os::fd::AsRawFd;
    let ccs = Ccs::new(Some(THREE_PROFILES));
    let _m = ccs.mount();
    let log = ccs.ccs.join("logs/ccsfs.log");
    let notes = ccs.profile("solo").join("notes.txt");
    let shared = ccs.profile("work").join("projects/notes.md");
    std::fs::write(&notes, "n\n").unwrap();
    std::fs::write(&shared, "s\n").unwrap();
    let before = std::fs::read_to_string(&log).unwrap();

    for p in [&notes, &shared, &ccs.profile("work")] {
        let f = std::fs::File::open(p).unwrap();
        assert_eq!(
            tcgets(f.as_raw_fd()),
            libc::ENOTTY,
            "TCGETS on {}",
            p.display()
        );
    }
    let python = ["python3", "/usr/bin/python3"].into_iter().find(|p| {
        Command::new(p)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if let Some(python) = python {
        for p in [&notes, &shared] {
            let out = Command::new(python)
                .arg("-c")
                .arg("import sys\nopen(sys.argv[1]).read()\nopen(sys.argv[1], 'a').write('x')")
                .arg(p)
                .output()
                .unwrap();
            ok(&out, "python3 open()");
        }
    } else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "python3 is missing"
        );
        eprintln!("note: no python3; only the direct ioctl calls were made");
    }
    let after = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        after.strip_prefix(&before).unwrap_or(&after),
        "",
        "ioctls added lines to the log"
    );
}
