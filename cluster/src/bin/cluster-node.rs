//! `cluster-node`: a bare cluster member (gossip and links, no engine), for the
//! real-process smoke test and for poking at a cluster by hand.
//!
//! ```text
//! RAPTOR_CLUSTER_SECRET=... cluster-node --node-id a --cluster-id demo --gossip 127.0.0.1:21001 \
//!     --peer 127.0.0.1:22001 [--seeds 127.0.0.1:21001,127.0.0.1:21002] [--generation N] \
//!     [--secret-file PATH] [--advertise-peer ADDR]
//! ```
//!
//! The cluster secret comes from `--secret-file` (one secret per line, the first sends;
//! re-read on SIGHUP) or `RAPTOR_CLUSTER_SECRET` (comma-separated); without one the node
//! does not start. `--advertise-peer` is the data-plane address other nodes dial (a proxy in
//! front of this node, say).
//!
//! Prints one line per fact on stdout: `ready generation=G peer=ADDR`, then
//! `live id@gen,id@gen,…` whenever the live view changes (this node included) and
//! `links id@gen,…` whenever the set of peers with a TCP link up changes. SIGTERM or SIGINT leaves the
//! cluster gracefully. Exits with 3 when an address is in use (the test picks other ports).

use anyhow::{bail, Context};
use raptor_cluster::runtime::{ClusterConfig, ClusterHandle, StartError};
use raptor_cluster::secret::Secrets;
use raptor_cluster::NodeId;
use std::io::Write;

struct Args {
    node_id: String,
    cluster_id: String,
    gossip: String,
    peer: String,
    seeds: Vec<String>,
    generation: Option<u64>,
    secret_file: Option<String>,
    advertise_peer: Option<String>,
}

/// The secrets from `--secret-file`, else from `RAPTOR_CLUSTER_SECRET`.
fn secrets(file: Option<&str>) -> anyhow::Result<Secrets> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("--secret-file {f}"))?,
        None => std::env::var("RAPTOR_CLUSTER_SECRET").unwrap_or_default(),
    };
    Secrets::parse(&text).context(
        "a cluster secret is required: set RAPTOR_CLUSTER_SECRET or --secret-file \
         (at least 16 bytes, e.g. from `openssl rand -base64 32`)",
    )
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut a = Args {
        node_id: String::new(),
        cluster_id: "raptor".into(),
        gossip: String::new(),
        peer: String::new(),
        seeds: Vec::new(),
        generation: None,
        secret_file: None,
        advertise_peer: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--node-id" => a.node_id = value()?,
            "--cluster-id" => a.cluster_id = value()?,
            "--gossip" => a.gossip = value()?,
            "--peer" => a.peer = value()?,
            "--seeds" => {
                a.seeds = value()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "--generation" => a.generation = Some(value()?.parse()?),
            "--secret-file" => a.secret_file = Some(value()?),
            "--advertise-peer" => a.advertise_peer = Some(value()?),
            other => bail!("unknown argument {other}"),
        }
    }
    if a.node_id.is_empty() || a.gossip.is_empty() || a.peer.is_empty() {
        bail!("usage: cluster-node --node-id ID --gossip ADDR --peer ADDR [--seeds A,B] [--cluster-id ID]");
    }
    Ok(a)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RAPTOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let mut cfg = ClusterConfig::new(
        NodeId::new(&args.node_id)?,
        args.cluster_id,
        secrets(args.secret_file.as_deref())?,
        args.gossip.parse().context("--gossip")?,
        args.seeds,
        args.peer.parse().context("--peer")?,
    );
    if let Some(g) = args.generation {
        cfg.generation = g;
    }
    if let Some(a) = &args.advertise_peer {
        cfg.advertise_peer_addr = Some(a.parse().context("--advertise-peer")?);
    }
    let cluster = match ClusterHandle::start(cfg) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            let in_use = match &e {
                StartError::PeerBind { source, .. } => {
                    source.kind() == std::io::ErrorKind::AddrInUse
                }
                StartError::Gossip(g) => g.to_string().contains("in use"),
                StartError::Thread(_) => false,
            };
            std::process::exit(if in_use { 3 } else { 1 });
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut view = cluster.view();
    println!(
        "ready generation={} peer={}",
        cluster.me().generation,
        cluster.peer_addr()
    );
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(50));
        let mut last_links = None;
        let mut last_live = None;
        loop {
            let live = {
                let v = view.borrow_and_update();
                let nodes: Vec<String> = v.nodes.iter().map(|n| n.key().to_string()).collect();
                nodes.join(",")
            };
            if last_live.as_ref() != Some(&live) {
                println!("live {live}");
                last_live = Some(live);
            }
            let links: Vec<String> = cluster
                .connected()
                .iter()
                .map(ToString::to_string)
                .collect();
            let links = links.join(",");
            if last_links.as_ref() != Some(&links) {
                println!("links {links}");
                last_links = Some(links);
            }
            std::io::stdout().flush()?;
            tokio::select! {
                r = view.changed() => if r.is_err() { break },
                _ = poll.tick() => {}
                _ = term.recv() => break,
                _ = hup.recv() => match secrets(args.secret_file.as_deref()) {
                    Ok(s) => {
                        cluster.keyring().replace(&s);
                        println!("secrets reloaded");
                    }
                    Err(e) => eprintln!("secrets not reloaded: {e:#}"),
                },
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        anyhow::Ok(())
    })?;
    cluster.leave();
    println!("left");
    Ok(())
}
