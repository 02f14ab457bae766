//! The `dockerd` command line: the flags Docker Engine's daemon takes, with the same
//! names and defaults, so unit files and habits carry over unchanged.
//!
//! Parsing only; merging with daemon.json and validation live in `config`.
//!
//! This file depends on nothing but clap: `build.rs` compiles it too, to generate the
//! `dockerd(8)` man page and the shell completions from these very definitions.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};

/// Default daemon.json location, as Docker Engine's.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/docker/daemon.json";

/// The runtime built into this daemon (containers run under its own `dockerd init`
/// monitor), under Docker's default runtime name, which compose files and clients
/// send and expect.
pub const BUILTIN_RUNTIME: &str = "runc";

/// Other names of the built-in runtime: the containerd shim name Docker also lists,
/// and this daemon's own.
pub const BUILTIN_RUNTIME_ALIASES: &[&str] = &["io.containerd.runc.v2", "native"];

/// Whether `name` names the built-in runtime.
pub fn is_builtin_runtime(name: &str) -> bool {
    name == BUILTIN_RUNTIME || BUILTIN_RUNTIME_ALIASES.contains(&name)
}

/// A self-sufficient runtime for containers, made to be started by systemd.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "dockerd",
    about = "A self-sufficient runtime for containers.",
    long_about = "A self-sufficient runtime for containers, made to be run by systemd: it takes its \
                  listening sockets from socket activation, reports readiness and status through \
                  sd_notify, answers the watchdog, reloads daemon.json on SIGHUP and writes its logs \
                  natively into the journal.",
    disable_version_flag = true,
    max_term_width = 100
)]
pub struct Flags {
    /// Daemon socket(s) to connect to: unix://PATH, tcp://HOST:PORT, fd:// or fd://N
    #[arg(short = 'H', long = "host", value_name = "list")]
    pub hosts: Vec<String>,

    /// Use TLS; implied by --tlsverify
    #[arg(long, value_name = "bool", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls: bool,

    /// Use TLS and verify the remote
    #[arg(long, value_name = "bool", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tlsverify: bool,

    /// Trust certs signed only by this CA (default "$DOCKER_CERT_PATH/ca.pem", else "/etc/docker/ca.pem")
    #[arg(long, value_name = "string", default_value = "")]
    pub tlscacert: String,

    /// Path to TLS certificate file (default "$DOCKER_CERT_PATH/cert.pem", else "/etc/docker/cert.pem")
    #[arg(long, value_name = "string", default_value = "")]
    pub tlscert: String,

    /// Path to TLS key file (default "$DOCKER_CERT_PATH/key.pem", else "/etc/docker/key.pem")
    #[arg(long, value_name = "string", default_value = "")]
    pub tlskey: String,

    /// Daemon configuration file
    #[arg(long, value_name = "string", default_value = DEFAULT_CONFIG_FILE)]
    pub config_file: PathBuf,

    /// Root directory of persistent Docker state
    #[arg(long, value_name = "string", default_value = "/var/lib/docker")]
    pub data_root: PathBuf,

    /// Root directory for execution state files
    #[arg(long, value_name = "string", default_value = "/var/run/docker")]
    pub exec_root: PathBuf,

    /// Path to use for daemon PID file
    #[arg(
        short = 'p',
        long,
        value_name = "string",
        default_value = "/var/run/docker.pid"
    )]
    pub pidfile: PathBuf,

    /// Enable debug mode
    #[arg(short = 'D', long)]
    pub debug: bool,

    /// Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")
    #[arg(short = 'l', long, value_name = "string", default_value = "info")]
    pub log_level: String,

    /// Set the logging format ("text"|"json")
    #[arg(long, value_name = "string", default_value = "text")]
    pub log_format: String,

    /// Group for the unix socket
    #[arg(short = 'G', long, value_name = "string", default_value = "docker")]
    pub group: String,

    /// Default shutdown timeout in seconds
    #[arg(long, value_name = "int", default_value_t = 15)]
    pub shutdown_timeout: i64,

    /// Seconds without API connections after which a socket-activated daemon exits (0: never)
    #[arg(long, value_name = "int", default_value_t = 0)]
    pub idle_timeout: u64,

    /// Set key=value labels to the daemon
    #[arg(long = "label", value_name = "list")]
    pub labels: Vec<String>,

    /// Default driver for container logs
    #[arg(long, value_name = "string", default_value = "json-file")]
    pub log_driver: String,

    /// Default log driver options for containers
    #[arg(long = "log-opt", value_name = "map")]
    pub log_opts: Vec<String>,

    /// Default OCI runtime for containers
    #[arg(long, value_name = "string", default_value = BUILTIN_RUNTIME)]
    pub default_runtime: String,

    /// Register an additional OCI compatible runtime (name=path)
    #[arg(long = "add-runtime", value_name = "runtime")]
    pub add_runtimes: Vec<String>,

    /// Keep containers running while the daemon is down (the default here; set
    /// "live-restore": false in daemon.json to stop them when the daemon stops)
    #[arg(long)]
    pub live_restore: bool,

    /// Default ulimits for containers (name=soft[:hard], e.g. nofile=1024:4096)
    #[arg(long = "default-ulimit", value_name = "ulimit")]
    pub default_ulimits: Vec<String>,

    /// Default /dev/shm size for containers
    #[arg(long, value_name = "bytes", default_value = "64MiB")]
    pub default_shm_size: String,

    /// Runtime execution options (native.cgroupdriver=systemd|cgroupfs)
    #[arg(long = "exec-opt", value_name = "list")]
    pub exec_opts: Vec<String>,

    /// Parent cgroup for all containers (default "docker")
    #[arg(long, value_name = "string", default_value = "")]
    pub cgroup_parent: String,

    /// Default cgroup namespace mode for containers ("private"|"host")
    #[arg(long, value_name = "string", default_value = "private")]
    pub default_cgroupns_mode: String,

    /// Path to seccomp profile. Set to "unconfined" to disable the default seccomp profile
    #[arg(long, value_name = "string", default_value = "builtin")]
    pub seccomp_profile: String,

    /// Set no-new-privileges by default for new containers
    #[arg(long, value_name = "bool", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub no_new_privileges: bool,

    /// Attach containers to a network bridge ("none" disables the default bridge)
    #[arg(short = 'b', long, value_name = "string", default_value = "")]
    pub bridge: String,

    /// Specify network bridge IP
    #[arg(long, value_name = "string", default_value = "")]
    pub bip: String,

    /// IPv4 subnet for fixed IPs
    #[arg(long, value_name = "string", default_value = "")]
    pub fixed_cidr: String,

    /// Default address pools for node specific local networks (base=CIDR,size=N)
    #[arg(long = "default-address-pool", value_name = "pool-options")]
    pub default_address_pools: Vec<String>,

    /// Set the containers network MTU
    #[arg(long, value_name = "int", default_value_t = 0)]
    pub mtu: u32,

    /// Enable addition of iptables rules
    #[arg(long, value_name = "bool", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub iptables: bool,

    /// Enable net.ipv4.ip_forward
    #[arg(long, value_name = "bool", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ip_forward: bool,

    /// Enable IP masquerading
    #[arg(long, value_name = "bool", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ip_masq: bool,

    /// Enable inter-container communication
    #[arg(long, value_name = "bool", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub icc: bool,

    /// Use userland proxy for loopback traffic
    #[arg(long, value_name = "bool", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub userland_proxy: bool,

    /// Default IP when binding container ports
    #[arg(long, value_name = "ip", default_value = "0.0.0.0")]
    pub ip: String,

    /// IP address that the special 'host-gateway' string in --add-host resolves to
    #[arg(long, value_name = "ip", default_value = "")]
    pub host_gateway_ip: String,

    /// DNS server to use
    #[arg(long, value_name = "list")]
    pub dns: Vec<String>,

    /// DNS search domains to use
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,

    /// DNS options to use
    #[arg(long = "dns-opt", value_name = "list")]
    pub dns_opts: Vec<String>,

    /// Enable insecure registry communication
    #[arg(long = "insecure-registry", value_name = "list")]
    pub insecure_registries: Vec<String>,

    /// Preferred Docker registry mirror
    #[arg(long = "registry-mirror", value_name = "list")]
    pub registry_mirrors: Vec<String>,

    /// Set the max concurrent downloads
    #[arg(long, value_name = "int", default_value_t = 3)]
    pub max_concurrent_downloads: i64,

    /// Set the max concurrent uploads
    #[arg(long, value_name = "int", default_value_t = 5)]
    pub max_concurrent_uploads: i64,

    /// Set the max download attempts for each pull
    #[arg(long, value_name = "int", default_value_t = 5)]
    pub max_download_attempts: i64,

    /// HTTP proxy URL to use for outgoing traffic
    #[arg(long, value_name = "string", default_value = "")]
    pub http_proxy: String,

    /// HTTPS proxy URL to use for outgoing traffic
    #[arg(long, value_name = "string", default_value = "")]
    pub https_proxy: String,

    /// Comma-separated list of hosts or IP addresses for which the proxy is skipped
    #[arg(long, value_name = "string", default_value = "")]
    pub no_proxy: String,

    /// Validate daemon configuration and exit
    #[arg(long)]
    pub validate: bool,

    /// Print version information and quit
    #[arg(short = 'v', long, action = ArgAction::SetTrue)]
    pub version: bool,
}

/// Parsed flags plus which of them were given on the command line (as opposed to
/// defaults), which daemon.json conflict detection needs.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub flags: Flags,
    matches: ArgMatches,
}

impl Parsed {
    /// True when `id` (the clap argument id, e.g. `hosts`, `data_root`) was given
    /// explicitly on the command line.
    /// `proxies` stands for the three proxy flags, which set its parts.
    pub fn is_explicit(&self, id: &str) -> bool {
        if id == "proxies" {
            return ["http_proxy", "https_proxy", "no_proxy"]
                .iter()
                .any(|p| self.is_explicit(p));
        }
        matches!(
            self.matches.value_source(id),
            Some(ValueSource::CommandLine)
        )
    }
}

/// Parses argv (including argv[0]). On a bad flag, returns clap's error, which
/// renders the problem and the usage.
pub fn parse<I, T>(args: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Flags::command().try_get_matches_from(args)?;
    let flags = Flags::from_arg_matches(&matches)?;
    Ok(Parsed { flags, matches })
}

/// The clap command, for the man page and shell completions generated at build time.
pub fn command() -> clap::Command {
    Flags::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_docker_engine() {
        let p = parse(["dockerd"]).unwrap();
        assert_eq!(
            p.flags.config_file,
            PathBuf::from("/etc/docker/daemon.json")
        );
        assert_eq!(p.flags.data_root, PathBuf::from("/var/lib/docker"));
        assert_eq!(p.flags.exec_root, PathBuf::from("/var/run/docker"));
        assert_eq!(p.flags.pidfile, PathBuf::from("/var/run/docker.pid"));
        assert_eq!(p.flags.log_level, "info");
        assert_eq!(p.flags.group, "docker");
        assert_eq!(p.flags.shutdown_timeout, 15);
        assert!(!p.is_explicit("data_root"));
    }

    #[test]
    fn explicit_flags_are_known() {
        let p = parse(["dockerd", "-H", "fd://", "-H", "unix:///x", "-D"]).unwrap();
        assert_eq!(p.flags.hosts, vec!["fd://", "unix:///x"]);
        assert!(p.is_explicit("hosts"));
        assert!(p.is_explicit("debug"));
        assert!(!p.is_explicit("group"));
    }

    #[test]
    fn unknown_flag_is_an_error() {
        assert!(parse(["dockerd", "--nope"]).is_err());
    }

    #[test]
    fn init_is_not_a_flag_or_subcommand() {
        let help = command().render_long_help().to_string();
        assert!(!help.contains("init"));
    }
}
