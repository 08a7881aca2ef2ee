//! The WebSocket edge: the HTTP upgrade and the per-connection
//! session that reads client frames (through tungstenite's sans-IO `WebSocketContext`).

pub mod dispatch;
pub mod echo;
pub mod handshake;
pub mod sansio;
pub mod session;
