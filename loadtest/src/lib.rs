//! # raptor-loadtest
//!
//! A load generator for any Pusher Channels protocol v7 server (Raptor, sockudo, soketi).
//! It opens thousands of WebSocket subscribers, publishes through the signed HTTP API or
//! churns presence members, and reports what a server operator needs to compare servers:
//! deliveries per second, end-to-end latency percentiles, loss and reordering (which
//! must be zero), and CPU microseconds per delivery for client and server.
//!
//! ## Design
//!
//! *Cheap connections.* A subscriber costs its kernel socket and a few dozen bytes of
//! state here: a hand-rolled client-side WebSocket ([`ws`]) reads every socket through
//! one scratch buffer per thread ([`net`]) and keeps bytes only for frames split across
//! reads. That is what lets one process hold 10–20k connections on a small machine.
//!
//! *Few threads.* Each worker thread runs one mio event loop over its share of the
//! connections; publishers are plain blocking threads with one keep-alive HTTP
//! connection each ([`http_publisher`]). On the 2-core reference machine one receiver
//! thread leaves the other core to the server.
//!
//! *One clock.* Publisher and receivers are in the same process, so payloads carry a
//! send time on the machine's monotonic clock ([`clock`]) and a per-channel sequence
//! number ([`payload`]); receivers time and check every delivery ([`seq_check`]) into
//! per-thread HDR histograms merged at the end.
//!
//! *Any transport.* Subscribers of `fanout` and `idle` may use pusher-js's HTTP fallback
//! transports or Server-Sent Events instead of a WebSocket (`--transport`, [`fallback`]),
//! measured exactly as WebSocket subscribers are.
//!
//! *Bounded and local.* Every run has a duration or a count ([`options::Bound`]); targets
//! are loopback unless explicitly allowed ([`target`]); descriptor and port needs are
//! checked before the first connect ([`limits`]).
//!
//! ## Calling scenarios from code
//!
//! Each scenario is a module with an options struct and
//! `run(&Opts) -> anyhow::Result<Report>`: [`idle::run`], [`fanout::run`],
//! [`presence::run`], [`connect_storm::run`]. [`hold::hold`] keeps subscriptions open (one
//! name each: a channel or a Raptor wildcard pattern) while another scenario runs. A [`Report`] serialises to the JSON the
//! binary prints with `--json`; [`Report::is_clean`] says whether it may be trusted.

pub mod cli;
pub mod clock;
pub mod connect_storm;
pub mod fallback;
pub mod fanout;
pub mod hold;
pub mod http_publisher;
pub mod idle;
pub mod limits;
pub mod net;
pub mod options;
pub mod payload;
pub mod presence;
pub mod progress;
pub mod pusher;
pub mod report;
pub mod run;
pub mod seq_check;
pub mod signing;
pub mod subscribers;
pub mod target;
pub mod usage;
pub mod ws;

pub use options::{Bound, Common};
pub use report::{LatencyUs, Report};
pub use target::Target;
