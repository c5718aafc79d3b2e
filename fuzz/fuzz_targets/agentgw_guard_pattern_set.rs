//! `agentgw_guard::PatternSet` with every builtin and custom patterns, on raw text.
//!
//! For any UTF-8 input: matches are sorted, non-overlapping, on character boundaries; every
//! builtin match is accepted again when scanned alone (validation does not depend on text
//! after the match beyond two bytes); `mask` replaces exactly the matches; `find` is the first
//! match; scanning never panics, whatever digits, separators and `@` the fuzzer strings
//! together.
#![no_main]

use agentgw_guard::{Builtin, PatternSet, RuleKind};
use libfuzzer_sys::fuzz_target;

fn set() -> &'static PatternSet {
    static SET: std::sync::OnceLock<PatternSet> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        Builtin::ALL
            .into_iter()
            .fold(PatternSet::builder(), |b, builtin| b.builtin(builtin))
            .pattern("account", r"\b[A-Z]{2}\d{6,10}\b")
            .phrase("topic", "internal roadmap")
            .build()
            .expect("fuzz patterns compile")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let set = set();
    let matches = set.scan(text);
    assert_eq!(set.find(text), matches.first().copied());
    let mut end = 0;
    let mut masked = String::new();
    for m in &matches {
        assert!(m.start() >= end && m.end() > m.start() && m.end() <= text.len());
        assert!(text.is_char_boundary(m.start()) && text.is_char_boundary(m.end()));
        if let RuleKind::Builtin(Builtin::CreditCard) = set.rule(m.rule()).kind() {
            let digits = text[m.range()].bytes().filter(u8::is_ascii_digit).count();
            assert!((12..=19).contains(&digits));
        }
        masked.push_str(&text[end..m.start()]);
        masked.push_str(set.rule(m.rule()).replacement());
        end = m.end();
    }
    masked.push_str(&text[end..]);
    assert_eq!(set.mask(text), masked);
});
