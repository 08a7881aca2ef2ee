//! The adapter that lets tungstenite's `WebSocketContext` (a blocking-style `Read + Write`
//! API) run over bytes we read ourselves: the session reads the socket with glommio, into a
//! buffer the shard's connections share, and hands tungstenite the bytes; tungstenite's own
//! output (pongs, close replies) is collected here and queued on the socket's
//! [`WsWriter`](crate::outbox::WsWriter) by the read loop.
//!
//! **Invariant:** `read` never blocks: with nothing left it says `WouldBlock`, which
//! tungstenite passes up unchanged, so "no complete message yet" is that error, and then
//! every input byte was consumed.

use std::io::{self, Read, Write};

/// Input read from the socket, and output tungstenite produced.
#[derive(Debug)]
pub struct SansIo<'a> {
    /// Bytes read from the socket; `inb[..pos]` has been handed to tungstenite already.
    pub inb: &'a [u8],
    /// How much of `inb` tungstenite has consumed.
    pub pos: usize,
    /// Bytes tungstenite wrote (control replies), waiting to be queued on the socket.
    pub out: Vec<u8>,
}

impl<'a> SansIo<'a> {
    /// An adapter that hands tungstenite `input`.
    pub fn new(input: &'a [u8]) -> SansIo<'a> {
        SansIo {
            inb: input,
            pos: 0,
            out: Vec::new(),
        }
    }
}

impl Read for SansIo<'_> {
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

impl Write for SansIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
