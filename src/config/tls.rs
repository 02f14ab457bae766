//! TLS for TCP listeners, with Docker's flags and keys: `tls`, `tlsverify`,
//! `tlscacert`, `tlscert`, `tlskey`.
//!
//! As with Docker, giving `tlsverify` at all (true or false) turns TLS on, and
//! `tls` alone means `tlsverify` too: client certificates are required unless
//! `tlsverify` is explicitly false. The files default to `ca.pem`, `cert.pem` and
//! `key.pem` in `$DOCKER_CERT_PATH`, else in `/etc/docker` (Docker's daemon looks
//! in `~/.docker`; a system service keeps its keys with its configuration).

use std::path::PathBuf;

use super::{ConfigError, FileReader};
use crate::cli::Parsed;

/// Where the daemon's certificates live unless told otherwise.
pub const DEFAULT_CERT_DIR: &str = "/etc/docker";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// Require client certificates signed by `ca` (mutual TLS).
    pub verify: bool,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub(crate) fn from_parts(r: &FileReader<'_>, p: &Parsed) -> Result<Option<TlsConfig>, ConfigError> {
    let f = &p.flags;
    let verify_given = p.is_explicit("tlsverify") || r.get("tlsverify").is_some();
    let tls = r.boolean("tls", f.tls)?;
    let verify = r.boolean("tlsverify", f.tlsverify)?;
    let (enabled, verify) = if verify_given {
        (true, verify)
    } else {
        (tls, tls)
    };
    if !enabled {
        return Ok(None);
    }
    let dir = std::env::var_os("DOCKER_CERT_PATH")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CERT_DIR));
    let path = |k: &str, flag: &str, file: &str| -> Result<PathBuf, ConfigError> {
        let s = r.string(k, flag)?;
        Ok(if s.is_empty() {
            dir.join(file)
        } else {
            PathBuf::from(s)
        })
    };
    Ok(Some(TlsConfig {
        verify,
        ca: path("tlscacert", &f.tlscacert, "ca.pem")?,
        cert: path("tlscert", &f.tlscert, "cert.pem")?,
        key: path("tlskey", &f.tlskey, "key.pem")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(args: &[&str], json: &str) -> Option<TlsConfig> {
        let mut argv = vec!["dockerd"];
        argv.extend_from_slice(args);
        let parsed = crate::cli::parse(argv).unwrap();
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap();
        let reader = FileReader {
            file: &map,
            prefix: "p",
        };
        from_parts(&reader, &parsed).unwrap()
    }

    #[test]
    fn dockers_rules_for_tls_and_tlsverify() {
        assert_eq!(tls(&[], "{}"), None);
        assert_eq!(tls(&["--tls=false"], "{}"), None);
        let t = tls(&["--tls"], "{}").unwrap();
        assert!(t.verify, "--tls alone verifies clients");
        assert_eq!(t.ca, PathBuf::from("/etc/docker/ca.pem"));
        assert_eq!(t.key, PathBuf::from("/etc/docker/key.pem"));
        let t = tls(&["--tlsverify=false"], "{}").unwrap();
        assert!(
            !t.verify,
            "tlsverify=false is TLS without client certificates"
        );
        let t = tls(
            &["--tlscert", "/x/c.pem"],
            r#"{"tlsverify": true, "tlskey": "/x/k.pem"}"#,
        )
        .unwrap();
        assert!(t.verify);
        assert_eq!(t.cert, PathBuf::from("/x/c.pem"));
        assert_eq!(t.key, PathBuf::from("/x/k.pem"));
        assert!(tls(&[], r#"{"tls": true, "tlsverify": false}"#).is_some_and(|t| !t.verify));
    }
}
