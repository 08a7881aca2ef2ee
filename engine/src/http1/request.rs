//! Reading one request (head via httparse, then a Content-Length body) with bounds.

use futures_lite::{AsyncRead, AsyncReadExt};
use percent_encoding::percent_decode_str;

/// A parsed request. Only the headers Raptor uses are kept.
#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    /// Path as sent, without the query (signatures are over this exact text).
    pub raw_path: String,
    /// Query parameters, percent-decoded, in the order sent.
    pub query: Vec<(String, String)>,
    pub upgrade_websocket: bool,
    pub connection_upgrade: bool,
    pub ws_key: Option<String>,
    pub ws_version: Option<String>,
    /// `Origin` (browsers send it on WebSocket upgrades).
    pub origin: Option<String>,
    /// `Connection: close` or HTTP/1.0 without keep-alive.
    pub close: bool,
    pub content_length: usize,
    pub chunked: bool,
    pub body: Vec<u8>,
    /// The client's address. Never a credential: behind a reverse proxy on the same host
    /// every client is loopback.
    pub peer: Option<std::net::SocketAddr>,
    /// `Authorization` (the operator routes' bearer token); `Debug` does not show it.
    pub authorization: Option<crate::config::Secret>,
    /// The headers only the dashboard and admin API read, kept (boxed) only for their
    /// paths: a `Request` lives in every connection's task future while it is read, so each
    /// field here would cost every idle connection its size (docs/bench/notes.md).
    pub admin: Option<Box<AdminHeaders>>,
    /// It came over TLS (set by the connection, not parsed).
    pub tls: bool,
}

/// See [`Request::admin`].
#[derive(Debug, Default)]
pub struct AdminHeaders {
    /// `Cookie` (the admin session); `Debug` does not show it.
    pub cookie: Option<crate::config::Secret>,
    /// `Host`, to tell a same-origin admin request from a cross-site one.
    pub host: Option<String>,
    /// `X-Raptor-CSRF: 1`: sent by the dashboard's own requests, which a cross-site form
    /// cannot send.
    pub csrf_header: bool,
    /// `Last-Event-ID` (an `EventSource` reconnecting, `crate::xhr::sse`): kept on any path,
    /// the box made only when the header is there.
    pub last_event_id: Option<String>,
}

/// Paths whose requests keep [`AdminHeaders`].
fn is_admin_path(path: &str) -> bool {
    path.starts_with("/admin/api/") || path.starts_with("/dashboard")
}

impl Request {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read. The client's fault; answered (if possible) and closed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed")]
    Eof,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("request head too large")]
    HeadTooLarge,
    #[error("request body too large")]
    BodyTooLarge,
}

/// Reads the next request head from `stream`, using and refilling `buf` (which may already
/// hold pipelined bytes). On success the head is drained from `buf`.
pub async fn read_head(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    max_head: usize,
) -> Result<Request, ReadError> {
    loop {
        if !buf.is_empty() {
            if let Some((parsed, n)) = parse_head(buf, max_head)? {
                buf.drain(..n);
                return Ok(parsed);
            }
        }
        let room = (max_head + 1).saturating_sub(buf.len()).clamp(1, 4096);
        read_more(stream, buf, room).await?;
    }
}

/// Appends up to `room` bytes from `stream` to `buf`. Reads into a scratch buffer so a read
/// cancelled by a timeout never leaves placeholder bytes in `buf`.
async fn read_more(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    room: usize,
) -> Result<(), ReadError> {
    let mut chunk = [0u8; 4096];
    let room = room.clamp(1, chunk.len());
    let n = stream.read(&mut chunk[..room]).await?;
    if n == 0 {
        return Err(ReadError::Eof);
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Parses the request head at the start of `buf`, without I/O (so it can be fuzzed and
/// property-tested): `Some((request, head_len))` when the head is complete (bytes after it
/// are the body or the next request), `None` when more bytes are needed, and an error when
/// the head is malformed or still incomplete at `max_head` bytes.
pub fn parse_head(buf: &[u8], max_head: usize) -> Result<Option<(Request, usize)>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => Ok(Some((from_httparse(&req)?, n))),
        Ok(httparse::Status::Partial) if buf.len() >= max_head => Err(ReadError::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(ReadError::Malformed("too many headers")),
        Err(_) => Err(ReadError::Malformed("bad request head")),
    }
}

/// Reads the body announced by `req.content_length` (already bounded) into `req.body`.
pub async fn read_body(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    req: &mut Request,
) -> Result<(), ReadError> {
    let want = req.content_length;
    while buf.len() < want {
        read_more(stream, buf, want - buf.len()).await?;
    }
    req.body = buf.drain(..want).collect();
    Ok(())
}

fn from_httparse(req: &httparse::Request<'_, '_>) -> Result<Request, ReadError> {
    let method = req
        .method
        .ok_or(ReadError::Malformed("no method"))?
        .to_string();
    let target = req.path.ok_or(ReadError::Malformed("no path"))?;
    let (raw_path, qs) = target.split_once('?').unwrap_or((target, ""));
    let mut r = Request {
        method,
        raw_path: raw_path.to_string(),
        query: parse_query(qs),
        close: req.version == Some(0),
        admin: is_admin_path(raw_path).then(Box::default),
        ..Request::default()
    };
    let mut seen_length = false;
    for h in req.headers.iter() {
        let v = std::str::from_utf8(h.value)
            .map_err(|_| ReadError::Malformed("non-ascii header"))?
            .trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            r.upgrade_websocket = v.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            for tok in v.split(',').map(str::trim) {
                if tok.eq_ignore_ascii_case("upgrade") {
                    r.connection_upgrade = true;
                } else if tok.eq_ignore_ascii_case("close") {
                    r.close = true;
                } else if tok.eq_ignore_ascii_case("keep-alive") {
                    r.close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            r.ws_key = Some(v.to_string());
        } else if name.eq_ignore_ascii_case("origin") {
            r.origin = Some(v.to_string());
        } else if name.eq_ignore_ascii_case("authorization") {
            r.authorization = Some(crate::config::Secret::new(v));
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            r.ws_version = Some(v.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            let n: usize = v
                .parse()
                .map_err(|_| ReadError::Malformed("bad content-length"))?;
            if seen_length && n != r.content_length {
                return Err(ReadError::Malformed("conflicting content-length"));
            }
            seen_length = true;
            r.content_length = n;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            r.chunked = true;
        } else if name.eq_ignore_ascii_case("last-event-id") {
            r.admin.get_or_insert_with(Box::default).last_event_id = Some(v.to_string());
        } else if let Some(a) = r.admin.as_mut() {
            if name.eq_ignore_ascii_case("cookie") {
                a.cookie = Some(crate::config::Secret::new(v));
            } else if name.eq_ignore_ascii_case("host") {
                a.host = Some(v.to_string());
            } else if name.eq_ignore_ascii_case("x-raptor-csrf") {
                a.csrf_header = v == "1";
            }
        }
    }
    Ok(r)
}

/// Splits and percent-decodes `a=b&c=d`. `+` is kept literally (the SDKs never send it for
/// a space, and it is a legal channel-prefix character in no case).
pub fn parse_query(qs: &str) -> Vec<(String, String)> {
    qs.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

pub fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    use proptest::prelude::*;

    /// What a generated head should parse back to.
    #[derive(Debug, Clone)]
    struct Head {
        method: String,
        path: String,
        query: Vec<(String, String)>,
        http10: bool,
        upgrade: bool,
        /// `Connection` tokens, in order.
        connection: Vec<&'static str>,
        ws_key: Option<String>,
        ws_version: Option<String>,
        content_length: Option<usize>,
        chunked: bool,
        /// Headers the parser does not keep.
        other: Vec<(String, String)>,
    }

    impl Head {
        fn render(&self, case: &[bool]) -> String {
            // Header names are case-insensitive: spell each known one in one of two ways.
            let mut case = case.iter().cycle();
            let mut name = |n: &str| {
                if *case.next().unwrap() {
                    n.to_ascii_uppercase()
                } else {
                    n.to_string()
                }
            };
            let q: Vec<String> = self
                .query
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        utf8_percent_encode(k, NON_ALPHANUMERIC),
                        utf8_percent_encode(v, NON_ALPHANUMERIC)
                    )
                })
                .collect();
            let target = if q.is_empty() {
                self.path.clone()
            } else {
                format!("{}?{}", self.path, q.join("&"))
            };
            let version = if self.http10 { "1.0" } else { "1.1" };
            let mut h = format!("{} {target} HTTP/{version}\r\n", self.method);
            h += &format!("{}: 127.0.0.1\r\n", name("Host"));
            for (k, v) in &self.other {
                h += &format!("{k}: {v}\r\n");
            }
            if self.upgrade {
                h += &format!("{}: websocket\r\n", name("Upgrade"));
            }
            if !self.connection.is_empty() {
                h += &format!("{}: {}\r\n", name("Connection"), self.connection.join(", "));
            }
            if let Some(k) = &self.ws_key {
                h += &format!("{}: {k}\r\n", name("Sec-WebSocket-Key"));
            }
            if let Some(v) = &self.ws_version {
                h += &format!("{}:  {v} \r\n", name("Sec-WebSocket-Version"));
            }
            if let Some(n) = self.content_length {
                h += &format!("{}: {n}\r\n", name("Content-Length"));
            }
            if self.chunked {
                h += &format!("{}: chunked\r\n", name("Transfer-Encoding"));
            }
            h + "\r\n"
        }

        fn expect_close(&self) -> bool {
            let mut close = self.http10;
            for t in &self.connection {
                match *t {
                    "close" => close = true,
                    "keep-alive" => close = false,
                    _ => {}
                }
            }
            close
        }
    }

    fn head() -> impl Strategy<Value = Head> {
        let known = [
            "host",
            "upgrade",
            "connection",
            "sec-websocket-key",
            "sec-websocket-version",
            "content-length",
            "transfer-encoding",
        ];
        (
            (
                prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]),
                prop::collection::vec("[A-Za-z0-9._~-]{1,12}", 0..5),
                prop::collection::vec((".{0,12}", ".{0,12}"), 0..6),
                any::<bool>(),
            ),
            (
                any::<bool>(),
                prop::collection::vec(
                    prop::sample::select(vec!["Upgrade", "close", "keep-alive"]),
                    0..3,
                ),
                prop::option::of("[A-Za-z0-9+/]{1,24}={0,2}"),
                prop::option::of("[0-9]{1,3}"),
                prop::option::of(0usize..1_000_000),
                any::<bool>(),
                prop::collection::vec(
                    ("[A-Za-z][A-Za-z0-9-]{0,15}", "[!-~]([ -~]{0,30}[!-~])?"),
                    0..10,
                ),
            ),
        )
            .prop_map(
                move |(
                    (method, segs, query, http10),
                    (upgrade, connection, ws_key, ws_version, content_length, chunked, other),
                )| Head {
                    method: method.to_string(),
                    path: format!("/{}", segs.join("/")),
                    // Pairs with an empty key and value would render as a bare `=`; keep them
                    // out so the expected list is exactly what was sent.
                    query: query
                        .into_iter()
                        .filter(|(k, v)| !(k.is_empty() && v.is_empty()))
                        .collect(),
                    http10,
                    upgrade,
                    connection,
                    ws_key,
                    ws_version,
                    content_length,
                    chunked,
                    other: other
                        .into_iter()
                        .filter(|(k, _)| !known.contains(&k.to_ascii_lowercase().as_str()))
                        .collect(),
                },
            )
    }

    proptest! {
        // A generated valid head parses back to what was generated, whatever follows it, and
        // every strict prefix of it asks for more bytes (so `read_head` can stop anywhere).
        #[test]
        fn heads_parse_back(h in head(), case in prop::collection::vec(any::<bool>(), 1..8), tail in prop::collection::vec(any::<u8>(), 0..64)) {
            let text = h.render(&case);
            let mut bytes = text.clone().into_bytes();
            bytes.extend_from_slice(&tail);
            let (r, n) = parse_head(&bytes, 64 * 1024).unwrap().expect("complete");
            prop_assert_eq!(n, text.len());
            prop_assert_eq!(&r.method, &h.method);
            prop_assert_eq!(&r.raw_path, &h.path);
            prop_assert_eq!(&r.query, &h.query);
            prop_assert_eq!(r.upgrade_websocket, h.upgrade);
            prop_assert_eq!(r.connection_upgrade, h.connection.contains(&"Upgrade"));
            prop_assert_eq!(&r.ws_key, &h.ws_key);
            prop_assert_eq!(&r.ws_version, &h.ws_version);
            prop_assert_eq!(r.close, h.expect_close());
            prop_assert_eq!(r.content_length, h.content_length.unwrap_or(0));
            prop_assert_eq!(r.chunked, h.chunked);
            for cut in [0, 1, text.len() / 2, text.len() - 1] {
                prop_assert!(matches!(parse_head(&bytes[..cut], 64 * 1024), Ok(None)));
            }
            // The same head is refused once it exceeds the bound before it completes.
            let over = parse_head(&bytes[..text.len() - 1], text.len() - 1);
            prop_assert!(matches!(over, Err(ReadError::HeadTooLarge)));
        }
    }

    #[test]
    fn head_errors() {
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 1024),
            Err(ReadError::Malformed("bad content-length"))
        ));
        assert!(matches!(
            parse_head(
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                1024
            ),
            Err(ReadError::Malformed("conflicting content-length"))
        ));
        assert!(matches!(
            parse_head(b"GET\0/ HTTP/1.1\r\n\r\n", 1024),
            Err(ReadError::Malformed("bad request head"))
        ));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: 1\r\n".repeat(33));
        assert!(matches!(
            parse_head(many.as_bytes(), 4096),
            Err(ReadError::Malformed("too many headers"))
        ));
        assert!(matches!(parse_head(b"", 16), Ok(None)));
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            parse_query("a=1&info=user_count%2Csubscription_count&x&&b=%23c"),
            vec![
                ("a".into(), "1".into()),
                ("info".into(), "user_count,subscription_count".into()),
                ("x".into(), "".into()),
                ("b".into(), "#c".into())
            ]
        );
    }
}
