//! The stamped payload a publisher sends and a receiver reads back.
//!
//! The `data` of every published event is a JSON object `{"seq":N,"t":NS,"pad":"xx…"}`:
//! `seq` counts events per stream from 0 (loss and order checks; a stream is what one
//! publisher sends to one channel, and when several publishers share a channel the ones
//! after the first add `"s":K`, their stream number on that channel), `t` is
//! [`crate::clock::now_ns`] at send time (latency), and `pad` fills the string to the
//! requested size so "64-byte payload" means 64 bytes of `data` before JSON escaping.

use serde::Deserialize;

/// What a receiver needs from a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Stamp {
    /// sequence number within the stream, from 0
    pub seq: u64,
    /// send time, nanoseconds on the machine's monotonic clock ([`crate::clock::now_ns`])
    pub t: u64,
    /// the publisher's stream on this channel (0 when one publisher owns the channel)
    #[serde(default)]
    pub s: u32,
}

/// Smallest payload that still carries a stamp with room to grow; smaller sizes get no padding.
pub const MIN_PAYLOAD_BYTES: usize = 32;

/// Builds the `data` string for one event, padded to `size` bytes when the stamp fits.
pub fn encode(seq: u64, t: u64, size: usize) -> String {
    encode_stream(0, seq, t, size)
}

/// [`encode`] for stream `stream` of a channel several publishers share; stream 0 writes no
/// `s`, so single-publisher payloads are unchanged.
pub fn encode_stream(stream: u32, seq: u64, t: u64, size: usize) -> String {
    let bare = if stream == 0 {
        format!(r#"{{"seq":{seq},"t":{t},"pad":""}}"#)
    } else {
        format!(r#"{{"s":{stream},"seq":{seq},"t":{t},"pad":""}}"#)
    };
    let pad = size.saturating_sub(bare.len());
    let mut out = String::with_capacity(bare.len() + pad);
    out.push_str(&bare[..bare.len() - 2]);
    out.extend(std::iter::repeat_n('x', pad));
    out.push_str("\"}");
    out
}

/// Reads a stamp back from a (JSON-unescaped) `data` string; `None` if it is not ours.
pub fn decode(data: &str) -> Option<Stamp> {
    serde_json::from_str(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_requested_size() {
        let s = encode(7, 123_456_789, 64);
        assert_eq!(s.len(), 64);
        assert_eq!(
            decode(&s),
            Some(Stamp {
                seq: 7,
                t: 123_456_789,
                s: 0
            })
        );
    }

    #[test]
    fn too_small_size_keeps_stamp() {
        let s = encode(u64::MAX, u64::MAX, 8);
        assert_eq!(
            decode(&s),
            Some(Stamp {
                seq: u64::MAX,
                t: u64::MAX,
                s: 0
            })
        );
    }

    #[test]
    fn second_stream_is_numbered_and_same_size() {
        let s = encode_stream(3, 9, 5, 64);
        assert_eq!(s.len(), 64);
        assert_eq!(decode(&s), Some(Stamp { seq: 9, t: 5, s: 3 }));
        assert!(!encode_stream(0, 9, 5, 64).contains("\"s\""));
    }

    #[test]
    fn foreign_data_is_not_a_stamp() {
        assert_eq!(decode(r#"{"hello":"world"}"#), None);
        assert_eq!(decode("plain"), None);
    }
}
