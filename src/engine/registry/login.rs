//! `docker login` (`POST /auth`): checks credentials against a registry the way
//! Docker does, by authenticating `GET /v2/` with them. The daemon keeps nothing;
//! the CLI stores the credentials (and the identity token, when the registry's
//! token service hands out refresh tokens).

use reqwest::{Method, StatusCode, Url};

use super::auth::{self, AuthConfig, Challenge};
use super::client::{self, Endpoint, TokenRequest, transport_error};
use crate::engine::{Engine, Error, Result};

/// What a successful login answers.
pub struct LoggedIn {
    pub identity_token: String,
}

/// `serveraddress` → the registry's domain: `https://index.docker.io/v1/` and an
/// empty address are Docker Hub.
fn login_domain(server: &str) -> Result<String> {
    let s = server.trim();
    if s.is_empty() {
        return Ok("docker.io".into());
    }
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("https://{s}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| Error::invalid(format!("unable to parse server address: {e}")))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::invalid("unable to parse server address: no host"))?;
    let domain = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    Ok(match domain.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        _ => domain,
    })
}

impl Engine {
    /// Logs in to the registry `auth.serveraddress` names.
    pub async fn registry_login(&self, auth: AuthConfig) -> Result<LoggedIn> {
        let domain = login_domain(&auth.server_address)?;
        let config = self.config().registry.clone();
        let endpoints: Vec<Endpoint> = client::endpoints(&domain, &config)
            .await?
            .into_iter()
            .filter(|e| !e.mirror)
            .collect();
        let mut last = None;
        for ep in &endpoints {
            match self.login_to(ep, &auth).await {
                Ok(done) => return Ok(done),
                // A refusal by the token service is final (401).
                Err(e @ Error::Unauthorized(_)) => return Err(e),
                Err(e) => {
                    tracing::debug!("login to {}: {e}", ep.url);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::internal("no registry endpoint to log in to")))
    }

    async fn login_to(&self, ep: &Endpoint, creds: &AuthConfig) -> Result<LoggedIn> {
        let config = self.config().registry.clone();
        let http = self.registries.clients.client(ep, &config)?;
        let v2 = ep
            .url
            .join("v2/")
            .map_err(|e| Error::internal(e.to_string()))?;
        let ping = http
            .get(v2.clone())
            .send()
            .await
            .map_err(|e| transport_error(&Method::GET, &v2, &e))?;
        let challenge = ping
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::parse_challenge);
        let failed = |status: StatusCode| {
            Error::internal(format!(
                "login attempt to {v2} failed with status: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ))
        };
        let (authorization, identity_token) = match challenge {
            None if ping.status().is_success() => {
                return Ok(LoggedIn {
                    identity_token: String::new(),
                });
            }
            None => return Err(failed(ping.status())),
            Some(Challenge::Basic) => match creds.basic() {
                Some((u, p)) => (auth::basic_header(&u, &p), String::new()),
                None => return Err(failed(ping.status())),
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                let tr = self
                    .registries
                    .clients
                    .fetch_token(
                        &config,
                        &TokenRequest {
                            realm: &realm,
                            service: &service,
                            scopes: &[],
                            auth: creds,
                            login: true,
                            skip_verify: ep.skip_verify,
                            registry: &ep.url,
                        },
                    )
                    .await?;
                let token = tr.bearer().unwrap_or_default().to_string();
                (format!("Bearer {token}"), tr.refresh_token.clone())
            }
        };
        let resp = http
            .get(v2.clone())
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(|e| transport_error(&Method::GET, &v2, &e))?;
        if resp.status() != StatusCode::OK {
            return Err(failed(resp.status()));
        }
        Ok(LoggedIn { identity_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(login_domain("").unwrap(), "docker.io");
        assert_eq!(
            login_domain("https://index.docker.io/v1/").unwrap(),
            "docker.io"
        );
        assert_eq!(login_domain("localhost:5000").unwrap(), "localhost:5000");
        assert_eq!(
            login_domain("http://10.1.2.3:5000/").unwrap(),
            "10.1.2.3:5000"
        );
        assert!(login_domain("https://").is_err());
    }
}
