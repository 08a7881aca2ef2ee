//! The server under test: where it listens and the app credentials it knows.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use thiserror::Error;

/// The target address was refused before any traffic was sent. The caller's fault: fix
/// the command line.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("host {0:?} is not an ip address (give one, e.g. 127.0.0.1; names are not resolved)")]
    NotAnAddress(String),
    #[error(
        "host {0} is not a loopback address; load is only sent elsewhere when --allow-remote \
         says the address is yours"
    )]
    NotLoopback(IpAddr),
}

/// A Pusher server and one app on it.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub app_id: String,
    pub key: String,
    pub secret: String,
}

impl Target {
    /// Validates `host`: an IP literal or `localhost`, loopback unless `allow_remote`.
    /// No DNS: a load generator should never end up somewhere a name happened to point.
    pub fn new(
        host: &str,
        port: u16,
        app_id: &str,
        key: &str,
        secret: &str,
        allow_remote: bool,
    ) -> Result<Self, TargetError> {
        let ip: IpAddr = if host == "localhost" {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse()
                .map_err(|_| TargetError::NotAnAddress(host.to_string()))?
        };
        if !ip.is_loopback() && !allow_remote {
            return Err(TargetError::NotLoopback(ip));
        }
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            app_id: app_id.to_string(),
            key: key.to_string(),
            secret: secret.to_string(),
        })
    }

    /// Path and query of the WebSocket endpoint.
    pub fn ws_path(&self) -> String {
        format!(
            "/app/{}?protocol=7&client=raptor-loadtest&version=0.1",
            self.key
        )
    }

    /// `Host` header value.
    pub fn host_header(&self) -> String {
        self.addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_unless_allowed() {
        assert!(Target::new("127.0.0.1", 1, "1", "k", "s", false).is_ok());
        assert!(Target::new("localhost", 1, "1", "k", "s", false).is_ok());
        assert!(Target::new("::1", 1, "1", "k", "s", false).is_ok());
        assert!(matches!(
            Target::new("10.0.0.1", 1, "1", "k", "s", false),
            Err(TargetError::NotLoopback(_))
        ));
        assert!(Target::new("10.0.0.1", 1, "1", "k", "s", true).is_ok());
        assert!(matches!(
            Target::new("example.com", 1, "1", "k", "s", true),
            Err(TargetError::NotAnAddress(_))
        ));
    }

    #[test]
    fn ws_path_names_the_key() {
        let t = Target::new("127.0.0.1", 6001, "1", "app-key", "s", false).unwrap();
        assert_eq!(
            t.ws_path(),
            "/app/app-key?protocol=7&client=raptor-loadtest&version=0.1"
        );
        assert_eq!(t.host_header(), "127.0.0.1:6001");
    }
}
