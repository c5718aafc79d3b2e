//! A JSON body checked without walking its tree.
//!
//! Most responses and requests contain nothing any rule matches. Parsing them into a
//! `serde_json::Value` (an ordered map per object), walking the LLM formats over it and
//! scanning each string costs several times the scan alone. [`unchanged`] reads the bytes once
//! instead: when the body is a JSON document of the plainest kind and no guard matches any of
//! its strings or numbers, the guards would not change or refuse it, and it is forwarded as it
//! came. Responses skip the parse too; a request is still parsed first (CEL rules and the
//! other layers share that tree, and a body the strict parser refuses is scanned as text), so
//! for requests the shortcut saves the walk. Classifier guards, which score text segments by
//! scope, always take the walk.
//!
//! The shortcut must never pass what the full path would mask or refuse, so it gives up (and
//! the full path runs) on anything where the text a guard would scan after parsing could differ
//! from the bytes, or where the full path looks at more than single values:
//!
//! - an escape sequence in any string (`\u0040` is `@` once decoded), a control character;
//! - a number that is not a plain non-negative integer of at most 19 digits (a float's text
//!   after parsing, `1e3` as `1000.0`, is not its bytes);
//! - a `logprobs` member that is not `null` (logprob tokens are scanned joined, like a stream);
//! - anything the parser would refuse or read differently: invalid UTF-8, a byte order mark,
//!   trailing data, a duplicate key (compared case-insensitively, as `agentgw_core::json`
//!   does), more than 64 keys in an object, nesting deeper than 64.
//!
//! Every string value and every number is scanned with every guard, whatever their scopes:
//! the full path scans each of them with the guards of its scope, a subset. Object keys
//! are not scanned, as on the full path.

use super::Guards;

/// Deepest nesting read here; deeper documents take the full path (which has its own limit).
const MAX_DEPTH: usize = 64;
/// Most keys per object compared pairwise for duplicates; larger objects take the full path.
const MAX_KEYS: usize = 64;
/// Longest integer whose text is the same after parsing (any 19 digits fit in a `u64`).
const MAX_DIGITS: usize = 19;

/// The bytes that end a string without escapes or control characters: `"`, `\` and the
/// control characters below 0x20.
const ENDS_PLAIN_STRING: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Whether `bytes` is a JSON document the guards would forward unchanged: read without a tree
/// (see the [module docs](self)). `false` means "parse it and apply the guards".
pub(crate) fn unchanged(bytes: &[u8], guards: &Guards) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let mut scan = Scan {
        text,
        pos: 0,
        depth: 0,
        matches: |value: &str| guards.matches_any(value),
    };
    scan.document().is_some()
}

/// A recursive-descent reader of one JSON document; every method returns `None` to give up.
struct Scan<'t, F> {
    text: &'t str,
    pos: usize,
    depth: usize,
    /// Whether a guard matches a string value or a number.
    matches: F,
}

impl<'t, F: FnMut(&str) -> bool> Scan<'t, F> {
    fn document(&mut self) -> Option<()> {
        self.value()?;
        self.whitespace();
        (self.pos == self.text.len()).then_some(())
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let ate = self.peek() == Some(byte);
        if ate {
            self.pos += 1;
        }
        ate
    }

    fn value(&mut self) -> Option<()> {
        self.whitespace();
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => {
                let text = self.string()?;
                (!(self.matches)(text)).then_some(())
            }
            b'0'..=b'9' => {
                let digits = self.integer()?;
                (!(self.matches)(digits)).then_some(())
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.text[self.pos..].starts_with(word).then(|| {
            self.pos += word.len();
        })
    }

    /// A string without escapes or control characters; returns its content.
    fn string(&mut self) -> Option<&'t str> {
        let start = self.pos + 1;
        let bytes = &self.text.as_bytes()[start..];
        let len = bytes
            .iter()
            .position(|&b| ENDS_PLAIN_STRING[usize::from(b)])?;
        if bytes[len] != b'"' {
            return None;
        }
        self.pos = start + len + 1;
        Some(&self.text[start..start + len])
    }

    /// A non-negative integer of at most [`MAX_DIGITS`] digits, without leading zeros.
    fn integer(&mut self) -> Option<&'t str> {
        let start = self.pos;
        let bytes = &self.text.as_bytes()[start..];
        let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        let leading_zero = len > 1 && bytes[0] == b'0';
        let continues = matches!(bytes.get(len), Some(b'.' | b'e' | b'E'));
        if len > MAX_DIGITS || leading_zero || continues {
            return None;
        }
        self.pos += len;
        Some(&self.text[start..start + len])
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        self.pos += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn array(&mut self) -> Option<()> {
        self.enter()?;
        self.whitespace();
        if !self.eat(b']') {
            loop {
                self.value()?;
                self.whitespace();
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    fn object(&mut self) -> Option<()> {
        self.enter()?;
        self.whitespace();
        let mut keys: Vec<&str> = Vec::new();
        if !self.eat(b'}') {
            loop {
                self.whitespace();
                if self.peek()? != b'"' {
                    return None;
                }
                let key = self.string()?;
                if keys.len() == MAX_KEYS || keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                    return None;
                }
                keys.push(key);
                self.whitespace();
                if !self.eat(b':') {
                    return None;
                }
                if key == "logprobs" {
                    self.whitespace();
                    self.literal("null")?;
                } else {
                    self.value()?;
                }
                self.whitespace();
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        self.depth -= 1;
        Some(())
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
        assert!(unchanged(plain.as_bytes(), &guards));
        for case in [
            r#"{"messages":[{"role":"user","content":"Ignore  PREVIOUS instructions"}]}"#,
            // A guard scoped to user messages is still applied to every string here.
            r#"{"messages":[{"role":"system","content":"ignore previous instructions"}]}"#,
            r#"{"messages":[{"role":"user","content":"mail jo@example.com"}]}"#,
            r#"{"metadata":{"key":"sk-abcdef12"}}"#,
        ] {
            assert!(!unchanged(case.as_bytes(), &guards), "{case}");
        }
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
        assert!(unchanged(object(MAX_KEYS).as_bytes(), &guards));
        assert!(!unchanged(object(MAX_KEYS + 1).as_bytes(), &guards));
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
            if unchanged(&bytes, &guards) {
                let parsed = agentgw_core::json::parse_unique_keys(&bytes).unwrap();
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
        }
    }
}
