//! The JSON messages of a pull or push, one per line, as Docker's `jsonmessage`
//! writes them: the docker CLI draws its progress bars from `progressDetail`, and
//! other clients show `status` and `progress`.

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

/// Where a pull or push reports: a channel of JSON messages to the client. When the
/// client has gone, [`Progress::closed`] says so and the work stops.
#[derive(Clone)]
pub struct Progress {
    tx: UnboundedSender<Value>,
}

impl Progress {
    pub fn new(tx: UnboundedSender<Value>) -> Progress {
        Progress { tx }
    }

    pub fn closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Any message, as is.
    pub fn send(&self, v: Value) {
        let _ = self.tx.send(v);
    }

    /// `{"status": …}`.
    pub fn status(&self, status: &str) {
        self.send(json!({ "status": status }));
    }

    /// `{"status": …, "id": …}` (with an empty `progressDetail`, as Docker's
    /// per-layer messages carry).
    pub fn layer(&self, id: &str, status: &str) {
        self.send(json!({ "status": status, "progressDetail": {}, "id": id }));
    }

    /// A message with only an id: `{"status": "Pulling from x", "id": "latest"}`.
    pub fn id_status(&self, id: &str, status: &str) {
        self.send(json!({ "status": status, "id": id }));
    }

    /// `Downloading`, `Extracting`, `Pushing` with `current` of `total` bytes.
    pub fn bytes(&self, id: &str, status: &str, current: u64, total: u64) {
        self.send(json!({
            "status": status,
            "progressDetail": { "current": current, "total": total },
            "progress": bar(current, total),
            "id": id,
        }));
    }

    /// `{"progressDetail": {}, "aux": …}`.
    pub fn aux(&self, aux: Value) {
        self.send(json!({ "progressDetail": {}, "aux": aux }));
    }
}

/// An error as the stream carries it.
pub fn error_message(msg: &str) -> Value {
    json!({ "errorDetail": { "message": msg }, "error": msg })
}

/// `[=====>       ]  1.2MB/5.6MB`: Docker's progress bar, 50 wide.
pub fn bar(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    let spaces = 50usize.saturating_sub(pct + 1);
    format!(
        "[{}>{}] {:>8}/{}",
        "=".repeat(pct),
        " ".repeat(spaces),
        human_size(current),
        human_size(total)
    )
}

/// Go's `units.HumanSize`: decimal units, four significant digits.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let int_digits = if v < 1.0 {
        1
    } else {
        (v.log10().floor() as usize) + 1
    };
    let mut s = format!("{:.*}", 4usize.saturating_sub(int_digits), v);
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_sizes() {
        assert_eq!(human_size(1234), "1.234kB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(5_600_000), "5.6MB");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(2_129_920), "2.13MB");
        assert_eq!(human_size(12_345), "12.35kB");
        let b = bar(50, 100);
        assert!(b.starts_with("[=========================>"), "{b}");
        assert!(b.ends_with("50B/100B"), "{b}");
        assert_eq!(bar(100, 100).matches('=').count(), 50);
    }
}
