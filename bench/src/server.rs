//! Servers under test as child processes: Raptor itself, a peer server given as a command
//! line, and the raw loopback ceiling (`raptor-bench raw-server`). Each is started fresh for
//! one scenario and stopped by its pid afterwards, so no run inherits another's state.

use anyhow::{anyhow, bail, Context};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to print its address or open its port.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A running server process; stopped (TERM, then KILL) on drop.
pub struct ServerProc {
    child: Child,
    pub port: u16,
    /// the metrics listener's port (`/stats`), when it was started with one
    pub metrics_port: Option<u16>,
}

impl ServerProc {
    /// `raptor serve --bind 127.0.0.1:0 --shards N --metrics-bind off`; the port comes from
    /// its `listening on 127.0.0.1:PORT` line. Logs (warn and up) go to `log`. No metrics
    /// listener: its default port (9601) would collide between the nodes a cluster
    /// scenario starts, and with a peer server that uses it (sockudo does).
    pub fn raptor(bin: &Path, shards: usize, log: &Path) -> anyhow::Result<Self> {
        Self::raptor_with(bin, shards, &[], log)
    }

    /// [`ServerProc::raptor`] with further arguments after `serve` (cluster options).
    pub fn raptor_with(
        bin: &Path,
        shards: usize,
        extra: &[String],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let mut cmd = serve_cmd(bin, shards, "off");
        cmd.args(extra);
        Self::spawn_and_read_port(cmd, log, false)
    }

    /// `raptor serve --config FILE` with the metrics listener on an ephemeral loopback port
    /// (read from its `raptor metrics on ADDR` line), for scenarios that read `/stats`.
    pub fn raptor_config(
        bin: &Path,
        shards: usize,
        config: &Path,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let mut cmd = serve_cmd(bin, shards, "127.0.0.1:0");
        cmd.arg("--config").arg(config);
        Self::spawn_and_read_port(cmd, log, true)
    }

    /// `raptor-bench raw-server …` (this very executable).
    pub fn raw(
        expect: usize,
        threads: usize,
        batch: usize,
        secs: f64,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating raptor-bench itself")?;
        let mut cmd = Command::new(exe);
        cmd.args([
            "raw-server",
            "--expect",
            &expect.to_string(),
            "--threads",
            &threads.to_string(),
            "--batch",
            &batch.to_string(),
            "--secs",
            &secs.to_string(),
        ]);
        Self::spawn_and_read_port(cmd, log, false)
    }

    /// `raptor-bench ARGS…` (this very executable), ready at its `listening on` line: the
    /// raw floors (`raw-floor`).
    pub fn bench(args: &[String], log: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating raptor-bench itself")?;
        let mut cmd = Command::new(exe);
        cmd.args(args);
        Self::spawn_and_read_port(cmd, log, false)
    }

    /// A peer server: `sh -c "exec CMD"` (so the pid is the server's own, for CPU and RSS),
    /// ready once 127.0.0.1:`port` accepts a connection.
    pub fn peer(cmd_line: &str, port: u16, log: &Path) -> anyhow::Result<Self> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("exec {cmd_line}")])
            .stdout(Stdio::from(open_log(log)?))
            .stderr(Stdio::from(open_log(log)?));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting peer: {cmd_line}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "peer exited with {status} before opening port {port}; see {}",
                    log.display()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                // Listening is not always serving (workers may still be starting).
                thread::sleep(Duration::from_millis(500));
                return Ok(Self {
                    child,
                    port,
                    metrics_port: None,
                });
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!("peer did not open port {port} within {START_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `cmd` and waits for its `listening on 127.0.0.1:PORT` line (and, with
    /// `metrics`, the `raptor metrics on ADDR` line that follows it).
    fn spawn_and_read_port(mut cmd: Command, log: &Path, metrics: bool) -> anyhow::Result<Self> {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::from(open_log(log)?));
        let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Reads the ready lines, then keeps draining stdout so the server never blocks on it.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = parse_port(&line) {
                    let _ = tx.send((false, port));
                } else if let Some(port) = parse_metrics_port(&line) {
                    let _ = tx.send((true, port));
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut port, mut metrics_port) = (None, None);
        while port.is_none() || (metrics && metrics_port.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((false, p)) => port = port.or(Some(p)),
                Ok((true, p)) => metrics_port = metrics_port.or(Some(p)),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(anyhow!(
                        "{cmd:?} printed no `listening on 127.0.0.1:PORT` line{}; see {}",
                        if metrics {
                            " or no `raptor metrics on ADDR` line"
                        } else {
                            ""
                        },
                        log.display()
                    ));
                }
            }
        }
        Ok(Self {
            child,
            port: port.expect("loop ends with a port"),
            metrics_port,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after a grace period; always reaps the child.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill only sends a signal to our own child's pid, which we have not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < STOP_GRACE {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn open_log(path: &Path) -> anyhow::Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log {}", path.display()))
}

/// `raptor serve --bind 127.0.0.1:0 --shards N --metrics-bind METRICS`, logging warn and up.
fn serve_cmd(bin: &Path, shards: usize, metrics: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--shards",
        &shards.to_string(),
        "--metrics-bind",
        metrics,
    ])
    .env("RAPTOR_LOG", "warn");
    cmd
}

/// The port in a `raptor metrics on 127.0.0.1:PORT` line.
pub fn parse_metrics_port(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once("metrics on ")?;
    let addr: SocketAddr = rest.split_whitespace().next()?.parse().ok()?;
    Some(addr.port())
}

/// The port in a `… listening on 127.0.0.1:PORT …` line.
pub fn parse_port(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once("listening on ")?;
    let addr: SocketAddr = rest.split_whitespace().next()?.parse().ok()?;
    Some(addr.port())
}

/// `target/release/raptor` (under `$CARGO_TARGET_DIR` if set), always built first with
/// `cargo build --release -p raptor-engine --bin raptor` (a no-op when it is up to date), so
/// the figures belong to the sources the report names, never to a stale binary.
pub fn release_raptor() -> anyhow::Result<PathBuf> {
    let ws = crate::workspace();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| ws.join("target"), |d| ws.join(d));
    let bin = target.join("release").join("raptor");
    eprintln!("raptor-bench: cargo build --release -p raptor-engine --bin raptor");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "raptor-engine",
            "--bin",
            "raptor",
        ])
        .current_dir(&ws)
        .status()
        .context("running cargo build")?;
    if !status.success() || !bin.is_file() {
        bail!("cargo build --release -p raptor-engine --bin raptor failed");
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::{parse_metrics_port, parse_port};

    #[test]
    fn ready_lines() {
        assert_eq!(
            parse_port("raptor listening on 127.0.0.1:41234 with 2 shards"),
            Some(41234)
        );
        assert_eq!(parse_port("raw-server listening on 127.0.0.1:9"), Some(9));
        assert_eq!(parse_port("starting"), None);
        assert_eq!(
            parse_metrics_port("raptor metrics on 127.0.0.1:9601"),
            Some(9601)
        );
        assert_eq!(parse_port("raptor metrics on 127.0.0.1:9601"), None);
    }
}
