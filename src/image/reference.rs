//! Image references: `busybox`, `busybox:1.36`, `localhost:5000/team/app@sha256:…`.
//!
//! Parsing follows the grammar and normalization the Docker CLI and daemon share
//! (`distribution/reference`): a name without a registry belongs to `docker.io`, a
//! single-component Docker Hub name lives under `library/`, and the familiar form
//! users see (`busybox:latest`) drops both again. Error messages use Docker's words,
//! since clients show them verbatim.

use std::fmt;

use super::digest;
use super::{Error, Result};

/// Registry of names that carry none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a name without one means.
pub const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A normalized reference: a repository name, and a tag and/or digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, …
    pub domain: String,
    /// `library/busybox`, `team/app`, …
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

/// What a user-supplied string names: an image by repository, or by ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyReference {
    Named(Reference),
    /// A full image ID (`sha256:<hex>` or 64 hex digits).
    Id(String),
}

impl Reference {
    /// The full repository name: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as users write it: `busybox`, `team/app`, `quay.io/x/y`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// `busybox:latest`, `team/app@sha256:…`: what RepoTags and messages show.
    pub fn familiar_string(&self) -> String {
        self.render(&self.familiar_name())
    }

    /// The reference with a tag: `latest` when it had neither tag nor digest.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// Neither tag nor digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// Same repository, other tag (no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        if !valid_tag(tag) {
            return Err(Error::invalid("invalid tag format"));
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    fn render(&self, name: &str) -> String {
        let mut s = name.to_string();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

impl fmt::Display for Reference {
    /// The full form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&self.name()))
    }
}

/// Docker's `ParseNormalizedNamed`: a user-written name to its full form.
pub fn parse_normalized(s: &str) -> Result<Reference> {
    if digest::is_hex64(s) {
        return Err(Error::invalid(format!(
            "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )));
    }
    let (domain, remainder) = split_docker_domain(s);
    let remote_name = match remainder.find(':') {
        Some(i) => &remainder[..i],
        None => &remainder,
    };
    if remote_name.to_lowercase() != remote_name {
        return Err(Error::invalid(format!(
            "invalid reference format: repository name ({remote_name}) must be lowercase"
        )));
    }
    parse_full(&format!("{domain}/{remainder}"))
}

/// Docker's `ParseAnyReference`: an image ID (full) or a normalized name.
pub fn parse_any(s: &str) -> Result<AnyReference> {
    if digest::is_hex64(s) {
        return Ok(AnyReference::Id(format!("sha256:{s}")));
    }
    if digest::parse(s).is_ok() {
        return Ok(AnyReference::Id(s.to_string()));
    }
    parse_normalized(s).map(AnyReference::Named)
}

/// Docker's `RepoTagReference`: the `repo` (may carry a tag) and `tag` parameters of
/// import and tag requests, as one tagged reference; `None` when `repo` is empty.
pub fn repo_tag(repo: &str, tag: &str) -> Result<Option<Reference>> {
    if repo.is_empty() {
        return Ok(None);
    }
    let r = parse_normalized(repo)?;
    if r.digest.is_some() {
        return Err(Error::invalid("cannot import digest reference"));
    }
    if !tag.is_empty() {
        return r.with_tag(tag).map(Some);
    }
    Ok(Some(r.with_default_tag()))
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.find('/') {
        Some(i)
            if name[..i].contains(['.', ':'])
                || &name[..i] == "localhost"
                || name[..i].to_lowercase() != name[..i] =>
        {
            (name[..i].to_string(), name[i + 1..].to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// `Parse` of a string that already carries its domain.
fn parse_full(s: &str) -> Result<Reference> {
    let invalid = || -> Error {
        if s.is_empty() {
            Error::invalid(
                "invalid reference format: repository name must have at least one component",
            )
        } else {
            Error::invalid("invalid reference format")
        }
    };
    let (rest, dgst) = match s.split_once('@') {
        Some((r, d)) => {
            validate_digest(d)?;
            (r, Some(d.to_string()))
        }
        None => (s, None),
    };
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
        _ => (rest, None),
    };
    if let Some(t) = &tag {
        if !valid_tag(t) {
            return Err(invalid());
        }
    }
    let (domain, path) = name.split_once('/').ok_or_else(invalid)?;
    if !valid_domain(domain) || !valid_path(path) {
        if valid_path(&path.to_lowercase()) && valid_domain(domain) {
            return Err(Error::invalid(
                "invalid reference format: repository name must be lowercase",
            ));
        }
        return Err(invalid());
    }
    if name.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(Error::invalid(format!(
            "invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )));
    }
    Ok(Reference {
        domain: domain.to_string(),
        path: path.to_string(),
        tag,
        digest: dgst,
    })
}

fn validate_digest(d: &str) -> Result<()> {
    match d.split_once(':') {
        Some(("sha256", hex)) if hex.len() == 64 && digest::is_hex64(hex) => Ok(()),
        Some(("sha256", _)) => Err(Error::invalid(
            "invalid reference format: invalid checksum digest length",
        )),
        Some((alg, _)) if !alg.is_empty() => Err(Error::invalid(
            "invalid reference format: unsupported digest algorithm",
        )),
        _ => Err(Error::invalid(
            "invalid reference format: invalid checksum digest format",
        )),
    }
}

/// `[\w][\w.-]{0,127}`
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

fn valid_domain(d: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let ok = !v6.is_empty() && v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':');
        let port = match after {
            "" => None,
            a => match a.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        (ok, port)
    } else {
        match d.split_once(':') {
            Some((h, p)) => (valid_host(h), Some(p)),
            None => (valid_host(d), None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

/// Dot-separated components of letters, digits and inner dashes.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        })
}

fn valid_path(p: &str) -> bool {
    !p.is_empty() && p.split('/').all(valid_path_component)
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Docker's `FamiliarMatch`: a shell pattern against the familiar string or name.
pub fn familiar_match(pattern: &str, r: &Reference) -> Result<bool> {
    Ok(glob_match(pattern, &r.familiar_string())? || glob_match(pattern, &r.familiar_name())?)
}

/// Go's `path.Match`: `*` and `?` never match `/`; `[…]` classes; `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

fn glob_at(p: &[char], n: &[char]) -> Result<bool> {
    if p.is_empty() {
        return Ok(n.is_empty());
    }
    match p[0] {
        '*' => {
            // Try every split that does not cross a '/'.
            let mut i = 0;
            loop {
                if glob_at(&p[1..], &n[i..])? {
                    return Ok(true);
                }
                if i == n.len() || n[i] == '/' {
                    return Ok(false);
                }
                i += 1;
            }
        }
        '?' => Ok(!n.is_empty() && n[0] != '/' && glob_at(&p[1..], &n[1..])?),
        '[' => {
            let (matched, used) = class_match(&p[1..], n.first().copied())?;
            Ok(matched && glob_at(&p[1 + used..], &n[1..])?)
        }
        '\\' => {
            let c = *p.get(1).ok_or_else(bad_pattern)?;
            Ok(n.first() == Some(&c) && glob_at(&p[2..], &n[1..])?)
        }
        c => Ok(n.first() == Some(&c) && glob_at(&p[1..], &n[1..])?),
    }
}

fn bad_pattern() -> Error {
    Error::invalid("syntax error in pattern")
}

/// Matches one character against a class body (after `[`); returns the match and how
/// many pattern characters the class used, including `]`.
fn class_match(p: &[char], c: Option<char>) -> Result<(bool, usize)> {
    let mut i = 0;
    let negate = p.first() == Some(&'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let Some(&ch) = p.get(i) else {
            return Err(bad_pattern());
        };
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i).ok_or_else(bad_pattern)?
        } else {
            ch
        };
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            i += 1;
            hi = if p[i] == '\\' {
                i += 1;
                *p.get(i).ok_or_else(bad_pattern)?
            } else {
                p[i]
            };
            i += 1;
        }
        if let Some(c) = c {
            if lo <= c && c <= hi {
                matched = true;
            }
        }
    }
    let Some(c) = c else {
        return Ok((false, i));
    };
    Ok(((matched != negate) && c != '/', i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        parse_normalized(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("team/app"), "docker.io/team/app");
        assert_eq!(
            norm("docker.io/library/busybox:latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("index.docker.io/busybox"), "docker.io/library/busybox");
        assert_eq!(
            norm("localhost/fixture/multilayer:1"),
            "localhost/fixture/multilayer:1"
        );
        assert_eq!(norm("localhost:5000/a"), "localhost:5000/a");
        assert_eq!(norm("[::1]:5000/a:b"), "[::1]:5000/a:b");
        let d = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(norm(&d), format!("docker.io/library/{d}"));
    }

    #[test]
    fn familiar_forms() {
        let r = parse_normalized("docker.io/library/busybox")
            .unwrap()
            .with_default_tag();
        assert_eq!(r.familiar_string(), "busybox:latest");
        assert_eq!(r.familiar_name(), "busybox");
        let r = parse_normalized("fixture/busybox:1.35").unwrap();
        assert_eq!(r.familiar_string(), "fixture/busybox:1.35");
        let r = parse_normalized("docker.io/library/a/b").unwrap();
        assert_eq!(r.familiar_name(), "library/a/b");
        let r = parse_normalized("quay.io/x/y:1").unwrap();
        assert_eq!(r.familiar_string(), "quay.io/x/y:1");
    }

    #[test]
    fn errors_use_dockers_words() {
        let e = parse_normalized("Busybox").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        let e = parse_normalized(&"a".repeat(64)).unwrap_err().to_string();
        assert!(
            e.contains("cannot specify 64-byte hexadecimal strings"),
            "{e}"
        );
        assert_eq!(
            parse_normalized("a:b:c").unwrap_err().to_string(),
            "invalid reference format"
        );
        assert_eq!(
            parse_normalized("a::b").unwrap_err().to_string(),
            "invalid reference format"
        );
        assert!(parse_normalized("-a").is_err());
        assert!(parse_normalized("a..b").is_err());
        assert!(parse_normalized("a__b").is_ok());
        assert!(parse_normalized("a---b").is_ok());
        assert!(parse_normalized("a___b").is_err());
        assert!(parse_normalized(&format!("a:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn any_reference_recognizes_ids() {
        let hex = "b".repeat(64);
        assert_eq!(
            parse_any(&hex).unwrap(),
            AnyReference::Id(format!("sha256:{hex}"))
        );
        assert_eq!(
            parse_any(&format!("sha256:{hex}")).unwrap(),
            AnyReference::Id(format!("sha256:{hex}"))
        );
        assert!(matches!(
            parse_any("62ff1febd856").unwrap(),
            AnyReference::Named(_)
        ));
    }

    #[test]
    fn repo_tag_takes_tag_from_either_place() {
        let r = repo_tag("busybox:1", "").unwrap().unwrap();
        assert_eq!(r.familiar_string(), "busybox:1");
        let r = repo_tag("busybox", "2").unwrap().unwrap();
        assert_eq!(r.familiar_string(), "busybox:2");
        let r = repo_tag("busybox", "").unwrap().unwrap();
        assert_eq!(r.familiar_string(), "busybox:latest");
        assert!(repo_tag("", "").unwrap().is_none());
        assert!(repo_tag("busybox", "bad tag").is_err());
    }

    #[test]
    fn glob_like_go_path_match() {
        assert!(glob_match("busy*", "busybox").unwrap());
        assert!(!glob_match("*", "a/b").unwrap());
        assert!(glob_match("*/*", "a/b").unwrap());
        assert!(glob_match("b?sy[a-z]ox", "busybox").unwrap());
        assert!(!glob_match("b[^u]sybox", "busybox").unwrap());
        assert!(glob_match("a\\*", "a*").unwrap());
        assert!(glob_match("[", "x").is_err());
        let r = parse_normalized("fixture/busybox:1.35").unwrap();
        assert!(familiar_match("fixture/*", &r).unwrap());
        assert!(familiar_match("fixture/busybox", &r).unwrap());
        assert!(familiar_match("*/busybox:1.35", &r).unwrap());
        assert!(!familiar_match("busybox", &r).unwrap());
    }
}
