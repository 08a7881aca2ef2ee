//! Event kinds, per-endpoint filters and the request body. Pure functions, no I/O.

use super::WebhookEvent;
use crate::config::WebhookConfig;
use serde::Serialize;

/// The kind of a [`WebhookEvent`], as a small number for bit sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    ChannelOccupied,
    ChannelVacated,
    MemberAdded,
    MemberRemoved,
    ClientEvent,
    CacheMiss,
    SubscriptionCount,
    MemberUpdated,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::ChannelOccupied,
        Kind::ChannelVacated,
        Kind::MemberAdded,
        Kind::MemberRemoved,
        Kind::ClientEvent,
        Kind::CacheMiss,
        Kind::SubscriptionCount,
        Kind::MemberUpdated,
    ];

    /// The `name` on the wire and in `event_types`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ChannelOccupied => "channel_occupied",
            Kind::ChannelVacated => "channel_vacated",
            Kind::MemberAdded => "member_added",
            Kind::MemberRemoved => "member_removed",
            Kind::ClientEvent => "client_event",
            Kind::CacheMiss => "cache_miss",
            Kind::SubscriptionCount => "subscription_count",
            Kind::MemberUpdated => "member_updated",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A set of [`Kind`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KindSet(u16);

impl KindSet {
    pub fn all() -> KindSet {
        KindSet((1 << Kind::ALL.len()) - 1)
    }

    pub fn insert(&mut self, k: Kind) {
        self.0 |= 1 << k as u8;
    }

    pub fn contains(self, k: Kind) -> bool {
        self.0 & (1 << k as u8) != 0
    }

    pub fn union(self, other: KindSet) -> KindSet {
        KindSet(self.0 | other.0)
    }
}

impl WebhookEvent {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            WebhookEvent::ChannelOccupied { .. } => Kind::ChannelOccupied,
            WebhookEvent::ChannelVacated { .. } => Kind::ChannelVacated,
            WebhookEvent::MemberAdded { .. } => Kind::MemberAdded,
            WebhookEvent::MemberRemoved { .. } => Kind::MemberRemoved,
            WebhookEvent::ClientEvent { .. } => Kind::ClientEvent,
            WebhookEvent::CacheMiss { .. } => Kind::CacheMiss,
            WebhookEvent::SubscriptionCount { .. } => Kind::SubscriptionCount,
            WebhookEvent::MemberUpdated { .. } => Kind::MemberUpdated,
        }
    }

    /// The event's `name` on the wire, e.g. `channel_occupied`.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The channel the event is about.
    pub fn channel(&self) -> &str {
        match self {
            WebhookEvent::ChannelOccupied { channel }
            | WebhookEvent::ChannelVacated { channel }
            | WebhookEvent::MemberAdded { channel, .. }
            | WebhookEvent::MemberRemoved { channel, .. }
            | WebhookEvent::MemberUpdated { channel, .. }
            | WebhookEvent::ClientEvent { channel, .. }
            | WebhookEvent::CacheMiss { channel }
            | WebhookEvent::SubscriptionCount { channel, .. } => channel,
        }
    }
}

/// Which events one `[[apps.webhooks]]` entry wants.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    kinds: KindSet,
    channel_prefix: Option<String>,
}

impl Filter {
    /// `event_types` absent means every kind; an empty list means none. Unknown names were
    /// refused by config validation and are ignored here.
    pub fn from_config(w: &WebhookConfig) -> Filter {
        let kinds = match &w.event_types {
            None => KindSet::all(),
            Some(names) => {
                let mut set = KindSet::default();
                for k in names.iter().filter_map(|n| Kind::from_name(n)) {
                    set.insert(k);
                }
                set
            }
        };
        Filter {
            kinds,
            channel_prefix: w.channel_prefix.clone().filter(|p| !p.is_empty()),
        }
    }

    pub fn kinds(&self) -> KindSet {
        self.kinds
    }

    pub fn matches(&self, ev: &WebhookEvent) -> bool {
        self.kinds.contains(ev.kind())
            && self
                .channel_prefix
                .as_deref()
                .is_none_or(|p| ev.channel().starts_with(p))
    }
}

/// The kinds a shard hands over for one app: whatever some endpoint wants, and both halves of
/// a debounce pair when either half is wanted, so the debounce behaves the same whatever the
/// filters (a quick vacate/occupy is never reported, even to an endpoint wanting only one).
pub(crate) fn wanted_by_app(webhooks: &[WebhookConfig]) -> KindSet {
    let mut set = webhooks
        .iter()
        .map(|w| Filter::from_config(w).kinds())
        .fold(KindSet::default(), KindSet::union);
    for (a, b) in [
        (Kind::ChannelOccupied, Kind::ChannelVacated),
        (Kind::MemberAdded, Kind::MemberRemoved),
    ] {
        if set.contains(a) || set.contains(b) {
            set.insert(a);
            set.insert(b);
        }
    }
    set
}

/// The request body, fields in Pusher's order.
#[derive(Serialize)]
struct Body<'a> {
    time_ms: u64,
    events: &'a [WebhookEvent],
}

/// `{"time_ms":<time_ms>,"events":[...]}` as bytes.
pub(crate) fn encode_body(time_ms: u64, events: &[WebhookEvent]) -> Vec<u8> {
    simd_json::to_vec(&Body { time_ms, events })
        .expect("webhook events are strings and integers, always serializable")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(types: Option<&[&str]>, prefix: Option<&str>) -> WebhookConfig {
        WebhookConfig {
            url: "http://127.0.0.1:1/".into(),
            event_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
            channel_prefix: prefix.map(str::to_string),
        }
    }

    fn occupied(c: &str) -> WebhookEvent {
        WebhookEvent::ChannelOccupied { channel: c.into() }
    }

    #[test]
    fn every_event_has_pushers_exact_shape() {
        let events = vec![
            occupied("c"),
            WebhookEvent::ChannelVacated {
                channel: "c".into(),
            },
            WebhookEvent::MemberAdded {
                channel: "presence-c".into(),
                user_id: "u".into(),
            },
            WebhookEvent::MemberRemoved {
                channel: "presence-c".into(),
                user_id: "u".into(),
            },
            WebhookEvent::ClientEvent {
                channel: "c".into(),
                event: "client-x".into(),
                data: "..".into(),
                socket_id: "1.2".into(),
                user_id: Some("u".into()),
            },
            WebhookEvent::ClientEvent {
                channel: "private-c".into(),
                event: "client-x".into(),
                data: r#"{"a":"b\n"}"#.into(),
                socket_id: "1.2".into(),
                user_id: None,
            },
            WebhookEvent::CacheMiss {
                channel: "cache-c".into(),
            },
            WebhookEvent::SubscriptionCount {
                channel: "c".into(),
                subscription_count: 12,
            },
            WebhookEvent::MemberUpdated {
                channel: "presence-c".into(),
                user_id: "u".into(),
                user_info: crate::webhook::UserInfo(r#"{"name":"Ada","n":[1,2]}"#.into()),
            },
        ];
        let body = String::from_utf8(encode_body(1327078148132, &events)).unwrap();
        let expected = concat!(
            r#"{"time_ms":1327078148132,"events":["#,
            r#"{"name":"channel_occupied","channel":"c"},"#,
            r#"{"name":"channel_vacated","channel":"c"},"#,
            r#"{"name":"member_added","channel":"presence-c","user_id":"u"},"#,
            r#"{"name":"member_removed","channel":"presence-c","user_id":"u"},"#,
            r#"{"name":"client_event","channel":"c","event":"client-x","data":"..","socket_id":"1.2","user_id":"u"},"#,
            r#"{"name":"client_event","channel":"private-c","event":"client-x","data":"{\"a\":\"b\\n\"}","socket_id":"1.2"},"#,
            r#"{"name":"cache_miss","channel":"cache-c"},"#,
            r#"{"name":"subscription_count","channel":"c","subscription_count":12},"#,
            r#"{"name":"member_updated","channel":"presence-c","user_id":"u","user_info":{"name":"Ada","n":[1,2]}}"#,
            "]}"
        );
        assert_eq!(body, expected);
        for ev in &events {
            assert_eq!(Kind::from_name(ev.name()), Some(ev.kind()));
        }
    }

    #[test]
    fn filter_by_type_and_prefix() {
        let all = Filter::from_config(&cfg(None, None));
        assert!(all.matches(&occupied("x")));
        assert!(all.matches(&WebhookEvent::CacheMiss {
            channel: "cache-x".into()
        }));

        let some = Filter::from_config(&cfg(Some(&["channel_vacated"]), Some("private-")));
        assert!(!some.matches(&occupied("private-a")), "type not listed");
        let vacated = |c: &str| WebhookEvent::ChannelVacated { channel: c.into() };
        assert!(some.matches(&vacated("private-a")));
        assert!(!some.matches(&vacated("presence-a")), "prefix");

        let none = Filter::from_config(&cfg(Some(&[]), None));
        assert!(!none.matches(&occupied("x")), "an empty list wants nothing");

        let empty_prefix = Filter::from_config(&cfg(None, Some("")));
        assert!(empty_prefix.matches(&occupied("x")));
    }

    #[test]
    fn shards_hand_over_both_halves_of_a_debounce_pair() {
        let set = wanted_by_app(&[cfg(Some(&["channel_vacated"]), None)]);
        assert!(set.contains(Kind::ChannelOccupied) && set.contains(Kind::ChannelVacated));
        assert!(!set.contains(Kind::MemberAdded) && !set.contains(Kind::ClientEvent));

        let set = wanted_by_app(&[
            cfg(Some(&["member_added"]), None),
            cfg(Some(&["cache_miss"]), None),
        ]);
        assert!(set.contains(Kind::MemberRemoved) && set.contains(Kind::CacheMiss));
        assert!(!set.contains(Kind::ChannelOccupied));

        assert_eq!(wanted_by_app(&[]), KindSet::default());
        assert_eq!(wanted_by_app(&[cfg(None, None)]), KindSet::all());
    }
}
