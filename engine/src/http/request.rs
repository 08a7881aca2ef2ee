//! Reading one request (head via httparse, then a Content-Length body) with bounds.

use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;
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
    /// `Connection: close` or HTTP/1.0 without keep-alive.
    pub close: bool,
    pub content_length: usize,
    pub chunked: bool,
    pub body: Vec<u8>,
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
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max_head: usize,
) -> Result<Request, ReadError> {
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let parsed = from_httparse(&req)?;
                    buf.drain(..n);
                    return Ok(parsed);
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(ReadError::Malformed("too many headers"))
                }
                Err(_) => return Err(ReadError::Malformed("bad request head")),
            }
            if buf.len() >= max_head {
                return Err(ReadError::HeadTooLarge);
            }
        }
        let room = (max_head + 1).saturating_sub(buf.len()).clamp(1, 4096);
        let old = buf.len();
        buf.resize(old + room, 0);
        let n = stream.read(&mut buf[old..]).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(old);
                return Err(e.into());
            }
        };
        buf.truncate(old + n);
        if n == 0 {
            return Err(ReadError::Eof);
        }
    }
}

/// Reads the body announced by `req.content_length` (already bounded) into `req.body`.
pub async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    req: &mut Request,
) -> Result<(), ReadError> {
    let want = req.content_length;
    while buf.len() < want {
        let old = buf.len();
        buf.resize(want.max(old + 1), 0);
        let n = stream.read(&mut buf[old..]).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(old);
                return Err(e.into());
            }
        };
        buf.truncate(old + n);
        if n == 0 {
            return Err(ReadError::Eof);
        }
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
