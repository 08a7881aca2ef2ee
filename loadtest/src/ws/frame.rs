//! WebSocket frame encoding (client → server, masked) and decoding (server → client, unmasked).

use thiserror::Error;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A frame the server sent us is not one a server may send. The server is at fault and
/// the connection cannot continue (RFC 6455 §5.1: the client must fail it).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("server frame is masked")]
    Masked,
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    #[error("control frame is fragmented or longer than 125 bytes")]
    BadControlFrame,
    #[error("frame of {len} bytes exceeds the {max} byte limit")]
    TooLarge { len: u64, max: usize },
}

/// One decoded server frame, borrowing its payload from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: u8,
    pub payload: &'a [u8],
}

/// Decodes one frame from the front of `buf`. Returns the frame and the bytes it used,
/// or `None` when `buf` holds only part of a frame.
pub fn decode(buf: &[u8], max_len: usize) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(FrameError::ReservedBits);
    }
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin || (b1 & 0x7F) > 125 {
                return Err(FrameError::BadControlFrame);
            }
        }
        other => return Err(FrameError::UnknownOpcode(other)),
    }
    let (len, header) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(be), 10)
        }
        short => (u64::from(short), 2),
    };
    if len > max_len as u64 {
        return Err(FrameError::TooLarge { len, max: max_len });
    }
    let end = header + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    let frame = Frame {
        fin,
        opcode,
        payload: &buf[header..end],
    };
    Ok(Some((frame, end)))
}

/// Appends one final, masked client frame to `out`. The mask only has to be unpredictable
/// to defeat cache poisoning through proxies (RFC 6455 §10.3), not cryptographically strong.
pub fn encode_masked(opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// Reads the status code of a close frame's payload, if it carries one.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a server does with our frame: check the mask bit, unmask.
    fn server_decode(buf: &[u8]) -> (u8, Vec<u8>) {
        assert_eq!(buf[1] & 0x80, 0x80, "client frames must be masked");
        let (len, mut at) = match buf[1] & 0x7F {
            126 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        assert_eq!(buf.len(), at + len);
        let payload = buf[at..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        (buf[0], payload)
    }

    #[test]
    fn masked_roundtrip_all_length_forms() {
        for len in [0usize, 1, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            encode_masked(OP_TEXT, &payload, [1, 2, 3, 4], &mut out);
            let (b0, back) = server_decode(&out);
            assert_eq!(b0, 0x81);
            assert_eq!(back, payload, "len {len}");
        }
    }

    #[test]
    fn masking_changes_bytes() {
        let mut out = Vec::new();
        encode_masked(OP_TEXT, b"hello", [0xAA, 0xBB, 0xCC, 0xDD], &mut out);
        assert_ne!(&out[6..], b"hello");
    }

    #[test]
    fn decodes_short_text_frame() {
        let buf = [0x81, 0x02, b'h', b'i', 0xFF];
        let (f, used) = decode(&buf, 1024).unwrap().unwrap();
        assert_eq!(
            f,
            Frame {
                fin: true,
                opcode: OP_TEXT,
                payload: b"hi"
            }
        );
        assert_eq!(used, 4);
    }

    #[test]
    fn decodes_extended_lengths() {
        let mut buf = vec![0x81, 126, 0x01, 0x00];
        buf.extend(std::iter::repeat_n(b'a', 256));
        let (f, used) = decode(&buf, 1 << 20).unwrap().unwrap();
        assert_eq!((f.payload.len(), used), (256, 260));

        let mut buf = vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        buf.extend(std::iter::repeat_n(0u8, 65536));
        let (f, used) = decode(&buf, 1 << 20).unwrap().unwrap();
        assert_eq!((f.opcode, f.payload.len(), used), (OP_BINARY, 65536, 65546));
    }

    #[test]
    fn partial_frames_wait_for_more() {
        assert_eq!(decode(&[0x81], 1024), Ok(None));
        assert_eq!(decode(&[0x81, 126, 0x01], 1024), Ok(None));
        assert_eq!(decode(&[0x81, 0x05, b'h'], 1024), Ok(None));
    }

    #[test]
    fn rejects_what_servers_must_not_send() {
        assert_eq!(
            decode(&[0x81, 0x80, 0, 0, 0, 0], 1024),
            Err(FrameError::Masked)
        );
        assert_eq!(decode(&[0xC1, 0x00], 1024), Err(FrameError::ReservedBits));
        assert_eq!(
            decode(&[0x83, 0x00], 1024),
            Err(FrameError::UnknownOpcode(3))
        );
        assert_eq!(
            decode(&[0x09, 0x00], 1024),
            Err(FrameError::BadControlFrame)
        );
        assert_eq!(
            decode(&[0x81, 126, 0x10, 0x00], 1024),
            Err(FrameError::TooLarge {
                len: 4096,
                max: 1024
            })
        );
    }

    #[test]
    fn close_code_is_big_endian() {
        assert_eq!(close_code(&[0x0F, 0xA0, b'x']), Some(4000));
        assert_eq!(close_code(&[]), None);
    }
}
