//! Where an operator command sends its request, and as which app.
//!
//! Each setting comes from the first of: its flag, its environment variable, the
//! configuration file (`--config` or `RAPTOR_CONFIG`: its `bind`, https when it has
//! `[tls]`, and its first app), the embedded defaults. The defaults are the server a bare
//! `raptor` starts (`http://127.0.0.1:6001`, app `1`, `app-key`, `app-secret`), so
//! `raptor channels` right after `raptor` works with no setting at all. They are read from
//! `Config::default()`, not repeated here.

use super::CliError;
use crate::config::{AppConfig, Config, ConfigError, Secret};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Reads an environment variable; an empty value counts as unset (as for the server).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A secret given on the command line (`--secret`, `--metrics-token`): a [`Secret`], so that
/// no `Debug` or error can show it.
pub struct SecretArg(pub Secret);

impl FromStr for SecretArg {
    type Err = String;
    fn from_str(s: &str) -> Result<SecretArg, String> {
        Ok(SecretArg(Secret::new(s)))
    }
}

/// `scheme://host:port` of a server, without path or query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `http` or `https`.
    scheme: &'static str,
    /// `host:port` as given (a port is always present: the default one is filled in).
    authority: String,
}

impl BaseUrl {
    /// `http[s]://host[:port][/]`. A path, a query or credentials are refused: the API's
    /// paths are fixed, and a URL with a password would show it in errors.
    pub fn parse(text: &str) -> Result<BaseUrl, String> {
        let bad =
            |why: &str| format!("`{text}` is not a server URL like http://127.0.0.1:6001: {why}");
        let uri: ureq::http::Uri = text.parse().map_err(|_| bad("unparsable"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => "http",
            Some("https") => "https",
            _ => return Err(bad("the scheme must be http or https")),
        };
        let Some(authority) = uri.authority() else {
            return Err(bad("no host"));
        };
        if authority.as_str().contains('@') {
            // Not quoted back: the part before `@` may be a password.
            return Err("the server URL must not carry credentials".into());
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("give the server only, without a path"));
        }
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Ok(BaseUrl {
            scheme,
            authority: format!("{}:{port}", authority.host()),
        })
    }

    /// The URL that reaches a listener bound to `addr` from this host: a wildcard address
    /// (`0.0.0.0`, `::`) is reached on loopback.
    pub fn of_listener(addr: SocketAddr, tls: bool) -> BaseUrl {
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        BaseUrl {
            scheme: if tls { "https" } else { "http" },
            authority: SocketAddr::new(ip, addr.port()).to_string(),
        }
    }

    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// The full URL of `path_and_query` on this server.
    pub fn join(&self, path_and_query: &str) -> String {
        format!("{self}{path_and_query}")
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// The connection flags every app API command takes (see `api_command!`).
#[derive(Default)]
pub struct ApiFlags {
    pub url: Option<String>,
    pub app_id: Option<String>,
    pub key: Option<String>,
    pub secret: Option<Secret>,
    pub config: Option<PathBuf>,
}

/// An app on a server: where to send, and what to sign with.
#[derive(Debug, Clone)]
pub struct AppTarget {
    pub url: BaseUrl,
    pub app_id: String,
    pub key: String,
    pub secret: Secret,
}

impl AppTarget {
    /// From the flags, then the environment, then the configuration file, then the defaults.
    pub fn resolve(flags: &ApiFlags, env: Env) -> Result<AppTarget, CliError> {
        let (cfg, origin) = config_of(flags.config.as_deref(), env)?;
        let url = match flags.url.clone().or_else(|| env("RAPTOR_URL")) {
            Some(u) => BaseUrl::parse(&u).map_err(CliError::Usage)?,
            None => BaseUrl::of_listener(cfg.bind, cfg.tls.is_some()),
        };
        let app_id = flags.app_id.clone().or_else(|| env("RAPTOR_APP_ID"));
        let key = flags.key.clone().or_else(|| env("RAPTOR_APP_KEY"));
        // The file's app: the one named by id (or else by key), or else the first.
        let app: Option<&AppConfig> = match (&app_id, &key) {
            (Some(id), _) => cfg.apps.iter().find(|a| a.id == *id),
            (None, Some(k)) => cfg.apps.iter().find(|a| a.key == *k),
            (None, None) => cfg.apps.first(),
        };
        let which = match (&app_id, &key) {
            (Some(id), _) => format!("app `{id}`"),
            (None, Some(k)) => format!("the app with key `{k}`"),
            (None, None) => "the app".into(),
        };
        let missing = |what: &str, flag: &str, var: &str| {
            CliError::Usage(format!(
                "no {what} for {which}: it is not in {origin}; give {flag} or set {var}"
            ))
        };
        let secret = flags
            .secret
            .clone()
            .or_else(|| env("RAPTOR_APP_SECRET").map(Secret::new))
            .or_else(|| app.map(|a| Secret::new(a.secret.as_str())))
            .ok_or_else(|| missing("secret", "--secret", "RAPTOR_APP_SECRET"))?;
        let key = key
            .or_else(|| app.map(|a| a.key.clone()))
            .ok_or_else(|| missing("key", "--key", "RAPTOR_APP_KEY"))?;
        let app_id = app_id
            .or_else(|| app.map(|a| a.id.clone()))
            .ok_or_else(|| missing("id", "--app-id", "RAPTOR_APP_ID"))?;
        Ok(AppTarget {
            url,
            app_id,
            key,
            secret,
        })
    }
}

/// The metrics listener (`/stats`), and the bearer token when one is needed.
#[derive(Debug, Clone)]
pub struct MetricsTarget {
    pub url: BaseUrl,
    pub token: Option<Secret>,
}

impl MetricsTarget {
    /// URL: `--metrics-url`, `RAPTOR_METRICS_URL`, the file's `[metrics] bind`, the default
    /// `127.0.0.1:9601`. Token: `--metrics-token`, `RAPTOR_METRICS_TOKEN`,
    /// `RAPTOR_METRICS_TOKEN_FILE`, the file's `token` or `token_file`; none is fine on a
    /// listener without one. A file whose listener is `"off"` sends the request to the
    /// public port, which answers `/stats` with the token only.
    pub fn resolve(
        url: Option<String>,
        token: Option<Secret>,
        config: Option<&Path>,
        env: Env,
    ) -> Result<MetricsTarget, CliError> {
        let (cfg, origin) = config_of(config, env)?;
        let token = match token.or_else(|| env("RAPTOR_METRICS_TOKEN").map(Secret::new)) {
            Some(t) => Some(t),
            None => match env("RAPTOR_METRICS_TOKEN_FILE") {
                Some(f) => Some(read_token(Path::new(&f))?),
                None => match (&cfg.metrics.token, &cfg.metrics.token_file) {
                    (Some(t), _) => Some(t.clone()),
                    (None, Some(f)) => Some(read_token(f)?),
                    (None, None) => None,
                },
            },
        };
        let url = match url.or_else(|| env("RAPTOR_METRICS_URL")) {
            Some(u) => BaseUrl::parse(&u).map_err(CliError::Usage)?,
            None => match cfg.metrics.bind {
                Some(addr) => BaseUrl::of_listener(addr, false),
                None if token.is_some() => BaseUrl::of_listener(cfg.bind, cfg.tls.is_some()),
                None => {
                    return Err(CliError::Usage(format!(
                        "the metrics listener is off in {origin} and no metrics token is set: \
                         give --metrics-url, or a token for the public port"
                    )))
                }
            },
        };
        Ok(MetricsTarget { url, token })
    }
}

/// The configuration named by `--config` or `RAPTOR_CONFIG`, else the embedded defaults;
/// and how to name it in a message. Parsed, not validated: a setting these commands do not
/// use (an admin password file the operator cannot read, say) must not stop them.
fn config_of(flag: Option<&Path>, env: Env) -> Result<(Config, String), CliError> {
    let Some(path) = flag
        .map(Path::to_path_buf)
        .or_else(|| env("RAPTOR_CONFIG").map(PathBuf::from))
    else {
        return Ok((Config::default(), "the embedded defaults".into()));
    };
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::Usage(format!("cannot read config file {origin}: {e}")))?;
    match Config::from_toml(&text, &origin) {
        Ok(cfg) => Ok((cfg, origin)),
        Err(ConfigError::Parse { path, message }) => {
            // toml's message: the position, the line with a caret, the reason. One line
            // keeps the position and the reason.
            let lines: Vec<&str> = message.lines().map(str::trim).collect();
            let position = lines.first().copied().unwrap_or_default();
            let reason = lines.last().copied().unwrap_or_default();
            Err(CliError::Usage(format!(
                "invalid config file {path}: {position}: {reason}"
            )))
        }
        Err(e) => Err(CliError::Usage(e.to_string())),
    }
}

/// A token kept in its own file, trimmed (as the server reads it).
fn read_token(path: &Path) -> Result<Secret, CliError> {
    std::fs::read_to_string(path)
        .map(|t| Secret::new(t.trim()))
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot read the metrics token file {}: {e}",
                path.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn temp(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("raptor-target-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn urls_are_a_server_only() {
        let u = BaseUrl::parse("http://127.0.0.1:6001").unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:6001");
        assert_eq!(
            u.join("/apps/1/events"),
            "http://127.0.0.1:6001/apps/1/events"
        );
        assert_eq!(
            BaseUrl::parse("https://chat.example.com/")
                .unwrap()
                .to_string(),
            "https://chat.example.com:443"
        );
        assert_eq!(
            BaseUrl::parse("http://[::1]:6001").unwrap().to_string(),
            "http://[::1]:6001"
        );
        for bad in [
            "127.0.0.1:6001",
            "ftp://x",
            "http://x/apps",
            "http://x/?a=b",
            "http://",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
        let e = BaseUrl::parse("http://admin:hunter2@x").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let wild = |a: &str, tls| BaseUrl::of_listener(a.parse().unwrap(), tls).to_string();
        assert_eq!(wild("0.0.0.0:6001", false), "http://127.0.0.1:6001");
        assert_eq!(wild("[::]:443", true), "https://[::1]:443");
        assert_eq!(wild("10.0.0.5:6001", false), "http://10.0.0.5:6001");
    }

    #[test]
    fn nothing_set_is_the_server_a_bare_raptor_starts() {
        let t = AppTarget::resolve(&ApiFlags::default(), &no_env).unwrap();
        assert_eq!(
            (
                t.url.to_string(),
                t.app_id.as_str(),
                t.key.as_str(),
                t.secret.expose()
            ),
            ("http://127.0.0.1:6001".into(), "1", "app-key", "app-secret")
        );
        let m = MetricsTarget::resolve(None, None, None, &no_env).unwrap();
        assert_eq!(m.url.to_string(), "http://127.0.0.1:9601");
        assert!(m.token.is_none());
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_file() {
        let file = temp(
            "apps.toml",
            "bind = \"0.0.0.0:7000\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n\
             [[apps]]\nid = \"a\"\nkey = \"ka\"\nsecret = \"sa\"\n\
             [[apps]]\nid = \"b\"\nkey = \"kb\"\nsecret = \"sb\"\n",
        );
        let flags = ApiFlags {
            config: Some(file.clone()),
            ..ApiFlags::default()
        };
        let t = AppTarget::resolve(&flags, &no_env).unwrap();
        assert_eq!(
            (
                t.url.to_string(),
                t.app_id.as_str(),
                t.key.as_str(),
                t.secret.expose()
            ),
            ("https://127.0.0.1:7000".into(), "a", "ka", "sa")
        );
        // The environment picks app b; its key and secret come from the file.
        let env = |k: &str| match k {
            "RAPTOR_APP_ID" => Some("b".to_string()),
            "RAPTOR_URL" => Some("http://10.1.1.1:6001".to_string()),
            _ => None,
        };
        let t = AppTarget::resolve(&flags, &env).unwrap();
        assert_eq!(
            (
                t.url.to_string(),
                t.app_id.as_str(),
                t.key.as_str(),
                t.secret.expose()
            ),
            ("http://10.1.1.1:6001".into(), "b", "kb", "sb")
        );
        // Flags win over both.
        let flags = ApiFlags {
            url: Some("http://127.0.0.1:9".into()),
            secret: Some(Secret::new("flag-secret")),
            ..flags
        };
        let t = AppTarget::resolve(&flags, &env).unwrap();
        assert_eq!(
            (t.url.to_string(), t.app_id.as_str(), t.secret.expose()),
            ("http://127.0.0.1:9".into(), "b", "flag-secret")
        );
        // An app the file does not have needs its key and secret given; the message never
        // shows a secret.
        let flags = ApiFlags {
            app_id: Some("zz".into()),
            config: Some(file.clone()),
            ..ApiFlags::default()
        };
        let e = AppTarget::resolve(&flags, &no_env).unwrap_err().to_string();
        assert!(
            e.contains("app `zz`") && e.contains("RAPTOR_APP_SECRET"),
            "{e}"
        );
        // Selected by key when no id is given.
        let flags = ApiFlags {
            key: Some("kb".into()),
            config: Some(file.clone()),
            ..ApiFlags::default()
        };
        assert_eq!(AppTarget::resolve(&flags, &no_env).unwrap().app_id, "b");
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn the_metrics_listener_and_token_come_from_the_file_too() {
        let tok = temp("tok", "0123456789abcdef-file\n");
        let file = temp(
            "metrics.toml",
            &format!(
                "[metrics]\nbind = \"0.0.0.0:9700\"\ntoken_file = \"{}\"\n",
                tok.display()
            ),
        );
        let m = MetricsTarget::resolve(None, None, Some(&file), &no_env).unwrap();
        assert_eq!(m.url.to_string(), "http://127.0.0.1:9700");
        assert_eq!(m.token.unwrap().expose(), "0123456789abcdef-file");
        let env = |k: &str| (k == "RAPTOR_METRICS_TOKEN").then(|| "from-env".to_string());
        let m = MetricsTarget::resolve(None, None, Some(&file), &env).unwrap();
        assert_eq!(m.token.unwrap().expose(), "from-env");
        // Off: the public port, with a token; without one there is nowhere to ask.
        let off = temp(
            "off.toml",
            "bind = \"127.0.0.1:7001\"\n[metrics]\nbind = \"off\"\n",
        );
        let m = MetricsTarget::resolve(None, Some(Secret::new("t")), Some(&off), &no_env);
        assert_eq!(m.unwrap().url.to_string(), "http://127.0.0.1:7001");
        let e = MetricsTarget::resolve(None, None, Some(&off), &no_env).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        for f in [tok, file, off] {
            std::fs::remove_file(f).unwrap();
        }
    }

    #[test]
    fn a_bad_file_is_one_line_naming_the_position_and_the_reason() {
        let file = temp(
            "bad.toml",
            "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecrett = \"s\"\n",
        );
        let flags = ApiFlags {
            config: Some(file.clone()),
            ..ApiFlags::default()
        };
        let e = AppTarget::resolve(&flags, &no_env).unwrap_err().to_string();
        std::fs::remove_file(&file).unwrap();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.starts_with(&format!(
                "invalid config file {}: TOML parse error at line 4, column 1: unknown field `secrett`",
                file.display()
            )),
            "{e}"
        );
    }
}
