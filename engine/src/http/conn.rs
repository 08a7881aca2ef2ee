//! One accepted socket: read requests until it upgrades to WebSocket or closes.

use super::request::{read_body, read_head, ReadError};
use super::response::Response;
use super::router::{route, Routed};
use crate::shard::Shard;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let limits = shard.limits.clone();
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut first = true;
    loop {
        // The first request must arrive within the handshake timeout (slowloris defence);
        // later ones within the keep-alive timeout. The whole head and body share the deadline.
        let secs = if first {
            limits.handshake_timeout_secs
        } else {
            limits.http_keepalive_secs
        };
        first = false;
        let read = async {
            let mut req = read_head(&mut stream, &mut buf, limits.max_http_header_bytes).await;
            if let Ok(r) = &mut req {
                if r.chunked {
                    return Err(RequestFailure::Respond(Response::error(
                        411,
                        "chunked bodies are not supported; send Content-Length",
                    )));
                }
                if r.content_length > limits.max_http_body_bytes {
                    return Err(RequestFailure::Respond(Response::error(
                        413,
                        "request body too large",
                    )));
                }
                if r.content_length > 0 {
                    read_body(&mut stream, &mut buf, r)
                        .await
                        .map_err(RequestFailure::from)?;
                }
            }
            req.map_err(RequestFailure::from)
        };
        let read =
            glommio::timer::timeout(Duration::from_secs(secs), async { Ok(read.await) }).await;
        let req = match read {
            Ok(Ok(req)) => req,
            Ok(Err(RequestFailure::Respond(resp))) => {
                let _ = stream.write_all(&resp.encode(true)).await;
                return;
            }
            Ok(Err(RequestFailure::Drop)) => return,
            Err(_) => {
                // Timed out: a silent or too-slow client.
                if !buf.is_empty() {
                    let _ = stream
                        .write_all(&Response::error(408, "request timeout").encode(true))
                        .await;
                }
                return;
            }
        };
        let mut req = req;
        req.peer = stream.peer_addr().ok();
        let close = req.close;
        match route(&shard, req).await {
            Routed::Respond(resp) => {
                if stream.write_all(&resp.encode(close)).await.is_err() || close {
                    return;
                }
            }
            Routed::Upgrade(up) => {
                crate::ws::session::start(shard, stream, up, std::mem::take(&mut buf)).await;
                return;
            }
        }
    }
}

enum RequestFailure {
    Respond(Response),
    Drop,
}

impl From<ReadError> for RequestFailure {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Eof | ReadError::Io(_) => RequestFailure::Drop,
            ReadError::Malformed(m) => RequestFailure::Respond(Response::error(400, m)),
            ReadError::HeadTooLarge => {
                RequestFailure::Respond(Response::error(431, "request head too large"))
            }
            ReadError::BodyTooLarge => {
                RequestFailure::Respond(Response::error(413, "request body too large"))
            }
        }
    }
}
