//! What this machine lets one client process open: file descriptors and source ports.
//!
//! Every socket is a file descriptor, so `RLIMIT_NOFILE` caps connections per process
//! (20,000 on the reference box). Every connection to one server address also needs its
//! own (source address, source port) pair; Linux hands out ports from
//! `ip_local_port_range` (32768–60999, ~28k) per source address, so past ~25k concurrent
//! sockets the client spreads over 127.0.0.1, 127.0.0.2, … (all of 127/8 is loopback).

use std::net::{IpAddr, Ipv4Addr};

use thiserror::Error;

/// Ports we plan to use per source address, leaving room for TIME_WAIT leftovers of
/// earlier runs and for other programs on the machine.
pub const PORTS_PER_SOURCE: u64 = 25_000;

/// Descriptors kept free for stdio, the poll instances, publishers and libraries.
pub const FD_SLACK: u64 = 64;

/// The run would not fit in this process. The caller's fault (ask for less, or raise
/// the limit); retrying unchanged fails the same way.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LimitError {
    #[error(
        "{needed} file descriptors needed ({conns} connections + {FD_SLACK} spare) but \
         RLIMIT_NOFILE is {limit} (hard limit {hard}); ask for fewer connections or raise \
         `ulimit -n` (run server and client as separate processes)"
    )]
    Fds {
        conns: u64,
        needed: u64,
        limit: u64,
        hard: u64,
    },
    #[error("getrlimit failed: {0}")]
    Rlimit(String),
    #[error(
        "{conns} concurrent connections need {sources} source addresses, but the server is \
         not on loopback, so only the kernel's choice of source address is available"
    )]
    SourcesNeedLoopback { conns: u64, sources: u64 },
    #[error("{0} source addresses requested; 1..=250 are available (127.0.0.1 to 127.0.0.250)")]
    TooManySources(u64),
}

/// Makes sure `conns` sockets fit under `RLIMIT_NOFILE`, raising the soft limit to the
/// hard one first if needed. Returns the soft limit now in force.
pub fn ensure_fds(conns: u64) -> Result<u64, LimitError> {
    let needed = conns + FD_SLACK;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(LimitError::Rlimit(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    if lim.rlim_cur < needed && lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct; raising soft up to hard needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    let (limit, hard) = (lim.rlim_cur, lim.rlim_max);
    if limit < needed {
        return Err(LimitError::Fds {
            conns,
            needed,
            limit,
            hard,
        });
    }
    Ok(limit)
}

/// Source addresses to bind before connecting, for `conns` concurrent connections.
/// Empty means "let the kernel choose", which is what a single address amounts to anyway.
/// `requested` overrides the automatic count (`Some(1)` binds to 127.0.0.1 explicitly).
pub fn plan_sources(
    server: IpAddr,
    conns: u64,
    requested: Option<u64>,
) -> Result<Vec<IpAddr>, LimitError> {
    let count = match requested {
        Some(n) => n,
        None => {
            let n = conns.div_ceil(PORTS_PER_SOURCE).max(1);
            if n == 1 {
                return Ok(Vec::new());
            }
            n
        }
    };
    if count == 0 || count > 250 {
        return Err(LimitError::TooManySources(count));
    }
    // 127.0.0.x sources only reach a server on IPv4 loopback
    if !server.is_loopback() || server.is_ipv6() {
        if count > 1 {
            return Err(LimitError::SourcesNeedLoopback {
                conns,
                sources: count,
            });
        }
        return Ok(Vec::new());
    }
    Ok((1..=count as u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn one_source_needs_no_bind() {
        assert_eq!(plan_sources(LO, 10_000, None), Ok(vec![]));
        assert_eq!(plan_sources(LO, 25_000, None), Ok(vec![]));
    }

    #[test]
    fn many_connections_spread_over_loopback() {
        let s = plan_sources(LO, 60_000, None).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[2], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
    }

    #[test]
    fn explicit_count_is_honoured() {
        assert_eq!(plan_sources(LO, 10, Some(2)).unwrap().len(), 2);
        assert_eq!(
            plan_sources(LO, 10, Some(0)),
            Err(LimitError::TooManySources(0))
        );
    }

    #[test]
    fn remote_server_cannot_use_loopback_sources() {
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(plan_sources(remote, 60_000, None).is_err());
        assert_eq!(plan_sources(remote, 10, None), Ok(vec![]));
    }

    #[test]
    fn small_runs_fit_fds() {
        assert!(ensure_fds(10).is_ok());
        assert!(matches!(
            ensure_fds(u32::MAX as u64),
            Err(LimitError::Fds { .. })
        ));
    }
}
