//! A raw API client for the tests, built on routeros-proto's codec.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use routeros_proto::codec::{Decoder, encode_sentence};
use routeros_sim::{
    Router, RouterConfig, SelfSignedCertificate, Server, ServerConfig, TlsIdentity,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One reply sentence as text words.
pub type Words = Vec<String>;

pub fn attr<'a>(sentence: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("={name}=");
    sentence
        .iter()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
}

pub fn tag_of(sentence: &[String]) -> Option<&str> {
    sentence.iter().find_map(|w| w.strip_prefix(".tag="))
}

pub struct Client {
    io: Box<dyn Io>,
    decoder: Decoder,
    buf: BytesMut,
}

pub const WAIT: Duration = Duration::from_secs(5);

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client::over(Box::new(stream))
    }

    pub async fn connect_tls(addr: SocketAddr, cert: &SelfSignedCertificate) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert_der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let stream = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, stream).await.unwrap();
        Client::over(Box::new(tls))
    }

    pub fn over(io: Box<dyn Io>) -> Client {
        Client {
            io,
            decoder: Decoder::default(),
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, words: &[&str]) {
        let mut out = BytesMut::new();
        encode_sentence(words.iter().map(|w| w.as_bytes()), &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// The next sentence, or `None` on EOF. Panics after 5 s of silence.
    pub async fn recv(&mut self) -> Option<Words> {
        tokio::time::timeout(WAIT, self.recv_inner())
            .await
            .expect("no reply within 5 s")
    }

    /// The next sentence if one arrives within `wait`.
    pub async fn try_recv(&mut self, wait: Duration) -> Result<Option<Words>, ()> {
        tokio::time::timeout(wait, self.recv_inner())
            .await
            .map_err(|_| ())
    }

    async fn recv_inner(&mut self) -> Option<Words> {
        loop {
            if let Some(s) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(
                    s.words()
                        .map(|w| String::from_utf8_lossy(w).into_owned())
                        .collect(),
                );
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Sends an untagged command and collects its replies up to and including `!done`.
    pub async fn call(&mut self, words: &[&str]) -> Vec<Words> {
        self.send(words).await;
        let mut out = Vec::new();
        loop {
            let s = self.recv().await.expect("connection closed before !done");
            let done = s[0] == "!done";
            out.push(s);
            if done {
                return out;
            }
        }
    }

    /// A round trip on this connection: when it returns, every command sent before it is
    /// running (a router takes one connection's commands in order). Returns the sentences
    /// of other commands that arrived meanwhile.
    pub async fn sync(&mut self) -> Vec<Words> {
        self.send(&["/system/identity/print", ".tag=sync"]).await;
        let mut other = Vec::new();
        loop {
            let s = self.recv().await.expect("connection closed during sync");
            if tag_of(&s) == Some("sync") {
                if s[0] == "!done" {
                    return other;
                }
            } else {
                other.push(s);
            }
        }
    }

    pub async fn login(&mut self, user: &str, password: &str) {
        let reply = self
            .call(&[
                "/login",
                &format!("=name={user}"),
                &format!("=password={password}"),
            ])
            .await;
        assert_eq!(reply, vec![vec!["!done".to_owned()]], "login failed");
    }
}

/// A router with user `admin` / `secret` served on a free loopback port.
pub async fn start(config: RouterConfig) -> (Router, Server) {
    let router = Router::new(config);
    router.add_user(routeros_sim::User::new(
        "admin",
        "secret",
        routeros_sim::Policies::FULL,
    ));
    let server = Server::bind(
        router.clone(),
        ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    (router, server)
}

pub async fn start_tls(config: RouterConfig) -> (Router, Server, SelfSignedCertificate) {
    let router = Router::new(config);
    router.add_user(routeros_sim::User::new(
        "admin",
        "secret",
        routeros_sim::Policies::FULL,
    ));
    let cert = SelfSignedCertificate::generate(&["localhost", "127.0.0.1"]).unwrap();
    let server = Server::bind(
        router.clone(),
        ServerConfig::tls(
            "127.0.0.1:0".parse().unwrap(),
            TlsIdentity::SelfSigned(cert.clone()),
        ),
    )
    .await
    .unwrap();
    (router, server, cert)
}

/// Connected and logged in as admin.
pub async fn admin(server: &Server) -> Client {
    let mut c = Client::connect(server.local_addr()).await;
    c.login("admin", "secret").await;
    c
}

/// Serves an existing router (e.g. one on a manual clock) with admin / secret.
pub async fn serve(router: &Router) -> Server {
    router.add_user(routeros_sim::User::new(
        "admin",
        "secret",
        routeros_sim::Policies::FULL,
    ));
    Server::bind(
        router.clone(),
        ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap()
}
