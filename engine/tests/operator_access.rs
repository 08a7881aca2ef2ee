//! Who may read `/metrics` and `/stats` (docs/security.md): the bearer token on either port,
//! or the metrics listener while no token is set. Never "the peer is loopback" on the public
//! port (every request here comes from 127.0.0.1), never an app's signature.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

const TOKEN: &str = "test-operator-token-0123456789";
const MISSING: &str =
    r#"{"error":"authentication required: send Authorization: Bearer <metrics.token>"}"#;
const INVALID: &str = r#"{"error":"invalid bearer token"}"#;
const CHALLENGE: &str = r#"Bearer realm="raptor""#;
const CHALLENGE_INVALID: &str = r#"Bearer realm="raptor", error="invalid_token""#;

fn with_token() -> Server {
    Server::start_with(&format!("[metrics]\ntoken = \"{TOKEN}\"\n"))
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// Asserts the exact 401 of a request refused by the operator guard.
fn assert_refused(r: &Resp, body: &str, challenge: &str, what: &str) {
    assert_eq!(
        (r.status, r.body.as_str(), r.header("www-authenticate")),
        (401, body, Some(challenge)),
        "{what}"
    );
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
}

/// `/stats` and `/metrics` as the operator sees them: 200 with the expected shape.
async fn assert_served(h: &mut Http, headers: &[&str], what: &str) {
    let r = h.request_with("GET", "/stats", headers, "").await;
    assert_eq!(r.status, 200, "{what}: {}", r.body);
    let v = r.json();
    assert_eq!(
        (v["shards"].as_u64(), v["connections"].as_u64()),
        (Some(2), Some(0)),
        "{what}"
    );
    let r = h.request_with("GET", "/metrics", headers, "").await;
    assert_eq!(r.status, 200, "{what}: {}", r.body);
    assert!(
        r.body
            .contains("# TYPE raptor_connections gauge\nraptor_connections 0\n"),
        "{what}: {}",
        r.body
    );
}

#[tokio::test]
async fn public_port_refuses_them_without_a_token_even_from_loopback() {
    let s = Server::start();
    let mut h = Http::connect(&s).await;
    for path in ["/stats", "/metrics"] {
        let r = h.request("GET", path, "").await;
        assert_refused(&r, MISSING, CHALLENGE, path);
        // No token is configured, so no token can be right.
        let r = h.request_with("GET", path, &[&bearer(TOKEN)], "").await;
        assert_refused(&r, INVALID, CHALLENGE_INVALID, path);
        // An app's key is a tenant's credential, not the operator's.
        let r = h.signed("GET", path, &[], "").await;
        assert_refused(&r, MISSING, CHALLENGE, path);
    }
    // The rest of the public port is as before.
    assert_eq!(h.request("GET", "/health", "").await.status, 200);
    assert_eq!(h.publish("x", "e", "1").await.status, 200);
}

#[tokio::test]
async fn the_token_opens_them_on_the_public_port_and_nothing_else_does() {
    let s = with_token();
    let mut h = Http::connect(&s).await;
    for path in ["/stats", "/metrics"] {
        let r = h.request("GET", path, "").await;
        assert_refused(&r, MISSING, CHALLENGE, path);
        for wrong in [
            bearer("test-operator-token-012345678"),
            bearer(&format!("{TOKEN}0")),
            bearer("x"),
        ] {
            let r = h.request_with("GET", path, &[&wrong], "").await;
            assert_refused(&r, INVALID, CHALLENGE_INVALID, &wrong);
        }
        // The token itself as another scheme is not a bearer token.
        let r = h
            .request_with("GET", path, &[&format!("Authorization: Basic {TOKEN}")], "")
            .await;
        assert_refused(&r, MISSING, CHALLENGE, path);
        let r = h.signed("GET", path, &[], "").await;
        assert_refused(&r, MISSING, CHALLENGE, path);
    }
    assert_served(&mut h, &[&bearer(TOKEN)], "public port, token").await;
    // The scheme is case-insensitive (RFC 7235).
    let lower = format!("authorization: bearer {TOKEN}");
    assert_served(&mut h, &[&lower], "public port, lowercase scheme").await;
}

#[tokio::test]
async fn metrics_listener_needs_the_token_once_one_is_set() {
    let s = with_token();
    let mut m = Http::metrics(&s).await;
    for path in ["/stats", "/metrics"] {
        let r = m.request("GET", path, "").await;
        assert_refused(&r, MISSING, CHALLENGE, path);
        let r = m
            .request_with("GET", path, &[&bearer("wrong-token")], "")
            .await;
        assert_refused(&r, INVALID, CHALLENGE_INVALID, path);
    }
    assert_served(&mut m, &[&bearer(TOKEN)], "metrics listener, token").await;
    // Liveness needs no credential on either port.
    assert_eq!(m.request("GET", "/health", "").await.body, r#"{"ok":true}"#);
}

#[tokio::test]
async fn metrics_listener_without_a_token_serves_only_operator_routes() {
    let s = Server::start();
    let mut m = Http::metrics(&s).await;
    assert_served(&mut m, &[], "metrics listener, no token").await;
    let r = m.request("GET", "/health", "").await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"ok":true}"#));
    let not_here = r#"{"error":"no such endpoint"}"#;
    let publish = serde_json::json!({"name": "e", "channel": "x", "data": "1"}).to_string();
    for (method, target, body) in [
        (
            "GET",
            signed("GET", "/apps/1/channels", &[], "", SECRET, now()),
            "",
        ),
        (
            "POST",
            signed("POST", "/apps/1/events", &[], &publish, SECRET, now()),
            publish.as_str(),
        ),
        ("GET", "/".to_string(), ""),
        ("GET", "/app/app-key".to_string(), ""),
    ] {
        let r = m.request(method, &target, body).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (404, not_here),
            "{method} {target}"
        );
    }
    // A WebSocket upgrade is answered in HTTP, 404, and never upgraded.
    let url = format!(
        "ws://127.0.0.1:{}/app/{KEY}?protocol=7&client=js&version=8.6.0",
        s.metrics_port()
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 404);
            assert_eq!(resp.body().as_deref(), Some(not_here.as_bytes()));
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    // The public port still is the public port.
    let mut c = Client::connect(&s).await;
    c.subscribe("x").await;
}

/// Starts `raptor serve` with `args` and `envs`, logging at debug into a file; returns the
/// child, its two ready lines, and the log path.
fn spawn(
    args: &[&str],
    envs: &[(&str, &str)],
) -> (std::process::Child, Vec<String>, std::path::PathBuf) {
    let log = std::env::temp_dir().join(format!(
        "raptor-operator-{}-{}.log",
        std::process::id(),
        fastrand::u64(..)
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_raptor"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--shards",
            "2",
            "--no-pin",
        ])
        .args(args)
        .envs(envs.iter().copied())
        .env("RAPTOR_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        lines.push(line);
    }
    (child, lines, log)
}

fn port_of(line: &str, prefix: &str) -> u16 {
    let rest = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line:?}"));
    let addr: std::net::SocketAddr = rest.split_whitespace().next().unwrap().parse().unwrap();
    addr.port()
}

#[tokio::test]
async fn env_settings_a_token_file_and_the_ready_lines_and_the_token_is_never_logged() {
    let token_file = std::env::temp_dir().join(format!("raptor-token-{}", std::process::id()));
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (mut child, lines, log) = spawn(
        &[],
        &[
            ("RAPTOR_METRICS_BIND", "127.0.0.1:0"),
            ("RAPTOR_METRICS_TOKEN_FILE", token_file.to_str().unwrap()),
        ],
    );
    std::fs::remove_file(&token_file).unwrap();
    // The first line is unchanged (scripts read it); the second names the metrics listener.
    let port = port_of(&lines[0], "raptor listening on ");
    assert!(lines[0].ends_with(" with 2 shards\n"), "{lines:?}");
    let metrics = port_of(&lines[1], "raptor metrics on ");
    assert_ne!(port, metrics);
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", metrics))
        .await
        .unwrap();
    let mut m = Http::over(stream);
    let r = m.request("GET", "/stats", "").await;
    assert_refused(&r, MISSING, CHALLENGE, "metrics listener");
    let r = m.request_with("GET", "/stats", &[&bearer(TOKEN)], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut h = Http::over(stream);
    let r = h
        .request_with("GET", "/metrics", &[&bearer(TOKEN)], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = h
        .request_with("GET", "/metrics", &[&bearer("wrong-token")], "")
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let _ = child.kill();
    let _ = child.wait();
    let mut logged = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut logged)
        .unwrap();
    std::fs::remove_file(&log).unwrap();
    assert!(logged.contains("ready"), "{logged}");
    assert!(
        !logged.contains(TOKEN),
        "the token is in the log:\n{logged}"
    );
}

#[test]
fn metrics_off_prints_one_ready_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raptor"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--shards",
            "1",
            "--no-pin",
        ])
        .args(["--metrics-bind", "off"])
        .env("RAPTOR_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("raptor listening on 127.0.0.1:"),
        "{line:?}"
    );
    // SIGTERM: the drain ends the process, and stdout with it; nothing more was printed.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(rest, "");
}

#[test]
fn a_taken_metrics_port_refuses_the_start_naming_it() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let taken = format!("127.0.0.1:{port}");
    for (args, envs) in [
        (vec!["--metrics-bind", taken.as_str()], vec![]),
        (vec![], vec![("RAPTOR_METRICS_BIND", taken.as_str())]),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_raptor"))
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--shards",
                "2",
                "--no-pin",
            ])
            .args(&args)
            .envs(envs)
            .env("RAPTOR_LOG", "warn")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(out.stdout.is_empty(), "it must not report ready");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!(
                "raptor: cannot listen on {taken} for metrics (metrics.bind): "
            )),
            "{last}"
        );
    }
    // And the same address for both listeners is refused before anything binds.
    let out = Command::new(env!("CARGO_BIN_EXE_raptor"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:6001",
            "--metrics-bind",
            "127.0.0.1:6001",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`metrics.bind`: must differ from `bind`"),
        "{err}"
    );
    drop(holder);
}
