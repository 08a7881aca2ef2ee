//! The questions the edges (the HTTP API, `/metrics`, the dashboard) ask the shards, typed:
//! one method per kind of question, each with its own answer type. Callers never match on
//! [`Reply`], never name a shard or the gateway, and map one error type to HTTP
//! (`http::response`): a step of the core reshape (issue 11), which asks for typed replies.

use super::msg::{AppFigure, ClusterAsk, ClusterGather, GatewayMsg, Query, Reply};
use super::{QueryTimeout, Shard};
use crate::app::AppIdx;
use crate::stats::Snapshot;
use std::collections::HashMap;
use std::sync::Arc;

/// Why a question got no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AskError {
    /// A shard (or the other nodes, through the gateway) did not answer in time: 503.
    #[error("shard did not answer in time")]
    Timeout,
    /// The question reached a shard that cannot answer it (a bug, never data): 500.
    #[error("unexpected shard reply")]
    Misrouted,
}

impl From<QueryTimeout> for AskError {
    fn from(_: QueryTimeout) -> AskError {
        AskError::Timeout
    }
}

/// One channel as its owner shard knows it (this node's part, in a cluster).
#[derive(Debug, Clone)]
pub struct ChannelFigures {
    pub subscription_count: u32,
    pub user_count: u32,
    /// The cached event's data and its remaining TTL in seconds (cache channels).
    pub cache: Option<(Arc<str>, u64)>,
}

impl Shard {
    /// What the channel's owner shard knows of it.
    pub async fn channel_figures(
        &self,
        app: AppIdx,
        channel: &Arc<str>,
    ) -> Result<ChannelFigures, AskError> {
        let owner = self.owner_of(app, channel);
        let q = Query::Channel {
            app,
            channel: channel.clone(),
        };
        match self.query(owner, q).await? {
            Reply::Channel {
                subscription_count,
                user_count,
                cache,
            } => Ok(ChannelFigures {
                subscription_count,
                user_count,
                cache,
            }),
            _ => Err(AskError::Misrouted),
        }
    }

    /// The member ids of a presence channel: from its owner shard on a single node, from the
    /// gateway's cluster-wide view in a cluster.
    pub async fn member_ids(
        &self,
        app: AppIdx,
        channel: Arc<str>,
    ) -> Result<Vec<String>, AskError> {
        let reply = if self.clustered {
            self.ask_gateway(|from, id| GatewayMsg::Members {
                from,
                id,
                app,
                channel,
            })
            .await?
        } else {
            let owner = self.owner_of(app, &channel);
            self.query(owner, Query::Members { app, channel }).await?
        };
        match reply {
            Reply::Members(ids) => Ok(ids),
            _ => Err(AskError::Misrouted),
        }
    }

    /// Cluster-wide member counts of presence channels, in order (cluster mode).
    pub async fn user_counts(
        &self,
        app: AppIdx,
        channels: Vec<String>,
    ) -> Result<Vec<u32>, AskError> {
        let ask = |from, id| GatewayMsg::UserCounts {
            from,
            id,
            app,
            channels,
        };
        match self.ask_gateway(ask).await? {
            Reply::UserCounts(counts) => Ok(counts),
            _ => Err(AskError::Misrouted),
        }
    }

    /// This node's counters and histograms, every shard's merged.
    pub async fn node_stats(&self) -> Result<Snapshot, AskError> {
        let mut total: Option<Snapshot> = None;
        for s in 0..self.nr_shards {
            match self.query(s, Query::Stats).await? {
                Reply::Stats(snap) => match &mut total {
                    None => total = Some(*snap),
                    Some(t) => t.merge(&snap),
                },
                _ => return Err(AskError::Misrouted),
            }
        }
        total.ok_or(AskError::Misrouted)
    }

    /// Per app, its figures on this node, every shard's summed.
    pub async fn node_app_figures(&self) -> Result<HashMap<AppIdx, AppFigure>, AskError> {
        let mut by_app: HashMap<AppIdx, AppFigure> = HashMap::new();
        for s in 0..self.nr_shards {
            let Reply::AppFigures(v) = self.query(s, Query::AppFigures).await? else {
                return Err(AskError::Misrouted);
            };
            for (app, f) in v {
                let e = by_app.entry(app).or_default();
                e.channels += f.channels;
                e.presence_channels += f.presence_channels;
                e.members += f.members;
                e.subscriptions += f.subscriptions;
                e.delivered += f.delivered;
            }
        }
        Ok(by_app)
    }

    /// The `limit` channels of `app` on this node with the most subscribers (or events per
    /// second, `by_rate`): (name, subscriptions, members, events per second).
    pub async fn top_channels(
        &self,
        app: AppIdx,
        by_rate: bool,
        limit: usize,
    ) -> Result<Vec<(String, u32, u32, u32)>, AskError> {
        let mut all = Vec::new();
        for s in 0..self.nr_shards {
            let q = Query::TopChannels {
                app,
                by_rate,
                limit,
            };
            let Reply::Top(v) = self.query(s, q).await? else {
                return Err(AskError::Misrouted);
            };
            all.extend(v);
        }
        let value = |c: &(String, u32, u32, u32)| if by_rate { c.3 } else { c.1 };
        let order = crate::channel::owned::top_order;
        all.sort_by(|a, b| order(value(a), &a.0).cmp(&order(value(b), &b.0)));
        all.truncate(limit);
        Ok(all)
    }

    /// This node's channels with subscribers whose names start with `prefix`, asked of every
    /// shard: `(name, subscription_count, user_count)` with this node's counts.
    pub async fn local_list(
        &self,
        app: AppIdx,
        prefix: &str,
    ) -> Result<Vec<(String, u32, u32)>, AskError> {
        let mut out = Vec::new();
        for s in 0..self.nr_shards {
            let q = Query::List {
                app,
                prefix: prefix.to_owned(),
            };
            let Reply::List(items) = self.query(s, q).await? else {
                return Err(AskError::Misrouted);
            };
            out.extend(items);
        }
        Ok(out)
    }

    /// What the other nodes say (cluster mode only). Returns at most the cluster query
    /// timeout after the gateway got the question.
    pub async fn cluster_gather(
        &self,
        app: AppIdx,
        ask: ClusterAsk,
    ) -> Result<ClusterGather, AskError> {
        let msg = |from, id| GatewayMsg::Query { from, id, app, ask };
        match self.ask_gateway(msg).await? {
            Reply::Cluster(g) => Ok(g),
            _ => Err(AskError::Misrouted),
        }
    }

    /// A channel's subscriptions on every node: `local` (this node's, from
    /// [`Shard::channel_figures`]) plus, in a cluster, what the other nodes that answered in
    /// time have.
    pub async fn subscriptions_everywhere(
        &self,
        app: AppIdx,
        channel: &Arc<str>,
        local: u32,
    ) -> Result<u32, AskError> {
        if !self.clustered {
            return Ok(local);
        }
        let g = self
            .cluster_gather(app, ClusterAsk::Channel(channel.clone()))
            .await?;
        Ok(u32::try_from(u64::from(local) + g.subscription_count).unwrap_or(u32::MAX))
    }

    /// A presence channel's members on every node: `local` on a single node, the gateway's
    /// cluster-wide view in a cluster.
    pub async fn members_everywhere(
        &self,
        app: AppIdx,
        channel: &Arc<str>,
        local: u32,
    ) -> Result<u32, AskError> {
        if !self.clustered {
            return Ok(local);
        }
        Ok(self.member_ids(app, channel.clone()).await?.len() as u32)
    }

    /// The channels with subscribers anywhere whose names start with `prefix`, each with its
    /// member count when `user_count` (presence channels): this node's, plus in a cluster
    /// the other nodes' that answered in time, with cluster-wide member counts.
    pub async fn channels_everywhere(
        &self,
        app: AppIdx,
        prefix: &str,
        user_count: bool,
    ) -> Result<std::collections::BTreeMap<String, Option<u32>>, AskError> {
        let mut out: std::collections::BTreeMap<String, Option<u32>> = self
            .local_list(app, prefix)
            .await?
            .into_iter()
            .map(|(name, _, users)| (name, user_count.then_some(users)))
            .collect();
        if !self.clustered {
            return Ok(out);
        }
        let g = self
            .cluster_gather(app, ClusterAsk::List(prefix.to_owned()))
            .await?;
        for name in g.channels {
            // A peer's list is data from the network: keep only what this query asked for.
            if name.starts_with(prefix) && crate::channel::name::validate(&name, usize::MAX).is_ok()
            {
                out.entry(name).or_default();
            }
        }
        if user_count {
            let names: Vec<String> = out.keys().cloned().collect();
            let counts = self.user_counts(app, names.clone()).await?;
            for (name, n) in names.into_iter().zip(counts) {
                out.insert(name, Some(n));
            }
        }
        Ok(out)
    }
}
