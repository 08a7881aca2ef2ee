//! Channel names and the channel tables every shard keeps: [`local::LocalChannels`] (who on
//! this shard is subscribed), [`owned::OwnedChannels`] (for the channels this shard owns,
//! which shards have subscribers) and [`stream::ChannelStreams`] (what those channels
//! remember of their events), and the [`event::Event`] they order.

pub mod event;
pub mod history;
pub mod journal;
pub mod local;
pub mod name;
pub mod owned;
pub mod pattern;
pub mod stream;
