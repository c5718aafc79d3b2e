//! `agentgw_guard::normalize` and normalizing `PatternSet`s: the skeleton and the offset map.
//!
//! For any UTF-8 input:
//!
//! 1. `normalize` is idempotent and its output has no upper-case ASCII, no whitespace other
//!    than single spaces, and no zero-width or bidi control characters.
//! 2. A normalizing set's matches are sorted, do not overlap, lie on character boundaries of
//!    the original text, and each one's original text normalizes to (a superset of) what the
//!    rule matched: a phrase match's original text contains the phrase in its skeleton.
//! 3. `mask` replaces exactly the reported matches.
#![no_main]

use agentgw_guard::{PatternSet, normalize};
use libfuzzer_sys::fuzz_target;

fn set() -> &'static PatternSet {
    static SET: std::sync::OnceLock<PatternSet> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        PatternSet::builder()
            .pattern("inj", r"ignore.{0,40}instructions")
            .pattern("word", r"\bsecret\w{0,8}")
            .phrase("prev", "previous")
            .phrase("fi", "fine")
            .normalize(true)
            .build()
            .expect("fuzz patterns compile")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let once = normalize(text).into_owned();
    assert_eq!(normalize(&once), once, "normalize is idempotent");
    assert!(
        !once
            .bytes()
            .any(|b| b.is_ascii_uppercase() || (b.is_ascii_whitespace() && b != b' '))
    );
    assert!(!once.contains("  "));
    assert!(!once.contains(['\u{200b}', '\u{200d}', '\u{202e}', '\u{feff}']));

    let set = set();
    let matches = set.scan(text);
    let mut end = 0;
    let mut masked = String::new();
    for m in &matches {
        assert!(m.start() >= end && m.end() > m.start() && m.end() <= text.len());
        assert!(text.is_char_boundary(m.start()) && text.is_char_boundary(m.end()));
        let skeleton = normalize(&text[m.range()]);
        if set.rule(m.rule()).name() == "prev" {
            assert!(skeleton.contains("previous"), "{skeleton:?}");
        }
        masked.push_str(&text[end..m.start()]);
        masked.push_str(set.rule(m.rule()).replacement());
        end = m.end();
    }
    masked.push_str(&text[end..]);
    assert_eq!(set.mask(text), masked);
});
