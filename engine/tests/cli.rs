//! The `raptor` command line outside `serve`: the version, the config check, and the log
//! output an operator gets.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_raptor");

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("raptor-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_names_the_release_and_the_git_revision() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".into(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        });
    let want = format!("raptor {} ({rev})\n", env!("CARGO_PKG_VERSION"));
    for flag in ["--version", "-V"] {
        assert_eq!(
            run(&[flag]),
            (Some(0), want.clone(), String::new()),
            "{flag}"
        );
    }
}

#[test]
fn config_check_validates_like_a_start_without_binding() {
    // A port that is busy: a start would fail on it, a check must not even try.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let ok = temp_file(
        "ok.toml",
        &format!(
            "bind = \"127.0.0.1:{port}\"\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n"
        ),
    );
    let (code, out, err) = run(&["config", "check", ok.to_str().unwrap()]);
    assert_eq!(
        (code, out, err),
        (Some(0), format!("{}: ok\n", ok.display()), String::new())
    );

    let bad = temp_file(
        "bad.toml",
        "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecrett = \"s\"\n",
    );
    let (code, out, err) = run(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    // toml's own display: the position, the line with a caret under the field, the reason.
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[..5],
        [
            format!("raptor: invalid config file {}:", bad.display()).as_str(),
            "TOML parse error at line 4, column 1",
            "  |",
            "4 | secrett = \"s\"",
            "  | ^^^^^^^",
        ],
        "{err}"
    );

    let tls = temp_file(
        "tls.toml",
        "[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
    );
    let (code, _, err) = run(&["config", "check", tls.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "raptor: invalid config: field `tls.cert`: cannot read /nonexistent/cert.pem: No such file or directory (os error 2)\n"
    );
    for f in [ok, bad, tls] {
        std::fs::remove_file(f).unwrap();
    }
}

#[test]
fn an_invalid_log_filter_is_refused_at_start() {
    let out = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("RAPTOR_LOG", "info,[")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "raptor: RAPTOR_LOG `info,[` is not a valid log filter: invalid filter directive\n"
    );
}

/// Logged into a file (as under systemd or `2>file`), the output has no colour codes.
#[test]
fn logs_into_a_file_have_no_colours() {
    let log = temp_file("log.txt", "");
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--shards", "1"])
        .env("RAPTOR_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("raptor listening on 127.0.0.1:"), "{line}");
    // The "ready" record is written before the listening line; give the writer a moment.
    let t0 = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("ready") || t0.elapsed() > Duration::from_secs(5) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_file(&log).unwrap();
    assert!(text.contains(" INFO ") && text.contains("ready"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in {text:?}");
}

/// At debug level an operator sees each connection open and close, with the app and the
/// socket id, and each HTTP request with its status (the path only: never the signature).
#[test]
fn connections_and_requests_are_logged_at_debug() {
    let log = temp_file("debug.txt", "");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--shards",
            "1",
            "--metrics-bind",
            "off",
        ])
        .env("RAPTOR_LOG", "raptor_engine=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .rsplit_once("127.0.0.1:")
        .and_then(|(_, p)| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    // A WebSocket that opens, reads its welcome and closes; then an unsigned API call (401).
    let (mut ws, _) =
        tungstenite::connect(format!("ws://127.0.0.1:{port}/app/app-key?protocol=7")).unwrap();
    let welcome = ws.read().unwrap().into_text().unwrap();
    let socket_id = serde_json::from_str::<serde_json::Value>(
        serde_json::from_str::<serde_json::Value>(&welcome).unwrap()["data"]
            .as_str()
            .unwrap(),
    )
    .unwrap()["socket_id"]
        .as_str()
        .unwrap()
        .to_string();
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
    drop(ws);
    let mut http = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut http,
        b"GET /apps/1/channels?auth_key=app-key HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut resp = String::new();
    std::io::Read::read_to_string(&mut http, &mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    let t0 = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("websocket closed") && text.contains("http request")
            || t0.elapsed() > Duration::from_secs(5)
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_file(&log).unwrap();
    let has = |what: &str, parts: &[&str]| {
        text.lines()
            .any(|l| l.contains(what) && parts.iter().all(|p| l.contains(p)))
    };
    let sid = format!("socket_id={socket_id}");
    assert!(has("websocket opened", &["app=1", &sid]), "{text}");
    assert!(has("websocket closed", &["app=1", &sid]), "{text}");
    assert!(
        has(
            "http request",
            &["method=GET", "path=/apps/1/channels", "status=401"]
        ),
        "{text}"
    );
    assert!(
        !text.contains("auth_key=app-key"),
        "the query was logged: {text}"
    );
}
