//! Presence updates (docs/protocol.md, "Presence updates"): the app replaces a member's
//! `user_info` without a rejoin. On a single node the owner shard of each channel is its
//! order point, as for `member_added`: it writes the info of the member (all its
//! connections), so later `subscription_succeeded` lists carry it, sends
//! `raptor:member_updated` through the channel's fanout (in order with the channel's other
//! events) and fires the `member_updated` webhook, once. In a cluster the gateway takes the
//! update to the channel's owning node (`raptor_cluster::node`, `presence_update`).

use super::msg::{GatewayMsg, ShardMsg};
use super::Shard;
use crate::app::AppIdx;
use crate::channel::name::ChannelKind;
use crate::protocol::server as frames;
use crate::webhook::{UserInfo, WebhookEvent};
use std::sync::Arc;
use std::time::Instant;

/// An update of a member's info, checked at the edge.
#[derive(Debug, Clone)]
pub struct PresenceUpdate {
    pub app: AppIdx,
    pub user_id: Arc<str>,
    /// Compact JSON, an object no larger than the app's `max_presence_user_info_bytes`.
    pub user_info: Arc<str>,
    /// One presence channel; `None`: every presence channel the user is a member of.
    pub channel: Option<Arc<str>>,
}

impl Shard {
    /// HTTP: sends the update to its order points: the owner shard of the channel, every
    /// shard (each owns some channels) when no channel is named, or the gateway in a cluster.
    /// Like a publish it does not wait for the members to be told.
    pub fn update_presence(&self, update: PresenceUpdate) {
        if self.clustered {
            return self.to_gateway(GatewayMsg::PresenceUpdate(update));
        }
        match &update.channel {
            Some(channel) => {
                let owner = self.owner_of(update.app, channel);
                self.mesh.send(owner, ShardMsg::PresenceUpdate(update));
            }
            None => {
                for shard in 0..self.nr_shards {
                    self.mesh
                        .send(shard, ShardMsg::PresenceUpdate(update.clone()));
                }
            }
        }
    }

    /// Single node, as the owner of its channels: the members of `update.user_id` (in the
    /// named channel, or in every presence channel this shard owns) take the info, and each
    /// such channel's subscribers get `raptor:member_updated`, the member's own connections
    /// included. A user who is not a member changes nothing.
    pub(super) fn owner_presence_update(&self, update: PresenceUpdate) {
        let PresenceUpdate {
            app,
            user_id,
            user_info,
            channel,
        } = update;
        let changed =
            self.owned
                .borrow_mut()
                .update_info(app, &user_id, &user_info, channel.as_deref());
        for channel in changed {
            let frame = frames::member_updated(&channel, &user_id, &user_info);
            // As member events: on a privileged channel only privileged members see others.
            let privileged = ChannelKind::of(&channel).privileged;
            self.fan_out(app, &channel, &frame, None, privileged, Instant::now());
            self.webhooks.emit(
                app,
                WebhookEvent::MemberUpdated {
                    channel: channel.to_string(),
                    user_id: user_id.to_string(),
                    user_info: UserInfo(user_info.to_string()),
                },
            );
        }
    }
}
