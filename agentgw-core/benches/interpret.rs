//! The shared interpretation of a request: strict JSON against plain serde_json and the plain
//! reader's verdict without a tree, the canonical
//! path, and decoding a compressed body, each next to its baseline in the same run.
//!
//! Run with `cargo bench -p agentgw-core --bench interpret`.

use std::hint::black_box;
use std::io::Write;

use agentgw_core::body::BodyLimit;
use agentgw_core::content::ContentCoding;
use agentgw_core::decode::{DecodeLimits, decode};
use agentgw_core::{json, path};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

/// A chat request of about `target` bytes with many small objects (the case where per-object
/// key checks cost the most).
fn chat_request(target: usize) -> Vec<u8> {
    let mut messages = Vec::new();
    let mut n = 0;
    loop {
        let body = serde_json::to_vec(&json!({
            "model": "gpt-4o", "temperature": 0.2, "stream": true,
            "tools": [{"type": "function", "function": {"name": "search", "description": "Search the docs.",
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}],
            "messages": messages,
        }))
        .unwrap();
        if body.len() >= target {
            return body;
        }
        messages.push(json!({"role": if n % 2 == 0 { "user" } else { "assistant" },
            "content": [{"type": "text", "text": format!("Turn {n}: please check the readiness probe of the deployment before the rollout.")}]}));
        n += 1;
    }
}

fn strict_json(c: &mut Criterion) {
    let mut group = c.benchmark_group("json");
    for size in [4 << 10, 256 << 10] {
        let body = chat_request(size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("serde_json", size), &body, |b, body| {
            b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(body)).unwrap()))
        });
        group.bench_with_input(BenchmarkId::new("strict", size), &body, |b, body| {
            b.iter(|| black_box(json::parse(black_box(body)).unwrap()))
        });
        // The verdict and the top-level members without a tree, then one member parsed alone:
        // what `Payload::check` and `Payload::field("model")` cost on a plain body.
        group.bench_with_input(BenchmarkId::new("plain_verdict", size), &body, |b, body| {
            b.iter(|| {
                let text = std::str::from_utf8(black_box(body)).unwrap();
                black_box(json::plain::read(text, true, &mut json::plain::NoVisit).unwrap())
            })
        });
        // A fresh payload per iteration (it caches), made outside the timed part.
        group.bench_with_input(BenchmarkId::new("plain_field", size), &body, |b, body| {
            b.iter_batched(
                || agentgw_core::Payload::new(bytes::Bytes::copy_from_slice(body)),
                |payload| black_box(payload.field("model").unwrap().is_some()),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn canonical_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("path");
    for p in [
        "/openai/v1/chat/completions",
        "/openai/v1/chat/%63ompletions",
    ] {
        group.bench_with_input(BenchmarkId::new("canonical", p), p, |b, p| {
            b.iter(|| black_box(path::canonical(black_box(p)).unwrap()))
        });
    }
    group.finish();
}

fn decoding(c: &mut Criterion) {
    let body = chat_request(64 << 10);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&body).unwrap();
    let gz = e.finish().unwrap();
    let limits = DecodeLimits::new(BodyLimit::new(16 << 20));
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("gzip_64k", |b| {
        b.iter(|| black_box(decode(black_box(&gz), &[ContentCoding::Gzip], &limits).unwrap()))
    });
    group.bench_function("strict_parse_64k_baseline", |b| {
        b.iter(|| black_box(json::parse(black_box(&body)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, strict_json, canonical_path, decoding);
criterion_main!(benches);
