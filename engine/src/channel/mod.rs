//! Channel names and the two channel tables every shard keeps: [`local::LocalChannels`] (who
//! on this shard is subscribed) and [`owned::OwnedChannels`] (for the channels this shard owns,
//! which shards have subscribers).

pub mod cache;
pub mod local;
pub mod name;
pub mod owned;
