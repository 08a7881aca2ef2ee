//! `NodeCore`'s subscription counts: this node's own counts go to each channel's owner,
//! and as an owner it sums the live nodes' counts ([`crate::counts::CountTable`]). The rules
//! are in the module documentation of `node`.

use super::{Action, NodeCore};
use crate::counts::Total;
use crate::ownership::owner;
use crate::wire::NodeMsg;
use crate::NodeId;

impl NodeCore {
    /// Counts after a live change: the owner forgets channels that moved away and the
    /// reports of nodes no longer live (announcing the totals that changed); this node
    /// re-sends its own counts of channels whose owner changed, so a new owner (itself
    /// included) starts from every node's report.
    pub(super) fn counts_after_live_change(
        &mut self,
        old_owner: Vec<((String, String), NodeId)>,
        out: &mut Vec<Action>,
    ) {
        let live_ids = self.live_ids.clone();
        let me = self.me.id.clone();
        self.counts
            .retain_channels(|app, ch| owner(app, ch, &live_ids).is_none_or(|o| *o == me));
        let live = &self.live;
        let totals = self.counts.retain_nodes(|n| live.contains(n));
        out.extend(totals.into_iter().map(Self::count_action));
        for ((app, channel), was) in old_owner {
            if self.owner_of(&app, &channel) != was {
                let count = self.local_counts.get(&(app.clone(), channel.clone()));
                let count = count.copied().unwrap_or(0);
                out.extend(self.route_count(&app, &channel, count));
            }
        }
    }

    pub(super) fn count_action(t: Total) -> Action {
        Action::SubscriptionCount {
            app: t.app,
            channel: t.channel,
            count: t.count,
        }
    }

    /// Sends this node's count to the channel's owner, or counts it here when that is us.
    fn route_count(&mut self, app: &str, channel: &str, count: u32) -> Option<Action> {
        let owner = self.owner_of(app, channel);
        if owner == self.me.id {
            let me = self.me.clone();
            let total = self.counts.report(&me, app, channel, count);
            return total.map(Self::count_action);
        }
        Some(Action::Send {
            to: owner,
            msg: NodeMsg::Count {
                app: app.to_owned(),
                channel: channel.to_owned(),
                count,
            },
        })
    }

    /// This node now has `count` subscriptions to a counted channel (0: none left); called
    /// by the local owner when its throttled count is due.
    pub fn count(&mut self, app: &str, channel: &str, count: u32) -> Vec<Action> {
        let id = (app.to_owned(), channel.to_owned());
        if count == 0 {
            self.local_counts.remove(&id);
        } else {
            self.local_counts.insert(id, count);
        }
        self.route_count(app, channel, count).into_iter().collect()
    }

    /// Owner side, for tests: the channels whose counts are held.
    pub fn counted_channels(&self) -> usize {
        self.counts.len()
    }
}
