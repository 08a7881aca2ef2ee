//! Heap bytes per idle subscribed WebSocket connection, counted by the allocator itself.
//!
//! The server runs in this process (`server::run`, two shards, the binary's allocator,
//! mimalloc) under a counting wrapper, and the clients are plain blocking `std` sockets that
//! allocate nothing per connection, so every byte counted is the server's. What is counted
//! is what mimalloc hands out (`mi_usable_size`, its size class), not what was asked for: a
//! struct one byte past a size class costs the next class, and this test shows it.
//!
//! The benchmark's figure (`raptor-bench run --only idle`, docs/benchmarks.md) is RSS, which
//! adds mimalloc's partly used pages and the kernel's page tables; this test bounds the part
//! the code decides, and prints by size what it is made of (docs/bench/notes.md, "Idle
//! connections", has the account).

use mimalloc::MiMalloc;
use raptor_engine::config::{Config, Overrides};
use std::alloc::{GlobalAlloc, Layout};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::Duration;

/// Usable sizes are counted in buckets of 8 bytes up to this size; larger ones in the last.
const BUCKETS: usize = 2048;

struct Counting;

unsafe extern "C" {
    /// mimalloc's size class of a live block (linked in with the allocator itself; the
    /// `mimalloc` crate exposes it only behind a feature the server does not use).
    fn mi_usable_size(p: *const std::ffi::c_void) -> usize;
}

fn usable(p: *mut u8) -> usize {
    // SAFETY: `p` is a live block from mimalloc.
    unsafe { mi_usable_size(p.cast()) }
}

static LIVE: AtomicI64 = AtomicI64::new(0);
static BY_SIZE: [AtomicI64; BUCKETS + 1] = [const { AtomicI64::new(0) }; BUCKETS + 1];

fn count(usable: usize, sign: i64) {
    LIVE.fetch_add(sign * usable as i64, Relaxed);
    BY_SIZE[(usable / 8).min(BUCKETS)].fetch_add(sign, Relaxed);
}

/// Where live blocks of the sizes in `MEM_TRACE` (a comma-separated list of usable sizes)
/// were allocated: for finding which code holds a size class. Off unless asked for.
// Allocations come from every shard's thread at once, so this state needs a lock; it is a
// measuring aid of this test, not shard state.
#[allow(clippy::disallowed_types)]
mod trace {
    use std::backtrace::Backtrace;
    use std::cell::Cell;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::Mutex;

    pub static ON: AtomicBool = AtomicBool::new(false);
    pub static SIZES: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    #[allow(clippy::type_complexity)]
    pub static LIVE: Mutex<Option<HashMap<usize, (usize, Backtrace)>>> = Mutex::new(None);
    thread_local!(static IN_HOOK: Cell<bool> = const { Cell::new(false) });

    fn guarded(f: impl FnOnce()) {
        if !ON.load(Relaxed) || IN_HOOK.with(|h| h.replace(true)) {
            return;
        }
        f();
        IN_HOOK.with(|h| h.set(false));
    }

    pub fn alloc(p: *mut u8, usable: usize) {
        guarded(|| {
            if SIZES.lock().unwrap().contains(&usable) {
                let bt = Backtrace::force_capture();
                let mut live = LIVE.lock().unwrap();
                live.get_or_insert_with(HashMap::new)
                    .insert(p as usize, (usable, bt));
            }
        });
    }

    pub fn free(p: *mut u8) {
        guarded(|| {
            if let Some(m) = LIVE.lock().unwrap().as_mut() {
                m.remove(&(p as usize));
            }
        });
    }

    /// Prints one live block's stack per size, our crates' frames only.
    pub fn print() {
        ON.store(false, Relaxed);
        let live = LIVE.lock().unwrap().take().unwrap_or_default();
        let mut seen = Vec::new();
        for (usable, bt) in live.values() {
            if seen.iter().filter(|s| *s == usable).count() >= 2 {
                continue;
            }
            seen.push(*usable);
            let text = bt.to_string();
            let frames: Vec<&str> = text
                .lines()
                .filter(|l| l.contains(": ") && !l.contains("memory::"))
                .filter(|l| {
                    [
                        "raptor",
                        "glommio",
                        "tungstenite",
                        "hashbrown",
                        "bytes",
                        "alloc::",
                    ]
                    .iter()
                    .any(|k| l.contains(k))
                })
                .take(8)
                .collect();
            eprintln!("--- {usable} bytes:\n{}", frames.join("\n"));
        }
    }
}

// SAFETY: every call is passed on to mimalloc unchanged; only counters are updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            count(usable(p), 1);
            trace::alloc(p, usable(p));
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            count(usable(p), 1);
            trace::alloc(p, usable(p));
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        count(usable(p), -1);
        trace::free(p);
        unsafe { MiMalloc.dealloc(p, layout) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        let old = usable(p);
        let q = unsafe { MiMalloc.realloc(p, layout, new) };
        if !q.is_null() {
            count(old, -1);
            trace::free(p);
            count(usable(q), 1);
            trace::alloc(q, usable(q));
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A snapshot of the counters.
struct Heap {
    live: i64,
    by_size: Vec<i64>,
}

fn heap() -> Heap {
    Heap {
        live: LIVE.load(Relaxed),
        by_size: BY_SIZE.iter().map(|c| c.load(Relaxed)).collect(),
    }
}

fn start_server() -> SocketAddr {
    let over = Overrides {
        bind: Some("127.0.0.1:0".into()),
        shards: Some("2".into()),
        metrics_bind: Some("off".into()),
        no_pin: true,
        ..Overrides::default()
    };
    let cfg = Config::load(None, &over).expect("default config");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = raptor_engine::server::run(cfg, None, over, move |addr, _, _| {
            let _ = tx.send(addr);
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("server up")
}

/// Reads until `needle` has arrived.
fn read_until(s: &mut TcpStream, needle: &[u8]) {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(needle.len()).any(|w| w == needle) {
        let n = s.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "server closed; got {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// A masked client text frame (payload under 126 bytes).
fn text_frame(payload: &str) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut f = vec![0x81, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// An idle, subscribed connection, as the benchmark's idle scenario holds them.
fn connect(addr: SocketAddr, channel: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /app/app-key?protocol=7&client=js&version=8.6.0 HTTP/1.1\r\nHost: x\r\n\
          Upgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    read_until(&mut s, b"connection_established");
    let sub = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"c{channel}"}}}}"#);
    s.write_all(&text_frame(&sub)).unwrap();
    read_until(&mut s, b"subscription_succeeded");
    s
}

/// Lets the shards finish what the last connection started (its flush, the owner's reply).
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn an_idle_subscribed_connection_costs_little_heap() {
    const WARM: usize = 500;
    const N: usize = 2000;
    let addr = start_server();
    // Warm up: the shards' tables, the 100 channels and mimalloc's pages exist before the
    // measurement, as they do a few seconds into the benchmark.
    let mut conns: Vec<TcpStream> = (0..WARM).map(|i| connect(addr, i % 100)).collect();
    settle();
    if let Ok(sizes) = std::env::var("MEM_TRACE") {
        *trace::SIZES.lock().unwrap() = sizes.split(',').filter_map(|s| s.parse().ok()).collect();
        trace::ON.store(true, Relaxed);
    }
    let before = heap();
    conns.extend((0..N).map(|i| connect(addr, i % 100)));
    settle();
    let after = heap();
    trace::print();
    let per_conn = (after.live - before.live) as f64 / N as f64;
    eprintln!("heap per idle subscribed connection: {per_conn:.0} bytes (mimalloc size classes)");
    eprintln!("allocations per connection by size class (classes that changed by N/10 or more):");
    for (i, (a, b)) in after.by_size.iter().zip(&before.by_size).enumerate() {
        let d = a - b;
        if d.unsigned_abs() as usize >= N / 10 {
            let size = if i == BUCKETS {
                format!(">{}", BUCKETS * 8)
            } else {
                format!("{}..{}", i * 8, i * 8 + 7)
            };
            eprintln!("  {size:>12} bytes: {:+.2}", d as f64 / N as f64);
        }
    }
    // 6,879 bytes before the session got its own task and stopped keeping read buffers,
    // 2,568 after (docs/bench/notes.md, "Idle connections"). The bound leaves no room for
    // another kept buffer: one shows here before it shows in the benchmark.
    assert!(
        per_conn <= BOUND as f64,
        "an idle subscribed connection holds {per_conn:.0} heap bytes"
    );
    drop(conns);
}

/// Heap bytes (usable sizes) an idle subscribed connection may hold.
const BOUND: usize = 2_816;
