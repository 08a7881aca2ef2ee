//! Server-to-client messages, encoded once into shared [`Bytes`]: a [`Frame`] is the JSON
//! payload with a WebSocket header in front. A WebSocket writes it as is; another transport
//! (an HTTP stream, a poll answer) writes [`Frame::payload`] between its own prefix and
//! suffix, without copying it. A leaf: below `protocol` (which serializes events into a
//! [`FrameBuf`]), `shard` and `outbox`; it imports nothing of the crate.
//!
//! Why hand-written: tungstenite frames a message into each connection's own write buffer;
//! fanout needs the frame bytes built once and shared by every recipient. Server frames are
//! unmasked (RFC 6455 §5.1), so the encoding is only a header in front of the payload.

use bytes::{BufMut, Bytes, BytesMut};

/// Largest header of a server frame: 1 byte opcode, 1 byte length marker, 8 bytes length.
pub const MAX_HEADER: usize = 10;

/// One server message, encoded once and shared by every recipient and every transport: the
/// bytes of a WebSocket text frame, and where its payload starts. Cloning shares the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
    /// Length of the WebSocket header in front of the payload (2, 4 or 10).
    head: u8,
}

impl Frame {
    /// A text frame holding a copy of `payload` (for a payload that arrived elsewhere, such
    /// as from another node).
    pub fn text(payload: &[u8]) -> Frame {
        let mut f = FrameBuf::with_capacity(payload.len());
        f.payload().extend_from_slice(payload);
        f.finish_text()
    }

    /// The whole WebSocket frame, as a socket writes it.
    pub fn ws(&self) -> &Bytes {
        &self.bytes
    }

    /// The WebSocket frame, by value (shares the bytes).
    pub fn into_ws(self) -> Bytes {
        self.bytes
    }

    /// The message itself (the JSON text), without the WebSocket header.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[usize::from(self.head)..]
    }

    /// The payload as shared bytes (no copy).
    pub fn payload_bytes(&self) -> Bytes {
        self.bytes.slice(usize::from(self.head)..)
    }

    /// Bytes of the WebSocket frame.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true for a finished frame (its header is at least 2 bytes); for clippy's
    /// `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A buffer with room for a frame header in front, so a JSON payload can be serialized
/// straight into it and framed without a copy.
pub struct FrameBuf {
    buf: BytesMut,
}

impl FrameBuf {
    pub fn with_capacity(payload: usize) -> FrameBuf {
        let mut buf = BytesMut::with_capacity(MAX_HEADER + payload);
        buf.put_bytes(0, MAX_HEADER);
        FrameBuf { buf }
    }

    /// The payload writer.
    pub fn payload(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Finishes a text frame (FIN + opcode 1).
    pub fn finish_text(self) -> Frame {
        let (bytes, head) = self.finish(0x81);
        Frame { bytes, head }
    }

    /// Finishes a binary frame (FIN + opcode 2); only the test echo sends one.
    pub fn finish_binary(self) -> Frame {
        let (bytes, head) = self.finish(0x82);
        Frame { bytes, head }
    }

    /// The frame, and the length of its header.
    fn finish(mut self, first: u8) -> (Bytes, u8) {
        let len = self.buf.len() - MAX_HEADER;
        let mut head = [0u8; MAX_HEADER];
        head[0] = first;
        let hlen = if len < 126 {
            head[1] = len as u8;
            2
        } else if len <= u16::MAX as usize {
            head[1] = 126;
            head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            head[1] = 127;
            head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        let start = MAX_HEADER - hlen;
        self.buf[start..MAX_HEADER].copy_from_slice(&head[..hlen]);
        let mut b = self.buf.freeze();
        let _ = b.split_to(start);
        (b, hlen as u8)
    }
}

/// A binary frame holding `payload` (Pusher never sends one; the test echo does).
pub fn binary_frame(payload: &[u8]) -> Frame {
    let mut f = FrameBuf::with_capacity(payload.len());
    f.payload().extend_from_slice(payload);
    f.finish_binary()
}

/// A close frame with a status code and a short reason (truncated to fit 125 bytes).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut reason = &reason.as_bytes()[..reason.len().min(123)];
    while std::str::from_utf8(reason).is_err() {
        reason = &reason[..reason.len() - 1];
    }
    let mut b = BytesMut::with_capacity(4 + reason.len());
    b.put_u8(0x88);
    b.put_u8((2 + reason.len()) as u8);
    b.put_u16(code);
    b.extend_from_slice(reason);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tungstenite::protocol::frame::{coding::OpCode, FrameHeader};

    proptest! {
        // Round trip through tungstenite's own parser: header fields and payload survive.
        #[test]
        fn text_frames_parse_back(payload in proptest::collection::vec(any::<u8>(), 0..70_000)) {
            let frame = Frame::text(&payload);
            prop_assert_eq!(frame.payload(), &payload[..]);
            prop_assert_eq!(frame.payload_bytes(), &payload[..]);
            let f = frame.ws();
            let mut cur = std::io::Cursor::new(&f[..]);
            let (h, len) = FrameHeader::parse(&mut cur).unwrap().unwrap();
            prop_assert!(h.is_final);
            prop_assert_eq!(h.opcode, OpCode::Data(tungstenite::protocol::frame::coding::Data::Text));
            prop_assert!(h.mask.is_none());
            prop_assert_eq!(len as usize, payload.len());
            prop_assert_eq!(&f[cur.position() as usize..], &payload[..]);
        }
    }

    #[test]
    fn close_frame_layout() {
        let f = close_frame(4100, "over capacity");
        assert_eq!(&f[..4], &[0x88, 15, 0x10, 0x04]);
        assert_eq!(&f[4..], b"over capacity");
        let long = "é".repeat(100);
        assert!(close_frame(1000, &long).len() <= 127);
    }
}
