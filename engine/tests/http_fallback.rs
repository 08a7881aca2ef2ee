//! pusher-js's HTTP transports (xhr_polling, xhr_streaming) as the wire sees them: sessions
//! across requests, the same commands as a WebSocket, the 256 KiB stream re-open without
//! loss, closes as `c` frames, CORS, and bad input. docs/protocol.md "HTTP transports".

mod common;

use common::xhr::{messages, Session};
use common::{presence_auth, private_auth, Client, Http, Server};
use serde_json::{json, Value};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

fn socket_id(established: &Value) -> String {
    assert_eq!(established["event"], "pusher:connection_established");
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    data["socket_id"].as_str().unwrap().to_string()
}

/// Polls until `n` messages came (each poll returns what is queued).
async fn poll_for(s: &Session, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < n {
        let r = s.poll().await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(!r.body.starts_with('c'), "closed: {}", r.body);
        got.extend(messages(&r.body));
    }
    got
}

#[tokio::test]
async fn a_polling_session_is_a_pusher_session() {
    let server = Server::start();
    let s = Session::new(&server, "poll0001");
    let first = s.poll().await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("Content-Type"),
        Some("application/javascript; charset=UTF-8")
    );
    assert!(first.body.starts_with("o\na[\""), "{}", first.body);
    let established = messages(&first.body);
    assert_eq!(established.len(), 1);
    let sid = socket_id(&established[0]);

    // Public, private and presence subscriptions, as pusher-js sends them: one per send.
    let r = s
        .send(&[json!({"event":"pusher:subscribe","data":{"channel":"news"}})])
        .await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    let auth = private_auth(&sid, "private-a");
    s.send(&[json!({"event":"pusher:subscribe","data":{"channel":"private-a","auth":auth}})])
        .await;
    let cd = r#"{"user_id":"u1","user_info":{"n":1}}"#;
    let auth = presence_auth(&sid, "presence-room", cd);
    s.send(&[json!({"event":"pusher:subscribe","data":{"channel":"presence-room","auth":auth,"channel_data":cd}})])
        .await;
    // Answered by each channel's owner shard: in any order.
    let mut got = poll_for(&s, 3).await;
    got.sort_by_key(|m| m["channel"].as_str().unwrap().to_string());
    assert_eq!(
        got[..2],
        [
            json!({"event":"pusher_internal:subscription_succeeded","channel":"news","data":"{}"}),
            json!({"event":"pusher_internal:subscription_succeeded","channel":"presence-room","data":got[1]["data"]}),
        ]
    );
    assert_eq!(
        got[2],
        json!({"event":"pusher_internal:subscription_succeeded","channel":"private-a","data":"{}"})
    );
    let members: Value = serde_json::from_str(got[1]["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        members,
        json!({"presence":{"count":1,"ids":["u1"],"hash":{"u1":{"n":1}}}})
    );

    // API events arrive in order.
    let mut api = Http::connect(&server).await;
    for i in 0..5 {
        assert_eq!(api.publish("news", "n", &i.to_string()).await.status, 200);
    }
    let got = poll_for(&s, 5).await;
    let data: Vec<&str> = got.iter().map(|m| m["data"].as_str().unwrap()).collect();
    assert_eq!(data, ["0", "1", "2", "3", "4"]);

    // Client events both ways with a WebSocket client, and presence across transports.
    let mut ws = Client::connect(&server).await;
    let auth = private_auth(&ws.socket_id, "private-a");
    ws.send(json!({"event":"pusher:subscribe","data":{"channel":"private-a","auth":auth}}))
        .await;
    assert_eq!(
        ws.recv().await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let cd2 = r#"{"user_id":"u2"}"#;
    let auth = presence_auth(&ws.socket_id, "presence-room", cd2);
    ws.send(json!({"event":"pusher:subscribe","data":{"channel":"presence-room","auth":auth,"channel_data":cd2}}))
        .await;
    assert_eq!(
        ws.recv().await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let added = poll_for(&s, 1).await;
    assert_eq!(
        added,
        [
            json!({"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"u2\"}"})
        ]
    );
    let r = s
        .send(&[json!({"event":"client-hi","channel":"private-a","data":{"from":"xhr"}})])
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        ws.recv().await,
        json!({"event":"client-hi","channel":"private-a","data":"{\"from\":\"xhr\"}"})
    );
    ws.send(json!({"event":"client-hi","channel":"private-a","data":{"from":"ws"}}))
        .await;
    assert_eq!(
        poll_for(&s, 1).await,
        [json!({"event":"client-hi","channel":"private-a","data":"{\"from\":\"ws\"}"})]
    );

    // Counted in /stats and /metrics.
    let st = Http::metrics(&server)
        .await
        .request("GET", "/stats", "")
        .await;
    assert_eq!(
        (
            st.json()["http_sessions"].as_u64(),
            st.json()["connections"].as_u64()
        ),
        (Some(1), Some(2))
    );

    // A server ping is answered through a send; `[]` (pusher-js's own ping) is liveness.
    assert_eq!(s.send_raw("[]").await.status, 204);
    let r = s.send(&[json!({"event":"pusher:ping","data":{}})]).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        poll_for(&s, 1).await,
        [json!({"event":"pusher:pong","data":"{}"})]
    );
}

#[tokio::test]
async fn terminate_and_a_dropped_receiver_end_the_session_like_a_socket() {
    let server = Server::start_with("[limits.http_fallback]\ndisconnect_delay_secs = 1\n\n[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nenable_user_authentication = true\n");
    // A presence member on xhr whose client goes away: member_removed for the others once
    // the disconnect delay passed without a receiver.
    let gone = Session::new(&server, "gone0001");
    let sid = socket_id(&messages(&gone.poll().await.body)[0]);
    let cd = r#"{"user_id":"leaver"}"#;
    let auth = presence_auth(&sid, "presence-x", cd);
    gone.send(&[json!({"event":"pusher:subscribe","data":{"channel":"presence-x","auth":auth,"channel_data":cd}})])
        .await;
    poll_for(&gone, 1).await;
    let mut ws = Client::connect(&server).await;
    let cd2 = r#"{"user_id":"stayer"}"#;
    let auth = presence_auth(&ws.socket_id, "presence-x", cd2);
    ws.send(json!({"event":"pusher:subscribe","data":{"channel":"presence-x","auth":auth,"channel_data":cd2}}))
        .await;
    assert_eq!(
        ws.recv().await["event"],
        "pusher_internal:subscription_succeeded"
    );
    // The stalled poller never polls again, while events keep coming for it.
    let mut api = Http::connect(&server).await;
    api.publish("presence-x", "e", "while stalled").await;
    assert_eq!(ws.recv().await["data"], "while stalled");
    let removed = ws
        .recv_text_within(Duration::from_secs(5))
        .await
        .expect("member_removed");
    assert_eq!(
        serde_json::from_str::<Value>(&removed).unwrap(),
        json!({"event":"pusher_internal:member_removed","channel":"presence-x","data":"{\"user_id\":\"leaver\"}"})
    );
    let r = gone.send_raw("[]").await;
    assert_eq!(
        (r.status, r.json()),
        (404, json!({"error":"no such session"}))
    );

    // terminate_connections closes a signed-in xhr session with 4009 as a `c` frame.
    let s = Session::new(&server, "term0001");
    let sid = socket_id(&messages(&s.poll().await.body)[0]);
    let user_data = r#"{"id":"u9"}"#;
    let auth = format!(
        "app-key:{}",
        common::hmac_hex("app-secret", &format!("{sid}::user::{user_data}"))
    );
    s.send(&[json!({"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}})])
        .await;
    assert_eq!(poll_for(&s, 1).await[0]["event"], "pusher:signin_success");
    let mut stream = s.stream().await;
    assert_eq!(stream.status, 200);
    let r = api
        .signed("POST", "/apps/1/users/u9/terminate_connections", &[], "{}")
        .await;
    assert_eq!(r.status, 200);
    let mut pending = Vec::new();
    let mut frames = Vec::new();
    while let Some(m) = stream.message(&mut pending, 5 * SECOND).await {
        frames.push(m);
    }
    assert_eq!(
        frames,
        [
            Ok(
                json!({"event":"pusher:error","data":{"code":4009,"message":"connection terminated by the app"}})
            ),
            Err("c[4009,\"terminated\"]".to_string()),
        ],
        "then the stream ends"
    );
    assert!(stream.ended, "the chunked body was terminated");
}

/// pusher-js re-opens its stream once it has read more than 256 KiB; the server stops
/// writing there, so the 400 events of 1 KiB (about 460 KiB of frames) all arrive, in
/// order, over the two or three streams of the session.
#[tokio::test]
async fn a_stream_past_256_kib_is_reopened_without_loss() {
    let server = Server::start();
    let s = Session::new(&server, "strm0001");
    let mut stream = s.stream().await;
    assert_eq!(stream.head.lines().next(), Some("HTTP/1.1 200 OK"));
    assert!(
        stream.head.contains("Transfer-Encoding: chunked\r\n"),
        "{}",
        stream.head
    );
    assert_eq!(stream.line(5 * SECOND).await.as_deref(), Some("o"));
    s.send(&[json!({"event":"pusher:subscribe","data":{"channel":"big"}})])
        .await;
    let port = server.port;
    let publisher = tokio::spawn(async move {
        let mut api = Http::connect_port(port).await;
        let pad = "x".repeat(1000);
        for first in (0..400).step_by(10) {
            api.batch_of_ten("big", first, &pad).await;
        }
    });
    let mut seen = Vec::new();
    let mut streams = 1;
    let mut pending = Vec::new();
    while seen.len() < 400 {
        // As pusher-js: past 256 KiB with every line read, abort and re-open.
        if stream.received > 256 * 1024 && pending.is_empty() && stream.drained() {
            assert!(
                stream.received < 256 * 1024 + 70 * 1024,
                "a stream stops soon after the limit: {}",
                stream.received
            );
            if let Some(l) = stream.line(Duration::from_millis(300)).await {
                panic!("written after the limit: {l:.80}");
            }
            stream = s.stream().await;
            streams += 1;
        }
        match stream.message(&mut pending, 10 * SECOND).await {
            Some(Ok(m)) if m["event"] == "e" => {
                let d = m["data"].as_str().unwrap();
                seen.push(d.split(':').next().unwrap().parse::<usize>().unwrap());
            }
            Some(Ok(_)) => {}
            other => panic!("stream ended early after {} events: {other:?}", seen.len()),
        }
    }
    publisher.await.unwrap();
    assert_eq!(seen, (0..400).collect::<Vec<_>>(), "all, once, in order");
    assert!(streams >= 2, "the stream was re-opened");
}

#[tokio::test]
async fn sigterm_closes_a_stream_with_4200() {
    let server = Server::start();
    let s = Session::new(&server, "drain001");
    let mut stream = s.stream().await;
    assert_eq!(stream.line(5 * SECOND).await.as_deref(), Some("o"));
    let mut pending = Vec::new();
    stream
        .message(&mut pending, 5 * SECOND)
        .await
        .unwrap()
        .unwrap();
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    assert_eq!(
        stream.message(&mut pending, 5 * SECOND).await,
        Some(Err("c[4200,\"server shutting down\"]".into()))
    );
    assert_eq!(stream.line(5 * SECOND).await, None);
    assert!(stream.ended);
}

#[tokio::test]
async fn bad_input_gets_the_documented_answers() {
    let server = Server::start_with(
        "[limits]\nmax_http_body_bytes = 4096\nmax_ws_message_bytes = 1024\n\n[limits.http_fallback]\nmax_sessions = 2\n",
    );
    let s = Session::new(&server, "good0001");
    s.poll().await;
    let mut http = Http::connect(&server).await;
    let cases: Vec<(Vec<u8>, u16, Value)> = vec![
        (
            b"not json".to_vec(),
            400,
            json!({"error":"the body must be a JSON array of strings (Pusher messages)"}),
        ),
        (
            b"[1,2]".to_vec(),
            400,
            json!({"error":"the body must be a JSON array of strings (Pusher messages)"}),
        ),
        (
            vec![b'['; 5000],
            413,
            json!({"error":"request body too large"}),
        ),
    ];
    for (body, status, want) in cases {
        let r = s.send_raw(std::str::from_utf8(&body).unwrap()).await;
        assert_eq!((r.status, r.json()), (status, want));
    }
    let unknown = Session::new(&server, "nobody00");
    let r = unknown.send_raw("[]").await;
    assert_eq!(
        (r.status, r.json()),
        (404, json!({"error":"no such session"}))
    );
    let r = http
        .request("GET", "/pusher/app/app-key/1/good0001/xhr_send", "")
        .await;
    assert_eq!(
        (r.status, r.json()),
        (405, json!({"error":"method not allowed"}))
    );
    let r = http
        .request("POST", "/pusher/app/app-key/1/good0001/websocket", "")
        .await;
    assert_eq!(r.status, 404);
    // Pusher refusals reach pusher-js as frames it acts on.
    let r = http
        .request("POST", "/pusher/app/nokey/1/abc/xhr?protocol=7", "")
        .await;
    assert_eq!(
        r.body,
        "o\na[\"{\\\"event\\\":\\\"pusher:error\\\",\\\"data\\\":{\\\"code\\\":4001,\\\"message\\\":\\\"App key not in this cluster\\\"}}\"]\nc[4001,\"App key not in this cluster\"]\n"
    );
    let r = http
        .request("POST", "/pusher/app/app-key/1/abc/xhr", "")
        .await;
    assert!(
        r.body
            .ends_with("c[4008,\"No protocol version supplied\"]\n"),
        "{}",
        r.body
    );
    // A message over max_ws_message_bytes closes the session with 1009, as on a WebSocket.
    let big = json!({"event":"client-x","channel":"private-a","data":"y".repeat(2000)});
    let r = s.send(&[big]).await;
    assert_eq!(r.status, 413);
    let r = s.poll().await;
    assert_eq!(r.body, "c[1009,\"message too big\"]\n");
    // Sessions are bounded: good0001 is ending, 2 is the limit.
    let a = Session::new(&server, "quota001");
    assert!(a.poll().await.body.starts_with("o\na"));
    let b = Session::new(&server, "quota002");
    assert!(b.poll().await.body.starts_with("o\na"));
    let c = Session::new(&server, "quota003");
    let r = c.poll().await;
    assert!(
        r.body.ends_with("c[4100,\"Over HTTP session quota\"]\n"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn cors_preflights_and_origins() {
    let server = Server::start_with(
        "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n\n[[apps]]\nid = \"2\"\nkey = \"key-2\"\nsecret = \"secret-2\"\nallowed_origins = [\"https://ok.example\"]\n",
    );
    let mut http = Http::connect(&server).await;
    let pre = |origin: &str| {
        vec![
            format!("Origin: {origin}"),
            "Access-Control-Request-Method: POST".into(),
            "Access-Control-Request-Headers: content-type".into(),
        ]
    };
    let h = pre("http://page.example");
    let h: Vec<&str> = h.iter().map(String::as_str).collect();
    let r = http
        .request_with(
            "OPTIONS",
            "/pusher/app/app-key/1/abc/xhr_streaming?protocol=7",
            &h,
            "",
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(
        r.header("Access-Control-Allow-Methods"),
        Some("OPTIONS, GET, POST")
    );
    assert_eq!(
        r.header("Access-Control-Allow-Headers"),
        Some("Content-Type, Last-Event-ID, X-Requested-With")
    );
    let r = http
        .request_with(
            "POST",
            "/pusher/app/app-key/1/abc/xhr?protocol=7",
            &["Origin: http://page.example"],
            "",
        )
        .await;
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    // An app with allowed_origins: its origin echoed, another refused.
    let h = pre("https://ok.example");
    let h: Vec<&str> = h.iter().map(String::as_str).collect();
    let r = http
        .request_with("OPTIONS", "/pusher/app/key-2/1/abc/xhr", &h, "")
        .await;
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://ok.example")
    );
    assert_eq!(r.header("Vary"), Some("Origin"));
    let h = pre("https://evil.example");
    let h: Vec<&str> = h.iter().map(String::as_str).collect();
    let r = http
        .request_with("OPTIONS", "/pusher/app/key-2/1/abc/xhr", &h, "")
        .await;
    assert_eq!(
        (r.status, r.json()),
        (403, json!({"error":"Origin not allowed"}))
    );
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    let r = http
        .request_with(
            "POST",
            "/pusher/app/key-2/1/abc/xhr_send",
            &["Origin: https://evil.example"],
            "[]",
        )
        .await;
    assert_eq!(r.status, 403);
}

/// A poller that stops polling while events keep coming: its queue fills, it is cut with
/// 4100 (the close waits for its next poll, within the disconnect delay).
#[tokio::test]
async fn a_stalled_poller_is_cut_with_4100() {
    let server = Server::start_with(
        "[limits]\noutbox_max_frames = 8\n\n[limits.http_fallback]\ndisconnect_delay_secs = 30\n",
    );
    let s = Session::new(&server, "stall001");
    s.poll().await;
    s.send(&[json!({"event":"pusher:subscribe","data":{"channel":"busy"}})])
        .await;
    poll_for(&s, 1).await;
    let mut api = Http::connect(&server).await;
    for i in 0..20 {
        api.publish("busy", "e", &i.to_string()).await;
    }
    let r = s.poll().await;
    assert_eq!(r.body, "c[4100,\"over capacity\"]\n");
    let r = s.send_raw("[]").await;
    assert_eq!(r.status, 404, "the session is over");
}

/// In a cluster an HTTP session is a session like any other: a poller on node 1 receives
/// what is published on node 3 and meets a WebSocket member of node 2 in presence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_a_cluster() {
    use common::cluster::{owned_by, wait_linked, Cluster};
    let cl = Cluster::start(3);
    wait_linked(&cl, 3).await;
    let ch = owned_by("presence-room-", 2);
    let s = Session::new(cl.node(0), "clus0001");
    let sid = socket_id(&messages(&s.poll().await.body)[0]);
    let cd = r#"{"user_id":"xhr-user"}"#;
    let auth = presence_auth(&sid, &ch, cd);
    s.send(&[
        json!({"event":"pusher:subscribe","data":{"channel":ch,"auth":auth,"channel_data":cd}}),
    ])
    .await;
    assert_eq!(
        poll_for(&s, 1).await[0]["event"],
        "pusher_internal:subscription_succeeded"
    );
    let mut ws = Client::connect(cl.node(1)).await;
    let cd2 = r#"{"user_id":"ws-user"}"#;
    let auth = presence_auth(&ws.socket_id, &ch, cd2);
    ws.send(
        json!({"event":"pusher:subscribe","data":{"channel":ch,"auth":auth,"channel_data":cd2}}),
    )
    .await;
    let ok = ws.recv().await;
    let members: Value = serde_json::from_str(ok["data"].as_str().unwrap()).unwrap();
    // The xhr member is in the list, or (its join still on its way to node 2) added after.
    let mut set: std::collections::BTreeSet<String> = members["presence"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    common::cluster::members_until(&mut ws, &mut set, 2, Duration::from_secs(5)).await;
    assert_eq!(set.into_iter().collect::<Vec<_>>(), ["ws-user", "xhr-user"]);
    assert_eq!(
        poll_for(&s, 1).await,
        [
            json!({"event":"pusher_internal:member_added","channel":ch,"data":"{\"user_id\":\"ws-user\"}"})
        ]
    );
    let mut api = Http::connect(cl.node(2)).await;
    for i in 0..10 {
        assert_eq!(api.publish(&ch, "e", &i.to_string()).await.status, 200);
    }
    let got = poll_for(&s, 10).await;
    let data: Vec<&str> = got.iter().map(|m| m["data"].as_str().unwrap()).collect();
    assert_eq!(data, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    let r = s
        .send(&[json!({"event":"client-x","channel":ch,"data":{}})])
        .await;
    assert_eq!(r.status, 204);
    for _ in 0..10 {
        ws.recv().await;
    }
    assert_eq!(
        ws.recv().await,
        json!({"event":"client-x","channel":ch,"data":"{}","user_id":"xhr-user"})
    );
}

/// pusher-js subscribes to every channel at once, each on a request of its own: a burst
/// is handled, none refused for waiting.
#[tokio::test]
async fn a_burst_of_subscriptions_is_handled() {
    let server = Server::start();
    let s = Session::new(&server, "burst001");
    s.poll().await;
    let sends = (0..40).map(|i| {
        let s = Session {
            port: s.port,
            base: s.base.clone(),
        };
        tokio::spawn(async move {
            let r = s
                .send(&[json!({"event":"pusher:subscribe","data":{"channel":format!("c{i}")}})])
                .await;
            r.status
        })
    });
    for h in sends.collect::<Vec<_>>() {
        assert_eq!(h.await.unwrap(), 204);
    }
    let got = poll_for(&s, 40).await;
    assert!(got
        .iter()
        .all(|m| m["event"] == "pusher_internal:subscription_succeeded"));
}

/// A page on another origin reads the refusal of an unknown key (4001: do not retry)
/// rather than failing its preflight.
#[tokio::test]
async fn an_unknown_key_is_refused_readably_cross_origin() {
    let server = Server::start();
    let mut http = Http::connect(&server).await;
    let h = [
        "Origin: http://page.example",
        "Access-Control-Request-Method: POST",
    ];
    let r = http
        .request_with("OPTIONS", "/pusher/app/nokey/1/abc/xhr_streaming", &h, "")
        .await;
    assert_eq!(
        (r.status, r.header("Access-Control-Allow-Origin")),
        (204, Some("*"))
    );
    let r = http
        .request_with(
            "POST",
            "/pusher/app/nokey/1/abc/xhr_streaming?protocol=7",
            &h[..1],
            "",
        )
        .await;
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert!(
        r.body
            .ends_with("c[4001,\"App key not in this cluster\"]\n"),
        "{}",
        r.body
    );
}
