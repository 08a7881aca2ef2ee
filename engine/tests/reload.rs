//! Reload without a restart (SIGHUP and `POST /admin/reload`): apps added, removed and their
//! secrets rotated while connections stay up; a broken file refused with the field named and
//! the running configuration kept; limits changed; settings that need a restart reported.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// App 1 with `secret`, and app 2 when `with_app2`.
fn config(secret: &str, with_app2: bool) -> String {
    let mut t = format!("[[apps]]\nid = \"1\"\nkey = \"{KEY}\"\nsecret = \"{secret}\"\n");
    if with_app2 {
        t.push_str("[[apps]]\nid = \"2\"\nkey = \"key-2\"\nsecret = \"secret-2\"\n");
    }
    t
}

fn rewrite(s: &Server, toml: &str) {
    std::fs::write(s.config_path(), toml).unwrap();
}

/// A request to app `id` signed with `key` and `secret`.
fn signed_as(id: &str, key: &str, secret: &str, method: &str, rest: &str, body: &str) -> String {
    let path = format!("/apps/{id}/{rest}");
    signed_by(key, secret, method, &path, &[], body, now())
}

async fn publish_as(h: &mut Http, secret: &str, channel: &str, data: &str) -> Resp {
    let body = json!({"name": "e", "channel": channel, "data": data}).to_string();
    let target = signed("POST", "/apps/1/events", &[], &body, secret, now());
    h.request("POST", &target, &body).await
}

/// Polls `f` every 20 ms until it is true, for at most 5 s.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f().await {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn admin_reload(s: &Server, headers: &[&str]) -> Resp {
    let mut m = Http::metrics(s).await;
    m.request_with("POST", "/admin/reload", headers, "").await
}

/// The acceptance case: SIGHUP adds an app and rotates app 1's secret. The connection that
/// was open before stays open and subscribed, receives what the new secret publishes, and
/// its next private subscription is checked against the new secret; the old secret is
/// refused from then on; the new app serves WebSocket and API at once.
#[tokio::test]
async fn sighup_adds_an_app_and_rotates_a_secret_while_connections_stay() {
    let s = Server::start_with(&config(SECRET, false));
    let mut before = Client::connect(&s).await;
    before.subscribe("news").await;
    let mut h = Http::connect(&s).await;
    assert_eq!(publish_as(&mut h, SECRET, "news", "one").await.status, 200);
    assert_eq!(
        before.recv_text().await,
        r#"{"event":"e","channel":"news","data":"one"}"#
    );

    rewrite(&s, &config("rotated-secret", true));
    s.sighup();
    eventually("app 2 answers", || async {
        let mut h = Http::connect(&s).await;
        let t = signed_as("2", "key-2", "secret-2", "GET", "channels", "");
        h.request("GET", &t, "").await.status == 200
    })
    .await;

    let r = publish_as(&mut h, SECRET, "news", "old secret").await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        publish_as(&mut h, "rotated-secret", "news", "two")
            .await
            .status,
        200
    );
    assert_eq!(
        before.recv_text().await,
        r#"{"event":"e","channel":"news","data":"two"}"#,
        "the connection opened before the reload is still subscribed"
    );

    // Its next private subscription: the old secret's signature is refused, the new one's
    // accepted.
    let sid = before.socket_id.clone();
    let old = format!("{KEY}:{}", hmac_hex(SECRET, &format!("{sid}:private-a")));
    before
        .send(json!({"event":"pusher:subscribe","data":{"channel":"private-a","auth":old}}))
        .await;
    let refused: Value = before.recv().await;
    assert_eq!(refused["event"], "pusher:subscription_error", "{refused}");
    let new = format!(
        "{KEY}:{}",
        hmac_hex("rotated-secret", &format!("{sid}:private-b"))
    );
    before
        .send(json!({"event":"pusher:subscribe","data":{"channel":"private-b","auth":new}}))
        .await;
    assert_eq!(
        before.recv_text().await,
        r#"{"event":"pusher_internal:subscription_succeeded","channel":"private-b","data":"{}"}"#
    );

    // The new app's WebSocket.
    let (ws, _) = tokio_tungstenite::connect_async(s.url("/app/key-2?protocol=7"))
        .await
        .unwrap();
    let mut two = Client::established(ws).await;
    two.subscribe("news").await;
    let mut h2 = Http::connect(&s).await;
    let body = json!({"name": "e", "channel": "news", "data": "for two"}).to_string();
    let t = signed_as("2", "key-2", "secret-2", "POST", "events", &body);
    assert_eq!(h2.request("POST", &t, &body).await.status, 200);
    assert_eq!(
        two.recv_text().await,
        r#"{"event":"e","channel":"news","data":"for two"}"#
    );
    // Apps are apart: app 1's subscriber of `news` heard nothing of it.
    before.expect_silence(Duration::from_millis(200)).await;
}

/// A broken file is refused as a whole, with the field named, and everything stays as it
/// was: by SIGHUP (in the log) and by the admin route (in the answer).
#[tokio::test]
async fn a_broken_file_keeps_the_running_configuration() {
    let s = Server::start_with(&config(SECRET, false));
    let mut c = Client::connect(&s).await;
    c.subscribe("news").await;

    // Valid TOML, invalid config: app 2 reuses app 1's key.
    let dup = format!(
        "{}[[apps]]\nid = \"2\"\nkey = \"{KEY}\"\nsecret = \"s\"\n",
        config("rotated-secret", false)
    );
    rewrite(&s, &dup);
    s.sighup();
    let r = admin_reload(&s, &[]).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json(),
        json!({"error": "invalid config: field `apps[1].key`: duplicate key `app-key`; the running configuration stays"})
    );
    // Not TOML at all. toml's own message quotes the line (which may hold a secret): the
    // answer names the file only, the log has the rest.
    rewrite(&s, "[[apps]\nsecret = \"do-not-echo-me\n");
    let r = admin_reload(&s, &[]).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["error"],
        format!(
            "invalid config file {}: not valid TOML or an unknown field (the log says where); \
             the running configuration stays",
            s.config_path().display()
        )
    );

    // The old secret still works, the new one never took effect, the connection is up.
    let mut h = Http::connect(&s).await;
    assert_eq!(publish_as(&mut h, SECRET, "news", "kept").await.status, 200);
    assert_eq!(
        publish_as(&mut h, "rotated-secret", "news", "x")
            .await
            .status,
        401
    );
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"news","data":"kept"}"#
    );
}

/// `POST /admin/reload` answers what changed. Removing an app closes its connections with
/// 4001 and refuses its API; new limits apply to the next request; a setting that needs a
/// restart is reported and keeps its running value.
#[tokio::test]
async fn admin_reload_reports_changes_and_closes_a_removed_apps_connections() {
    let s = Server::start_with(&config(SECRET, true));
    let (ws, _) = tokio_tungstenite::connect_async(s.url("/app/key-2?protocol=7"))
        .await
        .unwrap();
    let mut two = Client::established(ws).await;
    two.subscribe("news").await;

    let mut next = config(SECRET, false);
    next.push_str("[limits]\nmax_event_data_bytes = 100\nmesh_queue_capacity = 64\n");
    next.push_str("[admin]\nsession_hours = 2\n");
    rewrite(&s, &next);
    let r = admin_reload(&s, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({
            "apps": {"added": [], "removed": ["2"], "changed": []},
            "limits": true,
            "tls": false,
            "restart_required": ["admin", "limits.mesh_queue_capacity"]
        })
    );
    assert_eq!(
        two.recv_text().await,
        r#"{"event":"pusher:error","data":{"code":4001,"message":"App removed"}}"#
    );
    assert_eq!(two.expect_close().await, 4001);

    let mut h = Http::connect(&s).await;
    let t = signed_as("2", "key-2", "secret-2", "GET", "channels", "");
    let r = h.request("GET", &t, "").await;
    assert_eq!(
        (r.status, r.json()),
        (404, json!({"error": "unknown app `2`"}))
    );
    let big = "x".repeat(101);
    assert_eq!(publish_as(&mut h, SECRET, "news", &big).await.status, 413);
    assert_eq!(
        publish_as(&mut h, SECRET, "news", &big[..100]).await.status,
        200
    );

    // Nothing changed since: no change, and the settings still waiting for a restart are
    // named again (the running values stayed).
    let r = admin_reload(&s, &[]).await;
    assert_eq!(
        r.json(),
        json!({
            "apps": {"added": [], "removed": [], "changed": []},
            "limits": false,
            "tls": false,
            "restart_required": ["admin", "limits.mesh_queue_capacity"]
        })
    );

    // Adding app 2 back: its key connects again.
    rewrite(&s, &config(SECRET, true));
    let r = admin_reload(&s, &[]).await;
    assert_eq!(
        r.json()["apps"],
        json!({"added": ["2"], "removed": [], "changed": []})
    );
    let (ws, _) = tokio_tungstenite::connect_async(s.url("/app/key-2?protocol=7"))
        .await
        .unwrap();
    Client::established(ws).await;
}

/// The reload route is an operator route: the public port wants the token, and a request
/// a browser would send cross-site (with `Origin`) is refused even where no token is needed.
#[tokio::test]
async fn the_reload_route_is_guarded() {
    let s = Server::start_with(&config(SECRET, false));
    let mut h = Http::connect(&s).await;
    let r = h.request("POST", "/admin/reload", "").await;
    assert_eq!(r.status, 401);
    let r = admin_reload(&s, &["Origin: https://evil.example"]).await;
    assert_eq!(
        (r.status, r.json()),
        (
            403,
            json!({"error": "cross-origin requests may not reload the server"})
        )
    );
    let mut m = Http::metrics(&s).await;
    assert_eq!(m.request("GET", "/admin/reload", "").await.status, 405);
}
