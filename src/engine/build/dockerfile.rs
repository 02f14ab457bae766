//! The Dockerfile parser of the classic builder: parser directives, comments, line
//! continuations, one [`Instruction`] per logical line with its flags split off,
//! and the checks Docker makes before the first step runs (unknown instructions,
//! arity, flags, stage names), each error with its line number as Docker words it.
//!
//! Arguments stay as written: variables are expanded when the step runs, against
//! the environment of that moment.

use std::collections::HashSet;

use crate::engine::{Error, Result};

/// One instruction, continuation lines joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// The line the instruction starts on (1-based; comments and blanks count).
    pub line: usize,
    /// Lower case: `run`, `copy`, ….
    pub keyword: String,
    /// The text as written (for `Step n/N : …`).
    pub original: String,
    /// Leading `--name[=value]` words.
    pub flags: Vec<(String, Option<String>)>,
    /// The arguments after the flags.
    pub rest: String,
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// The exec form (a JSON array of strings), if the arguments are one.
    pub fn json_args(&self) -> Result<Option<Vec<String>>> {
        json_form(&self.rest)
    }
}

/// A stage: its `FROM` and what follows it.
#[derive(Clone, Debug)]
pub struct Stage {
    pub from: Instruction,
    /// The base as written (`busybox`, `${BASE}`, a previous stage's name).
    pub base: String,
    /// Lower-cased `AS` name.
    pub name: Option<String>,
    pub platform: Option<String>,
    pub commands: Vec<Instruction>,
}

/// A parsed Dockerfile.
#[derive(Clone, Debug)]
pub struct Dockerfile {
    /// `ARG`s before the first `FROM`.
    pub meta_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
    /// Parser warnings Docker prints before the first step.
    pub warnings: Vec<String>,
    /// The `# syntax=` directive, which this builder does not follow.
    pub syntax: Option<String>,
    /// The escape character (`# escape=`).
    pub escape: char,
}

const INSTRUCTIONS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Parses `text` (the Dockerfile named `name`, for messages).
pub fn parse(text: &str, name: &str) -> Result<Dockerfile> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut seen = HashSet::new();
    let mut i = 0;
    // Directives: only at the very top, up to the first line that is not one.
    while i < lines.len() {
        let Some((key, value)) = directive(lines[i]) else {
            break;
        };
        if !seen.insert(key.clone()) {
            return Err(Error::invalid(format!(
                "failed to parse {name}: only one {key} parser directive can be used"
            )));
        }
        match key.as_str() {
            "escape" => {
                escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    v => {
                        return Err(Error::invalid(format!(
                            "failed to parse {name}: invalid escape token '{v}' does not match ` or \\"
                        )));
                    }
                }
            }
            "syntax" => syntax = Some(value),
            _ => break,
        }
        i += 1;
    }
    let mut instructions = Vec::new();
    let mut warnings = Vec::new();
    while i < lines.len() {
        let line = lines[i].trim_end_matches('\r');
        let trimmed = line.trim_start();
        i += 1;
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let start = i;
        let (mut text, mut more) = continuation(trimmed, escape);
        let mut empty_continuation = false;
        while more && i < lines.len() {
            let next = lines[i].trim_end_matches('\r');
            i += 1;
            let t = next.trim_start();
            if t.starts_with('#') {
                continue;
            }
            if t.trim().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, again) = continuation(next, escape);
            text.push_str(&part);
            more = again;
        }
        let original = text.trim().to_string();
        if empty_continuation {
            warnings.push(format!(
                "[WARNING]: Empty continuation line found in:\n    {original}"
            ));
        }
        instructions.push(instruction(start, &original)?);
    }
    if instructions.is_empty() {
        return Err(Error::invalid(if text.trim().is_empty() {
            format!("the Dockerfile ({name}) cannot be empty")
        } else {
            format!("failed to parse {name}: file with no instructions")
        }));
    }
    if !warnings.is_empty() {
        warnings.push(
            "[WARNING]: Empty continuation lines will become errors in a future release.".into(),
        );
    }
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut names = HashSet::new();
    for ins in instructions {
        check(&ins, name, escape)?;
        if ins.keyword == "from" {
            let stage = from(ins)?;
            if let Some(n) = &stage.name
                && !names.insert(n.clone())
            {
                return Err(line_error(
                    stage.from.line,
                    &format!("{n} stage name already used"),
                ));
            }
            stages.push(stage);
            continue;
        }
        match stages.last_mut() {
            Some(s) => s.commands.push(ins),
            None if ins.keyword == "arg" => meta_args.push(ins),
            None => return Err(Error::invalid("no build stage in current context")),
        }
    }
    Ok(Dockerfile {
        meta_args,
        stages,
        warnings,
        syntax,
        escape,
    })
}

/// `# key=value` at the top of the file.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_end_matches('\r').strip_prefix('#')?.trim_start();
    let (key, value) = rest.split_once('=')?;
    let key = key.trim_end();
    if key.is_empty()
        || !key.starts_with(|c: char| c.is_ascii_alphabetic())
        || !key.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let key = key.to_lowercase();
    match key.as_str() {
        "escape" | "syntax" => Some((key, value.to_string())),
        _ => None,
    }
}

/// The line without its trailing escape token, and whether one was there.
fn continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(before) => (before.to_string(), true),
        None => (line.to_string(), false),
    }
}

fn line_error(line: usize, msg: &str) -> Error {
    Error::invalid(format!("dockerfile parse error line {line}: {msg}"))
}

/// Splits the keyword and the leading flags off a logical line.
fn instruction(line: usize, text: &str) -> Result<Instruction> {
    let (word, rest) = match text.find(|c: char| c.is_whitespace()) {
        Some(k) => (&text[..k], text[k..].trim_start()),
        None => (text, ""),
    };
    let keyword = word.to_lowercase();
    let mut flags = Vec::new();
    let mut rest = rest;
    if keyword != "stopsignal" {
        while rest.starts_with("--") {
            let end = flag_end(rest);
            let word = &rest[..end];
            rest = rest[end..].trim_start();
            if word == "--" {
                break;
            }
            let body = unquote(&word[2..]);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.clone(), None),
            };
            flags.push((name, value));
        }
    }
    Ok(Instruction {
        line,
        keyword,
        original: text.to_string(),
        flags,
        rest: rest.to_string(),
    })
}

/// Where a flag word ends: the first unquoted blank.
fn flag_end(s: &str) -> usize {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (_, '\\') => escaped = true,
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => return i,
            _ => {}
        }
    }
    s.len()
}

fn unquote(s: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => out.extend(chars.next()),
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => out.push(c),
        }
    }
    out
}

/// Docker's JSON form: an array of strings; anything else that starts with `[`
/// but is not JSON is the shell form.
pub fn json_form(rest: &str) -> Result<Option<Vec<String>>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return Ok(None);
    }
    let mut de = serde_json::Deserializer::from_str(t).into_iter::<serde_json::Value>();
    match de.next() {
        Some(Ok(serde_json::Value::Array(items))) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(Error::invalid(
                    "when using JSON array syntax, arrays must be comprised of strings only",
                )),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        _ => Ok(None),
    }
}

const FLAGS: &[(&str, &[&str])] = &[
    ("from", &["platform"]),
    ("copy", &["chown", "from", "chmod"]),
    ("add", &["chown", "chmod"]),
    ("run", &["mount"]),
    (
        "healthcheck",
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    ),
];

/// The checks Docker's instruction parser makes, with its messages.
fn check(ins: &Instruction, name: &str, escape: char) -> Result<()> {
    let err = |m: &str| Err(line_error(ins.line, m));
    let kw = ins.keyword.as_str();
    // A JSON array of something else than strings fails the whole file.
    if matches!(
        kw,
        "run" | "cmd" | "entrypoint" | "shell" | "copy" | "add" | "volume"
    ) {
        json_form(&ins.rest).map_err(|e| Error::invalid(format!("failed to parse {name}: {e}")))?;
    }
    if !INSTRUCTIONS.contains(&kw) {
        return err(&format!("unknown instruction: {}", kw.to_uppercase()));
    }
    let allowed = FLAGS
        .iter()
        .find(|(k, _)| *k == kw)
        .map_or(&[][..], |(_, f)| *f);
    let mut seen = HashSet::new();
    for (name, value) in &ins.flags {
        if !allowed.contains(&name.as_str()) {
            return err(&format!("Unknown flag: {name}"));
        }
        if !seen.insert(name) {
            return err(&format!("Duplicate flag specified: {name}"));
        }
        if value.as_deref().is_none_or(str::is_empty) && kw != "healthcheck" {
            return err(&format!("Missing a value on flag: {name}"));
        }
    }
    let upper = kw.to_uppercase();
    let rest = ins.rest.trim();
    match kw {
        "env" | "label" | "onbuild" | "healthcheck" | "expose" | "volume" | "arg" | "shell"
        | "cmd" | "entrypoint" | "run"
            if rest.is_empty() && !matches!(kw, "cmd" | "entrypoint" | "run") =>
        {
            return err(&format!("{upper} requires at least one argument"));
        }
        "maintainer" | "workdir" | "user" | "stopsignal" if rest.is_empty() => {
            return err(&format!("{upper} requires exactly one argument"));
        }
        "copy" | "add" => {
            let n = match json_form(rest)? {
                Some(v) => v.len(),
                None => rest.split_whitespace().count(),
            };
            if n < 2 {
                return err(&format!(
                    "{upper} requires at least two arguments, but only one was provided. Destination could not be determined"
                ));
            }
        }
        "shell" if json_form(rest)?.is_none() => {
            return err("SHELL requires the arguments to be in JSON form");
        }
        "onbuild" => {
            let (inner, _) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            match inner.to_uppercase().as_str() {
                "ONBUILD" => return err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
                "FROM" | "MAINTAINER" => {
                    return err(&format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        inner.to_uppercase()
                    ));
                }
                _ => {}
            }
        }
        "healthcheck" => {
            crate::image::changes::healthcheck(&healthcheck_text(ins))
                .map_err(|e| line_error(ins.line, &e.to_string()))?;
        }
        _ => {}
    }
    match kw {
        "env" | "label" => {
            let upper = kw.to_uppercase();
            let words = crate::image::changes::raw_words(rest, escape)
                .map_err(|e| line_error(ins.line, &e.to_string()))?;
            if !words.first().is_some_and(|w| w.contains('=')) {
                if words.len() < 2 {
                    return err(&format!("{upper} must have two arguments"));
                }
            } else {
                for w in &words {
                    match w.split_once('=') {
                        None => {
                            return err(&format!(
                                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
                            ));
                        }
                        Some(("", _)) => return err(&format!("{upper} names can not be blank")),
                        Some(_) => {}
                    }
                }
            }
        }
        "arg" => {
            let words = crate::image::changes::raw_words(rest, escape)
                .map_err(|e| line_error(ins.line, &e.to_string()))?;
            if words.iter().any(|w| w.starts_with('=')) {
                return err("ARG names can not be blank");
            }
        }
        "volume" if json_form(rest)?.is_some_and(|v| v.iter().any(|p| p.trim().is_empty())) => {
            return err("VOLUME specified can not be an empty string");
        }
        _ => {}
    }
    if matches!(kw, "run" | "copy" | "add") && has_heredoc(rest) {
        return err(
            "heredocs (<<EOF) are not supported by the classic builder; write the lines into a file in the context and COPY it, or use RUN with a one-line command",
        );
    }
    Ok(())
}

/// An ONBUILD trigger of a base image, parsed and checked as one instruction.
pub fn trigger(text: &str) -> Result<Instruction> {
    let text = text.trim();
    let ins = instruction(0, text)?;
    check(&ins, "Dockerfile", '\\').map_err(|e| {
        let msg = e.to_string();
        let msg = msg
            .strip_prefix("dockerfile parse error line 0: ")
            .unwrap_or(&msg)
            .to_string();
        Error::invalid(msg)
    })?;
    if matches!(ins.keyword.as_str(), "from" | "maintainer" | "onbuild") {
        return Err(Error::invalid(format!(
            "{} isn't allowed as an ONBUILD trigger",
            ins.keyword.to_uppercase()
        )));
    }
    Ok(ins)
}

/// The HEALTHCHECK arguments with their flags, as the `--change` parser reads them.
pub fn healthcheck_text(ins: &Instruction) -> String {
    let mut s = String::new();
    for (n, v) in &ins.flags {
        s.push_str(&format!("--{n}={} ", v.as_deref().unwrap_or("")));
    }
    s.push_str(&ins.rest);
    s
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` as a word of its own.
fn has_heredoc(rest: &str) -> bool {
    rest.split_whitespace().any(|w| {
        let Some(tag) = w.strip_prefix("<<") else {
            return false;
        };
        let tag = tag.strip_prefix('-').unwrap_or(tag);
        let tag = tag.trim_matches(|c| c == '"' || c == '\'');
        tag.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// `FROM [--platform=p] image [AS name]`.
fn from(ins: Instruction) -> Result<Stage> {
    let words: Vec<&str> = ins.rest.split_whitespace().collect();
    let (base, name) = match words.as_slice() {
        [base] => (base.to_string(), None),
        [base, kw, name] if kw.eq_ignore_ascii_case("as") => {
            let name = name.to_lowercase();
            let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(line_error(
                    ins.line,
                    &format!(
                        "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                    ),
                ));
            }
            (base.to_string(), Some(name))
        }
        _ => {
            return Err(line_error(
                ins.line,
                "FROM requires either one or three arguments",
            ));
        }
    };
    Ok(Stage {
        platform: ins.flag("platform").map(str::to_string),
        base,
        name,
        from: ins,
        commands: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_continuations_and_flags() {
        let df = parse(
            "# syntax=docker/dockerfile:1\n\nARG BASE=busybox\nFROM ${BASE} AS build\n# a comment\nRUN echo a && \\\n    # inside\n    echo b\ncopy --chown=1:2 --from=x a b\n",
            "Dockerfile",
        )
        .unwrap();
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(df.meta_args.len(), 1);
        let s = &df.stages[0];
        assert_eq!(s.base, "${BASE}");
        assert_eq!(s.name.as_deref(), Some("build"));
        assert_eq!(s.commands[0].line, 6);
        assert_eq!(s.commands[0].original, "RUN echo a &&     echo b");
        assert_eq!(s.commands[1].keyword, "copy");
        assert_eq!(s.commands[1].flag("chown"), Some("1:2"));
        assert_eq!(s.commands[1].flag("from"), Some("x"));
        assert_eq!(s.commands[1].rest, "a b");
        assert!(df.warnings.is_empty());
    }

    #[test]
    fn errors_as_docker_words_them() {
        let e = |t: &str| parse(t, "Dockerfile").unwrap_err().to_string();
        assert_eq!(
            e("FROM busybox\n\nNOINSTRUCTION x\n"),
            "dockerfile parse error line 3: unknown instruction: NOINSTRUCTION"
        );
        assert_eq!(e(""), "the Dockerfile (Dockerfile) cannot be empty");
        assert_eq!(
            e("# only\n\n"),
            "failed to parse Dockerfile: file with no instructions"
        );
        assert_eq!(e("RUN x\n"), "no build stage in current context");
        assert_eq!(
            e("FROM a\nCOPY x\n"),
            "dockerfile parse error line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"
        );
        assert_eq!(
            e("FROM a\nCOPY --link a b\n"),
            "dockerfile parse error line 2: Unknown flag: link"
        );
        assert_eq!(
            e("FROM a b\n"),
            "dockerfile parse error line 1: FROM requires either one or three arguments"
        );
        assert_eq!(
            e("FROM a AS 1x\n"),
            "dockerfile parse error line 1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
        );
        assert_eq!(
            e("FROM a AS x\nFROM b AS X\n"),
            "dockerfile parse error line 2: x stage name already used"
        );
        assert_eq!(
            e("FROM a\nSHELL sh -c\n"),
            "dockerfile parse error line 2: SHELL requires the arguments to be in JSON form"
        );
        assert_eq!(
            e("FROM a\nONBUILD ONBUILD RUN x\n"),
            "dockerfile parse error line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
        assert_eq!(
            e("FROM a\nCMD [1]\n"),
            "failed to parse Dockerfile: when using JSON array syntax, arrays must be comprised of strings only"
        );
        assert_eq!(
            e("FROM a\nENV A\n"),
            "dockerfile parse error line 2: ENV must have two arguments"
        );
        assert_eq!(
            e("FROM a\nENV A=hello world\n"),
            "dockerfile parse error line 2: Syntax error - can't find = in \"world\". Must be of the form: name=value"
        );
        assert_eq!(
            e("FROM a\nARG =x\n"),
            "dockerfile parse error line 2: ARG names can not be blank"
        );
        assert!(e("FROM a\nRUN <<EOF\necho\nEOF\n").contains("heredocs"));
        assert_eq!(
            e("# escape=x\nFROM a\n"),
            "failed to parse Dockerfile: invalid escape token 'x' does not match ` or \\"
        );
    }

    #[test]
    fn escape_directive_and_empty_continuations() {
        let df = parse("# escape=`\nFROM a\nRUN echo a `\n\n  b\n", "Dockerfile").unwrap();
        assert_eq!(df.stages[0].commands[0].original, "RUN echo a   b");
        assert_eq!(df.warnings.len(), 2);
        // Not JSON: the shell form.
        assert_eq!(json_form("['a']").unwrap(), None);
        assert_eq!(
            json_form(r#"["a", "b"] trailing"#).unwrap(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
    }
}
