//! `raptor stats`: the node's figures, `GET /stats` on the metrics listener (or on the
//! public port with the bearer token; docs/security.md).

use super::client::Http;
use super::json::Tree;
use super::output::{print, Table};
use super::target::{process_env, MetricsTarget, SecretArg};
use super::CliError;
use argh::FromArgs;
use std::path::PathBuf;

/// Show the node's figures: connections, channels, messages, latencies (GET /stats on the
/// metrics listener).
#[derive(FromArgs)]
#[argh(subcommand, name = "stats")]
pub struct Stats {
    /// the metrics listener, e.g. http://127.0.0.1:9601 (env RAPTOR_METRICS_URL; default:
    /// metrics.bind of the config file, else http://127.0.0.1:9601)
    #[argh(option)]
    pub metrics_url: Option<String>,
    /// the bearer token (metrics.token), when the server has one; prefer the env
    /// RAPTOR_METRICS_TOKEN or RAPTOR_METRICS_TOKEN_FILE, as every local user can read a
    /// command line
    #[argh(option)]
    pub metrics_token: Option<SecretArg>,
    /// the server's TOML config file, to take the listener and token from (env
    /// RAPTOR_CONFIG)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// print the server's JSON instead of a table
    #[argh(switch)]
    pub json: bool,
}

impl Stats {
    /// Every figure the server sends, in its order, as `name  value` (nested ones as
    /// `webhooks.sent`): what a later version adds shows without a change here.
    pub fn run(&self) -> Result<(), CliError> {
        let target = MetricsTarget::resolve(
            self.metrics_url.clone(),
            self.metrics_token.as_ref().map(|t| t.0.clone()),
            self.config.as_deref(),
            &process_env,
        )?;
        let answer = Http::new(target.url)?.get_bearer("/stats", target.token.as_ref())?;
        let tree: Tree = answer.parse()?;
        if self.json {
            print(&answer.json_text()?);
            return Ok(());
        }
        let mut t = Table::fields();
        for (name, value) in tree.flatten() {
            t.row([name, value]);
        }
        print(&t.render());
        Ok(())
    }
}
