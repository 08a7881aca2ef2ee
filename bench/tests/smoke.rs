//! Smoke test of the harness: `raptor-bench run` in a tiny configuration (1 round, 50
//! subscribers, 1 s per scenario, the raw ceiling included) against the real server binary,
//! then the report and `results.json` are checked for sane figures. Bounded: the harness is
//! killed after 90 s; it normally takes ~20 s.
//!
//! The server binary is `$RAPTOR_BIN`, else `raptor` in the target directory's `debug/` or
//! `release/`, else it is built with `cargo build -p raptor-engine --bin raptor`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the workspace")
        .to_path_buf()
}

/// `<target>/debug/deps/smoke-…` → `<target>`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return workspace().join(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| workspace().join("target"))
}

fn raptor_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("RAPTOR_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let dir = target_dir();
    if let Some(p) = ["debug", "release"]
        .iter()
        .map(|p| dir.join(p).join("raptor"))
        .find(|p| p.is_file())
    {
        return p;
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-p", "raptor-engine", "--bin", "raptor"])
        .current_dir(workspace())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building raptor failed");
    dir.join("debug").join("raptor")
}

#[test]
fn tiny_run_writes_a_sane_report() {
    let tmp = std::env::temp_dir().join(format!("raptor-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let out = tmp.join("benchmarks.md");
    let charts = tmp.join("bench");
    let raptor = raptor_bin();
    let child = Command::new(env!("CARGO_BIN_EXE_raptor-bench"))
        .arg("run")
        .args(["--rounds", "1", "--secs", "1", "--subscribers", "50"])
        .args([
            "--idle-connections",
            "200",
            "--idle-channels",
            "10",
            "--idle-hold",
            "1",
        ])
        .args(["--storm-concurrency", "16", "--no-mesh", "--no-cluster-sim"])
        .arg("--no-cluster-fanout")
        .args(["--probe-secs", "0.5", "--fanout-start-rate", "200"])
        .args(HISTORY_TINY)
        .args(FLOORS_TINY)
        .arg("--raptor-bin")
        .arg(&raptor)
        .arg("--out")
        .arg(&out)
        .arg("--chart-dir")
        .arg(&charts)
        .arg("--notes")
        .arg(tmp.join("no-notes.md"))
        .arg("--log-dir")
        .arg(tmp.join("logs"))
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start raptor-bench");
    let status = wait_bounded(child, Duration::from_secs(180));
    assert!(status.success(), "raptor-bench exited with {status}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(charts.join("results.json")).unwrap())
            .unwrap();
    let samples = json["samples"].as_array().unwrap();
    let floors = |scenario: &str| {
        samples
            .iter()
            .find(|s| s["scenario"] == scenario && s["contender"] == "raptor")
            .unwrap_or_else(|| panic!("no {scenario} run"))["floors"]
            .clone()
    };
    let lat = floors("latency-floor");
    for side in ["raptor", "floor"] {
        let r = &lat[side];
        assert_eq!(r["lost"], 0, "latency-floor {side}: {lat}");
        assert_eq!(r["errors"], 0, "latency-floor {side}: {lat}");
        assert!(r["latency_us"]["p50"].as_f64().unwrap() > 0.0, "{lat}");
    }
    // flat out, loss may happen on a busy machine: it is a finding, not a failure
    let pubs = floors("fanout-publishers");
    assert!(pubs["raptor"]["deliveries"].as_u64().unwrap() > 0, "{pubs}");
    assert!(pubs["floor"]["deliveries"].as_u64().unwrap() > 0, "{pubs}");
    let conn = floors("connect-floor");
    for side in ["raptor", "floor"] {
        assert!(conn[side]["connections"].as_u64().unwrap() > 0, "{conn}");
        assert_eq!(conn[side]["errors"], 0, "connect-floor {side}: {conn}");
    }
    assert_eq!(conn["floor"]["latency_of"], "connect_to_upgraded");
    let points = floors("growth")["points"].as_array().unwrap().clone();
    assert_eq!(points.len(), 2 + 2 + 2, "every size of every sweep");
    for p in &points {
        assert!(p["error"].is_null(), "{p}");
        assert_eq!(p["report"]["lost"], 0, "{p}");
        assert!(p["report"]["server_cpu_s"].as_f64().is_some(), "{p}");
    }
    let floors_md = std::fs::read_to_string(&out).unwrap();
    for needle in [
        "### Latency floor:",
        "| publish→receive p99 |",
        "### Publishers in parallel:",
        "### Connection cost floor:",
        "| server CPU per cycle |",
        "### Growth:",
        "| presence members |",
    ] {
        assert!(floors_md.contains(needle), "report lacks {needle:?}");
    }
    assert!(charts.join("growth-channels.svg").is_file());
    assert!(charts.join("latency-floor.svg").is_file());
    let find = |scenario: &str, who: &str| {
        samples
            .iter()
            .find(|s| s["scenario"] == scenario && s["contender"] == who)
            .unwrap_or_else(|| panic!("no {scenario} run of {who}"))["report"]
            .clone()
    };
    for scenario in ["fanout", "fanout-flat-out", "latency"] {
        let r = find(scenario, "raptor");
        assert!(r["deliveries"].as_u64().unwrap() > 0, "{scenario}: {r}");
        assert_eq!(r["lost"], 0, "{scenario}: {r}");
        assert_eq!(r["out_of_order"], 0, "{scenario}: {r}");
        assert_eq!(r["errors"], 0, "{scenario}: {r}");
        assert!(r["latency_us"]["p50"].as_f64().unwrap() > 0.0);
        assert!(
            r["server_cpu_s"].as_f64().is_some(),
            "server pid was measured"
        );
    }
    let idle = find("idle", "raptor");
    assert_eq!(idle["connections"], 200);
    assert!(idle["server_rss_kib_per_conn"].as_f64().is_some());
    let storm = find("connect-storm", "raptor");
    assert!(storm["connects_per_sec"].as_f64().unwrap() > 0.0);
    let fanout = samples
        .iter()
        .find(|s| s["scenario"] == "fanout" && s["contender"] == "raptor")
        .unwrap();
    assert!(
        fanout["rate"].as_f64().unwrap() > 0.0,
        "the rate search found a clean rate"
    );
    assert!(
        samples
            .iter()
            .any(|s| s["scenario"] == "history" && s["history"].is_object()),
        "the default set includes history"
    );
    let raw = find("fanout", "raw-ceiling");
    assert!(raw["deliveries"].as_u64().unwrap() > 0);
    assert_eq!(raw["errors"], 0, "raw frames stayed aligned");

    let md = std::fs::read_to_string(&out).unwrap();
    for needle in [
        "## Machine",
        "## Targets",
        "Raw loopback ceiling",
        "fanout-throughput.svg",
    ] {
        assert!(md.contains(needle), "report lacks {needle:?}");
    }
    assert!(charts.join("fanout-throughput.svg").is_file());
    assert!(charts.join("latency-percentiles.svg").is_file());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The history scenario at its smallest: 0.5 s fanout runs, 10 channels in the publish
/// shape, 3 recoveries, 2,000 stored events.
const HISTORY_TINY: [&str; 8] = [
    "--history-secs",
    "0.5",
    "--history-channels",
    "10",
    "--history-recoveries",
    "3",
    "--history-events",
    "2000",
];

/// The floor and growth scenarios at their smallest (with `--subscribers 50`): in the
/// default set, each round pairs Raptor with its floor, both sides timed by the loadtest (the
/// latency floor's receivers parse its stamped frames, the connection floor's storm counts
/// cycles at the 101), and every growth point runs.
const FLOORS_TINY: [&str; 14] = [
    "--floor-secs",
    "0.5",
    "--publishers",
    "4",
    "--growth-secs",
    "0.5",
    "--growth-subscribers",
    "20,50",
    "--growth-channels",
    "1,10",
    "--growth-total",
    "50",
    "--presence-members",
    "5,10",
];

/// `raptor-bench run --only history` in a tiny configuration: both workloads ran clean with
/// history off and on, three recoveries of 300 events were timed, the stored events were
/// accounted, and the report shows the on ÷ off ratios and the figures.
#[test]
fn tiny_history_run_compares_on_and_off() {
    let tmp =
        std::env::temp_dir().join(format!("raptor-bench-history-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let out = tmp.join("benchmarks.md");
    let charts = tmp.join("bench");
    let child = Command::new(env!("CARGO_BIN_EXE_raptor-bench"))
        .arg("run")
        .args(["--only", "history", "--rounds", "1", "--subscribers", "50"])
        .args(HISTORY_TINY)
        .arg("--no-mesh")
        .arg("--raptor-bin")
        .arg(raptor_bin())
        .arg("--out")
        .arg(&out)
        .arg("--chart-dir")
        .arg(&charts)
        .arg("--notes")
        .arg(tmp.join("no-notes.md"))
        .arg("--log-dir")
        .arg(tmp.join("logs"))
        .spawn()
        .expect("start raptor-bench");
    let status = wait_bounded(child, Duration::from_secs(60));
    assert!(status.success(), "raptor-bench exited with {status}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(charts.join("results.json")).unwrap())
            .unwrap();
    let samples = json["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "one round against raptor only");
    let h = &samples[0]["history"];
    let pairs = h["pairs"].as_array().unwrap();
    assert_eq!(
        pairs
            .iter()
            .map(|p| p["shape"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["fanout", "publish"]
    );
    for p in pairs {
        for which in ["off", "on"] {
            let r = &p[which];
            assert!(r["deliveries"].as_u64().unwrap() > 0, "{which}: {r}");
            assert_eq!(r["lost"], 0, "{which}: {r}");
            assert_eq!(r["errors"], 0, "{which}: {r}");
            assert!(r["server_cpu_us_per_delivery"].as_f64().unwrap() > 0.0);
        }
    }
    let ms = h["recovery"]["ms"].as_array().unwrap();
    assert_eq!(ms.len(), 3);
    assert!(ms.iter().all(|m| m.as_f64().unwrap() > 0.0));
    let m = &h["memory"];
    assert_eq!(
        (m["events"].as_u64(), m["channels"].as_u64()),
        (Some(2000), Some(2))
    );
    let accounted =
        m["accounted_after"].as_u64().unwrap() - m["accounted_before"].as_u64().unwrap();
    // at least the data itself
    assert!(accounted >= 2000 * 64, "{m}");

    let md = std::fs::read_to_string(&out).unwrap();
    for needle in [
        "### History:",
        "| on ÷ off |",
        "server CPU per delivery",
        "recover 300 events: subscribe sent → 300th replayed event received | median ",
        "per 1,000 stored 64-byte events",
        "`/stats` `history.bytes`",
    ] {
        assert!(md.contains(needle), "report lacks {needle:?}:\n{md}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Waits for the harness, killing it after `limit`.
fn wait_bounded(mut child: std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("raptor-bench did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `raptor-bench cluster-fanout` in a tiny configuration: 3 real nodes and a single node,
/// full and light pairs, 1 round of 1 s each; the section and the JSON have every run, clean.
#[test]
fn tiny_cluster_fanout_writes_both_pairs() {
    let tmp =
        std::env::temp_dir().join(format!("raptor-bench-cluster-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let out = tmp.join("benchmarks.md");
    let charts = tmp.join("bench");
    let child = Command::new(env!("CARGO_BIN_EXE_raptor-bench"))
        .arg("cluster-fanout")
        .args(["--rounds", "1", "--secs", "1", "--rate", "20"])
        .args(["--subscribers", "6", "--hop-subscribers", "3"])
        .arg("--raptor-bin")
        .arg(raptor_bin())
        .arg("--out")
        .arg(&out)
        .arg("--chart-dir")
        .arg(&charts)
        .arg("--log-dir")
        .arg(tmp.join("logs"))
        .spawn()
        .expect("start raptor-bench");
    let status = wait_bounded(child, Duration::from_secs(90));
    assert!(status.success(), "raptor-bench exited with {status}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(charts.join("cluster-results.json")).unwrap(),
    )
    .unwrap();
    let layouts: Vec<&str> = json["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let r = &s["report"];
            assert_eq!(r["lost"], 0, "{s}");
            assert_eq!(r["errors"], 0, "{s}");
            assert!(r["deliveries"].as_u64().unwrap() > 0, "{s}");
            s["layout"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        layouts,
        ["cluster", "single", "cluster-light", "single-light"]
    );
    let md = std::fs::read_to_string(&out).unwrap();
    for needle in [
        "At full size the extra hop adds",
        "Lightly loaded, the extra hop adds",
        "<!-- cluster-fanout: end -->",
    ] {
        assert!(md.contains(needle), "section lacks {needle:?}:\n{md}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
