//! The HTTP plumbing both notifiers share: a rustls (ring) client and the retry loop.
//!
//! Request URLs may hold secrets (Telegram puts the bot token in the path, Slack and
//! Discord webhook URLs are keys), so nothing here logs a URL, and client errors are
//! turned into text only after `without_url()`.

use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};

use crate::config::RetryPolicy;
use crate::error::AlertError;
use crate::render::bounded;

/// How much of a response body is read to explain an error.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Builds a client for requests to `url` only: the policy both outbound crates share
/// (rustls, system trust store for https, no redirects; see [`mtids_http::client`]).
pub(crate) fn build_client(
    notifier: &str,
    url: &Url,
    timeout: Duration,
) -> Result<Client, AlertError> {
    mtids_http::client(
        url,
        timeout,
        concat!("mtids-alert/", env!("CARGO_PKG_VERSION")),
    )
    .map_err(|e| AlertError::Client {
        notifier: notifier.to_owned(),
        reason: e.to_string(),
    })
}

/// Parses and checks an endpoint URL; the error never repeats the URL (it may be a secret).
pub(crate) fn parse_url(field: &'static str, text: &str) -> Result<Url, AlertError> {
    let url = Url::parse(text).map_err(|e| AlertError::InvalidConfig {
        field,
        reason: format!("not a valid URL ({e})"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AlertError::InvalidConfig {
            field,
            reason: format!("scheme must be https or http, not {:?}", url.scheme()),
        });
    }
    if url.host().is_none() {
        return Err(AlertError::InvalidConfig {
            field,
            reason: "the URL has no host".to_owned(),
        });
    }
    Ok(url)
}

/// Whether the URL points at this machine.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some(host) if host.eq_ignore_ascii_case("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// What a notifier makes of a non-success answer.
pub(crate) struct ErrorAnswer {
    /// The service's explanation, one line.
    pub(crate) description: String,
    /// The wait it asked for, if any.
    pub(crate) retry_after: Option<Duration>,
}

/// Sends the request `make` builds until it succeeds, is refused, or attempts run out.
///
/// `explain` reads a non-2xx answer (status and at most 16 KiB of body).
pub(crate) async fn send_with_retry(
    notifier: &str,
    policy: &RetryPolicy,
    make: impl Fn() -> RequestBuilder,
    explain: impl Fn(StatusCode, Option<Duration>, &[u8]) -> ErrorAnswer,
) -> Result<(), AlertError> {
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let wait = match make().send().await {
            Ok(response) if response.status().is_success() => {
                if attempt > 1 {
                    tracing::info!(notifier, attempt, "delivered after retrying");
                }
                return Ok(());
            }
            Ok(response) => {
                let status = response.status();
                let header_wait = retry_after_header(&response);
                let body = read_bounded(response).await;
                let answer = explain(status, header_wait, &body);
                if status == StatusCode::TOO_MANY_REQUESTS {
                    let wait = answer
                        .retry_after
                        .unwrap_or_else(|| policy.backoff(attempt));
                    if wait > policy.max_retry_after {
                        let error = AlertError::RateLimited {
                            notifier: notifier.to_owned(),
                            retry_after: wait,
                            max: policy.max_retry_after,
                        };
                        tracing::error!(notifier, %error, "giving up on a notification");
                        return Err(error);
                    }
                    tracing::warn!(notifier, attempt, retry_after = ?wait, "rate limited by the service");
                    Retry {
                        wait,
                        reason: format!("HTTP 429: {}", answer.description),
                    }
                } else if status.is_server_error() {
                    Retry {
                        wait: policy.backoff(attempt),
                        reason: format!("HTTP {}: {}", status.as_u16(), answer.description),
                    }
                } else {
                    let error = AlertError::Rejected {
                        notifier: notifier.to_owned(),
                        status: status.as_u16(),
                        description: answer.description,
                    };
                    tracing::error!(notifier, %error, "notification refused, not retrying");
                    return Err(error);
                }
            }
            Err(error) => Retry {
                wait: policy.backoff(attempt),
                reason: mtids_http::describe_error(error),
            },
        };
        if attempt >= policy.max_attempts {
            let error = AlertError::Unavailable {
                notifier: notifier.to_owned(),
                attempts: attempt,
                last_error: wait.reason,
            };
            tracing::error!(notifier, %error, "giving up on a notification");
            return Err(error);
        }
        tracing::warn!(notifier, attempt, error = %wait.reason, backoff = ?wait.wait, "notification failed, retrying");
        tokio::time::sleep(wait.wait).await;
    }
}

struct Retry {
    wait: Duration,
    reason: String,
}

/// `Retry-After: <seconds>` (the HTTP-date form is not used by the services we talk to).
fn retry_after_header(response: &Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let secs: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

/// Reads at most `MAX_ERROR_BODY` bytes: an error body only explains, it must not cost memory.
async fn read_bounded(mut response: Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ERROR_BODY.saturating_sub(body.len());
        body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    body
}

/// A response body as one bounded line of text.
pub(crate) fn body_as_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return "(empty body)".to_owned();
    }
    bounded(text.trim(), 300)
}
