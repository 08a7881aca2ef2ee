//! The operator CLI against a real server: `raptor publish`, `channels`, `channel`, `users`,
//! `history`, `terminate` through the signed HTTP API, `stats` on the metrics listener, and
//! `config default`. Each command's output is checked whole, as a table and with `--json`;
//! every failure is one `raptor: ...` line with exit 2 (usage) or 1 (request), and no
//! output ever holds a secret.

mod common;
use common::history::subscribe_from;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_raptor");

/// What one run printed.
#[derive(Debug, PartialEq)]
struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

impl Run {
    fn ok(out: &str) -> Run {
        Run {
            code: Some(0),
            out: out.into(),
            err: String::new(),
        }
    }

    /// A failure: exit `code` and exactly one line on stderr, `raptor: {reason}`.
    fn failed(code: i32, reason: &str) -> Run {
        Run {
            code: Some(code),
            out: String::new(),
            err: format!("raptor: {reason}\n"),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// Every setting the CLI reads from the environment: a test sets its own.
const CLI_ENV: [&str; 9] = [
    "RAPTOR_URL",
    "RAPTOR_APP_ID",
    "RAPTOR_APP_KEY",
    "RAPTOR_APP_SECRET",
    "RAPTOR_CONFIG",
    "RAPTOR_METRICS_URL",
    "RAPTOR_METRICS_TOKEN",
    "RAPTOR_METRICS_TOKEN_FILE",
    "SSL_CERT_DIR",
];

/// Secrets of the servers these tests start; no output may contain one.
const NEVER_SHOWN: [&str; 3] = [SECRET, "s3cret-of-app-7", "0123456789abcdef-metrics"];

/// Runs `raptor args` with `env`, and checks that nothing printed holds a secret.
async fn raptor_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args);
    for k in CLI_ENV {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("raptor ran too long")
        .unwrap();
    let run = Run {
        code: out.status.code(),
        out: String::from_utf8(out.stdout).unwrap(),
        err: String::from_utf8(out.stderr).unwrap(),
    };
    for s in NEVER_SHOWN {
        assert!(
            !run.out.contains(s) && !run.err.contains(s),
            "{args:?} printed a secret: {run:?}"
        );
    }
    run
}

async fn raptor(args: &[&str]) -> Run {
    raptor_env(args, &[]).await
}

fn url(s: &Server) -> String {
    format!("http://127.0.0.1:{}", s.port)
}

/// A file removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "raptor-cli-ops-{}-{}-{name}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn publish_reaches_subscribers_and_prints_the_answer() {
    let s = Server::start();
    let u = url(&s);
    let mut a = Client::connect(&s).await;
    let mut b = Client::connect(&s).await;
    for c in [&mut a, &mut b] {
        c.subscribe("chat-1").await;
        c.subscribe("gallery/123/comments").await;
    }
    let data = r#"{"text":"hi"}"#;
    assert_eq!(
        raptor(&["publish", "chat-1", "message", data, "--url", &u]).await,
        Run::ok("published message on chat-1\n")
    );
    let frame = r#"{"event":"message","channel":"chat-1","data":"{\"text\":\"hi\"}"}"#;
    assert_eq!(a.recv_text().await, frame);
    assert_eq!(b.recv_text().await, frame);

    // --json prints the server's answer; --socket-id leaves that connection out; a name
    // with `/` is escaped in nothing but the URL.
    let args = [
        "publish",
        "gallery/123/comments",
        "e",
        "x",
        "--socket-id",
        &a.socket_id,
        "--url",
        &u,
        "--json",
    ];
    assert_eq!(raptor(&args).await, Run::ok("{}\n"));
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"e","channel":"gallery/123/comments","data":"x"}"#
    );
    a.expect_silence(Duration::from_millis(200)).await;

    // The server's refusal, in one line.
    assert_eq!(
        raptor(&["publish", "bad channel", "e", "x", "--url", &u]).await,
        Run::failed(
            1,
            "POST /apps/1/events: 400 Bad Request: invalid channel `bad channel`: channel name contains a character outside [A-Za-z0-9_-=@,.;/]"
        )
    );
}

#[tokio::test]
async fn channels_channel_and_users_show_the_real_subscribers() {
    let s = Server::start();
    let u = url(&s);
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut c = Client::connect(&s).await;
        c.subscribe("chat-1").await;
        clients.push(c);
    }
    for user in ["u2", "u1"] {
        let mut c = Client::connect(&s).await;
        c.join("presence-room", &format!(r#"{{"user_id":"{user}"}}"#))
            .await;
        clients.push(c);
    }
    let mut c = Client::connect(&s).await;
    c.subscribe("gallery/1").await;
    clients.push(c);

    assert_eq!(
        raptor(&["channels", "--url", &u]).await,
        Run::ok(
            "CHANNEL        SUBSCRIPTIONS\n\
             chat-1         2\n\
             gallery/1      1\n\
             presence-room  2\n"
        )
    );
    assert_eq!(
        raptor(&["channels", "--url", &u, "--json"]).await,
        Run::ok(
            "{\"channels\":{\"chat-1\":{\"subscription_count\":2},\"gallery/1\":{\"subscription_count\":1},\"presence-room\":{\"subscription_count\":2}}}\n"
        )
    );
    assert_eq!(
        raptor(&["channels", "--prefix", "presence-", "--url", &u]).await,
        Run::ok("CHANNEL        SUBSCRIPTIONS\npresence-room  2\n")
    );
    assert_eq!(
        raptor(&["channels", "--prefix", "none-", "--url", &u]).await,
        Run::ok("CHANNEL  SUBSCRIPTIONS\n")
    );

    assert_eq!(
        raptor(&["channel", "presence-room", "--url", &u]).await,
        Run::ok(
            "channel        presence-room\n\
             occupied       true\n\
             subscriptions  2\n\
             users          2\n"
        )
    );
    assert_eq!(
        raptor(&["channel", "presence-room", "--url", &u, "--json"]).await,
        Run::ok("{\"occupied\":true,\"user_count\":2,\"subscription_count\":2}\n")
    );
    assert_eq!(
        raptor(&["channel", "gallery/1", "--url", &u]).await,
        Run::ok("channel        gallery/1\noccupied       true\nsubscriptions  1\n")
    );
    assert_eq!(
        raptor(&["channel", "empty", "--url", &u, "--json"]).await,
        Run::ok("{\"occupied\":false,\"subscription_count\":0}\n")
    );

    assert_eq!(
        raptor(&["users", "presence-room", "--url", &u]).await,
        Run::ok("USER\nu1\nu2\n")
    );
    let users = raptor(&["users", "presence-room", "--url", &u, "--json"]).await;
    let mut ids: Vec<String> = users.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!((users.code, ids), (Some(0), vec!["u1".into(), "u2".into()]));
    assert_eq!(
        raptor(&["users", "chat-1", "--url", &u]).await,
        Run::failed(
            1,
            "GET /apps/1/channels/chat-1/users: 400 Bad Request: users are only available for presence channels"
        )
    );
}

const HISTORY: &str = r#"
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"

[[apps.history]]
channels = "chat-*"
"#;

#[tokio::test]
async fn history_shows_the_position_and_the_stored_events() {
    let s = Server::start_with(HISTORY);
    let u = url(&s);
    let mut c = Client::connect(&s).await;
    let epoch = subscribe_from(&mut c, "chat-1", None).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    for (n, data) in ["one", "two", "three\nlines"].iter().enumerate() {
        assert_eq!(
            raptor(&["publish", "chat-1", "e", data, "--url", &u])
                .await
                .code,
            Some(0)
        );
        assert_eq!(c.recv().await["offset"], n + 1);
    }

    // Without --limit: the position only.
    assert_eq!(
        raptor(&["history", "chat-1", "--url", &u]).await,
        Run::ok(&format!("epoch   {epoch}\noffset  3\n"))
    );
    assert_eq!(
        raptor(&["history", "chat-1", "--url", &u, "--json"]).await,
        Run::ok(&format!("{{\"epoch\":\"{epoch}\",\"offset\":3}}\n"))
    );

    // With it: the events, as the server sent them (--json), and as a table.
    let args = ["history", "chat-1", "--limit", "10", "--url", &u];
    let json = raptor(&[&args[..], &["--json"]].concat()).await.json();
    let events = json["events"].as_array().unwrap();
    let time = |i: usize| raptor_engine::cli::output::utc(events[i]["time_ms"].as_u64().unwrap());
    assert_eq!(
        (events.len(), &events[2]["data"]),
        (3, &json!("three\nlines"))
    );
    assert_eq!(
        raptor(&args).await,
        Run::ok(&format!(
            "epoch   {epoch}\noffset  3\n\n\
             OFFSET  TIME                      EVENT  USER  DATA\n\
             1       {}  e      -     one\n\
             2       {}  e      -     two\n\
             3       {}  e      -     three\\nlines\n",
            time(0),
            time(1),
            time(2)
        ))
    );
    let newest = raptor(&[
        "history",
        "chat-1",
        "--limit",
        "10",
        "--since",
        "1",
        "--newest-first",
        "--url",
        &u,
        "--json",
    ])
    .await
    .json();
    let offsets: Vec<u64> = newest["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [3, 2]);

    // --since without --limit would be ignored by the server: refused before sending.
    assert_eq!(
        raptor(&["history", "chat-1", "--since", "1", "--url", &u]).await,
        Run::failed(
            2,
            "--since and --newest-first read events: give --limit too"
        )
    );
    assert_eq!(
        raptor(&["history", "plain", "--url", &u]).await,
        Run::failed(
            1,
            "GET /apps/1/channels/plain/history: 404 Not Found: channel has no history (no [[apps.history]] rule matches it)"
        )
    );
}

#[tokio::test]
async fn terminate_closes_the_users_connections() {
    let s = Server::start();
    let u = url(&s);
    let mut alice = Client::connect(&s).await;
    let mut bob = Client::connect(&s).await;
    alice.signin(r#"{"id":"u-42"}"#).await;
    bob.signin(r#"{"id":"u-7"}"#).await;
    assert_eq!(
        raptor(&["terminate", "u-42", "--url", &u]).await,
        Run::ok("closing the connections of user u-42\n")
    );
    assert_eq!(alice.expect_close().await, 4009);
    bob.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(
        raptor(&["terminate", "u-7", "--url", &u, "--json"]).await,
        Run::ok("{}\n")
    );
    assert_eq!(bob.expect_close().await, 4009);
}

#[tokio::test]
async fn stats_reads_the_metrics_listener() {
    let s = Server::start();
    let mut c = Client::connect(&s).await;
    c.subscribe("room").await;
    let m = format!("http://127.0.0.1:{}", s.metrics_port());
    let json = raptor(&["stats", "--metrics-url", &m, "--json"]).await;
    let v = json.json();
    assert_eq!(
        (v["shards"].as_u64(), v["connections"].as_u64()),
        (Some(2), Some(1))
    );

    // The table: every figure, in the server's order, nested ones by their path.
    let table = raptor(&["stats", "--metrics-url", &m]).await;
    assert_eq!((table.code, table.err.as_str()), (Some(0), ""));
    let rows: Vec<(&str, &str)> = table
        .out
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k, v.trim_start())
        })
        .collect();
    let mut want = Vec::new();
    for (k, v) in v.as_object().unwrap() {
        match v.as_object() {
            Some(inner) => want.extend(inner.keys().map(|i| format!("{k}.{i}"))),
            None => want.push(k.clone()),
        }
    }
    let mut names: Vec<&str> = rows.iter().map(|(k, _)| *k).collect();
    names.sort_unstable();
    assert_eq!(names, want, "serde_json's map is sorted; the table is not");
    assert_eq!(
        &rows[..3],
        [("shards", "2"), ("connections", "1"), ("channels", "1")]
    );
    let width = table.out.lines().next().unwrap().rfind(' ').unwrap();
    assert!(
        table.out.lines().all(|l| l.rfind(' ') == Some(width)),
        "{}",
        table.out
    );
}

#[tokio::test]
async fn stats_sends_the_bearer_token_and_never_shows_it() {
    let token = NEVER_SHOWN[2];
    let opts = StartOpts {
        env: vec![("RAPTOR_METRICS_TOKEN".into(), token.into())],
        ..StartOpts::default()
    };
    let s = Server::try_start_opts("", &[], &opts).unwrap();
    let m = format!("http://127.0.0.1:{}", s.metrics_port());
    assert_eq!(
        raptor(&["stats", "--metrics-url", &m]).await,
        Run::failed(
            1,
            "GET /stats: 401 Unauthorized: authentication required: send Authorization: Bearer <metrics.token>"
        )
    );
    assert_eq!(
        raptor(&[
            "stats",
            "--metrics-url",
            &m,
            "--metrics-token",
            "wrong-token-0123456789"
        ])
        .await,
        Run::failed(1, "GET /stats: 401 Unauthorized: invalid bearer token")
    );
    let env = [
        ("RAPTOR_METRICS_URL", m.as_str()),
        ("RAPTOR_METRICS_TOKEN", token),
    ];
    let r = raptor_env(&["stats", "--json"], &env).await;
    assert_eq!(r.json()["shards"], 2);
    // The public port answers /stats with the token too.
    let public = format!("http://127.0.0.1:{}", s.port);
    let r = raptor(&[
        "stats",
        "--metrics-url",
        &public,
        "--metrics-token",
        token,
        "--json",
    ])
    .await;
    assert_eq!(r.json()["shards"], 2);
}

#[tokio::test]
async fn failures_are_one_line_with_the_exit_code_that_says_whose() {
    // Usage: exit 2, nothing sent.
    assert_eq!(
        raptor(&["channels", "--nope"]).await,
        Run::failed(2, "unrecognized argument: --nope (see --help)")
    );
    assert_eq!(
        raptor(&["publish", "chat-1", "e"]).await,
        Run::failed(
            2,
            "required positional arguments not provided: data (see --help)"
        )
    );
    assert_eq!(
        raptor(&["history", "c", "--limit", "many"]).await,
        Run::failed(
            2,
            "error parsing option '--limit' with value 'many': invalid digit found in string (see --help)"
        )
    );
    assert_eq!(
        raptor(&["channels", "--url", "127.0.0.1:6001"]).await,
        Run::failed(
            2,
            "`127.0.0.1:6001` is not a server URL like http://127.0.0.1:6001: the scheme must be http or https"
        )
    );
    assert_eq!(
        raptor(&["channels", "--config", "/nonexistent/raptor.toml"]).await,
        Run::failed(
            2,
            "cannot read config file /nonexistent/raptor.toml: No such file or directory (os error 2)"
        )
    );

    // Unreachable: exit 1.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dead = format!("http://127.0.0.1:{port}");
    assert_eq!(
        raptor(&["channels", "--url", &dead]).await,
        Run::failed(
            1,
            &format!("cannot reach {dead}: connection refused (os error 111)")
        )
    );
    assert_eq!(
        raptor(&["stats", "--metrics-url", &dead]).await,
        Run::failed(
            1,
            &format!("cannot reach {dead}: connection refused (os error 111)")
        )
    );

    // A wrong secret or key: the server's 401 and its reason. Neither secret is printed
    // (`raptor_env` checks every output).
    let s = Server::start();
    let u = url(&s);
    for args in [
        vec!["channels", "--url", &u, "--secret", "wrong-secret"],
        vec![
            "publish",
            "c",
            "e",
            "d",
            "--url",
            &u,
            "--secret",
            "wrong-secret",
        ],
    ] {
        let r = raptor(&args).await;
        assert_eq!((r.code, r.out.as_str()), (Some(1), ""), "{r:?}");
        assert!(
            r.err.ends_with(": 401 Unauthorized: invalid signature\n")
                && r.err.lines().count() == 1,
            "{r:?}"
        );
        assert!(!r.err.contains("wrong-secret"), "{r:?}");
    }
    assert_eq!(
        raptor(&[
            "channels",
            "--url",
            &u,
            "--app-id",
            "1",
            "--key",
            "other-key",
            "--secret",
            "s"
        ])
        .await,
        Run::failed(
            1,
            "GET /apps/1/channels: 401 Unauthorized: auth_key does not match the app"
        )
    );
    // A key the defaults (or the file) do not have needs its secret and app id given.
    assert_eq!(
        raptor(&["channels", "--url", &u, "--key", "other-key"]).await,
        Run::failed(
            2,
            "no secret for the app with key `other-key`: it is not in the embedded defaults; give --secret or set RAPTOR_APP_SECRET"
        )
    );
    assert_eq!(
        raptor(&["channels", "--url", &u, "--key", "other-key", "--secret", "s"]).await,
        Run::failed(
            2,
            "no id for the app with key `other-key`: it is not in the embedded defaults; give --app-id or set RAPTOR_APP_ID"
        )
    );
    assert_eq!(
        raptor(&["channels", "--url", &u, "--app-id", "9", "--key", "k", "--secret", "s"]).await,
        Run::failed(1, "GET /apps/9/channels: 404 Not Found: unknown app `9`")
    );
}

#[tokio::test]
async fn settings_come_from_flags_the_environment_or_a_config_file() {
    let app = r#"
[[apps]]
id = "7"
key = "key-7"
secret = "s3cret-of-app-7"
"#;
    let s = Server::start_with(app);
    let (ws, _) = tokio_tungstenite::connect_async(s.url("/app/key-7?protocol=7"))
        .await
        .unwrap();
    let mut c = Client::established(ws).await;
    c.subscribe("room").await;
    let want = Run::ok("CHANNEL  SUBSCRIPTIONS\nroom     1\n");

    // The file's bind and first app.
    let file = TempFile::new(
        "cli.toml",
        &format!("bind = \"127.0.0.1:{}\"\n{app}", s.port),
    );
    assert_eq!(raptor(&["channels", "--config", file.path()]).await, want);
    assert_eq!(
        raptor_env(&["channels"], &[("RAPTOR_CONFIG", file.path())]).await,
        want
    );
    // The environment alone.
    let u = url(&s);
    let env = [
        ("RAPTOR_URL", u.as_str()),
        ("RAPTOR_APP_ID", "7"),
        ("RAPTOR_APP_KEY", "key-7"),
        ("RAPTOR_APP_SECRET", "s3cret-of-app-7"),
    ];
    assert_eq!(raptor_env(&["channels"], &env).await, want);
    // A flag wins over the environment: this secret is wrong.
    let r = raptor_env(&["channels", "--secret", "not-it"], &env).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    // The embedded defaults are app 1: refused by this server, which has only app 7.
    assert_eq!(
        raptor(&["channels", "--url", &u]).await,
        Run::failed(1, "GET /apps/1/channels: 404 Not Found: unknown app `1`")
    );
}

#[tokio::test]
async fn config_default_prints_a_file_that_config_check_accepts() {
    let printed = raptor(&["config", "default"]).await;
    assert_eq!((printed.code, printed.err.as_str()), (Some(0), ""));
    assert!(
        printed.out.starts_with("## Raptor's configuration file"),
        "{}",
        printed.out
    );
    assert!(
        printed
            .out
            .lines()
            .all(|l| l.is_empty() || l.starts_with('#')),
        "{}",
        printed.out
    );
    for line in [
        "# bind = \"127.0.0.1:6001\"\n",
        "# [limits]\n# max_ws_message_bytes = 16384\n",
        "# [metrics]\n# bind = \"127.0.0.1:9601\"\n",
        "# [[apps.history]]  # example\n# channels = \"chat-*\"  # required\n# size = 100\n",
    ] {
        assert!(
            printed.out.contains(line),
            "no {line:?} in\n{}",
            printed.out
        );
    }
    let file = TempFile::new("default.toml", &printed.out);
    assert_eq!(
        raptor(&["config", "check", file.path()]).await,
        Run::ok(&format!("{}: ok\n", file.path()))
    );
}

#[tokio::test]
async fn a_config_with_tls_is_reached_over_verified_https() {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = TempFile::new("cert.pem", &made.cert.pem());
    let key = TempFile::new("key.pem", &made.signing_key.serialize_pem());
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\nonly = true\n",
        cert.path(),
        key.path()
    );
    let s = Server::start_with(&tls);
    let cli = TempFile::new(
        "tls.toml",
        &format!("bind = \"127.0.0.1:{}\"\n{tls}", s.port),
    );
    // Trusted through SSL_CERT_FILE, as a private CA would be.
    assert_eq!(
        raptor_env(
            &["channels", "--config", cli.path()],
            &[("SSL_CERT_FILE", cert.path())]
        )
        .await,
        Run::ok("CHANNEL  SUBSCRIPTIONS\n")
    );
    // Another certificate as the only root: refused, in one line.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let other = TempFile::new("other.pem", &other.cert.pem());
    let r = raptor_env(
        &["channels", "--config", cli.path()],
        &[("SSL_CERT_FILE", other.path())],
    )
    .await;
    assert_eq!(
        (r.code, r.out.as_str(), r.err.lines().count()),
        (Some(1), "", 1),
        "{r:?}"
    );
    let want = format!("raptor: cannot reach https://127.0.0.1:{}: ", s.port);
    assert!(r.err.starts_with(&want), "{r:?}");
}

#[tokio::test]
async fn token_create_inspect_and_revoke() {
    let s = Server::start();
    let u = url(&s);
    let made = raptor(&[
        "token",
        "create",
        "--url",
        &u,
        "--user",
        "ann",
        "--read",
        "news, chat-*",
        "--uses",
        "1",
        "--jti",
        "tok-1",
        "--json",
    ])
    .await;
    assert_eq!((made.code, made.err.as_str()), (Some(0), ""), "{made:?}");
    let made = made.json();
    assert_eq!(made["jti"], "tok-1");
    let now = raptor_engine::token::now_secs();
    let exp = made["exp"].as_u64().unwrap();
    assert!((now + 3598..=now + 3601).contains(&exp), "{exp}");
    let t = made["token"].as_str().unwrap().to_string();
    // Without --json: the token alone.
    let plain = raptor(&["token", "create", "--url", &u, "--user", "bob"]).await;
    assert_eq!(plain.code, Some(0));
    assert!(
        plain.out.starts_with("eyJ") && plain.out.ends_with('\n') && plain.out.lines().count() == 1
    );

    let seen = raptor(&["token", "inspect", "--url", &u, &t]).await;
    assert_eq!(
        seen,
        Run::ok(&format!(
            "valid\nCLAIM  VALUE\nsub    ann\nread   news,chat-*\nwrite  -\nexp    {exp}\njti    tok-1\nuses   1\n"
        ))
    );
    let seen = raptor(&["token", "inspect", "--url", &u, "--json", &t]).await;
    assert_eq!(
        seen.json(),
        json!({"sub": "ann", "read": ["news", "chat-*"], "exp": exp, "iat": made["exp"].as_u64().unwrap() - 3600, "jti": "tok-1", "uses": 1})
    );
    let forged = raptor(&[
        "token",
        "inspect",
        "--url",
        &u,
        "--secret",
        "other-secret",
        &t,
    ])
    .await;
    assert_eq!(
        forged,
        Run::failed(1, "token refused: invalid token signature")
    );

    // The token signs a client in; revoking it closes the session with 4009.
    let mut c = Client::connect(&s).await;
    c.send(json!({"event": "pusher:signin", "data": {"auth": t, "user_data": "{\"id\":\"ann\"}"}}))
        .await;
    assert_eq!(c.recv().await["event"], "pusher:signin_success");
    let r = raptor(&["token", "revoke", "--url", &u, "--jti", "tok-1"]).await;
    assert_eq!(r, Run::ok("revoked token tok-1\n"));
    assert_eq!(c.expect_close().await, 4009);
    let r = raptor(&["token", "revoke", "--url", &u, "--user", "ann", "--json"]).await;
    assert_eq!(r, Run::ok("{}\n"));
    let r = raptor(&["token", "revoke", "--url", &u]).await;
    assert_eq!(r, Run::failed(2, "give --jti or --user (one of them)"));
}

#[tokio::test]
async fn a_secret_given_with_an_equals_sign_is_not_echoed() {
    // argh takes `--secret VALUE` only; the refused `--secret=VALUE` is quoted masked.
    let r = raptor(&["channels", "--secret=s3cret-of-app-7"]).await;
    assert_eq!(
        r,
        Run::failed(2, "unrecognized argument: --secret=(hidden) (see --help)")
    );
}
