//! What each client message does: the Pusher commands of a session, checked at the edge
//! (names, limits, signatures, permissions) before anything reaches the shard's tables.
//! Transport-neutral: every transport's reader hands its client messages here (today the
//! WebSocket's, `crate::ws::session`), so a check made here holds for every transport.
//!
//! **Layer:** between the transports and the shard: it imports the shard and the session's
//! state ([`crate::session`]), and nothing above it.

mod chunks;
pub mod tokens;

use crate::channel::event::{Event, Source};
use crate::channel::history::Position;
use crate::channel::name::{self, Access, ChannelKind};
use crate::channel::pattern::{self, Pattern};
use crate::protocol::client::{decode, ClientMsg};
use crate::protocol::identity::{self, presence_data};
use crate::protocol::{codes, server as frames};
use crate::session::{Connection, SignedIn};
use crate::shard::msg::Join;
use crate::shard::{ClientEvent, Shard};
use crate::signature::verify_client_auth;
use crate::webhook::WebhookEvent;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// Handles one client message. A client event that passed every check is returned rather
/// than sent: the read loop publishes it once its queue has room, before the next message.
pub fn on_message(
    shard: &Rc<Shard>,
    conn: &Rc<Connection>,
    bytes: &mut [u8],
) -> Option<ClientEvent> {
    let msg = match decode(bytes) {
        Ok(m) => m,
        Err(e) => {
            conn.out
                .push(frames::error(codes::INVALID_MESSAGE, &e.to_string()));
            return None;
        }
    };
    match msg {
        ClientMsg::Subscribe {
            channel,
            auth,
            channel_data,
            recover,
        } => {
            // A position in the subscribe itself wins over one a `raptor:recover` left.
            let pending = conn.recover_from.borrow_mut().remove(channel.as_str());
            let recover = recover
                .map(|r| Position {
                    offset: r.offset,
                    epoch: Arc::from(r.epoch),
                })
                .or(pending.map(|(offset, epoch)| Position { epoch, offset }));
            subscribe(shard, conn, channel, auth, channel_data, recover)
        }
        ClientMsg::Recover { positions } => {
            let limit = shard.limits().max_subscriptions_per_connection;
            *conn.recover_from.borrow_mut() = positions
                .into_iter()
                .take(limit)
                .map(|(c, r)| (c.into_boxed_str(), (r.offset, Arc::from(r.epoch))))
                .collect();
        }
        ClientMsg::Unsubscribe { channel } => shard.unsubscribe(conn, &channel),
        ClientMsg::Ping => {
            conn.out.push(frames::pong());
        }
        ClientMsg::Pong => {}
        ClientMsg::Signin { auth, user_data } => signin(shard, conn, &auth, &user_data),
        ClientMsg::ClientEvent {
            event,
            channel,
            data,
        } => return client_event(shard, conn, &event, &channel, &data),
        ClientMsg::Other { event } => {
            conn.out.push(frames::error(
                codes::UNSUPPORTED_EVENT,
                &format!("unsupported event `{event}`"),
            ));
        }
    }
    None
}

/// A wildcard subscription (docs/protocol.md "Wildcard subscriptions"): a public pattern as
/// a public channel; a private one only with an access token whose read grant covers the
/// pattern (an app's signature is over one channel name, not the channels a pattern
/// stands for); presence, encrypted, cache and user patterns never.
fn subscribe_pattern(shard: &Rc<Shard>, conn: &Rc<Connection>, channel: String, auth: String) {
    let p = match Pattern::parse(&channel, shard.limits().max_channel_name_bytes) {
        Ok(p) => p,
        Err(e) => return refuse(conn, &channel, "PatternError", &e.to_string(), 400),
    };
    let limit = shard.limits().max_subscriptions_per_connection;
    if !conn.subs.borrow().contains_key(channel.as_str()) && conn.live_subscriptions() >= limit {
        conn.out.push(frames::error(
            codes::TOO_MANY_SUBSCRIPTIONS,
            &format!("at most {limit} subscriptions per connection"),
        ));
        return;
    }
    let granted = match grant(shard, conn, &auth, &channel) {
        Ok(g) => g,
        Err(e) => return refuse(conn, &channel, "TokenError", &e.to_string(), 401),
    };
    let private = ChannelKind::of(&channel).access == Access::Private;
    // The token in `auth`, or the session's: one of its grants must cover every channel
    // the pattern stands for (not merely match the pattern's text).
    let session = conn.token.borrow().clone();
    let covered = granted
        .token
        .iter()
        .chain(session.iter())
        .any(|t| t.claims.read.iter().any(|g| p.covered_by_grant(g)));
    if (private || shard.app(conn.app).require_tokens) && !covered {
        let why = "a private pattern (or any, where the app requires tokens) needs an access token whose read grant covers it";
        return refuse(conn, &channel, "TokenRequired", why, 403);
    }
    if let Some(t) = granted.token {
        keep_auth_token(shard, conn, t);
    }
    shard.subscribe(conn, p.text, None, None);
}

fn refuse(conn: &Connection, channel: &str, kind: &str, error: &str, status: u16) {
    conn.out
        .push(frames::subscription_error(channel, kind, error, status));
}

fn subscribe(
    shard: &Rc<Shard>,
    conn: &Rc<Connection>,
    channel: String,
    auth: Option<String>,
    channel_data: Option<String>,
    recover: Option<Position>,
) {
    if pattern::is_pattern(&channel) {
        return subscribe_pattern(shard, conn, channel, auth.unwrap_or_default());
    }
    if let Err(e) = name::validate(&channel, shard.limits().max_channel_name_bytes) {
        conn.out
            .push(frames::error(codes::INVALID_CHANNEL, &e.to_string()));
        return;
    }
    let limit = shard.limits().max_subscriptions_per_connection;
    if !conn.subs.borrow().contains_key(channel.as_str()) && conn.live_subscriptions() >= limit {
        conn.out.push(frames::error(
            codes::TOO_MANY_SUBSCRIPTIONS,
            &format!("at most {limit} subscriptions per connection"),
        ));
        return;
    }
    let app = shard.app(conn.app);
    let socket_id = conn.socket_id.to_string();
    let auth = auth.unwrap_or_default();
    // An access token in `auth`, or the session's: its read grants authorize the channel.
    let granted = match grant(shard, conn, &auth, &channel) {
        Ok(g) => g,
        Err(e) => return refuse(conn, &channel, "TokenError", &e.to_string(), 401),
    };
    // A signed-in user's own `#server-to-user-` channel needs no grant (pusher-js subscribes
    // to it by itself after a sign-in; only that user may, see below).
    let own_channel = ChannelKind::of(&channel).access == Access::User;
    if app.require_tokens && !granted.read && !own_channel {
        return refuse(
            conn,
            &channel,
            "TokenRequired",
            "this app needs an access token with a read grant for this channel",
            403,
        );
    }
    // A session with a token and no `auth`: the token is what was meant to authorize (an
    // SSE stream cannot send one), so say that it does not, not that a signature is bad.
    let access = ChannelKind::of(&channel).access;
    let by_token = auth.is_empty() && conn.token.borrow().is_some();
    if by_token && !granted.read && matches!(access, Access::Private | Access::Presence) {
        let why = "the session's token grants no read of this channel";
        return refuse(conn, &channel, "TokenError", why, 403);
    }
    let join = match access {
        Access::Public => None,
        Access::Private if granted.read => None,
        Access::Private => {
            if !verify_client_auth(
                &app.key,
                &app.secret,
                &auth,
                &format!("{socket_id}:{channel}"),
            ) {
                return refuse(
                    conn,
                    &channel,
                    "AuthError",
                    "invalid signature for this socket and channel",
                    401,
                );
            }
            None
        }
        Access::Presence => {
            let Some(data) = channel_data else {
                return refuse(
                    conn,
                    &channel,
                    "AuthError",
                    "presence channels need channel_data",
                    401,
                );
            };
            let signed = verify_client_auth(
                &app.key,
                &app.secret,
                &auth,
                &format!("{socket_id}:{channel}:{data}"),
            );
            if !granted.read && !signed {
                return refuse(
                    conn,
                    &channel,
                    "AuthError",
                    "invalid signature for this socket, channel and channel_data",
                    401,
                );
            }
            match presence_data(&data, app.max_presence_user_info_bytes) {
                Err(e) => return refuse(conn, &channel, "InvalidChannelData", &e.to_string(), 400),
                // Signed by the app's backend: channel_data as signed.
                Ok(p) if signed => Some(Join {
                    user_id: Arc::from(p.user_id),
                    user_info: p.user_info.map(Box::from),
                    privileged: p.privileged,
                }),
                // Authorized by a token only: nobody signed channel_data, so the member is the
                // token's user with the token's info, never privileged.
                Ok(p) => match &granted.sub {
                    Some(sub) if *sub == p.user_id => {
                        let info = granted.info.as_deref();
                        if info.is_some_and(|i| i.len() > app.max_presence_user_info_bytes) {
                            let why =
                                "the token's info is larger than max_presence_user_info_bytes";
                            return refuse(conn, &channel, "InvalidChannelData", why, 400);
                        }
                        Some(Join {
                            user_id: Arc::from(p.user_id),
                            user_info: info.map(Box::from),
                            privileged: false,
                        })
                    }
                    _ => {
                        let why = "channel_data user_id is not the token's sub";
                        return refuse(conn, &channel, "TokenError", why, 401);
                    }
                },
            }
        }
        Access::User => {
            let own = conn
                .user_id()
                .is_some_and(|u| channel["#server-to-user-".len()..] == *u);
            if !own {
                return refuse(
                    conn,
                    &channel,
                    "AuthError",
                    "only the signed-in user may subscribe to its channel",
                    403,
                );
            }
            None
        }
    };
    if let Some(t) = granted.token {
        keep_auth_token(shard, conn, t);
    }
    shard.subscribe(conn, Arc::from(channel), join, recover);
}

fn signin(shard: &Rc<Shard>, conn: &Rc<Connection>, auth: &str, user_data: &str) {
    let app = shard.app(conn.app);
    if !app.enable_user_authentication {
        conn.out.push(frames::error(
            codes::SIGNIN_FAILED,
            "user authentication is disabled for this app",
        ));
        return;
    }
    if crate::token::looks_like_token(auth) {
        return tokens::signin(shard, conn, auth, user_data);
    }
    let to_sign = format!("{}::user::{user_data}", conn.socket_id);
    if !verify_client_auth(&app.key, &app.secret, auth, &to_sign) {
        conn.out.push(frames::error(
            codes::SIGNIN_FAILED,
            "invalid signature for this socket and user_data",
        ));
        return;
    }
    let user = match identity::user_data(user_data) {
        Ok(u) => u,
        Err(e) => {
            conn.out
                .push(frames::error(codes::SIGNIN_FAILED, &e.to_string()));
            return;
        }
    };
    if let Some(current) = conn.user_id() {
        if *current != *user.id {
            conn.out.push(frames::error(
                codes::SIGNIN_FAILED,
                "already signed in as another user",
            ));
        } else {
            conn.out.push(frames::signin_success(user_data));
        }
        return;
    }
    conn.out.push(frames::signin_success(user_data));
    if user.watchlist_truncated {
        conn.out.push(frames::error(
            codes::WATCHLIST_LIMIT,
            &format!(
                "watchlist longer than {}; the first {} are kept",
                identity::MAX_WATCHLIST,
                identity::MAX_WATCHLIST
            ),
        ));
    }
    shard.sign_in(
        conn,
        SignedIn {
            id: Arc::from(user.id),
            watchlist: user.watchlist.into_iter().map(Arc::from).collect(),
        },
    );
}

/// The event to publish, if the client may send it.
fn client_event(
    shard: &Rc<Shard>,
    conn: &Rc<Connection>,
    event: &str,
    channel: &str,
    data: &str,
) -> Option<ClientEvent> {
    let app = shard.app(conn.app);
    let refused = |msg: &str| {
        conn.out
            .push(frames::error(codes::CLIENT_EVENT_REFUSED, msg));
        None
    };
    if !app.enable_client_events {
        return refused("client events are disabled for this app");
    }
    let kind = ChannelKind::of(channel);
    let written = conn
        .token
        .borrow()
        .as_ref()
        .is_some_and(|t| t.may_write(channel));
    if app.require_tokens && !written {
        return refused("this app needs an access token with a write grant for this channel");
    }
    // A write grant names the channels, whatever their kind (docs/tokens.md).
    if !written && !matches!(kind.access, Access::Private | Access::Presence) {
        return refused("client events are only allowed on private and presence channels");
    }
    if kind.encrypted {
        return refused("client events are not allowed on encrypted channels");
    }
    if pattern::is_pattern(channel) {
        return refused("client events go to a channel, not to a wildcard subscription");
    }
    let Some(sub) = conn.active_sub(channel) else {
        return refused("subscribe to the channel before sending client events");
    };
    if kind.privileged && !sub.privileged {
        return refused("only privileged members may send client events on this channel");
    }
    if event.len() > shard.limits().max_event_name_bytes {
        return refused("event name too long");
    }
    if data.len() > shard.limits().max_event_data_bytes {
        conn.out.push(frames::error(
            codes::EVENT_TOO_LARGE,
            &format!(
                "event data larger than {} bytes",
                shard.limits().max_event_data_bytes
            ),
        ));
        return None;
    }
    if chunks::is_checked_chunk(&app, event) {
        if !chunks::take_chunk(shard, conn, &app, channel, event, data) {
            return None;
        }
    } else if !conn.take_client_event(app.client_events_per_second, Instant::now()) {
        conn.out.push(frames::error(
            codes::CLIENT_EVENT_RATE_LIMIT,
            "Client event rejected due to rate limit",
        ));
        return None;
    }
    let user_id = sub.user_id.as_deref();
    Some(ClientEvent {
        app: app.idx,
        channel: Arc::from(channel),
        event: Event {
            name: event.into(),
            data: data.into(),
            user_id: sub.user_id.clone(),
            source: Source::Client,
        },
        exclude: conn.socket_id,
        webhook: WebhookEvent::ClientEvent {
            channel: channel.to_string(),
            event: event.to_string(),
            data: data.to_string(),
            socket_id: conn.socket_id.to_string(),
            user_id: user_id.map(str::to_string),
        },
    })
}

/// What the access tokens of a subscribe allow for its channel.
struct Granted {
    /// A token (in `auth`, or the session's) has a read grant for the channel.
    read: bool,
    /// That token's user and info (`info` as JSON), if it names them.
    sub: Option<String>,
    info: Option<String>,
    /// The token in `auth` that granted it (kept by the connection, for revocation and
    /// expiry).
    token: Option<Rc<crate::token::Token>>,
}

impl Granted {
    fn of(t: &crate::token::Token, channel: &str) -> Granted {
        let read = t.may_read(channel);
        Granted {
            read,
            sub: t.claims.sub.clone().filter(|_| read),
            info: t
                .claims
                .info
                .as_ref()
                .filter(|_| read)
                .map(|i| simd_json::to_string(i).unwrap_or_default()),
            token: None,
        }
    }
}

/// Keeps a token that authorized a subscription, once per distinct token, bounded.
fn keep_auth_token(shard: &Shard, conn: &Connection, t: Rc<crate::token::Token>) {
    let mut kept = conn.auth_tokens.borrow_mut();
    if kept.iter().any(|k| k.raw == t.raw) {
        return;
    }
    if kept.len() >= shard.limits().max_subscriptions_per_connection {
        kept.remove(0);
    }
    kept.push(t);
}

/// The read grant for `channel` of the token in `auth` (verified here) or else of the
/// session's token. A malformed, forged, expired or revoked token in `auth` is an error.
fn grant(
    shard: &Shard,
    conn: &Connection,
    auth: &str,
    channel: &str,
) -> Result<Granted, crate::token::TokenError> {
    if crate::token::looks_like_token(auth) {
        // Presented before on this connection (pusher-js authorizes each channel): the
        // verified token is reused, its revocation and expiry checked again.
        let cached = conn
            .auth_tokens
            .borrow()
            .iter()
            .find(|k| &*k.raw == auth)
            .cloned();
        if let Some(t) = cached {
            if shard.is_revoked(conn.app, &t) {
                return Err(crate::token::TokenError::Revoked);
            }
            if t.expired(crate::token::now_secs()) {
                return Err(crate::token::TokenError::Expired);
            }
            let mut g = Granted::of(&t, channel);
            g.token = g.read.then_some(t);
            return Ok(g);
        }
        let t = tokens::verify(shard, conn, auth)?;
        // A session is what a use counts; a subscription's `auth` has none.
        if t.claims.uses.is_some() {
            return Err(crate::token::TokenError::UsesAtSignin);
        }
        let mut g = Granted::of(&t, channel);
        g.token = g.read.then(|| Rc::new(t));
        return Ok(g);
    }
    let session = conn.token.borrow();
    Ok(match session.as_ref() {
        Some(t) => Granted::of(t, channel),
        None => Granted {
            read: false,
            sub: None,
            info: None,
            token: None,
        },
    })
}
