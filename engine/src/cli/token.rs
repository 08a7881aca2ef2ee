//! `raptor token create|inspect|revoke` (docs/tokens.md, docs/cli.md): access tokens for an
//! app. `create` and `inspect` sign and check locally with the app's secret (as the app's
//! backend would; no server needed); `revoke` goes through the server's API, which puts it
//! in force on every node.

use super::client::ApiClient;
use super::output::{print, Table};
use super::CliError;
use crate::token::{self, Claims};
use argh::FromArgs;

/// Create, inspect or revoke access tokens.
#[derive(FromArgs)]
#[argh(subcommand, name = "token")]
pub struct TokenCmd {
    #[argh(subcommand)]
    cmd: TokenSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum TokenSub {
    Create(Create),
    Inspect(Inspect),
    Revoke(Revoke),
}

api_command! {
    /// Sign a token for the app (with its secret, locally): prints the token.
    #[argh(subcommand, name = "create")]
    pub struct Create {
        /// the user the token signs in (its sub)
        #[argh(option)]
        pub user: Option<String>,
        /// channels or globs it may read, comma-separated (e.g. 'news,chat-*')
        #[argh(option, default = "String::new()")]
        pub read: String,
        /// channels or globs it may send client events to, comma-separated
        #[argh(option, default = "String::new()")]
        pub write: String,
        /// seconds until it expires (default 3600)
        #[argh(option, default = "3600")]
        pub ttl: u64,
        /// sessions that may use it (default: any number)
        #[argh(option)]
        pub uses: Option<u32>,
        /// its id (default: random)
        #[argh(option)]
        pub jti: Option<String>,
    }
}

api_command! {
    /// Check a token against the app's secret and print its claims; exits 1 if the server
    /// would refuse it (revocations are the server's: see raptor token revoke).
    #[argh(subcommand, name = "inspect")]
    pub struct Inspect {
        /// the token
        #[argh(positional)]
        pub token: String,
    }
}

api_command! {
    /// Revoke a token (--jti) or every token of a user (--user) on every node; the sessions
    /// using them are closed with 4009.
    #[argh(subcommand, name = "revoke")]
    pub struct Revoke {
        /// the token's id
        #[argh(option)]
        pub jti: Option<String>,
        /// the user whose tokens to revoke
        #[argh(option)]
        pub user: Option<String>,
    }
}

impl TokenCmd {
    pub fn run(&self) -> Result<(), CliError> {
        match &self.cmd {
            TokenSub::Create(c) => c.run(),
            TokenSub::Inspect(c) => c.run(),
            TokenSub::Revoke(c) => c.run(),
        }
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

impl Create {
    fn run(&self) -> Result<(), CliError> {
        let target = self.target()?;
        let now = token::now_secs();
        if self.ttl == 0 || self.ttl > 365 * 86_400 {
            return Err(CliError::Usage(
                "--ttl must be 1..=31536000 (a year)".into(),
            ));
        }
        let claims = Claims {
            sub: self.user.clone(),
            read: list(&self.read),
            write: list(&self.write),
            iat: Some(now),
            exp: Some(now + self.ttl),
            jti: self.jti.clone(),
            uses: self.uses,
            ..Claims::default()
        };
        // What a server of this app would say of it now.
        let minted = token::issue(&target.key, target.secret.expose(), claims, now)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        if self.json {
            let json = simd_json::to_string(&minted).expect("serializable");
            print(&format!("{json}\n"));
        } else {
            print(&format!("{}\n", minted.token));
        }
        Ok(())
    }
}

impl Inspect {
    fn run(&self) -> Result<(), CliError> {
        let target = self.target()?;
        let now = token::now_secs();
        let verified = token::verify(&target.key, target.secret.expose(), &self.token, now)
            .map_err(|e| CliError::TokenRefused(e.to_string()))?;
        let c = &verified.claims;
        if self.json {
            print(&format!(
                "{}\n",
                simd_json::to_string(c).expect("serializable")
            ));
            return Ok(());
        }
        let mut t = Table::new(&["CLAIM", "VALUE"]);
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let time = |v: Option<u64>| v.map_or("-".into(), |s| s.to_string());
        t.row(["sub".to_string(), opt(&c.sub)]);
        let grants = |g: &[String]| {
            if g.is_empty() {
                "-".into()
            } else {
                g.join(",")
            }
        };
        t.row(["read".to_string(), grants(&c.read)]);
        t.row(["write".to_string(), grants(&c.write)]);
        t.row(["exp".to_string(), time(c.exp)]);
        t.row(["jti".to_string(), opt(&c.jti)]);
        t.row([
            "uses".to_string(),
            c.uses.map_or("any".into(), |u| u.to_string()),
        ]);
        print(&format!("valid\n{}", t.render()));
        Ok(())
    }
}

impl Revoke {
    fn run(&self) -> Result<(), CliError> {
        let body = match (&self.jti, &self.user) {
            (Some(j), None) => format!(r#"{{"jti":{}}}"#, quote(j)),
            (None, Some(u)) => format!(r#"{{"user_id":{}}}"#, quote(u)),
            _ => return Err(CliError::Usage("give --jti or --user (one of them)".into())),
        };
        let api = ApiClient::new(self.target()?)?;
        let path = api.app_path(&["tokens", "revoke"]);
        let text = api.post(&path, body.as_bytes())?.json_text()?;
        if self.json {
            print(&text);
        } else {
            let what = self.jti.as_deref().map_or_else(
                || {
                    format!(
                        "every token of user {}",
                        self.user.as_deref().unwrap_or_default()
                    )
                },
                |j| format!("token {j}"),
            );
            print(&format!("revoked {what}\n"));
        }
        Ok(())
    }
}

fn quote(s: &str) -> String {
    simd_json::to_string(s).expect("serializable")
}
