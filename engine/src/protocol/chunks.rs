//! Large events in chunks: the JSON of Pusher's published chunking protocol
//! (pusher/pusher-channels-chunking-example, `bindWithChunking` in `pusher-js/client.html`).
//! An event too large for one message travels as `chunked-{event}` (`client-chunked-{event}`
//! from a client) events whose `data` is `{"id":..,"index":..,"chunk":..,"final":..}`; the
//! receiver joins the `chunk`s of one `id` in `index` order once it has the `final` one.
//! Raptor adds `"count"` (the number of chunks) to the events it splits, so a receiver can
//! show progress; the example's reassembly ignores fields it does not know.
//!
//! [`split`] cuts an HTTP API event's `data` into those `data` strings; [`parse`] reads one
//! a client sent. The rules about a sequence of chunks are `session::chunks` (no JSON).

use serde::{Deserialize, Serialize};

/// The event-name prefix of a chunk published through the HTTP API.
pub const API_PREFIX: &str = "chunked-";
/// The event-name prefix of a chunk a client sends (client events start with `client-`).
pub const CLIENT_PREFIX: &str = "client-chunked-";
/// Longest `id` a client may give its chunks, in characters.
pub const MAX_ID_CHARS: usize = 64;

/// The smallest `max_event_data_bytes` a split works with: the envelope of a chunk
/// (id, index, count, field names) is ~110 bytes, and every chunk must carry at least one
/// character (up to 6 bytes escaped).
pub const MIN_DATA_BYTES: usize = 256;

/// One chunk as a client sent it (only what the server checks is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub id: String,
    pub index: u64,
    /// Bytes of the `chunk` string (UTF-8, unescaped): what counts against the whole's cap.
    pub len: usize,
    pub last: bool,
}

/// Why a client's chunk `data` is not one: the client's fault; the chunk is refused with
/// `pusher:error` 4316 and the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("data must be an object with id (string), index (integer), chunk (string) and final (boolean)")]
    Shape,
    #[error("id must be 1 to 64 characters")]
    Id,
}

/// Reads a client chunk's `data` (the JSON text the client sent, as
/// `ClientMsg::ClientEvent` keeps it). Unknown fields (`count`) are ignored.
pub fn parse(data: &str) -> Result<Chunk, ParseError> {
    #[derive(Deserialize)]
    struct Wire {
        id: String,
        index: u64,
        chunk: String,
        #[serde(rename = "final")]
        last: bool,
    }
    let mut bytes = data.as_bytes().to_vec();
    let w: Wire = simd_json::serde::from_slice(&mut bytes).map_err(|_| ParseError::Shape)?;
    let chars = w.id.chars().count();
    if chars == 0 || chars > MAX_ID_CHARS {
        return Err(ParseError::Id);
    }
    Ok(Chunk {
        id: w.id,
        index: w.index,
        len: w.chunk.len(),
        last: w.last,
    })
}

#[derive(Serialize)]
struct Wire<'a> {
    id: &'a str,
    index: usize,
    chunk: &'a str,
    #[serde(rename = "final")]
    last: bool,
    count: usize,
}

/// Cuts `data` into the `data` strings of its chunk events, each at most `max_data_bytes`
/// (the per-event limit, so every chunk is an ordinary event to every client and SDK).
///
/// Cuts fall between characters, never inside one, so every `chunk` is a valid string and
/// their concatenation is `data` byte for byte. A chunk is not valid JSON on its own (it is
/// a piece of `data`'s text), only the whole is. `max_data_bytes` must be at least
/// [`MIN_DATA_BYTES`] (config validation ensures it).
pub fn split(data: &str, id: &str, max_data_bytes: usize) -> Vec<String> {
    // The envelope at its largest (20-digit index and count, `false`), so a cut never has
    // to be redone once the real count is known.
    let envelope = serde_json_len(&Wire {
        id,
        index: usize::MAX,
        chunk: "",
        last: false,
        count: usize::MAX,
    });
    let budget = max_data_bytes.saturating_sub(envelope).max(6);
    let mut pieces = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (at, c) in data.char_indices() {
        let cost = escaped_len(c);
        if used + cost > budget && at > start {
            pieces.push(&data[start..at]);
            (start, used) = (at, 0);
        }
        used += cost;
    }
    if start < data.len() || pieces.is_empty() {
        pieces.push(&data[start..]);
    }
    let count = pieces.len();
    pieces
        .iter()
        .enumerate()
        .map(|(index, chunk)| {
            let s = simd_json::to_string(&Wire {
                id,
                index,
                chunk,
                last: index + 1 == count,
                count,
            })
            .expect("in-memory serialization");
            debug_assert!(s.len() <= max_data_bytes.max(envelope + 6));
            s
        })
        .collect()
}

/// What `c` takes inside a JSON string, at most (an escape for `"`, `\` and controls).
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

fn serde_json_len<T: Serialize>(v: &T) -> usize {
    simd_json::to_string(v)
        .expect("in-memory serialization")
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(pieces: &[String]) -> String {
        let mut out = String::new();
        for (i, p) in pieces.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(p).unwrap();
            assert_eq!(v["id"], "abc");
            assert_eq!(v["index"], i);
            assert_eq!(v["count"], pieces.len());
            assert_eq!(v["final"], i + 1 == pieces.len());
            out.push_str(v["chunk"].as_str().unwrap());
        }
        out
    }

    #[test]
    fn splits_within_the_limit_and_joins_back_byte_exact() {
        let data: String = (0..5000)
            .map(|i| ["a", "\"", "\\", "é", "😀", "\n", "\u{1}"][i % 7])
            .collect();
        let pieces = split(&data, "abc", 300);
        assert!(pieces.len() > 1);
        assert!(
            pieces.iter().all(|p| p.len() <= 300),
            "a piece over the limit"
        );
        assert_eq!(join(&pieces), data);
    }

    #[test]
    fn a_small_or_empty_event_is_one_final_chunk() {
        assert_eq!(
            split("hi", "abc", 1000),
            vec![r#"{"id":"abc","index":0,"chunk":"hi","final":true,"count":1}"#]
        );
        assert_eq!(join(&split("", "abc", 1000)), "");
    }

    #[test]
    fn parses_a_client_chunk_and_ignores_unknown_fields() {
        let c = parse(r#"{"id":"x1","index":3,"chunk":"héllo","final":true,"count":4}"#).unwrap();
        assert_eq!(
            c,
            Chunk {
                id: "x1".into(),
                index: 3,
                len: 6,
                last: true
            }
        );
        assert_eq!(
            parse(r#"{"id":"x","index":-1,"chunk":"","final":false}"#),
            Err(ParseError::Shape)
        );
        assert_eq!(parse(r#""text""#), Err(ParseError::Shape));
        let long = format!(
            r#"{{"id":"{}","index":0,"chunk":"","final":false}}"#,
            "x".repeat(65)
        );
        assert_eq!(parse(&long), Err(ParseError::Id));
    }
}
