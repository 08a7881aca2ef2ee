//! The bytes of the HTTP transports: pusher-js's SockJS-style framing (`o`, `a[...]`, `h`,
//! `c[code,"reason"]`, one per `\n`-terminated line; docs/protocol.md "HTTP transports") and
//! Server-Sent Events (`id:`/`data:` lines, a blank line after each event).
//!
//! Pusher events travel inside `a` frames as JSON *strings*, and every frame is ASCII: the
//! client counts its response in UTF-16 units to decide when to re-open a stream
//! ([`STREAM_LIMIT`]), so a frame whose bytes equal its characters keeps the server's count
//! and the client's the same. serde_json does the escaping; [`Ascii`] only asks it to escape
//! non-ASCII characters as well (`\uXXXX`, surrogate pairs above the BMP).

use std::io::{self, Write};

/// Opens a session (once; a second `o` on a live session is fatal to pusher-js).
pub const OPEN: &[u8] = b"o\n";
/// A heartbeat: activity for the client (streaming answers it with an empty send).
pub const HEARTBEAT: &[u8] = b"h\n";
/// An SSE comment line: keeps an idle event stream (and the proxies on its way) alive.
pub const SSE_HEARTBEAT: &[u8] = b":\n\n";
/// Characters after which pusher-js re-opens a stream (its `MAX_BUFFER_LENGTH`, 256 KiB):
/// once a stream's response passes it, nothing more is written on that response, since the
/// client drops what arrives after it decided to re-open.
pub const STREAM_LIMIT: usize = 256 * 1024;

/// serde_json's compact formatter, escaping non-ASCII characters too.
struct Ascii;

impl serde_json::ser::Formatter for Ascii {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, s: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if c.is_ascii() {
                continue;
            }
            w.write_all(&s.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                write!(w, "\\u{u:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&s.as_bytes()[start..])
    }
}

/// Appends `s` as an ASCII-only JSON string.
fn json_string(out: &mut Vec<u8>, s: &str) {
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, Ascii);
    serde::Serialize::serialize(s, &mut ser).expect("writing to memory cannot fail");
}

/// Appends an `a` frame carrying `payloads` (Pusher event JSON, UTF-8) as strings.
pub fn messages<'a>(out: &mut Vec<u8>, payloads: impl IntoIterator<Item = &'a [u8]>) {
    out.extend_from_slice(b"a[");
    let start = out.len();
    for p in payloads {
        if out.len() > start {
            out.push(b',');
        }
        // Frames are encoded by the server from strings, so always UTF-8.
        json_string(out, &String::from_utf8_lossy(p));
    }
    out.extend_from_slice(b"]\n");
}

/// Appends a close frame: `c[code,"reason"]`.
pub fn close(out: &mut Vec<u8>, code: u16, reason: &str) {
    write!(out, "c[{code},").expect("writing to memory cannot fail");
    json_string(out, reason);
    out.extend_from_slice(b"]\n");
}

/// Appends one Server-Sent Event: `id:` (when there is one) and `data:` with the Pusher
/// event's JSON, which holds no line break (JSON escapes them inside strings).
pub fn sse_event(out: &mut Vec<u8>, id: Option<&str>, payload: &[u8]) {
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\n\n");
}

/// Why an `xhr_send` body was refused (400).
#[derive(Debug, thiserror::Error)]
#[error("the body must be a JSON array of strings (Pusher messages): {0}")]
pub struct BadSend(String);

/// The messages of an `xhr_send` body: a JSON array of strings, each a Pusher message
/// (pusher-js sends one; `[]` is its ping).
pub fn parse_send(body: &[u8]) -> Result<Vec<String>, BadSend> {
    serde_json::from_slice(body).map_err(|e| BadSend(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_are_exact_and_ascii() {
        let mut out = Vec::from(OPEN);
        messages(
            &mut out,
            [
                br#"{"event":"a","data":"{\"x\":1}"}"#.as_slice(),
                "{\"data\":\"é😀\"}".as_bytes(),
            ],
        );
        close(&mut out, 4200, "server shutting down");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "o\na[\"{\\\"event\\\":\\\"a\\\",\\\"data\\\":\\\"{\\\\\\\"x\\\\\\\":1}\\\"}\",\"{\\\"data\\\":\\\"\\u00e9\\ud83d\\ude00\\\"}\"]\nc[4200,\"server shutting down\"]\n"
        );
        let mut empty = Vec::new();
        messages(&mut empty, std::iter::empty());
        assert_eq!(empty, b"a[]\n");
    }

    #[test]
    fn sends_parse_or_are_refused() {
        assert_eq!(
            parse_send(br#"["{\"event\":\"pusher:ping\"}"]"#).unwrap(),
            [r#"{"event":"pusher:ping"}"#]
        );
        assert!(parse_send(b"[]").unwrap().is_empty());
        for bad in [&b""[..], b"{}", b"[1]", b"[\"a\"", b"null"] {
            assert!(
                parse_send(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        /// Any payload comes back exactly through the client's decoding (JSON.parse of the
        /// array, each element a string), and the frame is ASCII, one line.
        #[test]
        fn a_frames_round_trip(payloads in prop::collection::vec(".*", 0..5)) {
            let mut out = Vec::new();
            messages(&mut out, payloads.iter().map(|p| p.as_bytes()));
            prop_assert!(out.is_ascii());
            prop_assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
            let back: Vec<String> = serde_json::from_slice(&out[1..out.len() - 1]).unwrap();
            prop_assert_eq!(back, payloads);
        }
    }
}
