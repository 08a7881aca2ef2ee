//! Three real nodes as separate processes on 127.0.0.1: for an app with
//! `enable_subscription_count`, every subscriber, on whichever node, is told the channel's
//! subscriptions over the whole cluster, and the `subscription_count` webhook fires once
//! per change of that total (docs/cluster.md, "Subscription counts").

mod common;
use common::cluster::*;
use common::*;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn count_frame(channel: &str, n: u32) -> String {
    format!(
        r#"{{"event":"pusher_internal:subscription_count","channel":"{channel}","data":"{{\"subscription_count\":{n}}}"}}"#
    )
}

/// Reads `c` until it gets exactly `want`, failing after `within`. Other count events on
/// the way (intermediate totals while the reports come in) are skipped; anything else is
/// a failure.
async fn until_frame(c: &mut Client, want: &str, within: Duration, who: &str) {
    let deadline = Instant::now() + within;
    let mut last = String::from("nothing");
    loop {
        assert!(
            Instant::now() < deadline,
            "{who}: no {want} within {within:?}; last: {last}"
        );
        let Some(t) = c.recv_text_within(Duration::from_millis(200)).await else {
            continue;
        };
        if t == want {
            return;
        }
        assert!(
            t.contains("pusher_internal:subscription_count"),
            "{who}: unexpected {t}"
        );
        last = t;
    }
}

/// A webhook receiver that keeps the `subscription_count` of each `subscription_count`
/// event of `channel`, in arrival order.
fn count_hooks(channel: &'static str) -> (String, mpsc::Receiver<u64>) {
    let (url, events) = webhook_events();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for v in events {
            if v["name"] == "subscription_count" && v["channel"] == channel {
                let _ = tx.send(v["subscription_count"].as_u64().unwrap());
            }
        }
    });
    (url, rx)
}

/// Collects webhook counts until `last` arrives (or fails after `within`); returns them all.
fn hooks_until(rx: &mpsc::Receiver<u64>, last: u64, within: Duration) -> Vec<u64> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while seen.last() != Some(&last) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(n) => seen.push(n),
            Err(_) => panic!("no subscription_count webhook of {last}; got {seen:?}"),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_is_the_cluster_total_on_every_node() {
    let room = "room";
    let (url, hooks) = count_hooks(room);
    let cl = Cluster::start_with(
        3,
        &format!(
            "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nenable_subscription_count = true\n[[apps.webhooks]]\nurl = \"{url}\"\nevent_types = [\"subscription_count\"]\n"
        ),
    );
    // The links are up and the views agree once a publish on each node reaches a
    // subscriber on the next (on another channel: "room" must see only its counts).
    for i in 0..3 {
        let mut watcher = Client::connect(cl.node(i)).await;
        watcher.subscribe("warmup").await;
        let mut h = Http::connect(cl.node((i + 1) % 3)).await;
        wait_routed(&mut h, &mut watcher, "warmup").await;
    }
    // 1 subscriber on node 0, 2 on node 1, 3 on node 2.
    let mut subs: Vec<Vec<Client>> = Vec::new();
    for i in 0..3 {
        let mut here = Vec::new();
        for _ in 0..=i {
            let mut c = Client::connect(cl.node(i)).await;
            c.subscribe(room).await;
            here.push(c);
        }
        subs.push(here);
    }
    let six = count_frame(room, 6);
    for (i, here) in subs.iter_mut().enumerate() {
        for c in here.iter_mut() {
            until_frame(c, &six, Duration::from_secs(15), &format!("node {i}")).await;
        }
    }
    // Once per change of the total: each total at most once, ending at 6. Node-local
    // webhooks would repeat 1 and 2 (one per node).
    let seen = hooks_until(&hooks, 6, Duration::from_secs(15));
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "a total twice: {seen:?}");

    // Node 2's three leave: everyone left sees 3.
    subs.pop();
    let three = count_frame(room, 3);
    for (i, here) in subs.iter_mut().enumerate() {
        for c in here.iter_mut() {
            until_frame(c, &three, Duration::from_secs(15), &format!("node {i}")).await;
        }
    }
    let seen = hooks_until(&hooks, 3, Duration::from_secs(15));
    assert!(
        seen.iter().all(|n| (3..=5).contains(n)),
        "webhooks while node 2 emptied: {seen:?}"
    );
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "a total twice: {seen:?}");
}
