//! The process's log output: `tracing` to stderr, filtered by `RAPTOR_LOG`.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Used when `RAPTOR_LOG` is unset: `info`, with third-party noise kept below it (rustls
/// warns for every client that connects by IP address without SNI).
pub const DEFAULT_FILTER: &str = "info,rustls=error";

/// Installs the subscriber. Colours only when stderr is a terminal, so a log file or the
/// journal gets plain text. An invalid `RAPTOR_LOG` is an error, not a silent fallback.
pub fn init() -> Result<(), String> {
    let filter = match std::env::var("RAPTOR_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::builder()
            .parse(&spec)
            .map_err(|e| format!("RAPTOR_LOG `{spec}` is not a valid log filter: {e}"))?,
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))
}
