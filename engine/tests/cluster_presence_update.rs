//! Presence state updates across three real nodes (docs/cluster.md, "Presence updates"): the
//! update enters node 0's API for a user connected to node 2, in a channel node 1 owns; every
//! member on every node gets exactly one `raptor:member_updated`, in the channel's order; a
//! new joiner on any node sees the new info; the webhook fires once in the cluster.

mod common;
use common::cluster::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn set(users: &[&str]) -> BTreeSet<String> {
    users.iter().map(|u| u.to_string()).collect()
}

/// A frame as JSON, its double-encoded `data` decoded.
fn parsed(t: &str) -> Value {
    let mut v: Value = serde_json::from_str(t).unwrap();
    v["data"] = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    v
}

/// Reads until the event `marker`; returns the `raptor:member_updated` frames before it.
async fn updates_before(c: &mut Client, marker: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let t = c.recv_text().await;
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["event"] == marker {
            return out;
        }
        if v["event"] == "raptor:member_updated" {
            out.push(parsed(&t));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_reaches_every_node_once_and_later_joiners_see_it() {
    let (url, hooks) = webhook_events();
    let toml = format!(
        "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n[[apps.webhooks]]\nurl = \"{url}\"\nevent_types = [\"member_updated\"]\n"
    );
    let cl = Cluster::start_with(3, &toml);
    wait_linked(&cl, 3).await;
    let ch = owned_by("presence-upd-", 1);
    let mut clients = Vec::new();
    for (i, user) in ["a", "b", "u"].iter().enumerate() {
        let mut c = Client::connect(cl.node(i)).await;
        let cd = format!(r#"{{"user_id":"{user}","user_info":{{"v":1}}}}"#);
        c.join(&ch, &cd).await;
        clients.push(c);
    }
    // Every node holds every member before the update (each client sees all three).
    let all = set(&["a", "b", "u"]);
    for (i, c) in clients.iter_mut().enumerate() {
        let mut view = PresenceView {
            members: set(&[["a", "b", "u"][i]]),
        };
        // Members that joined before this client are in no event: count them as seen.
        for earlier in &["a", "b", "u"][..i] {
            view.members.insert(earlier.to_string());
        }
        let r = view.until_members(c, &all, Duration::from_secs(5)).await;
        assert_eq!(r, Ok(()), "client on node {i}");
    }
    let mut h0 = Http::connect(cl.node(0)).await;
    // Until node 0 sees u (it routes the update by its own view of u's channels).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = h0
            .signed("GET", &format!("/apps/1/channels/{ch}/users"), &[], "")
            .await;
        if r.json()["users"].as_array().map(Vec::len) == Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "{}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // No channel named: node 0 finds u's channels in its cluster-wide view.
    let body = json!({"user_info": {"v": 2, "status": "away"}}).to_string();
    let r = h0
        .signed("POST", "/apps/1/users/u/presence", &[], &body)
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    // The info is re-encoded as compact JSON, as `channel_data`'s is: its key order is
    // the server's, so the frame is compared as JSON below.
    let want = json!({"event": "raptor:member_updated", "channel": ch,
                      "data": {"user_id": "u", "user_info": {"v": 2, "status": "away"}}});
    // A marker published after the update is ordered after it by the owning node: each
    // client has exactly one update before the marker, and nothing after it.
    let mut first = true;
    for (i, c) in clients.iter_mut().enumerate() {
        if first {
            // The update is in flight towards the owner; wait for it to land somewhere.
            let t = loop {
                let t = c.recv_text().await;
                if t.contains("raptor:member_updated") {
                    break t;
                }
            };
            assert_eq!(parsed(&t), want, "node {i}");
            first = false;
            assert_eq!(h0.publish(&ch, "marker", "m").await.status, 200);
            assert_eq!(
                updates_before(c, "marker").await,
                Vec::<String>::new(),
                "node {i}"
            );
        } else {
            assert_eq!(
                updates_before(c, "marker").await,
                std::slice::from_ref(&want),
                "node {i}"
            );
        }
        c.expect_silence(Duration::from_millis(300)).await;
    }

    // New joiners on nodes 1 and 2 list the new info.
    for node in [1, 2] {
        let mut late = Client::connect(cl.node(node)).await;
        let presence = late
            .join(&ch, &format!(r#"{{"user_id":"late{node}"}}"#))
            .await;
        assert_eq!(
            presence["hash"]["u"],
            json!({"v": 2, "status": "away"}),
            "node {node}"
        );
        assert_eq!(presence["hash"]["a"], json!({"v": 1}), "node {node}");
    }

    // The webhook: once in the cluster (fired by the owning node).
    let hook = hooks.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        hook,
        json!({"name": "member_updated", "channel": ch, "user_id": "u",
               "user_info": {"v": 2, "status": "away"}})
    );
    assert!(hooks.recv_timeout(Duration::from_millis(1500)).is_err());
}
