//! The channel-owner rules without I/O: whether a subscription is counted ([`admit`]:
//! presence room, the app's `max_channels`), what a counted subscription or an
//! unsubscription means in each mode ([`on_subscribe`], [`on_unsubscribe`]: occupied,
//! member added or removed, vacated, held in a cluster), and when a `subscription_count` is
//! sent ([`Counts`]: at once, or at most every [`COUNT_THROTTLE`] above
//! [`COUNT_THROTTLE_ABOVE`] subscribers). The counting itself, presence members and the
//! multi-tab rule (a member per user, however many connections) are
//! [`OwnedChannels`]'s. The shell in `owner.rs` builds the frames, sends them and emits the
//! webhooks; these rules are unit-tested in `rules/tests.rs`.

use crate::app::{App, AppIdx};
use crate::channel::name::ChannelKind;
use crate::channel::owned::{Change, OwnedChannels};
use crate::placement::ShardId;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

/// Above this many subscribers, `subscription_count` events are sent at most every
/// [`COUNT_THROTTLE`] (Pusher's rule).
pub(super) const COUNT_THROTTLE_ABOVE: u32 = 100;
pub(super) const COUNT_THROTTLE: Duration = Duration::from_secs(5);

/// An owned channel of an app.
type Key = (AppIdx, Arc<str>);

/// Why the owner does not count a subscription: answered `LimitReached`, status 403.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A new member would pass the app's `max_presence_members`.
    PresenceFull { max: usize },
    /// A new channel would pass the app's `max_channels`.
    TooManyChannels { max: usize },
}

impl Refusal {
    /// The message of the `pusher:subscription_error`.
    pub(super) fn why(&self) -> String {
        match self {
            Refusal::PresenceFull { max } => format!("presence channel is full ({max} members)"),
            Refusal::TooManyChannels { max } => format!("the app has {max} channels already"),
        }
    }
}

/// Counts a subscription from shard `from` (joining `member`, if given) unless app `a`'s
/// limits refuse it. A user already a member always fits (another tab); a channel is
/// counted against `max_channels` before it opens, in one step across every owner shard
/// ([`App::open_channel`]), so only an opening subscription can be refused for it.
pub(super) fn admit(
    owned: &mut OwnedChannels,
    app: AppIdx,
    a: &App,
    channel: &Arc<str>,
    from: ShardId,
    member: Option<(&Arc<str>, Option<&str>)>,
) -> Result<Change, Refusal> {
    if let Some((user, _)) = member {
        if !owned.has_room_for(app, channel, user, a.max_presence_members) {
            return Err(Refusal::PresenceFull {
                max: a.max_presence_members,
            });
        }
    }
    let opens = owned.get(app, channel).is_none();
    if opens && !a.open_channel() {
        return Err(Refusal::TooManyChannels {
            max: a.max_channels.unwrap_or_default(),
        });
    }
    let change = owned.subscribe(app, channel, from, member);
    debug_assert_eq!(
        change.occupancy, opens,
        "a channel opens with its first subscriber"
    );
    Ok(change)
}

/// What the owner does after counting a subscription, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnSubscribe {
    /// Cluster: hold the subscription until the owning node has this node's interest,
    /// announcing it if this is the channel's `first` subscription here (`held`). The
    /// gateway then answers a presence one with the cluster-wide members, and the owning
    /// node fires `channel_occupied` and `member_added`.
    Hold { first: bool },
    /// Single node: emit `channel_occupied`.
    Occupied,
    /// Single node: the user's first connection to the channel: `member_added` to the
    /// other subscribers, and its webhook.
    MemberAdded,
    /// Single node: answer `subscription_succeeded` (with the members of a presence
    /// channel, and a cache channel's replay).
    Answer,
    /// The subscription count changed ([`Counts::changed`]).
    CountChanged,
}

/// What a counted subscription (`change`) means, in cluster mode or on a single node.
pub(super) fn on_subscribe(change: &Change, clustered: bool) -> Vec<OnSubscribe> {
    if clustered {
        return vec![
            OnSubscribe::Hold {
                first: change.occupancy,
            },
            OnSubscribe::CountChanged,
        ];
    }
    let mut out = Vec::with_capacity(4);
    if change.occupancy {
        out.push(OnSubscribe::Occupied);
    }
    if change.member {
        out.push(OnSubscribe::MemberAdded);
    }
    out.extend([OnSubscribe::Answer, OnSubscribe::CountChanged]);
    out
}

/// What the owner does after counting an unsubscription, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnUnsubscribe {
    /// Cluster: the channel's last subscription here left: answer anything still held, and
    /// withdraw this node's interest.
    WithdrawInterest,
    /// Cluster: the user's last connection here left the channel; cluster-wide presence
    /// decides `member_removed` (the user may be on another node).
    Leave,
    /// Single node: the user's last connection left: `member_removed` to the subscribers,
    /// and its webhook.
    MemberRemoved,
    /// The channel is empty: one occupied channel less for the app's `max_channels`.
    CloseChannel,
    /// Single node: emit `channel_vacated` (in a cluster the owning node does).
    Vacated,
    /// The subscription count changed ([`Counts::changed`]).
    CountChanged,
}

/// What an unsubscription (`change`) means, in cluster mode or on a single node.
pub(super) fn on_unsubscribe(change: &Change, clustered: bool) -> Vec<OnUnsubscribe> {
    let mut out = Vec::with_capacity(4);
    if change.occupancy && clustered {
        out.push(OnUnsubscribe::WithdrawInterest);
    }
    if change.member {
        out.push(if clustered {
            OnUnsubscribe::Leave
        } else {
            OnUnsubscribe::MemberRemoved
        });
    }
    if change.occupancy {
        out.push(OnUnsubscribe::CloseChannel);
        if !clustered {
            out.push(OnUnsubscribe::Vacated);
        }
    }
    out.push(OnUnsubscribe::CountChanged);
    out
}

/// The `subscription_count` throttle over the owner's channels and the shard's set of
/// channels whose count changed while throttled (the `owned` and `count_dirty` fields of
/// the shard). What "send" means is the shell's: on a single node, the event to the
/// channel's subscribers and its webhook; in a cluster, this node's count to the channel's
/// owning node, which tells every subscriber the cluster-wide sum.
pub(super) struct Counts<'a> {
    owned: &'a mut OwnedChannels,
    dirty: &'a mut HashSet<Key>,
}

impl<'a> Counts<'a> {
    pub(super) fn new(owned: &'a mut OwnedChannels, dirty: &'a mut HashSet<Key>) -> Counts<'a> {
        Counts { owned, dirty }
    }

    /// A channel's subscription count changed: `Some(count)` to send now (its time is
    /// noted), or `None` (later, from [`Counts::due`], when throttled; never for apps that
    /// did not `enable` it, or on presence channels). A channel whose last subscriber here
    /// left sends 0 in a cluster (the other nodes may still have some) and nothing on a
    /// single node (nobody is left to tell).
    pub(super) fn changed(
        &mut self,
        app: AppIdx,
        channel: &Arc<str>,
        enabled: bool,
        clustered: bool,
        now: Instant,
    ) -> Option<u32> {
        if !enabled || ChannelKind::of(channel).is_presence() {
            return None;
        }
        let Some(o) = self.owned.get_mut(app, channel) else {
            if clustered {
                self.dirty.remove(&(app, channel.clone()));
                return Some(0);
            }
            return None;
        };
        let throttled = o.total > COUNT_THROTTLE_ABOVE
            && o.count_sent_at
                .is_some_and(|t| now.saturating_duration_since(t) < COUNT_THROTTLE);
        if throttled {
            self.dirty.insert((app, channel.clone()));
            return None;
        }
        o.count_sent_at = Some(now);
        Some(o.total)
    }

    /// The throttled counts whose time has come, to send now (their time is noted): every
    /// channel marked by [`Counts::changed`] whose last count is [`COUNT_THROTTLE`] old,
    /// with its count as of now. A channel gone meanwhile is forgotten, and sends nothing.
    pub(super) fn due(&mut self, now: Instant) -> Vec<(AppIdx, Arc<str>, u32)> {
        let owned = &mut *self.owned;
        let mut out = Vec::new();
        self.dirty.retain(|(app, channel)| {
            let Some(o) = owned.get_mut(*app, channel) else {
                return false;
            };
            if o.count_sent_at
                .is_some_and(|t| now.saturating_duration_since(t) < COUNT_THROTTLE)
            {
                return true;
            }
            o.count_sent_at = Some(now);
            out.push((*app, channel.clone(), o.total));
            false
        });
        out
    }
}
