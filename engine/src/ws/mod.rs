//! The WebSocket transport, one adapter of a session: the HTTP upgrade ([`handshake`]), the
//! one read loop every WebSocket runs ([`reader`]: tungstenite's sans-IO `WebSocketContext`
//! over [`sansio`]), and its two handlers: a Pusher session ([`session`]) and the test-only
//! Autobahn echo ([`echo`]). Its writer is [`crate::outbox`].
//!
//! **Boundary:** the session below ([`crate::session`]) knows nothing of WebSocket; this
//! module turns its frames and closes into WebSocket bytes (through the writer) and
//! WebSocket input into Pusher commands.

mod boundary;
pub mod context;
pub mod echo;
pub mod handshake;
mod reader;
pub mod sansio;
pub mod session;
