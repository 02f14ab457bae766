//! The event bus behind `GET /events`: every subsystem (daemon, images, containers)
//! publishes here, and each `/events` stream subscribes.
//!
//! Like Docker Engine, the bus keeps the most recent [`HISTORY_LEN`] events so that
//! `docker events --since …` can replay the recent past before following live events.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

use super::filters::Filters;

/// How many past events are kept for `since` (Docker keeps 256).
pub const HISTORY_LEN: usize = 256;

/// One event, serialized exactly as Docker's `events.Message`.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Deprecated mirror of `Action`, still sent for container and image events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Deprecated mirror of `Actor.ID`, as `status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Deprecated: the image of a container event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// What an event is about: an ID and descriptive attributes (name, image, labels…).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// A new event stamped with the current time.
    pub fn new(kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) -> Self {
        let time_nano = now_nanos();
        let legacy = kind == "container" || kind == "image";
        Event {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: if kind == "container" {
                attributes.get("image").cloned()
            } else {
                None
            },
            kind: kind.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".to_string(),
            time: time_nano.div_euclid(1_000_000_000),
            time_nano,
        }
    }

    /// Whether this event passes `filters`, with the keys Docker's events filter knows.
    pub fn matches(&self, f: &Filters) -> bool {
        let attr = |k: &str| self.actor.attributes.get(k).map(String::as_str);
        if !f.exact_match("type", &self.kind)
            || !f.exact_match("scope", &self.scope)
            || !f.match_any(
                "event",
                [self.action.as_str(), action_base(&self.action)].into_iter(),
            )
            || !f.match_labels("label", &self.actor.attributes)
        {
            return false;
        }
        let by_id_or_name = |key: &str, kind: &str| {
            if !f.contains(key) {
                return true;
            }
            if self.kind != kind {
                return false;
            }
            f.get(key).any(|want| {
                want == self.actor.id
                    || (want.len() >= 3 && self.actor.id.starts_with(want))
                    || attr("name") == Some(want)
            })
        };
        if !by_id_or_name("container", "container")
            || !by_id_or_name("daemon", "daemon")
            || !by_id_or_name("network", "network")
            || !by_id_or_name("volume", "volume")
        {
            return false;
        }
        if f.contains("image") {
            let candidates = [Some(self.actor.id.as_str()), attr("image"), attr("name")];
            let hit = f.get("image").any(|want| {
                candidates
                    .iter()
                    .flatten()
                    .any(|c| image_ref_matches(c, want))
            });
            if !hit {
                return false;
            }
        }
        true
    }
}

/// `exec_start: sh -c …` → `exec_start`, so `event=exec_start` matches it.
fn action_base(action: &str) -> &str {
    action.split_once(':').map_or(action, |(a, _)| a)
}

/// An image filter value matches a full reference, the reference without its tag,
/// or an image ID (with or without `sha256:`).
fn image_ref_matches(candidate: &str, want: &str) -> bool {
    if candidate == want {
        return true;
    }
    let strip = |s: &str| s.strip_prefix("sha256:").unwrap_or(s).to_string();
    if strip(candidate) == strip(want) {
        return true;
    }
    let untagged = |s: &str| -> String {
        match s.rfind(':') {
            Some(i) if !s[i..].contains('/') => s[..i].to_string(),
            _ => s.to_string(),
        }
    };
    !want.contains(':') && untagged(candidate) == want
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The bus: a broadcast channel for live events plus a bounded history.
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    history: Mutex<VecDeque<Arc<Event>>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        EventBus {
            tx,
            history: Mutex::new(VecDeque::with_capacity(HISTORY_LEN)),
        }
    }

    /// Records and broadcasts an event.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        // The history lock also orders publication against subscription, so a new
        // subscriber sees each event exactly once: in its snapshot or on its receiver.
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == HISTORY_LEN {
            history.pop_front();
        }
        history.push_back(event.clone());
        let _ = self.tx.send(event);
    }

    /// Convenience for [`Event::new`] + [`EventBus::publish`].
    pub fn emit(&self, kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        self.publish(Event::new(kind, action, id, attributes));
    }

    /// How many `/events` streams are listening now.
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// The retained past events and a receiver for every later one.
    pub fn subscribe(&self) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        (history.iter().cloned().collect(), rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn serializes_like_docker() {
        let e = Event::new(
            "container",
            "start",
            "abc",
            attrs(&[("image", "busybox"), ("name", "x")]),
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["status"], "start");
        assert_eq!(v["from"], "busybox");
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Actor"]["Attributes"]["name"], "x");
        assert_eq!(v["scope"], "local");
        let d = serde_json::to_value(Event::new("daemon", "reload", "id", attrs(&[]))).unwrap();
        assert!(d.get("status").is_none());
    }

    #[test]
    fn filters_select_events() {
        let e = Event::new(
            "container",
            "die",
            "abcdef",
            attrs(&[("image", "busybox:latest"), ("name", "web"), ("l", "1")]),
        );
        let f = |s: &str| Filters::parse(s).unwrap();
        assert!(e.matches(&f(r#"{"type":["container"],"event":["die"]}"#)));
        assert!(!e.matches(&f(r#"{"type":["image"]}"#)));
        assert!(e.matches(&f(r#"{"container":["web"]}"#)));
        assert!(e.matches(&f(r#"{"container":["abc"]}"#)));
        assert!(!e.matches(&f(r#"{"container":["other"]}"#)));
        assert!(e.matches(&f(r#"{"image":["busybox"]}"#)));
        assert!(e.matches(&f(r#"{"label":["l=1"]}"#)));
        assert!(!e.matches(&f(r#"{"daemon":["x"]}"#)));
    }

    #[test]
    fn subscribers_get_history_then_live() {
        let bus = EventBus::new();
        bus.emit("daemon", "reload", "a", BTreeMap::new());
        let (past, mut rx) = bus.subscribe();
        assert_eq!(past.len(), 1);
        bus.emit("daemon", "reload", "b", BTreeMap::new());
        assert_eq!(rx.try_recv().unwrap().actor.id, "b");
    }
}
