//! A node answers its first subscriber of a channel only once the channel's owner has its
//! interest (`NodeCore::await_interest` → `Action::InterestReady`), so an event published
//! anywhere after `subscription_succeeded` reaches that subscriber. Scenarios over the
//! simulated network of scenarios.rs, without gossiped interest summaries, so the
//! `Interest` message and its ack are the only way the owner learns.

mod sim;
use raptor_cluster::interest::InterestFilter;
use raptor_cluster::node::{ViewNode, INTEREST_ACK_TICKS};
use raptor_cluster::wire::NodeMsg;
use sim::*;

/// A 3-node simulation, links up, and a channel that `owner` owns.
fn cluster_with_channel(owner: &str) -> (Sim, String) {
    let mut sim = Sim::new(&["a", "b", "c"]);
    sim.gossip_interest = false;
    sim.settle();
    let ch = (0..)
        .map(|i| format!("room-{i}"))
        .find(|ch| sim.nodes["b"].core.owner_of(APP, ch).as_str() == owner)
        .unwrap();
    (sim, ch)
}

fn publish(sim: &mut Sim, at: &str, ch: &str, body: &str) {
    let frame = body.as_bytes().to_vec();
    sim.act(at, |c| {
        c.publish(APP, ch, sim::event(frame), None, false, false)
    });
}

fn delivered(sim: &Sim, at: &str, ch: &str) -> Vec<String> {
    sim.nodes[at].delivered.get(ch).cloned().unwrap_or_default()
}

#[test]
fn ready_waits_for_the_owner_and_every_later_event_arrives() {
    let (mut sim, ch) = cluster_with_channel("c");
    sim.act("b", |c| c.await_interest(APP, &ch, 7));
    // Not ready while the `Interest` is in flight to c: answering now is the race this
    // prevents, as the next event shows.
    assert!(sim.ready.is_empty());
    // Published on a, it reaches the owner c before b's interest does (the sim drains the
    // a→c queue first), so b does not get it: it was ordered before c knew about b.
    publish(&mut sim, "a", &ch, "before-ready");
    sim.drain();
    assert_eq!(sim.ready, vec![("b".to_string(), ch.clone(), 7)]);
    assert!(delivered(&sim, "b", &ch).is_empty());
    // Everything published after the ready arrives, from any node (in the owner's order,
    // which puts c's own event first).
    for at in ["a", "b", "c"] {
        publish(&mut sim, at, &ch, &format!("after-{at}"));
    }
    sim.drain();
    assert_eq!(delivered(&sim, "b", &ch), ["after-c", "after-a", "after-b"]);
    assert_eq!(sim.nodes["b"].core.counters().interest_awaiting, 0);
    assert_eq!(sim.nodes["b"].core.counters().interest_ack_timeouts, 0);
}

#[test]
fn the_owner_node_itself_is_ready_at_once() {
    let (mut sim, ch) = cluster_with_channel("b");
    sim.act("b", |c| c.await_interest(APP, &ch, 3));
    assert_eq!(sim.ready, vec![("b".to_string(), ch.clone(), 3)]);
    // Nothing to ask of a peer.
    assert!(sim.queues.values().all(|q| q.is_empty()));
}

#[test]
fn the_ack_of_an_earlier_subscription_does_not_release_a_later_one() {
    let (mut sim, ch) = cluster_with_channel("c");
    // Subscribe, unsubscribe and subscribe again before c answers anything.
    sim.act("b", |c| c.await_interest(APP, &ch, 1));
    sim.act("b", |c| c.set_interest(APP, &ch, false));
    sim.act("b", |c| c.await_interest(APP, &ch, 2));
    let acks = |sim: &Sim| {
        sim.queues
            .get(&("c".to_string(), "b".to_string()))
            .map_or(0, |q| {
                q.iter()
                    .filter(|(_, m)| matches!(m, NodeMsg::InterestAck { .. }))
                    .count()
            })
    };
    // c answers both `Interest { on }` messages; only the second one's ack releases b.
    sim.drain();
    assert_eq!(acks(&sim), 0);
    assert_eq!(sim.ready, vec![("b".to_string(), ch.clone(), 2)]);
    publish(&mut sim, "a", &ch, "after");
    sim.drain();
    assert_eq!(delivered(&sim, "b", &ch), ["after"]);
}

#[test]
fn an_owner_that_does_not_answer_is_waited_for_a_bounded_time() {
    let (mut sim, ch) = cluster_with_channel("c");
    // The link b–c is down (but c still in b's view): the `Interest` is dropped unsent.
    sim.links.remove(&pair("b", "c"));
    sim.act("b", |c| c.await_interest(APP, &ch, 5));
    sim.drain();
    for _ in 1..INTEREST_ACK_TICKS {
        sim.act("b", |c| c.tick());
        assert!(sim.ready.is_empty());
    }
    sim.act("b", |c| c.tick());
    assert_eq!(sim.ready, vec![("b".to_string(), ch.clone(), 5)]);
    let n = sim.nodes["b"].core.counters();
    assert_eq!((n.interest_ack_timeouts, n.interest_awaiting), (1, 0));
    // Ticks after that release nothing more.
    sim.act("b", |c| c.tick());
    assert_eq!(sim.ready.len(), 1);
}

#[test]
fn a_link_that_comes_back_carries_the_wait_to_the_owner() {
    let (mut sim, ch) = cluster_with_channel("c");
    sim.cut.insert(pair("b", "c"));
    // The cut is only on the link (views still list c: a node that is slow to redial).
    sim.sync_links();
    sim.act("b", |c| c.await_interest(APP, &ch, 9));
    sim.drain();
    assert!(sim.ready.is_empty());
    sim.cut.clear();
    sim.sync_links();
    sim.drain();
    assert_eq!(sim.ready, vec![("b".to_string(), ch.clone(), 9)]);
    publish(&mut sim, "a", &ch, "after");
    sim.drain();
    assert_eq!(delivered(&sim, "b", &ch), ["after"]);
}

#[test]
fn a_wait_follows_the_channel_to_its_new_owner() {
    let (mut sim, ch) = cluster_with_channel("c");
    sim.act("b", |c| c.await_interest(APP, &ch, 4));
    // c dies with the `Interest` in flight; a and b see it go and the channel moves.
    sim.crash("c");
    sim.settle();
    assert_eq!(sim.ready, vec![("b".to_string(), ch.clone(), 4)]);
    let owner = sim.nodes["b"].core.owner_of(APP, &ch);
    assert_ne!(owner.as_str(), "c");
    publish(&mut sim, "a", &ch, "after");
    sim.drain();
    assert_eq!(delivered(&sim, "b", &ch), ["after"]);
}

#[test]
fn a_link_that_keeps_flapping_does_not_extend_the_wait() {
    let (mut sim, ch) = cluster_with_channel("c");
    // No link b–c (c in b's view): every `Interest` to c is dropped unsent.
    sim.links.remove(&pair("b", "c"));
    sim.act("b", |c| c.await_interest(APP, &ch, 6));
    let c_key = sim.nodes["c"].key();
    for _ in 1..INTEREST_ACK_TICKS {
        // The link comes up and goes down again between ticks (re-announcing each time).
        sim.act("b", |n| n.link_up(&c_key));
        sim.act("b", |n| n.link_down(&c_key));
        sim.act("b", |n| n.tick());
        assert!(sim.ready.is_empty());
    }
    sim.act("b", |n| n.tick());
    assert_eq!(sim.ready, vec![("b".to_string(), ch, 6)]);
}

#[test]
fn the_owner_acks_a_node_only_once_it_holds_it_live() {
    let (mut sim, ch) = cluster_with_channel("c");
    // b restarts (a new generation). It sees the cluster at once, and its links come up,
    // before the others' views list the new generation.
    let b2 = sim.restart("b");
    let view: Vec<ViewNode> = ["a", "b", "c"]
        .iter()
        .map(|id| ViewNode {
            key: sim.nodes[*id].key(),
            interest: InterestFilter::default(),
            answers_queries: true,
            presence: None,
        })
        .collect();
    sim.act("b", |n| n.set_view(view));
    sim.sync_links();
    sim.drain();
    assert_eq!(sim.nodes["b"].core.owner_of(APP, &ch).as_str(), "c");
    assert!(!sim.nodes["c"].core.live().contains(&b2));
    sim.act("b", |n| n.await_interest(APP, &ch, 8));
    sim.drain();
    // c would not deliver to a node it does not hold live, so it does not ack either.
    assert!(sim.ready.is_empty());
    publish(&mut sim, "a", &ch, "before-live");
    sim.drain();
    assert!(delivered(&sim, "b", &ch).is_empty());
    // Once c's view has b2, b's next tick asks again and gets the ack.
    sim.sync_views();
    sim.drain();
    assert!(sim.nodes["c"].core.live().contains(&b2));
    sim.act("b", |n| n.tick());
    sim.drain();
    assert_eq!(sim.ready, vec![("b".to_string(), ch.clone(), 8)]);
    assert_eq!(sim.nodes["b"].core.counters().interest_ack_timeouts, 0);
    publish(&mut sim, "a", &ch, "after");
    sim.drain();
    assert_eq!(delivered(&sim, "b", &ch), ["after"]);
}
