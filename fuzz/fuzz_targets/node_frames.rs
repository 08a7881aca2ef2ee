//! Inter-node frames from a peer: decoding arbitrary bytes never panics, and a frame that
//! decodes re-encodes to a frame that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raptor_cluster::wire::decode;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((msg, used))) = decode(data) {
        assert!(used <= data.len());
        let again = raptor_cluster::runtime::encode(&msg).expect("a decoded message encodes");
        let (back, n) = decode(&again).expect("re-encoded frame decodes").expect("complete");
        assert_eq!(n, again.len());
        assert_eq!(format!("{back:?}"), format!("{msg:?}"));
    }
});
