//! `raptor config default`: a configuration file with every setting at its default,
//! commented out, for an operator to edit.
//!
//! The values are not written here: each table's keys and defaults come from serializing
//! its configuration type as the server would fill it in (`serde` defaults included), so
//! the file cannot drift from the server. What is written here is what a type cannot say:
//! a sentence per table, the example values of settings that are unset by default, and
//! those of settings a table requires. A test checks that every field of every
//! configuration type is in the file, so a new setting cannot be left out either.

use crate::config::{
    AdminConfig, AppConfig, ClusterSettings, Config, HistoryRule, HistorySettings, HttpFallback,
    Limits, MetricsConfig, Testing, TlsConfig, WebhookConfig, WebhookSettings,
};
use serde::{de::DeserializeOwned, Serialize};

/// One table of the file.
struct Block {
    /// The table's header as written (`[limits]`, `[[apps]]`); empty for the top level.
    header: &'static str,
    /// What the table is for and where it is documented, one `##` line each.
    about: &'static [&'static str],
    /// Settings the table must have when it is present, with example values.
    required: &'static str,
    /// Settings unset by default, with example values.
    examples: &'static str,
    /// Keys the type serializes that are shown elsewhere (as their own tables).
    skip: &'static [&'static str],
    /// Absent from the defaults: the whole table is an example.
    optional: bool,
    /// The table's keys and values, `key = value` lines: its type made from `required`
    /// (all else at its default), serialized.
    settings: fn(&str) -> Result<String, String>,
}

/// Serializes `T` made from `required` and its defaults.
fn settings_of<T: DeserializeOwned + Serialize>(required: &str) -> Result<String, String> {
    let value: T = toml::from_str(required).map_err(|e| e.to_string())?;
    toml::to_string(&value).map_err(|e| e.to_string())
}

/// The top level's plain keys: what the whole default configuration serializes to before
/// its first table.
fn top_level(_: &str) -> Result<String, String> {
    let all = settings_of::<Config>("")?;
    Ok(all
        .lines()
        .take_while(|l| !l.starts_with('['))
        .fold(String::new(), |mut out, l| {
            out.push_str(l);
            out.push('\n');
            out
        }))
}

const BLOCKS: &[Block] = &[
    Block {
        header: "",
        about: &[
            "The public listener (WebSocket, the HTTP API, /health) and the shards.",
            "Also RAPTOR_BIND, RAPTOR_SHARDS, RAPTOR_PIN_SHARDS=0 or raptor serve's flags.",
        ],
        required: "",
        examples: "",
        skip: &[],
        optional: false,
        settings: top_level,
    },
    Block {
        header: "[limits]",
        about: &["Every bound and timeout; what happens at each: docs/limits.md."],
        required: "",
        examples: "",
        skip: &[],
        optional: false,
        settings: settings_of::<Limits>,
    },
    Block {
        header: "[limits.http_fallback]",
        about: &[
            "The HTTP transports beside the WebSocket: pusher-js's xhr_streaming and",
            "xhr_polling, and Server-Sent Events (docs/protocol.md, \"HTTP transports\").",
        ],
        required: "",
        examples: "",
        skip: &[],
        optional: false,
        settings: settings_of::<HttpFallback>,
    },
    Block {
        header: "[tls]",
        about: &[
            "wss:// and https:// on the public port, next to plain connections",
            "(docs/operations.md, \"TLS\"). Absent: plain only.",
        ],
        required: "cert = \"/etc/raptor/tls/fullchain.pem\"\nkey = \"/etc/raptor/tls/privkey.pem\"\n",
        examples: "",
        skip: &[],
        optional: true,
        settings: settings_of::<TlsConfig>,
    },
    Block {
        header: "[metrics]",
        about: &[
            "The metrics listener (/metrics, /stats, /health; \"off\" for none) and the bearer",
            "token that opens them on either port: token or token_file, or",
            "RAPTOR_METRICS_TOKEN (docs/security.md).",
        ],
        required: "",
        examples: "token = \"<openssl rand -hex 32>\"\ntoken_file = \"/etc/raptor/metrics-token\"\n",
        skip: &[],
        optional: false,
        settings: settings_of::<MetricsConfig>,
    },
    Block {
        header: "[admin]",
        about: &[
            "The dashboard and the admin API (docs/dashboard.md). Without a password (or",
            "password_file, or RAPTOR_ADMIN_PASSWORD) one is made at start and logged.",
        ],
        required: "",
        examples: "password = \"<at least 12 characters>\"\npassword_file = \"/etc/raptor/admin-password\"\n",
        skip: &[],
        optional: false,
        settings: settings_of::<AdminConfig>,
    },
    Block {
        header: "[webhooks]",
        about: &["How webhooks reach https:// URLs: the CA file instead of the system's roots."],
        required: "",
        examples: "ca_file = \"/etc/raptor/webhook-ca.pem\"\n",
        skip: &[],
        optional: false,
        settings: settings_of::<WebhookSettings>,
    },
    Block {
        header: "[history]",
        about: &[
            "Bounds of channel history, and where it survives a restart (docs/history.md).",
            "Which channels keep history: [[apps.history]] below.",
        ],
        required: "",
        examples: "data_dir = \"/var/lib/raptor/history\"\n",
        skip: &[],
        optional: false,
        settings: settings_of::<HistorySettings>,
    },
    Block {
        header: "[cluster]",
        about: &[
            "Run as one node of a cluster (docs/cluster.md). Absent: a single node. A node",
            "needs a secret: secrets, secret_file, or RAPTOR_CLUSTER_SECRET.",
        ],
        required: "node_id = \"node-1\"\ngossip = \"10.0.0.1:7946\"\npeer = \"10.0.0.1:7947\"\n",
        examples: "seeds = [\"10.0.0.2:7946\", \"10.0.0.3:7946\"]\n\
                   secrets = [\"<openssl rand -base64 32>\"]\n\
                   secret_file = \"/etc/raptor/cluster-secrets\"\n\
                   advertise_peer = \"203.0.113.1:7947\"\n\
                   advertise_gossip = \"203.0.113.1:7946\"\n",
        skip: &[],
        optional: true,
        settings: settings_of::<ClusterSettings>,
    },
    Block {
        header: "[testing]",
        about: &["Switches for test tooling. Never in production."],
        required: "",
        examples: "",
        skip: &[],
        optional: false,
        settings: settings_of::<Testing>,
    },
    Block {
        header: "[[apps]]",
        about: &[
            "The apps (tenants), one [[apps]] table each. Without any, the server runs the",
            "built-in app 1 / app-key, whose secret is in the README: for trying it out only.",
            "Make a secret with: openssl rand -hex 32",
        ],
        required: "id = \"1\"\nkey = \"app-key\"\nsecret = \"<openssl rand -hex 32>\"\n",
        examples: "authorized_connections_timeout_secs = 30\nmax_connections = 10000\n\
                   max_channels = 10000\n",
        skip: &["webhooks", "history"],
        optional: true,
        settings: settings_of::<AppConfig>,
    },
    Block {
        header: "[[apps.webhooks]]",
        about: &["A webhook endpoint of the app above, one table each (docs/webhooks.md)."],
        required: "url = \"https://example.com/pusher/webhooks\"\n",
        examples: "event_types = [\"channel_occupied\", \"channel_vacated\"]\n\
                   channel_prefix = \"presence-\"\n",
        skip: &[],
        optional: true,
        settings: settings_of::<WebhookConfig>,
    },
    Block {
        header: "[[apps.history]]",
        about: &[
            "Channels of the app above that keep their last events, so that clients",
            "recover what they missed (docs/history.md). The first rule that matches applies.",
        ],
        required: "channels = \"chat-*\"\n",
        examples: "",
        skip: &[],
        optional: true,
        settings: settings_of::<HistoryRule>,
    },
];

const PREAMBLE: &str = "\
## Raptor's configuration file, every setting at its default (raptor config default).
## A commented-out setting is at its default: uncomment it to change it. Settings marked
## \"required\" must be set when their table is; \"example\" ones are unset by default.
## Check a file with: raptor config check FILE. SIGHUP puts a changed file in force
## without a restart (docs/operations.md, \"Reloading\").
";

/// Whether a setting shows its default, or an example value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Default,
    Required,
    Example,
}

/// One `key = value` line of a table.
struct Setting {
    line: String,
    kind: Kind,
}

/// The keys of `key = value` lines.
fn keys(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .collect()
}

/// A block's settings: its type's serialized keys (the required ones marked), then the
/// examples. An example replaces the default of its key (`seeds = []`), so that no key is
/// in the file twice.
fn settings(b: &Block) -> Vec<Setting> {
    let made = (b.settings)(b.required)
        .unwrap_or_else(|e| panic!("the {:?} block does not load: {e}", b.header));
    let required = keys(b.required);
    let examples = keys(b.examples);
    // A nested table (`[http_fallback]` in `[limits]`) is a block of its own.
    let mut out: Vec<Setting> = made
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| {
            let key = l.split_once('=')?.0.trim();
            let shown = !b.skip.contains(&key) && !examples.contains(&key);
            shown.then(|| Setting {
                line: l.to_string(),
                kind: if required.contains(&key) {
                    Kind::Required
                } else {
                    Kind::Default
                },
            })
        })
        .collect();
    out.extend(b.examples.lines().map(|l| Setting {
        line: l.trim().to_string(),
        kind: Kind::Example,
    }));
    out
}

/// The whole file.
pub fn render() -> String {
    let mut out = String::from(PREAMBLE);
    for b in BLOCKS {
        out.push('\n');
        for line in b.about {
            out.push_str(&format!("## {line}\n"));
        }
        if !b.header.is_empty() {
            let mark = if b.optional { "  # example" } else { "" };
            out.push_str(&format!("# {}{mark}\n", b.header));
        }
        for s in settings(b) {
            let mark = match s.kind {
                Kind::Default => "",
                Kind::Required => "  # required",
                Kind::Example => "  # example",
            };
            out.push_str(&format!("# {}{mark}\n", s.line));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::{self, Deserializer, Visitor};

    /// The field names of a struct, from its `Deserialize` (the derive passes them to
    /// `deserialize_struct`).
    fn fields_of<T: DeserializeOwned>() -> Vec<&'static str> {
        struct Capture<'a>(&'a mut Vec<&'static str>);
        impl<'de> Deserializer<'de> for Capture<'_> {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0.extend(fields);
                Err(de::Error::custom("captured"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
                enum identifier ignored_any
            }
        }
        let mut names = Vec::new();
        let _ = T::deserialize(Capture(&mut names));
        assert!(
            !names.is_empty(),
            "{} is not a struct",
            std::any::type_name::<T>()
        );
        names
    }

    /// The rendered lines of the block with `header`, uncommented.
    fn block_text(header: &str) -> String {
        let b = BLOCKS.iter().find(|b| b.header == header).unwrap();
        settings(b)
            .iter()
            .map(|s| format!("{}\n", s.line))
            .collect()
    }

    #[test]
    fn the_file_is_valid_and_every_field_of_every_table_is_in_it() {
        let text = render();
        let cfg = Config::from_toml(&text, "default").unwrap();
        cfg.validate().unwrap();
        for (header, fields) in [
            (
                "[limits]",
                fields_of::<Limits>()
                    .into_iter()
                    .filter(|f| *f != "http_fallback")
                    .collect(),
            ),
            ("[limits.http_fallback]", fields_of::<HttpFallback>()),
            ("[tls]", fields_of::<TlsConfig>()),
            ("[metrics]", fields_of::<MetricsConfig>()),
            ("[admin]", fields_of::<AdminConfig>()),
            ("[webhooks]", fields_of::<WebhookSettings>()),
            ("[history]", fields_of::<HistorySettings>()),
            ("[cluster]", fields_of::<ClusterSettings>()),
            ("[testing]", fields_of::<Testing>()),
            ("[[apps.webhooks]]", fields_of::<WebhookConfig>()),
            ("[[apps.history]]", fields_of::<HistoryRule>()),
        ] {
            let keys = block_text(header);
            for f in fields {
                assert!(keys.contains(&format!("{f} = ")), "{header} lacks {f}");
            }
        }
        // The app's nested tables are blocks of their own.
        let app = block_text("[[apps]]");
        for f in fields_of::<AppConfig>() {
            let own_block = format!("[[apps.{f}]]");
            assert!(
                app.contains(&format!("{f} = ")) || BLOCKS.iter().any(|b| b.header == own_block),
                "[[apps]] lacks {f}"
            );
        }
        // The top level: plain keys, or a block of their own.
        let top = block_text("");
        for f in fields_of::<Config>() {
            let table = [format!("[{f}]"), format!("[[{f}]]")];
            assert!(
                top.contains(&format!("{f} = "))
                    || BLOCKS.iter().any(|b| table.contains(&b.header.to_string())),
                "the top level lacks {f}"
            );
        }
    }

    #[test]
    fn every_line_is_a_comment_and_examples_load_into_their_tables() {
        let text = render();
        assert!(
            text.lines().all(|l| l.is_empty() || l.starts_with('#')),
            "{text}"
        );
        // Uncommented whole, each table is valid TOML: no key twice.
        for b in BLOCKS {
            let mut seen = std::collections::HashSet::new();
            for s in settings(b) {
                let key = s.line.split_once('=').unwrap().0.trim().to_string();
                assert!(seen.insert(key.clone()), "{:?} has {key} twice", b.header);
            }
        }
        for b in BLOCKS {
            let all = format!("{}{}", b.required, b.examples);
            (b.settings)(&all).unwrap_or_else(|e| panic!("{:?}: {e}", b.header));
        }
    }

    /// Uncommenting the defaults (not the examples, not the tables absent by default)
    /// gives the server's defaults back.
    #[test]
    fn the_defaults_shown_are_the_servers() {
        let mut text = String::new();
        for b in BLOCKS.iter().filter(|b| !b.optional) {
            if !b.header.is_empty() {
                text.push_str(&format!("{}\n", b.header));
            }
            for s in settings(b).iter().filter(|s| s.kind == Kind::Default) {
                text.push_str(&format!("{}\n", s.line));
            }
        }
        let cfg = Config::from_toml(&text, "uncommented").unwrap();
        let def = Config::default();
        assert_eq!(cfg.bind, def.bind);
        assert_eq!(cfg.shards, def.shards);
        assert_eq!(cfg.pin_shards, def.pin_shards);
        assert_eq!(cfg.limits, def.limits);
        assert_eq!(cfg.metrics, def.metrics);
        assert_eq!(cfg.admin, def.admin);
        assert_eq!(cfg.webhooks, def.webhooks);
        assert_eq!(cfg.history, def.history);
        assert_eq!(cfg.testing, def.testing);
        assert!(text.contains("max_ws_message_bytes = 16384\n"), "{text}");
        assert!(text.contains("bind = \"127.0.0.1:9601\"\n"), "{text}");
        // An example app's required and default settings load as that app with defaults.
        let b = BLOCKS.iter().find(|b| b.header == "[[apps]]").unwrap();
        let app: String = settings(b)
            .iter()
            .filter(|s| s.kind != Kind::Example)
            .map(|s| format!("{}\n", s.line))
            .collect();
        let app: AppConfig = toml::from_str(&app).unwrap();
        assert_eq!(
            app,
            AppConfig::new("1", "app-key", "<openssl rand -hex 32>")
        );
    }
}
