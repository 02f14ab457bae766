//! The journald log: the monitor sends each log entry to systemd-journald itself, as
//! one datagram of the native journal protocol, so a container's output reaches the
//! journal while the daemon is stopped or restarting.
//!
//! The fields are those Docker's journald driver writes: the fixed ones the daemon
//! computed (`CONTAINER_ID`, `CONTAINER_ID_FULL`, `CONTAINER_NAME`, `CONTAINER_TAG`,
//! `SYSLOG_IDENTIFIER`, `IMAGE_NAME` and the `labels`/`env` attributes), and per entry
//! `MESSAGE` (without its newline), `PRIORITY` (6 for stdout, 3 for stderr),
//! `SYSLOG_TIMESTAMP`, `CONTAINER_LOG_EPOCH` and `CONTAINER_LOG_ORDINAL` (one epoch per
//! start, ordinals from 1), and `CONTAINER_PARTIAL_*` on the pieces of a line longer
//! than 16 KiB.
//!
//! A datagram too large for the socket goes in a sealed memfd passed along instead,
//! as the protocol allows. A message journald cannot take is dropped, as Docker
//! drops it: logging goes on with the next one.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::logfile::{Entry, Stream};

/// journald's native protocol socket.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// What a container start reports when journald is not there.
pub const NOT_ENABLED: &str = "journald is not enabled on this host";

/// How long one send may wait for journald to take a message (the container's
/// output waits meanwhile, as with Docker's blocking mode). After that journald is
/// taken as stalled: messages it cannot take at once are dropped, so that the
/// monitor goes on serving, until a send succeeds again.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// An open journald log.
pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
    /// The fields every entry carries, already encoded.
    fixed: Vec<u8>,
    epoch: String,
    ordinal: u64,
    /// The partial line being logged on stdout and stderr: its ID and the next
    /// piece's number.
    partial: [Option<(String, u64)>; 2],
    buf: Vec<u8>,
    /// A send timed out: until one succeeds, none waits.
    stalled: bool,
    /// Messages journald refused, and why the first was; a record says so at the end.
    dropped: u64,
    first_error: Option<String>,
}

impl Journal {
    /// Connects to journald at `path`; `fields` are the fixed fields, in order.
    pub fn open(path: &Path, fields: &[(String, String)]) -> io::Result<Journal> {
        let socket = UnixDatagram::unbound()?;
        socket
            .connect(path)
            .map_err(|_| io::Error::other(NOT_ENABLED))?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        let mut fixed = Vec::new();
        for (k, v) in fields {
            field(&mut fixed, k, v.as_bytes());
        }
        Ok(Journal {
            socket,
            path: path.to_path_buf(),
            fixed,
            epoch: random_id()?,
            ordinal: 0,
            partial: [None, None],
            buf: Vec::with_capacity(32 * 1024),
            stalled: false,
            dropped: 0,
            first_error: None,
        })
    }

    /// Sends one entry.
    pub fn write(&mut self, entry: &Entry<'_>, stream: Stream) {
        self.ordinal += 1;
        let buf = &mut self.buf;
        buf.clear();
        let priority: &[u8] = match stream {
            Stream::Stdout => b"6",
            Stream::Stderr => b"3",
        };
        field(buf, "PRIORITY", priority);
        field(buf, "MESSAGE", entry.line);
        buf.extend_from_slice(&self.fixed);
        field(
            buf,
            "SYSLOG_TIMESTAMP",
            crate::timefmt::rfc3339_nano(entry.time).as_bytes(),
        );
        field(buf, "CONTAINER_LOG_EPOCH", self.epoch.as_bytes());
        field(
            buf,
            "CONTAINER_LOG_ORDINAL",
            self.ordinal.to_string().as_bytes(),
        );
        let partial = &mut self.partial[stream as usize];
        if !entry.complete || partial.is_some() {
            let (id, n) = match partial.take() {
                Some(p) => p,
                None => (random_id().unwrap_or_else(|_| self.epoch.clone()), 1),
            };
            field(buf, "CONTAINER_PARTIAL_ID", id.as_bytes());
            field(buf, "CONTAINER_PARTIAL_ORDINAL", n.to_string().as_bytes());
            if entry.complete {
                field(buf, "CONTAINER_PARTIAL_LAST", b"true");
            } else {
                field(buf, "CONTAINER_PARTIAL_LAST", b"false");
                field(buf, "CONTAINER_PARTIAL_MESSAGE", b"true");
                *partial = Some((id, n + 1));
            }
        }
        if let Err(e) = self.send() {
            self.dropped += 1;
            if self.first_error.is_none() {
                self.first_error = Some(format!("send a log message to journald: {e}"));
            }
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let flags = if self.stalled { libc::MSG_DONTWAIT } else { 0 };
        let sent = super::sys::cvt(unsafe {
            libc::send(
                self.socket.as_raw_fd(),
                self.buf.as_ptr().cast(),
                self.buf.len(),
                flags | libc::MSG_NOSIGNAL,
            ) as libc::c_int
        });
        self.stalled = matches!(&sent, Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        match sent {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMSGSIZE | libc::ENOBUFS)) => {
                self.send_memfd()
            }
            // journald restarted without socket activation: its socket is a new one.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNREFUSED | libc::ENOTCONN | libc::ENOENT)
                ) =>
            {
                let socket = UnixDatagram::unbound()?;
                socket.connect(&self.path)?;
                socket.set_write_timeout(Some(SEND_TIMEOUT))?;
                self.socket = socket;
                self.socket.send(&self.buf).map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// The protocol's way for a large entry: the payload in a sealed memfd, sent as
    /// the only descriptor of an empty datagram.
    fn send_memfd(&self) -> io::Result<()> {
        let fd = super::sys::cvt(unsafe {
            libc::memfd_create(
                c"journal-message".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        })?;
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        std::fs::File::from(fd.try_clone()?).write_all(&self.buf)?;
        let seals =
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
        super::sys::cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
        super::sys::send_with_fds(self.socket.as_raw_fd(), &[], &[fd.as_raw_fd()]).map(drop)
    }
}

impl Drop for Journal {
    /// Messages that were dropped are told in a record of the container's own (a
    /// warning, which `docker logs` leaves out and `journalctl` shows).
    fn drop(&mut self) {
        if self.dropped == 0 {
            return;
        }
        self.buf.clear();
        field(&mut self.buf, "PRIORITY", b"4");
        let message = format!(
            "{} log messages of this container were dropped: {}",
            self.dropped,
            self.first_error
                .as_deref()
                .unwrap_or("journald did not take them")
        );
        field(&mut self.buf, "MESSAGE", message.as_bytes());
        let fixed = std::mem::take(&mut self.fixed);
        self.buf.extend_from_slice(&fixed);
        self.stalled = false;
        let _ = self.send();
    }
}

/// Appends one field: `KEY=value\n`, or, for a value with a newline, `KEY\n`, its
/// length as a little-endian u64, the value and `\n`.
pub fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// 64 random hex digits, the form of Docker's epoch and partial-line IDs.
fn random_id() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    /// Parses datagrams of the native protocol back into fields.
    fn parse(mut d: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let end = d.iter().position(|&b| b == b'\n' || b == b'=').unwrap();
            let key = String::from_utf8(d[..end].to_vec()).unwrap();
            if d[end] == b'=' {
                let nl = d.iter().position(|&b| b == b'\n').unwrap();
                out.push((key, d[end + 1..nl].to_vec()));
                d = &d[nl + 1..];
            } else {
                let len = u64::from_le_bytes(d[end + 1..end + 9].try_into().unwrap()) as usize;
                out.push((key, d[end + 9..end + 9 + len].to_vec()));
                assert_eq!(d[end + 9 + len], b'\n');
                d = &d[end + 10 + len..];
            }
        }
        out
    }

    fn get<'a>(fields: &'a [(String, Vec<u8>)], key: &str) -> Option<&'a str> {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
    }

    #[test]
    fn encodes_plain_and_binary_fields() {
        let mut out = Vec::new();
        field(&mut out, "MESSAGE", b"hi");
        field(&mut out, "X", b"a\nb");
        assert_eq!(out, b"MESSAGE=hi\nX\n\x03\0\0\0\0\0\0\0a\nb\n");
        assert_eq!(
            parse(&out),
            vec![
                ("MESSAGE".into(), b"hi".to_vec()),
                ("X".into(), b"a\nb".to_vec())
            ]
        );
    }

    #[test]
    fn sends_docker_fields_and_partial_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let fixed = vec![
            ("CONTAINER_ID".to_string(), "0123456789ab".to_string()),
            ("CONTAINER_NAME".to_string(), "web".to_string()),
        ];
        let mut j = Journal::open(&path, &fixed).unwrap();
        let time = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let line = |line: &'static [u8], complete| Entry {
            line,
            complete,
            time,
        };
        j.write(&line(b"hello", true), Stream::Stdout);
        j.write(&line(b"part one", false), Stream::Stderr);
        j.write(&line(b"part two", true), Stream::Stderr);
        assert_eq!(j.dropped, 0);
        let mut buf = vec![0u8; 65536];
        let mut recv = || {
            let n = server.recv(&mut buf).unwrap();
            parse(&buf[..n])
        };
        let first = recv();
        assert_eq!(get(&first, "MESSAGE"), Some("hello"));
        assert_eq!(get(&first, "PRIORITY"), Some("6"));
        assert_eq!(get(&first, "CONTAINER_NAME"), Some("web"));
        assert_eq!(
            get(&first, "SYSLOG_TIMESTAMP"),
            Some("2023-11-14T22:13:20.123456789Z")
        );
        assert_eq!(get(&first, "CONTAINER_LOG_ORDINAL"), Some("1"));
        assert_eq!(get(&first, "CONTAINER_LOG_EPOCH").unwrap().len(), 64);
        assert_eq!(get(&first, "CONTAINER_PARTIAL_ID"), None);
        let one = recv();
        let two = recv();
        assert_eq!(get(&one, "PRIORITY"), Some("3"));
        assert_eq!(get(&one, "CONTAINER_PARTIAL_MESSAGE"), Some("true"));
        assert_eq!(get(&one, "CONTAINER_PARTIAL_LAST"), Some("false"));
        assert_eq!(get(&one, "CONTAINER_PARTIAL_ORDINAL"), Some("1"));
        assert_eq!(get(&two, "CONTAINER_PARTIAL_MESSAGE"), None);
        assert_eq!(get(&two, "CONTAINER_PARTIAL_LAST"), Some("true"));
        assert_eq!(get(&two, "CONTAINER_PARTIAL_ORDINAL"), Some("2"));
        assert_eq!(
            get(&one, "CONTAINER_PARTIAL_ID"),
            get(&two, "CONTAINER_PARTIAL_ID")
        );
        assert_eq!(get(&two, "CONTAINER_LOG_ORDINAL"), Some("3"));
    }

    #[test]
    fn large_entries_go_in_a_memfd() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut j = Journal::open(&path, &[]).unwrap();
        // Larger than any datagram the socket takes.
        let big = vec![b'x'; 300 * 1024];
        let entry = Entry {
            line: &big,
            complete: true,
            time: SystemTime::now(),
        };
        j.write(&entry, Stream::Stdout);
        assert_eq!(j.dropped, 0, "{:?}", j.first_error);
        let mut buf = [0u8; 16];
        let mut fds = Vec::new();
        let n = super::super::sys::recv_with_fds(server.as_raw_fd(), &mut buf, &mut fds).unwrap();
        assert_eq!(n, 0);
        let data = std::fs::read(format!("/proc/self/fd/{}", fds[0].as_raw_fd())).unwrap();
        assert_eq!(get(&parse(&data), "MESSAGE").unwrap().len(), big.len());
    }

    #[test]
    fn a_stalled_journald_costs_one_wait_and_the_drops_are_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut j = Journal::open(&path, &[("CONTAINER_NAME".into(), "web".into())]).unwrap();
        let entry = Entry {
            line: b"x",
            complete: true,
            time: SystemTime::now(),
        };
        // Nobody reads: the socket's queue fills, one send waits out the timeout,
        // the rest are dropped at once.
        let start = std::time::Instant::now();
        for _ in 0..2000 {
            j.write(&entry, Stream::Stdout);
        }
        assert!(j.dropped > 0);
        assert!(start.elapsed() < SEND_TIMEOUT * 3, "{:?}", start.elapsed());
        server.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut received = 0;
        while server.recv(&mut buf).is_ok() {
            received += 1;
        }
        assert_eq!(received + j.dropped, 2000);
        let dropped = j.dropped;
        drop(j);
        let n = server.recv(&mut buf).unwrap();
        let last = parse(&buf[..n]);
        assert_eq!(get(&last, "PRIORITY"), Some("4"));
        assert_eq!(get(&last, "CONTAINER_NAME"), Some("web"));
        assert!(
            get(&last, "MESSAGE").unwrap().starts_with(&format!(
                "{dropped} log messages of this container were dropped"
            )),
            "{last:?}"
        );
    }

    #[test]
    fn a_missing_journald_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = Journal::open(&dir.path().join("none"), &[]).err().unwrap();
        assert_eq!(err.to_string(), NOT_ENABLED);
    }
}
