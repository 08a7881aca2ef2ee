//! A Pusher session over a WebSocket: completes the upgrade, creates the session
//! ([`Connection`]) with its queue, attaches the WebSocket writer to it, and runs the shared
//! read loop ([`super::reader`]) with a handler that dispatches each text message as a Pusher
//! command ([`crate::commands`]).

use super::handshake::{switching_protocols, Outcome, Upgrade};
use super::reader::{self, Handler, Next};
use crate::frame::close_frame;
use crate::outbox::WsWriter;
use crate::protocol::{codes, server as frames};
use crate::session::{Connection, Outbound};
use crate::shard::{ClientEvent, Shard};
use crate::transport::Transport;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// Bytes read from the socket per read call, and tungstenite's read buffer while a message
/// is being received (neither is kept by an idle connection: `reader::run`). Pusher messages
/// are small.
const READ_CHUNK: usize = 1024;

/// Completes the upgrade; an admitted session then runs in a task of its own, so the HTTP
/// connection's task (`http::serve`, as large as its largest state: reading a request,
/// routing, the TLS accept) ends here instead of living as long as the socket.
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
        Outcome::Open(app) => {
            // Opened before the task starts, as the admission just counted it: a drain or a
            // reload from now on finds the session in the shard's table.
            let opened = open(&shard, stream, app, up.token);
            glommio::spawn_local(run(shard, opened, leftover)).detach();
        }
        Outcome::Echo => super::echo::run(shard, stream, leftover).await,
    }
}

/// Runs an opened session until it closes: its own task, whose future an idle connection
/// keeps (`a_session_task_stays_small`).
async fn run(shard: Rc<Shard>, opened: Opened, leftover: Vec<u8>) {
    let Opened {
        conn,
        writer,
        max_message,
    } = opened;
    let opened_at = Instant::now();
    let mut pusher = Pusher { shard, conn };
    reader::run(&writer, leftover, max_message, &mut pusher).await;
    let Pusher { shard, conn } = pusher;
    shard.remove_connection(&conn);
    tracing::debug!(
        shard = shard.id,
        app = %shard.app(conn.app).id,
        socket_id = %conn.socket_id,
        user = conn.user_id().as_deref(),
        secs = opened_at.elapsed().as_secs(),
        "websocket closed"
    );
    conn.out.abort();
}

/// A session opened, with what its read loop needs.
struct Opened {
    conn: Rc<Connection>,
    writer: Rc<WsWriter>,
    max_message: usize,
}

/// Opens the session: its queue with the WebSocket writer attached, in the shard's table,
/// `pusher:connection_established` queued, the `?token=` applied. Not async, so none of this
/// stays in the future of an idle connection.
// `Box<String>`: a thin pointer, see `Upgrade::token`.
#[allow(clippy::box_collection)]
fn open(
    shard: &Rc<Shard>,
    stream: Transport,
    app: Arc<crate::app::App>,
    token: Option<Box<String>>,
) -> Opened {
    let limits = shard.limits();
    let (id, socket_id) = shard.next_ids();
    let out = Outbound::new(
        limits.outbox_max_frames,
        limits.outbox_max_bytes,
        shard.stats.clone(),
    );
    let writer = WsWriter::attach(stream, out.clone(), shard.flush.clone());
    tracing::debug!(shard = shard.id, app = %app.id, %socket_id, "websocket opened");
    let conn = Rc::new(Connection::new(id, socket_id, &app, out));
    shard.conns.borrow_mut().insert(id, conn.clone());
    conn.out.push(frames::connection_established(
        &socket_id.to_string(),
        limits.activity_timeout_secs,
    ));
    if let Some(t) = token {
        crate::commands::tokens::at_connect(shard, &conn, &t);
    }
    Opened {
        conn,
        writer,
        max_message: limits.max_ws_message_bytes,
    }
}

/// The Pusher side of the read loop.
struct Pusher {
    shard: Rc<Shard>,
    conn: Rc<Connection>,
}

impl Handler for Pusher {
    type Wait = Box<ClientEvent>;
    const READ_CHUNK: usize = READ_CHUNK;
    // No grace of its own: the shard's sweeper ends a closing session's grace period.

    fn on_frame(&mut self) {
        // Anything from the client counts as activity (drives server pings and 4201).
        self.conn.last_seen.set(Instant::now());
        self.conn.pinged.set(false);
    }

    fn on_message(&mut self, msg: Message) -> Next<Box<ClientEvent>> {
        match msg {
            Message::Text(t) => {
                let mut bytes = t.as_bytes().to_vec();
                match crate::commands::on_message(&self.shard, &self.conn, &mut bytes) {
                    Some(ev) => Next::Wait(Box::new(ev)),
                    None => Next::Read,
                }
            }
            _ => Next::Close(
                codes::WS_UNSUPPORTED_DATA,
                "binary frames are not supported",
            ),
        }
    }

    /// A client event that passed every check: published once its queue has room.
    async fn wait(&mut self, ev: Box<ClientEvent>) {
        // Boxed: this task lives as long as the socket, and an unboxed await would keep the
        // event's space in every idle connection's future.
        Box::pin(self.shard.publish_client_event(*ev)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Apps;
    use crate::config::{AppConfig, Limits};

    /// The session's task lives as long as its socket, idle ones included, and keeps the
    /// size of its largest state: what is awaited in `run` and in `reader::run` must stay
    /// small or be boxed. Measured at 336 bytes when the session got its own task; glommio's
    /// task header comes on top (docs/bench/notes.md, "Idle connections").
    #[test]
    fn a_session_task_stays_small() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let apps = Apps::new(&[AppConfig::new("1", "k", "s")]);
                let live = Arc::new(crate::live::Live::new(apps, Limits::default(), None));
                let mesh = Rc::new(crate::shard::mesh::MeshOut::new(0, 1, None, 16));
                let shard = Shard::new(
                    0,
                    1,
                    live,
                    mesh,
                    crate::webhook::Webhooks::disabled(),
                    Arc::default(),
                    false,
                );
                let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let client = glommio::spawn_local(async move {
                    glommio::net::TcpStream::connect(addr).await.unwrap()
                });
                let stream = listener.accept().await.unwrap();
                let _client = client.await;
                let app = shard.apps().by_key("k").unwrap().clone();
                let opened = open(&shard, Transport::Plain(stream), app, None);
                let task = run(shard, opened, Vec::new());
                let size = std::mem::size_of_val(&task);
                eprintln!("ws::session::run future: {size} bytes");
                assert!(size <= 352, "ws::session::run future is {size} bytes");
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
