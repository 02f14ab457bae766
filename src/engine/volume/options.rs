//! Mount options as Docker reads them: the `o` option of a `local` volume, the
//! options of a tmpfs (`--tmpfs /run:size=64m,exec`), and sizes (`64m`, `1GiB`).

/// Propagation options; a mount has at most one.
pub const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// Flag options: name, whether the option clears the flag, and the flag.
const FLAGS: &[(&str, bool, libc::c_ulong)] = &[
    ("defaults", false, 0),
    ("ro", false, libc::MS_RDONLY),
    ("rw", true, libc::MS_RDONLY),
    ("suid", true, libc::MS_NOSUID),
    ("nosuid", false, libc::MS_NOSUID),
    ("dev", true, libc::MS_NODEV),
    ("nodev", false, libc::MS_NODEV),
    ("exec", true, libc::MS_NOEXEC),
    ("noexec", false, libc::MS_NOEXEC),
    ("sync", false, libc::MS_SYNCHRONOUS),
    ("async", true, libc::MS_SYNCHRONOUS),
    ("dirsync", false, libc::MS_DIRSYNC),
    ("remount", false, libc::MS_REMOUNT),
    ("mand", false, libc::MS_MANDLOCK),
    ("nomand", true, libc::MS_MANDLOCK),
    ("atime", true, libc::MS_NOATIME),
    ("noatime", false, libc::MS_NOATIME),
    ("diratime", true, libc::MS_NODIRATIME),
    ("nodiratime", false, libc::MS_NODIRATIME),
    ("bind", false, libc::MS_BIND),
    ("rbind", false, libc::MS_BIND | libc::MS_REC),
    ("unbindable", false, libc::MS_UNBINDABLE),
    ("runbindable", false, libc::MS_UNBINDABLE | libc::MS_REC),
    ("private", false, libc::MS_PRIVATE),
    ("rprivate", false, libc::MS_PRIVATE | libc::MS_REC),
    ("shared", false, libc::MS_SHARED),
    ("rshared", false, libc::MS_SHARED | libc::MS_REC),
    ("slave", false, libc::MS_SLAVE),
    ("rslave", false, libc::MS_SLAVE | libc::MS_REC),
    ("relatime", false, libc::MS_RELATIME),
    ("norelatime", true, libc::MS_RELATIME),
    ("strictatime", false, libc::MS_STRICTATIME),
    ("nostrictatime", true, libc::MS_STRICTATIME),
];

/// The `key=value` options a tmpfs accepts.
const TMPFS_DATA: &[&str] = &[
    "size",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "mpol",
];

/// The propagation bits of a flag set.
pub const PROPAGATION_MASK: libc::c_ulong =
    libc::MS_PRIVATE | libc::MS_SHARED | libc::MS_SLAVE | libc::MS_UNBINDABLE;

fn flag(option: &str) -> Option<(bool, libc::c_ulong)> {
    FLAGS
        .iter()
        .find(|(n, _, _)| *n == option)
        .map(|&(_, clear, f)| (clear, f))
}

/// Splits comma-separated options into mount flags and the data passed to the
/// filesystem (`size=64m,uid=1000`), as mount(8) does.
pub fn parse(options: &str) -> (libc::c_ulong, String) {
    let mut flags: libc::c_ulong = 0;
    let mut data: Vec<&str> = Vec::new();
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match flag(o) {
            Some((true, f)) => flags &= !f,
            Some((false, f)) => flags |= f,
            None => data.push(o),
        }
    }
    (flags, data.join(","))
}

/// The options of a tmpfs mount in a container: Docker's defaults
/// (`noexec,nosuid,nodev`, private) with the given ones on top, the last of each
/// kind winning. Anything a tmpfs does not take is refused with Docker's message.
pub fn tmpfs(given: &str) -> Result<String, String> {
    let all: Vec<&str> = ["noexec", "nosuid", "nodev", "rprivate"]
        .into_iter()
        .chain(given.split(',').filter(|o| !o.is_empty()))
        .collect();
    let mut flags_seen: Vec<libc::c_ulong> = Vec::new();
    let mut data_seen: Vec<&str> = Vec::new();
    let mut kept: Vec<&str> = Vec::new();
    for o in all.iter().rev() {
        if *o == "defaults" {
            continue;
        }
        if let Some((_, f)) = flag(o).filter(|(_, f)| *f != 0) {
            // One slot per flag, and a single one for propagation.
            let key = if PROPAGATIONS.contains(o) { 0 } else { f };
            if !flags_seen.contains(&key) {
                flags_seen.push(key);
                kept.push(o);
            }
            continue;
        }
        match o.split_once('=') {
            Some((k, _)) if TMPFS_DATA.contains(&k) => {
                if !data_seen.contains(&k) {
                    data_seen.push(k);
                    kept.push(o);
                }
            }
            Some((k, v)) => return Err(format!("invalid tmpfs option [\"{k}\" \"{v}\"]")),
            None => return Err(format!("invalid tmpfs option [\"{o}\"]")),
        }
    }
    kept.reverse();
    Ok(kept.join(","))
}

/// The mount data `--mount type=tmpfs` asks for: `ro`, `mode=1770`, `size=64m`
/// (the largest unit that divides the size evenly).
pub fn tmpfs_mount_data(readonly: bool, size: i64, mode: u32) -> String {
    let mut out = Vec::new();
    if readonly {
        out.push("ro".to_string());
    }
    if mode != 0 {
        out.push(format!("mode={mode:o}"));
    }
    if size != 0 {
        let (mut n, mut suffix) = (size, "");
        for (s, d) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
            if size % d == 0 {
                n = size / d;
                suffix = s;
                break;
            }
        }
        out.push(format!("size={n}{suffix}"));
    }
    out.join(",")
}

/// Docker's `RAMInBytes`: `512`, `64m`, `1.5g`, `1GiB`, `10 MB` (binary units).
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{s}'");
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(invalid());
    }
    let value: f64 = num.parse().map_err(|_| invalid())?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let unit = rest.strip_suffix('b').unwrap_or(&rest);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(invalid()),
    };
    Ok((value * mult) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, d) = parse("bind,ro,uid=1000");
        assert_eq!(f, libc::MS_BIND | libc::MS_RDONLY);
        assert_eq!(d, "uid=1000");
        assert_eq!(parse("ro,rw").0, 0);
        assert_eq!(
            parse("addr=10.0.0.1,nfsvers=4").1,
            "addr=10.0.0.1,nfsvers=4"
        );
    }

    #[test]
    fn tmpfs_options_merge_as_docker() {
        assert_eq!(tmpfs("").unwrap(), "noexec,nosuid,nodev,rprivate");
        assert_eq!(
            tmpfs("rw,exec,size=64m").unwrap(),
            "nosuid,nodev,rprivate,rw,exec,size=64m"
        );
        assert_eq!(
            tmpfs("size=1m,size=2m,shared").unwrap(),
            "noexec,nosuid,nodev,size=2m,shared"
        );
        assert_eq!(
            tmpfs("bogus").unwrap_err(),
            "invalid tmpfs option [\"bogus\"]"
        );
        assert_eq!(
            tmpfs("foo=bar").unwrap_err(),
            "invalid tmpfs option [\"foo\" \"bar\"]"
        );
    }

    #[test]
    fn mount_data_of_tmpfs_mounts() {
        assert_eq!(
            tmpfs_mount_data(false, 64 << 20, 0o1770),
            "mode=1770,size=64m"
        );
        assert_eq!(tmpfs_mount_data(true, 1000, 0), "ro,size=1000");
        assert_eq!(tmpfs_mount_data(false, 3 << 30, 0), "size=3g");
    }

    #[test]
    fn sizes() {
        assert_eq!(ram_in_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("10 MB").unwrap(), 10 << 20);
        assert_eq!(ram_in_bytes("512").unwrap(), 512);
        assert_eq!(ram_in_bytes("1.5k").unwrap(), 1536);
        assert_eq!(ram_in_bytes("x").unwrap_err(), "invalid size: 'x'");
        assert!(ram_in_bytes("10q").is_err());
        assert!(ram_in_bytes("").is_err());
    }
}
