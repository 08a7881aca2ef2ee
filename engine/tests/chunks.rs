//! Large events in chunks (docs/protocol.md, "Large events in chunks"): the HTTP API splits
//! an event over `max_event_data_bytes` into `chunked-{event}` events delivered as one
//! unit; clients send `client-chunked-{event}` sequences that the server checks chunk by
//! chunk (refusals are `pusher:error` 4316) and relays.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// 8 MiB queues (a chunked event reaches each subscriber whole), 4 MiB bodies, and an app
/// that takes events of up to 2 MiB in chunks.
const CHUNKED: &str = "[limits]\nmax_http_body_bytes = 4194304\noutbox_max_bytes = 8388608\n\
[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nmax_chunked_event_bytes = 2097152\n";

/// 1 MiB of JSON text with quotes, backslashes, newlines and multi-byte characters, so
/// that escaping and character boundaries are exercised.
fn big_json() -> String {
    let mut s = String::from("{\"blob\":\"");
    let mut i = 0u32;
    while s.len() < (1 << 20) - 32 {
        s.push_str(["abc", "\\\"q\\\"", "é", "😀", "\\n", "\\\\", "x"][(i % 7) as usize]);
        i += 1;
    }
    while s.len() < (1 << 20) - 2 {
        s.push('z');
    }
    s.push_str("\"}");
    assert_eq!(s.len(), 1 << 20);
    serde_json::from_str::<Value>(&s).expect("valid JSON");
    s
}

/// The chunk fields of a received `chunked-*` message: `(id, index, count, final, chunk)`.
fn chunk_of(m: &Value) -> (String, u64, u64, bool, String) {
    let d: Value = serde_json::from_str(m["data"].as_str().unwrap()).unwrap();
    (
        d["id"].as_str().unwrap().to_string(),
        d["index"].as_u64().unwrap(),
        d["count"].as_u64().unwrap(),
        d["final"].as_bool().unwrap(),
        d["chunk"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_1_mib_api_event_arrives_in_order_as_one_unit() {
    let s = Server::start_with(CHUNKED);
    let mut sub = Client::connect(&s).await;
    sub.subscribe("big").await;
    let data = big_json();

    // Small events published on the same channel while the large one goes.
    let port = s.port;
    let small = tokio::spawn(async move {
        let mut h = Http::connect_port(port).await;
        for n in 0..40 {
            assert_eq!(h.publish("big", "e", &format!("s{n}")).await.status, 200);
        }
    });
    let mut h = Http::connect(&s).await;
    let r = h.publish("big", "my-event", &data).await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    small.await.unwrap();

    let (mut smalls, mut chunks, mut runs, mut last_was_chunk) = (0, Vec::new(), 0, false);
    while smalls < 40
        || chunks
            .last()
            .is_none_or(|c: &(String, u64, u64, bool, String)| !c.3)
    {
        let m = sub.recv().await;
        match m["event"].as_str().unwrap() {
            "e" => {
                assert_eq!(m["data"], format!("s{smalls}"), "small events in order");
                smalls += 1;
                last_was_chunk = false;
            }
            "chunked-my-event" => {
                assert_eq!(m["channel"], "big");
                if !last_was_chunk {
                    runs += 1;
                }
                last_was_chunk = true;
                chunks.push(chunk_of(&m));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(runs, 1, "no other event between the chunks");
    let count = chunks.len() as u64;
    assert!(count > 100, "{count} chunks for 1 MiB of 10 KB events");
    let mut joined = String::new();
    for (i, (id, index, n, last, chunk)) in chunks.iter().enumerate() {
        assert_eq!(
            (id, *index, *n, *last),
            (&chunks[0].0, i as u64, count, i as u64 + 1 == count)
        );
        joined.push_str(chunk);
    }
    assert_eq!(chunks[0].0.len(), 24);
    assert_eq!(joined, data, "reassembled byte for byte");
    sub.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn over_the_cap_is_413_and_off_by_default_is_todays_413() {
    let s = Server::start_with(CHUNKED);
    let mut h = Http::connect(&s).await;
    let r = h.publish("c", "e", &"x".repeat(2_097_153)).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            413,
            r#"{"error":"event data larger than 2097152 bytes (max_chunked_event_bytes)"}"#
        )
    );
    // Just over one event, just at the cap: both chunked.
    assert_eq!(h.publish("c", "e", &"x".repeat(10_241)).await.status, 200);
    assert_eq!(
        h.publish("c", "e", &"x".repeat(2_097_152)).await.status,
        200
    );

    let off = Server::start_with("[limits]\nmax_http_body_bytes = 4194304\n");
    let mut h = Http::connect(&off).await;
    let r = h.publish("c", "e", &"x".repeat(10_241)).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (413, r#"{"error":"event data larger than 10240 bytes"}"#)
    );
}

/// One client chunk of `client-chunked-up`, as pusher-js sends it (fields in this order).
fn chunk(id: &str, index: u64, chunk: &str, last: bool) -> String {
    let chunk = serde_json::to_string(chunk).unwrap();
    format!(
        r#"{{"event":"client-chunked-up","channel":"private-up","data":{{"id":"{id}","index":{index},"chunk":{chunk},"final":{last}}}}}"#
    )
}

#[tokio::test]
async fn a_1_mib_client_chunked_event_is_relayed_intact() {
    let s = Server::start_with(CHUNKED);
    let mut a = Client::connect(&s).await;
    let mut b = Client::connect(&s).await;
    a.subscribe_private("private-up").await;
    b.subscribe_private("private-up").await;
    let data = big_json();
    // Pieces of at most ~6,000 bytes (under 10 KB once escaped), cut between characters.
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let mut end = (start + 6000).min(data.len());
        while !data.is_char_boundary(end) {
            end -= 1;
        }
        pieces.push(&data[start..end]);
        start = end;
    }
    let n = pieces.len();
    for (i, p) in pieces.iter().enumerate() {
        a.send_raw(&chunk("up-1", i as u64, p, i + 1 == n)).await;
    }
    let mut joined = String::new();
    for i in 0..n {
        let m = b.recv().await;
        assert_eq!(m["event"], "client-chunked-up");
        let d: Value = serde_json::from_str(m["data"].as_str().unwrap()).unwrap();
        assert_eq!(
            (d["id"].as_str(), d["index"].as_u64()),
            (Some("up-1"), Some(i as u64))
        );
        assert_eq!(d["final"], i + 1 == n);
        joined.push_str(d["chunk"].as_str().unwrap());
    }
    assert_eq!(joined, data);
    a.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn lying_chunk_sequences_are_refused_with_4316() {
    let s = Server::start_with(
        "[limits]\nmax_open_chunked_events_per_connection = 2\n\
         [[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nmax_chunked_event_bytes = 1000\n",
    );
    let mut a = Client::connect(&s).await;
    let mut b = Client::connect(&s).await;
    a.subscribe_private("private-up").await;
    b.subscribe_private("private-up").await;
    let refused = |why: &str| {
        format!(
            r#"{{"event":"pusher:error","data":{{"code":4316,"message":"chunk refused: {why}"}}}}"#
        )
    };
    let relayed = |id: &str, index: u64, chunk: &str, last: bool| {
        format!(
            r#"{{"event":"client-chunked-up","channel":"private-up","data":"{{\"id\":\"{id}\",\"index\":{index},\"chunk\":\"{chunk}\",\"final\":{last}}}"}}"#
        )
    };

    // A gap, then a repeat; the sequence goes on from where it was.
    a.send_raw(&chunk("g", 0, "a", false)).await;
    assert_eq!(b.recv_text().await, relayed("g", 0, "a", false));
    a.send_raw(&chunk("g", 2, "c", false)).await;
    assert_eq!(a.recv_text().await, refused("gap: index 2, expected 1"));
    a.send_raw(&chunk("g", 0, "a", false)).await;
    assert_eq!(a.recv_text().await, refused("repeat: index 0, expected 1"));
    a.send_raw(&chunk("g", 1, "b", true)).await;
    assert_eq!(b.recv_text().await, relayed("g", 1, "b", true));

    // Wrong ids: one that never started at 0, one that already ended.
    a.send_raw(&chunk("nope", 1, "x", false)).await;
    assert_eq!(
        a.recv_text().await,
        refused("wrong id: `nope` is not open (a sequence starts at index 0 and ends at final)")
    );
    a.send_raw(&chunk("g", 2, "x", true)).await;
    assert_eq!(a.recv_text().await, refused("wrong id: `g` already ended"));

    // Overflow: the whole would pass 1000 bytes; the id is abandoned.
    let half = "o".repeat(600);
    a.send_raw(&chunk("o", 0, &half, false)).await;
    assert_eq!(b.recv_text().await, relayed("o", 0, &half, false));
    a.send_raw(&chunk("o", 1, &half, true)).await;
    assert_eq!(
        a.recv_text().await,
        refused("overflow: the event would exceed 1000 bytes; id `o` is abandoned")
    );
    a.send_raw(&chunk("o", 1, "x", true)).await;
    assert_eq!(a.recv_text().await, refused("wrong id: `o` already ended"));

    // Too many open: two are open, a third may not start (a one-chunk event still may).
    a.send_raw(&chunk("p", 0, "1", false)).await;
    a.send_raw(&chunk("q", 0, "2", false)).await;
    a.send_raw(&chunk("r", 0, "3", false)).await;
    assert_eq!(
        a.recv_text().await,
        refused("too many open chunked events (at most 2 per connection)")
    );
    a.send_raw(&chunk("s", 0, "4", true)).await;
    assert_eq!(b.recv_text().await, relayed("p", 0, "1", false));
    assert_eq!(b.recv_text().await, relayed("q", 0, "2", false));
    assert_eq!(b.recv_text().await, relayed("s", 0, "4", true));

    // Not a chunk at all.
    a.send(json!({"event":"client-chunked-up","channel":"private-up","data":{"id":"x"}}))
        .await;
    assert_eq!(
        a.recv_text().await,
        refused("data must be an object with id (string), index (integer), chunk (string) and final (boolean)")
    );
    b.expect_silence(Duration::from_millis(200)).await;
    // The connection stays open and usable.
    a.send_raw(&chunk("p", 1, "end", true)).await;
    assert_eq!(b.recv_text().await, relayed("p", 1, "end", true));
}

/// In a cluster the chunks travel to the channel's owning node as one message and come back
/// to every node in order: subscribers on two nodes reassemble the event, the publish
/// entering on a third. (A link frame carries at most 1 MiB, so a cluster's chunked events
/// stay under 960 KiB: docs/limits.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_cross_a_cluster_as_one_unit() {
    use common::cluster::{owned_by, wait_linked, Cluster};
    let cl = Cluster::start_with(3, CHUNKED);
    wait_linked(&cl, 3).await;
    let ch = owned_by("big-", 1);
    let mut subs = [
        Client::connect(cl.node(0)).await,
        Client::connect(cl.node(2)).await,
    ];
    for s in subs.iter_mut() {
        s.subscribe(&ch).await;
    }
    // 600 KiB of JSON with escapes and multi-byte characters.
    let data = format!(
        "{{\"blob\":\"{}\"}}",
        "é\\\"q\\\"😀x".repeat(600 * 1024 / 14)
    );
    serde_json::from_str::<Value>(&data).expect("valid JSON");
    let mut h = Http::connect(cl.node(2)).await;
    let r = h.publish(&ch, "my-event", &data).await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    for s in subs.iter_mut() {
        let mut joined = String::new();
        loop {
            let m = s.recv().await;
            assert_eq!(m["event"], "chunked-my-event");
            let (_, _, _, last, chunk) = chunk_of(&m);
            joined.push_str(&chunk);
            if last {
                break;
            }
        }
        assert_eq!(joined, data);
    }
}
