//! HTTP plumbing shared by the bouncer and the watcher: a rustls (ring) client, bounded
//! bodies, errors without URLs.

use std::time::Duration;

use reqwest::{Client, Response, Url};

use crate::error::CrowdsecError;

/// Builds a client for the LAPI at `url`: the policy both outbound crates share (rustls,
/// system trust store for https, no redirects; see [`mtids_http::client`]).
pub(crate) fn build_client(url: &Url, timeout: Duration) -> Result<Client, CrowdsecError> {
    mtids_http::client(
        url,
        timeout,
        concat!("mtids-crowdsec/", env!("CARGO_PKG_VERSION")),
    )
    .map_err(|e| CrowdsecError::Client {
        reason: e.to_string(),
    })
}

/// `base` joined with an API path (`v1/decisions/stream`), keeping a base path prefix.
pub(crate) fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
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
                    reason: mtids_http::describe_error(e),
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
pub(crate) use mtids_http::one_line as bounded;
