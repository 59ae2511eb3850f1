//! The client state machine: tags, routing, login, cancellation and timeouts, without I/O.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::codec::{DecodeError, Decoder, Limits, Sentence};
use crate::command::{Command, CommandError};
use crate::login::{self, LoginMethod, Secret};
use crate::reply::{Reply, ReplyError, ReplyKind, Trap, tag_of};

/// Settings of a [`Connection`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Bounds on what the router may make the decoder hold.
    pub limits: Limits,
    /// Time a command (and each login step) may take until its `!done`, for commands that
    /// end by themselves; `None` waits forever. Streaming commands (see
    /// [`Command::is_streaming`]) have no timeout unless given one with
    /// [`Connection::send_with_timeout`]. Default 60 s.
    pub command_timeout: Option<Duration>,
    /// Time to wait for the `!done` that should follow `!empty` (one RouterOS release
    /// omitted it). Default 2 s.
    pub empty_done_timeout: Duration,
    /// Time to keep a cancelled or timed-out tag routed while waiting for its `!done`, so
    /// late replies are recognised instead of reported as unknown tags. Default 10 s.
    pub cancel_grace: Duration,
    /// Most commands in flight at once (login and `/cancel` included). Default 4096.
    pub max_in_flight: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            command_timeout: Some(Duration::from_secs(60)),
            empty_done_timeout: Duration::from_secs(2),
            cancel_grace: Duration::from_secs(10),
            max_in_flight: 4096,
        }
    }
}

/// The tag of a command sent with [`Connection::send`]; every reply to it carries the tag.
///
/// Tags are never reused on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(u64);

impl Tag {
    /// The number on the wire (`.tag=N`).
    pub fn value(self) -> u64 {
        self.0
    }

    fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(bytes).ok()?.parse().ok().map(Tag)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The router sent `!fatal` with this reason (e.g. `session terminated on request`,
    /// or abuse by an unauthenticated peer).
    Fatal {
        /// The router's words.
        reason: String,
    },
    /// The peer closed the byte stream ([`Connection::handle_eof`]).
    PeerClosed {
        /// True if it closed in the middle of a sentence.
        mid_sentence: bool,
    },
    /// The byte stream broke the protocol; it cannot be resynchronised.
    Protocol(DecodeError),
    /// [`Connection::close`] was called.
    Local,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fatal { reason } => write!(f, "the router ended the session: {reason}"),
            Self::PeerClosed { mid_sentence: true } => {
                f.write_str("the router closed the connection in the middle of a reply")
            }
            Self::PeerClosed {
                mid_sentence: false,
            } => f.write_str("the router closed the connection"),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Local => f.write_str("closed by this client"),
        }
    }
}

/// Errors of the connection layer: refused commands and failed logins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The connection is closed; open a new one.
    #[error("connection closed ({0}); reconnect")]
    Closed(CloseReason),
    /// The command is malformed; fix it.
    #[error("invalid command: {0}")]
    InvalidCommand(#[from] CommandError),
    /// Too many commands are waiting for their `!done`; wait for some to finish or raise
    /// [`Config::max_in_flight`].
    #[error("{limit} commands already in flight (Config::max_in_flight); wait for replies")]
    TooManyInFlight {
        /// The configured bound.
        limit: usize,
    },
    /// `cancel` named a tag that is not in flight (it finished, timed out, was already
    /// reported, or was never sent on this connection).
    #[error("tag {tag} is not in flight on this connection")]
    UnknownTag {
        /// The tag given.
        tag: Tag,
    },
    /// `login` was called while a login is still running.
    #[error("a login is already in progress; wait for LoggedIn or LoginFailed")]
    LoginInProgress,
    /// The router refused the credentials.
    #[error(
        "login refused by the router: {message}; check the user name, password and the user's 'api' policy"
    )]
    LoginRefused {
        /// The router's message, e.g. `invalid user name or password (6)`.
        message: String,
    },
    /// The router speaks another login method than the one chosen.
    #[error("login method mismatch: {detail}")]
    LoginProtocolMismatch {
        /// What was seen and what to use instead.
        detail: String,
    },
    /// A login step got no `!done` within [`Config::command_timeout`].
    #[error("login timed out: no answer from the router within the command timeout")]
    LoginTimedOut,
}

/// Something the connection wants the caller to know, without failing any command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A reply carried a tag that is not in flight; it was dropped.
    UnknownTag {
        /// The tag as received.
        tag: Bytes,
        /// The reply word.
        reply: &'static str,
    },
    /// A reply without a tag (every command this connection sends is tagged); dropped.
    Untagged {
        /// The reply word.
        reply: &'static str,
    },
    /// A malformed reply that could not be routed to a command; dropped.
    MalformedReply(ReplyError),
}

/// Output of the connection, read with [`Connection::poll_event`].
///
/// For each tag, the last event is exactly one of [`Done`](Event::Done),
/// [`Cancelled`](Event::Cancelled) or [`TimedOut`](Event::TimedOut), unless the connection
/// closes first ([`Closed`](Event::Closed) ends every command still in flight).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The login succeeded.
    LoggedIn,
    /// The login failed ([`ConnectionError::LoginRefused`], `LoginProtocolMismatch` or
    /// `LoginTimedOut`). The connection stays open; another `login` may be tried.
    LoginFailed(ConnectionError),
    /// One row (`!re`) for a command.
    Row {
        /// The command.
        tag: Tag,
        /// The row.
        reply: Reply,
    },
    /// An error (`!trap`) for a command; its `!done` follows (reported as `Done`).
    Trap {
        /// The command.
        tag: Tag,
        /// Category and message.
        trap: Trap,
    },
    /// `!empty`: the command has no data. `Done` follows (after the router's `!done`, or
    /// after [`Config::empty_done_timeout`] if it never comes).
    Empty {
        /// The command.
        tag: Tag,
    },
    /// The command finished (`!done`).
    Done {
        /// The command.
        tag: Tag,
        /// `=ret=`, when present (e.g. the id of an added item).
        ret: Option<Bytes>,
    },
    /// A command cancelled with [`Connection::cancel`] finished. Rows, the `interrupted`
    /// trap and `!empty` that arrive between the cancel and its `!done` are dropped
    /// (RouterOS 7.24 answers the cancel of a follow that sent nothing with exactly
    /// `!trap =category=2 =message=interrupted`, `!empty`, `!done`: ROUTEROS.md section 5).
    Cancelled {
        /// The command.
        tag: Tag,
    },
    /// The command got no `!done` in time. The connection sends `/cancel` for it and
    /// drops its late replies.
    TimedOut {
        /// The command.
        tag: Tag,
    },
    /// A reply for this command could not be read; the command goes on (its `!done` is
    /// still awaited). Treat the command's result as failed.
    ReplyError {
        /// The command.
        tag: Tag,
        /// What was wrong.
        error: ReplyError,
    },
    /// Something dropped without harm; see [`Warning`].
    Warning(Warning),
    /// The connection ended. No more events follow; commands in flight are lost.
    Closed(CloseReason),
}

/// Counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes given to [`Connection::handle_input`].
    pub bytes_received: u64,
    /// Sentences decoded.
    pub sentences_received: u64,
    /// Replies dropped because their tag was unknown or missing.
    pub unroutable_replies: u64,
    /// Replies that could not be parsed.
    pub malformed_replies: u64,
    /// Replies dropped because their command was cancelled or timed out.
    pub late_replies: u64,
    /// Commands sent (login and `/cancel` included).
    pub commands_sent: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Login,
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// `!empty` seen, waiting for `!done`.
    EmptySeen,
    /// Cancelled by the user: late replies dropped, `Cancelled` at `!done`.
    Cancelling,
    /// Timed out (or internal): late replies dropped silently until `!done`.
    Abandoned,
}

#[derive(Debug)]
struct InFlight {
    role: Role,
    phase: Phase,
    deadline: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginStage {
    /// `/login =name= =password=` sent.
    Plain,
    /// `/login` sent, waiting for the challenge.
    Challenge,
    /// `/login =name= =response=` sent.
    Response,
}

#[derive(Debug)]
struct LoginState {
    tag: u64,
    stage: LoginStage,
    method: LoginMethod,
    user: Vec<u8>,
    password: Secret,
    refusal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    /// `/quit` sent: the next `!fatal` or end of stream is our own doing.
    Closing,
    Closed(CloseReason),
}

/// A RouterOS API client connection, without I/O: bytes in, bytes and events out.
///
/// The caller owns the socket and the clock; the connection never reads either. Its
/// methods come in four kinds, as in quinn-proto:
///
/// - **commands**: [`login`](Self::login), [`send`](Self::send) (returns the command's
///   [`Tag`]; many commands may be in flight), [`cancel`](Self::cancel),
///   [`close`](Self::close), [`pause_reading`](Self::pause_reading) /
///   [`resume_reading`](Self::resume_reading) (backpressure: see below);
/// - **input**: [`handle_input`](Self::handle_input) (bytes read from the socket),
///   [`handle_eof`](Self::handle_eof) (the peer closed it),
///   [`handle_timeout`](Self::handle_timeout) (the instant from `poll_timeout` passed);
/// - **output**: [`poll_transmit`](Self::poll_transmit) (bytes to write),
///   [`poll_event`](Self::poll_event), [`poll_timeout`](Self::poll_timeout);
/// - **getters**: [`is_closed`](Self::is_closed), [`is_logged_in`](Self::is_logged_in),
///   [`in_flight`](Self::in_flight), [`stats`](Self::stats),
///   [`is_reading_paused`](Self::is_reading_paused).
///
/// # Drain order
///
/// After every command or input call: first write out everything
/// [`poll_transmit`](Self::poll_transmit) returns (input can produce output: a timed-out
/// command is cancelled, the legacy login answers its challenge), then take every
/// [`poll_event`](Self::poll_event) until `None`, then arm the timer with
/// [`poll_timeout`](Self::poll_timeout) (it changes with every call). Events come in the
/// order the replies arrived; per tag, the last event is `Done`, `Cancelled` or `TimedOut`,
/// and `Closed` is the very last event of the connection.
///
/// Every time-dependent call takes `now`; deadlines are computed from it, so tests run in
/// virtual time.
///
/// # Backpressure
///
/// [`handle_input`](Self::handle_input) decodes every complete sentence it is given, so
/// the caller bounds memory by how much it reads. A caller whose consumer of rows falls
/// behind stops reading the socket (TCP flow control then holds the router back) and says
/// so with [`pause_reading`](Self::pause_reading): the command timers stand still until
/// [`resume_reading`](Self::resume_reading), since replies that are not read cannot
/// arrive in time. The tokio client (feature `tokio`) does this per stream.
///
/// A `!trap` is reported for its command only; a reply that cannot be parsed is an
/// [`Event::ReplyError`] for its command only; a reply with an unknown tag is dropped
/// with a [`Warning`]. Only a broken byte stream or `!fatal` ends the connection.
pub struct Connection {
    config: Config,
    decoder: Decoder,
    read_buf: BytesMut,
    transmit: BytesMut,
    events: VecDeque<Event>,
    in_flight: HashMap<u64, InFlight>,
    deadlines: BTreeSet<(Instant, u64)>,
    next_tag: u64,
    login: Option<LoginState>,
    logged_in: bool,
    state: State,
    /// After `close`: when to give up waiting for the router's `!fatal`.
    close_deadline: Option<Instant>,
    /// Set by [`Connection::pause_reading`]: since when the caller reads no replies.
    paused_since: Option<Instant>,
    stats: Stats,
}

impl fmt::Debug for Connection {
    /// Shows the state, never the buffers (the login command holds the password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("state", &self.state)
            .field("logged_in", &self.logged_in)
            .field("login", &self.login)
            .field("in_flight", &self.in_flight.len())
            .field("pending_transmit", &self.transmit.len())
            .field("pending_events", &self.events.len())
            .field("reading_paused", &self.paused_since.is_some())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection in its initial state: nothing sent, not logged in.
    pub fn new(config: Config) -> Self {
        Self {
            decoder: Decoder::new(config.limits),
            config,
            // Grows with what arrives (`extend_from_slice`): a daemon holding thousands
            // of idle connections should not hold 16 KiB of buffer for each.
            read_buf: BytesMut::new(),
            transmit: BytesMut::new(),
            events: VecDeque::new(),
            in_flight: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_tag: 1,
            login: None,
            logged_in: false,
            state: State::Open,
            close_deadline: None,
            paused_since: None,
            stats: Stats::default(),
        }
    }

    // ----- getters -----

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// True once the connection has ended (see [`close_reason`](Self::close_reason)).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// Why the connection ended, if it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match &self.state {
            State::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// True after [`Event::LoggedIn`].
    pub fn is_logged_in(&self) -> bool {
        self.logged_in
    }

    /// Number of commands awaiting their `!done` (login and `/cancel` included).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Counters since the connection was created.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// True between [`pause_reading`](Self::pause_reading) and
    /// [`resume_reading`](Self::resume_reading).
    pub fn is_reading_paused(&self) -> bool {
        self.paused_since.is_some()
    }

    // ----- commands -----

    /// Starts a login. The result arrives as [`Event::LoggedIn`] or [`Event::LoginFailed`].
    ///
    /// Commands sent before the login finishes are written right away (the router answers
    /// them with a trap), so wait for the result first.
    pub fn login(
        &mut self,
        now: Instant,
        user: impl AsRef<[u8]>,
        password: impl AsRef<[u8]>,
        method: LoginMethod,
    ) -> Result<(), ConnectionError> {
        self.check_open()?;
        if self.login.is_some() {
            return Err(ConnectionError::LoginInProgress);
        }
        let mut state = LoginState {
            tag: 0,
            stage: LoginStage::Plain,
            method,
            user: user.as_ref().to_vec(),
            password: Secret(password.as_ref().to_vec()),
            refusal: None,
        };
        let cmd = match method {
            LoginMethod::Legacy => {
                state.stage = LoginStage::Challenge;
                Command::new("/login")
            }
            _ => Command::new("/login")
                .attr("name", &state.user)
                .attr("password", &state.password.0),
        };
        state.tag = self.start(now, cmd, Role::Login, self.config.command_timeout)?;
        self.login = Some(state);
        Ok(())
    }

    /// Sends a command and returns its tag. Any `.tag` on the command is replaced.
    ///
    /// Non-streaming commands get [`Config::command_timeout`]; streaming ones
    /// (`=follow=`, `=follow-only=`, `/listen`) none.
    pub fn send(&mut self, now: Instant, command: Command) -> Result<Tag, ConnectionError> {
        let timeout = if command.is_streaming() {
            None
        } else {
            self.config.command_timeout
        };
        self.send_with_timeout(now, command, timeout)
    }

    /// Sends a command with its own timeout (`None`: wait forever).
    pub fn send_with_timeout(
        &mut self,
        now: Instant,
        command: Command,
        timeout: Option<Duration>,
    ) -> Result<Tag, ConnectionError> {
        self.check_open()?;
        self.start(now, command, Role::User, timeout).map(Tag)
    }

    /// Cancels a command (`/cancel =tag=T`). Its late replies are dropped and
    /// [`Event::Cancelled`] is reported at its `!done` (or after [`Config::cancel_grace`]).
    /// Cancelling a command already being cancelled does nothing.
    pub fn cancel(&mut self, now: Instant, tag: Tag) -> Result<(), ConnectionError> {
        self.check_open()?;
        let phase = match self.in_flight.get(&tag.0) {
            Some(f) if f.role == Role::User && f.phase != Phase::Abandoned => f.phase,
            _ => return Err(ConnectionError::UnknownTag { tag }),
        };
        if phase == Phase::Cancelling {
            return Ok(());
        }
        self.send_cancel(now, tag.0);
        if let Some(f) = self.in_flight.get_mut(&tag.0) {
            f.phase = Phase::Cancelling;
        }
        self.set_deadline(tag.0, self.deadline_after(now, self.config.cancel_grace));
        Ok(())
    }

    /// Ends the session politely: sends `/quit`. The router answers with `!fatal` and
    /// closes the socket; [`Event::Closed`] with [`CloseReason::Local`] follows (at the
    /// latest after [`Config::cancel_grace`], if the router stays silent). Call
    /// [`handle_eof`](Self::handle_eof) when the socket closes.
    pub fn close(&mut self, now: Instant) {
        if self.state == State::Open {
            // /quit has no tag: its only answer is `!fatal`.
            if Command::new("/quit").encode(&mut self.transmit).is_ok() {
                self.stats.commands_sent += 1;
            }
            self.state = State::Closing;
            self.close_deadline = now.checked_add(self.config.cancel_grace);
        }
    }

    /// Tells the connection that the caller has stopped reading the socket, because a
    /// consumer of replies is slower than the router and the caller will not buffer more
    /// (TCP flow control then slows the router down).
    ///
    /// Replies that nobody reads cannot arrive, so the router is not to blame for the
    /// wait: until [`resume_reading`](Self::resume_reading), command timeouts, the
    /// `!empty`-without-`!done` timeout and the cancel grace period stand still
    /// ([`poll_timeout`](Self::poll_timeout) reports none of them, and commands sent
    /// meanwhile start their clock at the resume). Only the wait after
    /// [`close`](Self::close) keeps running. Pausing twice does nothing.
    pub fn pause_reading(&mut self, now: Instant) {
        if self.paused_since.is_none() && !self.is_closed() {
            self.paused_since = Some(now);
        }
    }

    /// The caller reads the socket again: every command deadline moves later by the time
    /// spent paused. Does nothing if reading was not paused.
    pub fn resume_reading(&mut self, now: Instant) {
        let Some(since) = self.paused_since.take() else {
            return;
        };
        let paused = now.saturating_duration_since(since);
        if paused.is_zero() {
            return;
        }
        let moved: BTreeSet<(Instant, u64)> = std::mem::take(&mut self.deadlines)
            .into_iter()
            .map(|(at, tag)| (at.checked_add(paused).unwrap_or(at), tag))
            .collect();
        for &(at, tag) in &moved {
            if let Some(f) = self.in_flight.get_mut(&tag) {
                f.deadline = Some(at);
            }
        }
        self.deadlines = moved;
    }

    // ----- input -----

    /// Feeds bytes read from the socket.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.stats.bytes_received += data.len() as u64;
        self.read_buf.extend_from_slice(data);
        loop {
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(sentence)) => {
                    self.stats.sentences_received += 1;
                    self.handle_sentence(now, sentence);
                    if self.is_closed() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    self.close_with(CloseReason::Protocol(e));
                    return;
                }
            }
        }
    }

    /// The peer closed the byte stream.
    pub fn handle_eof(&mut self, now: Instant) {
        // `now` is taken like every other input call; nothing here depends on it yet.
        let _ = now;
        if self.is_closed() {
            return;
        }
        let reason = if self.state == State::Closing {
            CloseReason::Local
        } else {
            CloseReason::PeerClosed {
                mid_sentence: self.decoder.is_mid_sentence() || !self.read_buf.is_empty(),
            }
        };
        self.close_with(reason);
    }

    /// Processes deadlines that have passed: command timeouts, `!empty` without `!done`,
    /// cancelled commands whose `!done` never came.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.close_deadline.is_some_and(|at| at <= now) && !self.is_closed() {
            self.close_with(CloseReason::Local);
        }
        while let Some(&(at, tag)) = self.deadlines.first() {
            if at > now || self.is_closed() || self.paused_since.is_some() {
                break;
            }
            self.deadlines.pop_first();
            let Some(f) = self.in_flight.get_mut(&tag) else {
                continue;
            };
            f.deadline = None;
            match (f.role, f.phase) {
                (Role::User, Phase::Running) => {
                    self.events.push_back(Event::TimedOut { tag: Tag(tag) });
                    self.abandon(now, tag);
                }
                (Role::User, Phase::EmptySeen) => {
                    self.in_flight.remove(&tag);
                    self.events.push_back(Event::Done {
                        tag: Tag(tag),
                        ret: None,
                    });
                }
                (Role::User, Phase::Cancelling) => {
                    self.in_flight.remove(&tag);
                    self.events.push_back(Event::Cancelled { tag: Tag(tag) });
                }
                (Role::Login, Phase::Running) => {
                    self.login = None;
                    self.events
                        .push_back(Event::LoginFailed(ConnectionError::LoginTimedOut));
                    self.abandon(now, tag);
                }
                _ => {
                    self.in_flight.remove(&tag);
                }
            }
        }
    }

    // ----- output -----

    /// Bytes to write to the socket, all pending output in one chunk; `None` if nothing.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.transmit.is_empty()).then(|| self.transmit.split().freeze())
    }

    /// The next event, or `None`.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let first = match self.paused_since {
            Some(_) => None,
            None => self.deadlines.first().map(|&(at, _)| at),
        };
        match (first, self.close_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- internals -----

    fn check_open(&self) -> Result<(), ConnectionError> {
        match &self.state {
            State::Open => Ok(()),
            State::Closing => Err(ConnectionError::Closed(CloseReason::Local)),
            State::Closed(r) => Err(ConnectionError::Closed(r.clone())),
        }
    }

    fn start(
        &mut self,
        now: Instant,
        mut command: Command,
        role: Role,
        timeout: Option<Duration>,
    ) -> Result<u64, ConnectionError> {
        command.validate()?;
        if self.in_flight.len() >= self.config.max_in_flight {
            return Err(ConnectionError::TooManyInFlight {
                limit: self.config.max_in_flight,
            });
        }
        let tag = self.next_tag;
        command.set_tag(tag.to_string());
        let before = self.transmit.len();
        if let Err(e) = command.encode(&mut self.transmit) {
            self.transmit.truncate(before);
            return Err(e.into());
        }
        self.next_tag += 1;
        self.stats.commands_sent += 1;
        self.in_flight.insert(
            tag,
            InFlight {
                role,
                phase: Phase::Running,
                deadline: None,
            },
        );
        self.set_deadline(tag, timeout.and_then(|t| self.deadline_after(now, t)));
        Ok(tag)
    }

    fn send_cancel(&mut self, now: Instant, target: u64) {
        // Internal: never refused for lack of room, so a cancel always goes out.
        let tag = self.next_tag;
        self.next_tag += 1;
        let cmd = Command::new("/cancel")
            .attr("tag", target.to_string())
            .tag(tag.to_string());
        if cmd.encode(&mut self.transmit).is_ok() {
            self.stats.commands_sent += 1;
            self.in_flight.insert(
                tag,
                InFlight {
                    role: Role::Cancel,
                    phase: Phase::Abandoned,
                    deadline: None,
                },
            );
            self.set_deadline(tag, self.deadline_after(now, self.config.cancel_grace));
        }
    }

    /// Stops reporting a command: cancel it on the router, drop its late replies, and forget
    /// it at its `!done` or after the grace period.
    fn abandon(&mut self, now: Instant, tag: u64) {
        let role = match self.in_flight.get_mut(&tag) {
            Some(f) => {
                f.phase = Phase::Abandoned;
                f.role
            }
            None => return,
        };
        if role == Role::User {
            self.send_cancel(now, tag);
        }
        self.set_deadline(tag, self.deadline_after(now, self.config.cancel_grace));
    }

    /// `now + after` on the connection's timer clock, which stands still while reading is
    /// paused (the resume moves every deadline by the time paused).
    fn deadline_after(&self, now: Instant, after: Duration) -> Option<Instant> {
        self.paused_since.unwrap_or(now).checked_add(after)
    }

    fn set_deadline(&mut self, tag: u64, at: Option<Instant>) {
        let Some(f) = self.in_flight.get_mut(&tag) else {
            return;
        };
        if let Some(old) = f.deadline.take() {
            self.deadlines.remove(&(old, tag));
        }
        if let Some(at) = at {
            f.deadline = Some(at);
            self.deadlines.insert((at, tag));
        }
    }

    fn finish(&mut self, tag: u64) {
        if let Some(f) = self.in_flight.remove(&tag)
            && let Some(at) = f.deadline
        {
            self.deadlines.remove(&(at, tag));
        }
    }

    fn close_with(&mut self, reason: CloseReason) {
        self.in_flight.clear();
        self.deadlines.clear();
        self.login = None;
        self.close_deadline = None;
        self.paused_since = None;
        self.read_buf = BytesMut::new();
        self.events.push_back(Event::Closed(reason.clone()));
        self.state = State::Closed(reason);
    }

    fn handle_sentence(&mut self, now: Instant, sentence: Sentence) {
        let reply = match Reply::parse_or_return(sentence) {
            Ok(r) => r,
            Err((error, sentence)) => {
                self.stats.malformed_replies += 1;
                let known = tag_of(&sentence)
                    .and_then(Tag::parse)
                    .filter(|t| self.in_flight.contains_key(&t.0));
                match known {
                    Some(tag) => self.malformed_for(tag, error),
                    None => self
                        .events
                        .push_back(Event::Warning(Warning::MalformedReply(error))),
                }
                return;
            }
        };
        if let ReplyKind::Fatal { reason } = reply.kind() {
            let reason = if self.state == State::Closing {
                CloseReason::Local
            } else {
                CloseReason::Fatal {
                    reason: reason.clone(),
                }
            };
            self.close_with(reason);
            return;
        }
        let word = reply.kind().word();
        let Some(raw) = reply.tag() else {
            self.stats.unroutable_replies += 1;
            self.events
                .push_back(Event::Warning(Warning::Untagged { reply: word }));
            return;
        };
        let entry = Tag::parse(raw).and_then(|t| Some((t, self.in_flight.get(&t.0)?)));
        let Some((tag, f)) = entry else {
            self.stats.unroutable_replies += 1;
            let tag = Bytes::copy_from_slice(raw);
            self.events
                .push_back(Event::Warning(Warning::UnknownTag { tag, reply: word }));
            return;
        };
        match (f.role, f.phase) {
            (Role::Login, Phase::Running) => self.login_reply(now, tag.0, reply),
            (Role::User, Phase::Running | Phase::EmptySeen) => self.user_reply(now, tag, reply),
            (Role::User, Phase::Cancelling) => {
                if matches!(reply.kind(), ReplyKind::Done) {
                    self.finish(tag.0);
                    self.events.push_back(Event::Cancelled { tag });
                } else {
                    self.stats.late_replies += 1;
                }
            }
            _ => {
                // Abandoned commands and our own /cancel: only the `!done` matters.
                if matches!(reply.kind(), ReplyKind::Done) {
                    self.finish(tag.0);
                } else if f.role == Role::User || f.role == Role::Login {
                    self.stats.late_replies += 1;
                }
            }
        }
    }

    fn malformed_for(&mut self, tag: Tag, error: ReplyError) {
        let Some(f) = self.in_flight.get(&tag.0) else {
            return;
        };
        match (f.role, f.phase) {
            (Role::User, Phase::Running | Phase::EmptySeen) => {
                self.events.push_back(Event::ReplyError { tag, error });
            }
            (Role::Login, Phase::Running) => {
                self.login = None;
                self.events
                    .push_back(Event::LoginFailed(ConnectionError::LoginProtocolMismatch {
                        detail: format!("unreadable login reply: {error}"),
                    }));
                // Keep the tag routed until its `!done`, like any abandoned command.
                if let Some(f) = self.in_flight.get_mut(&tag.0) {
                    f.phase = Phase::Abandoned;
                }
            }
            _ => self.stats.late_replies += 1,
        }
    }

    fn user_reply(&mut self, now: Instant, tag: Tag, reply: Reply) {
        match reply.kind() {
            ReplyKind::Re => self.events.push_back(Event::Row { tag, reply }),
            ReplyKind::Trap(trap) => {
                let trap = trap.clone();
                self.events.push_back(Event::Trap { tag, trap });
            }
            ReplyKind::Empty => {
                if let Some(f) = self.in_flight.get_mut(&tag.0) {
                    f.phase = Phase::EmptySeen;
                }
                self.set_deadline(
                    tag.0,
                    self.deadline_after(now, self.config.empty_done_timeout),
                );
                self.events.push_back(Event::Empty { tag });
            }
            ReplyKind::Done => {
                self.finish(tag.0);
                let ret = reply.get_bytes("ret");
                self.events.push_back(Event::Done { tag, ret });
            }
            // Handled before routing; kept for exhaustiveness.
            ReplyKind::Fatal { .. } => {}
        }
    }

    fn login_reply(&mut self, now: Instant, tag: u64, reply: Reply) {
        let Some(mut st) = self.login.take().filter(|s| s.tag == tag) else {
            self.finish(tag);
            return;
        };
        match reply.kind() {
            ReplyKind::Trap(trap) => {
                st.refusal = Some(trap.message.clone());
                self.login = Some(st);
                return;
            }
            ReplyKind::Done => {}
            // Rows or !empty during a login mean nothing; wait for the `!done`.
            _ => {
                self.login = Some(st);
                return;
            }
        }
        self.finish(tag);
        if let Some(message) = st.refusal.take() {
            self.fail_login(match st.stage {
                LoginStage::Challenge => ConnectionError::LoginProtocolMismatch {
                    detail: format!(
                        "the router refused the pre-6.43 challenge login ({message}); use LoginMethod::Plain or Auto"
                    ),
                },
                _ => ConnectionError::LoginRefused { message },
            });
            return;
        }
        let challenge = reply.get("ret");
        match (st.stage, challenge) {
            (LoginStage::Plain, None) | (LoginStage::Response, _) => {
                self.logged_in = true;
                self.events.push_back(Event::LoggedIn);
            }
            (LoginStage::Plain, Some(_)) if st.method == LoginMethod::Plain => {
                self.fail_login(ConnectionError::LoginProtocolMismatch {
                    detail: "the router answered with a challenge: it is older than 6.43; use LoginMethod::Legacy or Auto".into(),
                });
            }
            (LoginStage::Challenge, None) => {
                self.fail_login(ConnectionError::LoginProtocolMismatch {
                    detail: "the router sent no challenge: it is 6.43 or later; use LoginMethod::Plain or Auto".into(),
                });
            }
            (LoginStage::Plain | LoginStage::Challenge, Some(challenge)) => {
                let Some(response) = login::legacy_response(&st.password.0, challenge) else {
                    let shown = String::from_utf8_lossy(challenge.get(..64).unwrap_or(challenge))
                        .into_owned();
                    self.fail_login(ConnectionError::LoginProtocolMismatch {
                        detail: format!("the login challenge {shown:?} is not hex"),
                    });
                    return;
                };
                let cmd = Command::new("/login")
                    .attr("name", &st.user)
                    .attr("response", response);
                match self.start(now, cmd, Role::Login, self.config.command_timeout) {
                    Ok(t) => {
                        st.tag = t;
                        st.stage = LoginStage::Response;
                        self.login = Some(st);
                    }
                    Err(e) => self.fail_login(e),
                }
            }
        }
    }

    fn fail_login(&mut self, error: ConnectionError) {
        self.login = None;
        self.events.push_back(Event::LoginFailed(error));
    }
}
