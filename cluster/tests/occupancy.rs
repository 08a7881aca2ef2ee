//! Occupancy (channel_occupied / channel_vacated) scenarios over the simulated network of
//! scenarios.rs: the owning node fires each event once per cluster.

mod sim;
use raptor_cluster::ownership::owner;
use sim::*;
use std::collections::BTreeSet;

/// The occupancy events of one channel since the logs were last taken: (node, occupied).
fn take_occupancy(sim: &mut Sim, ch: &str) -> Vec<(String, bool)> {
    let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut sim.occupancy)
        .into_iter()
        .partition(|(_, c, _)| c == ch);
    sim.occupancy = rest;
    mine.into_iter().map(|(n, _, o)| (n, o)).collect()
}

fn owner_among(ch: &str, live: &[&str]) -> String {
    owner(APP, ch, &ids(live)).unwrap().to_string()
}

/// Subscribers of a channel on b and c: one `occupied` from the owner when the first
/// appears, nothing for the second, one `vacated` when both are gone. Owners vary over the
/// channels (a, b or c), and it holds with and without interest summaries in gossip.
#[test]
fn occupancy_fires_once_cluster_wide() {
    for gossip_interest in [true, false] {
        let mut sim = Sim::new(&["a", "b", "c"]);
        sim.gossip_interest = gossip_interest;
        let chs: Vec<String> = (0..12).map(|i| format!("room-{i}")).collect();
        let owners: BTreeSet<String> = chs
            .iter()
            .map(|c| owner_among(c, &["a", "b", "c"]))
            .collect();
        assert_eq!(owners.len(), 3, "every node owns some");
        for ch in &chs {
            let o = owner_among(ch, &["a", "b", "c"]);
            let ctx = format!("gossip={gossip_interest} {ch} owned by {o}");
            sim.act("b", |c| c.set_interest(APP, ch, true));
            sim.settle();
            assert_eq!(
                take_occupancy(&mut sim, ch),
                vec![(o.clone(), true)],
                "{ctx}"
            );
            sim.act("c", |c| c.set_interest(APP, ch, true));
            sim.settle();
            assert_eq!(take_occupancy(&mut sim, ch), vec![], "{ctx}");
            sim.act("b", |c| c.set_interest(APP, ch, false));
            sim.settle();
            assert_eq!(take_occupancy(&mut sim, ch), vec![], "{ctx}");
            sim.act("c", |c| c.set_interest(APP, ch, false));
            sim.settle();
            assert_eq!(
                take_occupancy(&mut sim, ch),
                vec![(o.clone(), false)],
                "{ctx}"
            );
            // Unsettled: both subscribe and leave again before anything is delivered.
            sim.act("b", |c| c.set_interest(APP, ch, true));
            sim.act("c", |c| c.set_interest(APP, ch, true));
            sim.act("c", |c| c.set_interest(APP, ch, false));
            sim.act("b", |c| c.set_interest(APP, ch, false));
            sim.settle();
            // Whatever the owner saw, from it alone, alternating, and vacant in the end.
            let got = take_occupancy(&mut sim, ch);
            assert_eq!(got.len() % 2, 0, "{ctx}: {got:?}");
            for (k, (node, occupied)) in got.iter().enumerate() {
                assert_eq!((node, *occupied), (&o, k % 2 == 0), "{ctx}: {got:?}");
            }
        }
        assert!(sim.occupancy.is_empty());
    }
}

/// Subscribers on b and c of channels owned by every node; then a node dies. No channel
/// gets a second `occupied` from its new owner, and each gets one `vacated` when both
/// subscribers are gone (or, when the dead node was a subscriber, when the other goes).
#[test]
fn a_dead_owner_does_not_make_the_new_owner_repeat_occupied() {
    for dead in ["a", "b"] {
        let mut sim = Sim::new(&["a", "b", "c"]);
        let chs: Vec<String> = (0..12).map(|i| format!("room-{i}")).collect();
        for ch in &chs {
            sim.act("b", |c| c.set_interest(APP, ch, true));
            sim.act("c", |c| c.set_interest(APP, ch, true));
        }
        sim.settle();
        for ch in &chs {
            let o = owner_among(ch, &["a", "b", "c"]);
            assert_eq!(take_occupancy(&mut sim, ch), vec![(o, true)], "{ch}");
        }
        let moved: Vec<&String> = chs
            .iter()
            .filter(|ch| owner_among(ch, &["a", "b", "c"]) == dead)
            .collect();
        assert!(!moved.is_empty());

        sim.crash(dead);
        sim.settle();
        assert_eq!(
            sim.occupancy,
            vec![],
            "{dead} died: everything is still occupied"
        );

        let alive: Vec<&str> = ["a", "b", "c"].into_iter().filter(|n| *n != dead).collect();
        for ch in &chs {
            let o = owner_among(ch, &alive);
            for sub in ["b", "c"].into_iter().filter(|n| *n != dead) {
                sim.act(sub, |c| c.set_interest(APP, ch, false));
                sim.settle();
            }
            assert_eq!(
                take_occupancy(&mut sim, ch),
                vec![(o, false)],
                "{dead} died, {ch}"
            );
        }
    }
}

/// The last node with subscribers dies (or leaves): the owner fires one `vacated`.
#[test]
fn death_of_the_last_interested_node_vacates_once() {
    for graceful in [false, true] {
        let mut sim = Sim::new(&["a", "b", "c"]);
        let chs: Vec<String> = (0..12).map(|i| format!("room-{i}")).collect();
        for ch in &chs {
            sim.act("c", |c| c.set_interest(APP, ch, true));
        }
        sim.settle();
        for ch in &chs {
            let o = owner_among(ch, &["a", "b", "c"]);
            assert_eq!(take_occupancy(&mut sim, ch), vec![(o, true)], "{ch}");
        }
        if graceful {
            sim.act("c", |c| c.leave());
            sim.drain();
        }
        sim.crash("c");
        sim.settle();
        for ch in &chs {
            let got = take_occupancy(&mut sim, ch);
            if owner_among(ch, &["a", "b", "c"]) == "c" {
                // c owned it and was its only subscriber: its name died with it (documented).
                assert_eq!(got, vec![], "{ch}");
            } else {
                let o = owner_among(ch, &["a", "b"]);
                assert_eq!(got, vec![(o, false)], "graceful={graceful} {ch}");
            }
        }
        assert!(sim.occupancy.is_empty());
    }
}

/// A partition is two clusters, each announcing what it sees; after the heal the last event
/// matches the channel's state again. Here c, the only node with subscribers to channels
/// owned by a, is cut off: a fires `vacated` (c is gone from its view), c takes the
/// channels over silently (it cannot tell a crash from a cut), and at the heal a sees c's
/// interest as new and fires `occupied`.
#[test]
fn partition_and_heal_leave_the_last_event_matching_the_state() {
    let mut sim = Sim::new(&["a", "b", "c"]);
    let chs: Vec<String> = (0..40)
        .map(|i| format!("room-{i}"))
        .filter(|ch| owner_among(ch, &["a", "b", "c"]) == "a")
        .collect();
    assert!(!chs.is_empty());
    for ch in &chs {
        sim.act("c", |c| c.set_interest(APP, ch, true));
    }
    sim.settle();
    sim.cut_off("c");
    sim.settle();
    sim.heal();
    sim.settle();
    for ch in &chs {
        let a = String::from("a");
        assert_eq!(
            take_occupancy(&mut sim, ch),
            vec![(a.clone(), true), (a.clone(), false), (a, true)],
            "{ch}"
        );
    }
    assert!(sim.occupancy.is_empty());
}
