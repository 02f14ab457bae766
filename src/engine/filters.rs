//! The `filters` query parameter shared by list and event endpoints.
//!
//! Clients send a JSON object of `key → values`. Two encodings exist in the wild:
//! the current `{"type":{"container":true}}` (a set as a map to `true`) and the
//! legacy `{"type":["container"]}` (API < 1.22, still sent by some libraries).
//! Both parse to the same [`Filters`].

use std::collections::{BTreeMap, BTreeSet};

use super::{Error, Result};

/// Parsed filters: each key with the set of values given for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    args: BTreeMap<String, BTreeSet<String>>,
}

impl Filters {
    /// Parses the `filters` parameter; an empty string means no filters.
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Filters::default());
        }
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| Error::invalid("invalid filter: expected a JSON object"))?;
        let mut args = BTreeMap::new();
        for (key, values) in obj {
            let mut set = BTreeSet::new();
            match values {
                serde_json::Value::Object(m) => {
                    for (v, enabled) in m {
                        if enabled.as_bool() != Some(false) {
                            set.insert(v.clone());
                        }
                    }
                }
                serde_json::Value::Array(a) => {
                    for v in a {
                        let v = v.as_str().ok_or_else(|| {
                            Error::invalid(format!(
                                "invalid filter '{key}': values must be strings"
                            ))
                        })?;
                        set.insert(v.to_string());
                    }
                }
                _ => return Err(Error::invalid(format!("invalid filter '{key}'"))),
            }
            args.insert(key.clone(), set);
        }
        Ok(Filters { args })
    }

    /// Refuses keys outside `accepted`, with Docker's message.
    pub fn validate(&self, accepted: &[&str]) -> Result<()> {
        for key in self.args.keys() {
            if !accepted.contains(&key.as_str()) {
                return Err(Error::invalid(format!("invalid filter '{key}'")));
            }
        }
        Ok(())
    }

    /// The values given for `key` (empty when the key is absent).
    pub fn get(&self, key: &str) -> impl Iterator<Item = &str> {
        self.args.get(key).into_iter().flatten().map(String::as_str)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.args.get(key).is_some_and(|s| !s.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.args.values().all(|s| s.is_empty())
    }

    /// True when `key` is absent or one of its values equals `value`.
    pub fn exact_match(&self, key: &str, value: &str) -> bool {
        match self.args.get(key) {
            None => true,
            Some(set) => set.is_empty() || set.contains(value),
        }
    }

    /// True when `key` is absent or any of `values` is one of its values.
    pub fn match_any<'a>(&self, key: &str, mut values: impl Iterator<Item = &'a str>) -> bool {
        match self.args.get(key) {
            None => true,
            Some(set) if set.is_empty() => true,
            Some(set) => values.any(|v| set.contains(v)),
        }
    }

    /// Label filters (`label=key` or `label=key=value`, also `label!=…` under `negate_key`):
    /// true when every given condition holds for `labels`.
    pub fn match_labels(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        self.get(key).all(|cond| label_matches(cond, labels))
    }

    /// A boolean filter such as `dangling=true`; `None` when absent.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        let mut result = None;
        for v in self.get(key) {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(Error::invalid(format!(
                        "invalid filter '{key}={v}': expected true or false"
                    )));
                }
            };
            if result.is_some_and(|r| r != b) {
                return Err(Error::invalid(format!(
                    "invalid filter '{key}': conflicting values"
                )));
            }
            result = Some(b);
        }
        Ok(result)
    }
}

/// The `until` filter of prune endpoints: a timestamp, or a Go duration before now
/// (`24h`, `10m`). Returns nanoseconds since the epoch.
pub fn parse_until(v: &str) -> Result<i64> {
    if let Some(d) = crate::timefmt::parse_go_duration(v) {
        if v.chars().any(|c| c.is_ascii_alphabetic()) {
            return Ok(crate::engine::events::now_nanos() - d);
        }
    }
    crate::timefmt::parse_timestamp(v).ok_or_else(|| {
        Error::invalid(format!(
            "invalid filter 'until={v}': not a timestamp or duration"
        ))
    })
}

fn label_matches(cond: &str, labels: &BTreeMap<String, String>) -> bool {
    match cond.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(cond),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_parse_alike() {
        let a = Filters::parse(r#"{"type":{"container":true}}"#).unwrap();
        let b = Filters::parse(r#"{"type":["container"]}"#).unwrap();
        assert_eq!(a, b);
        assert!(a.exact_match("type", "container"));
        assert!(!a.exact_match("type", "image"));
        assert!(a.exact_match("event", "anything"));
    }

    #[test]
    fn labels_match_key_or_key_value() {
        let f = Filters::parse(r#"{"label":["a","b=2"]}"#).unwrap();
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(!f.match_labels("label", &l));
        l.insert("b".to_string(), "2".to_string());
        assert!(f.match_labels("label", &l));
    }

    #[test]
    fn bad_input_is_invalid_parameter() {
        assert!(matches!(
            Filters::parse("{"),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            Filters::parse("[]"),
            Err(Error::InvalidParameter(_))
        ));
        let f = Filters::parse(r#"{"nope":["x"]}"#).unwrap();
        assert!(f.validate(&["type"]).is_err());
    }

    #[test]
    fn until_accepts_durations_and_times() {
        let now = crate::timefmt::to_nanos(std::time::SystemTime::now());
        let t = parse_until("10m").unwrap();
        assert!((now - t - 600_000_000_000).abs() < 5_000_000_000);
        assert_eq!(parse_until("100").unwrap(), 100_000_000_000);
        assert!(parse_until("2026-01-01T00:00:00Z").is_ok());
        assert!(parse_until("soon").is_err());
    }
}
