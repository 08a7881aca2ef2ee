//! Where the bytes handed to tungstenite stand in the WebSocket frame structure: only enough
//! of RFC 6455's framing (the header's lengths, FIN and opcode) to tell when everything fed
//! so far ends at a message boundary.
//!
//! Why: tungstenite keeps a read buffer (1 KiB for a Pusher session) and the state of a
//! message being received inside its `WebSocketContext`, and says nothing of either. At a
//! message boundary that context holds nothing a new one would not, so the read loop drops
//! it and an idle connection keeps neither ([`super::reader`]). Validating frames stays
//! tungstenite's job: bytes it refuses end the connection, so this tracker's view of them
//! never matters.

/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEADER: usize = 14;

/// The framing state of a byte stream, fed in order.
#[derive(Debug, Default)]
pub struct Boundary {
    /// Header bytes of the current frame seen so far (0 between frames).
    head: [u8; MAX_HEADER],
    head_len: u8,
    /// Payload bytes of the current frame still to come.
    left: u64,
    /// A fragmented message is open: a text or binary frame without FIN arrived and its
    /// final continuation has not.
    open: bool,
}

impl Boundary {
    /// Follows `bytes`, the next bytes of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.left > 0 {
                let k = bytes
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                self.left -= k as u64;
                bytes = &bytes[k..];
                continue;
            }
            self.head[usize::from(self.head_len)] = bytes[0];
            self.head_len += 1;
            bytes = &bytes[1..];
            let head = &self.head[..usize::from(self.head_len)];
            if let Some((need, len)) = parse(head) {
                if head.len() == need {
                    self.end_header(len);
                }
            }
        }
    }

    /// Everything fed so far ends a whole message (control frames included): no frame and
    /// no fragmented message is under way.
    pub fn at_message_boundary(&self) -> bool {
        self.head_len == 0 && self.left == 0 && !self.open
    }

    fn end_header(&mut self, len: u64) {
        let fin = self.head[0] & 0x80 != 0;
        match self.head[0] & 0x0F {
            // Control frames (close, ping, pong) may come between fragments: no change.
            0x8.. => {}
            // A continuation: FIN ends the fragmented message.
            0x0 => self.open &= !fin,
            // Text, binary (or a reserved opcode, which tungstenite refuses).
            _ => self.open = !fin,
        }
        self.head_len = 0;
        self.left = len;
    }
}

/// A frame header's full length (with the extended length and the mask) and, once the
/// extended length is in, the payload's length: `None` until enough of `head` is known.
fn parse(head: &[u8]) -> Option<(usize, u64)> {
    let b1 = *head.get(1)?;
    let (ext, short) = match b1 & 0x7F {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    let need = 2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 };
    let len = match short {
        Some(n) => n,
        None => {
            let bytes = head.get(2..2 + ext)?;
            bytes.iter().fold(0u64, |n, b| n << 8 | u64::from(*b))
        }
    };
    Some((need, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked frame: `b0` (FIN and opcode) and `len` payload bytes.
    fn frame(b0: u8, len: usize) -> Vec<u8> {
        let mut f = vec![b0];
        match len {
            0..=125 => f.push(0x80 | len as u8),
            126..=0xFFFF => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.resize(f.len() + len, b'x');
        f
    }

    /// Feeds `bytes` one split at a time (every split point), checking the boundary after
    /// the whole against `want`, and that no proper prefix cut inside a frame reads as one.
    fn check(bytes: &[u8], frame_ends: &[usize], want: bool) {
        for split in 0..=bytes.len() {
            let mut b = Boundary::default();
            b.feed(&bytes[..split]);
            if split > 0 && split < bytes.len() && !frame_ends.contains(&split) {
                assert!(
                    !b.at_message_boundary(),
                    "mid-frame at {split} reads as a boundary"
                );
            }
            b.feed(&bytes[split..]);
            assert_eq!(b.at_message_boundary(), want, "split at {split}");
        }
    }

    #[test]
    fn whole_messages_of_every_length_form_end_at_a_boundary() {
        for len in [0, 1, 125, 126, 300, 0xFFFF, 0x1_0000] {
            check(&frame(0x81, len), &[], true);
        }
        let mut two = frame(0x81, 5);
        let end = two.len();
        two.extend(frame(0x89, 3)); // a ping
        check(&two, &[end], true);
    }

    #[test]
    fn a_fragmented_message_is_open_until_its_final_continuation() {
        let first = frame(0x01, 4); // text, no FIN
        let ping = frame(0x89, 2);
        let mid = frame(0x00, 4); // continuation, no FIN
        let last = frame(0x80, 4); // continuation, FIN
        let mut all = Vec::new();
        for (f, open_after) in [(&first, true), (&ping, true), (&mid, true), (&last, false)] {
            all.extend_from_slice(f);
            let mut b = Boundary::default();
            b.feed(&all);
            assert_eq!(b.at_message_boundary(), !open_after);
        }
        check(&all, &[], true);
    }

    #[test]
    fn a_partial_header_is_not_a_boundary() {
        let f = frame(0x81, 70_000);
        for cut in 1..14 {
            let mut b = Boundary::default();
            b.feed(&f[..cut]);
            assert!(!b.at_message_boundary(), "header cut at {cut}");
        }
    }
}
