//! Gossip datagrams from anyone: opening arbitrary bytes never panics and never accepts
//! something not sealed with the key; anything the fuzzer has sealed (first byte odd) opens
//! and reassembles to exactly what was sealed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raptor_cluster::gossip_seal::{open, seal, Reassembly, MAX_SKEW};
use raptor_cluster::secret::{Keys, Secrets};
use std::sync::OnceLock;
use std::time::Instant;

const NOW_MS: u64 = 1_767_225_600_000;

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let s = Secrets::new(["fuzz-gossip-secret-0123456789"]).unwrap();
        Keys::derive("fuzz", &s)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let from = "127.0.0.1:7946".parse().unwrap();
    let mut parts = Reassembly::default();
    if mode & 1 == 0 {
        // A stranger's datagram: without the key it cannot be opened.
        if let Ok(o) = open(keys(), NOW_MS, rest) {
            panic!("opened a datagram the fuzzer could not seal: {o:?}");
        }
        return;
    }
    // A datagram we sealed: [skew i16 s][msg id][message...].
    if rest.len() < 3 {
        return;
    }
    let skew_s = i16::from_le_bytes([rest[0], rest[1]]) as i64;
    let msg = &rest[3..];
    let sent = (NOW_MS as i64 + skew_s * 1000) as u64;
    let too_far = skew_s.unsigned_abs() * 1000 > MAX_SKEW.as_millis() as u64;
    let datagrams = seal(keys(), sent, rest[2] as u32, msg);
    let mut whole = None;
    for d in &datagrams {
        match open(keys(), NOW_MS, d) {
            Ok(o) => {
                assert!(!too_far, "a datagram {skew_s} s off was taken");
                whole = whole.or(parts.add(from, o, Instant::now()));
            }
            Err(e) => {
                assert!(too_far, "a fresh sealed datagram was refused: {e}");
                return;
            }
        }
    }
    assert_eq!(whole.as_deref(), Some(msg));
});
