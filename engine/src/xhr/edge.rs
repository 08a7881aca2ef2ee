//! Where a request under the HTTP transports' path is answered or handed on: checks what
//! can be checked on the request's own shard (the app, its origins, the protocol version, a
//! token's signature), answers preflights and sends, and turns a receiving request into a
//! [`Receive`] for [`super::receive::run`].

use super::framing::{self, OPEN};
use super::sse::Follow;
use super::{cors, home_of, Kind, Mode, Open, Route, XhrMsg};
use crate::http::router::Routed;
use crate::http1::request::Request;
use crate::http1::response::Response;
use crate::protocol::{codes, server as frames};
use crate::shard::msg::{Reply, ShardMsg};
use crate::shard::Shard;
use crate::ws::handshake::PROTOCOL;
use std::rc::Rc;
use std::sync::Arc;

pub use super::receive::Receive;

/// Answers a request whose path [`super::parse`] read as `parsed`.
pub async fn route(shard: &Rc<Shard>, req: Request, parsed: Result<Route<'_>, &str>) -> Routed {
    let respond = Routed::Respond;
    let r = match parsed {
        Ok(r) => r,
        Err(why) => return respond(Response::error(404, why)),
    };
    let Some(app) = shard.apps().by_key(r.app_key).cloned() else {
        // Readable from any page: a browser must see the refusal, not a CORS failure.
        let mut resp = match r.kind {
            _ if req.method == "OPTIONS" => cors::preflight_any(),
            // pusher-js acts on a Pusher refusal (4001: do not retry), not on a 404.
            Kind::Streaming | Kind::Polling if req.method == "POST" => {
                refusal(codes::APP_NOT_FOUND, "App key not in this cluster")
            }
            _ => Response::error(404, "unknown app key"),
        };
        if req.origin.is_some() {
            resp.extra_headers.push_str(cors::ANY);
        }
        return respond(resp);
    };
    let origin = req.origin.as_deref();
    if req.method == "OPTIONS" {
        return respond(cors::preflight(&app, origin));
    }
    let cors = match cors::allow(&app, origin) {
        Ok(h) => h,
        Err(refused) => return respond(refused),
    };
    let wanted = if r.kind == Kind::Sse { "GET" } else { "POST" };
    if req.method != wanted {
        return respond(cors::with(
            &app,
            origin,
            Response::error(405, "method not allowed"),
        ));
    }
    let token = req.param("token").map(str::to_string);
    let mode = match r.kind {
        Kind::Send => {
            let key: Arc<str> =
                Arc::from(format!("{}/{}", r.app_key, r.session.unwrap_or_default()));
            let resp = send(shard, key, req.body).await;
            return respond(cors::with(&app, origin, resp));
        }
        Kind::Streaming | Kind::Polling => {
            let refused = match req.param("protocol") {
                None => Some((codes::NO_PROTOCOL, "No protocol version supplied")),
                Some(PROTOCOL) => None,
                Some(_) => Some((
                    codes::UNSUPPORTED_PROTOCOL,
                    "Unsupported protocol version (7 is supported)",
                )),
            };
            if let Some((code, message)) = refused {
                return respond(cors::with(&app, origin, refusal(code, message)));
            }
            if r.kind == Kind::Streaming {
                Mode::Streaming
            } else {
                Mode::Polling
            }
        }
        Kind::Sse => Mode::Sse,
    };
    let (key, home, sse) = if mode == Mode::Sse {
        let channels = req
            .query
            .iter()
            .filter(|(k, _)| k == "channel")
            .map(|(_, v)| v.clone())
            .collect();
        let last = req
            .admin
            .as_ref()
            .and_then(|a| a.last_event_id.as_deref())
            .or(req.param("last_event_id"));
        let max = shard.limits().max_subscriptions_per_connection;
        let follow = match Follow::new(channels, last, max) {
            Ok(f) => f,
            Err(why) => return respond(cors::with(&app, origin, Response::error(400, &why))),
        };
        // Refused in HTTP, not in the stream: an EventSource retries a stream that ends,
        // but gives up on an error status.
        let unauthorized = match &token {
            None if follow.needs_token() => Some(
                "private and presence channels need ?token= (an access token with a read grant, docs/tokens.md)"
                    .to_string(),
            ),
            None => None,
            Some(t) => crate::token::verify(&app.key, &app.secret, t, crate::token::now_secs())
                .err()
                .map(|e| e.to_string()),
        };
        if let Some(why) = unauthorized {
            return respond(cors::with(&app, origin, Response::error(401, &why)));
        }
        // Nothing else finds an event stream's session, so it lives here.
        let n = shard.xhr.next_id(shard.id);
        let key = Arc::from(format!("{}/sse/{n}", r.app_key));
        (key, shard.id, Some(Box::new(follow)))
    } else {
        let key: Arc<str> = Arc::from(format!("{}/{}", r.app_key, r.session.unwrap_or_default()));
        let home = home_of(&key, shard.nr_shards);
        (key, home, None)
    };
    Routed::Xhr(Box::new(Receive {
        key: key.clone(),
        home,
        open: Open {
            key,
            from: shard.id,
            rid: 0,
            app: app.idx,
            mode,
            token,
            sse,
        },
        cors,
        keep_alive: !req.close,
    }))
}

/// A Pusher refusal as a receiver's whole answer: open, the error, the close.
fn refusal(code: u16, message: &str) -> Response {
    let mut body = OPEN.to_vec();
    framing::messages(&mut body, [frames::error(code, message).payload()]);
    framing::close(&mut body, code, message);
    let mut r = Response::json(200, body);
    r.content_type = "application/javascript; charset=UTF-8";
    r
}

/// Forwards an `xhr_send` body to its session's home and answers with what it decided.
async fn send(shard: &Rc<Shard>, key: Arc<str>, body: Vec<u8>) -> Response {
    let home = home_of(&key, shard.nr_shards);
    let from = shard.id;
    let asked = shard
        .request(home, |id| {
            ShardMsg::Xhr(Box::new(XhrMsg::Send {
                key,
                from,
                id,
                body,
            }))
        })
        .await;
    match asked {
        Ok(Reply::Status(204)) => {
            let mut r = Response::json(204, "");
            r.content_type = "text/plain; charset=UTF-8";
            r
        }
        Ok(Reply::Status(400)) => Response::error(
            400,
            "the body must be a JSON array of strings (Pusher messages)",
        ),
        Ok(Reply::Status(404)) => Response::error(404, "no such session"),
        Ok(Reply::Status(405)) => Response::error(405, "an event stream takes no sends"),
        Ok(Reply::Status(413)) => Response::error(
            413,
            "message too big (limits.max_ws_message_bytes); the session is closed with 1009",
        ),
        Ok(Reply::Status(429)) => Response::error(
            429,
            "too many sends waiting for this session (limits.http_fallback.max_pending_sends)",
        ),
        Ok(_) => Response::error(500, "unexpected answer"),
        Err(_) => Response::error(503, "the session's shard did not answer in time"),
    }
}
