//! The few HTTP calls the history scenario makes beyond publishing single events (which
//! `raptor-loadtest`'s publisher does): `POST /apps/{id}/batch_events`, a channel's history
//! position (`GET /apps/{id}/channels/{name}/history` without `limit`), and `/stats` on the
//! metrics listener. Blocking std I/O, one keep-alive connection, one request at a time;
//! responses must carry `Content-Length` (Raptor's do).

use anyhow::{bail, Context};
use raptor_loadtest::{clock, signing, Target};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long one request may take before the scenario gives up on the server.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response we read: a position, a batch answer or `/stats` are a few KiB.
const MAX_RESPONSE: usize = 1 << 20;

/// One keep-alive connection to a server's signed HTTP API.
pub struct Api {
    target: Target,
    stream: Option<TcpStream>,
}

impl Api {
    pub fn new(target: &Target) -> Self {
        Self {
            target: target.clone(),
            stream: None,
        }
    }

    /// Publishes `events` (channel, event name, data) with one `batch_events` call; the
    /// server answers once each is ordered.
    pub fn batch(&mut self, events: &[(&str, &str, &str)]) -> anyhow::Result<()> {
        let batch: Vec<Value> = events
            .iter()
            .map(|(c, n, d)| json!({"channel": c, "name": n, "data": d}))
            .collect();
        let body = json!({ "batch": batch }).to_string();
        let path = format!("/apps/{}/batch_events", self.target.app_id);
        self.signed("POST", &path, &[], &body)?;
        Ok(())
    }

    /// The channel's history position: (epoch, offset of its newest event).
    pub fn position(&mut self, channel: &str) -> anyhow::Result<(String, u64)> {
        let path = format!("/apps/{}/channels/{channel}/history", self.target.app_id);
        let v = self.signed("GET", &path, &[], "")?;
        match (v["epoch"].as_str(), v["offset"].as_u64()) {
            (Some(e), Some(o)) => Ok((e.to_string(), o)),
            _ => bail!("history position of {channel} has no epoch and offset: {v}"),
        }
    }

    /// The offset of the oldest event the channel still holds, if any.
    pub fn oldest(&mut self, channel: &str) -> anyhow::Result<Option<u64>> {
        let path = format!("/apps/{}/channels/{channel}/history", self.target.app_id);
        let v = self.signed("GET", &path, &[("limit", "1")], "")?;
        Ok(v["events"][0]["offset"].as_u64())
    }

    /// A signed request (pusher-protocol.md §1.10) with further query `params`; the JSON
    /// answer of a 2xx.
    fn signed(
        &mut self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<Value> {
        let t = &self.target;
        let ts = clock::unix_secs().to_string();
        let md5 = signing::body_md5(body.as_bytes());
        let mut params: Vec<(&str, &str)> = params.to_vec();
        params.extend([
            ("auth_key", t.key.as_str()),
            ("auth_timestamp", ts.as_str()),
            ("auth_version", "1.0"),
        ]);
        if !body.is_empty() {
            params.push(("body_md5", md5.as_str()));
        }
        let sig = signing::api_signature(&t.secret, method, path, &params);
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let target = format!("{path}?{}&auth_signature={sig}", query.join("&"));
        if self.stream.is_none() {
            self.stream = Some(connect(t.addr)?);
        }
        let stream = self.stream.as_mut().expect("just connected");
        let res = exchange(stream, method, &target, &t.host_header(), body);
        if res.is_err() {
            self.stream = None;
        }
        let (status, body) = res.with_context(|| format!("{method} {path}"))?;
        if !(200..300).contains(&status) {
            bail!(
                "{method} {path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        serde_json::from_slice(&body).with_context(|| format!("{method} {path}: not JSON"))
    }
}

/// `GET /stats` on a metrics listener without a token.
pub fn stats(metrics_port: u16) -> anyhow::Result<Value> {
    let addr = SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let mut s = connect(addr)?;
    let (status, body) = exchange(&mut s, "GET", "/stats", &addr.to_string(), "")?;
    if status != 200 {
        bail!("/stats answered {status}");
    }
    serde_json::from_slice(&body).context("/stats is not JSON")
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// Writes one request and reads its response: (status, body).
fn exchange(
    s: &mut TcpStream,
    method: &str,
    target: &str,
    host: &str,
    body: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let content = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    let req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n{content}\r\n{body}");
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((status, head_len, len)) = parse_head(&buf)? {
            while buf.len() < head_len + len {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    bail!("connection closed inside a response body");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok((status, buf[head_len..head_len + len].to_vec()));
        }
        if buf.len() > MAX_RESPONSE {
            bail!("response head too large");
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed before a response");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// (status, head length, body length) once the head is complete.
fn parse_head(buf: &[u8]) -> anyhow::Result<Option<(u16, usize, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("no status in the response")?;
    let mut len = None;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = Some(v.trim().parse().context("bad Content-Length")?);
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                bail!("chunked responses are not read here");
            }
        }
    }
    let len: usize = len.context("response without Content-Length")?;
    if len > MAX_RESPONSE {
        bail!("response body of {len} bytes is too large");
    }
    Ok(Some((status, end + 4, len)))
}

#[cfg(test)]
mod tests {
    use super::parse_head;

    #[test]
    fn heads() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_head(r).unwrap(), Some((200, 38, 2)));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }
}
