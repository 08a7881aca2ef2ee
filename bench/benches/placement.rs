//! How much does finding a channel's owner shard cost? Runs once per subscribe and publish.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raptor_engine::placement::shard_for;
use std::hint::black_box;

mod common;

fn placement(c: &mut Criterion) {
    let mut g = c.benchmark_group("placement");
    g.throughput(Throughput::Elements(1));
    let short = "chat";
    let long = "private-encrypted-my-photo-gallery-123456789-comments-and-replies";
    for (name, ch) in [("short", short), ("long", long)] {
        for n in [2usize, 16] {
            g.bench_function(format!("shard_for/{name}/{n}"), |b| {
                b.iter(|| shard_for(black_box("1"), black_box(ch), black_box(n)))
            });
        }
    }
    g.finish();
}

criterion_group! { name = benches; config = common::quick(); targets = placement }
criterion_main!(benches);
