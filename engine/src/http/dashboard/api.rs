//! The admin API's routes (docs/dashboard.md): who may call them, and what they answer.

use super::session::unix_secs;
use super::stream::EventStream;
use super::Dashboard;
use crate::app::App;
use crate::channel::name::{self, ChannelKind};
use crate::http::admin;
use crate::http::channels::{channel_attributes, to_json};
use crate::http::request::{decode, Request};
use crate::http::response::Response;
use crate::http::router::{terminate, Routed};
use crate::shard::Shard;
use serde::{Deserialize, Serialize};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Channels one list answer holds at most.
const MAX_LIST: usize = 200;

/// Routes `/dashboard[/...]` and `/admin/api/...` (`segs` without the leading slash).
pub async fn route(
    shard: &Rc<Shard>,
    req: &Request,
    dash: &Arc<Dashboard>,
    segs: &[&str],
) -> Routed {
    let resp = match (req.method.as_str(), segs) {
        ("GET", ["dashboard"]) | ("GET", ["dashboard", ""]) => page("index.html"),
        ("GET", ["dashboard", file]) => page(file),
        (_, ["dashboard", ..]) => Response::error(405, "method not allowed"),
        ("POST", ["admin", "api", "login"]) => login(dash, req),
        (_, ["admin", "api", rest @ ..]) => {
            if let Err(refused) = admin::admit_admin(dash, req) {
                return Routed::Respond(refused);
            }
            match (req.method.as_str(), rest) {
                ("POST", ["logout"]) => logout(dash),
                ("GET", ["overview"]) => overview(dash),
                ("GET", ["series"]) => series(dash, req),
                ("GET", ["stream"]) => return stream(dash),
                ("GET", ["apps", id, "channels"]) => {
                    with_app(shard, id, |app| top(shard, app, req)).await
                }
                ("GET", ["apps", id, "channels", name]) => {
                    let name = decode(name);
                    with_app(shard, id, |app| inspect(shard, app, name)).await
                }
                ("POST", ["apps", id, "publish"]) => {
                    with_app(shard, id, |app| publish(shard, app, req)).await
                }
                ("POST", ["apps", id, "users", user, "terminate"]) => {
                    let user = decode(user);
                    with_app(
                        shard,
                        id,
                        |app| async move { terminate(shard, &app, &user) },
                    )
                    .await
                }
                ("POST", ["drain"]) => drain(shard),
                _ => Response::error(404, "no such endpoint"),
            }
        }
        _ => Response::error(404, "no such endpoint"),
    };
    Routed::Respond(resp)
}

fn page(file: &str) -> Response {
    match super::asset(file) {
        Some((content_type, body)) => {
            let mut r = Response::text(200, body);
            r.content_type = content_type;
            // Nothing from elsewhere, no framing by other sites, no caching of a stale build.
            r.extra_headers.push_str(
                "Content-Security-Policy: default-src 'self'; img-src 'self' data:; frame-ancestors 'none'\r\n\
                 X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n",
            );
            r
        }
        None => Response::error(404, "no such file"),
    }
}

fn login(dash: &Dashboard, req: &Request) -> Response {
    if let Err(r) = admin::not_cross_site(req) {
        return r;
    }
    #[derive(Deserialize)]
    struct Body {
        password: String,
    }
    let mut body = req.body.clone();
    let given: Option<Body> = simd_json::serde::from_slice(&mut body).ok();
    let password = given.map(|b| b.password).unwrap_or_default();
    if let Err(refused) = admin::check_password(dash, &password) {
        return refused;
    }
    let mut r = Response::json(200, r#"{"ok":true}"#);
    let secure = if req.tls { "; Secure" } else { "" };
    r.extra_headers.push_str(&format!(
        "Set-Cookie: {}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}\r\n",
        dash.auth.cookie_name(),
        dash.auth.issue(unix_secs()),
        dash.auth.session_secs()
    ));
    r
}

/// Clears this browser's cookie. Sessions are stateless: the value itself stays valid until
/// it expires (or the node restarts), which docs/dashboard.md says.
fn logout(dash: &Dashboard) -> Response {
    let mut r = Response::json(200, r#"{"ok":true}"#);
    r.extra_headers.push_str(&format!(
        "Set-Cookie: {}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0\r\n",
        dash.auth.cookie_name()
    ));
    r
}

fn overview(dash: &Dashboard) -> Response {
    match dash.board() {
        Some(b) => Response::json(200, b.overview.clone()),
        None => Response::error(503, "the first sample is not ready yet; retry in a second"),
    }
}

fn series(dash: &Dashboard, req: &Request) -> Response {
    let Some(b) = dash.board() else {
        return Response::error(503, "the first sample is not ready yet; retry in a second");
    };
    #[derive(Serialize)]
    struct Out<'a> {
        resolution_secs: u64,
        points: &'a [super::history::Point],
    }
    let out = match req.param("range").unwrap_or("15m") {
        "15m" => Out {
            resolution_secs: 1,
            points: &b.seconds,
        },
        "24h" => Out {
            resolution_secs: 60,
            points: &b.minutes,
        },
        _ => return Response::error(400, "range must be 15m or 24h"),
    };
    Response::json(200, to_json(&out))
}

fn stream(dash: &Arc<Dashboard>) -> Routed {
    match EventStream::open(dash.clone()) {
        Some(s) => Routed::Stream(s),
        None => Routed::Respond(Response::error(503, "too many dashboard streams")),
    }
}

async fn with_app<F, Fut>(shard: &Shard, id: &str, f: F) -> Response
where
    F: FnOnce(Arc<App>) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let app = shard.apps().by_id(id).cloned();
    match app {
        Some(app) => f(app).await,
        None => Response::error(404, &format!("unknown app `{id}`")),
    }
}

async fn top(shard: &Rc<Shard>, app: Arc<App>, req: &Request) -> Response {
    let by_rate = match req.param("sort").unwrap_or("subscribers") {
        "subscribers" => false,
        "rate" => true,
        _ => return Response::error(400, "sort must be subscribers or rate"),
    };
    let limit = req
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, MAX_LIST);
    let all = match shard.top_channels(app.idx, by_rate, limit).await {
        Ok(all) => all,
        Err(e) => return e.into(),
    };
    #[derive(Serialize)]
    struct Channel {
        name: String,
        subscription_count: u32,
        user_count: u32,
        messages_per_sec: u32,
    }
    #[derive(Serialize)]
    struct Out {
        channels: Vec<Channel>,
    }
    let channels = all
        .into_iter()
        .map(|(name, subs, users, rate)| Channel {
            name,
            subscription_count: subs,
            user_count: users,
            messages_per_sec: rate,
        })
        .collect();
    Response::json(200, to_json(&Out { channels }))
}

async fn inspect(shard: &Rc<Shard>, app: Arc<App>, channel: String) -> Response {
    if let Err(e) = name::validate(&channel, shard.limits().max_channel_name_bytes) {
        return Response::error(400, &format!("invalid channel: {e}"));
    }
    let kind = ChannelKind::of(&channel);
    let name: Arc<str> = Arc::from(channel.as_str());
    let mut info = vec!["subscription_count".to_string(), "cache".to_string()];
    if kind.is_presence() {
        info.push("user_count".into());
    }
    let attrs = match channel_attributes(shard, &app, &name, &info, true).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let members = if kind.is_presence() {
        match shard.member_ids(app.idx, name.clone()).await {
            Ok(ids) => Some(ids),
            Err(e) => return e.into(),
        }
    } else {
        None
    };
    #[derive(Serialize)]
    struct Cache {
        data: String,
        ttl_secs: u64,
    }
    #[derive(Serialize)]
    struct Out {
        name: String,
        occupied: bool,
        subscription_count: u32,
        user_count: u32,
        members: Option<Vec<String>>,
        cache: Option<Cache>,
    }
    let out = Out {
        name: channel,
        occupied: attrs.occupied.unwrap_or(false),
        subscription_count: attrs.subscription_count.unwrap_or(0),
        user_count: attrs.user_count.unwrap_or(0),
        members,
        cache: attrs.cache.map(|c| Cache {
            data: c.data,
            ttl_secs: c.ttl,
        }),
    };
    Response::json(200, to_json(&out))
}

/// A test event, published like the HTTP API's (same checks, limits and ordering).
async fn publish(shard: &Rc<Shard>, app: Arc<App>, req: &Request) -> Response {
    #[derive(Deserialize)]
    struct Body {
        channel: String,
        event: String,
        data: String,
    }
    let mut raw = req.body.clone();
    let Ok(b) = simd_json::serde::from_slice::<Body>(&mut raw) else {
        return Response::error(
            400,
            "body must be {\"channel\",\"event\",\"data\"} (strings)",
        );
    };
    #[derive(Serialize)]
    struct ApiBody<'a> {
        name: &'a str,
        channel: &'a str,
        data: &'a str,
    }
    let api = Request {
        method: "POST".into(),
        body: to_json(&ApiBody {
            name: &b.event,
            channel: &b.channel,
            data: &b.data,
        }),
        ..Request::default()
    };
    crate::http::events::publish(shard, &app, &api).await
}

/// A graceful leave, as SIGTERM: the main thread sees the flag, leaves the cluster and
/// drains.
fn drain(shard: &Shard) -> Response {
    tracing::warn!("drain requested through the admin API");
    shard.node.shutdown.store(true, Ordering::SeqCst);
    Response::json(202, r#"{"draining":true}"#)
}
