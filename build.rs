//! Build-time facts and files: the git commit baked into `dockerd --version` and
//! `/version`, and the `dockerd(8)` man page and shell completions, generated from the
//! same clap definitions the binary parses its flags with (`src/cli.rs`), so they can
//! never drift from the real flags.
//!
//! The generated files land in `$OUT_DIR/man` and `$OUT_DIR/completions`;
//! `packaging/build.sh` finds them there and puts them into the packages.

use std::path::Path;
use std::process::Command;

// The flag definitions, compiled a second time for this build script. `src/cli.rs`
// depends on clap alone for exactly this reason.
#[allow(dead_code)]
#[path = "src/cli.rs"]
mod cli;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=7", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=DOCKERD_GIT_COMMIT={commit}");
    // Asked of git, because in a worktree `.git` is a file and HEAD lives elsewhere;
    // watching a path that does not exist would rebuild the crate every time.
    for watched in ["HEAD", "refs/heads"] {
        if let Some(path) = git_path(watched).filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rerun-if-changed=src/cli.rs");
    println!("cargo:rerun-if-changed=build.rs");

    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        panic!("OUT_DIR is not set: build.rs must be run by cargo");
    };
    let out_dir = Path::new(&out_dir);
    if let Err(e) = generate_docs(out_dir) {
        panic!(
            "generating the man page and shell completions in {}: {e}",
            out_dir.display()
        );
    }
}

/// Where git keeps `name` (`HEAD`, `refs/heads`) for this checkout, if in one.
fn git_path(name: &str) -> Option<std::path::PathBuf> {
    let ask = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    // --path-format needs git 2.31; older ones answer relative to this directory.
    let out = ask(&["rev-parse", "--path-format=absolute", "--git-path", name])
        .or_else(|| ask(&["rev-parse", "--git-path", name]))?;
    let path = String::from_utf8(out.stdout).ok()?;
    let path = path.trim();
    (!path.is_empty()).then(|| std::path::PathBuf::from(path))
}

/// Writes `man/dockerd.8` and `completions/{dockerd.bash,_dockerd,dockerd.fish}`.
fn generate_docs(out_dir: &Path) -> std::io::Result<()> {
    use clap_complete::Shell;

    let version = env!("CARGO_PKG_VERSION");
    let cmd = cli::command().version(version);

    let man_dir = out_dir.join("man");
    std::fs::create_dir_all(&man_dir)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        // Section 8: system administration commands and daemons.
        .section("8")
        .source(format!("dockerd {version}"))
        .manual("System Manager's Manual")
        .render(&mut page)?;
    page.extend_from_slice(MAN_EXTRA_SECTIONS.as_bytes());
    std::fs::write(man_dir.join("dockerd.8"), page)?;

    let completions = out_dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = cmd.clone();
        clap_complete::generate_to(shell, &mut cmd, "dockerd", &completions)?;
    }
    Ok(())
}

/// What the flags cannot tell: how the daemon lives under systemd. Plain roff,
/// appended after the sections clap_mangen renders from the flags.
const MAN_EXTRA_SECTIONS: &str = r#".SH SYSTEMD
Installed from a package,
.B dockerd
is started by
.BR dockerd.socket ,
which listens on
.I /run/docker.sock
(mode 0660, group
.BR docker )
and starts
.B dockerd.service
on the first connection; the service runs
.BR "dockerd \-H fd://" .
The daemon reports readiness and a status line through sd_notify, answers the
watchdog only while it can still serve a request, and writes its records
natively into the journal, with structured fields such as
.B API_PATH
and
.BR CONTAINER_ID .
Read them with
.BR "journalctl \-u dockerd" .
.SH SIGNALS
.TP
.B SIGHUP
Reload the configuration file. Reloadable keys (debug, log\-level,
shutdown\-timeout, labels, default\-runtime, runtimes) take effect at once; a
file that does not parse or validate is reported and the running configuration
is kept.
.TP
.BR SIGTERM ", " SIGINT
Stop accepting connections, finish open requests for up to
.B \-\-shutdown\-timeout
seconds, remove the pidfile and exit 0. A third stop signal exits at once.
.SH ENVIRONMENT
.TP
.BR LISTEN_FDS ", " LISTEN_PID
Sockets passed by socket activation, used by
.B \-H fd://
and
.BR "\-H fd://N" .
.TP
.B NOTIFY_SOCKET
Where readiness, status, reload and stop notifications are sent.
.TP
.BR WATCHDOG_USEC ", " WATCHDOG_PID
The watchdog period; the daemon pings every half period while its liveness
probe passes.
.TP
.B JOURNAL_STREAM
When standard error is the journal, records are sent over the native journal
protocol instead of as text.
.SH FILES
.TP
.I /etc/docker/daemon.json
The configuration file (optional). An example is in
.IR /usr/share/doc/dockerd/examples/daemon.json .
.TP
.I /var/lib/docker
Persistent state: images, containers, volumes.
.TP
.I /run/docker
Runtime state that does not survive a reboot.
.TP
.I /run/docker.pid
The daemon's PID while it runs.
.SH "SEE ALSO"
.BR docker (1),
.BR systemctl (1),
.BR journalctl (1),
.BR systemd.socket (5),
.BR systemd.service (5)
"#;
