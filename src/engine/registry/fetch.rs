//! A plain HTTP(S) download (`ADD <url>` in a Dockerfile), through the same
//! clients as registry traffic: the daemon's proxies and `certs.d` apply.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, Url};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::client::{Endpoint, transport_error};
use super::progress::{Progress, bar};
use crate::engine::{Engine, Error, Result};

/// What the server said about the file.
pub struct Fetched {
    /// From `Content-Disposition`, when it names one.
    pub disposition_name: Option<String>,
    pub last_modified: Option<SystemTime>,
}

impl Engine {
    /// Downloads `url` into `out`, reporting `Downloading` progress.
    pub async fn fetch_url(
        &self,
        url: &str,
        out: &mut tokio::fs::File,
        progress: &Progress,
    ) -> Result<Fetched> {
        let parsed =
            Url::parse(url).map_err(|e| Error::invalid(format!("invalid URL {url}: {e}")))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(Error::invalid(format!("invalid URL {url}: no host"))),
        };
        let ep = Endpoint {
            url: parsed.clone(),
            host,
            skip_verify: false,
            mirror: false,
        };
        let client = self
            .registries
            .clients
            .client(&ep, &self.config().registry)?;
        let mut resp = client
            .get(parsed.clone())
            .send()
            .await
            .map_err(|e| transport_error(&Method::GET, &parsed, &e))?;
        let status = resp.status();
        if status.as_u16() >= 400 {
            let body = resp.bytes().await.unwrap_or_default();
            let body = String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned();
            return Err(Error::internal(format!(
                "failed to GET {url} with status {} {}: {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                body.trim()
            )));
        }
        let header = |k: &str| {
            resp.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let fetched = Fetched {
            disposition_name: header("content-disposition").and_then(|d| disposition_name(&d)),
            last_modified: header("last-modified").and_then(|d| http_date(&d)),
        };
        let total = resp.content_length().unwrap_or(0);
        let mut current = 0u64;
        let mut last_report = std::time::Instant::now();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport_error(&Method::GET, &parsed, &e))?
        {
            out.write_all(&chunk).await?;
            current += chunk.len() as u64;
            if last_report.elapsed() > Duration::from_millis(100) || current == total {
                last_report = std::time::Instant::now();
                progress.send(json!({
                    "status": "Downloading",
                    "progressDetail": {"current": current, "total": total},
                    "progress": bar(current, total),
                }));
            }
        }
        out.flush().await?;
        Ok(fetched)
    }
}

/// `attachment; filename="x.tar"` → `x.tar`.
fn disposition_name(v: &str) -> Option<String> {
    v.split(';').find_map(|p| {
        let (k, val) = p.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        let name = val.trim().trim_matches('"');
        let base = name.rsplit('/').next().unwrap_or(name);
        (!base.is_empty() && base != "." && base != "..").then(|| base.to_string())
    })
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(v: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time.split(':').filter_map(|x| x.parse().ok()).collect();
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    (secs >= 0).then(|| UNIX_EPOCH + Duration::from_secs(secs as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(http_date("garbage"), None);
        assert_eq!(
            disposition_name("attachment; filename=\"a.tar\"").as_deref(),
            Some("a.tar")
        );
        assert_eq!(disposition_name("inline"), None);
    }
}
