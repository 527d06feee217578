//! systemd's readiness protocol (`sd_notify`): one datagram such as `READY=1` to the unix socket
//! named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract address). Used by
//! `ccsfs mount -f` under the `Type=notify` user unit, so that `systemctl --user start ccsfs`
//! returns once the mount answers. Without `$NOTIFY_SOCKET` nothing is sent.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where `$NOTIFY_SOCKET` points.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// A socket file.
    Path(&'a str),
    /// An abstract address (written `@name`; the name without the `@`).
    Abstract(&'a [u8]),
}

/// Reads a `$NOTIFY_SOCKET` value: `/path`, or `@name` (abstract). Anything else (empty, a
/// relative path, a `vsock:` address) is not for us.
pub fn parse(value: &str) -> Option<Target<'_>> {
    if let Some(name) = value.strip_prefix('@') {
        return (!name.is_empty()).then_some(Target::Abstract(name.as_bytes()));
    }
    value.starts_with('/').then_some(Target::Path(value))
}

/// Sends `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET`. Ok(false) when no socket is set.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Ok(value) = std::env::var("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let Some(target) = parse(&value) else {
        return Ok(false);
    };
    let addr = match target {
        Target::Path(p) => SocketAddr::from_pathname(p)?,
        Target::Abstract(name) => SocketAddr::from_abstract_name(name)?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_values() {
        assert_eq!(
            parse("/run/user/1000/systemd/notify"),
            Some(Target::Path("/run/user/1000/systemd/notify"))
        );
        assert_eq!(parse("@sd-notify"), Some(Target::Abstract(b"sd-notify")));
        assert_eq!(parse("@"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("relative/sock"), None);
        assert_eq!(parse("vsock:2:1234"), None);
    }

    #[test]
    fn a_datagram_reaches_a_bound_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let addr = SocketAddr::from_pathname(&path).unwrap();
        UnixDatagram::unbound()
            .unwrap()
            .send_to_addr(b"READY=1", &addr)
            .unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
