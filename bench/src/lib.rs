//! # raptor-bench
//!
//! Benchmarks for Raptor, one tool per question (see `shared/STYLE.md` §14):
//!
//! * **How many ns does a pure function cost?** criterion, in `benches/`: frame encoding,
//!   client frame decoding (simd-json against serde_json), placement, signatures.
//! * **What does the in-process fanout path cost across cores?** `mesh_fanout`, a plain
//!   `main()` over glommio executors joined in a full mesh, no sockets.
//! * **How does the cluster behave past this machine?** `raptor-bench cluster-sim` runs the
//!   scale simulator (`raptor_cluster::sim`) at 3, 10, 25 and 50 nodes and writes the Scaling
//!   section of `docs/cluster.md`; `raptor-bench run` runs it too (`--no-cluster-sim` skips it).
//! * **What does the hop between real nodes cost?** `raptor-bench cluster-fanout` runs 3 real
//!   nodes against one plain node and writes the Cluster section of `docs/benchmarks.md`;
//!   `raptor-bench run` runs it too (`--no-cluster-fanout` skips it).
//! * **What does a real server do end to end?** `raptor-bench run` starts Raptor (and
//!   optionally a peer server and the raw loopback ceiling) as processes, drives them with the
//!   `raptor-loadtest` library in alternating rounds, and writes `docs/benchmarks.md` with the
//!   machine, the commands, medians and spreads, ratios within the run, and the targets.
//!
//! The harness owns nothing in the engine: servers are separate processes, stopped by pid.
//!
//! Modules: [`machine`] (what the run ran on, and who else used the CPU), [`server`] (starting
//! and stopping servers under test), [`raw`] (the raw loopback ceiling: server and reader),
//! [`harness`] (scenarios and rounds), [`history`] (channel history on vs off, recovery and
//! memory; [`api`] is its HTTP client), [`cluster`] (fanout across 3 cluster nodes against
//! one), [`cluster_sim`] (the cluster at 3 to 50 nodes, simulated), [`transports`] (the same fanout over WebSocket, xhr_streaming, xhr_polling and SSE),
//! [`patterns`] (the same publishing with and without 1,000 wildcard patterns registered),
//! [`floors`] (Raptor against raw floors measured in the same round, and growth sweeps),
//! [`summary`] (medians and targets), [`doc`] (the markdown), [`charts`] (SVG).

pub mod api;
pub mod charts;
pub mod cluster;
pub mod cluster_sim;
pub mod doc;
pub mod floors;
pub mod harness;
pub mod history;
pub mod machine;
pub mod patterns;
pub mod raw;
pub mod section;
pub mod server;
pub mod summary;
pub mod transports;

/// The workspace root (this crate's parent directory), for default paths.
pub fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the workspace")
        .to_path_buf()
}
