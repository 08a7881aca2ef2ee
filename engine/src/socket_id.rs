//! Pusher socket ids: `\d+\.\d+`, unique per connection.

use std::fmt;

/// A connection's public identity. The first part is random per process, the second a
/// per-shard counter with the shard id in its low bits, so ids never repeat within a run and
/// parsing one back (for `socket_id` exclusion) is a cheap integer compare at fanout time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketId {
    pub hi: u64,
    pub lo: u64,
}

impl SocketId {
    /// Parses `\d+\.\d+`; anything else is `None`.
    pub fn parse(s: &str) -> Option<SocketId> {
        let (a, b) = s.split_once('.')?;
        if a.is_empty() || b.is_empty() || a.len() > 19 || b.len() > 19 {
            return None;
        }
        if !a.bytes().all(|c| c.is_ascii_digit()) || !b.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(SocketId {
            hi: a.parse().ok()?,
            lo: b.parse().ok()?,
        })
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.hi, self.lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_roundtrip() {
        let id = SocketId {
            hi: 123456,
            lo: 7891011,
        };
        assert_eq!(SocketId::parse(&id.to_string()), Some(id));
        assert_eq!(SocketId::parse("1.2"), Some(SocketId { hi: 1, lo: 2 }));
        for bad in [
            "",
            ".",
            "1.",
            ".2",
            "a.b",
            "1.2.3",
            "-1.2",
            "1 .2",
            "99999999999999999999.1",
        ] {
            assert_eq!(SocketId::parse(bad), None, "{bad}");
        }
    }
}
