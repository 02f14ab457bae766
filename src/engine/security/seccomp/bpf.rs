//! Classic BPF for seccomp: the few instructions a filter needs, and the code for
//! one architecture's section — a binary search over syscall-number ranges, each
//! leaf a `ret` or a small block that checks arguments.
//!
//! Every block is self-contained (all its exits are `ret`), so the only jumps that
//! can be long are the search tree's; those go through `ja`, whose offset is 32
//! bits, where a conditional jump's 8 bits do not reach.

pub use crate::init::spec::{PackedSockFilter as Packed, SockFilter as Insn};

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JMP_JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JGT: u16 = 0x25;
const JMP_JGE: u16 = 0x35;
const ALU_AND: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Offsets in `struct seccomp_data`.
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

pub fn load(offset: u32) -> Insn {
    Insn {
        code: LD_W_ABS,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

pub fn ret(action: u32) -> Insn {
    Insn {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: action,
    }
}

pub fn ja(offset: u32) -> Insn {
    Insn {
        code: JMP_JA,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

fn jump(code: u16, k: u32, jt: usize, jf: usize) -> Insn {
    // Blocks are small; a longer jump is a bug in this compiler, not in a profile.
    assert!(jt <= 255 && jf <= 255, "conditional jump out of range");
    Insn {
        code,
        jt: jt as u8,
        jf: jf as u8,
        k,
    }
}

pub fn jeq(k: u32, jt: usize, jf: usize) -> Insn {
    jump(JMP_JEQ, k, jt, jf)
}

fn jgt(k: u32, jt: usize, jf: usize) -> Insn {
    jump(JMP_JGT, k, jt, jf)
}

pub fn jge(k: u32, jt: usize, jf: usize) -> Insn {
    jump(JMP_JGE, k, jt, jf)
}

fn and(k: u32) -> Insn {
    Insn {
        code: ALU_AND,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A comparison of one 64-bit argument, libseccomp's `SCMP_CMP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & mask) == value`.
    MaskedEq {
        mask: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    pub index: u32,
    pub op: Op,
    pub value: u64,
}

/// What one syscall number does: rules with conditions, tried in order, then the
/// action when none matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub rules: Vec<(Vec<Cond>, u32)>,
    pub otherwise: u32,
}

impl Outcome {
    pub fn plain(action: u32) -> Outcome {
        Outcome {
            rules: Vec::new(),
            otherwise: action,
        }
    }
}

/// The code of one architecture's section, entered with the syscall number in the
/// accumulator: `ranges` are `(first number, outcome)` sorted by number, each range
/// reaching to the next one's start; numbers below the first get `below`.
pub fn dispatch(ranges: &[(u32, Outcome)], below: u32, wide_args: bool) -> Vec<Insn> {
    if ranges.is_empty() {
        return vec![ret(below)];
    }
    let mut code = Vec::new();
    if ranges[0].0 > 0 {
        code.push(jge(ranges[0].0, 1, 0));
        code.push(ret(below));
    }
    code.extend(tree(ranges, wide_args));
    code
}

fn tree(ranges: &[(u32, Outcome)], wide_args: bool) -> Vec<Insn> {
    if ranges.len() == 1 {
        return outcome(&ranges[0].1, wide_args);
    }
    let mid = ranges.len() / 2;
    let left = tree(&ranges[..mid], wide_args);
    let right = tree(&ranges[mid..], wide_args);
    let split = ranges[mid].0;
    let mut code = Vec::with_capacity(left.len() + right.len() + 2);
    if left.len() <= 255 {
        code.push(jge(split, left.len(), 0));
    } else {
        code.push(jge(split, 0, 1));
        code.push(ja(left.len() as u32));
    }
    code.extend(left);
    code.extend(right);
    code
}

/// The block for one outcome; every path ends in `ret`.
fn outcome(o: &Outcome, wide_args: bool) -> Vec<Insn> {
    let mut code = Vec::new();
    for (conds, action) in &o.rules {
        let mut rule = Vec::new();
        for c in conds {
            condition(c, wide_args, &mut rule);
        }
        rule.push(Step::Insn(ret(*action)));
        // A failed test jumps to the first instruction after the rule.
        let len = rule.len();
        code.extend(rule.into_iter().enumerate().map(|(i, step)| match step {
            Step::Insn(insn) => insn,
            Step::FailIf { code, k, when } => {
                let to_end = len - i - 1;
                if when {
                    jump(code, k, to_end, 0)
                } else {
                    jump(code, k, 0, to_end)
                }
            }
        }));
    }
    code.push(ret(o.otherwise));
    code
}

/// An instruction of a rule, or a test that leaves the rule (to the next one)
/// when its comparison comes out `when`, and falls through otherwise.
enum Step {
    Insn(Insn),
    FailIf { code: u16, k: u32, when: bool },
}

/// Code that falls through when the condition holds and jumps to the end of the
/// rule when it does not. A 64-bit argument is compared as its high then its low
/// word (little-endian); an architecture with 32-bit arguments compares the low
/// word alone, as libseccomp does.
fn condition(c: &Cond, wide: bool, out: &mut Vec<Step>) {
    let lo_off = OFF_ARGS + 8 * c.index;
    let hi_off = lo_off + 4;
    let (vhi, vlo) = ((c.value >> 32) as u32, c.value as u32);
    let insn = |i: Insn| Step::Insn(i);
    match c.op {
        Op::Eq => {
            if wide {
                out.push(insn(load(hi_off)));
                out.push(Step::FailIf {
                    code: JMP_JEQ,
                    k: vhi,
                    when: false,
                });
            }
            out.push(insn(load(lo_off)));
            out.push(Step::FailIf {
                code: JMP_JEQ,
                k: vlo,
                when: false,
            });
        }
        Op::MaskedEq { mask } => {
            let (mhi, mlo) = ((mask >> 32) as u32, mask as u32);
            if wide {
                out.push(insn(load(hi_off)));
                out.push(insn(and(mhi)));
                out.push(Step::FailIf {
                    code: JMP_JEQ,
                    k: vhi & mhi,
                    when: false,
                });
            }
            out.push(insn(load(lo_off)));
            out.push(insn(and(mlo)));
            out.push(Step::FailIf {
                code: JMP_JEQ,
                k: vlo & mlo,
                when: false,
            });
        }
        Op::Ne => {
            if wide {
                // High words differ: holds, skip the low-word test.
                out.push(insn(load(hi_off)));
                out.push(insn(jeq(vhi, 0, 2)));
            }
            out.push(insn(load(lo_off)));
            out.push(Step::FailIf {
                code: JMP_JEQ,
                k: vlo,
                when: true,
            });
        }
        Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            let (low_code, greater) = match c.op {
                Op::Gt => (JMP_JGT, true),
                Op::Ge => (JMP_JGE, true),
                Op::Lt => (JMP_JGE, false),
                _ => (JMP_JGT, false),
            };
            if wide {
                out.push(insn(load(hi_off)));
                if greater {
                    // hi > vhi holds (skip to after the low test); hi < vhi fails.
                    out.push(insn(jgt(vhi, 3, 0)));
                    out.push(Step::FailIf {
                        code: JMP_JEQ,
                        k: vhi,
                        when: false,
                    });
                } else {
                    // hi < vhi holds; hi > vhi fails.
                    out.push(insn(jge(vhi, 0, 3)));
                    out.push(Step::FailIf {
                        code: JMP_JEQ,
                        k: vhi,
                        when: false,
                    });
                }
            }
            out.push(insn(load(lo_off)));
            if greater {
                out.push(Step::FailIf {
                    code: low_code,
                    k: vlo,
                    when: false,
                });
            } else {
                out.push(Step::FailIf {
                    code: low_code,
                    k: vlo,
                    when: true,
                });
            }
        }
    }
}

/// A tiny interpreter for the instructions this compiler emits: the unit tests
/// run filters against made-up syscalls with it.
#[cfg(test)]
pub fn run(prog: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        let o = 16 + 8 * i;
        data[o..o + 8].copy_from_slice(&a.to_le_bytes());
    }
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => {
                let o = i.k as usize;
                acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
            }
            ALU_AND => acc &= i.k,
            JMP_JA => pc += i.k as usize,
            JMP_JEQ | JMP_JGT | JMP_JGE => {
                let t = match i.code {
                    JMP_JEQ => acc == i.k,
                    JMP_JGT => acc > i.k,
                    _ => acc >= i.k,
                };
                pc += usize::from(if t { i.jt } else { i.jf });
            }
            RET_K => return i.k,
            other => panic!("unexpected instruction {other:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = 0x7fff_0000;
    const E: u32 = 0x0005_0001;

    fn cond(op: Op, value: u64) -> Outcome {
        Outcome {
            rules: vec![(
                vec![Cond {
                    index: 1,
                    op,
                    value,
                }],
                A,
            )],
            otherwise: E,
        }
    }

    /// A section as the compiler lays it out: the number loaded, then the search.
    fn section(ranges: &[(u32, Outcome)], below: u32) -> Vec<Insn> {
        let mut prog = vec![load(OFF_NR)];
        prog.extend(dispatch(ranges, below, true));
        prog
    }

    fn check(op: Op, value: u64, arg: u64) -> bool {
        let prog = section(&[(7, cond(op, value)), (8, Outcome::plain(E))], E);
        run(&prog, 7, 0, [0, arg, 0, 0, 0, 0]) == A
    }

    #[test]
    fn comparisons_on_64_bit_arguments() {
        let big = 0x1_0000_0005u64;
        for (op, cases) in [
            (Op::Eq, [(big, true), (5, false), (big + 1, false)]),
            (Op::Ne, [(big, false), (5, true), (0x2_0000_0005, true)]),
            (
                Op::Gt,
                [(big + 1, true), (big, false), (0x2_0000_0000, true)],
            ),
            (Op::Ge, [(big, true), (big - 1, false), (6, false)]),
            (
                Op::Lt,
                [(big - 1, true), (big, false), (0x2_0000_0000, false)],
            ),
            (Op::Le, [(big, true), (big + 1, false), (0xffff_ffff, true)]),
        ] {
            for (arg, want) in cases {
                assert_eq!(check(op, big, arg), want, "{op:?} {big:#x} vs {arg:#x}");
            }
        }
        let m = Op::MaskedEq { mask: 0x7e02_0000 };
        assert!(check(m, 0, 0x11));
        assert!(!check(m, 0, 0x1000_0000));
    }

    #[test]
    fn a_search_over_many_ranges_finds_each_outcome() {
        // Alternate allow/deny over 600 numbers: the tree needs long jumps.
        let ranges: Vec<(u32, Outcome)> = (0..600u32)
            .map(|n| {
                (
                    n * 2 + 1,
                    Outcome::plain(if n % 2 == 0 { A } else { E + n }),
                )
            })
            .collect();
        let prog = section(&ranges, 42);
        assert!(prog.len() > 1000);
        assert_eq!(run(&prog, 0, 0, [0; 6]), 42);
        for n in 0..600u32 {
            let want = if n % 2 == 0 { A } else { E + n };
            assert_eq!(run(&prog, n * 2 + 1, 0, [0; 6]), want);
            assert_eq!(run(&prog, n * 2 + 2, 0, [0; 6]), want);
        }
    }

    #[test]
    fn packing_round_trips() {
        let i = jeq(0xdead_beef, 3, 200);
        assert_eq!(Insn::unpack(i.pack()), i);
    }
}
