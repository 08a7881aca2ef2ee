//! `NodeCore`'s presence updates: the app replaced a member's `user_info` (docs/cluster.md,
//! "Presence updates").
//!
//! The route: the node the API call entered sends the update to the channel's owning node
//! (`PresenceUpdate` without `ordered`), or takes it itself when it owns the channel. The
//! owning node is the channel's order point: it checks the user is a member in its view,
//! writes the info, broadcasts `PresenceUpdate { ordered: true }` to every peer on the links
//! its `Deliver`s take (so each node sees it in the channel's order), tells its own
//! subscribers and fires the webhook, once. Each peer writes the info into its view and
//! tells its own subscribers. A node holding the user keeps the info in its own members, so
//! its next sync (a new link, a resync) carries it.

use super::{Action, NodeCore};
use crate::wire::NodeMsg;

impl NodeCore {
    /// The app updated `user_id`'s info in `channel`, or (`None`) in every presence channel
    /// of `app` the user is a member of in this node's view.
    pub fn presence_update(
        &mut self,
        app: &str,
        user_id: &str,
        user_info: &str,
        channel: Option<&str>,
    ) -> Vec<Action> {
        let channels = match channel {
            Some(c) => vec![c.to_owned()],
            None => self.presence.channels_of(app, user_id),
        };
        let mut out = Vec::new();
        for channel in channels {
            let owner = self.owner_of(app, &channel);
            if owner == self.me.id {
                self.order_presence_update(app, &channel, user_id, user_info, &mut out);
            } else {
                out.push(Action::Send {
                    to: owner,
                    msg: NodeMsg::PresenceUpdate {
                        ordered: false,
                        app: app.to_owned(),
                        channel,
                        user_id: user_id.to_owned(),
                        user_info: user_info.to_owned(),
                    },
                });
            }
        }
        out
    }

    /// A `PresenceUpdate` from a peer: to order here (`ordered` false; taken even when views
    /// disagree on the owner, as a `Publish` is), or ordered by the owning node.
    pub(super) fn on_presence_update(
        &mut self,
        ordered: bool,
        app: String,
        channel: String,
        user_id: String,
        user_info: String,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if !ordered {
            if !self.owns(&app, &channel) {
                self.counters.publish_not_owner += 1;
            }
            self.order_presence_update(&app, &channel, &user_id, &user_info, &mut out);
        } else if self.write_info(&app, &channel, &user_id, &user_info) {
            out.push(Action::MemberUpdated {
                app,
                channel,
                user_id,
                user_info,
                webhook: false,
            });
        }
        out
    }

    /// This node orders the update: a user who is not a member here changes nothing (an
    /// update is for the members of the moment; a later join brings its own info).
    fn order_presence_update(
        &mut self,
        app: &str,
        channel: &str,
        user_id: &str,
        user_info: &str,
        out: &mut Vec<Action>,
    ) {
        if !self.write_info(app, channel, user_id, user_info) {
            return;
        }
        out.push(Action::Broadcast(NodeMsg::PresenceUpdate {
            ordered: true,
            app: app.to_owned(),
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
            user_info: user_info.to_owned(),
        }));
        out.push(Action::MemberUpdated {
            app: app.to_owned(),
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
            user_info: user_info.to_owned(),
            webhook: true,
        });
    }

    /// Writes the info into the view and, when the user has connections here, into this
    /// node's own members. `false`: not a member in this view.
    fn write_info(&mut self, app: &str, channel: &str, user_id: &str, user_info: &str) -> bool {
        self.local_presence
            .update_info(app, channel, user_id, user_info);
        self.presence.update_info(app, channel, user_id, user_info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interest::InterestFilter;
    use crate::node::ViewNode;
    use crate::ownership::owner;
    use crate::{NodeId, NodeKey};

    fn key(id: &str) -> NodeKey {
        NodeKey::new(NodeId::new(id).unwrap(), 1)
    }

    fn node(me: &str) -> NodeCore {
        let mut n = NodeCore::new(key(me));
        let view = ["a", "b", "c"]
            .iter()
            .map(|id| ViewNode {
                key: key(id),
                interest: InterestFilter::default(),
                answers_queries: true,
                presence: None,
            })
            .collect();
        n.set_view(view);
        n
    }

    /// A presence channel owned by `b` among a, b and c.
    fn owned_by_b() -> String {
        let ids: Vec<NodeId> = ["a", "b", "c"]
            .iter()
            .map(|i| NodeId::new(i).unwrap())
            .collect();
        (0..100_000)
            .map(|i| format!("presence-{i}"))
            .find(|ch| owner("1", ch, &ids).unwrap().as_str() == "b")
            .unwrap()
    }

    fn updated(actions: &[Action]) -> Vec<(String, bool)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::MemberUpdated {
                    channel,
                    user_info,
                    webhook,
                    ..
                } => {
                    assert_eq!(user_info, "{\"v\":2}");
                    Some((channel.clone(), *webhook))
                }
                _ => None,
            })
            .collect()
    }

    /// The update enters at a, is ordered by b (the owner), and reaches c, which holds the
    /// user: each node emits one `MemberUpdated`, only b with the webhook, and every view
    /// (and c's own members, for its next sync) has the new info.
    #[test]
    fn an_update_goes_through_the_owner_to_every_node_once() {
        let ch = owned_by_b();
        let (mut a, mut b, mut c) = (node("a"), node("b"), node("c"));
        let join = c.presence_join("1", &ch, "u1", Some("{\"v\":1}".into()));
        assert!(matches!(
            join[0],
            Action::Broadcast(NodeMsg::PresenceJoin { .. })
        ));
        let msg = NodeMsg::PresenceJoin {
            app: "1".into(),
            channel: ch.clone(),
            user_id: "u1".into(),
            user_info: Some("{\"v\":1}".into()),
        };
        a.on_msg(&key("c"), msg.clone());
        b.on_msg(&key("c"), msg);

        let at_a = a.presence_update("1", "u1", "{\"v\":2}", None);
        let [Action::Send { to, msg }] = at_a.as_slice() else {
            panic!("sent to the owner: {at_a:?}")
        };
        assert_eq!(to.as_str(), "b");
        let at_b = b.on_msg(&key("a"), msg.clone());
        assert_eq!(updated(&at_b), [(ch.clone(), true)]);
        let ordered = at_b
            .iter()
            .find_map(|x| match x {
                Action::Broadcast(m) => Some(m.clone()),
                _ => None,
            })
            .expect("told to every peer");
        assert_eq!(
            updated(&a.on_msg(&key("b"), ordered.clone())),
            [(ch.clone(), false)]
        );
        assert_eq!(
            updated(&c.on_msg(&key("b"), ordered)),
            [(ch.clone(), false)]
        );
        for n in [&a, &b, &c] {
            assert_eq!(
                n.members("1", &ch),
                [("u1".to_owned(), Some("{\"v\":2}".to_owned()))]
            );
        }
        assert_eq!(
            c.local_presence.snapshot()[0].user_info.as_deref(),
            Some("{\"v\":2}")
        );
        // Not a member: nothing is ordered, nothing emitted.
        let none = b.presence_update("1", "u2", "{\"v\":2}", Some(&ch));
        assert!(none.is_empty(), "{none:?}");
    }
}
