//! What the history tests share (docs/history.md): subscribing with or without a position,
//! the exact frame of a numbered event, publishing numbered events, reading a history.

use super::*;
use serde_json::json;

/// The exact frame of event `e` with plain `data` (no characters JSON escapes).
pub fn event(channel: &str, data: &str, offset: u64) -> String {
    format!(r#"{{"event":"e","channel":"{channel}","data":"{data}","offset":{offset}}}"#)
}

/// Reads `subscription_succeeded` and `raptor:recovery`; returns the recovery's data.
pub async fn subscribed(c: &mut Client, channel: &str) -> Value {
    assert_eq!(
        c.recv_text().await,
        format!(
            r#"{{"event":"pusher_internal:subscription_succeeded","channel":"{channel}","data":"{{}}"}}"#
        )
    );
    let r = c.recv().await;
    assert_eq!(
        (r["event"].as_str(), r["channel"].as_str()),
        (Some("raptor:recovery"), Some(channel)),
        "{r}"
    );
    serde_json::from_str(r["data"].as_str().unwrap()).unwrap()
}

/// Subscribes to a public channel with history, recovering from `from` when given.
pub async fn subscribe_from(c: &mut Client, channel: &str, from: Option<(u64, &str)>) -> Value {
    let mut data = json!({"auth": "", "channel": channel});
    if let Some((offset, epoch)) = from {
        data["recover"] = json!(true);
        data["offset"] = json!(offset);
        data["epoch"] = json!(epoch);
    }
    c.send(json!({"event": "pusher:subscribe", "data": data}))
        .await;
    subscribed(c, channel).await
}

/// Publishes events `e` with data `n` for each `n` in `range`, each answered 200.
pub async fn publish_n(h: &mut Http, channel: &str, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        let r = h.publish(channel, "e", &n.to_string()).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

/// `GET .../history?limit=5000` on `node`.
pub async fn history(node: &Server, channel: &str) -> Value {
    let mut h = Http::connect(node).await;
    let path = format!("/apps/1/channels/{channel}/history");
    let r = h.signed("GET", &path, &[("limit", "5000")], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}
