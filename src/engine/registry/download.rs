//! Layer downloads. A blob streams from the registry into a bounded channel; a
//! blocking thread reads it through its digest, its decompressor (gzip, zstd or
//! none, by its first bytes) and the image store's unpacker, into a temporary
//! directory. Download, hashing, decompression and unpacking all overlap, and up
//! to `max-concurrent-downloads` layers do so at once.
//!
//! Each download is shared: pulls that need the same blob watch one [`Shared`]
//! (its [`Phase`] for their progress, its slot for the unpacked layer). When every
//! pull that wanted it has gone, the download stops and its temporary directory
//! is removed. A transfer that fails midway is retried from the start, after
//! Docker's delays (5 s, 10 s, …), up to `max-download-attempts` times; a
//! verification failure is not retried.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::Registries;
use super::client::{Failure, Session, transport_error};
use super::manifest::Descriptor;
use crate::chunks::ChunkReader;
use crate::image::{ImageStore, PreparedLayer, digest};

/// How often `Downloading` progress is published.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Where a download stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Started, nothing to say yet.
    Queued,
    /// Every download slot is taken.
    Waiting,
    Downloading {
        current: u64,
        total: u64,
    },
    /// A failed attempt; the next starts in `secs`.
    Retrying {
        secs: u64,
    },
    /// Downloaded, verified and unpacked: the layer is in the slot (or, when
    /// another pull took it, in the store).
    Done {
        diff_id: String,
    },
    Failed(String),
}

/// One blob's download, as the pulls that need it see it.
pub struct Shared {
    pub phase: watch::Receiver<Phase>,
    pub layer: Mutex<Option<PreparedLayer>>,
    cancel: CancellationToken,
}

impl Drop for Shared {
    /// The last pull that wanted the blob has gone: stop fetching it.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// How one attempt ended.
enum Attempt {
    Retry(String),
    Fatal(String),
}

impl Registries {
    /// The download of the blob `desc` through `session`, joining the one under
    /// way when there is one.
    pub(super) fn download(
        &self,
        desc: &Descriptor,
        session: &Session,
        images: &Arc<ImageStore>,
        attempts: usize,
    ) -> Arc<Shared> {
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(s) = map.get(&desc.digest).and_then(Weak::upgrade)
            && !matches!(*s.phase.borrow(), Phase::Failed(_))
        {
            return s;
        }
        let (tx, rx) = watch::channel(Phase::Queued);
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            phase: rx,
            layer: Mutex::new(None),
            cancel: cancel.clone(),
        });
        map.insert(desc.digest.clone(), Arc::downgrade(&shared));
        let job = Job {
            shared: Arc::downgrade(&shared),
            tx,
            cancel,
            session: session.clone(),
            desc: desc.clone(),
            images: images.clone(),
            slots: self.downloads.sem.clone(),
            attempts: attempts.max(1),
        };
        tokio::spawn(job.run());
        shared
    }
}

struct Job {
    shared: Weak<Shared>,
    tx: watch::Sender<Phase>,
    cancel: CancellationToken,
    session: Session,
    desc: Descriptor,
    images: Arc<ImageStore>,
    slots: Arc<Semaphore>,
    attempts: usize,
}

impl Job {
    async fn run(mut self) {
        let _slot = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.tx.send_replace(Phase::Waiting);
                tokio::select! {
                    p = self.slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                    _ = self.cancel.cancelled() => return,
                }
            }
        };
        let mut attempt = 1;
        loop {
            let cancel = self.cancel.clone();
            let outcome = tokio::select! {
                r = self.fetch() => r,
                _ = cancel.cancelled() => return,
            };
            match outcome {
                Ok(prepared) => {
                    if let Some(s) = self.shared.upgrade() {
                        let diff_id = prepared.meta.diff_id.clone();
                        *s.layer.lock().unwrap_or_else(|p| p.into_inner()) = Some(prepared);
                        self.tx.send_replace(Phase::Done { diff_id });
                    }
                    return;
                }
                Err(Attempt::Retry(msg)) if attempt < self.attempts => {
                    tracing::info!(
                        "download of {} failed (attempt {attempt} of {}): {msg}",
                        self.desc.digest,
                        self.attempts
                    );
                    for secs in (1..=attempt as u64 * 5).rev() {
                        self.tx.send_replace(Phase::Retrying { secs });
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = self.cancel.cancelled() => return,
                        }
                    }
                    attempt += 1;
                }
                Err(Attempt::Retry(msg) | Attempt::Fatal(msg)) => {
                    self.tx.send_replace(Phase::Failed(msg));
                    return;
                }
            }
        }
    }

    /// One attempt: GET the blob and unpack it as it arrives.
    async fn fetch(&mut self) -> Result<PreparedLayer, Attempt> {
        let desc = self.desc.clone();
        let want = desc.digest.clone();
        if !want.starts_with("sha256:") || !digest::is_hex64(digest::encoded(&want)) {
            return Err(Attempt::Fatal(format!(
                "unsupported digest {want:?}: this daemon verifies sha256 digests"
            )));
        }
        let url = self
            .session
            .url(&format!("blobs/{want}"))
            .map_err(|e| Attempt::Fatal(e.to_string()))?;
        let mut resp = self
            .session
            .send(Method::GET, url.clone(), |rb| rb)
            .await
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        if !resp.status().is_success() {
            let f = Failure::of(resp).await;
            let retry = f.status.is_server_error()
                || f.status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || f.status == reqwest::StatusCode::REQUEST_TIMEOUT;
            return Err(if retry {
                Attempt::Retry(f.text)
            } else {
                Attempt::Fatal(f.text)
            });
        }
        let limit = match u64::try_from(desc.size) {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(Attempt::Fatal(format!(
                    "invalid size {} for layer {want} in the manifest",
                    desc.size
                )));
            }
        };
        let total = limit;
        let mismatch = || format!("filesystem layer verification failed for digest {want}");

        let (chunks, rx) = mpsc::channel::<io::Result<Bytes>>(16);
        // Set once the whole response was read: if this attempt is dropped half-way
        // (the pull cancelled), the unpacker sees a cut stream and stops.
        let complete = Arc::new(AtomicBool::new(false));
        let store = self.images.clone();
        let what = format!("layer {want}");
        let done = complete.clone();
        let unpack = tokio::task::spawn_blocking(move || {
            let mut hr = digest::HashingReader::new(ChunkReader::until_complete(rx, done));
            let prepared = crate::image::layer_store::decompress(&mut hr, &what)
                .and_then(|(_, plain)| store.prepare_layer(plain));
            // Whatever follows the tar's end (padding) still counts for the digest;
            // after a refusal, the rest is read too, to tell corrupt bytes (the
            // digest fails) from a hostile layer (the digest holds).
            let got = hr.finish().map(|(d, _)| d);
            match (prepared, got) {
                (Ok(p), Ok(d)) => Ok((p, d)),
                (Ok(_), Err(e)) => Err((crate::engine::Error::from(e), None)),
                (Err(e), got) => Err((e, got.ok())),
            }
        });

        let mut current = 0u64;
        let mut reported = Instant::now();
        self.tx.send_replace(Phase::Downloading { current, total });
        let mut failed: Option<Attempt> = None;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    current += c.len() as u64;
                    if current > limit {
                        failed = Some(Attempt::Fatal(mismatch()));
                        break;
                    }
                    if chunks.send(Ok(c)).await.is_err() {
                        // The unpacker stopped; its error says why.
                        break;
                    }
                    if reported.elapsed() >= PROGRESS_EVERY {
                        self.tx.send_replace(Phase::Downloading { current, total });
                        reported = Instant::now();
                    }
                }
                Ok(None) => {
                    complete.store(true, Ordering::Release);
                    break;
                }
                Err(e) => {
                    failed = Some(Attempt::Retry(
                        transport_error(&Method::GET, &url, &e).to_string(),
                    ));
                    break;
                }
            }
        }
        if failed.is_some() {
            // Make the unpacker fail rather than take a cut stream for a whole one.
            let _ = chunks
                .send(Err(io::Error::other("the download was interrupted")))
                .await;
        }
        self.tx.send_replace(Phase::Downloading { current, total });
        drop(chunks);
        let unpacked = unpack.await;
        if let Some(f) = failed {
            return Err(f);
        }
        let (prepared, got) = match unpacked {
            Ok(Ok(x)) => x,
            Ok(Err((_, Some(got)))) if got != want => return Err(Attempt::Fatal(mismatch())),
            Ok(Err((e, _))) => return Err(Attempt::Fatal(e.to_string())),
            Err(e) => return Err(Attempt::Fatal(format!("unpacking {want}: {e}"))),
        };
        if got != want || current != limit {
            return Err(Attempt::Fatal(mismatch()));
        }
        Ok(prepared)
    }
}
