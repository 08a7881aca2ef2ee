//! A keep-alive HTTP/1.1 client for `POST /apps/{id}/events`, one request at a time.
//!
//! Blocking std I/O on a dedicated thread: a publisher has one socket and waits for each
//! answer before sending the next event, which is also what keeps a channel's events in
//! sequence order (the server accepted event n before it sees n+1). More throughput
//! comes from more publishers, each owning a disjoint set of channels.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use thiserror::Error;

use crate::clock;
use crate::signing;
use crate::target::Target;

/// How long one request may take before the run gives up on the server.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest response head + body we read; the events endpoint answers `{}`.
const MAX_RESPONSE: usize = 64 * 1024;

/// A publish failed. `Status` is the server refusing (bad signature, payload too large,
/// over quota): fix the setup. The others are transport failures; the run stops.
#[derive(Debug, Error)]
pub enum PublishError {
    #[error("cannot connect to the http api: {0}")]
    Connect(io::Error),
    #[error("http api i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("http api closed the connection before answering")]
    Eof,
    #[error("http api answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("http api response is malformed: {0}")]
    Malformed(String),
}

/// One keep-alive connection to the HTTP API.
pub struct Publisher {
    target: Target,
    path: String,
    stream: Option<TcpStream>,
    /// response bytes; reused between requests
    buf: Vec<u8>,
}

impl Publisher {
    pub fn new(target: &Target) -> Self {
        let path = format!("/apps/{}/events", target.app_id);
        Self {
            target: target.clone(),
            path,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Publishes one event and waits for the server to accept it.
    pub fn publish(&mut self, channel: &str, event: &str, data: &str) -> Result<(), PublishError> {
        let body = json!({"name": event, "channel": channel, "data": data}).to_string();
        let t = &self.target;
        let query = signing::events_query(
            &t.key,
            &t.secret,
            &t.app_id,
            clock::unix_secs(),
            body.as_bytes(),
        );
        let request = format!(
            "POST {}?{query} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.path,
            t.host_header(),
            body.len()
        );
        let stream = self.connected()?;
        stream.write_all(request.as_bytes())?;
        let keep_alive = self.read_response()?;
        if !keep_alive {
            self.stream = None;
        }
        Ok(())
    }

    fn connected(&mut self) -> Result<&mut TcpStream, PublishError> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.target.addr, IO_TIMEOUT)
                .map_err(PublishError::Connect)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("just connected"))
    }

    /// Reads one response; returns whether the connection may be reused.
    fn read_response(&mut self) -> Result<bool, PublishError> {
        self.buf.clear();
        let stream = self.stream.as_mut().expect("request was just written");
        loop {
            let head = parse_head(&self.buf)?;
            if let Some(head) = head {
                match body_end(&head, &self.buf[head.len..]) {
                    BodyEnd::At(n) => {
                        let body = &self.buf[head.len..head.len + n];
                        if !(200..300).contains(&head.status) {
                            let body = String::from_utf8_lossy(body).into_owned();
                            return Err(PublishError::Status {
                                status: head.status,
                                body,
                            });
                        }
                        return Ok(head.keep_alive);
                    }
                    BodyEnd::NeedMore => {}
                    BodyEnd::AtEof => {
                        if read_some(stream, &mut self.buf)? == 0 {
                            return Ok(false);
                        }
                        continue;
                    }
                }
            }
            if self.buf.len() > MAX_RESPONSE {
                return Err(PublishError::Malformed("response too large".into()));
            }
            if read_some(stream, &mut self.buf)? == 0 {
                return Err(PublishError::Eof);
            }
        }
    }
}

fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// What the response head says about the body.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    /// bytes of the head, up to and including the blank line
    len: usize,
    content_length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, PublishError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(PublishError::Malformed(e.to_string())),
    };
    let mut head = Head {
        status: resp.code.unwrap_or(0),
        len,
        content_length: None,
        chunked: false,
        keep_alive: resp.version == Some(1),
    };
    for h in resp.headers.iter() {
        let value = String::from_utf8_lossy(h.value).to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = value
                .trim()
                .parse()
                .map_err(|_| PublishError::Malformed("bad content-length".into()))?;
            head.content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            head.keep_alive = !value.contains("close");
        }
    }
    Ok(Some(head))
}

#[derive(Debug, PartialEq, Eq)]
enum BodyEnd {
    /// the body is complete and this many bytes long (as sent, chunk framing included)
    At(usize),
    NeedMore,
    /// no length given: the body runs until the server closes
    AtEof,
}

fn body_end(head: &Head, body: &[u8]) -> BodyEnd {
    if let Some(n) = head.content_length {
        return if body.len() >= n {
            BodyEnd::At(n)
        } else {
            BodyEnd::NeedMore
        };
    }
    if head.chunked {
        return chunked_end(body).map_or(BodyEnd::NeedMore, BodyEnd::At);
    }
    if head.status == 204 || head.status == 304 {
        return BodyEnd::At(0);
    }
    BodyEnd::AtEof
}

/// Where a chunked body ends, if it is complete: after the zero-size chunk and the
/// blank line that ends the (normally empty) trailer.
fn chunked_end(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + find_crlf(&body[at..])?;
        let size_text = std::str::from_utf8(&body[at..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // trailer lines until an empty one
            loop {
                let end = at + find_crlf(&body[at..])?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some(at);
                }
            }
        }
        at += size + 2;
        if at > body.len() {
            return None;
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_response() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!((head.status, head.keep_alive), (200, true));
        assert_eq!(body_end(&head, &raw[head.len..]), BodyEnd::At(2));
        assert_eq!(
            body_end(&head, &raw[head.len..head.len + 1]),
            BodyEnd::NeedMore
        );
    }

    #[test]
    fn connection_close_and_http10() {
        let head = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!head.keep_alive);
        let head = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(!head.keep_alive);
        assert_eq!(body_end(&head, b""), BodyEnd::AtEof);
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(chunked_end(b"2\r\n{}\r\n0\r\n\r\n"), Some(12));
        assert_eq!(chunked_end(b"2\r\n{}\r\n0\r\n"), None);
        assert_eq!(chunked_end(b"2\r\n{}"), None);
        assert_eq!(chunked_end(b"0;ext=1\r\nx-trailer: 1\r\n\r\n"), Some(25));
    }

    #[test]
    fn partial_head_waits() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
