//! Serving the API on every listener: accept loops, one task per connection (HTTP/1.1
//! with keep-alive and upgrades), and a graceful drain on shutdown.
//!
//! Shutdown: cancelling [`ApiState::shutdown`] stops the accept loops, asks every
//! connection to finish its in-flight request and close, and ends event streams;
//! [`Server::drain`] then waits for connections and hijacked streams up to a deadline.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::task::TaskTracker;

use super::{ApiState, ReqBody, handle};

/// A listening socket the API is served on.
pub enum Listener {
    Unix(tokio::net::UnixListener),
    /// With TLS when configured (`--tls`, `--tlsverify`).
    Tcp(tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>),
}

impl Listener {
    /// Wraps a std listener, setting it non-blocking first (passed sockets are not).
    pub fn from_std_unix(l: std::os::unix::net::UnixListener) -> std::io::Result<Self> {
        l.set_nonblocking(true)?;
        Ok(Listener::Unix(tokio::net::UnixListener::from_std(l)?))
    }

    pub fn from_std_tcp(
        l: std::net::TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        l.set_nonblocking(true)?;
        Ok(Listener::Tcp(
            tokio::net::TcpListener::from_std(l)?,
            tls.map(tokio_rustls::TlsAcceptor::from),
        ))
    }
}

/// The running API server.
pub struct Server {
    state: Arc<ApiState>,
    connections: TaskTracker,
}

impl Server {
    pub fn new(state: Arc<ApiState>) -> Self {
        Server {
            state,
            connections: TaskTracker::new(),
        }
    }

    /// Starts an accept loop per listener.
    pub fn spawn(&self, listeners: Vec<Listener>) {
        for listener in listeners {
            let state = self.state.clone();
            let connections = self.connections.clone();
            tokio::spawn(accept_loop(listener, state, connections));
        }
    }

    /// Open connections and hijacked streams (attach, exec, events): while any is
    /// open, the daemon is not idle.
    pub fn active(&self) -> usize {
        self.connections.len() + self.state.streams.len()
    }

    /// After shutdown was signalled: waits for open connections and hijacked streams,
    /// at most `limit` (`None`: without limit). Returns how many were still open.
    pub async fn drain(&self, limit: Option<Duration>) -> usize {
        self.connections.close();
        self.state.streams.close();
        let wait = async {
            self.connections.wait().await;
            self.state.streams.wait().await;
        };
        match limit {
            None => {
                wait.await;
                0
            }
            Some(d) => match tokio::time::timeout(d, wait).await {
                Ok(()) => 0,
                Err(_) => self.active(),
            },
        }
    }
}

async fn accept_loop(listener: Listener, state: Arc<ApiState>, connections: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            _ = state.shutdown.cancelled() => return,
            r = accept(&listener) => r,
        };
        match accepted {
            Ok(conn) => {
                let state = state.clone();
                connections.spawn(async move {
                    match conn {
                        Accepted::Unix(s) => serve_connection(s, state).await,
                        Accepted::Tcp(s, peer, tls) => {
                            let _ = s.set_nodelay(true);
                            match tls {
                                None => serve_connection(s, state).await,
                                Some(tls) => {
                                    let shutdown = state.shutdown.clone();
                                    let s = tokio::select! {
                                        s = handshake(&tls, s, peer) => s,
                                        _ = shutdown.cancelled() => None,
                                    };
                                    if let Some(s) = s {
                                        serve_connection(s, state).await
                                    }
                                }
                            }
                        }
                    }
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::error!("failed to accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(
        tokio::net::TcpStream,
        std::net::SocketAddr,
        Option<tokio_rustls::TlsAcceptor>,
    ),
}

async fn accept(l: &Listener) -> std::io::Result<Accepted> {
    match l {
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        Listener::Tcp(l, tls) => l
            .accept()
            .await
            .map(|(s, peer)| Accepted::Tcp(s, peer, tls.clone())),
    }
}

/// How long a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The TLS handshake of one connection; a client refused (no certificate, one of
/// another CA) is logged in Docker's words and dropped. A client speaking plain
/// HTTP gets Go's answer, which the docker CLI shows.
async fn handshake(
    tls: &tokio_rustls::TlsAcceptor,
    mut s: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    /// The first byte of a TLS handshake record.
    const HANDSHAKE_RECORD: u8 = 0x16;
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, s.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != HANDSHAKE_RECORD => {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let answer = async {
                s.write_all(
                    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
                )
                .await?;
                s.shutdown().await?;
                // Closing with the request unread would reset the connection before
                // the client reads the answer.
                let mut sink = [0u8; 4096];
                while s.read(&mut sink).await? > 0 {}
                std::io::Result::Ok(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), answer).await;
            return None;
        }
        Ok(Ok(_)) => {}
        _ => return None,
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(s)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::warn!("http: TLS handshake error from {peer}: {e}");
            None
        }
        Err(_) => {
            tracing::warn!("http: TLS handshake error from {peer}: timed out");
            None
        }
    }
}

async fn serve_connection<S>(stream: S, state: Arc<ApiState>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_state = state.clone();
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let state = svc_state.clone();
        async move {
            let req = req.map(ReqBody::Incoming);
            Ok::<_, Infallible>(handle(&state, req).await)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        // Go clients send and expect canonical header names (Api-Version, Ostype…).
        .title_case_headers(true)
        .header_read_timeout(Duration::from_secs(60))
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => log_conn_result(r),
        _ = state.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            log_conn_result(conn.await);
        }
    }
}

fn log_conn_result(r: Result<(), hyper::Error>) {
    if let Err(e) = r {
        if !e.is_incomplete_message() {
            tracing::debug!("connection ended: {e}");
        }
    }
}
