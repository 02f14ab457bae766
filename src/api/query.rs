//! The URL query string, decoded, with Docker's conventions for booleans and numbers.

use crate::engine::{Error, Filters, Result};

/// Decoded `key=value` pairs in request order (a key may repeat: `names=a&names=b`).
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (form_decode(k), form_decode(v)),
                None => (form_decode(p), String::new()),
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Docker's `BoolValue`: absent, empty, `0`, `no`, `false`, `none` are false.
    pub fn bool(&self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }

    /// Like [`Query::bool`] but `default` when the key is absent.
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        if self.get(key).is_some() {
            self.bool(key)
        } else {
            default
        }
    }

    /// An integer parameter; absent or empty is `None`, garbage is a 400.
    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                Error::invalid(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
        }
    }

    /// The `filters` parameter, checked against the keys the endpoint accepts.
    pub fn filters(&self, accepted: &[&str]) -> Result<Filters> {
        let f = Filters::parse(self.get("filters").unwrap_or(""))?;
        f.validate(accepted)?;
        Ok(f)
    }
}

/// Percent-decoding plus `+` as space (`application/x-www-form-urlencoded`).
pub fn form_decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Percent-decoding of a path segment (`+` stays `+`). Invalid escapes stay as written.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_repeats() {
        let q = Query::parse(Some("names=busybox%3Alatest&names=alpine&all=1&x=a+b"));
        assert_eq!(
            q.get_all("names").collect::<Vec<_>>(),
            vec!["busybox:latest", "alpine"]
        );
        assert!(q.bool("all"));
        assert!(!q.bool("missing"));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(percent_decode("a%2Fb%"), "a/b%");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn docker_booleans() {
        let q = Query::parse(Some("a=0&b=false&c=no&d=1&e=true&f="));
        assert!(!q.bool("a") && !q.bool("b") && !q.bool("c") && !q.bool("f"));
        assert!(q.bool("d") && q.bool("e"));
        assert!(Query::parse(Some("t=x")).int("t").is_err());
    }
}
