//! Percent-decoding of query strings: one rule for every layer.
//!
//! A query component is decoded the way HTML forms encode it and the way server frameworks
//! (`serde_urlencoded`, axum's `Query`, the WHATWG URL standard's
//! `application/x-www-form-urlencoded` parser) decode it, so that a layer reads the same name
//! and value as the application behind it:
//!
//! - `+` is a space;
//! - `%XX` (two hex digits, either case) is the byte `XX`;
//! - a `%` not followed by two hex digits stays as it is;
//! - bytes that are not UTF-8 after decoding become U+FFFD.
//!
//! Parameters are separated by `&`; a parameter without `=` has an empty value; empty parameters
//! are skipped. Paths are not decoded here: [`path`](crate::path) makes one canonical path
//! (where `+` is a plus sign).
//!
//! # Example
//!
//! ```
//! use agentgw_core::percent::{decode_query_component, query_pairs, query_param};
//!
//! assert_eq!(decode_query_component("a+b%2Bc%zz"), "a b+c%zz");
//! let pairs: Vec<_> = query_pairs("token=x%3Dy&&flag&q=hello+world").collect();
//! assert_eq!(pairs[0], ("token".into(), "x=y".into()));
//! assert_eq!(pairs[1], ("flag".into(), "".into()));
//! assert_eq!(query_param("b=1&a%5Fkey=2", "a_key").as_deref(), Some("2"));
//! ```

use std::borrow::Cow;

use crate::path::hex_digit;

/// Decodes one query component (a name or a value); borrowed when nothing is encoded.
pub fn decode_query_component(input: &str) -> Cow<'_, str> {
    if !input.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(input);
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|h| hex_digit(*h)),
                bytes.get(i + 2).and_then(|l| hex_digit(*l)),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(match String::from_utf8(out) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    })
}

/// The decoded `(name, value)` pairs of a query string (without the `?`), in order.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    raw_query_pairs(query)
        .map(|(name, value)| (decode_query_component(name), decode_query_component(value)))
}

/// The undecoded `(name, value)` pairs of a query string, for a caller that rewrites the query
/// and must keep the other parameters byte for byte.
pub fn raw_query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// The decoded value of the first parameter whose decoded name is `name`.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    raw_query_pairs(query)
        .find(|(key, _)| decode_query_component(key) == name)
        .map(|(_, value)| decode_query_component(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_as_forms_do() {
        assert!(matches!(
            decode_query_component("plain"),
            Cow::Borrowed("plain")
        ));
        assert_eq!(decode_query_component("a%20b+c"), "a b c");
        assert_eq!(decode_query_component("%2b%2B"), "++");
        assert_eq!(decode_query_component("100%"), "100%");
        assert_eq!(decode_query_component("%4"), "%4");
        assert_eq!(decode_query_component("%zz"), "%zz");
        assert_eq!(decode_query_component("%ff"), "\u{fffd}");
        assert_eq!(decode_query_component("%C3%A9"), "é");
    }

    #[test]
    fn pairs_skip_empty_parameters_and_keep_order() {
        let pairs: Vec<_> = query_pairs("a=1&&b&a=2&=x").collect();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("a".into(), "2".into()),
                ("".into(), "x".into())
            ]
        );
        assert_eq!(query_param("a=1&a=2", "a").as_deref(), Some("1"));
        assert_eq!(query_param("%61=encoded", "a").as_deref(), Some("encoded"));
        assert_eq!(query_param("a=1", "b"), None);
    }

    proptest! {
        /// Whatever a form encoder writes, the decoder reads back (the encoder of the WHATWG URL
        /// standard: space as `+`, everything but unreserved characters escaped).
        #[test]
        fn reads_back_what_a_form_encoder_writes(text in "\\PC{0,40}") {
            let mut encoded = String::new();
            for byte in text.bytes() {
                match byte {
                    b' ' => encoded.push('+'),
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                        encoded.push(char::from(byte));
                    }
                    _ => encoded.push_str(&format!("%{byte:02X}")),
                }
            }
            prop_assert_eq!(decode_query_component(&encoded), text);
        }
    }
}
