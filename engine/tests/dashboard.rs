//! The admin API behind the dashboard (docs/dashboard.md), against the real binary: who may
//! call it (password, session cookie, CSRF), what it answers, and its operations.

mod common;
use common::cluster::{wait_linked, Cluster};
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct-horse-battery";

fn admin_toml() -> String {
    format!("[admin]\npassword = \"{PASSWORD}\"\n")
}

fn bearer() -> String {
    format!("Authorization: Bearer {PASSWORD}")
}

async fn get(s: &Server, path: &str, headers: &[&str]) -> Resp {
    let mut h = Http::connect(s).await;
    h.request_with("GET", path, headers, "").await
}

async fn post(s: &Server, path: &str, headers: &[&str], body: &str) -> Resp {
    let mut h = Http::connect(s).await;
    h.request_with("POST", path, headers, body).await
}

/// The overview once the sampler made one, when `ready` holds for it (within 5 s).
async fn overview_until(s: &Server, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(s, "/admin/api/overview", &[&bearer()]).await;
        if r.status == 200 {
            let v = r.json();
            if ready(&v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not within 5 s: {what}; last: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// This node's cookie name (`raptor_admin_<tag>`), from a login.
async fn cookie_name(s: &Server) -> String {
    login(s).await.split('=').next().unwrap().to_string()
}

/// A session cookie from the login route (`name=value`).
async fn login(s: &Server) -> String {
    let r = post(
        s,
        "/admin/api/login",
        &["X-Raptor-CSRF: 1"],
        &json!({ "password": PASSWORD }).to_string(),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"ok":true}"#));
    let set = r.header("set-cookie").expect("a cookie").to_string();
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn no_data_without_the_credential() {
    let s = Server::start_with(&admin_toml());
    let forged = format!("Cookie: {}=v1.99999999999.00ff", cookie_name(&s).await);
    // Wrong passwords: 2 here and 2 logins below, under the 5 a second that get 401 (then 429).
    for (i, path) in [
        "/admin/api/overview",
        "/admin/api/series",
        "/admin/api/stream",
        "/admin/api/apps/1/channels",
        "/admin/api/apps/1/channels/news",
    ]
    .into_iter()
    .enumerate()
    {
        let r = get(&s, path, &[]).await;
        assert_eq!(
            (r.status, r.json()),
            (401, json!({"error": "authentication required"})),
            "{path}"
        );
        if i < 2 {
            let r = get(&s, path, &["Authorization: Bearer wrong-password-here"]).await;
            assert_eq!(
                (r.status, r.json()),
                (401, json!({"error": "invalid credentials"})),
                "{path}"
            );
        }
        let r = get(&s, path, &[&forged]).await;
        assert_eq!(r.status, 401, "a forged session: {path}");
    }
    for body in [json!({"password": "nope"}).to_string(), "not json".into()] {
        let r = post(&s, "/admin/api/login", &["X-Raptor-CSRF: 1"], &body).await;
        assert_eq!(
            (r.status, r.json()),
            (401, json!({"error": "invalid credentials"}))
        );
        assert!(r.header("set-cookie").is_none());
    }
    // The page itself holds no data (the login form), and nothing from elsewhere.
    let r = get(&s, "/dashboard", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r
        .header("content-security-policy")
        .is_some_and(|c| c.starts_with("default-src 'self'")));
    assert!(!r.body.contains("http://") && !r.body.contains("https://"));
    assert_eq!(get(&s, "/dashboard/nope.js", &[]).await.status, 404);
}

/// Guessing is bounded node-wide: after 5 wrong passwords in a second, every check (the
/// right password too) gets 429 with `Retry-After` until the second is over.
#[tokio::test]
async fn wrong_passwords_are_rate_limited() {
    let s = Server::start_with(&admin_toml());
    let wrong = "Authorization: Bearer wrong-password-here";
    // Aligned to a fresh second, so all six attempts fall in one window.
    let mut h = Http::connect(&s).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            h.request_with("GET", "/admin/api/overview", &[wrong], "")
                .await
                .status,
        );
    }
    let refused = h
        .request_with("GET", "/admin/api/overview", &[&bearer()], "")
        .await;
    let login = post(
        &s,
        "/admin/api/login",
        &["X-Raptor-CSRF: 1"],
        &json!({ "password": PASSWORD }).to_string(),
    )
    .await;
    if statuses.iter().filter(|&&c| c == 401).count() == 5 && statuses.contains(&429) {
        assert_eq!(refused.status, 429);
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert_eq!(
            refused.json(),
            json!({"error": "too many wrong passwords; retry in a second"})
        );
        assert_eq!(login.status, 429);
    } else {
        // The attempts straddled a second boundary: the window started again.
        assert!(
            statuses.iter().all(|&c| c == 401 || c == 429),
            "{statuses:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get(&s, "/admin/api/overview", &[&bearer()]).await;
    assert!(r.status == 200 || r.status == 503, "{}", r.status);
}

#[tokio::test]
async fn the_session_cookie_is_strict_and_cross_site_posts_are_refused() {
    let s = Server::start_with(&admin_toml());
    // A login form posted from another site carries no CSRF header.
    let body = json!({ "password": PASSWORD }).to_string();
    let r = post(&s, "/admin/api/login", &[], &body).await;
    assert_eq!(
        (r.status, r.json()),
        (403, json!({"error": "cross-site request refused"}))
    );
    let r = post(&s, "/admin/api/login", &["X-Raptor-CSRF: 1"], &body).await;
    let set = r.header("set-cookie").unwrap();
    let name = cookie_name(&s).await;
    assert!(
        name.starts_with("raptor_admin_") && name.len() == 21,
        "{name}"
    );
    assert!(set.starts_with(&format!("{name}=v1.")), "{set}");
    assert!(
        set.ends_with("; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200"),
        "{set}"
    );

    let cookie = format!("Cookie: {}", login(&s).await);
    overview_until(&s, "an overview", |_| true).await;
    assert_eq!(get(&s, "/admin/api/overview", &[&cookie]).await.status, 200);

    let mut sub = Client::connect(&s).await;
    sub.subscribe("news").await;
    let ev = json!({"channel": "news", "event": "test", "data": "hi"}).to_string();
    let path = "/admin/api/apps/1/publish";
    // The cookie alone, as a cross-site form would send it: refused.
    let r = post(&s, path, &[&cookie], &ev).await;
    assert_eq!(
        (r.status, r.json()),
        (403, json!({"error": "cross-site request refused"}))
    );
    // The header, but from another origin (a fetch with CORS would need our consent).
    let evil = ["X-Raptor-CSRF: 1", "Origin: https://evil.example", &cookie];
    assert_eq!(post(&s, path, &evil, &ev).await.status, 403);
    sub.expect_silence(Duration::from_millis(200)).await;
    // Same origin (the harness sends `Host: 127.0.0.1`): published, like the HTTP API would.
    let origin = "Origin: http://127.0.0.1".to_string();
    let ok = ["X-Raptor-CSRF: 1", &origin, &cookie];
    let r = post(&s, path, &ok, &ev).await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    assert_eq!(
        sub.recv_text().await,
        r#"{"event":"test","channel":"news","data":"hi"}"#
    );
    // Logout clears the cookie.
    let r = post(&s, "/admin/api/logout", &["X-Raptor-CSRF: 1", &cookie], "").await;
    assert_eq!(
        r.header("set-cookie"),
        Some(format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0").as_str())
    );
}

#[tokio::test]
async fn admin_disabled_is_404_everywhere() {
    let s = Server::start_with("[admin]\nenabled = false\n");
    for path in ["/dashboard", "/dashboard/app.js", "/admin/api/overview"] {
        let r = get(&s, path, &[&bearer()]).await;
        assert_eq!(
            (r.status, r.json()),
            (404, json!({"error": "no such endpoint"}))
        );
        let mut m = Http::metrics(&s).await;
        assert_eq!(m.request("GET", path, "").await.status, 404);
    }
}

/// Without a configured password the node makes one and logs it once; it works on the
/// metrics listener, and the public port does not serve the admin API at all.
#[tokio::test]
async fn a_generated_password_is_logged_and_works() {
    let log = std::env::temp_dir().join(format!("raptor-admin-log-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let opts = StartOpts {
        stderr: Some(log.clone()),
        ..StartOpts::default()
    };
    let s = Server::try_start_opts(
        "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n",
        &[],
        &opts,
    )
    .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("admin: no admin.password set"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let password = lines[0]
        .split("generated for this run: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert_eq!(password.len(), 24);
    let auth = format!("Authorization: Bearer {password}");
    let r = get(&s, "/admin/api/overview", &[&auth]).await;
    assert_eq!(
        (r.status, r.json()),
        (404, json!({"error": "no such endpoint"}))
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut m = Http::metrics(&s).await;
        let r = m
            .request_with("GET", "/admin/api/overview", &[&auth], "")
            .await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The overview and the channel views follow what happens, within a few seconds.
#[tokio::test]
async fn figures_follow_connections_publishes_and_members() {
    let s = Server::start_with(&admin_toml());
    let mut a = Client::connect(&s).await;
    a.subscribe("news").await;
    let mut b = Client::connect(&s).await;
    b.subscribe("news").await;
    b.join("presence-room", r#"{"user_id":"alice"}"#).await;
    let v = overview_until(&s, "two connections", |v| v["totals"]["connections"] == 2).await;
    assert_eq!(v["node"], "single");
    assert_eq!(v["cluster"], false);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(v["nodes"][0]["self"], true);
    assert_eq!(v["nodes"][0]["shards"], 2);
    assert!(v["nodes"][0]["rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert_eq!(
        v["apps"],
        json!([{"id": "1", "key": "app-key", "connections": 2, "channels": 2,
                "subscriptions": 3, "presence_channels": 1, "presence_members": 1,
                "messages_in_per_sec": v["apps"][0]["messages_in_per_sec"],
                "messages_out_per_sec": v["apps"][0]["messages_out_per_sec"],
                "client_events": 0}])
    );

    // Publishing for a while shows as a rate in and out.
    let mut h = Http::connect(&s).await;
    let v = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            for _ in 0..5 {
                assert_eq!(h.publish("news", "e", "x").await.status, 200);
            }
            let v = overview_until(&s, "an overview", |_| true).await;
            if v["totals"]["messages_in_per_sec"].as_f64().unwrap() > 0.0
                && v["totals"]["messages_out_per_sec"].as_f64().unwrap() > 0.0
            {
                break v;
            }
            assert!(Instant::now() < deadline, "no rate: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    assert!(v["apps"][0]["messages_in_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["apps"][0]["messages_out_per_sec"].as_f64().unwrap() > 0.0);
    let r = get(&s, "/admin/api/series?range=15m", &[&bearer()]).await;
    let series = r.json();
    assert_eq!(series["resolution_secs"], 1);
    let points = series["points"].as_array().unwrap();
    assert!(!points.is_empty());
    assert!(points
        .iter()
        .any(|p| p["messages_in"].as_f64().unwrap() > 0.0));
    assert_eq!(
        get(&s, "/admin/api/series?range=1y", &[&bearer()])
            .await
            .status,
        400
    );

    let r = get(
        &s,
        "/admin/api/apps/1/channels?sort=subscribers",
        &[&bearer()],
    )
    .await;
    assert_eq!(r.status, 200);
    let top = r.json();
    assert_eq!(top["channels"][0]["name"], "news");
    assert_eq!(top["channels"][0]["subscription_count"], 2);
    assert_eq!(top["channels"][1]["name"], "presence-room");
    let r = get(
        &s,
        "/admin/api/apps/1/channels?sort=rate&limit=1",
        &[&bearer()],
    )
    .await;
    assert_eq!(r.json()["channels"].as_array().unwrap().len(), 1);

    let r = get(&s, "/admin/api/apps/1/channels/presence-room", &[&bearer()]).await;
    assert_eq!(
        r.json(),
        json!({"name": "presence-room", "occupied": true, "subscription_count": 1,
               "user_count": 1, "members": ["alice"], "cache": null})
    );
    let r = get(&s, "/admin/api/apps/9/channels/news", &[&bearer()]).await;
    assert_eq!(
        (r.status, r.json()),
        (404, json!({"error": "unknown app `9`"}))
    );
}

/// Terminate a signed-in user from the admin API: its connection gets 4009.
#[tokio::test]
async fn terminate_closes_the_users_connections() {
    let s = Server::start_with(&admin_toml());
    let mut c = Client::connect(&s).await;
    assert!(c.signin(r#"{"id":"u-1"}"#).await.contains("signin_success"));
    let r = post(
        &s,
        "/admin/api/apps/1/users/u-1/terminate",
        &[&bearer()],
        "",
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"pusher:error","data":{"code":4009,"message":"connection terminated by the app"}}"#
    );
    assert_eq!(c.expect_close().await, 4009);
    let v = overview_until(&s, "the close counted", |v| {
        v["closes_by_code"]["4009"] == 1
    })
    .await;
    assert_eq!(v["closes_by_code"], json!({"4009": 1}));
}

#[tokio::test]
async fn the_stream_sends_an_overview_every_second() {
    let s = Server::start_with(&admin_toml());
    overview_until(&s, "an overview", |_| true).await;
    let mut h = Http::connect(&s).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!(
        "GET /admin/api/stream HTTP/1.1\r\nHost: x\r\n{}\r\n\r\n",
        bearer()
    );
    h.stream.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(4);
    while String::from_utf8_lossy(&got).matches("data: ").count() < 2 {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline.into(), h.stream.read(&mut buf))
            .await
            .expect("two events within 4 s")
            .unwrap();
        assert!(n > 0, "stream closed");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(got).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"));
    let first = text
        .split("data: ")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    let v: Value = serde_json::from_str(first).unwrap();
    assert_eq!(v["node"], "single");
}

/// Drain from the admin API is SIGTERM's drain: clients get 4200 and the process exits 0.
#[tokio::test]
async fn drain_leaves_gracefully() {
    let mut s = Server::start_with(&admin_toml());
    let mut c = Client::connect(&s).await;
    let r = post(&s, "/admin/api/drain", &[&bearer()], "").await;
    assert_eq!((r.status, r.json()), (202, json!({"draining": true})));
    assert_eq!(c.expect_close().await, 4200);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "still running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// In a cluster, every node lists every node, each with the figures it gossips.
#[tokio::test]
async fn a_cluster_node_lists_every_node_with_its_figures() {
    let cl = Cluster::start_with(3, &admin_toml());
    // Every node met its cluster (a node shows as `joining` until then).
    wait_linked(&cl, 3).await;
    let mut c = Client::connect(cl.node(2)).await;
    c.subscribe("news").await;
    let v = overview_until(cl.node(0), "3 nodes, node-2 with its connection", |v| {
        v["nodes"].as_array().is_some_and(|n| {
            n.len() == 3
                && n.iter()
                    .any(|x| x["id"] == "node-2" && x["connections"] == 1)
        })
    })
    .await;
    assert_eq!(v["node"], "node-0");
    assert_eq!(v["cluster"], true);
    let ids: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["node-0", "node-1", "node-2"]);
    for n in v["nodes"].as_array().unwrap() {
        assert_eq!(n["self"], n["id"] == "node-0");
        assert_eq!(n["state"], "ready");
        assert_eq!(n["shards"], 2, "{n}");
        assert!(n["version"].as_str().unwrap().starts_with("0.1.0"), "{n}");
        assert!(
            n["address"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{n}"
        );
    }
    assert_eq!(v["totals"]["connections"], 1);
    // The inspector counts the channel's subscribers on every node.
    let r = get(cl.node(0), "/admin/api/apps/1/channels/news", &[&bearer()]).await;
    assert_eq!(r.json()["subscription_count"], 1);
}
