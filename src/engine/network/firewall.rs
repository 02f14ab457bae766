//! Docker's iptables rules, in Docker's chains, so that the rules users already keep
//! in `DOCKER-USER` (evaluated first) still apply and tools that read the rules find
//! what they expect:
//!
//! - filter `FORWARD` starts with `-j DOCKER-USER` and `-j DOCKER-ISOLATION-STAGE-1`,
//!   followed by each bridge's rules (return traffic, published ports through
//!   `DOCKER`, outgoing traffic, traffic between containers of one bridge per `icc`);
//! - `DOCKER-ISOLATION-STAGE-1/2` drop traffic from one bridge network to another;
//! - filter `DOCKER` accepts traffic to published ports and ends, per bridge, with a
//!   drop of everything else entering the bridge from outside (so containers are not
//!   reachable by routing, whatever the policy of `FORWARD`);
//! - nat `DOCKER` (from `PREROUTING` and `OUTPUT` for local destinations) translates
//!   published ports; nat `POSTROUTING` masquerades each bridge's outgoing traffic.
//!
//! Rules are generated here as text in `iptables-save` form and installed with one
//! `iptables-restore` per change; at start the daemon compares what is installed with
//! what should be and adds only what is missing. Nothing outside these chains and the
//! jumps into them is touched.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

use crate::net::iptables::{Batch, Rule, Table, Tools};

pub const DOCKER: &str = "DOCKER";
pub const DOCKER_USER: &str = "DOCKER-USER";
pub const ISOLATION_1: &str = "DOCKER-ISOLATION-STAGE-1";
pub const ISOLATION_2: &str = "DOCKER-ISOLATION-STAGE-2";

/// What a bridge network's rules depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePolicy {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
    /// Traffic between containers of this bridge (`icc`).
    pub icc: bool,
    /// Masquerade outgoing traffic (`ip-masq`).
    pub masquerade: bool,
}

/// A published port as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortRule {
    pub bridge: String,
    /// `tcp` or `udp`.
    pub proto: String,
    /// The host address it is published on (`None`: every address).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// Where a rule goes in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Appended.
    End,
    /// Inserted first.
    Top,
    /// Inserted after Docker's two jumps at the head of `FORWARD`.
    AfterJumps,
}

fn r(table: &str, chain: &str, spec: String) -> Rule {
    Rule::new(table, chain, spec)
}

/// The chains of Docker's that must exist, per table.
const CHAINS: &[(&str, &str)] = &[
    ("nat", DOCKER),
    ("filter", DOCKER),
    ("filter", ISOLATION_1),
    ("filter", ISOLATION_2),
    ("filter", DOCKER_USER),
];

/// The jumps into Docker's chains and the chains' fixed tails.
fn global_rules(userland_proxy: bool) -> Vec<(Rule, Place)> {
    let output = if userland_proxy {
        "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"
    } else {
        "-m addrtype --dst-type LOCAL -j DOCKER"
    };
    vec![
        (
            r(
                "nat",
                "PREROUTING",
                "-m addrtype --dst-type LOCAL -j DOCKER".into(),
            ),
            Place::End,
        ),
        (r("nat", "OUTPUT", output.into()), Place::End),
        (r("filter", DOCKER_USER, "-j RETURN".into()), Place::End),
        (r("filter", ISOLATION_1, "-j RETURN".into()), Place::End),
        (r("filter", ISOLATION_2, "-j RETURN".into()), Place::End),
    ]
}

/// The rules of one bridge network, in the order they belong.
fn bridge_rules(p: &BridgePolicy, hairpin: bool) -> Vec<(Rule, Place)> {
    let br = &p.bridge;
    let subnet = p.subnet;
    let mut out = Vec::new();
    if p.internal {
        out.push((
            r(
                "filter",
                ISOLATION_1,
                format!("! -s {subnet} -o {br} -j DROP"),
            ),
            Place::Top,
        ));
        out.push((
            r(
                "filter",
                ISOLATION_1,
                format!("! -d {subnet} -i {br} -j DROP"),
            ),
            Place::Top,
        ));
    } else {
        out.push((
            r(
                "filter",
                ISOLATION_1,
                format!("-i {br} ! -o {br} -j {ISOLATION_2}"),
            ),
            Place::Top,
        ));
        out.push((
            r("filter", ISOLATION_2, format!("-o {br} -j DROP")),
            Place::Top,
        ));
        out.push((
            r(
                "filter",
                "FORWARD",
                format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
            ),
            Place::AfterJumps,
        ));
        out.push((
            r("filter", "FORWARD", format!("-o {br} -j DOCKER")),
            Place::AfterJumps,
        ));
        out.push((
            r("filter", "FORWARD", format!("-i {br} ! -o {br} -j ACCEPT")),
            Place::AfterJumps,
        ));
        out.push((r("nat", DOCKER, format!("-i {br} -j RETURN")), Place::Top));
        out.push((
            r("filter", DOCKER, format!("! -i {br} -o {br} -j DROP")),
            Place::End,
        ));
        if p.masquerade {
            out.push((
                r(
                    "nat",
                    "POSTROUTING",
                    format!("-s {subnet} ! -o {br} -j MASQUERADE"),
                ),
                Place::End,
            ));
        }
        if hairpin {
            out.push((
                r(
                    "nat",
                    "POSTROUTING",
                    format!("-o {br} -m addrtype --src-type LOCAL -j MASQUERADE"),
                ),
                Place::End,
            ));
        }
    }
    let icc = if p.icc { "ACCEPT" } else { "DROP" };
    out.push((
        r("filter", "FORWARD", format!("-i {br} -o {br} -j {icc}")),
        Place::AfterJumps,
    ));
    out
}

/// The rules of one published port. With the userland proxy, traffic from the
/// bridge itself goes through the proxy (`! -i BRIDGE`); without it (hairpin NAT)
/// every local destination is translated.
pub fn port_rules(p: &PortRule, userland_proxy: bool) -> Vec<Rule> {
    let (br, proto) = (&p.bridge, &p.proto);
    let dst = p
        .host_ip
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| format!("-d {ip}/32 "))
        .unwrap_or_default();
    let from = if userland_proxy {
        format!("! -i {br} ")
    } else {
        String::new()
    };
    vec![
        r(
            "nat",
            DOCKER,
            format!(
                "{dst}{from}-p {proto} -m {proto} --dport {} -j DNAT --to-destination {}:{}",
                p.host_port, p.container_ip, p.container_port
            ),
        ),
        r(
            "filter",
            DOCKER,
            format!(
                "-d {}/32 ! -i {br} -o {br} -p {proto} -m {proto} --dport {} -j ACCEPT",
                p.container_ip, p.container_port
            ),
        ),
        r(
            "nat",
            "POSTROUTING",
            format!(
                "-s {ip}/32 -d {ip}/32 -p {proto} -m {proto} --dport {} -j MASQUERADE",
                p.container_port,
                ip = p.container_ip
            ),
        ),
    ]
}

/// Installs port rules (new at a container's start, so not checked first).
pub fn port_batch(rules: &[Rule]) -> Batch {
    let mut b = Batch::default();
    for rule in rules {
        if rule.table == "filter" && rule.chain == DOCKER {
            b.insert(rule, 1);
        } else {
            b.append(rule);
        }
    }
    b
}

/// The rules inside a container's own namespace that send its queries to
/// 127.0.0.11:53 to the ports its embedded DNS server really listens on, and make
/// the answers come from port 53.
pub fn dns_rules(udp_port: u16, tcp_port: u16) -> Vec<Rule> {
    let mut out = Vec::new();
    for (proto, port) in [("udp", udp_port), ("tcp", tcp_port)] {
        out.push(r(
            "nat",
            "OUTPUT",
            format!(
                "-d 127.0.0.11/32 -p {proto} -m {proto} --dport 53 -j DNAT --to-destination 127.0.0.11:{port}"
            ),
        ));
        out.push(r(
            "nat",
            "POSTROUTING",
            format!(
                "-s 127.0.0.11/32 -p {proto} -m {proto} --sport {port} -j SNAT --to-source :53"
            ),
        ));
    }
    out
}

/// The daemon's firewall: the tools and the setting that shapes the rules.
#[derive(Debug, Clone)]
pub struct Firewall {
    pub tools: Tools,
    pub userland_proxy: bool,
}

impl Firewall {
    /// Reads the filter and nat tables.
    fn tables(&self) -> io::Result<(Table, Table)> {
        Ok((
            self.tools.save("filter", None)?,
            self.tools.save("nat", None)?,
        ))
    }

    /// Makes Docker's chains and jumps exist, with `DOCKER-USER` and the isolation
    /// chain first in `FORWARD`, and every bridge's rules in place. Only what is
    /// missing is added.
    pub fn ensure(&self, bridges: &[BridgePolicy]) -> io::Result<()> {
        let (filter, nat) = self.tables()?;
        let table = |name: &str| if name == "nat" { &nat } else { &filter };
        let mut b = Batch::default();
        for (t, chain) in CHAINS {
            if !table(t).has_chain(chain) {
                b.new_chain(t, chain);
            }
        }
        let mut wanted = global_rules(self.userland_proxy);
        // The other form of the OUTPUT jump (userland-proxy changed) goes.
        for stale in global_rules(!self.userland_proxy) {
            if stale.0.chain == "OUTPUT" && nat.has("OUTPUT", &stale.0.spec) {
                b.delete(&stale.0);
            }
        }
        for p in bridges {
            wanted.extend(bridge_rules(p, !self.userland_proxy));
        }
        // FORWARD's head: DOCKER-USER, then the isolation chain.
        let forward = filter.rules("FORWARD");
        let head_ok = forward.first().map(String::as_str) == Some("-j DOCKER-USER")
            && forward.get(1).map(String::as_str) == Some("-j DOCKER-ISOLATION-STAGE-1");
        if !head_ok {
            for spec in ["-j DOCKER-USER", "-j DOCKER-ISOLATION-STAGE-1"] {
                for _ in forward.iter().filter(|s| *s == spec) {
                    b.delete(&r("filter", "FORWARD", spec.into()));
                }
            }
            b.insert(
                &r("filter", "FORWARD", "-j DOCKER-ISOLATION-STAGE-1".into()),
                1,
            );
            b.insert(&r("filter", "FORWARD", "-j DOCKER-USER".into()), 1);
        }
        let mut after_jumps = Vec::new();
        for (rule, place) in wanted {
            if table(&rule.table).has(&rule.chain, &rule.spec) {
                continue;
            }
            match place {
                Place::End => b.append(&rule),
                Place::Top => b.insert(&rule, 1),
                Place::AfterJumps => after_jumps.push(rule),
            }
        }
        // Inserted at 3 in reverse, they end up in order right after the two jumps.
        for rule in after_jumps.iter().rev() {
            b.insert(rule, 3);
        }
        self.tools.restore(&b, None)
    }

    /// Removes a bridge network's rules.
    pub fn remove_bridge(&self, p: &BridgePolicy) -> io::Result<()> {
        let (filter, nat) = self.tables()?;
        let rules: Vec<Rule> = bridge_rules(p, !self.userland_proxy)
            .into_iter()
            .map(|(rule, _)| rule)
            .filter(|rule| {
                let t = if rule.table == "nat" { &nat } else { &filter };
                t.has(&rule.chain, &rule.spec)
            })
            .collect();
        self.tools.delete(&rules, None)
    }

    /// Adds the rules of a container's published ports (together with those of
    /// containers starting at the same time).
    pub fn add_ports(&self, rules: &[Rule]) -> io::Result<()> {
        self.tools.restore_grouped(port_batch(rules))
    }

    /// Removes every rule in Docker's `DOCKER` chains, and every hairpin masquerade,
    /// that belongs to no published port in `keep` and no bridge in `bridges`: what
    /// containers that ended while no one could clean up left behind.
    pub fn sweep(&self, bridges: &[BridgePolicy], keep: &[Rule]) -> io::Result<usize> {
        let (filter, nat) = self.tables()?;
        let mut expected: BTreeSet<(String, String, String)> = keep
            .iter()
            .map(|k| (k.table.clone(), k.chain.clone(), k.spec.clone()))
            .collect();
        for p in bridges {
            for (rule, _) in bridge_rules(p, !self.userland_proxy) {
                expected.insert((rule.table, rule.chain, rule.spec));
            }
        }
        let mut stale = Vec::new();
        for (name, table) in [("filter", &filter), ("nat", &nat)] {
            for spec in table.rules(DOCKER) {
                if !expected.contains(&(name.to_string(), DOCKER.to_string(), spec.clone())) {
                    stale.push(r(name, DOCKER, spec.clone()));
                }
            }
        }
        for spec in nat.rules("POSTROUTING") {
            if is_hairpin(spec)
                && !expected.contains(&("nat".into(), "POSTROUTING".into(), spec.clone()))
            {
                stale.push(r("nat", "POSTROUTING", spec.clone()));
            }
        }
        let n = stale.len();
        if n > 0 {
            self.tools.delete(&stale, None)?;
        }
        Ok(n)
    }
}

/// `-s IP/32 -d IP/32 -p P -m P --dport N -j MASQUERADE`: only published ports make these.
fn is_hairpin(spec: &str) -> bool {
    let w: Vec<&str> = spec.split_whitespace().collect();
    w.len() == 12
        && w[0] == "-s"
        && w[2] == "-d"
        && w[1] == w[3]
        && w[1].ends_with("/32")
        && w[1].trim_end_matches("/32").parse::<IpAddr>().is_ok()
        && w[8] == "--dport"
        && w[10] == "-j"
        && w[11] == "MASQUERADE"
}

/// Runs in a container's namespace: installs the DNS redirection rules.
pub fn add_dns_rules(tools: &Tools, netns: &File, rules: &[Rule]) -> io::Result<()> {
    let mut b = Batch::default();
    for rule in rules {
        b.append(rule);
    }
    tools.restore(&b, Some(netns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker0() -> BridgePolicy {
        BridgePolicy {
            bridge: "docker0".into(),
            subnet: "172.17.0.0/16".parse().unwrap(),
            internal: false,
            icc: true,
            masquerade: true,
        }
    }

    #[test]
    fn bridge_rules_are_dockers() {
        let specs: Vec<String> = bridge_rules(&docker0(), false)
            .into_iter()
            .map(|(rule, _)| format!("{} {}", rule.table, rule.save_line()))
            .collect();
        assert!(specs.contains(
            &"nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE".to_string()
        ));
        assert!(specs.contains(&"filter -A FORWARD -i docker0 -o docker0 -j ACCEPT".to_string()));
        assert!(specs.contains(&"filter -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2".to_string()));
        let internal = BridgePolicy {
            internal: true,
            icc: false,
            ..docker0()
        };
        let specs: Vec<String> = bridge_rules(&internal, false)
            .into_iter()
            .map(|(rule, _)| rule.save_line())
            .collect();
        assert!(specs.iter().all(|s| !s.contains("MASQUERADE")));
        assert!(specs.contains(&"-A FORWARD -i docker0 -o docker0 -j DROP".to_string()));
        assert!(specs.contains(
            &"-A DOCKER-ISOLATION-STAGE-1 ! -s 172.17.0.0/16 -o docker0 -j DROP".to_string()
        ));
    }

    #[test]
    fn port_rules_in_save_form() {
        let p = PortRule {
            bridge: "docker0".into(),
            proto: "tcp".into(),
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 8080,
            container_ip: "172.17.0.2".parse().unwrap(),
            container_port: 80,
        };
        let rules = port_rules(&p, true);
        assert_eq!(
            rules[0].save_line(),
            "-A DOCKER -d 127.0.0.1/32 ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80"
        );
        assert_eq!(
            rules[1].save_line(),
            "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"
        );
        assert!(is_hairpin(&rules[2].spec));
        assert!(!is_hairpin("-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"));
        let hairpin = port_rules(&PortRule { host_ip: None, ..p }, false);
        assert_eq!(
            hairpin[0].spec,
            "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80"
        );
        let b = port_batch(&rules).render();
        assert!(b.contains("-I DOCKER 1 -d 172.17.0.2/32"), "{b}");
    }
}
