//! Manifests as registries serve them: Docker image manifest v2 schema 2 and manifest
//! lists, OCI image manifests and indexes; schema 1 is recognised and refused. A
//! list or index is narrowed to one platform.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{Error, Result};
use crate::image::import::Platform;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The `Accept` header of a manifest request: every kind this daemon reads, and
/// schema 1, so that it can be refused by name.
pub fn accept_header() -> String {
    [
        OCI_INDEX,
        DOCKER_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
        SCHEMA1_SIGNED,
        SCHEMA1,
    ]
    .join(", ")
}

/// A content descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
}

/// The platform of a list entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformSpec {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// An image manifest (Docker schema 2 or OCI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A manifest list or OCI index.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

/// A manifest document as fetched.
#[derive(Debug, Clone)]
pub enum Fetched {
    Image(Box<ImageManifest>),
    Index(Index),
}

/// Reads a manifest by its media type (the document's `mediaType`, else the
/// response's `Content-Type`). `what` names it in errors.
pub fn parse(bytes: &[u8], content_type: &str, what: &str) -> Result<Fetched> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(format!("invalid manifest for {what}: {e}")))?;
    let declared = v.get("mediaType").and_then(Value::as_str).unwrap_or("");
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let kind = if declared.is_empty() { ct } else { declared };
    let schema = v.get("schemaVersion").and_then(Value::as_i64).unwrap_or(0);
    if kind == SCHEMA1 || kind == SCHEMA1_SIGNED || schema == 1 {
        return Err(Error::invalid(format!(
            "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of {what} to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/"
        )));
    }
    let is_index = kind == DOCKER_LIST
        || kind == OCI_INDEX
        || (kind.is_empty() || kind == "application/json") && v.get("manifests").is_some();
    if is_index {
        return serde_json::from_value(v)
            .map(Fetched::Index)
            .map_err(|e| Error::invalid(format!("invalid manifest list for {what}: {e}")));
    }
    match kind {
        DOCKER_MANIFEST | OCI_MANIFEST | "" | "application/json" => {
            let m: ImageManifest = serde_json::from_value(v)
                .map_err(|e| Error::invalid(format!("invalid manifest for {what}: {e}")))?;
            if m.schema_version != 2 {
                return Err(Error::invalid(format!(
                    "unsupported manifest schema version {} for {what}",
                    m.schema_version
                )));
            }
            Ok(Fetched::Image(Box::new(m)))
        }
        other => Err(Error::invalid(format!(
            "unsupported manifest media type {other:?} for {what}"
        ))),
    }
}

/// The entry of `index` for `want` (variant only when both name one), as Docker's
/// platform matcher picks it.
pub fn select<'a>(index: &'a Index, want: &Platform) -> Result<&'a Descriptor> {
    let matching = |d: &&'a Descriptor| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == want.os
                && p.architecture == want.architecture
                && (want.variant.is_empty() || p.variant.is_empty() || p.variant == want.variant)
        })
    };
    index
        .manifests
        .iter()
        .filter(|d| d.media_type != "application/vnd.in-toto+json")
        .find(matching)
        .ok_or_else(|| {
            let name = if want.variant.is_empty() {
                format!("{}/{}", want.os, want.architecture)
            } else {
                format!("{}/{}/{}", want.os, want.architecture, want.variant)
            };
            Error::not_found(format!(
                "no matching manifest for {name} in the manifest list entries"
            ))
        })
}

/// Whether a layer's media type is one this daemon unpacks (the stream's own
/// compression is detected when it is read).
pub fn check_layer_type(media_type: &str) -> Result<()> {
    match media_type {
        DOCKER_LAYER_GZIP | OCI_LAYER | OCI_LAYER_GZIP | OCI_LAYER_ZSTD | "" => Ok(()),
        DOCKER_LAYER_FOREIGN | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
            Err(Error::invalid(
                "the image has foreign (non-distributable) layers, which this daemon does not fetch",
            ))
        }
        other => Err(Error::invalid(format!(
            "unsupported layer media type {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_media_type() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:aa","size":1},"layers":[]}"#;
        assert!(matches!(parse(m, "", "x").unwrap(), Fetched::Image(_)));
        let oci = br#"{"schemaVersion":2,"config":{"digest":"sha256:aa","size":1},"layers":[]}"#;
        assert!(matches!(
            parse(oci, OCI_MANIFEST, "x").unwrap(),
            Fetched::Image(_)
        ));
        let idx = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":2,"platform":{"architecture":"arm64","os":"linux"}}]}"#;
        assert!(matches!(
            parse(idx, OCI_INDEX, "x").unwrap(),
            Fetched::Index(_)
        ));
        let s1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let e = parse(s1, SCHEMA1_SIGNED, "docker.io/library/x:1").unwrap_err();
        assert!(
            e.to_string().contains("schema 1 support has been removed"),
            "{e}"
        );
    }

    #[test]
    fn platforms_are_selected() {
        let idx: Index = serde_json::from_str(
            r#"{"manifests":[
                {"mediaType":"m","digest":"sha256:arm","size":1,"platform":{"architecture":"arm","os":"linux","variant":"v7"}},
                {"mediaType":"m","digest":"sha256:amd","size":1,"platform":{"architecture":"amd64","os":"linux"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            select(&idx, &Platform::linux("amd64")).unwrap().digest,
            "sha256:amd"
        );
        let mut arm = Platform::linux("arm");
        arm.variant = "v7".into();
        assert_eq!(select(&idx, &arm).unwrap().digest, "sha256:arm");
        let e = select(&idx, &Platform::linux("s390x")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
    }
}
