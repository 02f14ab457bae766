//! The journald log driver's daemon side: the fields the monitor puts on every entry
//! (with the `tag` template and the `labels`/`env` attributes, as Docker computes
//! them), and `docker logs` read back from the journal with sd-journal.
//!
//! The monitor writes the entries itself (`init::journald`); here nothing is written.

use std::time::Duration;

use tokio::sync::mpsc;

use super::logs::{LogEntry, LogOptions};
use super::record::Container;
use crate::engine::{Error, Result};
use crate::systemd::journal::{Change, Journal};

/// The fields every entry of this container carries, in Docker's order.
pub fn fields(
    c: &Container,
    opts: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let tag = tag(c, opts.get("tag").map(String::as_str).unwrap_or(""))?;
    let mut out = vec![
        (
            "CONTAINER_ID".to_string(),
            c.id[..12.min(c.id.len())].to_string(),
        ),
        ("CONTAINER_ID_FULL".to_string(), c.id.clone()),
        (
            "CONTAINER_NAME".to_string(),
            c.name.trim_start_matches('/').to_string(),
        ),
        ("CONTAINER_TAG".to_string(), tag.clone()),
        ("SYSLOG_IDENTIFIER".to_string(), tag),
        ("IMAGE_NAME".to_string(), c.config.image.clone()),
    ];
    for (k, v) in extra_attributes(c, opts)? {
        let key = sanitize_key(&k);
        if key.is_empty() {
            continue;
        }
        // An attribute named like a fixed field replaces it, as in Docker.
        out.retain(|(existing, _)| *existing != key);
        out.push((key, v));
    }
    Ok(out)
}

/// `labels`, `labels-regex`, `env`, `env-regex`, in that order (a later one wins).
fn extra_attributes(
    c: &Container,
    opts: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: &str| {
        out.retain(|(e, _)| e != k);
        out.push((k.to_string(), v.to_string()));
    };
    let regex = |key: &str| -> Result<Option<regex_lite::Regex>> {
        opts.get(key)
            .map(|re| {
                regex_lite::Regex::new(re)
                    .map_err(|e| Error::invalid(format!("invalid value for log opt '{key}': {e}")))
            })
            .transpose()
    };
    if let Some(names) = opts.get("labels") {
        for name in names.split(',') {
            if let Some(v) = c.config.labels.get(name) {
                add(name, v);
            }
        }
    }
    if let Some(re) = regex("labels-regex")? {
        for (k, v) in &c.config.labels {
            if re.is_match(k) {
                add(k, v);
            }
        }
    }
    let env: Vec<(&str, &str)> = c
        .config
        .env
        .iter()
        .filter_map(|e| e.split_once('='))
        .collect();
    if let Some(names) = opts.get("env") {
        for name in names.split(',') {
            if let Some((k, v)) = env.iter().find(|(k, _)| *k == name) {
                add(k, v);
            }
        }
    }
    if let Some(re) = regex("env-regex")? {
        for (k, v) in &env {
            if re.is_match(k) {
                add(k, v);
            }
        }
    }
    Ok(out)
}

/// A journal field name from a label or variable name, as Docker makes it: letters
/// upper-cased, anything but `A-Z0-9` turned into `_`, leading underscores dropped.
pub fn sanitize_key(key: &str) -> String {
    let s: String = key
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' => c,
            _ => '_',
        })
        .collect();
    s.trim_start_matches('_').to_string()
}

/// The `tag` option rendered: Docker's Go template over the container's log info,
/// `{{.ID}}` when unset.
pub fn tag(c: &Container, template: &str) -> Result<String> {
    let template = if template.is_empty() {
        "{{.ID}}"
    } else {
        template
    };
    render(template, &|key| info_value(c, key)).map_err(|e| {
        Error::internal(format!(
            "failed to initialize logging driver: template: log-tag: {e}"
        ))
    })
}

/// The log info keys templates may use.
fn info_value(c: &Container, key: &str) -> Option<String> {
    let short = |s: &str| s[..12.min(s.len())].to_string();
    let image_hex = c.image.split_once(':').map_or(c.image.as_str(), |(_, h)| h);
    Some(match key {
        "ID" => short(&c.id),
        "FullID" | "ContainerID" => c.id.clone(),
        "Name" => c.name.trim_start_matches('/').to_string(),
        "ContainerName" => c.name.clone(),
        "ImageID" => short(image_hex),
        "ImageFullID" => c.image.clone(),
        "ImageName" | "ContainerImageName" => c.config.image.clone(),
        "ContainerImageID" => c.image.clone(),
        "DaemonName" => "docker".to_string(),
        "Command" => {
            let mut parts = vec![c.path.as_str()];
            parts.extend(c.args.iter().map(String::as_str));
            parts.join(" ")
        }
        "Hostname" => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
        _ => return None,
    })
}

/// Renders the part of Go's text/template that log tags use: text, `{{.Key}}`,
/// function calls (`lower`, `upper`, `title`, `truncate`, `pad`, `json`) with keys,
/// quoted strings and numbers as arguments, and `|` pipelines.
fn render(
    template: &str,
    value: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "unclosed action".to_string())?;
        let action = after[..close]
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        let mut piped: Option<String> = None;
        for command in action.split('|') {
            let words = split_words(command.trim())?;
            let Some((first, args)) = words.split_first() else {
                return Err("missing value for command".into());
            };
            let mut values = Vec::new();
            for a in args {
                values.push(argument(a, value)?);
            }
            if let Some(p) = piped.take() {
                values.push(p);
            }
            piped = Some(if first.starts_with('.') || first.starts_with('"') {
                if !values.is_empty() {
                    return Err(format!("can't give argument to non-function {first}"));
                }
                argument(first, value)?
            } else {
                call(first, &values)?
            });
        }
        out.push_str(&piped.unwrap_or_default());
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn split_words(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut w = String::from("\"");
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => w.extend(chars.next()),
                    Some(c) => w.push(c),
                    None => return Err("unterminated quoted string".into()),
                }
            }
            words.push(w);
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
            words.push(w);
        }
    }
    Ok(words)
}

fn argument(
    word: &str,
    value: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    if let Some(s) = word.strip_prefix('"') {
        Ok(s.to_string())
    } else if let Some(key) = word.strip_prefix('.') {
        value(key).ok_or_else(|| {
            format!(
                "executing \"log-tag\" at <.{key}>: can't evaluate field {key} in type *logger.Info"
            )
        })
    } else if word.parse::<i64>().is_ok() {
        Ok(word.to_string())
    } else {
        Err(format!("function \"{word}\" not defined"))
    }
}

fn call(name: &str, args: &[String]) -> std::result::Result<String, String> {
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    match name {
        "lower" => want(1).map(|_| args[0].to_lowercase()),
        "upper" => want(1).map(|_| args[0].to_uppercase()),
        "title" => want(1).map(|_| {
            let mut out = String::new();
            let mut start = true;
            for c in args[0].chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            out
        }),
        "truncate" => {
            want(2)?;
            let n: usize = args[1]
                .parse()
                .map_err(|_| format!("truncate: {:?} is not a length", args[1]))?;
            Ok(args[0].chars().take(n).collect())
        }
        "pad" => {
            want(3)?;
            Ok(if args[0].is_empty() {
                String::new()
            } else {
                format!("{}{}{}", args[1], args[0], args[2])
            })
        }
        "json" => want(1).map(|_| serde_json::Value::from(args[0].clone()).to_string()),
        other => Err(format!("function \"{other}\" not defined")),
    }
}

/// Reads (and follows) a container's entries from the journal on the calling
/// thread, which must stay the same throughout: all runs of the container, matched
/// by `CONTAINER_ID_FULL`, positioned by `since`/`until`/`tail` as Docker does.
pub fn read(
    id: &str,
    opts: &LogOptions,
    tx: &mpsc::Sender<LogEntry>,
    running: &dyn Fn() -> bool,
) -> std::io::Result<()> {
    let mut j = Journal::open()?;
    j.add_match(&format!("CONTAINER_ID_FULL={id}"))?;
    let usec = |nanos: i64| (nanos.max(0) / 1000) as u64;
    let seek_start = |j: &mut Journal| -> std::io::Result<bool> {
        match opts.since {
            Some(s) => j.seek_realtime_usec(usec(s))?,
            None => j.seek_head()?,
        }
        j.next_entry()
    };
    let mut have = match opts.tail {
        None => seek_start(&mut j)?,
        Some(n) => {
            match opts.until {
                Some(u) => j.seek_realtime_usec(usec(u) + 1)?,
                None => j.seek_tail()?,
            }
            if n == 0 {
                // Nothing of the past; a follow starts after the last entry.
                if j.previous_entry()? {
                    j.next_entry()?;
                }
                false
            } else if j.previous_skip(n.min(i32::MAX as usize) as u64)? == 0
                || opts
                    .since
                    .is_some_and(|s| j.realtime_usec().is_ok_and(|t| t < usec(s)))
            {
                // Nothing at all, or the tail reaches before `since`: from the start.
                seek_start(&mut j)?
            } else {
                true
            }
        }
    };
    let follow = opts.follow && running();
    let mut read = 0u64;
    let mut quiet_since: Option<std::time::Instant> = None;
    loop {
        while have {
            let ts = j.realtime_usec()?;
            if opts.until.is_some_and(|u| usec(u) < ts) {
                return Ok(());
            }
            if let Some(e) = entry(ts, &j.fields()?)
                && opts.wants(&e)
                && tx.blocking_send(e).is_err()
            {
                return Ok(());
            }
            read += 1;
            if read % 1024 == 0 {
                j.process();
            }
            have = j.next_entry()?;
        }
        if !follow || tx.is_closed() {
            return Ok(());
        }
        if opts
            .until
            .is_some_and(|u| crate::engine::events::now_nanos() > u)
        {
            return Ok(());
        }
        // After the container stopped, what its monitor sent may still be on its
        // way through journald: read on until the journal stays quiet.
        let change = j.wait(Duration::from_millis(250))?;
        if !running() {
            let quiet = quiet_since.get_or_insert_with(std::time::Instant::now);
            if change == Change::None || quiet.elapsed() > Duration::from_secs(5) {
                have = j.next_entry()?;
                if !have {
                    return Ok(());
                }
                continue;
            }
        }
        have = j.next_entry()?;
    }
}

/// One journal entry as a log entry: `MESSAGE` with its newline back (none on the
/// pieces of a long line but the last), the stream from `PRIORITY`.
fn entry(usec: u64, fields: &[(String, Vec<u8>)]) -> Option<LogEntry> {
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v);
    let mut data = get("MESSAGE")?.clone();
    let stream = match get("PRIORITY").map(|p| p.as_slice()) {
        Some(b"6") => 1,
        Some(b"3") => 2,
        _ => return None,
    };
    if get("CONTAINER_PARTIAL_MESSAGE").is_none_or(|v| v != b"true") {
        data.push(b'\n');
    }
    let time_nanos = (usec as i64).saturating_mul(1000);
    let time = crate::timefmt::rfc3339_nano(std::time::UNIX_EPOCH + Duration::from_micros(usec));
    Some(LogEntry {
        stream,
        time,
        time_nanos,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> Container {
        let mut c: Container = serde_json::from_value(serde_json::json!({
            "ID": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Created": "", "Path": "sh", "Args": ["-c", "echo hi"],
            "Config": {"Image": "busybox:1.36", "Labels": {"com.example.vendor": "acme", "tier": "web"},
                       "Env": ["PATH=/bin", "my-var=1", "SECRET=x"]},
            "Image": "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
            "Name": "/web", "State": super::super::record::State::default(), "LogPath": "", "RestartCount": 0, "Driver": "overlay2",
            "HasBeenStartedBefore": false, "HasBeenManuallyStopped": false,
            "HostnamePath": "", "HostsPath": "", "ResolvConfPath": ""
        }))
        .unwrap();
        c.config.labels.insert("-lead".into(), "l".into());
        c
    }

    fn opts(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fixed_fields_are_dockers() {
        let f = fields(&container(), &opts(&[])).unwrap();
        let keys: Vec<_> = f.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            keys,
            vec![
                "CONTAINER_ID=0123456789ab",
                "CONTAINER_ID_FULL=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "CONTAINER_NAME=web",
                "CONTAINER_TAG=0123456789ab",
                "SYSLOG_IDENTIFIER=0123456789ab",
                "IMAGE_NAME=busybox:1.36",
            ]
        );
    }

    #[test]
    fn labels_and_env_become_sanitized_fields() {
        let f = fields(
            &container(),
            &opts(&[
                ("labels", "com.example.vendor,missing"),
                ("labels-regex", "^-"),
                ("env", "my-var"),
                ("env-regex", "^SEC"),
            ]),
        )
        .unwrap();
        let extra: Vec<_> = f[6..].iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            extra,
            vec!["COM_EXAMPLE_VENDOR=acme", "LEAD=l", "MY_VAR=1", "SECRET=x"]
        );
        assert_eq!(sanitize_key("_.x-y"), "X_Y");
        assert_eq!(sanitize_key("é"), "");
    }

    #[test]
    fn tag_templates_render_like_docker() {
        let c = container();
        assert_eq!(tag(&c, "").unwrap(), "0123456789ab");
        assert_eq!(
            tag(&c, "{{.Name}}/{{.ImageName}}").unwrap(),
            "web/busybox:1.36"
        );
        assert_eq!(tag(&c, "{{.ImageID}}").unwrap(), "fedcba987654");
        assert_eq!(
            tag(&c, "{{.DaemonName}}|{{.Command}}").unwrap(),
            "docker|sh -c echo hi"
        );
        assert_eq!(
            tag(&c, "{{upper .Name}}-{{truncate .FullID 4}}").unwrap(),
            "WEB-0123"
        );
        assert_eq!(
            tag(&c, "{{.Name | title}}{{pad .Name \"[\" \"]\"}}").unwrap(),
            "Web[web]"
        );
        let err = tag(&c, "{{.Nope}}").unwrap_err().to_string();
        assert!(err.contains("can't evaluate field Nope"), "{err}");
        let err = tag(&c, "{{shout .Name}}").unwrap_err().to_string();
        assert!(err.contains("function \"shout\" not defined"), "{err}");
        assert!(tag(&c, "{{.Name").is_err());
    }

    #[test]
    fn entries_come_back_with_their_newlines() {
        let f = |pairs: &[(&str, &str)]| -> Vec<(String, Vec<u8>)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        let e = entry(
            1_700_000_000_000_001,
            &f(&[("MESSAGE", "hi"), ("PRIORITY", "3")]),
        )
        .unwrap();
        assert_eq!((e.stream, e.data.as_slice()), (2, &b"hi\n"[..]));
        assert_eq!(e.time, "2023-11-14T22:13:20.000001Z");
        let e = entry(
            1,
            &f(&[
                ("MESSAGE", "piece"),
                ("PRIORITY", "6"),
                ("CONTAINER_PARTIAL_MESSAGE", "true"),
            ]),
        )
        .unwrap();
        assert_eq!((e.stream, e.data.as_slice()), (1, &b"piece"[..]));
        assert!(entry(1, &f(&[("MESSAGE", "x"), ("PRIORITY", "5")])).is_none());
        assert!(entry(1, &f(&[("PRIORITY", "6")])).is_none());
    }
}
