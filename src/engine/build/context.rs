//! The build context: the tar the client sent, indexed as it arrives (each entry's
//! kind, link target and content hash: Docker's `tarsum` v1 fields, name, mode,
//! owner, size, type, link and extended attributes, and the content; not the
//! modification time, so a `touch` keeps the cache and an edit misses it).
//!
//! The tar is unpacked under `<data-root>/builder/` only when a step needs its
//! files (a COPY or ADD that misses the cache): a build that the cache answers
//! entirely never writes the context to disk, beyond a spool file for large ones.
//!
//! The daemon filters nothing: the client has applied `.dockerignore` already. As
//! Docker does, the Dockerfile and `.dockerignore` themselves are removed from the
//! context only when `.dockerignore` names them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::engine::{Error, Result};
use crate::image::tar_safe;

/// Contexts up to this size are kept in memory; larger ones in a file.
const IN_MEMORY: usize = 64 << 20;

/// What an entry of the context is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink(String),
    Other,
}

/// The received tar.
enum Spool {
    Memory(Vec<u8>),
    File(fs::File),
}

/// A received context.
pub struct Context {
    spool: Mutex<Spool>,
    /// Entry (`a/b`, no leading `/`) → its kind; parents a tar leaves implicit are
    /// directories.
    entries: BTreeMap<String, Kind>,
    /// Entry → hex of its tarsum.
    sums: HashMap<String, String>,
    /// Small regular files read while indexing (the Dockerfile, `.dockerignore`).
    kept: HashMap<String, Vec<u8>>,
    /// Entries `.dockerignore` removes from the context.
    removed: Vec<String>,
    builder_dir: PathBuf,
    /// Where the context is unpacked, once it is.
    dir: Mutex<Option<PathBuf>>,
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.get_mut().ok().and_then(|d| d.take()) {
            // Off the caller's thread, which may be the runtime's.
            std::thread::spawn(move || crate::image::layer_store::remove_tree(&dir));
        }
    }
}

/// Receives the context from `input` (plain, gzip or zstd tar), indexing it and
/// keeping the contents of the entries named in `keep`.
pub fn receive(input: impl Read, builder_dir: &Path, keep: &[String]) -> Result<Context> {
    let (_, mut plain) = crate::image::layer_store::decompress(input, "the build context")?;
    let bad = |e: io::Error| Error::invalid(format!("failed to read the build context: {e}"));
    let mut head = Vec::new();
    (&mut plain)
        .take(IN_MEMORY as u64 + 1)
        .read_to_end(&mut head)
        .map_err(bad)?;
    let mut spool = if head.len() <= IN_MEMORY {
        Spool::Memory(head)
    } else {
        crate::store::create_private_dir(builder_dir)?;
        let mut f = tempfile_in(builder_dir)?;
        f.write_all(&head).map_err(bad)?;
        io::copy(&mut plain, &mut f).map_err(bad)?;
        f.rewind()?;
        Spool::File(f)
    };
    let mut ctx = Context {
        spool: Mutex::new(Spool::Memory(Vec::new())),
        entries: BTreeMap::new(),
        sums: HashMap::new(),
        kept: HashMap::new(),
        removed: Vec::new(),
        builder_dir: builder_dir.to_path_buf(),
        dir: Mutex::new(None),
    };
    let indexed = match &mut spool {
        Spool::Memory(data) => ctx.index(&data[..], keep),
        Spool::File(f) => {
            let r = ctx.index(io::BufReader::new(&mut *f), keep);
            f.rewind()?;
            r
        }
    };
    indexed.map_err(|e| Error::invalid(format!("failed to read the build context: {e}")))?;
    ctx.spool = Mutex::new(spool);
    Ok(ctx)
}

/// An unnamed file in `dir` (gone when closed).
fn tempfile_in(dir: &Path) -> Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
        .map_err(|e| crate::store::with_path(e, "create a file in", dir).into())
}

impl Context {
    /// Docker's per-entry `tarsum` (version 1), the kinds, and the kept files.
    fn index(&mut self, input: impl Read, keep: &[String]) -> io::Result<()> {
        let mut archive = tar::Archive::new(input);
        for entry in archive.entries()? {
            let mut e = entry?;
            let h = e.header().clone();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let mut hasher = Sha256::new();
            let fields = [
                ("name", name.clone()),
                ("mode", h.mode().unwrap_or(0).to_string()),
                ("uid", h.uid().unwrap_or(0).to_string()),
                ("gid", h.gid().unwrap_or(0).to_string()),
                ("size", h.size().unwrap_or(0).to_string()),
                ("typeflag", (h.entry_type().as_byte() as char).to_string()),
                ("linkname", link.clone()),
                // Blank, as Docker hashes them: the owner is the numeric IDs.
                ("uname", String::new()),
                ("gname", String::new()),
                (
                    "devmajor",
                    h.device_major().ok().flatten().unwrap_or(0).to_string(),
                ),
                (
                    "devminor",
                    h.device_minor().ok().flatten().unwrap_or(0).to_string(),
                ),
            ];
            for (k, v) in fields {
                hasher.update(k.as_bytes());
                hasher.update(v.as_bytes());
            }
            let mut xattrs: Vec<(String, Vec<u8>)> = Vec::new();
            if let Ok(Some(pax)) = e.pax_extensions() {
                for x in pax.flatten() {
                    if let Ok(k) = x.key()
                        && let Some(name) = k.strip_prefix("SCHILY.xattr.")
                    {
                        xattrs.push((name.to_string(), x.value_bytes().to_vec()));
                    }
                }
            }
            xattrs.sort();
            for (k, v) in xattrs {
                hasher.update(k.as_bytes());
                hasher.update(&v);
            }
            let k = key(&name);
            // As Docker's unpacking refuses them (before any step runs).
            if h.entry_type() == tar::EntryType::Symlink && !link.starts_with('/') {
                let parent = k.rsplit_once('/').map_or("", |(p, _)| p);
                if escapes(&format!("{parent}/{link}")) {
                    return Err(io::Error::other(format!(
                        "invalid symlink \"/{k}\" -> \"{link}\""
                    )));
                }
            }
            let kind = match h.entry_type() {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Symlink(link),
                tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Link => {
                    Kind::File
                }
                _ => Kind::Other,
            };
            if kind == Kind::File && keep.contains(&k) && h.size().unwrap_or(0) < 1 << 20 {
                let mut data = Vec::new();
                e.read_to_end(&mut data)?;
                hasher.update(&data);
                self.kept.insert(k.clone(), data);
            } else {
                io::copy(&mut e, &mut hasher)?;
            }
            // Parents the tar does not list are directories.
            let mut parent = k.as_str();
            while let Some((p, _)) = parent.rsplit_once('/') {
                self.entries.entry(p.to_string()).or_insert(Kind::Dir);
                parent = p;
            }
            self.sums
                .insert(k.clone(), crate::engine::hex(&hasher.finalize()));
            self.entries.insert(k, kind);
        }
        self.entries.insert(".".into(), Kind::Dir);
        Ok(())
    }

    /// Where `rel` leads in the context, every symlink followed inside it (as
    /// the kernel resolves it in the unpacked context): its key and kind.
    pub fn resolve(&self, rel: &str) -> Option<(String, Kind)> {
        let mut todo: VecDeque<String> = rel.split('/').map(str::to_string).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            cur.push(c);
            let k = cur.join("/");
            match self.entries.get(&k)? {
                Kind::Symlink(target) => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    cur.pop();
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    for (i, part) in target.split('/').enumerate() {
                        todo.insert(i, part.to_string());
                    }
                }
                Kind::Dir => {}
                _ if !todo.iter().all(|t| t.is_empty() || t == ".") => return None,
                _ => {}
            }
        }
        let k = if cur.is_empty() {
            ".".to_string()
        } else {
            cur.join("/")
        };
        let kind = self.entries.get(&k)?.clone();
        Some((k, kind))
    }

    /// Every entry `pattern` matches (Go's `filepath.Match`).
    pub fn matching(&self, pattern: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .keys()
            .filter(|k| k.as_str() != "." && glob(pattern, k, false))
            .cloned()
            .collect();
        // The order of Go's `filepath.Walk`: a directory's contents right after it.
        out.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        out
    }

    /// The content hash of what `target` (a resolved key) is, as Docker names
    /// it in the history: `file:<sum>`, or `dir:<hash of the sums under it>`.
    pub fn hash(&self, target: &str, kind: &Kind) -> String {
        if *kind != Kind::Dir {
            return format!(
                "file:{}",
                self.sums
                    .get(target)
                    .cloned()
                    .unwrap_or_else(|| target.to_string())
            );
        }
        let prefix = if target == "." {
            String::new()
        } else {
            format!("{target}/")
        };
        // The directory's own entry counts (the context's root does not), and
        // Docker sorts the entries' hashes, not their names.
        let mut joined: Vec<&str> = Vec::new();
        if target != "." {
            joined.push(self.sums.get(target).map_or(target, String::as_str));
        }
        // A symlink counts as what it leads to, as Docker hashes the followed path;
        // one that leads nowhere is left out.
        let followed: Vec<String> = self
            .entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.as_str() != ".")
            .filter_map(|(k, kind)| match kind {
                Kind::Symlink(_) => self.resolve(k).map(|(t, _)| t),
                _ => Some(k.clone()),
            })
            .collect();
        joined.extend(
            followed
                .iter()
                .map(|k| self.sums.get(k).map_or(k.as_str(), String::as_str)),
        );
        joined.sort_unstable();
        format!(
            "dir:{}",
            crate::engine::hex(&Sha256::digest(joined.join(",").as_bytes()))
        )
    }

    /// The context unpacked on disk (the first call unpacks it).
    pub fn unpacked(&self) -> Result<PathBuf> {
        let mut dir = self.dir.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = &*dir {
            return Ok(d.clone());
        }
        crate::store::create_private_dir(&self.builder_dir)?;
        let path = self
            .builder_dir
            .join(format!("context-{}", crate::engine::random_id()?));
        fs::create_dir(&path).map_err(|e| crate::store::with_path(e, "create", &path))?;
        *dir = Some(path.clone());
        let root = tar_safe::open_root(&path)?;
        let opts = tar_safe::CopyOptions {
            dest: "/".into(),
            no_overwrite_dir_non_dir: false,
            owner: None,
        };
        let mut spool = self.spool.lock().unwrap_or_else(|p| p.into_inner());
        let unpacked = match &mut *spool {
            Spool::Memory(data) => tar_safe::unpack_copy(&data[..], root, opts),
            Spool::File(f) => {
                f.rewind()?;
                tar_safe::unpack_copy(io::BufReader::new(&mut *f), root, opts)
            }
        };
        unpacked.map_err(|e| Error::invalid(format!("failed to unpack the build context: {e}")))?;
        for r in &self.removed {
            let _ = fs::remove_file(path.join(r));
        }
        Ok(path)
    }

    /// Reads the Dockerfile: `name`, or with the default name, `dockerfile` when
    /// `Dockerfile` is missing. Then takes it and `.dockerignore` out of the
    /// context if `.dockerignore` names them.
    pub fn take_dockerfile(&mut self, name: &str) -> Result<String> {
        let default = name.is_empty();
        let name = if default { "Dockerfile" } else { name };
        if key(name) == "." || escapes(name) {
            return Err(Error::internal(format!(
                "forbidden path outside the build context: {name} ()"
            )));
        }
        let missing = || Error::internal(format!("Cannot locate specified Dockerfile: {name}"));
        let found = match self.resolve(&key(name)) {
            Some((k, Kind::File)) => k,
            Some(_) => return Err(missing()),
            None if default => match self.resolve("dockerfile") {
                Some((k, Kind::File)) => k,
                _ => return Err(missing()),
            },
            None => return Err(missing()),
        };
        let data = match self.kept.get(&found) {
            Some(d) => d.clone(),
            // Reached through a symlink, or large: read from the unpacked context.
            None => fs::read(self.unpacked()?.join(&found))
                .map_err(|e| Error::internal(format!("Cannot read the Dockerfile {name}: {e}")))?,
        };
        let text = String::from_utf8_lossy(&data).into_owned();
        let ignore = match self.resolve(".dockerignore") {
            Some((k, Kind::File)) => match self.kept.get(&k) {
                Some(d) => Some(d.clone()),
                None => fs::read(self.unpacked()?.join(&k)).ok(),
            },
            _ => None,
        };
        if let Some(ignore) = ignore {
            let patterns = dockerignore_patterns(&String::from_utf8_lossy(&ignore));
            for f in [found, ".dockerignore".to_string()] {
                if ignored(&patterns, &f) {
                    self.entries.remove(&f);
                    self.sums.remove(&f);
                    if let Some(d) = self.dir.get_mut().ok().and_then(|d| d.clone()) {
                        let _ = fs::remove_file(d.join(&f));
                    }
                    self.removed.push(f);
                }
            }
        }
        Ok(text)
    }
}

/// Whether a relative path climbs above where it starts (`../x`, `a/../../x`).
pub fn escapes(path: &str) -> bool {
    let mut depth = 0i32;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// `path.Join(".", path.Join("/", name))` without the `./`: `a/b`, or `.` for the root.
pub fn key(name: &str) -> String {
    match crate::image::changes::clean_path(name).as_str() {
        "/" => ".".into(),
        p => p[1..].to_string(),
    }
}

/// `.dockerignore` lines: comments and blanks dropped, cleaned, leading `/` off.
pub fn dockerignore_patterns(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (neg, p) = match l.strip_prefix('!') {
                Some(p) => ("!", p.trim()),
                None => ("", l),
            };
            format!("{neg}{}", key(p))
        })
        .collect()
}

/// Docker's pattern matcher: the last matching pattern wins, `!` re-includes, a
/// pattern that matches a parent directory matches what is under it.
pub fn ignored(patterns: &[String], path: &str) -> bool {
    let mut out = false;
    for p in patterns {
        let (neg, pat) = match p.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, p.as_str()),
        };
        let mut matched = glob(pat, path, true);
        if !matched {
            // A parent directory matched.
            let mut prefix = String::new();
            for c in path.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(c);
                if prefix != path && glob(pat, &prefix, true) {
                    matched = true;
                    break;
                }
            }
        }
        if matched {
            out = !neg;
        }
    }
    out
}

/// Go's `filepath.Match` (`*` and `?` stop at `/`, `[…]` classes, `\` escapes),
/// plus `**` across directories when `double_star` is set (`.dockerignore`).
pub fn glob(pattern: &str, name: &str, double_star: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n, double_star)
}

fn glob_at(p: &[char], n: &[char], ds: bool) -> bool {
    if p.is_empty() {
        return n.is_empty();
    }
    match p[0] {
        '*' if ds && p.get(1) == Some(&'*') => {
            let mut rest = &p[2..];
            if rest.first() == Some(&'/') {
                // `**/x` also matches `x`.
                if glob_at(&rest[1..], n, ds) {
                    return true;
                }
                rest = &p[2..];
            }
            (0..=n.len()).any(|i| glob_at(rest, &n[i..], ds))
        }
        '*' => {
            let rest = &p[1..];
            for i in 0..=n.len() {
                if glob_at(rest, &n[i..], ds) {
                    return true;
                }
                if i < n.len() && n[i] == '/' {
                    break;
                }
            }
            false
        }
        '?' => !n.is_empty() && n[0] != '/' && glob_at(&p[1..], &n[1..], ds),
        '[' => {
            let Some(end) = p[1..].iter().position(|&c| c == ']').map(|e| e + 1) else {
                return false;
            };
            if n.is_empty() || n[0] == '/' {
                return false;
            }
            let class = &p[1..end];
            let (negate, class) = match class.first() {
                Some('^') | Some('!') => (true, &class[1..]),
                _ => (false, class),
            };
            let c = n[0];
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    if class[i] <= c && c <= class[i + 2] {
                        hit = true;
                    }
                    i += 3;
                } else {
                    if class[i] == c {
                        hit = true;
                    }
                    i += 1;
                }
            }
            hit != negate && glob_at(&p[end + 1..], &n[1..], ds)
        }
        '\\' if p.len() > 1 => !n.is_empty() && n[0] == p[1] && glob_at(&p[2..], &n[1..], ds),
        c => !n.is_empty() && n[0] == c && glob_at(&p[1..], &n[1..], ds),
    }
}

/// Whether `s` has a wildcard for COPY (`*`, `?` or `[` not escaped).
pub fn has_wildcard(s: &str) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_size(0);
                b.append_link(&mut h, name, data).unwrap();
            } else {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, data.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn index_resolves_and_hashes_without_unpacking() {
        use tar::EntryType as T;
        let builder = tempfile::tempdir().unwrap();
        let data = tar_of(&[
            ("Dockerfile", T::Regular, "FROM x\n"),
            (".dockerignore", T::Regular, "Dockerfile\n"),
            ("src/a.txt", T::Regular, "a"),
            ("src/b.txt", T::Regular, "b"),
            ("link", T::Symlink, "src/a.txt"),
            ("sub/up", T::Symlink, "../src"),
            ("abs", T::Symlink, "/etc/hostname"),
            ("loop", T::Symlink, "loop"),
        ]);
        let keep = ["Dockerfile".to_string(), ".dockerignore".to_string()];
        let mut ctx = receive(&data[..], builder.path(), &keep).unwrap();
        assert_eq!(ctx.take_dockerfile("").unwrap(), "FROM x\n");
        // Named in .dockerignore: out of the context.
        assert_eq!(ctx.resolve("Dockerfile"), None);
        assert_eq!(ctx.resolve("link"), Some(("src/a.txt".into(), Kind::File)));
        // Symlinks stay inside the context, as RESOLVE_IN_ROOT keeps them.
        assert_eq!(
            ctx.resolve("sub/up/b.txt"),
            Some(("src/b.txt".into(), Kind::File))
        );
        assert_eq!(ctx.resolve("abs"), None);
        assert_eq!(ctx.resolve("loop"), None);
        assert_eq!(ctx.resolve("src/a.txt/x"), None);
        // Implied parents are directories.
        assert_eq!(ctx.resolve("src"), Some(("src".into(), Kind::Dir)));
        assert_eq!(ctx.matching("src/*.txt"), ["src/a.txt", "src/b.txt"]);
        assert!(ctx.hash("src/a.txt", &Kind::File).starts_with("file:"));
        let dir = ctx.hash("src", &Kind::Dir);
        assert!(dir.starts_with("dir:"));
        assert_ne!(dir, ctx.hash(".", &Kind::Dir));
        // Nothing was written until asked.
        assert_eq!(
            std::fs::read_dir(builder.path())
                .map(|d| d.count())
                .unwrap_or(0),
            0
        );
        let root = ctx.unpacked().unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("src/a.txt")).unwrap(),
            "a"
        );
        assert!(!root.join("Dockerfile").exists());
        drop(ctx);
        for _ in 0..100 {
            if !root.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!root.exists());
        // A link out of the context is refused before anything is built.
        let bad = tar_of(&[("up", T::Symlink, "../../src")]);
        let e = receive(&bad[..], builder.path(), &[])
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "failed to read the build context: invalid symlink \"/up\" -> \"../../src\""
        );
    }

    #[test]
    fn go_match_and_dockerignore() {
        assert!(glob("*.txt", "a.txt", false));
        assert!(!glob("*.txt", "d/a.txt", false));
        assert!(glob("*/*.txt", "d/a.txt", false));
        assert!(glob("f?[0-9]", "fa7", false));
        assert!(!glob("f[!a]", "fa", false));
        assert!(glob("**/*.log", "a/b/c.log", true));
        assert!(glob("**/*.log", "c.log", true));
        let pats = dockerignore_patterns("# c\n*.md\n!README.md\nbuild/\n/Dockerfile\n");
        assert_eq!(pats, ["*.md", "!README.md", "build", "Dockerfile"]);
        assert!(ignored(&pats, "x.md"));
        assert!(!ignored(&pats, "README.md"));
        assert!(ignored(&pats, "build/out/x"));
        assert!(ignored(&pats, "Dockerfile"));
        assert!(!ignored(&pats, "src/main.rs"));
        assert!(has_wildcard("a*"));
        assert!(!has_wildcard("a\\*"));
        assert_eq!(key("./a//b/"), "a/b");
        assert_eq!(key("/"), ".");
    }
}
