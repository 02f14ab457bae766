//! Detach keys: the key sequence that, typed on an attached terminal, leaves the
//! process running and ends the attachment (`--detach-keys`, `detachKeys`).

/// Ctrl-P Ctrl-Q, Docker's default.
pub const DEFAULT: [u8; 2] = [0x10, 0x11];

/// The bytes of a sequence written as Docker writes it: comma-separated keys, each
/// one character, `ctrl-X` (X one of `@`, `a`–`z`, `[`, `\`, `]`, `^`, `_`) or `DEL`.
/// An empty sequence is the default.
pub fn parse(keys: &str) -> Result<Vec<u8>, String> {
    if keys.is_empty() {
        return Ok(DEFAULT.to_vec());
    }
    keys.split(',')
        .map(|key| match key.as_bytes() {
            [b] => Ok(*b),
            _ if key == "DEL" => Ok(127),
            [b'c', b't', b'r', b'l', b'-', c] => match c {
                b'@' => Ok(0),
                b'a'..=b'z' => Ok(c - b'a' + 1),
                b'[' | b'\\' | b']' | b'^' | b'_' => Ok(c - b'[' + 27),
                _ => Err(format!("Unknown character: '{key}'")),
            },
            _ => Err(format!("Unknown character: '{key}'")),
        })
        .collect()
}

/// Watches a client's keystrokes for the sequence. Bytes that may begin it are held
/// back until the sequence completes (and they are swallowed) or breaks off (and
/// they go on to the process), so the process never sees the detach keys.
#[derive(Debug, Clone)]
pub struct Watcher {
    keys: Vec<u8>,
    held: usize,
}

impl Watcher {
    pub fn new(keys: Vec<u8>) -> Self {
        Watcher { keys, held: 0 }
    }

    /// The start of the sequence held back so far: the process gets it when the
    /// client's input ends there.
    pub fn held(&self) -> &[u8] {
        &self.keys[..self.held]
    }

    /// Appends to `out` what of `input` goes to the process; true once the whole
    /// sequence was typed (what followed it in `input` is dropped, as Docker does).
    pub fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return false;
        }
        for &b in input {
            if b != self.keys[self.held] && self.held > 0 {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
            }
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return true;
                }
            } else {
                out.push(b);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_as_docker_writes_them() {
        assert_eq!(parse("").unwrap(), DEFAULT);
        assert_eq!(parse("ctrl-p,ctrl-q").unwrap(), DEFAULT);
        assert_eq!(parse("ctrl-@,ctrl-a,ctrl-z").unwrap(), [0, 1, 26]);
        assert_eq!(
            parse("ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_").unwrap(),
            [27, 28, 29, 30, 31]
        );
        assert_eq!(parse("a,b,DEL").unwrap(), [b'a', b'b', 127]);
        assert_eq!(parse("ctrl-x,x").unwrap(), [24, b'x']);
        assert_eq!(parse("ctrl-P").unwrap_err(), "Unknown character: 'ctrl-P'");
        assert_eq!(parse("ab").unwrap_err(), "Unknown character: 'ab'");
        assert_eq!(parse("a,,b").unwrap_err(), "Unknown character: ''");
    }

    #[test]
    fn the_sequence_is_swallowed_and_broken_prefixes_pass() {
        let mut w = Watcher::new(parse("ctrl-x,x").unwrap());
        let mut out = Vec::new();
        assert!(!w.filter(b"ab\x18", &mut out));
        assert_eq!(out, b"ab", "a possible start is held back");
        assert!(!w.filter(b"y\x18\x18", &mut out));
        assert_eq!(out, b"ab\x18y\x18", "released when the sequence breaks off");
        assert!(w.filter(b"xrest", &mut out));
        assert_eq!(out, b"ab\x18y\x18", "the keys never reach the process");

        let mut w = Watcher::new(Vec::from(DEFAULT));
        let mut out = Vec::new();
        assert!(w.held().is_empty());
        assert!(!w.filter(b"\x10", &mut out));
        assert_eq!(w.held(), b"\x10");
        assert!(w.filter(b"\x11", &mut out), "across reads");
        assert!(out.is_empty());

        // Ctrl-P twice: the first goes on, the second may begin the sequence.
        let mut w = Watcher::new(Vec::from(DEFAULT));
        assert!(!w.filter(b"\x10\x10", &mut out));
        assert_eq!(out, b"\x10");
        assert_eq!(w.held(), b"\x10");
    }
}
