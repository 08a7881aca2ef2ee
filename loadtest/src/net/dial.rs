//! Opening one non-blocking TCP connection, optionally from a chosen source address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::net::TcpStream;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Starts a non-blocking connect to `server`, bound to `source` if given. The connection
/// completes later; the event loop learns of it through a writable event.
pub fn start_connect(server: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let sock = Socket::new(
        Domain::for_address(server),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    sock.set_nonblocking(true)?;
    // Pusher traffic is small request/response messages; Nagle plus delayed ACK would
    // add 40 ms stalls to a subscribe that follows the upgrade request
    sock.set_tcp_nodelay(true)?;
    if let Some(src) = source {
        defer_port_choice(&sock)?;
        sock.bind(&SocketAddr::new(src, 0).into())?;
    }
    match sock.connect(&server.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(sock.into()))
}

/// Lets the kernel pick the source port at connect time, when it knows the destination,
/// instead of at bind time; otherwise a bound port is reserved for every destination
/// and the per-address port range runs out sooner.
fn defer_port_choice(sock: &Socket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the fd is a live socket we own; the option value points to a c_int that
    // outlives the call and the length matches it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Closes with RST instead of FIN. A load generator that closes thousands of sockets
/// would otherwise park each one in TIME_WAIT for 60 s, holding a source port that the
/// next run (or the rest of a connect storm) needs.
pub fn abort(stream: TcpStream) {
    let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}
