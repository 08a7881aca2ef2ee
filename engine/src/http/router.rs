//! Which handler answers a request.

use super::admin::{Access, Surface};
use super::auth;
use super::request::{decode, Request};
use super::response::Response;
use super::{channels, events, history, presence, tokens};
use crate::app::App;
use crate::protocol::codes;
use crate::shard::Shard;
use crate::ws::echo;
use crate::ws::handshake::{self, Outcome, Upgrade};
use std::rc::Rc;
use std::sync::Arc;

pub enum Routed {
    Respond(Response),
    Upgrade(Upgrade),
    /// `GET /admin/api/stream`: the connection becomes an event stream.
    Stream(super::dashboard::stream::EventStream),
    /// A request that receives an HTTP transport's session (`crate::xhr`).
    Xhr(Box<crate::xhr::Receive>),
}

/// Answers `req`, which came in on the listener `access` guards.
pub async fn route(shard: &Rc<Shard>, req: Request, access: &Access) -> Routed {
    let path = req.raw_path.clone();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let ["dashboard", ..] | ["admin", "api", ..] = segs.as_slice() {
        return match &access.dashboard {
            Some(d) => super::dashboard::api::route(shard, &req, d, &segs).await,
            None => Routed::Respond(Response::error(404, "no such endpoint")),
        };
    }
    if access.surface == Surface::Metrics {
        return Routed::Respond(metrics_listener(shard, &req, &segs, access).await);
    }
    let fallback = {
        let limits = shard.limits();
        let f = &limits.http_fallback;
        f.enabled.then(|| f.path.clone())
    };
    if let Some(parsed) = fallback
        .as_deref()
        .and_then(|p| crate::xhr::parse(&path, p))
    {
        return crate::xhr::route(shard, req, parsed).await;
    }
    let resp = match (req.method.as_str(), segs.as_slice()) {
        (_, ["app", ..]) if req.upgrade_websocket => return upgrade(shard, &req),
        (_, ["app", _]) => Response::error(426, "this endpoint expects a WebSocket upgrade"),
        // Test-only (`--ws-echo`); a 404 like any unknown path when off.
        (_, ["echo"]) if echo::enabled() && req.upgrade_websocket => return upgrade(shard, &req),
        ("GET", [""]) => Response::text(
            200,
            "Raptor: a realtime messaging and presence server speaking the Pusher Channels protocol v7.\n\
             WebSocket: /app/{key}?protocol=7   HTTP API: /apps/{id}/...   Liveness: /health\n",
        ),
        ("GET", ["metrics"]) => operator(shard, &req, access, Operator::Metrics).await,
        ("GET", ["stats"]) => operator(shard, &req, access, Operator::Stats).await,
        ("POST", ["admin", "reload"]) => operator(shard, &req, access, Operator::Reload).await,
        ("GET", ["health"]) => health(shard),
        (_, [""]) | (_, ["health"]) | (_, ["admin", "reload"]) => {
            Response::error(405, "method not allowed")
        }
        // The PyPI SDK posts here without the /apps/{id} prefix; the signing key picks the app.
        ("POST", ["users", user, "terminate_connections"]) => match authed_by_key(shard, &req) {
            Err(resp) => resp,
            Ok(app) => terminate(shard, &app, &decode(user)),
        },
        (m, ["apps", id, rest @ ..]) => match authed(shard, id, &req) {
            Err(resp) => resp,
            Ok(app) => match (m, rest) {
                ("POST", ["events"] | ["batch_events"]) if shard.node.refuses_publishes().is_some() => {
                    unavailable(shard.node.refuses_publishes().unwrap_or_default())
                }
                ("POST", ["events"]) => events::publish(shard, &app, &req).await,
                ("POST", ["batch_events"]) => events::batch(shard, &app, &req).await,
                ("GET", ["channels"]) => channels::list(shard, &app, &req).await,
                ("GET", ["channels", name]) => channels::info(shard, &app, &req, &decode(name)).await,
                ("GET", ["channels", name, "users"]) => channels::users(shard, &app, &decode(name)).await,
                ("GET", ["channels", name, "history"]) => history::read(shard, &app, &req, &decode(name)).await,
                ("POST", ["channels", name, "history", "remove"]) => history::remove(shard, &app, &decode(name)).await,
                ("POST", ["channels", name, "history", offset, "edit"]) => {
                    history::edit(shard, &app, &req, &decode(name), offset).await
                }
                ("POST", ["channels", name, "history", offset, "delete"]) => {
                    history::delete(shard, &app, &decode(name), offset).await
                }
                (
                    _,
                    ["channels", _, "history"]
                    | ["channels", _, "history", "remove"]
                    | ["channels", _, "history", _, "edit" | "delete"],
                ) => Response::error(405, "method not allowed"),
                ("POST", ["users", user, "terminate_connections"]) => terminate(shard, &app, &decode(user)),
                ("POST", ["users", user, "presence"]) => presence::update(shard, &app, &req, &decode(user)),
                (_, ["users", _, "presence"]) => Response::error(405, "method not allowed"),
                ("POST", ["tokens"]) => tokens::mint(&app, &req),
                ("POST", ["tokens", "revoke"]) => tokens::revoke(shard, &app, &req),
                (_, ["tokens"] | ["tokens", "revoke"]) => Response::error(405, "method not allowed"),
                (_, ["events"] | ["batch_events"] | ["channels"] | ["channels", _] | ["channels", _, "users"]) => {
                    Response::error(405, "method not allowed")
                }
                _ => Response::error(404, "no such endpoint"),
            },
        },
        _ => Response::error(404, "no such endpoint"),
    };
    Routed::Respond(resp)
}

/// The whole of the metrics listener: the operator routes and `/health`. Never a WebSocket
/// or the app API; any other request gets 404.
async fn metrics_listener(
    shard: &Rc<Shard>,
    req: &Request,
    segs: &[&str],
    access: &Access,
) -> Response {
    match (req.method.as_str(), segs) {
        ("GET", ["metrics"]) => operator(shard, req, access, Operator::Metrics).await,
        ("GET", ["stats"]) => operator(shard, req, access, Operator::Stats).await,
        ("POST", ["admin", "reload"]) => operator(shard, req, access, Operator::Reload).await,
        ("GET", ["health"]) => health(shard),
        (_, ["health"]) | (_, ["admin", "reload"]) => Response::error(405, "method not allowed"),
        _ => Response::error(404, "no such endpoint"),
    }
}

/// The operator routes: node-wide figures, for operators only. A new admin endpoint gets a
/// variant here, and so the same guard.
#[derive(Clone, Copy)]
enum Operator {
    Metrics,
    Stats,
    Reload,
}

/// Every operator route, on either listener, behind the one guard.
async fn operator(shard: &Rc<Shard>, req: &Request, access: &Access, route: Operator) -> Response {
    if let Err(refused) = access.admit(req) {
        return refused;
    }
    match route {
        Operator::Metrics => super::metrics::metrics(shard).await,
        Operator::Stats => super::metrics::stats(shard).await,
        Operator::Reload => super::reload::reload(shard, req).await,
    }
}

/// `GET /health`: 503 once a SIGTERM drain started, so a load balancer stops sending traffic
/// here (the public listener is closed by then; this answers connections already open).
fn health(shard: &Shard) -> Response {
    if shard.node.shutting_down() {
        Response::json(503, r#"{"ok":false,"draining":true}"#)
    } else {
        Response::json(200, r#"{"ok":true}"#)
    }
}

/// 503 with `Retry-After: 1`: a publish this node would acknowledge and deliver to no one
/// (it drains, or has not met its cluster yet); another node, or this one shortly, takes it.
fn unavailable(why: &str) -> Response {
    let mut r = Response::error(503, why);
    r.extra_headers.push_str("Retry-After: 1\r\n");
    r
}

/// A WebSocket upgrade request: completed by the session, or refused in HTTP.
fn upgrade(shard: &Shard, req: &Request) -> Routed {
    handshake::check(shard, req).map_or_else(Routed::Respond, Routed::Upgrade)
}

/// Answers a plain request when `tls.only` refuses plain connections. A WebSocket upgrade is
/// completed and then refused with 4000, which pusher-js takes as "reconnect with wss://" (a
/// refusal in HTTP would look like a network error and be retried as is). Anything else gets
/// 403 before any handler runs, so no credential or data crosses the plain connection.
pub fn refuse_plain(shard: &Shard, req: &Request) -> Routed {
    if !req.upgrade_websocket {
        return Routed::Respond(Response::error(403, "TLS required"));
    }
    match handshake::check(shard, req) {
        Ok(mut up) => {
            up.outcome = Outcome::Refuse {
                code: codes::TLS_ONLY,
                message: TLS_ONLY_MESSAGE,
            };
            Routed::Upgrade(up)
        }
        // Not a valid upgrade (400/405/426): that answer stands.
        Err(resp) => Routed::Respond(resp),
    }
}

/// Pusher's own wording for close code 4000.
pub const TLS_ONLY_MESSAGE: &str =
    "Application only accepts SSL connections, reconnect using wss://";

/// Finds the app named in the path and checks the request's signature.
fn authed(shard: &Shard, id: &str, req: &Request) -> Result<Arc<App>, Response> {
    let apps = shard.apps();
    let app = apps
        .by_id(id)
        .ok_or_else(|| Response::error(404, &format!("unknown app `{id}`")))?;
    admit(app, req)
}

/// Like [`authed`], for paths without an app id: the app is the one whose key signed it.
fn authed_by_key(shard: &Shard, req: &Request) -> Result<Arc<App>, Response> {
    let key = req.param("auth_key").unwrap_or_default();
    let apps = shard.apps();
    let app = apps
        .by_key(key)
        .ok_or_else(|| Response::error(401, "unknown auth_key"))?;
    admit(app, req)
}

/// The one admission of every signed route: the signature, then the app's API rate limit
/// (node-wide; a refusal says when to retry in `Retry-After`).
fn admit(app: &Arc<App>, req: &Request) -> Result<Arc<App>, Response> {
    auth::verify(app, req).map_err(|e| Response::error(401, &e.to_string()))?;
    if let Err(secs) = app.admit_api() {
        let mut r = Response::error(429, "too many API requests for this app; retry later");
        r.extra_headers
            .push_str(&format!("Retry-After: {secs}\r\n"));
        return Err(r);
    }
    Ok(app.clone())
}

/// `POST .../users/{id}/terminate_connections`: closes the user's signed-in connections on
/// every shard.
pub(crate) fn terminate(shard: &Shard, app: &App, user: &str) -> Response {
    if user.is_empty() || user.len() > crate::protocol::identity::MAX_USER_ID {
        return Response::error(400, "invalid user id");
    }
    shard.terminate_user(app.idx, user);
    Response::json(200, "{}")
}
