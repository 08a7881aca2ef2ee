//! The HTTP/1.1 edge: every accepted socket starts here. A request is either a WebSocket
//! upgrade (handed to [`crate::ws`]) or a REST API call; keep-alive is supported.

pub mod admin;
pub mod auth;
pub mod channels;
pub mod conn;
pub mod dashboard;
pub mod events;
pub mod history;
pub mod metrics;
pub mod presence;
pub mod reload;
pub mod router;
pub mod tokens;

pub use conn::serve;
// The HTTP/1.1 messages live one layer down, in `crate::http1`, so `ws` can use them without
// importing this module; re-exported so the handlers here keep their short paths.
pub use crate::http1::{request, response};
