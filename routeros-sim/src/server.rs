//! The API server: TCP or TLS on a loopback (or any) address, one task per session,
//! tagged commands answered concurrently, follows running beside other commands.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{BufMut, BytesMut};
use routeros_proto::codec::{Decoder, Limits};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::SimError;
use crate::logline::Service;
use crate::router::{Control, Outcome, Router, Session};
use crate::sentence::{Request, Sentence, TrapCategory};
use crate::tls::{TlsIdentity, server_config};

/// Where and how the server listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks a free port (see [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// Serve API-SSL with this certificate instead of plain API.
    pub tls: Option<TlsIdentity>,
}

impl ServerConfig {
    /// Plain API on `listen`.
    pub fn plain(listen: SocketAddr) -> Self {
        Self { listen, tls: None }
    }

    /// API-SSL on `listen` with `identity`.
    pub fn tls(listen: SocketAddr, identity: TlsIdentity) -> Self {
        Self {
            listen,
            tls: Some(identity),
        }
    }
}

/// A running API server. Dropping it stops accepting (open sessions go on until they end);
/// [`Server::shutdown`] also waits for the accept loop to finish.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// Commands a client may send before logging in (a router limits unauthenticated peers).
const MAX_SENTENCES_BEFORE_LOGIN: u32 = 32;

impl Server {
    /// Binds and starts serving `router`. Must be called inside a tokio runtime.
    pub async fn bind(router: Router, config: ServerConfig) -> Result<Self, SimError> {
        let acceptor = match &config.tls {
            Some(identity) => Some(tokio_rustls::TlsAcceptor::from(server_config(
                identity, &router,
            )?)),
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, peer)) = accepted else {
                            // Out of file descriptors and the like: back off instead of spinning.
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        };
                        let service = if acceptor.is_some() { Service::ApiSsl } else { Service::Api };
                        if !router.open_session(service) {
                            // Service disabled or max-sessions reached: the router closes
                            // the new connection.
                            drop(stream);
                            continue;
                        }
                        let _ = stream.set_nodelay(true);
                        let router = router.clone();
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let mut session = Session::new(peer.ip(), service);
                            match acceptor {
                                Some(acceptor) => {
                                    if let Ok(tls) = acceptor.accept(stream).await {
                                        serve_connection(&router, &mut session, tls).await;
                                    }
                                }
                                None => serve_connection(&router, &mut session, stream).await,
                            }
                            router.close_session(&session);
                        });
                    }
                }
            }
        });
        Ok(Self {
            local_addr,
            stop,
            task: Some(task),
        })
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting new connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// What the session task hands to its writer.
enum Out {
    /// Sentences to send, not before `due` (latency fault).
    Sentences(Option<Instant>, Vec<Sentence>),
    /// Send an optional `!fatal`, then close.
    Close(Option<Sentence>),
}

fn pre_login_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_word_len = 4 << 10;
    limits.max_words = 64;
    limits.max_sentence_len = 16 << 10;
    limits
}

async fn serve_connection<S>(router: &Router, session: &mut Session, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Out>(1024);
    let mut writer_task = tokio::spawn(write_loop(writer, rx, router.clone()));
    let mut control = router.control();
    let mut decoder = Decoder::new(pre_login_limits());
    let mut logged_in = false;
    let mut before_login: u32 = 0;
    let mut inbuf = BytesMut::with_capacity(64 << 10);
    let mut follows: Follows = HashMap::new();

    'session: loop {
        tokio::select! {
            biased;
            event = control.recv() => match event {
                Ok(Control::Disconnect) => {
                    session.mark_lost();
                    break 'session;
                }
                Ok(Control::Fatal(reason)) => {
                    let _ = tx.send(Out::Close(Some(Sentence::fatal(reason)))).await;
                    break 'session;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break 'session,
            },
            _ = &mut writer_task => {
                // The writer stopped (drop-after fault, peer gone): end the session.
                abort_all(&mut follows).await;
                return;
            }
            read = reader.read_buf(&mut inbuf) => {
                match read {
                    Ok(0) | Err(_) => break 'session,
                    Ok(_) => {}
                }
                loop {
                    if !logged_in && session.user().is_some() && !decoder.is_mid_sentence() {
                        // Logged in: lift the bounds for unauthenticated peers.
                        logged_in = true;
                        decoder = Decoder::new(Limits::default());
                    }
                    let sentence = match decoder.decode(&mut inbuf) {
                        Ok(Some(s)) => s,
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Out::Close(Some(Sentence::fatal(e.to_string())))).await;
                            break 'session;
                        }
                    };
                    let Some(request) = Request::from_words(sentence.words()) else { continue };
                    if !logged_in {
                        before_login += 1;
                        if before_login > MAX_SENTENCES_BEFORE_LOGIN {
                            let fatal = Sentence::fatal("too many commands before login");
                            let _ = tx.send(Out::Close(Some(fatal))).await;
                            break 'session;
                        }
                    }
                    if router.stalled() {
                        continue; // a hung router reads and never answers
                    }
                    let due = {
                        let latency = router.latency();
                        (!latency.is_zero()).then(|| Instant::now() + latency)
                    };
                    match router.execute(session, &request) {
                        Outcome::Reply(sentences) => {
                            router.count_sent(&request.command, &sentences);
                            if tx.send(Out::Sentences(due, sentences)).await.is_err() {
                                break 'session;
                            }
                        }
                        Outcome::Follow { initial, follow } => {
                            router.count_sent(&request.command, &initial);
                            let sent_rows = Arc::new(AtomicBool::new(initial.iter().any(|s| s.reply_word() == b"!re")));
                            if !initial.is_empty() && tx.send(Out::Sentences(due, initial)).await.is_err() {
                                break 'session;
                            }
                            let key = follow.tag().map(<[u8]>::to_vec);
                            let task = tokio::spawn(run_follow(router.clone(), follow, tx.clone(), Arc::clone(&sent_rows)));
                            if let Some((old, _)) = follows.insert(key, (task, sent_rows)) {
                                old.abort();
                            }
                        }
                        Outcome::Cancel { target, tag } => {
                            let mut out = Vec::new();
                            let targets: Vec<Option<Vec<u8>>> = match &target {
                                Some(t) => vec![Some(t.clone())],
                                None => follows.keys().cloned().collect(),
                            };
                            let mut found = false;
                            for key in targets {
                                if let Some((task, sent_rows)) = follows.remove(&key) {
                                    found = true;
                                    task.abort();
                                    let _ = task.await; // nothing of it may follow the trap
                                    out.push(Sentence::trap(Some(TrapCategory::Interrupted), "interrupted").with_tag(key.as_deref()));
                                    // A cancelled follow that never sent a row had no data: 7.24
                                    // answers trap, `!empty`, `!done` (ROUTEROS.md §5); `!empty`
                                    // is the 7.18+ word for a command without data (§1).
                                    if !sent_rows.load(Ordering::Relaxed) && router.config().sends_empty() {
                                        out.push(Sentence::empty().with_tag(key.as_deref()));
                                    }
                                    out.push(Sentence::done().with_tag(key.as_deref()));
                                }
                            }
                            if target.is_some() && !found {
                                out.push(Sentence::trap(Some(TrapCategory::MissingItem), "unknown command tag").with_tag(tag.as_deref()));
                            }
                            out.push(Sentence::done().with_tag(tag.as_deref()));
                            if tx.send(Out::Sentences(due, out)).await.is_err() {
                                break 'session;
                            }
                        }
                        Outcome::Close(fatal) => {
                            let _ = tx.send(Out::Close(Some(fatal))).await;
                            break 'session;
                        }
                    }
                }
            }
        }
    }
    abort_all(&mut follows).await;
    drop(tx);
    // Let the writer flush what is queued (a `!fatal`, the last replies), unless the
    // session ended by a disconnect, which drops everything.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut writer_task).await;
    writer_task.abort();
}

/// The running follows of a session by tag, each with whether it has sent a row yet.
type Follows = HashMap<Option<Vec<u8>>, (JoinHandle<()>, Arc<AtomicBool>)>;

async fn abort_all(follows: &mut Follows) {
    for (_, (task, _)) in follows.drain() {
        task.abort();
        let _ = task.await;
    }
}

async fn run_follow(
    router: Router,
    mut follow: crate::router::Follow,
    tx: mpsc::Sender<Out>,
    sent_rows: Arc<AtomicBool>,
) {
    let mut changes = router.change_watch();
    loop {
        if !router.stalled() {
            let rows = router.poll_follow(&mut follow);
            if !rows.is_empty() {
                sent_rows.store(true, Ordering::Relaxed);
                if tx.send(Out::Sentences(None, rows)).await.is_err() {
                    return;
                }
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

const FLUSH_AT: usize = 256 << 10;

async fn write_loop<W>(mut writer: W, mut rx: mpsc::Receiver<Out>, router: Router)
where
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(FLUSH_AT);
    let mut sent: u64 = 0;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            match out {
                Out::Sentences(due, sentences) => {
                    if let Some(due) = due {
                        if due > Instant::now() {
                            if flush(&mut writer, &mut buf).await.is_err() {
                                return;
                            }
                            tokio::time::sleep_until(due).await;
                        }
                    }
                    for sentence in &sentences {
                        buf.extend_from_slice(sentence.wire());
                        buf.put_u8(0);
                        sent += 1;
                        if router.drop_after().is_some_and(|n| sent >= n) {
                            let _ = flush(&mut writer, &mut buf).await;
                            let _ = writer.shutdown().await;
                            return;
                        }
                        if buf.len() >= FLUSH_AT && flush(&mut writer, &mut buf).await.is_err() {
                            return;
                        }
                    }
                }
                Out::Close(fatal) => {
                    if let Some(fatal) = fatal {
                        buf.extend_from_slice(fatal.wire());
                        buf.put_u8(0);
                    }
                    let _ = flush(&mut writer, &mut buf).await;
                    let _ = writer.shutdown().await;
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        if flush(&mut writer, &mut buf).await.is_err() {
            return;
        }
    }
}

async fn flush<W: AsyncWrite + Unpin>(writer: &mut W, buf: &mut BytesMut) -> std::io::Result<()> {
    if !buf.is_empty() {
        writer.write_all(buf).await?;
        buf.clear();
    }
    writer.flush().await
}
