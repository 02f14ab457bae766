//! Docker's seccomp profile format — the JSON `--security-opt seccomp=FILE` sends
//! and the daemon's `seccomp-profile` names — and its compilation into one filter
//! for this machine and one container's capabilities, with runc's rules: a rule
//! applies when the container has every capability in `includes.caps` and none in
//! `excludes.caps`, when the host's architecture passes `includes.arches` and
//! `excludes.arches`, and the kernel is at least `includes.minKernel`; a name this
//! architecture does not have is skipped; numbers above the highest the profile
//! names answer `ENOSYS`, so that programs fall back from system calls newer than
//! the profile instead of taking `EPERM` for a refusal.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::bpf::{self, Cond, Insn, Op, Outcome, Packed};
use super::syscalls;

/// A profile as Docker writes it. Unknown fields are ignored, as Docker ignores them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    pub architectures: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "nullable")]
    pub listener_path: String,
    #[serde(default, deserialize_with = "nullable")]
    pub flags: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub syscalls: Vec<Syscall>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    pub sub_architectures: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    /// The single-name form of older profiles.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub names: Vec<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    pub comment: String,
    #[serde(default, deserialize_with = "nullable")]
    pub includes: Filter,
    #[serde(default, deserialize_with = "nullable")]
    pub excludes: Filter,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, deserialize_with = "nullable")]
    pub caps: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub arches: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub min_kernel: String,
}

impl Profile {
    /// No default action and no rules: Docker runs such a profile as no filter.
    pub fn is_empty(&self) -> bool {
        self.default_action.is_empty() && self.syscalls.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// Go decodes `null` as the zero value; so does this.
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Reads a profile, with Docker's words for JSON that is not one.
pub fn parse(json: &[u8]) -> Result<Profile, String> {
    let p: Profile = serde_json::from_slice(json)
        .map_err(|e| format!("Decoding seccomp profile failed: {e}"))?;
    if !p.architectures.is_empty() && !p.arch_map.is_empty() {
        return Err("both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'".into());
    }
    for s in &p.syscalls {
        if !s.name.is_empty() && !s.names.is_empty() {
            return Err("both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'".into());
        }
        for k in [&s.includes.min_kernel, &s.excludes.min_kernel] {
            if !k.is_empty() && kernel_version(k).is_none_or(|v| v == (0, 0)) {
                return Err(format!(
                    "invalid kernel version: {k}, expected \"<kernel>.<major>\""
                ));
            }
        }
    }
    // Refuse now what the compiler would refuse at every start.
    if !p.is_empty() {
        action(&p.default_action, p.default_errno_ret)?;
    }
    for s in &p.syscalls {
        action(&s.action, s.errno_ret)?;
        for a in &s.args {
            op(a)?;
            if a.index > 5 {
                return Err(format!(
                    "seccomp: argument index {} is out of range: a system call has 6 (0 to 5)",
                    a.index
                ));
            }
        }
    }
    Ok(p)
}

/// What the filter is built for: the container's capabilities (`CAP_…`) and the
/// kernel's version.
pub struct Target<'a> {
    pub caps: &'a [String],
    pub kernel: (u32, u32),
}

/// An architecture the compiler has numbers for.
struct Arch {
    /// libseccomp's name in profiles.
    name: &'static str,
    audit: u32,
    table: &'static [(&'static str, u32)],
    /// Arguments are 64 bits wide.
    wide: bool,
}

const X86_64: Arch = Arch {
    name: "SCMP_ARCH_X86_64",
    audit: 0xc000_003e,
    table: syscalls::X86_64,
    wide: true,
};
const X86: Arch = Arch {
    name: "SCMP_ARCH_X86",
    audit: 0x4000_0003,
    table: syscalls::I386,
    wide: false,
};

/// The host's architecture as Go names it (`includes.arches`), and the filter
/// architectures this compiler supports on it, native first.
#[cfg(target_arch = "x86_64")]
const HOST: (&str, &[Arch]) = ("amd64", &[X86_64, X86]);
#[cfg(not(target_arch = "x86_64"))]
const HOST: (&str, &[Arch]) = ("", &[]);

/// Whether filters can be built on this architecture.
pub fn supported() -> bool {
    !HOST.1.is_empty()
}

const ACT_KILL_PROCESS: u32 = 0x8000_0000;
const ACT_KILL_THREAD: u32 = 0;
const ACT_TRAP: u32 = 0x0003_0000;
const ACT_ERRNO: u32 = 0x0005_0000;
const ACT_TRACE: u32 = 0x7ff0_0000;
const ACT_LOG: u32 = 0x7ffc_0000;
pub const ACT_ALLOW: u32 = 0x7fff_0000;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A profile action as the kernel's return value; `SCMP_ACT_ERRNO` and
/// `SCMP_ACT_TRACE` without `errnoRet` return `EPERM`, as with runc.
fn action(name: &str, errno: Option<u32>) -> Result<u32, String> {
    let data = errno.unwrap_or(libc::EPERM as u32) & 0xffff;
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ACT_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => ACT_KILL_PROCESS,
        "SCMP_ACT_TRAP" => ACT_TRAP,
        "SCMP_ACT_ERRNO" => ACT_ERRNO | data,
        "SCMP_ACT_TRACE" => ACT_TRACE | data,
        "SCMP_ACT_LOG" => ACT_LOG,
        "SCMP_ACT_ALLOW" => ACT_ALLOW,
        "SCMP_ACT_NOTIFY" => {
            return Err(
                "SCMP_ACT_NOTIFY is not supported by this daemon: it has no seccomp agent".into(),
            );
        }
        other => return Err(format!("string {other} is not a valid action for seccomp")),
    })
}

fn op(a: &Arg) -> Result<Op, String> {
    Ok(match a.op.as_str() {
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq { mask: a.value },
        other => {
            return Err(format!(
                "string {other} is not a valid operator for seccomp"
            ));
        }
    })
}

fn cond(a: &Arg) -> Result<Cond, String> {
    let op = op(a)?;
    let value = match op {
        // libseccomp's masked compare: `value` is the mask, `valueTwo` the datum.
        Op::MaskedEq { .. } => a.value_two,
        _ => a.value,
    };
    Ok(Cond {
        index: a.index,
        op,
        value,
    })
}

/// `"4.8"` → (4, 8).
pub fn kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

impl Syscall {
    /// Whether the rule applies to this container on this host.
    fn applies(&self, t: &Target<'_>) -> Result<bool, String> {
        let arch = HOST.0;
        let has = |c: &String| t.caps.iter().any(|x| x == c);
        if self.excludes.arches.iter().any(|a| a == arch)
            || (!self.includes.arches.is_empty() && !self.includes.arches.iter().any(|a| a == arch))
            || self.excludes.caps.iter().any(has)
            || !self.includes.caps.iter().all(has)
        {
            return Ok(false);
        }
        for (k, include) in [
            (&self.includes.min_kernel, true),
            (&self.excludes.min_kernel, false),
        ] {
            if k.is_empty() {
                continue;
            }
            let v = kernel_version(k).ok_or_else(|| {
                format!("invalid kernel version: {k}, expected \"<kernel>.<major>\"")
            })?;
            if (t.kernel >= v) != include {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn all_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str())
            .filter(|n| !n.is_empty())
            .chain(self.names.iter().map(String::as_str))
    }
}

/// The syscall rules of one architecture, by number.
#[derive(Default)]
struct Rules {
    by_nr: BTreeMap<u32, Outcome>,
    unconditional: BTreeMap<u32, u32>,
}

/// Compiles `p` for `t` into the filter the monitor installs.
pub fn compile(p: &Profile, t: &Target<'_>) -> Result<Vec<Packed>, String> {
    if !supported() {
        return Err("seccomp filters can only be built on x86_64 by this daemon".into());
    }
    let default = action(&p.default_action, p.default_errno_ret)?;
    let arches = filter_arches(p);

    let mut sections: Vec<Vec<Insn>> = Vec::new();
    for arch in &arches {
        let mut rules = Rules::default();
        let mut highest = None;
        for s in &p.syscalls {
            if !s.applies(t)? {
                continue;
            }
            // The highest number of the rules that apply, as runc counts them.
            let named: Vec<(&str, u32)> = s
                .all_names()
                .filter_map(|n| number(arch, n).map(|nr| (n, nr)))
                .collect();
            highest = named.iter().map(|&(_, nr)| nr).chain(highest).max();
            let act = action(&s.action, s.errno_ret)?;
            // runc leaves out a rule that does what the default does.
            if act == default {
                continue;
            }
            let conds: Vec<Cond> = s.args.iter().map(cond).collect::<Result<_, _>>()?;
            for (name, nr) in named {
                add(&mut rules, nr, name, &conds, act, default)?;
            }
        }
        let body = ranges(rules, default, highest);
        let mut code = vec![bpf::load(bpf::OFF_NR)];
        if arch.audit == X86_64.audit {
            // The x32 ABI (numbers with bit 30 set) has numbers of its own this
            // compiler does not have: its calls are refused as on a kernel without
            // x32, so that no rule can be bypassed through it.
            code.push(bpf::jge(X32_SYSCALL_BIT, 0, 1));
            code.push(bpf::ret(ACT_ERRNO | libc::ENOSYS as u32));
        }
        code.extend(bpf::dispatch(&body, default, arch.wide));
        sections.push(code);
    }

    // The architecture check: each known one jumps to its section; any other is
    // killed, libseccomp's answer to an architecture outside the filter.
    let mut prog = vec![bpf::load(bpf::OFF_ARCH)];
    let header_len = 1 + 2 * arches.len() + 1;
    let mut at = header_len;
    for (i, arch) in arches.iter().enumerate() {
        prog.push(bpf::jeq(arch.audit, 0, 1));
        let from = prog.len() + 1;
        prog.push(bpf::ja((at - from) as u32));
        at += sections[i].len();
    }
    prog.push(bpf::ret(ACT_KILL_THREAD));
    for s in sections {
        prog.extend(s);
    }
    if prog.len() > 4096 {
        return Err(format!(
            "seccomp: the profile needs {} BPF instructions, more than the kernel's 4096",
            prog.len()
        ));
    }
    Ok(prog.into_iter().map(Insn::pack).collect())
}

/// The architectures of the filter: `archMap`'s entry for this host with its
/// sub-architectures, or `architectures`, or the native one alone; those this
/// compiler has no numbers for are left out (their calls are killed, as for any
/// architecture outside the filter).
fn filter_arches(p: &Profile) -> Vec<&'static Arch> {
    let host = HOST.1;
    let native = &host[0];
    let names: Vec<&str> =
        if let Some(m) = p.arch_map.iter().find(|m| m.architecture == native.name) {
            std::iter::once(m.architecture.as_str())
                .chain(m.sub_architectures.iter().map(String::as_str))
                .collect()
        } else if !p.architectures.is_empty() {
            p.architectures.iter().map(String::as_str).collect()
        } else {
            vec![native.name]
        };
    let mut out = vec![native];
    for a in host.iter().skip(1) {
        if names.contains(&a.name) {
            out.push(a);
        }
    }
    out
}

fn number(arch: &Arch, name: &str) -> Option<u32> {
    type Index = std::collections::HashMap<&'static str, u32>;
    static INDEXES: std::sync::OnceLock<Vec<(u32, Index)>> = std::sync::OnceLock::new();
    let indexes = INDEXES.get_or_init(|| {
        HOST.1
            .iter()
            .map(|a| (a.audit, a.table.iter().copied().collect()))
            .collect()
    });
    indexes
        .iter()
        .find(|(audit, _)| *audit == arch.audit)
        .and_then(|(_, index)| index.get(name).copied())
}

/// Adds one rule for syscall `nr`. Conditions on distinct arguments must all hold;
/// several conditions on the same argument are alternatives, each its own rule (runc's
/// reading, since they could never all hold).
fn add(
    rules: &mut Rules,
    nr: u32,
    name: &str,
    conds: &[Cond],
    act: u32,
    default: u32,
) -> Result<(), String> {
    if conds.is_empty() {
        if let Some(prev) = rules.unconditional.insert(nr, act)
            && prev != act
        {
            return Err(format!(
                "seccomp: conflicting actions for syscall {name}: two rules without arguments"
            ));
        }
        let o = rules
            .by_nr
            .entry(nr)
            .or_insert_with(|| Outcome::plain(default));
        o.otherwise = act;
        // Conditional rules with the same action add nothing.
        o.rules.retain(|(_, a)| *a != act);
        return Ok(());
    }
    let o = rules
        .by_nr
        .entry(nr)
        .or_insert_with(|| Outcome::plain(default));
    if rules.unconditional.get(&nr) == Some(&act) {
        return Ok(());
    }
    let mut indexes: Vec<u32> = conds.iter().map(|c| c.index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    if indexes.len() == conds.len() {
        o.rules.push((conds.to_vec(), act));
    } else {
        o.rules.extend(conds.iter().map(|c| (vec![*c], act)));
    }
    Ok(())
}

/// The ranges the dispatch searches: every number up to the highest the profile
/// names, with runs of the same outcome merged, then `ENOSYS` beyond.
fn ranges(rules: Rules, default: u32, highest: Option<u32>) -> Vec<(u32, Outcome)> {
    let mut out: Vec<(u32, Outcome)> = Vec::new();
    let mut next = 0u32;
    let push = |out: &mut Vec<(u32, Outcome)>, start: u32, o: Outcome| {
        let merge = out
            .last()
            .is_some_and(|(_, last)| *last == o && o.rules.is_empty());
        if !merge {
            out.push((start, o));
        }
    };
    for (nr, o) in rules.by_nr {
        if nr > next {
            push(&mut out, next, Outcome::plain(default));
        }
        push(&mut out, nr, o);
        next = nr + 1;
    }
    let Some(highest) = highest else {
        return vec![(0, Outcome::plain(default))];
    };
    if highest + 1 > next {
        push(&mut out, next, Outcome::plain(default));
    }
    // A permissive default needs no stub.
    let beyond = if [ACT_ALLOW, ACT_LOG].contains(&default) || default & 0xffff_0000 == ACT_TRACE {
        default
    } else {
        ACT_ERRNO | libc::ENOSYS as u32
    };
    push(&mut out, highest + 1, Outcome::plain(beyond));
    if out.first().is_some_and(|(s, _)| *s > 0) {
        out.insert(0, (0, Outcome::plain(default)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPERM: u32 = ACT_ERRNO | 1;
    const ENOSYS: u32 = ACT_ERRNO | 38;

    fn run(prog: &[Packed], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let insns: Vec<Insn> = prog.iter().map(|p| Insn::unpack(*p)).collect();
        bpf::run(&insns, nr, arch, args)
    }

    fn target(caps: &[String]) -> Target<'_> {
        Target {
            caps,
            kernel: (6, 1),
        }
    }

    #[test]
    fn rules_apply_by_capability_arch_and_kernel() {
        let p = parse(
            br#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
                 "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]}],
                 "syscalls":[
                   {"names":["read","write","nosuchcall"],"action":"SCMP_ACT_ALLOW"},
                   {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
                   {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                   {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]},
                   {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}],"excludes":{"caps":["CAP_SYS_ADMIN"]}},
                   {"names":["clone"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
                   {"names":["arch_prctl"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["amd64"]}},
                   {"names":["bpf"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"9.0"}},
                   {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38,"excludes":{"caps":["CAP_SYS_ADMIN"]}},
                   {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1}
                 ]}"#,
        )
        .unwrap();
        let x64 = X86_64.audit;
        let plain: Vec<String> = vec!["CAP_CHOWN".into()];
        let prog = compile(&p, &target(&plain)).unwrap();
        assert_eq!(run(&prog, x64, 0, [0; 6]), ACT_ALLOW);
        assert_eq!(run(&prog, x64, 1, [0; 6]), ACT_ALLOW);
        assert_eq!(
            run(&prog, x64, 165, [0; 6]),
            EPERM,
            "mount without CAP_SYS_ADMIN"
        );
        assert_eq!(run(&prog, x64, 135, [8, 0, 0, 0, 0, 0]), ACT_ALLOW);
        assert_eq!(run(&prog, x64, 135, [0; 6]), ACT_ALLOW);
        assert_eq!(run(&prog, x64, 135, [9, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(run(&prog, x64, 56, [0x11, 0, 0, 0, 0, 0]), ACT_ALLOW);
        assert_eq!(
            run(&prog, x64, 56, [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(run(&prog, x64, 158, [0; 6]), ACT_ALLOW, "arch_prctl");
        assert_eq!(run(&prog, x64, 321, [0; 6]), EPERM, "bpf needs kernel 9.0");
        assert_eq!(run(&prog, x64, 435, [0; 6]), ENOSYS, "clone3");
        // Above the highest number the profile names (clone3, 435): ENOSYS.
        assert_eq!(run(&prog, x64, 436, [0; 6]), ENOSYS);
        assert_eq!(run(&prog, x64, 0x4000_0000, [0; 6]), ENOSYS, "x32");
        // i386 has its own numbers: read is 3 there, mount 21.
        assert_eq!(run(&prog, X86.audit, 3, [0; 6]), ACT_ALLOW);
        assert_eq!(run(&prog, X86.audit, 21, [0; 6]), EPERM);
        // An architecture outside the filter is killed.
        assert_eq!(run(&prog, 0xc000_00b7, 0, [0; 6]), ACT_KILL_THREAD);

        let admin: Vec<String> = vec!["CAP_SYS_ADMIN".into()];
        let prog = compile(&p, &target(&admin)).unwrap();
        assert_eq!(run(&prog, x64, 165, [0; 6]), ACT_ALLOW);
        assert_eq!(
            run(&prog, x64, 56, [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
            ACT_ALLOW
        );
        // No rule that applies names clone3 any more: it is above the highest
        // number of those that do (mount, 165).
        assert_eq!(run(&prog, x64, 435, [0; 6]), ENOSYS);
        assert_eq!(run(&prog, x64, 166, [0; 6]), ENOSYS);
        assert_eq!(run(&prog, x64, 164, [0; 6]), EPERM);
    }

    #[test]
    fn bad_profiles_are_refused_with_dockers_words() {
        let e = parse(b"{nope").unwrap_err();
        assert!(e.starts_with("Decoding seccomp profile failed: "), "{e}");
        let e = parse(br#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#).unwrap_err();
        assert!(e.contains("use either 'architectures' or 'archMap'"), "{e}");
        let e = parse(br#"{"defaultAction":"SCMP_ACT_NOPE"}"#).unwrap_err();
        assert!(e.contains("SCMP_ACT_NOPE"), "{e}");
        let e = parse(br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_SOMETIMES"}]}]}"#).unwrap_err();
        assert!(e.contains("SCMP_CMP_SOMETIMES"), "{e}");
        let p = parse(br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO"},{"names":["read"],"action":"SCMP_ACT_KILL"}]}"#).unwrap();
        let e = compile(&p, &target(&[])).unwrap_err();
        assert!(e.contains("conflicting actions for syscall read"), "{e}");
    }

    #[test]
    fn a_deny_list_profile_allows_the_rest() {
        let p = parse(br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#).unwrap();
        let prog = compile(&p, &target(&[])).unwrap();
        let x64 = X86_64.audit;
        assert_eq!(run(&prog, x64, 83, [0; 6]), EPERM);
        assert_eq!(run(&prog, x64, 258, [0; 6]), EPERM);
        assert_eq!(run(&prog, x64, 0, [0; 6]), ACT_ALLOW);
        assert_eq!(run(&prog, x64, 1000, [0; 6]), ACT_ALLOW);
    }

    #[test]
    fn arguments_on_the_same_index_are_alternatives() {
        let p = parse(br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#).unwrap();
        let prog = compile(&p, &target(&[])).unwrap();
        let x64 = X86_64.audit;
        assert_eq!(run(&prog, x64, 41, [1, 0, 0, 0, 0, 0]), ACT_ALLOW);
        assert_eq!(run(&prog, x64, 41, [2, 0, 0, 0, 0, 0]), ACT_ALLOW);
        assert_eq!(run(&prog, x64, 41, [3, 0, 0, 0, 0, 0]), EPERM);
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(kernel_version("6.18.44-fc-v857"), Some((6, 18)));
        assert_eq!(kernel_version("4.8"), Some((4, 8)));
        assert_eq!(kernel_version("x"), None);
    }
}
