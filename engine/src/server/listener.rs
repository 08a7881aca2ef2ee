//! A shard's listening socket: binding it, accepting on it, and closing it when the drain
//! starts.

use crate::http::admin::{Access, Surface};
use crate::shard::Shard;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

/// One shard's listener, shared by its accept loop and its drain task.
pub(super) struct Listener {
    socket: glommio::net::TcpListener,
    /// `socket`'s descriptor, for `shutdown(2)` (glommio does not expose it). Valid as long
    /// as `socket` lives, which is as long as `self`.
    fd: RawFd,
}

impl Listener {
    /// Binds `addr`, backlog 1024 like glommio's own `bind`.
    ///
    /// `SO_REUSEPORT` lets every shard listen on the same port (the kernel spreads
    /// connections between them). `SO_REUSEADDR` is for the next start: a server stopped with
    /// SIGTERM closed its connections first, so their sockets sit in TIME-WAIT for a minute,
    /// with the options they inherited from this listener. Linux lets a bind ignore a
    /// TIME-WAIT socket only when both have `SO_REUSEADDR`; with `SO_REUSEPORT` alone (all
    /// glommio's `bind` sets), the probe in `resolve_bind` refused every restart until those
    /// sockets expired.
    pub(super) fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
        use socket2::{Domain, Protocol, Socket, Type};
        use std::os::fd::{FromRawFd, IntoRawFd};
        let sk = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sk.set_reuse_address(true)?;
        sk.set_reuse_port(true)?;
        sk.bind(&addr.into())?;
        sk.listen(1024)?;
        let fd = sk.into_raw_fd();
        // SAFETY: `fd` is a bound, listening TCP socket that nothing else owns; the glommio
        // listener takes it over and closes it on drop.
        let socket = unsafe { glommio::net::TcpListener::from_raw_fd(fd) };
        Ok(Listener { socket, fd })
    }

    /// Stops taking connections, for the drain. `shutdown(2)` takes the socket out of the
    /// listening state: the kernel refuses new connections (connect fails with ECONNREFUSED,
    /// and pusher-js backs off instead of reconnecting at once), resets those not accepted
    /// yet, and completes the pending accept with an error, which ends [`accept_loop`]. No
    /// pending accept is dropped or cancelled (see the glommio pitfall at `drain_on_shutdown`).
    pub(super) fn stop(&self) {
        // SAFETY: `fd` is `self.socket`'s descriptor, open while `self` lives.
        if unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) } != 0 {
            let error = std::io::Error::last_os_error();
            tracing::warn!(%error, "cannot stop the listener; new connections get 4200");
        }
    }
}

/// Accepts until the drain stops the listener. `access`: which routes this listener serves,
/// and its guard of the operator routes. The public listener serves TLS when `[tls]` is
/// configured (each connection then starts by telling TLS from plain, in its own task),
/// with this shard's acceptor for the certificate in force: a reload that read the
/// certificate again gets a new acceptor before the next connection.
pub(super) async fn accept_loop(shard: Rc<Shard>, listener: Rc<Listener>, access: Rc<Access>) {
    let public = access.surface == Surface::Public;
    let acceptor = |s: &Shard| {
        s.live
            .tls()
            .filter(|_| public)
            .map(|t| Rc::new(crate::transport::LocalAcceptor::new(&t)))
    };
    let mut generation = shard.live.generation();
    let mut tls = acceptor(&shard);
    loop {
        match listener.socket.accept().await {
            Ok(stream) => {
                if shard.live.generation() != generation {
                    generation = shard.live.generation();
                    tls = acceptor(&shard);
                }
                let serve = crate::http::serve(shard.clone(), stream, tls.clone(), access.clone());
                glommio::spawn_local(serve).detach();
            }
            // The drain stopped the listener (EINVAL). A connection accepted just before it
            // that asks to upgrade is refused by `Shard::admit` with 4200.
            Err(_) if shard.node.shutting_down() => break,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning; existing connections go on.
                tracing::warn!(shard = shard.id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
