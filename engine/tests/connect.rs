//! Connection setup: the handshake, `connection_established`, and every refusal path.

mod common;
use common::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn connection_established_exact_shape() {
    let s = Server::start();
    let (mut ws, resp) = tokio_tungstenite::connect_async(
        s.url("/app/app-key?protocol=7&client=js&version=8.6.0&flash=false"),
    )
    .await
    .unwrap();
    assert!(
        resp.headers().get("sec-websocket-extensions").is_none(),
        "no extension is negotiated"
    );
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!()
    };
    let re = regex::Regex::new(
        r#"^\{"event":"pusher:connection_established","data":"\{\\"socket_id\\":\\"(\d+\.\d+)\\",\\"activity_timeout\\":120\}"\}$"#,
    )
    .unwrap();
    assert!(re.is_match(&t), "{t}");
}

#[tokio::test]
async fn socket_ids_are_unique() {
    let s = Server::start();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        let c = Client::connect(&s).await;
        assert!(ids.insert(c.socket_id.clone()));
    }
}

async fn refused(s: &Server, path: &str) -> (String, u16) {
    let (mut ws, _) = tokio_tungstenite::connect_async(s.url(path)).await.unwrap();
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no error event")
    };
    let Some(Ok(Message::Close(Some(f)))) = ws.next().await else {
        panic!("no close frame")
    };
    (t.to_string(), f.code.into())
}

#[tokio::test]
async fn refusals_carry_pusher_codes() {
    let s = Server::start();
    assert_eq!(
        refused(&s, "/app/nope?protocol=7").await,
        (r#"{"event":"pusher:error","data":{"code":4001,"message":"App key not in this cluster"}}"#.into(), 4001)
    );
    assert_eq!(
        refused(&s, "/app/app-key").await,
        (r#"{"event":"pusher:error","data":{"code":4008,"message":"No protocol version supplied"}}"#.into(), 4008)
    );
    assert_eq!(
        refused(&s, "/app/app-key?protocol=6").await,
        (
            r#"{"event":"pusher:error","data":{"code":4007,"message":"Unsupported protocol version (7 is supported)"}}"#.into(),
            4007
        )
    );
    assert_eq!(refused(&s, "/app/app-key/extra?protocol=7").await.1, 4005);
    // The server survives all of it.
    Client::connect(&s).await;
}

#[tokio::test]
async fn plain_http_endpoints() {
    let s = Server::start();
    let mut h = Http::connect(&s).await;
    let r = h.request("GET", "/health", "").await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"ok":true}"#));
    let r = h.request("GET", "/", "").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Pusher Channels protocol"));
    let r = h.request("GET", "/app/app-key?protocol=7", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            426,
            r#"{"error":"this endpoint expects a WebSocket upgrade"}"#
        )
    );
    let r = h.request("GET", "/nothing", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, r#"{"error":"no such endpoint"}"#)
    );
    let r = h.request("POST", "/health", "").await;
    assert_eq!(r.status, 405);
    // An upgrade with a wrong version gets 426 and the version we speak.
    let r = h
        .raw(b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
        .await;
    assert_eq!(r.status, 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
}

#[tokio::test]
async fn malformed_and_oversized_http_heads() {
    let s = Server::start();
    let mut h = Http::connect(&s).await;
    let r = h.raw(b"NOT HTTP AT ALL\r\n\r\n").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "bad request head");
    let mut h = Http::connect(&s).await;
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(10_000));
    let r = h.raw(big.as_bytes()).await;
    assert_eq!(r.status, 431);
    let mut h = Http::connect(&s).await;
    let r = h
        .raw(b"POST /apps/1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    assert_eq!(r.status, 411);
}

#[test]
fn bad_config_is_refused_naming_the_field() {
    let path = std::env::temp_dir().join(format!("raptor-bad-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "bind = \"127.0.0.1:0\"\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raptor"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apps[0].secret"), "{err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raptor"))
        .env("RAPTOR_SHARDS", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`shards`"));
}

#[test]
fn env_bind_is_used_and_a_busy_port_is_refused() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raptor"))
        .env("RAPTOR_BIND", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("cannot listen"),
        "{err}"
    );
}

/// `--help` into a pipe whose reader has gone (`BIN --help | head -0`): exit 0 quietly, no
/// panic or backtrace. The read end is closed before the process starts, so the write
/// always meets EPIPE.
fn help_into_a_closed_pipe(bin: &str) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(bin)
        .arg("--help")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), err.as_ref()), (Some(0), ""), "{bin}");
}

#[test]
fn help_into_a_closed_pipe_exits_quietly() {
    help_into_a_closed_pipe(env!("CARGO_BIN_EXE_raptor"));
}
