//! Which device nodes a container may use, as cgroup rules (`c 1:3 rwm`).
//!
//! cgroup v1 takes the rules as text in `devices.allow`/`devices.deny`. cgroup v2 has
//! no devices controller: the kernel asks an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the cgroup instead. This module compiles
//! the rules into such a program (a few instructions per rule, deny by default) and
//! attaches it, as runc does on v2 hosts.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Device kinds as the kernel passes them to the program.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
/// Access bits as the kernel passes them to the program.
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;

/// One allow rule: `c 136:* rwm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// `None` for `a` (any kind).
    pub kind: Option<char>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Bits of [`ACC_MKNOD`], [`ACC_READ`], [`ACC_WRITE`].
    pub access: u32,
}

/// Parses a rule in the cgroup v1 text form (`a`, `c 1:3 rwm`, `b *:* m`).
pub fn parse_rule(text: &str) -> Result<Rule, String> {
    let bad = || format!("invalid device rule {text:?}");
    let mut parts = text.split_whitespace();
    let kind = match parts.next() {
        Some("a") => None,
        Some("c") => Some('c'),
        Some("b") => Some('b'),
        _ => return Err(bad()),
    };
    let (major, minor, access) = match (parts.next(), parts.next()) {
        (None, None) if kind.is_none() => (None, None, ACC_MKNOD | ACC_READ | ACC_WRITE),
        (Some(numbers), Some(acc)) => {
            let (ma, mi) = numbers.split_once(':').ok_or_else(bad)?;
            let num = |s: &str| -> Result<Option<u32>, String> {
                if s == "*" {
                    Ok(None)
                } else {
                    s.parse().map(Some).map_err(|_| bad())
                }
            };
            let mut bits = 0;
            for c in acc.chars() {
                bits |= match c {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    _ => return Err(bad()),
                };
            }
            (num(ma)?, num(mi)?, bits)
        }
        _ => return Err(bad()),
    };
    Ok(Rule {
        kind,
        major,
        minor,
        access,
    })
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}
/// dst = *(u32 *)(src + off)
fn load_word(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61, dst, src, off, 0)
}
/// dst &= imm
fn and_imm(dst: u8, imm: i32) -> Insn {
    insn(0x57, dst, 0, 0, imm)
}
/// dst >>= imm
fn shift_right(dst: u8, imm: i32) -> Insn {
    insn(0x77, dst, 0, 0, imm)
}
/// dst = src
fn mov_reg(dst: u8, src: u8) -> Insn {
    insn(0xbf, dst, src, 0, 0)
}
/// dst = imm
fn mov_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
/// if dst != imm: skip `off` instructions
fn jump_if_not(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x55, dst, 0, off, imm)
}
fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}

/// The program allowing exactly `rules` (everything else is denied). Its context is
/// `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }` with the
/// kind in the low and the access in the high 16 bits of `access_type`.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut prog = vec![
        load_word(R2, R1, 0),
        and_imm(R2, 0xffff),
        load_word(R3, R1, 0),
        shift_right(R3, 16),
        load_word(R4, R1, 4),
        load_word(R5, R1, 8),
    ];
    for rule in rules {
        // Each check jumps past the rest of this rule's block when it fails.
        let mut checks: Vec<(u8, i32)> = Vec::new();
        let mut block: Vec<Insn> = Vec::new();
        if let Some(kind) = rule.kind {
            checks.push((R2, if kind == 'b' { DEV_BLOCK } else { DEV_CHAR }));
        }
        let all = ACC_MKNOD | ACC_READ | ACC_WRITE;
        let access_check = rule.access & all != all;
        if let Some(major) = rule.major {
            checks.push((R4, major as i32));
        }
        if let Some(minor) = rule.minor {
            checks.push((R5, minor as i32));
        }
        let len = checks.len() + if access_check { 3 } else { 0 } + 2;
        let push_check = |block: &mut Vec<Insn>, reg: u8, value: i32| {
            let at = block.len();
            block.push(jump_if_not(reg, value, (len - at - 1) as i16));
        };
        if access_check {
            // Asked-for access outside the rule's bits: not this rule.
            block.push(mov_reg(R1, R3));
            block.push(and_imm(R1, !(rule.access as i32)));
            push_check(&mut block, R1, 0);
        }
        for (reg, value) in checks {
            push_check(&mut block, reg, value);
        }
        block.push(mov_imm(R0, 1));
        block.push(exit());
        debug_assert_eq!(block.len(), len);
        prog.extend(block);
    }
    prog.push(mov_imm(R0, 0));
    prog.push(exit());
    prog
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// Loads the program for `rules` and attaches it to the cgroup v2 directory `cgroup`.
/// The kernel keeps it for as long as the cgroup exists.
pub fn attach(cgroup: RawFd, rules: &[Rule]) -> io::Result<()> {
    let prog = program(rules);
    let license = c"Apache";
    let mut name = [0u8; 16];
    name[..14].copy_from_slice(b"docker_devices");
    let load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..ProgLoadAttr::default()
    };
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &load as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!(
                "load the device access program: {}",
                crate::store::strip_os_suffix(&e)
            ),
        ));
    }
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attach = ProgAttachAttr {
        target_fd: cgroup as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attach as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!(
                "attach the device access program: {}",
                crate::store::strip_os_suffix(&e)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_like_cgroup_v1() {
        assert_eq!(
            parse_rule("c 1:3 rwm").unwrap(),
            Rule {
                kind: Some('c'),
                major: Some(1),
                minor: Some(3),
                access: 7
            }
        );
        assert_eq!(
            parse_rule("b *:* m").unwrap(),
            Rule {
                kind: Some('b'),
                major: None,
                minor: None,
                access: ACC_MKNOD
            }
        );
        assert_eq!(parse_rule("a").unwrap().kind, None);
        for bad in ["", "x 1:2 r", "c 1 r", "c 1:2 q", "c a:2 r"] {
            assert!(parse_rule(bad).is_err(), "{bad:?}");
        }
    }

    /// Runs the program on one request, the way the kernel would.
    fn eval(prog: &[Insn], kind: i32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [
            ((access << 16) | kind as u32) as u64,
            major as u64,
            minor as u64,
        ];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                0x61 => {
                    assert_eq!(src, 1);
                    r[dst] = ctx[i.off as usize / 4] & 0xffff_ffff;
                }
                0x57 => r[dst] &= i.imm as i64 as u64,
                0x77 => r[dst] >>= i.imm,
                0xbf => r[dst] = r[src],
                0xb7 => r[dst] = i.imm as i64 as u64,
                0x55 => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                0x95 => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn the_default_program_allows_only_the_default_rules() {
        let rules: Vec<Rule> = crate::init::cgroup::DEFAULT_DEVICE_RULES
            .iter()
            .map(|r| parse_rule(r).unwrap())
            .collect();
        let p = program(&rules);
        let rwm = ACC_READ | ACC_WRITE | ACC_MKNOD;
        // /dev/null, /dev/zero, pts 136:5, ptmx: everything.
        assert_eq!(eval(&p, DEV_CHAR, rwm, 1, 3), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 5), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_WRITE, 136, 5), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 5, 2), 1);
        // Any node may be created, but not used.
        assert_eq!(eval(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 1);
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 8, 0), 0);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ | ACC_MKNOD, 1, 1), 0);
        // /dev/kmsg, /dev/mem, fuse: refused.
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 11), 0);
        assert_eq!(eval(&p, DEV_CHAR, ACC_WRITE, 1, 1), 0);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 10, 229), 0);
        // An empty rule set denies everything.
        assert_eq!(eval(&program(&[]), DEV_CHAR, ACC_READ, 1, 3), 0);
    }
}
