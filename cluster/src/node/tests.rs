//! Unit tests of `NodeCore`.
use super::*;
use crate::interest::InterestFilter;
use crate::ownership::channel_key;
use crate::wire::WireEvent;
use crate::wire::{AnswerBody, QueryKind};

fn key(id: &str) -> NodeKey {
    NodeKey::new(NodeId::new(id).unwrap(), 1)
}

fn ids(live: &[&str]) -> Vec<NodeId> {
    live.iter().map(|i| NodeId::new(i).unwrap()).collect()
}

/// The summary a node with these channels gossips.
fn summary(channels: &[&str]) -> InterestFilter {
    let mut local = LocalInterest::new();
    for ch in channels {
        local.set("1", ch, true);
    }
    let g = local.gossip_all();
    InterestFilter::from_gossip(g.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn view(nodes: &[(&str, InterestFilter)]) -> Vec<ViewNode> {
    nodes
        .iter()
        .map(|(id, f)| ViewNode {
            key: key(id),
            interest: f.clone(),
            answers_queries: true,
            presence: None,
        })
        .collect()
}

fn empty(ids: &[&str]) -> Vec<ViewNode> {
    view(
        &ids.iter()
            .map(|i| (*i, InterestFilter::default()))
            .collect::<Vec<_>>(),
    )
}

/// The first `room-N` whose owner among each live set is the given node.
fn channel(owners: &[(&[&str], &str)]) -> String {
    (0..100_000)
        .map(|i| format!("room-{i}"))
        .find(|ch| {
            owners
                .iter()
                .all(|(live, o)| owner("1", ch, &ids(live)).unwrap().as_str() == *o)
        })
        .unwrap()
}

fn occ(actions: &[Action]) -> Vec<(String, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Occupancy {
                app,
                channel,
                occupied,
            } => {
                assert_eq!(app, "1");
                Some((channel.clone(), *occupied))
            }
            _ => None,
        })
        .collect()
}

fn interest(ch: &str, on: bool) -> NodeMsg {
    NodeMsg::Interest {
        app: "1".into(),
        channel: ch.into(),
        on,
        ack: 0,
    }
}

fn node(me: &str, live: &[&str]) -> NodeCore {
    let mut n = NodeCore::new(key(me));
    assert!(occ(&n.set_view(empty(live))).is_empty());
    n
}

#[test]
fn local_interest_on_the_owner() {
    let mut a = node("a", &["a", "b"]);
    let x = channel(&[(&["a", "b"], "a")]);
    let y = channel(&[(&["a", "b"], "b")]);
    assert_eq!(occ(&a.set_interest("1", &x, true)), vec![(x.clone(), true)]);
    assert!(occ(&a.set_interest("1", &x, true)).is_empty());
    // Not the owner: b decides.
    assert!(occ(&a.set_interest("1", &y, true)).is_empty());
    assert!(occ(&a.set_interest("1", &y, false)).is_empty());
    assert_eq!(
        occ(&a.set_interest("1", &x, false)),
        vec![(x.clone(), false)]
    );
    assert!(occ(&a.set_interest("1", &x, false)).is_empty());
}

#[test]
fn peer_interest_is_counted_once_per_transition() {
    let mut a = node("a", &["a", "b", "c"]);
    let x = channel(&[(&["a", "b", "c"], "a")]);
    assert_eq!(
        occ(&a.on_msg(&key("b"), interest(&x, true))),
        vec![(x.clone(), true)]
    );
    assert!(occ(&a.on_msg(&key("c"), interest(&x, true))).is_empty());
    assert!(occ(&a.set_interest("1", &x, true)).is_empty());
    assert!(occ(&a.on_msg(&key("b"), interest(&x, false))).is_empty());
    assert!(occ(&a.set_interest("1", &x, false)).is_empty());
    assert_eq!(
        occ(&a.on_msg(&key("c"), interest(&x, false))),
        vec![(x.clone(), false)]
    );
    // A node outside the live view does not count.
    assert!(occ(&a.on_msg(&key("z"), interest(&x, true))).is_empty());
    // Nor does an old generation of a live node.
    let old_b = NodeKey::new(NodeId::new("b").unwrap(), 0);
    assert!(occ(&a.on_msg(&old_b, interest(&x, true))).is_empty());
}

#[test]
fn a_summary_keeps_a_channel_occupied_but_never_starts_it() {
    let x = channel(&[(&["a", "b"], "a")]);
    let mut a = node("a", &["a", "b"]);
    let with_x = view(&[("a", InterestFilter::default()), ("b", summary(&[&x]))]);
    assert!(
        occ(&a.set_view(with_x.clone())).is_empty(),
        "no name, no event"
    );
    assert_eq!(
        occ(&a.on_msg(&key("b"), interest(&x, true))),
        vec![(x.clone(), true)]
    );
    // The summary still lists x: still occupied (a stale "yes" only delays vacated).
    assert!(occ(&a.on_msg(&key("b"), interest(&x, false))).is_empty());
    assert!(occ(&a.set_view(with_x)).is_empty());
    assert_eq!(
        occ(&a.set_view(empty(&["a", "b"]))),
        vec![(x.clone(), false)]
    );

    // A `*` bucket names nothing: it neither keeps x occupied nor delays vacated.
    let bucket = format!("interest.{:02x}", channel_key("1", &x) >> 56);
    let star = InterestFilter::from_gossip([(bucket.as_str(), "*")]);
    assert!(star.may_contain(channel_key("1", &x)));
    assert!(occ(&a.set_view(view(&[("a", InterestFilter::default()), ("b", star)]))).is_empty());
    assert_eq!(
        occ(&a.on_msg(&key("b"), interest(&x, true))),
        vec![(x.clone(), true)]
    );
    assert_eq!(
        occ(&a.on_msg(&key("b"), interest(&x, false))),
        vec![(x.clone(), false)]
    );
}

#[test]
fn death_and_leaving_remove_occupants() {
    let x = channel(&[(&["a", "b", "c"], "a"), (&["a", "c"], "a"), (&["a"], "a")]);
    let mut a = node("a", &["a", "b", "c"]);
    a.on_msg(&key("b"), interest(&x, true));
    a.on_msg(&key("c"), interest(&x, true));
    assert!(occ(&a.set_view(empty(&["a", "c"]))).is_empty(), "c is left");
    assert_eq!(
        occ(&a.on_msg(&key("c"), NodeMsg::Leaving)),
        vec![(x.clone(), false)]
    );
    assert!(occ(&a.set_view(empty(&["a"]))).is_empty());
}

/// a owns x and dies; b takes over. c and d have subscribers, as their summaries say.
#[test]
fn a_new_owner_takes_over_silently_and_vacates_once() {
    let all = ["a", "b", "c", "d"];
    let rest = ["b", "c", "d"];
    let x = channel(&[(&all, "a"), (&rest, "b")]);
    let mut b = node("b", &all);
    let subs = |chs: &[&str]| {
        view(&[
            ("b", InterestFilter::default()),
            ("c", summary(chs)),
            ("d", summary(chs)),
        ])
    };
    let mut before = subs(&[&x]);
    before.push(ViewNode {
        key: key("a"),
        interest: InterestFilter::default(),
        answers_queries: true,
        presence: None,
    });
    assert!(occ(&b.set_view(before)).is_empty());
    assert!(occ(&b.set_view(subs(&[&x]))).is_empty(), "a died");
    // c and d re-announce to the new owner: x was occupied before, no second event.
    assert!(occ(&b.on_msg(&key("c"), interest(&x, true))).is_empty());
    assert!(occ(&b.on_msg(&key("d"), interest(&x, true))).is_empty());
    assert!(occ(&b.on_msg(&key("c"), interest(&x, false))).is_empty());
    assert!(occ(&b.on_msg(&key("d"), interest(&x, false))).is_empty());
    assert_eq!(occ(&b.set_view(subs(&[]))), vec![(x.clone(), false)]);
    // Later occupancy of x is new: announced.
    assert_eq!(
        occ(&b.on_msg(&key("c"), interest(&x, true))),
        vec![(x.clone(), true)]
    );
}

/// The same with the `Interest` messages arriving before b's view moves the channel.
#[test]
fn interest_heard_before_the_move_is_taken_over_silently() {
    let all = ["a", "b", "c"];
    let x = channel(&[(&all, "a"), (&["b", "c"], "b")]);
    let mut b = node("b", &all);
    // c saw a die first: it re-announces to b, whose view still has a.
    assert!(occ(&b.on_msg(&key("c"), interest(&x, true))).is_empty());
    assert!(occ(&b.set_view(empty(&["b", "c"]))).is_empty());
    assert_eq!(
        occ(&b.on_msg(&key("c"), interest(&x, false))),
        vec![(x.clone(), false)]
    );
}

#[test]
fn a_channel_first_occupied_after_the_move_is_announced() {
    let all = ["a", "b", "c"];
    let x = channel(&[(&all, "a"), (&["b", "c"], "b")]);
    let mut b = node("b", &all);
    assert!(occ(&b.set_view(empty(&["b", "c"]))).is_empty());
    assert_eq!(
        occ(&b.on_msg(&key("c"), interest(&x, true))),
        vec![(x.clone(), true)]
    );
    assert_eq!(
        occ(&b.on_msg(&key("c"), interest(&x, false))),
        vec![(x.clone(), false)]
    );
}

#[test]
fn an_adopted_key_expires_with_the_summary() {
    let all = ["a", "b", "c"];
    let x = channel(&[(&all, "a"), (&["b", "c"], "b")]);
    let mut b = node("b", &all);
    // c's summary still lists x after c unsubscribed (stale): adopted at the move...
    let stale = view(&[("b", InterestFilter::default()), ("c", summary(&[&x]))]);
    let mut with_a = stale.clone();
    with_a.push(ViewNode {
        key: key("a"),
        interest: InterestFilter::default(),
        answers_queries: true,
        presence: None,
    });
    assert!(occ(&b.set_view(with_a)).is_empty());
    assert!(occ(&b.set_view(stale)).is_empty());
    // ...and forgotten once the summary catches up, so a real first subscriber counts.
    assert!(occ(&b.set_view(empty(&["b", "c"]))).is_empty());
    assert_eq!(occ(&b.set_interest("1", &x, true)), vec![(x.clone(), true)]);
}

#[test]
fn ownership_moving_away_is_silent() {
    let x = channel(&[(&["a", "b"], "a"), (&["a", "b", "d"], "d")]);
    let mut a = node("a", &["a", "b"]);
    assert_eq!(
        occ(&a.on_msg(&key("b"), interest(&x, true))),
        vec![(x.clone(), true)]
    );
    assert!(occ(&a.set_view(empty(&["a", "b", "d"]))).is_empty());
    assert!(occ(&a.on_msg(&key("b"), interest(&x, false))).is_empty());
    // x comes back to a, empty: nothing to take over, nothing to vacate.
    assert!(occ(&a.set_view(empty(&["a", "b"]))).is_empty());
}

/// A node that joins an existing cluster takes over occupied channels silently: their
/// occupancy was announced by the owner before it joined.
#[test]
fn a_joining_node_takes_over_the_clusters_occupancy() {
    let all = ["a", "b", "c", "d"];
    let x = channel(&[(&all, "d")]);
    let mut d = NodeCore::new(key("d"));
    let v = view(&[
        ("a", InterestFilter::default()),
        ("b", summary(&[&x])),
        ("c", InterestFilter::default()),
        ("d", InterestFilter::default()),
    ]);
    assert!(occ(&d.set_view(v)).is_empty());
    // b's link comes up and it re-announces.
    assert!(occ(&d.on_msg(&key("b"), interest(&x, true))).is_empty());
    assert!(occ(&d.on_msg(&key("b"), interest(&x, false))).is_empty());
    assert_eq!(occ(&d.set_view(empty(&all))), vec![(x.clone(), false)]);
}

/// Two lone nodes meet (a one-node cluster and a starting node): each announced its own
/// channels while alone, so the owner takes the other's over without an event.
#[test]
fn lone_nodes_meeting_do_not_repeat_occupied() {
    let x = channel(&[(&["a", "d"], "a")]);
    let mut d = NodeCore::new(key("d"));
    assert_eq!(
        occ(&d.set_interest("1", &x, true)),
        vec![(x.clone(), true)],
        "alone, d owns x"
    );
    let mut a = node("a", &["a"]);
    let v = view(&[("a", InterestFilter::default()), ("d", summary(&[&x]))]);
    assert!(occ(&d.set_view(v.clone())).is_empty());
    assert!(occ(&a.set_view(v)).is_empty());
    assert!(occ(&a.on_msg(&key("d"), interest(&x, true))).is_empty());
    assert!(occ(&a.on_msg(&key("d"), interest(&x, false))).is_empty());
    assert_eq!(
        occ(&a.set_view(empty(&["a", "d"]))),
        vec![(x.clone(), false)]
    );
}

/// A node new to an established cluster (here restarted, so a new generation) brings
/// new subscribers: its interest is new, the owner announces it.
#[test]
fn a_new_node_in_an_established_view_brings_new_occupancy() {
    let x = channel(&[(&["a", "b", "d"], "a")]);
    let mut a = node("a", &["a", "b", "d"]);
    assert_eq!(
        occ(&a.on_msg(&key("d"), interest(&x, true))),
        vec![(x.clone(), true)]
    );
    // d restarts: its old generation's interest goes with it.
    assert_eq!(
        occ(&a.set_view(empty(&["a", "b"]))),
        vec![(x.clone(), false)]
    );
    let d2 = NodeKey::new(NodeId::new("d").unwrap(), 2);
    // Its first `Interest` may arrive before a sees it (the link came up first).
    assert!(occ(&a.on_msg(&d2, interest(&x, true))).is_empty());
    let mut v = empty(&["a", "b"]);
    v.push(ViewNode {
        key: d2.clone(),
        interest: summary(&[&x]),
        answers_queries: true,
        presence: None,
    });
    assert_eq!(occ(&a.set_view(v)), vec![(x.clone(), true)]);
}

#[test]
fn ownership_moving_back_is_silent() {
    let x = channel(&[(&["a", "b"], "a"), (&["a", "b", "d"], "d")]);
    let mut a = node("a", &["a", "b"]);
    assert_eq!(
        occ(&a.on_msg(&key("b"), interest(&x, true))),
        vec![(x.clone(), true)]
    );
    assert!(occ(&a.set_view(empty(&["a", "b", "d"]))).is_empty());
    // d dies; b re-announces x to a, which takes it back without a second `occupied`.
    assert!(occ(&a.set_view(empty(&["a", "b"]))).is_empty());
    assert!(occ(&a.on_msg(&key("b"), interest(&x, true))).is_empty());
    assert_eq!(
        occ(&a.on_msg(&key("b"), interest(&x, false))),
        vec![(x.clone(), false)]
    );
}

fn releases(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::ReleaseLater { .. }))
        .count()
}

fn presence_events(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Presence { .. }))
        .count()
}

/// A leave seen twice (message and gossip) starts one hold; the hold ends in one removal;
/// gossip still showing the node as leaving afterwards starts nothing.
#[test]
fn a_leave_holds_members_once_then_releases_them() {
    let mut a = node("a", &["a", "c"]);
    let join = NodeMsg::PresenceJoin {
        app: "1".into(),
        channel: "presence-x".into(),
        user_id: "u".into(),
        user_info: None,
    };
    assert_eq!(presence_events(&a.on_msg(&key("c"), join)), 1);
    let left = a.on_msg(&key("c"), NodeMsg::Leaving);
    assert_eq!((releases(&left), presence_events(&left)), (1, 0));
    assert!(!a.live().contains(&key("c")));
    assert_eq!(a.members("1", "presence-x").len(), 1, "held");
    // The view drops c (so `left` forgets it) while gossip still says it is leaving.
    a.set_view(empty(&["a"]));
    assert!(a.peer_left(&key("c")).is_empty(), "one hold per leave");
    let released = a.release(&key("c"));
    assert_eq!(presence_events(&released), 1);
    assert!(a.members("1", "presence-x").is_empty());
    let again = a.peer_left(&key("c"));
    assert_eq!((releases(&again), presence_events(&again)), (0, 0));
}

/// What the engine does with an [`Action::Order`]: encode the event (here: its data as the
/// payload) and fan it out; other actions pass through.
fn ordered(n: &mut NodeCore, actions: Vec<Action>) -> Vec<Action> {
    let mut out = Vec::new();
    for a in actions {
        match a {
            Action::Order(order) => {
                let payload = order.event.data.clone().into_bytes();
                out.extend(n.ordered(order, payload));
            }
            other => out.push(other),
        }
    }
    out
}

fn wire_event(data: &str) -> WireEvent {
    WireEvent {
        name: "e".into(),
        data: data.into(),
        user_id: None,
    }
}

/// Where an event goes: the peers it is sent to, and whether it is delivered locally (with
/// the cache data it carries).
fn deliveries(actions: &[Action]) -> (Vec<String>, Option<Option<String>>) {
    let mut peers = Vec::new();
    let mut local = None;
    for a in actions {
        match a {
            Action::Send {
                to,
                msg: NodeMsg::Deliver { cache_data, .. },
            } => peers.push(format!("{}:{}", to.as_str(), cache_data.is_some())),
            Action::DeliverLocal { cache_data, .. } => local = Some(cache_data.clone()),
            other => panic!("unexpected {other:?}"),
        }
    }
    peers.sort();
    (peers, local)
}

#[test]
fn cache_events_reach_every_live_node_and_the_local_cache() {
    let ch = channel(&[(&["a", "b", "c"], "a")]);
    let mut a = node("a", &["a", "b", "c"]);
    let b = key("b");
    // Only b has subscribers; a has none.
    a.on_msg(&b, interest(&ch, true));
    let plain = a.publish("1", &ch, wire_event("e"), None, false, false);
    let plain = ordered(&mut a, plain);
    assert_eq!(deliveries(&plain), (vec!["b:false".to_string()], None));
    let cached = a.publish("1", &ch, wire_event("d"), None, true, false);
    let cached = ordered(&mut a, cached);
    assert_eq!(
        deliveries(&cached),
        (
            vec!["b:true".to_string(), "c:true".to_string()],
            Some(Some("d".to_string()))
        )
    );
    // A cache Deliver is kept by a node without subscribers; a plain one is not.
    let mut c = node("c", &["a", "b", "c"]);
    let deliver = |cache_data: Option<String>| NodeMsg::Deliver {
        app: "1".into(),
        channel: ch.clone(),
        payload: b"e".to_vec(),
        exclude: None,
        privileged_only: false,
        cache_data,
    };
    assert!(c.on_msg(&key("a"), deliver(None)).is_empty());
    assert_eq!(
        deliveries(&c.on_msg(&key("a"), deliver(Some("d".into())))),
        (vec![], Some(Some("d".to_string())))
    );
    // A Publish from another node keeps its cache data through the owner's fanout.
    let publish = NodeMsg::Publish {
        app: "1".into(),
        channel: ch.clone(),
        event: wire_event("d"),
        exclude: None,
        retain: true,
        confirm: false,
        origin_seq: 1,
    };
    let actions = a.on_msg(&key("c"), publish);
    assert_eq!(
        deliveries(&ordered(&mut a, actions)),
        (
            vec!["b:true".to_string(), "c:true".to_string()],
            Some(Some("d".to_string()))
        )
    );
}

#[test]
fn queries_go_to_linked_live_peers_and_come_back_as_actions() {
    let mut n = NodeCore::new(key("a"));
    let mut v = empty(&["a", "b", "c", "d", "f"]);
    v[4].answers_queries = false; // an older release: would drop the link on tag 12
    let _ = n.set_view(v);
    for peer in ["b", "c", "e", "f"] {
        let _ = n.link_up(&key(peer)); // "e" is linked but not live: not asked
    }
    assert_eq!(n.query_peers(), ids(&["b", "c"]));
    let _ = n.link_down(&key("c"));
    assert_eq!(n.query_peers(), ids(&["b"]));

    let kind = QueryKind::List {
        prefix: "presence-".into(),
    };
    let q = NodeMsg::Query {
        id: 4,
        app: "1".into(),
        kind: kind.clone(),
    };
    assert_eq!(
        n.on_msg(&key("b"), q),
        vec![Action::PeerQuery {
            from: NodeId::new("b").unwrap(),
            id: 4,
            app: "1".into(),
            kind,
        }]
    );
    let a = NodeMsg::Answer {
        id: 4,
        body: AnswerBody::Refused,
    };
    assert_eq!(
        n.on_msg(&key("b"), a),
        vec![Action::PeerAnswer {
            from: NodeId::new("b").unwrap(),
            id: 4,
            body: AnswerBody::Refused,
        }]
    );
}

fn count_msg(ch: &str, count: u32) -> NodeMsg {
    NodeMsg::Count {
        app: "1".into(),
        channel: ch.into(),
        count,
    }
}

/// The `SubscriptionCount` totals among the actions.
fn totals(actions: &[Action]) -> Vec<(String, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SubscriptionCount {
                app,
                channel,
                count,
            } => {
                assert_eq!(app, "1");
                Some((channel.clone(), *count))
            }
            _ => None,
        })
        .collect()
}

/// The `Count` messages among the actions, as (to, channel, count).
fn count_sends(actions: &[Action]) -> Vec<(String, String, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                msg: NodeMsg::Count { channel, count, .. },
            } => Some((to.as_str().to_owned(), channel.clone(), *count)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_owner_sums_every_nodes_count_and_drops_a_dead_node() {
    let live = ["a", "b", "c"];
    let x = channel(&[(&live, "a"), (&["a", "b"], "a")]);
    let mut a = node("a", &live);
    // Its own count goes into the table without a hop.
    assert_eq!(totals(&a.count("1", &x, 1)), vec![(x.clone(), 1)]);
    assert_eq!(
        totals(&a.on_msg(&key("b"), count_msg(&x, 2))),
        vec![(x.clone(), 3)]
    );
    assert_eq!(
        totals(&a.on_msg(&key("c"), count_msg(&x, 3))),
        vec![(x.clone(), 6)]
    );
    // The same report again changes nothing: no second event.
    assert!(totals(&a.on_msg(&key("c"), count_msg(&x, 3))).is_empty());
    // c dies: its 3 no longer count, announced at once.
    assert_eq!(
        totals(&a.set_view(empty(&["a", "b"]))),
        vec![(x.clone(), 3)]
    );
    assert_eq!(
        totals(&a.on_msg(&key("b"), count_msg(&x, 0))),
        vec![(x.clone(), 1)]
    );
    // The last subscriber anywhere: nobody to tell, and nothing kept.
    assert!(totals(&a.count("1", &x, 0)).is_empty());
    assert_eq!(a.counted_channels(), 0);
    // A node that left is not counted again by a late message.
    let mut a = node("a", &live);
    let _ = a.count("1", &x, 1);
    let _ = a.peer_left(&key("b"));
    assert!(totals(&a.on_msg(&key("b"), count_msg(&x, 2))).is_empty());
}

#[test]
fn counts_go_to_the_owner_and_follow_it_when_it_moves() {
    let x = channel(&[(&["a", "b", "c"], "c"), (&["a", "b"], "b")]);
    let mut a = node("a", &["a", "b", "c"]);
    assert_eq!(
        count_sends(&a.count("1", &x, 4)),
        vec![("c".into(), x.clone(), 4)]
    );
    assert!(totals(&a.count("1", &x, 4)).is_empty());
    // c goes: b owns x now and gets a's count again.
    let out = a.set_view(empty(&["a", "b"]));
    assert_eq!(count_sends(&out), vec![("b".into(), x.clone(), 4)]);
    // b's link comes back up: the count is re-sent (sends without a link are dropped).
    let out = a.link_up(&key("b"));
    assert_eq!(count_sends(&out), vec![("b".into(), x.clone(), 4)]);
    // Once at 0 it is forgotten: nothing more to re-send.
    let _ = a.count("1", &x, 0);
    assert!(count_sends(&a.link_up(&key("b"))).is_empty());
}

#[test]
fn an_owner_forgets_counts_of_channels_that_moved_away() {
    let x = channel(&[(&["a", "b"], "a"), (&["a", "b", "c"], "c")]);
    let mut a = node("a", &["a", "b"]);
    let _ = a.on_msg(&key("b"), count_msg(&x, 2));
    assert_eq!(a.counted_channels(), 1);
    // c joins and owns x: a keeps nothing, announces nothing (c carries on).
    assert!(totals(&a.set_view(empty(&["a", "b", "c"]))).is_empty());
    assert_eq!(a.counted_channels(), 0);
}

/// Reports that could never be corrected are refused: for a channel another node owns in
/// this node's view, from a node it does not hold live, for a presence channel.
#[test]
fn counts_are_refused_unless_owned_live_and_plausible() {
    let live = ["a", "b", "c"];
    let mine = channel(&[(&live, "a")]);
    let theirs = channel(&[(&live, "b")]);
    let mut a = node("a", &live);
    assert!(totals(&a.on_msg(&key("c"), count_msg(&theirs, 4))).is_empty());
    assert!(totals(&a.on_msg(&key("z"), count_msg(&mine, 4))).is_empty());
    assert!(totals(&a.on_msg(&key("c"), count_msg("presence-x", 4))).is_empty());
    assert_eq!(a.counters().counts_refused, 3);
    // The same report from a live node for an owned channel counts.
    assert_eq!(
        totals(&a.on_msg(&key("c"), count_msg(&mine, 4))),
        vec![(mine.clone(), 4)]
    );
    assert_eq!(a.counters().counts_refused, 3);
}

#[test]
fn a_confirmed_publish_is_awaited_and_its_order_names_whom_to_confirm() {
    let ch = channel(&[(&["a", "b", "c"], "a")]);
    let mut b = node("b", &["a", "b", "c"]);
    // Forwarded with `confirm`: the sender waits for `Published` with its origin_seq.
    let out = b.publish("1", &ch, wire_event("e"), None, false, true);
    let seq = match &out[..] {
        [Action::Send {
            to,
            msg:
                NodeMsg::Publish {
                    confirm: true,
                    origin_seq,
                    ..
                },
        }, Action::AwaitPublished {
            origin_seq: awaited,
        }] => {
            assert_eq!((to.as_str(), origin_seq), ("a", awaited));
            *origin_seq
        }
        other => panic!("unexpected {other:?}"),
    };
    // The owner orders it with the sender and its origin_seq to confirm to.
    let mut a = node("a", &["a", "b", "c"]);
    let publish = match out.into_iter().next() {
        Some(Action::Send { msg, .. }) => msg,
        _ => unreachable!(),
    };
    match &a.on_msg(&key("b"), publish)[..] {
        [Action::Order(o)] => assert_eq!(
            o.confirm,
            Some(Confirm::To {
                node: key("b").id,
                origin_seq: seq
            })
        ),
        other => panic!("unexpected {other:?}"),
    }
    // Published here: confirmed here; the successor is the next owner without `a`.
    match &a.publish("1", &ch, wire_event("e"), None, false, true)[..] {
        [Action::AwaitPublished { origin_seq }, Action::Order(o)] => assert_eq!(
            o.confirm,
            Some(Confirm::Here {
                origin_seq: *origin_seq
            })
        ),
        other => panic!("unexpected {other:?}"),
    }
    let without_a = owner("1", &ch, &ids(&["b", "c"])).unwrap().clone();
    assert_eq!(a.successor_of("1", &ch), Some(without_a));
    // History messages are the engine's: passed through as they came.
    let msg = crate::wire::HistoryMsg::Replicated { ack: 3 };
    assert_eq!(
        a.on_msg(&key("b"), NodeMsg::History(Box::new(msg.clone()))),
        vec![Action::History {
            from: key("b").id,
            msg
        }]
    );
    let alone = node("a", &["a"]);
    assert!(alone.successor_of("1", &ch).is_none());
}
