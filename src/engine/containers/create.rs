//! `POST /containers/create`: validating the request, merging the image's defaults
//! the way Docker does, and writing the new container to disk.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::namespaces::{IpcMode, PidMode};
use super::record::{self, Config, Container, NetworkSettings, State};
use super::settings::{self, HostSettings, NetMode};
use super::{Handle, Record, names, spec};
use crate::engine::{Engine, Error, Result};

/// What create answers: the ID and warnings for the client.
pub struct Created {
    pub id: String,
    pub warnings: Vec<String>,
}

impl Engine {
    /// Creates a container from the create request body; `name` from the query.
    pub async fn container_create(
        self: &Arc<Self>,
        body: Value,
        name: Option<String>,
    ) -> Result<Created> {
        let engine = self.clone();
        let t0 = std::time::Instant::now();
        let created =
            tokio::task::spawn_blocking(move || engine.container_create_blocking(body, name))
                .await
                .map_err(|e| Error::internal(format!("container create failed: {e}")))?;
        if let Ok(c) = &created {
            tracing::debug!(container_id = %c.id, "create: container and its layer written in {:?}", t0.elapsed());
        }
        created
    }

    fn container_create_blocking(&self, body: Value, name: Option<String>) -> Result<Created> {
        let Value::Object(mut body) = body else {
            return Err(Error::invalid(
                "invalid JSON: the container config must be an object",
            ));
        };
        let host_config = match body.remove("HostConfig") {
            Some(Value::Object(m)) => m,
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(Error::invalid("invalid JSON: HostConfig must be an object")),
        };
        let networking = body.remove("NetworkingConfig");
        // The address is the endpoint's (`Config.MacAddress` before API 1.44).
        let legacy_mac = body
            .remove("MacAddress")
            .and_then(|v| v.as_str().map(str::to_string));
        let hostname_given = body
            .get("Hostname")
            .and_then(Value::as_str)
            .is_some_and(|h| !h.is_empty());
        let exposed_given = body
            .get("ExposedPorts")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty());
        settings::check_config_fields(&body)?;
        let mut config: Config = serde_json::from_value(Value::Object(body))
            .map_err(|e| Error::invalid(format!("invalid container config: {e}")))?;
        let default_runtime = self.config().default_runtime.clone();
        if !crate::config::is_builtin_runtime(&default_runtime) {
            return Err(settings::runtime_not_supported(&default_runtime));
        }
        if let Some(rt) = host_config.get("Runtime").and_then(Value::as_str)
            && !rt.is_empty()
            && !crate::config::is_builtin_runtime(rt)
            && !self.config().runtimes.contains_key(rt)
        {
            return Err(Error::invalid(format!(
                "unknown or invalid runtime name: {rt}"
            )));
        }
        let log_defaults = self.log_defaults();
        let mut host_config = host_config;
        // The daemon's defaults, recorded in the container as Docker records them.
        let defaults = &self.config().containers;
        let unset = |hc: &Map<String, Value>, k: &str| {
            hc.get(k).is_none_or(|v| v.is_null() || v == 0 || v == "")
        };
        if unset(&host_config, "ShmSize") {
            host_config.insert("ShmSize".into(), Value::from(defaults.shm_size));
        }
        if unset(&host_config, "CgroupnsMode") {
            host_config.insert(
                "CgroupnsMode".into(),
                Value::from(defaults.cgroupns_mode.clone()),
            );
        }
        let mut settings = HostSettings::from_host_config(&host_config, &log_defaults)?;
        if defaults.cgroup_driver == crate::config::containers::CgroupDriver::Systemd
            && !settings.cgroup_parent.is_empty()
        {
            crate::config::containers::check_slice(&settings.cgroup_parent)
                .map_err(Error::invalid)?;
        }
        super::resources::check_host(
            &host_config,
            &settings.limits,
            crate::engine::system::host_facts().ncpu,
        )?;
        if settings.uts_host && hostname_given {
            return Err(Error::invalid(
                "conflicting options: hostname and the UTS mode",
            ));
        }
        self.resolve_namespace_donors(&mut settings, &mut host_config)?;
        let (endpoints, net_warnings) = self.network_endpoints_for_create(
            &crate::engine::network::endpoints::CreateNetworking {
                settings: &settings,
                networking: networking.as_ref(),
                legacy_mac: legacy_mac.as_deref(),
                hostname_given,
                exposed_given,
            },
        )?;
        if config.image.is_empty() {
            return Err(Error::invalid(
                "config cannot be empty in order to create a container",
            ));
        }
        if let Some(sig) = config.stop_signal.as_deref().filter(|s| !s.is_empty()) {
            super::lifecycle::parse_signal(sig)?;
        }
        if config.stdin_once && !config.open_stdin {
            config.stdin_once = false;
        }

        let image = self.images.resolve(&config.image)?;
        let mut warnings = net_warnings;
        warnings.extend(settings.warnings.iter().cloned());
        // Recorded as Docker records them: the swap a memory limit implies, and no
        // PIDs limit for a non-positive one.
        let r = &settings.limits.resources;
        if r.memory > 0
            && host_config
                .get("MemorySwap")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                == 0
        {
            host_config.insert("MemorySwap".into(), Value::from(r.memory_swap));
        }
        if host_config
            .get("PidsLimit")
            .and_then(Value::as_i64)
            .is_some_and(|n| n <= 0)
        {
            host_config.insert("PidsLimit".into(), Value::Null);
        }
        merge_image_config(&mut config, &image.config);
        let (path, args) = entrypoint_and_args(&config)?;

        let id = crate::engine::random_id()?;
        if config.hostname.is_empty() {
            config.hostname = if settings.network_mode == NetMode::Host {
                self.name.clone()
            } else {
                id[..12].to_string()
            };
        }
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = names::validate(&n)?;
                self.containers.reserve_name(&n, &id)?;
                n
            }
            None => self.generate_name(&id)?,
        };

        let dir = self.containers.root().join(&id);
        let mut mount_points = Vec::new();
        let result = (|| -> Result<Created> {
            crate::store::create_private_dir(&dir)?;
            self.images.create_rw_layer(&image.id, &id)?;
            let config_volumes: Vec<String> = config
                .volumes
                .as_ref()
                .map(|v| v.keys().cloned().collect())
                .unwrap_or_default();
            mount_points = self.container_mounts_at_create(
                &id,
                &host_config,
                &config_volumes,
                &settings.tmpfs,
            )?;
            let log_path = dir.join(format!("{id}-json.log"));
            let container = Container {
                id: id.clone(),
                created: crate::timefmt::rfc3339_nano(SystemTime::now()),
                path,
                args,
                config,
                image: image.id.clone(),
                name: name.clone(),
                state: State::default(),
                log_path: if settings.log_driver == "json-file" {
                    log_path.display().to_string()
                } else {
                    String::new()
                },
                restart_count: 0,
                driver: self.storage_driver().to_string(),
                has_been_started_before: false,
                has_been_manually_stopped: false,
                hostname_path: dir.join("hostname").display().to_string(),
                hosts_path: dir.join("hosts").display().to_string(),
                resolv_conf_path: dir.join("resolv.conf").display().to_string(),
                warnings: warnings.clone(),
                cgroup_path: String::new(),
                network_settings: NetworkSettings {
                    networks: endpoints,
                    endpoints_kept: true,
                    ..NetworkSettings::default()
                },
                mount_points: mount_points.clone(),
            };
            let mut host_config = settings::complete_host_config(&host_config, &settings);
            if !settings.links.is_empty() {
                // As inspect shows them: `/db:/web/db`.
                let links: Vec<String> = settings
                    .links
                    .iter()
                    .map(|(target, alias)| format!("/{target}:{name}/{alias}"))
                    .collect();
                host_config.insert("Links".into(), serde_json::json!(links));
            }
            record::save(&dir, &container, &host_config)?;
            let attrs = self.container_attributes(&container);
            self.containers.insert(Handle::new(
                dir.clone(),
                Record {
                    container,
                    host_config,
                    settings,
                },
            ));
            self.events.emit("container", "create", &id, attrs);
            Ok(Created {
                id: id.clone(),
                warnings,
            })
        })();
        if result.is_err() {
            self.release_container_volumes(&id, &mount_points, true);
            self.containers.release_name(&name, &id);
            let _ = self.images.remove_rw_layer(&id);
            let _ = crate::store::remove_dir_all_robust(&dir);
        }
        result
    }

    /// `--pid container:X` and `--ipc container:X` name a container that exists;
    /// the record keeps its ID, as Docker's does.
    fn resolve_namespace_donors(
        &self,
        settings: &mut HostSettings,
        host_config: &mut Map<String, Value>,
    ) -> Result<()> {
        let lookup = |target: &str| {
            self.containers
                .get(target)
                .map(|h| h.id.clone())
                .map_err(|e| Error::invalid(e.to_string()))
        };
        if let Some(target) = settings.pid_mode.target() {
            let id = lookup(target)?;
            host_config.insert("PidMode".into(), Value::from(format!("container:{id}")));
            settings.pid_mode = PidMode::Container(id);
        }
        if let Some(target) = settings.ipc_mode.target() {
            let id = lookup(target)?;
            host_config.insert("IpcMode".into(), Value::from(format!("container:{id}")));
            settings.ipc_mode = IpcMode::Container(id);
        }
        Ok(())
    }

    fn generate_name(&self, id: &str) -> Result<String> {
        for attempt in 0..10 {
            let n = format!("/{}", names::generate(attempt));
            if !self.containers.name_taken(&n) && self.containers.reserve_name(&n, id).is_ok() {
                return Ok(n);
            }
        }
        // Every try collided: fall back to something unique.
        let n = format!("/{}_{}", names::generate(0), &id[..6]);
        self.containers.reserve_name(&n, id)?;
        Ok(n)
    }

    /// The daemon's log defaults, for containers that do not choose.
    pub fn log_defaults(&self) -> settings::LogDefaults {
        let c = self.config();
        settings::LogDefaults {
            driver: c.log_driver.clone(),
            opts: c.log_opts.clone(),
        }
    }

    /// Event attributes for a container: image and name, plus its labels.
    pub fn container_attributes(&self, c: &Container) -> BTreeMap<String, String> {
        let mut a: BTreeMap<String, String> = c.config.labels.clone();
        a.insert("image".into(), c.config.image.clone());
        a.insert("name".into(), c.bare_name().to_string());
        a
    }
}

/// Docker's merge of the image config into the container config (daemon/create.go).
fn merge_image_config(config: &mut Config, image: &crate::image::ImageConfig) {
    if config.user.is_empty() {
        config.user = image.user.clone();
    }
    let mut env = image.env.clone().unwrap_or_default();
    spec::merge_env(&mut env, &config.env);
    config.env = env;
    let mut labels = image.labels.clone().unwrap_or_default();
    labels.extend(std::mem::take(&mut config.labels));
    config.labels = labels;
    if config.working_dir.is_empty() {
        config.working_dir = image.working_dir.clone();
    }
    let entrypoint_given = config.entrypoint.as_ref().is_some_and(|e| !e.is_empty());
    if !entrypoint_given {
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            config.cmd = image.cmd.clone();
            config.args_escaped = image.args_escaped.then_some(true);
        }
        if config.entrypoint.is_none() {
            config.entrypoint = image.entrypoint.clone();
        }
    }
    if config.stop_signal.is_none() {
        config.stop_signal = Some(image.stop_signal.clone()).filter(|s| !s.is_empty());
    }
    if let Some(ports) = &image.exposed_ports {
        let merged = config.exposed_ports.get_or_insert_with(BTreeMap::new);
        for (k, v) in ports {
            merged.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(vols) = &image.volumes {
        let merged = config.volumes.get_or_insert_with(BTreeMap::new);
        for v in vols.keys() {
            merged
                .entry(v.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    config.healthcheck =
        super::health::merge(config.healthcheck.as_ref(), image.healthcheck.as_ref())
            .filter(|h| !h.is_null());
}

/// Path and arguments from Entrypoint + Cmd; `[""]` as Entrypoint means none.
fn entrypoint_and_args(config: &Config) -> Result<(String, Vec<String>)> {
    let entrypoint: Vec<String> = match &config.entrypoint {
        Some(e) if !(e.len() == 1 && e[0].is_empty()) => e.clone(),
        _ => Vec::new(),
    };
    let cmd = config.cmd.clone().unwrap_or_default();
    let mut all = entrypoint;
    all.extend(cmd);
    if all.is_empty() || all[0].is_empty() {
        return Err(Error::invalid("No command specified"));
    }
    let path = all.remove(0);
    Ok((path, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn entrypoint_and_cmd_compose() {
        assert_eq!(
            entrypoint_and_args(&cfg(r#"{"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"]}"#))
                .unwrap(),
            (
                "/bin/sh".to_string(),
                vec!["-c".to_string(), "echo hi".to_string()]
            )
        );
        assert_eq!(
            entrypoint_and_args(&cfg(r#"{"Entrypoint":[""],"Cmd":["ls"]}"#))
                .unwrap()
                .0,
            "ls"
        );
        assert!(matches!(
            entrypoint_and_args(&cfg(r#"{}"#)),
            Err(Error::InvalidParameter(_))
        ));
    }
}
