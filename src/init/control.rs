//! The control socket's address and its one-JSON-object-per-line framing, shared by
//! the monitor (server) and the daemon's runtime (client).
//!
//! A unix socket path holds at most 107 bytes; a state directory deep enough to exceed
//! that is reached through `/proc/self/fd/<dir fd>/monitor.sock` instead, which both
//! `bind` and `connect` resolve like the real path.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::spec::MONITOR_SOCKET;

/// Longest path `sockaddr_un` takes (without its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A path to the control socket in `state_dir` that fits in a socket address. Keep
/// the returned `File` (the directory, when the long form is used) open while the
/// path is in use.
pub fn socket_address(state_dir: &Path) -> io::Result<(PathBuf, Option<File>)> {
    let full = state_dir.join(MONITOR_SOCKET);
    if full.as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok((full, None));
    }
    let dir = File::open(state_dir)
        .map_err(|e| crate::store::with_path(e, "open state directory", state_dir))?;
    let short = PathBuf::from(format!(
        "/proc/self/fd/{}/{MONITOR_SOCKET}",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    ));
    Ok((short, Some(dir)))
}

/// One message as a JSON line.
pub fn encode_line<T: Serialize>(msg: &T) -> Vec<u8> {
    // These types always serialize (plain structs and enums of strings and numbers).
    let mut line = serde_json::to_vec(msg).unwrap_or_default();
    line.push(b'\n');
    line
}

/// How an undecodable line is reported; a monitor answers a request it does not know
/// (one newer than itself) with an error that starts so.
pub const INVALID_MESSAGE: &str = "invalid message on the container monitor's socket";

/// Parses one line (without its newline) as a message.
pub fn decode_line<T: DeserializeOwned>(line: &[u8]) -> io::Result<T> {
    serde_json::from_slice(line).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{INVALID_MESSAGE}: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::spec::{AttachStreams, ExitRecord, Reply, Request, SyncMessage};

    #[test]
    fn messages_round_trip_as_lines() {
        let req = Request::Attach(AttachStreams {
            stdin: true,
            stdout: true,
            stderr: false,
        });
        let line = encode_line(&req);
        assert_eq!(line.last(), Some(&b'\n'));
        let back: Request = decode_line(&line[..line.len() - 1]).unwrap();
        assert_eq!(back, req);
        let reply = Reply::Exited(ExitRecord {
            exit_code: 3,
            finished_at: "2026-01-01T00:00:00Z".into(),
            oom_killed: false,
            error: None,
            network_released: false,
        });
        let line = encode_line(&reply);
        assert_eq!(
            decode_line::<Reply>(&line[..line.len() - 1]).unwrap(),
            reply
        );
        let sync = SyncMessage::Started {
            pid: 10,
            monitor_pid: 9,
        };
        assert_eq!(
            String::from_utf8(encode_line(&sync)).unwrap(),
            "{\"started\":{\"pid\":10,\"monitor_pid\":9}}\n"
        );
        assert!(decode_line::<Request>(b"{\"nope\":1}").is_err());
    }

    #[test]
    fn long_state_dirs_use_the_proc_fd_form() {
        let dir = tempfile::tempdir().unwrap();
        let (p, keep) = socket_address(dir.path()).unwrap();
        assert_eq!(p, dir.path().join(MONITOR_SOCKET));
        assert!(keep.is_none());
        let deep = dir.path().join("x".repeat(120));
        std::fs::create_dir(&deep).unwrap();
        let (p, keep) = socket_address(&deep).unwrap();
        assert!(keep.is_some());
        assert!(p.to_str().unwrap().starts_with("/proc/self/fd/"));
        let listener = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert!(deep.join(MONITOR_SOCKET).exists());
        drop(listener);
    }
}
