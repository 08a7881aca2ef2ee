//! SockJS-style framing as pusher-js's xhr_streaming and xhr_polling read it: `\n`-terminated
//! lines, the first character naming the frame (`o` open, `h` heartbeat, `a[…]` a JSON array
//! of JSON-encoded Pusher messages, `c[code,"reason"]` close; `m` is SockJS 0.1's single
//! message). ../shared/reference/http-fallback.md §2.3.

use std::borrow::Cow;

use thiserror::Error;

/// Longest line kept while waiting for its `\n`; a Pusher event is at most ~10 KB of data,
/// and the server batches a few into one `a` frame.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SockJsError {
    #[error("sockjs line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("bad sockjs frame {0:?}: {1}")]
    Bad(String, String),
}

/// One frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `o`, with whatever JSON followed (pusher-js reads `hostname` from it)
    Open,
    Heartbeat,
    /// the Pusher messages of an `a` frame (or an `m` frame), each a JSON text
    Messages(Vec<Cow<'a, str>>),
    Close {
        code: u16,
        reason: String,
    },
    /// anything else; pusher-js ignores it too
    Other,
}

/// Parses one line (without its `\n`; a trailing `\r` is tolerated on `a`/`c`/`m`).
pub fn parse(line: &[u8]) -> Result<Frame<'_>, SockJsError> {
    let bad = |e: &dyn std::fmt::Display| {
        let shown = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        SockJsError::Bad(shown, e.to_string())
    };
    let Some((&kind, rest)) = line.split_first() else {
        return Ok(Frame::Other);
    };
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    Ok(match kind {
        b'o' => Frame::Open,
        b'h' => Frame::Heartbeat,
        b'a' => Frame::Messages(serde_json::from_slice(rest).map_err(|e| bad(&e))?),
        b'm' => Frame::Messages(vec![serde_json::from_slice(rest).map_err(|e| bad(&e))?]),
        b'c' => {
            let (code, reason): (u16, String) =
                serde_json::from_slice(rest).map_err(|e| bad(&e))?;
            Frame::Close { code, reason }
        }
        _ => Frame::Other,
    })
}

/// Cuts a byte stream into `\n`-terminated lines, keeping only a partial last line between
/// reads.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Calls `each` with every complete line (without `\n`) of what has arrived so far plus
    /// `data`. Stops at the first error `each` returns.
    pub fn feed<E>(
        &mut self,
        data: &[u8],
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<SockJsError>,
    {
        let mut at = 0;
        if !self.partial.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                None => return self.keep(data),
                Some(i) => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&data[..i]);
                    each(&line)?;
                    at = i + 1;
                }
            }
        }
        while let Some(i) = data[at..].iter().position(|&b| b == b'\n') {
            each(&data[at..at + i])?;
            at += i + 1;
        }
        self.keep(&data[at..])
    }

    fn keep<E: From<SockJsError>>(&mut self, rest: &[u8]) -> Result<(), E> {
        if self.partial.len() + rest.len() > MAX_LINE {
            return Err(SockJsError::TooLong.into());
        }
        self.partial.extend_from_slice(rest);
        if self.partial.is_empty() && self.partial.capacity() > 4096 {
            self.partial = Vec::new();
        }
        Ok(())
    }

    /// Whether every byte fed so far was part of a complete line (pusher-js re-opens a
    /// stream only then).
    pub fn at_boundary(&self) -> bool {
        self.partial.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EST: &str = r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#;

    #[test]
    fn frames() {
        assert_eq!(parse(b"o"), Ok(Frame::Open));
        assert_eq!(parse(b"o{\"hostname\":\"x\"}"), Ok(Frame::Open));
        assert_eq!(parse(b"h"), Ok(Frame::Heartbeat));
        let a = format!("a{}", serde_json::to_string(&[EST, "{}"]).unwrap());
        assert_eq!(
            parse(a.as_bytes()),
            Ok(Frame::Messages(vec![
                Cow::Borrowed(EST),
                Cow::Borrowed("{}")
            ]))
        );
        assert_eq!(
            parse(b"c[4200,\"shutting down\"]\r"),
            Ok(Frame::Close {
                code: 4200,
                reason: "shutting down".into()
            })
        );
        assert_eq!(
            parse(br#"m"{}""#),
            Ok(Frame::Messages(vec![Cow::Borrowed("{}")]))
        );
        assert_eq!(parse(b""), Ok(Frame::Other));
        assert_eq!(parse(b"x"), Ok(Frame::Other));
        assert!(matches!(parse(b"a[1]"), Err(SockJsError::Bad(..))));
        assert!(matches!(parse(b"a[\"x\""), Err(SockJsError::Bad(..))));
    }

    fn lines_in_pieces(stream: &[u8], piece: usize) -> (Vec<String>, bool) {
        let mut lines = Lines::default();
        let mut got = Vec::new();
        for part in stream.chunks(piece) {
            lines
                .feed::<SockJsError>(part, |l| {
                    got.push(String::from_utf8(l.to_vec()).unwrap());
                    Ok(())
                })
                .unwrap();
        }
        (got, lines.at_boundary())
    }

    #[test]
    fn lines_survive_any_split() {
        let a = format!("a{}", serde_json::to_string(&[EST]).unwrap());
        let stream = format!("o\n{a}\nh\n\nc[1,\"x\"]\npart");
        for piece in 1..=stream.len() {
            let (got, boundary) = lines_in_pieces(stream.as_bytes(), piece);
            assert_eq!(
                got,
                ["o", a.as_str(), "h", "", "c[1,\"x\"]"],
                "piece {piece}"
            );
            assert!(!boundary, "piece {piece}: `part` is still open");
        }
        let (_, boundary) = lines_in_pieces(b"o\nh\n", 1);
        assert!(boundary);
    }

    #[test]
    fn overlong_line_is_an_error() {
        let mut lines = Lines::default();
        let big = vec![b'a'; MAX_LINE + 1];
        assert_eq!(
            lines.feed::<SockJsError>(&big, |_| Ok(())),
            Err(SockJsError::TooLong)
        );
    }
}
