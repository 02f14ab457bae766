//! Measures how long the container monitor takes to run `true` end to end (spawn the
//! monitor, namespaces, cgroups, mounts, exec, exit, exit record), the runtime part of
//! `docker run --rm IMG true`.
//!
//! Run as root: `cargo run --release --example monitor_bench -- [ROOTFS] [N]`; ROOTFS
//! defaults to a busybox tree built from `/bin/busybox` (`apt-get install -y
//! busybox-static`), N to 50.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dockerd::init::spec::{ContainerSpec, LogSpec, Namespace, NetworkMode, Shm};
use dockerd::runtime::{Runtime, defaults};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tmp = std::env::temp_dir().join(format!("monitor-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("create a temporary directory");
    let rootfs = match args.get(1) {
        Some(p) => PathBuf::from(p),
        None => busybox_rootfs(&tmp.join("rootfs")),
    };
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("dockerd")))
        .filter(|p| p.exists())
        .expect("build the dockerd binary first (cargo build --release)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runtime = Runtime::new(&tmp.join("exec")).with_monitor_exe(&exe);
    let mut times = Vec::new();
    for i in 0..n {
        let id = format!(
            "{:064x}",
            u128::from(std::process::id()) << 32 | u128::from(i)
        );
        let spec = spec(&id, &rootfs, &tmp);
        let t0 = Instant::now();
        rt.block_on(async {
            runtime.start(spec, Vec::new()).await.expect("start");
            let rec = runtime.wait(&id).await;
            assert_eq!(rec.exit_code, 0);
        });
        times.push(t0.elapsed());
        runtime.remove_state(&id);
    }
    times.sort();
    let sum: Duration = times.iter().sum();
    println!(
        "run `true` x{n}: mean {:.2} ms, median {:.2} ms, min {:.2} ms, max {:.2} ms",
        ms(sum / n),
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    let _ = std::fs::remove_dir_all(&tmp);
    if let Ok(hierarchies) = dockerd::init::cgroup::detect() {
        for h in hierarchies {
            let _ = std::fs::remove_dir(h.mount_point.join("dockerd-bench"));
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn spec(id: &str, rootfs: &Path, tmp: &Path) -> ContainerSpec {
    ContainerSpec {
        id: id.to_string(),
        rootfs: rootfs.to_path_buf(),
        readonly_rootfs: false,
        args: vec!["true".into()],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        cwd: "/".into(),
        user: String::new(),
        hostname: id[..12].to_string(),
        domainname: String::new(),
        tty: false,
        open_stdin: false,
        stdin_once: false,
        console_size: None,
        network: if std::env::var_os("BENCH_HOST_NET").is_some() {
            NetworkMode::Host
        } else {
            NetworkMode::Private
        },
        pid: Namespace::Private,
        ipc: Namespace::Private,
        uts: Namespace::Private,
        shm: Shm::default(),
        privileged: false,
        capabilities: defaults::default_capabilities(),
        masked_paths: defaults::default_masked_paths(),
        readonly_paths: defaults::default_readonly_paths(),
        mounts: Vec::new(),
        init: false,
        cgroup_path: format!("dockerd-bench/{id}"),
        log: LogSpec {
            driver: "json-file".into(),
            path: tmp.join(format!("{id}-json.log")),
            max_size: None,
            max_file: 1,
            journal_fields: Vec::new(),
        },
        state_dir: PathBuf::new(),
        initial_attach: Vec::new(),
        exec_in: None,
        systemd_scope: false,
        resources: Default::default(),
        oom_score_adj: 0,
        rlimits: Vec::new(),
        group_add: Vec::new(),
        sysctls: Vec::new(),
        devices: Vec::new(),
        device_rules: Vec::new(),
        cgroupns_host: false,
        seccomp: None,
        no_new_privileges: false,
        apparmor_profile: None,
    }
}

fn busybox_rootfs(root: &Path) -> PathBuf {
    assert!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing: apt-get install -y busybox-static"
    );
    std::fs::create_dir_all(root.join("bin")).expect("create rootfs");
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "true"] {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
    root.to_path_buf()
}
