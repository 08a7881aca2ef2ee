//! Webhooks end to end: a real HTTP receiver on 127.0.0.1 records what arrives.
//!
//! The `dispatcher_*` tests drive [`Webhooks`] through its public API in this process. The
//! `server_*` tests start the real binary with `[[apps.webhooks]]` pointing at the receiver and
//! make the events happen with WebSocket clients (channel occupied and vacated).

mod common;

use common::{hmac_hex, Client, Server, KEY, SECRET};
use raptor_engine::app::Apps;
use raptor_engine::config::{AppConfig, WebhookConfig};
use raptor_engine::webhook::{WebhookEvent, Webhooks};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---- the receiver ----------------------------------------------------------------------------

/// One request as the receiver saw it.
#[derive(Debug)]
struct Hook {
    at: Instant,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hook {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }

    fn events(&self) -> Value {
        self.json()["events"].clone()
    }

    /// Everything a Pusher SDK checks: content type, key, signature over the raw body, and a
    /// `time_ms` close to now.
    fn assert_valid(&self, key: &str, secret: &str) {
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.header("x-pusher-key"), Some(key));
        let body = std::str::from_utf8(&self.body).unwrap();
        assert_eq!(
            self.header("x-pusher-signature"),
            Some(hmac_hex(secret, body).as_str()),
            "signature of {body}"
        );
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let time_ms = self.json()["time_ms"].as_i64().expect("time_ms");
        assert!((now_ms - time_ms).abs() < 60_000, "time_ms {time_ms}");
    }
}

/// An HTTP server on 127.0.0.1 that answers 500 to the first `fail_first` requests, 200 after.
struct HookReceiver {
    port: u16,
    rx: Receiver<Hook>,
    tls: bool,
}

impl HookReceiver {
    fn start(fail_first: usize) -> HookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let seen = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (tx, seen) = (tx.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, tx, seen, fail_first));
            }
        });
        HookReceiver {
            port,
            rx,
            tls: false,
        }
    }

    /// An HTTPS receiver for `localhost` whose certificate a fresh test CA signed; returns
    /// the receiver, the CA's PEM, and the count of TLS handshakes that failed.
    fn start_tls() -> (HookReceiver, String, Arc<AtomicUsize>) {
        use tokio_rustls::rustls;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(AtomicUsize::new(0));
        let f = failed.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut tcp) = stream else { return };
                let (tx, config, f) = (tx.clone(), config.clone(), f.clone());
                std::thread::spawn(move || {
                    let mut conn = rustls::ServerConnection::new(config).unwrap();
                    while conn.is_handshaking() {
                        if conn.complete_io(&mut tcp).is_err() {
                            f.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                    let tls = rustls::StreamOwned::new(conn, tcp);
                    serve(tls, tx, Arc::new(AtomicUsize::new(0)), 0);
                });
            }
        });
        (
            HookReceiver {
                port,
                rx,
                tls: true,
            },
            ca.pem(),
            failed,
        )
    }

    fn url(&self) -> String {
        if self.tls {
            return format!("https://localhost:{}/hook", self.port);
        }
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The next request within `d`.
    fn next(&self, d: Duration) -> Option<Hook> {
        self.rx.recv_timeout(d).ok()
    }

    fn expect(&self, d: Duration, what: &str) -> Hook {
        self.next(d)
            .unwrap_or_else(|| panic!("no webhook within {d:?}: expected {what}"))
    }

    fn expect_silence(&self, d: Duration) {
        if let Some(h) = self.next(d) {
            panic!(
                "expected no webhook, got {}",
                String::from_utf8_lossy(&h.body)
            );
        }
    }
}

/// Keep-alive HTTP/1.1: reads requests off one connection (plain or TLS) until it closes.
fn serve(mut s: impl Read + Write, tx: Sender<Hook>, seen: Arc<AtomicUsize>, fail_first: usize) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let (head_len, path, headers, len) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut hs);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .map(|h| {
                        let v = String::from_utf8_lossy(h.value).to_string();
                        (h.name.to_string(), v)
                    })
                    .collect();
                let len = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                break (n, req.path.unwrap_or("").to_string(), headers, len);
            }
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        while buf.len() < head_len + len {
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let body = buf[head_len..head_len + len].to_vec();
        buf.drain(..head_len + len);
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let status = if n < fail_first {
            "500 Internal Server Error"
        } else {
            "200 OK"
        };
        let _ = tx.send(Hook {
            at: Instant::now(),
            path,
            headers,
            body,
        });
        let resp = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok");
        if s.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

// ---- helpers -----------------------------------------------------------------------------------

const KEY2: &str = "key-2";
const SECRET2: &str = "secret-2";

fn hook(url: &str, types: Option<&[&str]>, prefix: Option<&str>) -> WebhookConfig {
    WebhookConfig {
        url: url.into(),
        event_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
        channel_prefix: prefix.map(str::to_string),
    }
}

fn apps_with(hooks: Vec<WebhookConfig>) -> Apps {
    let mut a = AppConfig::new("2", KEY2, SECRET2);
    a.webhooks = hooks;
    Apps::new(&[AppConfig::new("1", KEY, SECRET), a])
}

fn occupied(c: &str) -> WebhookEvent {
    WebhookEvent::ChannelOccupied { channel: c.into() }
}
fn vacated(c: &str) -> WebhookEvent {
    WebhookEvent::ChannelVacated { channel: c.into() }
}

/// Waits until `f` holds, for up to 5 s.
fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "condition not met within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---- the dispatcher through its public API ---------------------------------------------------

#[test]
fn dispatcher_retries_until_2xx_with_the_same_signed_body() {
    let recv = HookReceiver::start(2);
    let w = Webhooks::start(&apps_with(vec![hook(&recv.url(), None, None)]));
    w.emit(1, occupied("retry-me"));

    let a = recv.expect(secs(3), "first attempt");
    let b = recv.expect(secs(4), "second attempt, after 1 s");
    let c = recv.expect(secs(5), "third attempt, after 2 s more");
    for h in [&a, &b, &c] {
        h.assert_valid(KEY2, SECRET2);
        assert_eq!(h.path, "/hook");
        assert_eq!(h.body, a.body, "same bytes on every attempt");
    }
    assert_eq!(
        a.events(),
        json!([{"name":"channel_occupied","channel":"retry-me"}])
    );
    let (gap1, gap2) = (b.at - a.at, c.at - b.at);
    assert!(gap1 >= Duration::from_millis(900), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(1900), "{gap2:?}");
    recv.expect_silence(Duration::from_millis(1500));
    eventually(|| w.stats().sent == 1);
    let s = w.stats();
    assert_eq!(
        (s.queued, s.sent, s.retried, s.failed, s.dropped),
        (1, 1, 2, 0, 0)
    );
}

#[test]
fn dispatcher_debounces_vacated_and_member_removed() {
    let recv = HookReceiver::start(0);
    let w = Webhooks::start(&apps_with(vec![hook(&recv.url(), None, None)]));
    let t0 = Instant::now();
    w.emit(1, vacated("flaky"));
    w.emit(1, vacated("gone"));
    w.emit(
        1,
        WebhookEvent::MemberRemoved {
            channel: "presence-room".into(),
            user_id: "u1".into(),
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    w.emit(1, occupied("flaky"));
    w.emit(
        1,
        WebhookEvent::MemberAdded {
            channel: "presence-room".into(),
            user_id: "u1".into(),
        },
    );

    let h = recv.expect(secs(6), "channel_vacated of `gone`");
    let waited = h.at - t0;
    assert!(waited >= Duration::from_millis(2950), "held {waited:?}");
    assert!(waited < secs(5), "held {waited:?}");
    h.assert_valid(KEY2, SECRET2);
    assert_eq!(
        h.events(),
        json!([{"name":"channel_vacated","channel":"gone"}])
    );
    recv.expect_silence(secs(1));
    assert_eq!(w.stats().debounced, 4);
}

#[test]
fn dispatcher_batches_and_filters_per_endpoint() {
    let all = HookReceiver::start(0);
    let some = HookReceiver::start(0);
    let w = Webhooks::start(&apps_with(vec![
        hook(&all.url(), None, None),
        hook(
            &some.url(),
            Some(&["client_event", "subscription_count"]),
            Some("private-"),
        ),
    ]));
    w.emit(1, occupied("private-a"));
    w.emit(
        1,
        WebhookEvent::ClientEvent {
            channel: "private-a".into(),
            event: "client-typing".into(),
            data: r#"{"who":"me"}"#.into(),
            socket_id: "123.456".into(),
            user_id: None,
        },
    );
    w.emit(
        1,
        WebhookEvent::SubscriptionCount {
            channel: "public-b".into(),
            subscription_count: 3,
        },
    );
    // App 0 has no webhooks: nothing is even queued.
    w.emit(0, occupied("private-a"));

    let h = all.expect(secs(3), "one batch of three");
    h.assert_valid(KEY2, SECRET2);
    assert_eq!(
        h.events(),
        json!([
            {"name":"channel_occupied","channel":"private-a"},
            {"name":"client_event","channel":"private-a","event":"client-typing","data":"{\"who\":\"me\"}","socket_id":"123.456"},
            {"name":"subscription_count","channel":"public-b","subscription_count":3}
        ])
    );
    let h = some.expect(secs(3), "the client event only");
    h.assert_valid(KEY2, SECRET2);
    assert_eq!(
        h.events(),
        json!([{"name":"client_event","channel":"private-a","event":"client-typing","data":"{\"who\":\"me\"}","socket_id":"123.456"}])
    );
    all.expect_silence(Duration::from_millis(300));
    some.expect_silence(Duration::from_millis(300));
    eventually(|| w.stats().sent == 4);
    assert_eq!(w.stats().queued, 3);
}

#[test]
fn dispatcher_counts_failures_and_disabled_handle_is_a_no_op() {
    let w = Webhooks::start(&Apps::new(&[AppConfig::new("1", KEY, SECRET)]));
    w.emit(0, occupied("c"));
    assert_eq!(w.stats(), Default::default());

    // Nothing listens on the port: connection refused, retried in the background.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let w = Webhooks::start(&apps_with(vec![hook(
        &format!("http://127.0.0.1:{port}/"),
        None,
        None,
    )]));
    w.emit(1, occupied("c"));
    eventually(|| w.stats().retried >= 1);
    assert_eq!(w.stats().sent, 0);
}

// ---- the real server ---------------------------------------------------------------------------

fn server_with_webhook(url: &str) -> Server {
    Server::start_with(&format!(
        "[[apps]]\nid = \"1\"\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\n\n[[apps.webhooks]]\nurl = \"{url}\"\n"
    ))
}

/// Blocks this test's thread while the WebSocket clients wait (multi-thread runtime).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_retries_channel_occupied_until_2xx() {
    let recv = HookReceiver::start(2);
    let server = server_with_webhook(&recv.url());
    let mut c = Client::connect(&server).await;
    c.subscribe("webhook-retry").await;

    let hooks: Vec<Hook> = blocking(|| {
        (0..3)
            .map(|i| recv.expect(secs(5), &format!("attempt {}", i + 1)))
            .collect()
    });
    for h in &hooks {
        h.assert_valid(KEY, SECRET);
        assert_eq!(h.body, hooks[0].body, "same body on every attempt");
    }
    assert_eq!(
        hooks[0].events(),
        json!([{"name":"channel_occupied","channel":"webhook-retry"}])
    );
    assert!(hooks[1].at - hooks[0].at >= Duration::from_millis(900));
    assert!(hooks[2].at - hooks[1].at >= Duration::from_millis(1900));
    blocking(|| recv.expect_silence(Duration::from_millis(1500)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_debounces_a_quick_reconnect() {
    let recv = HookReceiver::start(0);
    let server = server_with_webhook(&recv.url());
    let mut a = Client::connect(&server).await;
    a.subscribe("webhook-debounce").await;
    let h = blocking(|| recv.expect(secs(3), "channel_occupied"));
    h.assert_valid(KEY, SECRET);
    assert_eq!(
        h.events(),
        json!([{"name":"channel_occupied","channel":"webhook-debounce"}])
    );

    // Leave and come back within 3 s: neither vacated nor occupied is sent.
    a.ws.close(None).await.unwrap();
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut b = Client::connect(&server).await;
    b.subscribe("webhook-debounce").await;
    blocking(|| recv.expect_silence(secs(4)));

    // Leave for good: vacated, 3 s later.
    let left = Instant::now();
    b.ws.close(None).await.unwrap();
    drop(b);
    let h = blocking(|| recv.expect(secs(6), "channel_vacated"));
    h.assert_valid(KEY, SECRET);
    assert_eq!(
        h.events(),
        json!([{"name":"channel_vacated","channel":"webhook-debounce"}])
    );
    let held = h.at - left;
    assert!(held >= Duration::from_millis(2900), "held {held:?}");
}

/// A reload adds a webhook to a running server (no app had one at start, so the delivery
/// threads start then), and a later reload rotates the secret its requests are signed with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_reload_adds_a_webhook_and_signs_with_the_rotated_secret() {
    let recv = HookReceiver::start(0);
    let app =
        |secret: &str| format!("[[apps]]\nid = \"1\"\nkey = \"{KEY}\"\nsecret = \"{secret}\"\n");
    let server = Server::start_with(&app(SECRET));
    let mut c = Client::connect(&server).await;
    c.subscribe("before").await;
    blocking(|| recv.expect_silence(Duration::from_millis(300)));

    let hooked = |secret: &str| {
        format!(
            "{}[[apps.webhooks]]\nurl = \"{}\"\n",
            app(secret),
            recv.url()
        )
    };
    let reload = |toml: String| async {
        std::fs::write(server.config_path(), toml).unwrap();
        let mut m = common::Http::metrics(&server).await;
        let r = m.request("POST", "/admin/reload", "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["apps"].clone()
    };
    assert_eq!(
        reload(hooked(SECRET)).await,
        json!({"added": [], "removed": [], "changed": ["1"]})
    );
    c.subscribe("after").await;
    let h = blocking(|| recv.expect(secs(3), "channel_occupied"));
    h.assert_valid(KEY, SECRET);
    assert_eq!(
        h.events(),
        json!([{"name":"channel_occupied","channel":"after"}])
    );

    reload(hooked("rotated")).await;
    c.subscribe("rotated").await;
    let h = blocking(|| recv.expect(secs(3), "channel_occupied"));
    h.assert_valid(KEY, "rotated");
    assert_eq!(
        h.events(),
        json!([{"name":"channel_occupied","channel":"rotated"}])
    );

    // Removed again: nothing more is sent.
    reload(app("rotated")).await;
    c.subscribe("unhooked").await;
    blocking(|| recv.expect_silence(Duration::from_millis(500)));
}

/// An `https://` webhook is verified against `[webhooks] ca_file`: delivered and signed
/// when the file holds the receiver's CA, refused by the TLS handshake (never sent in
/// clear, never to an unverified receiver) with the system's roots instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_delivers_https_webhooks_verified_against_the_configured_ca() {
    let (recv, ca_pem, failed) = HookReceiver::start_tls();
    let ca_file =
        std::env::temp_dir().join(format!("raptor-webhook-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let app = format!(
        "[[apps]]\nid = \"1\"\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\n\n[[apps.webhooks]]\nurl = \"{}\"\n",
        recv.url()
    );
    let server = Server::start_with(&format!(
        "[webhooks]\nca_file = \"{}\"\n{app}",
        ca_file.display()
    ));
    let mut c = Client::connect(&server).await;
    c.subscribe("webhook-https").await;
    let h = blocking(|| recv.expect(secs(5), "channel_occupied over https"));
    h.assert_valid(KEY, SECRET);
    assert_eq!(
        h.events(),
        json!([{"name":"channel_occupied","channel":"webhook-https"}])
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    drop(server);
    std::fs::remove_file(&ca_file).unwrap();

    // The same receiver with the system's roots: the handshake fails, nothing is delivered.
    let server = Server::start_with(&app);
    let mut c = Client::connect(&server).await;
    c.subscribe("webhook-https-untrusted").await;
    blocking(|| recv.expect_silence(Duration::from_millis(2500)));
    assert!(
        failed.load(Ordering::SeqCst) >= 1,
        "no TLS handshake was tried"
    );
}
