//! Server-Sent Events (`text/event-stream`) as a receive-only client reads them: lines ended
//! by `\n` (a `\r` before it is dropped), `data:` lines joined by `\n` into one event, an
//! empty line dispatching it, `id:` remembered (for `Last-Event-ID`), `:` comments (the
//! server's heartbeats) counted and ignored. The HTML standard's parsing rules, minus
//! `retry:` and lone-`\r` line ends, which no Pusher-style server sends.

use thiserror::Error;

/// Longest event (all its data lines) kept while waiting for the empty line.
pub const MAX_EVENT: usize = 1 << 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SseError {
    #[error("sse event longer than {MAX_EVENT} bytes")]
    TooLong,
    #[error("sse data is not utf-8")]
    NotUtf8,
}

/// Parser state of one stream.
#[derive(Debug, Default)]
pub struct Sse {
    /// a line not yet ended
    line: Vec<u8>,
    /// data lines of the event being read, joined by `\n`
    data: Vec<u8>,
    has_data: bool,
    /// the last `id:` seen
    pub last_id: Option<String>,
    /// comment lines seen (heartbeats)
    pub comments: u64,
}

impl Sse {
    /// Feeds stream bytes; calls `each` with the data of every complete event.
    pub fn feed<E: From<SseError>>(
        &mut self,
        input: &[u8],
        mut each: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut at = 0;
        while let Some(i) = input[at..].iter().position(|&b| b == b'\n') {
            let piece = &input[at..at + i];
            at += i + 1;
            if self.line.is_empty() {
                self.on_line(piece, &mut each)?;
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(piece);
                self.on_line(&line, &mut each)?;
                line.clear();
                if line.capacity() <= 4096 {
                    self.line = line;
                }
            }
        }
        let rest = &input[at..];
        if self.line.len() + rest.len() + self.data.len() > MAX_EVENT {
            return Err(SseError::TooLong.into());
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    fn on_line<E: From<SseError>>(
        &mut self,
        line: &[u8],
        each: &mut impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                self.has_data = false;
                let data = std::mem::take(&mut self.data);
                let text = std::str::from_utf8(&data).map_err(|_| SseError::NotUtf8)?;
                each(text)?;
                self.data = data;
                self.data.clear();
            }
            return Ok(());
        }
        if line[0] == b':' {
            self.comments += 1;
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() > MAX_EVENT {
                    return Err(SseError::TooLong.into());
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"id" => self.last_id = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // event:, retry: and unknown fields
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "\r\n: hi\n\nid: 5\ndata: {\"event\":\"e\",\"channel\":\"c\"}\n\n\
        event: x\r\ndata:a\r\ndata: b\r\n\r\n:\n";

    fn events_in_pieces(piece: usize) -> (Vec<String>, Sse) {
        let mut sse = Sse::default();
        let mut got = Vec::new();
        for part in STREAM.as_bytes().chunks(piece) {
            sse.feed::<SseError>(part, |d| {
                got.push(d.to_string());
                Ok(())
            })
            .unwrap();
        }
        (got, sse)
    }

    #[test]
    fn events_survive_any_split() {
        for piece in 1..=STREAM.len() {
            let (got, sse) = events_in_pieces(piece);
            assert_eq!(
                got,
                [r#"{"event":"e","channel":"c"}"#, "a\nb"],
                "piece {piece}"
            );
            assert_eq!(sse.last_id.as_deref(), Some("5"));
            assert_eq!(sse.comments, 2);
        }
    }

    #[test]
    fn an_event_needs_its_empty_line() {
        let mut sse = Sse::default();
        let mut n = 0;
        sse.feed::<SseError>(b"data: x\n", |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 0);
        sse.feed::<SseError>(b"\n", |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn overlong_event_is_an_error() {
        let mut sse = Sse::default();
        let big = vec![b'a'; MAX_EVENT + 1];
        assert_eq!(
            sse.feed::<SseError>(&big, |_| Ok(())),
            Err(SseError::TooLong)
        );
    }
}
