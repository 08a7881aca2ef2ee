//! Fanout across shards: many connections on every shard receive every event of one channel,
//! in publish order.

mod common;
use common::*;
use futures_util::StreamExt;
use std::collections::HashSet;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_receive_a_thousand_events_in_order() {
    const CONNS: usize = 200;
    const EVENTS: usize = 1000;
    let s = Server::start();
    let mut clients = Vec::new();
    for _ in 0..CONNS {
        let mut c = Client::connect(&s).await;
        c.subscribe("orders").await;
        clients.push(c);
    }
    // Socket ids embed the accepting shard (lo % shards): both shards hold subscribers.
    let shards: HashSet<u64> = clients
        .iter()
        .map(|c| {
            c.socket_id
                .split('.')
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
                % 2
        })
        .collect();
    assert_eq!(shards.len(), 2, "connections spread over all shards");

    let readers: Vec<_> = clients
        .into_iter()
        .map(|c| {
            tokio::spawn(async move {
                let mut ws = c.ws;
                let mut next = 0usize;
                while next < EVENTS {
                    let m = tokio::time::timeout(std::time::Duration::from_secs(30), ws.next())
                        .await
                        .expect("stalled")
                        .unwrap()
                        .unwrap();
                    let Message::Text(t) = m else { continue };
                    let expected =
                        format!(r#"{{"event":"seq","channel":"orders","data":"{next}"}}"#);
                    assert_eq!(t.as_str(), expected);
                    next += 1;
                }
                next
            })
        })
        .collect();
    // Publish from several HTTP connections in turn (they land on either shard); order is the
    // order the owner receives them, which is sequential here because each publish completes
    // before the next starts.
    let mut publishers = Vec::new();
    for _ in 0..4 {
        publishers.push(Http::connect(&s).await);
    }
    for i in 0..EVENTS {
        let r = publishers[i % 4]
            .publish("orders", "seq", &i.to_string())
            .await;
        assert_eq!(r.status, 200);
    }
    for r in readers {
        assert_eq!(r.await.unwrap(), EVENTS);
    }
}
