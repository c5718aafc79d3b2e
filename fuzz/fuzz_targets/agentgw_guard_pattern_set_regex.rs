//! `agentgw_guard::PatternSet` of custom patterns against the `regex` crate on the same text.
//!
//! A set of custom patterns (no builtins: their validators have no `regex` counterpart, and no
//! `\b`: the set reads it as an ASCII boundary) must report exactly the leftmost-first,
//! non-overlapping matches of one `regex::Regex` alternating the same patterns in order. That
//! checks what a set does to be fast: the walker that runs the automaton only from possible
//! starts, the split between bounded and unbounded patterns, the automaton of its own for a
//! pattern with a rare byte, and skipping texts without the bytes every match needs.
#![no_main]

use agentgw_guard::PatternSet;
use libfuzzer_sys::fuzz_target;

/// Patterns with digits, an `@`, literals, optional and repeated parts, alternations, classes,
/// Unicode and an unbounded one, so that every kind of need and engine is exercised.
const PATTERNS: &[(&str, &str)] = &[
    ("digits", r"[0-9]{3}-?[0-9]{2}"),
    ("mail", r"[a-z0-9.]{1,8}@[a-z]{1,6}\.[a-z]{2,3}"),
    ("word", r"secret(?:s| key)"),
    ("optional", r"x?y{2}z*"),
    ("either", r"(?:cat|dog)[0-9]"),
    ("greek", r"\p{Greek}{2,3}"),
    ("unbounded", r"begin.*end"),
    ("plus", r"\+[1-9][0-9]{2,4}"),
];

fn sets() -> &'static (PatternSet, regex::Regex) {
    static SETS: std::sync::OnceLock<(PatternSet, regex::Regex)> = std::sync::OnceLock::new();
    SETS.get_or_init(|| {
        let set = PATTERNS
            .iter()
            .fold(PatternSet::builder(), |b, (name, pattern)| b.pattern(*name, *pattern))
            .build()
            .expect("fuzz patterns compile");
        let alternation = PATTERNS
            .iter()
            .map(|(_, p)| format!("(?:{p})"))
            .collect::<Vec<_>>()
            .join("|");
        (set, regex::Regex::new(&alternation).expect("alternation compiles"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (set, regex) = sets();
    let ours: Vec<(usize, usize)> = set.scan(text).iter().map(|m| (m.start(), m.end())).collect();
    let theirs: Vec<(usize, usize)> = regex.find_iter(text).map(|m| (m.start(), m.end())).collect();
    assert_eq!(ours, theirs, "{text:?}");
});
