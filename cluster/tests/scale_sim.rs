//! The scale simulator's measurements are sane on a small cluster: it converges after every
//! transition, gossip and links carry bytes, crash detection takes what chitchat's settings
//! imply, and the memory a node spends grows with the load.

use raptor_cluster::sim::alloc::TaggedAlloc;
use raptor_cluster::sim::{run, LoadSpec, Phase, Report, SimConfig};

#[global_allocator]
static ALLOC: TaggedAlloc = TaggedAlloc;

fn config(members: usize) -> SimConfig {
    SimConfig {
        nodes: 3,
        load: LoadSpec {
            channels: members / 10,
            members,
            presence_members: members,
            info_bytes: 40,
        },
        latency_us: 200,
        link_gbit: 10.0,
        churn_per_s: 50.0,
        publishes_per_s: 50.0,
        publish_bytes: 100,
        steady_s: 2.0,
        cpu: false,
        seed: 7,
    }
}

fn phase(r: &Report, p: Phase) -> &raptor_cluster::sim::PhaseReport {
    r.phases
        .iter()
        .find(|x| x.phase == p)
        .expect("phase reported")
}

#[test]
fn a_small_cluster_converges_and_its_costs_grow_with_load() {
    let small = run(config(2_000));
    for p in &small.phases {
        let t = p
            .converged_ms
            .unwrap_or_else(|| panic!("{:?} did not converge", p.phase));
        assert!(t < 10_000.0, "{:?} took {t} ms", p.phase);
        assert!(p.gossip_bytes_per_node_s > 0.0, "{:?}: no gossip", p.phase);
    }
    // chitchat's detector with a 100 ms prior and phi 8 cannot call a node dead in less than
    // about 0.4 s of silence, and should within about 2 s.
    let crash = phase(&small, Phase::Crash).membership_ms.unwrap();
    assert!(
        (300.0..2_500.0).contains(&crash),
        "crash detected after {crash} ms"
    );
    // Forming the cluster replicates every node's members over the links.
    assert!(phase(&small, Phase::Formation).link_bytes_per_node_s > 0.0);
    assert!(small.steady.link_bytes > 0.0 && small.steady.deliveries > 0.0);
    assert!(small.steady.gossip_digest_bytes > 0.0 && small.steady.gossip_delta_bytes > 0.0);

    let m = &small.memory;
    assert!(m.measured, "the counting allocator is installed");
    assert!(m.own_presence > 0.0 && m.others_presence > 0.0 && m.interest > 0.0);
    // With three nodes, a node holds about twice as many other nodes' members as its own;
    // an own member costs more than a copy (its connection count in `LocalPresence` besides
    // its copy in the view: ~350 against ~100 bytes since copies are compact), so the
    // others' share lands near 2 × 100 / 350.
    let ratio = m.others_presence / m.own_presence;
    assert!((0.4..4.0).contains(&ratio), "others/own = {ratio}");

    let big = run(config(8_000));
    let grow = big.memory.others_presence / m.others_presence;
    assert!(
        (3.0..5.5).contains(&grow),
        "4x the members, {grow}x the replica memory"
    );
}
