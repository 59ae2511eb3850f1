//! HTTP plumbing shared by the bouncer and the watcher: a rustls (ring) client, bounded
//! bodies, errors without URLs.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Response, Url};
use rustls_platform_verifier::BuilderVerifierExt;

use crate::error::CrowdsecError;

/// Builds a client for the LAPI at `url`.
///
/// TLS is rustls with the ring provider and the system trust store, as in mtids-alert. For
/// a plain-HTTP URL (a LAPI on loopback) no trust store is loaded.
pub(crate) fn build_client(url: &Url, timeout: Duration) -> Result<Client, CrowdsecError> {
    let client_err = |reason: String| CrowdsecError::Client { reason };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| client_err(e.to_string()))?;
    let tls = if url.scheme() == "https" {
        builder
            .with_platform_verifier()
            .map_err(|e| {
                client_err(format!(
                    "cannot load the system's CA certificates ({e}); install ca-certificates"
                ))
            })?
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirect would resend the key or the token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mtids-crowdsec/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| client_err(describe_reqwest_error(e)))
}

/// `base` joined with an API path (`v1/decisions/stream`), keeping a base path prefix.
pub(crate) fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}

/// A reqwest error as text, with the URL removed and the cause chain kept.
pub(crate) fn describe_reqwest_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    bounded(&text, 512)
}

/// Reads the body, failing past `limit` bytes.
pub(crate) async fn read_body(
    mut response: Response,
    limit: usize,
    during: &'static str,
) -> Result<Vec<u8>, CrowdsecError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(CrowdsecError::TooLarge { during, limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(CrowdsecError::Unreachable {
                    during,
                    reason: describe_reqwest_error(e),
                });
            }
        }
    }
}

/// The error for a non-2xx answer: the LAPI's `{"message": ...}` if there is one.
pub(crate) async fn status_error(response: Response, during: &'static str) -> CrowdsecError {
    let status = response.status().as_u16();
    let body = read_body(response, 16 * 1024, during)
        .await
        .unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    let message = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => e.message,
        Err(_) => String::from_utf8_lossy(&body).into_owned(),
    };
    CrowdsecError::Status {
        during,
        status,
        message: bounded(message.trim(), 300),
    }
}

/// `text` on one line, control characters replaced, at most `max` characters.
pub(crate) fn bounded(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}
