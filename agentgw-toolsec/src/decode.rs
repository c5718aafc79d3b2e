//! Decoded forms of argument values, so that encoding does not hide `../` or `;`.
//!
//! A value is checked as sent and in every form a tool may decode it to before use: URL
//! percent-encoding (also doubly encoded, `%u002e` and overlong UTF-8 such as `%c0%ae`) and
//! HTML character references (`&#46;`, `&#x2f;`). Unicode look-alikes and full-width forms
//! (`．．／`) are folded by the normalizing pattern sets that run on these forms.
//!
//! This is not [`agentgw_core::percent`], the one rule by which agentgw reads a query (what
//! the upstream will act on): it is an attacker's model, deliberately more eager, that yields
//! every form a lenient tool might decode a value to (several rounds, `%u` escapes, overlong
//! UTF-8 sequences that a strict decoder rejects), so that a `reject` pattern sees them all.

use std::borrow::Cow;

/// How many rounds of percent-decoding are applied (`%252e` is `%2e` is `.`).
const MAX_DECODE_ROUNDS: usize = 3;

/// `text` and its distinct decoded forms (the original first).
pub(crate) fn forms(text: &str) -> Vec<Cow<'_, str>> {
    let mut out = vec![Cow::Borrowed(text)];
    let mut current: Cow<'_, str> = Cow::Borrowed(text);
    for _ in 0..MAX_DECODE_ROUNDS {
        match percent_decode(&current) {
            Some(decoded) if decoded != current => {
                out.push(Cow::Owned(decoded.clone()));
                current = Cow::Owned(decoded);
            }
            _ => break,
        }
    }
    let entity_decoded: Vec<String> = out.iter().filter_map(|form| html_decode(form)).collect();
    for decoded in entity_decoded {
        if !out.iter().any(|form| *form == decoded) {
            out.push(Cow::Owned(decoded));
        }
    }
    out
}

/// Decodes `%XX` and `%uXXXX`; `None` when there is nothing to decode. Overlong two-byte UTF-8
/// sequences (`%c0%ae`) decode to the ASCII character they disguise; other invalid UTF-8
/// becomes U+FFFD.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(byte) = hex_byte(bytes.get(i + 1..i + 3)) {
                out.push(byte);
                i += 3;
                continue;
            }
            if matches!(bytes.get(i + 1), Some(b'u' | b'U'))
                && let Some(c) = bytes
                    .get(i + 2..i + 6)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .and_then(char::from_u32)
            {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 6;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(utf8_with_overlong(&out))
}

fn hex_byte(hex: Option<&[u8]>) -> Option<u8> {
    let hex = hex?;
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(hex[0])? * 16 + digit(hex[1])?) as u8)
}

/// UTF-8 decoding that maps overlong two-byte sequences (lead byte `C0`/`C1`) to ASCII.
fn utf8_with_overlong(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                break;
            }
            Err(error) => {
                let (valid, after) = rest.split_at(error.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match after {
                    [lead @ (0xC0 | 0xC1), cont, ..] if cont & 0xC0 == 0x80 => {
                        out.push(char::from(((lead & 0x1F) << 6) | (cont & 0x3F)));
                        rest = &after[2..];
                    }
                    _ => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        let skip = error.error_len().unwrap_or(after.len()).max(1);
                        rest = &after[skip.min(after.len())..];
                    }
                }
            }
        }
    }
    out
}

/// Decodes numeric HTML character references (`&#46;`, `&#x2F;`) and the entities of
/// characters that matter to shells and paths; `None` when there is nothing to decode.
pub(crate) fn html_decode(text: &str) -> Option<String> {
    if !text.contains('&') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let end = candidate
            .char_indices()
            .take(12)
            .find(|&(_, c)| c == ';')
            .map(|(i, _)| i);
        let decoded = end.and_then(|end| entity(&candidate[1..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &candidate[end + 1..];
                changed = true;
            }
            None => {
                out.push('&');
                rest = &candidate[1..];
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

fn entity(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "semi" => ';',
        "period" => '.',
        "sol" => '/',
        "bsol" => '\\',
        "verbar" | "vert" => '|',
        "dollar" => '$',
        "grave" => '`',
        "lpar" => '(',
        "rpar" => ')',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(text: &str) -> Vec<String> {
        forms(text).into_iter().map(Cow::into_owned).collect()
    }

    #[test]
    fn percent_encoding_is_decoded() {
        assert_eq!(all("a%2e%2e%2fb"), ["a%2e%2e%2fb", "a../b"]);
        assert_eq!(
            all("%252e%252e%252f"),
            ["%252e%252e%252f", "%2e%2e%2f", "../"]
        );
        assert_eq!(all("%c0%ae%c0%ae/"), ["%c0%ae%c0%ae/", "../"]);
        assert_eq!(all("%u002e%u002e%u002f"), ["%u002e%u002e%u002f", "../"]);
        assert_eq!(all("100%"), ["100%"], "a lone percent sign is kept");
        assert_eq!(all("plain"), ["plain"]);
        assert_eq!(percent_decode("%ff"), Some("\u{fffd}".to_owned()));
    }

    #[test]
    fn html_references_are_decoded() {
        assert_eq!(all("a&#59;b"), ["a&#59;b", "a;b"]);
        assert_eq!(all("&#x2e;&#x2E;&sol;"), ["&#x2e;&#x2E;&sol;", "../"]);
        assert_eq!(
            all("fish &amp chips"),
            ["fish &amp chips"],
            "no `;`, not an entity"
        );
        assert_eq!(all("%26%2359%3B"), ["%26%2359%3B", "&#59;", ";"]);
    }

    proptest! {
        #[test]
        fn decoding_never_panics_and_keeps_the_original(text in "\\PC{0,64}|[%&#;0-9a-fA-Fu]{0,32}") {
            let forms = forms(&text);
            prop_assert_eq!(forms[0].as_ref(), text.as_str());
            prop_assert!(forms.len() <= 2 + MAX_DECODE_ROUNDS * 2);
        }
    }
}
