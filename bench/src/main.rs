//! `raptor-bench`: the end-to-end benchmark harness (`run`) and the raw loopback ceiling
//! server it starts as a subprocess (`raw-server`).

use anyhow::{bail, Context};
use argh::FromArgs;
use raptor_bench::doc::{self, RunInfo};
use raptor_bench::floors::{parse_sizes, FloorPlan};
use raptor_bench::harness::{self, Contender, Kind, Plan, Sample, Scenario};
use raptor_bench::machine::{loadavg, wait_quiet, Machine};
use raptor_bench::{cluster, raw, server, workspace};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Raptor benchmarks: end-to-end scenarios against real server processes.
#[derive(FromArgs)]
struct Cli {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Run(Box<Run>),
    ClusterFanout(ClusterFanout),
    Render(Render),
    RawServer(RawServer),
    RawFloor(raptor_bench::floors::raw::RawFloorCmd),
    ClusterSim(raptor_bench::cluster_sim::ClusterSimCmd),
}

/// Render docs/benchmarks.md and the charts again from a saved results.json (for instance
/// after editing docs/bench/notes.md), without running anything.
#[derive(FromArgs)]
#[argh(subcommand, name = "render")]
struct Render {
    /// saved run (default docs/bench/results.json)
    #[argh(option)]
    results: Option<PathBuf>,
    /// markdown output (default docs/benchmarks.md)
    #[argh(option)]
    out: Option<PathBuf>,
    /// directory for charts (default: the directory of --results)
    #[argh(option)]
    chart_dir: Option<PathBuf>,
    /// hand-written notes included at the end (default docs/bench/notes.md, if present)
    #[argh(option)]
    notes: Option<PathBuf>,
}

/// Run the scenarios against Raptor (and optionally a peer server and the raw ceiling) in
/// alternating rounds, and write docs/benchmarks.md with SVG charts in docs/bench/.
#[derive(FromArgs)]
#[argh(subcommand, name = "run")]
struct Run {
    /// rounds; each runs every scenario against every server once (default 3)
    #[argh(option, default = "3")]
    rounds: usize,
    /// scenario to run: fanout, fanout-flat-out, latency, idle, connect-storm, history,
    /// transports, patterns, latency-floor, fanout-publishers, connect-floor, growth; repeat
    /// (default: all)
    #[argh(option)]
    only: Vec<String>,
    /// measurement seconds of fanout, latency, connect-storm and raw ceiling (default 5)
    #[argh(option, default = "5.0")]
    secs: f64,
    /// subscribers of the one channel in fanout and latency, and raw ceiling sockets (default 1000)
    #[argh(option, default = "1000")]
    subscribers: u64,
    /// publishes per second in the latency scenario (default 100)
    #[argh(option, default = "100.0")]
    rate: f64,
    /// connections held in the idle scenario (default 15000)
    #[argh(option, default = "15000")]
    idle_connections: u64,
    /// channels the idle connections subscribe to (default 100)
    #[argh(option, default = "100")]
    idle_channels: u64,
    /// seconds the idle connections are held (default 3)
    #[argh(option, default = "3.0")]
    idle_hold: f64,
    /// handshakes in flight during connect-storm (default 256)
    #[argh(option, default = "256")]
    storm_concurrency: usize,
    /// load-generator event-loop threads (default 1)
    #[argh(option, default = "1")]
    client_threads: usize,
    /// raptor shards (default 2)
    #[argh(option, default = "2")]
    shards: usize,
    /// raptor binary (default: target/release/raptor, built from the workspace first)
    #[argh(option)]
    raptor_bin: Option<PathBuf>,
    /// a peer server to compare, as a shell command line (run with `exec`)
    #[argh(option)]
    peer_cmd: Option<String>,
    /// the peer's port (WebSocket and HTTP API)
    #[argh(option)]
    peer_port: Option<u16>,
    /// the peer's name in the report (default "peer")
    #[argh(option, default = "String::from(\"peer\")")]
    peer_name: String,
    /// the peer's app id (default 1)
    #[argh(option, default = "String::from(\"1\")")]
    peer_app_id: String,
    /// the peer's app key (default app-key)
    #[argh(option, default = "String::from(\"app-key\")")]
    peer_key: String,
    /// the peer's app secret (default app-secret)
    #[argh(option, default = "String::from(\"app-secret\")")]
    peer_secret: String,
    /// skip the raw loopback ceiling
    #[argh(switch)]
    no_raw: bool,
    /// frames per send() in the raw ceiling (default 8); a second raw run always uses 1
    #[argh(option, default = "8")]
    raw_batch: usize,
    /// publishes/s the fanout rate search starts from (default 250)
    #[argh(option, default = "250.0")]
    fanout_start_rate: f64,
    /// seconds per probe of the fanout rate search (default 2)
    #[argh(option, default = "2.0")]
    probe_secs: f64,
    /// seconds of each fanout run of the history scenario, history off and on (default 2)
    #[argh(option, default = "2.0")]
    history_secs: f64,
    /// channels of the history scenario's publish shape, 1 subscriber each (default 100)
    #[argh(option, default = "100")]
    history_channels: u64,
    /// events with 64-byte data stored for the history memory figure (default 100000)
    #[argh(option, default = "100_000")]
    history_events: u64,
    /// recoveries of 300 events timed per round of the history scenario (default 20)
    #[argh(option, default = "20")]
    history_recoveries: usize,
    /// subscribers of the one channel in the transports scenario (default 200)
    #[argh(option, default = "200")]
    transport_subscribers: u64,
    /// publishes per second in the transports scenario (default 50)
    #[argh(option, default = "50.0")]
    transport_rate: f64,
    /// publishing seconds of each transport's fanout in the transports scenario (default 4)
    #[argh(option, default = "4.0")]
    transport_secs: f64,
    /// wildcard patterns registered in side B of the patterns scenario (default 1000)
    #[argh(option, default = "1000")]
    patterns: u64,
    /// subscribers of the fixed-rate fanout of the patterns scenario (default 500)
    #[argh(option, default = "500")]
    pattern_subscribers: u64,
    /// publishes per second of that fanout (default 100)
    #[argh(option, default = "100.0")]
    pattern_rate: f64,
    /// publishing seconds of each load of the patterns scenario (default 4)
    #[argh(option, default = "4.0")]
    pattern_secs: f64,
    /// seconds of each side of latency-floor, fanout-publishers and connect-floor (default 4)
    #[argh(option, default = "4.0")]
    floor_secs: f64,
    /// publishers of fanout-publishers, all on its one channel (default 16)
    #[argh(option, default = "16")]
    publishers: usize,
    /// publishing seconds of each growth point (default 2)
    #[argh(option, default = "2.0")]
    growth_secs: f64,
    /// deliveries/s every growth point asks for (presence: member events/s) (default 20000)
    #[argh(option, default = "20_000.0")]
    growth_deliveries: f64,
    /// subscriber sweep of growth, one channel (default 100,1000,10000)
    #[argh(option, default = "String::from(\"100,1000,10000\")")]
    growth_subscribers: String,
    /// channel sweep of growth at --growth-total subscriptions (default 1,10,100,1000)
    #[argh(option, default = "String::from(\"1,10,100,1000\")")]
    growth_channels: String,
    /// subscriptions of the channel sweep (default 10000)
    #[argh(option, default = "10_000")]
    growth_total: u64,
    /// presence members sweep of growth, one channel (default 100,1000; setup is quadratic)
    #[argh(option, default = "String::from(\"100,1000\")")]
    presence_members: String,
    /// skip the mesh_fanout in-process benchmark
    #[argh(switch)]
    no_mesh: bool,
    /// skip the 3-node cluster fanout (`cluster-fanout` with its defaults and --rounds, which
    /// replaces the Cluster section of --out; it runs only without --only)
    #[argh(switch)]
    no_cluster_fanout: bool,
    /// skip the cluster scaling simulation (`cluster-sim` with its defaults, which writes
    /// the Scaling section of the cluster.md next to --out; it runs only without --only)
    #[argh(switch)]
    no_cluster_sim: bool,
    /// markdown output (default docs/benchmarks.md)
    #[argh(option)]
    out: Option<PathBuf>,
    /// directory for charts and results.json (default docs/bench)
    #[argh(option)]
    chart_dir: Option<PathBuf>,
    /// hand-written notes included at the end (default docs/bench/notes.md, if present)
    #[argh(option)]
    notes: Option<PathBuf>,
    /// wait up to this many seconds for the machine to be quiet (< 0.25 cores busy) before
    /// starting (default 0: start at once)
    #[argh(option, default = "0")]
    wait_quiet: u64,
    /// what the servers were built from, for the report (default: git HEAD of this workspace)
    #[argh(option)]
    source: Option<String>,
    /// directory for server logs (default: a temporary directory)
    #[argh(option)]
    log_dir: Option<PathBuf>,
}

/// Fanout across a 3-node cluster (subscribers spread round-robin over the nodes, publishing
/// on node 0) against the same fanout on one node: deliveries/s, p50/p99, and the p99 the
/// extra hop adds. Replaces (or appends) the "Cluster" section of docs/benchmarks.md.
#[derive(FromArgs)]
#[argh(subcommand, name = "cluster-fanout")]
struct ClusterFanout {
    /// rounds; each runs the cluster, then the single node (default 2)
    #[argh(option, default = "2")]
    rounds: usize,
    /// cluster nodes (default 3)
    #[argh(option, default = "3")]
    nodes: usize,
    /// subscribers of the one channel, spread over the nodes (default 999)
    #[argh(option, default = "999")]
    subscribers: u64,
    /// publishes per second (default 100)
    #[argh(option, default = "100.0")]
    rate: f64,
    /// subscribers of the light pair each round also runs, to isolate the hop (default 30;
    /// 0 skips it)
    #[argh(option, default = "30")]
    hop_subscribers: u64,
    /// publishing seconds per run (default 5)
    #[argh(option, default = "5.0")]
    secs: f64,
    /// shards per node (default 2)
    #[argh(option, default = "2")]
    shards: usize,
    /// pin every server's shards to cores (default: `--no-pin`, since all servers share the
    /// machine's cores)
    #[argh(switch)]
    pin: bool,
    /// load-generator event-loop threads (default 1)
    #[argh(option, default = "1")]
    client_threads: usize,
    /// raptor binary (default: target/release/raptor, built from the workspace first)
    #[argh(option)]
    raptor_bin: Option<PathBuf>,
    /// the node owning the measured channel (default 0, where publishes enter; another
    /// measures the forwarded path: entry → owner → subscribers)
    #[argh(option, default = "0")]
    owner: usize,
    /// another raptor build to run the same rounds against, in this invocation (e.g. the
    /// commit before a change on the hop's path)
    #[argh(option)]
    baseline_bin: Option<PathBuf>,
    /// markdown to put the Cluster section in (default docs/benchmarks.md)
    #[argh(option)]
    out: Option<PathBuf>,
    /// directory for cluster-results.json (default docs/bench)
    #[argh(option)]
    chart_dir: Option<PathBuf>,
    /// directory for server logs (default: a temporary directory)
    #[argh(option)]
    log_dir: Option<PathBuf>,
}

/// The raw ceiling server: accept N connections, then write pre-encoded 64-byte frames to all
/// of them, several per send(), until they close or time runs out.
#[derive(FromArgs)]
#[argh(subcommand, name = "raw-server")]
struct RawServer {
    /// connections to accept before writing starts
    #[argh(option)]
    expect: usize,
    /// writer threads (default 2)
    #[argh(option, default = "2")]
    threads: usize,
    /// frames per send() (default 8)
    #[argh(option, default = "8")]
    batch: usize,
    /// exit after this many seconds at most (default 30)
    #[argh(option, default = "30.0")]
    secs: f64,
}

fn main() -> ExitCode {
    let cli: Cli = raptor_loadtest::cli::args_from_env();
    let res = match cli.cmd {
        Cmd::RawServer(r) => raw::serve(r.expect, r.threads, r.batch, r.secs).map(|()| true),
        Cmd::RawFloor(r) => raptor_bench::floors::raw::serve(&r).map(|()| true),
        Cmd::Run(r) => run(*r),
        Cmd::ClusterFanout(c) => cluster_fanout(c),
        Cmd::Render(r) => render(r).map(|()| true),
        Cmd::ClusterSim(c) => raptor_bench::cluster_sim::spawn(&c),
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("raptor-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs the harness; `Ok(false)` when some Raptor run was unclean or failed.
fn run(a: Run) -> anyhow::Result<bool> {
    if a.rounds == 0
        || !(a.secs > 0.0 && a.secs <= 60.0)
        || !(a.idle_hold > 0.0 && a.idle_hold <= 60.0)
    {
        bail!("--rounds must be positive; --secs and --idle-hold in (0, 60]");
    }
    let history_ok = a.history_secs > 0.0
        && a.history_secs <= 60.0
        && a.history_channels > 0
        && (1..=300_000).contains(&a.history_events)
        && (1..=10_000).contains(&a.history_recoveries);
    if !history_ok {
        bail!(
            "--history-secs in (0, 60], --history-channels positive, --history-events in \
             1..=300000, --history-recoveries in 1..=10000"
        );
    }
    let transports_ok = a.transport_subscribers > 0
        && a.transport_rate.is_finite()
        && a.transport_rate > 0.0
        && a.transport_secs > 0.0
        && a.transport_secs <= 60.0;
    if !transports_ok {
        bail!("--transport-subscribers and --transport-rate positive, --transport-secs in (0, 60]");
    }
    let patterns_ok = (10..=10_000).contains(&a.patterns)
        && a.pattern_subscribers > 0
        && a.pattern_rate.is_finite()
        && a.pattern_rate > 0.0
        && a.pattern_secs > 0.0
        && a.pattern_secs <= 60.0;
    if !patterns_ok {
        bail!(
            "--patterns in 10..=10000, --pattern-subscribers and --pattern-rate positive, \
             --pattern-secs in (0, 60]"
        );
    }
    let floors = FloorPlan {
        secs: a.floor_secs,
        publishers: a.publishers,
        growth_secs: a.growth_secs,
        growth_deliveries: a.growth_deliveries,
        growth_subscribers: parse_sizes(&a.growth_subscribers).map_err(anyhow::Error::msg)?,
        growth_channels: parse_sizes(&a.growth_channels).map_err(anyhow::Error::msg)?,
        growth_total: a.growth_total,
        presence_members: parse_sizes(&a.presence_members).map_err(anyhow::Error::msg)?,
    };
    if let Some(p) = floors.problem() {
        bail!("{p}");
    }
    let scenarios: Vec<Scenario> = if a.only.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        a.only
            .iter()
            .map(|s| Scenario::parse(s).with_context(|| format!("unknown scenario {s:?}")))
            .collect::<anyhow::Result<_>>()?
    };
    // Raise our descriptor limit before spawning servers: they inherit it.
    raptor_loadtest::limits::ensure_fds(0)?;
    let ws = workspace();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| ws.join("docs/benchmarks.md"));
    let chart_dir = a.chart_dir.clone().unwrap_or_else(|| ws.join("docs/bench"));
    let notes_path = a
        .notes
        .clone()
        .unwrap_or_else(|| ws.join("docs/bench/notes.md"));
    let log_dir = a.log_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("raptor-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&chart_dir)?;
    std::fs::create_dir_all(&log_dir)?;
    let bin = match &a.raptor_bin {
        Some(b) => b.clone(),
        None => server::release_raptor()?,
    };
    let plan = Plan {
        secs: a.secs,
        subscribers: a.subscribers,
        rate: a.rate,
        payload_bytes: 64,
        idle_connections: a.idle_connections,
        idle_channels: a.idle_channels,
        idle_hold: a.idle_hold,
        storm_concurrency: a.storm_concurrency,
        client_threads: a.client_threads,
        raw_batch: a.raw_batch,
        fanout_start_rate: a.fanout_start_rate,
        probe_secs: a.probe_secs,
        history_secs: a.history_secs,
        history_channels: a.history_channels,
        history_events: a.history_events,
        history_recoveries: a.history_recoveries,
        transport_subscribers: a.transport_subscribers,
        transport_rate: a.transport_rate,
        transport_secs: a.transport_secs,
        patterns: a.patterns,
        pattern_subscribers: a.pattern_subscribers,
        pattern_rate: a.pattern_rate,
        pattern_secs: a.pattern_secs,
        floors,
    };
    let mut contenders = vec![Contender {
        name: "raptor".into(),
        kind: Kind::Raptor {
            bin: bin.clone(),
            shards: a.shards,
        },
    }];
    let peer = match (&a.peer_cmd, a.peer_port) {
        (Some(cmd), Some(port)) => {
            contenders.push(Contender {
                name: a.peer_name.clone(),
                kind: Kind::Peer {
                    cmd: cmd.clone(),
                    port,
                    app_id: a.peer_app_id.clone(),
                    key: a.peer_key.clone(),
                    secret: a.peer_secret.clone(),
                },
            });
            Some(a.peer_name.clone())
        }
        (None, None) => None,
        _ => bail!("--peer-cmd and --peer-port go together"),
    };
    let raw = (!a.no_raw && scenarios.contains(&Scenario::Fanout)).then(|| {
        contenders.push(Contender {
            name: "raw-ceiling".into(),
            kind: Kind::Raw {
                threads: a.shards,
                batch: a.raw_batch,
            },
        });
        if a.raw_batch != 1 {
            // One frame per send(): the per-syscall cost every unbatched delivery pays.
            contenders.push(Contender {
                name: "raw-1-per-send".into(),
                kind: Kind::Raw {
                    threads: a.shards,
                    batch: 1,
                },
            });
        }
        "raw-ceiling".to_string()
    });

    let quiet = (a.wait_quiet > 0).then(|| {
        eprintln!("raptor-bench: waiting up to {} s for a quiet machine", a.wait_quiet);
        let t = std::time::Instant::now();
        let (ok, busy) = wait_quiet(Duration::from_secs(a.wait_quiet), 0.25);
        let waited = t.elapsed().as_secs();
        if ok {
            format!("waited {waited} s for the machine to be quiet: {busy:.2} cores busy before the start")
        } else {
            format!("**the machine never got quiet**: still {busy:.2} cores busy after waiting {waited} s; figures are contended")
        }
    });
    let machine = Machine::probe();
    let loadavg_before = loadavg();
    let started_unix = unix_now();
    eprintln!(
        "raptor-bench: {} cores ({}), load {:.2} {:.2} {:.2}; logs in {}",
        machine.nproc,
        machine.cpu_model,
        loadavg_before[0],
        loadavg_before[1],
        loadavg_before[2],
        log_dir.display()
    );
    let mesh = if a.no_mesh { None } else { run_mesh() };

    let mut samples: Vec<Sample> = Vec::new();
    let mut memory = harness::SearchMemory::default();
    for round in 1..=a.rounds {
        for s in &scenarios {
            for c in contenders.iter().filter(|c| c.runs(*s)) {
                let log = log_dir.join(format!("{}-{}-{round}.log", c.name, s.name()));
                let smp = harness::run_one(round, *s, c, &plan, &log, &mut memory);
                eprintln!(
                    "  round {round} {:<13} {:<12} {}",
                    s.name(),
                    c.name,
                    progress_line(&smp)
                );
                samples.push(smp);
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }

    let mut info = RunInfo {
        machine,
        loadavg_before,
        started_unix,
        finished_unix: unix_now(),
        command: command_line(),
        contenders: contenders
            .iter()
            .map(|c| (c.name.clone(), c.command(&plan)))
            .collect(),
        plan,
        rounds: a.rounds,
        scenarios,
        raptor: "raptor".into(),
        peer,
        raw,
        samples,
        mesh,
        notes: std::fs::read_to_string(&notes_path).ok(),
        quiet,
        source: a.source.clone().or_else(|| source_version(&ws)),
        charts: Vec::new(),
    };
    doc::write_all(&mut info, &out, &chart_dir)?;
    eprintln!("raptor-bench: wrote {}", out.display());
    let ok = info
        .samples
        .iter()
        .filter(|s| s.contender == info.raptor)
        // flat out, loss is the finding, not a failure of the run
        .filter(|s| !matches!(s.scenario, Scenario::FlatOut | Scenario::Publishers))
        .all(Sample::clean);
    if !ok {
        eprintln!("raptor-bench: some Raptor runs were unclean or failed (see the report)");
    }
    // The cluster hop, like the simulation below, belongs to the whole set (no `--only`):
    // the same binary, rounds and log directory, into the Cluster section of `--out`.
    let hop_ok = a.no_cluster_fanout || !a.only.is_empty() || {
        let rounds = a.rounds.to_string();
        let mut args = vec!["--rounds", rounds.as_str()];
        let paths = [
            ("--raptor-bin", bin.clone()),
            ("--out", out.clone()),
            ("--chart-dir", chart_dir.clone()),
            ("--log-dir", log_dir.join("cluster-fanout")),
        ];
        let paths: Vec<(&str, String)> = paths
            .iter()
            .map(|(k, p)| (*k, p.display().to_string()))
            .collect();
        for (k, p) in &paths {
            args.extend([*k, p.as_str()]);
        }
        let cmd = ClusterFanout::from_args(&["cluster-fanout"], &args)
            .map_err(|e| anyhow::anyhow!("cluster-fanout arguments: {}", e.output))?;
        cluster_fanout(cmd)?
    };
    // The simulation belongs to the whole set (no `--only`); its section goes into the
    // cluster.md next to `--out` (docs/cluster.md by default), so a run writing elsewhere
    // never touches the repository's docs.
    let sim_ok = a.no_cluster_sim || !a.only.is_empty() || {
        let mut sim = raptor_bench::cluster_sim::ClusterSimCmd::defaults();
        sim.chart_dir = Some(chart_dir.clone());
        sim.out = Some(out.with_file_name("cluster.md"));
        raptor_bench::cluster_sim::spawn(&sim)?
    };
    Ok(ok && hop_ok && sim_ok)
}

/// Runs `cluster-fanout`; `Ok(false)` when some run was unclean or failed.
fn cluster_fanout(a: ClusterFanout) -> anyhow::Result<bool> {
    if a.rounds == 0 || a.nodes < 2 || a.subscribers == 0 || !(a.secs > 0.0 && a.secs <= 60.0) {
        bail!("--rounds and --subscribers must be positive, --nodes at least 2, --secs in (0, 60]");
    }
    if a.owner >= a.nodes {
        bail!(
            "--owner must name one of the {} nodes (0..{})",
            a.nodes,
            a.nodes
        );
    }
    if !(a.rate.is_finite() && a.rate > 0.0) {
        bail!("--rate must be a positive number of publishes per second");
    }
    raptor_loadtest::limits::ensure_fds(0)?;
    let ws = workspace();
    let out = a.out.unwrap_or_else(|| ws.join("docs/benchmarks.md"));
    let chart_dir = a.chart_dir.unwrap_or_else(|| ws.join("docs/bench"));
    let log_dir = a.log_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("raptor-bench-cluster-{}", std::process::id()))
    });
    std::fs::create_dir_all(&log_dir)?;
    let bin = match a.raptor_bin {
        Some(b) => b,
        None => server::release_raptor()?,
    };
    let plan = cluster::ClusterPlan {
        nodes: a.nodes,
        shards: a.shards,
        subscribers: a.subscribers,
        rate: a.rate,
        secs: a.secs,
        payload_bytes: 64,
        client_threads: a.client_threads,
        hop_subscribers: a.hop_subscribers,
        unpinned: !a.pin,
        owner: a.owner,
    };
    let machine = Machine::probe();
    let loadavg_before = loadavg();
    let started_unix = unix_now();
    eprintln!(
        "raptor-bench: cluster-fanout, {} cores, load {:.2} {:.2} {:.2}; logs in {}",
        machine.nproc,
        loadavg_before[0],
        loadavg_before[1],
        loadavg_before[2],
        log_dir.display()
    );
    let samples = cluster::run(&bin, a.baseline_bin.as_deref(), &plan, a.rounds, &log_dir);
    let serve = format!(
        "RAPTOR_LOG=warn {} serve --bind 127.0.0.1:0 --shards {}{}",
        bin.display(),
        plan.shards,
        if plan.unpinned { " --no-pin" } else { "" }
    );
    let run = cluster::ClusterRun {
        node_command: format!(
            "{serve} --node-id node-$I --gossip 127.0.0.1:$G --peer 127.0.0.1:$P --seeds $G0,$G1,$G2 --cluster-id bench-$RANDOM --cluster-secret-file $SECRET_FILE"
        ),
        single_command: serve,
        baseline: a.baseline_bin.as_ref().map(|b| b.display().to_string()),
        plan,
        command: command_line(),
        started_unix,
        finished_unix: unix_now(),
        nproc: machine.nproc,
        cpu_model: machine.cpu_model,
        loadavg_before,
        samples,
    };
    let json = cluster::write(&run, &out, &chart_dir)?;
    match cluster::hop_p99_us(&run) {
        Some(d) => eprintln!("raptor-bench: the extra hop adds {d:+.0} µs at p99"),
        None => eprintln!("raptor-bench: no p99 difference (a layout had no clean run)"),
    }
    if let Some(d) = cluster::hop_p99_light_us(&run) {
        eprintln!("raptor-bench: lightly loaded, the extra hop adds {d:+.0} µs at p99");
    }
    if run.baseline.is_some() {
        for (what, this, base) in cluster::against_baseline(&run) {
            let v = |x: Option<f64>| x.map_or("–".into(), |x| format!("{x:.0} µs"));
            eprintln!("raptor-bench: {what}: {} (baseline {})", v(this), v(base));
        }
    }
    eprintln!(
        "raptor-bench: wrote {} and {}",
        out.display(),
        json.display()
    );
    Ok(run.samples.iter().all(cluster::ClusterSample::clean))
}

fn render(r: Render) -> anyhow::Result<()> {
    let ws = workspace();
    let results = r
        .results
        .unwrap_or_else(|| ws.join("docs/bench/results.json"));
    let text = std::fs::read_to_string(&results)
        .with_context(|| format!("reading {}", results.display()))?;
    let mut info: RunInfo =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", results.display()))?;
    let chart_dir = r.chart_dir.unwrap_or_else(|| {
        results
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    let out = r.out.unwrap_or_else(|| ws.join("docs/benchmarks.md"));
    let notes = r.notes.unwrap_or_else(|| ws.join("docs/bench/notes.md"));
    info.notes = std::fs::read_to_string(notes).ok();
    doc::write_all(&mut info, &out, &chart_dir)?;
    eprintln!("raptor-bench: wrote {}", out.display());
    Ok(())
}

fn progress_line(s: &Sample) -> String {
    if let Some(h) = &s.history {
        return raptor_bench::history::report::headline(h);
    }
    if let Some(t) = &s.transports {
        return raptor_bench::transports::headline(t);
    }
    if let Some(p) = &s.patterns {
        return raptor_bench::patterns::headline(p);
    }
    if let Some(f) = &s.floors {
        return raptor_bench::floors::report::headline(f);
    }
    let rate = s.rate.map_or(String::new(), |r| {
        format!("at {r:.0}/s [{}] ", s.probes.join(", "))
    });
    match (&s.report, &s.error) {
        (Some(r), _) => format!(
            "{rate}{:>12.0} deliveries/s  p50 {:>8.0} µs  p99 {:>8.0} µs  srv {:.2} µs/del  rss/conn {}  conn/s {}  lost {} err {}",
            r.deliveries_per_sec,
            r.latency_us.p50,
            r.latency_us.p99,
            r.server_cpu_us_per_delivery.unwrap_or(f64::NAN),
            r.server_rss_kib_per_conn.map_or("-".into(), |v| format!("{v:.2}")),
            r.connects_per_sec.map_or("-".into(), |v| format!("{v:.0}")),
            r.lost,
            r.errors
        ),
        (None, e) => format!("FAILED: {}", e.as_deref().unwrap_or("?")),
    }
}

/// `git` commit of the tree the servers were built from, and whether `engine/` had
/// uncommitted changes.
fn source_version(ws: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(ws)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--", "engine"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{head} with uncommitted changes in engine/")
    } else {
        head
    })
}

/// The command line as typed, with the program shown as `raptor-bench`.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).map(|a| shell_quote(&a)).collect();
    format!("target/release/raptor-bench {}", args.join(" "))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `mesh_fanout --secs 1` if it was built next to this executable; its markdown output
/// goes into the report.
fn run_mesh() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let mesh = exe.with_file_name("mesh_fanout");
    if !mesh.is_file() {
        eprintln!(
            "raptor-bench: {} not built; skipping the mesh benchmark",
            mesh.display()
        );
        return None;
    }
    eprintln!("raptor-bench: mesh_fanout --secs 1");
    let out = Command::new(&mesh).args(["--secs", "1"]).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "raptor-bench: mesh_fanout failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
