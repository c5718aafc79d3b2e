//! Plain JSON: the strict verdict on an ordinary body without building its tree.
//!
//! Most bodies are of the plainest kind: strings without escape sequences, short numbers, a few
//! levels of nesting. For those, [`read`] decides in one pass over the bytes, without allocating
//! per value, what [`super::parse`] would decide after building a `serde_json::Value`: the body
//! is strict JSON. It also records where the members of a top-level object are, so that a
//! layer that reads one field (`request.body.model`) parses that member alone
//! ([`crate::Payload::field`]).
//!
//! The reader only ever says "strict JSON" or "I cannot tell"; it never refuses a body. It
//! gives up (`None`) on anything where its reading could differ from the strict parser's, and
//! the caller then parses:
//!
//! - invalid UTF-8 is the caller's to rule out (the reader takes `&str`); a byte-order mark or
//!   anything but JSON whitespace around the value;
//! - a control character in a string, an escape sequence in a key (keys are compared as
//!   written), an escape sequence in a value that the strict parser refuses or reads otherwise
//!   (an unknown one, a lone surrogate such as `"\ud800"`);
//! - a number with an exponent, or with more than [`MAX_NUMBER_DIGITS`] digits (any shorter
//!   one is a finite `f64`);
//! - nesting deeper than [`MAX_DEPTH`], an object with more than [`MAX_KEYS`] keys;
//! - two keys of one object equal in ASCII case, or (with the rule on) a key that folds to one
//!   of [`super::FIELDS`] but is spelled otherwise: the strict parser's errors name them.
//!
//! A [`Visit`] sees every member and every string value and number as the reader meets them
//! and may give up too: the prompt guard uses it to check a body for matches in the same pass.
//!
//! ```
//! use agentgw_core::json::plain::{self, NoVisit};
//!
//! let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
//! let document = plain::read(body, true, &mut NoVisit).expect("a plain body");
//! assert_eq!(document.value(body, "model"), Some(r#""gpt-4o""#));
//!
//! // An escaped key (is it `model`?) or a lone surrogate: the strict parser decides.
//! assert!(plain::read(r#"{"mod\u0065l":"gpt-4o"}"#, true, &mut NoVisit).is_none());
//! assert!(plain::read(r#"{"model":"\ud800"}"#, true, &mut NoVisit).is_none());
//! ```

use std::ops::Range;

use super::miscased_field;

/// Deepest nesting read; deeper documents are left to the strict parser (which allows 128).
pub const MAX_DEPTH: usize = 64;
/// Most keys of one object (compared pairwise for duplicates); larger objects are left to the
/// strict parser.
pub const MAX_KEYS: usize = 64;
/// Most digits of a number read here. Any decimal of at most 17 significant digits without
/// an exponent is a finite `f64`, so the strict parser's range check always passes.
pub const MAX_NUMBER_DIGITS: usize = 17;

/// What [`read`] found: a strict JSON document, and the members of its top-level object.
#[derive(Debug, Clone)]
pub struct Document {
    /// Key and value ranges of the top-level object's members, in order; `None` when the
    /// document is not an object.
    members: Option<Vec<(Range<usize>, Range<usize>)>>,
}

impl Document {
    /// Whether the document is an object.
    pub fn is_object(&self) -> bool {
        self.members.is_some()
    }

    /// The top-level members as ranges of the text read: `(key, value)`, the key without its
    /// quotes, the value as written. `None` when the document is not an object.
    pub fn members(&self) -> Option<&[(Range<usize>, Range<usize>)]> {
        self.members.as_deref()
    }

    /// The index in [`members`](Self::members) of the top-level member `key` of `text` (the
    /// text this document was read from; with another text the answer means nothing, but
    /// nothing panics). Keys are unique (see the module docs), so there is at most one.
    pub fn member(&self, text: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Option<usize> {
        let (text, key) = (text.as_ref(), key.as_ref());
        self.members()?
            .iter()
            .position(|(k, _)| text.get(k.clone()) == Some(key))
    }

    /// The text of the value of the top-level member `key` of `text` (the text this document
    /// was read from), as written.
    pub fn value<'t>(&self, text: &'t str, key: &str) -> Option<&'t str> {
        let i = self.member(text, key)?;
        text.get(self.members()?[i].1.clone())
    }
}

/// What a number's text looks like, for a [`Visit`] that cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number {
    /// Digits only: a non-negative integer.
    Natural,
    /// A minus sign, a fraction, or both.
    Other,
}

/// Called by [`read`] as it meets the parts of a document. Each method returns `false` to give
/// up: [`read`] then returns `None`.
pub trait Visit<'t> {
    /// The value of an object member with this key is next (`first` is its first byte).
    fn member(&mut self, key: &'t str, first: u8) -> bool {
        let _ = (key, first);
        true
    }

    /// A string value (not a key), without its quotes, as written: `escaped` when it holds an
    /// escape sequence (then its text once decoded differs from `text`).
    fn string(&mut self, text: &'t str, escaped: bool) -> bool {
        let _ = (text, escaped);
        true
    }

    /// A number, as written.
    fn number(&mut self, text: &'t str, kind: Number) -> bool {
        let _ = (text, kind);
        true
    }
}

/// A [`Visit`] that looks at nothing: [`read`] for the verdict and the members alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoVisit;

impl Visit<'_> for NoVisit {}

/// Reads `text` as a plain document (see the [module docs](self)): `Some` when it is strict
/// JSON as [`super::parse`] (with `field_case`) or [`super::parse_unique_keys`] (without)
/// reads it, `None` when the reader cannot tell or `visit` gave up.
pub fn read<'t, V: Visit<'t>>(text: &'t str, field_case: bool, visit: &mut V) -> Option<Document> {
    let mut members = Vec::with_capacity(16);
    let object = run(text, field_case, visit, Some(&mut members))?;
    Some(Document {
        members: object.then_some(members),
    })
}

/// Like [`read`], for the verdict alone (`true` where `read` is `Some`): nothing is recorded.
pub fn accepts<'t, V: Visit<'t>>(text: &'t str, field_case: bool, visit: &mut V) -> bool {
    run(text, field_case, visit, None).is_some()
}

/// Reads `text`; whether it is an object, or `None` to give up.
fn run<'t, V: Visit<'t>>(
    text: &'t str,
    field_case: bool,
    visit: &mut V,
    members: Option<&mut Vec<(Range<usize>, Range<usize>)>>,
) -> Option<bool> {
    let mut reader = Reader {
        text,
        pos: 0,
        depth: 0,
        keys: Vec::with_capacity(16),
        field_case,
        visit,
    };
    reader.whitespace();
    let object = reader.peek()? == b'{';
    if object {
        reader.object(members)?;
    } else {
        reader.value()?;
    }
    reader.whitespace();
    (reader.pos == text.len()).then_some(object)
}

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

/// The length of the run of bytes at the start of `bytes` that continue a plain string (none
/// is `"`, `\\` or a control character); `None` when the run reaches the end. Eight bytes at a
/// time: strings are most of a body.
fn plain_run(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    /// High bit of each byte of `word` below `n` (exact for the lowest such byte; a borrow
    /// can flag bytes above it, which do not matter).
    const fn below(word: u64, n: u8) -> u64 {
        word.wrapping_sub(ONES * n as u64) & !word & HIGH
    }
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let hits = below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
            | below(word, 0x20);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = bytes[at..]
        .iter()
        .position(|&b| ENDS_PLAIN_STRING[usize::from(b)])?;
    Some(at + tail)
}

/// The end of the escape sequence at `bytes[at]` (a backslash), or `None` when the strict
/// parser would refuse it or read it otherwise: an unknown escape, a `\u` escape of a lone
/// surrogate (a high one not followed by a low one, or a low one alone).
fn escape(bytes: &[u8], at: usize) -> Option<usize> {
    match *bytes.get(at + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(at + 2),
        b'u' => {
            let unit = hex4(bytes, at + 2)?;
            match unit {
                0xD800..=0xDBFF => {
                    if bytes.get(at + 6..at + 8)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(bytes, at + 8)?;
                    (0xDC00..=0xDFFF).contains(&low).then_some(at + 12)
                }
                0xDC00..=0xDFFF => None,
                _ => Some(at + 6),
            }
        }
        _ => None,
    }
}

/// The four hex digits at `bytes[at..]` as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// A recursive-descent reader; every method returns `None` to give up.
struct Reader<'t, 'v, V> {
    text: &'t str,
    pos: usize,
    depth: usize,
    /// The keys of the objects being read, outermost first: one allocation per document.
    keys: Vec<&'t str>,
    field_case: bool,
    visit: &'v mut V,
}

impl<'t, V: Visit<'t>> Reader<'t, '_, V> {
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
        match self.peek()? {
            b'{' => self.object(None),
            b'[' => self.array(),
            b'"' => {
                let (text, escaped) = self.string(true)?;
                self.visit.string(text, escaped).then_some(())
            }
            b'-' | b'0'..=b'9' => {
                let (text, kind) = self.number()?;
                self.visit.number(text, kind).then_some(())
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

    /// A string without control characters, and without escape sequences unless `escapes`;
    /// returns its content as written and whether it holds an escape sequence.
    fn string(&mut self, escapes: bool) -> Option<(&'t str, bool)> {
        let bytes = self.text.as_bytes();
        let start = self.pos + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            at += plain_run(&bytes[at..])?;
            match bytes[at] {
                b'"' => break,
                b'\\' if escapes => {
                    escaped = true;
                    at = escape(bytes, at)?;
                }
                _ => return None,
            }
        }
        self.pos = at + 1;
        Some((&self.text[start..at], escaped))
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?` of at most [`MAX_NUMBER_DIGITS`] digits.
    fn number(&mut self) -> Option<(&'t str, Number)> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut at = start;
        let negative = bytes[at] == b'-';
        at += usize::from(negative);
        let digits = |from: usize| {
            bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let whole = digits(at);
        if whole == 0 || (whole > 1 && bytes[at] == b'0') {
            return None;
        }
        at += whole;
        let mut fraction = 0;
        if bytes.get(at) == Some(&b'.') {
            fraction = digits(at + 1);
            if fraction == 0 {
                return None;
            }
            at += 1 + fraction;
        }
        if whole + fraction > MAX_NUMBER_DIGITS || matches!(bytes.get(at), Some(b'e' | b'E')) {
            return None;
        }
        self.pos = at;
        let kind = if negative || fraction > 0 {
            Number::Other
        } else {
            Number::Natural
        };
        Some((&self.text[start..at], kind))
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
                self.whitespace();
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

    /// An object; its members' ranges go to `members` when given (the top level).
    fn object(
        &mut self,
        mut members: Option<&mut Vec<(Range<usize>, Range<usize>)>>,
    ) -> Option<()> {
        self.enter()?;
        self.whitespace();
        // This object's keys are `self.keys[first..]`; nested objects push theirs after them
        // and remove them when they end.
        let first = self.keys.len();
        if !self.eat(b'}') {
            loop {
                self.whitespace();
                if self.peek()? != b'"' {
                    return None;
                }
                let key_start = self.pos + 1;
                let (key, _) = self.string(false)?;
                let keys = &self.keys[first..];
                if keys.len() == MAX_KEYS || keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                    return None;
                }
                if self.field_case && miscased_field(key).is_some() {
                    return None;
                }
                self.keys.push(key);
                self.whitespace();
                if !self.eat(b':') {
                    return None;
                }
                self.whitespace();
                if !self.visit.member(key, self.peek()?) {
                    return None;
                }
                let value_start = self.pos;
                self.value()?;
                if let Some(members) = members.as_deref_mut() {
                    members.push((key_start..key_start + key.len(), value_start..self.pos));
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
        self.keys.truncate(first);
        self.depth -= 1;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn plain(text: &str) -> Option<Document> {
        read(text, true, &mut NoVisit)
    }

    #[test]
    fn reads_ordinary_bodies_and_their_members() {
        let body = " {\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hello, how are you today?\"}],\"temperature\":0.7,\"max_tokens\":-1,\"stream\":false,\"user\":null} \n";
        let document = plain(body).expect("plain");
        assert!(document.is_object());
        assert_eq!(document.value(body, "model"), Some("\"gpt-4o-mini\""));
        assert_eq!(document.value(body, "temperature"), Some("0.7"));
        assert_eq!(document.value(body, "stream"), Some("false"));
        assert_eq!(document.value(body, "absent"), None);
        assert_eq!(document.member(body, "messages"), Some(1));
        // Another (shorter) text: no answer that means anything, and no panic.
        let _ = document.member("{}", "messages");
        assert_eq!(document.value("{}", "model"), None);
        let keys: Vec<&str> = document
            .members()
            .unwrap()
            .iter()
            .map(|(k, _)| &body[k.clone()])
            .collect();
        assert_eq!(
            keys,
            [
                "model",
                "messages",
                "temperature",
                "max_tokens",
                "stream",
                "user"
            ]
        );
        for (text, object) in [
            ("[1,2]", false),
            ("\"s\"", false),
            ("0", false),
            ("{}", true),
            ("[]", false),
        ] {
            assert_eq!(plain(text).expect(text).is_object(), object, "{text}");
        }
    }

    #[test]
    fn gives_up_where_the_strict_parser_decides() {
        for body in [
            "",
            "   ",
            "\u{feff}{}",
            r#"{"a\u0040":1}"#,
            r#"{"a\"b":1}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\ud800x"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u00g0"}"#,
            r#"{"a":"\u00"}"#,
            r#"{"a":"\"}"#,
            "{\"a\":\"line\nbreak\"}",
            r#"{"a":1e3}"#,
            r#"{"a":1E3}"#,
            r#"{"a":123456789012345678}"#,
            r#"{"a":01}"#,
            r#"{"a":-}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":+1}"#,
            r#"{"a":NaN}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"A":2}"#,
            r#"{"Model":"m"}"#,
            r#"{"x":{"METHOD":"m"}}"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"{"a":1} x"#,
            r#"{"a":1}{}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul"#,
            r#"{"a":1"#,
            r#"["#,
        ] {
            assert!(plain(body).is_none(), "{body:?}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(plain(&deep).is_none());
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(plain(&ok).is_some());
        let many: String = (0..=MAX_KEYS)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(plain(&format!("{{{many}}}")).is_none());
        // Keys of sibling objects are independent; a nested key may repeat an outer one.
        assert!(plain(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#).is_some());
        // The spelling rule is the caller's choice (responses do not follow it).
        assert!(read(r#"{"Name":"x"}"#, false, &mut NoVisit).is_some());
    }

    #[test]
    fn visits_members_strings_and_numbers() {
        #[derive(Default)]
        struct Seen(Vec<String>);
        impl<'t> Visit<'t> for Seen {
            fn member(&mut self, key: &'t str, first: u8) -> bool {
                self.0.push(format!("{key}:{}", first as char));
                true
            }
            fn string(&mut self, text: &'t str, escaped: bool) -> bool {
                self.0.push(format!(
                    "s {text}{}",
                    if escaped { " (escaped)" } else { "" }
                ));
                text != "stop"
            }
            fn number(&mut self, text: &'t str, kind: Number) -> bool {
                self.0.push(format!("n {text} {kind:?}"));
                true
            }
        }
        let mut seen = Seen::default();
        assert!(
            read(
                r#"{"a":[1,-2.5],"b":"x","c":"\ud83d\ude00\n"}"#,
                true,
                &mut seen
            )
            .is_some()
        );
        assert_eq!(
            seen.0,
            [
                "a:[",
                "n 1 Natural",
                "n -2.5 Other",
                "b:\"",
                "s x",
                "c:\"",
                r"s \ud83d\ude00\n (escaped)"
            ]
        );
        assert!(read(r#"["go","stop","on"]"#, true, &mut Seen::default()).is_none());
    }

    /// Bodies made of JSON's parts, plain or not, valid or not.
    fn bodies() -> impl Strategy<Value = String> {
        let key =
            prop::sample::select(vec!["a", "A", "model", "Model", "b", "a\\u0041", "content"]);
        let scalar = prop::sample::select(vec![
            "1",
            "-0",
            "0.5",
            "-12.25",
            "1e2",
            "01",
            "123456789012345678",
            "12345678901234567",
            "true",
            "null",
            "fals",
            "\"x\"",
            "\"\\n\"",
            "\"\"",
            "\"a\u{e9}\"",
            "\"\\ud800\"",
            "\"\\ud83d\\ude00\"",
            "\"\\u0041\\t\"",
            "\"\\udc00\"",
            "\"\\q\"",
            "\"a plain string of thirty-two bytes.\"",
            "\"0123456789abcdef\\n0123\"",
            "\"0123456789\u{1}abcdef\"",
            "\"0123456\u{7f}\u{e9}\u{1f600}xyz\\\"q\"",
            "\"01234567\\ud83d\\ude00\\u00e9 and more text\"",
        ])
        .prop_map(str::to_owned);
        let leaf = scalar.boxed();
        let value = leaf.prop_recursive(4, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec((key.clone(), inner), 0..4).prop_map(|members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        });
        (value, prop::sample::select(vec!["", " ", "\n", ",", "x"]))
            .prop_map(|(value, tail)| format!("{value}{tail}"))
    }

    proptest! {
        /// Eight bytes at a time finds the same end of a plain run as one byte at a time.
        #[test]
        fn plain_runs_end_where_the_table_says(
            bytes in prop::collection::vec(prop_oneof![0x20u8..0x7f, any::<u8>()], 0..40),
        ) {
            let expected = bytes.iter().position(|&b| ENDS_PLAIN_STRING[usize::from(b)]);
            prop_assert_eq!(plain_run(&bytes), expected);
        }

        /// Whatever the reader calls plain, the strict parser accepts, and each member's text
        /// parses to the member the strict parser reads.
        #[test]
        fn plain_bodies_are_strict_json_with_the_same_members(body in bodies()) {
            for field_case in [true, false] {
                let Some(document) = read(&body, field_case, &mut NoVisit) else { continue };
                let strict = if field_case {
                    super::super::parse(body.as_bytes())
                } else {
                    super::super::parse_unique_keys(body.as_bytes())
                };
                let strict = strict.map_err(|e| TestCaseError::fail(format!("{body}: {e}")))?;
                prop_assert_eq!(document.is_object(), strict.is_object());
                if let (Some(members), Value::Object(object)) = (document.members(), &strict) {
                    prop_assert_eq!(members.len(), object.len());
                    for ((key, value), (strict_key, strict_value)) in members.iter().zip(object) {
                        prop_assert_eq!(&body[key.clone()], strict_key.as_str());
                        let member: Value = serde_json::from_str(&body[value.clone()]).unwrap();
                        prop_assert_eq!(&member, strict_value);
                    }
                }
            }
        }

    }

    /// Plain bodies are common among what the generator makes: the property is not vacuous.
    #[test]
    fn generator_makes_plain_bodies() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = bodies();
        let (mut plain_count, mut objects) = (0, 0);
        for _ in 0..400 {
            let body = strategy.new_tree(&mut runner).unwrap().current();
            if let Some(document) = plain(&body) {
                plain_count += 1;
                objects += usize::from(document.is_object());
            }
        }
        assert!(
            plain_count > 40 && objects > 10,
            "{plain_count} plain, {objects} objects of 400"
        );
    }
}
