//! Per-stream loss and order accounting for one receiver.
//!
//! A stream is what one publisher sends to one channel, numbered 0, 1, 2, …; TCP and a
//! correct server deliver it to every subscriber complete and in order. The check keeps
//! two counters and the next expected number, so it costs 24 bytes per subscriber
//! instead of a bitmap.

/// Loss and order counters for one (receiver, stream) pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCheck {
    /// the sequence number we expect next (one past the highest seen)
    next: u64,
    /// events received, duplicates included
    received: u64,
    /// events that arrived with a number below `next`: late or duplicated
    out_of_order: u64,
}

impl SeqCheck {
    /// Accounts for one received sequence number.
    pub fn observe(&mut self, seq: u64) {
        self.received += 1;
        if seq >= self.next {
            self.next = seq + 1;
        } else {
            self.out_of_order += 1;
        }
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn out_of_order(&self) -> u64 {
        self.out_of_order
    }

    /// Events missing once `published` were sent on the stream. A duplicate can mask a
    /// loss here, but it is then counted in `out_of_order`, so a clean run needs both zero.
    pub fn lost(&self, published: u64) -> u64 {
        published.saturating_sub(self.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[u64]) -> SeqCheck {
        let mut c = SeqCheck::default();
        seqs.iter().for_each(|&s| c.observe(s));
        c
    }

    #[test]
    fn in_order_complete() {
        let c = run(&[0, 1, 2, 3]);
        assert_eq!((c.lost(4), c.out_of_order()), (0, 0));
    }

    #[test]
    fn gap_is_lost() {
        let c = run(&[0, 1, 3]);
        assert_eq!((c.lost(4), c.out_of_order()), (1, 0));
    }

    #[test]
    fn late_arrival_is_out_of_order_not_lost() {
        let c = run(&[0, 2, 1, 3]);
        assert_eq!((c.lost(4), c.out_of_order()), (0, 1));
    }

    #[test]
    fn duplicate_is_out_of_order() {
        let c = run(&[0, 1, 1, 2]);
        assert_eq!(c.out_of_order(), 1);
        assert_eq!(c.lost(3), 0);
    }

    #[test]
    fn tail_loss() {
        let c = run(&[0, 1]);
        assert_eq!(c.lost(5), 3);
    }
}
