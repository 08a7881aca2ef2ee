//! `POST /apps/{id}/events` and `POST /apps/{id}/batch_events`.

use super::channels::{channel_attributes, info_list, to_json, ChannelAttrs};
use super::response::Response;
use crate::app::App;
use crate::channel::event::{Event, Source};
use crate::channel::name;
use crate::http::request::Request;
use crate::protocol::chunks;
use crate::shard::Shard;
use crate::socket_id::SocketId;
use serde::{Deserialize, Serialize};
use simd_json::prelude::*;
use simd_json::OwnedValue;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// One event as the SDKs send it.
#[derive(Deserialize)]
struct EventBody {
    name: Option<String>,
    data: Option<OwnedValue>,
    channel: Option<String>,
    channels: Option<Vec<String>>,
    socket_id: Option<String>,
    info: Option<String>,
}

#[derive(Deserialize)]
struct BatchBody {
    batch: Vec<EventBody>,
}

/// A validated event, ready to publish.
struct Checked {
    name: Box<str>,
    data: Arc<str>,
    channels: Vec<Arc<str>>,
    exclude: Option<SocketId>,
    info: Vec<String>,
    /// Over `max_event_data_bytes` but within the app's `max_chunked_event_bytes`: sent as
    /// `chunked-{name}` events (docs/protocol.md, "Large events in chunks").
    chunked: bool,
}

pub async fn publish(shard: &Rc<Shard>, app: &App, req: &Request) -> Response {
    let mut body = req.body.clone();
    let ev: EventBody = match simd_json::serde::from_slice(&mut body) {
        Ok(ev) => ev,
        Err(_) => {
            return Response::error(
                400,
                "body must be a JSON object with name, data and channel(s)",
            )
        }
    };
    let ev = match check(shard, app, ev, true) {
        Ok(ev) => ev,
        Err(resp) => return resp,
    };
    if let Err(resp) = send(shard, app, &ev).await {
        return resp;
    }
    if ev.info.is_empty() {
        return Response::json(200, "{}");
    }
    // Asked together: in a cluster each one may wait for the other nodes' answers.
    let asks = ev
        .channels
        .iter()
        .map(|c| channel_attributes(shard, app, c, &ev.info, false));
    let mut channels = BTreeMap::new();
    let answers = futures_util::future::join_all(asks).await;
    for (c, attrs) in ev.channels.iter().zip(answers) {
        match attrs {
            Ok(attrs) => {
                channels.insert(
                    c.to_string(),
                    ChannelAttrs {
                        occupied: None,
                        ..attrs
                    },
                );
            }
            Err(resp) => return resp,
        }
    }
    #[derive(Serialize)]
    struct Out {
        channels: BTreeMap<String, ChannelAttrs>,
    }
    Response::json(200, to_json(&Out { channels }))
}

pub async fn batch(shard: &Rc<Shard>, app: &App, req: &Request) -> Response {
    let mut body = req.body.clone();
    let b: BatchBody = match simd_json::serde::from_slice(&mut body) {
        Ok(b) => b,
        Err(_) => return Response::error(400, "body must be {\"batch\":[...]}"),
    };
    let max = shard.limits().max_batch_events;
    if b.batch.len() > max {
        return Response::error(400, &format!("at most {max} events per batch"));
    }
    let mut checked = Vec::with_capacity(b.batch.len());
    for ev in b.batch {
        match check(shard, app, ev, false) {
            Ok(ev) => checked.push(ev),
            Err(resp) => return resp,
        }
    }
    // Every event sent in order first, then every answer awaited: in a cluster each waits
    // for its owning node, and they wait together (order per channel is the send order).
    let mut sent = Vec::new();
    for ev in &checked {
        if ev.chunked {
            if let Err(resp) = send_chunked(shard, app, ev).await {
                return resp;
            }
        } else {
            sent.extend(send_all(shard, app, ev).await);
        }
    }
    if let Err(resp) = wait_all(shard, sent).await {
        return resp;
    }
    if checked.iter().all(|e| e.info.is_empty()) {
        return Response::json(200, "{}");
    }
    // Asked together: in a cluster each one may wait for the other nodes' answers.
    let asks = checked.iter().map(|ev| async move {
        if ev.info.is_empty() {
            return Ok(ChannelAttrs::default());
        }
        channel_attributes(shard, app, &ev.channels[0], &ev.info, false).await
    });
    let mut batch = Vec::new();
    for attrs in futures_util::future::join_all(asks).await {
        match attrs {
            Ok(a) => batch.push(ChannelAttrs {
                occupied: None,
                ..a
            }),
            Err(resp) => return resp,
        }
    }
    #[derive(Serialize)]
    struct Out {
        batch: Vec<ChannelAttrs>,
    }
    Response::json(200, to_json(&Out { batch }))
}

/// Publishes to every channel of `ev`; returns once each owner has ordered its event.
async fn send(shard: &Rc<Shard>, app: &App, ev: &Checked) -> Result<(), Response> {
    if ev.chunked {
        return send_chunked(shard, app, ev).await;
    }
    let sent = send_all(shard, app, ev).await;
    wait_all(shard, sent).await
}

/// Sends `ev` to each of its channels, in order, without waiting for the order points.
async fn send_all(shard: &Rc<Shard>, app: &App, ev: &Checked) -> Vec<crate::shard::Sent> {
    let mut sent = Vec::with_capacity(ev.channels.len());
    for c in &ev.channels {
        // Encoded once per channel by its order point (the channel name is part of the
        // message); every recipient on every shard gets those same bytes.
        let event = Event {
            name: ev.name.clone(),
            data: ev.data.clone(),
            user_id: None,
            source: Source::Api,
        };
        sent.push(
            shard
                .publish_send(app.idx, c.clone(), event, ev.exclude)
                .await,
        );
    }
    sent
}

/// Waits for every sent event to be ordered; the first failure is the answer (every wait
/// still ends, so no reply slot is left behind).
async fn wait_all(shard: &Rc<Shard>, sent: Vec<crate::shard::Sent>) -> Result<(), Response> {
    let mut out = Ok(());
    for s in sent {
        if let Err(e) = shard.publish_wait(s).await {
            if out.is_ok() {
                out = Err(Response::from(e));
            }
        }
    }
    out
}

/// Splits a large event into its chunks once (one `id` for the event, whatever its
/// channels) and sends them to each channel as one unit, never interleaved with the
/// channel's other events.
async fn send_chunked(shard: &Rc<Shard>, app: &App, ev: &Checked) -> Result<(), Response> {
    let id = format!("{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..));
    let max = shard.limits().max_event_data_bytes;
    let name: Box<str> = format!("{}{}", chunks::API_PREFIX, ev.name).into();
    let chunks: Vec<Event> = chunks::split(&ev.data, &id, max)
        .into_iter()
        .map(|data| Event {
            name: name.clone(),
            data: data.into(),
            user_id: None,
            source: Source::Api,
        })
        .collect();
    if let Some(max) = shard.max_chunks_bytes() {
        let bytes: usize = chunks.iter().map(|c| c.name.len() + c.data.len()).sum();
        if bytes > max {
            return Err(Response::error(
                413,
                &format!(
                    "in a cluster the chunks of one event must fit {max} bytes; these take {bytes}"
                ),
            ));
        }
    }
    for c in &ev.channels {
        shard
            .publish_chunks(app.idx, c.clone(), chunks.clone(), ev.exclude)
            .await?;
    }
    Ok(())
}

fn check(shard: &Shard, app: &App, ev: EventBody, multi: bool) -> Result<Checked, Response> {
    let l = &shard.limits();
    let name = ev
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Response::error(400, "missing event name"))?;
    if name.len() > l.max_event_name_bytes {
        return Err(Response::error(
            400,
            &format!("event name longer than {} bytes", l.max_event_name_bytes),
        ));
    }
    let data = match ev.data {
        Some(v) if v.is_str() => v.as_str().unwrap_or_default().to_string(),
        // Pusher requires a string; an object is accepted and relayed as its JSON text.
        Some(v) if !v.is_null() => v.encode(),
        _ => return Err(Response::error(400, "missing data")),
    };
    let chunked = data.len() > l.max_event_data_bytes;
    let cap = app.max_chunked_event_bytes;
    if chunked && cap <= l.max_event_data_bytes {
        return Err(Response::error(
            413,
            &format!("event data larger than {} bytes", l.max_event_data_bytes),
        ));
    }
    if chunked && data.len() > cap {
        return Err(Response::error(
            413,
            &format!("event data larger than {cap} bytes (max_chunked_event_bytes)"),
        ));
    }
    if chunked && chunks::API_PREFIX.len() + name.len() > l.max_event_name_bytes {
        return Err(Response::error(
            400,
            &format!(
                "event name longer than {} bytes with the chunked- prefix",
                l.max_event_name_bytes
            ),
        ));
    }
    let channels: Vec<String> = match (ev.channel, ev.channels) {
        (Some(c), None) => vec![c],
        (None, Some(cs)) if multi => cs,
        (None, Some(_)) => return Err(Response::error(400, "batch events take a single channel")),
        (Some(_), Some(_)) => {
            return Err(Response::error(
                400,
                "give either channel or channels, not both",
            ))
        }
        (None, None) => return Err(Response::error(400, "missing channel")),
    };
    if channels.is_empty() {
        return Err(Response::error(400, "channels is empty"));
    }
    if channels.len() > l.max_channels_per_publish {
        return Err(Response::error(
            400,
            &format!("at most {} channels per event", l.max_channels_per_publish),
        ));
    }
    for c in &channels {
        name::validate(c, l.max_channel_name_bytes)
            .map_err(|e| Response::error(400, &format!("invalid channel `{c}`: {e}")))?;
    }
    let exclude = match ev.socket_id {
        None => None,
        Some(s) => Some(
            SocketId::parse(&s)
                .ok_or_else(|| Response::error(400, "socket_id must look like 123.456"))?,
        ),
    };
    let info = info_list(ev.info.as_deref());
    Ok(Checked {
        name: name.into(),
        data: data.into(),
        channels: channels.into_iter().map(Arc::from).collect(),
        exclude,
        info,
        chunked,
    })
}
