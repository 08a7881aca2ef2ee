//! The HTTP/1.1 requests of the fallback transports and the incremental reading of their
//! responses (head with `httparse`, body by length, chunked or until the server closes).

use thiserror::Error;

use super::chunked::{Chunked, ChunkedError};
use super::Transport;

/// Longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// pusher-js's query string on receive requests (its own version, so a server that checks
/// it sees the real client's).
const QUERY: &str = "protocol=7&client=js&version=8.6.0";

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("response head is not valid http: {0}")]
    Malformed(String),
    #[error("response head exceeds {MAX_HEAD} bytes")]
    TooLong,
    #[error(transparent)]
    Chunked(#[from] ChunkedError),
}

/// Where one session's requests go.
#[derive(Debug, Clone)]
pub struct Route<'a> {
    /// `/pusher` (pusher-js's `httpPath`)
    pub prefix: &'a str,
    pub key: &'a str,
    pub host: &'a str,
    /// the `{server}/{session}` segment
    pub session: &'a str,
}

impl Route<'_> {
    /// The request that opens (or re-opens) the receiving side: an empty POST to
    /// `xhr_streaming` or `xhr`, or for SSE a GET naming the channel.
    pub fn receive(&self, transport: Transport, channel: &str) -> Vec<u8> {
        let Route {
            prefix, key, host, ..
        } = self;
        match transport {
            Transport::Sse => format!(
                "GET {prefix}/app/{key}/sse?channel={} HTTP/1.1\r\nHost: {host}\r\n\
                 Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
                query_escape(channel)
            )
            .into_bytes(),
            _ => {
                let leaf = if transport == Transport::XhrStreaming {
                    "xhr_streaming"
                } else {
                    "xhr"
                };
                format!(
                    "POST {prefix}/app/{key}/{}/{leaf}?{QUERY} HTTP/1.1\r\nHost: {host}\r\n\
                     Content-Type: application/json\r\nContent-Length: 0\r\n\r\n",
                    self.session
                )
                .into_bytes()
            }
        }
    }

    /// An `xhr_send` carrying one Pusher message (`None`: `[]`, the liveness ping pusher-js
    /// sends on every `h` of a stream).
    pub fn send(&self, message: Option<&str>) -> Vec<u8> {
        let body = match message {
            Some(m) => serde_json::to_string(&[m]).expect("strings serialize"),
            None => "[]".to_string(),
        };
        format!(
            "POST {}/app/{}/{}/xhr_send HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.prefix,
            self.key,
            self.session,
            self.host,
            body.len()
        )
        .into_bytes()
    }
}

/// Percent-encodes what a query value cannot hold as is (channel names allow `=`, `@`, `,`,
/// `;`, `-`, `_`, `.`).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How a response body ends.
#[derive(Debug)]
pub enum Body {
    /// this many bytes still to come
    Length(usize),
    Chunked(Chunked),
    /// until the server closes (HTTP/1.0, or no length given)
    UntilEof,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    /// bytes of the head, blank line included
    pub len: usize,
    pub body: Body,
    pub keep_alive: bool,
}

/// Parses the head at the front of `buf`; `Ok(None)` while incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(HttpError::TooLong),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let status = resp.code.unwrap_or(0);
    let mut keep_alive = resp.version == Some(1);
    let (mut length, mut chunked) = (None, false);
    for h in resp.headers.iter() {
        let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| HttpError::Malformed("bad content-length".into()))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive = !v.contains("close");
        }
    }
    let body = if chunked {
        Body::Chunked(Chunked::default())
    } else if let Some(n) = length {
        Body::Length(n)
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Body::Length(0)
    } else {
        keep_alive = false;
        Body::UntilEof
    };
    Ok(Some(Head {
        status,
        len,
        body,
        keep_alive,
    }))
}

impl Body {
    /// Moves body bytes of `input` into `out`; returns (input bytes used, body complete).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), HttpError> {
        match self {
            Body::Length(left) => {
                let n = input.len().min(*left);
                out.extend_from_slice(&input[..n]);
                *left -= n;
                Ok((n, *left == 0))
            }
            Body::Chunked(c) => {
                let n = c.feed(input, out)?;
                Ok((n, c.is_done()))
            }
            Body::UntilEof => {
                out.extend_from_slice(input);
                Ok((input.len(), false))
            }
        }
    }

    /// Whether the body is complete before any byte of it was read (`Content-Length: 0`).
    pub fn is_empty(&self) -> bool {
        matches!(self, Body::Length(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route<'static> {
        Route {
            prefix: "/pusher",
            key: "app-key",
            host: "127.0.0.1:6001",
            session: "12/abcd1234",
        }
    }

    #[test]
    fn requests() {
        let r = String::from_utf8(route().receive(Transport::XhrStreaming, "c")).unwrap();
        assert!(r.starts_with(
            "POST /pusher/app/app-key/12/abcd1234/xhr_streaming?protocol=7&client=js&version=8.6.0 HTTP/1.1\r\n"
        ));
        let r = String::from_utf8(route().receive(Transport::XhrPolling, "c")).unwrap();
        assert!(r.contains("/abcd1234/xhr?protocol=7"), "{r}");
        let r = String::from_utf8(route().receive(Transport::Sse, "private-a@b")).unwrap();
        assert!(
            r.starts_with("GET /pusher/app/app-key/sse?channel=private-a%40b HTTP/1.1\r\n"),
            "{r}"
        );
        let s = String::from_utf8(route().send(Some(r#"{"event":"x"}"#))).unwrap();
        assert!(s.starts_with("POST /pusher/app/app-key/12/abcd1234/xhr_send HTTP/1.1\r\n"));
        assert!(
            s.ends_with("\r\n\r\n[\"{\\\"event\\\":\\\"x\\\"}\"]"),
            "{s}"
        );
        assert!(s.contains("Content-Length: 21\r\n"), "{s}");
        assert!(String::from_utf8(route().send(None))
            .unwrap()
            .ends_with("\r\n\r\n[]"));
    }

    #[test]
    fn heads_and_bodies() {
        let h = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive && h.body.is_empty() && h.status == 204);
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\no\n\r\n";
        let mut h = parse_head(raw).unwrap().unwrap();
        let mut out = Vec::new();
        assert_eq!(h.body.feed(&raw[h.len..], &mut out).unwrap(), (7, false));
        assert_eq!(out, b"o\n");
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nh\nHTTP";
        let mut h = parse_head(raw).unwrap().unwrap();
        assert!(!h.keep_alive);
        out.clear();
        assert_eq!(h.body.feed(&raw[h.len..], &mut out).unwrap(), (2, true));
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(matches!(h.body, Body::UntilEof) && !h.keep_alive);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le")
            .unwrap()
            .is_none());
        assert!(parse_head(b"nonsense\r\n\r\n").is_err());
    }
}
