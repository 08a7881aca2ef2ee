//! A connection's byte stream: plain TCP, or TLS over it. Chosen once per connection, when it
//! is accepted, by the first byte the client sends; both kinds share the one port.
//!
//! Everything above (HTTP requests, the WebSocket session, the outbox) reads and writes a
//! [`Transport`] through the futures-io traits and does not care which kind it is, with one
//! exception: the outbox writes plain sockets with its own `send`/`sendmsg` on the raw fd
//! and TLS ones through rustls ([`crate::outbox`]).
//!
//! **Boundary:** a bottom layer, like the outbox: it imports nothing above it (only the loaded
//! certificate, [`crate::tls`]).

use crate::tls::Tls;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::server::TlsStream;
use futures_rustls::TlsAcceptor;
use glommio::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The first byte of every TLS connection: a handshake record (the ClientHello). No HTTP
/// method starts with it.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Bytes read to tell TLS from plain. They are not lost: a plain request keeps them as the
/// start of its head, a TLS handshake gets them back before it reads the socket.
const SNIFF_BYTES: usize = 1024;

/// The stream of one accepted connection.
pub enum Transport {
    Plain(TcpStream),
    /// Boxed: rustls' connection state is large, and a plain socket should not pay for it.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// The TCP socket's fd (for `sendmsg` and `shutdown`); valid as long as `self` lives.
    pub fn raw_fd(&self) -> RawFd {
        match self {
            Transport::Plain(s) => s.as_raw_fd(),
            Transport::Tls(s) => s.get_ref().0.as_raw_fd(),
        }
    }

    /// The client's address, if the socket still knows it.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        let tcp = match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => s.get_ref().0,
        };
        tcp.peer_addr().ok()
    }

    /// Writes all of `bytes` and gets them into the socket: for TLS that includes rustls'
    /// buffer, which `write_all` alone may leave holding the last records.
    pub async fn send_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes).await?;
        self.flush().await
    }

    /// TLS records are waiting in rustls for the socket: ones it produced on its own while
    /// reading (an alert, a key update reply), or encrypted data the socket has not taken yet.
    /// Always false for plain sockets, which buffer nothing.
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(s) => s.get_ref().1.wants_write(),
        }
    }
}

impl futures_lite::AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl futures_lite::AsyncWrite for Transport {
    /// For TLS, `Ok(n)` means rustls took `n` bytes: they may still sit encrypted in its buffer
    /// until a flush (or a later write) gets them into the socket.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    /// TLS: sends `close_notify`, flushes, then shuts the socket's write side. Plain: shuts
    /// the write side.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_close(cx),
            Transport::Tls(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}

/// One shard's TLS acceptor: its own copy of the server configuration, so handshakes on
/// different shards share nothing but the immutable certificate.
pub struct LocalAcceptor {
    acceptor: TlsAcceptor,
    /// `tls.only`: plain connections are refused (by the HTTP layer, which knows how).
    only: bool,
}

impl LocalAcceptor {
    pub fn new(tls: &Tls) -> LocalAcceptor {
        LocalAcceptor {
            acceptor: TlsAcceptor::from(Arc::new((*tls.config).clone())),
            only: tls.only,
        }
    }

    /// Whether plain connections are refused.
    pub fn only(&self) -> bool {
        self.only
    }

    /// Reads the client's first bytes and, for a ClientHello, runs the TLS handshake. Plain
    /// bytes are appended to `buf` (the start of the first request). The caller bounds the
    /// time this takes.
    ///
    /// The bytes are read, not peeked: an ordinary readiness-based read is what the rest of
    /// the HTTP edge already cancels safely with timeouts, and the handshake gets them back
    /// through rustls' own buffer.
    pub async fn accept(&self, mut stream: TcpStream, buf: &mut Vec<u8>) -> io::Result<Transport> {
        let mut first = [0u8; SNIFF_BYTES];
        let n = stream.read(&mut first).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            buf.extend_from_slice(&first[..n]);
            return Ok(Transport::Plain(stream));
        }
        let mut hello = &first[..n];
        let mut malformed = false;
        let handshake = self.acceptor.accept_with(stream, |conn| {
            // Hand rustls the bytes already read and let it process them now: the handshake
            // only processes after reading from the socket itself, and the client, its
            // ClientHello sent, waits for our answer.
            while !hello.is_empty() {
                if !matches!(conn.read_tls(&mut hello), Ok(n) if n > 0) {
                    break;
                }
                if conn.process_new_packets().is_err() {
                    malformed = true;
                    break;
                }
            }
        });
        if malformed {
            // Not TLS after all (or broken): close now rather than at the handshake timeout.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed TLS handshake",
            ));
        }
        Ok(Transport::Tls(Box::new(handshake.await?)))
    }
}
