//! Running `iptables-save` and `iptables-restore`: rules are read once per table and
//! changed in batches, so a container start costs one process, not one per rule.
//!
//! A [`Rule`] is written exactly as `iptables-save` prints it (option order, `-m tcp`
//! after `-p tcp`, `/32` on host addresses), which lets the caller tell which of its
//! rules are already in place by comparing text.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// One rule of a chain, in `iptables-save` form without the leading `-A CHAIN`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub table: String,
    pub chain: String,
    pub spec: String,
}

impl Rule {
    pub fn new(table: &str, chain: &str, spec: impl Into<String>) -> Rule {
        Rule {
            table: table.to_string(),
            chain: chain.to_string(),
            spec: spec.into(),
        }
    }

    /// The line `iptables-save` prints for it.
    pub fn save_line(&self) -> String {
        format!("-A {} {}", self.chain, self.spec)
    }
}

/// This process runs one iptables tool at a time on the host's tables: the daemon's
/// container starts would otherwise race each other for them. (Tools run in a
/// container's own namespace touch only its tables and run freely.)
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn host_lock(netns: Option<&File>) -> Option<MutexGuard<'static, ()>> {
    netns
        .is_none()
        .then(|| ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Batches waiting to be applied to the host's tables together.
#[derive(Default)]
struct Group {
    waiting: Vec<(u64, Batch)>,
    done: HashMap<u64, Result<(), String>>,
    applying: bool,
    next: u64,
}

static GROUP: Mutex<Option<Group>> = Mutex::new(None);
static GROUP_DONE: Condvar = Condvar::new();

/// The iptables tools, found once (the container monitor, which runs them at a
/// container's exit, has no `PATH`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tools {
    pub iptables: PathBuf,
    pub save: PathBuf,
    pub restore: PathBuf,
}

const SEARCH: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"];

impl Tools {
    /// `iptables` (`ipv6`: `ip6tables`) and its save/restore companions, from the usual
    /// directories and then `PATH`.
    pub fn find(ipv6: bool) -> Option<Tools> {
        let prefix = if ipv6 { "ip6tables" } else { "iptables" };
        let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let find = |name: String| -> Option<PathBuf> {
            SEARCH
                .iter()
                .map(PathBuf::from)
                .chain(path_dirs.iter().cloned())
                .map(|d| d.join(&name))
                .find(|p| p.is_file())
        };
        Some(Tools {
            iptables: find(prefix.to_string())?,
            save: find(format!("{prefix}-save"))?,
            restore: find(format!("{prefix}-restore"))?,
        })
    }

    /// The rules and chains of `table` as `iptables-save -t TABLE` prints them, run in
    /// the network namespace `netns` when given.
    pub fn save(&self, table: &str, netns: Option<&File>) -> io::Result<Table> {
        let mut cmd = Command::new(&self.save);
        cmd.args(["-t", table]);
        let _one = host_lock(netns);
        let out = run(cmd, None, netns)?;
        Ok(Table::parse(&out))
    }

    /// Applies `batch` with `iptables-restore --noflush` (nothing else in the tables
    /// changes). The whole batch applies or none of it.
    pub fn restore(&self, batch: &Batch, netns: Option<&File>) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut cmd = Command::new(&self.restore);
        cmd.args(["--noflush", "--wait"]);
        let _one = host_lock(netns);
        run(cmd, Some(batch.render().as_bytes()), netns).map(drop)
    }

    /// [`Tools::restore`] on the host's tables, applied together with the batches
    /// other threads submit meanwhile (one `iptables-restore` for many container
    /// starts: group commit). Each caller learns whether its own batch applied.
    pub fn restore_grouped(&self, batch: Batch) -> io::Result<()> {
        let mut g = GROUP.lock().unwrap_or_else(|p| p.into_inner());
        let st = g.get_or_insert_with(Group::default);
        let ticket = st.next;
        st.next += 1;
        st.waiting.push((ticket, batch));
        loop {
            let st = g.get_or_insert_with(Group::default);
            if let Some(r) = st.done.remove(&ticket) {
                return r.map_err(io::Error::other);
            }
            if !st.applying {
                st.applying = true;
                let work = std::mem::take(&mut st.waiting);
                drop(g);
                let outcomes = self.apply_together(&work);
                g = GROUP.lock().unwrap_or_else(|p| p.into_inner());
                let st = g.get_or_insert_with(Group::default);
                st.applying = false;
                st.done.extend(outcomes);
                GROUP_DONE.notify_all();
                continue;
            }
            g = GROUP_DONE.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// One restore for all of `work`; when it fails, each batch alone, so a bad one
    /// fails only its own caller.
    fn apply_together(&self, work: &[(u64, Batch)]) -> Vec<(u64, Result<(), String>)> {
        let mut merged = Batch::default();
        for (_, b) in work {
            merged.extend(b);
        }
        if work.len() > 1 && self.restore(&merged, None).is_ok() {
            return work.iter().map(|(t, _)| (*t, Ok(()))).collect();
        }
        work.iter()
            .map(|(t, b)| (*t, self.restore(b, None).map_err(|e| e.to_string())))
            .collect()
    }

    /// Deletes `rules`, in one batch when they are all there, else one by one,
    /// skipping those already gone.
    pub fn delete(&self, rules: &[Rule], netns: Option<&File>) -> io::Result<()> {
        let mut batch = Batch::default();
        for r in rules {
            batch.delete(r);
        }
        if self.restore(&batch, netns).is_ok() {
            return Ok(());
        }
        let mut first_error = None;
        for r in rules {
            let mut cmd = Command::new(&self.iptables);
            cmd.args(["-w", "-t", &r.table, "-D", &r.chain]);
            cmd.args(r.spec.split_whitespace());
            let ran = {
                let _one = host_lock(netns);
                run(cmd, None, netns)
            };
            if let Err(e) = ran {
                let gone = e.to_string().contains("does a matching rule exist")
                    || e.to_string().contains("No chain/target/match by that name");
                if !gone && first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Runs a tool with `input` on stdin, in `netns` when given; its stdout, or its
/// stderr as the error.
fn run(mut cmd: Command, input: Option<&[u8]>, netns: Option<&File>) -> io::Result<String> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .env_clear()
    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    if let Some(ns) = netns {
        let fd = ns.as_raw_fd();
        // Between fork and exec: one system call.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("run {program}: {e}")))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(data)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(io::Error::other(format!(
            "{} failed ({}): {}",
            Path::new(&program)
                .file_name()
                .map_or(program.clone(), |n| n.to_string_lossy().into_owned()),
            out.status,
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One table as `iptables-save` shows it: chains and their rules in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Table {
    pub chains: BTreeMap<String, Vec<String>>,
}

impl Table {
    pub fn parse(text: &str) -> Table {
        let mut t = Table::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(':') {
                if let Some(name) = rest.split_whitespace().next() {
                    t.chains.entry(name.to_string()).or_default();
                }
            } else if let Some(rest) = line.strip_prefix("-A ") {
                let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
                t.chains
                    .entry(chain.to_string())
                    .or_default()
                    .push(spec.to_string());
            }
        }
        t
    }

    pub fn has_chain(&self, chain: &str) -> bool {
        self.chains.contains_key(chain)
    }

    pub fn has(&self, chain: &str, spec: &str) -> bool {
        self.chains
            .get(chain)
            .is_some_and(|rules| rules.iter().any(|r| r == spec))
    }

    /// The rules of `chain`, in order.
    pub fn rules(&self, chain: &str) -> &[String] {
        self.chains.get(chain).map_or(&[], Vec::as_slice)
    }
}

/// Changes to apply with one `iptables-restore --noflush`.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    tables: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.tables
            .values()
            .all(|(c, l)| c.is_empty() && l.is_empty())
    }

    /// Appends everything `other` does, after what this batch does.
    pub fn extend(&mut self, other: &Batch) {
        for (table, (chains, lines)) in &other.tables {
            let t = self.table(table);
            for c in chains {
                if !t.0.contains(c) {
                    t.0.push(c.clone());
                }
            }
            t.1.extend(lines.iter().cloned());
        }
    }

    fn table(&mut self, table: &str) -> &mut (Vec<String>, Vec<String>) {
        self.tables.entry(table.to_string()).or_default()
    }

    /// Declares a new chain. Only for chains that do not exist: `iptables-restore`
    /// flushes a declared chain that does.
    pub fn new_chain(&mut self, table: &str, chain: &str) {
        let line = format!(":{chain} - [0:0]");
        let t = self.table(table);
        if !t.0.contains(&line) {
            t.0.push(line);
        }
    }

    pub fn append(&mut self, r: &Rule) {
        self.table(&r.table)
            .1
            .push(format!("-A {} {}", r.chain, r.spec));
    }

    /// Inserts at `position` (1 is first).
    pub fn insert(&mut self, r: &Rule, position: usize) {
        self.table(&r.table)
            .1
            .push(format!("-I {} {position} {}", r.chain, r.spec));
    }

    pub fn delete(&mut self, r: &Rule) {
        self.table(&r.table)
            .1
            .push(format!("-D {} {}", r.chain, r.spec));
    }

    pub fn flush_chain(&mut self, table: &str, chain: &str) {
        self.table(table).1.push(format!("-F {chain}"));
    }

    pub fn delete_chain(&mut self, table: &str, chain: &str) {
        self.table(table).1.push(format!("-X {chain}"));
    }

    /// The `iptables-restore` input.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (table, (chains, lines)) in &self.tables {
            if chains.is_empty() && lines.is_empty() {
                continue;
            }
            out.push_str(&format!("*{table}\n"));
            for c in chains {
                out.push_str(c);
                out.push('\n');
            }
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
            out.push_str("COMMIT\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_output_parses_into_chains() {
        let t = Table::parse(
            "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n-A DOCKER -i docker0 -j RETURN\nCOMMIT\n",
        );
        assert!(t.has_chain("DOCKER"));
        assert!(t.has("PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER"));
        assert_eq!(t.rules("DOCKER"), ["-i docker0 -j RETURN"]);
        assert!(t.rules("OUTPUT").is_empty());
    }

    #[test]
    fn batches_render_per_table() {
        let mut b = Batch::default();
        assert!(b.is_empty());
        b.new_chain("nat", "DOCKER");
        b.append(&Rule::new("nat", "DOCKER", "-i docker0 -j RETURN"));
        b.insert(&Rule::new("filter", "FORWARD", "-j DOCKER-USER"), 1);
        assert_eq!(
            b.render(),
            "*filter\n-I FORWARD 1 -j DOCKER-USER\nCOMMIT\n*nat\n:DOCKER - [0:0]\n-A DOCKER -i docker0 -j RETURN\nCOMMIT\n"
        );
        let mut other = Batch::default();
        other.new_chain("nat", "DOCKER");
        other.append(&Rule::new("nat", "DOCKER", "-i br1 -j RETURN"));
        b.extend(&other);
        assert!(
            b.render().ends_with(":DOCKER - [0:0]\n-A DOCKER -i docker0 -j RETURN\n-A DOCKER -i br1 -j RETURN\nCOMMIT\n"),
            "{}",
            b.render()
        );
    }
}
