//! The raw floors' server (`raptor-bench raw-floor`, a separate process like a real server):
//! the least a Pusher server could do for the same client code, with nothing of Raptor in it.
//!
//! * `--mode latency`: accept N connections, answer each one's upgrade with 101 and
//!   `pusher:connection_established`, read its `pusher:subscribe` and answer
//!   `subscription_succeeded`; once all N are in, send `--events` events at `--rate`/s. Each
//!   event is one pre-encoded frame carrying the loadtest's own stamp (`{"seq":N,"t":NS,…}`,
//!   `t` from [`raptor_loadtest::clock::now_ns`] taken once per event just before the sweep,
//!   as the loadtest stamps a publish just before sending it), written to every socket with
//!   one blocking `send()` each, the sockets split over `--threads` writers (Raptor's shards).
//!   The loadtest's receivers time it exactly as they time Raptor.
//! * `--mode connect`: accept, read the HTTP upgrade request, write the 101, close. Nothing
//!   else, on `--threads` accepting threads, until stopped.

use anyhow::{bail, Context};
use argh::FromArgs;
use raptor_loadtest::clock::now_ns;
use raptor_loadtest::payload;
use raptor_loadtest::ws::handshake::accept_for;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// The raw floors' server: `--mode latency` (timestamped Pusher frames at a fixed rate, one
/// frame per send) or `--mode connect` (accept, upgrade, close).
#[derive(FromArgs)]
#[argh(subcommand, name = "raw-floor")]
pub struct RawFloorCmd {
    /// latency or connect
    #[argh(option)]
    pub mode: String,
    /// latency: subscribers to accept before sending starts
    #[argh(option, default = "1000")]
    pub expect: usize,
    /// writer threads (latency) or accepting threads (connect) (default 2)
    #[argh(option, default = "2")]
    pub threads: usize,
    /// latency: events per second (default 100)
    #[argh(option, default = "100.0")]
    pub rate: f64,
    /// latency: events to send (default 400)
    #[argh(option, default = "400")]
    pub events: u64,
    /// latency: bytes of each event's data, as the loadtest's --payload-bytes (default 64)
    #[argh(option, default = "64")]
    pub payload_bytes: usize,
    /// exit after this many seconds at most (default 60)
    #[argh(option, default = "60.0")]
    pub secs: f64,
}

/// Event name and `data` shape of the loadtest's fanout, so its receivers accept the frames.
const EVENT: &str = raptor_loadtest::subscribers::EVENT_NAME;
/// How long one connection's handshake may take before the floor gives up on the run.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `raw-floor` until done, printing `raw-floor listening on ADDR` first.
pub fn serve(c: &RawFloorCmd) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the raw floor")?;
    // std listens with a small backlog; a connect storm keeps hundreds of connects in flight.
    // SAFETY: listen() on our own listening socket only changes its backlog.
    unsafe { libc::listen(listener.as_raw_fd(), 4096) };
    println!("raw-floor listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    let deadline = Instant::now() + Duration::from_secs_f64(c.secs);
    // A watchdog: the harness stops this process, but a forgotten one must not live on.
    thread::spawn(move || {
        thread::sleep(deadline.saturating_duration_since(Instant::now()));
        std::process::exit(0);
    });
    match c.mode.as_str() {
        "latency" => latency(c, &listener),
        "connect" => connect(c.threads.max(1), &listener),
        m => bail!("--mode {m:?}: latency or connect"),
    }
}

/// One server-to-client text frame (unmasked).
pub fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x81);
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xFFFF => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// The first complete client frame (masked) at the start of `buf`: its unmasked payload and
/// the bytes it used; `None` if more bytes are needed.
pub fn client_frame(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let (len, mut at) = match buf[1] & 0x7F {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    let mask: Option<[u8; 4]> = if buf[1] & 0x80 != 0 {
        let m = buf.get(at..at + 4)?.try_into().ok();
        at += 4;
        m
    } else {
        None
    };
    let body = buf.get(at..at + len)?;
    let payload = match mask {
        Some(m) => body.iter().enumerate().map(|(i, b)| b ^ m[i % 4]).collect(),
        None => body.to_vec(),
    };
    Some((payload, at + len))
}

/// The `Sec-WebSocket-Key` of a complete request head.
pub fn websocket_key(head: &str) -> Option<&str> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim())
    })
}

/// Reads until the end of the request head; returns the head and any bytes after it.
fn read_head(s: &mut TcpStream) -> anyhow::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > 16 << 10 {
            bail!("request head over 16 KiB");
        }
        match s.read(&mut chunk)? {
            0 => bail!("closed before the end of the request head"),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn upgrade_response(head: &str) -> anyhow::Result<String> {
    let key = websocket_key(head).context("upgrade request without Sec-WebSocket-Key")?;
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_for(key.as_bytes())
    ))
}

/// `connect` mode: each thread accepts, answers the upgrade with 101 and closes.
fn connect(threads: usize, listener: &TcpListener) -> anyhow::Result<()> {
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let l = listener.try_clone()?;
            Ok(thread::spawn(move || loop {
                let Ok((mut s, _)) = l.accept() else { continue };
                // A client that misbehaves costs its cycle, not the floor.
                let _ = s.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
                if let Ok((head, _)) = read_head(&mut s) {
                    if let Ok(resp) = upgrade_response(&head) {
                        let _ = s.write_all(resp.as_bytes());
                    }
                }
            }))
        })
        .collect::<io::Result<_>>()?;
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

/// Upgrade, `connection_established`, then the subscribe; returns the channel name.
fn pusher_handshake(s: &mut TcpStream, id: usize) -> anyhow::Result<String> {
    s.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    s.set_nodelay(true)?;
    let (head, mut buf) = read_head(s)?;
    let mut out = upgrade_response(&head)?.into_bytes();
    let data = format!(r#"{{"socket_id":"{id}.{id}","activity_timeout":120}}"#);
    let established = serde_json::json!({"event": "pusher:connection_established", "data": data});
    out.extend(text_frame(established.to_string().as_bytes()));
    s.write_all(&out)?;
    let mut chunk = [0u8; 2048];
    let msg = loop {
        if let Some((payload, _)) = client_frame(&buf) {
            break payload;
        }
        match s.read(&mut chunk)? {
            0 => bail!("closed before subscribing"),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&msg).context("subscribe frame")?;
    if v["event"] != "pusher:subscribe" {
        bail!("expected pusher:subscribe, got {}", v["event"]);
    }
    let channel = v["data"]["channel"]
        .as_str()
        .context("subscribe without a channel")?
        .to_string();
    let ok = serde_json::json!({
        "event": "pusher_internal:subscription_succeeded", "channel": channel, "data": "{}"
    });
    s.write_all(&text_frame(ok.to_string().as_bytes()))?;
    Ok(channel)
}

/// The frame of event `seq` on `channel`, stamped now.
pub fn event_frame(channel: &str, seq: u64, payload_bytes: usize) -> Vec<u8> {
    let data = payload::encode(seq, now_ns(), payload_bytes);
    let msg = serde_json::json!({"event": EVENT, "channel": channel, "data": data});
    text_frame(msg.to_string().as_bytes())
}

/// `latency` mode.
fn latency(c: &RawFloorCmd, listener: &TcpListener) -> anyhow::Result<()> {
    let mut conns = Vec::with_capacity(c.expect);
    let mut channel: Option<String> = None;
    while conns.len() < c.expect {
        let (mut s, _) = listener.accept().context("accept")?;
        let ch = pusher_handshake(&mut s, conns.len())
            .with_context(|| format!("handshake of connection {}", conns.len()))?;
        match &channel {
            None => channel = Some(ch),
            Some(first) if *first != ch => bail!("subscribers of two channels: {first}, {ch}"),
            Some(_) => {}
        }
        conns.push(s);
    }
    let channel = channel.unwrap_or_default();
    let threads = c.threads.max(1);
    let mut shares: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, s) in conns.into_iter().enumerate() {
        shares[i % threads].push(s);
    }
    let mut txs = Vec::new();
    let mut writers = Vec::new();
    for share in shares {
        let (tx, rx) = mpsc::channel::<Arc<Vec<u8>>>();
        txs.push(tx);
        writers.push(thread::spawn(move || write_events(share, &rx)));
    }
    let start = Instant::now();
    for seq in 0..c.events {
        // Fixed schedule, as the loadtest's publisher: event i is due at start + i/rate.
        let due = start + Duration::from_secs_f64(seq as f64 / c.rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let frame = Arc::new(event_frame(&channel, seq, c.payload_bytes));
        for tx in &txs {
            let _ = tx.send(frame.clone());
        }
    }
    drop(txs);
    for w in writers {
        let _ = w.join();
    }
    Ok(())
}

/// One writer: every frame to every socket of its share, one blocking `send()` each (a
/// partial write is finished before the next socket); then holds the sockets until the
/// client closes them, so the end of the run is the client's, as with a real server.
fn write_events(socks: Vec<TcpStream>, rx: &mpsc::Receiver<Arc<Vec<u8>>>) {
    let mut alive = vec![true; socks.len()];
    for frame in rx {
        for (i, s) in socks.iter().enumerate() {
            if alive[i] && send_all(s, &frame).is_err() {
                alive[i] = false;
            }
        }
    }
    let mut sink = [0u8; 1024];
    for mut s in socks {
        // the client's pings and its close; a read error or EOF ends the wait
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    }
}

fn send_all(s: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: the fd belongs to `s`, alive for this call; the buffer outlives it.
        let n = unsafe {
            libc::send(
                s.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            buf = &buf[n as usize..];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_masked_and_unmasked() {
        let text = br#"{"event":"pusher:subscribe","data":{"channel":"x"}}"#;
        let f = text_frame(text);
        assert_eq!(client_frame(&f), Some((text.to_vec(), f.len())));
        // a masked client frame, as the loadtest sends it
        let mask = [1u8, 2, 3, 4];
        let mut m = vec![0x81, 0x80 | text.len() as u8];
        m.extend(mask);
        m.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        assert_eq!(client_frame(&m), Some((text.to_vec(), m.len())));
        assert_eq!(client_frame(&m[..m.len() - 1]), None);
        let long = vec![b'a'; 300];
        let f = text_frame(&long);
        assert_eq!(&f[..4], &[0x81, 126, 1, 44]);
        assert_eq!(client_frame(&f), Some((long, f.len())));
    }

    #[test]
    fn key_header_is_found_in_any_case() {
        let head = "GET /app/k HTTP/1.1\r\nHost: x\r\nsec-websocket-key: abc==\r\n\r\n";
        assert_eq!(websocket_key(head), Some("abc=="));
        assert_eq!(websocket_key("GET / HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn event_frames_carry_a_loadtest_stamp() {
        let f = event_frame("ch", 7, 64);
        let (payload, _) = client_frame(&f).expect("whole frame");
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["event"], EVENT);
        assert_eq!(v["channel"], "ch");
        let data = v["data"].as_str().unwrap();
        assert_eq!(data.len(), 64);
        let stamp = payload::decode(data).expect("a stamp");
        assert_eq!(stamp.seq, 7);
        assert!(stamp.t > 0);
    }
}
