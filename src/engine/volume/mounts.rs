//! What a container mounts, and reading it from a create request the way Docker
//! does: `Binds` (`-v`), `Mounts` (`--mount`), `Tmpfs` (`--tmpfs`) and
//! `VolumesFrom`, with Docker's validation and wording.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::options::{self, PROPAGATIONS};
use crate::engine::{Error, Result};

/// The kind of a mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Volume,
    Tmpfs,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// One mount of a container, as kept in its record from create to removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub kind: MountType,
    /// The volume's name (volumes only).
    #[serde(default)]
    pub name: String,
    /// The host path (binds only; a volume's is its mount point).
    #[serde(default)]
    pub source: String,
    pub destination: String,
    #[serde(default)]
    pub driver: String,
    /// The mode as given (`ro,z`), or Docker's default for the kind.
    #[serde(default)]
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    #[serde(default)]
    pub propagation: String,
    /// A volume the container got without naming it (image `VOLUME`, `-v /path`,
    /// `--mount` without source): `docker rm -v` removes it.
    #[serde(default)]
    pub anonymous: bool,
    /// Copy the image's content at the destination into a new, empty volume.
    #[serde(default)]
    pub copy_data: bool,
    /// A bind of the source alone, not of the mounts below it.
    #[serde(default)]
    pub non_recursive: bool,
    /// A `-v` bind whose missing host path is created at start, as Docker does.
    #[serde(default)]
    pub create_source: bool,
    /// A `--mount type=tmpfs`: its mount data (`mode=1770,size=64m`).
    #[serde(default)]
    pub tmpfs_data: String,
}

impl MountPoint {
    /// A mount of `kind` at `destination`, everything else at its default.
    pub fn new(kind: MountType, destination: String, rw: bool) -> MountPoint {
        MountPoint {
            kind,
            name: String::new(),
            source: String::new(),
            destination,
            driver: String::new(),
            mode: String::new(),
            rw,
            propagation: String::new(),
            anonymous: false,
            copy_data: false,
            non_recursive: false,
            create_source: false,
            tmpfs_data: String::new(),
        }
    }
}

/// A parsed mount and what a volume it creates gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub point: MountPoint,
    /// For a new volume: its labels and driver options (`--mount volume-opt=…`).
    pub labels: Option<BTreeMap<String, String>>,
    pub driver_opts: Option<BTreeMap<String, String>>,
}

fn invalid_spec(raw: &str) -> String {
    format!("invalid volume specification: '{raw}'")
}

fn mount_config(kind: &str, detail: impl std::fmt::Display) -> Error {
    Error::invalid(format!(
        "invalid mount config for type \"{kind}\": {detail}"
    ))
}

/// Docker's grammar for a `-v` mode: comma-separated, at most one of each group.
pub fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut counts = [0; 5];
    for o in mode.split(',') {
        let group = match o {
            "rw" | "ro" => 0,
            "z" | "Z" => 1,
            o if PROPAGATIONS.contains(&o) => 2,
            "nocopy" => 3,
            "consistent" | "cached" | "delegated" => 4,
            _ => return false,
        };
        counts[group] += 1;
    }
    counts.iter().all(|&c| c <= 1)
}

fn mode_has(mode: &str, what: &str) -> bool {
    mode.split(',').any(|o| o == what)
}

/// Clean a container path the way Go's `path.Clean` does.
pub fn clean(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The checks every mount's target gets.
fn check_target(kind: &str, target: &str) -> Result<()> {
    if target.is_empty() {
        return Err(mount_config(kind, "field Target must not be empty"));
    }
    if clean(target) == "/" {
        return Err(mount_config(
            kind,
            "invalid specification: destination can't be '/'",
        ));
    }
    if !target.starts_with('/') {
        return Err(mount_config(
            kind,
            format_args!("invalid mount path: '{target}' mount path must be absolute"),
        ));
    }
    Ok(())
}

/// What the generic checks need of a mount, however it was given.
struct Spec<'a> {
    kind: &'a str,
    source: &'a str,
    target: &'a str,
    readonly: bool,
    propagation: Option<&'a str>,
    has_bind_options: bool,
    has_volume_options: bool,
    has_tmpfs_options: bool,
}

fn validate(s: &Spec) -> Result<()> {
    check_target(s.kind, s.target)?;
    match s.kind {
        "bind" => {
            if s.source.is_empty() {
                return Err(mount_config("bind", "field Source must not be empty"));
            }
            if let Some(p) = s.propagation.filter(|p| !PROPAGATIONS.contains(p)) {
                return Err(mount_config(
                    "bind",
                    format_args!("invalid propagation mode: {p}"),
                ));
            }
            if s.has_volume_options {
                return Err(mount_config(
                    "bind",
                    "field VolumeOptions must not be specified",
                ));
            }
            if !s.source.starts_with('/') {
                return Err(mount_config(
                    "bind",
                    format_args!(
                        "invalid mount path: '{}' mount path must be absolute",
                        s.source
                    ),
                ));
            }
        }
        "volume" => {
            if s.has_bind_options {
                return Err(mount_config(
                    "volume",
                    "field BindOptions must not be specified",
                ));
            }
            if s.readonly && s.source.is_empty() {
                return Err(mount_config(
                    "volume",
                    "must not set ReadOnly mode when using anonymous volumes",
                ));
            }
        }
        "tmpfs" => {
            if s.has_bind_options {
                return Err(mount_config(
                    "tmpfs",
                    "field BindOptions must not be specified",
                ));
            }
            if s.has_volume_options {
                return Err(mount_config(
                    "tmpfs",
                    "field VolumeOptions must not be specified",
                ));
            }
            if !s.source.is_empty() {
                return Err(mount_config("tmpfs", "field Source must not be specified"));
            }
        }
        other => return Err(mount_config(other, "mount type unknown")),
    }
    if s.has_tmpfs_options && s.kind != "tmpfs" {
        return Err(mount_config(
            s.kind,
            "field TmpfsOptions must not be specified",
        ));
    }
    Ok(())
}

/// A `Binds` entry: `/host:/ctr[:mode]`, `name:/ctr[:mode]`.
pub fn parse_bind(raw: &str, volume_driver: &str) -> Result<Parsed> {
    let arr: Vec<&str> = raw.split(':').collect();
    if arr[0].is_empty() {
        return Err(Error::invalid(invalid_spec(raw)));
    }
    let (source, target, mode) = match arr.as_slice() {
        [t] => ("", *t, ""),
        [_, m] if valid_mode(m) => return Err(Error::invalid(invalid_spec(raw))),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(Error::invalid(invalid_spec(raw))),
    };
    if !valid_mode(mode) {
        return Err(Error::invalid(format!("invalid mode: {mode}")));
    }
    let kind = if source.starts_with('/') {
        MountType::Bind
    } else {
        MountType::Volume
    };
    let readonly = mode_has(mode, "ro");
    let nocopy = mode_has(mode, "nocopy");
    let propagation = mode.split(',').find(|o| PROPAGATIONS.contains(o));
    let driver = (kind == MountType::Volume && !volume_driver.is_empty()).then_some(volume_driver);
    validate(&Spec {
        kind: kind.as_str(),
        source,
        target,
        readonly,
        propagation,
        has_bind_options: propagation.is_some(),
        has_volume_options: driver.is_some() || nocopy,
        has_tmpfs_options: false,
    })
    .map_err(|e| Error::invalid(format!("{}: {}", invalid_spec(raw), e)))?;
    let mut point = MountPoint::new(kind, clean(target), !readonly);
    point.mode = mode.to_string();
    match kind {
        MountType::Bind => {
            point.source = clean(source);
            point.propagation = propagation.unwrap_or("rprivate").to_string();
            point.create_source = true;
        }
        _ => {
            point.name = source.to_string();
            point.anonymous = source.is_empty();
            point.driver = volume_driver_name(driver.unwrap_or(""));
            point.copy_data = !nocopy;
            if point.mode.is_empty() {
                point.mode = "z".to_string();
            }
        }
    }
    Ok(Parsed {
        point,
        labels: None,
        driver_opts: None,
    })
}

fn volume_driver_name(d: &str) -> String {
    if d.is_empty() { "local" } else { d }.to_string()
}

fn string_map(v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    v.and_then(Value::as_object).map(|m| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    })
}

/// A `Mounts` entry (`--mount`), as the API's `Mount` object.
pub fn parse_mount(m: &Value) -> Result<Parsed> {
    let obj = m
        .as_object()
        .ok_or_else(|| Error::invalid("invalid JSON: a mount must be an object"))?;
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    let kind = s("Type");
    let present = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
    for (field, owner) in [
        ("VolumeOptions", "volume"),
        ("BindOptions", "bind"),
        ("TmpfsOptions", "tmpfs"),
    ] {
        if present(field) && kind != owner && ["bind", "volume", "tmpfs"].contains(&kind) {
            return Err(Error::invalid(format!(
                "{field} must not be specified on mount type \"{kind}\""
            )));
        }
    }
    if kind == "image" || kind == "npipe" || kind == "cluster" {
        return Err(Error::not_implemented(format!(
            "mount type \"{kind}\" is not supported by this daemon"
        )));
    }
    let bind_opts = obj.get("BindOptions").and_then(Value::as_object);
    let vol_opts = obj.get("VolumeOptions").and_then(Value::as_object);
    let tmpfs_opts = obj.get("TmpfsOptions").and_then(Value::as_object);
    let propagation = bind_opts
        .and_then(|b| b.get("Propagation"))
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let readonly = obj
        .get("ReadOnly")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let source = s("Source");
    let target = s("Target");
    validate(&Spec {
        kind,
        source,
        target,
        readonly,
        propagation,
        has_bind_options: bind_opts.is_some(),
        has_volume_options: vol_opts.is_some(),
        has_tmpfs_options: tmpfs_opts.is_some(),
    })?;
    let bool_opt = |o: Option<&serde_json::Map<String, Value>>, k: &str| {
        o.and_then(|o| o.get(k))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    if let Some(sub) = vol_opts
        .and_then(|v| v.get("Subpath"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return Err(Error::not_implemented(format!(
            "volume subpaths ({sub}) are not supported by this daemon yet"
        )));
    }
    for unsupported in [
        "ReadOnlyNonRecursive",
        "ReadOnlyForceRecursive",
        "CreateMountpoint",
    ] {
        if bool_opt(bind_opts, unsupported) {
            return Err(Error::not_implemented(format!(
                "BindOptions.{unsupported} is not supported by this daemon yet"
            )));
        }
    }
    let mut point = MountPoint::new(MountType::Tmpfs, clean(target), !readonly);
    let mut labels = None;
    let mut driver_opts = None;
    match kind {
        "bind" => {
            point.kind = MountType::Bind;
            point.source = clean(source);
            point.propagation = propagation.unwrap_or("rprivate").to_string();
            point.non_recursive = bool_opt(bind_opts, "NonRecursive");
            match std::fs::metadata(&point.source) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(mount_config(
                        "bind",
                        format_args!("bind source path does not exist: {}", point.source),
                    ));
                }
                Err(e) => {
                    return Err(mount_config(
                        "bind",
                        format_args!(
                            "stat {}: {}",
                            point.source,
                            crate::store::strip_os_suffix(&e)
                        ),
                    ));
                }
            }
        }
        "volume" => {
            point.kind = MountType::Volume;
            point.name = source.to_string();
            point.anonymous = source.is_empty();
            point.mode = "z".to_string();
            point.copy_data = !bool_opt(vol_opts, "NoCopy");
            let driver = vol_opts.and_then(|v| v.get("DriverConfig"));
            point.driver = volume_driver_name(
                driver
                    .and_then(|d| d.get("Name"))
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            );
            driver_opts =
                string_map(driver.and_then(|d| d.get("Options"))).filter(|m| !m.is_empty());
            labels = string_map(vol_opts.and_then(|v| v.get("Labels"))).filter(|m| !m.is_empty());
        }
        _ => {
            let size = tmpfs_opts
                .and_then(|t| t.get("SizeBytes"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let mode = tmpfs_opts
                .and_then(|t| t.get("Mode"))
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32;
            if size < 0 {
                return Err(mount_config("tmpfs", "invalid tmpfs size"));
            }
            let mut data = options::tmpfs_mount_data(readonly, size, mode);
            for o in tmpfs_opts
                .and_then(|t| t.get("Options"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let opt = o.as_array().map(Vec::as_slice).unwrap_or_default();
                let [one] = opt else {
                    return Err(mount_config("tmpfs", "invalid option array length"));
                };
                match one.as_str() {
                    Some(x @ ("exec" | "noexec")) => {
                        if !data.is_empty() {
                            data.push(',');
                        }
                        data.push_str(x);
                    }
                    _ => return Err(mount_config("tmpfs", format_args!("invalid option: {one}"))),
                }
            }
            options::tmpfs(&data).map_err(Error::invalid)?;
            point.tmpfs_data = data;
        }
    }
    Ok(Parsed {
        point,
        labels,
        driver_opts,
    })
}

/// A `Tmpfs` entry's destination, checked as Docker does.
pub fn check_tmpfs(destination: &str, opts: &str) -> Result<()> {
    if clean(destination) == "/" {
        return Err(Error::invalid(
            "invalid specification: destination can't be '/'",
        ));
    }
    if !destination.starts_with('/') {
        return Err(Error::invalid(format!(
            "invalid mount path: '{destination}' mount path must be absolute"
        )));
    }
    options::tmpfs(opts).map(|_| ()).map_err(Error::invalid)
}

/// A `VolumesFrom` entry: `CONTAINER[:mode]` → (container, read-only).
pub fn parse_volumes_from(spec: &str) -> Result<(String, bool)> {
    if spec.is_empty() {
        return Err(Error::invalid(
            "volumes-from specification cannot be an empty string",
        ));
    }
    let (id, mode) = spec.split_once(':').unwrap_or((spec, "rw"));
    let ok = valid_mode(mode)
        && !mode
            .split(',')
            .any(|o| PROPAGATIONS.contains(&o) || o == "nocopy");
    if !ok {
        return Err(Error::invalid(format!("invalid mode: {mode}")));
    }
    Ok((id.to_string(), mode_has(mode, "ro")))
}

/// A bind of a path inside data-root must not propagate mounts back into it:
/// Docker's default there is `rslave`, and only `rslave`/`rshared` are allowed.
pub fn check_bind_in_data_root(
    point: &mut MountPoint,
    given: bool,
    data_root: &Path,
) -> Result<()> {
    let root = data_root.to_string_lossy();
    let src = point.source.as_str();
    let inside = src.starts_with(root.as_ref()) || root.starts_with(src);
    if point.kind != MountType::Bind || !inside {
        return Ok(());
    }
    if !given {
        point.propagation = "rslave".to_string();
        return Ok(());
    }
    match point.propagation.as_str() {
        "rslave" | "rshared" => Ok(()),
        p => Err(Error::invalid(format!(
            "invalid mount config: must use either propagation mode \"rslave\" or \"rshared\" when mount source is within the daemon root, daemon root: \"{root}\", bind mount source: \"{src}\", propagation: \"{p}\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind_err(raw: &str) -> String {
        parse_bind(raw, "").unwrap_err().to_string()
    }

    #[test]
    fn binds_parse_as_docker() {
        let p = parse_bind("/tmp:/data:ro", "").unwrap().point;
        assert_eq!(p.kind, MountType::Bind);
        assert_eq!(
            (p.source.as_str(), p.destination.as_str()),
            ("/tmp", "/data")
        );
        assert_eq!(
            (p.mode.as_str(), p.rw, p.propagation.as_str()),
            ("ro", false, "rprivate")
        );
        let v = parse_bind("myvol:/data/", "").unwrap().point;
        assert_eq!(v.kind, MountType::Volume);
        assert_eq!(
            (v.name.as_str(), v.destination.as_str()),
            ("myvol", "/data")
        );
        assert_eq!((v.mode.as_str(), v.rw, v.copy_data), ("z", true, true));
        let v = parse_bind("myvol:/data:nocopy", "").unwrap().point;
        assert!(!v.copy_data);
        assert_eq!(v.mode, "nocopy");
        let a = parse_bind("/data", "").unwrap().point;
        assert!(a.anonymous);
        assert_eq!(
            parse_bind("/h:/c:shared", "").unwrap().point.propagation,
            "shared"
        );
    }

    #[test]
    fn bad_binds_get_dockers_messages() {
        assert_eq!(bind_err(":/x"), "invalid volume specification: ':/x'");
        assert_eq!(
            bind_err("/foo:rw"),
            "invalid volume specification: '/foo:rw'"
        );
        assert_eq!(
            bind_err("a:b:c:d"),
            "invalid volume specification: 'a:b:c:d'"
        );
        assert_eq!(bind_err("/a:/b:bogus"), "invalid mode: bogus");
        assert_eq!(bind_err("/a:/b:ro,rw"), "invalid mode: ro,rw");
        assert_eq!(
            bind_err("/a:b"),
            "invalid volume specification: '/a:b': invalid mount config for type \"bind\": invalid mount path: 'b' mount path must be absolute"
        );
        assert_eq!(
            bind_err("/a:/"),
            "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"
        );
        assert_eq!(
            bind_err("foo"),
            "invalid volume specification: 'foo': invalid mount config for type \"volume\": invalid mount path: 'foo' mount path must be absolute"
        );
        assert_eq!(
            bind_err("/h:/c:nocopy"),
            "invalid volume specification: '/h:/c:nocopy': invalid mount config for type \"bind\": field VolumeOptions must not be specified"
        );
        assert_eq!(
            bind_err("vol:/c:rshared"),
            "invalid volume specification: 'vol:/c:rshared': invalid mount config for type \"volume\": field BindOptions must not be specified"
        );
    }

    #[test]
    fn mounts_parse_and_validate() {
        let m = parse_mount(&serde_json::json!({
            "Type": "volume", "Source": "v1", "Target": "/data", "ReadOnly": true,
            "VolumeOptions": {"NoCopy": true, "Labels": {"a": "b"},
                "DriverConfig": {"Options": {"type": "tmpfs", "device": "tmpfs"}}}
        }))
        .unwrap();
        assert_eq!(
            (m.point.mode.as_str(), m.point.rw, m.point.copy_data),
            ("z", false, false)
        );
        assert_eq!(m.labels.unwrap()["a"], "b");
        assert_eq!(m.driver_opts.unwrap()["type"], "tmpfs");
        let t = parse_mount(&serde_json::json!({
            "Type": "tmpfs", "Target": "/run", "TmpfsOptions": {"SizeBytes": 67108864, "Mode": 1016}
        }))
        .unwrap();
        assert_eq!(t.point.tmpfs_data, "mode=1770,size=64m");
        let e = parse_mount(
            &serde_json::json!({"Type": "bind", "Source": "/no/such/path-x", "Target": "/x"}),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid mount config for type \"bind\": bind source path does not exist: /no/such/path-x"
        );
        let e = parse_mount(&serde_json::json!({"Type": "foo", "Target": "/x"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid mount config for type \"foo\": mount type unknown"
        );
        let e =
            parse_mount(&serde_json::json!({"Type": "volume", "Target": "/x", "ReadOnly": true}))
                .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("must not set ReadOnly mode when using anonymous volumes")
        );
        let e =
            parse_mount(&serde_json::json!({"Type": "tmpfs", "Target": "/x", "BindOptions": {}}))
                .unwrap_err();
        assert_eq!(
            e.to_string(),
            "BindOptions must not be specified on mount type \"tmpfs\""
        );
    }

    #[test]
    fn volumes_from_and_tmpfs() {
        assert_eq!(parse_volumes_from("c1").unwrap(), ("c1".into(), false));
        assert_eq!(parse_volumes_from("c1:ro").unwrap(), ("c1".into(), true));
        assert_eq!(
            parse_volumes_from("c1:rshared").unwrap_err().to_string(),
            "invalid mode: rshared"
        );
        assert!(parse_volumes_from("").is_err());
        assert!(check_tmpfs("/run", "size=1m").is_ok());
        assert_eq!(
            check_tmpfs("/", "").unwrap_err().to_string(),
            "invalid specification: destination can't be '/'"
        );
        assert_eq!(clean("/a/../b/./c/"), "/b/c");
        assert_eq!(clean("/../.."), "/");
    }
}
