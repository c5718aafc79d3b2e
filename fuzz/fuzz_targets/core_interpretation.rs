//! The one interpretation of a request every layer shares: `agentgw_core::{path, json,
//! content, decode}`.
//!
//! Checks, on arbitrary bytes:
//!
//! 1. `path::canonical` never panics; a canonical path is its own canonical form, decodes to
//!    the same bytes as the input, and has no dot segment, no empty segment but a trailing
//!    one, and no backslash.
//! 2. `json::parse` accepts only what serde_json reads, and reads it the same; no object of the
//!    result has two keys equal ignoring ASCII case.
//! 3. `content::MediaType::parse` never panics.
//! 4. `decode::decode` never yields more than its limit, whatever the coding.
//! 5. `json::plain::read` calls plain only what the strict parser accepts (with and without
//!    the rule on field spelling), and each top-level member's text parses to the member the
//!    strict parser reads.
#![no_main]

use agentgw_core::body::BodyLimit;
use agentgw_core::content::{ContentCoding, MediaType};
use agentgw_core::decode::{DecodeLimits, decode};
use agentgw_core::{json, path};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn no_folded_duplicates(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<String> = map.keys().map(|k| k.to_ascii_lowercase()).collect();
            keys.sort();
            keys.windows(2).all(|w| w[0] != w[1]) && map.values().all(no_folded_duplicates)
        }
        Value::Array(items) => items.iter().all(no_folded_duplicates),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(canonical) = path::canonical(text) {
            assert_eq!(path::canonical(&canonical).unwrap(), canonical);
            assert_eq!(percent_decode(&canonical), percent_decode(text));
            assert!(!canonical.contains('\\'));
            let segments: Vec<&str> = canonical[1..].split('/').collect();
            for (n, segment) in segments.iter().enumerate() {
                assert!(*segment != "." && *segment != "..");
                assert!(!segment.is_empty() || n + 1 == segments.len());
            }
        }
    }

    if let Ok(value) = json::parse(data) {
        let plain: Value = serde_json::from_slice(data).expect("strict JSON is JSON");
        assert_eq!(value, plain);
        assert!(no_folded_duplicates(&value));
    }

    if let Ok(text) = std::str::from_utf8(data) {
        for field_case in [true, false] {
            let Some(document) = json::plain::read(text, field_case, &mut json::plain::NoVisit)
            else {
                continue;
            };
            let strict = if field_case {
                json::parse(data)
            } else {
                json::parse_unique_keys(data)
            }
            .expect("a plain document is strict JSON");
            assert_eq!(document.is_object(), strict.is_object());
            if let (Some(members), Value::Object(object)) = (document.members(), &strict) {
                assert_eq!(members.len(), object.len());
                for ((key, value), (strict_key, strict_value)) in members.iter().zip(object) {
                    assert_eq!(&text[key.clone()], strict_key.as_str());
                    let member: Value = serde_json::from_str(&text[value.clone()]).unwrap();
                    assert_eq!(&member, strict_value);
                }
            }
        }
    }

    let _ = MediaType::parse(data);

    let limits = DecodeLimits::new(BodyLimit::new(1 << 16));
    for coding in [
        ContentCoding::Gzip,
        ContentCoding::Deflate,
        ContentCoding::Brotli,
        ContentCoding::Zstd,
    ] {
        if let Ok(decoded) = decode(data, &[coding], &limits) {
            assert!(decoded.len() <= 1 << 16);
        }
    }
});
