//! Why an operator command failed, and whose fault it is.

/// A failed command. Each variant's text is the one line `raptor: <reason>` prints; none
/// carries an app secret, a metrics token or a signed query string.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag, a setting or a file the operator must fix; nothing was sent. Exit 2.
    #[error("{0}")]
    Usage(String),
    /// No HTTP answer: connection refused, timed out, TLS refused. The server is down, or
    /// the URL is wrong; retrying may help once it is up. Exit 1.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with a status other than 2xx: `status` is the code and its
    /// reason, `error` the server's `{"error": ...}` when it sent one. Exit 1.
    #[error("{method} {path}: {status}{}", error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Refused {
        method: &'static str,
        path: String,
        status: String,
        error: Option<String>,
    },
    /// A 2xx answer that is not the JSON this command expects: another kind of server (or
    /// another version) behind the URL. Exit 1.
    #[error("{method} {path}: the answer is not the JSON expected: {reason}")]
    BadAnswer {
        method: &'static str,
        path: String,
        reason: String,
    },
    /// A token a server of this app would refuse (`raptor token inspect`). Exit 1.
    #[error("token refused: {0}")]
    TokenRefused(String),
}

impl CliError {
    /// 2 for the operator's mistakes (as `raptor serve` with a bad configuration), 1 when a
    /// request failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Unreachable { .. }
            | CliError::Refused { .. }
            | CliError::BadAnswer { .. }
            | CliError::TokenRefused(_) => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_status_and_the_servers_reason() {
        let e = CliError::Refused {
            method: "GET",
            path: "/apps/1/channels".into(),
            status: "401 Unauthorized".into(),
            error: Some("invalid signature".into()),
        };
        assert_eq!(
            e.to_string(),
            "GET /apps/1/channels: 401 Unauthorized: invalid signature"
        );
        assert_eq!(e.exit_code(), 1);
        let e = CliError::Refused {
            method: "GET",
            path: "/stats".into(),
            status: "502 Bad Gateway".into(),
            error: None,
        };
        assert_eq!(e.to_string(), "GET /stats: 502 Bad Gateway");
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
    }
}
