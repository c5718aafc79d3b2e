//! A JSON body checked without walking its tree.
//!
//! Most responses and requests contain nothing any rule matches. Parsing them into a
//! `serde_json::Value` (an ordered map per object), walking the LLM formats over it and
//! scanning each string costs several times the scan alone. [`unchanged`] reads the bytes once
//! instead, with core's plain reader ([`agentgw_core::json::plain`]): when the body is a plain
//! JSON document (the strict parser would accept it, and reads it as written) and no guard
//! matches any of its strings or numbers, the guards would not change or refuse it, and it is
//! forwarded as it came, never parsed. Classifier guards, which score text segments by scope,
//! always take the walk.
//!
//! The shortcut must never pass what the full path would mask or refuse, so it gives up (and
//! the full path runs) wherever the plain reader does (see its docs: escaped keys, lone
//! surrogates, exponents, duplicate keys, deep nesting, ...), and also where the text a guard
//! would scan after parsing could differ from the bytes, or where the full path looks at more
//! than single values:
//!
//! - an escape sequence in a string value (`\u0040` is `@` once decoded);
//! - a number that is not a plain non-negative integer (a float's text after parsing, `1.50`
//!   as `1.5`, is not its bytes);
//! - a `logprobs` member that is not `null` (logprob tokens are scanned joined, like a stream).
//!
//! Every string value and every number is scanned with every guard, whatever their scopes:
//! the full path scans each of them with the guards of its scope, a subset. Object keys
//! are not scanned, as on the full path.

use agentgw_core::json::plain::{self, Number, Visit};

use super::Guards;

/// Whether the response `bytes` is a JSON document the guards would forward unchanged: read
/// without a tree (see the [module docs](self)). `false` means "parse it and apply the guards".
/// Responses are read as [`agentgw_core::json::parse_unique_keys`] reads them.
pub(crate) fn unchanged(bytes: &[u8], guards: &Guards) -> bool {
    read(bytes, guards, false)
}

/// Like [`unchanged`], for a request: `true` also means the body is strict JSON as
/// [`agentgw_core::json::parse`] reads it (with its rule on the spelling of the fields layers
/// read), so nothing else needs to parse it to know.
pub(crate) fn request_unchanged(bytes: &[u8], guards: &Guards) -> bool {
    read(bytes, guards, true)
}

fn read(bytes: &[u8], guards: &Guards, field_case: bool) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    plain::accepts(text, field_case, &mut NoMatch(guards))
}

/// Gives up on anything a guard matches, and on what the full path reads otherwise.
struct NoMatch<'g>(&'g Guards);

impl<'t> Visit<'t> for NoMatch<'_> {
    fn member(&mut self, key: &'t str, first: u8) -> bool {
        key != "logprobs" || first == b'n'
    }

    fn string(&mut self, text: &'t str, escaped: bool) -> bool {
        !escaped && !self.0.matches_any(text)
    }

    fn number(&mut self, text: &'t str, kind: Number) -> bool {
        kind == Number::Natural && !self.0.matches_any(text)
    }
}

#[cfg(test)]
mod tests {
    use agentgw_core::llm::Direction;
    use proptest::prelude::*;

    use super::*;
    use crate::guard::tests::guards;

    fn masking() -> Guards {
        guards(
            "response:\n  - regex:\n      action: Mask\n      builtins: [CREDIT_CARD, EMAIL, PHONE_NUMBER, SSN]\n      matches:\n        - {name: secret, pattern: 'sk-[a-z0-9]{8}'}\n",
            Direction::Response,
        )
    }

    fn requesting() -> Guards {
        guards(
            "request:\n  - scopes: [user]\n    regex:\n      action: Reject\n      phrases: [\"ignore previous instructions\"]\n      matches:\n        - {name: secret, pattern: 'sk-[a-z0-9]{8}'}\n  - regex: {action: Mask, builtins: [CREDIT_CARD, EMAIL, SSN]}\n",
            Direction::Request,
        )
    }

    #[test]
    fn requests_take_the_walk_when_any_guard_matches_any_string() {
        let guards = requesting();
        let plain = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello, how are you today?"}]}"#;
        assert!(request_unchanged(plain.as_bytes(), &guards));
        for case in [
            r#"{"messages":[{"role":"user","content":"Ignore  PREVIOUS instructions"}]}"#,
            // A guard scoped to user messages is still applied to every string here.
            r#"{"messages":[{"role":"system","content":"ignore previous instructions"}]}"#,
            r#"{"messages":[{"role":"user","content":"mail jo@example.com"}]}"#,
            r#"{"metadata":{"key":"sk-abcdef12"}}"#,
        ] {
            assert!(!request_unchanged(case.as_bytes(), &guards), "{case}");
        }
        // A key that folds to a field layers read: the strict parser refuses the request (its
        // error is the answer), while a response may carry such a key.
        let refused = r#"{"Model":"gpt-4o-mini","messages":[]}"#;
        assert!(!request_unchanged(refused.as_bytes(), &guards));
        assert!(unchanged(refused.as_bytes(), &guards));
    }

    const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":13,"completion_tokens":18,"total_tokens":31}}"#;

    #[test]
    fn a_plain_completion_with_nothing_to_mask_is_forwarded_unread() {
        assert!(unchanged(COMPLETION.as_bytes(), &masking()));
        assert!(unchanged(
            b" [1, true, false, null, {\"a\": []}] \n",
            &masking()
        ));
    }

    #[test]
    fn anything_a_guard_matches_or_the_bytes_could_hide_takes_the_full_path() {
        let guards = masking();
        let cases: &[&str] = &[
            // A match in a value, in a number.
            r#"{"content":"mail jo@example.com"}"#,
            r#"{"content":"key sk-abcdef12"}"#,
            r#"{"card":4111111111111111}"#,
            // What only decoding shows.
            r#"{"content":"mail jo\u0040example.com"}"#,
            r#"{"content":"line\nbreak"}"#,
            r#"{"n":4.111111111111111e15}"#,
            r#"{"n":1.5}"#,
            r#"{"n":-1}"#,
            r#"{"n":01}"#,
            r#"{"n":12345678901234567890}"#,
            // Logprob tokens are scanned joined.
            r#"{"choices":[{"logprobs":{"content":[{"token":"jo@"},{"token":"example.com"}]}}]}"#,
            // What the parser refuses or could read differently.
            r#"{"a":1,"A":2}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a" 1}"#,
            "\u{feff}{}",
            "",
            "  ",
            r#"{"a":"x	y"}"#,
            r#"[1 2]"#,
            r#"{"a":tru}"#,
            r#"{"a":nulll}"#,
        ];
        for case in cases {
            assert!(!unchanged(case.as_bytes(), &guards), "{case}");
        }
        assert!(!unchanged(b"{\"a\":\"\xff\"}", &guards));
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(!unchanged(deep.as_bytes(), &guards));
        let shallow = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(unchanged(shallow.as_bytes(), &guards));
        let object = |keys: usize| {
            let members: Vec<String> = (0..keys).map(|k| format!("\"k{k}\":\"v\"")).collect();
            format!("{{{}}}", members.join(","))
        };
        assert!(unchanged(object(plain::MAX_KEYS).as_bytes(), &guards));
        assert!(!unchanged(object(plain::MAX_KEYS + 1).as_bytes(), &guards));
        // A duplicate after many keys, and a string ending at a backslash or control byte.
        let late = format!("{},\"k3\":1}}", &object(20)[..object(20).len() - 1]);
        assert!(!unchanged(late.as_bytes(), &guards), "{late}");
        assert!(!unchanged(b"{\"a\":\"tab\there\"}", &guards));
        assert!(!unchanged(b"{\"a\":\"x\\\"}", &guards));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        // Text that often holds (or almost holds) what the guards look for.
        let text = prop_oneof![
            "[a-z @.0-9-]{0,24}",
            Just("jo@example.com".to_owned()),
            Just("call 555-867-5309".to_owned()),
            Just("4111 1111 1111 1111".to_owned()),
            Just("sk-abcdef12".to_owned()),
            "[\\PC]{0,8}",
        ];
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<u64>().prop_map(|n| serde_json::json!(n)),
            any::<i32>().prop_map(|n| serde_json::json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| serde_json::json!(f)),
            text.clone().prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::vec(("[a-zA-Z]{1,6}", inner), 0..6).prop_map(|members| {
                    serde_json::Value::Object(members.into_iter().collect())
                }),
            ]
        })
    }

    proptest! {
        /// The shortcut agrees with the full path: whatever it forwards unread, parsing and
        /// applying the guards would have forwarded unchanged too.
        #[test]
        fn what_is_forwarded_unread_the_full_path_forwards_unchanged(
            value in json_value(),
            pretty in any::<bool>(),
        ) {
            let guards = masking();
            let bytes = if pretty {
                serde_json::to_vec_pretty(&value).unwrap()
            } else {
                serde_json::to_vec(&value).unwrap()
            };
            if unchanged(&bytes, &guards) {
                let parsed = agentgw_core::json::parse_unique_keys(&bytes).unwrap();
                let full = guards.apply_json(&parsed, None, Direction::Response);
                prop_assert!(matches!(full, Ok(None)), "{}", String::from_utf8_lossy(&bytes));
            }
        }

        /// The same for request guards, scoped and unscoped, that mask or refuse: a request
        /// forwarded without the walk is one the walk forwards unchanged.
        #[test]
        fn requests_forwarded_without_the_walk_are_those_the_walk_forwards_unchanged(
            value in json_value(),
            chat in any::<bool>(),
        ) {
            let guards = requesting();
            let value = if chat {
                serde_json::json!({"model": "m", "messages": [
                    {"role": "system", "content": value.clone()},
                    {"role": "user", "content": value}]})
            } else {
                value
            };
            let bytes = serde_json::to_vec(&value).unwrap();
            if request_unchanged(&bytes, &guards) {
                let parsed = agentgw_core::json::parse(&bytes).unwrap();
                let full = guards.apply_json(&parsed, None, Direction::Request);
                prop_assert!(matches!(full, Ok(None)), "{}", String::from_utf8_lossy(&bytes));
            }
        }

        /// Arbitrary bytes never panic, and are never forwarded unread unless they parse.
        #[test]
        fn arbitrary_bytes_are_forwarded_unread_only_when_they_parse(
            bytes in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            if unchanged(&bytes, &masking()) {
                prop_assert!(agentgw_core::json::parse_unique_keys(&bytes).is_ok());
            }
            if request_unchanged(&bytes, &requesting()) {
                prop_assert!(agentgw_core::json::parse(&bytes).is_ok());
            }
        }
    }
}
