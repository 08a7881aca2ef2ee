//! `GET /apps/{id}/channels` and `GET /apps/{id}/channels/{name}`.

use super::request::Request;
use super::response::Response;
use crate::app::App;
use crate::channel::name::{self, ChannelKind};
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
    let subscription_count = if occupied || wants("subscription_count") {
        shard
            .subscriptions_everywhere(app.idx, channel, subscription_count)
            .await?
    } else {
        subscription_count
    };
    let kind = ChannelKind::of(channel);
    let user_count = if wants("user_count") && kind.is_presence() {
        shard
            .members_everywhere(app.idx, channel, user_count)
            .await?
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
    let found = match shard
        .channels_everywhere(app.idx, &prefix, user_count)
        .await
    {
        Ok(found) => found,
        Err(e) => return e.into(),
    };
    let channels: BTreeMap<String, ChannelAttrs> = found
        .into_iter()
        .map(|(name, users)| {
            let attrs = ChannelAttrs {
                user_count: users,
                ..ChannelAttrs::default()
            };
            (name, attrs)
        })
        .collect();
    #[derive(Serialize)]
    struct Out {
        channels: BTreeMap<String, ChannelAttrs>,
    }
    Response::json(200, to_json(&Out { channels }))
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
