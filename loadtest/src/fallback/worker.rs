//! One worker thread's HTTP-transport subscribers: a mio loop over the TCP connections of
//! their requests.
//!
//! A session has one receiving request at a time (the stream, the pending poll, or the SSE
//! response) and, briefly, `xhr_send` requests, each on its own connection as pusher-js under
//! Node sends them. A poll answered with keep-alive is followed by the next poll on the same
//! connection, as a browser would; a stream past [`STREAM_REOPEN_AFTER`] characters is
//! aborted and re-opened on the same session once every received line is complete, as
//! pusher-js does.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::http::{parse_head, Body, HttpError, Route};
use super::sockjs::{self, Frame, Lines, SockJsError};
use super::sse::{Sse, SseError};
use super::{Transport, STREAM_REOPEN_AFTER};
use crate::net::{dial, Endpoint};
use crate::pusher::{self, Incoming};
use crate::run::Shared;
use crate::subscribers::{SubHandler, SubOutcome, SubState};

/// Size of the read buffer shared by all connections of one loop.
const SCRATCH_BYTES: usize = 64 * 1024;
/// Bytes of a refused request's body kept for the error message.
const ERROR_BODY: usize = 300;

/// Why a session failed, as text for the run's first error.
struct Failure(String);

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure(s)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure(s.to_string())
    }
}

impl From<SockJsError> for Failure {
    fn from(e: SockJsError) -> Self {
        Failure(e.to_string())
    }
}

impl From<SseError> for Failure {
    fn from(e: SseError) -> Self {
        Failure(format!("sse: {e}"))
    }
}

impl From<HttpError> for Failure {
    fn from(e: HttpError) -> Self {
        Failure(e.to_string())
    }
}

/// One HTTP session (one subscriber).
struct Session {
    /// `None` once the session ended (its figures went to the handler)
    sub: Option<SubState>,
    server: SocketAddr,
    /// `{server}/{session}`, the path segment of xhr requests
    path_id: String,
    lines: Lines,
    sse: Sse,
    /// the receiving request's connection
    recv: Option<usize>,
    opened: bool,
    /// body bytes read from the current stream
    streamed: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Receive,
    Send,
}

/// One request/response exchange (a poll connection carries several in turn).
struct Exchange {
    stream: TcpStream,
    session: usize,
    role: Role,
    connecting: bool,
    /// request bytes the kernel has not taken yet
    out: Vec<u8>,
    /// a response head split across reads; a refused request's body
    inbuf: Vec<u8>,
    /// status, body framing, keep-alive of the current response once its head is read
    head: Option<(u16, Body, bool)>,
    /// this connection already carried a complete response (keep-alive polling)
    reused: bool,
}

/// What frames asked for, done once the current read is handled.
enum Action {
    /// an `xhr_send` with this message (`None`: `[]`)
    Send(usize, Option<String>),
    /// abort the stream and open a new receiving request on the same session
    Reopen(usize),
    /// the next poll (on the same connection if it may be reused)
    NextPoll(usize, usize, bool),
    /// this request is finished: close its connection
    Done(usize),
    Fail(usize, Failure),
}

struct Loop {
    poll: Poll,
    events: Events,
    ex: Slab<Exchange>,
    sessions: Vec<Session>,
    scratch: Vec<u8>,
    /// body bytes of the current read, decoded
    body: Vec<u8>,
    actions: Vec<Action>,
    handler: SubHandler,
    transport: Transport,
    endpoint: Endpoint,
    next_source: usize,
}

/// Runs `plan` (channel index, server index per session) until `shared.stop`.
pub(crate) fn run_worker(
    endpoint: Endpoint,
    channels: Arc<Vec<String>>,
    plan: Vec<(u32, u16)>,
    shared: Arc<Shared>,
    max_in_flight: usize,
) -> anyhow::Result<SubOutcome> {
    let mut lp = Loop {
        poll: Poll::new().context("creating the event loop")?,
        events: Events::with_capacity(1024),
        ex: Slab::new(),
        sessions: Vec::with_capacity(plan.len()),
        scratch: vec![0; SCRATCH_BYTES],
        body: Vec::new(),
        actions: Vec::new(),
        handler: SubHandler::new(shared.clone(), channels, plan.len()),
        transport: endpoint.transport,
        endpoint,
        next_source: 0,
    };
    let mut next = 0;
    while !shared.stopped() {
        while next < plan.len() && lp.handler.in_flight() < max_in_flight {
            let (channel, server) = plan[next];
            next += 1;
            lp.handler.started();
            lp.open_session(channel, usize::from(server));
        }
        lp.turn(Duration::from_millis(5))
            .context("polling sockets")?;
        let delivered = lp.handler.take_delivered();
        if delivered > 0 {
            shared.delivered.fetch_add(delivered, Relaxed);
        }
    }
    lp.shutdown();
    Ok(lp.handler.into_outcome())
}

impl Loop {
    fn open_session(&mut self, channel: u32, server: usize) {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
        let id: String = (0..8)
            .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
            .collect();
        let s = self.sessions.len();
        self.sessions.push(Session {
            sub: Some(SubState::new(channel)),
            server: self.endpoint.server_at(server),
            path_id: format!("{}/{id}", fastrand::u32(..1000)),
            lines: Lines::default(),
            sse: Sse::default(),
            recv: None,
            opened: false,
            streamed: 0,
        });
        self.open_receive(s);
    }

    fn request(&self, s: usize, role: Role, msg: Option<&str>) -> Vec<u8> {
        let sess = &self.sessions[s];
        let host = if sess.server == self.endpoint.server {
            self.endpoint.host.clone()
        } else {
            sess.server.to_string()
        };
        let r = Route {
            prefix: &self.endpoint.http_path,
            key: &self.endpoint.key,
            host: &host,
            session: &sess.path_id,
        };
        match role {
            Role::Receive => {
                let st = sess.sub.as_ref().expect("live session");
                r.receive(self.transport, self.handler.channel_name(st))
            }
            Role::Send => r.send(msg),
        }
    }

    fn open_receive(&mut self, s: usize) {
        let req = self.request(s, Role::Receive, None);
        self.sessions[s].streamed = 0;
        match self.connect(s, Role::Receive, req) {
            Ok(id) => self.sessions[s].recv = Some(id),
            Err(e) => self.fail(s, format!("connect: {e}").into()),
        }
    }

    fn open_send(&mut self, s: usize, msg: Option<&str>) {
        let req = self.request(s, Role::Send, msg);
        if let Err(e) = self.connect(s, Role::Send, req) {
            self.fail(s, format!("connect for xhr_send: {e}").into());
        }
    }

    fn connect(&mut self, s: usize, role: Role, out: Vec<u8>) -> io::Result<usize> {
        let source = match self.endpoint.sources.len() {
            0 => None,
            n => {
                self.next_source = self.next_source.wrapping_add(1);
                Some(self.endpoint.sources[self.next_source % n])
            }
        };
        let mut stream = dial::start_connect(self.sessions[s].server, source)?;
        let entry = self.ex.vacant_entry();
        let id = entry.key();
        self.poll.registry().register(
            &mut stream,
            Token(id),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Exchange {
            stream,
            session: s,
            role,
            connecting: true,
            out,
            inbuf: Vec::new(),
            head: None,
            reused: false,
        });
        Ok(id)
    }

    fn close(&mut self, id: usize) {
        if let Some(mut ex) = self.ex.try_remove(id) {
            let _ = self.poll.registry().deregister(&mut ex.stream);
            dial::abort(ex.stream);
            let sess = &mut self.sessions[ex.session];
            if sess.recv == Some(id) {
                sess.recv = None;
            }
        }
    }

    /// Ends session `s` as failed (once).
    fn fail(&mut self, s: usize, why: Failure) {
        let Some(state) = self.sessions[s].sub.take() else {
            return;
        };
        let mine: Vec<usize> = self
            .ex
            .iter()
            .filter(|(_, e)| e.session == s)
            .map(|(id, _)| id)
            .collect();
        for id in mine {
            self.close(id);
        }
        self.sessions[s].lines = Lines::default();
        self.handler.closed(state, Some(why.0));
    }

    fn shutdown(&mut self) {
        let ids: Vec<usize> = self.ex.iter().map(|(id, _)| id).collect();
        for id in ids {
            self.close(id);
        }
        for s in 0..self.sessions.len() {
            if let Some(state) = self.sessions[s].sub.take() {
                self.handler.closed(state, None);
            }
        }
    }

    fn turn(&mut self, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => other?,
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                let r = e.is_readable() || e.is_read_closed() || e.is_error();
                (e.token().0, r, e.is_writable() || e.is_error())
            })
            .collect();
        for (id, readable, writable) in ready {
            self.on_ready(id, readable, writable);
            self.apply();
        }
        Ok(())
    }

    fn on_ready(&mut self, id: usize, readable: bool, writable: bool) {
        let Some(ex) = self.ex.get_mut(id) else {
            return;
        };
        let s = ex.session;
        if ex.connecting {
            let err = match ex.stream.take_error() {
                Ok(None) => None,
                Ok(Some(e)) | Err(e) => Some(e),
            };
            match (err, ex.stream.peer_addr()) {
                (Some(e), _) => return self.fail(s, format!("connect failed: {e}").into()),
                (None, Ok(_)) => ex.connecting = false,
                (None, Err(e)) if e.kind() == io::ErrorKind::NotConnected => return,
                (None, Err(e)) => return self.fail(s, format!("connect failed: {e}").into()),
            }
        }
        if writable || !ex.out.is_empty() {
            if let Err(e) = flush(ex) {
                return self.fail(s, format!("write: {e}").into());
            }
        }
        if !readable {
            return;
        }
        loop {
            let Some(ex) = self.ex.get_mut(id) else {
                return;
            };
            match ex.stream.read(&mut self.scratch) {
                Ok(0) => return self.on_eof(id),
                Ok(n) => {
                    let data = std::mem::take(&mut self.scratch);
                    let r = self.ingest(id, &data[..n]);
                    self.scratch = data;
                    if let Err(e) = r {
                        return self.fail(s, e);
                    }
                    if !self.actions.is_empty() {
                        // a poll answered, a stream to re-open, a session ended: settle
                        // that before reading on (the next read may belong to a new poll)
                        self.apply();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(s, format!("read: {e}").into()),
            }
        }
    }

    /// Bytes read from exchange `id`.
    fn ingest(&mut self, id: usize, mut data: &[u8]) -> Result<(), Failure> {
        while !data.is_empty() {
            let ex = &mut self.ex[id];
            let s = ex.session;
            if ex.head.is_none() {
                ex.inbuf.extend_from_slice(data);
                let Some(h) = parse_head(&ex.inbuf)? else {
                    return Ok(());
                };
                let rest = ex.inbuf.split_off(h.len);
                ex.inbuf.clear();
                let done = h.body.is_empty();
                ex.head = Some((h.status, h.body, h.keep_alive));
                if done {
                    self.complete(id);
                    // bytes after a complete response: a pipelined answer cannot come (one
                    // request at a time), so they are the server's mistake
                    return match rest.is_empty() {
                        true => Ok(()),
                        false => Err("bytes after a complete response".into()),
                    };
                }
                return self.ingest_body(id, s, &rest).map(|_| ());
            }
            let used = self.ingest_body(id, s, data)?;
            data = &data[used..];
            if !data.is_empty() {
                return Err("bytes after a complete response".into());
            }
        }
        Ok(())
    }

    /// Body bytes of exchange `id`; returns the input bytes used.
    fn ingest_body(&mut self, id: usize, s: usize, data: &[u8]) -> Result<usize, Failure> {
        let ex = &mut self.ex[id];
        let role = ex.role;
        let (status, body, _) = ex.head.as_mut().expect("head was read");
        let status = *status;
        self.body.clear();
        let (used, done) = body.feed(data, &mut self.body)?;
        let accepted = status == 200 || (role == Role::Send && status == 204);
        if !accepted {
            let ex = &mut self.ex[id];
            let room = ERROR_BODY.saturating_sub(ex.inbuf.len());
            ex.inbuf
                .extend_from_slice(&self.body[..self.body.len().min(room)]);
        } else if role == Role::Receive && self.sessions[s].sub.is_some() {
            let body = std::mem::take(&mut self.body);
            let r = self.frames(s, &body);
            self.body = body;
            r?;
        }
        if done {
            self.complete(id);
        }
        Ok(used)
    }

    /// Handles the decoded body bytes of session `s`'s receiving request.
    fn frames(&mut self, s: usize, body: &[u8]) -> Result<(), Failure> {
        let Loop {
            sessions,
            handler,
            actions,
            transport,
            ..
        } = self;
        let sess = &mut sessions[s];
        let st = sess.sub.as_mut().expect("live session");
        if *transport == Transport::Sse {
            return sess.sse.feed::<Failure>(body, |data| {
                let msg = Incoming::parse(data.as_bytes())
                    .map_err(|e| format!("sse event is not a pusher message: {e}"))?;
                if msg.event != pusher::CONNECTION_ESTABLISHED && msg.event != pusher::PING {
                    handler.observe(st, &msg);
                }
                Ok(())
            });
        }
        let streaming = *transport == Transport::XhrStreaming;
        sess.streamed += body.len();
        let opened = &mut sess.opened;
        sess.lines.feed::<Failure>(body, |line| {
            match sockjs::parse(line)? {
                Frame::Open if *opened => return Err("a second `o` on a live session".into()),
                Frame::Open => *opened = true,
                Frame::Heartbeat if streaming && *opened => actions.push(Action::Send(s, None)),
                Frame::Heartbeat | Frame::Other => {}
                Frame::Close { code, reason } => {
                    return Err(format!("server closed the session: {code} {reason:?}").into())
                }
                Frame::Messages(msgs) => {
                    for m in msgs {
                        let msg = Incoming::parse(m.as_bytes())
                            .map_err(|e| format!("an `a` element is not a pusher message: {e}"))?;
                        match &*msg.event {
                            pusher::CONNECTION_ESTABLISHED => {
                                let sub = pusher::subscribe_public(handler.channel_name(st));
                                actions.push(Action::Send(s, Some(sub)));
                            }
                            pusher::PING => {
                                actions.push(Action::Send(s, Some(pusher::pong().into())))
                            }
                            _ => handler.observe(st, &msg),
                        }
                    }
                }
            }
            Ok(())
        })?;
        if streaming && sess.streamed > STREAM_REOPEN_AFTER && sess.lines.at_boundary() {
            actions.push(Action::Reopen(s));
        }
        Ok(())
    }

    /// Exchange `id`'s response is complete.
    fn complete(&mut self, id: usize) {
        let ex = &mut self.ex[id];
        let s = ex.session;
        let (status, _, keep_alive) = ex.head.take().expect("head was read");
        let ok = status == 200 || (ex.role == Role::Send && status == 204);
        let action = if !ok {
            let what = match ex.role {
                Role::Send => "xhr_send",
                Role::Receive => self.transport.name(),
            };
            Action::Fail(
                s,
                format!(
                    "{what} answered {status}: {}",
                    String::from_utf8_lossy(&ex.inbuf).trim()
                )
                .into(),
            )
        } else {
            match (ex.role, self.transport) {
                (Role::Send, _) => Action::Done(id),
                (Role::Receive, Transport::XhrPolling) => Action::NextPoll(s, id, keep_alive),
                (Role::Receive, t) => {
                    Action::Fail(s, format!("the server ended the {t} response").into())
                }
            }
        };
        ex.inbuf.clear();
        self.actions.push(action);
    }

    fn on_eof(&mut self, id: usize) {
        enum Eof {
            BodyEnd,
            Reconnect,
            Unanswered,
            MidResponse,
        }
        let ex = &self.ex[id];
        let s = ex.session;
        let eof = match ex.head.as_ref() {
            Some((_, Body::UntilEof, _)) => Eof::BodyEnd,
            Some(_) => Eof::MidResponse,
            // a keep-alive poll connection the server closed before the next poll reached
            // it: poll again on a new connection, as a browser would
            None if ex.reused && ex.inbuf.is_empty() => Eof::Reconnect,
            None if ex.inbuf.is_empty() => Eof::Unanswered,
            None => Eof::MidResponse,
        };
        let what = match ex.role {
            Role::Send => "xhr_send",
            Role::Receive => self.transport.name(),
        };
        match eof {
            Eof::BodyEnd => self.complete(id),
            Eof::Reconnect => self.actions.push(Action::Reopen(s)),
            Eof::Unanswered => self.fail(
                s,
                format!("{what}: the server closed the connection unanswered").into(),
            ),
            Eof::MidResponse => self.fail(
                s,
                format!("{what}: the server closed the connection mid-response").into(),
            ),
        }
        self.close(id);
        self.apply();
    }

    fn apply(&mut self) {
        while !self.actions.is_empty() {
            for a in std::mem::take(&mut self.actions) {
                match a {
                    Action::Send(s, msg) if self.sessions[s].sub.is_some() => {
                        self.open_send(s, msg.as_deref())
                    }
                    Action::Reopen(s) if self.sessions[s].sub.is_some() => {
                        if let Some(id) = self.sessions[s].recv {
                            self.close(id);
                        }
                        self.open_receive(s);
                    }
                    Action::NextPoll(s, id, reuse) if self.sessions[s].sub.is_some() => {
                        if reuse {
                            let req = self.request(s, Role::Receive, None);
                            let ex = &mut self.ex[id];
                            ex.out = req;
                            ex.reused = true;
                            if let Err(e) = flush(ex) {
                                self.fail(s, format!("write: {e}").into());
                            }
                        } else {
                            self.close(id);
                            self.open_receive(s);
                        }
                    }
                    Action::Done(id) => self.close(id),
                    Action::Fail(s, why) => self.fail(s, why),
                    _ => {}
                }
            }
        }
    }
}

/// Writes as much of the pending request as the kernel takes.
fn flush(ex: &mut Exchange) -> io::Result<()> {
    while !ex.out.is_empty() && !ex.connecting {
        match ex.stream.write(&ex.out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                ex.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
