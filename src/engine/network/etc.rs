//! The `/etc/hosts` and `/etc/resolv.conf` a container gets, as Docker writes them:
//! hosts has the loopback and IPv6 defaults, `--add-host` entries, legacy link
//! entries and a line for each of the container's own addresses; resolv.conf is the
//! host's (without loopback name servers, which another namespace cannot reach), or
//! built from `--dns`/`--dns-search`/`--dns-option` (or the daemon's `dns` keys), or,
//! on user-defined networks, points at the embedded DNS server 127.0.0.11.

use std::net::IpAddr;

/// Docker's fixed `/etc/hosts` head.
pub const HOSTS_DEFAULTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// The embedded DNS server's address inside containers.
pub const EMBEDDED_DNS: &str = "127.0.0.11";

/// What `/etc/hosts` is made of.
#[derive(Debug, Default, Clone)]
pub struct Hosts {
    pub hostname: String,
    pub domainname: String,
    /// `--add-host` entries, resolved: (name, address).
    pub extra: Vec<(String, IpAddr)>,
    /// Legacy links: (address, names).
    pub links: Vec<(IpAddr, String)>,
    /// The container's own addresses, one line each.
    pub own: Vec<IpAddr>,
}

impl Hosts {
    /// The names on the container's own lines: `fqdn short` when the name has a dot.
    fn own_names(&self) -> String {
        if !self.domainname.is_empty() {
            return format!("{}.{} {}", self.hostname, self.domainname, self.hostname);
        }
        match self.hostname.split_once('.') {
            Some((short, _)) => format!("{} {short}", self.hostname),
            None => self.hostname.clone(),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::from(HOSTS_DEFAULTS);
        for (name, ip) in &self.extra {
            out.push_str(&format!("{ip}\t{name}\n"));
        }
        for (ip, names) in &self.links {
            out.push_str(&format!("{ip}\t{names}\n"));
        }
        if self.own.is_empty() {
            // No address of its own: the name still resolves, to a loopback address.
            out.push_str(&format!("127.0.1.1\t{}\n", self.own_names()));
        }
        for ip in &self.own {
            out.push_str(&format!("{ip}\t{}\n", self.own_names()));
        }
        out
    }
}

/// Parses an `--add-host` entry: `name:ip` or `name=ip`; `host-gateway` stands for
/// `gateway`.
pub fn parse_extra_host(entry: &str, gateway: Option<IpAddr>) -> Result<(String, IpAddr), String> {
    let (name, ip) = entry
        .split_once('=')
        .or_else(|| entry.split_once(':'))
        .ok_or_else(|| format!("bad format for add-host: {entry:?}"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("bad format for add-host: {entry:?}"));
    }
    let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
    if ip == "host-gateway" {
        let gw = gateway.ok_or("unable to derive the IP value for host-gateway")?;
        return Ok((name.to_string(), gw));
    }
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("invalid IP address in add-host: {ip:?}"))?;
    Ok((name.to_string(), ip))
}

/// The DNS settings a container asked for (or the daemon's defaults).
#[derive(Debug, Default, Clone)]
pub struct DnsSettings {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// A resolv.conf split into what matters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resolv {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
    /// Other lines (comments, `domain`, `sortlist`), kept as they are.
    pub other: Vec<String>,
}

pub fn parse_resolv(text: &str) -> Resolv {
    let mut r = Resolv::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next().and_then(|w| w.split('%').next()?.parse().ok()) {
                    r.nameservers.push(ip);
                }
            }
            Some("search") => r.search = words.map(str::to_string).collect(),
            Some("options") => r.options.extend(words.map(str::to_string)),
            _ => r.other.push(line.to_string()),
        }
    }
    r
}

/// The host's resolver configuration: `/etc/resolv.conf`, or systemd-resolved's
/// list of real servers when the file only points at its stub (127.0.0.53).
pub fn host_resolv() -> Resolv {
    let main = parse_resolv(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let stub_only = !main.nameservers.is_empty()
        && main
            .nameservers
            .iter()
            .all(|ip| ip.to_string() == "127.0.0.53");
    if stub_only && let Ok(text) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
        let resolved = parse_resolv(&text);
        if !resolved.nameservers.is_empty() {
            return resolved;
        }
    }
    main
}

fn render(servers: &[String], search: &[String], options: &[String], other: &[String]) -> String {
    let mut out = String::new();
    for line in other {
        if !line.trim().is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !search.is_empty() && search != ["."] {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// `/etc/resolv.conf` for a container with its own network namespace: the host's,
/// or the overrides; `embedded`: on a user-defined network (127.0.0.11, `ndots:0`).
pub fn resolv_conf(host: &Resolv, dns: &DnsSettings, embedded: bool) -> String {
    let search = if dns.search.is_empty() {
        host.search.clone()
    } else {
        dns.search.clone()
    };
    let mut options = if dns.options.is_empty() {
        host.options.clone()
    } else {
        dns.options.clone()
    };
    let overridden = !dns.servers.is_empty() || !dns.search.is_empty() || !dns.options.is_empty();
    let other: Vec<String> = if overridden {
        Vec::new()
    } else {
        host.other.clone()
    };
    if embedded {
        if !options.iter().any(|o| o.starts_with("ndots:")) {
            options.push("ndots:0".into());
        }
        return render(&[EMBEDDED_DNS.to_string()], &search, &options, &other);
    }
    let mut servers: Vec<String> = if dns.servers.is_empty() {
        host.nameservers
            .iter()
            .filter(|ip| !ip.is_loopback() && !ip.is_ipv6())
            .map(|ip| ip.to_string())
            .collect()
    } else {
        dns.servers.clone()
    };
    if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    render(&servers, &search, &options, &other)
}

/// The servers the embedded DNS server forwards to: the overrides, else the host's
/// own (loopback ones included: the proxy asks them from the host's namespace).
pub fn upstream_servers(host: &Resolv, dns: &DnsSettings) -> Vec<std::net::SocketAddr> {
    let servers: Vec<IpAddr> = if dns.servers.is_empty() {
        host.nameservers.clone()
    } else {
        dns.servers.iter().filter_map(|s| s.parse().ok()).collect()
    };
    servers
        .into_iter()
        .filter(|ip| ip.to_string() != EMBEDDED_DNS)
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lines_in_dockers_order() {
        let h = Hosts {
            hostname: "web".into(),
            domainname: String::new(),
            extra: vec![("db.local".into(), "10.0.0.5".parse().unwrap())],
            links: vec![("172.17.0.3".parse().unwrap(), "mydb 0a1b2c3d4e5f db".into())],
            own: vec!["172.17.0.2".parse().unwrap()],
        };
        let text = h.render();
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(
            text.ends_with(
                "10.0.0.5\tdb.local\n172.17.0.3\tmydb 0a1b2c3d4e5f db\n172.17.0.2\tweb\n"
            ),
            "{text}"
        );
        let fqdn = Hosts {
            hostname: "a.b.c".into(),
            ..Hosts::default()
        };
        assert!(fqdn.render().ends_with("127.0.1.1\ta.b.c a\n"));
    }

    #[test]
    fn extra_hosts() {
        let gw: IpAddr = "172.17.0.1".parse().unwrap();
        assert_eq!(
            parse_extra_host("host.docker.internal:host-gateway", Some(gw)).unwrap(),
            ("host.docker.internal".to_string(), gw)
        );
        assert_eq!(
            parse_extra_host("v6:[::1]", None).unwrap().1,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(parse_extra_host("a=1.2.3.4", None).unwrap().0, "a");
        assert!(parse_extra_host("nohost", None).is_err());
        assert!(parse_extra_host("a:notip", None).is_err());
    }

    #[test]
    fn resolv_variants() {
        let host = parse_resolv(
            "# comment\nsearch lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\noptions edns0\n",
        );
        let plain = resolv_conf(&host, &DnsSettings::default(), false);
        assert_eq!(
            plain,
            "# comment\nsearch lan\nnameserver 10.0.0.1\noptions edns0\n"
        );
        let embedded = resolv_conf(&host, &DnsSettings::default(), true);
        assert_eq!(
            embedded,
            "# comment\nsearch lan\nnameserver 127.0.0.11\noptions edns0 ndots:0\n"
        );
        let over = DnsSettings {
            servers: vec!["1.1.1.1".into()],
            search: vec![],
            options: vec!["ndots:2".into()],
        };
        assert_eq!(
            resolv_conf(&host, &over, false),
            "search lan\nnameserver 1.1.1.1\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf(&host, &over, true),
            "search lan\nnameserver 127.0.0.11\noptions ndots:2\n"
        );
        let none = parse_resolv("nameserver 127.0.0.1\n");
        assert!(resolv_conf(&none, &DnsSettings::default(), false).contains("nameserver 8.8.8.8"));
        assert_eq!(
            upstream_servers(&host, &DnsSettings::default()),
            vec![
                "127.0.0.53:53".parse().unwrap(),
                "10.0.0.1:53".parse().unwrap()
            ]
        );
        assert_eq!(
            upstream_servers(&host, &over),
            vec!["1.1.1.1:53".parse().unwrap()]
        );
    }
}
