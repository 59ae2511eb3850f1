//! The client builder and the error text.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Url};
use rustls_platform_verifier::BuilderVerifierExt;

/// How long [`describe_error`]'s text may get, in characters.
const MAX_ERROR_TEXT: usize = 512;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The system's CA certificates could not be loaded for an `https` URL.
    #[error("cannot load the system's CA certificates ({reason}); install ca-certificates")]
    TrustStore {
        /// What the platform verifier said.
        reason: String,
    },
    /// rustls or reqwest refused the configuration.
    #[error("{reason}")]
    Build {
        /// What was refused, without any URL.
        reason: String,
    },
}

/// Builds a client for requests to `url`, sending `user_agent`.
///
/// TLS is rustls with the ring provider and the system trust store. For a plain-HTTP URL
/// (a peer on loopback) no trust store is loaded, so a machine without CA certificates can
/// still talk to a local server. `timeout` bounds the connection and the whole request.
/// Redirects are never followed: one would resend the request, and its secrets, elsewhere.
///
/// ```
/// let url = reqwest::Url::parse("http://127.0.0.1:8080/v1/decisions").unwrap();
/// let client = mtids_http::client(&url, std::time::Duration::from_secs(5), "example/1.0");
/// assert!(client.is_ok());
/// ```
pub fn client(url: &Url, timeout: Duration, user_agent: &str) -> Result<Client, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Build {
            reason: e.to_string(),
        })?;
    let tls = if url.scheme() == "https" {
        builder
            .with_platform_verifier()
            .map_err(|e| ClientError::TrustStore {
                reason: e.to_string(),
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
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .map_err(|e| ClientError::Build {
            reason: describe_error(e),
        })
}

/// A reqwest error as one line: the URL removed (it may hold a secret), the cause chain
/// kept, control characters replaced, at most 512 characters.
pub fn describe_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    one_line(&text, MAX_ERROR_TEXT)
}

/// `text` on one line, control characters replaced by spaces, at most `max` characters
/// (then `…`): for text from a peer that goes into an error or a log line.
///
/// ```
/// assert_eq!(mtids_http::one_line("bad\nrequest", 20), "bad request");
/// assert_eq!(mtids_http::one_line("abcdef", 3), "abc…");
/// ```
pub fn one_line(text: &str, max: usize) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().nth(max).is_some() {
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server that answers every request with a redirect to `/secret-sink`.
    async fn redirecting_server() -> std::net::SocketAddr {
        use axum::response::Redirect;
        let app = axum::Router::new()
            .route(
                "/start",
                axum::routing::get(|| async { Redirect::temporary("/secret-sink") }),
            )
            .route("/secret-sink", axum::routing::get(|| async { "followed" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let addr = redirecting_server().await;
        let url = Url::parse(&format!("http://{addr}/start")).unwrap();
        let client = client(&url, Duration::from_secs(5), "mtids-http-test").unwrap();
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 307);
    }

    #[tokio::test]
    async fn errors_never_carry_the_url() {
        // A closed loopback port: the connection is refused.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = Url::parse(&format!(
            "http://127.0.0.1:{port}/bot123456:SECRET-TOKEN/sendMessage"
        ))
        .unwrap();
        let client = client(&url, Duration::from_secs(5), "mtids-http-test").unwrap();
        let error = client.get(url).send().await.unwrap_err();
        let text = describe_error(error);
        assert!(!text.contains("SECRET-TOKEN"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(!text.is_empty());
    }
}
