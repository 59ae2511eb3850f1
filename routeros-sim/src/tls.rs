//! API-SSL: certificates for the simulated router (given as PEM files, or self-signed).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Router;
use crate::error::SimError;

/// A self-signed certificate and its key, generated for tests and demos.
#[derive(Clone)]
pub struct SelfSignedCertificate {
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for SelfSignedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSignedCertificate")
            .field("sha256", &self.sha256_fingerprint())
            .finish_non_exhaustive()
    }
}

impl SelfSignedCertificate {
    /// Generates a certificate for `names` (DNS names or IP addresses, e.g. `localhost`,
    /// `127.0.0.1`).
    pub fn generate(names: &[&str]) -> Result<Self, SimError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names).map_err(|e| {
            SimError::Tls(format!("cannot generate a self-signed certificate: {e}"))
        })?;
        Ok(Self {
            cert_der: certified.cert.der().clone(),
            key_der: certified.signing_key.serialize_der(),
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
        })
    }

    /// The certificate in DER form (what a client adds to its trust store).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The certificate in PEM form.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key in PEM form (PKCS#8), e.g. to write `--tls-key` for the binary.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The SHA-256 fingerprint of the certificate, lower-case hex without separators (what a
    /// client pins).
    pub fn sha256_fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.cert_der.as_ref());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where the API-SSL certificate comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TlsIdentity {
    /// PEM files: the certificate chain and its private key.
    PemFiles {
        /// Certificate chain (leaf first).
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A generated self-signed certificate.
    SelfSigned(SelfSignedCertificate),
}

/// Chooses the certificate per handshake, as API-SSL does: the signed certificate that
/// `/ip/service` assigns to `api-ssl`, else the identity the server was started with (a
/// real router without one offers only anonymous Diffie-Hellman, which rustls cannot
/// talk; the simulator stays usable instead).
#[derive(Debug)]
struct ServiceCertificate {
    router: Router,
    provider: Arc<rustls::crypto::CryptoProvider>,
    fallback: Arc<CertifiedKey>,
    /// The last assigned certificate, parsed once.
    assigned: Mutex<Option<(Vec<u8>, Arc<CertifiedKey>)>>,
}

impl ResolvesServerCert for ServiceCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(key) = self.router.api_ssl_key() else {
            return Some(self.fallback.clone());
        };
        let mut cache = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((der, certified)) = cache.as_ref() {
            if *der == key.cert_der {
                return Some(certified.clone());
            }
        }
        let certified = CertifiedKey::from_der(
            vec![CertificateDer::from(key.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key_der)),
            &self.provider,
        )
        .ok()
        .map(Arc::new)?;
        *cache = Some((key.cert_der, certified.clone()));
        Some(certified)
    }
}

/// Builds the rustls server configuration (ring provider, TLS 1.2 and 1.3) for `router`.
pub(crate) fn server_config(
    identity: &TlsIdentity,
    router: &Router,
) -> Result<Arc<rustls::ServerConfig>, SimError> {
    let (certs, key) = match identity {
        TlsIdentity::PemFiles { cert, key } => {
            fn file_err<'p>(
                what: &'static str,
                path: &'p std::path::Path,
            ) -> impl Fn(rustls::pki_types::pem::Error) -> SimError + 'p {
                move |e| SimError::TlsFile {
                    what,
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            }
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(file_err("certificate", cert))?
                .collect::<Result<_, _>>()
                .map_err(file_err("certificate", cert))?;
            if certs.is_empty() {
                return Err(SimError::TlsFile {
                    what: "certificate",
                    path: cert.clone(),
                    reason: "no CERTIFICATE block in the file".to_owned(),
                });
            }
            let key = PrivateKeyDer::from_pem_file(key).map_err(file_err("private key", key))?;
            (certs, key)
        }
        TlsIdentity::SelfSigned(s) => (
            vec![s.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(s.key_der.clone())),
        ),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let fallback = CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| SimError::Tls(format!("certificate and key do not fit together: {e}")))?;
    let resolver = ServiceCertificate {
        router: router.clone(),
        provider: provider.clone(),
        fallback: Arc::new(fallback),
        assigned: Mutex::new(None),
    };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    Ok(Arc::new(config))
}
