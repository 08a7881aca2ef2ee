//! `/stats` and `/metrics` report what the server did.

mod common;
use common::*;

#[tokio::test]
async fn stats_and_metrics_count_deliveries_and_latency() {
    let s = Server::start();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(&s).await;
        c.subscribe("room").await;
        clients.push(c);
    }
    let mut h = Http::connect(&s).await;
    for i in 0..5 {
        h.publish("room", "e", &i.to_string()).await;
    }
    for c in clients.iter_mut() {
        for _ in 0..5 {
            c.recv_text().await;
        }
    }
    // On the metrics listener, open without a token (tests/operator_access.rs has the rest).
    let mut m = Http::metrics(&s).await;
    let r = m.request("GET", "/stats", "").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["shards"], 2);
    assert_eq!(v["connections"], 3);
    assert_eq!(v["channels"], 1);
    assert_eq!(v["messages_in"], 5);
    assert_eq!(v["messages_out"], 15);
    assert_eq!(v["slow_consumers_cut"], 0);
    assert!(v["bytes_out"].as_u64().unwrap() >= 15 * 40);
    let lat = &v["publish_to_write_us"];
    assert!(lat["count"].as_u64().unwrap() >= 1, "{lat}");
    assert!(
        lat["p50"].as_u64().unwrap() >= 1 && lat["p50"].as_u64().unwrap() < 1_000_000,
        "{lat}"
    );
    assert!(lat["max"].as_u64().unwrap() >= lat["p50"].as_u64().unwrap());
    assert!(v["fanout_recipients"]["max"].as_u64().unwrap() <= 3);
    assert!(v["queue_delay_us"]["count"].as_u64().unwrap() >= 3);

    let r = m.request("GET", "/metrics", "").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    for line in [
        "raptor_connections 3",
        "raptor_messages_in_total 5",
        "raptor_messages_out_total 15",
        "# TYPE raptor_publish_to_write_microseconds summary",
        "raptor_publish_to_write_microseconds{quantile=\"0.99\"}",
    ] {
        assert!(r.body.contains(line), "missing {line} in\n{}", r.body);
    }
    // On the public port they are not served, not even from loopback, and an app's
    // signature does not open them: a remote scraper uses the token.
    let r = h.request("GET", "/stats", "").await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = h.signed("GET", "/stats", &[], "").await;
    assert_eq!(r.status, 401, "{}", r.body);
}
