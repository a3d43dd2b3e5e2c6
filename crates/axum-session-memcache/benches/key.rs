//! Micro-benchmark of the memcached key derivation (`prefix + hex(SHA-256(id))`), computed on
//! every session load and save.
//!
//! Run with `cargo bench -p axum-session-memcache`.

use std::hint::black_box;
use std::time::Duration;

use axum_session_memcache::memcache_key;
use criterion::{Criterion, criterion_group, criterion_main};
use session_core::SessionId;

fn key(c: &mut Criterion) {
    let id = SessionId::generate();
    c.bench_function("memcache_key/generated_id", |b| {
        b.iter(|| memcache_key(black_box("remix:session:"), black_box(&id)));
    });
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = key
}
criterion_main!(benches);
