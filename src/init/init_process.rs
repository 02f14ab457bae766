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
pub fn run(tty: bool, args: &[String], exec: impl FnOnce() -> io::Error) -> io::Error {
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
    set_cmdline(b"/sbin/docker-init\0--\0", args);
    let code = serve(child, &all);
    sys::exit_now(code)
}

/// Rewrites this process's command line (what `ps` shows) in place to read like
/// Docker's init, `/sbin/docker-init -- CMD…`, as far as the original arguments'
/// space allows. Changing the size of that space would need CAP_SYS_RESOURCE.
fn set_cmdline(prefix: &[u8], args: &[String]) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name, which may itself contain spaces and parentheses:
    // the first is field 3 (state); arg_start and arg_end are fields 48 and 49.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|s| s.parse::<usize>().ok());
    let (Some(start), Some(end)) = (field(48), field(49)) else {
        return;
    };
    if end <= start + 1 {
        return;
    }
    let mut title = prefix.to_vec();
    for a in args {
        title.extend_from_slice(a.as_bytes());
        title.push(0);
    }
    // SAFETY: [arg_start, arg_end) is this process's own argument area on its stack,
    // which nothing reads any more (the arguments were parsed long ago).
    let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, end - start) };
    let n = title.len().min(area.len() - 1);
    area[..n].copy_from_slice(&title[..n]);
    area[n..].fill(0);
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
