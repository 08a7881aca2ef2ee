//! One accepted socket: TLS or plain (when `[tls]` is configured, the client's first byte
//! decides), then requests until it upgrades to WebSocket or closes.

use super::admin::Access;
use super::request::{read_body, read_head, ReadError};
use super::response::Response;
use super::router::{refuse_plain, route, Routed};
use crate::shard::Shard;
use crate::transport::{LocalAcceptor, Transport};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serves one accepted socket. With `tls` (the shard's acceptor, when `[tls]` is configured)
/// the client's first bytes decide between TLS and plain. `access`: the listener's guard of
/// the operator routes, and which routes it serves at all.
pub async fn serve(
    shard: Rc<Shard>,
    stream: TcpStream,
    tls: Option<Rc<LocalAcceptor>>,
    access: Rc<Access>,
) {
    let _ = stream.set_nodelay(true);
    let limits = Arc::clone(&shard.limits());
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    // The TLS handshake and the first request share the handshake timeout: a client that
    // dawdles in either is cut at the same deadline (slowloris defence).
    let setup = Duration::from_secs(limits.handshake_timeout_secs);
    let setup_deadline = Instant::now() + setup;
    let (mut stream, plain_refused) = match &tls {
        None => (Transport::Plain(stream), false),
        Some(acceptor) => {
            // Boxed, like the request read and the routing below: an idle WebSocket keeps this
            // task's future for its whole life, and an enum-like future is as large as its
            // largest state (19 KiB unboxed, most of an idle connection's memory).
            let accept = Box::pin(async { Ok(acceptor.accept(stream, &mut buf).await) });
            match glommio::timer::timeout(setup, accept).await {
                Ok(Ok(t)) => {
                    let refused = acceptor.only() && !t.is_tls();
                    (t, refused)
                }
                Ok(Err(e)) => {
                    // Clients that do not trust the certificate end up here; not the server's
                    // problem, so not above debug.
                    tracing::debug!(error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => return,
            }
        }
    };
    let mut first = true;
    loop {
        // The first request must arrive within the handshake timeout (slowloris defence);
        // later ones within the keep-alive timeout. The whole head and body share the deadline.
        let wait = if first {
            setup_deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(limits.http_keepalive_secs)
        };
        first = false;
        let read = Box::pin(async {
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
        });
        let read = glommio::timer::timeout(wait, async { Ok(read.await) }).await;
        let grace = Duration::from_secs(limits.close_grace_secs);
        let req = match read {
            Ok(Ok(req)) => req,
            Ok(Err(RequestFailure::Respond(resp))) => {
                if stream.send_all(&resp.encode(true)).await.is_ok() {
                    finish(stream, grace).await;
                }
                return;
            }
            Ok(Err(RequestFailure::Drop)) => return,
            Err(_) => {
                // Timed out: a silent or too-slow client.
                if !buf.is_empty() {
                    let resp = Response::error(408, "request timeout").encode(true);
                    if stream.send_all(&resp).await.is_ok() {
                        finish(stream, grace).await;
                    }
                }
                return;
            }
        };
        let mut req = req;
        req.peer = stream.peer_addr();
        req.tls = stream.is_tls();
        let close = req.close;
        // Copied only when debug logging is on: the request is moved into the router.
        let logged = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| (req.method.clone(), req.raw_path.clone()));
        let routed = if plain_refused {
            refuse_plain(&shard, &req)
        } else {
            Box::pin(route(&shard, req, &access)).await
        };
        match routed {
            Routed::Respond(resp) => {
                if let Some((method, path)) = &logged {
                    tracing::debug!(shard = shard.id, %method, %path, status = resp.status, "http request");
                }
                if stream.send_all(&resp.encode(close)).await.is_err() {
                    return;
                }
                if close {
                    finish(stream, grace).await;
                    return;
                }
            }
            Routed::Xhr(receive) => {
                drop(logged);
                // Boxed: only a receiving request pays for this state, not every idle socket.
                let keep = Box::pin(crate::xhr::receive::run(&shard, &mut stream, *receive)).await;
                if !keep {
                    finish(stream, grace).await;
                    return;
                }
            }
            Routed::Stream(events) => {
                drop(logged);
                events.run(&shard, stream).await;
                return;
            }
            Routed::Upgrade(up) => {
                // Not kept across the session, which lasts as long as the socket.
                drop(logged);
                crate::ws::session::start(shard, stream, up, std::mem::take(&mut buf)).await;
                return;
            }
        }
    }
}

/// Ends a connection the server closes after its response. TLS sends `close_notify` first so
/// the client can tell the end from a truncation (OpenSSL 3 reports an EOF without it as an
/// error); bounded by `grace`, as the client may not be reading. Plain sockets just close.
async fn finish(mut stream: Transport, grace: Duration) {
    if stream.is_tls() {
        let _ = glommio::timer::timeout(grace, async { Ok(stream.close().await) }).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Apps;
    use crate::config::{AppConfig, Limits};
    use crate::http::admin::Surface;
    use std::sync::Arc;

    /// The task of a connection lives as long as its socket, idle WebSockets included, and
    /// keeps the size of its largest state: what is awaited inside `serve` (and inside the
    /// WebSocket session) must stay small or be boxed (docs/architecture.md, invariants).
    /// e37ba41 measured 2,288 bytes, this tree 2,488 (the debug log fields, the request's
    /// `Authorization`); an unboxed client-event publish made it 2,960 and an unboxed
    /// request read or routing state adds several KiB, which this bound catches.
    #[test]
    fn a_connection_task_stays_small() {
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
                let access = Rc::new(Access::new(Surface::Public, None));
                let task = serve(shard, stream, None, access);
                let size = std::mem::size_of_val(&task);
                eprintln!("http::serve future: {size} bytes");
                // 2,504 bytes now. At 2,584 (+80, from fields added to `Request`, which the
                // future holds while a request is read) the idle-connection benchmark showed
                // +0.5 KiB of RSS per connection: the task crossed an allocator size class.
                assert!(size <= 2_520, "http::serve future is {size} bytes");
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
