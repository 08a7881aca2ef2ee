//! Pusher error and close codes used by Raptor (protocol doc §Error Codes), plus Raptor's
//! own `pusher:error` codes in the 43xx "other" range. docs/protocol.md lists them all.

/// Close: the server accepts only TLS (`tls.only`) and this connection is plain. pusher-js
/// reconnects with `wss://` at once (its `tls_only` action).
pub const TLS_ONLY: u16 = 4000;
/// Close: the app key is unknown.
pub const APP_NOT_FOUND: u16 = 4001;
/// Close: the path is not `/app/{key}`.
pub const PATH_NOT_FOUND: u16 = 4005;
/// Close: the `protocol` query parameter is not a supported version.
pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
/// Close: the `protocol` query parameter is missing.
pub const NO_PROTOCOL: u16 = 4008;
/// Close, reconnect after backoff: the client fell behind (its outbound queue overflowed), or
/// the node or the app holds its maximum number of connections (Pusher's 4004 would make
/// pusher-js give up for good; a quota frees up, so 41xx).
pub const OVER_CAPACITY: u16 = 4100;
/// Close: the server is going away; reconnect now.
pub const RECONNECT: u16 = 4200;
/// Close: no pong (or any traffic) after a server ping.
pub const PONG_NOT_RECEIVED: u16 = 4201;

/// Error event: the message is not valid JSON of the Pusher shape.
pub const INVALID_MESSAGE: u16 = 4300;
/// Error event: an event this server does not accept from clients.
pub const UNSUPPORTED_EVENT: u16 = 4310;
/// Error event: bad channel name.
pub const INVALID_CHANNEL: u16 = 4311;
/// Error event: the connection holds the maximum number of subscriptions.
pub const TOO_MANY_SUBSCRIPTIONS: u16 = 4312;

/// WebSocket close codes (RFC 6455 §7.4.1).
pub const WS_PROTOCOL_ERROR: u16 = 1002;
pub const WS_UNSUPPORTED_DATA: u16 = 1003;
pub const WS_INVALID_PAYLOAD: u16 = 1007;
pub const WS_TOO_BIG: u16 = 1009;

/// Close / error: the connection is not authorized (authorized-connections timeout, or the
/// app terminated the user's connections).
pub const UNAUTHORIZED: u16 = 4009;
/// Close: the session's access token expired (4100-4199: pusher-js reconnects after a
/// backoff, and its handlers can present a fresh token). docs/tokens.md.
pub const TOKEN_EXPIRED: u16 = 4102;
/// Error event: client event rate limit (Pusher).
pub const CLIENT_EVENT_RATE_LIMIT: u16 = 4301;
/// Error event: watchlist longer than 100; the first 100 are kept (Pusher).
pub const WATCHLIST_LIMIT: u16 = 4302;
/// Error event: event data too large.
pub const EVENT_TOO_LARGE: u16 = 4313;
/// Error event: sign-in refused (bad signature, bad user_data, or already signed in as
/// another user).
pub const SIGNIN_FAILED: u16 = 4314;
/// Error event: a client event that is not allowed (wrong channel type, not subscribed, not
/// privileged, disabled for the app).
pub const CLIENT_EVENT_REFUSED: u16 = 4315;
/// Error event: a chunk of a `client-chunked-*` event is refused (malformed, a gap, a
/// repeat, an id not open, the whole over the app's cap, too many open or too many bytes in
/// flight, the chunk rate). Raptor's; the connection stays open (docs/protocol.md).
pub const CHUNK_REFUSED: u16 = 4316;
