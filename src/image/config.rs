//! The image config document (`application/vnd.oci.image.config.v1+json`, and
//! Docker's older v1 form), read tolerantly: engines disagree about which fields
//! are present and which are `null`, and an image must still load. The stored bytes
//! are never rewritten (the image ID is their digest); these types are views.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::{Error, Result};

/// The `config` part of an image config: what a container from the image runs
/// with unless told otherwise.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default, deserialize_with = "null_default")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default, deserialize_with = "str_slice")]
    pub env: Option<Vec<String>>,
    #[serde(default, deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub args_escaped: bool,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(default, deserialize_with = "null_default")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, deserialize_with = "str_slice")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, deserialize_with = "labels")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    #[serde(
        default,
        deserialize_with = "str_slice",
        skip_serializing_if = "Option::is_none"
    )]
    pub shell: Option<Vec<String>>,
}

/// One entry of the image's build history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub created_by: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub author: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub comment: String,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub empty_layer: bool,
}

/// `rootfs`: the layers, bottom first, by diff ID.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<String>,
}

/// The parts of an image config document the daemon reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ImageJson {
    #[serde(default, deserialize_with = "null_default")]
    pub created: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub author: String,
    #[serde(default, deserialize_with = "null_default")]
    pub architecture: String,
    #[serde(default, deserialize_with = "null_default")]
    pub variant: String,
    #[serde(default, deserialize_with = "null_default")]
    pub os: String,
    #[serde(rename = "os.version", default, deserialize_with = "null_default")]
    pub os_version: String,
    #[serde(default, deserialize_with = "null_default")]
    pub comment: String,
    #[serde(default, deserialize_with = "null_default")]
    pub docker_version: String,
    #[serde(default, deserialize_with = "null_default")]
    pub container: String,
    #[serde(default)]
    pub container_config: Option<Value>,
    #[serde(default)]
    pub config: Option<ImageConfig>,
    #[serde(default)]
    pub rootfs: Option<RootFs>,
    #[serde(default, deserialize_with = "null_default")]
    pub history: Vec<History>,
}

impl ImageJson {
    /// Parses config bytes; `what` names them in the error.
    pub fn parse(bytes: &[u8], what: &str) -> Result<ImageJson> {
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::invalid(format!(
                "invalid image config {what}: not a JSON object"
            )));
        }
        let img: ImageJson = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(format!("invalid image config {what}: {e}")))?;
        Ok(img)
    }

    /// The layers' diff IDs, bottom first.
    pub fn diff_ids(&self) -> &[String] {
        self.rootfs.as_ref().map_or(&[], |r| r.diff_ids.as_slice())
    }

    /// Creation time in nanoseconds since the epoch (when the document has one).
    pub fn created_nanos(&self) -> Option<i64> {
        self.created
            .as_deref()
            .and_then(crate::timefmt::parse_timestamp)
    }

    /// The OS, with Docker's default for old documents.
    pub fn os(&self) -> &str {
        if self.os.is_empty() {
            "linux"
        } else {
            &self.os
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `null` reads as the type's default.
fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `container.Config` as Go marshals it from an image config (omitempty fields only
/// when set). `with_container_fields` adds the fields that only make sense for a
/// container (Hostname, Attach*, Tty, …, Image): image configs written on import carry
/// them, and image inspect shows them before API 1.50.
pub fn config_json(c: &ImageConfig, with_container_fields: bool) -> Value {
    let mut m = serde_json::Map::new();
    if with_container_fields {
        m.insert("Hostname".into(), json!(""));
        m.insert("Domainname".into(), json!(""));
    }
    m.insert("User".into(), json!(c.user));
    if with_container_fields {
        m.insert("AttachStdin".into(), json!(false));
        m.insert("AttachStdout".into(), json!(false));
        m.insert("AttachStderr".into(), json!(false));
    }
    if let Some(p) = c.exposed_ports.as_ref().filter(|p| !p.is_empty()) {
        m.insert("ExposedPorts".into(), json!(p));
    }
    if with_container_fields {
        m.insert("Tty".into(), json!(false));
        m.insert("OpenStdin".into(), json!(false));
        m.insert("StdinOnce".into(), json!(false));
    }
    m.insert("Env".into(), json!(c.env));
    m.insert("Cmd".into(), json!(c.cmd));
    if let Some(h) = &c.healthcheck {
        m.insert("Healthcheck".into(), h.clone());
    }
    if c.args_escaped {
        m.insert("ArgsEscaped".into(), json!(true));
    }
    if with_container_fields {
        m.insert("Image".into(), json!(""));
    }
    m.insert("Volumes".into(), json!(c.volumes));
    m.insert("WorkingDir".into(), json!(c.working_dir));
    m.insert("Entrypoint".into(), json!(c.entrypoint));
    m.insert("OnBuild".into(), json!(c.on_build));
    m.insert("Labels".into(), json!(c.labels));
    if !c.stop_signal.is_empty() {
        m.insert("StopSignal".into(), json!(c.stop_signal));
    }
    if let Some(s) = &c.shell {
        m.insert("Shell".into(), json!(s));
    }
    Value::Object(m)
}

/// Docker's `StrSlice`: an array of strings, or one string.
pub fn str_slice<'de, D>(d: D) -> std::result::Result<Option<Vec<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<S>::deserialize(d)? {
        None => None,
        Some(S::One(s)) => Some(vec![s]),
        Some(S::Many(v)) => Some(v),
    })
}

/// Labels whose values are not strings (seen in hand-made configs) become strings.
fn labels<'de, D>(d: D) -> std::result::Result<Option<BTreeMap<String, String>>, D::Error>
where
    D: Deserializer<'de>,
{
    let m = Option::<BTreeMap<String, Value>>::deserialize(d)?;
    Ok(m.map(|m| {
        m.into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker20_config() {
        let raw = br#"{"architecture":"amd64","comment":"Imported from -","config":{"Hostname":"","User":"","Env":null,"Cmd":["sh"],"Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},"created":"2026-11-27T20:44:51.6400771Z","history":[{"created":"2026-11-27T20:44:51.6400771Z","comment":"Imported from -"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0fc1"]}}"#;
        let img = ImageJson::parse(raw, "x").unwrap();
        let c = img.config.clone().unwrap();
        assert_eq!(c.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(c.env, None);
        assert_eq!(img.diff_ids(), ["sha256:0fc1"]);
        assert_eq!(img.history[0].comment, "Imported from -");
        assert!(img.created_nanos().is_some());
    }

    #[test]
    fn tolerates_nulls_and_strings() {
        let raw = br#"{"config":{"User":null,"Cmd":"sh","Labels":{"a":1}},"rootfs":null,"history":null,"created":null}"#;
        let img = ImageJson::parse(raw, "x").unwrap();
        let c = img.config.clone().unwrap();
        assert_eq!(c.user, "");
        assert_eq!(c.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(c.labels.unwrap()["a"], "1");
        assert!(img.diff_ids().is_empty());
        assert!(ImageJson::parse(b"[]", "x").is_err());
    }
}
