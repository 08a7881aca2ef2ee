//! `raptor serve` (and a bare `raptor`): the flags and environment that override the
//! configuration file, then the server until it is drained.

use crate::config::{Config, Overrides, Secret};
use argh::FromArgs;
use std::io::Write;
use std::path::PathBuf;

/// Run the server (the default when no command is given).
#[derive(FromArgs, Default)]
#[argh(subcommand, name = "serve")]
pub struct Serve {
    /// address to listen on (default 127.0.0.1:6001; env RAPTOR_BIND)
    #[argh(option)]
    bind: Option<String>,
    /// number of shards, 0 = one per core (env RAPTOR_SHARDS)
    #[argh(option)]
    shards: Option<String>,
    /// do not pin shards to cores (env RAPTOR_PIN_SHARDS=0); for several servers on the same
    /// cores
    #[argh(switch)]
    no_pin: bool,
    /// TOML configuration file (env RAPTOR_CONFIG)
    #[argh(option)]
    config: Option<PathBuf>,
    /// serve the test-only WebSocket echo endpoint /echo (Autobahn); never in production
    #[argh(switch)]
    ws_echo: bool,
    /// run as cluster node ID (with --gossip and --peer; see docs/cluster.md)
    #[argh(option)]
    node_id: Option<String>,
    /// UDP gossip address of this node, e.g. 127.0.0.1:7946
    #[argh(option)]
    gossip: Option<String>,
    /// comma-separated gossip addresses of other nodes
    #[argh(option)]
    seeds: Option<String>,
    /// TCP address for node-to-node messages, e.g. 127.0.0.1:7947
    #[argh(option)]
    peer: Option<String>,
    /// cluster id keeping clusters apart (default raptor)
    #[argh(option)]
    cluster_id: Option<String>,
    /// file with the cluster secrets, one per line, the first used to send; re-read on
    /// SIGHUP (env RAPTOR_CLUSTER_SECRET_FILE; or the secrets themselves in
    /// RAPTOR_CLUSTER_SECRET, never a flag). A cluster node needs one
    #[argh(option)]
    cluster_secret_file: Option<String>,
    /// address of the metrics listener, serving only /metrics, /stats and /health, or "off"
    /// (default 127.0.0.1:9601; env RAPTOR_METRICS_BIND). The bearer token comes from the
    /// config file or RAPTOR_METRICS_TOKEN / RAPTOR_METRICS_TOKEN_FILE, never a flag
    #[argh(option)]
    metrics_bind: Option<String>,
}

/// Starts the server and serves until a drain ends it. Returns only on failure: 2 for a
/// bad configuration, 1 when the server could not run.
pub fn run(s: Serve) -> i32 {
    if let Err(e) = crate::logging::init() {
        return super::fail(&e.to_string(), 2);
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let file = s.config.or_else(|| env("RAPTOR_CONFIG").map(PathBuf::from));
    let over = Overrides {
        bind: s.bind.or_else(|| env("RAPTOR_BIND")),
        shards: s.shards.or_else(|| env("RAPTOR_SHARDS")),
        ws_echo: s.ws_echo,
        no_pin: s.no_pin || env("RAPTOR_PIN_SHARDS").is_some_and(|v| v == "0" || v == "false"),
        node_id: s.node_id,
        gossip: s.gossip,
        seeds: s.seeds,
        peer: s.peer,
        cluster_id: s.cluster_id,
        cluster_secret: env("RAPTOR_CLUSTER_SECRET").map(Secret::new),
        cluster_secret_file: s
            .cluster_secret_file
            .or_else(|| env("RAPTOR_CLUSTER_SECRET_FILE")),
        metrics_bind: s.metrics_bind.or_else(|| env("RAPTOR_METRICS_BIND")),
        metrics_token: env("RAPTOR_METRICS_TOKEN").map(Secret::new),
        metrics_token_file: env("RAPTOR_METRICS_TOKEN_FILE"),
        admin_password: env("RAPTOR_ADMIN_PASSWORD").map(Secret::new),
    };
    let cfg = match Config::load(file.as_deref(), &over) {
        Ok(c) => c,
        Err(e) => {
            // Unfolded: toml's message points at the field over several lines.
            eprintln!("raptor: {e}");
            return 2;
        }
    };
    let apps: Vec<String> = cfg
        .apps
        .iter()
        .map(|a| format!("{} (key {})", a.id, a.key))
        .collect();
    let metrics_token = cfg.metrics.token.is_some();
    let res = crate::server::run(cfg, file, over, |addr, nr, metrics| {
        let metrics_listener = metrics.map_or_else(|| "off".to_string(), |m| m.to_string());
        tracing::info!(%addr, shards = nr, apps = ?apps, metrics_listener, metrics_token, "ready");
        // Tests and scripts wait for the first line on stdout; the metrics line follows it
        // (only when that listener is on), so readers of the first line need not change.
        // A reader that has gone is no reason to stop serving (no `println!`, which panics).
        let mut ready = format!("raptor listening on {addr} with {nr} shards\n");
        if let Some(m) = metrics {
            ready.push_str(&format!("raptor metrics on {m}\n"));
        }
        super::output::print(&ready);
    });
    match res {
        // The shards were drained; exit without waiting for the executors to unwind, and
        // without the C exit handlers: mimalloc's (v3) tears down every thread's heap while
        // the shard threads still run, which crashed the process now and then (SIGSEGV
        // instead of exit 0). Nothing is left to flush but stdout.
        Ok(()) => {
            let _ = std::io::stdout().flush();
            // SAFETY: `_exit` ends the process at once; no Rust state is used after it.
            unsafe { libc::_exit(0) }
        }
        Err(e) => {
            eprintln!("raptor: {e}");
            1
        }
    }
}
