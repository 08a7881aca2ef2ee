//! Options every scenario shares, and the bound that keeps every run finite.

use std::time::Duration;

use thiserror::Error;

use crate::fallback::{Transport, DEFAULT_HTTP_PATH};
use crate::target::Target;

/// Longest run we accept: long soaks are fine, forgotten ones are not.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The run would not be bounded. The caller's fault: give a duration or a count.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BoundError {
    #[error("refusing to run unbounded: give a duration (--duration) or a count (--count)")]
    Unbounded,
    #[error("duration must be positive and at most {} s", MAX_DURATION.as_secs())]
    BadDuration,
    #[error("count must be positive")]
    ZeroCount,
}

/// When a run stops: after `duration`, after `count` units of work, or whichever
/// comes first. At least one is always set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    duration: Option<Duration>,
    count: Option<u64>,
}

impl Bound {
    pub fn new(duration: Option<Duration>, count: Option<u64>) -> Result<Self, BoundError> {
        if duration.is_none() && count.is_none() {
            return Err(BoundError::Unbounded);
        }
        if duration.is_some_and(|d| d.is_zero() || d > MAX_DURATION) {
            return Err(BoundError::BadDuration);
        }
        if count == Some(0) {
            return Err(BoundError::ZeroCount);
        }
        Ok(Self { duration, count })
    }

    pub fn duration(&self) -> Option<Duration> {
        self.duration
    }

    pub fn count(&self) -> Option<u64> {
        self.count
    }

    /// Seconds given by a command line: `None` when absent.
    pub fn secs(s: Option<f64>) -> Result<Option<Duration>, BoundError> {
        match s {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 && s <= MAX_DURATION.as_secs_f64() => {
                Ok(Some(Duration::from_secs_f64(s)))
            }
            Some(_) => Err(BoundError::BadDuration),
        }
    }
}

/// Settings every scenario needs.
#[derive(Debug, Clone)]
pub struct Common {
    pub target: Target,
    /// server process to read CPU and RSS from (`/proc`); only for a local server
    pub server_pid: Option<u32>,
    /// client event-loop threads; 1 leaves the most CPU to a server on the same 2-core box
    pub threads: usize,
    /// source addresses 127.0.0.1..=N; `None` picks as many as the ports need
    pub source_addrs: Option<u64>,
    /// how long connecting and subscribing may take before the run is abandoned
    pub setup_timeout: Duration,
    /// connections in the middle of a handshake at once; the server's accept backlog
    /// (somaxconn 4096 here) drops SYNs beyond what it can take, costing 1 s retries
    pub connect_concurrency: usize,
    /// draw a progress bar on stderr
    pub progress: bool,
    /// further ports on the target's host that subscribers are spread over (`fanout` only):
    /// a cluster's other nodes. Publishing always goes to `target`. Empty: everything on
    /// `target`.
    pub extra_ports: Vec<u16>,
    /// how subscribers (`fanout`, `idle`) reach the server; publishing is always the HTTP API
    pub transport: Transport,
    /// prefix of the HTTP transports' routes (pusher-js's `httpPath`, default `/pusher`)
    pub http_path: String,
}

impl Common {
    /// Defaults suited to a 2-core machine running the server too.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            server_pid: None,
            threads: 1,
            source_addrs: None,
            setup_timeout: Duration::from_secs(60),
            connect_concurrency: 256,
            progress: false,
            extra_ports: Vec::new(),
            transport: Transport::Ws,
            http_path: DEFAULT_HTTP_PATH.to_string(),
        }
    }

    /// How many servers subscribers are spread over: the target and the extra ports.
    pub fn servers(&self) -> usize {
        1 + self.extra_ports.len()
    }
}

/// The server (0 = the target, `k` = `extra_ports[k - 1]`) of each connection in a plan
/// of `conns` connections where connection `i` subscribes to channel `i % channels`:
/// the `j`-th subscriber of every channel goes to server `j % servers`, so every channel
/// has subscribers on every server (as evenly as its subscriber count allows).
pub fn spread(conns: u64, channels: u64, servers: usize) -> Vec<u16> {
    let channels = channels.max(1);
    let servers = servers.max(1) as u64;
    (0..conns)
        .map(|i| ((i / channels) % servers) as u16)
        .collect()
}

/// Splits `total` into `parts` shares that differ by at most one.
pub fn split(total: u64, parts: usize) -> Vec<u64> {
    let parts = parts.max(1) as u64;
    (0..parts)
        .map(|i| total / parts + u64::from(i < total % parts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbounded_is_refused() {
        assert_eq!(Bound::new(None, None), Err(BoundError::Unbounded));
        assert_eq!(Bound::new(None, Some(0)), Err(BoundError::ZeroCount));
        assert_eq!(
            Bound::new(Some(Duration::ZERO), None),
            Err(BoundError::BadDuration)
        );
        assert!(Bound::new(Some(Duration::from_secs(1)), None).is_ok());
        assert!(Bound::new(None, Some(10)).is_ok());
    }

    #[test]
    fn secs_parse() {
        assert_eq!(
            Bound::secs(Some(1.5)),
            Ok(Some(Duration::from_millis(1500)))
        );
        assert_eq!(Bound::secs(Some(-1.0)), Err(BoundError::BadDuration));
        assert_eq!(
            Bound::secs(Some(f64::INFINITY)),
            Err(BoundError::BadDuration)
        );
        assert_eq!(Bound::secs(None), Ok(None));
    }

    #[test]
    fn spread_puts_every_channel_on_every_server() {
        // one server: everything on the target
        assert_eq!(spread(4, 2, 1), vec![0; 4]);
        // 1 channel × 999 over 3 servers: round-robin, 333 each
        let s = spread(999, 1, 3);
        assert_eq!(&s[..6], &[0, 1, 2, 0, 1, 2]);
        for k in 0..3u16 {
            assert_eq!(s.iter().filter(|&&x| x == k).count(), 333);
        }
        // 3 channels × 4 subscribers over 3 servers: connection i is channel i % 3; each
        // channel's subscribers go to servers 0, 1, 2, 0
        let s = spread(12, 3, 3);
        for ch in 0..3 {
            let mine: Vec<u16> = (ch..12).step_by(3).map(|i| s[i]).collect();
            assert_eq!(mine, vec![0, 1, 2, 0], "channel {ch}");
        }
    }

    #[test]
    fn split_is_fair() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split(7, 0), vec![7]);
    }
}
