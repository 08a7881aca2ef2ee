//! Command-line interface: argh definitions and their translation into scenario options.
//!
//! Options shared by all scenarios come before the subcommand
//! (`raptor-loadtest --port 6001 fanout --duration 10`), because argh does not flatten.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use argh::{FromArgs, TopLevelCommand};

use crate::fallback::{Transport, DEFAULT_HTTP_PATH};
use crate::options::{Bound, Common};
use crate::report::Report;
use crate::target::Target;
use crate::{connect_storm, fanout, idle, presence};

/// Load generator for Pusher protocol v7 servers (Raptor, sockudo, soketi): latency,
/// loss and CPU cost per delivery. Only loopback targets unless --allow-remote.
#[derive(FromArgs, Debug)]
pub struct Cli {
    /// server ip address or localhost (default 127.0.0.1)
    #[argh(option, default = "String::from(\"127.0.0.1\")")]
    pub host: String,
    /// server port, for both websocket and http api
    #[argh(option)]
    pub port: u16,
    /// app id (default 1)
    #[argh(option, default = "String::from(\"1\")")]
    pub app_id: String,
    /// app key (default app-key)
    #[argh(option, default = "String::from(\"app-key\")")]
    pub key: String,
    /// app secret (default app-secret)
    #[argh(option, default = "String::from(\"app-secret\")")]
    pub secret: String,
    /// allow a host outside 127.0.0.0/8 and ::1; only for machines you own
    #[argh(switch)]
    pub allow_remote: bool,
    /// pid of a local server, to report its cpu time and rss from /proc
    #[argh(option)]
    pub server_pid: Option<u32>,
    /// client event-loop threads (default 1; the server needs the other core)
    #[argh(option, default = "1")]
    pub threads: usize,
    /// bind connections to 127.0.0.1..=N round-robin (default: as many as ports need)
    #[argh(option)]
    pub source_addrs: Option<u64>,
    /// seconds that connecting and subscribing may take (default 60)
    #[argh(option, default = "60.0")]
    pub setup_timeout: f64,
    /// websocket handshakes in flight at once (default 256)
    #[argh(option, default = "256")]
    pub connect_concurrency: usize,
    /// fanout only: further ports on the same host, comma-separated (e.g. 6002,6003);
    /// subscribers are spread round-robin over --port and these (each channel's over
    /// all of them), publishing still goes to --port (e.g. the nodes of a cluster)
    #[argh(option)]
    pub extra_ports: Option<String>,
    /// fanout and idle: how subscribers connect: ws (default), xhr_streaming, xhr_polling
    /// (pusher-js's http fallback) or sse; publishing is the http api either way
    #[argh(option, default = "Transport::Ws")]
    pub transport: Transport,
    /// path prefix of the http transports (pusher-js's httpPath, default /pusher)
    #[argh(option, default = "String::from(DEFAULT_HTTP_PATH)")]
    pub http_path: String,
    /// print one json object with every figure instead of the table
    #[argh(switch)]
    pub json: bool,
    /// no progress bars
    #[argh(switch)]
    pub quiet: bool,
    #[argh(subcommand)]
    pub command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Idle(IdleArgs),
    Fanout(FanoutArgs),
    Presence(PresenceArgs),
    ConnectStorm(ConnectStormArgs),
}

/// hold N subscribed connections; report connect rate and server rss per connection
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "idle")]
pub struct IdleArgs {
    /// connections to open
    #[argh(option)]
    pub connections: u64,
    /// public channels to spread them over (default 100)
    #[argh(option, default = "100")]
    pub channels: u64,
    /// seconds to hold them once all are subscribed
    #[argh(option)]
    pub duration: f64,
}

/// publish to C channels x S subscribers through the http api; time every delivery
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "fanout")]
pub struct FanoutArgs {
    /// channels (default 10)
    #[argh(option, default = "10")]
    pub channels: u64,
    /// subscribers per channel (default 100)
    #[argh(option, default = "100")]
    pub subscribers: u64,
    /// publishes per second over all channels (default: flat out)
    #[argh(option)]
    pub rate: Option<f64>,
    /// seconds to publish for
    #[argh(option)]
    pub duration: Option<f64>,
    /// publishes to send
    #[argh(option)]
    pub count: Option<u64>,
    /// bytes of event data (default 64)
    #[argh(option, default = "64")]
    pub payload_bytes: usize,
    /// parallel keep-alive publisher connections (default 1, at most 256); more than
    /// --channels share channels, each publisher a sequence stream of its own there
    #[argh(option, default = "1")]
    pub publishers: usize,
    /// seconds to wait for outstanding deliveries after the last publish (default 5)
    #[argh(option, default = "5.0")]
    pub drain_timeout: f64,
    /// channel names are PREFIX<random tag>-<i> (default lt-fanout-; e.g. bench/ for
    /// URL-shaped names)
    #[argh(option, default = "String::from(\"lt-fanout-\")")]
    pub channel_prefix: String,
}

/// join/leave churn on presence channels; time member_added delivery
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "presence")]
pub struct PresenceArgs {
    /// presence channels (default 10)
    #[argh(option, default = "10")]
    pub channels: u64,
    /// members per channel that stay and watch (default 10)
    #[argh(option, default = "10")]
    pub watchers: u64,
    /// connections per channel that join and leave (default 1)
    #[argh(option, default = "1")]
    pub churners: u64,
    /// joins per second over all channels (default: flat out)
    #[argh(option)]
    pub rate: Option<f64>,
    /// seconds to churn for
    #[argh(option)]
    pub duration: Option<f64>,
    /// joins to send
    #[argh(option)]
    pub count: Option<u64>,
    /// seconds to wait for outstanding member_added after the last join (default 5)
    #[argh(option, default = "5.0")]
    pub drain_timeout: f64,
    /// the server's member limit per presence channel (default 100, pusher's)
    #[argh(option, default = "presence::MAX_MEMBERS")]
    pub max_members: u64,
}

/// open, handshake, subscribe and close connections as fast as the server allows
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "connect-storm")]
pub struct ConnectStormArgs {
    /// connections to complete
    #[argh(option)]
    pub count: Option<u64>,
    /// seconds to storm for
    #[argh(option)]
    pub duration: Option<f64>,
    /// public channels to subscribe to, round-robin (default 100)
    #[argh(option, default = "100")]
    pub channels: u64,
    /// end each cycle at the server's 101 answer: connect, upgrade, close (no pusher frames)
    #[argh(switch)]
    pub until_upgrade: bool,
}

impl Cli {
    /// Options shared by every scenario; `progress` says whether bars may be drawn.
    pub fn common(&self, progress: bool) -> anyhow::Result<Common> {
        let target = Target::new(
            &self.host,
            self.port,
            &self.app_id,
            &self.key,
            &self.secret,
            self.allow_remote,
        )?;
        let setup_timeout = secs(self.setup_timeout).context("--setup-timeout")?;
        let extra_ports = match &self.extra_ports {
            Some(list) => parse_ports(list).context("--extra-ports")?,
            None => Vec::new(),
        };
        Ok(Common {
            target,
            server_pid: self.server_pid,
            threads: self.threads.max(1),
            source_addrs: self.source_addrs,
            setup_timeout,
            connect_concurrency: self.connect_concurrency.max(1),
            progress: progress && !self.json && !self.quiet,
            extra_ports,
            transport: self.transport,
            http_path: self.http_path.clone(),
        })
    }

    /// Runs the chosen scenario.
    pub fn run(&self, progress: bool) -> anyhow::Result<Report> {
        let common = self.common(progress)?;
        if !common.extra_ports.is_empty() && !matches!(self.command, Command::Fanout(_)) {
            bail!("--extra-ports is only used by fanout");
        }
        let subscribers_only = matches!(self.command, Command::Fanout(_) | Command::Idle(_));
        if common.transport != Transport::Ws && !subscribers_only {
            bail!("--transport is only used by fanout and idle");
        }
        match &self.command {
            Command::Idle(a) => idle::run(&idle::IdleOpts {
                common,
                connections: a.connections,
                channels: a.channels.min(a.connections).max(1),
                hold: secs(a.duration).context("--duration")?,
            }),
            Command::Fanout(a) => {
                let bound = Bound::new(Bound::secs(a.duration)?, a.count)?;
                fanout::run(&fanout::FanoutOpts {
                    rate: a.rate,
                    payload_bytes: a.payload_bytes,
                    publishers: a.publishers,
                    drain_timeout: secs(a.drain_timeout).context("--drain-timeout")?,
                    channel_prefix: a.channel_prefix.clone(),
                    ..fanout::FanoutOpts::new(common, a.channels, a.subscribers, bound)
                })
            }
            Command::Presence(a) => {
                let bound = Bound::new(Bound::secs(a.duration)?, a.count)?;
                presence::run(&presence::PresenceOpts {
                    churners: a.churners,
                    rate: a.rate,
                    drain_timeout: secs(a.drain_timeout).context("--drain-timeout")?,
                    max_members: a.max_members,
                    ..presence::PresenceOpts::new(common, a.channels, a.watchers, bound)
                })
            }
            Command::ConnectStorm(a) => {
                let bound = Bound::new(Bound::secs(a.duration)?, a.count)?;
                connect_storm::run(&connect_storm::ConnectStormOpts {
                    common,
                    channels: a.channels,
                    bound,
                    until_upgrade: a.until_upgrade,
                })
            }
        }
    }
}

/// `P2,P3,…`: one or more ports, none zero.
fn parse_ports(list: &str) -> anyhow::Result<Vec<u16>> {
    list.split(',')
        .map(|p| {
            let p = p.trim();
            match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("{p:?} is not a port (give e.g. 6002,6003)"),
            }
        })
        .collect()
}

/// A required, positive, bounded number of seconds.
fn secs(s: f64) -> anyhow::Result<Duration> {
    Ok(Bound::secs(Some(s))?.expect("Some in, Some out"))
}

/// `argh::from_env`, except that help and usage errors are written without `println!`, which
/// panics when the reader has gone (`raptor-loadtest --help | head -1`): a command line tool
/// stops quietly on a closed pipe. (argh has no such entry point of its own.)
pub fn args_from_env<T: TopLevelCommand>() -> T {
    let args: Vec<String> = std::env::args().collect();
    let cmd = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("raptor");
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    T::from_args(&[cmd], &rest).unwrap_or_else(|exit| {
        let code = match exit.status {
            Ok(()) => write_quietly(&mut std::io::stdout(), &exit.output),
            Err(()) => {
                let msg = format!("{}\nRun {cmd} --help for more information.", exit.output);
                write_quietly(&mut std::io::stderr(), &msg);
                1
            }
        };
        std::process::exit(code)
    })
}

/// Writes `text` and a newline, ignoring a reader that has gone (EPIPE). Returns 0.
pub fn write_quietly(out: &mut impl Write, text: &str) -> i32 {
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, argh::EarlyExit> {
        Cli::from_args(&["raptor-loadtest"], args)
    }

    #[test]
    fn globals_then_subcommand() {
        let cli = parse(&[
            "--port",
            "6001",
            "--json",
            "fanout",
            "--duration",
            "2",
            "--rate",
            "100",
        ])
        .unwrap();
        assert!(cli.json);
        let Command::Fanout(f) = &cli.command else {
            panic!("not fanout")
        };
        assert_eq!(
            (f.duration, f.rate, f.channels),
            (Some(2.0), Some(100.0), 10)
        );
        let common = cli.common(true).unwrap();
        assert!(!common.progress, "json output draws no bars");
        assert_eq!(common.target.key, "app-key");
    }

    #[test]
    fn extra_ports_are_parsed_and_fanout_only() {
        let cli = parse(&["--port", "6001", "fanout", "--count", "1"]).unwrap();
        assert!(cli.common(false).unwrap().extra_ports.is_empty());
        let cli = parse(&[
            "--port",
            "6001",
            "--extra-ports",
            "6002, 6003",
            "fanout",
            "--count",
            "1",
        ])
        .unwrap();
        let common = cli.common(false).unwrap();
        assert_eq!(common.extra_ports, vec![6002, 6003]);
        assert_eq!(common.servers(), 3);
        for bad in ["", "6002,", "x", "0", "70000"] {
            let cli = parse(&[
                "--port",
                "1",
                "--extra-ports",
                bad,
                "fanout",
                "--count",
                "1",
            ])
            .unwrap();
            assert!(cli.common(false).is_err(), "{bad:?} accepted");
        }
        let cli = parse(&[
            "--port",
            "1",
            "--extra-ports",
            "2",
            "connect-storm",
            "--count",
            "1",
        ])
        .unwrap();
        let err = cli.run(false).unwrap_err().to_string();
        assert!(err.contains("only used by fanout"), "{err}");
    }

    #[test]
    fn transport_option() {
        let cli = parse(&["--port", "1", "fanout", "--count", "1"]).unwrap();
        assert_eq!(cli.common(false).unwrap().transport, Transport::Ws);
        let cli = parse(&[
            "--port",
            "1",
            "--transport",
            "xhr_polling",
            "fanout",
            "--count",
            "1",
        ])
        .unwrap();
        let common = cli.common(false).unwrap();
        assert_eq!(common.transport, Transport::XhrPolling);
        assert_eq!(common.http_path, "/pusher");
        assert!(parse(&["--port", "1", "--transport", "wss", "idle"]).is_err());
        let cli = parse(&[
            "--port",
            "1",
            "--transport",
            "sse",
            "connect-storm",
            "--count",
            "1",
        ])
        .unwrap();
        let err = cli.run(false).unwrap_err().to_string();
        assert!(err.contains("only used by fanout and idle"), "{err}");
    }

    #[test]
    fn unbounded_runs_are_refused() {
        let cli = parse(&["--port", "6001", "fanout"]).unwrap();
        let err = cli.run(false).unwrap_err().to_string();
        assert!(err.contains("unbounded"), "{err}");
        let cli = parse(&["--port", "6001", "connect-storm"]).unwrap();
        assert!(cli
            .run(false)
            .unwrap_err()
            .to_string()
            .contains("unbounded"));
    }

    #[test]
    fn idle_needs_a_duration() {
        assert!(parse(&["--port", "1", "idle", "--connections", "5"]).is_err());
    }

    #[test]
    fn remote_host_needs_permission() {
        let cli = parse(&[
            "--port",
            "1",
            "--host",
            "192.0.2.7",
            "connect-storm",
            "--count",
            "1",
        ])
        .unwrap();
        assert!(cli
            .run(false)
            .unwrap_err()
            .to_string()
            .contains("allow-remote"));
    }
}
