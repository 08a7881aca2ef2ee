//! Webhook counters: written by the shards (`queued`, `dropped`) and the webhook thread, read
//! by anyone (for `/metrics`) without a lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the webhook counters, all monotonic since start.
///
/// Units: `queued` counts events handed over by the shards. `sent`, `failed` and `dropped`
/// count events per endpoint, so with two endpoints one queued event can be sent twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WebhookStats {
    /// Events accepted into the hand-over queue.
    pub queued: u64,
    /// Events delivered (the endpoint answered 2xx).
    pub sent: u64,
    /// Events given up on after retrying for 5 minutes.
    pub failed: u64,
    /// Events discarded for lack of room: the hand-over queue was full, or the batch holding
    /// them was the oldest when too many batches were waiting.
    pub dropped: u64,
    /// Requests that were retries of a failed request.
    pub retried: u64,
    /// Events cancelled by the debounce: a `channel_vacated` followed by `channel_occupied`
    /// (or `member_removed` by `member_added`) within 3 s; both count.
    pub debounced: u64,
}

/// The live counters behind [`WebhookStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub queued: AtomicU64,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub retried: AtomicU64,
    pub debounced: AtomicU64,
}

impl Counters {
    /// Adds `n`; returns the new value. Relaxed: these are statistics, not synchronization.
    pub fn add(c: &AtomicU64, n: u64) -> u64 {
        c.fetch_add(n, Ordering::Relaxed) + n
    }

    pub fn snapshot(&self) -> WebhookStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WebhookStats {
            queued: get(&self.queued),
            sent: get(&self.sent),
            failed: get(&self.failed),
            dropped: get(&self.dropped),
            retried: get(&self.retried),
            debounced: get(&self.debounced),
        }
    }
}
