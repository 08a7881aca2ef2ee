//! A node's full member list while its sync arrives, chunk by chunk ([`Incoming`]); it
//! replaces what is held about the node only once complete.

use super::store::Store;
use super::{ChannelKey, Member};
use compact_str::CompactString;
use std::cmp::Ordering;
use std::sync::Arc;

/// `(channel, user, info)`: one member of the list.
pub(super) type Listed = (Arc<ChannelKey>, CompactString, Option<Box<str>>);

/// The members received so far, in arrival order until [`Incoming::finish`].
#[derive(Debug, Default)]
pub(super) struct Incoming(Vec<Listed>);

fn order(a: &Listed, b: &Listed) -> Ordering {
    (&*a.0, &a.1).cmp(&(&*b.0, &b.1))
}

impl Incoming {
    /// Channel names already held are shared with the store rather than copied.
    pub(super) fn push(&mut self, store: &Store, m: Member) {
        let key = store.intern((m.app, m.channel));
        let info = m.user_info.map(String::into_boxed_str);
        self.0.push((key, m.user_id.into(), info));
    }

    /// The complete list, sorted by channel and user, one entry per pair (the last one
    /// received wins, as a later join would).
    pub(super) fn finish(mut self) -> Complete {
        self.0.reverse();
        self.0.sort_by(order);
        self.0
            .dedup_by(|later, earlier| order(later, earlier) == Ordering::Equal);
        Complete(self.0)
    }
}

/// A complete list, sorted.
pub(super) struct Complete(Vec<Listed>);

impl Complete {
    pub(super) fn has(&self, key: &ChannelKey, user: &str) -> bool {
        self.0
            .binary_search_by(|(k, u, _)| (&**k, u.as_str()).cmp(&(key, user)))
            .is_ok()
    }

    pub(super) fn into_members(self) -> impl Iterator<Item = Listed> {
        self.0.into_iter()
    }
}
