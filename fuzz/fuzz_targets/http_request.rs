//! The HTTP/1.1 request-head parser (`http::request::parse_head`): every byte a client sends
//! before a request is routed. Must never panic; a complete head must parse the same when
//! nothing follows it, and every query parameter must be readable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raptor_engine::http::request::parse_head;

/// The default `limits.max_http_header_bytes`.
const MAX_HEAD: usize = 8 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((req, n))) = parse_head(data, MAX_HEAD) else {
        return;
    };
    assert!(n <= data.len());
    // What follows the head (body, pipelined request) never changes how the head parses.
    let (alone, m) = parse_head(&data[..n], MAX_HEAD)
        .expect("head alone parses")
        .expect("head alone is complete");
    assert_eq!(m, n);
    assert_eq!(alone.method, req.method);
    assert_eq!(alone.raw_path, req.raw_path);
    assert_eq!(alone.query, req.query);
    assert_eq!(alone.content_length, req.content_length);
    for (k, _) in &req.query {
        assert!(req.param(k).is_some());
    }
});
