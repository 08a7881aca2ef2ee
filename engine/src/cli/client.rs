//! HTTP for the operator commands: signed requests to an app's API ([`ApiClient`]) and
//! bearer requests to the operator routes ([`Http::get_bearer`]), over ureq, one blocking
//! request at a time.
//!
//! A non-2xx answer is an error ([`CliError::Refused`]) carrying the status and the
//! server's `{"error": ...}`. Errors name the method and the path, never the query: it holds
//! the signature (and the request's timestamp), which is nobody's business in a log.

use super::target::{AppTarget, BaseUrl};
use super::CliError;
use crate::config::{Secret, WebhookSettings};
use crate::signature::sign_api_request;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

/// Everything but RFC 3986's unreserved characters is escaped, in path segments and in
/// query values alike: a channel name may hold `/`, `#`, `=`, `@`, `,` or `;`, a user id
/// anything at all, and the server decodes each segment and value before using it.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Dialling the server; a server that does not accept in this time is down or firewalled.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request. Above the server's own bound on a cluster query (5 s), so a slow
/// cluster answers rather than times out.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read: a channel list of a busy app fits many times over.
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// One path segment, escaped.
pub fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, COMPONENT).to_string()
}

/// A 2xx answer: its body, and the request it answers (for messages).
pub struct Answer {
    pub method: &'static str,
    pub path: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as `T`; anything else is [`CliError::BadAnswer`].
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, CliError> {
        let mut bytes = self.body.clone();
        simd_json::serde::from_slice(&mut bytes).map_err(|e| CliError::BadAnswer {
            method: self.method,
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// The body as it came, for `--json`, once it is known to be JSON.
    pub fn json_text(&self) -> Result<String, CliError> {
        self.parse::<serde::de::IgnoredAny>()?;
        let mut text = String::from_utf8_lossy(&self.body).into_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

/// A server at one base URL.
pub struct Http {
    agent: ureq::Agent,
    url: BaseUrl,
}

impl Http {
    /// No proxy from the environment and no redirects: the request goes to the URL given,
    /// and a 3xx is an answer like any non-2xx. `https://` is verified against the system's
    /// roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` included), as webhooks are.
    pub fn new(url: BaseUrl) -> Result<Http, CliError> {
        let roots = if url.is_https() {
            crate::webhook::tls::roots(&WebhookSettings::default())
                .map_err(|e| CliError::Usage(e.to_string()))?
        } else {
            RootCerts::WebPki
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .user_agent(concat!("raptor-cli/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Ok(Http { agent, url })
    }

    /// `GET path` with `Authorization: Bearer <token>` when there is a token.
    pub fn get_bearer(&self, path: &str, token: Option<&Secret>) -> Result<Answer, CliError> {
        let mut req = self.agent.get(self.url.join(path));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {}", t.expose()));
        }
        self.answer("GET", path, req.call())
    }

    /// Sends `path?query`; `body` makes it a POST of JSON.
    fn send(
        &self,
        method: &'static str,
        path: &str,
        query: &str,
        body: Option<&[u8]>,
    ) -> Result<Answer, CliError> {
        let url = self.url.join(&format!("{path}?{query}"));
        let res = match body {
            None => self.agent.get(url).call(),
            Some(b) => self
                .agent
                .post(url)
                .header("Content-Type", "application/json")
                .send(b),
        };
        self.answer(method, path, res)
    }

    fn answer(
        &self,
        method: &'static str,
        path: &str,
        res: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, CliError> {
        let unreachable = |e: ureq::Error| CliError::Unreachable {
            url: self.url.to_string(),
            reason: super::lowercase_first(&match e {
                ureq::Error::Io(io) => io.to_string(),
                e => e.to_string(),
            }),
        };
        let mut resp = res.map_err(unreachable)?;
        let status = resp.status();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .map_err(unreachable)?;
        if status.is_success() {
            return Ok(Answer {
                method,
                path: path.to_string(),
                body,
            });
        }
        Err(CliError::Refused {
            method,
            path: path.to_string(),
            status: format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            )
            .trim_end()
            .to_string(),
            error: error_field(body),
        })
    }
}

/// The `error` of a JSON error body (every error the server sends has one).
fn error_field(mut body: Vec<u8>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: Option<String>,
    }
    simd_json::serde::from_slice::<ErrorBody>(&mut body)
        .ok()
        .and_then(|b| b.error)
}

/// Signed requests to one app's API (`/apps/{id}/...`), as the Pusher SDKs make them.
pub struct ApiClient {
    http: Http,
    app: AppTarget,
}

impl ApiClient {
    pub fn new(app: AppTarget) -> Result<ApiClient, CliError> {
        Ok(ApiClient {
            http: Http::new(app.url.clone())?,
            app,
        })
    }

    /// `/apps/{id}/{segments...}`, each segment escaped.
    pub fn app_path(&self, segments: &[&str]) -> String {
        let mut path = format!("/apps/{}", encode(&self.app.app_id));
        for s in segments {
            path.push('/');
            path.push_str(&encode(s));
        }
        path
    }

    pub fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Answer, CliError> {
        self.signed("GET", path, params, None)
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Result<Answer, CliError> {
        self.signed("POST", path, &[], Some(body))
    }

    /// Signs over the escaped path as sent and the unescaped parameters (as the server
    /// checks), then sends.
    fn signed(
        &self,
        method: &'static str,
        path: &str,
        params: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Answer, CliError> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signed = sign_api_request(
            &self.app.key,
            self.app.secret.expose(),
            method,
            path,
            &params,
            body.unwrap_or_default(),
            now,
        );
        let query: Vec<String> = signed
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        self.http.send(method, path, &query.join("&"), body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_values_are_escaped() {
        assert_eq!(encode("chat-1.a_b~"), "chat-1.a_b~");
        assert_eq!(encode("a/b"), "a%2Fb");
        assert_eq!(encode("#server-to-user-1"), "%23server-to-user-1");
        assert_eq!(encode("x=y@z,w;v"), "x%3Dy%40z%2Cw%3Bv");
        assert_eq!(encode("été ?"), "%C3%A9t%C3%A9%20%3F");
    }

    #[test]
    fn error_bodies_give_their_reason() {
        assert_eq!(
            error_field(br#"{"error":"invalid signature"}"#.to_vec()).as_deref(),
            Some("invalid signature")
        );
        assert_eq!(error_field(b"<html>".to_vec()), None);
    }
}
