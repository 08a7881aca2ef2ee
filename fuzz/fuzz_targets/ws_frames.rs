//! WebSocket frames from a client, read the way a Pusher session reads them: a server-role
//! tungstenite `WebSocketContext` fed through the same `ws::sansio::SansIo` adapter and
//! configuration as `ws::session`. The first input byte picks how the rest is split into
//! socket reads (1 to 256 bytes each), so frames also arrive in pieces. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raptor_engine::config::Limits;
use raptor_engine::ws::sansio::SansIo;
use std::io::ErrorKind;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let max = Limits::default().max_ws_message_bytes;
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let mut ctx = WebSocketContext::new(Role::Server, Some(config));
    let mut io = SansIo::new(Vec::new());
    for piece in rest.chunks(usize::from(split) + 1) {
        io.inb.drain(..io.pos);
        io.pos = 0;
        io.inb.extend_from_slice(piece);
        loop {
            match ctx.read(&mut io) {
                Ok(Message::Close(_)) => {
                    // The session sends tungstenite's close reply and stops reading.
                    let _ = ctx.flush(&mut io);
                    return;
                }
                Ok(_) => {
                    let _ = ctx.flush(&mut io);
                }
                Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                // Every other error closes the connection.
                Err(_) => return,
            }
        }
        io.out.clear();
    }
});
