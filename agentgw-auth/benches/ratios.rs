//! The same comparisons as `benches/auth.rs`, measured interleaved: every round times each
//! variant for a short burst, in rotating order, so load from other processes hits all of them
//! alike. Prints a Markdown table of the fastest and the median round per variant and the ratio
//! of each to the first (baseline) variant of its group.
//!
//! `cargo bench -p agentgw-auth --bench ratios`

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{Key, claims, layer};
use serde_json::{Map, Value};
use sha2::Digest as _;

struct Variant<'a> {
    name: &'static str,
    run: Box<dyn FnMut() + 'a>,
}

fn variant<'a>(name: &'static str, run: impl FnMut() + 'a) -> Variant<'a> {
    Variant {
        name,
        run: Box::new(run),
    }
}

fn measure(group: &str, mut variants: Vec<Variant<'_>>, iterations: usize, rounds: usize) {
    for v in &mut variants {
        for _ in 0..iterations {
            (v.run)();
        }
    }
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    for round in 0..rounds {
        for k in 0..variants.len() {
            let i = (round + k) % variants.len();
            let start = Instant::now();
            for _ in 0..iterations {
                (variants[i].run)();
            }
            samples[i].push(start.elapsed().as_nanos() as f64 / iterations as f64);
        }
    }
    let stats: Vec<(f64, f64)> = samples
        .iter_mut()
        .map(|s| {
            s.sort_by(f64::total_cmp);
            (s[0], s[s.len() / 2])
        })
        .collect();
    for (v, (min, median)) in variants.iter().zip(&stats) {
        println!(
            "| {group} | {} | {} | {} | {:.3} | {:.3} |",
            v.name,
            format_ns(*min),
            format_ns(*median),
            min / stats[0].0,
            median / stats[0].1,
        );
    }
}

fn format_ns(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn jwt(group: &str, key: &Key, iterations: usize, rounds: usize) {
    // Every uncached variant cycles through the same distinct tokens: verifying one token over
    // and over is measurably cheaper (warm caches) and would flatter whichever variant did it.
    let tokens: Vec<String> = (0..512).map(|n| key.token(&claims(n))).collect();
    let parts: Vec<(&str, &str)> = tokens.iter().map(|t| t.rsplit_once('.').unwrap()).collect();
    let decoding_key = key.decoding_key();
    let validation = key.validation();
    let missing = layer(key, 16);
    let no_cache = layer(key, 0);
    let cached = layer(key, 4096);
    let token = &tokens[0];
    let (mut a, mut b, mut c, mut d) = (0, 0, 0, 0);
    let next = |i: &mut usize| {
        *i = (*i + 1) % tokens.len();
        *i
    };
    measure(
        group,
        vec![
            variant("signature only (baseline)", || {
                let (message, signature) = parts[next(&mut a)];
                jsonwebtoken::crypto::verify(
                    black_box(signature),
                    message.as_bytes(),
                    &decoding_key,
                    key.algorithm(),
                )
                .unwrap();
            }),
            variant("jsonwebtoken decode", || {
                jsonwebtoken::decode::<Map<String, Value>>(
                    black_box(&tokens[next(&mut b)]),
                    &decoding_key,
                    &validation,
                )
                .unwrap();
            }),
            variant("layer, uncached (cache miss)", || {
                missing.verify(black_box(&tokens[next(&mut c)])).unwrap();
            }),
            variant("layer, cache disabled", || {
                no_cache.verify(black_box(&tokens[next(&mut d)])).unwrap();
            }),
        ],
        iterations,
        rounds,
    );
    measure(
        group,
        vec![
            variant("layer, cached (baseline)", || {
                cached.verify(black_box(token)).unwrap();
            }),
            variant("SHA-256 of the token", || {
                black_box(sha2::Sha256::digest(black_box(token.as_bytes())));
            }),
        ],
        iterations * 100,
        rounds,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "| group | variant | fastest round | median round | fastest / baseline | median / baseline |"
    );
    println!("|---|---|---|---|---|---|");
    jwt("RS256", &Key::rsa(), 40, 300);
    jwt("ES256", &Key::es256(), 20, 300);
    let keys = common::api_key_layer(10_000);
    measure(
        "API key, 10k keys",
        vec![
            variant("hit (baseline)", || {
                keys.check(black_box("sk-live-07777-0123456789abcdef"))
                    .unwrap();
            }),
            variant("miss", || {
                keys.check(black_box("sk-live-99999-0123456789abcdef"))
                    .unwrap_err();
            }),
        ],
        5000,
        150,
    );
}
