//! `--init`: a minimal PID 1 for the container, the role Docker gives `docker-init`.
//!
//! The container's first process, fully set up, forks the command and stays behind as
//! PID 1: it forwards the signals it receives to the command, reaps every orphan that
//! the kernel hands it (so zombies do not pile up), and exits with the command's
//! status (128 + signal number when the command was killed) as soon as the command
//! ends; the kernel then kills what is left in the namespace.
//!
//! It never execs: it is the monitor's binary forked, marked non-dumpable so the
//! container cannot open it through `/proc/1/exe`, and named `docker-init`.

use std::io;

use super::sys;

/// Signals a process cannot usefully forward: the uncatchable ones and those the
/// kernel raises synchronously for a fault in the process itself.
const NOT_FORWARDED: &[libc::c_int] = &[
    libc::SIGCHLD,
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Forks the command (`exec` runs in the child and must not return) and serves as
/// PID 1 until it exits. `tty` tells whether stdin is the container's terminal, which
/// the command then gets as its foreground process group.
pub fn run(tty: bool, exec: impl FnOnce() -> io::Error) -> io::Error {
    // Block everything first: signals arriving before the loop stay pending.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
    if tty && let Err(e) = super::stdio::set_controlling_terminal(0) {
        return e;
    }
    let child = match sys::clone_process(0) {
        Err(e) => return e,
        Ok(None) => {
            // The command: its own process group, in the terminal's foreground.
            unsafe {
                libc::setpgid(0, 0);
                if tty {
                    libc::tcsetpgrp(0, libc::getpid());
                }
            }
            return exec();
        }
        Ok(Some(pid)) => pid,
    };

    // From here on this process is only the init: keep nothing of the monitor's.
    sys::close_from(3);
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    sys::set_process_name(c"docker-init");
    let code = serve(child, &all);
    sys::exit_now(code)
}

/// Forwards signals and reaps until `child` exits; returns the exit status to use.
fn serve(child: libc::pid_t, set: &libc::sigset_t) -> i32 {
    loop {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let sig = unsafe { libc::sigwaitinfo(set, &mut info) };
        if sig < 0 {
            continue;
        }
        if sig == libc::SIGCHLD {
            while let Ok(Some((pid, exit))) = sys::reap(-1) {
                if pid == child {
                    return exit.status();
                }
            }
        } else if !NOT_FORWARDED.contains(&sig) {
            let _ = sys::kill(child, sig);
        }
    }
}
