//! Subscriptions held open while another scenario runs: one WebSocket connection per name,
//! subscribed to it (a public channel or, on Raptor, a wildcard pattern such as `ns1/*/x`),
//! counting the stamped events it receives. `raptor-bench --only patterns` holds 1,000
//! patterns this way during a fanout and checks that none of them received anything.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;

use anyhow::bail;

use crate::limits;
use crate::net::Endpoint;
use crate::options::Common;
use crate::run::{self, Shared};
use crate::subscribers::{self, SubOutcome};

/// Connections holding their subscriptions until [`Held::release`].
pub struct Held {
    shared: Arc<Shared>,
    workers: Vec<thread::JoinHandle<anyhow::Result<SubOutcome>>>,
    names: usize,
}

/// What the held subscriptions saw, once released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldOutcome {
    /// subscriptions held
    pub subscriptions: usize,
    /// stamped (loadtest) events they received
    pub received: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Opens one connection per name on `common.threads` threads and returns once every one is
/// subscribed (`subscription_succeeded` for its name), or fails at the first error or at
/// `common.setup_timeout`.
pub fn hold(common: &Common, names: Vec<String>) -> anyhow::Result<Held> {
    if names.is_empty() {
        bail!("nothing to hold");
    }
    let n = names.len() as u64;
    limits::ensure_fds(n)?;
    let sources = limits::plan_sources(common.target.addr.ip(), n, common.source_addrs)?;
    let endpoint = Endpoint::new(&common.target, sources);
    let plan: Vec<u32> = (0..n as u32).collect();
    let shared = Arc::new(Shared::default());
    let count = names.len();
    let workers = subscribers::spawn(
        common.threads,
        &endpoint,
        Arc::new(names),
        &plan,
        &[],
        &shared,
        common.connect_concurrency,
    );
    if let Err(e) = run::wait_ready(&shared, n, common.setup_timeout, false) {
        let _ = run::join_all(workers);
        return Err(e);
    }
    Ok(Held {
        shared,
        workers,
        names: count,
    })
}

impl Held {
    /// Stamped events received so far.
    pub fn received(&self) -> u64 {
        self.shared.delivered.load(Relaxed)
    }

    /// Closes every connection and says what they saw.
    pub fn release(self) -> anyhow::Result<HeldOutcome> {
        self.shared.stop.store(true, Relaxed);
        let all = subscribers::merge(run::join_all(self.workers)?);
        Ok(HeldOutcome {
            subscriptions: self.names,
            received: self.shared.delivered.load(Relaxed).max(all.latency.len()),
            errors: self.shared.errors.load(Relaxed),
            first_error: self.shared.first_error(),
        })
    }
}
