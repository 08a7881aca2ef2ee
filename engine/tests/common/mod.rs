//! Test harness: starts the real `raptor` binary on 127.0.0.1 with an ephemeral port, and
//! talks to it with real WebSocket (tokio-tungstenite) and raw HTTP/1.1.
#![allow(dead_code)]

pub mod cluster;
pub mod history;
pub mod xhr;

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_json::Value;
use sha2::Sha256;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEY: &str = "app-key";
pub const SECRET: &str = "app-secret";
pub const APP_ID: &str = "1";

/// How to start a server beyond its config and flags ([`Server::try_start_opts`]).
#[derive(Debug, Default, Clone)]
pub struct StartOpts {
    /// Extra environment variables (e.g. `RAPTOR_CLUSTER_SECRET`).
    pub env: Vec<(String, String)>,
    /// Append the server's stderr to this file instead of the test's stderr (to count its
    /// log lines).
    pub stderr: Option<std::path::PathBuf>,
}

/// A running server process, killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    /// The metrics listener's port: an ephemeral one unless the test passed its own
    /// `--metrics-bind` (`None` with `--metrics-bind off`).
    pub metrics_port: Option<u16>,
    _config: Option<tempfile_path::TempPath>,
}

mod tempfile_path {
    /// A file removed on drop.
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl Server {
    /// Default app, 2 shards.
    pub fn start() -> Server {
        Server::start_with("")
    }

    /// Starts with extra TOML appended to a config (e.g. a `[limits]` table). An empty string
    /// means no config file at all (embedded defaults).
    pub fn start_with(toml: &str) -> Server {
        Server::start_args(toml, &[])
    }

    /// Like [`Server::start_with`], with extra command-line arguments (e.g. cluster flags).
    pub fn start_args(toml: &str, extra: &[&str]) -> Server {
        Server::try_start_args(toml, extra).unwrap_or_else(|line| panic!("no port in {line:?}"))
    }

    /// Starts the server; `Err` with what it printed if it exited before listening (e.g. a
    /// cluster port taken by another test). The metrics listener gets an ephemeral port
    /// unless `extra` has a `--metrics-bind` (the default 9601 would collide between the
    /// servers tests run in parallel).
    pub fn try_start_args(toml: &str, extra: &[&str]) -> Result<Server, String> {
        Server::try_start_opts(toml, extra, &StartOpts::default())
    }

    /// [`Server::try_start_args`] with an environment and, optionally, stderr in a file.
    pub fn try_start_opts(toml: &str, extra: &[&str], opts: &StartOpts) -> Result<Server, String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raptor"));
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--shards", "2"]);
        let metrics_bind = extra.iter().position(|a| *a == "--metrics-bind");
        if metrics_bind.is_none() {
            cmd.args(["--metrics-bind", "127.0.0.1:0"]);
        }
        let metrics_on = metrics_bind.is_none_or(|i| extra.get(i + 1) != Some(&"off"));
        cmd.args(extra);
        let mut cfg = None;
        if !toml.is_empty() {
            let path = std::env::temp_dir().join(format!(
                "raptor-test-{}-{}.toml",
                std::process::id(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::File::create(&path)
                .unwrap()
                .write_all(toml.as_bytes())
                .unwrap();
            cmd.arg("--config").arg(&path);
            cfg = Some(tempfile_path::TempPath(path));
        }
        cmd.env("RAPTOR_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        if let Some(path) = &opts.stderr {
            let log = std::fs::File::options()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the stderr file");
            cmd.stderr(log);
        }
        let mut child = cmd.spawn().expect("start raptor");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read ready line");
        let Some(port) = port_after(&line, "raptor listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(line);
        };
        let mut metrics_port = None;
        if metrics_on {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read metrics line");
            metrics_port = port_after(&line, "raptor metrics on ");
            assert!(metrics_port.is_some(), "no metrics line: {line:?}");
        }
        Ok(Server {
            child,
            port,
            metrics_port,
            _config: cfg,
        })
    }

    /// The metrics listener's port; panics if it is off.
    /// The config file the server was started with (a test may rewrite it and reload).
    pub fn config_path(&self) -> &std::path::Path {
        &self._config.as_ref().expect("started with a config file").0
    }

    /// Sends SIGHUP (reload).
    pub fn sighup(&self) {
        // SAFETY: kill(2) with a child's pid and a signal number; no memory is involved.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, libc::SIGHUP) }, 0);
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_port.expect("the metrics listener is off")
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, path_and_query)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

/// The port of `PREFIX127.0.0.1:PORT…` in a ready line.
fn port_after(line: &str, prefix: &str) -> Option<u16> {
    let addr = line.strip_prefix(prefix)?.split_whitespace().next()?;
    addr.strip_prefix("127.0.0.1:")?.parse().ok()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A Pusher client over a real WebSocket; `S` is the stream under it (plain TCP unless a
/// test brings its own, e.g. TLS).
pub struct Client<S = MaybeTlsStream<TcpStream>> {
    pub ws: WebSocketStream<S>,
    pub socket_id: String,
}

impl Client {
    /// Connects to the default app and reads `connection_established`.
    pub async fn connect(server: &Server) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(
            server.url("/app/app-key?protocol=7&client=js&version=8.6.0&flash=false"),
        )
        .await
        .expect("ws connect");
        Client::established(ws).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Reads `connection_established` from a WebSocket that just connected.
    pub async fn established(ws: WebSocketStream<S>) -> Client<S> {
        let mut c = Client {
            ws,
            socket_id: String::new(),
        };
        let m = c.recv().await;
        assert_eq!(m["event"], "pusher:connection_established");
        let data: Value = serde_json::from_str(m["data"].as_str().unwrap()).unwrap();
        c.socket_id = data["socket_id"].as_str().unwrap().to_string();
        c
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).await.unwrap();
    }

    /// Next text message as raw text (pings/pongs skipped), within 5 s.
    pub async fn recv_text(&mut self) -> String {
        self.recv_text_within(Duration::from_secs(5))
            .await
            .expect("timed out waiting for a message")
    }

    pub async fn recv_text_within(&mut self, d: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let m = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match m {
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    pub async fn recv(&mut self) -> Value {
        serde_json::from_str(&self.recv_text().await).unwrap()
    }

    /// Asserts nothing arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Some(t) = self.recv_text_within(d).await {
            panic!("expected silence, got {t}");
        }
    }

    pub async fn subscribe(&mut self, channel: &str) {
        self.send(
            serde_json::json!({"event":"pusher:subscribe","data":{"auth":"","channel":channel}}),
        )
        .await;
        let text = self.recv_text().await;
        assert_eq!(
            text,
            format!(
                r#"{{"event":"pusher_internal:subscription_succeeded","channel":"{channel}","data":"{{}}"}}"#
            )
        );
    }

    /// Reads until a close frame; returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for close")
            {
                Some(Ok(Message::Close(Some(f)))) => return f.code.into(),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
}

// ---- HTTP ----------------------------------------------------------------------------------

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn hmac_hex(secret: &str, msg: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(msg.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Builds a signed path+query the way the Node SDK does (signature last).
pub fn signed(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &str,
    secret: &str,
    ts: u64,
) -> String {
    signed_by(KEY, secret, method, path, params, body, ts)
}

/// [`signed`] for the app with `key` and `secret`.
pub fn signed_by(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &str,
    ts: u64,
) -> String {
    let mut kv: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    kv.push(("auth_key".into(), key.into()));
    kv.push(("auth_timestamp".into(), ts.to_string()));
    kv.push(("auth_version".into(), "1.0".into()));
    if !body.is_empty() {
        kv.push(("body_md5".into(), hex::encode(Md5::digest(body.as_bytes()))));
    }
    kv.sort();
    let q: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let q = q.join("&");
    let sig = hmac_hex(secret, &format!("{method}\n{path}\n{q}"));
    format!("{path}?{q}&auth_signature={sig}")
}

/// A keep-alive HTTP/1.1 connection over `S` (plain TCP unless a test brings its own).
pub struct Http<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Http {
    pub async fn connect(server: &Server) -> Http {
        Http::connect_port(server.port).await
    }

    /// A connection to the server on `port` (for a task that cannot borrow the server).
    pub async fn connect_port(port: u16) -> Http {
        Http::over(TcpStream::connect(("127.0.0.1", port)).await.unwrap())
    }

    /// A connection to the server's metrics listener (`/metrics`, `/stats`, `/health`).
    pub async fn metrics(server: &Server) -> Http {
        Http::over(
            TcpStream::connect(("127.0.0.1", server.metrics_port()))
                .await
                .unwrap(),
        )
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Http<S> {
    /// HTTP over an already connected stream.
    pub fn over(stream: S) -> Http<S> {
        Http {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn raw(&mut self, request: &[u8]) -> Resp {
        self.stream.write_all(request).await.unwrap();
        self.read_response().await
    }

    pub async fn request(&mut self, method: &str, target: &str, body: &str) -> Resp {
        self.request_with(method, target, &[], body).await
    }

    /// [`Http::request`] with extra header lines (`"Name: value"`).
    pub async fn request_with(
        &mut self,
        method: &str,
        target: &str,
        headers: &[&str],
        body: &str,
    ) -> Resp {
        let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.raw(req.as_bytes()).await
    }

    /// A correctly signed request to the default app.
    pub async fn signed(
        &mut self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
    ) -> Resp {
        let target = signed(method, path, params, body, SECRET, now());
        self.request(method, &target, body).await
    }

    pub async fn publish(&mut self, channel: &str, event: &str, data: &str) -> Resp {
        let body = serde_json::json!({"name": event, "channel": channel, "data": data}).to_string();
        self.signed("POST", "/apps/1/events", &[], &body).await
    }

    /// Publishes 10 events named `e` to `channel` in one `batch_events` call, with data
    /// `"{n}:{pad}"` for n in `first..first + 10` (numbered, so readers can check order), and
    /// asserts 200.
    pub async fn batch_of_ten(&mut self, channel: &str, first: usize, pad: &str) {
        let batch: Vec<_> = (first..first + 10)
            .map(|n| serde_json::json!({"channel": channel, "name": "e", "data": format!("{n}:{pad}")}))
            .collect();
        let body = serde_json::json!({ "batch": batch }).to_string();
        let r = self
            .signed("POST", "/apps/1/batch_events", &[], &body)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    pub async fn read_response(&mut self) -> Resp {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = r.parse(&self.buf) {
                let status = r.code.unwrap();
                let hs: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).to_string(),
                        )
                    })
                    .collect();
                let len: usize = hs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                while self.buf.len() < n + len {
                    self.fill(deadline).await;
                }
                let body = String::from_utf8(self.buf[n..n + len].to_vec()).unwrap();
                self.buf.drain(..n + len);
                return Resp {
                    status,
                    headers: hs,
                    body,
                };
            }
            self.fill(deadline).await;
        }
    }

    async fn fill(&mut self, deadline: tokio::time::Instant) {
        let mut tmp = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline, self.stream.read(&mut tmp))
            .await
            .expect("timed out reading response")
            .unwrap();
        assert!(n > 0, "connection closed before a full response");
        self.buf.extend_from_slice(&tmp[..n]);
    }
}

// ---- channel and user auth, as an app's auth endpoint would compute it ---------------------

pub fn private_auth(socket_id: &str, channel: &str) -> String {
    format!(
        "{KEY}:{}",
        hmac_hex(SECRET, &format!("{socket_id}:{channel}"))
    )
}

pub fn presence_auth(socket_id: &str, channel: &str, channel_data: &str) -> String {
    format!(
        "{KEY}:{}",
        hmac_hex(SECRET, &format!("{socket_id}:{channel}:{channel_data}"))
    )
}

pub fn user_auth(socket_id: &str, user_data: &str) -> String {
    format!(
        "{KEY}:{}",
        hmac_hex(SECRET, &format!("{socket_id}::user::{user_data}"))
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Sends a subscribe and returns the first reply as text.
    pub async fn subscribe_raw(
        &mut self,
        channel: &str,
        auth: &str,
        channel_data: Option<&str>,
    ) -> String {
        let mut data = serde_json::json!({"channel": channel, "auth": auth});
        if let Some(cd) = channel_data {
            data["channel_data"] = Value::String(cd.to_string());
        }
        self.send(serde_json::json!({"event":"pusher:subscribe","data":data}))
            .await;
        self.recv_text().await
    }

    pub async fn subscribe_private(&mut self, channel: &str) {
        let auth = private_auth(&self.socket_id, channel);
        let text = self.subscribe_raw(channel, &auth, None).await;
        assert_eq!(
            text,
            format!(
                r#"{{"event":"pusher_internal:subscription_succeeded","channel":"{channel}","data":"{{}}"}}"#
            )
        );
    }

    /// Joins a presence channel; returns the `presence` object of subscription_succeeded.
    pub async fn join(&mut self, channel: &str, channel_data: &str) -> Value {
        let auth = presence_auth(&self.socket_id, channel, channel_data);
        let text = self.subscribe_raw(channel, &auth, Some(channel_data)).await;
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["event"], "pusher_internal:subscription_succeeded",
            "{text}"
        );
        assert_eq!(v["channel"], channel);
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        data["presence"].clone()
    }

    pub async fn signin(&mut self, user_data: &str) -> String {
        let auth = user_auth(&self.socket_id, user_data);
        self.send(
            serde_json::json!({"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}}),
        )
        .await;
        self.recv_text().await
    }
}

/// What a Pusher client believes about a presence channel's members: the list of its
/// `subscription_succeeded`, then every `member_added`/`member_removed`. A duplicate add or
/// the removal of an absent member is an error, as it would show twice (or vanish) in an
/// app's member list.
#[derive(Debug, Default)]
pub struct PresenceView {
    pub members: std::collections::BTreeSet<String>,
}

impl PresenceView {
    /// Reads the `subscription_succeeded` answer to a join sent earlier.
    pub async fn succeeded(c: &mut Client, channel: &str) -> PresenceView {
        let v = c.recv().await;
        assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
        assert_eq!(v["channel"], channel, "{v}");
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        let members = data["presence"]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_string())
            .collect();
        PresenceView { members }
    }

    /// Applies member events until the members are `want` (a duplicate `member_added` or a
    /// `member_removed` of an absent member is an error), for at most `within`. For joins on
    /// other nodes: their `member_added` crosses another link than a later marker would, so
    /// only the member set, not the order against a marker, is guaranteed.
    pub async fn until_members(
        &mut self,
        c: &mut Client,
        want: &std::collections::BTreeSet<String>,
        within: std::time::Duration,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        while &self.members != want {
            let Ok(v) = tokio::time::timeout_at(deadline, c.recv()).await else {
                return Err(format!("members {:?} after {within:?}", self.members));
            };
            self.apply(&v)?;
        }
        Ok(())
    }

    /// Applies one member event (anything else is ignored).
    fn apply(&mut self, v: &Value) -> Result<(), String> {
        let user = || {
            let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
            data["user_id"].as_str().unwrap().to_string()
        };
        match v["event"].as_str().unwrap() {
            "pusher_internal:member_added" if !self.members.insert(user()) => {
                Err(format!("duplicate member_added: {v}"))
            }
            "pusher_internal:member_removed" if !self.members.remove(&user()) => {
                Err(format!("member_removed of an absent member: {v}"))
            }
            _ => Ok(()),
        }
    }

    /// Applies member events until an event named `marker` arrives on the channel.
    pub async fn until_marker(&mut self, c: &mut Client, marker: &str) -> Result<(), String> {
        loop {
            let v = c.recv().await;
            if v["event"] == marker {
                return Ok(());
            }
            self.apply(&v)?;
        }
    }
}

/// The `pusher:subscribe` message that joins a presence channel as `user`.
pub fn join_message(c: &Client, channel: &str, user: &str) -> Value {
    let cd = format!(r#"{{"user_id":"{user}"}}"#);
    serde_json::json!({"event": "pusher:subscribe", "data": {
        "channel": channel,
        "auth": presence_auth(&c.socket_id, channel, &cd),
        "channel_data": cd,
    }})
}

/// Sends several messages in one write (so the server reads them together).
pub async fn send_together(c: &mut Client, msgs: &[Value]) {
    for m in msgs {
        c.ws.feed(Message::text(m.to_string())).await.unwrap();
    }
    c.ws.flush().await.unwrap();
}
