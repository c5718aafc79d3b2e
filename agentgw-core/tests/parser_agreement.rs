//! Whatever strict parsing accepts, the parsers upstreams use read the same way.
//!
//! Bodies are generated around the fields layers decide on (`model`, `messages`, `method`,
//! `params.name`), with duplicate keys, case variants, escaped key spellings and lenient
//! syntax mixed in. For every body [`agentgw_core::json::parse`] accepts, the forwarded bytes
//! (the body as it is) must give the same fields to:
//!
//! - `serde_json` (the Rust servers' reader);
//! - Python's `json` module (the real one, run once for the whole batch: FastAPI, Starlette,
//!   aiohttp, Flask read bodies with it), last key wins;
//! - a case-insensitive, last-wins reader: Go's `encoding/json` rule for struct fields.

use std::io::Write;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// The fields compared: a path of object keys.
const FIELDS: &[&[&str]] = &[&["model"], &["messages"], &["method"], &["params", "name"]];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("model".to_owned()),
        Just("Model".to_owned()),
        Just("MODEL".to_owned()),
        Just("messages".to_owned()),
        Just("Messages".to_owned()),
        Just("mod\\u0065l".to_owned()),
        Just("method".to_owned()),
        Just("Method".to_owned()),
        Just("params".to_owned()),
        Just("name".to_owned()),
        Just("Name".to_owned()),
        Just("other".to_owned()),
        Just("Other".to_owned()),
        "[a-z]{1,3}",
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"gpt-4o\"".to_owned()),
        Just("\"tools/call\"".to_owned()),
        Just("\"\\u0069gnore\"".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        Just("NaN".to_owned()),
        Just("1e400".to_owned()),
        Just("12".to_owned()),
        Just("null".to_owned()),
        Just("[{\"role\":\"user\",\"content\":\"hi\"}]".to_owned()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    scalar().prop_recursive(2, 12, 4, |inner| {
        prop::collection::vec((key(), inner), 0..4).prop_map(|pairs| object(&pairs))
    })
}

fn object(pairs: &[(String, String)]) -> String {
    let fields: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", fields.join(","))
}

fn body() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((key(), value()), 0..6),
        prop_oneof![Just(""), Just(" "), Just(" {}"), Just("\u{feff}")],
    )
        .prop_map(|(pairs, tail)| format!("{}{tail}", object(&pairs)))
}

/// Go's rule: a key matches a field if it folds to the field's name; later keys win.
fn go_field(json: &[u8], path: &[&str]) -> Option<Value> {
    let pairs = pairs_of(json)?;
    let (first, rest) = path.split_first()?;
    let mut found = None;
    for (k, v) in pairs {
        if k.eq_ignore_ascii_case(first) {
            found = Some(v);
        }
    }
    let found = found?;
    if rest.is_empty() {
        Some(found)
    } else {
        go_field(serde_json::to_string(&found).ok()?.as_bytes(), rest)
    }
}

/// The key/value pairs of an object as written, duplicates kept.
fn pairs_of(json: &[u8]) -> Option<Vec<(String, Value)>> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, Value)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, Value>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    de.deserialize_map(Pairs).ok()
}

fn exact_field(json: &Value, path: &[&str]) -> Option<Value> {
    path.iter()
        .try_fold(json, |v, k| v.as_object()?.get(*k))
        .cloned()
}

#[test]
fn accepted_bodies_read_the_same_in_every_parser() {
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
        .max(256);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let mut accepted = Vec::new();
    let mut refused = 0usize;
    // At least `cases` bodies, and more (up to 16 times as many) until both sides have over
    // 20: how many of a random batch the parser refuses varies from run to run.
    for drawn in 0..cases.saturating_mul(16) {
        if drawn >= cases && accepted.len() > 20 && refused > 20 {
            break;
        }
        let tree = body().new_tree(&mut runner).unwrap();
        let body = tree.current();
        match agentgw_core::json::parse(body.as_bytes()) {
            Ok(inspected) => accepted.push((body, inspected)),
            Err(_) => refused += 1,
        }
    }
    assert!(
        accepted.len() > 20 && refused > 20,
        "the generator covers both sides"
    );

    // Python's json, on the bytes forwarded (the body as it came).
    let mut python = Command::new("python3")
        .args([
            "-c",
            r#"
import json, sys
fields = json.loads(sys.argv[1])
for line in sys.stdin:
    doc = json.loads(json.loads(line))
    out = []
    for path in fields:
        v = doc
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        out.append(v)
    print(json.dumps(out))
"#,
            &serde_json::to_string(FIELDS).unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test (CI installs it with the toolchain image)");
    {
        let mut stdin = python.stdin.take().unwrap();
        for (body, _) in &accepted {
            writeln!(stdin, "{}", serde_json::to_string(body).unwrap()).unwrap();
        }
    }
    let output = python.wait_with_output().unwrap();
    assert!(output.status.success());
    let python_lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(python_lines.len(), accepted.len());

    for ((body, inspected), python) in accepted.iter().zip(&python_lines) {
        let serde: Value = serde_json::from_str(body).unwrap();
        for (i, path) in FIELDS.iter().enumerate() {
            let ours = exact_field(inspected, path);
            assert_eq!(
                exact_field(&serde, path),
                ours,
                "serde_json, {path:?}: {body}"
            );
            assert_eq!(
                python[i].clone(),
                ours.clone().unwrap_or(Value::Null),
                "python json, {path:?}: {body}"
            );
            assert_eq!(
                go_field(body.as_bytes(), path),
                ours,
                "case-insensitive last-wins, {path:?}: {body}"
            );
        }
    }
}
