//! Smoke tests: every scenario, briefly, against the real Raptor server binary.
//!
//! The server binary is `$RAPTOR_BIN`, else `raptor` in the target directory's `debug/`
//! or `release/` (the target directory is `$CARGO_TARGET_DIR`, else the one this test
//! was built into). If none exists it is built with `cargo build -p raptor-engine --bin
//! raptor`; a missing server fails the tests, it never skips them.
//!
//! Each test starts its own server (`raptor serve --bind 127.0.0.1:0 --shards 2`, port
//! read from its `listening on` line) and runs one bounded scenario of at most ~3 s.
//! Tests run one at a time so that they do not compete for the machine's two cores.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::Duration;

use raptor_loadtest::connect_storm::{self, ConnectStormOpts};
use raptor_loadtest::fallback::Transport;
use raptor_loadtest::fanout::{self, FanoutOpts};
use raptor_loadtest::idle::{self, IdleOpts};
use raptor_loadtest::presence::{self, PresenceOpts};
use raptor_loadtest::{Bound, Common, Report, Target};

/// The workspace root: this crate's parent directory.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("loadtest/ sits in the workspace")
        .to_path_buf()
}

/// `$CARGO_TARGET_DIR` (relative to the workspace), else the directory this test binary
/// lives in (`<target>/debug/deps/smoke-…`), else `<workspace>/target`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return workspace().join(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| workspace().join("target"))
}

fn find_raptor() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("RAPTOR_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "RAPTOR_BIN={} does not exist", bin.display());
        return Some(bin);
    }
    let dir = target_dir();
    ["debug", "release"]
        .iter()
        .map(|profile| dir.join(profile).join("raptor"))
        .find(|p| p.is_file())
}

/// The server binary, built once if it is nowhere to be found.
fn raptor_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = find_raptor() {
            return bin;
        }
        eprintln!(
            "raptor binary not found; building it with cargo build -p raptor-engine --bin raptor"
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "raptor-engine", "--bin", "raptor"])
            .env("CARGO_TARGET_DIR", target_dir())
            .current_dir(workspace())
            .status()
            .expect("running cargo build");
        assert!(
            status.success(),
            "cargo build -p raptor-engine --bin raptor failed"
        );
        find_raptor().expect("raptor binary still missing after building it")
    })
}

/// One test at a time: each starts a server and loads both cores.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running server, killed (by its own pid) when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(name: &str) -> Self {
        let log =
            std::env::temp_dir().join(format!("raptor-smoke-{}-{name}.log", std::process::id()));
        let mut child = Command::new(raptor_bin())
            // No metrics listener: its default port (9601) would collide between the
            // servers of tests running in parallel.
            .args(["serve", "--bind", "127.0.0.1:0", "--shards", "2"])
            .args(["--metrics-bind", "off"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("creating the server log"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", raptor_bin().display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // keep draining stdout for the server's whole life so it never blocks on a full pipe
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut server = Self {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            log,
        };
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(addr) = parse_listening(&line) {
                        server.addr = addr;
                        return server;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "raptor exited before printing `listening on`; log: {}",
                    server.log.display()
                ),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "raptor did not print `listening on` within 30 s; log: {}",
                    server.log.display()
                ),
            }
        }
    }

    fn common(&self) -> Common {
        let target = Target::new(
            "127.0.0.1",
            self.addr.port(),
            "1",
            "app-key",
            "app-secret",
            false,
        )
        .unwrap();
        Common {
            server_pid: Some(self.child.id()),
            setup_timeout: Duration::from_secs(10),
            ..Common::new(target)
        }
    }

    /// Fails the test with the server log location if the report is not clean.
    fn check(&self, r: &Report) {
        assert!(
            r.is_clean(),
            "unclean run {:?}\n{r:#?}\nserver log: {}",
            r.problems(),
            self.log.display()
        );
        assert!(r.client_cpu_s >= 0.0, "{r:#?}");
        assert!(r.server_cpu_s.is_some_and(|s| s >= 0.0), "{r:#?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // keep the log only when the test failed and someone will want to read it
        if !thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The address in a line like `raptor listening on 127.0.0.1:40123 with 2 shards`.
fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn secs(s: f64) -> Bound {
    Bound::new(Some(Duration::from_secs_f64(s)), None).unwrap()
}

fn count(n: u64) -> Bound {
    Bound::new(None, Some(n)).unwrap()
}

#[test]
fn listening_line_parses() {
    assert_eq!(
        parse_listening("raptor listening on 127.0.0.1:40123 with 2 shards"),
        Some("127.0.0.1:40123".parse().unwrap())
    );
    assert_eq!(parse_listening("ready"), None);
}

#[test]
fn idle_holds_subscribed_connections() {
    let _serial = serial();
    let server = Server::start("idle");
    let r = idle::run(&IdleOpts {
        common: server.common(),
        connections: 300,
        channels: 10,
        hold: Duration::from_secs(1),
    })
    .expect("idle run");
    server.check(&r);
    assert_eq!(
        (r.scenario.as_str(), r.connections, r.channels),
        ("idle", 300, 10)
    );
    assert_eq!(
        r.latency_us.samples, 300,
        "one connect latency per connection"
    );
    assert!(r.latency_us.p50 > 0.0 && r.latency_us.max < 10e6, "{r:#?}");
    assert!(r.connects_per_sec.is_some_and(|c| c > 0.0), "{r:#?}");
    let rss = r.server_rss_kib_per_conn.expect("server rss with a pid");
    assert!(
        rss.abs() < 1024.0,
        "server rss per connection {rss} KiB is not plausible"
    );
    assert!((0.9..3.0).contains(&r.duration_s), "{r:#?}");
}

#[test]
fn fanout_at_fixed_rate_loses_nothing() {
    let _serial = serial();
    let server = Server::start("fanout-rate");
    let opts = FanoutOpts {
        rate: Some(200.0),
        ..FanoutOpts::new(server.common(), 5, 20, secs(1.0))
    };
    let r = fanout::run(&opts).expect("fanout run");
    server.check(&r);
    assert_eq!((r.connections, r.channels), (100, 5));
    assert!(
        (100..=210).contains(&r.published),
        "~200 publishes in 1 s at 200/s: {r:#?}"
    );
    assert_eq!(
        r.deliveries,
        r.published * 20,
        "every subscriber gets every event"
    );
    assert_eq!(r.latency_us.samples, r.deliveries);
    assert!(
        r.latency_us.p50 > 0.0 && r.latency_us.p50 <= r.latency_us.p99,
        "{r:#?}"
    );
    assert!(r.latency_us.max < 2e6, "a delivery took over 2 s: {r:#?}");
    assert!(r.deliveries_per_sec > 0.0);
    assert!(r.client_cpu_us_per_delivery.is_some() && r.server_cpu_us_per_delivery.is_some());
}

#[test]
fn fanout_over_the_http_transports_loses_nothing() {
    let _serial = serial();
    let server = Server::start("fanout-transports");
    for t in [
        Transport::XhrStreaming,
        Transport::XhrPolling,
        Transport::Sse,
    ] {
        let common = Common {
            transport: t,
            ..server.common()
        };
        // 1 KiB events: 300 of them take a stream past pusher-js's 256 KiB re-open
        let opts = FanoutOpts {
            rate: Some(300.0),
            payload_bytes: 1024,
            ..FanoutOpts::new(common, 1, 5, count(300))
        };
        let r = fanout::run(&opts).unwrap_or_else(|e| panic!("fanout over {t}: {e:#}"));
        server.check(&r);
        assert_eq!(
            r.deliveries,
            300 * 5,
            "{t}: every subscriber gets every event"
        );
        assert!(r.server_rss_kib_per_conn.is_some(), "{t}: {r:#?}");
    }
}

#[test]
fn fanout_by_count_with_two_publishers() {
    let _serial = serial();
    let server = Server::start("fanout-count");
    let opts = FanoutOpts {
        publishers: 2,
        payload_bytes: 200,
        ..FanoutOpts::new(server.common(), 4, 10, count(200))
    };
    let r = fanout::run(&opts).expect("fanout run");
    server.check(&r);
    assert_eq!(r.published, 200);
    assert_eq!(r.deliveries, 200 * 10);
    assert!(r.duration_s < 3.0, "{r:#?}");
}

/// More publishers than channels: each publisher is a stream of its own on its channel, and
/// every stream is checked for loss and order.
#[test]
fn fanout_with_publishers_sharing_a_channel() {
    let _serial = serial();
    let server = Server::start("fanout-shared");
    let opts = FanoutOpts {
        publishers: 5,
        ..FanoutOpts::new(server.common(), 1, 10, count(100))
    };
    let r = fanout::run(&opts).expect("fanout run");
    server.check(&r);
    assert_eq!(r.published, 100);
    assert_eq!(r.deliveries, 100 * 10);
    assert_eq!((r.lost, r.out_of_order), (0, 0), "{r:#?}");
}

#[test]
fn presence_churn_delivers_member_added() {
    let _serial = serial();
    let server = Server::start("presence");
    let opts = PresenceOpts {
        rate: Some(300.0),
        ..PresenceOpts::new(server.common(), 3, 5, secs(1.0))
    };
    let r = presence::run(&opts).expect("presence run");
    server.check(&r);
    assert_eq!((r.connections, r.channels), (3 * (5 + 1), 3));
    assert!(r.published > 0, "{r:#?}");
    assert_eq!(
        r.deliveries,
        r.published * 5,
        "every watcher sees every join"
    );
    assert!(r.latency_us.p50 > 0.0 && r.latency_us.max < 2e6, "{r:#?}");
}

#[test]
fn connect_storm_by_count() {
    let _serial = serial();
    let server = Server::start("storm-count");
    let opts = ConnectStormOpts {
        common: server.common(),
        channels: 10,
        bound: count(300),
        until_upgrade: false,
    };
    let r = connect_storm::run(&opts).expect("connect-storm run");
    server.check(&r);
    assert_eq!(r.connections, 300);
    assert_eq!(r.latency_us.samples, 300);
    assert!(r.connects_per_sec.is_some_and(|c| c > 0.0), "{r:#?}");
}

#[test]
fn connect_storm_by_duration() {
    let _serial = serial();
    let server = Server::start("storm-duration");
    let opts = ConnectStormOpts {
        common: Common {
            connect_concurrency: 32,
            ..server.common()
        },
        channels: 10,
        bound: secs(1.0),
        until_upgrade: false,
    };
    let r = connect_storm::run(&opts).expect("connect-storm run");
    server.check(&r);
    assert!(r.connections > 0, "{r:#?}");
    assert!((0.9..3.0).contains(&r.duration_s), "{r:#?}");
}

/// The binary end to end: `--json` prints one object with the stable field names.
#[test]
fn binary_prints_json() {
    let _serial = serial();
    let server = Server::start("binary");
    let out = Command::new(env!("CARGO_BIN_EXE_raptor-loadtest"))
        .args(["--port", &server.addr.port().to_string()])
        .args(["--server-pid", &server.child.id().to_string(), "--json"])
        .args(["connect-storm", "--count", "50"])
        .output()
        .expect("running raptor-loadtest");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one json object");
    assert_eq!(v["scenario"], "connect-storm");
    assert_eq!(v["connections"], 50);
    for k in [
        "deliveries_per_sec",
        "lost",
        "out_of_order",
        "latency_us",
        "server_cpu_s",
        "duration_s",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert!(v["latency_us"]["p999"].is_number());
}

/// An unbounded run is refused before any connection is made.
#[test]
fn binary_refuses_unbounded_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_raptor-loadtest"))
        .args(["--port", "1", "fanout"])
        .output()
        .expect("running raptor-loadtest");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unbounded"));
}
