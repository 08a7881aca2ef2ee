//! `[metrics]`: the operator surface's listener and bearer token, with their flags,
//! environment variables and checks.

use super::{invalid, Config, ConfigError, Overrides, Secret};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The `[metrics]` table: the operator surface (`/metrics`, `/stats`, and any admin endpoint
/// added later) and who may read it. Two ways in, no other: the bearer token, or the metrics
/// listener when no token is set. A loopback peer on the public port proves nothing (a
/// reverse proxy on the same host makes every client look local), and an app's signature
/// speaks for one tenant, not for node-wide figures.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The metrics listener: a second address serving only `/metrics`, `/stats` and `/health`
    /// (never WebSocket or the app API), on shard 0, plain HTTP. Default `127.0.0.1:9601`
    /// (sockudo's); `"off"` for none. Without `token` it answers whoever reaches it: keep it
    /// on loopback or a network only operators reach.
    #[serde(deserialize_with = "off_or_addr", serialize_with = "ser_off_or_addr")]
    pub bind: Option<SocketAddr>,
    /// When set, every operator request needs `Authorization: Bearer <token>`, on the public
    /// port and on the metrics listener alike. Absent: the public port refuses them all (401).
    /// At least 16 printable ASCII characters, no spaces. Compared in constant time; never
    /// logged. Also `RAPTOR_METRICS_TOKEN`.
    #[serde(skip_serializing)]
    pub token: Option<Secret>,
    /// A file holding the token (surrounding whitespace ignored), read once at start, so the
    /// token can live apart from the config file. Not together with `token`. Also
    /// `RAPTOR_METRICS_TOKEN_FILE`.
    pub token_file: Option<std::path::PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            bind: Some(default_metrics_bind()),
            token: None,
            token_file: None,
        }
    }
}

fn default_metrics_bind() -> SocketAddr {
    "127.0.0.1:9601".parse().expect("valid literal")
}

/// `"off"`, or an address like `127.0.0.1:9601`.
fn parse_metrics_bind(v: &str) -> Result<Option<SocketAddr>, String> {
    if v.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("`{v}` is neither an address like 127.0.0.1:9601 nor \"off\""))
}

fn off_or_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    parse_metrics_bind(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// The inverse of [`off_or_addr`]: `None` is `"off"`.
fn ser_off_or_addr<S: serde::Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(addr) => s.collect_str(addr),
        None => s.serialize_str("off"),
    }
}

/// Shortest token accepted: 16 characters of a random source are beyond guessing over HTTP.
const MIN_TOKEN_CHARS: usize = 16;

impl Config {
    /// `--metrics-bind` and the token variables; a token given here replaces the file's token
    /// and token file alike.
    pub(super) fn apply_metrics_overrides(&mut self, over: &Overrides) -> Result<(), ConfigError> {
        if let Some(b) = &over.metrics_bind {
            self.metrics.bind = parse_metrics_bind(b).map_err(|m| invalid("metrics.bind", m))?;
        }
        if let Some(f) = &over.metrics_token_file {
            self.metrics.token_file = Some(f.into());
            self.metrics.token = None;
        }
        if let Some(t) = &over.metrics_token {
            self.metrics.token = Some(t.clone());
            self.metrics.token_file = None;
        }
        Ok(())
    }

    /// Reads `metrics.token_file` into `metrics.token`, once, at start.
    pub(super) fn read_metrics_token_file(&mut self) -> Result<(), ConfigError> {
        let m = &mut self.metrics;
        super::read_secret_file(&mut m.token, &mut m.token_file, "metrics.token")
    }

    pub(super) fn validate_metrics(&self) -> Result<(), ConfigError> {
        let m = &self.metrics;
        if m.token.is_some() && m.token_file.is_some() {
            return Err(invalid(
                "metrics.token_file",
                "set metrics.token or metrics.token_file, not both",
            ));
        }
        if let Some(t) = &m.token {
            // The message must not quote the token.
            let t = t.expose();
            if t.len() < MIN_TOKEN_CHARS || !t.bytes().all(|c| c.is_ascii_graphic()) {
                return Err(invalid(
                    "metrics.token",
                    format!(
                        "must be at least {MIN_TOKEN_CHARS} printable ASCII characters without \
                         spaces (e.g. `openssl rand -hex 32`)"
                    ),
                ));
            }
        }
        if m.bind.is_some_and(|b| b == self.bind && b.port() != 0) {
            return Err(invalid(
                "metrics.bind",
                format!("must differ from `bind` ({})", self.bind),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn metrics_listener_defaults_to_loopback_9601_and_can_be_turned_off() {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.metrics.bind, Some("127.0.0.1:9601".parse().unwrap()));
        assert!(c.metrics.token.is_none());
        let c = Config::from_toml("[metrics]\nbind = \"off\"\n", "t").unwrap();
        assert_eq!(c.metrics.bind, None);
        let c = Config::from_toml("[metrics]\nbind = \"0.0.0.0:9100\"\n", "t").unwrap();
        assert_eq!(c.metrics.bind, Some("0.0.0.0:9100".parse().unwrap()));
        let e = Config::from_toml("[metrics]\nbind = \"nope\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("off"), "{e}");
        let over = |b: &str| Overrides {
            metrics_bind: Some(b.into()),
            ..Overrides::default()
        };
        assert_eq!(Config::load(None, &over("off")).unwrap().metrics.bind, None);
        assert_eq!(
            Config::load(None, &over("127.0.0.1:0"))
                .unwrap()
                .metrics
                .bind,
            Some("127.0.0.1:0".parse().unwrap())
        );
        let e = Config::load(None, &over("x")).unwrap_err().to_string();
        assert!(e.contains("`metrics.bind`"), "{e}");
        let e = Config::load(None, &over("127.0.0.1:6001"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("must differ from `bind`"), "{e}");
    }

    #[test]
    fn metrics_token_from_file_env_or_token_file_and_never_shown() {
        let token = "0123456789abcdef-token";
        let c = Config::from_toml(&format!("[metrics]\ntoken = \"{token}\"\n"), "t").unwrap();
        c.validate().unwrap();
        assert_eq!(c.metrics.token.as_ref().unwrap().expose(), token);
        assert!(!format!("{c:?}").contains(token), "Debug shows the token");

        let path = std::env::temp_dir().join(format!("raptor-token-{}", std::process::id()));
        std::fs::write(&path, format!("{token}\n")).unwrap();
        let over = Overrides {
            metrics_token_file: Some(path.display().to_string()),
            ..Overrides::default()
        };
        let c = Config::load(None, &over).unwrap();
        assert_eq!(c.metrics.token.as_ref().unwrap().expose(), token);
        // The variable wins over the file's settings.
        let over = Overrides {
            metrics_token: Some(Secret::new("ffffffffffffffffffff")),
            ..over
        };
        let c = Config::load(None, &over).unwrap();
        assert_eq!(
            c.metrics.token.as_ref().unwrap().expose(),
            "ffffffffffffffffffff"
        );
        std::fs::remove_file(&path).unwrap();

        let both = format!(
            "[metrics]\ntoken = \"{token}\"\ntoken_file = \"{}\"\n",
            path.display()
        );
        let file = std::env::temp_dir().join(format!("raptor-both-{}.toml", std::process::id()));
        std::fs::write(&file, both).unwrap();
        let e = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        std::fs::remove_file(&file).unwrap();
        assert!(
            e.contains("`metrics.token_file`") && e.contains("not both"),
            "{e}"
        );

        let over = Overrides {
            metrics_token_file: Some("/nonexistent/raptor-token".into()),
            ..Overrides::default()
        };
        let e = Config::load(None, &over).unwrap_err().to_string();
        assert!(e.contains("`metrics.token_file`"), "{e}");

        for weak in [
            "short-token",
            "has a space in it ok",
            "tab\there-0123456789",
        ] {
            let over = Overrides {
                metrics_token: Some(Secret::new(weak)),
                ..Overrides::default()
            };
            let e = Config::load(None, &over).unwrap_err().to_string();
            assert!(e.contains("`metrics.token`"), "{e}");
            assert!(!e.contains(weak), "the error quotes the token: {e}");
        }
    }
}
