//! Unit tests of `presence`.
use super::*;
use crate::NodeId;
use proptest::prelude::*;

fn key(id: &str, generation: u64) -> NodeKey {
    NodeKey::new(NodeId::new(id).unwrap(), generation)
}

fn m(ch: &str, user: &str) -> Member {
    Member {
        app: "1".into(),
        channel: ch.into(),
        user_id: user.into(),
        user_info: Some(format!("{{\"name\":\"{user}\"}}")),
    }
}

fn added(ch: &str, user: &str) -> PresenceEvent {
    PresenceEvent {
        app: "1".into(),
        channel: ch.into(),
        user_id: user.into(),
        change: Change::Added {
            user_info: m(ch, user).user_info,
        },
    }
}

fn removed(ch: &str, user: &str) -> PresenceEvent {
    PresenceEvent {
        app: "1".into(),
        channel: ch.into(),
        user_id: user.into(),
        change: Change::Removed,
    }
}

#[test]
fn local_counts_connections() {
    let mut l = LocalPresence::new();
    assert!(l.join("1", "p", "u", None).is_some());
    assert!(l.join("1", "p", "u", None).is_none());
    assert!(l.leave("1", "p", "u").is_none());
    assert!(l.contains("1", "p", "u") && !l.contains("1", "p", "v"));
    assert_eq!(l.snapshot().len(), 1);
    assert!(matches!(
        l.leave("1", "p", "u"),
        Some(LocalChange::Left { .. })
    ));
    assert!(l.leave("1", "p", "u").is_none());
    assert_eq!(l.digest(), Digest::default());
    assert!(l.snapshot().is_empty());
}

#[test]
fn a_user_on_two_nodes_goes_only_when_gone_from_both() {
    let (a, b) = (key("a", 1), key("b", 1));
    let mut p = ClusterPresence::new();
    assert!(p.set_live([a.clone(), b.clone()]).is_empty());
    assert_eq!(p.join(&a, m("p", "u")), vec![added("p", "u")]);
    assert_eq!(p.join(&b, m("p", "u")), vec![]);
    assert_eq!(p.leave(&a, "1", "p", "u"), vec![]);
    assert_eq!(p.leave(&b, "1", "p", "u"), vec![removed("p", "u")]);
    assert_eq!(p.leave(&b, "1", "p", "u"), vec![]);
}

#[test]
fn room_is_counted_over_the_union_of_live_nodes() {
    let (a, b, c) = (key("a", 1), key("b", 1), key("c", 1));
    let mut p = ClusterPresence::new();
    p.set_live([a.clone(), b.clone(), c.clone()]);
    p.join(&a, m("p", "u1"));
    p.join(&b, m("p", "u2"));
    p.join(&c, m("p", "u1"));
    // Two distinct members across three nodes: full at 2, room at 3.
    assert!(!p.has_room_for("1", "p", "u3", 2));
    assert!(p.has_room_for("1", "p", "u3", 3));
    // A member joining another tab always fits; another channel is counted apart.
    assert!(p.has_room_for("1", "p", "u2", 2));
    assert!(p.has_room_for("1", "q", "u3", 1));
    // A dead node's members no longer count.
    p.set_live([a.clone(), c.clone()]);
    assert!(p.has_room_for("1", "p", "u3", 2));
}

#[test]
fn a_dead_nodes_members_go_once() {
    let (a, c) = (key("a", 1), key("c", 1));
    let mut p = ClusterPresence::new();
    p.set_live([a.clone(), c.clone()]);
    p.link_up(&c);
    p.join(&a, m("p", "shared"));
    p.join(&c, m("p", "shared"));
    p.join(&c, m("p", "only-c"));
    p.join(&c, m("q", "only-c"));
    assert_eq!(
        p.member_count("1", "p"),
        2,
        "a user on two nodes counts once"
    );
    let ev = p.set_live([a.clone()]);
    assert_eq!(ev, vec![removed("p", "only-c"), removed("q", "only-c")]);
    assert!(p.set_live([a.clone()]).is_empty());
    assert_eq!(
        p.members("1", "p"),
        vec![("shared".into(), m("p", "shared").user_info)]
    );
    assert_eq!(p.member_count("1", "p"), 1);
}

#[test]
fn revival_with_the_link_up_brings_members_back() {
    let (a, c) = (key("a", 1), key("c", 1));
    let mut p = ClusterPresence::new();
    p.set_live([a.clone(), c.clone()]);
    p.link_up(&c);
    p.join(&c, m("p", "u"));
    assert_eq!(p.set_live([a.clone()]), vec![removed("p", "u")]);
    assert_eq!(p.set_live([a.clone(), c.clone()]), vec![added("p", "u")]);
}

#[test]
fn dead_and_unlinked_is_forgotten_and_resynced() {
    let (a, c) = (key("a", 1), key("c", 1));
    let mut p = ClusterPresence::new();
    p.set_live([a.clone(), c.clone()]);
    p.link_up(&c);
    p.join(&c, m("p", "u"));
    p.join(&c, m("p", "v"));
    p.link_down(&c);
    assert_eq!(
        p.set_live([a.clone()]),
        vec![removed("p", "u"), removed("p", "v")]
    );
    assert!(p.held_nodes() == vec![]);
    // Heal: live again, link up, full sync (v left meanwhile).
    assert!(p.set_live([a.clone(), c.clone()]).is_empty());
    p.link_up(&c);
    assert!(p.sync(&c, 0, vec![m("p", "u")], false).is_empty());
    assert_eq!(p.sync(&c, 1, vec![], true), vec![added("p", "u")]);
}

#[test]
fn a_link_blip_while_live_emits_only_real_changes() {
    let (a, c) = (key("a", 1), key("c", 1));
    let mut p = ClusterPresence::new();
    p.set_live([a.clone(), c.clone()]);
    p.link_up(&c);
    p.join(&c, m("p", "u"));
    p.join(&c, m("p", "v"));
    assert!(p.link_down(&c).is_empty());
    p.link_up(&c);
    assert_eq!(
        p.sync(&c, 0, vec![m("p", "u"), m("p", "w")], true),
        vec![removed("p", "v"), added("p", "w")]
    );
}

#[test]
fn a_departing_node_counts_until_released_and_only_if_it_was_counted() {
    let (a, b, c) = (key("a", 1), key("b", 1), key("c", 1));
    let mut p = ClusterPresence::new();
    p.set_live([a.clone(), b.clone()]);
    p.link_up(&b);
    p.join(&b, m("p", "u1"));
    p.join(&b, m("p", "u2"));
    assert!(p.depart(&b).is_empty(), "a leave changes nobody at once");
    assert!(p.set_live([a.clone()]).is_empty());
    // The held members still count against a limit of 2 ...
    assert!(!p.has_room_for("1", "p", "u3", 2));
    // ... and a held user rejoining elsewhere is a member already.
    assert!(p.has_room_for("1", "p", "u1", 2));
    assert!(p.join(&a, m("p", "u1")).is_empty(), "no flap");
    assert!(p.leave(&b, "1", "p", "u2").is_empty(), "frozen while held");
    assert_eq!(p.release(&b), vec![removed("p", "u2")]);
    assert!(p.has_room_for("1", "p", "u3", 2));
    // A node out of the live set (declared dead, link still up) is not held: its members
    // were not shown, so leaving must not show them now.
    p.link_up(&c);
    assert!(p.sync(&c, 0, vec![m("p", "ghost")], true).is_empty());
    assert!(p.depart(&c).is_empty());
    assert!(!p.is_departing(&c));
    assert_eq!(
        p.members("1", "p"),
        vec![("u1".to_string(), m("p", "u1").user_info)]
    );
}

#[test]
fn a_restart_drops_the_old_generation_without_resurrection() {
    let (a, c1, c2) = (key("a", 1), key("c", 1), key("c", 2));
    let mut p = ClusterPresence::new();
    p.set_live([a.clone(), c1.clone()]);
    p.link_up(&c1);
    p.join(&c1, m("p", "u"));
    p.join(&c1, m("p", "gone"));
    // Both generations briefly in the live set: only the newest counts.
    let ev = p.set_live([a.clone(), c1.clone(), c2.clone()]);
    assert_eq!(ev, vec![removed("p", "gone"), removed("p", "u")]);
    p.link_up(&c2);
    assert_eq!(
        p.sync(&c2, 0, vec![m("p", "u")], true),
        vec![added("p", "u")]
    );
    // Late traffic from the old run changes nothing.
    assert!(p.join(&c1, m("p", "gone")).is_empty());
    assert!(p.sync(&c1, 0, vec![m("p", "gone")], true).is_empty());
    assert!(p.set_live([a.clone(), c1.clone(), c2.clone()]).is_empty());
    assert_eq!(p.held_nodes(), vec![c2.clone()]);
    assert_eq!(p.members("1", "p").len(), 1);
}

#[test]
fn a_restart_seen_after_the_new_sync_keeps_continuing_users() {
    let (a, c1, c2) = (key("a", 1), key("c", 1), key("c", 2));
    let mut p = ClusterPresence::new();
    p.set_live([a.clone(), c1.clone()]);
    p.join(&c1, m("p", "u"));
    p.join(&c1, m("p", "gone"));
    p.link_up(&c1);
    // The new generation links and syncs before gossip shows it live.
    let ev = p.link_up(&c2);
    assert_eq!(ev, vec![removed("p", "gone"), removed("p", "u")]);
    assert!(p.sync(&c2, 0, vec![m("p", "u")], true).is_empty());
    assert_eq!(p.set_live([a.clone(), c2.clone()]), vec![added("p", "u")]);
}

#[test]
fn digests_match_between_local_and_held() {
    let (a, c) = (key("a", 1), key("c", 1));
    let mut local = LocalPresence::new();
    let mut p = ClusterPresence::new();
    p.set_live([a, c.clone()]);
    for (ch, u) in [("p", "u"), ("p", "v"), ("q", "u")] {
        if let Some(LocalChange::Joined(mm)) = local.join("1", ch, u, None) {
            p.join(&c, mm);
        }
    }
    if let Some(LocalChange::Left {
        app,
        channel,
        user_id,
    }) = local.leave("1", "p", "v")
    {
        p.leave(&c, &app, &channel, &user_id);
    }
    assert_eq!(p.digest_of(&c), Some(local.digest()));
    assert_eq!(
        Digest::decode(&local.digest().encode()),
        Some(local.digest())
    );
}

/// One step of a random history seen by an observer node.
#[derive(Clone, Debug)]
enum Step {
    Join(usize, usize, usize),
    Leave(usize, usize, usize),
    Live(Vec<bool>),
    LinkDown(usize),
    Resync(usize),
    Restart(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..3, 0usize..2, 0usize..4).prop_map(|(n, c, u)| Step::Join(n, c, u)),
        3 => (0usize..3, 0usize..2, 0usize..4).prop_map(|(n, c, u)| Step::Leave(n, c, u)),
        1 => proptest::collection::vec(any::<bool>(), 3).prop_map(Step::Live),
        1 => (0usize..3).prop_map(Step::LinkDown),
        1 => (0usize..3).prop_map(Step::Resync),
        1 => (0usize..3).prop_map(Step::Restart),
    ]
}

proptest! {
    /// Replays random histories of 3 remote nodes and checks, after every step, that the
    /// events emitted so far, folded, equal the true union of the live nodes' members,
    /// and that no user is added twice (or removed twice) in a row.
    #[test]
    fn events_track_the_union_of_live_nodes(steps in proptest::collection::vec(step(), 1..60)) {
        let mut truth: Vec<LocalPresence> = (0..3).map(|_| LocalPresence::new()).collect();
        let mut generation = [1u64; 3];
        let mut live = [true; 3];
        let mut linked = [true; 3];
        let names = ["n0", "n1", "n2"];
        let k = |i: usize, g: &[u64; 3]| key(names[i], g[i]);
        let mut p = ClusterPresence::new();
        let mut shown: BTreeSet<(String, String)> = BTreeSet::new();
        let apply = |ev: Vec<PresenceEvent>, shown: &mut BTreeSet<(String, String)>| -> Result<(), TestCaseError> {
            for e in ev {
                let id = (e.channel.clone(), e.user_id.clone());
                match e.change {
                    Change::Added { .. } => prop_assert!(shown.insert(id), "added twice"),
                    Change::Removed => prop_assert!(shown.remove(&id), "removed while absent"),
                }
            }
            Ok(())
        };
        apply(p.set_live((0..3).map(|i| k(i, &generation))), &mut shown)?;
        for i in 0..3 {
            apply(p.link_up(&k(i, &generation)), &mut shown)?;
        }
        for s in steps {
            match s {
                Step::Join(n, c, u) => {
                    if let Some(LocalChange::Joined(mm)) = truth[n].join("1", &format!("c{c}"), &format!("u{u}"), None) {
                        if linked[n] { apply(p.join(&k(n, &generation), mm), &mut shown)?; }
                    }
                }
                Step::Leave(n, c, u) => {
                    if let Some(LocalChange::Left { app, channel, user_id }) = truth[n].leave("1", &format!("c{c}"), &format!("u{u}")) {
                        if linked[n] { apply(p.leave(&k(n, &generation), &app, &channel, &user_id), &mut shown)?; }
                    }
                }
                Step::Live(l) => {
                    live.copy_from_slice(&l);
                    apply(p.set_live((0..3).filter(|i| live[*i]).map(|i| k(i, &generation))), &mut shown)?;
                }
                Step::LinkDown(n) => {
                    linked[n] = false;
                    apply(p.link_down(&k(n, &generation)), &mut shown)?;
                }
                Step::Resync(n) => {
                    linked[n] = true;
                    apply(p.link_up(&k(n, &generation)), &mut shown)?;
                    let snap: Vec<Member> = truth[n].snapshot();
                    let (first, rest) = snap.split_at(snap.len() / 2);
                    apply(p.sync(&k(n, &generation), 0, first.to_vec(), false), &mut shown)?;
                    apply(p.sync(&k(n, &generation), 1, rest.to_vec(), true), &mut shown)?;
                }
                Step::Restart(n) => {
                    // The node comes back empty with a new generation, linked and live.
                    truth[n] = LocalPresence::new();
                    generation[n] += 1;
                    live[n] = true;
                    linked[n] = true;
                    apply(p.set_live((0..3).filter(|i| live[*i]).map(|i| k(i, &generation))), &mut shown)?;
                    apply(p.link_up(&k(n, &generation)), &mut shown)?;
                    apply(p.sync(&k(n, &generation), 0, vec![], true), &mut shown)?;
                }
            }
            // Only check where the observer is in sync: every live node linked.
            if (0..3).all(|i| !live[i] || linked[i]) {
                let mut expect = BTreeSet::new();
                for i in (0..3).filter(|i| live[*i]) {
                    for mm in truth[i].snapshot() {
                        expect.insert((mm.channel, mm.user_id));
                    }
                }
                prop_assert_eq!(&shown, &expect);
                let mut listed = BTreeSet::new();
                for c in 0..2 {
                    let members = p.members("1", &format!("c{c}"));
                    prop_assert_eq!(p.member_count("1", &format!("c{c}")), members.len());
                    for (u, _) in members {
                        listed.insert((format!("c{c}"), u));
                    }
                }
                prop_assert_eq!(&listed, &expect);
            }
        }
    }
}

/// A sync missing a chunk is not applied (a partial list would remove members wrongly),
/// and a new sync starts clean (no leftovers of an unfinished one).
#[test]
fn an_incomplete_sync_is_dropped_and_the_next_starts_clean() {
    let mut p = ClusterPresence::new();
    let c = NodeKey::new(NodeId::new("c").unwrap(), 1);
    p.set_live([c.clone()]);
    p.link_up(&c);
    assert_eq!(
        p.sync(&c, 0, vec![m("p", "u")], true),
        vec![added("p", "u")]
    );
    // Part 0 (with "stale"), then part 2: part 1 was lost, so "done" applies nothing.
    assert!(p.sync(&c, 0, vec![m("p", "stale")], false).is_empty());
    assert!(p.sync(&c, 2, vec![m("p", "w")], true).is_empty());
    let ids = |p: &ClusterPresence| -> Vec<String> {
        p.members("1", "p").into_iter().map(|(id, _)| id).collect()
    };
    assert_eq!(ids(&p), ["u"]);
    // An unfinished sync (its "done" lost), then a complete one: "stale" is not in it.
    assert!(p.sync(&c, 0, vec![m("p", "stale")], false).is_empty());
    assert_eq!(
        p.sync(&c, 0, vec![m("p", "u"), m("p", "w")], true),
        vec![added("p", "w")]
    );
    assert_eq!(ids(&p), ["u", "w"]);
}

#[test]
fn an_info_update_reaches_every_holder_and_lists_only_members() {
    let mut p = ClusterPresence::new();
    let (a, b) = (key("a", 1), key("b", 1));
    p.set_live([a.clone(), b.clone()]);
    p.link_up(&b);
    p.join(&a, m("presence-r", "u1"));
    // The same user on b joined with another info: after the update both show the new one.
    p.join(&b, m("presence-r", "u9"));
    let mut other = m("presence-r", "u1");
    other.user_info = Some("{\"name\":\"other\"}".into());
    p.join(&b, other);
    p.join(&b, m("presence-s", "u1"));
    let digest = p.digest_of(&a);
    assert!(p.update_info("1", "presence-r", "u1", "{\"v\":2}"));
    assert_eq!(
        p.digest_of(&a),
        digest,
        "the digest covers members, not infos"
    );
    let info = |p: &ClusterPresence, ch: &str| {
        p.members("1", ch)
            .into_iter()
            .find(|(u, _)| u == "u1")
            .and_then(|(_, i)| i)
    };
    assert_eq!(info(&p, "presence-r").as_deref(), Some("{\"v\":2}"));
    assert_eq!(
        info(&p, "presence-s").as_deref(),
        Some("{\"name\":\"u1\"}"),
        "another channel keeps its info"
    );
    // a leaves: b's entry shows, and it was updated too.
    p.leave(&a, "1", "presence-r", "u1");
    assert_eq!(info(&p, "presence-r").as_deref(), Some("{\"v\":2}"));
    assert!(!p.update_info("1", "presence-r", "nobody", "{}"));
    assert_eq!(p.channels_of("1", "u1"), ["presence-r", "presence-s"]);
    assert_eq!(p.channels_of("2", "u1"), Vec::<String>::new());
}

#[test]
fn a_local_info_update_is_carried_by_the_next_snapshot() {
    let mut l = LocalPresence::new();
    l.join("1", "presence-r", "u1", Some("{}".into()));
    l.join("1", "presence-r", "u1", Some("{\"tab\":2}".into()));
    assert!(l.update_info("1", "presence-r", "u1", "{\"v\":2}"));
    assert!(!l.update_info("1", "presence-r", "u2", "{}"));
    assert_eq!(l.snapshot()[0].user_info.as_deref(), Some("{\"v\":2}"));
}

/// Rule 5: the info shown is the lowest counted node's, whichever node held the user first,
/// and a change of holder emits nothing. A forgotten node's slot is reused by the next node
/// without its rank or members leaking into the new one.
#[test]
fn the_lowest_live_holder_shows_its_info_and_slots_are_reused_cleanly() {
    let (a, b, c) = (key("a", 1), key("b", 1), key("c", 1));
    let mut p = ClusterPresence::new();
    p.set_live([a.clone(), b.clone(), c.clone()]);
    for n in [&a, &b, &c] {
        p.link_up(n);
    }
    let with = |info: &str| Member {
        user_info: Some(info.into()),
        ..m("p", "u1")
    };
    assert_eq!(
        p.join(&b, with("from b")),
        vec![PresenceEvent {
            change: Change::Added {
                user_info: Some("from b".into())
            },
            ..added("p", "u1")
        }]
    );
    assert!(p.join(&a, with("from a")).is_empty());
    let shown = |p: &ClusterPresence| p.members("1", "p")[0].1.clone();
    assert_eq!(shown(&p), Some("from a".into()), "a < b shows a's");
    // a dies and is forgotten: b's info, no event; its slot is free.
    assert!(p.link_down(&a).is_empty());
    assert!(p.set_live([b.clone(), c.clone()]).is_empty());
    assert_eq!(shown(&p), Some("from b".into()));
    assert_eq!(p.held_nodes(), vec![b.clone()], "c holds nothing");
    // d takes a's slot: it holds nothing of a's, and ranks after b.
    let d = key("d", 1);
    p.set_live([b.clone(), c.clone(), d.clone()]);
    p.link_up(&d);
    assert!(p.sync(&d, 0, vec![with("from d")], true).is_empty());
    assert_eq!(p.members("1", "p").len(), 1);
    assert_eq!(shown(&p), Some("from b".into()), "b < d");
    assert_eq!(p.leave(&b, "1", "p", "u1"), vec![]);
    assert_eq!(shown(&p), Some("from d".into()));
    assert_eq!(p.leave(&d, "1", "p", "u1"), vec![removed("p", "u1")]);
    assert_eq!(p.digest_of(&d), Some(Digest::default()));
}
