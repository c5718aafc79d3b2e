//! `agentgw_core::llm`: walking and rewriting the text segments of LLM payloads and stream
//! chunks.
//!
//! For input that is JSON, for every `Format` and `Direction` (and format detection):
//!
//! 1. `rewrite_body` with an upper-casing function gives valid JSON whose segments are the
//!    original segments upper-cased, in the same order and scopes, or `None` exactly when every
//!    segment already was upper case.
//! 2. Rewriting with the identity (or with `None`) gives `None`: the body is forwarded untouched.
//! 3. `rewrite_segments` offers every segment exactly once: appending a marker to each one gives
//!    segments that are the originals plus the marker, and the count it returns is their number.
//! 4. The same for stream chunks: `rewrite_deltas` keeps every `DeltaKey`, and
//!    `rewrite_event_segments` keeps every scope.
#![no_main]

use agentgw_core::llm::{self, DeltaKey, Direction, Format, Scope};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const DIRECTIONS: [Direction; 2] = [Direction::Request, Direction::Response];
const MARK: &str = "\u{2020}";

fn segments(json: &Value, format: Format, direction: Direction) -> Vec<(Scope, String)> {
    let mut out = Vec::new();
    llm::for_each_segment(json, format, direction, |segment| {
        out.push((segment.scope, segment.text.to_owned()));
    });
    out
}

fn deltas(chunk: &Value) -> Vec<(DeltaKey, String)> {
    let mut out = Vec::new();
    llm::for_each_delta(chunk, |delta| out.push((delta.key, delta.text.to_owned())));
    out
}

fn event_segments(event: &Value) -> Vec<(Scope, String)> {
    let mut out = Vec::new();
    llm::for_each_event_segment(event, |segment| {
        out.push((segment.scope, segment.text.to_owned()));
    });
    out
}

fn upper<K>(_: K, text: &str) -> Option<String> {
    Some(text.to_uppercase())
}

fn mark<K>(_: K, text: &str) -> Option<String> {
    Some(format!("{text}{MARK}"))
}

/// What `f` does to each text of `items`, with the number of texts it changes.
fn mapped<K: Copy>(
    items: &[(K, String)],
    f: fn(K, &str) -> Option<String>,
) -> (Vec<(K, String)>, usize) {
    let mut changed = 0;
    let out = items
        .iter()
        .map(|(key, text)| {
            let new = f(*key, text).expect("rewrites always answer");
            changed += usize::from(new != *text);
            (*key, new)
        })
        .collect();
    (out, changed)
}

fn check_body(body: &[u8], json: &Value, format: Option<Format>, direction: Direction) {
    let resolved = format.or_else(|| Format::detect(json, direction));
    let original = resolved.map_or_else(Vec::new, |format| segments(json, format, direction));

    // 1. Upper-casing.
    let (expected, changed) = mapped(&original, upper);
    match llm::rewrite_body(body, format, direction, upper).expect("the body is JSON") {
        Some(rewritten) => {
            assert!(changed > 0, "a body changed though no segment did");
            let rewritten: Value =
                serde_json::from_slice(&rewritten).expect("a rewritten body is JSON");
            let format = resolved.expect("only a known format is rewritten");
            // Rewriting text does not change what the body is.
            if let Some(format) = Format::detect(json, direction) {
                assert_eq!(Format::detect(&rewritten, direction), Some(format));
            }
            assert_eq!(segments(&rewritten, format, direction), expected);
        }
        None => assert_eq!(
            changed, 0,
            "segments changed but the body was not rewritten"
        ),
    }

    // 2. Identity.
    let identity = llm::rewrite_body(body, format, direction, |_, text| Some(text.to_owned()));
    assert!(identity.expect("the body is JSON").is_none());
    let nothing = llm::rewrite_body(body, format, direction, |_, _| None);
    assert!(nothing.expect("the body is JSON").is_none());

    // 3. Every segment is offered exactly once.
    if let Some(format) = resolved {
        let mut value = json.clone();
        let count = llm::rewrite_segments(&mut value, format, direction, mark);
        assert_eq!(count, original.len());
        assert_eq!(
            segments(&value, format, direction),
            mapped(&original, mark).0
        );
    }
}

fn check_stream(chunk: &Value) {
    let original = deltas(chunk);
    for f in [upper::<DeltaKey>, mark::<DeltaKey>] {
        let (expected, changed) = mapped(&original, f);
        let mut value = chunk.clone();
        assert_eq!(llm::rewrite_deltas(&mut value, f), changed);
        assert_eq!(deltas(&value), expected);
    }
    let mut value = chunk.clone();
    assert_eq!(
        llm::rewrite_deltas(&mut value, |_, text| Some(text.to_owned())),
        0
    );
    assert_eq!(&value, chunk);

    let original = event_segments(chunk);
    for f in [upper::<Scope>, mark::<Scope>] {
        let (expected, changed) = mapped(&original, f);
        let mut value = chunk.clone();
        assert_eq!(llm::rewrite_event_segments(&mut value, f), changed);
        assert_eq!(event_segments(&value), expected);
    }
    let mut value = chunk.clone();
    assert_eq!(llm::rewrite_event_segments(&mut value, |_, _| None), 0);
    assert_eq!(&value, chunk);
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<Value>(data) else {
        assert!(llm::rewrite_body(data, None, Direction::Request, upper).is_err());
        return;
    };
    for direction in DIRECTIONS {
        check_body(data, &json, None, direction);
        for format in Format::ALL {
            check_body(data, &json, Some(format), direction);
        }
    }
    check_stream(&json);
});
