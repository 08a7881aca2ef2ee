//! One WebSocket connection's read side: frames in through tungstenite's sans-IO
//! `WebSocketContext`, Pusher messages dispatched to the shard. Everything the connection
//! sends goes through its [`SocketOut`](crate::outbox::SocketOut).

use super::handshake::{switching_protocols, Outcome, Upgrade};
use super::sansio::SansIo;
use crate::connection::Connection;
use crate::frame::close_frame;
use crate::outbox::{SocketOut, WriteState};
use crate::protocol::{codes, server as frames};
use crate::shard::{ClientEvent, Shard};
use crate::transport::Transport;
use bytes::Bytes;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::error::{CapacityError, Error as WsError};
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

/// Bytes read from the socket per read call. Small on purpose: idle connections keep this
/// buffer, and Pusher messages are small.
const READ_CHUNK: usize = 1024;

/// Completes the upgrade and runs the connection until it closes.
pub async fn start(shard: Rc<Shard>, mut stream: Transport, up: Upgrade, leftover: Vec<u8>) {
    if stream
        .send_all(switching_protocols(&up.accept).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let outcome = match up.outcome {
        Outcome::Open(app) => match shard.admit(&app) {
            Ok(()) => Outcome::Open(app),
            Err((code, message)) => Outcome::Refuse { code, message },
        },
        other => other,
    };
    match outcome {
        Outcome::Refuse { code, message } => {
            tracing::debug!(shard = shard.id, code, message, "websocket refused");
            let mut bytes = frames::error(code, message).ws().to_vec();
            bytes.extend_from_slice(&close_frame(code, message));
            let _ = stream.send_all(&bytes).await;
            // Give the client a moment to read before the socket goes away.
            let _ = glommio::timer::timeout(Duration::from_secs(2), async {
                let mut b = [0u8; 256];
                loop {
                    match futures_lite::AsyncReadExt::read(&mut stream, &mut b).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                Ok(())
            })
            .await;
        }
        Outcome::Open(app) => run(shard, stream, app, leftover).await,
        Outcome::Echo => super::echo::run(shard, stream, leftover).await,
    }
}

async fn run(shard: Rc<Shard>, stream: Transport, app: Arc<crate::app::App>, leftover: Vec<u8>) {
    let limits = Arc::clone(&shard.limits());
    let (id, socket_id) = shard.next_ids();
    let out = SocketOut::new(
        stream,
        shard.flush.clone(),
        limits.outbox_max_frames,
        limits.outbox_max_bytes,
    );
    let opened = Instant::now();
    tracing::debug!(shard = shard.id, app = %app.id, %socket_id, "websocket opened");
    let conn = Rc::new(Connection::new(id, socket_id, &app, out.clone()));
    shard.conns.borrow_mut().insert(id, conn.clone());
    out.push(frames::connection_established(
        &socket_id.to_string(),
        limits.activity_timeout_secs,
    ));

    let config = WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .max_message_size(Some(limits.max_ws_message_bytes))
        .max_frame_size(Some(limits.max_ws_message_bytes));
    let mut ctx = WebSocketContext::new(Role::Server, Some(config));
    let mut io = SansIo {
        inb: leftover,
        pos: 0,
        out: Vec::new(),
    };
    // Once we start closing, input is read and discarded until the peer goes away or the
    // sweeper ends the grace period.
    let mut closing = false;
    loop {
        if !closing {
            match process(&shard, &conn, &mut ctx, &mut io) {
                Step::Read => {}
                Step::Closing => closing = true,
                Step::Publish(ev) => {
                    // Waits while the event's queue is full: meanwhile nothing more is read
                    // (the client feels TCP backpressure). Then on with what was read.
                    io.inb.drain(..io.pos);
                    io.pos = 0;
                    // Boxed: this task lives as long as the socket, and an unboxed await
                    // would keep the event's space in every idle connection's future.
                    Box::pin(shard.publish_client_event(*ev)).await;
                    continue;
                }
            }
        }
        io.inb.drain(..io.pos);
        io.pos = 0;
        if out.state() == WriteState::Closed {
            break;
        }
        let old = io.inb.len();
        io.inb.resize(old + READ_CHUNK, 0);
        let n = poll_fn(|cx| out.poll_read(cx, &mut io.inb[old..])).await;
        match n {
            Ok(n) if n > 0 => io.inb.truncate(old + n),
            _ => break,
        }
        if closing {
            io.inb.clear();
        }
    }
    shard.remove_connection(&conn);
    tracing::debug!(
        shard = shard.id,
        app = %shard.app(conn.app).id,
        %socket_id,
        user = conn.user_id().as_deref(),
        secs = opened.elapsed().as_secs(),
        "websocket closed"
    );
    out.abort();
}

/// What the read loop does after [`process`].
enum Step {
    /// Every complete message was handled: read more.
    Read,
    /// The connection is closing.
    Closing,
    /// A client event to publish before the next message is handled.
    Publish(Box<ClientEvent>),
}

/// Handles the complete messages in `io`, up to the first client event to publish.
fn process(
    shard: &Rc<Shard>,
    conn: &Rc<Connection>,
    ctx: &mut WebSocketContext,
    io: &mut SansIo,
) -> Step {
    let step = loop {
        let res = ctx.read(io);
        if res.is_ok() {
            conn.last_seen.set(Instant::now());
            conn.pinged.set(false);
        }
        match res {
            Ok(Message::Text(t)) => {
                let mut bytes = t.as_bytes().to_vec();
                if let Some(ev) = super::dispatch::on_message(shard, conn, &mut bytes) {
                    break Step::Publish(Box::new(ev));
                }
            }
            Ok(Message::Binary(_)) => {
                conn.out.close_with(close_frame(
                    codes::WS_UNSUPPORTED_DATA,
                    "binary frames are not supported",
                ));
                return Step::Closing;
            }
            Ok(Message::Close(_)) => {
                // tungstenite queued the close reply; send it as our last frame, after what is
                // already queued.
                let _ = ctx.flush(io);
                conn.out
                    .close_with(Bytes::from(std::mem::take(&mut io.out)));
                return Step::Closing;
            }
            Ok(_) => {} // ping (pong queued by tungstenite), pong, raw frame
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break Step::Read,
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return Step::Closing,
            Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
                conn.out
                    .close_with(close_frame(codes::WS_TOO_BIG, "message too big"));
                return Step::Closing;
            }
            Err(WsError::Utf8(_)) => {
                conn.out
                    .close_with(close_frame(codes::WS_INVALID_PAYLOAD, "invalid utf-8"));
                return Step::Closing;
            }
            Err(e) => {
                tracing::debug!(socket_id = %conn.socket_id, error = %e, "websocket protocol error");
                conn.out
                    .close_with(close_frame(codes::WS_PROTOCOL_ERROR, "protocol error"));
                return Step::Closing;
            }
        }
    };
    // Pongs and other control replies tungstenite produced.
    let _ = ctx.flush(io);
    if !io.out.is_empty() {
        conn.out
            .push_control(Bytes::from(std::mem::take(&mut io.out)));
    }
    step
}
