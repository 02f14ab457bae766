//! `docker import -c 'CMD ["sh"]'` (and `docker commit -c`): Dockerfile instructions
//! applied to an image config. Docker accepts CMD, ENTRYPOINT, ENV, EXPOSE,
//! HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME and WORKDIR here and refuses the rest
//! (STOPSIGNAL included) with `<instruction> is not a valid change command`.
//!
//! Words are processed the way the Dockerfile parser does for these instructions:
//! quotes, backslash escapes, and `$VAR` / `${VAR}` / `${VAR:-default}` /
//! `${VAR:+alternate}` from the config's environment.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::config::ImageConfig;
use super::{Error, Result};

const VALID: &[&str] = &[
    "cmd",
    "entrypoint",
    "healthcheck",
    "env",
    "expose",
    "label",
    "onbuild",
    "user",
    "volume",
    "workdir",
];

/// Applies `changes` (each may hold several lines) to `config`.
pub fn apply(config: &mut ImageConfig, changes: &[String]) -> Result<()> {
    let text = changes.join("\n");
    let lines = logical_lines(&text);
    // Validate every instruction first, as Docker does.
    for (word, _) in &lines {
        if !VALID.contains(&word.to_lowercase().as_str()) {
            return Err(Error::invalid(format!(
                "{} is not a valid change command",
                word.to_lowercase()
            )));
        }
    }
    let mut cmd_set = false;
    for (word, rest) in &lines {
        let env = Vars::new(env_map(config));
        match word.to_lowercase().as_str() {
            "cmd" => {
                config.cmd = Some(command_form(rest));
                cmd_set = true;
            }
            "entrypoint" => {
                config.entrypoint = Some(command_form(rest));
                if !cmd_set {
                    config.cmd = None;
                }
            }
            "env" => {
                for (k, v) in name_values(rest, "ENV", &env)? {
                    set_env(config, &k, &v);
                }
            }
            "label" => {
                let labels = config.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in name_values(rest, "LABEL", &env)? {
                    labels.insert(k, v);
                }
            }
            "expose" => {
                let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for w in words(rest, &env)? {
                    for p in parse_port_spec(&w)? {
                        ports.insert(p, json!({}));
                    }
                }
            }
            "user" => {
                config.user = expand_one(rest, &env)?;
            }
            "workdir" => {
                let p = expand_one(rest, &env)?;
                if p.is_empty() {
                    return Err(Error::invalid("WORKDIR requires exactly one argument"));
                }
                let joined = if p.starts_with('/') {
                    p
                } else {
                    let base = if config.working_dir.is_empty() {
                        "/"
                    } else {
                        &config.working_dir
                    };
                    format!("{base}/{p}")
                };
                config.working_dir = clean_path(&joined);
            }
            "volume" => {
                let list = match json_array(rest) {
                    Some(v) => v,
                    None => words(rest, &env)?,
                };
                if list.is_empty() {
                    return Err(Error::invalid("VOLUME requires at least one argument"));
                }
                let vols = config.volumes.get_or_insert_with(BTreeMap::new);
                for v in list {
                    let v = v.trim().to_string();
                    if v.is_empty() {
                        return Err(Error::invalid(
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    vols.insert(v, json!({}));
                }
            }
            "onbuild" => {
                let (inner, inner_rest) = split_instruction(rest.trim());
                match inner.to_uppercase().as_str() {
                    "" => return Err(Error::invalid("ONBUILD requires at least one argument")),
                    "ONBUILD" => {
                        return Err(Error::invalid(
                            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                        ));
                    }
                    "FROM" | "MAINTAINER" => {
                        return Err(Error::invalid(format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            inner.to_uppercase()
                        )));
                    }
                    _ => {}
                }
                let trigger = format!("{} {}", inner.to_uppercase(), inner_rest.trim());
                config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(trigger.trim_end().to_string());
            }
            "healthcheck" => {
                config.healthcheck = Some(healthcheck(rest)?);
            }
            _ => unreachable!("validated above"),
        }
    }
    Ok(())
}

/// Instruction word and its arguments per logical line (continuations joined,
/// comments and blank lines skipped).
fn logical_lines(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim_end();
        if cur.is_empty() && (t.trim_start().starts_with('#') || t.trim().is_empty()) {
            continue;
        }
        if let Some(stripped) = t.strip_suffix('\\') {
            cur.push_str(stripped);
            continue;
        }
        cur.push_str(t);
        let (w, r) = split_instruction(cur.trim());
        out.push((w.to_string(), r.to_string()));
        cur.clear();
    }
    if !cur.trim().is_empty() {
        let (w, r) = split_instruction(cur.trim());
        out.push((w.to_string(), r.to_string()));
    }
    out
}

pub(crate) fn split_instruction(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// JSON (exec) form when the arguments are a JSON array of strings, else the shell
/// form `["/bin/sh", "-c", "…"]`.
pub(crate) fn command_form(rest: &str) -> Vec<String> {
    match json_array(rest) {
        Some(v) => v,
        None => vec!["/bin/sh".into(), "-c".into(), rest.trim().to_string()],
    }
}

pub(crate) fn json_array(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

/// The variables words are expanded with, and the escape character (`\\`, or
/// `` ` `` under a Dockerfile's `# escape=` directive).
#[derive(Clone, Debug)]
pub(crate) struct Vars {
    pub map: BTreeMap<String, String>,
    pub escape: char,
}

impl Vars {
    pub(crate) fn new(map: BTreeMap<String, String>) -> Vars {
        Vars { map, escape: '\\' }
    }

    fn get(&self, k: &str) -> Option<&String> {
        self.map.get(k)
    }
}

pub(crate) fn env_map(c: &ImageConfig) -> BTreeMap<String, String> {
    c.env
        .iter()
        .flatten()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

pub(crate) fn set_env(c: &mut ImageConfig, k: &str, v: &str) {
    let env = c.env.get_or_insert_with(Vec::new);
    let entry = format!("{k}={v}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k)
    {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// `k=v k2="v 2"` or the legacy `k value with spaces`.
pub(crate) fn name_values(rest: &str, instr: &str, env: &Vars) -> Result<Vec<(String, String)>> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(Error::invalid(format!(
            "{instr} requires at least one argument"
        )));
    }
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        // Legacy form: one name, the rest of the line is the value.
        let (k, v) = split_instruction(rest);
        if v.is_empty() {
            return Err(Error::invalid(format!("{instr} must have two arguments")));
        }
        return Ok(vec![(k.to_string(), expand_one(v, env)?)]);
    }
    let mut out = Vec::new();
    for w in raw_words(rest, env.escape)? {
        let Some((k, v)) = w.split_once('=') else {
            return Err(Error::invalid(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )));
        };
        if k.is_empty() {
            return Err(Error::invalid(format!("{instr} names can not be blank")));
        }
        out.push((expand_word(k, env)?, expand_word(v, env)?));
    }
    Ok(out)
}

/// Splits on unquoted whitespace, keeping quotes and escapes for [`process_word`].
pub(crate) fn raw_words(s: &str, esc: char) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == esc && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c.is_whitespace() {
                    if in_word {
                        out.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                    continue;
                }
                in_word = true;
                cur.push(c);
                if c == esc {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if quote.is_some() {
        return Err(Error::invalid(format!(
            "unexpected end of statement while looking for matching quote: {s}"
        )));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

pub(crate) fn words(s: &str, env: &Vars) -> Result<Vec<String>> {
    raw_words(s, env.escape)?
        .iter()
        .map(|w| expand_word(w, env))
        .collect()
}

/// The whole argument as one word (USER, WORKDIR, STOPSIGNAL, legacy values).
pub(crate) fn expand_one(s: &str, env: &Vars) -> Result<String> {
    expand_word(s.trim(), env)
}

/// [`process_word`], with Docker's wrapping of its errors.
pub(crate) fn expand_word(w: &str, env: &Vars) -> Result<String> {
    process_word(w, env).map_err(|e| Error::invalid(format!("failed to process {w:?}: {e}")))
}

/// Removes quotes, resolves escapes and expands variables.
pub(crate) fn process_word(w: &str, env: &Vars) -> Result<String> {
    let chars: Vec<char> = w.chars().collect();
    let esc = env.escape;
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c == esc => {
                if i + 1 < chars.len() {
                    out.push(chars[i + 1]);
                }
                i += 2;
            }
            '\'' => {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    out.push(chars[i]);
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == esc
                        && i + 1 < chars.len()
                        && (matches!(chars[i + 1], '"' | '$') || chars[i + 1] == esc)
                    {
                        out.push(chars[i + 1]);
                        i += 2;
                    } else if chars[i] == '$' {
                        i = expand_var(&chars, i, env, &mut out)?;
                    } else {
                        out.push(chars[i]);
                        i += 1;
                    }
                }
                i += 1;
            }
            '$' => i = expand_var(&chars, i, env, &mut out)?,
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Expands the variable at `chars[i] == '$'`; returns the index after it.
fn expand_var(chars: &[char], i: usize, env: &Vars, out: &mut String) -> Result<usize> {
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut j = i + 1;
    if j < chars.len() && chars[j] == '{' {
        let close = chars[j..]
            .iter()
            .position(|&c| c == '}')
            .map(|p| p + j)
            .ok_or_else(|| Error::invalid("syntax error: missing '}'"))?;
        let inner: String = chars[j + 1..close].iter().collect();
        let name_end = inner.find(|c: char| !name_char(c)).unwrap_or(inner.len());
        if name_end == 0 {
            return Err(Error::invalid("syntax error: bad substitution"));
        }
        let (name, modifier) = match &inner[name_end..] {
            "" => (inner.as_str(), None),
            m => (&inner[..name_end], Some(m)),
        };
        let val = env.get(name);
        match modifier {
            Some(m) if m.starts_with('?') || m.starts_with(":?") => {
                let colon = m.starts_with(':');
                let msg = &m[if colon { 2 } else { 1 }..];
                let fail = match val {
                    None => Some("is not allowed to be unset"),
                    Some(v) if v.is_empty() && colon => Some("is not allowed to be empty"),
                    Some(_) => None,
                };
                if let Some(default) = fail {
                    let msg = if msg.is_empty() {
                        default.to_string()
                    } else {
                        process_word(msg, env)?
                    };
                    return Err(Error::invalid(format!("{name}: {msg}")));
                }
                out.push_str(val.map_or("", String::as_str));
            }
            Some(m) if !m.starts_with(':') => {
                return Err(Error::invalid("missing ':' in substitution"));
            }
            None => out.push_str(val.map_or("", String::as_str)),
            Some(m) if m.starts_with(":-") => match val {
                Some(v) if !v.is_empty() => out.push_str(v),
                _ => out.push_str(&process_word(&m[2..], env)?),
            },
            Some(m) if m.starts_with(":+") => {
                if val.is_some_and(|v| !v.is_empty()) {
                    out.push_str(&process_word(&m[2..], env)?);
                }
            }
            Some(m) => {
                let op = m.chars().nth(1).unwrap_or(' ');
                return Err(Error::invalid(format!(
                    "unsupported modifier ({op}) in substitution"
                )));
            }
        }
        return Ok(close + 1);
    }
    while j < chars.len() && name_char(chars[j]) {
        j += 1;
    }
    if j == i + 1 {
        out.push('$');
        return Ok(j);
    }
    let name: String = chars[i + 1..j].iter().collect();
    out.push_str(env.get(&name).map_or("", String::as_str));
    Ok(j)
}

/// `80`, `80/udp`, `8000-8002/tcp` → `["80/tcp"]`, … (Docker's `nat.ParsePortSpecs`).
pub(crate) fn parse_port_spec(spec: &str) -> Result<Vec<String>> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(Error::invalid(format!("invalid proto: {proto}")));
    }
    let bad = || Error::invalid(format!("invalid containerPort: {ports}"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(Error::invalid(format!(
            "invalid range specified for container port: {ports}"
        )));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=…] CMD …`.
pub(crate) fn healthcheck(rest: &str) -> Result<Value> {
    let mut rest = rest.trim();
    if rest.eq_ignore_ascii_case("none") {
        return Ok(json!({ "Test": ["NONE"] }));
    }
    let mut fields = serde_json::Map::new();
    while let Some(flag) = rest.strip_prefix("--") {
        let (opt, after) = split_instruction(flag);
        let (k, v) = opt
            .split_once('=')
            .ok_or_else(|| Error::invalid(format!("flag --{opt} needs a value")))?;
        match k {
            "interval" | "timeout" | "start-period" | "start-interval" => {
                let d = crate::timefmt::parse_go_duration(v)
                    .ok_or_else(|| Error::invalid(format!("time: invalid duration {v:?}")))?;
                let key = match k {
                    "interval" => "Interval",
                    "timeout" => "Timeout",
                    "start-period" => "StartPeriod",
                    _ => "StartInterval",
                };
                if d != 0 {
                    fields.insert(key.into(), json!(d));
                }
            }
            "retries" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| Error::invalid(format!("invalid value for --retries: {v}")))?;
                if n < 0 {
                    return Err(Error::invalid("--retries cannot be negative"));
                }
                if n != 0 {
                    fields.insert("Retries".into(), json!(n));
                }
            }
            other => return Err(Error::invalid(format!("unknown flag: --{other}"))),
        }
        rest = after;
    }
    let (word, args) = split_instruction(rest);
    if !word.eq_ignore_ascii_case("cmd") {
        return Err(Error::invalid(format!(
            "Unknown type {:?} in HEALTHCHECK (try CMD)",
            word.to_uppercase()
        )));
    }
    let test: Vec<String> = match json_array(args) {
        Some(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
        None => vec!["CMD-SHELL".to_string(), args.trim().to_string()],
    };
    let mut m = serde_json::Map::new();
    m.insert("Test".into(), json!(test));
    m.extend(fields);
    Ok(Value::Object(m))
}

/// `path.Clean` for absolute paths.
pub(crate) fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_all(changes: &[&str]) -> Result<ImageConfig> {
        let mut c = ImageConfig::default();
        apply(
            &mut c,
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(c)
    }

    #[test]
    fn cmd_and_entrypoint_forms() {
        let c = apply_all(&[r#"CMD ["sh"]"#]).unwrap();
        assert_eq!(c.cmd, Some(vec!["sh".to_string()]));
        let c = apply_all(&["CMD echo hi"]).unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        let c = apply_all(&[r#"CMD ["a"]"#, r#"ENTRYPOINT ["/e"]"#]).unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["a"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/e"]);
    }

    #[test]
    fn env_label_expose_user_workdir_volume() {
        let c = apply_all(&[
            "ENV A=1 B=\"two words\"",
            "ENV C $A-x",
            "LABEL org.x=\"y z\"",
            "EXPOSE 80 53/udp 8000-8001",
            "USER 1000:1000",
            "WORKDIR /app",
            "WORKDIR sub/../dir",
            r#"VOLUME ["/data"]"#,
            "VOLUME /a /b",
        ])
        .unwrap();
        assert_eq!(c.env.unwrap(), vec!["A=1", "B=two words", "C=1-x"]);
        assert_eq!(c.labels.unwrap()["org.x"], "y z");
        let ports: Vec<_> = c.exposed_ports.unwrap().keys().cloned().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        assert_eq!(c.user, "1000:1000");
        assert_eq!(c.working_dir, "/app/dir");
        let vols: Vec<_> = c.volumes.unwrap().keys().cloned().collect();
        assert_eq!(vols, vec!["/a", "/b", "/data"]);
    }

    #[test]
    fn refuses_like_docker() {
        let e = apply_all(&["RUN echo"]).unwrap_err().to_string();
        assert_eq!(e, "run is not a valid change command");
        assert!(apply_all(&["FROM x"]).is_err());
        let e = apply_all(&["STOPSIGNAL SIGQUIT"]).unwrap_err().to_string();
        assert_eq!(e, "stopsignal is not a valid change command");
        assert!(apply_all(&["ENV A=1 B"]).is_err());
        assert!(apply_all(&["ONBUILD ONBUILD RUN x"]).is_err());
    }

    #[test]
    fn healthcheck_and_onbuild() {
        let c =
            apply_all(&["HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/"]).unwrap();
        let h = c.healthcheck.unwrap();
        assert_eq!(h["Test"], json!(["CMD-SHELL", "curl -f http://x/"]));
        assert_eq!(h["Interval"], json!(5_000_000_000i64));
        assert_eq!(h["Retries"], json!(3));
        let c = apply_all(&["HEALTHCHECK NONE", "onbuild run make"]).unwrap();
        assert_eq!(c.healthcheck.unwrap()["Test"], json!(["NONE"]));
        assert_eq!(c.on_build.unwrap(), vec!["RUN make"]);
        assert_eq!(
            crate::timefmt::parse_go_duration("1h30m"),
            Some(5_400_000_000_000)
        );
        assert_eq!(
            crate::timefmt::parse_go_duration("1.5s"),
            Some(1_500_000_000)
        );
        assert_eq!(crate::timefmt::parse_go_duration("x"), None);
    }
}
