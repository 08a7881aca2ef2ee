//! `GET /admin/api/stream`: server-sent events, one overview a second, for as long as the
//! client stays. Takes the connection over like a WebSocket upgrade; bounded by
//! [`MAX_STREAMS`] per node.

use super::{Dashboard, MAX_STREAMS};
use crate::shard::Shard;
use crate::transport::Transport;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long one event may take to write before the stream is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// One open stream; counted in [`Dashboard::streams`] until dropped.
pub struct EventStream {
    dash: Arc<Dashboard>,
}

impl EventStream {
    /// `None` when [`MAX_STREAMS`] are open already.
    pub fn open(dash: Arc<Dashboard>) -> Option<EventStream> {
        let taken = dash
            .streams
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_STREAMS).then_some(n + 1)
            })
            .is_ok();
        taken.then_some(EventStream { dash })
    }

    /// Writes the head, then an event a second until a write fails (the client went), a
    /// write takes longer than [`WRITE_TIMEOUT`] (a client that stopped reading frees its
    /// slot), or the node drains.
    pub async fn run(self, shard: &Shard, mut stream: Transport) {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n";
        if stream.send_all(head.as_bytes()).await.is_err() {
            return;
        }
        let mut last_sent = None;
        loop {
            if shard.node.shutting_down() {
                return;
            }
            if let Some(b) = self.dash.board() {
                // A new board once a second; a comment line keeps an idle stream alive.
                let event = if last_sent == Some(b.seq) {
                    b": \n\n".to_vec()
                } else {
                    let mut e = Vec::with_capacity(b.overview.len() + 8);
                    e.extend_from_slice(b"data: ");
                    e.extend_from_slice(&b.overview);
                    e.extend_from_slice(b"\n\n");
                    e
                };
                last_sent = Some(b.seq);
                drop(b);
                let write = glommio::timer::timeout(WRITE_TIMEOUT, async {
                    Ok(stream.send_all(&event).await)
                });
                if !matches!(write.await, Ok(Ok(()))) {
                    return;
                }
            }
            glommio::timer::sleep(Duration::from_secs(1)).await;
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.dash.streams.fetch_sub(1, Ordering::Relaxed);
    }
}
