//! The adapter that lets tungstenite's `WebSocketContext` (a blocking-style `Read + Write`
//! API) run over our own buffers: the session reads the socket itself, with glommio, and
//! hands tungstenite the bytes; tungstenite's own output (pongs, close replies) is collected
//! here and queued on the socket's [`WsWriter`](crate::outbox::WsWriter) by the read loop.
//!
//! **Invariant:** `read` never blocks: with nothing buffered it says `WouldBlock`, which
//! tungstenite passes up unchanged, so "no complete message yet" is that error.

use std::io::{self, Read, Write};

/// Input already read from the socket, and output tungstenite produced.
#[derive(Debug, Default)]
pub struct SansIo {
    /// Bytes read from the socket. `inb[..pos]` has been handed to tungstenite already; the
    /// owner drains that prefix between socket reads.
    pub inb: Vec<u8>,
    /// How much of `inb` tungstenite has consumed.
    pub pos: usize,
    /// Bytes tungstenite wrote (control replies), waiting to be queued on the socket.
    pub out: Vec<u8>,
}

impl SansIo {
    /// An adapter whose input starts with `leftover` (bytes that followed the HTTP head).
    pub fn new(leftover: Vec<u8>) -> SansIo {
        SansIo {
            inb: leftover,
            pos: 0,
            out: Vec::new(),
        }
    }
}

impl Read for SansIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = &self.inb[self.pos..];
        if avail.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for SansIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
