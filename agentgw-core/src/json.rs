//! Strict JSON: one reading of a body that every JSON parser agrees with.
//!
//! Parsers disagree on the edges of JSON. Python's `json` accepts `NaN`, `Infinity` and lone
//! surrogates; Go's `encoding/json` matches object keys to fields case-insensitively; every
//! common parser keeps the *last* of two duplicate keys, some the first. A layer that inspects a
//! body with one reading while the upstream acts on another inspects nothing. So [`parse`]
//! accepts only what all of them read the same way, and refuses the rest:
//!
//! - UTF-8 only: no byte-order mark, no UTF-16 or UTF-32, no invalid sequences, no lone
//!   surrogate escapes (`"\ud800"`);
//! - RFC 8259 only: no `NaN`/`Infinity`, no comments, no trailing commas, nothing after the
//!   value but whitespace, numbers within the range of an `f64`;
//! - nesting at most 128 deep;
//! - no two keys of one object equal after ASCII case folding (`"a"`/`"a"`, `"model"`/`"Model"`,
//!   and escaped spellings such as `"mod\u0065l"`, which unescape to the same key);
//! - no key that folds to a field the layers read ([`FIELDS`]: `model`, `messages`, `method`,
//!   `params`, `name`, ...) unless it is spelled exactly so: a lone `"Model"` would be the model
//!   to Go and no model to Python.
//!
//! ```
//! use agentgw_core::json::{self, JsonError};
//!
//! assert_eq!(json::parse(br#"{"model":"gpt-4o"}"#).unwrap()["model"], "gpt-4o");
//! assert!(matches!(
//!     json::parse(br#"{"model":"a","model":"b"}"#),
//!     Err(JsonError::DuplicateKey { .. })
//! ));
//! assert!(matches!(
//!     json::parse(br#"{"messages":[],"Messages":[]}"#),
//!     Err(JsonError::DuplicateKey { .. })
//! ));
//! assert!(matches!(
//!     json::parse(br#"{"Model":"gpt-4o"}"#),
//!     Err(JsonError::FieldCase { .. })
//! ));
//! assert!(json::parse(b"{\"a\":NaN}").is_err());
//! assert!(json::parse(b"\xef\xbb\xbf{}").is_err());
//! assert!(json::parse(br#"{"a":"\ud800"}"#).is_err());
//! assert!(json::parse(br#"{} {}"#).is_err());
//! ```
//!
//! [`plain`] reaches the same verdict on ordinary bodies without building the tree, and says
//! where their top-level members are; [`crate::Payload`] uses it so that a layer reading one
//! field, or only the verdict, does not pay for the whole parse.
//!
//! # serde_json features this crate turns on
//!
//! agentgw enables serde_json's `preserve_order` and `float_roundtrip` features, which cargo
//! unifies into every crate of a user's build. Both serve the rule that what is forwarded is what
//! was inspected: a body a layer rewrites (a masked message, a filtered `tools/list`) is
//! serialized again, and without them its members would be re-sorted by key and some numbers
//! (`0.1` written with 17 digits, large exponents) re-printed differently from what the client
//! sent, so the upstream could read a different document than the one inspected.

pub mod plain;

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Fields the layers read by name. A key that folds to one of these in ASCII case must be
/// spelled exactly as listed.
pub const FIELDS: &[&str] = &[
    "arguments",
    "content",
    "id",
    "input",
    "instructions",
    "jsonrpc",
    "messages",
    "method",
    "model",
    "name",
    "params",
    "prompt",
    "role",
    "system",
    "tools",
];

/// Why a body is not strict JSON. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The body is empty or only whitespace.
    #[error("body is empty")]
    Empty,
    /// The body is not valid UTF-8 (or starts with a byte-order mark).
    #[error("body is not valid UTF-8 (at byte {valid_up_to})")]
    InvalidUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The body is not RFC 8259 JSON, or nests too deep.
    #[error("body is not valid JSON: {message} at line {line}, column {column}")]
    InvalidJson {
        /// The parser's message.
        message: String,
        /// Line of the error (1-based).
        line: usize,
        /// Column of the error (1-based).
        column: usize,
    },
    /// An object has two keys equal after ASCII case folding.
    #[error("duplicate key `{key}` (keys are compared ignoring ASCII case)")]
    DuplicateKey {
        /// The second spelling of the key.
        key: String,
    },
    /// A key folds to a field the layers read but is spelled differently.
    #[error("key `{key}` must be spelled `{field}`")]
    FieldCase {
        /// The key as sent.
        key: String,
        /// The field it folds to.
        field: &'static str,
    },
}

impl JsonError {
    /// A short, stable reason for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            JsonError::Empty => "body_empty",
            JsonError::InvalidUtf8 { .. } => "body_not_utf8",
            JsonError::InvalidJson { .. } => "json_invalid",
            JsonError::DuplicateKey { .. } => "json_duplicate_key",
            JsonError::FieldCase { .. } => "json_key_case",
        }
    }
}

/// Parses `bytes` as strict JSON. See the [module docs](self) for what is refused.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    parse_with(bytes, true)
}

/// Like [`parse`], without the rule on the spelling of [`FIELDS`]: for what an upstream answers
/// (a tool's `structuredContent` may well have a `Name` key). Duplicate keys are still refused,
/// since clients disagree on which one counts.
///
/// ```
/// use agentgw_core::json;
///
/// assert!(json::parse_unique_keys(br#"{"Name":"x","name":"y"}"#).is_err());
/// assert!(json::parse_unique_keys(br#"{"Name":"x"}"#).is_ok());
/// ```
pub fn parse_unique_keys(bytes: &[u8]) -> Result<Value, JsonError> {
    parse_with(bytes, false)
}

fn parse_with(bytes: &[u8], field_case: bool) -> Result<Value, JsonError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(JsonError::Empty);
    }
    if bytes.starts_with(b"\xef\xbb\xbf") {
        return Err(JsonError::InvalidUtf8 { valid_up_to: 0 });
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(JsonError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut violation = None;
    let parsed = StrictSeed {
        violation: &mut violation,
        field_case,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    if let Some(violation) = violation {
        return Err(violation);
    }
    parsed.map_err(|e| JsonError::InvalidJson {
        message: strip_position(e.to_string()),
        line: e.line(),
        column: e.column(),
    })
}

fn strip_position(message: String) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

/// Builds a [`Value`] like serde_json's own, recording the first violation of the key rules.
/// A violation aborts the parse with a custom error; the violation itself is reported from the
/// side channel so that it keeps its type.
struct StrictSeed<'v> {
    violation: &'v mut Option<JsonError>,
    field_case: bool,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(StrictSeed {
            violation: &mut *self.violation,
            field_case: self.field_case,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        // Objects are small: comparing with the keys already read costs less than hashing
        // folded copies. Past 32 keys, a set of folded keys keeps it linear.
        let mut folded: Option<std::collections::HashSet<String>> = None;
        while let Some(key) = map.next_key::<String>()? {
            let duplicate = match folded.as_mut() {
                Some(set) => !set.insert(key.to_ascii_lowercase()),
                None => object.keys().any(|k| k.eq_ignore_ascii_case(&key)),
            };
            if duplicate {
                *self.violation = Some(JsonError::DuplicateKey {
                    key: truncate(&key),
                });
                return Err(de::Error::custom("duplicate key"));
            }
            if self.field_case
                && let Some(field) = miscased_field(&key)
            {
                *self.violation = Some(JsonError::FieldCase {
                    key: truncate(&key),
                    field,
                });
                return Err(de::Error::custom("key case"));
            }
            if folded.is_none() && object.len() == 32 {
                let mut set: std::collections::HashSet<String> =
                    object.keys().map(|k| k.to_ascii_lowercase()).collect();
                set.insert(key.to_ascii_lowercase());
                folded = Some(set);
            }
            let value = map.next_value_seed(StrictSeed {
                violation: &mut *self.violation,
                field_case: self.field_case,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The field of [`FIELDS`] that `key` folds to in ASCII case, when it is spelled otherwise.
pub(crate) fn miscased_field(key: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|field| field.eq_ignore_ascii_case(key))
        .copied()
        .filter(|field| key != *field)
}

/// Keys are echoed in errors; keep them short.
fn truncate(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((at, _)) => format!("{}...", &key[..at]),
        None => key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewritten_bodies_keep_member_order_and_exact_numbers() {
        let text = br#"{"zeta":1,"alpha":[2.5e-308,0.30000000000000004,1e+300],"model":"m"}"#;
        let value = parse(text).unwrap();
        assert_eq!(serde_json::to_vec(&value).unwrap(), text.to_vec());
    }
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn accepts_ordinary_json() {
        let value = parse(br#" {"model":"m","messages":[{"role":"user","content":"hi"}],"x":1.5,"y":null,"z":[true,false,-1,18446744073709551615]} "#).unwrap();
        assert_eq!(value["messages"][0]["content"], "hi");
        assert_eq!(value["z"][3], json!(u64::MAX));
        // Case variants of fields nobody reads by name are fine, distinct keys too.
        assert!(parse(br#"{"inputSchema":{},"InputSchema2":1,"Type":"x"}"#).is_ok());
    }

    #[test]
    fn refuses_what_parsers_read_differently() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "body_empty"),
            (b"  \n", "body_empty"),
            (b"\xef\xbb\xbf{}", "body_not_utf8"),
            (b"{\"a\":\"\xff\"}", "body_not_utf8"),
            (b"{\x00\"\x00a\x00\"\x00:\x001\x00}\x00", "json_invalid"),
            (br#"{"a":NaN}"#, "json_invalid"),
            (br#"{"a":Infinity}"#, "json_invalid"),
            (br#"{"a":-Infinity}"#, "json_invalid"),
            (br#"{"a":1e400}"#, "json_invalid"),
            (br#"{"a":"\ud800"}"#, "json_invalid"),
            (br#"{"a":"\udc00x"}"#, "json_invalid"),
            (br#"{"a":1,}"#, "json_invalid"),
            (br#"{"a":1} x"#, "json_invalid"),
            (br#"{"a":1}{"a":2}"#, "json_invalid"),
            (br#"{"a":1} // c"#, "json_invalid"),
            (br#"{'a':1}"#, "json_invalid"),
            (br#"{"a":1,"a":2}"#, "json_duplicate_key"),
            (br#"{"x":{"k":1,"K":2}}"#, "json_duplicate_key"),
            (
                br#"{"messages":[],"messag\u0065s":[]}"#,
                "json_duplicate_key",
            ),
            (br#"{"messages":[],"Messages":[]}"#, "json_duplicate_key"),
            (br#"{"Model":"m"}"#, "json_key_case"),
            (br#"{"params":{"Name":"t"}}"#, "json_key_case"),
            (br#"{"METHOD":"tools/call"}"#, "json_key_case"),
        ];
        for (body, reason) in cases {
            let err = parse(body).expect_err(&String::from_utf8_lossy(body));
            assert_eq!(err.reason(), *reason, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse(deep.as_bytes()).unwrap_err().reason(), "json_invalid");
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn duplicates_found_in_large_objects() {
        let mut body = String::from("{");
        for i in 0..100 {
            body.push_str(&format!("\"k{i}\":{i},"));
        }
        body.push_str("\"K77\":0}");
        assert_eq!(
            parse(body.as_bytes()).unwrap_err().reason(),
            "json_duplicate_key"
        );
    }

    #[test]
    fn errors_never_echo_long_keys() {
        let key = "x".repeat(1000);
        let body = format!("{{\"{key}\":1,\"{key}\":2}}");
        let err = parse(body.as_bytes()).unwrap_err();
        assert!(err.to_string().len() < 200);
    }

    proptest! {
        /// What strict parsing accepts, serde_json reads the same way.
        #[test]
        fn agrees_with_serde_json_where_it_accepts(body in "[\\[\\]{}\",:a-cA-C0-9 .e\\-\\\\u]{0,40}") {
            if let Ok(value) = parse(body.as_bytes()) {
                let plain: Value = serde_json::from_slice(body.as_bytes()).unwrap();
                prop_assert_eq!(value, plain);
            }
        }
    }
}
