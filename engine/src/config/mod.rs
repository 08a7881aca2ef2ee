//! Server configuration: embedded defaults, an optional TOML file, environment variables and
//! command-line flags, in that order of precedence (flags win).
//!
//! A bad configuration is refused at start with a message that names the field.

mod admin;
mod chunks;
mod cluster;
mod fallback;
mod history;
mod limits;
mod metrics;

pub use admin::AdminConfig;
pub use cluster::ClusterSettings;
pub use fallback::HttpFallback;
pub use history::{HistoryRule, HistorySettings};
pub use limits::Limits;
pub use metrics::MetricsConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

/// Errors while loading configuration. All are operator errors: the server does not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// TOML syntax or a field of the wrong type or name; toml's own multi-line message
    /// names the field and points at it.
    #[error("invalid config file {path}:\n{message}")]
    Parse { path: String, message: String },
    /// A value that parses but makes no sense.
    #[error("invalid config: field `{field}`: {message}")]
    Invalid { field: String, message: String },
}

/// Reads a secret kept in its own file (`<field>_file`) into `value`, trimmed; an error names
/// the field. Both set is an error: which one wins would be a guess.
fn read_secret_file(
    value: &mut Option<Secret>,
    file: &mut Option<std::path::PathBuf>,
    field: &str,
) -> Result<(), ConfigError> {
    let Some(path) = file.take() else {
        return Ok(());
    };
    let file_field = format!("{field}_file");
    if value.is_some() {
        return Err(invalid(
            &file_field,
            format!("set {field} or {file_field}, not both"),
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| invalid(&file_field, format!("cannot read {}: {e}", path.display())))?;
    *value = Some(Secret::new(text.trim()));
    Ok(())
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The whole server configuration.
///
/// `Serialize` (here and on every table) is for `raptor config default`, which prints the
/// defaults from these types so that the printed file cannot drift from them
/// (`cli::config_default`). `Secret` has no `Serialize`, so tokens, passwords and cluster
/// secrets are skipped; an app's `secret` is a plain string, so never serialize a loaded
/// configuration for output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP/WebSocket listener. Default `127.0.0.1:6001`.
    #[serde(default = "default_bind")]
    pub bind: SocketAddr,
    /// Number of shards (executors). 0 means one per available core.
    #[serde(default)]
    pub shards: usize,
    /// Pin each shard to its own core (when there are enough cores). Default on: one server
    /// per machine. Turn off when several server processes share the cores (containers
    /// without dedicated CPUs, several nodes on one test machine): pinned, every process's
    /// shard 0 competes for core 0 while the others idle.
    #[serde(default = "default_true")]
    pub pin_shards: bool,
    /// Bounds and timeouts; see docs/limits.md.
    #[serde(default)]
    pub limits: Limits,
    /// Applications served. Default: one app `1` / `app-key` / `app-secret`.
    #[serde(default = "default_apps")]
    pub apps: Vec<AppConfig>,
    /// Switches for test tooling only; all off by default.
    #[serde(default)]
    pub testing: Testing,
    /// Run as one node of a cluster (docs/cluster.md). Absent: a single node.
    #[serde(default)]
    pub cluster: Option<ClusterSettings>,
    /// TLS (`wss://`, `https://`) on the same port as plain connections. Absent: plain only.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// How webhooks reach `https://` URLs (the trusted roots).
    #[serde(default)]
    pub webhooks: WebhookSettings,
    /// Who may read `/metrics` and `/stats`, and the metrics listener (docs/security.md).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The dashboard and the admin API (docs/dashboard.md).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Bounds of channel history and its data directory (docs/history.md).
    #[serde(default)]
    pub history: HistorySettings,
}

/// A credential from the configuration. `Debug` never shows it, so no log line or panic
/// message can carry it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The credential itself: for comparing or signing, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// The `[tls]` table: a certificate and key in PEM files, read at start and again by every
/// reload (a renewed certificate needs no restart; docs/operations.md, "Reloading").
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
    /// Refuse plain connections: WebSocket gets `pusher:error` and close 4000, HTTP gets 403.
    /// Default false (both are served on the one port).
    #[serde(default)]
    pub only: bool,
}

/// `[webhooks]`: settings shared by every app's webhooks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// PEM file of the CA certificates trusted for `https://` webhook URLs, instead of the
    /// system's roots (e.g. a private CA of the app's network).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// Switches for test tooling. **Never enable these in production.**
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Testing {
    /// Serve `GET /echo` as a WebSocket echo endpoint, for the Autobahn conformance suite
    /// (tests/conformance/). It runs the same WebSocket stack as `/app/{key}` but accepts
    /// messages up to 64 MiB and echoes them, so any client could make the server buffer
    /// that much per connection. Default false (`/echo` is then a 404); also `--ws-echo`.
    pub ws_echo: bool,
}

/// One application (tenant): its credentials and options.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// App id as used in `/apps/{id}/...`. The PyPI `pusher` SDK requires it numeric, so the
    /// default is `1`; any `[A-Za-z0-9_-]{1,64}` is accepted. A TOML integer is accepted too.
    #[serde(deserialize_with = "string_or_int")]
    pub id: String,
    /// Public key, used in `/app/{key}` and `auth_key`.
    pub key: String,
    /// Secret for HMAC signatures. Never logged.
    pub secret: String,
    /// Clients may send `client-*` events on private and presence channels. Default true.
    #[serde(default = "yes")]
    pub enable_client_events: bool,
    /// Client events one connection may send per second; beyond it `pusher:error` 4301.
    #[serde(default = "default_client_event_rate")]
    pub client_events_per_second: u32,
    /// `pusher:signin` is accepted. Default true.
    #[serde(default = "yes")]
    pub enable_user_authentication: bool,
    /// Send `pusher_internal:subscription_count` to subscribers (and the webhook). Default off,
    /// like Pusher.
    #[serde(default)]
    pub enable_subscription_count: bool,
    /// Members one presence channel may hold (Pusher: 100; at most 100,000).
    #[serde(default = "default_presence_members")]
    pub max_presence_members: usize,
    /// Largest presence `user_info`, in bytes (serialized JSON).
    #[serde(default = "default_user_info_bytes")]
    pub max_presence_user_info_bytes: usize,
    /// "Authorized connections": when set, a connection that neither signs in nor joins a
    /// private or presence channel within this many seconds is closed with 4009.
    #[serde(default)]
    pub authorized_connections_timeout_secs: Option<u64>,
    /// WebSocket connections this app may hold (node-wide); beyond it: close 4100.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Occupied channels this app may have; beyond it a subscription that would open a new
    /// channel gets `pusher:subscription_error` 403.
    #[serde(default)]
    pub max_channels: Option<usize>,
    /// HTTP API requests per second (node-wide, split evenly over shards); beyond it: 429.
    #[serde(default = "default_api_rate")]
    pub max_api_requests_per_second: u32,
    /// Browser origins allowed to connect (exact `scheme://host[:port]`); empty allows all.
    /// Connections without an `Origin` header (servers, mobile SDKs) are always allowed.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Webhook endpoints; empty means none.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Which channels keep history (docs/history.md); empty means none do.
    #[serde(default)]
    pub history: Vec<HistoryRule>,
    /// Every subscription (public ones included) needs a read grant of an access token,
    /// and client events a write grant (docs/tokens.md). Default false.
    #[serde(default)]
    pub require_tokens: bool,
    /// Largest event, in bytes of `data`, that travels in chunks (docs/protocol.md, "Large
    /// events in chunks"): an HTTP publish over `limits.max_event_data_bytes` up to this is
    /// split into `chunked-{event}` events, and `client-chunked-*` client events are checked
    /// as sequences up to this whole. Default 0: off (today's 413; client chunks relayed
    /// unchecked like any client event). A whole event is queued to each subscriber at once,
    /// so `limits.outbox_max_bytes` must exceed it (about 2x, for the escaping).
    #[serde(default)]
    pub max_chunked_event_bytes: usize,
    /// Chunks of `client-chunked-*` events one connection may send per second, an allowance
    /// apart from `client_events_per_second` (which each sequence's first chunk counts
    /// against once); beyond it `pusher:error` 4316. Default 200 (~2 MB/s of 10 KB chunks).
    #[serde(default = "default_chunk_rate")]
    pub client_chunks_per_second: u32,
}

/// One webhook endpoint of an app.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL receiving `POST {"time_ms":..,"events":[..]}` (https is
    /// verified against the system's roots, or `[webhooks] ca_file`).
    pub url: String,
    /// Event names to send (`channel_occupied`, `channel_vacated`, `member_added`,
    /// `member_removed`, `client_event`, `cache_miss`, `subscription_count`); all when absent.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Only events on channels whose name starts with this prefix.
    #[serde(default)]
    pub channel_prefix: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_client_event_rate() -> u32 {
    10
}
fn default_chunk_rate() -> u32 {
    1000
}
fn default_presence_members() -> usize {
    100
}
fn default_user_info_bytes() -> usize {
    1024
}
fn default_api_rate() -> u32 {
    10_000
}

impl AppConfig {
    /// An app with the given credentials and every option at its default.
    pub fn new(id: &str, key: &str, secret: &str) -> AppConfig {
        AppConfig {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            enable_client_events: true,
            client_events_per_second: default_client_event_rate(),
            enable_user_authentication: true,
            enable_subscription_count: false,
            max_presence_members: default_presence_members(),
            max_presence_user_info_bytes: default_user_info_bytes(),
            authorized_connections_timeout_secs: None,
            max_connections: None,
            max_channels: None,
            max_api_requests_per_second: default_api_rate(),
            allowed_origins: Vec::new(),
            webhooks: Vec::new(),
            history: Vec::new(),
            require_tokens: false,
            max_chunked_event_bytes: 0,
            client_chunks_per_second: default_chunk_rate(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_bind() -> SocketAddr {
    "127.0.0.1:6001".parse().expect("valid literal")
}

fn default_apps() -> Vec<AppConfig> {
    vec![AppConfig::new("1", "app-key", "app-secret")]
}

fn string_or_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        I(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s,
        Id::I(i) => i.to_string(),
    })
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: default_bind(),
            shards: 0,
            pin_shards: true,
            limits: Limits::default(),
            apps: default_apps(),
            testing: Testing::default(),
            history: HistorySettings::default(),
            cluster: None,
            tls: None,
            webhooks: WebhookSettings::default(),
            metrics: MetricsConfig::default(),
            admin: AdminConfig::default(),
        }
    }
}

/// Values that override the file, from flags or the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<String>,
    pub shards: Option<String>,
    /// `--no-pin` or `RAPTOR_PIN_SHARDS=0`: turns `pin_shards` off (it can only turn it off).
    pub no_pin: bool,
    /// `--ws-echo`: turns `testing.ws_echo` on (a flag can only turn it on).
    pub ws_echo: bool,
    /// `--node-id`, `--gossip`, `--seeds` (comma-separated), `--peer`, `--cluster-id`.
    pub node_id: Option<String>,
    pub gossip: Option<String>,
    pub seeds: Option<String>,
    pub peer: Option<String>,
    pub cluster_id: Option<String>,
    /// `RAPTOR_CLUSTER_SECRET` (comma-separated; no flag: a command line is visible to every
    /// local user). Replaces `cluster.secrets` and `cluster.secret_file`.
    pub cluster_secret: Option<Secret>,
    /// `--cluster-secret-file` / `RAPTOR_CLUSTER_SECRET_FILE`. Replaces both too, and wins
    /// over `RAPTOR_CLUSTER_SECRET`.
    pub cluster_secret_file: Option<String>,
    /// `--metrics-bind` / `RAPTOR_METRICS_BIND`: an address or `off`.
    pub metrics_bind: Option<String>,
    /// `RAPTOR_METRICS_TOKEN` (no flag: a command line is visible to every local user).
    pub metrics_token: Option<Secret>,
    /// `RAPTOR_METRICS_TOKEN_FILE`.
    pub metrics_token_file: Option<String>,
    /// `RAPTOR_ADMIN_PASSWORD`.
    pub admin_password: Option<Secret>,
}

impl Config {
    /// Parses a TOML document. `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Loads the file if one is given, else the embedded defaults, applies overrides, validates.
    pub fn load(file: Option<&Path>, over: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                Config::from_toml(&text, &path.display().to_string())?
            }
            None => Config::default(),
        };
        if let Some(b) = &over.bind {
            cfg.bind = b.parse().map_err(|_| {
                invalid(
                    "bind",
                    format!("`{b}` is not an address like 127.0.0.1:6001"),
                )
            })?;
        }
        if let Some(s) = &over.shards {
            cfg.shards = s
                .parse()
                .map_err(|_| invalid("shards", format!("`{s}` is not a number")))?;
        }
        cfg.testing.ws_echo |= over.ws_echo;
        cfg.pin_shards &= !over.no_pin;
        cfg.apply_cluster_overrides(over)?;
        cfg.apply_secret_overrides(over);
        cfg.apply_metrics_overrides(over)?;
        cfg.read_metrics_token_file()?;
        cfg.apply_admin_overrides(over);
        cfg.read_admin_password_file()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks cross-field rules that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.shards > 256 {
            return Err(invalid("shards", "at most 256"));
        }
        if self.apps.is_empty() {
            return Err(invalid("apps", "at least one app is required"));
        }
        if let Some(c) = &self.cluster {
            if !(1..=4000).contains(&c.query_timeout_ms) {
                return Err(invalid("cluster.query_timeout_ms", "must be 1..=4000"));
            }
            c.load_secrets()?;
        }
        self.validate_metrics()?;
        self.validate_admin()?;
        self.history.validate()?;
        self.limits.http_fallback.validate()?;
        if self.cluster.is_some() && self.history.data_dir.is_some() {
            return Err(invalid(
                "history.data_dir",
                "applies to a single node; in a cluster history survives a node's failure through the successor's copy (docs/history.md)",
            ));
        }
        let mut ids = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for (i, app) in self.apps.iter().enumerate() {
            for (j, rule) in app.history.iter().enumerate() {
                let at = format!("apps[{i}].history[{j}]");
                rule.validate(&at)?;
                if rule.ttl_secs > self.history.position_ttl_secs {
                    return Err(invalid(
                        format!("{at}.ttl_secs"),
                        "at most history.position_ttl_secs (a position outlives its events)",
                    ));
                }
            }
            let ok_id = !app.id.is_empty()
                && app.id.len() <= 64
                && app
                    .id
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
            if !ok_id {
                return Err(invalid(
                    format!("apps[{i}].id"),
                    "must match [A-Za-z0-9_-]{1,64}",
                ));
            }
            let ok_key = !app.key.is_empty()
                && app.key.len() <= 128
                && app
                    .key
                    .bytes()
                    .all(|c| c.is_ascii_graphic() && c != b':' && c != b'/' && c != b'?');
            if !ok_key {
                return Err(invalid(
                    format!("apps[{i}].key"),
                    "must be 1-128 printable characters without ':', '/' or '?'",
                ));
            }
            if app.secret.is_empty() {
                return Err(invalid(format!("apps[{i}].secret"), "must not be empty"));
            }
            if !ids.insert(&app.id) {
                return Err(invalid(
                    format!("apps[{i}].id"),
                    format!("duplicate id `{}`", app.id),
                ));
            }
            if app.max_presence_members == 0 || app.max_presence_members > 100_000 {
                return Err(invalid(
                    format!("apps[{i}].max_presence_members"),
                    "must be 1..=100000",
                ));
            }
            if app.client_events_per_second == 0 {
                return Err(invalid(
                    format!("apps[{i}].client_events_per_second"),
                    "must be greater than 0",
                ));
            }
            self.validate_chunks(i, app)?;
            if app.authorized_connections_timeout_secs == Some(0) {
                return Err(invalid(
                    format!("apps[{i}].authorized_connections_timeout_secs"),
                    "must be greater than 0",
                ));
            }
            const EVENTS: [&str; 8] = [
                "channel_occupied",
                "channel_vacated",
                "member_added",
                "member_removed",
                "client_event",
                "cache_miss",
                "subscription_count",
                "member_updated",
            ];
            for (j, w) in app.webhooks.iter().enumerate() {
                if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                    return Err(invalid(
                        format!("apps[{i}].webhooks[{j}].url"),
                        "must be an http:// or https:// URL",
                    ));
                }
                for t in w.event_types.iter().flatten() {
                    if !EVENTS.contains(&t.as_str()) {
                        return Err(invalid(
                            format!("apps[{i}].webhooks[{j}].event_types"),
                            format!("unknown event type `{t}`"),
                        ));
                    }
                }
            }
            if !keys.insert(&app.key) {
                return Err(invalid(
                    format!("apps[{i}].key"),
                    format!("duplicate key `{}`", app.key),
                ));
            }
        }
        let l = &self.limits;
        let positive = [
            ("limits.max_ws_message_bytes", l.max_ws_message_bytes),
            ("limits.max_event_data_bytes", l.max_event_data_bytes),
            ("limits.max_http_header_bytes", l.max_http_header_bytes),
            ("limits.max_http_body_bytes", l.max_http_body_bytes),
            (
                "limits.handshake_timeout_secs",
                l.handshake_timeout_secs as usize,
            ),
            (
                "limits.activity_timeout_secs",
                l.activity_timeout_secs as usize,
            ),
            ("limits.pong_timeout_secs", l.pong_timeout_secs as usize),
            ("limits.outbox_max_frames", l.outbox_max_frames),
            ("limits.outbox_max_bytes", l.outbox_max_bytes),
            (
                "limits.max_subscriptions_per_connection",
                l.max_subscriptions_per_connection,
            ),
            ("limits.max_channel_name_bytes", l.max_channel_name_bytes),
            ("limits.max_event_name_bytes", l.max_event_name_bytes),
            (
                "limits.max_channels_per_publish",
                l.max_channels_per_publish,
            ),
            ("limits.max_batch_events", l.max_batch_events),
            ("limits.mesh_queue_capacity", l.mesh_queue_capacity),
            ("limits.max_connections", l.max_connections),
            (
                "limits.max_new_connections_per_second",
                l.max_new_connections_per_second as usize,
            ),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(invalid(field, "must be greater than 0"));
            }
        }
        if l.max_ws_message_bytes > 64 * 1024 * 1024 {
            return Err(invalid("limits.max_ws_message_bytes", "at most 64 MiB"));
        }
        Ok(())
    }

    /// Shards to run: the configured number, or one per available core.
    pub fn effective_shards(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_app() {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:6001");
        assert_eq!(c.apps[0].id, "1");
        assert_eq!(c.apps[0].key, "app-key");
        assert_eq!(c.apps[0].secret, "app-secret");
    }

    #[test]
    fn file_with_integer_id_and_limits() {
        let c = Config::from_toml(
            "bind = \"127.0.0.1:7000\"\nshards = 3\n[limits]\npong_timeout_secs = 5\n[[apps]]\nid = 42\nkey = \"k\"\nsecret = \"s\"\n",
            "t",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.apps[0].id, "42");
        assert_eq!(c.shards, 3);
        assert_eq!(c.limits.pong_timeout_secs, 5);
        assert_eq!(c.limits.activity_timeout_secs, 120);
    }

    #[test]
    fn history_rules_and_bounds_are_checked() {
        let app = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";
        let ok = format!("{app}[[apps.history]]\nchannels = \"chat-*\"\n");
        let c = Config::from_toml(&ok, "t").unwrap();
        c.validate().unwrap();
        assert_eq!(c.apps[0].history[0], HistoryRule::new("chat-*"));
        for (extra, field) in [
            ("channels = \"[\"", "apps[0].history[0].channels"),
            ("channels = \"*\"\nsize = 0", "apps[0].history[0].size"),
            (
                "channels = \"*\"\nttl_secs = 0",
                "apps[0].history[0].ttl_secs",
            ),
            (
                "channels = \"*\"\nrecover_max = 20000",
                "apps[0].history[0].recover_max",
            ),
        ] {
            let c = Config::from_toml(&format!("{app}[[apps.history]]\n{extra}\n"), "t").unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        let long = format!("[history]\nposition_ttl_secs = 60\n{app}[[apps.history]]\nchannels = \"*\"\nttl_secs = 61\n");
        let e = Config::from_toml(&long, "t")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("ttl_secs"), "{e}");
        let e = Config::from_toml("[history]\nflush_ms = 0\n", "t")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("history.flush_ms"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::from_toml("bnd = 1", "t").unwrap_err().to_string();
        assert!(e.contains("bnd"), "{e}");
        let e = Config::from_toml("[[apps]]\nid = \"1\"\nkey = \"k\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("secret"), "{e}");
        let c = Config::from_toml("[[apps]]\nid = \"a b\"\nkey = \"k\"\nsecret = \"s\"\n", "t")
            .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("apps[0].id"), "{e}");
        let e = Config::load(
            None,
            &Overrides {
                bind: Some("nope".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`bind`"), "{e}");
        let e = Config::from_toml("[limits]\noutbox_max_bytes = \"x\"", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("outbox_max_bytes"), "{e}");
    }

    #[test]
    fn testing_switches_default_off() {
        assert!(!Config::default().testing.ws_echo);
        let c = Config::from_toml("[testing]\nws_echo = true\n", "t").unwrap();
        assert!(c.testing.ws_echo);
        let e = Config::from_toml("[testing]\necho = true\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("echo"), "{e}");
        let over = Overrides {
            ws_echo: true,
            ..Overrides::default()
        };
        assert!(Config::load(None, &over).unwrap().testing.ws_echo);
    }

    #[test]
    fn shards_are_pinned_unless_turned_off() {
        assert!(Config::default().pin_shards);
        assert!(
            !Config::from_toml("pin_shards = false\n", "t")
                .unwrap()
                .pin_shards
        );
        let over = Overrides {
            no_pin: true,
            ..Overrides::default()
        };
        assert!(!Config::load(None, &over).unwrap().pin_shards);
        assert!(
            Config::load(None, &Overrides::default())
                .unwrap()
                .pin_shards
        );
    }
}
