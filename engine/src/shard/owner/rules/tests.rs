//! Unit tests of the owner rules: each drives a real [`OwnedChannels`] and checks the exact
//! decisions.
use super::*;
use crate::app::Apps;
use crate::config::AppConfig;

/// App 0, as configured by `edit`.
fn app(edit: impl FnOnce(&mut AppConfig)) -> Arc<App> {
    let mut cfg = AppConfig::new("1", "k", "s");
    edit(&mut cfg);
    Apps::new(&[cfg]).get(0).clone()
}

fn name(s: &str) -> Arc<str> {
    Arc::from(s)
}

fn change(occupancy: bool, member: bool) -> Change {
    Change { occupancy, member }
}

/// Subscribes `user` (with no user info) to `channel` from shard 0.
fn join(
    owned: &mut OwnedChannels,
    a: &App,
    channel: &Arc<str>,
    user: &Arc<str>,
) -> Result<Change, Refusal> {
    admit(owned, 0, a, channel, 0, Some((user, None)))
}

#[test]
fn a_full_presence_channel_refuses_new_members_but_not_another_tab() {
    let a = app(|c| c.max_presence_members = 1);
    let mut owned = OwnedChannels::new(1);
    let (c, u1, u2) = (name("presence-r"), name("u1"), name("u2"));
    assert_eq!(join(&mut owned, &a, &c, &u1), Ok(change(true, true)));
    assert_eq!(
        join(&mut owned, &a, &c, &u2),
        Err(Refusal::PresenceFull { max: 1 })
    );
    assert_eq!(
        owned.get(0, &c).unwrap().total,
        1,
        "a refusal counts nothing"
    );
    assert_eq!(
        join(&mut owned, &a, &c, &u1),
        Ok(change(false, false)),
        "u1's second tab"
    );
    assert_eq!(owned.get(0, &c).unwrap().total, 2);
}

#[test]
fn a_new_channel_past_max_channels_is_refused() {
    let a = app(|c| c.max_channels = Some(1));
    let mut owned = OwnedChannels::new(2);
    let (x, y) = (name("x"), name("y"));
    assert_eq!(
        admit(&mut owned, 0, &a, &x, 0, None),
        Ok(change(true, false))
    );
    assert_eq!(
        admit(&mut owned, 0, &a, &y, 0, None),
        Err(Refusal::TooManyChannels { max: 1 })
    );
    assert!(
        owned.get(0, &y).is_none(),
        "a refused channel does not open"
    );
    assert_eq!(
        admit(&mut owned, 0, &a, &x, 1, None),
        Ok(change(false, false)),
        "an open channel takes more subscribers"
    );
    // The shell closes the channel when it empties (OnUnsubscribe::CloseChannel).
    owned.unsubscribe(0, &x, 0, None);
    owned.unsubscribe(0, &x, 1, None);
    a.close_channel();
    assert_eq!(
        admit(&mut owned, 0, &a, &y, 0, None),
        Ok(change(true, false))
    );
}

#[test]
fn refusals_explain_the_limit() {
    assert_eq!(
        Refusal::PresenceFull { max: 100 }.why(),
        "presence channel is full (100 members)"
    );
    assert_eq!(
        Refusal::TooManyChannels { max: 7 }.why(),
        "the app has 7 channels already"
    );
}

/// A single node: the multi-tab rule decides member_added and member_removed, occupancy
/// decides the webhooks.
#[test]
fn a_single_node_announces_members_and_occupancy_itself() {
    use OnSubscribe as S;
    use OnUnsubscribe as U;
    let a = app(|_| {});
    let mut owned = OwnedChannels::new(2);
    let (c, u1, u2) = (name("presence-r"), name("u1"), name("u2"));
    let sub = |owned: &mut OwnedChannels, u: &Arc<str>| {
        on_subscribe(&join(owned, &a, &c, u).unwrap(), false)
    };
    let unsub = |owned: &mut OwnedChannels, shard, u: &str| {
        on_unsubscribe(&owned.unsubscribe(0, &c, shard, Some(u)), false)
    };
    assert_eq!(
        sub(&mut owned, &u1),
        [S::Occupied, S::MemberAdded, S::Answer, S::CountChanged]
    );
    assert_eq!(
        sub(&mut owned, &u1),
        [S::Answer, S::CountChanged],
        "a second tab"
    );
    assert_eq!(
        sub(&mut owned, &u2),
        [S::MemberAdded, S::Answer, S::CountChanged]
    );
    assert_eq!(
        unsub(&mut owned, 0, "u1"),
        [U::CountChanged],
        "one tab left"
    );
    assert_eq!(
        unsub(&mut owned, 0, "u1"),
        [U::MemberRemoved, U::CountChanged]
    );
    assert_eq!(
        unsub(&mut owned, 0, "u2"),
        [
            U::MemberRemoved,
            U::CloseChannel,
            U::Vacated,
            U::CountChanged
        ]
    );
    assert_eq!(
        on_subscribe(&change(true, false), false),
        [S::Occupied, S::Answer, S::CountChanged],
        "a channel without presence"
    );
    assert_eq!(
        on_unsubscribe(&change(true, false), false),
        [U::CloseChannel, U::Vacated, U::CountChanged]
    );
}

/// A cluster: subscriptions are held (the first announced), presence leaves go through
/// the gateway, and no occupancy webhook fires here (the owning node fires it once).
#[test]
fn a_cluster_node_holds_subscriptions_and_leaves_the_webhooks_to_the_owning_node() {
    use OnSubscribe as S;
    use OnUnsubscribe as U;
    let a = app(|_| {});
    let mut owned = OwnedChannels::new(2);
    let (c, u1) = (name("presence-r"), name("u1"));
    let first = join(&mut owned, &a, &c, &u1).unwrap();
    assert_eq!(
        on_subscribe(&first, true),
        [S::Hold { first: true }, S::CountChanged]
    );
    let tab = join(&mut owned, &a, &c, &u1).unwrap();
    assert_eq!(
        on_subscribe(&tab, true),
        [S::Hold { first: false }, S::CountChanged]
    );
    let left = owned.unsubscribe(0, &c, 0, Some("u1"));
    assert_eq!(
        on_unsubscribe(&left, true),
        [U::CountChanged],
        "one tab left"
    );
    let last = owned.unsubscribe(0, &c, 0, Some("u1"));
    assert_eq!(
        on_unsubscribe(&last, true),
        [
            U::WithdrawInterest,
            U::Leave,
            U::CloseChannel,
            U::CountChanged
        ]
    );
    assert_eq!(
        on_unsubscribe(&change(false, true), true),
        [U::Leave, U::CountChanged]
    );
    assert_eq!(
        on_unsubscribe(&change(false, false), true),
        [U::CountChanged],
        "nothing counted: only the count"
    );
}

/// `n` subscribers of `channel` of app 0, from shard 0.
fn with_subscribers(channel: &Arc<str>, n: u32) -> OwnedChannels {
    let mut owned = OwnedChannels::new(1);
    for _ in 0..n {
        owned.subscribe(0, channel, 0, None);
    }
    owned
}

/// No count due.
fn nothing() -> Vec<(AppIdx, Arc<str>, u32)> {
    Vec::new()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn up_to_100_subscribers_every_count_is_sent_at_once() {
    let c = name("c");
    let mut owned = with_subscribers(&c, COUNT_THROTTLE_ABOVE);
    let mut dirty = HashSet::new();
    let t0 = Instant::now();
    let mut counts = Counts::new(&mut owned, &mut dirty);
    assert_eq!(counts.changed(0, &c, true, false, t0), Some(100));
    assert_eq!(counts.changed(0, &c, true, false, t0 + ms(1)), Some(100));
    assert!(dirty.is_empty());
}

#[test]
fn above_100_subscribers_a_count_is_sent_at_most_every_5_s() {
    let c = name("c");
    let mut owned = with_subscribers(&c, COUNT_THROTTLE_ABOVE + 1);
    let mut dirty = HashSet::new();
    let t0 = Instant::now();
    assert_eq!(
        Counts::new(&mut owned, &mut dirty).changed(0, &c, true, false, t0),
        Some(101),
        "none sent yet"
    );
    owned.subscribe(0, &c, 0, None);
    assert_eq!(
        Counts::new(&mut owned, &mut dirty).changed(0, &c, true, false, t0 + ms(1000)),
        None
    );
    assert_eq!(dirty.len(), 1, "marked for later");
    assert_eq!(
        Counts::new(&mut owned, &mut dirty).due(t0 + COUNT_THROTTLE - ms(1)),
        nothing()
    );
    owned.subscribe(0, &c, 0, None);
    assert_eq!(
        Counts::new(&mut owned, &mut dirty).due(t0 + COUNT_THROTTLE),
        [(0, c.clone(), 103)],
        "the count as of now"
    );
    assert!(dirty.is_empty());
    assert_eq!(
        Counts::new(&mut owned, &mut dirty).due(t0 + COUNT_THROTTLE * 2),
        nothing(),
        "sent once"
    );
    assert_eq!(
        Counts::new(&mut owned, &mut dirty).changed(
            0,
            &c,
            true,
            false,
            t0 + COUNT_THROTTLE + ms(1)
        ),
        None,
        "throttled from the last send"
    );
}

#[test]
fn presence_channels_and_apps_without_counts_send_none() {
    let (c, p) = (name("c"), name("presence-p"));
    let mut owned = with_subscribers(&c, 1);
    owned.subscribe(0, &p, 0, Some((&name("u"), None)));
    let mut dirty = HashSet::new();
    let now = Instant::now();
    let mut counts = Counts::new(&mut owned, &mut dirty);
    assert_eq!(counts.changed(0, &c, false, false, now), None, "disabled");
    assert_eq!(counts.changed(0, &p, true, false, now), None, "presence");
    assert_eq!(counts.changed(0, &p, true, true, now), None, "presence");
    assert!(owned.get(0, &c).unwrap().count_sent_at.is_none());
    assert!(dirty.is_empty());
}

/// The last subscriber here left: a cluster reports 0 (other nodes may have subscribers)
/// and forgets a pending count; a single node has nobody to tell.
#[test]
fn an_emptied_channel_sends_zero_in_a_cluster_only() {
    let c = name("c");
    let t0 = Instant::now();
    for clustered in [true, false] {
        let mut owned = with_subscribers(&c, COUNT_THROTTLE_ABOVE + 2);
        let mut dirty = HashSet::new();
        let mut counts = Counts::new(&mut owned, &mut dirty);
        assert_eq!(counts.changed(0, &c, true, clustered, t0), Some(102));
        assert_eq!(counts.changed(0, &c, true, clustered, t0 + ms(1)), None);
        for _ in 0..COUNT_THROTTLE_ABOVE + 2 {
            owned.unsubscribe(0, &c, 0, None);
        }
        let mut counts = Counts::new(&mut owned, &mut dirty);
        let emptied = counts.changed(0, &c, true, clustered, t0 + ms(2));
        assert_eq!(emptied, clustered.then_some(0), "clustered: {clustered}");
        assert_eq!(
            counts.due(t0 + COUNT_THROTTLE * 2),
            [],
            "the pending count is dropped"
        );
        assert!(dirty.is_empty());
    }
}
