//! Presence anti-entropy: a `PresenceJoin`/`PresenceLeave` lost on a link that stays up
//! (dropped on a full send queue) is repaired. The receiver sees that the peer's gossiped
//! digest and what it holds about the peer stay different, asks for the peer's full list
//! (`PresenceResync`), and applies the difference as ordinary member events. Scenarios over
//! the simulated network of scenarios.rs.

mod sim;
use raptor_cluster::node::PRESENCE_RESYNC_TICKS;
use raptor_cluster::wire::NodeMsg;
use sim::*;

/// The first `presence-room-N` that `owner` owns with a, b and c live.
fn channel_owned_by(sim: &Sim, owner: &str) -> String {
    (0..)
        .map(|i| format!("presence-room-{i}"))
        .find(|ch| sim.nodes["a"].core.owner_of(APP, ch).as_str() == owner)
        .unwrap()
}

fn tick_all(sim: &mut Sim, ticks: u32) {
    for _ in 0..ticks {
        for id in ["a", "b", "c"] {
            sim.act(id, |n| n.tick());
        }
        sim.settle();
    }
}

/// u-a leaves a, and a's `PresenceLeave` to b is lost (a full queue); c gets it.
fn leave_lost_on_the_way_to_b(sim: &mut Sim, ch: &str) {
    sim.act("a", |n| n.presence_leave(APP, ch, "u-a"));
    sim.queues
        .get_mut(&("a".to_string(), "b".to_string()))
        .unwrap()
        .retain(|(_, m)| !matches!(m, NodeMsg::PresenceLeave { .. }));
    sim.settle();
}

fn resyncs(sim: &Sim, id: &str) -> u64 {
    sim.nodes[id].core.counters().presence_resyncs
}

#[test]
fn a_lost_leave_is_repaired_once_and_nothing_else_resyncs() {
    let probe = Sim::new(&["a", "b", "c"]);
    let ch = channel_owned_by(&probe, "b");
    let mut sim = presence_cluster(std::slice::from_ref(&ch));
    // Quiet ticks: digests agree everywhere, nobody asks for anything.
    tick_all(&mut sim, 2 * PRESENCE_RESYNC_TICKS);
    assert_eq!(["a", "b", "c"].map(|id| resyncs(&sim, id)), [0, 0, 0]);

    leave_lost_on_the_way_to_b(&mut sim, &ch);
    let rest = set(&["u-b", "both", "u-c1", "u-c2"]);
    assert_eq!(sim.seen("c", &ch), rest);
    assert!(sim.seen("b", &ch).contains("u-a"), "b missed the leave");
    // Without a webhook yet: b owns the channel and did not see the leave.
    assert!(sim.nodes["b"].webhooks.is_empty());

    // Not before the digest has disagreed for the full count of ticks...
    tick_all(&mut sim, PRESENCE_RESYNC_TICKS - 1);
    assert!(sim.seen("b", &ch).contains("u-a"));
    // ...then b asks a for its list, and u-a goes, once, with its webhook.
    tick_all(&mut sim, 1);
    assert_eq!(sim.seen("b", &ch), rest);
    assert_eq!(
        sim.nodes["b"].emitted,
        [(ch.clone(), "u-a".to_string(), false)]
    );
    assert_eq!(
        sim.nodes["b"].webhooks,
        [(ch.clone(), "u-a".to_string(), false)]
    );
    assert_eq!(["a", "b", "c"].map(|id| resyncs(&sim, id)), [0, 1, 0]);
    // Repaired: no more asking.
    tick_all(&mut sim, 2 * PRESENCE_RESYNC_TICKS);
    assert_eq!(["a", "b", "c"].map(|id| resyncs(&sim, id)), [0, 1, 0]);
}

#[test]
fn a_lost_join_is_repaired_too() {
    let probe = Sim::new(&["a", "b", "c"]);
    let ch = channel_owned_by(&probe, "c");
    let mut sim = presence_cluster(std::slice::from_ref(&ch));
    sim.join("a", &ch, "late");
    sim.queues
        .get_mut(&("a".to_string(), "b".to_string()))
        .unwrap()
        .retain(|(_, m)| !matches!(m, NodeMsg::PresenceJoin { .. }));
    sim.settle();
    assert!(!sim.seen("b", &ch).contains("late"));
    tick_all(&mut sim, PRESENCE_RESYNC_TICKS);
    assert!(sim.seen("b", &ch).contains("late"));
    assert_eq!(
        sim.nodes["b"].emitted,
        [(ch.clone(), "late".to_string(), true)]
    );
    // The webhook fired once, at the owner c, when the join reached it.
    let hooks: usize = sim.nodes.values().map(|n| n.webhooks.len()).sum();
    assert_eq!(hooks, 1);
}

#[test]
fn a_stale_gossiped_digest_is_written_again_and_the_asking_stops() {
    let probe = Sim::new(&["a", "b", "c"]);
    let ch = channel_owned_by(&probe, "b");
    let mut sim = presence_cluster(std::slice::from_ref(&ch));
    // a's join reaches everyone, but its gossip update is lost (a full bridge queue): a
    // keeps gossiping the old digest.
    let key = raptor_cluster::membership::KEY_PRESENCE.to_string();
    let old = sim.nodes["a"].gossip[&key].clone();
    sim.join("a", &ch, "x");
    sim.nodes
        .get_mut("a")
        .unwrap()
        .gossip
        .insert(key.clone(), old);
    sim.settle();
    assert!(sim.seen("b", &ch).contains("x"));
    // b and c ask once; a answers with its list (nothing changes) and writes its digest
    // again, which ends the disagreement.
    tick_all(&mut sim, PRESENCE_RESYNC_TICKS);
    assert_eq!(["a", "b", "c"].map(|id| resyncs(&sim, id)), [0, 1, 1]);
    tick_all(&mut sim, 4 * PRESENCE_RESYNC_TICKS);
    assert_eq!(["a", "b", "c"].map(|id| resyncs(&sim, id)), [0, 1, 1]);
    assert!(sim
        .nodes
        .values()
        .all(|n| n.emitted.iter().all(|(_, u, added)| u == "x" && *added)));
}

#[test]
fn unanswered_requests_back_off() {
    let probe = Sim::new(&["a", "b", "c"]);
    let ch = channel_owned_by(&probe, "b");
    let mut sim = presence_cluster(std::slice::from_ref(&ch));
    leave_lost_on_the_way_to_b(&mut sim, &ch);
    // Every answer from a to b is lost too (a link slower than the requests).
    sim.lose =
        Some(|from, to, m| from == "a" && to == "b" && matches!(m, NodeMsg::PresenceSync { .. }));
    let mut at = Vec::new();
    for t in 1..=130 {
        tick_all(&mut sim, 1);
        if resyncs(&sim, "b") > at.len() as u64 {
            at.push(t);
        }
    }
    let base = PRESENCE_RESYNC_TICKS;
    assert_eq!(
        at,
        [base, 3 * base, 7 * base, 15 * base],
        "asks at 2 s, then after 4, 8, 16 s"
    );
    assert!(sim.seen("b", &ch).contains("u-a"));
    // Once an answer gets through, the repair is done and the waiting is back to 2 s.
    sim.lose = None;
    tick_all(&mut sim, 16 * PRESENCE_RESYNC_TICKS);
    assert!(!sim.seen("b", &ch).contains("u-a"));
    assert_eq!(resyncs(&sim, "b"), 5);
}
