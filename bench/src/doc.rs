//! Writing `docs/benchmarks.md`: machine and load, exact commands, targets, per-scenario
//! medians and spreads with ratios within this run, every individual run, and the charts.

use crate::charts;
use crate::harness::{loadtest_command, Plan, Sample, Scenario};
use crate::machine::Machine;
use crate::summary::{self, fmt_num, stat, Metric, GOALS};
use std::fmt::Write as _;
use std::path::Path;

/// Everything the document is made of. Saved as `results.json` next to the charts, so the
/// document can be rendered again (`raptor-bench render`) without rerunning anything.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub machine: Machine,
    pub loadavg_before: [f64; 3],
    pub started_unix: u64,
    pub finished_unix: u64,
    /// the harness command line as given
    pub command: String,
    pub plan: Plan,
    pub rounds: usize,
    pub scenarios: Vec<Scenario>,
    /// (name, command line that starts it)
    pub contenders: Vec<(String, String)>,
    /// name of the Raptor contender (the subject)
    pub raptor: String,
    /// name of the peer server, if one ran
    pub peer: Option<String>,
    /// name of the raw ceiling contender, if it ran
    pub raw: Option<String>,
    pub samples: Vec<Sample>,
    /// `mesh_fanout` output (markdown tables), if it ran
    pub mesh: Option<String>,
    /// hand-written notes to include verbatim (analysis that survives regeneration)
    #[serde(skip)]
    pub notes: Option<String>,
    /// (title, path relative to the document)
    pub charts: Vec<(String, String)>,
    /// what waiting for a quiet machine found, if the harness waited
    pub quiet: Option<String>,
    /// git commit the servers were built from
    pub source: Option<String>,
}

type Row = (&'static str, Metric, &'static str);

fn rows(s: Scenario) -> Vec<Row> {
    use summary::*;
    match s {
        Scenario::Fanout => vec![
            ("deliveries/s", deliveries_per_sec as Metric, ""),
            ("publish rate (highest clean)", publish_rate, "/s"),
            ("server CPU per delivery", server_us_per_delivery, " µs"),
            ("client CPU per delivery", client_us_per_delivery, " µs"),
            ("server cores busy", server_cores, ""),
            ("client cores busy", client_cores, ""),
            ("publish→receive p50", p50, " µs"),
            ("publish→receive p99", p99, " µs"),
        ],
        Scenario::FlatOut => vec![
            ("deliveries/s", deliveries_per_sec as Metric, ""),
            (
                "lost (cut as slow consumers, or still queued at the end)",
                lost,
                "",
            ),
            ("server CPU per delivery", server_us_per_delivery, " µs"),
            ("client CPU per delivery", client_us_per_delivery, " µs"),
            ("publish→receive p50", p50, " µs"),
            ("publish→receive p99", p99, " µs"),
        ],
        Scenario::Latency => vec![
            ("publish→receive p50", p50 as Metric, " µs"),
            ("p90", p90, " µs"),
            ("p99", p99, " µs"),
            ("p99.9", p999, " µs"),
            ("max", max_latency, " µs"),
            ("deliveries/s", deliveries_per_sec, ""),
            ("server CPU per delivery", server_us_per_delivery, " µs"),
        ],
        Scenario::Idle => vec![
            (
                "server RSS per connection",
                rss_kib_per_conn as Metric,
                " KiB",
            ),
            ("client RSS per connection", client_rss_kib_per_conn, " KiB"),
            ("connects/s (all subscribed)", connects_per_sec, ""),
        ],
        Scenario::Storm => vec![
            ("connect+subscribe cycles/s", connects_per_sec as Metric, ""),
            ("connect→subscribed p50", p50, " µs"),
            ("connect→subscribed p99", p99, " µs"),
            (
                "server CPU per cycle",
                server_us_per_delivery_or_cycle,
                " µs",
            ),
        ],
        // their own tables: crate::history::report, crate::transports, crate::patterns
        Scenario::History | Scenario::Transports | Scenario::Patterns => Vec::new(),
        Scenario::LatencyFloor
        | Scenario::Publishers
        | Scenario::ConnectFloor
        | Scenario::Growth => Vec::new(),
    }
}

/// Publishes per second of the run (fanout at a fixed rate): published / window.
fn publish_rate(r: &raptor_loadtest::Report) -> Option<f64> {
    (r.published > 0).then(|| r.published as f64 / r.duration_s.max(1e-9))
}

/// connect-storm reports no deliveries; its CPU per cycle is server CPU / connections.
fn server_us_per_delivery_or_cycle(r: &raptor_loadtest::Report) -> Option<f64> {
    r.server_cpu_s
        .filter(|_| r.connections > 0)
        .map(|s| s * 1e6 / r.connections as f64)
}

fn title(s: Scenario, p: &Plan) -> String {
    match s {
        Scenario::Fanout => format!(
            "Fanout: 1 channel × {} subscribers at the highest clean publish rate ({}-byte payloads)",
            fmt_int(p.subscribers),
            p.payload_bytes
        ),
        Scenario::FlatOut => format!(
            "Fanout flat out: 1 channel × {} subscribers, publishing as fast as the HTTP API answers",
            fmt_int(p.subscribers)
        ),
        Scenario::Latency => format!(
            "Latency: {} publishes/s to 1 channel × {} subscribers",
            p.rate,
            fmt_int(p.subscribers)
        ),
        Scenario::Idle => format!(
            "Idle: {} subscribed connections over {} channels",
            fmt_int(p.idle_connections),
            p.idle_channels
        ),
        Scenario::Storm => format!(
            "Connect-storm: open, handshake, subscribe, close ({} in flight)",
            p.storm_concurrency
        ),
        Scenario::History => format!(
            "History: fanout and publishing with history on vs off, recovering {} events, memory per 1,000 stored events",
            crate::history::RECOVER_EVENTS
        ),
        Scenario::Transports => crate::transports::title(p),
        Scenario::Patterns => crate::patterns::title(p),
        s => crate::floors::report::title(s, p),
    }
}

/// An integer count with thousands separators.
pub(crate) fn fmt_int(n: u64) -> String {
    if n >= 1000 {
        fmt_num(n as f64)
    } else {
        n.to_string()
    }
}

pub(crate) fn cell(st: Option<summary::Stat>, unit: &str) -> String {
    match st {
        Some(s) if s.n > 1 => format!(
            "{}{unit} ({}–{}, ±{:.0} %, n={})",
            fmt_num(s.median),
            fmt_num(s.min),
            fmt_num(s.max),
            s.spread_pct(),
            s.n
        ),
        Some(s) => format!("{}{unit} (n=1)", fmt_num(s.median)),
        None => "–".into(),
    }
}

fn ratio(a: Option<summary::Stat>, b: Option<summary::Stat>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median != 0.0 => format!("{:.2}×", a.median / b.median),
        _ => "–".into(),
    }
}

/// `YYYY-MM-DD HH:MM UTC` from Unix seconds (civil-from-days, no date crate).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Writes the charts into `chart_dir`, `results.json` beside them, and the markdown to `out`
/// (chart links relative to it).
pub fn write_all(info: &mut RunInfo, out: &Path, chart_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(chart_dir)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let names: Vec<String> = info.contenders.iter().map(|c| c.0.clone()).collect();
    let samples = &info.samples;
    let p = &info.plan;
    let mut links = Vec::new();
    let mut add = |made: bool, title: &str, file: &str| {
        if made {
            let rel = relative_to(
                &chart_dir.join(file),
                out.parent().unwrap_or(Path::new(".")),
            );
            links.push((title.to_string(), rel));
        }
    };
    add(
        charts::bars(
            &chart_dir.join("fanout-throughput.svg"),
            "Fanout at the highest clean rate: deliveries/s (median, min-max, rounds)",
            "deliveries/s",
            samples,
            Scenario::Fanout,
            &names,
            summary::deliveries_per_sec,
        )?,
        "Fanout throughput",
        "fanout-throughput.svg",
    );
    add(
        charts::percentiles(
            &chart_dir.join("latency-percentiles.svg"),
            &format!(
                "{} publishes/s to {} subscribers: publish-to-receive",
                p.rate, p.subscribers
            ),
            samples,
            Scenario::Latency,
            &names,
        )?,
        "Latency percentiles",
        "latency-percentiles.svg",
    );
    add(
        charts::percentiles(
            &chart_dir.join("fanout-latency-percentiles.svg"),
            "Fanout at the highest clean rate: publish-to-receive",
            samples,
            Scenario::Fanout,
            &names,
        )?,
        "Fanout latency percentiles (highest clean rate)",
        "fanout-latency-percentiles.svg",
    );
    add(
        charts::bars(
            &chart_dir.join("connect-storm.svg"),
            "Connect-storm: cycles/s (median, min-max, rounds)",
            "connect+subscribe/s",
            samples,
            Scenario::Storm,
            &names,
            summary::connects_per_sec,
        )?,
        "Connect-storm rate",
        "connect-storm.svg",
    );
    for (t, file) in crate::floors::report::charts(info, chart_dir)? {
        add(true, &t, &file);
    }
    info.charts = links;
    std::fs::write(
        chart_dir.join("results.json"),
        serde_json::to_string_pretty(&info)?,
    )?;
    // the Cluster section comes from `raptor-bench cluster-fanout`: keep it
    let old = std::fs::read_to_string(out).unwrap_or_default();
    let mut text = render(info);
    if let Some(section) = crate::cluster::kept_section(&old) {
        text = crate::cluster::with_section(&text, section);
    }
    std::fs::write(out, text)?;
    Ok(())
}

/// `path` relative to `base` when it lies below it, else absolute.
fn relative_to(path: &Path, base: &Path) -> String {
    let (p, b) = (
        path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
        base.canonicalize().unwrap_or_else(|_| base.to_path_buf()),
    );
    p.strip_prefix(&b)
        .map_or_else(|_| p.display().to_string(), |r| r.display().to_string())
}

pub fn render(info: &RunInfo) -> String {
    let mut o = String::new();
    let m = &info.machine;
    let p = &info.plan;
    let w = &mut o;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ =
        writeln!(
        w,
        "Generated by `raptor-bench run` on {} ({} min). Do not edit by hand: rerun the harness \
         (see [How to reproduce](#how-to-reproduce)); hand-written analysis lives in \
         `docs/bench/notes.md` and is included below.\n",
        utc(info.started_unix),
        info.finished_unix.saturating_sub(info.started_unix).div_ceil(60)
    );

    // Machine and load
    let loads: Vec<f64> = info.samples.iter().map(|s| s.loadavg_1m).collect();
    let others: Vec<f64> = info.samples.iter().map(|s| s.cores_others).collect();
    let lstat = summary::Stat::of(&loads);
    let ostat = summary::Stat::of(&others);
    let _ = writeln!(w, "## Machine\n");
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| cores (nproc) | {} |", m.nproc);
    let _ = writeln!(w, "| CPU | {} |", m.cpu_model);
    let _ = writeln!(w, "| kernel | {} |", m.kernel);
    let _ = writeln!(w, "| memory | {} |", m.memory);
    if let Some(src) = &info.source {
        let _ = writeln!(w, "| source | {src} |");
    }
    let _ = writeln!(
        w,
        "| load average before (1/5/15 min) | {:.2} / {:.2} / {:.2} |",
        info.loadavg_before[0], info.loadavg_before[1], info.loadavg_before[2]
    );
    if let Some(q) = &info.quiet {
        let _ = writeln!(w, "| before the start | {q} |");
    }
    if let Some(l) = lstat {
        let _ = writeln!(
            w,
            "| load average during (1 min, after each run) | median {:.2}, min {:.2}, max {:.2} |",
            l.median, l.min, l.max
        );
    }
    if let Some(x) = ostat {
        let _ = writeln!(
            w,
            "| other processes' CPU during runs (cores) | median {:.2}, max {:.2} |",
            x.median, x.max
        );
    }
    let _ = writeln!(
        w,
        "\nServer and load generator share the machine: on {} cores, every figure below is \
         \"server + client on one box\". Load average counts the benchmark itself; \
         \"other processes' CPU\" is the machine's busy time minus server and load generator \
         (noise: well above 0 means someone else was using the CPU).\n",
        m.nproc
    );

    // Commands
    let _ = writeln!(w, "## How to reproduce\n");
    let _ = writeln!(
        w,
        "From the repository root (defaults write this file and `docs/bench/`; add \
         `--peer-cmd '...' --peer-port N` to compare another server):\n"
    );
    let _ = writeln!(
        w,
        "```sh\ncargo build --release -p raptor-engine --bin raptor\ncargo build --release -p raptor-bench\n\
         target/release/raptor-bench run --rounds 3 --wait-quiet 600\n```\n"
    );
    let _ = writeln!(w, "This run, exactly:\n");
    let _ = writeln!(w, "```sh\n{}\n```\n", info.command);
    let _ = writeln!(
        w,
        "Servers under test, each started fresh for every scenario run and stopped by pid:\n"
    );
    for (name, cmd) in &info.contenders {
        let _ = writeln!(w, "* **{name}**: `{cmd}`");
    }
    let _ = writeln!(
        w,
        "\n{} round(s); within a round every scenario runs against each server in turn \
         ({}), so drift hits all alike. Each scenario is the `raptor-loadtest` library call \
         equivalent to:\n",
        info.rounds,
        info.contenders
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>()
            .join(", then ")
    );
    let _ = writeln!(w, "```sh");
    for s in &info.scenarios {
        let _ = writeln!(w, "{}", loadtest_command(*s, p));
    }
    let _ = writeln!(w, "```\n");
    if info.raw.is_some() {
        let _ = writeln!(
            w,
            "The raw ceiling has its own reader inside `raptor-bench` (one mio thread, counts \
             64-byte frames and checks every boundary), 1 s warm-up then {} s.\n",
            p.secs
        );
    }

    // Targets
    let _ = writeln!(w, "## Targets\n");
    let _ = writeln!(
        w,
        "Raptor's median over clean rounds against the issue's targets.\n"
    );
    let _ = writeln!(
        w,
        "| target | goal | Raptor (median) | verdict |\n|---|---:|---:|---|"
    );
    for g in &GOALS {
        if !info.scenarios.contains(&g.scenario) {
            continue;
        }
        let st = stat(&info.samples, g.scenario, &info.raptor, g.metric);
        let goal = format!(
            "{} {}{}",
            if g.higher_is_better { "≥" } else { "≤" },
            fmt_num(g.goal),
            g.unit
        );
        let (val, verdict) = match st {
            Some(s) => (
                format!("{}{}", fmt_num(s.median), g.unit),
                g.describe(s.median),
            ),
            None => ("–".into(), "no clean run".into()),
        };
        let _ = writeln!(w, "| {} | {goal} | {val} | {verdict} |", g.what);
    }
    if let (Some(raw), true) = (&info.raw, info.scenarios.contains(&Scenario::Fanout)) {
        let dps = summary::deliveries_per_sec;
        let ceiling = stat(&info.samples, Scenario::Fanout, raw, dps);
        let sustained = stat(&info.samples, Scenario::Fanout, &info.raptor, dps);
        let flat = stat(&info.samples, Scenario::FlatOut, &info.raptor, dps);
        if let Some(c) = ceiling {
            let _ = writeln!(
                w,
                "\n**Raw loopback ceiling** (same run, same {} sockets, pre-encoded 64-byte frames, \
                 {} per `send()`, no protocol, a reader that only counts): {}/s.",
                fmt_int(p.subscribers),
                p.raw_batch,
                fmt_num(c.median)
            );
            let flat_lossy = info.samples.iter().any(|s| {
                s.scenario == Scenario::FlatOut
                    && s.contender == info.raptor
                    && s.report.as_ref().is_some_and(|r| r.lost > 0)
            });
            let flat_label = if flat_lossy {
                "flat out (lossy)"
            } else {
                "flat out"
            };
            for (what, st) in [("at its highest clean rate", sustained), (flat_label, flat)] {
                if let Some(r) = st {
                    let _ = writeln!(
                        w,
                        "* Raptor fanout {what}: {}/s = **{:.0} % of the ceiling**.",
                        fmt_num(r.median),
                        r.median / c.median * 100.0
                    );
                }
            }
            let single = stat(&info.samples, Scenario::Fanout, "raw-1-per-send", dps);
            let single_cpu = stat(
                &info.samples,
                Scenario::Fanout,
                "raw-1-per-send",
                summary::server_us_per_delivery,
            );
            if let (Some(s1), Some(cpu)) = (single, single_cpu) {
                let _ = writeln!(
                    w,
                    "* With one frame per `send()` the same raw server reaches {}/s at {} µs of \
                     server CPU per frame: the price of every unbatched delivery.",
                    fmt_num(s1.median),
                    fmt_num(cpu.median)
                );
            }
        }
    }
    let _ = writeln!(w);

    // Charts
    if !info.charts.is_empty() {
        let _ = writeln!(w, "## Charts\n");
        for (t, path) in &info.charts {
            let _ = writeln!(w, "* [{t}]({path})\n\n  ![{t}]({path})\n");
        }
    }

    // Per scenario
    let _ = writeln!(w, "## Results by scenario\n");
    let _ = writeln!(
        w,
        "Each cell: median over clean rounds (min–max, ± half the range as % of the median, \
         number of rounds). Ratios divide medians from this run only.\n"
    );
    for s in &info.scenarios {
        if *s == Scenario::History {
            let _ = writeln!(w, "### {}\n", title(*s, p));
            let _ = writeln!(w, "{}", crate::history::report::section(info));
            continue;
        }
        if *s == Scenario::Transports {
            let _ = writeln!(w, "### {}\n", title(*s, p));
            let _ = writeln!(w, "{}", crate::transports::section(info));
            continue;
        }
        if s.is_floor() {
            let _ = writeln!(w, "### {}\n", title(*s, p));
            let _ = writeln!(w, "{}", crate::floors::report::section(*s, info));
            continue;
        }
        if *s == Scenario::Patterns {
            let _ = writeln!(w, "### {}\n", title(*s, p));
            let _ = writeln!(w, "{}", crate::patterns::section(info));
            continue;
        }
        let names: Vec<&str> = info
            .contenders
            .iter()
            .map(|c| c.0.as_str())
            .filter(|n| !n.starts_with("raw-") || *s == Scenario::Fanout)
            .collect();
        let _ = writeln!(w, "### {}\n", title(*s, p));
        let mut header = String::from("| figure |");
        let mut line = String::from("|---|");
        for n in &names {
            let _ = write!(header, " {n} |");
            line.push_str("---:|");
        }
        let peer = info.peer.as_deref();
        let raw = info.raw.as_deref().filter(|_| *s == Scenario::Fanout);
        let raw1 = names
            .iter()
            .copied()
            .find(|n| *n == "raw-1-per-send")
            .filter(|_| *s == Scenario::Fanout);
        let others: Vec<&str> = [peer, raw, raw1].into_iter().flatten().collect();
        for other in &others {
            let _ = write!(header, " {} ÷ {other} |", info.raptor);
            line.push_str("---:|");
        }
        let _ = writeln!(w, "{header}\n{line}");
        for (label, metric, unit) in rows(*s) {
            let mut row = format!("| {label} |");
            for n in &names {
                let _ = write!(row, " {} |", cell(stat(&info.samples, *s, n, metric), unit));
            }
            let me = stat(&info.samples, *s, &info.raptor, metric);
            for other in &others {
                let _ = write!(
                    row,
                    " {} |",
                    ratio(me, stat(&info.samples, *s, other, metric))
                );
            }
            let _ = writeln!(w, "{row}");
        }
        let _ = writeln!(w);
    }

    // Every run
    let _ = writeln!(w, "## Every run\n");
    let _ = writeln!(
        w,
        "Cores are CPU-seconds per wall-second over the whole run including setup (machine = \
         all processes). A run that lost, reordered or errored is excluded from the medians.\n"
    );
    let _ = writeln!(
        w,
        "| round | scenario | server | headline | lost | out of order | errors | server cores | client cores | others' cores | load 1m | status |"
    );
    let _ = writeln!(
        w,
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for smp in &info.samples {
        let (headline, lost, ooo, errs, status) = match (&smp.report, &smp.error, &smp.history) {
            (_, _, None) if smp.floors.is_some() => {
                let t = smp.floors.as_ref().expect("checked");
                let (l, o, e) = crate::floors::report::tallies(t);
                let problems = crate::floors::report::problems(t);
                (
                    crate::floors::report::headline(t),
                    l.to_string(),
                    o.to_string(),
                    e.to_string(),
                    if problems.is_empty() {
                        "clean".to_string()
                    } else {
                        format!(
                            "**unclean**: {}",
                            problems.join("; ").replace('|', "/").replace('\n', " ")
                        )
                    },
                )
            }
            (_, _, None) if smp.patterns.is_some() => {
                let t = smp.patterns.as_ref().expect("checked");
                let (l, o, e) = crate::patterns::tallies(t);
                let problems = crate::patterns::problems(t);
                (
                    crate::patterns::headline(t),
                    l.to_string(),
                    o.to_string(),
                    e.to_string(),
                    if problems.is_empty() {
                        "clean".to_string()
                    } else {
                        format!(
                            "**unclean**: {}",
                            problems.join("; ").replace('|', "/").replace('\n', " ")
                        )
                    },
                )
            }
            (_, _, None) if smp.transports.is_some() => {
                let t = smp.transports.as_ref().expect("checked");
                let (l, o, e) = crate::transports::tallies(t);
                let problems = crate::transports::problems(t);
                (
                    crate::transports::headline(t),
                    l.to_string(),
                    o.to_string(),
                    e.to_string(),
                    if problems.is_empty() {
                        "clean".to_string()
                    } else {
                        format!(
                            "**unclean**: {}",
                            problems.join("; ").replace('|', "/").replace('\n', " ")
                        )
                    },
                )
            }
            (_, _, Some(h)) => {
                let (l, o, e) = crate::history::report::tallies(h);
                let problems = crate::history::report::problems(h);
                (
                    crate::history::report::headline(h),
                    l.to_string(),
                    o.to_string(),
                    e.to_string(),
                    if problems.is_empty() {
                        "clean".to_string()
                    } else {
                        format!("**unclean**: {}", problems.join("; ").replace('|', "/"))
                    },
                )
            }
            (Some(r), _, _) => (
                match smp.rate {
                    Some(rate) => format!(
                        "{} at {}/s publishes (probes: {})",
                        headline(smp.scenario, r),
                        fmt_num(rate),
                        smp.probes.join(", ")
                    ),
                    None => headline(smp.scenario, r),
                },
                r.lost.to_string(),
                r.out_of_order.to_string(),
                r.errors.to_string(),
                if r.is_clean() {
                    "clean".to_string()
                } else if smp.scenario == Scenario::FlatOut {
                    format!(
                        "lossy (expected flat out): {}",
                        r.problems().join("; ").replace('|', "/")
                    )
                } else {
                    format!("**unclean**: {}", r.problems().join("; ").replace('|', "/"))
                },
            ),
            (None, e, None) => (
                "–".into(),
                "–".into(),
                "–".into(),
                "–".into(),
                format!(
                    "**failed**: {}",
                    e.as_deref()
                        .unwrap_or("?")
                        .replace('|', "/")
                        .replace('\n', " ")
                ),
            ),
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {headline} | {lost} | {ooo} | {errs} | {:.2} | {:.2} | {:.2} | {:.2} | {status} |",
            smp.round,
            smp.scenario.name(),
            smp.contender,
            smp.cores_server,
            smp.cores_client,
            smp.cores_others,
            smp.loadavg_1m
        );
    }
    let _ = writeln!(w);

    if let Some(mesh) = &info.mesh {
        let _ = writeln!(w, "## In-process fanout path (`mesh_fanout`, no sockets)\n");
        let _ = writeln!(
            w,
            "`cargo run --release -p raptor-bench --bin mesh_fanout -- --secs 1`, run by the \
             harness before the end-to-end scenarios.\n"
        );
        let _ = writeln!(w, "{}\n", mesh.trim());
    }
    if let Some(notes) = &info.notes {
        let _ = writeln!(w, "{}\n", notes.trim());
    }
    o
}

fn headline(s: Scenario, r: &raptor_loadtest::Report) -> String {
    let l = &r.latency_us;
    match (s, r.scenario.as_str()) {
        (_, "raw-ceiling") => format!("{}/s frames", fmt_num(r.deliveries_per_sec)),
        (Scenario::Fanout | Scenario::FlatOut | Scenario::Latency, _) => format!(
            "{}/s, p50 {} µs, p99 {} µs",
            fmt_num(r.deliveries_per_sec),
            fmt_num(l.p50),
            fmt_num(l.p99)
        ),
        (Scenario::Idle, _) => format!(
            "{} KiB/conn, {}/s connects",
            r.server_rss_kib_per_conn.map_or("–".into(), fmt_num),
            r.connects_per_sec.map_or("–".into(), fmt_num)
        ),
        (Scenario::Storm, _) => format!(
            "{}/s, p50 {} µs",
            r.connects_per_sec.map_or("–".into(), fmt_num),
            fmt_num(l.p50)
        ),
        // a history or transports sample has no report; their headlines are
        // crate::history::report::headline and crate::transports::headline
        (Scenario::History | Scenario::Transports | Scenario::Patterns, _) => String::new(),
        (
            Scenario::LatencyFloor
            | Scenario::Publishers
            | Scenario::ConnectFloor
            | Scenario::Growth,
            _,
        ) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
