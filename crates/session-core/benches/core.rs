//! Micro-benchmarks of session-core's hot paths: signing and verifying the session cookie,
//! generating ids, and encoding and decoding session data (a typical ~1 KB session and a
//! large ~100 KB one).
//!
//! Run with `cargo bench -p session-core`; sample sizes are small so the file runs in well
//! under a minute.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use session_core::{CookieSigner, SessionData, SessionId, Values};

/// A typical signed-in session: 10 keys, about 1 KB of JSON.
fn typical_session() -> SessionData {
    let mut values = Values::new();
    values.insert("user_id".into(), json!(184_467));
    values.insert("username".into(), json!("ada.lovelace"));
    values.insert("email".into(), json!("ada.lovelace@example.com"));
    values.insert("roles".into(), json!(["admin", "editor", "billing"]));
    values.insert(
        "csrf".into(),
        json!("kq3N0yq1b9vTz8xWfY2dLr4HcE7uJm6aPsQ0gRt5VnM"),
    );
    values.insert("locale".into(), json!("en-GB"));
    values.insert(
        "theme".into(),
        json!({"mode": "dark", "contrast": "high", "font": 16}),
    );
    values.insert(
        "cart".into(),
        json!([
            {"sku": "A-1001", "qty": 2, "price": 1999},
            {"sku": "B-2002", "qty": 1, "price": 4999},
            {"sku": "C-3003", "qty": 5, "price": 299}
        ]),
    );
    values.insert("last_seen".into(), json!("2026-08-21T10:11:12Z"));
    values.insert(
        "recent".into(),
        json!([
            "/dashboard",
            "/settings/profile",
            "/orders/2026/08",
            "/orders/2026/08/184467-0042",
            "/help/articles/sessions",
            "/help/articles/cookies",
            "/search?q=memcached+sessions",
            "/account/security",
            "/account/billing/invoices",
            "/"
        ]),
    );
    let mut flash = Values::new();
    flash.insert("message".into(), json!("Welcome back, Ada! ".repeat(20)));
    SessionData::new(values, flash)
}

/// A large session: about 100 KB of JSON, in 200 values of ~500 bytes.
fn large_session() -> SessionData {
    let mut values = Values::new();
    for index in 0..200 {
        values.insert(
            format!("item-{index:03}"),
            json!({"id": index, "text": "x".repeat(460), "tags": ["a", "b", "c"]}),
        );
    }
    SessionData::new(values, Values::new())
}

fn cookies(c: &mut Criterion) {
    let signer = CookieSigner::new(["a-secret-of-at-least-32-random-bytes-for-benchmarks"])
        .expect("a valid secret");
    let id = SessionId::generate();
    let cookie = signer.sign(id.as_str());
    // Same length, last signature character changed.
    let mut forged = cookie.clone();
    let last = forged.pop().expect("a non-empty cookie");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(signer.verify(&forged).is_none());

    let mut group = c.benchmark_group("cookie");
    group.bench_function("sign", |b| b.iter(|| signer.sign(black_box(id.as_str()))));
    group.bench_function("verify_valid", |b| {
        b.iter(|| signer.verify(black_box(&cookie)));
    });
    group.bench_function("verify_forged", |b| {
        b.iter(|| signer.verify(black_box(&forged)));
    });
    group.finish();
}

fn ids(c: &mut Criterion) {
    c.bench_function("session_id/generate", |b| b.iter(SessionId::generate));
}

fn data(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_data");
    for (name, data) in [("typical", typical_session()), ("large", large_session())] {
        let json = data.to_json().expect("JSON objects always encode");
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", name), &data, |b, data| {
            b.iter(|| data.to_json());
        });
        group.bench_with_input(BenchmarkId::new("decode", name), &json, |b, json| {
            b.iter(|| SessionData::from_json(black_box(json)));
        });
    }
    group.finish();
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
    targets = cookies, ids, data
}
criterion_main!(benches);
