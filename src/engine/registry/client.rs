//! Talking to a registry over HTTP: which endpoints a registry has (mirrors first for
//! Docker Hub; HTTPS, then plain HTTP for insecure registries), the TLS each gets
//! (the system's roots plus `certs.d/<host:port>/*.crt`, a client certificate from
//! `*.cert`/`*.key`, no verification for insecure ones), proxies, and requests that
//! answer a registry's authentication challenge (Basic, or Bearer tokens from its
//! token service) and retry once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, Url};

use super::auth::{self, AuthConfig, Challenge, TokenResponse};
use crate::config::RegistryConfig;
use crate::engine::{Error, Result};

/// How long a registry may take to accept a connection, and to answer a ping.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(15);
/// A blob transfer that makes no progress for this long has failed.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Docker Hub's real address.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// One place a registry answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://localhost:5000/`.
    pub url: Url,
    /// `host:port` as `certs.d` names it.
    pub host: String,
    /// TLS without verification (an insecure registry over HTTPS).
    pub skip_verify: bool,
    pub mirror: bool,
}

/// Whether `domain` (`host[:port]`) is an insecure registry: named in
/// `insecure-registries`, in one of its CIDRs, or on loopback (as Docker treats
/// `localhost` and 127.0.0.0/8).
pub async fn is_insecure(domain: &str, config: &RegistryConfig) -> bool {
    let host = host_of(domain);
    if config
        .insecure_registries
        .iter()
        .any(|i| i == domain || (!i.contains('/') && i == host))
    {
        return true;
    }
    let ips: Vec<IpAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) if host == "localhost" => return true,
        Err(_) => tokio::net::lookup_host((host, 0))
            .await
            .map(|a| a.map(|s| s.ip()).collect())
            .unwrap_or_default(),
    };
    ips.iter().any(|ip| {
        ip.is_loopback()
            || config
                .insecure_registries
                .iter()
                .filter_map(|c| c.parse::<ipnet::IpNet>().ok())
                .any(|net| net.contains(ip))
    })
}

/// `localhost:5000` → `localhost`; `[::1]:5000` → `[::1]`.
fn host_of(domain: &str) -> &str {
    if domain.starts_with('[') {
        return domain
            .split(']')
            .next()
            .map_or(domain, |h| &domain[..h.len() + 1]);
    }
    domain.rsplit_once(':').map_or(domain, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            domain
        }
    })
}

/// The endpoints of the registry `domain`, in the order they are tried.
pub async fn endpoints(domain: &str, config: &RegistryConfig) -> Result<Vec<Endpoint>> {
    let mut out = Vec::new();
    let domain = if domain == "docker.io" || domain == "index.docker.io" {
        for m in &config.mirrors {
            let url =
                Url::parse(m).map_err(|e| Error::invalid(format!("invalid mirror {m}: {e}")))?;
            let host = match url.port() {
                Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_string(),
            };
            let insecure = url.scheme() == "http" || is_insecure(&host, config).await;
            out.push(Endpoint {
                url,
                host,
                skip_verify: insecure,
                mirror: true,
            });
        }
        DOCKER_HUB
    } else {
        domain
    };
    let insecure = is_insecure(domain, config).await;
    let https = Url::parse(&format!("https://{domain}/"))
        .map_err(|e| Error::invalid(format!("invalid registry address {domain}: {e}")))?;
    out.push(Endpoint {
        url: https,
        host: domain.to_string(),
        skip_verify: insecure,
        mirror: false,
    });
    if insecure {
        out.push(Endpoint {
            url: Url::parse(&format!("http://{domain}/"))
                .map_err(|e| Error::invalid(format!("invalid registry address {domain}: {e}")))?,
            host: domain.to_string(),
            skip_verify: true,
            mirror: false,
        });
    }
    Ok(out)
}

/// The HTTP clients, one per registry host and TLS setting, and cached tokens.
pub struct Clients {
    /// `certs.d`: CA certificates and client certificates per registry.
    certs_dir: PathBuf,
    clients: Mutex<HashMap<(String, bool, String), Client>>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl Clients {
    pub fn new(certs_dir: PathBuf) -> Clients {
        // One crypto provider for the process; a second install is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Clients {
            certs_dir,
            clients: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `ep`, with its TLS and proxy settings; made again when its
    /// `certs.d` directory or the proxies change.
    pub fn client(&self, ep: &Endpoint, config: &RegistryConfig) -> Result<Client> {
        let dir = self.certs_dir.join(&ep.host);
        let key = (
            ep.host.clone(),
            ep.skip_verify,
            format!(
                "{}|{:?}",
                dir_fingerprint(&dir),
                (&config.http_proxy, &config.https_proxy, &config.no_proxy)
            ),
        );
        if let Some(c) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let tls = tls_config(&dir, ep.skip_verify)?;
        let proxies = Proxies::from(config);
        let mut b = Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(format!(
                "docker/{} go/go1.21 os/linux",
                crate::version::VERSION
            ))
            .no_proxy();
        if proxies.any() {
            b = b.proxy(reqwest::Proxy::custom(move |url| proxies.for_url(url)));
        }
        let c = b
            .build()
            .map_err(|e| Error::internal(format!("registry client: {e}")))?;
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, c.clone());
        Ok(c)
    }

    /// Asks a token service for a token: `GET realm?service=…&scope=…` with Basic
    /// credentials when there are any, or the OAuth refresh flow (`POST`) with an
    /// identity token from an earlier login.
    pub async fn fetch_token(
        &self,
        config: &RegistryConfig,
        req: &TokenRequest<'_>,
    ) -> Result<TokenResponse> {
        let mut url = Url::parse(req.realm)
            .map_err(|e| Error::internal(format!("invalid token realm {:?}: {e}", req.realm)))?;
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let client = self.client(
            &Endpoint {
                url: url.clone(),
                host,
                skip_verify: req.skip_verify,
                mirror: false,
            },
            config,
        )?;
        let basic = req.auth.basic();
        let resp = if !req.auth.identity_token.is_empty() {
            let mut form = vec![
                ("grant_type", "refresh_token".to_string()),
                ("service", req.service.to_string()),
                ("client_id", "docker".to_string()),
                ("refresh_token", req.auth.identity_token.clone()),
            ];
            if !req.scopes.is_empty() {
                form.push(("scope", req.scopes.join(" ")));
            }
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect::<Vec<_>>()
                .join("&");
            client
                .post(url.clone())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .timeout(PING_TIMEOUT)
                .send()
                .await
        } else {
            {
                let mut q = url.query_pairs_mut();
                if let Some((u, _)) = &basic {
                    q.append_pair("account", u);
                }
                if req.login {
                    q.append_pair("client_id", "docker");
                    q.append_pair("offline_token", "true");
                }
                for s in req.scopes {
                    q.append_pair("scope", s);
                }
                if !req.service.is_empty() {
                    q.append_pair("service", req.service);
                }
            }
            let mut rb = client.get(url.clone()).timeout(PING_TIMEOUT);
            if let Some((u, p)) = &basic {
                rb = rb.header(AUTHORIZATION, auth::basic_header(u, p));
            }
            rb.send().await
        };
        let resp = resp.map_err(|e| transport_error(&Method::GET, &url, &e))?;
        let v2 = req
            .registry
            .join("v2/")
            .map(|u| u.to_string())
            .unwrap_or_default();
        if !resp.status().is_success() {
            let f = Failure::of(resp).await;
            let msg = format!("Get \"{v2}\": {f}");
            return Err(if f.code == "UNAUTHORIZED" {
                Error::Unauthorized(msg)
            } else {
                Error::internal(msg)
            });
        }
        let body = read_limited(resp, 1 << 20).await?;
        let tr: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            Error::internal(format!(
                "invalid answer from the token service {}: {e}",
                req.realm
            ))
        })?;
        if tr.bearer().is_none() {
            return Err(Error::internal(format!(
                "Get \"{v2}\": authorization server did not include a token in the response"
            )));
        }
        Ok(tr)
    }

    fn cached_token(&self, key: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    fn store_token(&self, key: String, token: String, ttl: Duration) {
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, (_, until)| now < *until);
        tokens.insert(key, (token, now + ttl));
    }

    fn forget_token(&self, key: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// What to ask a token service for.
pub struct TokenRequest<'a> {
    pub realm: &'a str,
    pub service: &'a str,
    pub scopes: &'a [String],
    pub auth: &'a AuthConfig,
    /// A login: ask for a refresh token (`offline_token=true`) too.
    pub login: bool,
    /// The registry is insecure: so is its token service.
    pub skip_verify: bool,
    /// The registry's base URL, which errors name.
    pub registry: &'a Url,
}

/// Proxies for registry traffic: the `proxies` key, else the environment's
/// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`. Loopback is never proxied (as Go's own
/// proxy rules have it).
#[derive(Clone, Default)]
struct Proxies {
    http: Option<Url>,
    https: Option<Url>,
    no_proxy: Vec<String>,
}

impl Proxies {
    fn from(config: &RegistryConfig) -> Proxies {
        let env = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        };
        let http = config
            .http_proxy
            .clone()
            .or_else(|| env(["HTTP_PROXY", "http_proxy"]));
        let https = config
            .https_proxy
            .clone()
            .or_else(|| env(["HTTPS_PROXY", "https_proxy"]));
        let no = config
            .no_proxy
            .clone()
            .or_else(|| env(["NO_PROXY", "no_proxy"]))
            .unwrap_or_default();
        let parse = |s: Option<String>| {
            s.and_then(|s| {
                Url::parse(&s)
                    .or_else(|_| Url::parse(&format!("http://{s}")))
                    .ok()
            })
        };
        Proxies {
            http: parse(http),
            https: parse(https),
            no_proxy: no
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }

    fn any(&self) -> bool {
        self.http.is_some() || self.https.is_some()
    }

    fn for_url(&self, url: &Url) -> Option<Url> {
        let host = url
            .host_str()?
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        if host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return None;
        }
        let port = url.port_or_known_default().unwrap_or(0);
        for entry in &self.no_proxy {
            if entry == "*" {
                return None;
            }
            let (e_host, e_port) = match entry.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => {
                    (h, p.parse::<u16>().ok())
                }
                _ => (entry.as_str(), None),
            };
            if e_port.is_some_and(|p| p != port) {
                continue;
            }
            if let Ok(net) = e_host.parse::<ipnet::IpNet>()
                && host.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip))
            {
                return None;
            }
            let bare = e_host.trim_start_matches('.');
            if host == bare || host.ends_with(&format!(".{bare}")) {
                return None;
            }
        }
        match url.scheme() {
            "https" => self.https.clone(),
            _ => self.http.clone(),
        }
    }
}

/// The system's CA certificates, read once.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        roots
    })
}

/// TLS for one registry: the system's roots and `dir/*.crt`; a client certificate
/// from `dir/*.cert` and the `*.key` of the same name; or no verification at all.
fn tls_config(dir: &Path, skip_verify: bool) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let builder = rustls::ClientConfig::builder();
    let builder = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify::new()))
    } else {
        let mut roots = system_roots().clone();
        for path in files_with(dir, "crt") {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
                .and_then(|it| it.collect())
                .map_err(|e| {
                    Error::invalid(format!("invalid CA certificate {}: {e}", path.display()))
                })?;
            for c in certs {
                roots.add(c).map_err(|e| {
                    Error::invalid(format!("invalid CA certificate {}: {e}", path.display()))
                })?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut pair = None;
    for cert in files_with(dir, "cert") {
        let key = cert.with_extension("key");
        if !key.exists() {
            return Err(Error::invalid(format!(
                "missing key {} for client certificate {}. CA certificates must use the extension .crt",
                key.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                cert.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )));
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .and_then(|it| it.collect())
            .map_err(|e| {
                Error::invalid(format!(
                    "invalid client certificate {}: {e}",
                    cert.display()
                ))
            })?;
        let k = PrivateKeyDer::from_pem_file(&key)
            .map_err(|e| Error::invalid(format!("invalid client key {}: {e}", key.display())))?;
        pair = Some((chain, k));
    }
    for key in files_with(dir, "key") {
        if !key.with_extension("cert").exists() {
            return Err(Error::invalid(format!(
                "missing client certificate {} for key {}",
                key.with_extension("cert")
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                key.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )));
        }
    }
    match pair {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| Error::invalid(format!("client certificate in {}: {e}", dir.display()))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Names, sizes and modification times of the files in `dir`: a changed
/// certificate makes a new client.
fn dir_fingerprint(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let mut parts: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some(format!(
                        "{}:{}:{}.{}",
                        e.file_name().to_string_lossy(),
                        m.size(),
                        m.mtime(),
                        m.mtime_nsec()
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    parts.join(",")
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Accepts any server certificate: insecure registries over HTTPS.
#[derive(Debug)]
struct NoVerify(rustls::crypto::WebPkiSupportedAlgorithms);

impl NoVerify {
    fn new() -> NoVerify {
        NoVerify(rustls::crypto::ring::default_provider().signature_verification_algorithms)
    }
}

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A transport failure in Go's words: `Get "https://host/v2/": dial tcp …: connection refused`.
pub fn transport_error(method: &Method, url: &Url, e: &reqwest::Error) -> Error {
    let mut cause = String::new();
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    let m = go_method(method);
    let cause = if e.is_timeout() {
        "net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)".to_string()
    } else if cause.contains("Connection refused") {
        format!("dial tcp {}: connect: connection refused", addr_of(url))
    } else if cause.contains("UnknownIssuer") || cause.contains("invalid peer certificate") {
        format!(
            "tls: failed to verify certificate: x509: certificate signed by unknown authority ({cause})"
        )
    } else {
        cause
    };
    Error::internal(format!("{m} \"{url}\": {cause}"))
}

/// `GET` → `Get`, as Go's URL errors name methods.
fn go_method(method: &Method) -> String {
    let m = method.as_str();
    format!("{}{}", &m[..1], m[1..].to_ascii_lowercase())
}

fn addr_of(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// What a registry's error answer says: its first error code (`MANIFEST_UNKNOWN`,
/// `DENIED`, …) and the text Docker prints for it (`manifest unknown: manifest
/// unknown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: StatusCode,
    pub code: String,
    pub text: String,
}

impl Failure {
    /// Reads an error response (its body up to 64 KiB).
    pub async fn of(resp: Response) -> Failure {
        let status = resp.status();
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_limited(resp, 64 << 10).await.unwrap_or_default();
        Failure::from_parts(status, challenge.as_deref(), &body)
    }

    /// As distribution's client reads an error: a Bearer challenge's `error`
    /// first, then the body's `errors`, then the status alone.
    pub fn from_parts(status: StatusCode, challenge: Option<&str>, body: &[u8]) -> Failure {
        let failure = |code: &str, text: String| Failure {
            status,
            code: code.to_string(),
            text,
        };
        if status == StatusCode::UNAUTHORIZED
            && let Some((error, description)) = challenge.and_then(auth::challenge_error)
        {
            match error.as_str() {
                "insufficient_scope" => {
                    let d = description
                        .unwrap_or_else(|| "requested access to the resource is denied".into());
                    return failure("DENIED", format!("denied: {d}"));
                }
                "invalid_token" => {
                    let d = description.unwrap_or_else(|| "authentication required".into());
                    return failure("UNAUTHORIZED", format!("unauthorized: {d}"));
                }
                _ => {}
            }
        }
        #[derive(serde::Deserialize)]
        struct E {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        #[derive(serde::Deserialize)]
        struct Es {
            #[serde(default)]
            errors: Vec<E>,
            #[serde(default)]
            details: String,
        }
        let by_status = |detail: Option<&str>| -> Failure {
            let (code, default) = match status {
                StatusCode::UNAUTHORIZED => ("UNAUTHORIZED", "authentication required"),
                StatusCode::FORBIDDEN => ("DENIED", "requested access to the resource is denied"),
                StatusCode::TOO_MANY_REQUESTS => ("TOOMANYREQUESTS", "too many requests"),
                _ => ("UNKNOWN", "unknown error"),
            };
            let text = if !status.is_client_error() {
                format!("received unexpected HTTP status: {status}")
            } else {
                let word = code.to_ascii_lowercase();
                format!("{word}: {}", detail.unwrap_or(default))
            };
            failure(code, text)
        };
        match serde_json::from_slice::<Es>(body) {
            Ok(es) if !es.errors.is_empty() => {
                let texts: Vec<String> = es
                    .errors
                    .iter()
                    .map(|e| {
                        let code = e.code.to_ascii_lowercase().replace('_', " ");
                        if e.message.is_empty() {
                            code
                        } else {
                            format!("{code}: {}", e.message)
                        }
                    })
                    .collect();
                let text = if texts.len() == 1 {
                    texts[0].clone()
                } else {
                    format!("errors:\n{}\n", texts.join("\n"))
                };
                failure(&es.errors[0].code.to_ascii_uppercase(), text)
            }
            Ok(es) if !es.details.is_empty() => by_status(Some(&es.details)),
            _ => by_status(None),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A response body, refused when longer than `limit` (a registry must not make the
/// daemon buffer without bound).
pub async fn read_limited(resp: Response, limit: usize) -> Result<bytes::Bytes> {
    if resp.content_length().is_some_and(|l| l > limit as u64) {
        return Err(Error::invalid(format!(
            "the registry's answer is larger than the {limit} bytes allowed"
        )));
    }
    let url = resp.url().clone();
    let mut resp = resp;
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_error(&Method::GET, &url, &e))?
    {
        if out.len() + chunk.len() > limit {
            return Err(Error::invalid(format!(
                "the registry's answer is larger than the {limit} bytes allowed"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// A conversation with one repository of one registry endpoint. Clones share the
/// connection pool and token cache, and may run at once (one per layer).
#[derive(Clone)]
pub struct Session {
    clients: Arc<Clients>,
    config: RegistryConfig,
    pub endpoint: Endpoint,
    client: Client,
    auth: AuthConfig,
    /// Repository path: `library/busybox`.
    pub path: String,
    /// Scopes needed beyond the repository's own (a mount's source).
    scopes: Vec<String>,
    challenge: Option<Challenge>,
    authorization: Option<String>,
}

impl Session {
    /// Pings `endpoint` (`GET /v2/`) and keeps its authentication challenge. A
    /// transport failure (refused, TLS) is the error; any HTTP answer opens the
    /// session.
    pub async fn open(
        clients: &Arc<Clients>,
        config: &RegistryConfig,
        endpoint: Endpoint,
        path: &str,
        auth: AuthConfig,
        push: bool,
    ) -> Result<Session> {
        let client = clients.client(&endpoint, config)?;
        let url = endpoint
            .url
            .join("v2/")
            .map_err(|e| Error::internal(e.to_string()))?;
        let resp = client
            .get(url.clone())
            .timeout(PING_TIMEOUT)
            .send()
            .await
            .map_err(|e| transport_error(&Method::GET, &url, &e))?;
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::parse_challenge);
        let mut s = Session {
            clients: clients.clone(),
            config: config.clone(),
            endpoint,
            client,
            auth,
            path: path.to_string(),
            scopes: vec![auth::repository_scope(path, push)],
            challenge,
            authorization: None,
        };
        s.authorize().await?;
        Ok(s)
    }

    /// Asks for a mount's source repository too (a token must cover both).
    pub async fn add_scope(&mut self, scope: String) -> Result<()> {
        if !self.scopes.contains(&scope) {
            self.scopes.push(scope);
            self.authorize().await?;
        }
        Ok(())
    }

    /// `https://host/v2/<path>/<rest>`.
    pub fn url(&self, rest: &str) -> Result<Url> {
        self.endpoint
            .url
            .join(&format!("v2/{}/{rest}", self.path))
            .map_err(|e| Error::internal(e.to_string()))
    }

    /// Whether `url` is on this session's endpoint (scheme, host and port): only
    /// there do requests carry its credentials, and only from there is a new
    /// authentication challenge taken.
    fn on_endpoint(&self, url: &Url) -> bool {
        let e = &self.endpoint.url;
        url.scheme() == e.scheme()
            && url.host_str() == e.host_str()
            && url.port_or_known_default() == e.port_or_known_default()
    }

    /// The `Authorization` the challenge calls for, fetching a token when needed
    /// (a cached one while it is valid, so long transfers get fresh tokens).
    async fn authorize(&mut self) -> Result<()> {
        if !self.auth.registry_token.is_empty() {
            self.authorization = Some(format!("Bearer {}", self.auth.registry_token));
            return Ok(());
        }
        self.authorization = match &self.challenge {
            None => None,
            Some(Challenge::Basic) => self.auth.basic().map(|(u, p)| auth::basic_header(&u, &p)),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let (realm, service) = (realm.clone(), service.clone());
                Some(format!("Bearer {}", self.token(&realm, &service).await?))
            }
        };
        Ok(())
    }

    /// A token for this session's scopes from the registry's token service
    /// (anonymous without credentials), cached until shortly before it expires.
    async fn token(&self, realm: &str, service: &str) -> Result<String> {
        let key = self.token_key(realm, service);
        if let Some(t) = self.clients.cached_token(&key) {
            return Ok(t);
        }
        let tr = self
            .clients
            .fetch_token(
                &self.config,
                &TokenRequest {
                    realm,
                    service,
                    scopes: &self.scopes,
                    auth: &self.auth,
                    login: false,
                    skip_verify: self.endpoint.skip_verify,
                    registry: &self.endpoint.url,
                },
            )
            .await?;
        let token = tr.bearer().unwrap_or_default().to_string();
        let ttl = Duration::from_secs(tr.expires_in.max(60) - 5);
        self.clients.store_token(key, token.clone(), ttl);
        Ok(token)
    }

    /// The token cache's key: the service, the scopes and who asks (a digest of
    /// the credentials, so clients with other credentials never share a token).
    fn token_key(&self, realm: &str, service: &str) -> String {
        use sha2::Digest as _;
        let a = &self.auth;
        let who = sha2::Sha256::new()
            .chain_update(a.username.as_bytes())
            .chain_update([0])
            .chain_update(a.password.as_bytes())
            .chain_update([0])
            .chain_update(a.identity_token.as_bytes())
            .chain_update([0])
            .chain_update(a.auth.as_bytes())
            .finalize();
        format!(
            "{realm}|{service}|{}|{}",
            self.scopes.join(" "),
            crate::image::digest::hex(&who)
        )
    }

    /// Sends the request `build` makes. A 401 from the endpoint whose challenge
    /// differs from the one the session answered (a registry that asks only for
    /// some paths, or another realm) is answered and the request made again,
    /// once, as is one that says the bearer token is no longer valid; `build` may
    /// be called twice. A challenge from another host (a redirect's target) is
    /// never answered.
    pub async fn send(
        &mut self,
        method: Method,
        url: Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        if matches!(self.challenge, Some(Challenge::Bearer { .. })) {
            // The cached token, or a new one when it is about to expire.
            self.authorize().await?;
        }
        let first = self.attempt(&method, &url, &build).await?;
        if first.status() != StatusCode::UNAUTHORIZED || !self.on_endpoint(first.url()) {
            return Ok(first);
        }
        let header = first
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let challenge = auth::parse_challenge(header);
        let changed = match (&challenge, &self.challenge) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(new), Some(old)) => !auth::same_service(new, old),
        };
        let expired =
            !changed && self.auth.registry_token.is_empty() && header.contains("invalid_token");
        if expired && let Some(Challenge::Bearer { realm, service, .. }) = &self.challenge {
            let key = self.token_key(realm, service);
            self.clients.forget_token(&key);
        }
        if changed || expired {
            if changed {
                self.challenge = challenge;
            }
            self.authorize().await?;
            let again = self.attempt(&method, &url, &build).await?;
            if again.status() != StatusCode::UNAUTHORIZED {
                return Ok(again);
            }
        }
        if self.missing_basic_credentials() {
            return Err(Error::Unauthorized(format!(
                "{} \"{url}\": no basic auth credentials",
                go_method(&method)
            )));
        }
        Ok(first)
    }

    /// Whether requests carry credentials: no means a Basic challenge went
    /// unanswered for want of a username.
    pub fn missing_basic_credentials(&self) -> bool {
        matches!(self.challenge, Some(Challenge::Basic)) && self.authorization.is_none()
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        build: &impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let mut rb = build(self.client.request(method.clone(), url.clone()));
        if let Some(a) = &self.authorization
            && self.on_endpoint(url)
            && let Ok(v) = HeaderValue::from_str(a)
        {
            rb = rb.header(AUTHORIZATION, v);
        }
        rb.send()
            .await
            .map_err(|e| transport_error(method, url, &e))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_follow_dockers_rules() {
        let mut config = RegistryConfig::default();
        let eps = endpoints("localhost:5000", &config).await.unwrap();
        assert_eq!(
            eps.len(),
            2,
            "loopback registries are insecure: https, then http"
        );
        assert_eq!(eps[0].url.as_str(), "https://localhost:5000/");
        assert_eq!(eps[1].url.as_str(), "http://localhost:5000/");
        let eps = endpoints("10.1.2.3:5000", &config).await.unwrap();
        assert_eq!(eps.len(), 1);
        config.insecure_registries = vec!["10.0.0.0/8".into()];
        assert_eq!(endpoints("10.1.2.3:5000", &config).await.unwrap().len(), 2);
        config.mirrors = vec!["http://mirror.local:5000/".into()];
        let eps = endpoints("docker.io", &config).await.unwrap();
        assert!(eps[0].mirror);
        assert_eq!(eps[1].url.as_str(), "https://registry-1.docker.io/");
    }

    #[test]
    fn proxies_skip_loopback_and_no_proxy() {
        let p = Proxies {
            http: Url::parse("http://proxy:3128").ok(),
            https: Url::parse("http://proxy:3128").ok(),
            no_proxy: vec![".corp.example".into(), "10.0.0.0/8".into()],
        };
        assert!(
            p.for_url(&Url::parse("https://127.0.0.1:5000/").unwrap())
                .is_none()
        );
        assert!(
            p.for_url(&Url::parse("https://localhost/").unwrap())
                .is_none()
        );
        assert!(
            p.for_url(&Url::parse("https://reg.corp.example/").unwrap())
                .is_none()
        );
        assert!(
            p.for_url(&Url::parse("https://10.2.3.4/").unwrap())
                .is_none()
        );
        assert!(
            p.for_url(&Url::parse("https://registry-1.docker.io/").unwrap())
                .is_some()
        );
    }

    #[test]
    fn registry_errors_in_dockers_words() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        let f = Failure::from_parts(StatusCode::NOT_FOUND, None, body);
        assert_eq!(f.text, "manifest unknown: manifest unknown");
        assert_eq!(f.code, "MANIFEST_UNKNOWN");
        let f = Failure::from_parts(StatusCode::UNAUTHORIZED, None, b"");
        assert_eq!(f.text, "unauthorized: authentication required");
        let f = Failure::from_parts(
            StatusCode::UNAUTHORIZED,
            Some(
                r#"Bearer realm="https://a/token",service="r",scope="repository:x:pull",error="insufficient_scope""#,
            ),
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
        assert_eq!(
            (f.code.as_str(), f.text.as_str()),
            (
                "DENIED",
                "denied: requested access to the resource is denied"
            )
        );
        let f = Failure::from_parts(
            StatusCode::UNAUTHORIZED,
            None,
            br#"{"details":"incorrect username or password"}"#,
        );
        assert_eq!(f.text, "unauthorized: incorrect username or password");
        let f = Failure::from_parts(StatusCode::BAD_GATEWAY, None, b"oops");
        assert_eq!(f.text, "received unexpected HTTP status: 502 Bad Gateway");
        assert_eq!(host_of("localhost:5000"), "localhost");
        assert_eq!(host_of("[::1]:5000"), "[::1]");
        assert_eq!(host_of("example.com"), "example.com");
    }
}
