//! A client of the HTTP transports, as pusher-js speaks them (docs/protocol.md "HTTP
//! transports"): polls and sends over [`Http`], streams read frame by frame from a raw
//! socket (chunked), and Server-Sent Events.

use super::{Http, Resp, Server, KEY};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One session's paths.
pub struct Session {
    pub port: u16,
    pub base: String,
}

impl Session {
    pub fn new(server: &Server, id: &str) -> Session {
        Session {
            port: server.port,
            base: format!("/pusher/app/{KEY}/7/{id}"),
        }
    }

    pub async fn poll(&self) -> Resp {
        let target = format!(
            "{}/xhr?protocol=7&client=js&version=8.6.0&t=1&n=1",
            self.base
        );
        Http::connect_port(self.port)
            .await
            .request("POST", &target, "")
            .await
    }

    /// Sends Pusher messages (each a JSON value) in one `xhr_send`.
    pub async fn send(&self, msgs: &[Value]) -> Resp {
        let strings: Vec<String> = msgs.iter().map(Value::to_string).collect();
        let body = serde_json::to_string(&strings).unwrap();
        self.send_raw(&body).await
    }

    pub async fn send_raw(&self, body: &str) -> Resp {
        let target = format!("{}/xhr_send?t=2&n=2", self.base);
        Http::connect_port(self.port)
            .await
            .request("POST", &target, body)
            .await
    }

    pub async fn stream(&self) -> Stream {
        let path = format!(
            "{}/xhr_streaming?protocol=7&client=js&version=8.6.0",
            self.base
        );
        Stream::open(self.port, "POST", &path, &[]).await
    }
}

/// The Pusher messages of a response body's `a` frames, and whether a frame other than
/// `o`, `a` and `h` came (its line).
pub fn messages(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix('a'))
        .flat_map(|a| serde_json::from_str::<Vec<String>>(a).unwrap())
        .map(|s| serde_json::from_str(&s).unwrap())
        .collect()
}

/// A receiving response read as it arrives: its head, then its chunked body line by line.
pub struct Stream {
    sock: TcpStream,
    pub status: u16,
    pub head: String,
    /// Decoded body bytes not yet returned.
    body: Vec<u8>,
    /// Raw bytes not yet decoded.
    raw: Vec<u8>,
    /// Body characters received so far.
    pub received: usize,
    pub ended: bool,
}

impl Stream {
    pub async fn open(port: u16, method: &str, target: &str, headers: &[&str]) -> Stream {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut s = Stream {
            sock,
            status: 0,
            head: String::new(),
            body: Vec::new(),
            raw: Vec::new(),
            received: 0,
            ended: false,
        };
        while !s.raw.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(s.fill(Duration::from_secs(10)).await, "no response head");
        }
        let end = s.raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        s.head = String::from_utf8(s.raw.drain(..end).collect()).unwrap();
        s.status = s.head[9..12].parse().unwrap();
        s
    }

    async fn fill(&mut self, within: Duration) -> bool {
        let mut tmp = [0u8; 65536];
        match tokio::time::timeout(within, self.sock.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => {
                self.raw.extend_from_slice(&tmp[..n]);
                true
            }
            _ => false,
        }
    }

    /// Moves complete chunks from `raw` to `body`.
    fn decode(&mut self) {
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = usize::from_str_radix(std::str::from_utf8(&self.raw[..eol]).unwrap(), 16)
                .expect("chunk size");
            if size == 0 {
                if self.raw.len() >= eol + 4 {
                    self.ended = true;
                    self.raw.clear();
                }
                return;
            }
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            let data: Vec<u8> = self.raw[eol + 2..eol + 2 + size].to_vec();
            self.raw.drain(..eol + 2 + size + 2);
            self.received += data.len();
            self.body.extend_from_slice(&data);
        }
    }

    /// Everything received was returned (pusher-js re-opens a stream only then).
    pub fn drained(&self) -> bool {
        self.body.is_empty() && self.raw.is_empty()
    }

    /// The next line of the body (without its `\n`), or `None` when the response ended or
    /// nothing came within `within`.
    pub async fn line(&mut self, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            self.decode();
            if let Some(i) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=i).collect();
                return Some(String::from_utf8(line[..i].to_vec()).unwrap());
            }
            if self.ended {
                return None;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.fill(left).await {
                return None;
            }
        }
    }

    /// The next Pusher message on an xhr stream (skipping `o` and `h`), and any other frame
    /// line as an `Err`.
    pub async fn message(
        &mut self,
        pending: &mut Vec<Value>,
        within: Duration,
    ) -> Option<Result<Value, String>> {
        loop {
            if !pending.is_empty() {
                return Some(Ok(pending.remove(0)));
            }
            let line = self.line(within).await?;
            match line.as_bytes().first() {
                Some(b'a') => pending.extend(messages(&line)),
                Some(b'o' | b'h') => {}
                _ => return Some(Err(line)),
            }
        }
    }

    /// The next SSE event: its `id` (if any) and its `data` as JSON.
    pub async fn event(&mut self, within: Duration) -> Option<(Option<String>, Value)> {
        let (mut id, mut data) = (None, None);
        loop {
            let line = self.line(within).await?;
            if line.is_empty() {
                if let Some(d) = data.take() {
                    return Some((id, d));
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            }
        }
    }
}
