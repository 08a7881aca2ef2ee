//! `GET /apps/{id}/channels` and `GET /apps/{id}/channels/{name}`.

use super::request::Request;
use super::response::Response;
use crate::app::App;
use crate::channel::name::{self, ChannelKind};
use crate::shard::msg::ClusterAsk;
use crate::shard::{ChannelFigures, Shard};
use serde::Serialize;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// Attributes of one channel, serialized in Pusher's field order.
#[derive(Serialize, Default, Debug)]
pub struct ChannelAttrs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occupied: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheInfo>,
}

/// `info=cache`: the cached event's data and its remaining TTL in seconds.
#[derive(Serialize, Debug)]
pub struct CacheInfo {
    pub data: String,
    pub ttl: u64,
}

pub fn info_list(s: Option<&str>) -> Vec<String> {
    s.map(|i| {
        i.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

pub fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    simd_json::to_vec(v).expect("in-memory serialization")
}

/// The requested attributes of one channel, asked of its owner (and, in a cluster, of every
/// other node: `occupied` and `subscription_count` are cluster-wide). `occupied` is always
/// set, but cluster-wide only when `occupied` is asked for (it costs a round trip to the
/// other nodes); callers that do not show it pass false and clear it.
pub async fn channel_attributes(
    shard: &Rc<Shard>,
    app: &App,
    channel: &Arc<str>,
    info: &[String],
    occupied: bool,
) -> Result<ChannelAttrs, Response> {
    let ChannelFigures {
        subscription_count,
        user_count,
        cache,
    } = shard.channel_figures(app.idx, channel).await?;
    let wants = |k: &str| info.iter().any(|i| i == k);
    let subscription_count = if shard.clustered && (occupied || wants("subscription_count")) {
        // The other nodes' subscribers; those that did not answer in time are left out.
        let ask = ClusterAsk::Channel(channel.clone());
        let g = shard.cluster_gather(app.idx, ask).await?;
        let total = u64::from(subscription_count) + g.subscription_count;
        u32::try_from(total).unwrap_or(u32::MAX)
    } else {
        subscription_count
    };
    let kind = ChannelKind::of(channel);
    let user_count = if shard.clustered && wants("user_count") && kind.is_presence() {
        // Members live on every node: the gateway holds the cluster-wide view.
        shard.member_ids(app.idx, channel.clone()).await?.len() as u32
    } else {
        user_count
    };
    Ok(ChannelAttrs {
        occupied: Some(subscription_count > 0),
        user_count: (wants("user_count") && kind.is_presence()).then_some(user_count),
        subscription_count: wants("subscription_count").then_some(subscription_count),
        cache: if wants("cache") && kind.cache {
            cache.map(|(data, ttl)| CacheInfo {
                data: data.to_string(),
                ttl,
            })
        } else {
            None
        },
    })
}

pub async fn info(shard: &Rc<Shard>, app: &App, req: &Request, channel: &str) -> Response {
    if let Err(e) = name::validate(channel, shard.limits().max_channel_name_bytes) {
        return Response::error(400, &format!("invalid channel: {e}"));
    }
    let info = info_list(req.param("info"));
    if info.iter().any(|i| i == "user_count") && !ChannelKind::of(channel).is_presence() {
        return Response::error(400, "user_count is only available for presence channels");
    }
    match channel_attributes(shard, app, &Arc::from(channel), &info, true).await {
        Ok(attrs) => Response::json(200, to_json(&attrs)),
        Err(resp) => resp,
    }
}

pub async fn list(shard: &Rc<Shard>, app: &App, req: &Request) -> Response {
    let prefix = req.param("filter_by_prefix").unwrap_or("").to_string();
    let info = info_list(req.param("info"));
    let user_count = info.iter().any(|i| i == "user_count");
    if user_count && !prefix.starts_with("presence-") {
        return Response::error(400, "user_count requires filter_by_prefix=presence-");
    }
    let mut channels: BTreeMap<String, ChannelAttrs> = BTreeMap::new();
    let local = match shard.local_list(app.idx, &prefix).await {
        Ok(items) => items,
        Err(e) => return e.into(),
    };
    for (name, _, users) in local {
        let attrs = ChannelAttrs {
            user_count: user_count.then_some(users),
            ..ChannelAttrs::default()
        };
        channels.insert(name, attrs);
    }
    if shard.clustered {
        match cluster_list(shard, app, &prefix, user_count, &mut channels).await {
            Ok(()) => {}
            Err(resp) => return resp,
        }
    }
    #[derive(Serialize)]
    struct Out {
        channels: BTreeMap<String, ChannelAttrs>,
    }
    Response::json(200, to_json(&Out { channels }))
}

/// Adds the channels other nodes have subscribers for (those that answered in time), and
/// in a cluster takes `user_count` from the cluster-wide presence view.
async fn cluster_list(
    shard: &Rc<Shard>,
    app: &App,
    prefix: &str,
    user_count: bool,
    channels: &mut BTreeMap<String, ChannelAttrs>,
) -> Result<(), Response> {
    let ask = ClusterAsk::List(prefix.to_owned());
    let g = shard.cluster_gather(app.idx, ask).await?;
    for name in g.channels {
        // A peer's list is data from the network: keep only what this query asked for.
        if name.starts_with(prefix) && name::validate(&name, usize::MAX).is_ok() {
            channels.entry(name).or_default();
        }
    }
    if !user_count {
        return Ok(());
    }
    let names: Vec<String> = channels.keys().cloned().collect();
    let counts = shard.user_counts(app.idx, names.clone()).await?;
    for (name, n) in names.iter().zip(counts) {
        if let Some(attrs) = channels.get_mut(name) {
            attrs.user_count = Some(n);
        }
    }
    Ok(())
}

/// `GET /apps/{id}/channels/{name}/users`: presence channels only.
pub async fn users(shard: &Rc<Shard>, app: &App, channel: &str) -> Response {
    if name::validate(channel, shard.limits().max_channel_name_bytes).is_err()
        || !ChannelKind::of(channel).is_presence()
    {
        return Response::error(400, "users are only available for presence channels");
    }
    match shard.member_ids(app.idx, Arc::from(channel)).await {
        Ok(ids) => {
            #[derive(Serialize)]
            struct User {
                id: String,
            }
            #[derive(Serialize)]
            struct Out {
                users: Vec<User>,
            }
            Response::json(
                200,
                to_json(&Out {
                    users: ids.into_iter().map(|id| User { id }).collect(),
                }),
            )
        }
        Err(e) => e.into(),
    }
}
