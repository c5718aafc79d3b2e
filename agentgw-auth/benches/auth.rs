//! JWT verification (RS256, ES256) against bare `jsonwebtoken`, the verified-token cache, and API
//! key lookup among 10 000 keys, with criterion.
//!
//! Baselines in the same run:
//! - `signature_only`: `jsonwebtoken::crypto::verify` on the signing input, nothing else;
//! - `jsonwebtoken_decode`: `jsonwebtoken::decode` with `iss`/`aud`/`exp` validation.
//!
//! On a shared machine sequential criterion runs drift with the load; `benches/ratios.rs`
//! interleaves the variants for robust ratios.

mod common;

use std::hint::black_box;

use common::{Key, claims, layer};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value};
use sha2::Digest as _;

fn bench_jwt(c: &mut Criterion, name: &str, key: &Key) {
    let token = key.token(&claims(0));
    let decoding_key = key.decoding_key();
    let validation = key.validation();
    let (message, signature) = token.rsplit_once('.').unwrap();

    // Distinct tokens, cycled through a cache too small to hold them: every check is a miss.
    let misses: Vec<String> = (0..512).map(|n| key.token(&claims(n))).collect();
    let missing = layer(key, 16);
    let cached = layer(key, 4096);
    assert!(cached.verify(&token).is_ok());

    let mut group = c.benchmark_group(name);
    group.bench_function("signature_only", |b| {
        b.iter(|| {
            jsonwebtoken::crypto::verify(
                black_box(signature),
                message.as_bytes(),
                &decoding_key,
                key.algorithm(),
            )
            .unwrap()
        })
    });
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Map<String, Value>>(
                black_box(&token),
                &decoding_key,
                &validation,
            )
            .unwrap()
        })
    });
    group.bench_function("layer_uncached", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % misses.len();
            missing.verify(black_box(&misses[i])).unwrap()
        })
    });
    group.bench_function("layer_cached", |b| {
        b.iter(|| cached.verify(black_box(&token)).unwrap())
    });
    // The cache key: most of the cost of a cached check.
    group.bench_function("sha256_of_token", |b| {
        b.iter(|| sha2::Sha256::digest(black_box(token.as_bytes())))
    });
    group.finish();
}

fn jwt(c: &mut Criterion) {
    bench_jwt(c, "jwt_rs256", &Key::rsa());
    bench_jwt(c, "jwt_es256", &Key::es256());
}

fn api_keys(c: &mut Criterion) {
    let layer = common::api_key_layer(10_000);
    let hit = "sk-live-07777-0123456789abcdef";
    assert!(layer.check(hit).is_ok());
    let mut group = c.benchmark_group("api_key_10k");
    group.bench_function("hit", |b| b.iter(|| layer.check(black_box(hit)).unwrap()));
    group.bench_function("miss", |b| {
        b.iter(|| {
            layer
                .check(black_box("sk-live-99999-0123456789abcdef"))
                .unwrap_err()
        })
    });
    // The whole service path of a key without `routes` or `models` scope: what every request
    // of an unscoped key pays (header lookup, hash, table lookup, header removal).
    let mut service = tower_layer::Layer::layer(&layer, Ok200);
    group.bench_function("service_hit", |b| {
        b.iter(|| {
            let req = http::Request::post("/v1/chat/completions")
                .header("x-api-key", hit)
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            let res = tower_service::Service::call(&mut service, black_box(req));
            futures_util::FutureExt::now_or_never(res).unwrap().unwrap()
        })
    });
    group.finish();
}

/// An inner service that answers `200` to any request body, without reading it.
#[derive(Clone)]
struct Ok200;

impl<B> tower_service::Service<http::Request<B>> for Ok200 {
    type Response = http::Response<http_body_util::Empty<bytes::Bytes>>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<B>) -> Self::Future {
        std::future::ready(Ok(http::Response::new(http_body_util::Empty::new())))
    }
}

criterion_group!(benches, jwt, api_keys);
criterion_main!(benches);
