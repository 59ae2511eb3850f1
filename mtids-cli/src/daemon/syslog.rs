//! Syslog listeners for a router's `remote` logging action: UDP, TCP and TLS.
//!
//! Lines are BSD syslog (`<PRI>Feb 15 11:25:46 host TOPICS MESSAGE`), RFC 5424 (`<PRI>1
//! TIMESTAMP HOST APP PROCID MSGID SD MESSAGE`), or what RouterOS 7.18+ sends
//! (`remote-log-format` `default`, `syslog` or `cef`: ROUTEROS.md §5).
//! Streams (TCP, TLS) are split by [`framing`]: octet counting (rsyslog forwarding),
//! or the CEF delimiter or a newline (RouterOS sends CEF over TCP/TLS, each event
//! followed by `cef-event-delimiter`). A router sending `default`/`syslog` over TCP (no
//! delimiter at all) gets one warning saying what to change.
//!
//! Bounds: lines of at most [`MAX_LINE`] bytes; at most `input.syslog_tcp_max_connections`
//! connections per stream listener; a connection idle for `input.syslog_tcp_idle_timeout`
//! is closed. The UDP socket asks for an `input.syslog_udp_buffer` receive buffer; the
//! kernel's count of datagrams it dropped is exported as `mtids_syslog_dropped_total`.
//!
//! Events are counted under the configured router whose host is the sender's address,
//! or under `syslog` when no router matches.
//!
//! The listeners run on a thread of their own (`mtids-syslog`): reading, framing and
//! parsing beside the detection task, which gets the events in batches.

mod burst;
mod framing;
mod intern;

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mtids_detect::{Date, Event, LineContext, parse_log_line};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use self::burst::Burst;
use self::framing::{FrameRef, Framer, looks_run_together, split_frames};
use self::intern::Interner;
use super::detection::Input;
use super::{Shared, Stats, timestamp};
use crate::config::InputConfig;
use crate::error::CliError;
use crate::metrics::SyslogLine;

/// Longest syslog line read; longer ones are counted as `too_long` and skipped.
pub(crate) const MAX_LINE: usize = 8192;

/// Events parsed from one read (or one wakeup's datagrams) go to detection as one
/// message of at most this many: one channel hand-over per batch, not per line.
const BATCH: usize = 256;

/// Parsed events on their way to detection from every syslog listener, at most: each
/// batch holds a permit per event until detection has consumed it, so the queue in front
/// of detection stays bounded in events (memory), not only in messages.
const MAX_QUEUED_EVENTS: usize = 16_384;

/// Datagrams read per wakeup of the UDP listener before its batch is sent.
const UDP_BURST: usize = 256;

/// Size of one TCP/TLS read: large reads, few wakeups.
const STREAM_READ: usize = 256 * 1024;

/// Lines of a stream connection all checked for messages run together; after them, one
/// in [`RUN_TOGETHER_SAMPLE`] is (reads that end inside a frame are checked always).
const RUN_TOGETHER_ALL: u64 = 1024;

/// See [`RUN_TOGETHER_ALL`].
const RUN_TOGETHER_SAMPLE: u64 = 64;

/// Senders remembered for the once-per-sender framing warning.
const MAX_WARNED_SENDERS: usize = 1024;

/// The bound syslog listeners, before their tasks run.
pub(crate) struct Listeners {
    udp: Option<std::net::UdpSocket>,
    tcp: Option<std::net::TcpListener>,
    tls: Option<(std::net::TcpListener, TlsAcceptor)>,
}

impl Listeners {
    /// The bound UDP address.
    pub(crate) fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The bound TCP address.
    pub(crate) fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The bound TLS address.
    pub(crate) fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(s, _)| s.local_addr().ok())
    }
}

/// Binds the configured listeners (synchronously, so a bad address, a certificate that
/// cannot be read or a taken port fails `start`).
pub(crate) fn bind(input: &InputConfig) -> Result<Listeners, CliError> {
    let udp = input
        .syslog_udp
        .map(|addr| bind_udp(addr, input.syslog_udp_buffer))
        .transpose()?;
    let tcp = input
        .syslog_tcp
        .map(|addr| bind_tcp(addr, "TCP"))
        .transpose()?;
    let tls = match input.syslog_tls {
        None => None,
        Some(addr) => {
            let acceptor = tls_acceptor(input)?;
            Some((bind_tcp(addr, "TLS")?, acceptor))
        }
    };
    Ok(Listeners { udp, tcp, tls })
}

fn bind_tcp(addr: SocketAddr, what: &str) -> Result<std::net::TcpListener, CliError> {
    let s = std::net::TcpListener::bind(addr)
        .map_err(|e| CliError::io(format!("binding syslog {what} {addr}"), e))?;
    s.set_nonblocking(true)
        .map_err(|e| CliError::io(format!("syslog {what} socket"), e))?;
    Ok(s)
}

/// Binds UDP with a receive buffer of `buffer` bytes asked of the kernel, and logs what
/// it granted. On Linux the kernel caps the request at `net.core.rmem_max` and doubles
/// it for bookkeeping (socket(7), SO_RCVBUF:
/// <https://man7.org/linux/man-pages/man7/socket.7.html>).
fn bind_udp(addr: SocketAddr, buffer: usize) -> Result<std::net::UdpSocket, CliError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let context = || format!("binding syslog UDP {addr}");
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| CliError::io(context(), e))?;
    if let Err(e) = socket.set_recv_buffer_size(buffer) {
        tracing::warn!(
            error = %e,
            requested = buffer,
            "syslog UDP: cannot set the receive buffer (input.syslog_udp_buffer)"
        );
    }
    socket
        .bind(&addr.into())
        .map_err(|e| CliError::io(context(), e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| CliError::io("syslog UDP socket", e))?;
    match socket.recv_buffer_size() {
        // Linux reports twice what it reserves for data.
        Ok(granted) if granted < buffer => tracing::warn!(
            requested = buffer,
            granted,
            "syslog UDP: the kernel granted a smaller receive buffer than \
             input.syslog_udp_buffer; raise the sysctl net.core.rmem_max to allow it"
        ),
        Ok(granted) => tracing::info!(requested = buffer, granted, "syslog UDP receive buffer"),
        Err(e) => tracing::warn!(error = %e, "syslog UDP: cannot read the receive buffer size"),
    }
    Ok(socket.into())
}

/// The TLS server configuration from `input.syslog_tls_cert` and `input.syslog_tls_key`.
/// RouterOS with `remote-protocol=tls` is a TLS client and presents no certificate
/// (ROUTEROS.md §5), so none is asked for.
fn tls_acceptor(input: &InputConfig) -> Result<TlsAcceptor, CliError> {
    let (Some(cert), Some(key)) = (&input.syslog_tls_cert, &input.syslog_tls_key) else {
        return Err(CliError::config(
            "configuration",
            "input.syslog_tls_cert",
            "input.syslog_tls needs both syslog_tls_cert and syslog_tls_key",
        ));
    };
    server_tls(cert, key, ("input.syslog_tls_cert", "input.syslog_tls_key"))
}

/// A TLS server (rustls with ring, no client certificate asked for) from a PEM certificate
/// chain and key; `keys` name the two configuration keys in errors.
pub(crate) fn server_tls(
    cert: &Path,
    key: &Path,
    keys: (&str, &str),
) -> Result<TlsAcceptor, CliError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |key: &str, path: &Path, reason: String| {
        CliError::config(
            "configuration",
            key,
            format!("{}: {reason}", path.display()),
        )
    };
    let (cert_key, key_key) = keys;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            bad(
                cert_key,
                cert,
                format!("cannot read PEM certificates ({e})"),
            )
        })?;
    if chain.is_empty() {
        return Err(bad(cert_key, cert, "no CERTIFICATE block in it".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(key_key, key, format!("cannot read a PEM private key ({e})")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert_key, cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| bad(key_key, key, format!("does not go with {cert_key} ({e})")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener's task, before it runs.
type ListenerTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Starts one task per listener on a thread of their own, pushing a handle that ends
/// with them to `tasks`.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    listeners: Listeners,
    events: &mpsc::Sender<Input>,
    tasks: &mut Vec<JoinHandle<()>>,
) {
    let queue = Arc::new(Semaphore::new(MAX_QUEUED_EVENTS));
    let sink = |events: &mpsc::Sender<Input>| BatchSink {
        events: events.clone(),
        queue: Arc::clone(&queue),
    };
    let mut listener_tasks: Vec<ListenerTask> = Vec::new();
    if let Some(socket) = listeners.udp {
        watch_kernel_drops(shared, &socket);
        listener_tasks.push(Box::pin(run_udp(Arc::clone(shared), socket, sink(events))));
    }
    if let Some(listener) = listeners.tcp {
        listener_tasks.push(Box::pin(run_stream(
            Arc::clone(shared),
            listener,
            None,
            sink(events),
        )));
    }
    if let Some((listener, acceptor)) = listeners.tls {
        listener_tasks.push(Box::pin(run_stream(
            Arc::clone(shared),
            listener,
            Some(acceptor),
            sink(events),
        )));
    }
    if !listener_tasks.is_empty() {
        tasks.push(on_own_thread(listener_tasks));
    }
}

/// Runs `listener_tasks` (and the connection tasks they spawn) on a thread of their own,
/// in a current-thread runtime: reading, framing and parsing then run beside the
/// detection task. On the shared runtime they took turns with it on one worker (tokio
/// runs the task a send wakes on the sender's worker, in a slot other workers do not
/// steal from), so `mtids run` used one core (docs/performance.md). The handle returned
/// ends when they have. Should the thread not start, they run on the shared runtime.
fn on_own_thread(listener_tasks: Vec<ListenerTask>) -> JoinHandle<()> {
    let fall_back = |listener_tasks: Vec<ListenerTask>, error: std::io::Error| {
        tracing::warn!(%error, "syslog listeners: no thread of their own, sharing the runtime");
        let handles: Vec<JoinHandle<()>> = listener_tasks.into_iter().map(tokio::spawn).collect();
        tokio::spawn(async move {
            for handle in handles {
                let _ = handle.await;
            }
        })
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fall_back(listener_tasks, error),
    };
    let (handover, received) = std::sync::mpsc::channel::<Vec<ListenerTask>>();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("mtids-syslog".to_owned())
        .spawn(move || {
            let Ok(listener_tasks) = received.recv() else {
                return;
            };
            runtime.block_on(async move {
                let handles: Vec<JoinHandle<()>> =
                    listener_tasks.into_iter().map(tokio::spawn).collect();
                for handle in handles {
                    let _ = handle.await;
                }
            });
            // Connection tasks still running stop with the runtime.
            drop(runtime);
            drop(done);
        });
    match thread {
        Ok(_) => match handover.send(listener_tasks) {
            Ok(()) => tokio::spawn(async move {
                let _ = finished.await;
            }),
            Err(std::sync::mpsc::SendError(listener_tasks)) => fall_back(
                listener_tasks,
                std::io::Error::other("the syslog thread ended at once"),
            ),
        },
        Err(error) => fall_back(listener_tasks, error),
    }
}

/// Exports the kernel's drop count of `socket` as `mtids_syslog_dropped_total`, read when
/// the metrics are rendered.
fn watch_kernel_drops(shared: &Shared, socket: &std::net::UdpSocket) {
    let Some(inode) = kernel::socket_inode(socket) else {
        tracing::debug!("syslog UDP: no kernel drop counter on this system");
        return;
    };
    shared.metrics.on_render(move |metrics| {
        if let Some(drops) = kernel::udp_drops(inode) {
            metrics.set_syslog_dropped(drops);
        }
    });
}

/// The kernel's per-socket UDP drop counter.
mod kernel {
    /// The socket's inode number, from its `/proc/self/fd` link (`socket:[INODE]`).
    #[cfg(target_os = "linux")]
    pub(super) fn socket_inode(socket: &std::net::UdpSocket) -> Option<u64> {
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
        link.to_str()?
            .strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn socket_inode(_socket: &std::net::UdpSocket) -> Option<u64> {
        None
    }

    /// Datagrams the kernel dropped on the socket with `inode`.
    pub(super) fn udp_drops(inode: u64) -> Option<u64> {
        ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|path| {
            let table = std::fs::read_to_string(path).ok()?;
            drops_in_table(&table, inode)
        })
    }

    /// The `drops` column of the row for `inode` in a `/proc/net/udp` or `/proc/net/udp6`
    /// table. Columns (Linux `udp4_format_sock()` in net/ipv4/udp.c, and the same order in
    /// `__ip6_dgram_sock_seq_show()` for udp6): sl, local_address, rem_address, st,
    /// tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, inode, ref, pointer, drops;
    /// drops is the socket's `sk_drops` (a full receive queue among others), see
    /// <https://unix.stackexchange.com/questions/611981/udp-packet-drops>.
    pub(super) fn drops_in_table(table: &str, inode: u64) -> Option<u64> {
        table.lines().skip(1).find_map(|row| {
            let columns: Vec<&str> = row.split_whitespace().collect();
            if columns.get(9)?.parse::<u64>().ok()? != inode {
                return None;
            }
            columns.get(12)?.parse().ok()
        })
    }
}

/// Where parsed syslog events go: batches to the detection task, within the shared
/// bound on queued events.
#[derive(Clone)]
struct BatchSink {
    events: mpsc::Sender<Input>,
    queue: Arc<Semaphore>,
}

/// Events parsed from one sender, not yet sent, and the count of lines read.
struct Batch {
    source: usize,
    events: Vec<Event<'static>>,
    observed: Instant,
    /// Whether a line was read since the last flush (`observed` and `context` are set).
    started: bool,
    /// What lines without a year or date take: today, read from the clock once per batch.
    context: LineContext,
    /// Lines read since the last flush, and how many of them were not recognised:
    /// counted once per flush, not once per line.
    lines: u64,
    unrecognized: u64,
    /// Shared copies of the text fields of kept events.
    interner: Interner,
}

impl Batch {
    fn new(source: usize) -> Batch {
        Batch {
            source,
            events: Vec::with_capacity(BATCH),
            observed: Instant::now(),
            started: false,
            context: LineContext::default(),
            lines: 0,
            unrecognized: 0,
            interner: Interner::default(),
        }
    }

    /// Counts the lines read so far and sends their events (if any) as one message;
    /// `Err` when detection is gone.
    async fn flush(&mut self, shared: &Shared, sink: &BatchSink) -> Result<(), ()> {
        self.count(shared);
        self.started = false;
        if self.events.is_empty() {
            return Ok(());
        }
        let n = u32::try_from(self.events.len()).unwrap_or(u32::MAX);
        let permit: OwnedSemaphorePermit = Arc::clone(&sink.queue)
            .acquire_many_owned(n)
            .await
            .map_err(|_| ())?;
        let events = std::mem::replace(&mut self.events, Vec::with_capacity(BATCH));
        sink.events
            .send(Input::Events {
                source: self.source,
                now: timestamp(shared.now()),
                events,
                observed: self.observed,
                permit,
            })
            .await
            .map_err(|_| ())
    }

    /// Adds the lines read since the last count to the counters (unrecognised lines are
    /// counted here, as the detection task, which counts the other kinds, never sees them).
    fn count(&mut self, shared: &Shared) {
        let (lines, unrecognized) = (self.lines, self.unrecognized);
        (self.lines, self.unrecognized) = (0, 0);
        Stats::add(&shared.stats.log_rows, lines);
        let metrics = &shared.metrics;
        metrics.syslog_lines(SyslogLine::Recognized, lines - unrecognized);
        metrics.syslog_lines(SyslogLine::Unrecognized, unrecognized);
        if let Some(counters) = shared.event_counters.get(self.source) {
            counters.count_many(Event::Unrecognized.kind(), unrecognized);
        }
    }

    /// Parses `raw` into the batch, sending it first when full.
    async fn line(&mut self, shared: &Shared, raw: &[u8], sink: &BatchSink) -> Result<(), ()> {
        if self.events.len() >= BATCH {
            self.flush(shared, sink).await?;
        }
        if !self.started {
            self.started = true;
            self.observed = Instant::now();
            self.context = LineContext::new(Date::of(timestamp(shared.now())), 0);
        }
        self.lines += 1;
        match parse_line(raw, &self.context, &mut self.interner) {
            Some(event) => self.events.push(event),
            None => self.unrecognized += 1,
        }
        Ok(())
    }
}

async fn run_udp(shared: Arc<Shared>, socket: std::net::UdpSocket, sink: BatchSink) {
    let Ok(socket) = UdpSocket::from_std(socket) else {
        return;
    };
    let delimiter = cef_delimiter(&shared);
    let mut shutdown = shared.shutdown.clone();
    let mut burst = Burst::new();
    let mut batch = Batch::new(0);
    // The last sender and its source: one lookup when the sender changes, not per datagram.
    let mut last: Option<(IpAddr, usize)> = None;
    loop {
        tokio::select! {
            ready = socket.readable() => {
                if ready.is_err() {
                    return; // The runtime is shutting down.
                }
                // Everything already queued in the socket, up to a burst, is read in this
                // wakeup (many datagrams per system call) and goes to detection as few
                // messages.
                let mut taken = 0;
                while taken < UDP_BURST {
                    let n = match burst.receive(&socket) {
                        Ok(n) if n > 0 => n,
                        _ => break,
                    };
                    taken += n;
                    for i in 0..n {
                        let Some((data, sender)) = burst.datagram(i) else { continue };
                        let ip = sender.map_or(IpAddr::from([0, 0, 0, 0]), |s| s.ip());
                        let source = match last {
                            Some((known, source)) if known == ip => source,
                            _ => {
                                let source = shared.syslog_source(ip);
                                last = Some((ip, source));
                                source
                            }
                        };
                        if source != batch.source {
                            if batch.flush(&shared, &sink).await.is_err() {
                                return;
                            }
                            batch.source = source;
                        }
                        // RouterOS ends CEF with its delimiter even over UDP (ROUTEROS.md §5).
                        for line in split_frames(data, &delimiter) {
                            if line.len() > MAX_LINE {
                                too_long(&shared);
                                continue;
                            }
                            if batch.line(&shared, line, &sink).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                if batch.flush(&shared, &sink).await.is_err() {
                    return;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

fn cef_delimiter(shared: &Shared) -> Vec<u8> {
    // Validated with the configuration; the router's default if that was skipped.
    shared
        .config
        .input
        .cef_delimiter()
        .unwrap_or_else(|_| b"\r\n".to_vec())
}

fn too_long(shared: &Shared) {
    Stats::bump(&shared.stats.malformed_rows);
    shared.metrics.syslog_line(SyslogLine::TooLong);
}

/// What every connection of one stream listener shares.
struct StreamContext {
    shared: Arc<Shared>,
    sink: BatchSink,
    delimiter: Vec<u8>,
    idle: Duration,
    /// Senders already told that their messages run together.
    warned: Mutex<HashSet<IpAddr>>,
    transport: &'static str,
    /// A failed TLS handshake was logged as a warning; later ones go to debug, so a
    /// scanner cannot flood the log.
    handshake_warned: AtomicBool,
}

impl StreamContext {
    /// Logs, once per sender, that a router sends `default`/`syslog` over TCP/TLS.
    fn warn_unframed(&self, peer: SocketAddr) {
        let mut warned = self
            .warned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if warned.len() >= MAX_WARNED_SENDERS || !warned.insert(peer.ip()) {
            return;
        }
        drop(warned);
        // MikroTik's manual: TCP and TLS remote logging work only with
        // remote-log-format=cef, whose delimiter separates events; `default` and `syslog`
        // have no delimiter or octet count over TCP (ROUTEROS.md §5).
        tracing::warn!(
            %peer,
            transport = self.transport,
            "syslog sender runs several messages together without a delimiter: a RouterOS \
             7.18+ logging action with remote-log-format=default or syslog over TCP/TLS, \
             which MikroTik documents as working only with CEF. On the router set \
             remote-log-format=cef for remote-protocol=tcp/tls, or use remote-protocol=udp \
             for default/syslog"
        );
    }
}

/// Accepts TCP (or, with `tls`, TLS) senders up to the connection cap.
async fn run_stream(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    sink: BatchSink,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let transport = if tls.is_some() { "TLS" } else { "TCP" };
    let max = shared.config.input.syslog_tcp_max_connections;
    let context = Arc::new(StreamContext {
        delimiter: cef_delimiter(&shared),
        idle: shared.config.input.syslog_tcp_idle_timeout,
        shared: Arc::clone(&shared),
        sink,
        warned: Mutex::new(HashSet::new()),
        transport,
        handshake_warned: AtomicBool::new(false),
    });
    let mut shutdown = shared.shutdown.clone();
    // Each sender costs a task and a buffer: past the cap, new ones are closed at once.
    let slots = Arc::new(Semaphore::new(max));
    let mut refusing = false;
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((stream, peer)) = r else { continue };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    if !refusing {
                        tracing::warn!(
                            %peer,
                            max,
                            transport,
                            "syslog senders at input.syslog_tcp_max_connections: closing new connections"
                        );
                    }
                    refusing = true;
                    drop(stream);
                    continue;
                };
                refusing = false;
                tracing::debug!(%peer, transport, "syslog connection");
                let context = Arc::clone(&context);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _slot = slot; // Freed when the sender goes.
                    let mut shutdown = context.shared.shutdown.clone();
                    tokio::select! {
                        () = serve_connection(&context, stream, peer, tls) => {}
                        _ = shutdown.changed() => {}
                    }
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve_connection(
    context: &StreamContext,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
) {
    match tls {
        None => read_frames(context, stream, peer).await,
        Some(acceptor) => {
            // A peer that never finishes the handshake is idle too.
            match tokio::time::timeout(context.idle, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => read_frames(context, stream, peer).await,
                Ok(Err(e)) if !context.handshake_warned.swap(true, Ordering::Relaxed) => {
                    tracing::warn!(
                        %peer,
                        error = %e,
                        "syslog TLS handshake failed (later failures are logged at debug level)"
                    );
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "syslog TLS handshake failed"),
                Err(_) => {
                    tracing::debug!(%peer, "syslog TLS handshake not finished in time: closed")
                }
            }
        }
    }
}

/// Reads frames until the peer goes, breaks the framing, or stays idle too long.
async fn read_frames(
    context: &StreamContext,
    mut stream: impl AsyncRead + Unpin,
    peer: SocketAddr,
) {
    let shared = &*context.shared;
    let source = shared.syslog_source(peer.ip());
    let mut framer = Framer::new(context.delimiter.clone(), MAX_LINE);
    let mut warned = false;
    let mut lines: u64 = 0;
    let mut batch = Batch::new(source);
    loop {
        // At most STREAM_READ bytes, read into the framer's buffer (no copy).
        let space = framer.space(STREAM_READ);
        let mut limited = (&mut stream).take(STREAM_READ as u64);
        match tokio::time::timeout(context.idle, limited.read_buf(space)).await {
            Err(_) => {
                tracing::debug!(
                    %peer,
                    idle = ?context.idle,
                    "syslog connection idle: closed (input.syslog_tcp_idle_timeout)"
                );
                return;
            }
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        while let Some(frame) = framer.next_frame_ref() {
            match frame {
                FrameRef::Line(line) => {
                    // A sender's format holds for its connection: the first lines are
                    // all looked at, then one in RUN_TOGETHER_SAMPLE (looking at every
                    // line was a fifth of the listener's time).
                    lines += 1;
                    let look = lines <= RUN_TOGETHER_ALL || lines % RUN_TOGETHER_SAMPLE == 0;
                    if !warned && look && looks_run_together(line) {
                        warned = true;
                        context.warn_unframed(peer);
                    }
                    if batch.line(shared, line, &context.sink).await.is_err() {
                        return;
                    }
                }
                FrameRef::TooLong { head } => {
                    too_long(shared);
                    if !warned && looks_run_together(head) {
                        warned = true;
                        context.warn_unframed(peer);
                    }
                }
                FrameRef::Malformed => {
                    Stats::bump(&shared.stats.malformed_rows);
                    shared.metrics.syslog_line(SyslogLine::Malformed);
                    // What came before the broken frame still counts.
                    let _ = batch.flush(shared, &context.sink).await;
                    return; // Framing lost: drop the connection, the sender reconnects.
                }
            }
        }
        if batch.flush(shared, &context.sink).await.is_err() {
            return;
        }
        if !warned && looks_run_together(framer.buffered()) {
            warned = true;
            context.warn_unframed(peer);
        }
    }
}

/// Parses one syslog line; the event when it is one detection reads, its text owned
/// through `interner`.
fn parse_line(
    raw: &[u8],
    context: &LineContext,
    interner: &mut Interner,
) -> Option<Event<'static>> {
    // `from_utf8` is the fast check; only a line with invalid bytes pays for the copy.
    let text = match std::str::from_utf8(raw) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(raw),
    };
    let text = text.trim_end_matches(['\r', '\n', '\0']);
    let line = normalize_rfc5424(text);
    let parsed = parse_log_line(&line, context);
    if matches!(parsed.event, Event::Unrecognized) {
        return None;
    }
    Some(parsed.event.into_owned_with(&mut |text| interner.own(text)))
}

/// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG` becomes `TIMESTAMP HOST APP MSG`, the
/// RFC 3339 form the parser reads (RouterOS puts the topics in APP-NAME). Other lines are
/// returned as they are.
pub(crate) fn normalize_rfc5424(line: &str) -> std::borrow::Cow<'_, str> {
    let rest = match line.strip_prefix('<').and_then(|l| l.split_once('>')) {
        Some((pri, rest)) if pri.len() <= 3 && pri.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => return line.into(),
    };
    let Some(rest) = rest.strip_prefix("1 ") else {
        return line.into();
    };
    let mut parts = rest.splitn(6, ' ');
    let (Some(ts), Some(host), Some(app), Some(_procid), Some(_msgid), Some(tail)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return line.into();
    };
    // Structured data: `-` or one or more `[...]` elements.
    let msg = if let Some(m) = tail.strip_prefix("- ") {
        m
    } else if tail == "-" {
        ""
    } else if tail.starts_with('[') {
        tail.find("] ")
            .and_then(|i| tail.get(i + 2..))
            .unwrap_or("")
    } else {
        tail
    };
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    if app == "-" {
        format!("{ts} {host} {msg}").into()
    } else {
        format!("{ts} {host} {app} {msg}").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_becomes_the_rfc3339_form() {
        let l = "<86>1 2026-11-21T10:00:01.000+00:00 gw system,error,critical - - - login failure for user admin from 198.51.100.7 via ssh";
        assert_eq!(
            normalize_rfc5424(l),
            "2026-11-21T10:00:01.000+00:00 gw system,error,critical login failure for user admin from 198.51.100.7 via ssh"
        );
        let sd = "<86>1 2026-11-21T10:00:01Z gw firewall,info - - [meta x=\"1\"] drop input";
        assert_eq!(
            normalize_rfc5424(sd),
            "2026-11-21T10:00:01Z gw firewall,info drop input"
        );
        let bsd = "<86>Nov 21 10:00:01 gw system,info hello";
        assert_eq!(normalize_rfc5424(bsd), bsd);
        assert_eq!(normalize_rfc5424("<1>1 short"), "<1>1 short");
    }

    #[test]
    fn rfc5424_lines_parse_to_events() {
        let l = "<86>1 2026-11-21T10:00:01.000+00:00 gw system,error,critical - - - login failure for user admin from 198.51.100.7 via ssh";
        let line = normalize_rfc5424(l);
        let parsed = parse_log_line(&line, &LineContext::new(Date::new(2026, 11, 21), 0));
        assert_eq!(parsed.event.kind(), "auth", "{line}");
    }

    #[test]
    fn the_kernel_drop_column_is_read_for_the_right_socket() {
        // /proc/net/udp as Linux prints it (udp4_format_sock).
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41111 2 0000000000000000 0
  456: 0100007F:C350 00000000:0000 07 00000000:00000900 00:00000000 00000000  1000        0 42222 2 0000000000000000 1832
";
        assert_eq!(kernel::drops_in_table(table, 42222), Some(1832));
        assert_eq!(kernel::drops_in_table(table, 41111), Some(0));
        assert_eq!(kernel::drops_in_table(table, 9), None);
        assert_eq!(kernel::drops_in_table("garbage\nx y z", 9), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_bound_socket_is_found_in_proc_net_udp() {
        let socket = bind_udp("127.0.0.1:0".parse().unwrap(), 64 * 1024).unwrap();
        let inode = kernel::socket_inode(&socket).expect("an inode");
        assert_eq!(kernel::udp_drops(inode), Some(0));
    }
}
