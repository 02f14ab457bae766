//! A tracing layer that writes what Docker Engine's logrus writes, so log scrapers and
//! habits keep working:
//!
//! ```text
//! time="2026-11-27T20:37:19.165023981Z" level=info msg="Daemon has completed initialization"
//! {"level":"info","msg":"Daemon has completed initialization","time":"2026-11-27T20:37:19.165023981Z"}
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

use crate::config::LogFormat;

/// Writes each event as one line on stderr, in one `write` so lines never interleave.
pub struct LogrusLayer {
    format: LogFormat,
}

impl LogrusLayer {
    pub fn new(format: LogFormat) -> Self {
        LogrusLayer { format }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    others: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.others
                .insert(field.name().to_string(), value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.others
                .insert(field.name().to_string(), format!("{value:?}"));
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for LogrusLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let time = crate::timefmt::rfc3339_fixed(SystemTime::now());
        let level = level_name(event.metadata().level());
        let line = match self.format {
            LogFormat::Text => text_line(&time, level, &fields.message, &fields.others),
            LogFormat::Json => json_line(&time, level, &fields.message, &fields.others),
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// One logrus `TextFormatter` line: fixed keys first, then the rest sorted.
pub fn text_line(time: &str, level: &str, msg: &str, fields: &BTreeMap<String, String>) -> String {
    let mut s = String::with_capacity(64 + msg.len());
    let _ = write!(
        s,
        "time={} level={level} msg={}",
        quote(time),
        quote_if_needed(msg)
    );
    for (k, v) in fields {
        let _ = write!(s, " {k}={}", quote_if_needed(v));
    }
    s.push('\n');
    s
}

/// One logrus `JSONFormatter` line: a JSON object with sorted keys.
pub fn json_line(time: &str, level: &str, msg: &str, fields: &BTreeMap<String, String>) -> String {
    let mut all: BTreeMap<&str, &str> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.insert("level", level);
    all.insert("msg", msg);
    all.insert("time", time);
    let mut s = serde_json::to_string(&all).unwrap_or_default();
    s.push('\n');
    s
}

/// logrus quotes a value unless every character is in `[A-Za-z0-9-._/@^+]`.
fn quote_if_needed(v: &str) -> String {
    let plain = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '@' | '^' | '+'));
    if plain { v.to_string() } else { quote(v) }
}

/// Go's `%q`: double quotes, with backslash escapes for quotes, backslashes and
/// control characters.
fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(s, "\\x{:02x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_matches_logrus() {
        let mut f = BTreeMap::new();
        f.insert("container_id".to_string(), "abc123".to_string());
        f.insert("api_path".to_string(), "/v1.51/info".to_string());
        assert_eq!(
            text_line(
                "2026-11-27T20:37:19.165023981Z",
                "info",
                "Daemon has completed initialization",
                &f
            ),
            "time=\"2026-11-27T20:37:19.165023981Z\" level=info msg=\"Daemon has completed initialization\" \
             api_path=/v1.51/info container_id=abc123\n"
        );
        assert_eq!(
            text_line("t", "debug", "ok", &BTreeMap::new()),
            "time=\"t\" level=debug msg=ok\n"
        );
        assert!(
            text_line("t", "info", "a \"b\"\n", &BTreeMap::new()).contains(r#"msg="a \"b\"\n""#)
        );
    }

    #[test]
    fn json_has_sorted_keys() {
        let mut f = BTreeMap::new();
        f.insert("zeta".to_string(), "1".to_string());
        assert_eq!(
            json_line("t", "info", "m", &f),
            "{\"level\":\"info\",\"msg\":\"m\",\"time\":\"t\",\"zeta\":\"1\"}\n"
        );
    }
}
