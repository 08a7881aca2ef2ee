//! Backpressure between shards: a publisher (HTTP or client event) waits on the very queue
//! its event goes to, so an admitted event never joins an overflow longer than
//! `limits.mesh_queue_capacity` + 1, however many publishers push at once (`/stats`
//! `mesh_overflow_peak` is the longest it joined).

mod common;
use common::cluster::Cluster;
use common::*;
use serde_json::json;
use std::time::Duration;

const CAPACITY: u64 = 4;
const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nclient_events_per_second = 1000\n";

fn config() -> String {
    format!("{APP}[limits]\nmesh_queue_capacity = {CAPACITY}\n")
}

/// `publishers` keep-alive HTTP connections publish `each` events at once to channels of
/// both shards; returns the server's `mesh_overflow_peak`.
async fn flood(s: &Server, publishers: usize, each: usize) -> u64 {
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let mut h = Http::connect(s).await;
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let r = h.publish(&format!("ch-{}", (p + i) % 16), "e", "x").await;
                assert_eq!((r.status, r.body.as_str()), (200, "{}"));
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("publishers finished")
            .unwrap();
    }
    overflow_peak(s).await
}

async fn overflow_peak(s: &Server) -> u64 {
    let mut h = Http::metrics(s).await;
    let stats = h.request("GET", "/stats", "").await.json();
    stats["mesh_overflow_peak"]
        .as_u64()
        .expect("mesh_overflow_peak")
}

/// `senders` connections, each in one of 8 private channels, send `each` client events in
/// one write; returns the server's `mesh_overflow_peak` once all were published.
async fn client_event_flood(s: &Server, senders: usize, each: usize) -> u64 {
    let mut clients = Vec::new();
    for k in 0..senders {
        let mut c = Client::connect(s).await;
        c.subscribe_private(&format!("private-c{}", k % 8)).await;
        clients.push(c);
    }
    for (k, c) in clients.iter_mut().enumerate() {
        let msgs: Vec<_> = (0..each)
            .map(|i| json!({"event":"client-e","channel":format!("private-c{}", k % 8),"data":{"i":i}}))
            .collect();
        send_together(c, &msgs).await;
    }
    // Every event is counted in messages_in once it was admitted.
    let want = (senders * each) as u64;
    let mut h = Http::metrics(s).await;
    let t0 = std::time::Instant::now();
    while h.request("GET", "/stats", "").await.json()["messages_in"].as_u64() != Some(want) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "client events not all published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    overflow_peak(s).await
}

/// In a cluster an edge shard sends every publish to the gateway shard, not to the owner
/// shard: its backpressure must wait on the gateway's queue. (It waited on the owner's,
/// which is empty when the owner is the edge shard itself, so the gateway's overflow grew
/// by one per publisher.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_publishers_wait_on_the_gateway_queue() {
    let cl = Cluster::start_with(1, &config());
    let peak = flood(cl.node(0), 96, 40).await;
    assert!(peak <= CAPACITY + 1, "overflow peak {peak}");
}

/// Client events wait for room like HTTP publishes (they were sent without looking).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_client_events_wait_on_the_gateway_queue() {
    let cl = Cluster::start_with(1, &config());
    let peak = client_event_flood(cl.node(0), 64, 50).await;
    assert!(peak <= CAPACITY + 1, "overflow peak {peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_events_wait_on_the_owner_queue() {
    let s = Server::start_with(&config());
    let peak = client_event_flood(&s, 64, 50).await;
    assert!(peak <= CAPACITY + 1, "overflow peak {peak}");
}

/// The same on a single node, where the owner shard is the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishers_wait_on_the_owner_queue() {
    let s = Server::start_with(&config());
    let peak = flood(&s, 96, 40).await;
    assert!(peak <= CAPACITY + 1, "overflow peak {peak}");
}
