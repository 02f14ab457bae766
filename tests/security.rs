//! Seccomp, no-new-privileges and `--security-opt` end to end: the real docker CLI
//! against the built daemon, with `tests/data/syscall-probe.c` run inside
//! containers to see which system calls the filter lets through and with which
//! errno it refuses the others. AppArmor needs a kernel that has it on; this
//! host's has not, so `tests/e2e/cgroup-v2.sh` checks it in its Debian VM.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

const IMG: &str = BUSYBOX_IMG;
const EPERM: &str = "errno 1";
const ENOSYS: &str = "errno 38";

/// Runs the probe in a new container with `opts` and returns its lines by name.
fn probe(d: &Daemon, bin: &Path, opts: &[&str], calls: &[&str]) -> Vec<(String, String)> {
    let mount = format!("{}:/probe:ro", bin.display());
    let mut args = vec!["run", "--rm", "--network", "none", "-v", &mount];
    args.extend_from_slice(opts);
    args.push(IMG);
    args.push("/probe");
    args.extend_from_slice(calls);
    d.docker_ok(&args)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn result<'a>(lines: &'a [(String, String)], call: &str) -> &'a str {
    lines
        .iter()
        .find(|(n, _)| n == call)
        .map(|(_, r)| r.as_str())
        .unwrap_or_else(|| panic!("no result for {call} in {lines:?}"))
}

fn seccomp_mode(d: &Daemon, opts: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[IMG, "sh", "-c", "grep '^Seccomp:' /proc/self/status"]);
    d.docker_ok(&args)
        .split_whitespace()
        .last()
        .unwrap_or("")
        .to_string()
}

fn write_profile(d: &Daemon, name: &str, json: &str) -> PathBuf {
    let p = d.path(name);
    std::fs::write(&p, json).unwrap();
    p
}

#[test]
fn the_default_profile_refuses_what_dockers_refuses() {
    let d = daemon_with_busybox();
    let info = d.docker_ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(
        info.contains("\"name=seccomp,profile=builtin\""),
        "docker info: {info}"
    );
    let bin = static_c_binary(&d, "syscall-probe");
    let calls = [
        "keyctl",
        "add_key",
        "unshare_user",
        "clone3",
        "kexec_load",
        "open_by_handle_at",
        "mkdir",
        "getpid",
    ];

    assert_eq!(
        seccomp_mode(&d, &[]),
        "2",
        "a container runs under a filter"
    );
    let confined = probe(&d, &bin, &[], &calls);
    for call in [
        "keyctl",
        "add_key",
        "unshare_user",
        "kexec_load",
        "open_by_handle_at",
    ] {
        assert_eq!(result(&confined, call), EPERM, "{call}: {confined:?}");
    }
    assert_eq!(
        result(&confined, "clone3"),
        ENOSYS,
        "libc falls back to clone"
    );
    assert_eq!(result(&confined, "mkdir"), "ok");
    assert_eq!(result(&confined, "getpid"), "ok");

    // Unconfined, the kernel answers for itself.
    assert_eq!(
        seccomp_mode(&d, &["--security-opt", "seccomp=unconfined"]),
        "0"
    );
    let open = probe(&d, &bin, &["--security-opt", "seccomp=unconfined"], &calls);
    for call in ["keyctl", "add_key", "unshare_user"] {
        assert_ne!(result(&open, call), EPERM, "{call}: {open:?}");
    }
    assert_ne!(result(&open, "clone3"), ENOSYS);

    // Capabilities open what they govern; --privileged is unconfined.
    let admin = probe(
        &d,
        &bin,
        &["--cap-add", "SYS_ADMIN"],
        &["unshare_user", "clone3"],
    );
    assert_eq!(result(&admin, "unshare_user"), "ok", "{admin:?}");
    assert_ne!(result(&admin, "clone3"), ENOSYS);
    assert_eq!(seccomp_mode(&d, &["--privileged"]), "0");
    assert_eq!(
        seccomp_mode(&d, &["--security-opt", "seccomp=builtin"]),
        "2"
    );

    // An exec runs under its container's filter, even with --privileged.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "sc",
        "--network",
        "none",
        IMG,
        "sleep",
        "300",
    ]);
    for opts in [&[][..], &["--privileged"][..]] {
        let mut args = vec!["exec"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["sc", "grep", "^Seccomp:", "/proc/self/status"]);
        let out = d.docker_ok(&args);
        assert!(out.trim().ends_with('2'), "exec {opts:?}: {out}");
    }
    let hc = inspect(&d, "sc");
    assert_eq!(hc["AppArmorProfile"], "", "this host has no AppArmor");
    // An unconfined container's execs are unconfined too.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "open",
        "--network",
        "none",
        "--security-opt",
        "seccomp=unconfined",
        IMG,
        "sleep",
        "300",
    ]);
    let out = d.docker_ok(&["exec", "open", "grep", "^Seccomp:", "/proc/self/status"]);
    assert!(out.trim().ends_with('0'), "{out}");

    // An exec gets the filter its container started with, even after the daemon's
    // default changed.
    std::fs::write(d.config_file(), r#"{"seccomp-profile": "unconfined"}"#).unwrap();
    let mut d = d.restart();
    let out = d.docker_ok(&["exec", "sc", "grep", "^Seccomp:", "/proc/self/status"]);
    assert!(out.trim().ends_with('2'), "exec after the restart: {out}");

    // And after a daemon killed with SIGKILL: the monitors hold the confinement.
    d.signal(libc::SIGKILL);
    d.stopped = Some(d.child.wait().unwrap());
    let d = d.restart();
    for (name, mode) in [("sc", '2'), ("open", '0')] {
        let out = d.docker_ok(&["exec", name, "grep", "^Seccomp:", "/proc/self/status"]);
        assert!(
            out.trim().ends_with(mode),
            "exec in {name} after SIGKILL: {out}"
        );
    }
    d.docker_ok(&["rm", "-f", "sc", "open"]);
}

#[test]
fn profiles_of_the_container_and_of_the_daemon() {
    let d = daemon_with_busybox();
    let deny_mkdir = r#"{
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
    }"#;
    let profile = write_profile(&d, "deny-mkdir.json", deny_mkdir);
    let opt = format!("seccomp={}", profile.display());
    let o = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        IMG,
        "mkdir",
        "/tmp/x",
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("Operation not permitted"),
        "mkdir under a profile that denies it: {}",
        err(&o)
    );
    d.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        IMG,
        "touch",
        "/tmp/x",
    ]);
    // The profile as inspect keeps it: the compacted JSON the CLI sent.
    d.docker_ok(&["create", "--name", "kept", "--security-opt", &opt, IMG]);
    let hc = inspect(&d, "kept");
    let kept = hc["HostConfig"]["SecurityOpt"][0].as_str().unwrap_or("");
    assert!(kept.starts_with("seccomp={\"defaultAction\""), "{kept}");

    // A profile the daemon cannot use fails the start with Docker's words.
    let bad = write_profile(&d, "bad.json", r#"{"defaultAction":"SCMP_ACT_NOPE"}"#);
    let o = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", bad.display()),
        IMG,
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("string SCMP_ACT_NOPE is not a valid action for seccomp"),
        "{}",
        err(&o)
    );
    // Unknown options are refused at create; labels are accepted as without SELinux.
    let o = d.docker(&["create", "--security-opt", "foo=bar", IMG]);
    assert!(
        err(&o).contains("invalid --security-opt 2: \"foo=bar\""),
        "{}",
        err(&o)
    );
    let o = d.docker(&["create", "--security-opt", "no-new-privileges=maybe", IMG]);
    assert!(err(&o).contains("invalid --security-opt 2"), "{}", err(&o));
    d.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "label=disable",
        IMG,
        "true",
    ]);
    // No AppArmor on this host: a profile asked for cannot be applied.
    let o = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        "apparmor=mine",
        IMG,
        "true",
    ]);
    assert!(
        err(&o).contains("AppArmor is not enabled on this host"),
        "{}",
        err(&o)
    );
    drop(d);

    // The daemon's own profile is every container's default.
    let dir = tempfile::tempdir().unwrap();
    let daemon_profile = dir.path().join("daemon-profile.json");
    std::fs::write(&daemon_profile, deny_mkdir).unwrap();
    let d = Daemon::builder()
        .config(&format!(
            r#"{{"seccomp-profile": "{}"}}"#,
            daemon_profile.display()
        ))
        .start();
    d.import_busybox(IMG);
    let info = d.docker_ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(info.contains("daemon-profile.json"), "{info}");
    let o = d.docker(&["run", "--rm", IMG, "mkdir", "/tmp/x"]);
    assert!(err(&o).contains("Operation not permitted"), "{}", err(&o));
    d.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=builtin",
        IMG,
        "mkdir",
        "/tmp/x",
    ]);
    drop(d);

    let d = Daemon::builder()
        .config(r#"{"seccomp-profile": "unconfined"}"#)
        .start();
    d.import_busybox(IMG);
    assert_eq!(seccomp_mode(&d, &[]), "0");
    let info = d.docker_ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(info.contains("name=seccomp,profile=unconfined"), "{info}");
    let warnings = d.docker_ok(&["info", "--format", "{{json .Warnings}}"]);
    assert!(
        warnings.contains("WARNING: daemon is not using the default seccomp profile"),
        "{warnings}"
    );
}

#[test]
fn no_new_privileges_stops_setuid() {
    let d = daemon_with_busybox();
    let bin = static_c_binary(&d, "syscall-probe");
    // A setuid-root copy the container's user 1000 can run.
    let dir = d.path("suid");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let suid = dir.join("probe");
    std::fs::copy(&bin, &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mount = format!("{}:/p:ro", dir.display());
    let euid = |opts: &[&str]| {
        let mut args = vec!["run", "--rm", "--user", "1000", "-v", &mount];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[IMG, "/p/probe", "euid"]);
        d.docker_ok(&args).trim().to_string()
    };
    assert_eq!(
        euid(&[]),
        "euid 0",
        "setuid works without no-new-privileges"
    );
    assert_eq!(euid(&["--security-opt", "no-new-privileges"]), "euid 1000");
    assert_eq!(
        euid(&["--security-opt", "no-new-privileges=true"]),
        "euid 1000"
    );
    let status = d.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        IMG,
        "grep",
        "-E",
        "^(NoNewPrivs|Seccomp):",
        "/proc/self/status",
    ]);
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(
        status.contains("Seccomp:\t2"),
        "the filter is still on: {status}"
    );
    drop(d);

    // The daemon's default, and a container that opts out.
    let d = Daemon::builder().arg("--no-new-privileges").start();
    d.import_busybox(IMG);
    let info = d.docker_ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(info.contains("name=no-new-privileges"), "{info}");
    let nnp = |opts: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[IMG, "grep", "^NoNewPrivs:", "/proc/self/status"]);
        d.docker_ok(&args)
            .split_whitespace()
            .last()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(nnp(&[]), "1");
    assert_eq!(nnp(&["--security-opt", "no-new-privileges=false"]), "0");
}
