//! `raptor history CHANNEL`: a channel's position and stored events
//! (`GET /apps/{id}/channels/{name}/history`, docs/history.md).

use super::client::ApiClient;
use super::output::{print, utc, Table};
use super::CliError;
use serde::Deserialize;

api_command! {
    /// Show a channel's history position, and with --limit its stored events
    /// (GET /apps/ID/channels/NAME/history).
    #[argh(subcommand, name = "history")]
    pub struct History {
        /// the channel
        #[argh(positional)]
        pub channel: String,
        /// read up to this many stored events (the server caps it at history.max_read);
        /// without it, the position only
        #[argh(option)]
        pub limit: Option<u64>,
        /// only the events after this offset
        #[argh(option)]
        pub since: Option<u64>,
        /// newest event first
        #[argh(switch)]
        pub newest_first: bool,
    }
}

/// The answer: the channel's position, and the events when a limit was given.
#[derive(Deserialize)]
struct Read {
    epoch: String,
    offset: u64,
    events: Option<Vec<Stored>>,
}

#[derive(Deserialize)]
struct Stored {
    offset: u64,
    event: String,
    data: String,
    user_id: Option<String>,
    time_ms: u64,
    #[serde(default)]
    edited: bool,
}

impl History {
    pub fn run(&self) -> Result<(), CliError> {
        if self.limit.is_none() && (self.since.is_some() || self.newest_first) {
            // The server reads events only with a limit; it would ignore these.
            return Err(CliError::Usage(
                "--since and --newest-first read events: give --limit too".into(),
            ));
        }
        let api = ApiClient::new(self.target()?)?;
        let mut params = Vec::new();
        if let Some(l) = self.limit {
            params.push(("limit", l.to_string()));
        }
        if let Some(s) = self.since {
            params.push(("since", s.to_string()));
        }
        if self.newest_first {
            params.push(("direction", "newest_first".to_string()));
        }
        let answer = api.get(
            &api.app_path(&["channels", &self.channel, "history"]),
            &params,
        )?;
        let read: Read = answer.parse()?;
        if self.json {
            print(&answer.json_text()?);
            return Ok(());
        }
        let mut position = Table::fields();
        position.row(["epoch", &read.epoch]);
        position.row(["offset", &read.offset.to_string()]);
        let mut text = position.render();
        if let Some(events) = &read.events {
            let mut t = Table::new(&["OFFSET", "TIME", "EVENT", "USER", "DATA"]);
            for e in events {
                let event = if e.edited {
                    format!("{} (edited)", e.event)
                } else {
                    e.event.clone()
                };
                t.row([
                    e.offset.to_string(),
                    utc(e.time_ms),
                    event,
                    e.user_id.clone().unwrap_or_else(|| "-".into()),
                    e.data.clone(),
                ]);
            }
            text.push('\n');
            text.push_str(&t.render());
        }
        print(&text);
        Ok(())
    }
}
