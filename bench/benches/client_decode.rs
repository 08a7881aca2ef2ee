//! What does decoding one client frame cost with simd-json (the engine's
//! `protocol::client::decode`), against serde_json decoding the same envelope shape and pulling
//! out the same fields? Both get a fresh copy of the frame per iteration (simd-json parses in
//! place), so both pay the same copy.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use raptor_engine::protocol::client::{decode, ClientMsg};
use serde::Deserialize;
use std::borrow::Cow;
use std::hint::black_box;

mod common;

const FRAMES: [(&str, &str); 4] = [
    (
        "subscribe",
        r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"my-photo-gallery-123"}}"#,
    ),
    (
        "subscribe_private",
        r#"{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel":"private-foobar"}}"#,
    ),
    ("ping", r#"{"event":"pusher:ping","data":{}}"#),
    (
        "client_event",
        r#"{"event":"client-typing","data":{"user":"alice","text":"hello there"},"channel":"private-chat"}"#,
    ),
];

/// The engine's envelope, with serde_json's own value type for `data`.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, borrow)]
    channel: Option<Cow<'a, str>>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// The same field extraction as `decode`, on serde_json (happy paths only: the inputs are valid).
fn decode_serde_json(buf: &[u8]) -> Option<ClientMsg> {
    let env: Envelope<'_> = serde_json::from_slice(buf).ok()?;
    let field =
        |d: &serde_json::Value, k: &str| d.get(k).and_then(|v| v.as_str()).map(String::from);
    Some(match env.event.as_ref() {
        "pusher:subscribe" => {
            let d = env.data.as_ref().filter(|d| d.is_object())?;
            ClientMsg::Subscribe {
                channel: field(d, "channel")?,
                auth: field(d, "auth"),
                channel_data: field(d, "channel_data"),
                recover: None,
            }
        }
        "pusher:ping" => ClientMsg::Ping,
        e if e.starts_with("client-") => ClientMsg::ClientEvent {
            event: e.to_string(),
            channel: env.channel.as_deref()?.to_string(),
            data: match &env.data {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => serde_json::to_string(v).ok()?,
                None => String::new(),
            },
        },
        e => ClientMsg::Other {
            event: e.to_string(),
        },
    })
}

fn normalize(m: Option<ClientMsg>) -> Option<ClientMsg> {
    match m? {
        ClientMsg::ClientEvent {
            event,
            channel,
            data,
        } => Some(ClientMsg::ClientEvent {
            event,
            channel,
            data: serde_json::from_str::<serde_json::Value>(&data).map_or(data, |v| v.to_string()),
        }),
        other => Some(other),
    }
}

fn client_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("client_decode");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in FRAMES {
        // Same answer from both, or the comparison means nothing (relayed `data` may differ
        // in key order only: serde_json's map is sorted).
        assert_eq!(
            normalize(decode(&mut frame.as_bytes().to_vec()).ok()),
            normalize(decode_serde_json(frame.as_bytes())),
            "{name}"
        );
        g.bench_function(format!("simd_json/{name}"), |b| {
            b.iter_batched_ref(
                || frame.as_bytes().to_vec(),
                |buf| decode(black_box(buf)),
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("serde_json/{name}"), |b| {
            b.iter_batched_ref(
                || frame.as_bytes().to_vec(),
                |buf| decode_serde_json(black_box(buf)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group! { name = benches; config = common::quick(); targets = client_decode }
criterion_main!(benches);
