//! The client half of RFC 6455, just enough to speak Pusher.
//!
//! Why hand-rolled instead of tungstenite: tungstenite keeps a read buffer and a write
//! buffer per connection (128 KiB read by default, and even with `WebSocketConfig` set
//! small it still owns a `Vec` per direction plus its own frame state). A load generator
//! holding 10–20k sockets wants the idle cost of a connection to be the kernel socket
//! and a few hundred bytes of state. Here every connection reads into one scratch buffer
//! shared by the whole event loop and keeps bytes only for a frame split across two reads,
//! which is rare for Pusher's small messages. The protocol surface a client needs is small:
//! an HTTP upgrade, masked frames out, unmasked frames in, ping/pong and close.

pub mod frame;
pub mod handshake;
