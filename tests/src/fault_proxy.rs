//! A TCP proxy on loopback that breaks the link between the daemon and a router on
//! command: stall (sockets open, nothing forwarded), cut (clean close), reset (RST),
//! refuse new connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What every open connection is told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Control {
    stalled: bool,
    /// Connections accepted before the last cut (by sequence number) are closed.
    cut_before: u64,
    /// Connections accepted before the last reset are reset.
    reset_before: u64,
}

/// A fault-injecting TCP proxy on 127.0.0.1:0 in front of `target`.
pub struct FaultProxy {
    addr: SocketAddr,
    control: watch::Sender<Control>,
    refusing: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    next: Arc<std::sync::atomic::AtomicU64>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding every connection to `target`.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (control, watch) = watch::channel(Control::default());
        let refusing = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = {
            let refusing = Arc::clone(&refusing);
            let accepted = Arc::clone(&accepted);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if refusing.load(Ordering::SeqCst) {
                        drop(client); // Accepted and closed at once.
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let seq = next.fetch_add(1, Ordering::SeqCst);
                    let watch = watch.clone();
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(target).await else {
                            return;
                        };
                        pump(client, server, seq, watch).await;
                    });
                }
            })
        };
        FaultProxy {
            addr,
            control,
            refusing,
            accepted,
            next,
            task,
        }
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections forwarded so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Keeps every connection (and new ones) open but forwards nothing, either way.
    pub fn stall(&self) {
        self.control.send_modify(|c| c.stalled = true);
    }

    /// Forwards again.
    pub fn resume(&self) {
        self.control.send_modify(|c| c.stalled = false);
    }

    /// Closes every open connection cleanly (FIN both ways).
    pub fn cut(&self) {
        let seq = self.next.load(Ordering::SeqCst);
        self.control.send_modify(|c| c.cut_before = seq);
    }

    /// Resets every open connection (RST: SO_LINGER 0 through `set_zero_linger`, then close).
    pub fn reset(&self) {
        let seq = self.next.load(Ordering::SeqCst);
        self.control.send_modify(|c| c.reset_before = seq);
    }

    /// `true`: new connections are accepted and closed at once (open ones stay).
    pub fn refuse(&self, refuse: bool) {
        self.refusing.store(refuse, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards both ways until either side closes or the control says otherwise.
async fn pump(
    mut client: TcpStream,
    mut server: TcpStream,
    seq: u64,
    mut control: watch::Receiver<Control>,
) {
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        let Some(now) = settled(seq, &mut control).await else {
            return;
        };
        if apply_kill(now, seq, &mut client, &mut server).await {
            return;
        }
        tokio::select! {
            read = client.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    // Bytes read as the stall began wait for the resume.
                    let Some(now) = settled(seq, &mut control).await else { return };
                    if apply_kill(now, seq, &mut client, &mut server).await
                        || server.write_all(&up[..n]).await.is_err()
                    {
                        return;
                    }
                }
            },
            read = server.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let Some(now) = settled(seq, &mut control).await else { return };
                    if apply_kill(now, seq, &mut client, &mut server).await
                        || client.write_all(&down[..n]).await.is_err()
                    {
                        return;
                    }
                }
            },
            changed = control.changed() => if changed.is_err() { return },
        }
    }
}

/// Waits while stalled (unless this connection is to be cut or reset); `None` when the
/// proxy is gone.
async fn settled(seq: u64, control: &mut watch::Receiver<Control>) -> Option<Control> {
    loop {
        let now = *control.borrow_and_update();
        if !now.stalled || now.cut_before > seq || now.reset_before > seq {
            return Some(now);
        }
        control.changed().await.ok()?;
    }
}

/// Cuts or resets the connection if told to; `true` when it is closed.
async fn apply_kill(
    now: Control,
    seq: u64,
    client: &mut TcpStream,
    server: &mut TcpStream,
) -> bool {
    if now.reset_before > seq {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
        return true;
    }
    if now.cut_before > seq {
        let _ = client.shutdown().await;
        let _ = server.shutdown().await;
        return true;
    }
    false
}
