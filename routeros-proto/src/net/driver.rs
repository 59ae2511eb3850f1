//! The connection task: owns the socket and the sans-IO [`Connection`] and drives it, the
//! way quinn's endpoint driver runs quinn-proto.
//!
//! One loop: take requests from the client handles, feed socket bytes and expired timers
//! to the connection, then drain it in the documented order (transmit, events, timeout),
//! routing each event to the command's channel by tag.
//!
//! Backpressure: each command's channel holds at most `ClientConfig::stream_buffer`
//! replies. A reply for a full channel is parked here (with every later reply of that
//! command, to keep their order) and the task stops reading the socket until the stream
//! makes room; replies of other commands decoded from the same read still go through.
//! While reading is paused the connection's timers stand still
//! ([`Connection::pause_reading`]). A stream whose reader takes nothing for
//! `ClientConfig::stream_stall_timeout` is failed and cancelled, so that one stuck reader
//! cannot hold every other command on the connection forever.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot};

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

impl Delivery {
    /// The last delivery of a command: always let through, never counted in the backlog.
    fn is_final(&self) -> bool {
        matches!(self, Delivery::Done(_) | Delivery::Failed(_))
    }
}

/// Where one command's deliveries go.
#[derive(Debug)]
pub(crate) struct Sink {
    pub(crate) tx: mpsc::UnboundedSender<Delivery>,
    pub(crate) backlog: Arc<Backlog>,
}

/// How many deliveries wait in one command's channel, shared by the connection task
/// (which only adds while there is room) and the stream (which takes).
#[derive(Debug)]
pub(crate) struct Backlog {
    /// Deliveries sent and not read yet (the final one is not counted).
    unread: AtomicUsize,
    /// Deliveries read so far: the stream's progress, for the stall timeout.
    read: AtomicU64,
    /// Most unread deliveries at once.
    limit: usize,
    /// Wakes the connection task once the stream has made room.
    room: Arc<Notify>,
}

impl Backlog {
    pub(crate) fn new(limit: usize, room: Arc<Notify>) -> Self {
        Self {
            unread: AtomicUsize::new(0),
            read: AtomicU64::new(0),
            limit: limit.max(1),
            room,
        }
    }

    /// Deliveries waiting to be read.
    pub(crate) fn unread(&self) -> usize {
        self.unread.load(Ordering::Acquire)
    }

    fn is_full(&self) -> bool {
        self.unread() >= self.limit
    }

    fn added(&self) {
        self.unread.fetch_add(1, Ordering::AcqRel);
    }

    /// The stream read one (non-final) delivery. Wakes the connection task when the
    /// backlog falls to half the limit: a full channel then takes a batch, not one row.
    pub(crate) fn taken(&self) {
        let before = self.unread.fetch_sub(1, Ordering::AcqRel);
        self.read.fetch_add(1, Ordering::AcqRel);
        if before.saturating_sub(1) == self.limit / 2 {
            self.room.notify_one();
        }
    }

    fn progress(&self) -> u64 {
        self.read.load(Ordering::Acquire)
    }
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

/// Replies of one command held back because its channel is full.
struct Parked {
    deliveries: VecDeque<Delivery>,
    /// The stream's read count when it was last seen moving.
    progress: u64,
    /// When that was.
    since: tokio::time::Instant,
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
    /// Replies waiting for room in their stream; the socket is not read while any wait.
    parked: HashMap<Tag, Parked>,
    /// How long a parked stream's reader may take nothing before the stream is failed.
    stall_timeout: Option<Duration>,
    /// Set when the connection is over (before or after the `Closed` event).
    end: Option<Error>,
}

const READ_CHUNK: usize = 64 * 1024;
/// The read buffer a connection starts with; it doubles up to [`READ_CHUNK`] while reads
/// fill it (a big print), so thousands of mostly idle connections (a fleet) do not each
/// hold 64 KiB.
const FIRST_READ_CHUNK: usize = 4 * 1024;
/// How long closing may wait to write `/quit` (and pending `/cancel`s) out.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the connection until it closes or every handle is gone.
pub(crate) async fn run<S: Transport>(
    connection: Connection,
    stream: S,
    mut requests: mpsc::UnboundedReceiver<Request>,
    shared: Weak<Shared>,
    room: Arc<Notify>,
    stall_timeout: Option<Duration>,
    login: oneshot::Sender<Result<(), Error>>,
) {
    let mut driver = Driver {
        connection,
        routes: HashMap::new(),
        tags: HashMap::new(),
        waiting: VecDeque::new(),
        login: Some(login),
        outgoing: BytesMut::new(),
        parked: HashMap::new(),
        stall_timeout,
        end: None,
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut input = vec![0u8; FIRST_READ_CHUNK];
    let mut close_waiters: Vec<oneshot::Sender<()>> = Vec::new();

    while driver.end.is_none() {
        driver.drain();
        if driver.end.is_some() {
            break;
        }
        let reading = driver.parked.is_empty();
        if reading {
            driver.connection.resume_reading(clock::now());
        } else {
            driver.connection.pause_reading(clock::now());
        }
        let timer = driver
            .connection
            .poll_timeout()
            .map(tokio::time::Instant::from_std);
        let stall_check = driver.next_stall_check();
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
            read = reader.read(&mut input), if reading => match read {
                Ok(0) => driver.connection.handle_eof(clock::now()),
                Ok(n) => {
                    driver.connection.handle_input(clock::now(), input.get(..n).unwrap_or_default());
                    if n == input.len() && input.len() < READ_CHUNK {
                        input.resize(input.len() * 2, 0);
                    }
                }
                Err(e) => driver.end = Some(Error::Io { during: "reading from the router", source: Arc::new(e) }),
            },
            () = sleep_until(timer), if timer.is_some() => driver.connection.handle_timeout(clock::now()),
            () = room.notified(), if !reading => driver.unpark(),
            () = sleep_until(stall_check), if stall_check.is_some() => driver.check_stalls(),
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
    // What was decoded before the end still reaches its streams (at most one read's
    // worth), ahead of the error.
    for (tag, parked) in std::mem::take(&mut driver.parked) {
        for delivery in parked.deliveries {
            driver.send_to(tag, delivery);
        }
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
        // Streams dropped meanwhile were cancelled: their `/cancel` goes out too.
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
            self.parked.remove(&tag);
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

    /// Routes one delivery to its command's stream, in order: behind the ones already
    /// parked for it, parked itself if the stream's channel is full.
    fn deliver(&mut self, tag: Tag, delivery: Delivery) {
        let Some(route) = self.routes.get(&tag) else {
            return;
        };
        if let Some(parked) = self.parked.get_mut(&tag) {
            parked.deliveries.push_back(delivery);
        } else if !delivery.is_final() && route.sink.backlog.is_full() {
            self.parked.insert(
                tag,
                Parked {
                    deliveries: VecDeque::from([delivery]),
                    progress: route.sink.backlog.progress(),
                    since: tokio::time::Instant::from_std(clock::now()),
                },
            );
        } else {
            self.send_to(tag, delivery);
        }
    }

    /// Puts one delivery in the stream's channel (room is the caller's business); the
    /// final one ends the route.
    fn send_to(&mut self, tag: Tag, delivery: Delivery) {
        let Some(route) = self.routes.get(&tag) else {
            return;
        };
        let last = delivery.is_final();
        if !last {
            route.sink.backlog.added();
        }
        if route.sink.tx.send(delivery).is_err() {
            // The stream is gone and its Cancel request is on the way; cancel now.
            let id = route.id;
            self.cancel(id);
        } else if last && let Some(route) = self.routes.remove(&tag) {
            self.tags.remove(&route.id);
        }
    }

    /// Moves parked deliveries into the streams that have room again.
    fn unpark(&mut self) {
        let tags: Vec<Tag> = self.parked.keys().copied().collect();
        for tag in tags {
            while let Some(parked) = self.parked.get_mut(&tag) {
                let full = self
                    .routes
                    .get(&tag)
                    .is_some_and(|r| r.sink.backlog.is_full());
                let next = match parked.deliveries.front() {
                    Some(d) if full && !d.is_final() => break,
                    Some(_) => parked.deliveries.pop_front(),
                    None => None,
                };
                match next {
                    Some(delivery) => self.send_to(tag, delivery),
                    None => {
                        self.parked.remove(&tag);
                        break;
                    }
                }
            }
        }
    }

    /// When the oldest parked stream would count as stalled, if its reader took nothing.
    fn next_stall_check(&self) -> Option<tokio::time::Instant> {
        let after = self.stall_timeout?;
        self.parked
            .values()
            .map(|p| p.since)
            .min()
            .and_then(|since| since.checked_add(after))
    }

    /// Fails and cancels the parked streams whose reader took nothing for the stall
    /// timeout; the others got a fresh start.
    fn check_stalls(&mut self) {
        let Some(after) = self.stall_timeout else {
            return;
        };
        let now = tokio::time::Instant::from_std(clock::now());
        let mut stalled = Vec::new();
        for (tag, parked) in &mut self.parked {
            let progress = self
                .routes
                .get(tag)
                .map_or(parked.progress, |r| r.sink.backlog.progress());
            if progress != parked.progress {
                parked.progress = progress;
                parked.since = now;
            } else if parked.since.checked_add(after).is_some_and(|at| at <= now) {
                stalled.push(*tag);
            }
        }
        for tag in stalled {
            self.parked.remove(&tag);
            let Some(route) = self.routes.get(&tag) else {
                continue;
            };
            let error = Error::StreamStalled {
                command: route.command.clone(),
                waiting: route.sink.backlog.unread(),
                after,
            };
            self.send_to(tag, Delivery::Failed(error));
            // UnknownTag: its `!done` was parked too; Closed: nothing to cancel.
            let _ = self.connection.cancel(clock::now(), tag);
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
            Event::Done { tag, ret } => self.deliver(tag, Delivery::Done(ret)),
            Event::TimedOut { tag } => {
                if let Some(route) = self.routes.get(&tag) {
                    let error = Error::Timeout {
                        command: route.command.clone(),
                        after: route.timeout.unwrap_or_default(),
                    };
                    self.deliver(tag, Delivery::Failed(error));
                }
            }
            // Only dropped or stalled streams are cancelled, and their routes are gone.
            Event::Cancelled { tag } => self.deliver(tag, Delivery::Done(None)),
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
