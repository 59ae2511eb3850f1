//! The client handle, its configuration and the stream of rows.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};

use super::driver::{self, Backlog, Delivery, Request, Sink};
use super::transport::{self, Step, Transport};
use super::{Error, clock};
use crate::{Command, Config, Connection, LoginMethod, Reply};

/// Where and how to connect: host, port, credentials, login method, timeouts, TLS.
///
/// `Debug` never shows the password.
#[derive(Clone)]
pub struct ClientConfig {
    host: String,
    port: Option<u16>,
    user: String,
    password: Vec<u8>,
    login: LoginMethod,
    connect_timeout: Duration,
    stream_buffer: usize,
    stream_stall_timeout: Option<Duration>,
    protocol: Config,
    #[cfg(feature = "tls")]
    tls: Option<super::TlsConfig>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClientConfig");
        d.field("host", &self.host)
            .field("port", &self.port_or_default())
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("login", &self.login)
            .field("connect_timeout", &self.connect_timeout)
            .field("stream_buffer", &self.stream_buffer)
            .field("stream_stall_timeout", &self.stream_stall_timeout)
            .field("protocol", &self.protocol);
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls);
        d.finish()
    }
}

impl ClientConfig {
    /// Connect to `host` (name, IPv4 or IPv6 address, `[::1]` accepted) as `user`.
    ///
    /// Defaults: port 8728 (8729 with TLS), automatic login method, 10 s to connect and
    /// log in, the protocol defaults of [`Config`] (60 s per command; streaming commands
    /// never time out), 4096 unread replies per stream, 60 s before a stream whose reader
    /// takes nothing is failed.
    pub fn new(
        host: impl Into<String>,
        user: impl Into<String>,
        password: impl AsRef<[u8]>,
    ) -> Self {
        Self {
            host: host.into(),
            port: None,
            user: user.into(),
            password: password.as_ref().to_vec(),
            login: LoginMethod::Auto,
            connect_timeout: Duration::from_secs(10),
            stream_buffer: DEFAULT_STREAM_BUFFER,
            stream_stall_timeout: Some(Duration::from_secs(60)),
            protocol: Config::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The TCP port, if not the default for the transport.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How to log in. [`LoginMethod::Auto`] (the default) works with every RouterOS
    /// version; `Legacy` is the pre-6.43 challenge, `Plain` the 6.43+ method.
    #[must_use]
    pub fn login_method(mut self, method: LoginMethod) -> Self {
        self.login = method;
        self
    }

    /// How long connecting, the TLS handshake and the login may take together.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a command may take until its `!done` (`None`: forever). Streaming
    /// commands (`=follow=`, `=follow-only=`, `/listen`) have no timeout.
    #[must_use]
    pub fn command_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.protocol.command_timeout = timeout;
        self
    }

    /// All protocol settings (decoder limits, timeouts, commands in flight) at once.
    ///
    /// Commands beyond [`Config::max_in_flight`] are not refused: they wait, in order,
    /// until earlier ones finish (their timeout starts when they are sent).
    #[must_use]
    pub fn protocol(mut self, config: Config) -> Self {
        self.protocol = config;
        self
    }

    /// How many replies of one command (a [`RowStream`], or a [`Client::call`] whose
    /// future is not being polled) may wait unread. When they do, the client stops
    /// reading the socket until the reader takes some: TCP flow control then slows the
    /// router down, and memory stays bounded: at most this many replies per command in
    /// its stream, plus the replies decoded from one socket read (64 KiB of wire bytes)
    /// waiting for room in the connection task. Minimum 1; default 4096 (a few MiB of
    /// connection-table rows).
    ///
    /// The trade-off: while the socket is not read, replies to the *other* commands on
    /// the connection, queued behind in the socket, wait too (their timeouts stand still
    /// meanwhile, so they are not failed). They go on as soon as the slow reader reads
    /// on. A reader that takes nothing at all is handled by
    /// [`ClientConfig::stream_stall_timeout`].
    #[must_use]
    pub fn stream_buffer(mut self, replies: usize) -> Self {
        self.stream_buffer = replies.max(1);
        self
    }

    /// How long a command whose replies fill [`ClientConfig::stream_buffer`] may go
    /// without its reader taking a single one before it is cancelled and fails with
    /// [`Error::StreamStalled`], so that one stuck reader cannot hold up every other
    /// command on the connection for good. `None`: wait as long as it takes (fine when
    /// nothing else shares the connection, e.g. a shell piping into a pager). A reader
    /// that is slow but keeps reading never hits it. Default 60 s.
    #[must_use]
    pub fn stream_stall_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stream_stall_timeout = timeout;
        self
    }

    /// Use API-SSL, verifying the router's certificate as `tls` says. The default port
    /// becomes 8729.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: super::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    fn port_or_default(&self) -> u16 {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.port.unwrap_or(8729);
        }
        self.port.unwrap_or(8728)
    }
}

/// Replies of one command that may wait unread before the socket is no longer read.
const DEFAULT_STREAM_BUFFER: usize = 4_096;

/// State shared by every clone of a [`Client`] and by its streams.
#[derive(Debug)]
pub(crate) struct Shared {
    requests: mpsc::UnboundedSender<Request>,
    next_id: AtomicU64,
    stream_buffer: usize,
    /// Wakes the connection task when a full stream has made room.
    room: Arc<Notify>,
    /// Why the connection task stopped, set once when it does.
    pub(crate) closed: OnceLock<Error>,
}

impl Shared {
    fn closed_error(&self) -> Error {
        self.closed.get().cloned().unwrap_or(Error::Disconnected)
    }
}

/// A logged-in connection to a router.
///
/// Cloning is cheap: all clones share one connection, whose socket and protocol state
/// are owned by one background task, so several tasks can run commands at the same time
/// (each gets its own tag on the wire). The task ends when the last clone and the last
/// [`RowStream`] are dropped, or at [`Client::close`].
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    /// Connects, runs the TLS handshake if configured, and logs in.
    ///
    /// Must be called within a tokio runtime: the connection task is spawned on it.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::ConnectTimeout`], TLS errors, [`Error::LoginRefused`] or
    /// [`Error::Login`], or any connection error met while logging in.
    pub async fn connect(config: &ClientConfig) -> Result<Self, Error> {
        let port = config.port_or_default();
        let addr = transport::display_addr(&config.host, port);
        let limit = config.connect_timeout;
        let deadline = clock::deadline(limit);
        let tcp = transport::within(
            deadline,
            limit,
            &addr,
            Step::Tcp,
            transport::tcp(&config.host, port),
        )
        .await?;
        #[cfg(feature = "tls")]
        if let Some(tls) = &config.tls {
            let stream = transport::within(
                deadline,
                limit,
                &addr,
                Step::Tls,
                transport::tls(tcp, &config.host, tls),
            )
            .await?;
            return Self::start(stream, config, deadline, &addr).await;
        }
        Self::start(tcp, config, deadline, &addr).await
    }

    async fn start<S: Transport>(
        stream: S,
        config: &ClientConfig,
        deadline: tokio::time::Instant,
        addr: &str,
    ) -> Result<Self, Error> {
        let mut connection = Connection::new(config.protocol.clone());
        connection
            .login(clock::now(), &config.user, &config.password, config.login)
            .map_err(Error::Login)?;
        let (requests, inbox) = mpsc::unbounded_channel();
        let room = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            requests,
            next_id: AtomicU64::new(1),
            stream_buffer: config.stream_buffer,
            room: room.clone(),
            closed: OnceLock::new(),
        });
        let (login_tx, login_rx) = oneshot::channel();
        tokio::spawn(driver::run(
            connection,
            stream,
            inbox,
            Arc::downgrade(&shared),
            room,
            config.stream_stall_timeout,
            login_tx,
        ));
        let login = async {
            match login_rx.await {
                Ok(result) => result,
                Err(_) => Err(shared.closed_error()),
            }
        };
        // On any error `shared` is dropped here, which closes the request channel and
        // ends the connection task.
        transport::within(deadline, config.connect_timeout, addr, Step::Login, login).await?;
        Ok(Self { shared })
    }

    /// Runs a command to its end and returns its rows (or its trap as
    /// [`Error::Trap`]).
    ///
    /// Dropping the returned future before it finishes cancels the command on the router.
    /// Use [`Client::stream`] for commands that do not end by themselves (`=follow=`,
    /// `=follow-only=`, `/listen`): `call` on them only returns on an error.
    ///
    /// # Errors
    /// The command's trap, its timeout, an unreadable reply, or the connection's end.
    pub async fn call(&self, command: Command) -> Result<Response, Error> {
        self.collect(self.open(command, None)).await
    }

    /// Like [`Client::call`], with this command's own timeout instead of
    /// [`ClientConfig::command_timeout`] (`None`: wait forever). For example a short one
    /// for an address-list `add`, a long one for a 200k-row `print`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_with_timeout(
        &self,
        command: Command,
        timeout: Option<Duration>,
    ) -> Result<Response, Error> {
        self.collect(self.open(command, Some(timeout))).await
    }

    async fn collect(&self, mut rows: RowStream) -> Result<Response, Error> {
        let mut collected = Vec::new();
        let mut first_error = None;
        while let Some(item) = rows.next().await {
            match item {
                Ok(row) => collected.push(row),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(Response {
                rows: collected,
                ret: rows.ret.take(),
                empty: rows.empty,
            }),
        }
    }

    /// Sends a command and returns its rows as they arrive.
    ///
    /// The stream ends after the command's `!done`. A `!trap` is yielded as
    /// [`Error::Trap`] (the stream then ends with the command's `!done`); a connection
    /// error or timeout is yielded last. Dropping the stream before its end sends
    /// `/cancel` for the command.
    ///
    /// Read it at any pace: rows wait in the stream until read, at most
    /// [`ClientConfig::stream_buffer`] of them; then the client stops reading the socket
    /// until the stream is read on (backpressure: nothing fails, memory stays bounded).
    /// Other commands on the connection wait meanwhile; a stream not read at all for
    /// [`ClientConfig::stream_stall_timeout`] fails with [`Error::StreamStalled`].
    pub fn stream(&self, command: Command) -> RowStream {
        self.open(command, None)
    }

    fn open(&self, command: Command, timeout: Option<Option<Duration>>) -> RowStream {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let path = String::from_utf8_lossy(command.path()).into_owned();
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::new(
            self.shared.stream_buffer,
            self.shared.room.clone(),
        ));
        let sink = Sink {
            tx,
            backlog: backlog.clone(),
        };
        let sent = self.shared.requests.send(Request::Send {
            id,
            command,
            timeout,
            sink,
        });
        RowStream {
            id,
            command: path,
            rx,
            backlog,
            shared: self.shared.clone(),
            state: if sent.is_ok() {
                StreamState::Running
            } else {
                StreamState::Failed(Some(self.shared.closed_error()))
            },
            ret: None,
            empty: false,
        }
    }

    /// Ends the session: sends `/quit` and stops the connection task. Commands still in
    /// flight (on any clone) end with [`Error::Disconnected`]. Waits until the task has
    /// stopped.
    pub async fn close(&self) {
        let (done, stopped) = oneshot::channel();
        if self.shared.requests.send(Request::Close { done }).is_ok() {
            // An error only means the task stopped on its own meanwhile.
            let _ = stopped.await;
        }
    }

    /// True once the connection has ended (the router closed it, `!fatal`, an I/O error,
    /// or [`Client::close`]); every later command fails. Connect again to go on.
    pub fn is_closed(&self) -> bool {
        self.shared.requests.is_closed()
    }
}

/// The result of [`Client::call`]: the rows and what `!done` carried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The `!re` rows, in order.
    pub rows: Vec<Reply>,
    /// `=ret=` of the `!done`, e.g. the id of an item that `add` created.
    pub ret: Option<Bytes>,
    /// True if the router said `!empty` (RouterOS 7.18+: no data).
    pub empty: bool,
}

impl Response {
    /// `=ret=` decoded lossily as UTF-8.
    pub fn ret_str(&self) -> Option<String> {
        self.ret
            .as_deref()
            .map(|r| String::from_utf8_lossy(r).into_owned())
    }
}

#[derive(Debug)]
enum StreamState {
    Running,
    /// Ended normally.
    Done,
    /// Ending with this error (yielded once), then done.
    Failed(Option<Error>),
}

/// The rows of one command, as a [`futures_core::Stream`] (also readable with the inherent
/// [`RowStream::next`]). Made by [`Client::stream`].
///
/// Dropping it before the command's end cancels the command on the router
/// (`/cancel =tag=T`).
pub struct RowStream {
    id: u64,
    command: String,
    rx: mpsc::UnboundedReceiver<Delivery>,
    backlog: Arc<Backlog>,
    shared: Arc<Shared>,
    state: StreamState,
    ret: Option<Bytes>,
    empty: bool,
}

impl fmt::Debug for RowStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowStream")
            .field("command", &self.command)
            .field("state", &self.state)
            .field("buffered", &self.backlog.unread())
            .finish_non_exhaustive()
    }
}

impl RowStream {
    /// The next row, `Some(Err(_))` for a trap or error, `None` after the end.
    pub async fn next(&mut self) -> Option<Result<Reply, Error>> {
        std::future::poll_fn(|cx| self.poll_row(cx)).await
    }

    /// `=ret=` of the command's `!done`, once the stream has ended.
    pub fn ret(&self) -> Option<&Bytes> {
        self.ret.as_ref()
    }

    /// True if the router answered `!empty` (no data).
    pub fn is_empty_reply(&self) -> bool {
        self.empty
    }

    /// True once the stream has ended (after `!done` or an error).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, StreamState::Done | StreamState::Failed(None))
    }

    /// The command's path.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Replies received and not read yet. Never more than
    /// [`ClientConfig::stream_buffer`]: past it the client stops reading the socket.
    pub fn buffered(&self) -> usize {
        self.backlog.unread()
    }

    fn poll_row(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Reply, Error>>> {
        loop {
            match &mut self.state {
                StreamState::Done => return Poll::Ready(None),
                StreamState::Failed(e) => return Poll::Ready(e.take().map(Err)),
                StreamState::Running => {}
            }
            let Some(delivery) = std::task::ready!(self.rx.poll_recv(cx)) else {
                // The task stopped without ending this command: the connection is gone.
                self.state = StreamState::Failed(Some(self.shared.closed_error()));
                continue;
            };
            if !matches!(delivery, Delivery::Done(_) | Delivery::Failed(_)) {
                self.backlog.taken();
            }
            match delivery {
                Delivery::Row(row) => return Poll::Ready(Some(Ok(row))),
                Delivery::Trap(trap) => {
                    return Poll::Ready(Some(Err(Error::Trap {
                        command: self.command.clone(),
                        trap,
                    })));
                }
                Delivery::Malformed(error) => {
                    return Poll::Ready(Some(Err(Error::MalformedReply {
                        command: self.command.clone(),
                        error,
                    })));
                }
                Delivery::Empty => self.empty = true,
                Delivery::Done(ret) => {
                    self.ret = ret;
                    self.state = StreamState::Done;
                }
                Delivery::Failed(error) => self.state = StreamState::Failed(Some(error)),
            }
        }
    }
}

impl futures_core::Stream for RowStream {
    type Item = Result<Reply, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_row(cx)
    }
}

impl Drop for RowStream {
    fn drop(&mut self) {
        if matches!(self.state, StreamState::Running) {
            // If the task is gone there is nothing left to cancel.
            let _ = self.shared.requests.send(Request::Cancel { id: self.id });
        }
    }
}
