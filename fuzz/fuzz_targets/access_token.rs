//! Access-token checking (`token::verify`) on fuzzed input, as a client presents it in
//! `pusher:signin`, a subscription's `auth` or `?token=`. Must never panic; the seeds are
//! real tokens (signed with the key and secret below) and their truncations.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raptor_engine::token::{looks_like_token, verify};

/// The clock of the seeds (their `exp` is after it).
const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = looks_like_token(s);
    if let Ok(t) = verify("app-key", "app-secret", s, NOW) {
        let _ = (t.may_read("chat-1"), t.may_write("private-x"), t.expired(NOW));
    }
});
