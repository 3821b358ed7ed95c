//! The serving certificate of the metrics port: read from PEM files (a mounted Secret) and read
//! again when they change, or made at start (self-signed) when none is given. Connections made
//! after a change get the new certificate; the process keeps running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// How often the certificate files are looked at.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// PEM files: the certificate chain and its private key; read again when they change.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A self-signed certificate made at start for these names.
    SelfSigned(Vec<String>),
}

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("failed to read {path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The certificate and key do not make a usable pair.
    #[error("certificate {cert} with key {key}: {source}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' error.
        source: rustls::Error,
    },
    /// A self-signed certificate could not be made.
    #[error("failed to make a self-signed certificate: {0}")]
    SelfSigned(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The current certificate, swapped when its files change.
#[derive(Debug)]
pub struct Certificate {
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read()))
    }
}

fn pem_error(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_error(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert, e))?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
    // Checks that the key is the certificate's: a half-rotated pair never goes live.
    CertifiedKey::from_der(chain, private, provider).map_err(|source| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

fn self_signed(names: &[String], provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    CertifiedKey::from_der(vec![made.cert.der().clone()], key, provider)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))
}

/// A fingerprint of the files, to notice a change (a Secret volume swaps a symlink).
fn stamp(paths: [&Path; 2]) -> Option<[(SystemTime, u64); 2]> {
    let one = |p: &Path| {
        let meta = std::fs::metadata(p).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    Some([one(paths[0])?, one(paths[1])?])
}

impl Certificate {
    /// Loads the certificate from `source`.
    pub fn new(source: &CertSource) -> Result<Arc<Certificate>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = match source {
            CertSource::Files { cert, key } => load(cert, key, &provider)?,
            CertSource::SelfSigned(names) => self_signed(names, &provider)?,
        };
        Ok(Arc::new(Certificate {
            current: RwLock::new(Arc::new(key)),
            provider,
        }))
    }

    /// A TLS acceptor (HTTP/1.1) that always hands out the current certificate.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reads the files again when they change, until the task is dropped. A pair that does not
    /// load is logged and the current certificate kept.
    pub async fn reload(self: Arc<Self>, cert: PathBuf, key: PathBuf) {
        let mut seen = stamp([&cert, &key]);
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        loop {
            tick.tick().await;
            let now = stamp([&cert, &key]);
            if now == seen {
                continue;
            }
            match load(&cert, &key, &self.provider) {
                Ok(loaded) => {
                    *self.current.write() = Arc::new(loaded);
                    seen = now;
                    info!(cert = %cert.display(), "serving certificate reloaded");
                }
                // Keep looking: the second file of a pair may not have arrived yet.
                Err(e) => {
                    warn!(error = %e, "serving certificate not reloaded; keeping the current one")
                }
            }
        }
    }

    /// The DER of the leaf certificate served now.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.current.read().cert.first().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_and_file_certificates_load_and_a_mismatched_pair_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert, key, wrong) = (
            dir.path().join("tls.crt"),
            dir.path().join("tls.key"),
            dir.path().join("other.key"),
        );
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        std::fs::write(&wrong, other.signing_key.serialize_pem()).unwrap();
        let loaded = Certificate::new(&CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
        .unwrap();
        assert_eq!(loaded.leaf().unwrap().as_ref(), made.cert.der().as_ref());
        assert!(loaded.acceptor().is_ok());
        let mismatched = Certificate::new(&CertSource::Files { cert, key: wrong });
        assert!(
            matches!(mismatched, Err(TlsError::Pair { .. })),
            "{mismatched:?}"
        );
        assert!(Certificate::new(&CertSource::SelfSigned(vec!["tapmon".into()])).is_ok());
    }
}
