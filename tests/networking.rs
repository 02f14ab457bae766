//! Container networking end to end: the real docker CLI against the built daemon,
//! real bridges, veth pairs, iptables and published ports. Every daemon runs in a
//! network namespace of its test (its "host"); "another host" is a second
//! namespace joined to it by a veth pair. The machine's own interfaces and firewall
//! are never touched.

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const IMG: &str = "test/busybox:1";

/// Serves `/www/index.html` (saying `hello from NAME`) on port 80.
const HTTPD: &str = "mkdir -p /www && echo \"hello from $HOSTNAME\" > /www/index.html && exec httpd -f -p 80 -h /www";

fn daemon() -> Daemon {
    daemon_with("")
}

fn daemon_with(config: &str) -> Daemon {
    require_tool("iptables-save", "apt-get install -y iptables");
    let d = Daemon::builder().config(config).start();
    d.import_busybox(IMG);
    d
}

fn ip_of(d: &Daemon, name: &str, network: &str) -> String {
    inspect(d, name)["NetworkSettings"]["Networks"][network]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Runs a web server container and waits until it answers on its address.
fn web(d: &Daemon, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMG, "sh", "-c", HTTPD]);
    let id = d.docker_ok(&args).trim().to_string();
    let v = inspect(d, &id);
    let ip = v["NetworkSettings"]["Networks"]
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|e| e["IPAddress"].as_str())
        .unwrap_or_default()
        .to_string();
    if !ip.is_empty() {
        wait_for("the web server", d, || {
            d.http_get_from_host(&format!("http://{ip}/")).is_some()
        });
    }
    id
}

/// A second machine on the daemon's "host" network: a namespace with `eth1`
/// (10.99.0.2/24) wired to the host's `vother` (10.99.0.1/24).
struct OtherHost {
    netns: PathBuf,
}

impl OtherHost {
    fn new(d: &Daemon) -> OtherHost {
        let netns = d.path("other.netns");
        dockerd::net::netns::create(&netns).unwrap();
        let run = |ns: &Path, args: &[&str]| {
            let mut c = std::process::Command::new("ip");
            c.args(args);
            in_netns(&mut c, ns);
            let o = c.output().unwrap();
            assert!(o.status.success(), "ip {args:?}: {}", err(&o));
        };
        let other = netns.to_str().unwrap();
        run(
            &d.netns,
            &[
                "link", "add", "vother", "type", "veth", "peer", "name", "eth1", "netns", other,
            ],
        );
        run(&d.netns, &["addr", "add", "10.99.0.1/24", "dev", "vother"]);
        run(&d.netns, &["link", "set", "vother", "up"]);
        run(&netns, &["addr", "add", "10.99.0.2/24", "dev", "eth1"]);
        run(&netns, &["link", "set", "eth1", "up"]);
        OtherHost { netns }
    }

    fn get(&self, url: &str) -> Option<String> {
        let mut c = std::process::Command::new("timeout");
        c.args(["2", "/bin/busybox", "wget", "-q", "-O-", url]);
        in_netns(&mut c, &self.netns);
        let o = c.output().unwrap();
        o.status.success().then(|| out(&o))
    }
}

#[test]
fn the_default_bridge_gives_containers_an_address_a_route_and_the_outside() {
    let d = daemon();
    let other = OtherHost::new(&d);
    // A server on the other host, reachable from containers only through the
    // daemon's forwarding and masquerading (the other host has no route back to
    // 172.17.0.0/16).
    let mut c = std::process::Command::new("/bin/busybox");
    let www = d.path("other-www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "from the other host\n").unwrap();
    c.args([
        "httpd",
        "-f",
        "-p",
        "10.99.0.2:8000",
        "-h",
        www.to_str().unwrap(),
    ]);
    in_netns(&mut c, &other.netns);
    let mut server = c.spawn().unwrap();

    let o = d.docker_ok(&[
        "run", "--rm", "--name", "probe", IMG, "sh", "-c",
        "ip -4 -o addr show eth0; ip route; grep -v localhost /etc/hosts | grep -v ip6; sleep 0.2; wget -q -O- http://10.99.0.2:8000/",
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(o.contains("inet 172.17.0."), "{o}");
    assert!(o.contains("default via 172.17.0.1 dev eth0"), "{o}");
    assert!(o.contains("from the other host"), "{o}");
    assert!(
        o.lines()
            .any(|l| l.starts_with("172.17.0.") && l.contains('\t')),
        "the container's own address is in /etc/hosts: {o}"
    );

    let net: Value = serde_json::from_str(&d.docker_ok(&["network", "inspect", "bridge"])).unwrap();
    let n = &net[0];
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "172.17.0.1");
    assert_eq!(n["Options"]["com.docker.network.bridge.name"], "docker0");
    assert_eq!(
        n["Options"]["com.docker.network.bridge.default_bridge"],
        "true"
    );
    let id = d
        .docker_ok(&["run", "-d", IMG, "sleep", "300"])
        .trim()
        .to_string();
    let net: Value = serde_json::from_str(&d.docker_ok(&["network", "inspect", "bridge"])).unwrap();
    let entry = &net[0]["Containers"][&id];
    assert!(
        entry["IPv4Address"].as_str().unwrap().ends_with("/16"),
        "{entry}"
    );
    assert!(
        entry["MacAddress"]
            .as_str()
            .unwrap()
            .starts_with("02:42:ac:11:"),
        "{entry}"
    );
    let v = inspect(&d, &id);
    assert_eq!(v["NetworkSettings"]["Gateway"], "172.17.0.1");
    assert!(
        v["NetworkSettings"]["SandboxKey"]
            .as_str()
            .unwrap()
            .contains("/netns/")
    );

    let info: Value =
        serde_json::from_str(&d.docker_ok(&["info", "--format", "{{json .}}"])).unwrap();
    assert_eq!(info["Swarm"]["LocalNodeState"], "inactive");
    assert!(
        !info["Warnings"].to_string().contains("bridge"),
        "{}",
        info["Warnings"]
    );
    let fw = d.iptables_save();
    for rule in [
        "-A FORWARD -j DOCKER-USER",
        "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
        "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
    ] {
        assert!(fw.contains(rule), "missing {rule}:\n{fw}");
    }
    let forward: Vec<&str> = fw.lines().filter(|l| l.starts_with("-A FORWARD")).collect();
    assert_eq!(
        forward[0], "-A FORWARD -j DOCKER-USER",
        "DOCKER-USER comes first"
    );
}

#[test]
fn published_ports_answer_on_loopback_on_the_host_address_and_from_another_host() {
    let d = daemon();
    let other = OtherHost::new(&d);
    let id = web(&d, &["--name", "web", "-p", "8080:80"]);
    let short = &id[..12];
    for url in [
        "http://127.0.0.1:8080/",
        "http://localhost:8080/",
        "http://10.99.0.1:8080/",
    ] {
        let body = d.http_get_from_host(url);
        assert_eq!(
            body.as_deref(),
            Some(format!("hello from {short}\n").as_str()),
            "{url}"
        );
    }
    assert_eq!(
        other.get("http://10.99.0.1:8080/").as_deref(),
        Some(format!("hello from {short}\n").as_str()),
        "another host reaches the published port"
    );
    let port = d.docker_ok(&["port", "web", "80"]);
    assert!(port.lines().any(|l| l == "0.0.0.0:8080"), "{port}");
    let ps = d.docker_ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    let ports = &inspect(&d, "web")["NetworkSettings"]["Ports"]["80/tcp"];
    assert_eq!(ports[0]["HostIp"], "0.0.0.0");
    assert_eq!(ports[0]["HostPort"], "8080");

    // An ephemeral port on one address.
    web(&d, &["--name", "eph", "-p", "127.0.0.1::80"]);
    let port = d.docker_ok(&["port", "eph", "80"]);
    let addr = port.trim();
    assert!(addr.starts_with("127.0.0.1:"), "{port}");
    assert!(d.http_get_from_host(&format!("http://{addr}/")).is_some());
    assert!(
        d.http_get_from_host(&format!(
            "http://10.99.0.1:{}/",
            addr.rsplit(':').next().unwrap()
        ))
        .is_none(),
        "a port published on 127.0.0.1 is not on other addresses"
    );

    // A range, and -P with the image's EXPOSE.
    let tar = busybox_full_rootfs(d.dir.path());
    d.docker_ok(&[
        "import",
        "-c",
        "EXPOSE 80",
        "-c",
        "CMD [\"sh\"]",
        tar.to_str().unwrap(),
        "test/web:1",
    ]);
    d.docker_ok(&[
        "run", "-d", "--name", "two", "-p", "9000-9001:80-81", IMG, "sh", "-c",
        "mkdir -p /a /b && echo a > /a/index.html && echo b > /b/index.html && httpd -p 80 -h /a && exec httpd -f -p 81 -h /b",
    ]);
    wait_for("the ranged ports", &d, || {
        d.http_get_from_host("http://127.0.0.1:9001/").is_some()
    });
    assert_eq!(
        d.http_get_from_host("http://127.0.0.1:9000/").as_deref(),
        Some("a\n")
    );
    assert_eq!(
        d.http_get_from_host("http://127.0.0.1:9001/").as_deref(),
        Some("b\n")
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "all",
        "-P",
        "test/web:1",
        "sh",
        "-c",
        HTTPD,
    ]);
    let port = d.docker_ok(&["port", "all", "80/tcp"]);
    let first = port.lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("0.0.0.0:"),
        "-P publishes the image's exposed port: {port}"
    );
    wait_for("the -P port", &d, || {
        d.http_get_from_host(&format!("http://{first}/")).is_some()
    });

    // UDP, through the proxy (loopback) and the kernel (another host).
    let echo = static_c_binary(&d, "udpecho");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        "5353:5353/udp",
        "-v",
        &format!("{}:/udpecho:ro", echo.display()),
        IMG,
        "/udpecho",
        "5353",
    ]);
    wait_for("the UDP echo over loopback", &d, || {
        udp_round_trip(&d.netns, "127.0.0.1:5353", b"over loopback")
    });
    assert!(udp_round_trip(
        &other.netns,
        "10.99.0.1:5353",
        b"from another host"
    ));
}

/// Sends `payload` to `addr` from the namespace `netns` and checks it comes back.
fn udp_round_trip(netns: &Path, addr: &str, payload: &[u8]) -> bool {
    let sock = dockerd::net::netns::run_in(netns, || UdpSocket::bind("0.0.0.0:0")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    if sock.send_to(payload, addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    matches!(sock.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == payload)
}

#[test]
fn rules_in_docker_user_apply_first_and_survive_restarts() {
    let d = daemon();
    let other = OtherHost::new(&d);
    web(&d, &["--name", "web", "-p", "8087:80"]);
    assert!(other.get("http://10.99.0.1:8087/").is_some());
    // The host's own policy, in the chain Docker keeps for it.
    let o = d
        .host_cmd(
            "iptables",
            &["-I", "DOCKER-USER", "-s", "10.99.0.2", "-j", "DROP"],
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        other.get("http://10.99.0.1:8087/").is_none(),
        "DOCKER-USER is evaluated first"
    );
    assert!(
        d.http_get_from_host("http://10.99.0.1:8087/").is_some(),
        "others still get in"
    );
    let d = d.restart();
    let fw = d.iptables_save();
    assert!(
        fw.contains("-A DOCKER-USER -s 10.99.0.2/32 -j DROP"),
        "the daemon keeps the user's rules:\n{fw}"
    );
    let forward: Vec<&str> = fw.lines().filter(|l| l.starts_with("-A FORWARD")).collect();
    assert_eq!(forward[0], "-A FORWARD -j DOCKER-USER");
    assert_eq!(
        forward
            .iter()
            .filter(|l| **l == "-A FORWARD -j DOCKER-USER")
            .count(),
        1
    );
    assert!(other.get("http://10.99.0.1:8087/").is_none());
}

#[test]
fn a_taken_port_is_a_clear_error_that_leaves_nothing_behind() {
    let d = daemon();
    web(&d, &["--name", "first", "-p", "8080:80"]);
    let veths = |d: &Daemon| {
        let o = d.host_cmd("ip", &["-o", "link"]).output().unwrap();
        out(&o).lines().filter(|l| l.contains(": veth")).count()
    };
    let rules = |d: &Daemon| {
        d.iptables_save()
            .lines()
            .filter(|l| l.contains("DNAT"))
            .count()
    };
    let (veths_before, rules_before) = (veths(&d), rules(&d));
    let o = d.docker(&[
        "run", "-d", "--name", "second", "-p", "8080:80", IMG, "sleep", "300",
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("Bind for 0.0.0.0:8080 failed: port is already allocated"),
        "{}",
        err(&o)
    );
    assert_eq!(inspect(&d, "second")["State"]["Running"], false);
    assert_eq!(veths(&d), veths_before, "no interface left behind");
    assert_eq!(rules(&d), rules_before, "no rule left behind");
    let netns_files = std::fs::read_dir(d.exec_root().join("netns"))
        .unwrap()
        .count();
    assert_eq!(netns_files, 1, "only the running container has a namespace");

    // A port some other program of the host holds.
    let mut holder = d
        .host_cmd("/bin/busybox", &["nc", "-l", "-p", "9090"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let o = d.docker(&["run", "-d", "-p", "9090:80", IMG, "sleep", "300"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(!o.status.success());
    assert!(err(&o).contains("address already in use"), "{}", err(&o));
    assert_eq!(veths(&d), veths_before);
    // The first container still serves.
    assert!(d.http_get_from_host("http://127.0.0.1:8080/").is_some());
}

#[test]
fn user_networks_resolve_names_and_stay_apart() {
    let d = daemon();
    d.docker_ok(&["network", "create", "front"]);
    d.docker_ok(&["network", "create", "back"]);
    let id = d
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "db",
            "--network",
            "front",
            "--network-alias",
            "database",
            IMG,
            "sleep",
            "300",
        ])
        .trim()
        .to_string();
    let ip = ip_of(&d, "db", "front");
    assert!(
        ip.starts_with("172.18."),
        "the second network gets the next pool: {ip}"
    );
    for name in ["db", "database", &id[..12], "DB"] {
        let o = d.docker_ok(&["run", "--rm", "--network", "front", IMG, "nslookup", name]);
        assert!(o.contains(&format!("Address: {ip}")), "{name}: {o}");
    }
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        IMG,
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(o.contains("nameserver 127.0.0.11"), "{o}");
    assert!(o.contains("ndots:0"), "{o}");
    // Another network neither resolves nor reaches it.
    let o = d.docker(&["run", "--rm", "--network", "back", IMG, "nslookup", "db"]);
    assert!(!out(&o).contains(&ip), "{}", out(&o));
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "back",
        IMG,
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        &ip,
    ]);
    assert!(!o.status.success(), "networks are isolated from each other");
    let o = d.docker(&["run", "--rm", IMG, "ping", "-c", "1", "-W", "1", &ip]);
    assert!(
        !o.status.success(),
        "the default bridge is isolated from user networks"
    );
    // Containers on one network reach each other.
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "front",
        IMG,
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "db",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let net: Value = serde_json::from_str(&d.docker_ok(&["network", "inspect", "front"])).unwrap();
    assert_eq!(net[0]["Containers"][&id]["Name"], "db");
    assert_eq!(
        inspect(&d, "db")["NetworkSettings"]["Networks"]["front"]["DNSNames"],
        serde_json::json!(["db", "database", &id[..12]])
    );
}

#[test]
fn running_containers_connect_and_disconnect() {
    let d = daemon();
    d.docker_ok(&["network", "create", "n1"]);
    d.docker_ok(&["network", "create", "n2"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "--network",
        "n1",
        IMG,
        "sleep",
        "300",
    ]);
    d.docker_ok(&["network", "connect", "--alias", "other-name", "n2", "cc"]);
    let ip2 = ip_of(&d, "cc", "n2");
    assert!(!ip2.is_empty());
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "n2",
        IMG,
        "sh",
        "-c",
        "nslookup other-name; ping -c1 -W2 cc >/dev/null && echo reached",
    ]);
    assert!(o.contains(&format!("Address: {ip2}")), "{o}");
    assert!(o.contains("reached"), "{o}");
    let o = d.docker(&["network", "connect", "n2", "cc"]);
    assert!(
        err(&o).contains("already exists in network n2"),
        "{}",
        err(&o)
    );

    let o = d.docker(&["network", "rm", "n2"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("has active endpoints"), "{}", err(&o));

    d.docker_ok(&["network", "disconnect", "n2", "cc"]);
    assert!(inspect(&d, "cc")["NetworkSettings"]["Networks"]["n2"].is_null());
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "n2",
        IMG,
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        &ip2,
    ]);
    assert!(!o.status.success(), "the address is gone");
    let o = d.docker(&["network", "disconnect", "n2", "cc"]);
    assert!(
        err(&o).contains("is not connected to network n2"),
        "{}",
        err(&o)
    );
    d.docker_ok(&["network", "rm", "n2"]);

    // A stopped container's networks change for its next start.
    d.docker_ok(&[
        "create",
        "--name",
        "later",
        "--network",
        "n1",
        IMG,
        "ip",
        "-o",
        "-4",
        "addr",
    ]);
    d.docker_ok(&["network", "create", "n3"]);
    d.docker_ok(&["network", "connect", "n3", "later"]);
    d.docker_ok(&["start", "later"]);
    d.docker_ok(&["wait", "later"]);
    let logs = d.docker_ok(&["logs", "later"]);
    assert!(logs.contains("eth0") && logs.contains("eth1"), "{logs}");
}

#[test]
fn rules_links_and_namespaces_go_with_their_container_and_network() {
    let d = daemon();
    d.docker_ok(&["network", "create", "temp"]);
    let net_id = d
        .docker_ok(&["network", "inspect", "-f", "{{.Id}}", "temp"])
        .trim()
        .to_string();
    let bridge = format!("br-{}", &net_id[..12]);
    let id = web(&d, &["--network", "temp", "-p", "8081:80"]);
    let fw = d.iptables_save();
    assert!(fw.contains("--dport 8081 -j DNAT"), "{fw}");
    assert!(fw.contains(&bridge), "{fw}");
    let links = || out(&d.host_cmd("ip", &["-o", "link"]).output().unwrap());
    assert!(links().contains(&bridge));
    assert!(links().contains("veth"));

    d.docker_ok(&["rm", "-f", &id]);
    let fw = d.iptables_save();
    assert!(
        !fw.contains("8081"),
        "the port's rules went with the container:\n{fw}"
    );
    assert!(!links().contains("veth"), "{}", links());
    assert!(
        d.http_get_from_host("http://127.0.0.1:8081/").is_none(),
        "nothing listens any more"
    );
    let ns_left = std::fs::read_dir(d.exec_root().join("netns"))
        .unwrap()
        .count();
    assert_eq!(ns_left, 0);

    d.docker_ok(&["network", "rm", "temp"]);
    assert!(!d.iptables_save().contains(&bridge));
    assert!(!links().contains(&bridge));
}

#[test]
fn published_ports_and_names_survive_a_daemon_crash() {
    let mut d = daemon();
    d.docker_ok(&["network", "create", "n"]);
    let web_id = web(&d, &["--name", "web", "--network", "n", "-p", "8082:80"]);
    // Ends on its own a few seconds after the daemon is gone.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "brief",
        "-p",
        "8086:80",
        IMG,
        "sh",
        "-c",
        "httpd -p 80 -h /; sleep 4",
    ]);
    let client = d
        .docker_ok(&[
            "run", "-d", "--name", "client", "--network", "n", IMG, "sh", "-c",
            "while true; do if nslookup web >/dev/null 2>&1; then echo resolved; else echo failed; fi; sleep 0.3; done",
        ])
        .trim()
        .to_string();
    let log = d
        .data_root()
        .join("containers")
        .join(&client)
        .join(format!("{client}-json.log"));
    wait_for("the client's first lookup", &d, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("resolved"))
    });

    d.signal(libc::SIGKILL);
    let _ = d.child.wait();
    d.stopped = Some(std::process::ExitStatus::default());
    // No daemon: the port still answers and the name still resolves.
    let body = d.http_get_from_host("http://127.0.0.1:8082/");
    assert_eq!(
        body.as_deref(),
        Some(format!("hello from {}\n", &web_id[..12]).as_str())
    );
    let seen = std::fs::read_to_string(&log)
        .unwrap()
        .matches("resolved")
        .count();
    let start = Instant::now();
    loop {
        let now = std::fs::read_to_string(&log).unwrap();
        if now.matches("resolved").count() >= seen + 3 {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "lookups stopped without the daemon"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let d = d.restart();
    assert!(d.http_get_from_host("http://127.0.0.1:8082/").is_some());
    let o = d.docker_ok(&["run", "--rm", "--network", "n", IMG, "nslookup", "web"]);
    assert!(
        o.contains(&format!("Address: {}", ip_of(&d, "web", "n"))),
        "{o}"
    );
    let fw = d.iptables_save();
    assert_eq!(
        fw.matches("--dport 8082 -j DNAT").count(),
        1,
        "rules are not doubled:\n{fw}"
    );
    // A new container does not get an address in use.
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "n",
        IMG,
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(!o.contains(&format!("{}/", ip_of(&d, "web", "n"))), "{o}");
    d.docker_ok(&["rm", "-f", "web"]);
    assert!(!d.iptables_save().contains("8082"));
    assert!(!d.log().contains("panicked"));
}

#[test]
fn daemon_network_settings_take_effect() {
    let d = daemon_with(
        r#"{"bip": "10.123.0.1/24", "fixed-cidr": "10.123.0.128/25", "mtu": 1400,
            "dns": ["10.0.0.2"], "dns-search": ["corp.example"], "dns-opts": ["timeout:2"],
            "default-address-pools": [{"base": "10.200.0.0/16", "size": 24}],
            "icc": false, "userland-proxy": false}"#,
    );
    let o = d.docker_ok(&[
        "run",
        "--rm",
        IMG,
        "sh",
        "-c",
        "ip -o -4 addr show eth0; cat /sys/class/net/eth0/mtu; cat /etc/resolv.conf",
    ]);
    let addr = o.split_whitespace().nth(3).unwrap_or_default().to_string();
    let last: u8 = addr
        .trim_end_matches("/24")
        .rsplit('.')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        addr.starts_with("10.123.0.") && addr.ends_with("/24") && last >= 128,
        "{o}"
    );
    assert!(o.contains("\n1400\n"), "{o}");
    assert!(
        o.ends_with("search corp.example\nnameserver 10.0.0.2\noptions timeout:2\n"),
        "{o}"
    );
    d.docker_ok(&["network", "create", "pooled"]);
    let subnet = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
        "pooled",
    ]);
    assert_eq!(subnet.trim(), "10.200.0.0/24");

    // icc: false: containers of the default bridge do not reach each other.
    d.docker_ok(&["run", "-d", "--name", "peer", IMG, "sleep", "300"]);
    let peer = ip_of(&d, "peer", "bridge");
    let o = d.docker(&["run", "--rm", IMG, "ping", "-c", "1", "-W", "1", &peer]);
    assert!(!o.status.success(), "icc=false must isolate containers");
    let fw = d.iptables_save();
    assert!(
        fw.contains("-A FORWARD -i docker0 -o docker0 -j DROP"),
        "{fw}"
    );

    // userland-proxy: false: loopback is translated by the kernel.
    web(&d, &["--name", "web", "-p", "8085:80"]);
    assert!(d.http_get_from_host("http://127.0.0.1:8085/").is_some());
    assert!(
        fw.contains("-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER"),
        "{fw}"
    );
    let localnet = d
        .host_cmd("cat", &["/proc/sys/net/ipv4/conf/docker0/route_localnet"])
        .output()
        .unwrap();
    assert_eq!(out(&localnet).trim(), "1");
}

#[test]
fn bridge_none_leaves_containers_with_loopback_only() {
    let d = daemon_with(r#"{"bridge": "none", "iptables": false, "ip-masq": false}"#);
    assert_eq!(
        d.docker_ok(&["run", "--rm", IMG, "ls", "/sys/class/net"]),
        "lo\n"
    );
    assert_eq!(
        d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]),
        "host\nnone\n"
    );
    let links = out(&d.host_cmd("ip", &["-o", "link"]).output().unwrap());
    assert!(!links.contains("docker0"), "{links}");
}

#[test]
fn internal_networks_and_named_bridges() {
    let d = daemon();
    // 10.99.0.2: somewhere outside.
    let _outside = OtherHost::new(&d);
    d.docker_ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.88.0.0/24",
        "--ip-range",
        "10.88.0.64/26",
        "-o",
        "com.docker.network.bridge.name=br-inside",
        "inside",
    ]);
    let links = out(&d.host_cmd("ip", &["-o", "link"]).output().unwrap());
    assert!(links.contains("br-inside"), "{links}");
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "inside",
        IMG,
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(
        o.contains("inet 10.88.0.64/24") || o.contains("inet 10.88.0.65/24"),
        "addresses come from the range: {o}"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "inside",
        IMG,
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        "10.99.0.2",
    ]);
    assert!(
        !o.status.success(),
        "an internal network does not reach the outside"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        IMG,
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "10.99.0.2",
    ]);
    assert!(o.status.success(), "the default bridge does: {}", err(&o));
    let fw = d.iptables_save();
    assert!(
        fw.contains("-A DOCKER-ISOLATION-STAGE-1 ! -s 10.88.0.0/24 -o br-inside -j DROP"),
        "{fw}"
    );
    assert!(
        !fw.contains("-s 10.88.0.0/24 ! -o br-inside -j MASQUERADE"),
        "{fw}"
    );
}

/// The PIDs of a container's network proxies, from its `network.json`.
fn proxies_of(d: &Daemon, id: &str) -> Vec<i32> {
    let path = d
        .exec_root()
        .join("containers")
        .join(id)
        .join("network.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_i64)
        .map(|p| p as i32)
        .collect()
}

#[test]
fn a_lost_network_proxy_is_started_again_with_the_daemon() {
    let d = daemon();
    d.docker_ok(&["network", "create", "n"]);
    let web_id = web(&d, &["--name", "web", "--network", "n", "-p", "8088:80"]);
    let client = d
        .docker_ok(&[
            "run", "-d", "--name", "client", "--network", "n", IMG, "sh", "-c",
            "while true; do if nslookup web >/dev/null 2>&1; then echo resolved; else echo failed; fi; sleep 0.3; done",
        ])
        .trim()
        .to_string();
    for id in [&web_id, &client] {
        for pid in proxies_of(&d, id) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    wait_for("the port to go", &d, || {
        d.http_get_from_host("http://127.0.0.1:8088/").is_none()
    });
    wait_for("lookups to fail", &d, || {
        d.docker_ok(&["logs", "--tail", "1", "client"])
            .contains("failed")
    });
    let d = d.restart();
    wait_for("the port to come back", &d, || {
        d.http_get_from_host("http://127.0.0.1:8088/").is_some()
    });
    wait_for("lookups to work again", &d, || {
        d.docker_ok(&["logs", "--tail", "1", "client"])
            .contains("resolved")
    });
    assert!(
        d.log()
            .contains("started the container's network proxy again"),
        "{}",
        d.log()
    );
    d.docker_ok(&["rm", "-f", "web", "client"]);
    assert!(!d.iptables_save().contains("8088"));
}

#[test]
fn iptables_false_leaves_the_firewall_alone() {
    let d = daemon_with(r#"{"iptables": false, "ip-masq": false}"#);
    web(&d, &["--name", "web", "-p", "8083:80"]);
    let fw = d.iptables_save();
    assert!(!fw.contains("DOCKER"), "{fw}");
    assert!(!fw.lines().any(|l| l.starts_with("-A")), "{fw}");
    // The userland proxy still publishes the port.
    assert!(d.http_get_from_host("http://127.0.0.1:8083/").is_some());
}

#[test]
fn bad_network_requests_get_dockers_errors_and_change_nothing() {
    let d = daemon();
    d.docker_ok(&["network", "create", "--subnet", "172.30.0.0/16", "a"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--subnet", "172.30.1.0/24", "b"],
            "Pool overlaps with other one on this address space",
        ),
        (
            &["-d", "nosuchdriver", "d"],
            "plugin \"nosuchdriver\" not found",
        ),
        (&["a"], "network with name a already exists"),
        (
            &["bridge"],
            "operation is not permitted on predefined bridge network",
        ),
    ];
    for (args, want) in cases {
        let mut full = vec!["network", "create"];
        full.extend_from_slice(args);
        let o = d.docker(&full);
        assert!(!o.status.success(), "{args:?}");
        assert!(err(&o).contains(want), "{args:?}: {}", err(&o));
    }
    // The CLI checks the gateway itself; the daemon does too, in Docker's words.
    let r = d.request(
        "POST",
        "/networks/create",
        Some((
            "application/json",
            br#"{"Name":"c","IPAM":{"Config":[{"Subnet":"10.0.0.0/24","Gateway":"10.1.0.1"}]}}"#,
        )),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains(
            "invalid gateway 10.1.0.1: parent subnet 10.0.0.0/24 doesn't contain this address"
        ),
        "{}",
        r.text()
    );
    let names = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(names, "a\nbridge\nhost\nnone\n");
    let links = out(&d.host_cmd("ip", &["-o", "link"]).output().unwrap());
    assert_eq!(links.matches("br-").count(), 1, "{links}");

    let o = d.docker(&["network", "rm", "bridge"]);
    assert!(
        err(&o).contains("bridge is a pre-defined network and cannot be removed"),
        "{}",
        err(&o)
    );
    let r = d.request(
        "POST",
        "/containers/create",
        Some(("application/json", br#"{"Image":"test/busybox:1","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"99999"}]}}}"#)),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("invalid port specification"),
        "{}",
        r.text()
    );
    let o = d.docker(&["run", "--rm", "--ip", "172.17.0.99", IMG, "true"]);
    assert!(
        err(&o).contains("user specified IP address is supported on user defined networks only"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["run", "--rm", "--network", "nosuch", IMG, "true"]);
    assert!(err(&o).contains("network nosuch not found"), "{}", err(&o));
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]),
        "",
        "refused creates leave nothing"
    );
    let pruned = d.docker_ok(&["network", "prune", "-f"]);
    assert!(pruned.contains('a'), "{pruned}");
    assert_eq!(
        d.docker_ok(&["network", "ls", "-q", "--filter", "type=custom"]),
        ""
    );
}

#[test]
fn container_mode_hosts_dns_settings_and_fixed_addresses() {
    let d = daemon();
    d.docker_ok(&["run", "-d", "--name", "base", IMG, "sleep", "300"]);
    let base_ip = ip_of(&d, "base", "bridge");
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:base",
        IMG,
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(o.contains(&format!("inet {base_ip}/16")), "{o}");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "container:base",
        "-p",
        "80:80",
        IMG,
        "true",
    ]);
    assert!(
        err(&o)
            .contains("conflicting options: port publishing and the container type network mode"),
        "{}",
        err(&o)
    );

    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--add-host",
        "db.local:10.1.2.3",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "example.com",
        "--dns-option",
        "ndots:3",
        IMG,
        "cat",
        "/etc/hosts",
        "/etc/resolv.conf",
    ]);
    assert!(o.contains("10.1.2.3\tdb.local\n"), "{o}");
    assert!(o.contains("172.17.0.1\tgw\n"), "{o}");
    assert!(
        o.contains("search example.com\nnameserver 10.0.0.53\noptions ndots:3\n"),
        "{o}"
    );

    d.docker_ok(&["network", "create", "--subnet", "10.60.0.0/24", "fixed"]);
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        "10.60.0.50",
        "--mac-address",
        "02:42:0a:3c:00:aa",
        IMG,
        "ip",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(o.contains("inet 10.60.0.50/24"), "{o}");
    assert!(o.contains("02:42:0a:3c:00:aa"), "{o}");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        "10.61.0.5",
        IMG,
        "true",
    ]);
    assert!(
        err(&o).contains("no configured subnet or ip-range contain the IP address 10.61.0.5"),
        "{}",
        err(&o)
    );
}

#[test]
fn legacy_links_give_hosts_entries_and_environment() {
    let d = daemon();
    d.docker_ok(&[
        "run", "-d", "--name", "db", "--expose", "5432", "-e", "SECRET=x", IMG, "sleep", "300",
    ]);
    let ip = ip_of(&d, "db", "bridge");
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--name",
        "app",
        "--link",
        "db:mydb",
        IMG,
        "sh",
        "-c",
        "env | sort; cat /etc/hosts",
    ]);
    assert!(o.contains(&format!("MYDB_PORT=tcp://{ip}:5432")), "{o}");
    assert!(o.contains(&format!("MYDB_PORT_5432_TCP_ADDR={ip}")), "{o}");
    assert!(o.contains("MYDB_NAME=/app/mydb"), "{o}");
    assert!(o.contains("MYDB_ENV_SECRET=x"), "{o}");
    assert!(
        o.lines().any(|l| l.starts_with(&format!("{ip}\tmydb "))),
        "{o}"
    );
}

/// A DNS server for one name, on 127.0.0.1:53 in the daemon's namespace.
fn upstream_dns(d: &Daemon, name: &'static str, answer: Ipv4Addr) {
    let sock: UdpSocket =
        dockerd::net::netns::run_in(&d.netns, || UdpSocket::bind("127.0.0.1:53")).unwrap();
    std::thread::spawn(move || {
        use simple_dns::rdata::{A, RData};
        use simple_dns::{CLASS, Packet, ResourceRecord};
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let Ok(q) = Packet::parse(&buf[..n]) else {
                continue;
            };
            let mut reply = Packet::new_reply(q.id());
            for question in &q.questions {
                reply.questions.push(question.clone());
                if question.qname.to_string().trim_end_matches('.') == name
                    && question.qtype == simple_dns::QTYPE::TYPE(simple_dns::TYPE::A)
                {
                    reply.answers.push(ResourceRecord::new(
                        question.qname.clone(),
                        CLASS::IN,
                        60,
                        RData::A(A {
                            address: u32::from(answer),
                        }),
                    ));
                }
            }
            if let Ok(bytes) = reply.build_bytes_vec() {
                let _ = sock.send_to(&bytes, peer);
            }
        }
    });
}

#[test]
fn other_names_are_resolved_by_the_upstream_servers() {
    let d = daemon_with(r#"{"dns": ["127.0.0.1"]}"#);
    upstream_dns(&d, "outside.example", Ipv4Addr::new(10, 20, 30, 40));
    d.docker_ok(&["network", "create", "n"]);
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "n",
        IMG,
        "nslookup",
        "outside.example",
    ]);
    assert!(o.contains("Address: 10.20.30.40"), "{o}");
}

#[test]
fn networks_persist_across_restarts() {
    let d = daemon();
    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        "10.70.0.0/24",
        "--label",
        "team=a",
        "kept",
    ]);
    let id = d.docker_ok(&["network", "inspect", "-f", "{{.Id}}", "kept"]);
    let d = d.restart();
    assert_eq!(
        d.docker_ok(&["network", "inspect", "-f", "{{.Id}}", "kept"]),
        id
    );
    assert_eq!(
        d.docker_ok(&["network", "ls", "-q", "--filter", "label=team=a"])
            .trim(),
        &id.trim()[..12]
    );
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "kept",
        IMG,
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(o.contains("inet 10.70.0.2/24"), "{o}");
    let fw = d.iptables_save();
    assert_eq!(
        fw.matches("-A POSTROUTING -s 10.70.0.0/24").count(),
        1,
        "rules are not doubled:\n{fw}"
    );
}

#[test]
fn ipv6_networks_give_addresses_and_names() {
    let d = daemon();
    d.docker_ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:77::/64",
        "v6",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "six",
        "--network",
        "v6",
        IMG,
        "sleep",
        "300",
    ]);
    let v = inspect(&d, "six");
    let ip6 = v["NetworkSettings"]["Networks"]["v6"]["GlobalIPv6Address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip6.starts_with("fd00:77::"), "{v}");
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "v6",
        IMG,
        "sh",
        "-c",
        "ip -6 addr show eth0; nslookup -type=aaaa six",
    ]);
    assert!(o.contains("inet6 fd00:77::"), "{o}");
    assert!(o.contains(&ip6), "{o}");
}

#[test]
fn swarm_answers_as_a_node_outside_any_swarm() {
    let d = daemon();
    let r = d.request("GET", "/swarm", None);
    assert_eq!(r.status, 503);
    assert!(
        r.text().contains("This node is not a swarm manager."),
        "{}",
        r.text()
    );
    let o = d.docker(&["node", "ls"]);
    assert!(
        err(&o).contains("This node is not a swarm manager"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["swarm", "leave"]);
    assert!(
        err(&o).contains("This node is not part of a swarm"),
        "{}",
        err(&o)
    );
}
