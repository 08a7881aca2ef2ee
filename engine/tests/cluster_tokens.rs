//! Access tokens on three real nodes (docs/tokens.md): a one-use token is one session
//! cluster-wide (counted at the node that owns its id), and a revocation made through one
//! node closes a session on another within a second.

mod common;
use common::cluster::*;
use common::*;
use raptor_engine::token::{mint, now_secs, Claims};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
require_tokens = true
"#;

async fn signin_token(c: &mut Client, token: &str, user_data: &str) -> Value {
    c.send(json!({"event": "pusher:signin", "data": {"auth": token, "user_data": user_data}}))
        .await;
    c.recv().await
}

fn claims(sub: &str, jti: &str) -> Claims {
    Claims {
        sub: Some(sub.into()),
        read: vec!["news".into()],
        exp: Some(now_secs() + 600),
        jti: Some(jti.into()),
        ..Claims::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_use_is_one_session_on_every_node() {
    let cl = Cluster::start_with(3, CONFIG);
    wait_linked(&cl, 3).await;
    // Every node in turn owns the counting of some token id; try several ids.
    for i in 0..3 {
        let mut c = claims("u1", &format!("once-{i}-{}", fastrand::u32(..)));
        c.uses = Some(1);
        let t = mint(KEY, SECRET, &c);
        let mut a = Client::connect(cl.node(0)).await;
        let r = signin_token(&mut a, &t, r#"{"id":"u1","session":"page-1"}"#).await;
        assert_eq!(r["event"], "pusher:signin_success");
        // The same page reconnecting through another node: still its one use.
        let mut a2 = Client::connect(cl.node(1)).await;
        let r = signin_token(&mut a2, &t, r#"{"id":"u1","session":"page-1"}"#).await;
        assert_eq!(r["event"], "pusher:signin_success");
        a2.expect_silence(Duration::from_millis(300)).await;
        // A second page on a third node: refused and closed.
        let mut b = Client::connect(cl.node(2)).await;
        let r = signin_token(&mut b, &t, r#"{"id":"u1","session":"page-2"}"#).await;
        assert_eq!(r["event"], "pusher:signin_success");
        let e = b.recv().await;
        assert_eq!(e["data"]["code"].as_u64(), Some(4009), "{e}");
        assert_eq!(b.expect_close().await, 4009);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_node_closes_a_session_on_another_within_a_second() {
    let cl = Cluster::start_with(3, CONFIG);
    wait_linked(&cl, 3).await;
    let t = mint(KEY, SECRET, &claims("u7", "revoke-me"));
    let mut c = Client::connect(cl.node(2)).await;
    assert_eq!(
        signin_token(&mut c, &t, r#"{"id":"u7"}"#).await["event"],
        "pusher:signin_success"
    );
    let mut h = Http::connect(cl.node(0)).await;
    let t0 = Instant::now();
    let r = h
        .signed(
            "POST",
            "/apps/1/tokens/revoke",
            &[],
            r#"{"jti":"revoke-me"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(c.expect_close().await, 4009);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    // And refused on every node from now on.
    for i in 0..3 {
        let mut d = Client::connect(cl.node(i)).await;
        let r = signin_token(&mut d, &t, r#"{"id":"u7"}"#).await;
        assert_eq!(r["data"]["message"], "token revoked", "node {i}");
    }
}
