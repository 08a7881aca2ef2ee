//! History configuration: which channels of an app keep history (`[[apps.history]]` rules)
//! and the node-wide bounds of what history may hold (`[history]`). docs/history.md says
//! what each does; docs/limits.md what happens at each bound.

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One `[[apps.history]]` rule: the channels it matches keep their last `size` events for
/// `ttl_secs`. The first rule that matches a channel applies; no rule, no history.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRule {
    /// A glob over channel names: `*` is any run of characters (including none), `?` one
    /// character, `[abc]` one of a set. `"chat-*"`, `"private-orders-*"`, `"*"`.
    pub channels: String,
    /// Events kept per channel (1..=10,000). Default 100.
    #[serde(default = "default_size")]
    pub size: usize,
    /// Seconds an event is kept (1..=604,800). Default 300 (as Centrifugo's examples).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    /// Most events one recovery replays (1..=10,000); a larger gap is "not recovered" with
    /// nothing replayed. Default 300 (Centrifugo's `recovery_max_publication_limit`).
    #[serde(default = "default_recover_max")]
    pub recover_max: usize,
}

fn default_size() -> usize {
    100
}
fn default_ttl() -> u64 {
    300
}
fn default_recover_max() -> usize {
    300
}

impl HistoryRule {
    /// A rule with the defaults, for `channels`.
    pub fn new(channels: &str) -> HistoryRule {
        HistoryRule {
            channels: channels.into(),
            size: default_size(),
            ttl_secs: default_ttl(),
            recover_max: default_recover_max(),
        }
    }

    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        globset::Glob::new(&self.channels)
            .map_err(|e| invalid(format!("{at}.channels"), format!("not a glob: {e}")))?;
        if !(1..=10_000).contains(&self.size) {
            return Err(invalid(format!("{at}.size"), "must be 1..=10000"));
        }
        if !(1..=604_800).contains(&self.ttl_secs) {
            return Err(invalid(format!("{at}.ttl_secs"), "must be 1..=604800"));
        }
        if !(1..=10_000).contains(&self.recover_max) {
            return Err(invalid(format!("{at}.recover_max"), "must be 1..=10000"));
        }
        Ok(())
    }
}

/// `[history]`: node-wide bounds and the data directory.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySettings {
    /// Bytes of stored events one shard may hold (all apps). At the bound the events of the
    /// channel appended to least recently are dropped (its position is kept). Default 64 MiB.
    pub max_bytes_per_shard: usize,
    /// Channel positions (epoch + offset) one shard keeps. At the bound the position of the
    /// channel appended to least recently is forgotten (its next stream has a new epoch).
    /// Default 100,000.
    pub max_channels_per_shard: usize,
    /// Seconds a channel's position outlives its last event (Centrifugo's
    /// `history_meta_ttl`). Default 86,400 (a day).
    pub position_ttl_secs: u64,
    /// Events one `GET .../history` returns at most. Default 1,000.
    pub max_read: usize,
    /// Where history survives a restart (one log file per shard). Absent: memory only, and
    /// a restart starts new epochs.
    pub data_dir: Option<PathBuf>,
    /// How often each shard writes its new events to the data directory, in ms: what a
    /// `kill -9` may lose. Default 100.
    pub flush_ms: u64,
    /// Bytes one shard's log may take on disk before it is rewritten from memory. Default
    /// 256 MiB.
    pub max_disk_bytes_per_shard: u64,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            max_bytes_per_shard: 64 << 20,
            max_channels_per_shard: 100_000,
            position_ttl_secs: 86_400,
            max_read: 1_000,
            data_dir: None,
            flush_ms: 100,
            max_disk_bytes_per_shard: 256 << 20,
        }
    }
}

impl HistorySettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_bytes_per_shard < 1 << 16 {
            return Err(invalid("history.max_bytes_per_shard", "at least 65536"));
        }
        if self.max_channels_per_shard == 0 {
            return Err(invalid("history.max_channels_per_shard", "at least 1"));
        }
        if !(1..=10_000).contains(&self.max_read) {
            return Err(invalid("history.max_read", "must be 1..=10000"));
        }
        if !(1..=60_000).contains(&self.flush_ms) {
            return Err(invalid("history.flush_ms", "must be 1..=60000"));
        }
        if self.max_disk_bytes_per_shard < 2 * self.max_bytes_per_shard as u64 {
            return Err(invalid(
                "history.max_disk_bytes_per_shard",
                "at least twice history.max_bytes_per_shard",
            ));
        }
        Ok(())
    }
}
