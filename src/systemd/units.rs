//! The systemd cgroup driver's conversation with systemd (`native.cgroupdriver=systemd`):
//! each container lives in a transient scope unit, `docker-<id>.scope`, under a slice,
//! created and changed over D-Bus the way runc's systemd driver does it; systemd
//! removes it when the container's last process is gone.
//!
//! With this driver systemd owns the cgroup tree, so the daemon asks the manager for the
//! scope instead of making directories itself; `Delegate=yes` hands the scope's own
//! cgroup files back to us. The pure conversions below (slice names to cgroup paths,
//! CFS quota, cpuset masks) are runc's, so `systemctl show` reports the
//! same limits for a container started here as for one started by Docker with runc.
//!
//! Only the D-Bus side lives here: writing cgroup files and choosing the driver do not.
//! The connection runs on the daemon's tokio runtime; zbus spawns its reader task there.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::time::Duration;

use zbus::export::futures_core::Stream;
use zbus::message::Type;
use zbus::zvariant::{DynamicType, ObjectPath, OwnedObjectPath, Value};
use zbus::{Connection, MatchRule, Message, MessageStream};

const DESTINATION: &str = "org.freedesktop.systemd1";
const OBJECT_PATH: &str = "/org/freedesktop/systemd1";
const INTERFACE: &str = "org.freedesktop.systemd1.Manager";
/// systemd's own socket, for root when no system bus runs (early boot, minimal hosts).
const PRIVATE_SOCKET: &str = "unix:path=/run/systemd/private";

const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

/// How long runc waits for a job to finish; the same bound applies to every call here.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// A failure talking to systemd, worded for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

/// A unit property to set, by systemd's name (`MemoryMax`, `CPUWeight`, …), with the
/// D-Bus type systemd expects for it: systemd rejects a property sent with another type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    name: String,
    value: PropertyValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PropertyValue {
    String(String),
    Bool(bool),
    U64(u64),
    Bytes(Vec<u8>),
    U32s(Vec<u32>),
    PathLimits(Vec<(String, u64)>),
}

impl Property {
    /// A string (`s`), e.g. `Description`, `Slice`, `DevicePolicy`.
    pub fn string(name: &str, value: &str) -> Property {
        Property::new(name, PropertyValue::String(value.to_string()))
    }

    /// A boolean (`b`), e.g. `Delegate`, `MemoryAccounting`.
    pub fn bool(name: &str, value: bool) -> Property {
        Property::new(name, PropertyValue::Bool(value))
    }

    /// An unsigned 64-bit number (`t`), e.g. `MemoryMax`, `CPUWeight`, `TasksMax`;
    /// `u64::MAX` is systemd's "infinity".
    pub fn u64(name: &str, value: u64) -> Property {
        Property::new(name, PropertyValue::U64(value))
    }

    /// A byte array (`ay`), e.g. `AllowedCPUs` from [`cpuset_mask`].
    pub fn bytes(name: &str, value: Vec<u8>) -> Property {
        Property::new(name, PropertyValue::Bytes(value))
    }

    /// An array of unsigned 32-bit numbers (`au`), e.g. `PIDs`.
    pub fn u32s(name: &str, value: Vec<u32>) -> Property {
        Property::new(name, PropertyValue::U32s(value))
    }

    /// Per-device limits (`a(st)`: a device path, a number), e.g.
    /// `IOReadBandwidthMax` with `/dev/block/8:0`.
    pub fn path_limits(name: &str, value: Vec<(String, u64)>) -> Property {
        Property::new(name, PropertyValue::PathLimits(value))
    }

    fn new(name: &str, value: PropertyValue) -> Property {
        Property {
            name: name.to_string(),
            value,
        }
    }

    /// systemd's name for the property.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `(sv)` element of an `a(sv)` property list.
    fn to_dbus(&self) -> (&str, Value<'_>) {
        let value = match &self.value {
            PropertyValue::String(s) => Value::from(s.as_str()),
            PropertyValue::Bool(b) => Value::from(*b),
            PropertyValue::U64(n) => Value::from(*n),
            PropertyValue::Bytes(b) => Value::from(b.clone()),
            PropertyValue::U32s(v) => Value::from(v.clone()),
            PropertyValue::PathLimits(v) => Value::from(v.clone()),
        };
        (&self.name, value)
    }
}

/// A connection to systemd's manager object. Cloning shares the connection.
#[derive(Debug, Clone)]
pub struct Manager {
    conn: Connection,
    timeout: Duration,
}

/// Why a call or job did not report its result.
enum JobError {
    /// The call itself failed; D-Bus errors keep their name for the callers to match.
    Call(zbus::Error),
    /// The connection ended after the call was answered, before the job ended.
    Closed,
    Timeout,
}

impl JobError {
    /// What went wrong, for a message that already names the unit.
    fn describe(&self, timeout: Duration) -> String {
        match self {
            JobError::Call(e) => dbus_message(e),
            JobError::Closed => "the connection to systemd closed before the job ended".into(),
            JobError::Timeout => format!("systemd did not answer within {timeout:?}"),
        }
    }
}

impl Manager {
    /// Connects to systemd: through the system bus, or, for root when the bus is
    /// unreachable, peer-to-peer on systemd's private socket, as runc (go-systemd) does.
    /// Call it inside the tokio runtime: zbus spawns the connection's reader task there.
    pub async fn connect() -> Result<Manager, Error> {
        let bus_error = match within(JOB_TIMEOUT, Connection::system()).await {
            Ok(conn) => return Ok(Manager::from_connection(conn)),
            Err(e) => e,
        };
        if !nix::unistd::geteuid().is_root() {
            return Err(Error(format!(
                "connect to systemd over D-Bus: system bus: {bus_error}"
            )));
        }
        tracing::debug!("system bus unreachable ({bus_error}); trying {PRIVATE_SOCKET}");
        // The private socket is systemd itself, not a bus: no Hello, no names.
        let private = async {
            zbus::connection::Builder::address(PRIVATE_SOCKET)?
                .p2p()
                .build()
                .await
        };
        match within(JOB_TIMEOUT, private).await {
            Ok(conn) => Ok(Manager::from_connection(conn)),
            Err(e) => Err(Error(format!(
                "connect to systemd over D-Bus: system bus: {bus_error}; {PRIVATE_SOCKET}: {e}"
            ))),
        }
    }

    /// Wraps an established connection to systemd (or, in tests, to a fake of it).
    pub(crate) fn from_connection(conn: Connection) -> Manager {
        Manager {
            conn,
            timeout: JOB_TIMEOUT,
        }
    }

    /// Creates the transient scope `unit` in `slice` (systemd's default slice when
    /// empty) holding `pids`, and waits until systemd has started it, so the container's
    /// cgroup exists when this returns. The properties are runc's (`Delegate`,
    /// accounting on, no default dependencies) followed by the caller's `properties`,
    /// which may override them.
    ///
    /// A unit of the same name left over (a failed scope of an earlier run) is reset
    /// and the call tried once more.
    pub async fn start_transient_scope(
        &self,
        unit: &str,
        slice: &str,
        pids: &[u32],
        description: &str,
        properties: Vec<Property>,
    ) -> Result<(), Error> {
        let mut all = vec![Property::string("Description", description)];
        if !slice.is_empty() {
            all.push(Property::string("Slice", slice));
        }
        all.extend([
            Property::bool("Delegate", true),
            Property::u32s("PIDs", pids.to_vec()),
            Property::bool("MemoryAccounting", true),
            Property::bool("CPUAccounting", true),
            Property::bool("IOAccounting", true),
            Property::bool("TasksAccounting", true),
            Property::bool("DefaultDependencies", false),
        ]);
        all.extend(properties);
        let props: Vec<(&str, Value<'_>)> = all.iter().map(Property::to_dbus).collect();
        // Auxiliary units (a(sa(sv))): none.
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        let body = (unit, "replace", props, aux);

        let mut retried = false;
        loop {
            match self.job("StartTransientUnit", &body).await {
                Ok(result) if result == "done" => return Ok(()),
                Ok(result) => {
                    self.reset_failed_quietly(unit).await;
                    return Err(Error(format!(
                        "error creating systemd unit `{unit}`: got `{result}`"
                    )));
                }
                Err(JobError::Timeout) => {
                    self.reset_failed_quietly(unit).await;
                    return Err(Error(format!(
                        "Timeout waiting for systemd to create {unit}"
                    )));
                }
                Err(JobError::Call(e)) if !retried && error_name(&e) == Some(UNIT_EXISTS) => {
                    self.reset_failed_quietly(unit).await;
                    retried = true;
                }
                Err(e) => {
                    return Err(Error(format!(
                        "unable to start unit \"{unit}\": {}",
                        e.describe(self.timeout)
                    )));
                }
            }
        }
    }

    /// Changes properties of a running unit (`docker update`); `runtime` so that
    /// systemd does not write them to /etc and they vanish with the scope.
    pub async fn set_unit_properties(
        &self,
        unit: &str,
        properties: Vec<Property>,
    ) -> Result<(), Error> {
        let props: Vec<(&str, Value<'_>)> = properties.iter().map(Property::to_dbus).collect();
        self.call("SetUnitProperties", &(unit, true, props))
            .await
            .map(drop)
            .map_err(|e| self.call_error("set properties of unit", unit, e))
    }

    /// Clears `unit`'s failed state so that systemd unloads it and its name can be
    /// used again. A unit systemd does not know is not an error (nothing to reset);
    /// other failures are returned, though callers cleaning up usually ignore them.
    pub async fn reset_failed(&self, unit: &str) -> Result<(), Error> {
        match self.call("ResetFailedUnit", &(unit,)).await {
            Ok(_) => Ok(()),
            Err(JobError::Call(e)) if error_name(&e) == Some(NO_SUCH_UNIT) => Ok(()),
            Err(e) => Err(self.call_error("reset failed unit", unit, e)),
        }
    }

    /// How `unit` ended, while systemd still has it: its `Result` property
    /// (`success`, `oom-kill`, `signal`, …). `None` when systemd no longer knows
    /// the unit (a scope that ended cleanly is unloaded at once).
    pub async fn unit_result(&self, unit: &str) -> Result<Option<String>, Error> {
        let path: OwnedObjectPath = match self.call("GetUnit", &(unit,)).await {
            Ok(reply) => reply
                .body()
                .deserialize()
                .map_err(|e| Error(format!("read the object of unit \"{unit}\": {e}")))?,
            Err(JobError::Call(e)) if error_name(&e) == Some(NO_SUCH_UNIT) => return Ok(None),
            Err(e) => return Err(self.call_error("find unit", unit, e)),
        };
        let interface = if unit.ends_with(".scope") {
            "org.freedesktop.systemd1.Scope"
        } else {
            "org.freedesktop.systemd1.Service"
        };
        let body = (interface, "Result");
        let get = self.conn.call_method(
            Some(DESTINATION),
            path.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &body,
        );
        let reply = match tokio::time::timeout(self.timeout, get).await {
            Ok(Ok(reply)) => reply,
            // Unloaded between the two calls.
            Ok(Err(e)) if error_name(&e) == Some(NO_SUCH_UNIT) => return Ok(None),
            Ok(Err(e)) => {
                return Err(self.call_error("read the result of unit", unit, JobError::Call(e)));
            }
            Err(_) => {
                return Err(self.call_error("read the result of unit", unit, JobError::Timeout));
            }
        };
        let value: zbus::zvariant::OwnedValue = reply
            .body()
            .deserialize()
            .map_err(|e| Error(format!("read the result of unit \"{unit}\": {e}")))?;
        let result = String::try_from(value)
            .map_err(|e| Error(format!("read the result of unit \"{unit}\": {e}")))?;
        Ok(Some(result))
    }

    async fn reset_failed_quietly(&self, unit: &str) {
        if let Err(e) = self.reset_failed(unit).await {
            tracing::debug!("{e}");
        }
    }

    /// Calls a manager method, bounded by the timeout.
    async fn call<B>(&self, method: &str, body: &B) -> Result<Message, JobError>
    where
        B: serde::Serialize + DynamicType,
    {
        let call = self.conn.call_method(
            Some(DESTINATION),
            OBJECT_PATH,
            Some(INTERFACE),
            method,
            body,
        );
        match tokio::time::timeout(self.timeout, call).await {
            Ok(reply) => reply.map_err(JobError::Call),
            Err(_) => Err(JobError::Timeout),
        }
    }

    fn call_error(&self, what: &str, unit: &str, e: JobError) -> Error {
        Error(format!("{what} \"{unit}\": {}", e.describe(self.timeout)))
    }

    /// Calls a manager method that queues a job (it returns the job's object path) and
    /// waits for the job's `JobRemoved` signal; returns the job's result (`done`,
    /// `failed`, `canceled`, `timeout`, `dependency`, `skipped`).
    ///
    /// The signal is subscribed to before the call, since a short job can end before
    /// the reply reaches us. Signals are read while the call is pending, not only after:
    /// zbus stops reading the socket while a subscription's queue is full, and the
    /// reply would then never arrive. systemd emits a job's `JobRemoved` for the client
    /// that queued it even without `Subscribe()`, so the daemon never subscribes (which
    /// would have systemd send it every unit's changes).
    async fn job<B>(&self, method: &str, body: &B) -> Result<String, JobError>
    where
        B: serde::Serialize + DynamicType,
    {
        let rule = self.job_removed_rule().map_err(JobError::Call)?;
        let stream = MessageStream::for_match_rule(rule, &self.conn, None)
            .await
            .map_err(JobError::Call)?;
        let mut stream = pin!(stream);
        let call = self.conn.call_method(
            Some(DESTINATION),
            OBJECT_PATH,
            Some(INTERFACE),
            method,
            body,
        );
        let mut call = pin!(call);
        let mut deadline = pin!(tokio::time::sleep(self.timeout));

        // Jobs that ended before the reply named ours: job path → result.
        let mut early: HashMap<String, String> = HashMap::new();
        // Cleared when the connection ends; the call then fails on its own.
        let mut open = true;
        let job = loop {
            tokio::select! {
                reply = &mut call => {
                    let reply = reply.map_err(JobError::Call)?;
                    let job: OwnedObjectPath = reply.body().deserialize().map_err(JobError::Call)?;
                    break job;
                }
                msg = next(stream.as_mut()), if open => match msg {
                    Some(msg) => {
                        if let Some((job, result)) = job_removed(&msg) {
                            early.insert(job, result);
                        }
                    }
                    None => open = false,
                },
                _ = &mut deadline => return Err(JobError::Timeout),
            }
        };
        if let Some(result) = early.remove(job.as_str()) {
            return Ok(result);
        }
        loop {
            tokio::select! {
                msg = next(stream.as_mut()) => match msg {
                    Some(msg) => match job_removed(&msg) {
                        Some((path, result)) if path == job.as_str() => return Ok(result),
                        _ => {}
                    },
                    None => return Err(JobError::Closed),
                },
                _ = &mut deadline => return Err(JobError::Timeout),
            }
        }
    }

    /// `JobRemoved` from the manager. On a bus the sender names systemd too, so the bus
    /// drops look-alikes; the private socket carries no sender (it is systemd).
    fn job_removed_rule(&self) -> zbus::Result<MatchRule<'static>> {
        let mut rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .interface(INTERFACE)?
            .member("JobRemoved")?
            .path(OBJECT_PATH)?;
        if self.conn.is_bus() {
            rule = rule.sender(DESTINATION)?;
        }
        Ok(rule.build())
    }
}

/// The next message of the stream; `None` once the connection is gone (a read error
/// ends the connection, so it counts as the end too).
async fn next<S>(mut stream: std::pin::Pin<&mut S>) -> Option<Message>
where
    S: Stream<Item = zbus::Result<Message>>,
{
    poll_fn(|cx| stream.as_mut().poll_next(cx)).await?.ok()
}

/// The job path and result of a `JobRemoved(u id, o job, s unit, s result)` signal.
fn job_removed(msg: &Message) -> Option<(String, String)> {
    let body = msg.body();
    let (_id, job, _unit, result): (u32, ObjectPath<'_>, &str, &str) = body.deserialize().ok()?;
    Some((job.to_string(), result.to_string()))
}

/// The D-Bus error name of a failed call, for matching systemd's errors.
fn error_name(e: &zbus::Error) -> Option<&str> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

/// systemd's own message for a failed call (`Unit docker-….scope already exists.`).
fn dbus_message(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, message, _) => match message {
            Some(m) if !m.is_empty() => m.clone(),
            _ => name.to_string(),
        },
        e => e.to_string(),
    }
}

/// Runs a connection attempt with a bound: a bus that accepts but never answers must
/// not hang the daemon's start.
async fn within<T>(
    limit: Duration,
    fut: impl Future<Output = zbus::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// The scope unit that holds container `id`, as Docker names it.
pub fn scope_name(container_id: &str) -> String {
    format!("docker-{container_id}.scope")
}

/// The cgroup path (relative to the cgroup v2 root) of slice `name`: systemd nests
/// slices by their dash-separated prefixes, so `a-b.slice` lives in
/// `/a.slice/a-b.slice`, and `-.slice` is the root.
pub fn expand_slice(name: &str) -> Result<String, Error> {
    let invalid = || Error(format!("invalid slice name: {name}"));
    const SUFFIX: &str = ".slice";
    let stem = name.strip_suffix(SUFFIX).ok_or_else(invalid)?;
    if name.contains('/') {
        return Err(invalid());
    }
    if stem == "-" {
        return Ok("/".to_string());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in stem.split('-') {
        // `a--b.slice`, `-a.slice`, `a-.slice` and `.slice` name no slice.
        if component.is_empty() {
            return Err(invalid());
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(component);
        path.push_str(SUFFIX);
        prefix.push_str(component);
        prefix.push('-');
    }
    Ok(path)
}

/// `CPUQuotaPerSecUSec` for a CFS quota and period (`--cpu-quota`, `--cpu-period`;
/// period 0 means the kernel's default 100000 µs). systemd keeps the quota in whole
/// percents of a CPU, so the value is rounded up to a multiple of 10000 µs, as runc
/// does, so that the container never gets less CPU than asked for.
///
/// `None` when `quota` asks for no limit (≤ 0); a caller lifting an existing limit
/// sends `u64::MAX`, systemd's infinity.
pub fn cpu_quota_per_sec_usec(quota: i64, period: u64) -> Option<u64> {
    if quota <= 0 {
        return None;
    }
    let period = if period == 0 { 100_000 } else { period };
    let per_sec = (quota as u128) * 1_000_000 / u128::from(period);
    let rounded = per_sec.div_ceil(10_000) * 10_000;
    Some(u64::try_from(rounded).unwrap_or(u64::MAX))
}

/// CPU (or memory node) numbers above which a cpuset list is refused: far above the
/// kernel's largest `NR_CPUS` (8192), it bounds the mask a typo could allocate.
const MAX_CPUSET_BIT: u32 = 1 << 16;

/// systemd's `AllowedCPUs` / `AllowedMemoryNodes` byte mask for a cpuset list
/// (`0-2,7`, as in `--cpuset-cpus`): byte n holds CPUs 8n..8n+7, bit `cpu % 8`, with no
/// trailing zero bytes. Spaces around items and empty items are accepted, as runc does.
pub fn cpuset_mask(list: &str) -> Result<Vec<u8>, Error> {
    let invalid = |why: String| Error(format!("invalid cpuset \"{list}\": {why}"));
    let number = |s: &str| -> Result<u32, Error> {
        let s = s.trim();
        // Digits only: `parse` would also take `+1`, which the kernel refuses.
        let n = match s.parse::<u32>() {
            Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(invalid(format!("\"{s}\" is not a number"))),
        };
        if n >= MAX_CPUSET_BIT {
            return Err(invalid(format!(
                "{n} is out of range (at most {})",
                MAX_CPUSET_BIT - 1
            )));
        }
        Ok(n)
    };
    let mut mask: Vec<u8> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(item)?;
                (n, n)
            }
        };
        if first > last {
            return Err(invalid(format!("range {item} runs backwards")));
        }
        let needed = last as usize / 8 + 1;
        if mask.len() < needed {
            mask.resize(needed, 0);
        }
        for n in first..=last {
            mask[n as usize / 8] |= 1 << (n % 8);
        }
    }
    if mask.is_empty() {
        return Err(invalid("no CPUs listed".to_string()));
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_name_is_dockers() {
        assert_eq!(scope_name("4f2a9c"), "docker-4f2a9c.scope");
    }

    #[test]
    fn expand_slice_nests_by_prefix() {
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(expand_slice("a-b.slice").unwrap(), "/a.slice/a-b.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
    }

    #[test]
    fn expand_slice_rejects_bad_names() {
        for name in [
            "system",
            "system.scope",
            ".slice",
            "",
            "a/b.slice",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "--.slice",
        ] {
            assert_eq!(
                expand_slice(name),
                Err(Error(format!("invalid slice name: {name}"))),
                "{name}"
            );
        }
    }

    #[test]
    fn cpu_quota_rounds_up_to_whole_percents() {
        assert_eq!(cpu_quota_per_sec_usec(12_345, 100_000), Some(130_000));
        assert_eq!(cpu_quota_per_sec_usec(50_000, 100_000), Some(500_000));
        assert_eq!(cpu_quota_per_sec_usec(50_000, 0), Some(500_000));
        assert_eq!(cpu_quota_per_sec_usec(150_000, 100_000), Some(1_500_000));
        assert_eq!(cpu_quota_per_sec_usec(1_000, 10_000), Some(100_000));
        assert_eq!(cpu_quota_per_sec_usec(1, 1_000_000), Some(10_000));
        assert_eq!(cpu_quota_per_sec_usec(i64::MAX, 1), Some(u64::MAX));
        assert_eq!(cpu_quota_per_sec_usec(0, 100_000), None);
        assert_eq!(cpu_quota_per_sec_usec(-1, 100_000), None);
    }

    #[test]
    fn cpuset_mask_is_little_endian_bytes() {
        assert_eq!(cpuset_mask("0").unwrap(), vec![0b0000_0001]);
        assert_eq!(cpuset_mask("0-2,7").unwrap(), vec![0b1000_0111]);
        assert_eq!(cpuset_mask("8").unwrap(), vec![0, 0b0000_0001]);
        assert_eq!(cpuset_mask("1,9-10").unwrap(), vec![0b10, 0b110]);
        assert_eq!(cpuset_mask("0-15").unwrap(), vec![0xff, 0xff]);
        assert_eq!(cpuset_mask(" 3 , 3-4,,").unwrap(), vec![0b1_1000]);
        assert_eq!(cpuset_mask("63").unwrap(), vec![0, 0, 0, 0, 0, 0, 0, 0x80]);
    }

    #[test]
    fn cpuset_mask_rejects_bad_lists() {
        for list in [
            "", " , ", "a", "1-", "-1", "3-1", "1-2-3", "0x1", "+1", "65536",
        ] {
            let err = cpuset_mask(list).expect_err(list);
            assert!(
                err.0.starts_with(&format!("invalid cpuset \"{list}\": ")),
                "{list}: {err}"
            );
        }
    }

    /// A stand-in for systemd's manager object, served on one end of a socket pair.
    mod fake {
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        use zbus::Connection;
        use zbus::message::Header;
        use zbus::zvariant::{OwnedObjectPath, OwnedValue};

        use super::super::{INTERFACE, Manager, OBJECT_PATH};

        #[derive(Debug, zbus::DBusError)]
        #[zbus(prefix = "org.freedesktop.systemd1")]
        pub enum SystemdError {
            #[zbus(error)]
            ZBus(zbus::Error),
            UnitExists(String),
            NoSuchUnit(String),
        }

        /// One StartTransientUnit call as received.
        #[derive(Debug)]
        pub struct Start {
            pub signature: String,
            pub name: String,
            pub mode: String,
            pub properties: Vec<(String, OwnedValue)>,
            pub aux: usize,
        }

        /// One SetUnitProperties call as received.
        #[derive(Debug)]
        pub struct Set {
            pub signature: String,
            pub name: String,
            pub runtime: bool,
            pub properties: Vec<(String, OwnedValue)>,
        }

        /// What the fake was asked.
        #[derive(Debug, Default)]
        pub struct Calls {
            pub starts: Vec<Start>,
            pub sets: Vec<Set>,
            pub resets: Vec<String>,
        }

        pub struct Systemd {
            pub calls: Arc<Mutex<Calls>>,
            /// The result every job ends with; `None` leaves jobs running forever.
            pub result: Option<&'static str>,
            /// Refuse this many starts with UnitExists first.
            pub unit_exists: u32,
            /// Send JobRemoved before the reply rather than after it.
            pub removed_before_reply: bool,
            /// Units GetUnit and ResetFailedUnit know.
            pub loaded: Vec<String>,
            pub next_job: u32,
        }

        impl Systemd {
            pub fn new(result: Option<&'static str>) -> Systemd {
                Systemd {
                    calls: Arc::default(),
                    result,
                    unit_exists: 0,
                    removed_before_reply: false,
                    loaded: Vec::new(),
                    next_job: 1,
                }
            }

            /// Queues a job for `unit` and ends it as configured. An unrelated job
            /// fails first, so the client must tell jobs apart by path.
            async fn job(&mut self, conn: &Connection, unit: &str) -> OwnedObjectPath {
                let id = self.next_job;
                self.next_job += 2;
                let path = format!("{OBJECT_PATH}/job/{id}");
                let Some(result) = self.result else {
                    return OwnedObjectPath::try_from(path).expect("job path");
                };
                let other = format!("{OBJECT_PATH}/job/{}", id + 1);
                removed(conn, id + 1, &other, "other.service", "failed").await;
                if self.removed_before_reply {
                    removed(conn, id, &path, unit, result).await;
                } else {
                    let (conn, path, unit) = (conn.clone(), path.clone(), unit.to_string());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        removed(&conn, id, &path, &unit, result).await;
                    });
                }
                OwnedObjectPath::try_from(path).expect("job path")
            }
        }

        async fn removed(conn: &Connection, id: u32, job: &str, unit: &str, result: &str) {
            let job = zbus::zvariant::ObjectPath::try_from(job).expect("job path");
            conn.emit_signal(
                None::<&str>,
                OBJECT_PATH,
                INTERFACE,
                "JobRemoved",
                &(id, job, unit, result),
            )
            .await
            .expect("emit JobRemoved");
        }

        #[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
        impl Systemd {
            async fn start_transient_unit(
                &mut self,
                #[zbus(header)] header: Header<'_>,
                #[zbus(connection)] conn: &Connection,
                name: String,
                mode: String,
                properties: Vec<(String, OwnedValue)>,
                aux: Vec<(String, Vec<(String, OwnedValue)>)>,
            ) -> Result<OwnedObjectPath, SystemdError> {
                self.calls.lock().expect("calls").starts.push(Start {
                    signature: header.signature().to_string_no_parens(),
                    name: name.clone(),
                    mode,
                    properties,
                    aux: aux.len(),
                });
                if self.unit_exists > 0 {
                    self.unit_exists -= 1;
                    return Err(SystemdError::UnitExists(format!(
                        "Unit {name} already exists."
                    )));
                }
                self.loaded.push(name.clone());
                Ok(self.job(conn, &name).await)
            }

            async fn set_unit_properties(
                &mut self,
                #[zbus(header)] header: Header<'_>,
                name: String,
                runtime: bool,
                properties: Vec<(String, OwnedValue)>,
            ) {
                self.calls.lock().expect("calls").sets.push(Set {
                    signature: header.signature().to_string_no_parens(),
                    name,
                    runtime,
                    properties,
                });
            }

            async fn get_unit(&self, name: String) -> Result<OwnedObjectPath, SystemdError> {
                if !self.loaded.contains(&name) {
                    return Err(SystemdError::NoSuchUnit(format!("Unit {name} not loaded.")));
                }
                Ok(OwnedObjectPath::try_from(unit_path(&name)).expect("unit path"))
            }

            async fn reset_failed_unit(&mut self, name: String) -> Result<(), SystemdError> {
                self.calls.lock().expect("calls").resets.push(name.clone());
                if !self.loaded.contains(&name) {
                    return Err(SystemdError::NoSuchUnit(format!("Unit {name} not loaded.")));
                }
                Ok(())
            }
        }

        /// The object path systemd gives a unit (its name with other characters
        /// than letters and digits escaped; `_` will do here).
        pub fn unit_path(name: &str) -> String {
            let escaped: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            format!("{OBJECT_PATH}/unit/{escaped}")
        }

        /// A scope unit's object, with how it ended.
        pub struct Scope {
            pub result: String,
        }

        #[zbus::interface(name = "org.freedesktop.systemd1.Scope")]
        impl Scope {
            #[zbus(property)]
            fn result(&self) -> String {
                self.result.clone()
            }
        }

        /// A manager connected peer-to-peer to `systemd`, as on systemd's private
        /// socket; the second value keeps the fake's end open.
        pub async fn connect(systemd: Systemd) -> (Manager, Connection) {
            let (ours, theirs) = tokio::net::UnixStream::pair().expect("socket pair");
            let server = async {
                zbus::connection::Builder::unix_stream(theirs)
                    .server(zbus::Guid::generate())?
                    .p2p()
                    .serve_at(OBJECT_PATH, systemd)?
                    .build()
                    .await
            };
            let client = zbus::connection::Builder::unix_stream(ours).p2p().build();
            let (server, client) = tokio::try_join!(server, client).expect("p2p handshake");
            (Manager::from_connection(client), server)
        }
    }

    use fake::Systemd;
    use zbus::zvariant::OwnedValue;

    const UNIT: &str = "docker-4f2a9c.scope";

    fn names(props: &[(String, OwnedValue)]) -> Vec<&str> {
        props.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn value<'a>(props: &'a [(String, OwnedValue)], name: &str) -> &'a Value<'static> {
        let (_, v) = props
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no property {name}"));
        v
    }

    #[test]
    fn property_types_are_systemds() {
        let sig = |p: Property| p.to_dbus().1.value_signature().to_string();
        assert_eq!(
            sig(Property::path_limits(
                "IOReadBandwidthMax",
                vec![("/dev/block/8:0".into(), 1 << 20)]
            )),
            "a(st)"
        );
        assert_eq!(sig(Property::u64("MemoryMax", 1)), "t");
        assert_eq!(sig(Property::bytes("AllowedCPUs", vec![1])), "ay");
    }

    #[tokio::test]
    async fn unit_result_reads_how_a_scope_ended() {
        let mut systemd = Systemd::new(Some("done"));
        systemd.loaded.push(UNIT.to_string());
        let (manager, server) = fake::connect(systemd).await;
        server
            .object_server()
            .at(
                fake::unit_path(UNIT),
                fake::Scope {
                    result: "oom-kill".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            manager.unit_result(UNIT).await.unwrap().as_deref(),
            Some("oom-kill")
        );
        assert_eq!(
            manager.unit_result("docker-gone.scope").await.unwrap(),
            None
        );
    }

    // The daemon's runtime is multi-threaded; zbus's tasks must work there too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn start_sends_runc_properties_and_waits_for_done() {
        let systemd = Systemd::new(Some("done"));
        let calls = systemd.calls.clone();
        let (manager, _server) = fake::connect(systemd).await;

        let extra = vec![
            Property::u64("MemoryMax", 1 << 30),
            Property::bytes("AllowedCPUs", vec![0b111]),
            Property::string("DevicePolicy", "strict"),
        ];
        manager
            .start_transient_scope(UNIT, "system.slice", &[4242], "container 4f2a9c", extra)
            .await
            .expect("start");

        let calls = calls.lock().expect("calls");
        let [start] = &calls.starts[..] else {
            panic!("one StartTransientUnit expected: {:?}", calls.starts)
        };
        assert_eq!(start.signature, "ssa(sv)a(sa(sv))");
        assert_eq!(start.name, UNIT);
        assert_eq!(start.mode, "replace");
        assert_eq!(start.aux, 0);
        assert_eq!(
            names(&start.properties),
            [
                "Description",
                "Slice",
                "Delegate",
                "PIDs",
                "MemoryAccounting",
                "CPUAccounting",
                "IOAccounting",
                "TasksAccounting",
                "DefaultDependencies",
                "MemoryMax",
                "AllowedCPUs",
                "DevicePolicy",
            ]
        );
        let props = &start.properties;
        for (name, signature, expected) in [
            ("Description", "s", Value::from("container 4f2a9c")),
            ("Slice", "s", Value::from("system.slice")),
            ("Delegate", "b", Value::from(true)),
            ("PIDs", "au", Value::from(vec![4242u32])),
            ("MemoryAccounting", "b", Value::from(true)),
            ("DefaultDependencies", "b", Value::from(false)),
            ("MemoryMax", "t", Value::from(1u64 << 30)),
            ("AllowedCPUs", "ay", Value::from(vec![0b111u8])),
            ("DevicePolicy", "s", Value::from("strict")),
        ] {
            let got = value(props, name);
            assert_eq!(got.value_signature().to_string(), signature, "{name}");
            assert_eq!(got, &expected, "{name}");
        }
        assert!(calls.resets.is_empty());
    }

    #[tokio::test]
    async fn start_sees_a_job_that_ends_before_the_reply() {
        let mut systemd = Systemd::new(Some("done"));
        systemd.removed_before_reply = true;
        let (manager, _server) = fake::connect(systemd).await;
        manager
            .start_transient_scope(UNIT, "", &[1], "c", Vec::new())
            .await
            .expect("start");
    }

    #[tokio::test]
    async fn start_reports_a_failed_job_and_resets_the_unit() {
        let systemd = Systemd::new(Some("failed"));
        let calls = systemd.calls.clone();
        let (manager, _server) = fake::connect(systemd).await;

        let err = manager
            .start_transient_scope(UNIT, "system.slice", &[1], "c", Vec::new())
            .await
            .expect_err("failed job");
        assert_eq!(
            err.to_string(),
            "error creating systemd unit `docker-4f2a9c.scope`: got `failed`"
        );
        assert_eq!(calls.lock().expect("calls").resets, [UNIT]);
    }

    #[tokio::test]
    async fn start_resets_an_existing_unit_and_retries_once() {
        let mut systemd = Systemd::new(Some("done"));
        systemd.unit_exists = 1;
        let calls = systemd.calls.clone();
        let (manager, _server) = fake::connect(systemd).await;
        manager
            .start_transient_scope(UNIT, "system.slice", &[1], "c", Vec::new())
            .await
            .expect("start after reset");
        let calls = calls.lock().expect("calls");
        assert_eq!(calls.starts.len(), 2);
        assert_eq!(calls.resets, [UNIT]);
    }

    #[tokio::test]
    async fn start_gives_up_when_the_unit_still_exists() {
        let mut systemd = Systemd::new(Some("done"));
        systemd.unit_exists = 2;
        let calls = systemd.calls.clone();
        let (manager, _server) = fake::connect(systemd).await;
        let err = manager
            .start_transient_scope(UNIT, "system.slice", &[1], "c", Vec::new())
            .await
            .expect_err("unit exists twice");
        assert_eq!(
            err.to_string(),
            "unable to start unit \"docker-4f2a9c.scope\": Unit docker-4f2a9c.scope already exists."
        );
        assert_eq!(calls.lock().expect("calls").starts.len(), 2);
    }

    #[tokio::test]
    async fn start_times_out_when_the_job_never_ends() {
        let systemd = Systemd::new(None);
        let calls = systemd.calls.clone();
        let (mut manager, _server) = fake::connect(systemd).await;
        manager.timeout = Duration::from_millis(50);
        let err = manager
            .start_transient_scope(UNIT, "system.slice", &[1], "c", Vec::new())
            .await
            .expect_err("timeout");
        assert_eq!(
            err.to_string(),
            "Timeout waiting for systemd to create docker-4f2a9c.scope"
        );
        assert_eq!(calls.lock().expect("calls").resets, [UNIT]);
    }

    #[tokio::test]
    async fn set_unit_properties_is_runtime_only() {
        let systemd = Systemd::new(Some("done"));
        let calls = systemd.calls.clone();
        let (manager, _server) = fake::connect(systemd).await;
        manager
            .set_unit_properties(UNIT, vec![Property::u64("CPUWeight", 59)])
            .await
            .expect("set");
        let calls = calls.lock().expect("calls");
        let [set] = &calls.sets[..] else {
            panic!("one SetUnitProperties expected: {:?}", calls.sets)
        };
        assert_eq!(set.signature, "sba(sv)");
        assert_eq!(set.name, UNIT);
        assert!(set.runtime);
        assert_eq!(names(&set.properties), ["CPUWeight"]);
        assert_eq!(value(&set.properties, "CPUWeight"), &Value::from(59u64));
    }
}
