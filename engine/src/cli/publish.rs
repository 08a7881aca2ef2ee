//! `raptor publish CHANNEL EVENT DATA`: `POST /apps/{id}/events`, as an app's backend
//! publishes.

use super::client::ApiClient;
use super::output::print;
use super::CliError;
use serde::Serialize;

api_command! {
    /// Publish an event to a channel (POST /apps/ID/events).
    #[argh(subcommand, name = "publish")]
    pub struct Publish {
        /// the channel
        #[argh(positional)]
        pub channel: String,
        /// the event's name
        #[argh(positional)]
        pub event: String,
        /// the event's data, sent as a string as the SDKs send it (JSON text stays text)
        #[argh(positional)]
        pub data: String,
        /// the socket id of a connection not to send the event to (the publisher's own)
        #[argh(option)]
        pub socket_id: Option<String>,
    }
}

/// The body, as the SDKs send one event to one channel.
#[derive(Serialize)]
struct Body<'a> {
    name: &'a str,
    channel: &'a str,
    data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
}

impl Publish {
    pub fn run(&self) -> Result<(), CliError> {
        let api = ApiClient::new(self.target()?)?;
        let body = simd_json::to_vec(&Body {
            name: &self.event,
            channel: &self.channel,
            data: &self.data,
            socket_id: self.socket_id.as_deref(),
        })
        .expect("in-memory serialization");
        let answer = api.post(&api.app_path(&["events"]), &body)?;
        let text = answer.json_text()?;
        if self.json {
            print(&text);
        } else {
            print(&format!("published {} on {}\n", self.event, self.channel));
        }
        Ok(())
    }
}
