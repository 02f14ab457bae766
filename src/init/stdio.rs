//! The container's standard streams: three pipes, or a pseudo-terminal with `-t`.
//!
//! Pipes are made by the monitor before the container's process exists. A terminal is
//! made by the container's process inside its own `/dev/pts` (a new devpts instance, so
//! the command sees `/dev/pts/0` and `/dev/console`), and the master side is passed back
//! to the monitor over a socket, as runc does.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::sys;

/// The monitor's ends.
pub enum MonitorStdio {
    Pipes {
        /// Write end of the command's stdin, when it has one (`-i`).
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// The terminal's master arrives on this socket once the container made it.
    Tty { console_socket: OwnedFd },
}

/// The container's ends.
pub enum ContainerStdio {
    Pipes {
        /// Read end of stdin; `None` means `/dev/null`.
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Tty {
        console_socket: OwnedFd,
    },
}

/// Makes the pipes (or the terminal socket) for a container.
pub fn create(tty: bool, open_stdin: bool) -> io::Result<(MonitorStdio, ContainerStdio)> {
    if tty {
        let (mine, theirs) = sys::socketpair()?;
        return Ok((
            MonitorStdio::Tty {
                console_socket: mine,
            },
            ContainerStdio::Tty {
                console_socket: theirs,
            },
        ));
    }
    let (stdin_r, stdin_w) = if open_stdin {
        let (r, w) = sys::pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let (out_r, out_w) = sys::pipe()?;
    let (err_r, err_w) = sys::pipe()?;
    Ok((
        MonitorStdio::Pipes {
            stdin: stdin_w,
            stdout: out_r,
            stderr: err_r,
        },
        ContainerStdio::Pipes {
            stdin: stdin_r,
            stdout: out_w,
            stderr: err_w,
        },
    ))
}

/// A terminal made inside the container's devpts.
pub struct Console {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    pub slave_path: PathBuf,
}

/// Opens a new terminal from `pts_dir` (the container's `/dev/pts`, seen from outside
/// its root) and sets its initial size.
pub fn open_console(pts_dir: &Path, size: Option<(u16, u16)>) -> io::Result<Console> {
    let ptmx = pts_dir.join("ptmx");
    let master = sys::open(&ptmx, libc::O_RDWR | libc::O_NOCTTY, 0)
        .map_err(|e| crate::store::with_path(e, "open", &ptmx))?;
    let mut unlock: libc::c_int = 0;
    sys::cvt(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) })
        .map_err(|e| crate::store::with_path(e, "unlock terminal", &ptmx))?;
    let mut n: libc::c_uint = 0;
    sys::cvt(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })
        .map_err(|e| crate::store::with_path(e, "get terminal number", &ptmx))?;
    let slave_path = pts_dir.join(n.to_string());
    let slave = sys::open(&slave_path, libc::O_RDWR | libc::O_NOCTTY, 0)
        .map_err(|e| crate::store::with_path(e, "open", &slave_path))?;
    if let Some((rows, cols)) = size {
        sys::set_winsize(master.as_raw_fd(), rows, cols)?;
    }
    Ok(Console {
        master,
        slave,
        slave_path,
    })
}

/// Puts the container's ends on descriptors 0, 1 and 2. `null` is the container's
/// `/dev/null` for a command without stdin; `tty` is the terminal's slave.
pub fn install(
    stdio: &ContainerStdio,
    tty: Option<&OwnedFd>,
    null: Option<&OwnedFd>,
) -> io::Result<()> {
    let (i, o, e): (RawFd, RawFd, RawFd) = match (stdio, tty) {
        (_, Some(slave)) => (slave.as_raw_fd(), slave.as_raw_fd(), slave.as_raw_fd()),
        (
            ContainerStdio::Pipes {
                stdin,
                stdout,
                stderr,
            },
            None,
        ) => {
            let stdin = match (stdin, null) {
                (Some(s), _) => s.as_raw_fd(),
                (None, Some(n)) => n.as_raw_fd(),
                (None, None) => {
                    return Err(io::Error::other("no stdin for the container's command"));
                }
            };
            (stdin, stdout.as_raw_fd(), stderr.as_raw_fd())
        }
        (ContainerStdio::Tty { .. }, None) => {
            return Err(io::Error::other("the container's terminal was not created"));
        }
    };
    // Move sources out of 0..=2 first so one dup2 cannot clobber another's source.
    let lifted: Vec<OwnedFd> = [i, o, e]
        .iter()
        .map(|&fd| {
            let n = sys::cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
            Ok(unsafe { OwnedFd::from_raw_fd(n) })
        })
        .collect::<io::Result<_>>()?;
    for (target, src) in lifted.iter().enumerate() {
        sys::dup2(src.as_raw_fd(), target as RawFd)?;
    }
    Ok(())
}

/// Makes `fd` (a terminal) the controlling terminal of the calling session leader.
pub fn set_controlling_terminal(fd: RawFd) -> io::Result<()> {
    sys::cvt(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) })
        .map(drop)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "set the controlling terminal: {}",
                    crate::store::strip_os_suffix(&e)
                ),
            )
        })
}
