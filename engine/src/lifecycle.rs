//! Node-wide admission and shutdown state, shared by every shard.
//!
//! Atomics only (no locks): shards add and subtract connection counts, and read the
//! shutdown flag that the signal thread sets.
//!
//! Shutdown (SIGTERM/SIGINT), as each shard sees the flag (within ~50 ms):
//! 1. its listening socket is shut down: the kernel refuses new connections, so clients back
//!    off or go to another node instead of being welcomed and sent away in a loop; a
//!    WebSocket upgrade on a connection accepted earlier is refused with 4200, and
//!    `GET /health` answers 503 `{"ok":false,"draining":true}` on open connections;
//! 2. every WebSocket connection gets close code 4200 (pusher-js reconnects at once);
//! 3. the shard counts itself drained once every close frame is in the kernel's hands, or
//!    `limits.shutdown_grace_secs` passed.
//!
//! The main thread then flushes webhooks (same grace) and exits 0.
//!
//! SIGHUP: reload the configuration ([`crate::reload`]: apps, limits, the TLS certificate, a
//! cluster node's secret file), on the signal thread.

use crate::reload::Reloader;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Node {
    /// Live sessions (WebSocket and HTTP) on every shard.
    pub connections: AtomicUsize,
    /// Live HTTP transport sessions (xhr and SSE) on every shard (`limits.http_fallback`).
    pub http_sessions: AtomicUsize,
    /// Set once by SIGTERM/SIGINT: stop listening, send 4200 to everyone, drain.
    pub shutdown: AtomicBool,
    /// A cluster node with seeds that has not met its cluster yet (no peer linked, and less
    /// than `JOIN_WAIT` since start): it would order events for channels other nodes own and
    /// deliver them to no one, so it refuses publishes (503) meanwhile.
    pub joining: AtomicBool,
    /// A cluster node that drains has handed its channels over (the gateway sets it; the
    /// main thread closes the links only then, or after `HANDOFF_WAIT`).
    pub handed_off: AtomicBool,
    /// Shards that finished draining.
    pub drained: AtomicUsize,
    /// Re-reads the configuration (SIGHUP, `POST /admin/reload`); set once at start.
    pub reloader: OnceLock<Arc<Reloader>>,
}

/// How long a draining cluster node waits for its handoff before it closes its links
/// anyway: the release's own bound (2.5 s) plus a history copy's (1 s), with room.
pub const HANDOFF_WAIT: Duration = Duration::from_secs(4);

/// How long a cluster node with seeds waits for a first peer before it takes publishes
/// anyway (it may be the first node of its cluster).
pub const JOIN_WAIT: Duration = Duration::from_secs(3);

impl Node {
    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Why this node must not accept a publish now, if it must not: one it acknowledged
    /// would be delivered to no one (docs/cluster.md, "Publishing while a node starts or
    /// drains"). Answered 503 with `Retry-After`.
    pub fn refuses_publishes(&self) -> Option<&'static str> {
        if self.shutting_down() {
            Some("this node is draining; publish to another node")
        } else if self.joining.load(Ordering::Relaxed) {
            Some("this node is joining its cluster; retry shortly")
        } else {
            None
        }
    }
}

/// Waits (blocking, on the signal thread) for SIGTERM or SIGINT, then sets the flag. SIGHUP
/// reloads the configuration (on this thread, never on a shard) and keeps waiting. Never
/// SIGHUP's default action: `systemctl reload` or a stray `kill -HUP` must not stop a server
/// (which systemd would count as a clean exit, not restart).
pub fn watch_signals(node: Arc<Node>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("raptor-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    match node.reloader.get() {
                        Some(r) => r.reload_logged(),
                        None => tracing::warn!("SIGHUP before the server started; ignored"),
                    }
                    continue;
                }
                tracing::info!(signal = sig, "shutting down: closing connections with 4200");
                node.shutdown.store(true, Ordering::SeqCst);
                break;
            }
        })?;
    Ok(())
}

/// Blocks until every shard drained or `grace` passed. Returns whether all drained.
pub fn wait_drained(node: &Node, nr_shards: usize, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if node.drained.load(Ordering::SeqCst) >= nr_shards {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
