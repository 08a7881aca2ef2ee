//! The client↔server JSON boundary. **Boundary:** only this module knows the Pusher JSON
//! shapes; the rest of the engine sees [`client::ClientMsg`] values and finished frames.

pub mod chunks;
pub mod client;
pub mod codes;
pub mod identity;
pub mod server;
