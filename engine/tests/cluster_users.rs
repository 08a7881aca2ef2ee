//! User features across three real nodes: messages to a signed-in user (`sendToUser`, which
//! the SDKs send as `POST /apps/{id}/events` to `#server-to-user-{id}`) reach every
//! connection of the user on every node exactly once, and `terminate_connections` on one node
//! closes the user's connections on the others.

mod common;
use common::cluster::*;
use common::*;
use serde_json::json;
use std::time::Duration;

/// Signs `c` in as `user` and subscribes it to its `#server-to-user-{user}` channel, as
/// pusher-js does after `signin_success`.
async fn sign_in(c: &mut Client, user: &str) {
    let ud = format!(r#"{{"id":"{user}"}}"#);
    let ok = c.signin(&ud).await;
    assert_eq!(
        ok,
        format!(
            r#"{{"event":"pusher:signin_success","data":{{"user_data":{}}}}}"#,
            serde_json::to_string(&ud).unwrap()
        )
    );
    c.subscribe(&format!("#server-to-user-{user}")).await;
}

/// Reads until `c` has been silent for 300 ms (probes of other clients' `wait_routed`).
async fn drain(c: &mut Client) {
    while c
        .recv_text_within(Duration::from_millis(300))
        .await
        .is_some()
    {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_users_and_terminate_cross_nodes() {
    let cl = Cluster::start(3);
    // `solo` is signed in on node 2 only; `multi` on nodes 0, 1 and 2; `other` on 1 and 2.
    let mut solo = Client::connect(cl.node(2)).await;
    sign_in(&mut solo, "solo").await;
    let mut multi = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(cl.node(i)).await;
        sign_in(&mut c, "multi").await;
        multi.push(c);
    }
    let mut others = Vec::new();
    for i in 1..3 {
        let mut c = Client::connect(cl.node(i)).await;
        sign_in(&mut c, "other").await;
        others.push(c);
    }

    let mut h = Http::connect(cl.node(0)).await;
    wait_routed(&mut h, &mut solo, "#server-to-user-solo").await;
    for c in multi.iter_mut() {
        wait_routed(&mut h, c, "#server-to-user-multi").await;
    }
    for c in others.iter_mut() {
        wait_routed(&mut h, c, "#server-to-user-other").await;
    }
    for c in multi.iter_mut().chain(others.iter_mut()) {
        drain(c).await;
    }

    // One event to `solo` (node 2), then one to `multi` (all three nodes).
    for (user, data) in [("solo", r#"{"n":1}"#), ("multi", r#"{"n":2}"#)] {
        let body =
            json!({"name":"notice","channels":[format!("#server-to-user-{user}")],"data":data})
                .to_string();
        let r = h.signed("POST", "/apps/1/events", &[], &body).await;
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    }
    assert_eq!(
        solo.recv_text().await,
        r##"{"event":"notice","channel":"#server-to-user-solo","data":"{\"n\":1}"}"##
    );
    for c in multi.iter_mut() {
        assert_eq!(
            c.recv_text().await,
            r##"{"event":"notice","channel":"#server-to-user-multi","data":"{\"n\":2}"}"##
        );
    }
    // Exactly once each, and nobody else's.
    for c in multi
        .iter_mut()
        .chain(others.iter_mut())
        .chain(std::iter::once(&mut solo))
    {
        c.expect_silence(Duration::from_millis(500)).await;
    }

    // Terminate `multi` through node 0: its connections on every node get 4009; `solo` and
    // `other` stay connected.
    let r = h
        .signed(
            "POST",
            "/apps/1/users/multi/terminate_connections",
            &[],
            "{}",
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    for c in multi.iter_mut() {
        assert_eq!(
            c.recv_text().await,
            r#"{"event":"pusher:error","data":{"code":4009,"message":"connection terminated by the app"}}"#
        );
        assert_eq!(c.expect_close().await, 4009);
    }
    for c in others.iter_mut().chain(std::iter::once(&mut solo)) {
        c.send(json!({"event":"pusher:ping","data":{}})).await;
        assert_eq!(
            c.recv_text().await,
            r#"{"event":"pusher:pong","data":"{}"}"#
        );
    }

    // The PyPI SDK path (no /apps/{id} prefix), from node 1, for the user on nodes 1 and 2.
    let mut h1 = Http::connect(cl.node(1)).await;
    let r = h1
        .signed("POST", "/users/other/terminate_connections", &[], "{}")
        .await;
    assert_eq!(r.status, 200);
    for c in others.iter_mut() {
        assert_eq!(c.expect_close().await, 4009);
    }
    solo.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(
        solo.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
}
