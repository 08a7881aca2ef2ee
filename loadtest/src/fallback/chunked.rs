//! An incremental decoder for `Transfer-Encoding: chunked` response bodies.
//!
//! Why hand-written: the only HTTP crate in the load generator's tree is `httparse`, which
//! parses heads and one chunk-size line (`parse_chunk_size`) but keeps no state between
//! reads; a streaming response (xhr_streaming, SSE) arrives as an endless chunked body cut
//! anywhere by the kernel, so the decoder must resume mid-size-line, mid-data and mid-CRLF.
//! Pulling in hyper or similar for this would cost more than these ~100 lines. The
//! publisher's [`crate::http_publisher`] only needs to find the end of a whole body, which is
//! a different (stateless) question.

use thiserror::Error;

/// Longest chunk-size line (digits, extensions) accepted.
const MAX_SIZE_LINE: usize = 1024;
/// Largest single chunk accepted; servers write a few KiB at a time.
const MAX_CHUNK: u64 = 1 << 30;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChunkedError {
    #[error("bad chunk size line")]
    BadSize,
    #[error("chunk data not followed by CRLF")]
    MissingCrlf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// reading hex digits of a size line (`digits`: how many so far)
    Size {
        size: u64,
        digits: usize,
    },
    /// after the digits: an extension or the CR, up to the LF
    SizeRest {
        size: u64,
    },
    /// this many data bytes still to come
    Data(u64),
    /// the CR LF after a chunk's data (`cr`: the CR was seen)
    DataEnd {
        cr: bool,
    },
    /// after the last (zero) chunk: trailer lines (`empty`: the current line has no bytes yet)
    Trailer {
        empty: bool,
    },
    Done,
}

/// Decoder state of one response body; a few bytes, no buffer.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    line: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            state: State::Size { size: 0, digits: 0 },
            line: 0,
        }
    }
}

impl Chunked {
    /// Whether the terminating zero chunk and trailer have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, appending body bytes to `out`. Returns how many input bytes were
    /// used: all of them unless the body ended, in which case the rest belongs to the next
    /// response on the connection.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkedError> {
        let mut at = 0;
        while at < input.len() {
            let b = input[at];
            match self.state {
                State::Size { size, digits } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        let size = size * 16 + u64::from(d);
                        if size > MAX_CHUNK {
                            return Err(ChunkedError::BadSize);
                        }
                        self.state = State::Size {
                            size,
                            digits: digits + 1,
                        };
                    } else if digits == 0 {
                        return Err(ChunkedError::BadSize);
                    } else {
                        self.state = State::SizeRest { size };
                        continue; // look at this byte again
                    }
                    self.count_line()?;
                }
                State::SizeRest { size } => {
                    if b == b'\n' {
                        self.line = 0;
                        self.state = if size == 0 {
                            State::Trailer { empty: true }
                        } else {
                            State::Data(size)
                        };
                    } else {
                        self.count_line()?;
                    }
                }
                State::Data(left) => {
                    let n = (input.len() - at).min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[at..at + n]);
                    at += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd { cr: false }
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                State::DataEnd { cr } => match b {
                    b'\r' if !cr => self.state = State::DataEnd { cr: true },
                    b'\n' => self.state = State::Size { size: 0, digits: 0 },
                    _ => return Err(ChunkedError::MissingCrlf),
                },
                State::Trailer { empty } => match b {
                    b'\n' if empty => {
                        self.state = State::Done;
                        return Ok(at + 1);
                    }
                    b'\n' => self.state = State::Trailer { empty: true },
                    b'\r' => {}
                    _ => self.state = State::Trailer { empty: false },
                },
                State::Done => return Ok(at),
            }
            at += 1;
        }
        Ok(at)
    }

    fn count_line(&mut self) -> Result<(), ChunkedError> {
        self.line += 1;
        if self.line > MAX_SIZE_LINE {
            return Err(ChunkedError::BadSize);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"2\r\no\n\r\n1A;ext=1\r\na[\"x\"]\nabcdefghijklmnopqrs\r\n0\r\nx-t: 1\r\n\r\nHTTP";

    fn decode_in_pieces(input: &[u8], piece: usize) -> (Vec<u8>, usize, bool) {
        let mut d = Chunked::default();
        let mut out = Vec::new();
        let mut used = 0;
        for part in input.chunks(piece) {
            let n = d.feed(part, &mut out).unwrap();
            used += n;
            if d.is_done() {
                break;
            }
            assert_eq!(n, part.len(), "unfinished body uses all input");
        }
        (out, used, d.is_done())
    }

    #[test]
    fn whole_body_at_once_stops_at_its_end() {
        let (out, used, done) = decode_in_pieces(BODY, BODY.len());
        assert_eq!(out, b"o\na[\"x\"]\nabcdefghijklmnopqrs");
        assert!(done);
        assert_eq!(&BODY[used..], b"HTTP");
    }

    #[test]
    fn any_split_gives_the_same_bytes() {
        for piece in 1..BODY.len() {
            let (out, used, done) = decode_in_pieces(BODY, piece);
            assert_eq!(out, b"o\na[\"x\"]\nabcdefghijklmnopqrs", "piece {piece}");
            assert!(done, "piece {piece}");
            assert_eq!(used, BODY.len() - 4, "piece {piece}");
        }
    }

    #[test]
    fn endless_stream_is_never_done() {
        let mut d = Chunked::default();
        let mut out = Vec::new();
        assert_eq!(d.feed(b"2\r\nh\n\r\n2\r\nh", &mut out), Ok(11));
        assert!(!d.is_done());
        assert_eq!(out, b"h\nh");
    }

    #[test]
    fn garbage_is_refused() {
        let mut out = Vec::new();
        assert_eq!(
            Chunked::default().feed(b"zz\r\n", &mut out),
            Err(ChunkedError::BadSize)
        );
        assert_eq!(
            Chunked::default().feed(b"1\r\nab", &mut out),
            Err(ChunkedError::MissingCrlf)
        );
        assert_eq!(
            Chunked::default().feed(b"fffffffffff\r\n", &mut out),
            Err(ChunkedError::BadSize)
        );
    }
}
