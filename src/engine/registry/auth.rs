//! Registry credentials and challenges: the `X-Registry-Auth` header the docker CLI
//! sends, `WWW-Authenticate` challenges (Basic, and Bearer with the token service's
//! realm, service and scope), and the token the service hands out.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::engine::{Error, Result};

/// Credentials for one registry, as the docker CLI sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// `base64(username:password)`, an alternative to the two fields.
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub email: String,
    #[serde(default, rename = "serveraddress")]
    pub server_address: String,
    /// A refresh token from an earlier login.
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    /// A bearer token to use as is.
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

impl AuthConfig {
    /// Username and password, from the fields or from `auth`.
    pub fn basic(&self) -> Option<(String, String)> {
        if !self.username.is_empty() {
            return Some((self.username.clone(), self.password.clone()));
        }
        if self.auth.is_empty() {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(self.auth.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.basic().is_none() && self.identity_token.is_empty() && self.registry_token.is_empty()
    }
}

/// Docker's header encoding: base64url, padded or not (standard base64 taken too).
pub fn decode_base64url(value: &str) -> Option<Vec<u8>> {
    let v = value.trim();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(v))
        .ok()
}

/// Decodes `X-Registry-Auth`: base64url (padded or not) of an [`AuthConfig`]. An
/// empty header, or `{}`, is no credentials.
pub fn decode_header(value: &str) -> Result<AuthConfig> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(AuthConfig::default());
    }
    let bytes = decode_base64url(v)
        .ok_or_else(|| Error::invalid("invalid X-Registry-Auth header: it is not base64"))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(AuthConfig::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(format!("invalid X-Registry-Auth header: {e}")))
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: String,
        /// The scope the registry asked for, when it named one.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value: `Bearer realm="…",service="…",scope="…"` or
/// `Basic realm="…"`.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned().unwrap_or_default(),
                scope: params.get("scope").cloned(),
            })
        }
        _ => None,
    }
}

/// Whether two challenges name the same scheme and token service (the scope they
/// ask for may differ).
pub fn same_service(a: &Challenge, b: &Challenge) -> bool {
    match (a, b) {
        (Challenge::Basic, Challenge::Basic) => true,
        (
            Challenge::Bearer {
                realm: r1,
                service: s1,
                ..
            },
            Challenge::Bearer {
                realm: r2,
                service: s2,
                ..
            },
        ) => r1 == r2 && s1 == s2,
        _ => false,
    }
}

/// The `error` of a Bearer challenge (`insufficient_scope`, `invalid_token`) and
/// its `error_description`.
pub fn challenge_error(value: &str) -> Option<(String, Option<String>)> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let error = params.get("error")?.clone();
    Some((error, params.get("error_description").cloned()))
}

/// `a="x", b=y` → {a: x, b: y}; quoted values may hold commas and `\"`.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    out
}

/// What a token service answers.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: u64,
    #[serde(default)]
    pub refresh_token: String,
}

impl TokenResponse {
    pub fn bearer(&self) -> Option<&str> {
        [&self.token, &self.access_token]
            .into_iter()
            .find(|t| !t.is_empty())
            .map(String::as_str)
    }
}

/// The scope of a repository: `repository:team/app:pull` or `…:push,pull`.
pub fn repository_scope(path: &str, push: bool) -> String {
    if push {
        format!("repository:{path}:push,pull")
    } else {
        format!("repository:{path}:pull")
    }
}

/// `Basic base64(user:password)`.
pub fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: "registry.example".into(),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate x"), None);
    }

    #[test]
    fn registry_auth_header() {
        let json = r#"{"username":"u","password":"p","serveraddress":"localhost:5000"}"#;
        let enc = base64::engine::general_purpose::URL_SAFE.encode(json);
        let a = decode_header(&enc).unwrap();
        assert_eq!(a.basic(), Some(("u".into(), "p".into())));
        let a =
            decode_header(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{}")).unwrap();
        assert!(a.is_empty());
        let auth = base64::engine::general_purpose::STANDARD.encode("x:y");
        let a = AuthConfig {
            auth,
            ..AuthConfig::default()
        };
        assert_eq!(a.basic(), Some(("x".into(), "y".into())));
        assert!(decode_header("!!!").is_err());
        assert!(decode_header("").unwrap().is_empty());
    }
}
