//! One recovering connection: subscribe with `recover` from a position, receive the replay,
//! check it is complete and in order, and time it.

use super::{seq_of, EVENT, RECOVER_EVENTS};
use anyhow::bail;
use raptor_loadtest::net::{Closed, ConnCtx, Endpoint, Handler, Net};
use raptor_loadtest::pusher::{self, Incoming};
use raptor_loadtest::Target;
use std::time::{Duration, Instant};

/// How long one recovery may take before the scenario gives up.
const RECOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// One fresh connection recovering `channel` from `offset`: the time from sending the
/// subscribe to the last replayed event.
pub(super) fn once(
    target: &Target,
    channel: &str,
    epoch: &str,
    offset: u64,
) -> anyhow::Result<Duration> {
    let handler = Recoverer {
        subscribe: serde_json::json!({"event": "pusher:subscribe", "data": {
            "channel": channel, "auth": "", "recover": true, "offset": offset, "epoch": epoch}})
        .to_string(),
        channel: channel.to_string(),
        next_seq: 1,
        sent: None,
        done: None,
    };
    let mut net = Net::new(handler, Endpoint::new(target, Vec::new()))?;
    net.open(())?;
    let started = Instant::now();
    while net.handler.done.is_none() && started.elapsed() < RECOVER_TIMEOUT {
        net.poll(Duration::from_millis(5))?;
    }
    net.shutdown();
    match net.handler.done.take() {
        Some(r) => r.map_err(anyhow::Error::msg),
        None => bail!("no complete replay within {RECOVER_TIMEOUT:?}"),
    }
}

/// The handler of one recovering connection.
struct Recoverer {
    subscribe: String,
    channel: String,
    /// the sequence number the next replayed event must carry
    next_seq: u64,
    /// when the subscribe was queued (it is written as the callback returns)
    sent: Option<Instant>,
    done: Option<Result<Duration, String>>,
}

impl Recoverer {
    fn fail(&mut self, conn: &mut ConnCtx<'_, ()>, why: String) {
        self.done.get_or_insert(Err(why));
        conn.close();
    }
}

impl Handler for Recoverer {
    type State = ();

    fn on_established(&mut self, conn: &mut ConnCtx<'_, ()>, _socket_id: &str) {
        self.sent = Some(Instant::now());
        conn.send(&self.subscribe);
    }

    fn on_message(&mut self, conn: &mut ConnCtx<'_, ()>, msg: &Incoming<'_>) {
        if self.done.is_some() {
            return;
        }
        if !msg.is_for(&self.channel) {
            if msg.event == pusher::ERROR {
                let e = msg.data_text().unwrap_or_default().into_owned();
                self.fail(conn, format!("pusher:error {e}"));
            }
            return;
        }
        match &*msg.event {
            EVENT => {
                let seq = msg.data_text().as_deref().and_then(seq_of);
                if seq != Some(self.next_seq) {
                    let want = self.next_seq;
                    return self.fail(conn, format!("replayed {seq:?}, expected {want}"));
                }
                if self.next_seq == RECOVER_EVENTS {
                    let d = self.sent.map_or(Duration::ZERO, |t| t.elapsed());
                    self.done = Some(Ok(d));
                    conn.close();
                }
                self.next_seq += 1;
            }
            "raptor:recovery" => {
                let v: serde_json::Value = msg
                    .data_text()
                    .and_then(|d| serde_json::from_str(&d).ok())
                    .unwrap_or_default();
                if v["recovered"] != true || v["replayed"] != RECOVER_EVENTS {
                    self.fail(conn, format!("not recovered: {v}"));
                }
            }
            pusher::SUBSCRIPTION_ERROR | pusher::ERROR => {
                let e = msg.data_text().unwrap_or_default().into_owned();
                self.fail(conn, format!("{}: {e}", msg.event));
            }
            _ => {}
        }
    }

    fn on_closed(&mut self, _id: usize, _state: (), why: Closed) {
        self.done
            .get_or_insert(Err(format!("connection ended before the replay: {why:?}")));
    }
}
