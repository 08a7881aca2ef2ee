//! Scenarios and rounds: every server under test is started fresh for each scenario, driven
//! by the `raptor-loadtest` library with its pid (so the server's CPU and RSS are measured),
//! and stopped. Rounds alternate the servers (A, B, A, B, …) so slow drift of the machine
//! hits all of them alike, and results are compared only within one invocation.

use crate::history::HistoryResult;
use crate::machine::{loadavg, CoresUsed, CpuShare};
use crate::patterns::PatternsResult;
use crate::raw;
use crate::server::ServerProc;
use crate::transports::TransportsResult;
use anyhow::Context;
use raptor_loadtest::connect_storm::{self, ConnectStormOpts};
use raptor_loadtest::fanout::{self, FanoutOpts};
use raptor_loadtest::idle::{self, IdleOpts};
use raptor_loadtest::report::us_per;
use raptor_loadtest::{Bound, Common, LatencyUs, Report, Target};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One end-to-end question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// 1 channel × S subscribers at the highest publish rate that stays clean (found by a
    /// short search each round): deliveries/s and CPU per delivery.
    Fanout,
    /// The same, publishing flat out: publishers outrun subscribers, so this shows what the
    /// server does then (queues, then cuts slow consumers with 4100). Informational.
    #[serde(rename = "fanout-flat-out")]
    FlatOut,
    /// 1 channel × S subscribers at a fixed publish rate: publish→receive percentiles.
    Latency,
    /// N subscribed connections held idle: server RSS per connection.
    Idle,
    /// connect, subscribe, close, repeat: handshakes per second.
    #[serde(rename = "connect-storm")]
    Storm,
    /// Channel history (Raptor only): fanout and flat-out publishing with history on vs
    /// off, time to recover 300 events, memory per 1,000 stored events ([`crate::history`]).
    History,
    /// The same fanout with its subscribers on each transport (Raptor only): WebSocket,
    /// xhr_streaming, xhr_polling, SSE ([`crate::transports`]).
    Transports,
    /// The same publishing with and without 1,000 wildcard patterns registered that match
    /// nothing (Raptor only; [`crate::patterns`]).
    Patterns,
    /// The `latency` load against Raptor and a raw server sending the same stamped frames
    /// one per send(): Raptor's percentiles as multiples of the floor's ([`crate::floors`]).
    #[serde(rename = "latency-floor")]
    LatencyFloor,
    /// 1 channel × S subscribers, N publishers flat out: deliveries/s as a fraction of the
    /// batched raw ceiling in the same round, and p99.
    #[serde(rename = "fanout-publishers")]
    Publishers,
    /// connect-storm against Raptor and against accept + 101 + close: CPU per cycle.
    #[serde(rename = "connect-floor")]
    ConnectFloor,
    /// CPU per delivery and p99 as subscribers, channels and presence members grow.
    Growth,
}

impl Scenario {
    pub const ALL: [Scenario; 12] = [
        Scenario::Fanout,
        Scenario::FlatOut,
        Scenario::Latency,
        Scenario::Idle,
        Scenario::Storm,
        Scenario::History,
        Scenario::Transports,
        Scenario::Patterns,
        Scenario::LatencyFloor,
        Scenario::Publishers,
        Scenario::ConnectFloor,
        Scenario::Growth,
    ];

    /// The scenarios of [`crate::floors`] (Raptor only, each round paired with its floor).
    pub fn is_floor(self) -> bool {
        matches!(
            self,
            Scenario::LatencyFloor
                | Scenario::Publishers
                | Scenario::ConnectFloor
                | Scenario::Growth
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::FlatOut => "fanout-flat-out",
            Scenario::Latency => "latency",
            Scenario::Idle => "idle",
            Scenario::Storm => "connect-storm",
            Scenario::History => "history",
            Scenario::Transports => "transports",
            Scenario::Patterns => "patterns",
            Scenario::LatencyFloor => "latency-floor",
            Scenario::Publishers => "fanout-publishers",
            Scenario::ConnectFloor => "connect-floor",
            Scenario::Growth => "growth",
        }
    }

    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s || (s == "storm" && *x == Scenario::Storm))
    }
}

/// Sizes and durations of every scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// measurement seconds of fanout, latency, connect-storm and the raw ceiling
    pub secs: f64,
    /// subscribers of the one channel in fanout and latency (and raw ceiling sockets)
    pub subscribers: u64,
    /// publishes per second in the latency scenario
    pub rate: f64,
    pub payload_bytes: usize,
    pub idle_connections: u64,
    pub idle_channels: u64,
    pub idle_hold: f64,
    /// handshakes in flight in connect-storm
    pub storm_concurrency: usize,
    /// load-generator event-loop threads (1 leaves a core to the server on 2 cores)
    pub client_threads: usize,
    /// frames per `send()` in the raw ceiling
    pub raw_batch: usize,
    /// publishes/s the first fanout rate search starts from (later rounds start near the
    /// previous round's result)
    pub fanout_start_rate: f64,
    /// seconds of each probe in the fanout rate search
    pub probe_secs: f64,
    /// seconds of each fanout run of the history scenario (history off and on)
    #[serde(default = "default_history_secs")]
    pub history_secs: f64,
    /// channels of the history scenario's publish shape (1 subscriber each)
    #[serde(default = "default_history_channels")]
    pub history_channels: u64,
    /// events stored for the history scenario's memory figure
    #[serde(default = "default_history_events")]
    pub history_events: u64,
    /// recoveries of 300 events timed per round of the history scenario
    #[serde(default = "default_history_recoveries")]
    pub history_recoveries: usize,
    /// subscribers of the one channel in the transports scenario
    #[serde(default = "default_transport_subscribers")]
    pub transport_subscribers: u64,
    /// publishes per second in the transports scenario
    #[serde(default = "default_transport_rate")]
    pub transport_rate: f64,
    /// publishing seconds of each transport's fanout
    #[serde(default = "default_transport_secs")]
    pub transport_secs: f64,
    /// wildcard patterns registered in side B of the patterns scenario
    #[serde(default = "default_patterns")]
    pub patterns: u64,
    /// subscribers of the fixed-rate fanout of the patterns scenario
    #[serde(default = "default_pattern_subscribers")]
    pub pattern_subscribers: u64,
    /// publishes per second of that fanout
    #[serde(default = "default_pattern_rate")]
    pub pattern_rate: f64,
    /// publishing seconds of each load of the patterns scenario
    #[serde(default = "default_pattern_secs")]
    pub pattern_secs: f64,
    /// sizes of the floor and growth scenarios
    #[serde(default)]
    pub floors: crate::floors::FloorPlan,
}

// Defaults of the history fields, also for a results.json written before they existed.
fn default_history_secs() -> f64 {
    2.0
}
fn default_history_channels() -> u64 {
    100
}
fn default_history_events() -> u64 {
    100_000
}
fn default_history_recoveries() -> usize {
    20
}
fn default_transport_subscribers() -> u64 {
    200
}
fn default_transport_rate() -> f64 {
    50.0
}
fn default_transport_secs() -> f64 {
    4.0
}
fn default_patterns() -> u64 {
    1000
}
fn default_pattern_subscribers() -> u64 {
    500
}
fn default_pattern_rate() -> f64 {
    100.0
}
fn default_pattern_secs() -> f64 {
    4.0
}

/// A server under test.
#[derive(Debug, Clone)]
pub enum Kind {
    Raptor {
        bin: PathBuf,
        shards: usize,
    },
    Peer {
        cmd: String,
        port: u16,
        app_id: String,
        key: String,
        secret: String,
    },
    /// The raw loopback ceiling (fanout only): `batch` frames per `send()`.
    Raw {
        threads: usize,
        batch: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Contender {
    pub name: String,
    pub kind: Kind,
}

impl Contender {
    /// Whether this contender takes part in `s` (the raw ceiling speaks no protocol; only
    /// Raptor has history).
    pub fn runs(&self, s: Scenario) -> bool {
        match self.kind {
            Kind::Raw { .. } => s == Scenario::Fanout,
            Kind::Peer { .. } => {
                !s.is_floor()
                    && !matches!(
                        s,
                        Scenario::History | Scenario::Transports | Scenario::Patterns
                    )
            }
            Kind::Raptor { .. } => true,
        }
    }

    /// The command line that starts it, for the report.
    pub fn command(&self, plan: &Plan) -> String {
        match &self.kind {
            Kind::Raptor { bin, shards } => format!(
                "RAPTOR_LOG=warn {} serve --bind 127.0.0.1:0 --shards {shards}",
                bin.display()
            ),
            Kind::Peer { cmd, .. } => cmd.clone(),
            Kind::Raw { threads, batch } => format!(
                "raptor-bench raw-server --expect {} --threads {threads} --batch {batch} --secs {}",
                plan.subscribers,
                raw_server_secs(plan)
            ),
        }
    }
}

fn raw_server_secs(plan: &Plan) -> f64 {
    (RAW_WARMUP.as_secs_f64() + plan.secs + 10.0).ceil()
}

/// Warm-up of the raw ceiling before its window opens.
const RAW_WARMUP: Duration = Duration::from_secs(1);

/// One scenario run of one contender.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub round: usize,
    pub scenario: Scenario,
    pub contender: String,
    /// `None` when the run failed; see `error`
    pub report: Option<Report>,
    pub error: Option<String>,
    /// cores used over the whole run (setup included): machine, load generator, server, others
    pub cores_machine: f64,
    pub cores_client: f64,
    pub cores_server: f64,
    pub cores_others: f64,
    /// 1-minute load average right after the run
    pub loadavg_1m: f64,
    /// fanout: the publish rate of the measured run, and the probes that found it
    pub rate: Option<f64>,
    pub probes: Vec<String>,
    /// history: everything the round measured (`report` is `None` there)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryResult>,
    /// transports: every transport's run of the round (`report` is `None` there)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transports: Option<TransportsResult>,
    /// patterns: both sides of the round (`report` is `None` there)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patterns: Option<PatternsResult>,
    /// latency-floor, fanout-publishers, connect-floor, growth: Raptor and its floor, or
    /// the growth points (`report` is `None` there)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floors: Option<crate::floors::FloorRun>,
}

impl Sample {
    /// A run counts when it finished without loss, reordering or errors (history: every
    /// part finished and every fanout run was clean).
    pub fn clean(&self) -> bool {
        self.report.as_ref().is_some_and(Report::is_clean)
            || self.history.as_ref().is_some_and(HistoryResult::clean)
            || self
                .transports
                .as_ref()
                .is_some_and(TransportsResult::clean)
            || self.patterns.as_ref().is_some_and(PatternsResult::clean)
            || self
                .floors
                .as_ref()
                .is_some_and(crate::floors::FloorRun::clean)
    }

    /// Whether the run goes into medians: clean, or flat out (where loss is the finding).
    pub fn counts(&self) -> bool {
        self.clean()
            || (self.scenario == Scenario::FlatOut && self.report.is_some())
            || (self.scenario == Scenario::Publishers
                && self
                    .floors
                    .as_ref()
                    .is_some_and(crate::floors::FloorRun::ran))
    }
}

/// Publish rates found by earlier rounds' fanout searches, per contender: a round starts its
/// search just below the last result instead of from scratch.
#[derive(Debug, Default)]
pub struct SearchMemory(std::collections::HashMap<String, f64>);

/// The `raptor-loadtest` command line equivalent to one scenario, for the report.
pub fn loadtest_command(s: Scenario, plan: &Plan) -> String {
    let common = format!(
        "raptor-loadtest --port $PORT --server-pid $SERVER_PID --threads {}",
        plan.client_threads
    );
    match s {
        Scenario::Fanout => format!(
            "{common} fanout --channels 1 --subscribers {} --rate $RATE --payload-bytes {} --duration {}   # $RATE: highest clean rate, searched in {} s probes",
            plan.subscribers, plan.payload_bytes, plan.secs, plan.probe_secs
        ),
        Scenario::FlatOut => format!(
            "{common} fanout --channels 1 --subscribers {} --payload-bytes {} --duration {}",
            plan.subscribers, plan.payload_bytes, plan.secs
        ),
        Scenario::Latency => format!(
            "{common} fanout --channels 1 --subscribers {} --rate {} --payload-bytes {} --duration {}",
            plan.subscribers, plan.rate, plan.payload_bytes, plan.secs
        ),
        Scenario::Idle => format!(
            "{common} idle --connections {} --channels {} --duration {}",
            plan.idle_connections, plan.idle_channels, plan.idle_hold
        ),
        Scenario::Storm => format!(
            "raptor-loadtest --port $PORT --server-pid $SERVER_PID --threads {} --connect-concurrency {} connect-storm --duration {}",
            plan.client_threads, plan.storm_concurrency, plan.secs
        ),
        Scenario::History => crate::history::shapes(plan)
            .iter()
            .map(|s| {
                format!(
                    "{common} fanout --channels {} --subscribers {}{} --publishers {} --payload-bytes {} --duration {}   # history: against history-off.toml and history-on.toml",
                    s.channels,
                    s.subscribers,
                    s.rate.map_or(String::new(), |r| format!(" --rate {r}")),
                    s.publishers,
                    plan.payload_bytes,
                    plan.history_secs
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Scenario::Transports => crate::transports::command(plan),
        Scenario::Patterns => crate::patterns::command(plan),
        Scenario::LatencyFloor => format!(
            "{common} fanout --channels 1 --subscribers {} --rate {} --payload-bytes {} --duration {}   # then the same receivers against: raptor-bench raw-floor --mode latency --expect {} --rate {} --events {}",
            plan.subscribers, plan.rate, plan.payload_bytes, plan.floors.secs, plan.subscribers, plan.rate, (plan.rate * plan.floors.secs).round()
        ),
        Scenario::Publishers => format!(
            "{common} fanout --channels 1 --subscribers {} --publishers {} --payload-bytes {} --duration {}   # and raptor-bench raw-server --batch {} against as many sockets",
            plan.subscribers, plan.floors.publishers, plan.payload_bytes, plan.floors.secs, plan.raw_batch
        ),
        Scenario::ConnectFloor => format!(
            "raptor-loadtest --port $PORT --server-pid $SERVER_PID --threads {} --connect-concurrency {} connect-storm --duration {}   # floor: raptor-bench raw-floor --mode connect, with connect-storm --until-upgrade",
            plan.client_threads, plan.storm_concurrency, plan.floors.secs
        ),
        Scenario::Growth => crate::floors::growth::command(plan),
    }
}

/// Runs `s` against a fresh instance of `c`. A failure is recorded in the sample, not raised:
/// one bad run must not lose the others.
pub fn run_one(
    round: usize,
    s: Scenario,
    c: &Contender,
    plan: &Plan,
    log: &std::path::Path,
    memory: &mut SearchMemory,
) -> Sample {
    let mut cores = CoresUsed::default();
    let mut search = Search::default();
    let mut history = None;
    let mut transports = None;
    let mut patterns = None;
    let mut floors = None;
    let result = match (&c.kind, s) {
        (Kind::Raptor { bin, shards }, s) if s.is_floor() => {
            match crate::floors::run(s, bin, *shards, plan, round, log, &mut cores) {
                Ok(f) => {
                    floors = Some(f);
                    Ok(None)
                }
                Err(e) => Err(e.context(format!("{} against raptor", s.name()))),
            }
        }
        (Kind::Raptor { bin, shards }, Scenario::Patterns) => {
            match crate::patterns::run(bin, *shards, plan, round, log, &mut cores) {
                Ok(p) => {
                    patterns = Some(p);
                    Ok(None)
                }
                Err(e) => Err(e.context("patterns against raptor")),
            }
        }
        (Kind::Raptor { bin, shards }, Scenario::Transports) => {
            match crate::transports::run(bin, *shards, plan, round, log, &mut cores) {
                Ok(t) => {
                    transports = Some(t);
                    Ok(None)
                }
                Err(e) => Err(e.context("transports against raptor")),
            }
        }
        (Kind::Raptor { bin, shards }, Scenario::History) => {
            match crate::history::run(bin, *shards, plan, round, log, &mut cores) {
                Ok(h) => {
                    history = Some(h);
                    Ok(None)
                }
                Err(e) => Err(e.context("history against raptor")),
            }
        }
        _ => run_inner(s, c, plan, log, &mut cores, memory, &mut search).map(Some),
    };
    let (report, error) = match result {
        Ok(r) => (r, None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    Sample {
        round,
        scenario: s,
        contender: c.name.clone(),
        report,
        error,
        cores_machine: cores.machine,
        cores_client: cores.client,
        cores_server: cores.server,
        cores_others: cores.others,
        loadavg_1m: loadavg()[0],
        rate: search.rate,
        probes: search.probes,
        history,
        transports,
        patterns,
        floors,
    }
}

/// What a fanout rate search found.
#[derive(Debug, Default)]
struct Search {
    rate: Option<f64>,
    probes: Vec<String>,
}

fn run_inner(
    s: Scenario,
    c: &Contender,
    plan: &Plan,
    log: &std::path::Path,
    cores: &mut CoresUsed,
    memory: &mut SearchMemory,
    search: &mut Search,
) -> anyhow::Result<Report> {
    let (server, target) = match &c.kind {
        Kind::Raptor { bin, shards } => {
            let srv = ServerProc::raptor(bin, *shards, log)?;
            let t = Target::new("127.0.0.1", srv.port, "1", "app-key", "app-secret", false)?;
            (srv, t)
        }
        Kind::Peer {
            cmd,
            port,
            app_id,
            key,
            secret,
        } => {
            let srv = ServerProc::peer(cmd, *port, log)?;
            let t = Target::new("127.0.0.1", *port, app_id, key, secret, false)?;
            (srv, t)
        }
        Kind::Raw { threads, batch } => {
            let n = plan.subscribers as usize;
            let srv = ServerProc::raw(n, *threads, *batch, raw_server_secs(plan), log)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], srv.port));
            let share = CpuShare::start(Some(srv.pid()));
            let r = raw::read(
                addr,
                n,
                RAW_WARMUP,
                Duration::from_secs_f64(plan.secs),
                Some(srv.pid()),
            );
            *cores = share.stop();
            srv.stop();
            return r.map(|r| raw_report(&r, n as u64));
        }
    };
    let mut common = Common::new(target);
    common.server_pid = Some(server.pid());
    common.threads = plan.client_threads;
    let bound = Bound::new(Some(Duration::from_secs_f64(plan.secs)), None)?;
    let share = CpuShare::start(Some(server.pid()));
    let report = match s {
        Scenario::Fanout => {
            let start = memory
                .0
                .get(&c.name)
                .map_or(plan.fanout_start_rate, |r| r * 0.8);
            let r = search_rate(&common, plan, start, search);
            if let Some(rate) = search.rate {
                memory.0.insert(c.name.clone(), rate);
            }
            r
        }
        Scenario::FlatOut | Scenario::Latency => {
            let mut o = FanoutOpts::new(common, 1, plan.subscribers, bound);
            o.payload_bytes = plan.payload_bytes;
            if s == Scenario::Latency {
                o.rate = Some(plan.rate);
            }
            fanout::run(&o)
        }
        Scenario::Idle => idle::run(&IdleOpts {
            common,
            connections: plan.idle_connections,
            channels: plan.idle_channels,
            hold: Duration::from_secs_f64(plan.idle_hold),
        }),
        Scenario::History
        | Scenario::Transports
        | Scenario::Patterns
        | Scenario::LatencyFloor
        | Scenario::Publishers
        | Scenario::ConnectFloor
        | Scenario::Growth => Err(anyhow::anyhow!("{} runs against raptor only", s.name())),
        Scenario::Storm => {
            common.connect_concurrency = plan.storm_concurrency;
            connect_storm::run(&ConnectStormOpts {
                common,
                channels: 10,
                bound,
                until_upgrade: false,
            })
        }
    };
    *cores = share.stop();
    server.stop();
    report.with_context(|| format!("{} against {}", s.name(), c.name))
}

/// One fanout run at `rate` publishes/s for `secs`.
fn fanout_at(common: &Common, plan: &Plan, rate: f64, secs: f64) -> anyhow::Result<Report> {
    let bound = Bound::new(Some(Duration::from_secs_f64(secs)), None)?;
    let mut o = FanoutOpts::new(common.clone(), 1, plan.subscribers, bound);
    o.payload_bytes = plan.payload_bytes;
    o.rate = Some(rate);
    o.drain_timeout = Duration::from_secs(2);
    fanout::run(&o)
}

/// A probe passes when nothing was lost or reordered and the subscribers kept up with the
/// offered rate (deliveries within 5 % of rate × subscribers).
fn keeps_up(r: &Report, rate: f64, subscribers: u64) -> bool {
    r.is_clean() && r.deliveries_per_sec >= 0.95 * rate * subscribers as f64
}

/// The highest clean publish rate, found with short probes stepping ×1.25 up from `start`
/// (or ×0.7 down while even `start` fails), then measured for the full duration at that rate
/// (one step down if the long run is not clean). The server is the same throughout; every
/// probe uses fresh channels and connections.
fn search_rate(
    common: &Common,
    plan: &Plan,
    start: f64,
    search: &mut Search,
) -> anyhow::Result<Report> {
    const STEPS: usize = 12;
    let subs = plan.subscribers;
    let mut rate = start.max(1.0);
    let mut best: Option<f64> = None;
    for _ in 0..STEPS {
        let r = fanout_at(common, plan, rate, plan.probe_secs)?;
        let ok = keeps_up(&r, rate, subs);
        search.probes.push(format!(
            "{rate:.0}/s {}",
            if ok {
                "ok"
            } else if r.is_clean() {
                "behind"
            } else {
                "lost"
            }
        ));
        match (ok, best) {
            (true, _) => {
                best = Some(rate);
                rate *= 1.25;
            }
            (false, Some(_)) => break,
            (false, None) => rate *= 0.7,
        }
    }
    let mut rate = best.context("no publish rate kept up, even the lowest probed")?;
    let mut last = None;
    for _ in 0..3 {
        let r = fanout_at(common, plan, rate, plan.secs)?;
        let ok = keeps_up(&r, rate, subs);
        search.probes.push(format!(
            "{rate:.0}/s × {} s {}",
            plan.secs,
            if ok { "measured" } else { "failed" }
        ));
        if ok {
            search.rate = Some(rate);
            return Ok(r);
        }
        last = Some(r);
        rate *= 0.85;
    }
    Ok(last.expect("ran at least once"))
}

/// The raw ceiling's figures in the load generator's report shape (bad frames count as errors).
pub(crate) fn raw_report(r: &raw::RawResult, conns: u64) -> Report {
    Report {
        scenario: "raw-ceiling".into(),
        connections: conns,
        channels: 0,
        published: 0,
        deliveries: r.frames,
        deliveries_per_sec: r.frames as f64 / r.secs.max(1e-9),
        lost: 0,
        out_of_order: 0,
        errors: r.bad_frames,
        first_error: (r.bad_frames > 0).then(|| "frame boundary without 0x81 0x3E".into()),
        lossy_channels: Vec::new(),
        latency_of: "none".into(),
        latency_us: LatencyUs::default(),
        client_cpu_s: r.client_cpu_s,
        server_cpu_s: r.server_cpu_s,
        client_cpu_us_per_delivery: us_per(r.client_cpu_s, r.frames),
        server_cpu_us_per_delivery: r.server_cpu_s.and_then(|s| us_per(s, r.frames)),
        server_rss_kib_per_conn: None,
        client_rss_kib_per_conn: None,
        connects_per_sec: None,
        duration_s: r.secs,
    }
}
