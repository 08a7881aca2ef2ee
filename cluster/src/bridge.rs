//! **Boundary:** the one place where tokio (the cluster thread: chitchat, links) meets
//! glommio (the shards). Everything that crosses goes through a [`channel`] made here.
//!
//! ## The contract
//!
//! * **Bounded, both directions.** Every queue has a fixed capacity chosen at start; memory
//!   never grows with load.
//! * **A shard never blocks.** From glommio, call [`BridgeTx::try_send`] (or
//!   [`BridgeTx::send_or_drop`]) and [`BridgeRx::try_recv`], which return at once, or await
//!   [`BridgeRx::recv`] in a task of its own. These are `tokio::sync::mpsc` underneath, which
//!   needs no tokio runtime to poll or to wake: a glommio task awaiting `recv` is woken
//!   through its own `Waker` when the tokio thread sends (stack-notes §6, and the test below
//!   runs exactly that). Shard message handlers must not await a send: when a queue is full
//!   the message is dropped and counted, like a full link queue (at-most-once, docs/cluster.md).
//! * **The cluster side may await.** On the tokio thread, `BridgeTx::send().await` waits
//!   for room; the link reader uses it so a slow shard pushes back on its TCP socket instead
//!   of dropping.
//! * **Values are `Send` and owned.** Nothing `Rc`, nothing borrowed; messages move.
//! * **Closing is dropping.** When every sender is gone, `recv` returns `None`; a send to a
//!   dropped receiver returns the value back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Why a `try_send` did not enqueue; the value is handed back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The queue is at capacity: the receiver is behind. Drop (and count) or retry later.
    Full(T),
    /// The receiver is gone (shutting down). Drop the value.
    Closed(T),
}

/// Sending half; cheap to clone, `Send + Sync`.
pub struct BridgeTx<T> {
    tx: mpsc::Sender<T>,
    dropped: Arc<AtomicU64>,
}

impl<T> Clone for BridgeTx<T> {
    fn clone(&self) -> Self {
        BridgeTx {
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
        }
    }
}

/// Receiving half; one per queue.
pub struct BridgeRx<T> {
    rx: mpsc::Receiver<T>,
}

/// A bounded queue between the cluster thread and a shard (either way round).
pub fn channel<T>(capacity: usize) -> (BridgeTx<T>, BridgeRx<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        BridgeTx {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        BridgeRx { rx },
    )
}

impl<T> BridgeTx<T> {
    /// Enqueues without waiting. Safe from any runtime or none.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(value).map_err(|e| match e {
            mpsc::error::TrySendError::Full(v) => TrySendError::Full(v),
            mpsc::error::TrySendError::Closed(v) => TrySendError::Closed(v),
        })
    }

    /// Enqueues without waiting; a value that does not fit is dropped and counted.
    /// Returns whether it was enqueued.
    pub fn send_or_drop(&self, value: T) -> bool {
        match self.tx.try_send(value) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits for room (cluster side, or a glommio task that may wait). `Err` hands the value
    /// back when the receiver is gone.
    pub async fn send(&self, value: T) -> Result<(), T> {
        self.tx.send(value).await.map_err(|e| e.0)
    }

    /// Values dropped by [`BridgeTx::send_or_drop`] on this queue, from every clone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Free slots right now.
    pub fn capacity(&self) -> usize {
        self.tx.capacity()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<T> BridgeRx<T> {
    /// The next value; `None` once every sender is dropped and the queue is drained.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    /// The next value if one is queued now.
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Values waiting.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_counts_drops() {
        let (tx, mut rx) = channel::<u32>(2);
        assert!(tx.send_or_drop(1));
        assert!(tx.send_or_drop(2));
        assert!(!tx.send_or_drop(3));
        assert_eq!(tx.try_send(4), Err(TrySendError::Full(4)));
        assert_eq!(tx.clone().dropped(), 1);
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(rx.len(), 1);
        drop(rx);
        assert_eq!(tx.try_send(5), Err(TrySendError::Closed(5)));
    }

    /// The real crossing: a glommio executor awaits values a tokio thread sends, and answers
    /// through a second queue that the tokio side awaits.
    #[test]
    fn glommio_and_tokio_talk_both_ways() {
        let (to_shard, mut shard_rx) = channel::<u64>(4);
        let (to_cluster, mut cluster_rx) = channel::<u64>(4);
        let tokio_side = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut sum = 0;
                for i in 1..=100u64 {
                    to_shard.send(i).await.unwrap();
                    sum += cluster_rx.recv().await.unwrap();
                }
                sum
            })
        });
        let shard = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                while let Some(v) = shard_rx.recv().await {
                    // Shard side never waits to send.
                    to_cluster.try_send(v * 2).unwrap();
                }
            })
            .unwrap();
        assert_eq!(tokio_side.join().unwrap(), 2 * 5050);
        shard.join().unwrap();
    }
}
