//! `NodeCore`'s own members: a local connection joins or leaves a presence channel. Each
//! change is broadcast to every peer, applied to the cluster-wide view (which decides the
//! member events) and gossiped as this node's member digest (anti-entropy).

use super::{Action, NodeCore};
use crate::presence::LocalChange;
use crate::wire::NodeMsg;

impl NodeCore {
    pub(super) fn presence_gossip(&self) -> Action {
        Action::Gossip(vec![(
            crate::membership::KEY_PRESENCE.to_owned(),
            Some(self.local_presence.digest().encode()),
        )])
    }

    /// A local connection joined a presence channel as `user_id`.
    pub fn presence_join(
        &mut self,
        app: &str,
        channel: &str,
        user_id: &str,
        user_info: Option<String>,
    ) -> Vec<Action> {
        let Some(LocalChange::Joined(m)) =
            self.local_presence.join(app, channel, user_id, user_info)
        else {
            return Vec::new();
        };
        let mut out = vec![Action::Broadcast(NodeMsg::PresenceJoin {
            app: m.app.clone(),
            channel: m.channel.clone(),
            user_id: m.user_id.clone(),
            user_info: m.user_info.clone(),
        })];
        let me = self.me.clone();
        let events = self.presence.join(&me, m);
        out.extend(self.presence_actions(events));
        out.push(self.presence_gossip());
        out
    }

    /// A local connection of `user_id` left a presence channel.
    pub fn presence_leave(&mut self, app: &str, channel: &str, user_id: &str) -> Vec<Action> {
        if self.local_presence.leave(app, channel, user_id).is_none() {
            return Vec::new();
        }
        let mut out = vec![Action::Broadcast(NodeMsg::PresenceLeave {
            app: app.to_owned(),
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
        })];
        let me = self.me.clone();
        let events = self.presence.leave(&me, app, channel, user_id);
        out.extend(self.presence_actions(events));
        out.push(self.presence_gossip());
        out
    }
}
