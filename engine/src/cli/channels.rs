//! `raptor channels`, `raptor channel NAME`, `raptor users CHANNEL`: who is subscribed
//! where, from the channel API (`GET /apps/{id}/channels[/{name}[/users]]`).

use super::client::ApiClient;
use super::output::{print, Table};
use super::CliError;
use crate::channel::name::ChannelKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

api_command! {
    /// List the occupied channels with their subscriptions (GET /apps/ID/channels, then
    /// each channel's subscription_count).
    #[argh(subcommand, name = "channels")]
    pub struct Channels {
        /// only the channels whose name starts with this (filter_by_prefix)
        #[argh(option)]
        pub prefix: Option<String>,
    }
}

api_command! {
    /// Show one channel: occupied, subscriptions, and members of a presence channel
    /// (GET /apps/ID/channels/NAME).
    #[argh(subcommand, name = "channel")]
    pub struct Channel {
        /// the channel
        #[argh(positional)]
        pub name: String,
    }
}

api_command! {
    /// List the members of a presence channel (GET /apps/ID/channels/NAME/users).
    #[argh(subcommand, name = "users")]
    pub struct Users {
        /// the presence channel
        #[argh(positional)]
        pub channel: String,
    }
}

/// `GET .../channels`: the names; the attributes are not read (the list has no counts).
#[derive(Deserialize)]
struct List {
    channels: BTreeMap<String, serde::de::IgnoredAny>,
}

/// `GET .../channels/{name}`, and one channel of `raptor channels --json`.
#[derive(Deserialize, Serialize)]
struct Info {
    #[serde(skip_serializing_if = "Option::is_none")]
    occupied: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_count: Option<u64>,
}

/// `GET .../channels/{name}/users`.
#[derive(Deserialize)]
struct UserList {
    users: Vec<User>,
}

#[derive(Deserialize)]
struct User {
    id: String,
}

/// What `raptor channels --json` prints: the list's shape, with each channel's count.
#[derive(Serialize)]
struct Counted {
    channels: BTreeMap<String, Info>,
}

impl Channels {
    /// The list carries no subscription counts (as Pusher's: only presence member
    /// counts), so each channel's is asked for in turn: one request per channel, bounded by
    /// the app's API rate like any client's. A channel vacated in between shows 0.
    pub fn run(&self) -> Result<(), CliError> {
        let api = ApiClient::new(self.target()?)?;
        let params: Vec<(&str, String)> = self
            .prefix
            .iter()
            .map(|p| ("filter_by_prefix", p.clone()))
            .collect();
        let list: List = api.get(&api.app_path(&["channels"]), &params)?.parse()?;
        let mut counted = Counted {
            channels: BTreeMap::new(),
        };
        for name in list.channels.into_keys() {
            let path = api.app_path(&["channels", &name]);
            let info: Info = api
                .get(&path, &[("info", "subscription_count".into())])?
                .parse()?;
            let count = Info {
                occupied: None,
                user_count: None,
                subscription_count: Some(info.subscription_count.unwrap_or(0)),
            };
            counted.channels.insert(name, count);
        }
        if self.json {
            let text = simd_json::to_string(&counted).expect("in-memory serialization");
            print(&format!("{text}\n"));
            return Ok(());
        }
        let mut t = Table::new(&["CHANNEL", "SUBSCRIPTIONS"]);
        for (name, info) in &counted.channels {
            t.row([
                name.clone(),
                info.subscription_count.unwrap_or(0).to_string(),
            ]);
        }
        print(&t.render());
        Ok(())
    }
}

impl Channel {
    pub fn run(&self) -> Result<(), CliError> {
        let api = ApiClient::new(self.target()?)?;
        // user_count only where there are members: the server refuses it elsewhere (400).
        let presence = ChannelKind::of(&self.name).is_presence();
        let info = if presence {
            "subscription_count,user_count"
        } else {
            "subscription_count"
        };
        let answer = api.get(
            &api.app_path(&["channels", &self.name]),
            &[("info", info.into())],
        )?;
        let parsed: Info = answer.parse()?;
        if self.json {
            print(&answer.json_text()?);
            return Ok(());
        }
        let mut t = Table::fields();
        t.row(["channel", &self.name]);
        t.row(["occupied", &parsed.occupied.unwrap_or(false).to_string()]);
        t.row([
            "subscriptions",
            &parsed.subscription_count.unwrap_or(0).to_string(),
        ]);
        if presence {
            t.row(["users", &parsed.user_count.unwrap_or(0).to_string()]);
        }
        print(&t.render());
        Ok(())
    }
}

impl Users {
    pub fn run(&self) -> Result<(), CliError> {
        let api = ApiClient::new(self.target()?)?;
        let answer = api.get(&api.app_path(&["channels", &self.channel, "users"]), &[])?;
        let list: UserList = answer.parse()?;
        if self.json {
            print(&answer.json_text()?);
            return Ok(());
        }
        // Sorted: the server's order is its table's, which means nothing to a reader.
        let mut ids: Vec<&str> = list.users.iter().map(|u| u.id.as_str()).collect();
        ids.sort_unstable();
        let mut t = Table::new(&["USER"]);
        for id in ids {
            t.row([id]);
        }
        print(&t.render());
        Ok(())
    }
}
