//! What the coordinating thread and the worker threads of one run share.
//!
//! Workers own their connections and histograms outright; only counters and flags
//! cross threads, as relaxed atomics that workers update once per poll round, not
//! once per message.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::progress::Progress;

/// Counters and flags of one run.
#[derive(Default)]
pub struct Shared {
    /// workers close everything and return their results
    pub stop: AtomicBool,
    /// setup is done: workers may start generating load (presence churn)
    pub go: AtomicBool,
    /// workers must stop generating new load (the duration is up) but keep receiving
    pub stop_load: AtomicBool,
    /// workers that have stopped generating load
    pub load_done: AtomicUsize,
    /// connections fully set up (subscribed, or established for churners)
    pub ready: AtomicU64,
    /// units of load sent (publishes, joins, completed connects)
    pub published: AtomicU64,
    /// stamped events received
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    /// Counts an error; the first one is kept for the report.
    pub fn error(&self, what: impl Display) {
        self.errors.fetch_add(1, Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(what.to_string());
        }
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }
}

/// Waits until `want` connections are ready. Fails on the first error or at `timeout`
/// (after telling the workers to stop), so a broken server costs seconds, not minutes.
pub fn wait_ready(
    shared: &Shared,
    want: u64,
    timeout: Duration,
    progress: bool,
) -> anyhow::Result<Duration> {
    let bar = Progress::new(progress, want, "connecting");
    let start = Instant::now();
    loop {
        let ready = shared.ready.load(Relaxed);
        bar.set(ready);
        if ready >= want {
            bar.finish();
            return Ok(start.elapsed());
        }
        if shared.errors.load(Relaxed) > 0 {
            bar.finish();
            shared.stop.store(true, Relaxed);
            bail!(
                "setup failed after {ready}/{want} connections: {}",
                shared.first_error().unwrap_or_default()
            );
        }
        if start.elapsed() > timeout {
            bar.finish();
            shared.stop.store(true, Relaxed);
            bail!("setup timed out after {timeout:?} with {ready}/{want} connections ready");
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until `delivered` reaches `want` or `timeout` passes; returns when it stopped.
pub fn wait_drained(shared: &Shared, want: u64, timeout: Duration) -> Instant {
    let start = Instant::now();
    while shared.delivered.load(Relaxed) < want && start.elapsed() < timeout {
        thread::sleep(Duration::from_micros(500));
    }
    Instant::now()
}

/// Joins worker threads, turning a panic into an error.
pub fn join_all<T>(handles: Vec<thread::JoinHandle<anyhow::Result<T>>>) -> anyhow::Result<Vec<T>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|_| anyhow::anyhow!("worker thread panicked"))?
        })
        .collect::<anyhow::Result<Vec<T>>>()
        .context("worker failed")
}
