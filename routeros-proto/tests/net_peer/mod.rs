//! A scripted fake RouterOS peer on a real loopback socket, for the tokio client's tests.
//!
//! [`FakeRouter::start`] binds `127.0.0.1:0`, accepts connections and runs a script (an
//! async closure over a [`Peer`]) on each. The peer decodes what the client sends with the
//! crate's own codec and answers with whatever the script says, so tests can play any
//! router behaviour: old and new logins, traps, `!empty`, silence, a close mid-sentence.
//! A failed assertion inside a script is reported by [`FakeRouter::finish`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use routeros_proto::codec::{Decoder, encode_sentence};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Anything the peer can talk over: a TCP stream or a TLS stream on it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A script run on each accepted connection.
pub type Script = Box<dyn FnMut(Peer) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A listening fake router.
pub struct FakeRouter {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FakeRouter {
    /// Accepts one connection and runs `script` on it.
    pub async fn start<F, Fut>(script: F) -> Self
    where
        F: FnOnce(Peer) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut script = Some(script);
        Self::start_many(1, move |peer| {
            let s = script.take().expect("one connection");
            Box::pin(s(peer))
        })
        .await
    }

    /// Accepts `count` connections one after the other and runs `script` on each.
    pub async fn start_many<F>(count: usize, script: F) -> Self
    where
        F: FnMut(Peer) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + 'static,
    {
        Self::start_with(count, Box::new(script), |tcp| {
            Box::pin(async move { Box::new(tcp) as Box<dyn Io> })
        })
        .await
    }

    /// Accepts `count` connections, turns each into a stream with `wrap` (a TLS accept,
    /// for example) and runs `script` on it.
    pub async fn start_with<W>(count: usize, mut script: Script, wrap: W) -> Self
    where
        W: Fn(tokio::net::TcpStream) -> Pin<Box<dyn Future<Output = Box<dyn Io>> + Send>>
            + Send
            + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            for _ in 0..count {
                let (tcp, _) = listener.accept().await.unwrap();
                let io = wrap(tcp).await;
                script(Peer::new(io)).await;
            }
        });
        Self { addr, task }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Waits for the scripts to end and re-raises any assertion that failed in them.
    pub async fn finish(self) {
        match tokio::time::timeout(Duration::from_secs(10), self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("fake router task failed: {e}"),
            Err(_) => panic!("fake router script did not finish within 10 s"),
        }
    }
}

/// A command sentence the client sent, as words.
#[derive(Clone, PartialEq, Eq)]
pub struct Sent {
    /// The words, as bytes.
    pub words: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.words.iter().map(|w| String::from_utf8_lossy(w)))
            .finish()
    }
}

impl Sent {
    /// The command path (first word).
    pub fn path(&self) -> String {
        String::from_utf8_lossy(self.words.first().map(Vec::as_slice).unwrap_or_default())
            .into_owned()
    }

    /// The value of `=name=value` (or `.tag=value` for `name` = `.tag`).
    pub fn attr(&self, name: &str) -> Option<String> {
        let eq = format!("={name}=");
        let api = format!("{name}=");
        self.words.iter().skip(1).find_map(|w| {
            let w = String::from_utf8_lossy(w);
            w.strip_prefix(&eq)
                .or_else(|| {
                    name.starts_with('.')
                        .then(|| w.strip_prefix(&api))
                        .flatten()
                })
                .map(str::to_owned)
        })
    }

    /// The command's `.tag`.
    pub fn tag(&self) -> Option<String> {
        self.attr(".tag")
    }

    /// Whether one of the words is exactly `word`.
    pub fn has(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word.as_bytes())
    }
}

/// The router's side of one connection.
pub struct Peer {
    io: Box<dyn Io>,
    decoder: Decoder,
    buf: BytesMut,
}

impl Peer {
    fn new(io: Box<dyn Io>) -> Self {
        Self {
            io,
            decoder: Decoder::default(),
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// The next sentence from the client, or `None` when it closed the connection.
    pub async fn recv(&mut self) -> Option<Sent> {
        loop {
            if let Some(s) = self
                .decoder
                .decode(&mut self.buf)
                .expect("client sent a valid sentence")
            {
                return Some(Sent {
                    words: s.words().map(<[u8]>::to_vec).collect(),
                });
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next sentence, which must be the command `path`.
    pub async fn expect(&mut self, path: &str) -> Sent {
        let sent = self
            .recv()
            .await
            .unwrap_or_else(|| panic!("client closed; expected {path}"));
        assert_eq!(sent.path(), path, "unexpected command {sent:?}");
        sent
    }

    /// Sends one reply sentence made of `words`.
    pub async fn send(&mut self, words: &[&str]) {
        let mut out = Vec::new();
        encode_sentence(words.iter().map(|w| w.as_bytes()), &mut out).unwrap();
        self.send_raw(&out).await;
    }

    /// Sends one reply sentence for the command `to`: `words` plus its `.tag`, if it had one.
    pub async fn reply(&mut self, to: &Sent, words: &[&str]) {
        let tag = to.tag().map(|t| format!(".tag={t}"));
        let mut all: Vec<&str> = words.to_vec();
        if let Some(t) = &tag {
            all.push(t);
        }
        self.send(&all).await;
    }

    /// Writes bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // The client may have gone already; the script's later steps will notice.
        let _ = self.io.write_all(bytes).await;
        let _ = self.io.flush().await;
    }

    /// Plays a RouterOS 6.43+ login: `/login =name= =password=`, checked against the
    /// arguments; a wrong password gets the router's trap.
    pub async fn login_plain(&mut self, user: &str, password: &str) -> bool {
        let login = self.expect("/login").await;
        assert_eq!(login.attr("name").as_deref(), Some(user), "{login:?}");
        if login.attr("password").as_deref() == Some(password) {
            self.reply(&login, &["!done"]).await;
            true
        } else {
            self.reply(
                &login,
                &["!trap", "=message=invalid user name or password (6)"],
            )
            .await;
            self.reply(&login, &["!done"]).await;
            false
        }
    }

    /// Plays a pre-6.43 login: whatever the first `/login` carries, answer with a challenge;
    /// then check `=response=00<md5(0 password challenge)>`.
    pub async fn login_legacy(&mut self, user: &str, password: &str) -> bool {
        const CHALLENGE: &str = "93b438ec9b80057c06dd9fe67d56aa9a";
        let first = self.expect("/login").await;
        self.reply(&first, &["!done", &format!("=ret={CHALLENGE}")])
            .await;
        let second = self.expect("/login").await;
        assert_eq!(second.attr("name").as_deref(), Some(user), "{second:?}");
        let expected = legacy_response(password, CHALLENGE);
        if second.attr("response").as_deref() == Some(expected.as_str()) {
            self.reply(&second, &["!done"]).await;
            true
        } else {
            self.reply(&second, &["!trap", "=message=cannot log in"])
                .await;
            self.reply(&second, &["!done"]).await;
            false
        }
    }

    /// Waits until the client closes the connection, ignoring what it sends.
    pub async fn wait_closed(&mut self) {
        while self.recv().await.is_some() {}
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.io.shutdown().await;
    }
}

/// The pre-6.43 login response, computed here independently of the crate.
pub fn legacy_response(password: &str, challenge_hex: &str) -> String {
    use md5::{Digest, Md5};
    let challenge: Vec<u8> = (0..challenge_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&challenge_hex[i..i + 2], 16).unwrap())
        .collect();
    let mut md5 = Md5::new();
    md5.update([0u8]);
    md5.update(password.as_bytes());
    md5.update(&challenge);
    let digest = md5.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("00{hex}")
}
