//! A WebSocket connection's tungstenite `WebSocketContext`, held only while it holds
//! something: part of a frame, or of a fragmented message.
//!
//! Why: the context keeps its read buffer (`read_buffer_size`, 1 KiB for a Pusher session)
//! for the connection's life, and an idle connection is most of a server's connections. At a
//! message boundary ([`Boundary`]) a context knows nothing a new one would not (its pongs and
//! close replies are flushed after every frame, by the read loop), so it is dropped there and
//! made again when bytes arrive. An idle connection keeps one `None` pointer.

use super::boundary::Boundary;
use super::sansio::SansIo;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};

/// One connection's context, made on demand.
#[derive(Debug)]
pub struct Context {
    ctx: Option<Box<WebSocketContext>>,
    boundary: Boundary,
    read_chunk: usize,
    max_message: usize,
}

impl Context {
    /// Contexts that read `read_chunk` bytes at a time and take messages and frames up to
    /// `max_message` bytes.
    pub fn new(read_chunk: usize, max_message: usize) -> Context {
        Context {
            ctx: None,
            boundary: Boundary::default(),
            read_chunk,
            max_message,
        }
    }

    /// The context to read with, made if there is none.
    pub fn get(&mut self) -> &mut WebSocketContext {
        let (read_chunk, max) = (self.read_chunk, self.max_message);
        self.ctx.get_or_insert_with(|| {
            let config = WebSocketConfig::default()
                .read_buffer_size(read_chunk)
                .max_message_size(Some(max))
                .max_frame_size(Some(max));
            Box::new(WebSocketContext::new(Role::Server, Some(config)))
        })
    }

    /// tungstenite consumed `io.inb[..io.pos]`; `drained`: it then asked for more (every byte
    /// of `io.inb` consumed, every complete message read and its replies flushed into
    /// `io.out`). Drops the context when that leaves it at a message boundary.
    pub fn consumed(&mut self, io: &SansIo<'_>, drained: bool) {
        self.boundary.feed(&io.inb[..io.pos]);
        if drained && self.boundary.at_message_boundary() {
            self.ctx = None;
        }
    }

    /// The connection reads no more messages (it is closing): nothing to keep.
    pub fn release(&mut self) {
        self.ctx = None;
    }

    /// A context is held (for tests).
    pub fn is_held(&self) -> bool {
        self.ctx.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;
    use tungstenite::{Error, Message};

    /// A small deterministic generator (xorshift64*), so a failure repeats.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A masked client frame.
    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![b0];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [7, 1, 200, 33];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    /// A client's stream: whole text messages, fragmented ones with pings between the
    /// fragments, and pings, of lengths across every header form.
    fn stream(rng: &mut Rng) -> Vec<u8> {
        let mut out = Vec::new();
        for m in 0..60u8 {
            let len = match rng.below(4) {
                0 => rng.below(126),
                1 => 126 + rng.below(400),
                2 => rng.below(3000),
                _ => rng.below(3),
            } as usize;
            let text = vec![b'a' + m % 26; len];
            match rng.below(3) {
                0 => out.extend(frame(0x81, &text)),
                1 => {
                    let cut = len / 2;
                    out.extend(frame(0x01, &text[..cut]));
                    out.extend(frame(0x89, b"mid"));
                    out.extend(frame(0x80, &text[cut..]));
                }
                _ => out.extend(frame(0x89, &text[..len.min(125)])),
            }
        }
        out
    }

    /// What the read loop sees: messages (pings with tungstenite's pong bytes) in order.
    fn read_all(pieces: &[&[u8]], c: &mut impl Holder) -> Vec<(String, Vec<u8>)> {
        let mut seen = Vec::new();
        for piece in pieces {
            let mut io = SansIo::new(piece);
            loop {
                let res = c.ctx().read(&mut io);
                let _ = c.ctx().flush(&mut io);
                let out = std::mem::take(&mut io.out);
                match res {
                    Ok(Message::Text(t)) => seen.push((t.to_string(), out)),
                    Ok(m) => seen.push((format!("{m:?}"), out)),
                    Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                        c.done(&io);
                        break;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        seen
    }

    /// The two ways of holding a context, for [`read_all`].
    trait Holder {
        fn ctx(&mut self) -> &mut WebSocketContext;
        fn done(&mut self, io: &SansIo<'_>);
    }
    impl Holder for WebSocketContext {
        fn ctx(&mut self) -> &mut WebSocketContext {
            self
        }
        fn done(&mut self, _: &SansIo<'_>) {}
    }
    impl Holder for Context {
        fn ctx(&mut self) -> &mut WebSocketContext {
            self.get()
        }
        fn done(&mut self, io: &SansIo<'_>) {
            self.consumed(io, true);
        }
    }

    /// Dropping the context at message boundaries reads exactly what one context kept for
    /// the whole connection reads, however the stream is cut into socket reads; and the
    /// context is gone whenever a read ends at a boundary.
    #[test]
    fn dropping_at_boundaries_reads_what_one_context_reads() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..40 {
            let bytes = stream(&mut rng);
            let mut pieces = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                let n = (1 + rng.below(700) as usize).min(bytes.len() - at);
                pieces.push(&bytes[at..at + n]);
                at += n;
            }
            let config = WebSocketConfig::default().read_buffer_size(1024);
            let mut kept = WebSocketContext::new(Role::Server, Some(config));
            let want = read_all(&pieces, &mut kept);
            let mut dropped = Context::new(1024, 16 * 1024 * 1024);
            let got = read_all(&pieces, &mut dropped);
            assert_eq!(got.len(), want.len());
            assert!(got == want, "messages or pongs differ");
            assert!(!dropped.is_held(), "the stream ends at a boundary");
        }
    }
}
