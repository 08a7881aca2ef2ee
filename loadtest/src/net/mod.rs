//! A single-threaded event loop driving many client WebSocket connections.
//!
//! Each worker thread owns one [`Net`]: a mio poll, a slab of connections and one 64 KiB
//! scratch buffer that every read goes through. Scenario logic plugs in as a [`Handler`]
//! with its own per-connection state; the loop does the transport (connect, upgrade,
//! frames, pings) and calls the handler with parsed Pusher messages.
//!
//! **Boundary:** nothing here knows about channels or scenarios; nothing is shared
//! between threads.

mod conn;
pub(crate) mod dial;

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use slab::Slab;

pub use conn::{Closed, ConnCtx, ConnError, MAX_MESSAGE};
use conn::{Conn, Io, Phase};

use crate::fallback::{Transport, DEFAULT_HTTP_PATH};
use crate::pusher::Incoming;
use crate::target::Target;

/// Size of the read buffer shared by all connections of one loop.
const SCRATCH_BYTES: usize = 64 * 1024;

/// Scenario logic for one event loop.
pub trait Handler {
    /// What the scenario keeps per connection; keep it small, there are thousands.
    type State;
    /// The server answered the upgrade with 101 (before any frame). Most scenarios wait for
    /// `connection_established`; `connect-storm --until-upgrade` counts its cycle here.
    fn on_upgraded(&mut self, _conn: &mut ConnCtx<'_, Self::State>) {}
    /// The server sent `pusher:connection_established`.
    fn on_established(&mut self, conn: &mut ConnCtx<'_, Self::State>, socket_id: &str);
    /// Any other server message (`pusher:ping` is answered by the loop).
    fn on_message(&mut self, conn: &mut ConnCtx<'_, Self::State>, msg: &Incoming<'_>);
    /// The connection is gone; its state is handed back.
    fn on_closed(&mut self, id: usize, state: Self::State, why: Closed);
}

/// Where connections go and where they come from.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub server: SocketAddr,
    /// source addresses used round-robin; empty lets the kernel choose
    pub sources: Vec<IpAddr>,
    /// path and query of the upgrade request
    pub path: String,
    pub host: String,
    /// further servers that [`Net::open_to`] can reach (same path); empty by default
    pub extra: Vec<SocketAddr>,
    /// how subscribers reach the server ([`crate::subscribers::spawn`] picks the loop)
    pub transport: Transport,
    /// the app key, for the HTTP transports' paths
    pub key: String,
    /// prefix of the HTTP transports' routes (pusher-js's `httpPath`)
    pub http_path: String,
}

impl Endpoint {
    pub fn new(target: &Target, sources: Vec<IpAddr>) -> Self {
        Self {
            server: target.addr,
            sources,
            path: target.ws_path(),
            host: target.host_header(),
            extra: Vec::new(),
            transport: Transport::Ws,
            key: target.key.clone(),
            http_path: DEFAULT_HTTP_PATH.to_string(),
        }
    }

    /// The same endpoint reached over `transport`, HTTP transports under `http_path`.
    pub fn with_transport(mut self, transport: Transport, http_path: &str) -> Self {
        self.transport = transport;
        self.http_path = http_path.to_string();
        self
    }

    /// The same endpoint with connections also going to `ports` on the server's host.
    pub fn with_extra_ports(mut self, ports: &[u16]) -> Self {
        self.extra = ports
            .iter()
            .map(|&p| SocketAddr::new(self.server.ip(), p))
            .collect();
        self
    }

    /// Server `k`: 0 is `server`, `k` is `extra[k - 1]` (out of range falls back to 0).
    pub fn server_at(&self, k: usize) -> SocketAddr {
        match k {
            0 => self.server,
            k => self.extra.get(k - 1).copied().unwrap_or(self.server),
        }
    }
}

/// One thread's connections.
pub struct Net<H: Handler> {
    poll: Poll,
    events: Events,
    conns: Slab<Conn<H::State>>,
    scratch: Vec<u8>,
    endpoint: Endpoint,
    next_source: usize,
    /// (id, readable, writable) of the current poll round, reused between rounds
    ready: Vec<(usize, bool, bool)>,
    /// connections to reap after the current round
    doomed: Vec<usize>,
    pub handler: H,
}

impl<H: Handler> Net<H> {
    pub fn new(handler: H, endpoint: Endpoint) -> io::Result<Self> {
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            conns: Slab::new(),
            scratch: vec![0; SCRATCH_BYTES],
            endpoint,
            next_source: 0,
            ready: Vec::new(),
            doomed: Vec::new(),
            handler,
        })
    }

    /// Starts a connection; the handler hears of it on `connection_established`.
    /// Fails at once only for local reasons (descriptors, ports, bind).
    pub fn open(&mut self, state: H::State) -> io::Result<usize> {
        self.open_to(0, state)
    }

    /// [`Net::open`] to server `k` of the endpoint (see [`Endpoint::server_at`]).
    pub fn open_to(&mut self, k: usize, state: H::State) -> io::Result<usize> {
        let source = match self.endpoint.sources.len() {
            0 => None,
            n => {
                let src = self.endpoint.sources[self.next_source % n];
                self.next_source = self.next_source.wrapping_add(1);
                Some(src)
            }
        };
        let mut stream = dial::start_connect(self.endpoint.server_at(k), source)?;
        let entry = self.conns.vacant_entry();
        let id = entry.key();
        self.poll.registry().register(
            &mut stream,
            Token(id),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Conn {
            io: Io::new(stream),
            state,
        });
        Ok(id)
    }

    /// Sends a text message on an open connection. A failure is reported through
    /// `on_closed` at the next `poll`.
    pub fn send(&mut self, id: usize, text: &str) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.io.queue(crate::ws::frame::OP_TEXT, text.as_bytes());
            conn.io.flush();
            if conn.io.closing.is_some() {
                self.doomed.push(id);
            }
        }
    }

    /// Sends `text` on every open connection (keep-alive pings).
    pub fn send_all(&mut self, text: &str) {
        let open: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.io.phase == Phase::Open)
            .map(|(id, _)| id)
            .collect();
        for id in open {
            self.send(id, text);
        }
    }

    /// Closes a connection now; `on_closed` gets `Closed::ByUs`.
    pub fn close(&mut self, id: usize) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.io.closing.get_or_insert(Closed::ByUs);
            self.doomed.push(id);
            self.reap();
        }
    }

    /// Closes every connection (the end of a run).
    pub fn shutdown(&mut self) {
        let ids: Vec<usize> = self.conns.iter().map(|(id, _)| id).collect();
        for id in ids {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.io.closing.get_or_insert(Closed::ByUs);
                self.doomed.push(id);
            }
        }
        self.reap();
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn state_mut(&mut self, id: usize) -> Option<&mut H::State> {
        self.conns.get_mut(id).map(|c| &mut c.state)
    }

    /// Waits up to `timeout` for socket events and handles them.
    pub fn poll(&mut self, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => other?,
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|e| {
            let readable = e.is_readable() || e.is_read_closed() || e.is_error();
            let writable = e.is_writable() || e.is_error();
            (e.token().0, readable, writable)
        }));
        for &(id, readable, writable) in &ready {
            self.on_ready(id, readable, writable);
        }
        self.ready = ready;
        self.reap();
        Ok(())
    }

    fn on_ready(&mut self, id: usize, readable: bool, writable: bool) {
        let Self {
            conns,
            scratch,
            endpoint,
            handler,
            doomed,
            ..
        } = self;
        let Some(conn) = conns.get_mut(id) else {
            return;
        };
        if conn.io.phase == Phase::Connecting {
            match conn.io.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => conn.io.fail(ConnError::Connect(e)),
            }
            if conn.io.closing.is_none() {
                match conn.io.stream.peer_addr() {
                    Ok(peer) if peer == endpoint.server => {
                        conn.io.start_handshake(&endpoint.path, &endpoint.host)
                    }
                    // one of the extra servers: name it in the Host header
                    Ok(peer) => conn.io.start_handshake(&endpoint.path, &peer.to_string()),
                    // a wakeup before the connect finished: wait for the next one
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                    Err(e) => conn.io.fail(ConnError::Connect(e)),
                }
            }
        }
        if writable {
            conn.io.flush();
        }
        // edge-triggered: read until the kernel has nothing more
        while readable && conn.io.closing.is_none() {
            match conn.io.stream.read(scratch) {
                Ok(0) => conn.io.fail(ConnError::Eof),
                Ok(n) => {
                    if let Err(e) = conn.ingest(handler, id, &scratch[..n]) {
                        conn.io.fail(e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => conn.io.fail(ConnError::Io(e)),
            }
        }
        // the handler may have queued replies while reading
        if conn.io.closing.is_none() {
            conn.io.flush();
        }
        if conn.io.closing.is_some() {
            doomed.push(id);
        }
    }

    fn reap(&mut self) {
        while let Some(id) = self.doomed.pop() {
            let Some(mut conn) = self.conns.try_remove(id) else {
                continue;
            };
            let _ = self.poll.registry().deregister(&mut conn.io.stream);
            let why = conn.io.closing.take().unwrap_or(Closed::ByUs);
            dial::abort(conn.io.stream);
            self.handler.on_closed(id, conn.state, why);
        }
    }
}
