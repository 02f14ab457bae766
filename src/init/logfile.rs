//! The json-file log, written by the monitor exactly as Docker's `json-file` driver
//! writes it: one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2026-11-27T20:37:19.165023981Z"}`.
//!
//! Output is cut into lines at `\n` and into 16 KiB pieces when a line is longer
//! (Docker's copier buffer); a piece without its `\n` is a partial entry whose `log`
//! has no trailing newline, and every piece of one long line carries the first
//! piece's timestamp. With `max_size` the file is rotated before an entry is written
//! once it has reached that size: `path` → `path.1` → … → `path.{max_file-1}`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::spec::LogSpec;
use crate::store::with_path;

/// Docker's copier buffer: a line longer than this is logged in pieces.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output stream an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Cuts one stream's bytes into log entries the way Docker's copier does.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
    /// The timestamp of the first piece of a line being logged in pieces.
    partial_time: Option<SystemTime>,
}

/// One log entry: `line` without its newline; `complete` when a `\n` ended it.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub line: &'a [u8],
    pub complete: bool,
    pub time: SystemTime,
}

impl LineSplitter {
    /// Adds output and hands every finished entry to `emit`; `now` gives the time of
    /// entries that start now.
    pub fn push(
        &mut self,
        data: &[u8],
        now: &mut impl FnMut() -> SystemTime,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            if let Some(nl) = rest
                .iter()
                .position(|&b| b == b'\n')
                .filter(|&nl| nl < MAX_LINE)
            {
                let time = self.partial_time.take().unwrap_or_else(&mut *now);
                emit(Entry {
                    line: &rest[..nl],
                    complete: true,
                    time,
                });
                start += nl + 1;
            } else if rest.len() >= MAX_LINE {
                let time = *self.partial_time.get_or_insert_with(&mut *now);
                emit(Entry {
                    line: &rest[..MAX_LINE],
                    complete: false,
                    time,
                });
                start += MAX_LINE;
            } else {
                break;
            }
        }
        self.pending.drain(..start);
    }

    /// The stream ended: what is left is logged as a partial entry.
    pub fn finish(
        &mut self,
        now: &mut impl FnMut() -> SystemTime,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        if !self.pending.is_empty() {
            let time = *self.partial_time.get_or_insert_with(&mut *now);
            emit(Entry {
                line: &self.pending,
                complete: false,
                time,
            });
        }
        self.pending.clear();
        self.partial_time = None;
    }
}

/// Appends one json-file line for `entry` to `out`, byte for byte what Docker writes.
pub fn encode(out: &mut Vec<u8>, entry: &Entry<'_>, stream: Stream) {
    out.extend_from_slice(b"{");
    let has_log = !entry.line.is_empty() || entry.complete;
    if has_log {
        out.extend_from_slice(b"\"log\":\"");
        escape_json(out, entry.line);
        if entry.complete {
            out.extend_from_slice(b"\\n");
        }
        out.extend_from_slice(b"\",");
    }
    out.extend_from_slice(b"\"stream\":\"");
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    // Docker marshals the time with Go's RFC3339Nano: trailing zeros trimmed.
    out.extend_from_slice(crate::timefmt::rfc3339_nano(entry.time).as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// JSON string escaping as Docker's json-file encoder does it: `<`, `>`, `&` and
/// control characters as `\u00XX`, invalid UTF-8 as `\ufffd`, U+2028/U+2029 escaped.
fn escape_json(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = 0;
    let mut start = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            if b >= 0x20 && b != b'\\' && b != b'"' && b != b'<' && b != b'>' && b != b'&' {
                i += 1;
                continue;
            }
            out.extend_from_slice(&s[start..i]);
            match b {
                b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 0xf) as usize]);
                }
            }
            i += 1;
            start = i;
            continue;
        }
        match decode_utf8_char(&s[i..]) {
            None => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(b"\\ufffd");
                i += 1;
                start = i;
            }
            Some((c, len)) => {
                if c == '\u{2028}' || c == '\u{2029}' {
                    out.extend_from_slice(&s[start..i]);
                    out.extend_from_slice(b"\\u202");
                    out.push(HEX[(c as u32 & 0xf) as usize]);
                    i += len;
                    start = i;
                } else {
                    i += len;
                }
            }
        }
    }
    out.extend_from_slice(&s[start..]);
}

/// Decodes the UTF-8 character at the start of `s`; `None` when it is invalid.
fn decode_utf8_char(s: &[u8]) -> Option<(char, usize)> {
    let len = match s[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let chunk = s.get(..len)?;
    let c = std::str::from_utf8(chunk).ok()?.chars().next()?;
    Some((c, len))
}

/// The open json-file log with its rotation state. Entries are buffered and written
/// with one `write` per [`LogFile::flush`].
pub struct LogFile {
    path: PathBuf,
    file: File,
    /// Bytes in the current file, including those still buffered.
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    buf: Vec<u8>,
}

impl LogFile {
    /// Opens (appending) the json-file log named by `spec`.
    pub fn open(spec: &LogSpec) -> io::Result<LogFile> {
        let file = open_append(&spec.path)?;
        let size = file
            .metadata()
            .map_err(|e| with_path(e, "stat", &spec.path))?
            .len();
        Ok(LogFile {
            path: spec.path.clone(),
            file,
            size,
            max_size: spec.max_size.filter(|&m| m > 0),
            max_file: spec.max_file.max(1),
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Adds one entry, rotating first when the file has reached `max_size`.
    pub fn write(&mut self, entry: &Entry<'_>, stream: Stream) -> io::Result<()> {
        if self.max_size.is_some_and(|max| self.size >= max) {
            self.flush()?;
            self.rotate()?;
        }
        let before = self.buf.len();
        encode(&mut self.buf, entry, stream);
        self.size += (self.buf.len() - before) as u64;
        Ok(())
    }

    /// Writes what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let res = self.file.write_all(&self.buf);
        self.buf.clear();
        res.map_err(|e| with_path(e, "write", &self.path))
    }

    fn rotate(&mut self) -> io::Result<()> {
        rotate_files(&self.path, self.max_file)?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Shifts `path.{n-1}` → `path.{n}` … `path` → `path.1` (or removes `path` when only
/// one file is kept), as Docker's log rotation does.
fn rotate_files(path: &Path, max_file: u32) -> io::Result<()> {
    let numbered = |i: u32| {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{i}"));
        PathBuf::from(s)
    };
    if max_file < 2 {
        return ignore_missing(fs::remove_file(path)).map_err(|e| with_path(e, "remove", path));
    }
    let last = numbered(max_file - 1);
    ignore_missing(fs::remove_file(&last)).map_err(|e| with_path(e, "remove", &last))?;
    for i in (2..max_file).rev() {
        let from = numbered(i - 1);
        ignore_missing(fs::rename(&from, numbered(i)))
            .map_err(|e| with_path(e, "rename", &from))?;
    }
    ignore_missing(fs::rename(path, numbered(1))).map_err(|e| with_path(e, "rename", path))
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| with_path(e, "open log file", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn t(n: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(1_795_000_000_000_000_000 + n)
    }

    fn split(chunks: &[&[u8]], finish: bool) -> Vec<(Vec<u8>, bool, SystemTime)> {
        let mut s = LineSplitter::default();
        let mut clock = 0;
        let mut now = || {
            clock += 1;
            t(clock)
        };
        let mut out = Vec::new();
        let mut emit = |e: Entry<'_>| out.push((e.line.to_vec(), e.complete, e.time));
        for c in chunks {
            s.push(c, &mut now, &mut emit);
        }
        if finish {
            s.finish(&mut now, &mut emit);
        }
        out
    }

    #[test]
    fn lines_split_at_newlines_across_reads() {
        let out = split(&[b"he", b"llo\nwor", b"ld\n\n"], true);
        assert_eq!(
            out,
            vec![
                (b"hello".to_vec(), true, t(1)),
                (b"world".to_vec(), true, t(2)),
                (b"".to_vec(), true, t(3)),
            ]
        );
    }

    #[test]
    fn long_lines_become_16k_partials_sharing_the_first_time() {
        let mut data = vec![b'a'; MAX_LINE * 2 + 10];
        data.push(b'\n');
        let out = split(&[&data], true);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].0.len(), MAX_LINE);
        assert!(!out[0].1);
        assert_eq!(out[1].0.len(), MAX_LINE);
        assert!(!out[1].1);
        assert_eq!(out[2].0.len(), 10);
        assert!(out[2].1);
        assert!(out.iter().all(|e| e.2 == out[0].2));
    }

    #[test]
    fn exactly_16k_then_newline_is_one_partial_and_an_empty_final() {
        let mut data = vec![b'x'; MAX_LINE];
        data.push(b'\n');
        let out = split(&[&data], true);
        assert_eq!(out.len(), 2);
        assert!(!out[0].1);
        assert_eq!(out[1], (Vec::new(), true, out[0].2));
    }

    #[test]
    fn unterminated_tail_is_a_partial_at_eof() {
        let out = split(&[b"a\nno newline"], true);
        assert_eq!(out[1], (b"no newline".to_vec(), false, t(2)));
        assert_eq!(split(&[b"no newline"], false), vec![]);
    }

    #[test]
    fn encoding_matches_docker() {
        let mut out = Vec::new();
        let time = UNIX_EPOCH + Duration::new(1_795_811_839, 165_023_981);
        encode(
            &mut out,
            &Entry {
                line: b"hi",
                complete: true,
                time,
            },
            Stream::Stdout,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"log\":\"hi\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-27T20:37:19.165023981Z\"}\n"
        );
        let mut out = Vec::new();
        encode(
            &mut out,
            &Entry {
                line: "a\"\\<>&\t\r\u{2028}é\u{1}".as_bytes(),
                complete: false,
                time: UNIX_EPOCH + Duration::new(1_795_811_839, 100_000_000),
            },
            Stream::Stderr,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"log\":\"a\\\"\\\\\\u003c\\u003e\\u0026\\u0009\\r\\u2028é\\u0001\",\"stream\":\"stderr\",\"time\":\"2026-11-27T20:37:19.1Z\"}\n"
        );
        let mut out = Vec::new();
        escape_json(&mut out, b"ok\xff\xe2\x82");
        assert_eq!(out, b"ok\\ufffd\\ufffd\\ufffd");
    }

    #[test]
    fn rotation_keeps_max_file_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let spec = LogSpec {
            driver: "json-file".into(),
            path: path.clone(),
            max_size: Some(100),
            max_file: 3,
            journal_fields: Vec::new(),
        };
        let mut log = LogFile::open(&spec).unwrap();
        for i in 0..10 {
            let line = format!("line {i}");
            log.write(
                &Entry {
                    line: line.as_bytes(),
                    complete: true,
                    time: t(i),
                },
                Stream::Stdout,
            )
            .unwrap();
        }
        log.flush().unwrap();
        let read = |p: &Path| fs::read_to_string(p).unwrap();
        // An entry is ~80 bytes: a file takes a second one (160 bytes, more than
        // max_size, as in Docker) and is rotated before the third.
        assert!(read(&path).contains("line 8") && read(&path).contains("line 9"));
        assert!(read(&dir.path().join("c-json.log.1")).contains("line 7"));
        assert!(read(&dir.path().join("c-json.log.2")).contains("line 5"));
        assert!(!dir.path().join("c-json.log.3").exists());
        assert_eq!(read(&path).lines().count(), 2);
    }

    #[test]
    fn rotation_with_one_file_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        fs::write(&path, vec![b'x'; 200]).unwrap();
        let spec = LogSpec {
            driver: "json-file".into(),
            path: path.clone(),
            max_size: Some(100),
            max_file: 1,
            journal_fields: Vec::new(),
        };
        let mut log = LogFile::open(&spec).unwrap();
        log.write(
            &Entry {
                line: b"new",
                complete: true,
                time: t(0),
            },
            Stream::Stdout,
        )
        .unwrap();
        log.flush().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"log\":\"new\\n\""), "{text}");
        assert!(!dir.path().join("c-json.log.1").exists());
    }
}
