//! What does checking a signature cost: the HMAC-SHA256 compare alone, building the HTTP API
//! string to sign, and the whole API request check (`verify_at`) per publish?

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raptor_engine::app::Apps;
use raptor_engine::config::AppConfig;
use raptor_engine::http::auth::verify_at;
use raptor_engine::http::request::{parse_query, Request};
use raptor_engine::signature::{api_string_to_sign, verify_client_auth, verify_hex};
use std::hint::black_box;

mod common;

// The Pusher REST API documentation's example request.
const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const BODY: &str = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
const QUERY: &str = "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";
const SIG: &str = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";

fn signature(c: &mut Criterion) {
    let mut g = c.benchmark_group("signature");
    g.throughput(Throughput::Elements(1));
    let params = parse_query(QUERY);
    let to_sign = api_string_to_sign("POST", "/apps/3/events", &params);
    assert!(
        verify_hex(SECRET, to_sign.as_bytes(), SIG),
        "vector must verify"
    );

    g.bench_function("api_string_to_sign", |b| {
        b.iter(|| api_string_to_sign(black_box("POST"), black_box("/apps/3/events"), &params))
    });
    g.bench_function("verify_hex/api", |b| {
        b.iter(|| {
            verify_hex(
                black_box(SECRET),
                black_box(to_sign.as_bytes()),
                black_box(SIG),
            )
        })
    });
    let auth = format!("{KEY}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
    g.bench_function("verify_client_auth/private", |b| {
        b.iter(|| {
            verify_client_auth(
                black_box(KEY),
                black_box(SECRET),
                black_box(&auth),
                black_box("1234.1234:private-foobar"),
            )
        })
    });

    let apps = Apps::new(&[AppConfig::new("3", KEY, SECRET)]);
    let app = apps.list[0].clone();
    let req = Request {
        method: "POST".into(),
        raw_path: "/apps/3/events".into(),
        query: params.clone(),
        body: BODY.as_bytes().to_vec(),
        ..Request::default()
    };
    assert_eq!(verify_at(&app, &req, 1353088179), Ok(()));
    // md5 of the body + string to sign + HMAC + compare: the whole per-publish auth cost
    g.bench_function("verify_at/publish", |b| {
        b.iter(|| verify_at(&app, black_box(&req), black_box(1353088179)))
    });
    g.finish();
}

criterion_group! { name = benches; config = common::quick(); targets = signature }
criterion_main!(benches);
