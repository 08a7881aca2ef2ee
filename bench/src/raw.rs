//! The raw loopback ceiling (stack-notes §9): how many 64-byte WebSocket frames per second the
//! kernel's loopback TCP path moves on this machine when nothing but `send()` runs.
//!
//! [`serve`] (`raptor-bench raw-server`, a separate process like a real server) accepts N
//! connections, then sweeps them from a few plain threads, writing `batch` pre-encoded frames
//! (`0x81 0x3E` + 62 bytes each) per `send()`; no handshake, no protocol. [`read`] is the
//! client: it connects N sockets, reads them all from one mio thread (like the load
//! generator's one receiver thread), checks every frame boundary and counts frames.
//! Raptor's fanout is reported as a fraction of this.

use anyhow::{bail, Context};
use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use raptor_loadtest::usage::CpuWindow;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

/// The frame: FIN + text opcode, 62-byte payload, unmasked (server to client).
pub const FRAME_LEN: usize = 64;

fn frame() -> [u8; FRAME_LEN] {
    let mut f = [b'x'; FRAME_LEN];
    f[0] = 0x81;
    f[1] = 0x3E;
    f
}

/// Runs the raw server until every connection is gone or `secs` have passed. Prints
/// `raw-server listening on ADDR` first, and starts writing once `expect` connections are in.
pub fn serve(expect: usize, threads: usize, batch: usize, secs: f64) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the raw server")?;
    // std listens with a small backlog; N connects arrive in one burst (somaxconn is 4096).
    // SAFETY: listen() on our own listening socket only changes its backlog.
    unsafe { libc::listen(listener.as_raw_fd(), 4096) };
    println!("raw-server listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    listener.set_nonblocking(true)?;
    let mut conns = Vec::with_capacity(expect);
    while conns.len() < expect {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nodelay(true)?;
                s.set_nonblocking(true)?;
                conns.push(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    bail!("only {} of {expect} connections arrived", conns.len());
                }
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e).context("accept"),
        }
    }
    let buf: Vec<u8> = frame().repeat(batch.max(1));
    let threads = threads.max(1);
    let mut shares: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, c) in conns.into_iter().enumerate() {
        shares[i % threads].push(c);
    }
    let workers: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let buf = buf.clone();
            thread::spawn(move || sweep(share, &buf, deadline))
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

/// One thread's sweep: one non-blocking `send()` of the batch per socket per round, resuming
/// a partial write where it stopped (the stream stays whole frames); when a whole round made
/// no progress, waits for any socket to become writable.
fn sweep(conns: Vec<TcpStream>, buf: &[u8], deadline: Instant) {
    let mut offs = vec![0usize; conns.len()];
    let mut alive = vec![true; conns.len()];
    let mut live = conns.len();
    while live > 0 && Instant::now() < deadline {
        let mut progress = false;
        for (i, c) in conns.iter().enumerate() {
            if !alive[i] {
                continue;
            }
            let chunk = &buf[offs[i]..];
            // SAFETY: the fd belongs to `c`, alive for this call; the buffer outlives it.
            let n = unsafe {
                libc::send(
                    c.as_raw_fd(),
                    chunk.as_ptr().cast(),
                    chunk.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n > 0 {
                offs[i] = (offs[i] + n as usize) % buf.len();
                progress = true;
            } else {
                let e = io::Error::last_os_error();
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    alive[i] = false;
                    live -= 1;
                }
            }
        }
        if !progress {
            let mut fds: Vec<libc::pollfd> = conns
                .iter()
                .zip(&alive)
                .filter(|(_, a)| **a)
                .map(|(c, _)| libc::pollfd {
                    fd: c.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                })
                .collect();
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10) };
        }
    }
}

/// What the raw reader measured.
#[derive(Debug, Clone, Copy)]
pub struct RawResult {
    pub frames: u64,
    pub secs: f64,
    /// frame boundaries that did not hold `0x81 0x3E`; must be 0
    pub bad_frames: u64,
    pub client_cpu_s: f64,
    pub server_cpu_s: Option<f64>,
}

/// Connects `conns` sockets to the raw server, lets it run `warmup`, then counts whole frames
/// over `secs` on one mio thread.
pub fn read(
    addr: SocketAddr,
    conns: usize,
    warmup: Duration,
    secs: Duration,
    server_pid: Option<u32>,
) -> anyhow::Result<RawResult> {
    raptor_loadtest::limits::ensure_fds(conns as u64)?;
    let mut poll = Poll::new()?;
    let mut socks = Vec::with_capacity(conns);
    for i in 0..conns {
        let s = TcpStream::connect(addr).with_context(|| format!("connection {i}"))?;
        s.set_nonblocking(true)?;
        let mut s = MioStream::from_std(s);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)?;
        socks.push(s);
    }
    // Bytes into the current frame, per socket: where the next boundary falls.
    let mut phase = vec![0usize; conns];
    let mut buf = vec![0u8; 256 << 10];
    let mut events = Events::with_capacity(1024);
    let started = Instant::now();
    let mut window: Option<(Instant, u64, CpuWindow)> = None;
    let (mut bytes, mut bad) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        match &window {
            None if now - started >= warmup => {
                window = Some((now, bytes, CpuWindow::start(server_pid)?));
            }
            Some((t0, _, _)) if now - *t0 >= secs => break,
            _ => {}
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))?;
        for ev in &events {
            let i = ev.token().0;
            loop {
                match socks[i].read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let p = phase[i];
                        let mut at = (FRAME_LEN - p) % FRAME_LEN;
                        while at < n {
                            if buf[at] != 0x81 || (at + 1 < n && buf[at + 1] != 0x3E) {
                                bad += 1;
                            }
                            at += FRAME_LEN;
                        }
                        phase[i] = (p + n) % FRAME_LEN;
                        bytes += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e).context("reading from the raw server"),
                }
            }
        }
    }
    let (t0, b0, cpu) = window.expect("window opened before it closed");
    let secs = t0.elapsed().as_secs_f64();
    let (client_cpu_s, server_cpu_s) = cpu.stop()?;
    Ok(RawResult {
        frames: (bytes - b0) / FRAME_LEN as u64,
        secs,
        bad_frames: bad,
        client_cpu_s,
        server_cpu_s,
    })
}
