//! The HTTP/1.1 upgrade that opens a WebSocket, client side.

use data_encoding::BASE64;
use sha1::{Digest, Sha1};
use thiserror::Error;

/// RFC 6455 §1.3: appended to the client key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Longest upgrade response we accept; real ones are ~150 bytes.
pub const MAX_RESPONSE: usize = 8 * 1024;

/// The server did not accept the upgrade. Its fault (or a wrong path/key); retrying the
/// same request will not help.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HandshakeError {
    #[error("upgrade response is not valid http: {0}")]
    Malformed(String),
    #[error("upgrade response exceeds {MAX_RESPONSE} bytes")]
    TooLong,
    #[error("server answered {code} {reason} instead of 101")]
    Status { code: u16, reason: String },
    #[error("sec-websocket-accept is missing or wrong")]
    BadAccept,
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (always 24 characters).
pub fn new_key() -> [u8; 24] {
    let raw: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let mut key = [0u8; 24];
    BASE64.encode_mut(&raw, &mut key);
    key
}

/// The `Sec-WebSocket-Accept` a correct server derives from `key`.
pub fn accept_for(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID.as_bytes());
    BASE64.encode(&sha.finalize())
}

/// The upgrade request for `path` (which includes the query string).
pub fn request(path: &str, host: &str, key: &[u8; 24]) -> Vec<u8> {
    let key = std::str::from_utf8(key).expect("base64 is ascii");
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Checks the upgrade response at the front of `buf`. `Ok(Some(n))`: accepted, the first
/// `n` bytes were the response and anything after is already WebSocket frames.
/// `Ok(None)`: the response is not complete yet.
pub fn parse_response(buf: &[u8], key: &[u8; 24]) -> Result<Option<usize>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let used = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE => {
            return Err(HandshakeError::TooLong)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        let reason = resp.reason.unwrap_or("").to_string();
        return Err(HandshakeError::Status { code, reason });
    }
    let expected = accept_for(key);
    let accepted = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("sec-websocket-accept") && h.value == expected.as_bytes()
    });
    if !accepted {
        return Err(HandshakeError::BadAccept);
    }
    Ok(Some(used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_accept_example() {
        assert_eq!(
            accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn response(accept: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn accepts_good_response_and_keeps_trailing_frames() {
        let key = new_key();
        let mut buf = response(&accept_for(&key));
        let head = buf.len();
        buf.extend_from_slice(&[0x81, 0x00]);
        assert_eq!(parse_response(&buf, &key), Ok(Some(head)));
        assert_eq!(parse_response(&buf[..head - 3], &key), Ok(None));
    }

    #[test]
    fn rejects_wrong_accept_and_status() {
        let key = new_key();
        assert_eq!(
            parse_response(&response("nope"), &key),
            Err(HandshakeError::BadAccept)
        );
        let buf = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            parse_response(buf, &key),
            Err(HandshakeError::Status {
                code: 404,
                reason: "Not Found".into()
            })
        );
    }

    #[test]
    fn request_carries_key_and_path() {
        let key = *b"dGhlIHNhbXBsZSBub25jZQ==";
        let req = String::from_utf8(request("/app/k?protocol=7", "127.0.0.1:1", &key)).unwrap();
        assert!(req.starts_with("GET /app/k?protocol=7 HTTP/1.1\r\n"));
        assert!(req.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
    }
}
