//! The history API (docs/history.md), signed like every `/apps/{id}/...` route and only
//! GET and POST, so the SDKs' generic `get`/`post` reach it:
//!
//! - `GET  /apps/{id}/channels/{name}/history?limit=&since=&epoch=&direction=`
//! - `POST /apps/{id}/channels/{name}/history/remove`
//! - `POST /apps/{id}/channels/{name}/history/{offset}/edit` with `{"data": ".."}`
//! - `POST /apps/{id}/channels/{name}/history/{offset}/delete`

use super::request::Request;
use super::response::Response;
use crate::app::App;
use crate::channel::name;
use crate::shard::{HistoryOp, Shard};
use serde::Deserialize;
use simd_json::prelude::*;
use simd_json::OwnedValue;
use std::rc::Rc;
use std::sync::Arc;

/// `GET .../history`.
pub async fn read(shard: &Rc<Shard>, app: &App, req: &Request, channel: &str) -> Response {
    let num = |k: &str| -> Result<Option<u64>, Response> {
        req.param(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| Response::error(400, &format!("{k} must be an unsigned integer")))
            })
            .transpose()
    };
    let (limit, since) = match (num("limit"), num("since")) {
        (Ok(l), Ok(s)) => (l, s),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let newest_first = match req.param("direction") {
        None | Some("oldest_first") => false,
        Some("newest_first") => true,
        Some(_) => return Response::error(400, "direction must be oldest_first or newest_first"),
    };
    let op = HistoryOp::Read {
        since,
        epoch: req.param("epoch").map(str::to_string),
        limit: limit.map(|l| l as usize),
        newest_first,
    };
    run(shard, app, channel, op).await
}

/// `POST .../history/remove`.
pub async fn remove(shard: &Rc<Shard>, app: &App, channel: &str) -> Response {
    run(shard, app, channel, HistoryOp::Remove).await
}

#[derive(Deserialize)]
struct EditBody {
    data: Option<OwnedValue>,
}

/// `POST .../history/{offset}/edit`: the body's `data` (a string, or JSON that is relayed
/// as its text, as `/events` does) replaces the message's.
pub async fn edit(
    shard: &Rc<Shard>,
    app: &App,
    req: &Request,
    channel: &str,
    offset: &str,
) -> Response {
    let Ok(offset) = offset.parse::<u64>() else {
        return Response::error(400, "the event id is its offset, an unsigned integer");
    };
    let mut body = req.body.clone();
    let data = match simd_json::serde::from_slice::<EditBody>(&mut body) {
        Ok(EditBody { data: Some(d) }) if d.is_str() => d.as_str().unwrap_or_default().to_string(),
        Ok(EditBody { data: Some(d) }) => simd_json::to_string(&d).unwrap_or_default(),
        _ => return Response::error(400, "body must be a JSON object with data"),
    };
    let max = shard.limits().max_event_data_bytes;
    if data.len() > max {
        return Response::error(413, &format!("data larger than {max} bytes"));
    }
    let op = HistoryOp::Edit {
        offset,
        data: Arc::from(data),
    };
    run(shard, app, channel, op).await
}

/// `POST .../history/{offset}/delete`.
pub async fn delete(shard: &Rc<Shard>, app: &App, channel: &str, offset: &str) -> Response {
    let Ok(offset) = offset.parse::<u64>() else {
        return Response::error(400, "the event id is its offset, an unsigned integer");
    };
    run(shard, app, channel, HistoryOp::Delete { offset }).await
}

async fn run(shard: &Rc<Shard>, app: &App, channel: &str, op: HistoryOp) -> Response {
    if let Err(e) = name::validate(channel, shard.limits().max_channel_name_bytes) {
        return Response::error(400, &e.to_string());
    }
    match shard.history(app.idx, Arc::from(channel), op).await {
        Ok((status, body)) => Response::json(status, body),
        Err(e) => e.into(),
    }
}
