//! The tasks behind [`super::Links`]: accepting, dialing with backoff, the secured handshake
//! (TLS and the secret proofs in [`super::auth`], then the `Hello` exchange), and one
//! session's reader and writer. Everything here runs on the cluster thread's tokio runtime.

use super::auth::{self, AuthError};
use super::{LinkConfig, LinkEvent, Peer, Session, Shared};
use crate::wire::{self, FrameReader, NodeMsg, WireError};
use crate::{NodeId, NodeKey};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsStream;
use tracing::{debug, info, warn};

/// Why the handshake failed (the socket is closed; the dialer retries with backoff).
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Wire(#[from] WireError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("first frame is not hello")]
    NotHello,
    #[error("peer is in cluster {0:?}")]
    WrongCluster(String),
    #[error("peer id {0:?} is invalid or unexpected")]
    WrongNode(String),
    #[error("peer generation {got} is older than {want}")]
    StaleGeneration { got: u64, want: u64 },
}

/// The two halves of a secured link.
type LinkRead = ReadHalf<TlsStream<TcpStream>>;
type LinkWrite = WriteHalf<TlsStream<TcpStream>>;

/// Counts a refused handshake and logs it, at most once per address per 10 s.
fn refused(shared: &Shared, addr: SocketAddr, what: &str, error: &dyn std::fmt::Display) {
    shared
        .counters
        .handshakes_refused
        .fetch_add(1, Ordering::Relaxed);
    let verdict = shared
        .warn
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .check(addr.ip(), Instant::now());
    if let Some(suppressed) = verdict {
        warn!(%addr, suppressed, error = %error, "{what}");
    }
}

pub(super) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let Ok(permit) = shared.handshakes.clone().try_acquire_owned() else {
                    drop(stream);
                    refused(
                        &shared,
                        addr,
                        "refused incoming link",
                        &"too many handshakes at once",
                    );
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let timeout = shared.cfg.handshake_timeout;
                    let done =
                        tokio::time::timeout(timeout, accept_handshake(&shared, stream)).await;
                    drop(permit);
                    match done {
                        Ok(Ok((peer, r, w, reader))) => {
                            run_session(shared, peer, r, w, reader).await
                        }
                        Ok(Err(e)) => refused(&shared, addr, "refused incoming link", &e),
                        Err(_) => debug!(%addr, "incoming link handshake timed out"),
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn hello(cfg: &LinkConfig) -> Result<Vec<u8>, WireError> {
    wire::encode(&NodeMsg::Hello {
        cluster_id: cfg.cluster_id.clone(),
        node_id: cfg.me.id.as_str().to_owned(),
        generation: cfg.me.generation,
    })
}

async fn read_msg(r: &mut LinkRead, reader: &mut FrameReader) -> Result<NodeMsg, HandshakeError> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(m) = reader.next_msg()? {
            return Ok(m);
        }
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Err(HandshakeError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        reader.extend(&buf[..n]);
    }
}

/// Checks a peer's `Hello`; returns its key.
fn check_hello(cfg: &LinkConfig, msg: NodeMsg) -> Result<NodeKey, HandshakeError> {
    let NodeMsg::Hello {
        cluster_id,
        node_id,
        generation,
    } = msg
    else {
        return Err(HandshakeError::NotHello);
    };
    if cluster_id != cfg.cluster_id {
        return Err(HandshakeError::WrongCluster(cluster_id));
    }
    let id = NodeId::new(&node_id).map_err(|_| HandshakeError::WrongNode(node_id.clone()))?;
    if id == cfg.me.id {
        return Err(HandshakeError::WrongNode(node_id));
    }
    Ok(NodeKey::new(id, generation))
}

type Handshaken = (NodeKey, LinkRead, LinkWrite, FrameReader);

async fn accept_handshake(
    shared: &Shared,
    stream: TcpStream,
) -> Result<Handshaken, HandshakeError> {
    stream.set_nodelay(true)?;
    // The keys in force now; a reload during the handshake applies to the next one.
    let keys = shared.cfg.keyring.keys();
    let tls = shared.tls.accept(&keys, stream).await?;
    let (mut r, mut w) = tokio::io::split(tls);
    let mut reader = FrameReader::new(shared.cfg.max_body);
    let peer = check_hello(&shared.cfg, read_msg(&mut r, &mut reader).await?)?;
    w.write_all(&hello(&shared.cfg)?).await?;
    auth::flush(&mut w).await?;
    Ok((peer, r, w, reader))
}

async fn dial_handshake(shared: &Shared, peer: &Peer) -> Result<Handshaken, HandshakeError> {
    let stream = TcpStream::connect(peer.addr).await?;
    stream.set_nodelay(true)?;
    let keys = shared.cfg.keyring.keys();
    let (tls, exporter) = shared.tls.dial(&keys, stream).await?;
    let (mut r, mut w) = tokio::io::split(tls);
    // Our proof and our `Hello` leave in one flight.
    w.write_all(&hello(&shared.cfg)?).await?;
    auth::flush(&mut w).await?;
    auth::check_acceptor(&keys, &exporter, &mut r).await?;
    let mut reader = FrameReader::new(shared.cfg.max_body);
    let got = check_hello(&shared.cfg, read_msg(&mut r, &mut reader).await?)?;
    if got.id != peer.key.id {
        return Err(HandshakeError::WrongNode(got.id.to_string()));
    }
    if got.generation < peer.key.generation {
        return Err(HandshakeError::StaleGeneration {
            got: got.generation,
            want: peer.key.generation,
        });
    }
    Ok((got, r, w, reader))
}

pub(super) async fn dial_loop(shared: Arc<Shared>, peer: Peer, mut cancel: watch::Receiver<bool>) {
    let cfg = &shared.cfg;
    let mut delay = cfg.backoff_min;
    loop {
        let attempt = tokio::select! {
            r = tokio::time::timeout(cfg.handshake_timeout, dial_handshake(&shared, &peer)) => r,
            _ = cancel.wait_for(|c| *c) => return,
        };
        match attempt {
            Ok(Ok((key, r, w, reader))) => {
                delay = cfg.backoff_min;
                run_session(shared.clone(), key, r, w, reader).await;
            }
            Ok(Err(e)) => {
                if matches!(
                    e,
                    HandshakeError::WrongCluster(_)
                        | HandshakeError::WrongNode(_)
                        | HandshakeError::StaleGeneration { .. }
                        | HandshakeError::Auth(AuthError::BadProof | AuthError::Alpn)
                ) {
                    refused(&shared, peer.addr, "link handshake refused", &e);
                } else {
                    debug!(peer = %peer.key, addr = %peer.addr, error = %e, "link dial failed");
                }
            }
            Err(_) => debug!(peer = %peer.key, "link dial timed out"),
        }
        // Jitter of up to a quarter, so a restarted cluster does not dial in lockstep.
        let jitter = delay.mul_f64(fastrand::f64() * 0.25);
        tokio::select! {
            _ = tokio::time::sleep(delay + jitter) => {}
            _ = cancel.wait_for(|c| *c) => return,
        }
        delay = (delay * 2).min(cfg.backoff_max);
    }
}

/// Registers a session (replacing an older one for the same id), runs it to its end, and
/// reports `Up`/`Down`.
async fn run_session(
    shared: Arc<Shared>,
    peer: NodeKey,
    r: LinkRead,
    w: LinkWrite,
    reader: FrameReader,
) {
    let id = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel::<Bytes>(shared.cfg.queue_frames);
    let (stop_tx, stop_rx) = watch::channel(false);
    {
        let mut sessions = shared.sessions.lock().unwrap();
        if let Some(old) = sessions.get(&peer.id) {
            if old.key.generation > peer.generation {
                debug!(peer = %peer, "older generation linked while a newer one is up; closing");
                return;
            }
            let _ = old.stop.send(true);
        }
        sessions.insert(
            peer.id.clone(),
            Session {
                key: peer.clone(),
                id,
                tx: tx.clone(),
                stop: stop_tx,
            },
        );
    }
    shared.counters.sessions_up.fetch_add(1, Ordering::Relaxed);
    info!(peer = %peer, session = id, "link up");
    if shared
        .events
        .send(LinkEvent::Up {
            peer: peer.clone(),
            session: id,
        })
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(write_loop(shared.clone(), w, rx, stop_rx.clone()));
    let why = read_loop(&shared, &peer, id, r, reader, tx, stop_rx).await;
    writer.abort();
    {
        let mut sessions = shared.sessions.lock().unwrap();
        if sessions.get(&peer.id).is_some_and(|s| s.id == id) {
            sessions.remove(&peer.id);
        }
    }
    info!(peer = %peer, session = id, reason = %why, "link down");
    let _ = shared
        .events
        .send(LinkEvent::Down { peer, session: id })
        .await;
}

async fn read_loop(
    shared: &Shared,
    peer: &NodeKey,
    session: u64,
    mut r: LinkRead,
    mut reader: FrameReader,
    tx: mpsc::Sender<Bytes>,
    mut stop: watch::Receiver<bool>,
) -> String {
    let cfg = &shared.cfg;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        loop {
            let msg = match reader.next_msg() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => return format!("bad frame: {e}"),
            };
            shared
                .counters
                .frames_received
                .fetch_add(1, Ordering::Relaxed);
            match msg {
                NodeMsg::Ping(n) => {
                    if let Ok(f) = wire::encode(&NodeMsg::Pong(n)) {
                        let _ = tx.try_send(Bytes::from(f));
                    }
                }
                NodeMsg::Pong(_) => {}
                NodeMsg::Hello { .. } => return "hello after handshake".to_owned(),
                msg => {
                    let ev = LinkEvent::Msg {
                        peer: peer.clone(),
                        session,
                        msg,
                    };
                    // Waits when the consumer is behind: backpressure onto this socket.
                    if shared.events.send(ev).await.is_err() {
                        return "shutting down".to_owned();
                    }
                }
            }
        }
        let read = tokio::select! {
            read = tokio::time::timeout(cfg.idle_timeout, r.read(&mut buf)) => read,
            _ = stop.wait_for(|s| *s) => return "closed locally".to_owned(),
        };
        match read {
            Err(_) => return format!("nothing received for {:?}", cfg.idle_timeout),
            Ok(Err(e)) => return format!("read error: {e}"),
            Ok(Ok(0)) => return "closed by peer".to_owned(),
            Ok(Ok(n)) => reader.extend(&buf[..n]),
        }
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    mut w: LinkWrite,
    mut rx: mpsc::Receiver<Bytes>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ping = tokio::time::interval(shared.cfg.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        batch.clear();
        enum Step {
            Frame(Option<Bytes>),
            Ping,
            Stop,
        }
        let step = tokio::select! {
            frame = rx.recv() => Step::Frame(frame),
            _ = ping.tick() => Step::Ping,
            stopped = stop.wait_for(|s| *s) => {
                drop(stopped);
                Step::Stop
            }
        };
        match step {
            Step::Frame(None) => break,
            Step::Frame(Some(frame)) => {
                batch.extend_from_slice(&frame);
                let mut n = 1;
                // Coalesce what is already queued into one write.
                while batch.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(f) => {
                            batch.extend_from_slice(&f);
                            n += 1;
                        }
                        Err(_) => break,
                    }
                }
                shared.counters.frames_sent.fetch_add(n, Ordering::Relaxed);
            }
            Step::Ping => {
                seq += 1;
                match wire::encode(&NodeMsg::Ping(seq)) {
                    Ok(f) => batch.extend_from_slice(&f),
                    Err(_) => continue,
                }
            }
            Step::Stop => {
                // Flush what is already queued (a `Leaving`, say), then close.
                while let Ok(f) = rx.try_recv() {
                    batch.extend_from_slice(&f);
                }
                let _ = w.write_all(&batch).await;
                let _ = w.flush().await;
                let _ = w.shutdown().await;
                return;
            }
        }
        // TLS keeps what the socket did not take until flushed.
        if w.write_all(&batch).await.is_err() || w.flush().await.is_err() {
            break;
        }
    }
}
