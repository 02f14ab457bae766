//! `sd_notify`: state messages to the service manager over `NOTIFY_SOCKET`.
//!
//! The socket is connected once at start-up and the variable removed, so children
//! never see it; without `NOTIFY_SOCKET` every call is a no-op.

use std::io;
use std::os::unix::net::UnixDatagram;

pub use sd_notify::NotifyState;

/// A connected notification socket, or nothing when not run by systemd.
#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<UnixDatagram>,
}

impl Notifier {
    /// Connects to `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket) and
    /// removes the variable from the environment.
    ///
    /// # Safety
    /// Modifies the environment: call only while the process has a single thread.
    pub unsafe fn from_env() -> io::Result<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET");
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let Some(path) = path else {
            return Ok(Notifier::default());
        };
        let socket = UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.connect_addr(&addr)?;
        } else {
            socket.connect(&path)?;
        }
        Ok(Notifier {
            socket: Some(socket),
        })
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends the states as one datagram (`READY=1\nSTATUS=…\n`).
    pub fn notify(&self, states: &[NotifyState<'_>]) {
        let Some(socket) = &self.socket else { return };
        let mut msg = String::new();
        for s in states {
            msg.push_str(&s.to_string());
            msg.push('\n');
        }
        if let Err(e) = socket.send(msg.as_bytes()) {
            tracing::warn!(
                "failed to notify systemd ({}): {e}",
                msg.trim_end().replace('\n', " ")
            );
        }
    }

    /// Sends `STATUS=`.
    pub fn status(&self, text: &str) {
        self.notify(&[NotifyState::Status(text)]);
    }
}
