//! `docker import`: a root filesystem tarball (plain, gzip or zstd) becomes a
//! one-layer image with a config written the way Docker Engine 28 writes it.

use std::io::Read;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::config::{ImageConfig, ImageJson};
use super::layer_store;
use super::reference::Reference;
use super::{Error, ImageStore, Result, changes};

/// An image platform: `os[/architecture[/variant]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: String,
}

impl Platform {
    /// Linux on `goarch` (Go's spelling of the architecture, e.g. `amd64`).
    pub fn linux(goarch: &str) -> Platform {
        Platform {
            os: "linux".to_string(),
            architecture: goarch.to_string(),
            variant: String::new(),
        }
    }

    /// Parses `linux`, `linux/arm64`, `linux/arm/v7` (the architecture defaults to
    /// `default_arch`); only Linux images run here.
    pub fn parse(s: &str, default_arch: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(Error::invalid(format!(
                "\"{s}\": invalid platform format: expected os[/arch[/variant]]"
            )));
        }
        let os = parts[0].to_lowercase();
        if os != "linux" {
            return Err(Error::invalid(format!(
                "operating system is not supported: \"{os}\" (this daemon runs Linux images)"
            )));
        }
        Ok(Platform {
            os,
            architecture: parts
                .get(1)
                .map_or_else(|| default_arch.to_string(), |a| normalize_arch(a)),
            variant: parts.get(2).map(|v| v.to_string()).unwrap_or_default(),
        })
    }
}

fn normalize_arch(a: &str) -> String {
    match a.to_lowercase().as_str() {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        "i386" => "386".to_string(),
        other => other.to_string(),
    }
}

/// What `POST /images/create?fromSrc=…` asks for.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Tag to give the image (already carrying its tag).
    pub reference: Option<Reference>,
    /// History comment (`Imported from -` when the client gave none).
    pub message: String,
    /// Dockerfile instructions applied to the config.
    pub changes: Vec<String>,
    /// The image's platform (the host's unless the client asked otherwise).
    pub platform: Platform,
}

/// What an import produced.
#[derive(Clone, Debug)]
pub struct Imported {
    pub id: String,
    /// The image the tag pointed at before, if another.
    pub replaced: Option<String>,
}

impl ImageStore {
    /// Imports a root filesystem tarball read from `input`.
    pub fn import<R: Read>(&self, input: R, opts: &ImportOptions) -> Result<Imported> {
        // Like Docker: the changes are checked before the upload is read.
        let mut config = ImageConfig::default();
        changes::apply(&mut config, &opts.changes)?;
        let platform = &opts.platform;
        let (_, plain) = layer_store::decompress(input, "the imported archive")?;
        let prepared = self.paths.prepare(plain)?;
        let created = crate::timefmt::rfc3339_nano(SystemTime::now());
        let raw = import_config(
            &config,
            platform,
            &created,
            &opts.message,
            &prepared.meta.diff_id,
        );
        let json = ImageJson::parse(&raw, "of the import")?;
        let id = self.commit_image(&raw, &json, vec![prepared], None)?;
        let mut replaced = None;
        if let Some(r) = &opts.reference {
            let mut st = self.lock();
            replaced = self.add_tag(&mut st, &id, r)?;
        }
        Ok(Imported { id, replaced })
    }
}

/// The config document Docker 28 writes for an import: top-level keys sorted (Go
/// marshals a map), `config` and `container_config` in `container.Config` order.
fn import_config(
    c: &ImageConfig,
    p: &Platform,
    created: &str,
    message: &str,
    diff_id: &str,
) -> Vec<u8> {
    let mut top = Map::new();
    top.insert("architecture".into(), json!(p.architecture));
    if !message.is_empty() {
        top.insert("comment".into(), json!(message));
    }
    top.insert("config".into(), super::config::config_json(c, true));
    top.insert(
        "container_config".into(),
        super::config::config_json(&ImageConfig::default(), true),
    );
    top.insert("created".into(), json!(created));
    let mut history = Map::new();
    history.insert("created".into(), json!(created));
    if !message.is_empty() {
        history.insert("comment".into(), json!(message));
    }
    top.insert("history".into(), Value::Array(vec![Value::Object(history)]));
    top.insert("os".into(), json!(p.os));
    top.insert(
        "rootfs".into(),
        json!({ "type": "layers", "diff_ids": [diff_id] }),
    );
    if !p.variant.is_empty() {
        top.insert("variant".into(), json!(p.variant));
    }
    serde_json::to_vec(&Value::Object(top)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_like_dockers() {
        let c = ImageConfig {
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        let raw = import_config(
            &c,
            &Platform::linux("amd64"),
            "2026-01-01T00:00:00Z",
            "Imported from -",
            "sha256:ab",
        );
        let s = String::from_utf8(raw).unwrap();
        assert!(s.starts_with(r#"{"architecture":"amd64","#), "{s}");
        assert!(
            s.contains(
                r#""comment":"Imported from -","config":{"Hostname":"","Domainname":"","User":"""#
            ),
            "{s}"
        );
        assert!(
            s.contains(r#""Cmd":["sh"],"Image":"","Volumes":null"#),
            "{s}"
        );
        assert!(
            s.ends_with(r#""os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:ab"]}}"#),
            "{s}"
        );
    }

    #[test]
    fn platforms() {
        assert_eq!(
            Platform::parse("linux/arm64", "amd64")
                .unwrap()
                .architecture,
            "arm64"
        );
        assert_eq!(
            Platform::parse("linux", "amd64").unwrap().architecture,
            "amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm/v7", "amd64").unwrap().variant,
            "v7"
        );
        assert!(Platform::parse("windows/amd64", "amd64").is_err());
        assert!(Platform::parse("linux//x", "amd64").is_err());
    }
}
