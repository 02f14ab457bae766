//! Docker's default seccomp profile (`builtin`), as moby's profiles module v0.2.3
//! has it: everything outside an allow-list gets `EPERM`; `socket` refuses
//! `AF_ALG` and `AF_VSOCK`; `personality` takes five values; `clone` creates no
//! namespaces and `clone3` answers `ENOSYS` (so that libc falls back to `clone`)
//! unless the container has `CAP_SYS_ADMIN`; and each capability opens the calls
//! it governs (`CAP_SYS_ADMIN` mount and unshare, `CAP_SYS_PTRACE` ptrace, …).

use std::sync::OnceLock;

use super::profile::{ArchMap, Arg, Filter, Profile, Syscall};

/// The calls every container may make, whatever its capabilities.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
    "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
    "futex_wake", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
    "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
    "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit",
    "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area",
    "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "getxattrat", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy",
    "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
    "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
    "listmount", "listxattr", "listxattrat", "llistxattr", "_llseek", "lremovexattr", "lseek",
    "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create",
    "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2",
    "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open",
    "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
    "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64",
    "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
    "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr",
    "removexattrat", "rename", "renameat", "renameat2", "restart_syscall", "riscv_hwprobe",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
    "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
    "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
    "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid",
    "setuid32", "setxattr", "setxattrat", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
    "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair",
    "splice", "stat", "stat64", "statfs", "statfs64", "statmount", "statx", "symlink", "symlinkat",
    "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask",
    "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat", "utimensat_time64", "utimes",
    "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
];

const ALLOW: &str = "SCMP_ACT_ALLOW";
/// `clone`'s flags that create namespaces: `CLONE_NEWNS | CLONE_NEWCGROUP |
/// CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET`.
const NAMESPACE_FLAGS: u64 = 0x7e02_0000;

/// One conditional rule of the profile.
struct Rule {
    names: &'static [&'static str],
    /// `(index, value, op)`; the masked compare's datum is always 0 here.
    args: &'static [(u32, u64, &'static str)],
    /// `SCMP_ACT_ERRNO` with this errno instead of allowing.
    errno: Option<u32>,
    caps: &'static [&'static str],
    arches: &'static [&'static str],
    min_kernel: &'static str,
    not_caps: &'static [&'static str],
    not_arches: &'static [&'static str],
}

const RULE: Rule = Rule {
    names: &[],
    args: &[],
    errno: None,
    caps: &[],
    arches: &[],
    min_kernel: "",
    not_caps: &[],
    not_arches: &[],
};

const fn with_cap(names: &'static [&'static str], caps: &'static [&'static str]) -> Rule {
    Rule {
        names,
        caps,
        ..RULE
    }
}

const fn on(names: &'static [&'static str], arches: &'static [&'static str]) -> Rule {
    Rule {
        names,
        arches,
        ..RULE
    }
}

macro_rules! personality {
    ($value:expr) => {
        Rule {
            names: &["personality"],
            args: &[(0, $value, "SCMP_CMP_EQ")],
            ..RULE
        }
    };
}

const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

/// The rules after the allow-list, in the profile's order.
const RULES: &[Rule] = &[
    Rule {
        names: &["process_vm_readv", "process_vm_writev", "ptrace"],
        min_kernel: "4.8",
        ..RULE
    },
    // Every address family but AF_ALG (38) and AF_VSOCK (40).
    Rule {
        names: &["socket"],
        args: &[(0, AF_ALG, "SCMP_CMP_LT")],
        ..RULE
    },
    Rule {
        names: &["socket"],
        args: &[(0, 39, "SCMP_CMP_EQ")],
        ..RULE
    },
    Rule {
        names: &["socket"],
        args: &[(0, AF_VSOCK, "SCMP_CMP_GT")],
        ..RULE
    },
    // PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the query.
    personality!(0x0),
    personality!(0x8),
    personality!(0x20000),
    personality!(0x20008),
    personality!(0xffff_ffff),
    on(&["sync_file_range2", "swapcontext"], &["ppc64le"]),
    on(
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        &["arm", "arm64"],
    ),
    on(&["arch_prctl"], &["amd64", "x32"]),
    on(&["modify_ldt"], &["amd64", "x32", "x86"]),
    on(
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        &["s390", "s390x"],
    ),
    on(&["riscv_flush_icache"], &["riscv64"]),
    with_cap(&["open_by_handle_at"], &["CAP_DAC_READ_SEARCH"]),
    with_cap(
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        &["CAP_SYS_ADMIN"],
    ),
    Rule {
        names: &["clone"],
        args: &[(0, NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ")],
        not_caps: &["CAP_SYS_ADMIN"],
        not_arches: &["s390", "s390x"],
        ..RULE
    },
    // s390 passes clone's flags second.
    Rule {
        names: &["clone"],
        args: &[(1, NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ")],
        arches: &["s390", "s390x"],
        not_caps: &["CAP_SYS_ADMIN"],
        ..RULE
    },
    Rule {
        names: &["clone3"],
        errno: Some(libc::ENOSYS as u32),
        not_caps: &["CAP_SYS_ADMIN"],
        ..RULE
    },
    with_cap(&["reboot"], &["CAP_SYS_BOOT"]),
    with_cap(&["chroot"], &["CAP_SYS_CHROOT"]),
    with_cap(
        &["delete_module", "init_module", "finit_module"],
        &["CAP_SYS_MODULE"],
    ),
    with_cap(&["acct"], &["CAP_SYS_PACCT"]),
    with_cap(
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        &["CAP_SYS_PTRACE"],
    ),
    with_cap(&["iopl", "ioperm"], &["CAP_SYS_RAWIO"]),
    with_cap(
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        &["CAP_SYS_TIME"],
    ),
    with_cap(&["vhangup"], &["CAP_SYS_TTY_CONFIG"]),
    with_cap(
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        &["CAP_SYS_NICE"],
    ),
    with_cap(&["syslog"], &["CAP_SYSLOG"]),
    with_cap(&["bpf"], &["CAP_BPF"]),
    with_cap(&["perf_event_open"], &["CAP_PERFMON"]),
];

/// The architectures and their sub-architectures (the ABIs a kernel of that
/// architecture also runs).
const ARCH_MAP: &[(&str, &[&str])] = &[
    ("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    ("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
    (
        "SCMP_ARCH_MIPS64",
        &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"],
    ),
    (
        "SCMP_ARCH_MIPS64N32",
        &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"],
    ),
    (
        "SCMP_ARCH_MIPSEL64",
        &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"],
    ),
    (
        "SCMP_ARCH_MIPSEL64N32",
        &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"],
    ),
    ("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
    ("SCMP_ARCH_RISCV64", &[]),
    ("SCMP_ARCH_LOONGARCH64", &[]),
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The profile, built once.
pub fn builtin() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| {
        let mut syscalls = vec![Syscall {
            names: strings(ALLOWED),
            action: ALLOW.into(),
            ..Default::default()
        }];
        syscalls.extend(RULES.iter().map(|r| {
            Syscall {
                names: strings(r.names),
                action: if r.errno.is_some() {
                    "SCMP_ACT_ERRNO"
                } else {
                    ALLOW
                }
                .into(),
                errno_ret: r.errno,
                args: r
                    .args
                    .iter()
                    .map(|&(index, value, op)| Arg {
                        index,
                        value,
                        value_two: 0,
                        op: op.into(),
                    })
                    .collect(),
                includes: Filter {
                    caps: strings(r.caps),
                    arches: strings(r.arches),
                    min_kernel: r.min_kernel.into(),
                },
                excludes: Filter {
                    caps: strings(r.not_caps),
                    arches: strings(r.not_arches),
                    min_kernel: String::new(),
                },
                ..Default::default()
            }
        }));
        Profile {
            default_action: "SCMP_ACT_ERRNO".into(),
            default_errno_ret: Some(libc::EPERM as u32),
            arch_map: ARCH_MAP
                .iter()
                .map(|(a, subs)| ArchMap {
                    architecture: a.to_string(),
                    sub_architectures: strings(subs),
                })
                .collect(),
            syscalls,
            ..Default::default()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::bpf::{self, Insn};
    use super::super::profile::{Target, compile};
    use super::*;

    const X86_64: u32 = 0xc000_003e;
    const I386: u32 = 0x4000_0003;
    const ALLOWED_ACT: u32 = 0x7fff_0000;
    const EPERM: u32 = 0x0005_0001;
    const ENOSYS: u32 = 0x0005_0026;

    fn filter(caps: &[&str]) -> Vec<Insn> {
        let caps: Vec<String> = caps.iter().map(|s| s.to_string()).collect();
        let t = Target {
            caps: &caps,
            kernel: (6, 1),
        };
        compile(builtin(), &t)
            .unwrap()
            .into_iter()
            .map(Insn::unpack)
            .collect()
    }

    fn call(f: &[Insn], arch: u32, nr: u32, arg0: u64) -> u32 {
        bpf::run(f, nr, arch, [arg0, 0, 0, 0, 0, 0])
    }

    #[test]
    fn the_default_profile_on_x86_64() {
        let f = filter(&["CAP_CHOWN", "CAP_SETUID", "CAP_SYS_CHROOT"]);
        for (name, nr) in super::super::syscalls::X86_64 {
            if ALLOWED.contains(name) {
                assert_eq!(call(&f, X86_64, *nr, 0), ALLOWED_ACT, "{name}");
            }
        }
        // Not in the profile: EPERM. Above its highest number (466): ENOSYS.
        for (name, nr) in [
            ("keyctl", 250),
            ("add_key", 248),
            ("kexec_load", 246),
            ("unshare", 272),
            ("mount", 165),
            ("open_by_handle_at", 304),
            ("bpf", 321),
        ] {
            assert_eq!(call(&f, X86_64, nr, 0), EPERM, "{name}");
        }
        assert_eq!(call(&f, X86_64, 466, 0), ALLOWED_ACT, "removexattrat");
        assert_eq!(call(&f, X86_64, 467, 0), ENOSYS);
        assert_eq!(call(&f, X86_64, 435, 0), ENOSYS, "clone3");
        assert_eq!(
            call(&f, X86_64, 161, 0),
            ALLOWED_ACT,
            "chroot with CAP_SYS_CHROOT"
        );
        assert_eq!(call(&f, X86_64, 158, 0), ALLOWED_ACT, "arch_prctl");
        assert_eq!(
            call(&f, X86_64, 56, 0x11),
            ALLOWED_ACT,
            "clone for a thread"
        );
        assert_eq!(
            call(&f, X86_64, 56, 0x1000_0011),
            EPERM,
            "clone with CLONE_NEWUSER"
        );
        assert_eq!(call(&f, X86_64, 41, 2), ALLOWED_ACT, "AF_INET");
        assert_eq!(call(&f, X86_64, 41, 38), EPERM, "AF_ALG");
        assert_eq!(call(&f, X86_64, 41, 39), ALLOWED_ACT);
        assert_eq!(call(&f, X86_64, 41, 40), EPERM, "AF_VSOCK");
        assert_eq!(call(&f, X86_64, 41, 44), ALLOWED_ACT, "AF_XDP");
        assert_eq!(call(&f, X86_64, 135, 0xffff_ffff), ALLOWED_ACT);
        assert_eq!(
            call(&f, X86_64, 135, 0x0040_0000),
            EPERM,
            "READ_IMPLIES_EXEC"
        );
        assert_eq!(call(&f, X86_64, 0x4000_0000, 0), ENOSYS, "x32");
        // i386: socketcall (102) allowed, mount (21) not.
        assert_eq!(call(&f, I386, 102, 0), ALLOWED_ACT);
        assert_eq!(call(&f, I386, 21, 0), EPERM);
        assert!(f.len() < 1000, "{} instructions", f.len());
    }

    #[test]
    fn capabilities_open_what_they_govern() {
        let f = filter(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
        assert_eq!(call(&f, X86_64, 165, 0), ALLOWED_ACT, "mount");
        assert_eq!(call(&f, X86_64, 272, 0), ALLOWED_ACT, "unshare");
        assert_eq!(
            call(&f, X86_64, 56, 0x1000_0011),
            ALLOWED_ACT,
            "clone(CLONE_NEWUSER)"
        );
        assert_eq!(call(&f, X86_64, 435, 0), ALLOWED_ACT, "clone3");
        assert_eq!(call(&f, X86_64, 101, 0), ALLOWED_ACT, "ptrace");
        assert_eq!(
            call(&f, X86_64, 161, 0),
            EPERM,
            "chroot without CAP_SYS_CHROOT"
        );
        assert_eq!(call(&f, X86_64, 250, 0), EPERM, "keyctl");
    }
}
