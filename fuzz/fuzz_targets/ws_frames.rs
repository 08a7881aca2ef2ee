//! WebSocket frames from a client, read the way a Pusher session reads them: tungstenite's
//! server-role `WebSocketContext`, held by the same `ws::context::Context` (dropped at each
//! message boundary, made again for the next bytes) and fed through the same
//! `ws::sansio::SansIo` adapter and configuration as `ws::session`. The first input byte
//! picks how the rest is split into socket reads (1 to 256 bytes each), so frames also arrive
//! in pieces. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raptor_engine::config::Limits;
use raptor_engine::ws::context::Context;
use raptor_engine::ws::sansio::SansIo;
use std::io::ErrorKind;
use tungstenite::{Error, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let mut ctx = Context::new(1024, Limits::default().max_ws_message_bytes);
    for piece in rest.chunks(usize::from(split) + 1) {
        let mut io = SansIo::new(piece);
        loop {
            match ctx.get().read(&mut io) {
                Ok(Message::Close(_)) => {
                    // The session sends tungstenite's close reply and stops reading.
                    let _ = ctx.get().flush(&mut io);
                    return;
                }
                Ok(_) => {
                    let _ = ctx.get().flush(&mut io);
                }
                Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    ctx.consumed(&io, true);
                    break;
                }
                // Every other error closes the connection.
                Err(_) => return,
            }
        }
    }
});
