//! How much does encoding one channel event into a finished WebSocket frame cost? This runs once
//! per publish (at the edge), never per recipient.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raptor_engine::protocol::server::channel_event;
use std::hint::black_box;

mod common;

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_encode");
    g.throughput(Throughput::Elements(1));
    for (name, len) in [("64B", 64usize), ("1KiB", 1024)] {
        // JSON-ish data with a few quotes to escape, like a real `{"text":"..."}` payload.
        let mut data = String::from(r#"{"text":""#);
        data.push_str(&"x".repeat(len.saturating_sub(12)));
        data.push_str(r#""}"#);
        g.bench_function(format!("channel_event/{name}"), |b| {
            b.iter(|| {
                channel_event(
                    black_box("new-comment"),
                    black_box("my-photo-gallery-123"),
                    black_box(&data),
                    None,
                )
            })
        });
    }
    g.finish();
}

criterion_group! { name = benches; config = common::quick(); targets = encode }
criterion_main!(benches);
