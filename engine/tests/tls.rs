//! TLS: `wss://` and `https://` on the same port as plain connections, with a self-signed
//! certificate made per test (rcgen) and clients that verify it (rustls with the certificate
//! as their only root). `tls.only` refuses plain WebSocket with 4000 and plain HTTP with 403.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// What pusher-js reads as "reconnect with wss://" (Pusher's wording).
const TLS_ONLY_ERROR: &str = r#"{"event":"pusher:error","data":{"code":4000,"message":"Application only accepts SSL connections, reconnect using wss://"}}"#;

/// A self-signed certificate for `localhost` and 127.0.0.1, in PEM files in a temp dir that
/// is removed on drop.
struct Cert {
    dir: PathBuf,
    der: CertificateDer<'static>,
}

impl Cert {
    fn new() -> Cert {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "raptor-tls-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
        Cert {
            dir,
            der: made.cert.der().clone(),
        }
    }

    /// Puts `other`'s certificate and key in this one's files (a renewal in place, as
    /// certbot does).
    fn renew_with(&self, other: &Cert) {
        for f in ["cert.pem", "key.pem"] {
            std::fs::copy(other.dir.join(f), self.dir.join(f)).unwrap();
        }
    }

    /// The `[tls]` table for these files.
    fn toml(&self, only: bool) -> String {
        format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\nonly = {only}\n",
            self.dir.join("cert.pem").display(),
            self.dir.join("key.pem").display()
        )
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client that trusts exactly `roots` (none: it trusts nothing).
fn connector(roots: &[&Cert]) -> TlsConnector {
    let mut store = RootCertStore::empty();
    for c in roots {
        store.add(c.der.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    s: &Server,
    roots: &[&Cert],
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", s.port)).await?;
    tls_over(tcp, roots, name).await
}

async fn tls_over(
    tcp: TcpStream,
    roots: &[&Cert],
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    connector(roots).connect(name, tcp).await
}

/// A verified TLS connection to `localhost`.
async fn tls(s: &Server, cert: &Cert) -> TlsStream<TcpStream> {
    tls_connect(s, &[cert], "localhost")
        .await
        .expect("tls handshake")
}

async fn wss(s: &Server, cert: &Cert, path: &str) -> WebSocketStream<TlsStream<TcpStream>> {
    let url = format!("wss://localhost:{}{path}", s.port);
    let (ws, _) = tokio_tungstenite::client_async(url, tls(s, cert).await)
        .await
        .expect("wss upgrade");
    ws
}

const APP_PATH: &str = "/app/app-key?protocol=7&client=js&version=8.6.0&flash=false";

async fn wss_client(s: &Server, cert: &Cert) -> Client<TlsStream<TcpStream>> {
    Client::established(wss(s, cert, APP_PATH).await).await
}

/// The frame an event `e` with plain-text `data` arrives as.
fn event(channel: &str, data: &str) -> String {
    format!(r#"{{"event":"e","channel":"{channel}","data":"{data}"}}"#)
}

#[tokio::test]
async fn wss_subscribe_and_https_publish() {
    let cert = Cert::new();
    let s = Server::start_with(&cert.toml(false));
    let mut c = wss_client(&s, &cert).await;
    c.subscribe("orders").await;

    // Two publishes on one keep-alive https connection.
    let mut h = Http::over(tls(&s, &cert).await);
    for data in ["one", "two"] {
        let r = h.publish("orders", "e", data).await;
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        assert_eq!(c.recv_text().await, event("orders", data));
    }
    // A ping goes the other way over the same TLS stream.
    c.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );

    // The certificate's IP address name verifies too.
    let ip = tls_connect(&s, &[&cert], "127.0.0.1")
        .await
        .expect("tls to the IP");
    let r = Http::over(ip).request("GET", "/health", "").await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"ok":true}"#));
}

/// certbot's deploy hook: the renewed certificate in the same files, then SIGHUP
/// (`systemctl reload`). New connections get the new certificate; connections open before
/// keep theirs and stay up.
#[tokio::test]
async fn a_reload_serves_a_renewed_certificate_and_keeps_connections() {
    let old = Cert::new();
    let s = Server::start_with(&old.toml(false));
    let mut before = wss_client(&s, &old).await;
    before.subscribe("renew").await;

    let renewed = Cert::new();
    old.renew_with(&renewed);
    s.sighup();
    let deadline = Instant::now() + Duration::from_secs(5);
    // Each shard's acceptor takes the new certificate with its next connection, and the
    // kernel spreads connections over the shards: try until one handshake succeeds, then
    // several in a row must.
    while tls_connect(&s, &[&renewed], "localhost").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..8 {
        tls_connect(&s, &[&renewed], "localhost")
            .await
            .expect("the renewed certificate on every shard");
        let refused = tls_connect(&s, &[&old], "localhost").await;
        assert!(refused.is_err(), "the old certificate is still served");
    }
    let mut h = Http::over(tls(&s, &renewed).await);
    assert_eq!(h.publish("renew", "e", "after").await.status, 200);
    assert_eq!(before.recv_text().await, event("renew", "after"));
}

#[tokio::test]
async fn plain_and_tls_share_the_port() {
    let cert = Cert::new();
    let s = Server::start_with(&cert.toml(false));
    let mut secure = wss_client(&s, &cert).await;
    let mut plain = Client::connect(&s).await;
    secure.subscribe("mixed").await;
    plain.subscribe("mixed").await;

    let mut h = Http::connect(&s).await;
    let r = h.publish("mixed", "e", "over http").await;
    assert_eq!(r.status, 200);
    let mut hs = Http::over(tls(&s, &cert).await);
    let r = hs.publish("mixed", "e", "over https").await;
    assert_eq!(r.status, 200);
    assert_eq!(secure.recv_text().await, event("mixed", "over http"));
    assert_eq!(plain.recv_text().await, event("mixed", "over http"));
    assert_eq!(secure.recv_text().await, event("mixed", "over https"));
    assert_eq!(plain.recv_text().await, event("mixed", "over https"));
}

#[tokio::test]
async fn tls_only_refuses_plain_websocket_with_4000_and_plain_http_with_403() {
    let cert = Cert::new();
    let s = Server::start_with(&cert.toml(true));

    let (mut ws, _) = tokio_tungstenite::connect_async(s.url(APP_PATH))
        .await
        .unwrap();
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no pusher:error")
    };
    assert_eq!(t.as_str(), TLS_ONLY_ERROR);
    let Some(Ok(Message::Close(Some(f)))) = ws.next().await else {
        panic!("no close frame")
    };
    assert_eq!(u16::from(f.code), 4000);

    let mut h = Http::connect(&s).await;
    let r = h.publish("c", "e", "d").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (403, r#"{"error":"TLS required"}"#)
    );
    let r = h.request("GET", "/health", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (403, r#"{"error":"TLS required"}"#)
    );

    // TLS is served as usual.
    let mut c = wss_client(&s, &cert).await;
    c.subscribe("only").await;
    let r = Http::over(tls(&s, &cert).await)
        .publish("only", "e", "secure")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(c.recv_text().await, event("only", "secure"));
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_fails_the_handshake() {
    let cert = Cert::new();
    let other = Cert::new();
    let s = Server::start_with(&cert.toml(false));
    // No roots at all, or another self-signed certificate (same issuer name, other key).
    for (roots, why) in [(&[][..], "UnknownIssuer"), (&[&other][..], "BadSignature")] {
        let e = tls_connect(&s, roots, "localhost")
            .await
            .expect_err("handshake must fail");
        assert!(e.to_string().contains(why), "{e}");
    }
    // The wrong name fails too, with the right root.
    let e = tls_connect(&s, &[&cert], "example.com")
        .await
        .expect_err("handshake must fail");
    assert!(e.to_string().contains("not valid for name"), "{e}");
    // The server is unharmed.
    let mut c = wss_client(&s, &cert).await;
    c.subscribe("after").await;
}

#[tokio::test]
async fn closes_over_tls_end_with_close_notify() {
    let cert = Cert::new();
    let s = Server::start_with(&cert.toml(false));

    // WebSocket close handshake: the server's close frame, then a clean TLS end (tokio-rustls
    // reports an EOF without close_notify as an error).
    let mut ws = wss(&s, &cert, APP_PATH).await;
    let _established = ws.next().await.unwrap().unwrap();
    ws.send(Message::Close(None)).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no close reply")
        {
            Some(Ok(Message::Close(_))) => continue,
            None => break,
            other => panic!("expected the close reply then the end, got {other:?}"),
        }
    }

    // `Connection: close` on https: the response, then close_notify (a read of 0, not an
    // error).
    let mut h = Http::over(tls(&s, &cert).await);
    let r = h
        .raw(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(r.status, 200);
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), h.stream.read_to_end(&mut rest))
        .await
        .expect("no end after Connection: close")
        .expect("clean TLS end");
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_large_events_arrive_in_order_over_tls() {
    // More than the socket buffers hold, so the TLS writer must wait for writability; the
    // queue is made large enough that nobody is cut.
    const EVENTS: usize = 600;
    let cert = Cert::new();
    let s = Server::start_with(&format!(
        "{}[limits]\noutbox_max_bytes = 16777216\n",
        cert.toml(false)
    ));
    let mut c = wss_client(&s, &cert).await;
    c.subscribe("bulk").await;
    let mut h = Http::over(tls(&s, &cert).await);
    let pad = "x".repeat(9000);
    for i in 0..EVENTS / 10 {
        h.batch_of_ten("bulk", i * 10, &pad).await;
    }
    for n in 0..EVENTS {
        let t = c.recv_text().await;
        assert!(
            t.contains(&format!("\"data\":\"{n}:")),
            "out of order at {n}"
        );
    }
    // Small frames queued behind each other are coalesced, and still arrive one by one.
    for i in 0..50 {
        let r = h.publish("bulk", "e", &i.to_string()).await;
        assert_eq!(r.status, 200);
    }
    for i in 0..50 {
        assert_eq!(c.recv_text().await, event("bulk", &i.to_string()));
    }
}

#[tokio::test]
async fn a_tls_reader_that_stops_is_cut_with_4100() {
    let cert = Cert::new();
    let s = Server::start_with(&cert.toml(false));
    // A small receive buffer, so the socket buffers cannot absorb the backlog.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(([127, 0, 0, 1], s.port).into()).await.unwrap();
    let stream = tls_over(tcp, &[&cert], "localhost").await.unwrap();
    let url = format!("wss://localhost:{}{APP_PATH}", s.port);
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let mut slow = Client::established(ws).await;
    slow.subscribe("firehose").await;
    let mut h = Http::over(tls(&s, &cert).await);
    let pad = "x".repeat(9000);
    // 8 MiB of events against a 1 MiB queue (plus socket and rustls buffers).
    for i in 0..90 {
        h.batch_of_ten("firehose", i * 10, &pad).await;
    }
    assert_eq!(slow.expect_close().await, 4100);
}

#[tokio::test]
async fn the_tls_handshake_shares_the_handshake_timeout() {
    let cert = Cert::new();
    let s = Server::start_with(&format!(
        "{}[limits]\nhandshake_timeout_secs = 1\n",
        cert.toml(false)
    ));
    // The start of a ClientHello, then silence.
    let mut tcp = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let started = Instant::now();
    let mut b = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut b))
        .await
        .expect("the server kept a silent TLS client")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_malformed_handshake_is_dropped_at_once() {
    let cert = Cert::new();
    let s = Server::start_with(&cert.toml(false));
    // A handshake record header announcing more than any record may hold.
    let mut tcp = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00])
        .await
        .unwrap();
    let mut b = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut b))
        .await
        .expect("kept until the handshake timeout (10 s)")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_tls_clients_with_4200_and_drains_promptly() {
    let cert = Cert::new();
    let mut s = Server::start_with(&cert.toml(false));
    let mut secure = Vec::new();
    for _ in 0..3 {
        let mut c = wss_client(&s, &cert).await;
        c.subscribe("x").await;
        secure.push(c);
    }
    let mut plain = Client::connect(&s).await;
    let t0 = Instant::now();
    unsafe { libc::kill(s.pid() as i32, libc::SIGTERM) };
    for c in secure.iter_mut() {
        assert_eq!(c.expect_close().await, 4200);
    }
    assert_eq!(plain.expect_close().await, 4200);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
    // The drain ends once every close frame is out; well before the 10 s grace period, so the
    // TLS sockets got there too.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

#[test]
fn unusable_certificate_or_key_refuses_to_start_naming_the_field() {
    let cert = Cert::new();
    let missing = cert.dir.join("missing.pem");
    let cert_pem = cert.dir.join("cert.pem");
    let key_pem = cert.dir.join("key.pem");
    for (c, k, field) in [
        (&missing, &key_pem, "tls.cert"),
        (&key_pem, &key_pem, "tls.cert"),
        (&cert_pem, &missing, "tls.key"),
        (&cert_pem, &cert_pem, "tls.key"),
    ] {
        let path = cert.dir.join("raptor.toml");
        std::fs::write(
            &path,
            format!(
                "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                c.display(),
                k.display()
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_raptor"))
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--shards",
                "1",
                "--metrics-bind",
                "off",
                "--config",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("`{field}`")), "{field}: {err}");
        assert!(out.stdout.is_empty(), "it must not report ready");
    }
}
