//! Resource limits, OOM, `docker update` and `docker pause` end to end: the real
//! docker CLI against the built daemon, each limit read back from the container's
//! cgroup files on the host and from inside the container. These run on this
//! host's cgroups (v1 controllers, or v2 only); `tests/e2e/cgroup-v2.sh` runs the
//! same kinds of checks on a v2-only host with systemd.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const IMG: &str = BUSYBOX_IMG;

/// Whether this host has the v1 memory controller (else limits are in v2 files).
fn v1() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
}

/// The host file of a container's cgroup: `(v1 controller, v1 file, v2 file)`.
fn cgroup_file(d: &Daemon, name: &str, v1_ctrl: &str, v1_file: &str, v2_file: &str) -> PathBuf {
    let id = field(d, name, "{{.Id}}");
    if v1() {
        PathBuf::from(format!("/sys/fs/cgroup/{v1_ctrl}/docker/{id}/{v1_file}"))
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/docker/{id}/{v2_file}"))
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn limits_reach_the_cgroup_and_the_process() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "lim",
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "--cpus",
        "1.5",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "100",
        "--oom-score-adj",
        "300",
        "--ulimit",
        "nofile=100:200",
        "--shm-size",
        "1m",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        IMG,
        "sleep",
        "1000",
    ]);
    let f = |c: &str, v1f: &str, v2f: &str| read(&cgroup_file(&d, "lim", c, v1f, v2f));
    if v1() {
        assert_eq!(f("memory", "memory.limit_in_bytes", ""), "67108864");
        assert_eq!(f("memory", "memory.soft_limit_in_bytes", ""), "33554432");
        assert_eq!(f("cpu", "cpu.cfs_quota_us", ""), "150000");
        assert_eq!(f("cpu", "cpu.cfs_period_us", ""), "100000");
        assert_eq!(f("cpu", "cpu.shares", ""), "512");
        if Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
            // As much swap as memory, as Docker sets it.
            assert_eq!(f("memory", "memory.memsw.limit_in_bytes", ""), "134217728");
        }
    } else {
        assert_eq!(f("", "", "memory.max"), "67108864");
        assert_eq!(f("", "", "memory.low"), "33554432");
        assert_eq!(f("", "", "cpu.max"), "150000 100000");
        assert_eq!(f("", "", "cpu.weight"), "20");
    }
    assert_eq!(f("pids", "pids.max", "pids.max"), "100");
    assert_eq!(f("cpuset", "cpuset.cpus", "cpuset.cpus"), "0");
    assert_eq!(
        field(
            &d,
            "lim",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"
        ),
        "67108864 134217728 1500000000 100"
    );

    // Inside: the OOM score, the limits on files, /dev/shm's size, the sysctl.
    let inside = d.docker_ok(&[
        "exec",
        "lim",
        "sh",
        "-c",
        "cat /proc/1/oom_score_adj; ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1; cat /proc/sys/net/ipv4/ip_forward",
    ]);
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(lines[0], "300", "{inside}");
    assert_eq!(lines[1], "100", "{inside}");
    assert_eq!(lines[2], "200", "{inside}");
    assert_eq!(lines[3].split_whitespace().nth(1), Some("1024"), "{inside}");
    assert_eq!(lines[4], "1", "{inside}");
    // Docker's defaults for a network namespace of the container's own.
    let ping = d.docker_ok(&["exec", "lim", "cat", "/proc/sys/net/ipv4/ping_group_range"]);
    assert_eq!(
        ping.split_whitespace().collect::<Vec<_>>(),
        ["0", "2147483647"]
    );
}

#[test]
fn settings_are_checked_with_dockers_words() {
    let d = daemon_with_busybox();
    for (args, message) in [
        (&["-m", "4m"][..], "Minimum memory limit allowed is 6MB"),
        (
            &["-m", "64m", "--memory-swap", "32m"],
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (
            &["-m", "64m", "--memory-reservation", "128m"],
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        (&["--cpus", "100"], "Range of CPUs is from 0.01 to"),
        (
            &["--cpu-period", "10"],
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (
            &["--cpuset-cpus", "99"],
            "Requested CPUs are not available - requested 99, available:",
        ),
        (
            &["--oom-score-adj", "2000"],
            "Invalid value 2000, range for oom score adj is [-1000, 1000]",
        ),
        (
            &["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
            "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace",
        ),
        (
            &["--ulimit", "nofile=1048577:99999999999"],
            "is above the daemon's own hard limit",
        ),
    ] {
        let mut full = vec!["create"];
        full.extend_from_slice(args);
        full.push(IMG);
        let o = d.docker(&full);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(err(&o).contains(message), "{args:?}: {}", err(&o));
    }
    // A kernel memory limit is never applied: Docker's warnings, and the container.
    let body = format!(r#"{{"Image":"{IMG}","HostConfig":{{"KernelMemory":67108864}}}}"#);
    let r = d.request(
        "POST",
        "/containers/create",
        Some(("application/json", body.as_bytes())),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let warnings = r.json()["Warnings"].to_string();
    assert!(
        warnings.contains("Specifying a kernel memory limit is deprecated"),
        "{warnings}"
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]).lines().count(), 1);
}

#[test]
fn a_memory_hog_is_oom_killed_and_said_so() {
    let d = daemon_with_busybox();
    let o = d.docker(&[
        "run",
        "--name",
        "hog",
        "-m",
        "32m",
        IMG,
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", err(&o));
    assert_eq!(
        field(&d, "hog", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
    let events = events_so_far(&d, &["container=hog"], "{{.Action}}");
    let actions: Vec<&str> = events.lines().collect();
    let oom = actions.iter().position(|a| *a == "oom");
    let die = actions.iter().position(|a| *a == "die");
    assert!(oom.is_some() && oom < die, "{actions:?}");
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "bomb",
        "--pids-limit",
        "20",
        IMG,
        "sleep",
        "1000",
    ]);
    // Forks until the kernel refuses (the shell then gives up).
    let o = d.docker(&[
        "exec",
        "bomb",
        "sh",
        "-c",
        "while true; do sleep 1000 & done",
    ]);
    assert!(!o.status.success());
    assert!(err(&o).contains("can't fork"), "{}", err(&o));
    let current = cgroup_file(&d, "bomb", "pids", "pids.current", "pids.current");
    let n: u32 = read(&current).parse().unwrap();
    assert!(n <= 20, "{n} processes under a limit of 20");
    // The container's own process is unharmed.
    assert_eq!(field(&d, "bomb", "{{.State.Running}}"), "true");
}

#[test]
fn update_changes_limits_of_running_and_stopped_containers() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run", "-d", "--name", "up", "-m", "64m", "--cpus", "1", IMG, "sleep", "1000",
    ]);
    d.docker_ok(&[
        "update",
        "-m",
        "100m",
        "--memory-swap",
        "300m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "up",
    ]);
    let f = |c: &str, v1f: &str, v2f: &str| read(&cgroup_file(&d, "up", c, v1f, v2f));
    if v1() {
        assert_eq!(f("memory", "memory.limit_in_bytes", ""), "104857600");
        assert_eq!(f("cpu", "cpu.cfs_quota_us", ""), "50000");
    } else {
        assert_eq!(f("", "", "memory.max"), "104857600");
        assert_eq!(f("", "", "cpu.max"), "50000 100000");
    }
    assert_eq!(f("pids", "pids.max", "pids.max"), "50");
    assert_eq!(
        field(
            &d,
            "up",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"
        ),
        "104857600 314572800 500000000 50"
    );
    // Docker's conflicts.
    let o = d.docker(&["update", "--cpu-quota", "50000", "up"]);
    assert!(
        err(&o).contains("CPU Quota cannot be updated as NanoCPUs has already been set"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["update", "-m", "400m", "up"]);
    assert!(
        err(&o).contains("Memory limit should be smaller than already set memoryswap limit"),
        "{}",
        err(&o)
    );

    // Stopped: recorded, applied at the next start, kept by a daemon restart.
    d.docker_ok(&["stop", "-t", "1", "up"]);
    d.docker_ok(&["update", "-m", "200m", "--memory-swap", "400m", "up"]);
    let d = d.restart();
    d.docker_ok(&["start", "up"]);
    let limit = if v1() {
        read(&cgroup_file(
            &d,
            "up",
            "memory",
            "memory.limit_in_bytes",
            "",
        ))
    } else {
        read(&cgroup_file(&d, "up", "", "", "memory.max"))
    };
    assert_eq!(limit, "209715200");
}

/// A counter the container writes ten times a second.
const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done";

#[test]
fn pause_freezes_and_unpause_thaws() {
    let d = daemon_with_busybox();
    d.docker_ok(&["run", "-d", "--name", "pz", IMG, "sh", "-c", COUNTER]);
    let count = |d: &Daemon| -> u64 {
        let pid = field(d, "pz", "{{.State.Pid}}");
        std::fs::read_to_string(format!("/proc/{pid}/root/tmp/n"))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0)
    };
    wait_for("the counter to run", &d, || count(&d) > 2);
    d.docker_ok(&["pause", "pz"]);
    assert_eq!(
        field(
            &d,
            "pz",
            "{{.State.Status}} {{.State.Running}} {{.State.Paused}}"
        ),
        "paused true true"
    );
    let ps = d.docker_ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.trim().ends_with("(Paused)"), "{ps}");
    let frozen = count(&d);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(count(&d), frozen, "the counter moved while paused");

    let o = d.docker(&["exec", "pz", "true"]);
    assert!(
        err(&o).contains("Container pz is paused, unpause the container before exec"),
        "{}",
        err(&o)
    );
    let id = field(&d, "pz", "{{.Id}}");
    let o = d.docker(&["pause", "pz"]);
    assert!(
        err(&o).contains(&format!("Container {id} is already paused")),
        "{}",
        err(&o)
    );
    d.docker_ok(&["unpause", "pz"]);
    wait_for("the counter to move again", &d, || count(&d) > frozen);
    let o = d.docker(&["unpause", "pz"]);
    assert!(
        err(&o).contains(&format!("Container {id} is not paused")),
        "{}",
        err(&o)
    );

    // A signal other than SIGKILL thaws it (so it can be handled); stop works.
    d.docker_ok(&["pause", "pz"]);
    d.docker_ok(&["kill", "-s", "USR1", "pz"]);
    assert_eq!(field(&d, "pz", "{{.State.Paused}}"), "false");
    d.docker_ok(&["pause", "pz"]);
    d.docker_ok(&["stop", "-t", "1", "pz"]);
    assert_eq!(
        field(&d, "pz", "{{.State.Status}} {{.State.Paused}}"),
        "exited false"
    );
    let events = events_so_far(&d, &["event=pause", "event=unpause"], "{{.Action}}");
    assert!(
        events.starts_with("pause\nunpause\npause\nunpause\npause"),
        "{events}"
    );

    // SIGKILL ends a paused container (no unpause is told), and so does rm -f.
    d.docker_ok(&["start", "pz"]);
    d.docker_ok(&["pause", "pz"]);
    d.docker_ok(&["kill", "pz"]);
    assert_eq!(
        field(
            &d,
            "pz",
            "{{.State.Status}} {{.State.ExitCode}} {{.State.Paused}}"
        ),
        "exited 137 false"
    );
    d.docker_ok(&["start", "pz"]);
    d.docker_ok(&["pause", "pz"]);
    d.docker_ok(&["rm", "-f", "pz"]);
    let events = events_so_far(&d, &["event=pause", "event=unpause"], "{{.Action}}");
    // The last two pauses were followed by no unpause.
    assert!(events.ends_with("unpause\npause\npause\n"), "{events}");
}

#[test]
fn info_reports_what_the_host_can_limit() {
    let d = daemon_with_busybox();
    let info = d.docker_ok(&[
        "info",
        "-f",
        "{{.MemoryLimit}} {{.CPUCfsQuota}} {{.CPUShares}} {{.PidsLimit}} {{.CPUSet}}",
    ]);
    assert_eq!(
        info.trim(),
        "true true true true true",
        "this host has these"
    );
}

#[test]
fn stats_match_the_cgroup_and_the_cli_columns() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-m",
        "300m",
        "--pids-limit",
        "10",
        IMG,
        "sh",
        "-c",
        "while true; do :; done",
    ]);
    d.docker_ok(&["create", "--name", "idle", IMG]);

    // The CLI's columns: a busy loop is most of a CPU, the limit is the one set.
    let row = d.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}",
    ]);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[0], "busy", "{row}");
    let cpu: f64 = cols[1].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 50.0 && cpu < 110.0, "{row}");
    assert_eq!(cols[4], "300MiB", "{row}");
    assert_eq!(cols[5], "1", "{row}");

    // The document, against the cgroup files.
    let r = d.request("GET", "/containers/busy/stats?stream=false", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let s = r.json();
    assert_eq!(s["name"], "/busy");
    assert_eq!(s["memory_stats"]["limit"], 300u64 << 20);
    let usage = s["memory_stats"]["usage"].as_u64().unwrap();
    let file = if v1() {
        cgroup_file(&d, "busy", "memory", "memory.usage_in_bytes", "")
    } else {
        cgroup_file(&d, "busy", "", "", "memory.current")
    };
    let now: u64 = read(&file).parse().unwrap();
    assert!(
        usage > 0 && usage < 64 << 20 && now < 64 << 20,
        "{usage} {now}"
    );
    assert_eq!(s["pids_stats"]["current"], 1);
    assert_eq!(s["pids_stats"]["limit"], 10);
    let total = s["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap();
    let pre = s["precpu_stats"]["cpu_usage"]["total_usage"]
        .as_u64()
        .unwrap();
    assert!(total > pre && pre > 0, "{total} {pre}");
    assert!(s["networks"]["eth0"]["rx_bytes"].is_u64(), "{s}");
    // The next single document measures from this one's sample (read moments ago).
    let r = d.request("GET", "/containers/busy/stats?stream=false", None);
    let next = r.json();
    assert_eq!(next["preread"], s["read"], "{next}");
    assert_eq!(next["precpu_stats"], s["cpu_stats"]);

    // one-shot: at once, no earlier sample.
    let r = d.request(
        "GET",
        "/containers/busy/stats?stream=false&one-shot=true",
        None,
    );
    let s = r.json();
    assert_eq!(s["preread"], "0001-01-01T00:00:00Z");
    assert_eq!(s["precpu_stats"]["cpu_usage"]["total_usage"], 0);
    let r = d.request(
        "GET",
        "/containers/busy/stats?stream=true&one-shot=true",
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "cannot have stream=true and one-shot=true"
    );
    // Not running: Docker's empty document.
    let s = d
        .request("GET", "/containers/idle/stats?stream=false", None)
        .json();
    assert_eq!(s["read"], "0001-01-01T00:00:00Z");
    assert_eq!(s["memory_stats"], serde_json::json!({}));

    // A stream: each document's precpu is the one before's cpu.
    let mut conn =
        std::os::unix::net::UnixStream::connect(d.host().strip_prefix("unix://").unwrap()).unwrap();
    use std::io::{BufRead, Write};
    write!(
        conn,
        "GET /containers/busy/stats HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(conn);
    let mut docs = Vec::new();
    let mut line = String::new();
    while docs.len() < 2 && reader.read_line(&mut line).unwrap() > 0 {
        // Documents between the chunk sizes of the chunked body.
        if let Ok(v @ serde_json::Value::Object(_)) = serde_json::from_str(line.trim()) {
            docs.push(v);
        }
        line.clear();
    }
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["precpu_stats"], docs[0]["cpu_stats"]);
    assert_eq!(docs[1]["preread"], docs[0]["read"]);
}

#[test]
fn group_add_by_number_and_name() {
    let d = daemon_with_busybox();
    let ids = d.docker_ok(&[
        "run",
        "--rm",
        "--group-add",
        "12345",
        "--group-add",
        "staff",
        IMG,
        "id",
        "-G",
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert!(ids.contains(&"12345") && ids.contains(&"50"), "{ids:?}");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "grp",
        "--group-add",
        "staff",
        IMG,
        "sleep",
        "1000",
    ]);
    let exec = d.docker_ok(&["exec", "grp", "id", "-G"]);
    assert!(exec.split_whitespace().any(|g| g == "50"), "{exec}");
    let o = d.docker(&["run", "--rm", "--group-add", "nosuch", IMG, "true"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("Unable to find group nosuch: no matching entries in group file"),
        "{}",
        err(&o)
    );
}

#[test]
fn cgroup_parent_places_the_container() {
    let d = daemon_with_busybox();
    let parent = format!("dockerd-test-{}", std::process::id());
    let nested = format!("/{parent}/sub");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "cp",
        "--cgroup-parent",
        &nested,
        "--pids-limit",
        "30",
        IMG,
        "sleep",
        "1000",
    ]);
    let id = field(&d, "cp", "{{.Id}}");
    let pid = field(&d, "cp", "{{.State.Pid}}");
    let dir = if v1() {
        PathBuf::from(format!("/sys/fs/cgroup/pids{nested}/{id}"))
    } else {
        PathBuf::from(format!("/sys/fs/cgroup{nested}/{id}"))
    };
    assert!(
        read(&dir.join("cgroup.procs")).lines().any(|l| l == pid),
        "{} does not hold {pid}",
        dir.display()
    );
    assert_eq!(read(&dir.join("pids.max")), "30");
    assert_eq!(field(&d, "cp", "{{.HostConfig.CgroupParent}}"), nested);
    // What works on the container's cgroup finds it there.
    assert!(d.docker_ok(&["top", "cp"]).contains("sleep 1000"));
    let pids = d.docker_ok(&["stats", "--no-stream", "--format", "{{.PIDs}}", "cp"]);
    assert_eq!(pids.trim(), "1");
    d.docker_ok(&["pause", "cp"]);
    d.docker_ok(&["unpause", "cp"]);
    d.docker_ok(&["rm", "-f", "cp"]);
    assert!(!dir.exists(), "{} stayed", dir.display());
    // The parents stay, as with Docker; this test removes its own.
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(&parent).join("sub"));
        let _ = std::fs::remove_dir(h.path().join(&parent));
    }
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&parent).join("sub"));
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&parent));

    let o = d.docker(&["create", "--cgroup-parent", "../escape", IMG]);
    assert!(!o.status.success());
    assert!(err(&o).contains("invalid cgroup parent"), "{}", err(&o));
}

/// A device node on the host with a number no driver answers to (240 is for local
/// use): opening it gives ENXIO when the device cgroup lets the container use it,
/// EPERM when not.
fn make_test_node(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(240, 7)) },
        0,
        "mknod {}",
        path.display()
    );
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&path, Some(1234), Some(5)).unwrap();
    path
}

const NOT_PERMITTED: &str = "Operation not permitted";
const NO_DEVICE: &str = "No such device or address";

#[test]
fn devices_are_made_and_allowed() {
    let d = daemon_with_busybox();
    let dir = d.path("devs");
    let node = make_test_node(&dir.join("sub"), "node");
    let node = node.to_str().unwrap();
    let run = |args: &[&str], script: &str| -> String {
        let mut full = vec!["run", "--rm"];
        full.extend_from_slice(args);
        full.extend_from_slice(&[IMG, "sh", "-c", script]);
        let o = d.docker(&full);
        format!("{}{}", out(&o), err(&o))
    };

    // The node, with the host's mode and owner; reading and writing reach the
    // (absent) driver.
    let mapped = format!("{node}:/dev/mine");
    let o = run(
        &["--device", &mapped],
        "ls -ln /dev/mine; cat /dev/mine; echo x > /dev/mine",
    );
    let listing = o.lines().next().unwrap_or("");
    assert!(
        listing.starts_with("crw-r-----")
            && listing.contains("1234")
            && listing.contains("240,   7"),
        "{o}"
    );
    assert_eq!(o.matches(NO_DEVICE).count(), 2, "{o}");
    assert!(!o.contains(NOT_PERMITTED), "{o}");

    // Read-only permissions: a write is refused by the device cgroup.
    let ro = format!("{node}:/dev/mine:r");
    let o = run(&["--device", &ro], "cat /dev/mine; echo x > /dev/mine");
    assert!(o.contains(NO_DEVICE) && o.contains(NOT_PERMITTED), "{o}");

    // A directory maps every node under it.
    let whole = format!("{}:/dev/set", dir.display());
    let o = run(&["--device", &whole], "cat /dev/set/sub/node");
    assert!(o.contains(NO_DEVICE), "{o}");

    // Without a rule, a node the container makes itself is unusable; a rule opens it.
    let script = "mknod /dev/own c 240 9 && cat /dev/own";
    let o = run(&[], script);
    assert!(o.contains(NOT_PERMITTED), "{o}");
    let o = run(&["--device-cgroup-rule", "c 240:* rw"], script);
    assert!(o.contains(NO_DEVICE) && !o.contains(NOT_PERMITTED), "{o}");

    // Inspect keeps what was asked for.
    d.docker_ok(&[
        "create",
        "--name",
        "withdev",
        "--device",
        &mapped,
        "--device-cgroup-rule",
        "c 240:* rw",
        IMG,
    ]);
    assert_eq!(
        field(&d, "withdev", "{{json .HostConfig.Devices}}"),
        format!(
            r#"[{{"PathOnHost":"{node}","PathInContainer":"/dev/mine","CgroupPermissions":"rwm"}}]"#
        )
    );
    assert_eq!(
        field(&d, "withdev", "{{json .HostConfig.DeviceCgroupRules}}"),
        r#"["c 240:* rw"]"#
    );

    // A missing host device fails the start in Docker's words, and a bad rule the
    // create.
    let o = d.docker(&["run", "--rm", "--device", "/dev/no-such-node", IMG, "true"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(
            "error gathering device information while adding custom device \"/dev/no-such-node\": no such file or directory"
        ),
        "{}",
        err(&o)
    );
    let r = d.request(
        "POST",
        "/containers/create",
        Some((
            "application/json",
            format!(r#"{{"Image":"{IMG}","HostConfig":{{"DeviceCgroupRules":["c 1:1  rwm"]}}}}"#)
                .as_bytes(),
        )),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "invalid device cgroup rule format: 'c 1:1  rwm'"
    );
}

/// The container's line of /proc/self/cgroup for the pids controller (v1) or the
/// unified hierarchy (v2).
fn own_cgroup(d: &Daemon, args: &[&str]) -> String {
    let mut full = vec!["run", "--rm"];
    full.extend_from_slice(args);
    full.extend_from_slice(&[IMG, "cat", "/proc/self/cgroup"]);
    let o = d.docker_ok(&full);
    let want = if v1() { ":pids:" } else { "0::" };
    o.lines()
        .find(|l| l.contains(want))
        .unwrap_or_else(|| panic!("no {want} line in {o}"))
        .to_string()
}

#[test]
fn cgroupns_private_and_host() {
    let d = daemon_with_busybox();
    assert!(own_cgroup(&d, &[]).ends_with(":/"));
    assert!(own_cgroup(&d, &["--cgroupns", "private"]).ends_with(":/"));
    let host = own_cgroup(&d, &["--cgroupns", "host"]);
    assert!(host.contains("/docker/"), "{host}");
    d.docker_ok(&["create", "--name", "ns-default", IMG]);
    assert_eq!(
        field(&d, "ns-default", "{{.HostConfig.CgroupnsMode}}"),
        "private"
    );
    d.docker_ok(&["create", "--name", "ns-host", "--cgroupns", "host", IMG]);
    assert_eq!(field(&d, "ns-host", "{{.HostConfig.CgroupnsMode}}"), "host");
    let r = d.request(
        "POST",
        "/containers/create",
        Some((
            "application/json",
            format!(r#"{{"Image":"{IMG}","HostConfig":{{"CgroupnsMode":"shared"}}}}"#).as_bytes(),
        )),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "invalid cgroup namespace mode: shared");
    assert!(
        d.docker_ok(&["info", "--format", "{{json .SecurityOptions}}"])
            .contains("name=cgroupns")
    );
}

#[test]
fn daemon_defaults_for_containers() {
    let parent = format!("dockerd-test-defaults-{}", std::process::id());
    let d = Daemon::builder()
        .config(&format!(
            r#"{{"default-ulimits": {{"nofile": {{"Name": "nofile", "Soft": 123, "Hard": 456}}}},
                "default-shm-size": "2m", "cgroup-parent": "{parent}", "default-cgroupns-mode": "host"}}"#
        ))
        .start();
    d.import_busybox(IMG);
    d.docker_ok(&["run", "-d", "--name", "dflt", IMG, "sleep", "1000"]);
    let id = field(&d, "dflt", "{{.Id}}");
    assert_eq!(
        d.docker_ok(&["exec", "dflt", "sh", "-c", "ulimit -n; ulimit -Hn"]),
        "123\n456\n"
    );
    let shm = d.docker_ok(&["exec", "dflt", "df", "-k", "/dev/shm"]);
    assert!(
        shm.lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("2048")),
        "{shm}"
    );
    assert_eq!(field(&d, "dflt", "{{.HostConfig.ShmSize}}"), "2097152");
    assert_eq!(field(&d, "dflt", "{{.HostConfig.CgroupnsMode}}"), "host");
    // Docker keeps the container's own CgroupParent empty.
    assert_eq!(field(&d, "dflt", "{{.HostConfig.CgroupParent}}"), "");
    let line = d.docker_ok(&["exec", "dflt", "cat", "/proc/self/cgroup"]);
    assert!(line.contains(&format!("/{parent}/{id}")), "{line}");
    let pids_dir = if v1() {
        PathBuf::from(format!("/sys/fs/cgroup/pids/{parent}/{id}"))
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/{parent}/{id}"))
    };
    assert!(pids_dir.is_dir(), "{}", pids_dir.display());
    assert_eq!(
        d.docker_ok(&["stats", "--no-stream", "--format", "{{.PIDs}}", "dflt"])
            .trim(),
        "1"
    );
    // The container's own settings win.
    assert_eq!(
        d.docker_ok(&[
            "run", "--rm", "--ulimit", "nofile=50:60", "--shm-size", "1m", "--cgroupns", "private", IMG,
            "sh", "-c", "ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1 | awk '{print $2}'; grep -c ':/$' /proc/self/cgroup >/dev/null && echo private",
        ]),
        "50\n60\n1024\nprivate\n"
    );
    assert!(
        !d.docker_ok(&["info", "--format", "{{json .SecurityOptions}}"])
            .contains("name=cgroupns")
    );
    d.docker_ok(&["rm", "-f", "dflt"]);
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(&parent));
    }
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&parent));
}
