//! The TLS configuration of TCP listeners, built once at start from the files
//! `--tlscert`, `--tlskey` and (with `--tlsverify`) `--tlscacert` name: TLS 1.2
//! and 1.3 with rustls' default suites (the ECDHE AEAD suites Docker allows), and
//! client certificates required and checked against that CA alone.
//! Errors are Docker's, prefixed `invalid TLS configuration: `.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::tls::TlsConfig;

pub fn server_config(t: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let fail = |e: String| format!("invalid TLS configuration: {e}");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (certs, key) = key_pair(&t.cert, &t.key).map_err(fail)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| fail(e.to_string()))?;
    let builder = if t.verify {
        let mut roots = rustls::RootCertStore::empty();
        let ca = read(&t.ca)
            .map_err(|e| fail(format!("could not read CA certificate {:?}: {e}", t.ca)))?;
        let mut added = 0;
        for c in CertificateDer::pem_slice_iter(&ca).flatten() {
            if roots.add(c).is_ok() {
                added += 1;
            }
        }
        if added == 0 {
            return Err(fail(format!(
                "failed to append certificates from PEM file: {:?}",
                t.ca
            )));
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| fail(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        fail(format!(
            "error reading X509 key pair - make sure the key is not encrypted (cert: {:?}, key: {:?}): {e}",
            t.cert, t.key
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        format!(
            "open {}: {}",
            path.display(),
            crate::store::strip_os_suffix(&e).to_lowercase()
        )
    })
}

/// The certificate chain and its key, in PEM (PKCS#1, PKCS#8 or SEC1 keys).
fn key_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let names = format!("(cert: {cert:?}, key: {key:?})");
    let (cert_pem, key_pem) = match (read(cert), read(key)) {
        (Ok(c), Ok(k)) => (c, k),
        (Err(e), _) | (_, Err(e)) => {
            return Err(format!("could not load X509 key pair {names}: {e}"));
        }
    };
    let bad = |e: &str| {
        format!("error reading X509 key pair - make sure the key is not encrypted {names}: {e}")
    };
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("tls: failed to find any PEM data in certificate input"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| bad("tls: failed to parse private key"))?;
    Ok((certs, key))
}
