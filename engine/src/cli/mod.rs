//! The `raptor` command line: the command tree (argh), and what each command does.
//!
//! `raptor` alone (or `raptor serve`) runs the server. The other commands are the operator
//! CLI: `config check` and `config default` work on files; `publish`, `channels`,
//! `channel`, `users`, `history`, `terminate` reach a running server through its signed
//! HTTP API, as an app's backend would, and `stats` reads the metrics listener.
//!
//! - [`Command`] is the whole tree: one variant per command or command group, each defined
//!   in its own file next to the code that runs it. A new group (`raptor token ...`) is one
//!   more variant and one more file.
//! - [`target`] decides where a request goes and as which app (flags, environment, the
//!   configuration file, the embedded defaults); [`client`] signs and sends it; [`output`]
//!   prints tables or the server's JSON.
//! - Every failure is one line on stderr, `raptor: <reason>`, and an exit code that says
//!   whose it is ([`CliError::exit_code`]): 2 for the operator's (a flag, a setting, a file),
//!   1 for the request's (unreachable, refused, an answer that is not the JSON expected).
//!
//! **Boundary:** this module talks to a server only over HTTP, like any client; it never
//! reaches into a running server's state. It must not print an app secret or a metrics
//! token: they are [`crate::config::Secret`]s here, and errors name paths, never queries.

#[macro_use]
mod flags;
pub mod channels;
pub mod client;
pub mod config_cmd;
pub mod config_default;
mod error;
pub mod history;
pub mod json;
pub mod output;
pub mod publish;
pub mod serve;
pub mod stats;
pub mod target;
pub mod terminate;
pub mod token;

pub use error::CliError;

use argh::FromArgs;
use std::io::Write;

/// Raptor: a realtime messaging and presence server speaking the Pusher Channels protocol.
/// Without a command it runs the server (raptor serve).
#[derive(FromArgs)]
pub struct Cli {
    /// print the version and the git revision, then exit
    #[argh(switch, short = 'V')]
    version: bool,
    #[argh(subcommand)]
    cmd: Option<Command>,
}

/// Every command. Made once per process, from the command line: the size of `Serve` (every
/// serve option) costs nothing, and argh cannot parse a boxed variant.
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs)]
#[argh(subcommand)]
pub enum Command {
    Serve(serve::Serve),
    Config(config_cmd::ConfigCmd),
    Publish(publish::Publish),
    Channels(channels::Channels),
    Channel(channels::Channel),
    Users(channels::Users),
    History(history::History),
    Terminate(terminate::Terminate),
    Stats(stats::Stats),
    Token(token::TokenCmd),
}

/// Runs the command line of this process; returns the exit code (the server's own exit
/// paths do not return).
pub fn main() -> i32 {
    let cli: Cli = args_from_env();
    if cli.version {
        output::print(&format!("raptor {}\n", crate::VERSION));
        return 0;
    }
    let done = match cli.cmd {
        None => return serve::run(serve::Serve::default()),
        Some(Command::Serve(s)) => return serve::run(s),
        Some(Command::Config(c)) => return c.run(),
        Some(Command::Publish(c)) => c.run(),
        Some(Command::Channels(c)) => c.run(),
        Some(Command::Channel(c)) => c.run(),
        Some(Command::Users(c)) => c.run(),
        Some(Command::History(c)) => c.run(),
        Some(Command::Terminate(c)) => c.run(),
        Some(Command::Stats(c)) => c.run(),
        Some(Command::Token(c)) => c.run(),
    };
    match done {
        Ok(()) => 0,
        Err(e) => fail(&e.to_string(), e.exit_code()),
    }
}

/// `--secret=…` and `--metrics-token=…` (a form argh refuses, quoting it) with the value
/// masked.
fn redact(arg: &str) -> String {
    for flag in ["--secret=", "--metrics-token="] {
        if arg.starts_with(flag) {
            return format!("{flag}(hidden)");
        }
    }
    arg.to_string()
}

/// Prints `raptor: <reason>` as one line on stderr (a reason with line breaks, such as
/// toml's or argh's, is folded onto it) and returns `code`.
pub fn fail(reason: &str, code: i32) -> i32 {
    let _ = writeln!(std::io::stderr(), "raptor: {}", one_line(reason));
    code
}

/// `text` on one line: its lines trimmed and joined, control characters made visible.
fn one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(&output::visible(line));
    }
    out
}

/// `argh::from_env` without its `println!`, which panics on a closed pipe (`raptor --help |
/// head -1`), and with a parse error as one `raptor: ...` line and exit 2, like any other
/// usage error. raptor-loadtest has the same function
/// (`raptor_loadtest::cli::args_from_env`); the server does not depend on the load tester.
fn args_from_env<T: argh::TopLevelCommand>() -> T {
    // argh has no `--opt=value`: such an argument comes back in its error as given, so a
    // secret passed that way is masked before argh sees it.
    let args: Vec<String> = std::env::args().map(|a| redact(&a)).collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    T::from_args(&["raptor"], &rest).unwrap_or_else(|exit| match exit.status {
        Ok(()) => {
            output::print(&exit.output);
            std::process::exit(0)
        }
        Err(()) => {
            let reason = lowercase_first(exit.output.trim());
            std::process::exit(fail(&format!("{reason} (see --help)"), 2))
        }
    })
}

/// argh's messages start with a capital; ours, like the server's logs, do not.
fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_folded_onto_one_line() {
        assert_eq!(
            one_line("Required positional arguments not provided:\n    channel\n    event\n"),
            "Required positional arguments not provided: channel; event"
        );
        assert_eq!(one_line("a\r\nb\tc"), "a; b\\tc");
        assert_eq!(
            lowercase_first("Unrecognized argument: --x"),
            "unrecognized argument: --x"
        );
    }

    #[test]
    fn bad_flags_are_refused_by_argh() {
        let parse = |args: &[&str]| Cli::from_args(&["raptor"], args).map(|_| ());
        assert!(parse(&["channels", "--nope"]).is_err());
        assert!(parse(&["history", "c", "--limit", "x"]).is_err());
        assert!(parse(&["publish", "c", "e"]).is_err());
        assert!(parse(&["publish", "c", "e", "d", "--json"]).is_ok());
        assert!(parse(&["config", "default"]).is_ok());
    }
}
