//! Client→server Pusher frames (`protocol::client::decode`, simd-json in place): any bytes a
//! client can put in a text message. Must never panic, whatever the nesting or encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raptor_engine::protocol::client::decode;

fuzz_target!(|data: &[u8]| {
    // decode clobbers its buffer (simd-json parses in place), as the session's does.
    let mut buf = data.to_vec();
    let _ = decode(&mut buf);
});
