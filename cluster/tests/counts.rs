//! Subscription-count scenarios over the simulated network of scenarios.rs: the owning
//! node announces the sum of every live node's count, also after its owner dies and when
//! a new node takes channels over.

mod sim;
use raptor_cluster::ownership::owner;
use sim::*;

/// The last total announced for each channel, and by whom; asserts it is the owner among
/// `live` and the count is `want`.
fn assert_last_totals(sim: &Sim, chs: &[String], live: &[&str], want: u32) {
    for ch in chs {
        let last = sim.counts.iter().rev().find(|(_, c, _)| c == ch);
        let owner = owner(APP, ch, &ids(live)).unwrap().to_string();
        assert_eq!(
            last,
            Some(&(owner, ch.clone(), want)),
            "{ch} among {live:?}: {:?}",
            sim.counts
        );
    }
}

#[test]
fn the_owner_announces_the_cluster_total_through_deaths_and_joins() {
    let mut sim = Sim::new(&["a", "b", "c"]);
    let chs: Vec<String> = (0..12).map(|i| format!("room-{i}")).collect();
    for (id, n) in [("a", 1), ("b", 2), ("c", 3)] {
        for ch in &chs {
            sim.act(id, |c| c.count(APP, ch, n));
        }
    }
    sim.settle();
    assert_last_totals(&sim, &chs, &["a", "b", "c"], 6);
    // Only owners announce, and each total once.
    for ch in &chs {
        let mine: Vec<_> = sim.counts.iter().filter(|(_, c, _)| c == ch).collect();
        let mut totals: Vec<u32> = mine.iter().map(|(_, _, n)| *n).collect();
        totals.dedup();
        assert_eq!(totals.len(), mine.len(), "{ch}: {mine:?}");
    }
    // c dies: its channels move to a or b, which get a's and b's counts again; c's
    // subscribers no longer count anywhere.
    sim.crash("c");
    sim.settle();
    assert_last_totals(&sim, &chs, &["a", "b"], 3);
    // d joins with 4 subscribers each: its share moves to it, and every owner ends at 7.
    let d = raptor_cluster::NodeKey::new(raptor_cluster::NodeId::new("d").unwrap(), 1);
    sim.nodes.insert("d".into(), SimNode::new(d));
    sim.settle();
    for ch in &chs {
        sim.act("d", |c| c.count(APP, ch, 4));
    }
    sim.settle();
    assert_last_totals(&sim, &chs, &["a", "b", "d"], 7);
}
