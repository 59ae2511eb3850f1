//! Opening the byte stream to the router: TCP, and TLS on top with feature `tls`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::Error;

/// A connected byte stream the connection task can own.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// `host:port`, with IPv6 literals in brackets, for messages.
pub(crate) fn display_addr(host: &str, port: u16) -> String {
    let bare = bare_host(host);
    if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    }
}

/// The host without the brackets of an IPv6 literal (`[::1]` -> `::1`).
pub(crate) fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Resolves `host` and opens a TCP connection, with Nagle off: commands are small and
/// latency matters more than packet count.
pub(crate) async fn tcp(host: &str, port: u16) -> Result<TcpStream, Error> {
    let stream = TcpStream::connect((bare_host(host), port))
        .await
        .map_err(|e| Error::Connect {
            addr: display_addr(host, port),
            source: Arc::new(e),
        })?;
    // Only a latency optimisation: a failure here changes nothing that matters.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Runs the TLS handshake over `tcp`.
#[cfg(feature = "tls")]
pub(crate) async fn tls(
    tcp: TcpStream,
    host: &str,
    config: &super::TlsConfig,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let (name, rustls_config) = config.rustls_config(bare_host(host))?;
    tokio_rustls::TlsConnector::from(rustls_config)
        .connect(name, tcp)
        .await
        .map_err(|e| super::tls::handshake_error(e, config.pinned_fingerprint().copied()))
}

/// A step of connecting, for the timeout message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    Tcp,
    #[cfg(feature = "tls")]
    Tls,
    Login,
}

impl Step {
    pub(crate) fn hint(self) -> &'static str {
        match self {
            Step::Tcp => {
                "the TCP connection was not accepted; check that the router is reachable and \
                 that no firewall drops the port"
            }
            #[cfg(feature = "tls")]
            Step::Tls => {
                "the TLS handshake did not finish: is this the API-SSL port (8729) and does \
                 `/ip service` give api-ssl a certificate?"
            }
            Step::Login => {
                "the router did not answer the login; is this the API port (8728, or 8729 \
                 with TLS)?"
            }
        }
    }
}

/// Runs one connect step under the overall connect deadline.
pub(crate) async fn within<T>(
    deadline: tokio::time::Instant,
    limit: Duration,
    addr: &str,
    step: Step,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::ConnectTimeout {
            addr: addr.to_owned(),
            after: limit,
            hint: step.hint(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_literals_are_bracketed_in_addresses_and_bare_for_connecting() {
        assert_eq!(display_addr("::1", 8728), "[::1]:8728");
        assert_eq!(display_addr("[::1]", 8728), "[::1]:8728");
        assert_eq!(display_addr("gw.example", 8729), "gw.example:8729");
        assert_eq!(bare_host("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(bare_host("192.0.2.1"), "192.0.2.1");
    }
}
