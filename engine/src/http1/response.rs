//! HTTP responses. Every error body is JSON: `{"error":"..."}`.

use bytes::Bytes;

/// A response ready to write.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra header lines, each ending in `\r\n`.
    pub extra_headers: String,
}

/// A question the shards could not answer: 503 when they did not answer in time (the client
/// may retry), 500 when it reached a shard that cannot answer it (a bug).
impl From<crate::shard::AskError> for Response {
    fn from(e: crate::shard::AskError) -> Response {
        let status = match e {
            crate::shard::AskError::Timeout => 503,
            crate::shard::AskError::Misrouted => 500,
        };
        Response::error(status, &e.to_string())
    }
}

impl Response {
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.into(),
            extra_headers: String::new(),
        }
    }

    pub fn error(status: u16, message: &str) -> Response {
        #[derive(serde::Serialize)]
        struct E<'a> {
            error: &'a str,
        }
        Response::json(
            status,
            simd_json::to_vec(&E { error: message }).expect("in-memory serialization"),
        )
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            extra_headers: String::new(),
        }
    }

    /// Serializes status line, headers and body.
    pub fn encode(&self, close: bool) -> Bytes {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nServer: raptor\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}{}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            self.extra_headers,
            if close { "Connection: close\r\n" } else { "" },
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}
