//! The connection task: owns the socket and the sans-IO [`Connection`] and drives it, the
//! way quinn's endpoint driver runs quinn-proto.
//!
//! One loop: take requests from the client handles, feed socket bytes and expired timers
//! to the connection, then drain it in the documented order (transmit, events, timeout),
//! routing each event to the command's channel by tag.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::client::Shared;
use super::transport::Transport;
use super::{Error, clock};
use crate::{
    CloseReason, Command, Connection, ConnectionError, Event, Reply, ReplyError, Tag, Trap,
};

/// What the connection task tells one command's stream.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// A `!re` row.
    Row(Reply),
    /// A `!trap`; `!done` follows.
    Trap(Trap),
    /// An unreadable reply; the command goes on.
    Malformed(ReplyError),
    /// `!empty`.
    Empty,
    /// `!done`, with `=ret=`: the end.
    Done(Option<Bytes>),
    /// The end, with an error.
    Failed(Error),
}

/// Where one command's deliveries go.
#[derive(Debug)]
pub(crate) struct Sink {
    pub(crate) tx: mpsc::UnboundedSender<Delivery>,
    /// Rows sent and not yet read by the stream.
    pub(crate) pending: Arc<AtomicUsize>,
    /// Most unread rows before the command is cancelled (`None`: no bound, the reader
    /// is `Client::call`, which reads eagerly).
    pub(crate) limit: Option<usize>,
}

/// A request from a client handle or stream.
#[derive(Debug)]
pub(crate) enum Request {
    /// Send a command; its deliveries go to `sink`.
    Send {
        id: u64,
        command: Command,
        /// `Some`: this command's own timeout instead of the connection's default.
        timeout: Option<Option<Duration>>,
        sink: Sink,
    },
    /// The stream with this id was dropped before its end.
    Cancel { id: u64 },
    /// `Client::close`: end the session, then report on `done`.
    Close { done: oneshot::Sender<()> },
}

struct Route {
    id: u64,
    command: String,
    /// The timeout in force, for the error message.
    timeout: Option<Duration>,
    sink: Sink,
}

/// A command waiting for room: the connection has `Config::max_in_flight` commands out.
struct Waiting {
    id: u64,
    command: Command,
    timeout: Option<Option<Duration>>,
    sink: Sink,
}

struct Driver {
    connection: Connection,
    routes: HashMap<Tag, Route>,
    tags: HashMap<u64, Tag>,
    /// Commands not sent yet, in the order they were made.
    waiting: VecDeque<Waiting>,
    login: Option<oneshot::Sender<Result<(), Error>>>,
    /// Bytes from `poll_transmit` not yet written.
    outgoing: BytesMut,
    /// Set when the connection is over (before or after the `Closed` event).
    end: Option<Error>,
}

const READ_CHUNK: usize = 64 * 1024;
/// How long closing may wait to write `/quit` (and pending `/cancel`s) out.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the connection until it closes or every handle is gone.
pub(crate) async fn run<S: Transport>(
    connection: Connection,
    stream: S,
    mut requests: mpsc::UnboundedReceiver<Request>,
    shared: Weak<Shared>,
    login: oneshot::Sender<Result<(), Error>>,
) {
    let mut driver = Driver {
        connection,
        routes: HashMap::new(),
        tags: HashMap::new(),
        waiting: VecDeque::new(),
        login: Some(login),
        outgoing: BytesMut::new(),
        end: None,
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut input = vec![0u8; READ_CHUNK];
    let mut close_waiters: Vec<oneshot::Sender<()>> = Vec::new();

    while driver.end.is_none() {
        driver.drain();
        if driver.end.is_some() {
            break;
        }
        let timer = driver
            .connection
            .poll_timeout()
            .map(tokio::time::Instant::from_std);
        tokio::select! {
            request = requests.recv() => match request {
                Some(Request::Send { id, command, timeout, sink }) => driver.send(id, command, timeout, sink),
                Some(Request::Cancel { id }) => driver.cancel(id),
                Some(Request::Close { done }) => {
                    close_waiters.push(done);
                    driver.close_locally(&mut writer).await;
                }
                None => driver.close_locally(&mut writer).await,
            },
            written = writer.write_buf(&mut driver.outgoing), if !driver.outgoing.is_empty() => {
                if let Err(e) = written {
                    driver.end = Some(Error::Io { during: "writing to the router", source: Arc::new(e) });
                }
            }
            read = reader.read(&mut input) => match read {
                Ok(0) => driver.connection.handle_eof(clock::now()),
                Ok(n) => driver.connection.handle_input(clock::now(), input.get(..n).unwrap_or_default()),
                Err(e) => driver.end = Some(Error::Io { during: "reading from the router", source: Arc::new(e) }),
            },
            () = sleep_until(timer), if timer.is_some() => driver.connection.handle_timeout(clock::now()),
        }
    }

    // Deliver what the connection said last (the `Closed` event among it), then fail
    // everything still waiting with the reason.
    driver.drain();
    let reason = driver.end.take().unwrap_or(Error::Disconnected);
    if let Some(shared) = shared.upgrade() {
        let _ = shared.closed.set(reason.clone());
    }
    if let Some(login) = driver.login.take() {
        let _ = login.send(Err(reason.clone()));
    }
    for (_, route) in driver.routes.drain() {
        let _ = route.sink.tx.send(Delivery::Failed(reason.clone()));
    }
    for waiting in driver.waiting.drain(..) {
        let _ = waiting.sink.tx.send(Delivery::Failed(reason.clone()));
    }
    requests.close();
    // Commands queued meanwhile never reached the connection: tell them why.
    while let Ok(request) = requests.try_recv() {
        if let Request::Send { sink, .. } = request {
            let _ = sink.tx.send(Delivery::Failed(reason.clone()));
        }
    }
    let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, writer.shutdown()).await;
    for done in close_waiters {
        let _ = done.send(());
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    /// The drain order of [`Connection`]: transmit, then events (the timer is re-read at
    /// the top of the loop).
    fn drain(&mut self) {
        while let Some(bytes) = self.connection.poll_transmit() {
            self.outgoing.extend_from_slice(&bytes);
        }
        while let Some(event) = self.connection.poll_event() {
            self.dispatch(event);
        }
        // Finished commands made room for waiting ones.
        self.send_waiting();
        // Lagging streams were cancelled while dispatching: their `/cancel` goes out too.
        while let Some(bytes) = self.connection.poll_transmit() {
            self.outgoing.extend_from_slice(&bytes);
        }
    }

    /// Sends the command now, or queues it while the connection has no room: a burst of
    /// commands (say, thousands of optimistic address-list adds) waits instead of failing.
    fn send(&mut self, id: u64, command: Command, timeout: Option<Option<Duration>>, sink: Sink) {
        let waiting = Waiting {
            id,
            command,
            timeout,
            sink,
        };
        if self.waiting.is_empty() && self.has_room() {
            self.send_now(waiting);
        } else {
            self.waiting.push_back(waiting);
        }
    }

    fn has_room(&self) -> bool {
        self.connection.in_flight() < self.connection.config().max_in_flight
    }

    fn send_waiting(&mut self) {
        while self.has_room() && !self.connection.is_closed() {
            let Some(next) = self.waiting.pop_front() else {
                break;
            };
            self.send_now(next);
        }
    }

    fn send_now(&mut self, waiting: Waiting) {
        let Waiting {
            id,
            command,
            timeout,
            sink,
        } = waiting;
        let path = String::from_utf8_lossy(command.path()).into_owned();
        let timeout = match timeout {
            Some(own) => own,
            None if command.is_streaming() => None,
            None => self.connection.config().command_timeout,
        };
        match self
            .connection
            .send_with_timeout(clock::now(), command, timeout)
        {
            Ok(tag) => {
                self.tags.insert(id, tag);
                self.routes.insert(
                    tag,
                    Route {
                        id,
                        command: path,
                        timeout,
                        sink,
                    },
                );
            }
            Err(ConnectionError::Closed(reason)) => {
                let _ = sink.tx.send(Delivery::Failed(close_error(&reason)));
            }
            Err(error) => {
                let _ = sink.tx.send(Delivery::Failed(Error::Command {
                    command: path,
                    error,
                }));
            }
        }
    }

    /// A stream was dropped before its end: cancel on the router, forget the route (the
    /// connection drops the late replies).
    fn cancel(&mut self, id: u64) {
        if let Some(tag) = self.tags.remove(&id) {
            self.routes.remove(&tag);
            // UnknownTag: it ended meanwhile; Closed: nothing to cancel any more.
            let _ = self.connection.cancel(clock::now(), tag);
        } else {
            // Not sent yet: it never will be.
            self.waiting.retain(|w| w.id != id);
        }
    }

    /// Sends `/quit`, writes what is pending, and stops.
    async fn close_locally<W: tokio::io::AsyncWrite + Unpin>(&mut self, writer: &mut W) {
        self.connection.close(clock::now());
        while let Some(bytes) = self.connection.poll_transmit() {
            self.outgoing.extend_from_slice(&bytes);
        }
        // Best effort, and bounded: the router may be gone or not reading.
        let flush = async {
            writer.write_all_buf(&mut self.outgoing).await?;
            writer.flush().await
        };
        let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, flush).await;
        self.end.get_or_insert(Error::Disconnected);
    }

    fn finish(&mut self, tag: Tag, last: Delivery) {
        if let Some(route) = self.routes.remove(&tag) {
            self.tags.remove(&route.id);
            let _ = route.sink.tx.send(last);
        }
    }

    fn deliver(&mut self, tag: Tag, delivery: Delivery) {
        let Some(route) = self.routes.get(&tag) else {
            return;
        };
        let lagging = matches!(delivery, Delivery::Row(_)) && {
            let unread = route.sink.pending.fetch_add(1, Ordering::Relaxed);
            route.sink.limit.is_some_and(|limit| unread >= limit)
        };
        if lagging {
            let error = Error::StreamLagged {
                command: route.command.clone(),
                limit: route.sink.limit.unwrap_or_default(),
            };
            self.finish(tag, Delivery::Failed(error));
            let _ = self.connection.cancel(clock::now(), tag);
        } else if route.sink.tx.send(delivery).is_err() {
            // The stream is gone and its Cancel request is on the way; cancel now.
            let id = route.id;
            self.cancel(id);
        }
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::LoggedIn => {
                if let Some(login) = self.login.take() {
                    let _ = login.send(Ok(()));
                }
            }
            Event::LoginFailed(error) => {
                let error = match error {
                    ConnectionError::LoginRefused { message } => Error::LoginRefused { message },
                    other => Error::Login(other),
                };
                if let Some(login) = self.login.take() {
                    let _ = login.send(Err(error));
                }
            }
            Event::Row { tag, reply } => self.deliver(tag, Delivery::Row(reply)),
            Event::Trap { tag, trap } => self.deliver(tag, Delivery::Trap(trap)),
            Event::Empty { tag } => self.deliver(tag, Delivery::Empty),
            Event::ReplyError { tag, error } => self.deliver(tag, Delivery::Malformed(error)),
            Event::Done { tag, ret } => self.finish(tag, Delivery::Done(ret)),
            Event::TimedOut { tag } => {
                if let Some(route) = self.routes.get(&tag) {
                    let error = Error::Timeout {
                        command: route.command.clone(),
                        after: route.timeout.unwrap_or_default(),
                    };
                    self.finish(tag, Delivery::Failed(error));
                }
            }
            // Only dropped streams are cancelled, and their routes are gone already.
            Event::Cancelled { tag } => self.finish(tag, Delivery::Done(None)),
            Event::Warning(warning) => {
                tracing::warn!(?warning, "RouterOS API: reply dropped");
            }
            Event::Closed(reason) => {
                self.end.get_or_insert(close_error(&reason));
            }
        }
    }
}

/// The error every command in flight gets when the connection ends for `reason`.
fn close_error(reason: &CloseReason) -> Error {
    match reason {
        CloseReason::Fatal { reason } => Error::Fatal {
            reason: reason.clone(),
        },
        CloseReason::PeerClosed { mid_sentence } => Error::Closed {
            mid_sentence: *mid_sentence,
        },
        CloseReason::Protocol(e) => Error::Protocol(e.clone()),
        _ => Error::Disconnected,
    }
}
