//! API-SSL (port 8729) with rustls: how the router's certificate is verified.
//!
//! A RouterOS router without a certificate assigned to the `api-ssl` service offers only
//! anonymous Diffie-Hellman cipher suites. rustls does not implement finite-field DH (and
//! anonymous key exchange could not be authenticated anyway), so the router needs a
//! certificate (self-signed is fine):
//!
//! ```text
//! /certificate add name=api common-name=router.example
//! /certificate sign api
//! /ip service set api-ssl certificate=api tls-version=only-1.2
//! ```
//!
//! Against a router without one (or a RouterOS 6 router that offers only DHE suites) the
//! handshake fails with [`Error::NoSupportedCipherSuite`], whose message says this.
//!
//! The client then verifies it in one of two ways: against a CA certificate file
//! ([`TlsConfig::with_ca_file`]; for a self-signed certificate the certificate itself is its
//! CA), or by pinning the SHA-256 fingerprint of the router's certificate
//! ([`TlsConfig::with_fingerprint`]).

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::Error;

/// How the client checks the router's TLS certificate.
///
/// Build one with [`TlsConfig::with_ca_file`], [`TlsConfig::with_ca_pem`] or
/// [`TlsConfig::with_fingerprint`] and pass it to
/// [`ClientConfig::tls`](super::ClientConfig::tls).
#[derive(Clone)]
pub struct TlsConfig {
    verification: Verification,
    server_name: Option<String>,
}

#[derive(Clone)]
enum Verification {
    /// Trust anchors from a CA file; the certificate must chain to one and name the host.
    Roots(Arc<rustls::RootCertStore>, usize),
    /// The end-entity certificate's SHA-256 must equal this.
    Pinned(Fingerprint),
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TlsConfig");
        match &self.verification {
            Verification::Roots(_, n) => d.field("ca_certificates", n),
            Verification::Pinned(fp) => d.field("fingerprint", fp),
        };
        d.field("server_name", &self.server_name).finish()
    }
}

impl TlsConfig {
    /// Trusts the CA certificates in a PEM file (for a self-signed router certificate,
    /// export that certificate itself: `/certificate export-certificate api`).
    ///
    /// The router's certificate must chain to one of them and name the host you connect to
    /// (or the name set with [`TlsConfig::server_name`]).
    ///
    /// # Errors
    /// [`Error::CaFile`] if the file cannot be read or holds no PEM certificate.
    pub fn with_ca_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| Error::CaFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::ca_pem(&pem, &path.display().to_string())
    }

    /// Like [`TlsConfig::with_ca_file`], with the PEM text already in memory.
    ///
    /// # Errors
    /// [`Error::CaFile`] (with the path `<memory>`) if it holds no valid PEM certificate.
    pub fn with_ca_pem(pem: &[u8]) -> Result<Self, Error> {
        Self::ca_pem(pem, "<memory>")
    }

    fn ca_pem(pem: &[u8], origin: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::CaFile {
            path: origin.to_owned(),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(format!("not valid PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(bad(
                "no `-----BEGIN CERTIFICATE-----` block found".to_owned()
            ));
        }
        let count = roots.len();
        Ok(Self {
            verification: Verification::Roots(Arc::new(roots), count),
            server_name: None,
        })
    }

    /// Accepts exactly the router certificate whose SHA-256 fingerprint is `fingerprint`
    /// (no CA, no name or expiry check: the pin is the trust). The handshake signatures
    /// are still verified, so only the holder of that certificate's key gets through.
    ///
    /// On the router: `/certificate print detail` shows it as `fingerprint=`.
    pub fn with_fingerprint(fingerprint: Fingerprint) -> Self {
        Self {
            verification: Verification::Pinned(fingerprint),
            server_name: None,
        }
    }

    /// The name to verify the certificate against and send as SNI, when it differs from
    /// the host you connect to (for example you connect to `192.0.2.1` but the certificate
    /// says `gw.example`). Without it, the connect host is used.
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The SHA-256 fingerprint this configuration pins, if it pins one.
    pub fn pinned_fingerprint(&self) -> Option<&Fingerprint> {
        match &self.verification {
            Verification::Pinned(fp) => Some(fp),
            Verification::Roots(..) => None,
        }
    }

    /// The server name for `host`, and the rustls configuration.
    pub(crate) fn rustls_config(
        &self,
        host: &str,
    ) -> Result<(ServerName<'static>, Arc<rustls::ClientConfig>), Error> {
        let name = self.server_name.as_deref().unwrap_or(host);
        // `[::1]` is how an IPv6 host is written in an address, not in a certificate.
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        let server_name =
            ServerName::try_from(bare.to_owned()).map_err(|_| Error::InvalidServerName {
                name: name.to_owned(),
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls {
                reason: e.to_string(),
            })?;
        let config = match &self.verification {
            Verification::Roots(roots, _) => builder
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
            Verification::Pinned(fp) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCertificate {
                    fingerprint: *fp,
                    provider,
                }))
                .with_no_client_auth(),
        };
        Ok((server_name, Arc::new(config)))
    }
}

/// The SHA-256 fingerprint of a certificate (of its DER encoding), as RouterOS shows it in
/// `/certificate print detail`.
///
/// Parses 64 hex digits, upper or lower case, with or without `:` between the bytes
/// (`AB:CD:...` as browsers show it, `abcd...` as RouterOS and `openssl x509 -fingerprint
/// -sha256` show it). Displays as lower-case hex without separators.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_certificate(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for Fingerprint {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidFingerprint {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        let digits: Vec<u8> = s.trim().bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 {
            return Err(bad(&format!(
                "expected 64 hex digits (SHA-256), found {}",
                digits.len()
            )));
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let hex = |d: u8| (d as char).to_digit(16);
            match (
                pair.first().copied().and_then(hex),
                pair.get(1).copied().and_then(hex),
            ) {
                // Both digits are < 16, so this fits a byte.
                (Some(hi), Some(lo)) => *byte = (hi * 16 + lo) as u8,
                _ => {
                    return Err(bad(
                        "only hex digits 0-9, a-f and `:` separators are allowed",
                    ));
                }
            }
        }
        Ok(Self(out))
    }
}

/// The seen fingerprint when a pin did not match: travels through rustls' error as
/// `CertificateError::Other` so the client can name it.
#[derive(Debug)]
pub(crate) struct FingerprintMismatch {
    pub(crate) seen: Fingerprint,
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate fingerprint {} is not the pinned one",
            self.seen
        )
    }
}

impl std::error::Error for FingerprintMismatch {}

/// Accepts the one certificate with the pinned SHA-256; handshake signatures are checked
/// with the provider's algorithms like any other verifier does.
#[derive(Debug)]
struct PinnedCertificate {
    fingerprint: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Fingerprint::of_certificate(end_entity.as_ref());
        if seen == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                    FingerprintMismatch { seen },
                ))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What went wrong in a handshake, in terms of what to change.
pub(crate) fn handshake_error(err: std::io::Error, expected: Option<Fingerprint>) -> Error {
    let rustls_error = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            match (other.0.downcast_ref::<FingerprintMismatch>(), expected) {
                (Some(mismatch), Some(expected)) => Error::FingerprintMismatch {
                    expected,
                    seen: mismatch.seen,
                },
                _ => Error::CertificateRejected {
                    reason: other.to_string(),
                },
            }
        }
        Some(rustls::Error::InvalidCertificate(reason)) => Error::CertificateRejected {
            reason: format!("{reason:?}"),
        },
        // What a server answers a hello whose cipher suites it shares none of: a router
        // offering only (anonymous) finite-field DH, which rustls does not do. Seen from a
        // router with no certificate: https://github.com/socialwifi/RouterOS-api/issues/35
        // (`SSLV3_ALERT_HANDSHAKE_FAILURE`); DHE-only 6.x: ROUTEROS.md section 5.
        Some(rustls::Error::AlertReceived(
            alert @ (rustls::AlertDescription::HandshakeFailure
            | rustls::AlertDescription::InsufficientSecurity),
        )) => Error::NoSupportedCipherSuite {
            alert: format!("{alert:?}"),
        },
        Some(rustls::Error::AlertReceived(alert)) => Error::TlsHandshake {
            reason: format!("the router sent the TLS alert {alert:?}"),
        },
        Some(rustls::Error::PeerIncompatible(why)) => Error::TlsHandshake {
            reason: format!("no common TLS parameters ({why:?})"),
        },
        Some(rustls::Error::InvalidMessage(_))
        | Some(rustls::Error::InappropriateMessage { .. }) => Error::NotTls {
            reason: format!("{err}"),
        },
        Some(other) => Error::TlsHandshake {
            reason: other.to_string(),
        },
        None if err.kind() == std::io::ErrorKind::UnexpectedEof
            || err.kind() == std::io::ErrorKind::ConnectionReset =>
        {
            Error::TlsHandshake {
                reason: format!("the router closed the connection during the handshake ({err})"),
            }
        }
        None => Error::Io {
            during: "the TLS handshake",
            source: Arc::new(err),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn fingerprint_parses_plain_and_colon_hex_in_any_case() {
        let plain: Fingerprint = HEX.parse().unwrap();
        let colons: String = HEX
            .as_bytes()
            .chunks(2)
            .map(|p| std::str::from_utf8(p).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(colons.parse::<Fingerprint>().unwrap(), plain);
        assert_eq!(plain.to_string(), HEX);
        assert_eq!(plain.as_bytes()[..2], [0x01, 0x23]);
    }

    #[test]
    fn fingerprint_rejects_wrong_length_and_non_hex() {
        let short = HEX[..62].parse::<Fingerprint>().unwrap_err();
        assert!(short.to_string().contains("found 62"), "{short}");
        let bad = format!("{}zz", &HEX[..62])
            .parse::<Fingerprint>()
            .unwrap_err();
        assert!(bad.to_string().contains("hex digits"), "{bad}");
    }

    #[test]
    fn fingerprint_of_certificate_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            Fingerprint::of_certificate(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ca_pem_without_certificates_is_refused_with_the_reason() {
        let err = TlsConfig::with_ca_pem(b"hello").unwrap_err();
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
        let err = TlsConfig::with_ca_file("/nonexistent/ca.pem").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn ipv6_host_in_brackets_is_a_valid_server_name() {
        let config = TlsConfig::with_fingerprint(HEX.parse().unwrap());
        let (name, _) = config.rustls_config("[::1]").unwrap();
        assert!(matches!(name, ServerName::IpAddress(_)));
    }
}
