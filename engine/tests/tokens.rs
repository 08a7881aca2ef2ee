//! Access tokens (docs/tokens.md) on one node: minted by the API or the app's backend,
//! presented in `pusher:signin`, in a subscription's `auth` or as `?token=`; read and write
//! grants in a token-mandatory app; uses per session; revocation and expiry close sessions.

mod common;
use common::*;
use raptor_engine::token::{mint, now_secs, Claims};
use serde_json::{json, Value};
use std::time::Duration;

const CONFIG: &str = r#"
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
require_tokens = true
"#;

fn claims(sub: &str, read: &[&str], write: &[&str]) -> Claims {
    Claims {
        sub: Some(sub.into()),
        read: read.iter().map(|s| s.to_string()).collect(),
        write: write.iter().map(|s| s.to_string()).collect(),
        exp: Some(now_secs() + 600),
        jti: Some(format!("t-{}", fastrand::u64(..))),
        ..Claims::default()
    }
}

fn token(c: &Claims) -> String {
    mint(KEY, SECRET, c)
}

async fn signin_token(c: &mut Client, token: &str, user_data: &str) -> Value {
    c.send(json!({"event": "pusher:signin", "data": {"auth": token, "user_data": user_data}}))
        .await;
    c.recv().await
}

/// Sends a subscribe; returns the first answer.
async fn subscribe_with(c: &mut Client, channel: &str, auth: &str, data: Option<&str>) -> Value {
    let mut d = json!({"channel": channel, "auth": auth});
    if let Some(cd) = data {
        d["channel_data"] = json!(cd);
    }
    c.send(json!({"event": "pusher:subscribe", "data": d}))
        .await;
    c.recv().await
}

fn succeeded(v: &Value, channel: &str) {
    assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
    assert_eq!(v["channel"], channel);
}

fn refused(v: &Value, channel: &str, kind: &str, status: u64) {
    assert_eq!(v["event"], "pusher:subscription_error", "{v}");
    assert_eq!(v["channel"], channel);
    let d: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        (d["type"].as_str(), d["status"].as_u64()),
        (Some(kind), Some(status)),
        "{d}"
    );
}

#[tokio::test]
async fn read_and_write_grants_decide_in_a_token_mandatory_app() {
    let s = Server::start_with(CONFIG);
    let mut c = Client::connect(&s).await;
    // Without a token nothing may be read, public channels included.
    refused(
        &subscribe_with(&mut c, "news", "", None).await,
        "news",
        "TokenRequired",
        403,
    );
    let t = token(&claims(
        "u1",
        &["news", "chat-*", "private-room-*"],
        &["chat-*"],
    ));
    let r = signin_token(&mut c, &t, r#"{"id":"u1"}"#).await;
    assert_eq!(r["event"], "pusher:signin_success", "{r}");
    succeeded(&subscribe_with(&mut c, "news", "", None).await, "news");
    succeeded(&subscribe_with(&mut c, "chat-1", "", None).await, "chat-1");
    // A private channel the grant names needs no signature.
    succeeded(
        &subscribe_with(&mut c, "private-room-7", "", None).await,
        "private-room-7",
    );
    refused(
        &subscribe_with(&mut c, "sports", "", None).await,
        "sports",
        "TokenRequired",
        403,
    );
    // A correct HMAC is not enough here: the app asks for a grant.
    let auth = private_auth(&c.socket_id, "private-other");
    refused(
        &subscribe_with(&mut c, "private-other", &auth, None).await,
        "private-other",
        "TokenRequired",
        403,
    );
    // Write grants: client events where the grant says, public channels included.
    c.send(json!({"event": "client-typing", "channel": "chat-1", "data": {}}))
        .await;
    c.send(json!({"event": "client-typing", "channel": "news", "data": {}}))
        .await;
    let e = c.recv().await;
    assert_eq!(
        (e["event"].as_str(), e["data"]["code"].as_u64()),
        (Some("pusher:error"), Some(4315)),
        "{e}"
    );
    assert!(e["data"]["message"]
        .as_str()
        .unwrap()
        .contains("write grant"));
    c.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_token_in_a_subscription_auth_or_in_the_url() {
    let s = Server::start_with(CONFIG);
    let mut c = Client::connect(&s).await;
    // pusher-js channelAuthorization.customHandler returning {auth: token}.
    let t = token(&claims("u2", &["private-a", "presence-p"], &[]));
    succeeded(
        &subscribe_with(&mut c, "private-a", &t, None).await,
        "private-a",
    );
    refused(
        &subscribe_with(&mut c, "private-b", &t, None).await,
        "private-b",
        "TokenRequired",
        403,
    );
    // Presence: the member is the token's user.
    let v = subscribe_with(&mut c, "presence-p", &t, Some(r#"{"user_id":"u2"}"#)).await;
    succeeded(&v, "presence-p");
    let mut d = Client::connect(&s).await;
    let v = subscribe_with(&mut d, "presence-p", &t, Some(r#"{"user_id":"mallory"}"#)).await;
    refused(&v, "presence-p", "TokenError", 401);
    // ?token= on the URL: signed in as its sub, with its grants, before any message.
    let t = token(&claims("u3", &["news"], &[]));
    let (ws, _) = tokio_tungstenite::connect_async(s.url(&format!(
        "/app/app-key?protocol=7&client=js&version=8.6.0&token={t}"
    )))
    .await
    .unwrap();
    let mut u = Client::established(ws).await;
    succeeded(&subscribe_with(&mut u, "news", "", None).await, "news");
    // A forged token in the URL: 4009 and closed.
    let forged = mint(KEY, "wrong-secret", &claims("u3", &["news"], &[]));
    let (ws, _) = tokio_tungstenite::connect_async(s.url(&format!(
        "/app/app-key?protocol=7&client=js&version=8.6.0&token={forged}"
    )))
    .await
    .unwrap();
    let mut f = Client::established(ws).await;
    let e = f.recv().await;
    assert_eq!(
        (e["data"]["code"].as_u64(), e["data"]["message"].as_str()),
        (Some(4009), Some("invalid token signature"))
    );
    assert_eq!(f.expect_close().await, 4009);
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_reason() {
    let s = Server::start_with(CONFIG);
    let mut c = Client::connect(&s).await;
    let good = token(&claims("u1", &["news"], &[]));
    let mut many = claims("u1", &[], &[]);
    many.read = (0..101).map(|i| format!("c{i}")).collect();
    let mut expired = claims("u1", &["news"], &[]);
    expired.exp = Some(now_secs() - 100);
    let parts: Vec<&str> = good.split('.').collect();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    let cases = [
        (
            good[..good.len() - 4].to_string(),
            "invalid token signature",
        ),
        (
            mint(KEY, "nope", &claims("u1", &[], &[])),
            "invalid token signature",
        ),
        (
            mint("other-key", SECRET, &claims("u1", &[], &[])),
            "token of another app (kid)",
        ),
        (token(&many), "token has more than 100 grants"),
        (token(&expired), "token expired"),
        (
            format!("eyJ{}.a.b", "x".repeat(9000)),
            "token larger than 8192 bytes",
        ),
        (none, "malformed token"),
        // HS256 without the app key as kid: refused before its (empty) signature.
        (
            "eyJhbGciOiJIUzI1NiJ9.e30".to_string() + ".",
            "token without kid",
        ),
        ("eyJ!!!.e30.x".to_string(), "malformed token"),
    ];
    for (t, why) in cases {
        let r = signin_token(&mut c, &t, r#"{"id":"u1"}"#).await;
        assert_eq!(
            (r["event"].as_str(), r["data"]["code"].as_u64()),
            (Some("pusher:error"), Some(4314)),
            "{r}"
        );
        let message = r["data"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(why),
            "{message} vs {why} ({})",
            &t[..t.len().min(60)]
        );
        // The same token in a subscription's auth: the subscription is refused, 401.
        refused(
            &subscribe_with(&mut c, "news", &t, None).await,
            "news",
            "TokenError",
            401,
        );
    }
    // The user in user_data must be the token's.
    let r = signin_token(&mut c, &good, r#"{"id":"someone-else"}"#).await;
    assert_eq!(r["data"]["message"], "user_data id is not the token's sub");
}

#[tokio::test]
async fn a_one_use_token_serves_one_session_and_its_reconnections() {
    let s = Server::start_with(CONFIG);
    let mut c = claims("u1", &["news"], &[]);
    c.uses = Some(1);
    let t = token(&c);
    let mut a = Client::connect(&s).await;
    let r = signin_token(&mut a, &t, r#"{"id":"u1","session":"page-1"}"#).await;
    assert_eq!(r["event"], "pusher:signin_success");
    // The same page reconnecting (pusher-js signs in again with the same user_data).
    drop(a);
    let mut a2 = Client::connect(&s).await;
    let r = signin_token(&mut a2, &t, r#"{"id":"u1","session":"page-1"}"#).await;
    assert_eq!(r["event"], "pusher:signin_success");
    succeeded(&subscribe_with(&mut a2, "news", "", None).await, "news");
    // Another page: refused, closed with 4009.
    let mut b = Client::connect(&s).await;
    let r = signin_token(&mut b, &t, r#"{"id":"u1","session":"page-2"}"#).await;
    assert_eq!(
        r["event"], "pusher:signin_success",
        "accepted at once, counted by the owner"
    );
    let e = b.recv().await;
    assert_eq!(
        (e["data"]["code"].as_u64(), e["data"]["message"].as_str()),
        (
            Some(4009),
            Some("token used by as many sessions as it allows")
        )
    );
    assert_eq!(b.expect_close().await, 4009);
}

#[tokio::test]
async fn revocation_and_expiry_close_sessions() {
    let s = Server::start_with(CONFIG);
    let mut h = Http::connect(&s).await;
    // The API mints.
    let body = json!({"sub": "u9", "read": ["news"], "ttl_secs": 600}).to_string();
    let r = h.signed("POST", "/apps/1/tokens", &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let minted = r.json();
    let t = minted["token"].as_str().unwrap().to_string();
    assert!(minted["exp"].as_u64().unwrap() >= now_secs() + 599);
    let mut a = Client::connect(&s).await;
    assert_eq!(
        signin_token(&mut a, &t, r#"{"id":"u9"}"#).await["event"],
        "pusher:signin_success"
    );
    succeeded(&subscribe_with(&mut a, "news", "", None).await, "news");
    // Revoked by its id: the session is closed with 4009, a new sign-in refused.
    let body = json!({"jti": minted["jti"]}).to_string();
    let r = h.signed("POST", "/apps/1/tokens/revoke", &[], &body).await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    let e = a.recv().await;
    assert_eq!(
        (e["data"]["code"].as_u64(), e["data"]["message"].as_str()),
        (Some(4009), Some("token revoked"))
    );
    assert_eq!(a.expect_close().await, 4009);
    let mut b = Client::connect(&s).await;
    let r = signin_token(&mut b, &t, r#"{"id":"u9"}"#).await;
    assert_eq!(
        (r["data"]["code"].as_u64(), r["data"]["message"].as_str()),
        (Some(4314), Some("token revoked"))
    );
    // By user: every token of the user.
    let t2 = token(&claims("u10", &["news"], &[]));
    let mut c = Client::connect(&s).await;
    assert_eq!(
        signin_token(&mut c, &t2, r#"{"id":"u10"}"#).await["event"],
        "pusher:signin_success"
    );
    let r = h
        .signed("POST", "/apps/1/tokens/revoke", &[], r#"{"user_id":"u10"}"#)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(c.expect_close().await, 4009);
    // Expiry (within the 30 s leeway now, past it in about 2 s): closed with 4102, unless the
    // session signed in again with a fresh token.
    let mut short = claims("u11", &["news"], &[]);
    short.exp = Some(now_secs() - 28);
    let mut d = Client::connect(&s).await;
    let mut e = Client::connect(&s).await;
    assert_eq!(
        signin_token(&mut d, &token(&short), r#"{"id":"u11"}"#).await["event"],
        "pusher:signin_success"
    );
    assert_eq!(
        signin_token(&mut e, &token(&short), r#"{"id":"u11"}"#).await["event"],
        "pusher:signin_success"
    );
    let fresh = token(&claims("u11", &["news"], &[]));
    assert_eq!(
        signin_token(&mut e, &fresh, r#"{"id":"u11"}"#).await["event"],
        "pusher:signin_success"
    );
    let x = d
        .recv_text_within(Duration::from_secs(6))
        .await
        .expect("an error before the close");
    let x: Value = serde_json::from_str(&x).unwrap();
    assert_eq!(
        (x["data"]["code"].as_u64(), x["data"]["message"].as_str()),
        (Some(4102), Some("token expired: sign in again"))
    );
    assert_eq!(d.expect_close().await, 4102);
    e.expect_silence(Duration::from_millis(1500)).await;
    // Bad API bodies.
    for (path, body) in [
        ("/apps/1/tokens", "[]"),
        ("/apps/1/tokens", r#"{"ttl_secs":0}"#),
        ("/apps/1/tokens/revoke", "{}"),
        ("/apps/1/tokens", r#"{"read":["["]}"#),
    ] {
        let r = h.signed("POST", path, &[], body).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
        assert!(r.json()["error"].is_string());
    }
}

#[tokio::test]
async fn tokens_name_their_user_and_cannot_be_stretched() {
    let s = Server::start_with(CONFIG);
    // A token without sub grants, but signs no one in.
    let mut anon = claims("x", &["news"], &[]);
    anon.sub = None;
    let mut c = Client::connect(&s).await;
    let r = signin_token(&mut c, &token(&anon), r#"{"id":"admin"}"#).await;
    assert_eq!(
        (r["data"]["code"].as_u64(), r["data"]["message"].as_str()),
        (Some(4314), Some("a token without sub signs no one in"))
    );
    succeeded(
        &subscribe_with(&mut c, "news", &token(&anon), None).await,
        "news",
    );
    // Presence through a token: the member is the token's user with the token's info,
    // whatever channel_data claims, and never privileged.
    let mut p = claims("ann", &["presence-privileged-desk"], &[]);
    p.info = Some(simd_json::json!({"name": "Ann"}));
    let data = r#"{"user_id":"ann","user_info":{"name":"Support staff"},"privileged":true}"#;
    let v = subscribe_with(&mut c, "presence-privileged-desk", &token(&p), Some(data)).await;
    succeeded(&v, "presence-privileged-desk");
    let d: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(d["presence"]["hash"], json!({"ann": {"name": "Ann"}}));
    // A token with uses is for a sign-in only (a subscription's auth has no session).
    let mut once = claims("ann", &["news"], &[]);
    once.uses = Some(1);
    let v = subscribe_with(&mut c, "private-x", &token(&once), None).await;
    refused(&v, "private-x", "TokenError", 401);
    // The API refuses unknown claims (a misspelt "sub" would mint a token without a user).
    let mut h = Http::connect(&s).await;
    let r = h
        .signed("POST", "/apps/1/tokens", &[], r#"{"user_id":"ann"}"#)
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test]
async fn a_token_in_auth_is_revoked_with_its_session_and_a_user_revocation_spares_later_tokens() {
    let s = Server::start_with(CONFIG);
    let mut h = Http::connect(&s).await;
    let t = claims("u20", &["private-a"], &[]);
    let mut c = Client::connect(&s).await;
    succeeded(
        &subscribe_with(&mut c, "private-a", &token(&t), None).await,
        "private-a",
    );
    let body = json!({"jti": t.jti}).to_string();
    assert_eq!(
        h.signed("POST", "/apps/1/tokens/revoke", &[], &body)
            .await
            .status,
        200
    );
    assert_eq!(c.expect_close().await, 4009);
    // "Log out everywhere", then a fresh token (issued after it): signs in.
    let mut old = claims("u21", &["news"], &[]);
    old.iat = Some(now_secs() - 10);
    let r = h
        .signed("POST", "/apps/1/tokens/revoke", &[], r#"{"user_id":"u21"}"#)
        .await;
    assert_eq!(r.status, 200);
    let mut d = Client::connect(&s).await;
    let r = signin_token(&mut d, &token(&old), r#"{"id":"u21"}"#).await;
    assert_eq!(r["data"]["message"], "token revoked");
    let mut fresh = claims("u21", &["news"], &[]);
    fresh.iat = Some(now_secs() + 1);
    let r = signin_token(&mut d, &token(&fresh), r#"{"id":"u21"}"#).await;
    assert_eq!(r["event"], "pusher:signin_success", "{r}");
}
