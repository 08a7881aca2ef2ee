//! Node-wide admission and shutdown state, shared by every shard.
//!
//! Atomics only (no locks): shards add and subtract connection counts, and read the
//! shutdown flag that the signal thread sets.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Node {
    /// Live WebSocket connections on every shard.
    pub connections: AtomicUsize,
    /// Set once by SIGTERM/SIGINT: stop accepting, send 4200 to everyone, drain.
    pub shutdown: AtomicBool,
    /// Shards that finished draining.
    pub drained: AtomicUsize,
}

impl Node {
    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}

/// Waits (blocking, on the signal thread) for SIGTERM or SIGINT, then sets the flag.
pub fn watch_signals(node: Arc<Node>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("raptor-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!(signal = sig, "shutting down: closing connections with 4200");
                node.shutdown.store(true, Ordering::SeqCst);
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
