//! What clients send the HTTP transports and wildcard subscriptions, on fuzzed input: a
//! request path under the transports' prefix (`xhr::parse`), an `xhr_send` body
//! (`framing::parse_send`, whose messages must come back exactly through the `a` framing),
//! an event stream's channels and `Last-Event-ID` (`sse::Follow`), and a pattern with the
//! channels it is matched against. Must never panic. Input: lines; the first is the path,
//! the second the `Last-Event-ID`, the rest channels (and patterns); the whole is also tried
//! as a send body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raptor_engine::channel::pattern::{Index, Pattern};
use raptor_engine::xhr::{framing, parse, sse::Follow};

fuzz_target!(|data: &[u8]| {
    if let Ok(messages) = framing::parse_send(data) {
        let mut out = Vec::new();
        framing::messages(&mut out, messages.iter().map(|m| m.as_bytes()));
        assert!(out.is_ascii());
        let back: Vec<String> = serde_json::from_slice(&out[1..out.len() - 1]).unwrap();
        assert_eq!(back, messages);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let path = lines.next().unwrap_or_default();
    let _ = parse(path, "/pusher");
    let last = lines.next();
    let rest: Vec<String> = lines.map(str::to_string).collect();
    let _ = Follow::new(rest.clone(), last, 100);
    let mut index = Index::default();
    for (i, p) in rest.iter().enumerate() {
        if let Ok(p) = Pattern::parse(p, 200) {
            for c in &rest {
                let _ = p.matches(c);
            }
            index.add(i as u32 % 3, p);
        }
    }
    for c in &rest {
        let _ = index.matching(1, c).count();
    }
});
