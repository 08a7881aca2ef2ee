//! One client connection's protocol state: upgrade, frame reassembly, Pusher dispatch.
//!
//! **Invariant:** an open connection that has no partial frame and nothing unsent owns no
//! heap memory here; its bytes live in the kernel socket and the loop's shared scratch.

use std::io::{self, Write};
use std::mem;

use mio::net::TcpStream;
use thiserror::Error;

use super::Handler;
use crate::pusher::{self, Incoming};
use crate::ws::frame::{self, FrameError};
use crate::ws::handshake::{self, HandshakeError};

/// Largest message (all fragments together) accepted from a server.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Buffers that grew past this are released once empty, so one large message does not
/// pin memory on a connection for the rest of the run.
const KEEP_CAPACITY: usize = 4096;

/// Why a connection failed. The server's fault unless the kind is `Connect` or `Io`,
/// which may also be the machine's (ports, descriptors, backlog); none is retried.
#[derive(Debug, Error)]
pub enum ConnError {
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("socket error: {0}")]
    Io(io::Error),
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("bad frame from server: {0}")]
    Frame(#[from] FrameError),
    #[error("server sent invalid json: {0}")]
    Json(String),
    #[error("server sent a binary frame (pusher is text only)")]
    Binary,
    #[error("server message exceeds {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("server closed the websocket (code {0:?})")]
    ClosedByServer(Option<u16>),
    #[error("server closed the tcp connection")]
    Eof,
}

/// How a connection ended.
#[derive(Debug)]
pub enum Closed {
    /// we closed it (scenario finished with it, or shutdown)
    ByUs,
    Failed(ConnError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Connecting,
    Handshaking,
    Open,
}

/// The transport half of a connection.
pub(super) struct Io {
    pub(super) stream: TcpStream,
    pub(super) phase: Phase,
    /// our `Sec-WebSocket-Key`, kept to check the server's accept header
    key: [u8; 24],
    /// a partial frame (or partial upgrade response) left over from the previous read
    inbuf: Vec<u8>,
    /// a message split over several frames; servers rarely fragment small messages
    fragments: Vec<u8>,
    /// frames the kernel has not accepted yet (its send buffer was full)
    outbuf: Vec<u8>,
    /// set once the connection must end; the loop reaps it after the current event
    pub(super) closing: Option<Closed>,
}

/// A handler's view of one connection during a callback.
pub struct ConnCtx<'a, S> {
    pub id: usize,
    pub state: &'a mut S,
    io: &'a mut Io,
}

impl<S> ConnCtx<'_, S> {
    /// Queues a text message; it is written when the callback returns.
    pub fn send(&mut self, text: &str) {
        self.io.queue(frame::OP_TEXT, text.as_bytes());
    }

    /// Ends the connection once the callback returns; `on_closed` gets `Closed::ByUs`.
    pub fn close(&mut self) {
        self.io.closing.get_or_insert(Closed::ByUs);
    }
}

impl Io {
    pub(super) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            phase: Phase::Connecting,
            key: handshake::new_key(),
            inbuf: Vec::new(),
            fragments: Vec::new(),
            outbuf: Vec::new(),
            closing: None,
        }
    }

    pub(super) fn fail(&mut self, err: ConnError) {
        self.closing.get_or_insert(Closed::Failed(err));
    }

    /// Connect finished: queue the upgrade request.
    pub(super) fn start_handshake(&mut self, path: &str, host: &str) {
        // the request goes first even if a message was queued while connecting
        let mut out = handshake::request(path, host, &self.key);
        out.append(&mut self.outbuf);
        self.outbuf = out;
        self.phase = Phase::Handshaking;
    }

    pub(super) fn queue(&mut self, opcode: u8, payload: &[u8]) {
        let mask = fastrand::u32(..).to_ne_bytes();
        frame::encode_masked(opcode, payload, mask, &mut self.outbuf);
    }

    /// Writes as much pending output as the kernel takes; the rest waits for a writable event.
    pub(super) fn flush(&mut self) {
        while !self.outbuf.is_empty() && self.phase != Phase::Connecting {
            match self.stream.write(&self.outbuf) {
                Ok(0) => return self.fail(ConnError::Eof),
                Ok(n) => {
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(ConnError::Io(e)),
            }
        }
        if self.outbuf.capacity() > KEEP_CAPACITY {
            self.outbuf = Vec::new();
        }
    }
}

/// Connection state plus the handler's per-connection state.
pub(super) struct Conn<S> {
    pub(super) io: Io,
    pub(super) state: S,
}

impl<S> Conn<S> {
    /// Feeds bytes just read from the socket: the upgrade response first, then frames.
    pub(super) fn ingest<H: Handler<State = S>>(
        &mut self,
        handler: &mut H,
        id: usize,
        data: &[u8],
    ) -> Result<(), ConnError> {
        // common case: nothing buffered, so parse straight out of the shared scratch buffer
        if self.io.inbuf.is_empty() && self.io.phase == Phase::Open {
            let used = self.frames(handler, id, data)?;
            if used < data.len() && self.io.closing.is_none() {
                self.io.inbuf.extend_from_slice(&data[used..]);
            }
            return Ok(());
        }
        let mut buf = mem::take(&mut self.io.inbuf);
        buf.extend_from_slice(data);
        let mut start = 0;
        if self.io.phase == Phase::Handshaking {
            match handshake::parse_response(&buf, &self.io.key)? {
                None => {
                    self.io.inbuf = buf;
                    return Ok(());
                }
                Some(n) => {
                    start = n;
                    self.io.phase = Phase::Open;
                    let mut ctx = ConnCtx {
                        id,
                        state: &mut self.state,
                        io: &mut self.io,
                    };
                    handler.on_upgraded(&mut ctx);
                }
            }
        }
        let used = self.frames(handler, id, &buf[start..])?;
        buf.drain(..start + used);
        if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
            buf = Vec::new();
        }
        self.io.inbuf = buf;
        Ok(())
    }

    /// Handles every complete frame at the front of `data`; returns the bytes used.
    fn frames<H: Handler<State = S>>(
        &mut self,
        handler: &mut H,
        id: usize,
        data: &[u8],
    ) -> Result<usize, ConnError> {
        let mut at = 0;
        while self.io.closing.is_none() {
            let Some((f, used)) = frame::decode(&data[at..], MAX_MESSAGE)? else {
                break;
            };
            at += used;
            match f.opcode {
                frame::OP_PING => self.io.queue(frame::OP_PONG, f.payload),
                frame::OP_PONG => {}
                frame::OP_CLOSE => {
                    return Err(ConnError::ClosedByServer(frame::close_code(f.payload)))
                }
                frame::OP_BINARY => return Err(ConnError::Binary),
                _ if f.fin && self.io.fragments.is_empty() => {
                    self.dispatch(handler, id, f.payload)?
                }
                _ => {
                    if self.io.fragments.len() + f.payload.len() > MAX_MESSAGE {
                        return Err(ConnError::TooLarge);
                    }
                    self.io.fragments.extend_from_slice(f.payload);
                    if f.fin {
                        let msg = mem::take(&mut self.io.fragments);
                        self.dispatch(handler, id, &msg)?;
                    }
                }
            }
        }
        Ok(at)
    }

    /// One complete text message: handle the connection-level Pusher events here, pass
    /// the rest to the scenario.
    fn dispatch<H: Handler<State = S>>(
        &mut self,
        handler: &mut H,
        id: usize,
        text: &[u8],
    ) -> Result<(), ConnError> {
        let msg = Incoming::parse(text).map_err(|e| ConnError::Json(e.to_string()))?;
        let mut ctx = ConnCtx {
            id,
            state: &mut self.state,
            io: &mut self.io,
        };
        match &*msg.event {
            pusher::CONNECTION_ESTABLISHED => {
                let sid = pusher::socket_id(&msg).ok_or_else(|| {
                    ConnError::Json("connection_established without socket_id".into())
                })?;
                handler.on_established(&mut ctx, &sid);
            }
            pusher::PING => ctx.send(pusher::pong()),
            _ => handler.on_message(&mut ctx, &msg),
        }
        Ok(())
    }
}
