//! HTTP/1.1 messages: reading a request (head and bounded body) and formatting a response.
//! Nothing here knows routes or WebSockets.
//!
//! **Boundary:** below both [`crate::http`] (the REST edge and its router) and [`crate::ws`]
//! (the upgrade), so neither has to import the other to speak HTTP; it imports nothing of
//! the crate.

pub mod request;
pub mod response;
