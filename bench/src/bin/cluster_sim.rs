//! `cluster_sim`: the scale simulation behind `raptor-bench cluster-sim` (see
//! `raptor_bench::cluster_sim`). A process of its own because it installs a counting global
//! allocator, which measures each simulated node's heap and which the load-generating
//! harness must not pay for.

use argh::FromArgs;
use raptor_bench::cluster_sim::{self, ClusterSimCmd};
use raptor_cluster::sim::alloc::TaggedAlloc;

#[global_allocator]
static ALLOC: TaggedAlloc = TaggedAlloc;

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    let strs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let a = match ClusterSimCmd::from_args(&strs[..1], &strs[1..]) {
        Ok(a) => a,
        Err(exit) => {
            // `--help`, or a usage error: argh's text, and its verdict.
            println!("{}", exit.output);
            std::process::exit(i32::from(exit.status.is_err()));
        }
    };
    let plan = a.plan()?;
    let ws = raptor_bench::workspace();
    let out = a.out.clone().unwrap_or_else(|| ws.join("docs/cluster.md"));
    let chart_dir = a.chart_dir.clone().unwrap_or_else(|| ws.join("docs/bench"));
    let command = std::iter::once("raptor-bench cluster-sim".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let run = cluster_sim::run(plan, command);
    let json = cluster_sim::write(&run, &out, &chart_dir)?;
    eprintln!(
        "cluster-sim: {:.0} s; wrote {} and {}",
        run.wall_s,
        out.display(),
        json.display()
    );
    Ok(())
}
