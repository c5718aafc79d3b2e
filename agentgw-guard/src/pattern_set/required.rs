//! Bytes every match must contain: a text without them is not searched at all.
//!
//! Most text a guard scans cannot hold any of its matches: the builtins need digits (or an
//! `@`), a phrase-like pattern needs its letters. Searching such a text still costs a trip
//! through the automaton's setup and a pass over every byte. [`Needs`] works out from the
//! patterns, once, sets of bytes a match cannot do without: for each pattern, a few sets of
//! which a match holds at least one byte each (the `@` of an email address, a digit of a card
//! number, each letter of a literal). One pass over the text records which bytes it holds; a
//! pattern none of whose matches fits them is not searched, and when no pattern fits, the
//! automaton is skipped. So is a text shorter than the shortest match (a JSON number `13`
//! cannot be a card number), and, per pattern, a text with fewer ASCII digits than its matches
//! hold (a model name `gpt-4o-mini` has one digit, a card number at least twelve).
//!
//! The sets are a necessary condition worked out conservatively from the parsed pattern: a
//! byte is required only when every way of matching consumes it (a repetition that may match
//! zero times and a look-around require nothing; an alternation requires a byte of one of its
//! branches). Whatever the sets say, a text that passes is searched exactly as before, so they
//! can only skip texts with no match.

use regex_syntax::hir::{Class, Hir, HirKind};

use super::ByteSet;

/// At most this many sets are kept per pattern (the smallest ones: the most selective).
const MAX_SETS: usize = 4;

/// How many bytes of text are recorded between two checks of whether some pattern could match
/// already (a text that can match stops recording early).
const CHUNK: usize = 128;

/// What the matches of a group of patterns need; see the [module docs](self).
#[derive(Clone, Debug)]
pub(super) struct Needs {
    /// The length of the shortest match, in bytes: a shorter text holds none.
    min_len: usize,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    /// Some pattern needs nothing, or the sets are too many to track: every text is searched.
    Nothing,
    /// Per pattern, the sets of which a match holds a byte each, as masks over classes of
    /// bytes: bytes in exactly the same sets share a class, and `classes[b]` is the bit of
    /// the class of byte `b` (0 for bytes in no set).
    Classes {
        classes: Box<[u64; 256]>,
        patterns: Vec<Vec<u64>>,
        /// Per pattern, the fewest ASCII digits a match holds (a card number at least 12).
        digits: Vec<usize>,
        /// The union of every pattern's most selective set: a text without any of these
        /// bytes meets no pattern's needs.
        any: u64,
        /// When every pattern needs one particular byte (the `@` of an email address) and no
        /// digits, those bytes (at most three), for a vectorized search instead.
        single: Option<Vec<u8>>,
    },
}

impl Needs {
    /// Needs nothing: every text is searched.
    pub(super) const NOTHING: Needs = Needs {
        min_len: 0,
        kind: Kind::Nothing,
    };

    /// What a match of any of `hirs` needs.
    pub(super) fn of(hirs: &[&Hir]) -> Needs {
        let min_len = hirs
            .iter()
            .map(|hir| hir.properties().minimum_len().unwrap_or(0))
            .min()
            .unwrap_or(0);
        let kind = Needs::kind(hirs);
        Needs { min_len, kind }
    }

    fn kind(hirs: &[&Hir]) -> Kind {
        let mut patterns: Vec<Vec<ByteSet>> = Vec::with_capacity(hirs.len());
        for hir in hirs {
            let mut sets = required(hir);
            if sets.is_empty() {
                return Kind::Nothing;
            }
            // The most selective first: the rarest in text (a digit before a space), then the
            // fewest bytes.
            sets.sort_by_key(|s| (commonness(s), s.len()));
            let mut kept: Vec<ByteSet> = Vec::with_capacity(MAX_SETS);
            for set in sets {
                if kept.len() < MAX_SETS && !kept.contains(&set) {
                    kept.push(set);
                }
            }
            patterns.push(kept);
        }
        if patterns.is_empty() {
            return Kind::Nothing;
        }
        let mut singles: Vec<u8> = patterns
            .iter()
            .filter_map(|sets| sets[0].single())
            .collect();
        singles.sort_unstable();
        singles.dedup();
        let digits: Vec<usize> = hirs.iter().map(|hir| min_digits(hir)).collect();
        // The vectorized search looks for the bytes only: not when digits are to be counted.
        let single = (singles.len() <= 3
            && patterns.iter().all(|sets| sets[0].single().is_some())
            && digits.iter().all(|&d| d == 0))
        .then_some(singles);
        Needs::classes(&patterns, digits, single)
    }

    /// [`Kind::Classes`] for these sets, or [`Kind::Nothing`] when their bytes fall in more
    /// than 64 classes.
    fn classes(patterns: &[Vec<ByteSet>], digits: Vec<usize>, single: Option<Vec<u8>>) -> Kind {
        let all: Vec<&ByteSet> = patterns.iter().flatten().collect();
        let mut signatures: Vec<Vec<bool>> = Vec::new();
        let mut classes = Box::new([0u64; 256]);
        for b in 0..=255u8 {
            let signature: Vec<bool> = all.iter().map(|set| set.contains(b)).collect();
            if !signature.contains(&true) {
                continue;
            }
            let index = match signatures.iter().position(|s| *s == signature) {
                Some(index) => index,
                None => {
                    signatures.push(signature);
                    signatures.len() - 1
                }
            };
            if index >= 64 {
                return Kind::Nothing;
            }
            classes[usize::from(b)] = 1 << index;
        }
        let mask = |set: &ByteSet| {
            (0..=255u8)
                .filter(|&b| set.contains(b))
                .fold(0u64, |mask, b| mask | classes[usize::from(b)])
        };
        let patterns: Vec<Vec<u64>> = patterns
            .iter()
            .map(|sets| sets.iter().map(mask).collect())
            .collect();
        let any = patterns.iter().fold(0, |any, sets| any | sets[0]);
        Kind::Classes {
            classes,
            patterns,
            digits,
            any,
            single,
        }
    }

    /// Whether some pattern could match within `text`.
    pub(super) fn met_in(&self, text: &[u8]) -> bool {
        if text.len() < self.min_len {
            return false;
        }
        match &self.kind {
            Kind::Nothing => true,
            Kind::Classes {
                single: Some(bytes),
                ..
            } => match bytes[..] {
                [a] => memchr::memchr(a, text).is_some(),
                [a, b] => memchr::memchr2(a, b, text).is_some(),
                [a, b, c] => memchr::memchr3(a, b, c, text).is_some(),
                _ => true,
            },
            Kind::Classes { .. } => self.met_by(text, |b| b),
        }
    }

    /// Whether some pattern could match within the skeleton of the ASCII text `text` (see
    /// [`crate::normalize`]: an ASCII text's skeleton holds its bytes lower-cased, with
    /// whitespace as spaces), without computing the skeleton.
    pub(super) fn met_in_ascii_skeleton(&self, text: &[u8]) -> bool {
        debug_assert!(text.is_ascii());
        if text.len() < self.min_len {
            return false;
        }
        match &self.kind {
            Kind::Nothing => true,
            Kind::Classes { .. } => self.met_by(text, |b| match b {
                b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c' => b' ',
                _ => b.to_ascii_lowercase(),
            }),
        }
    }

    /// Records the classes of `text`'s bytes (as `map` turns them) and counts its ASCII digits,
    /// a chunk at a time, and stops as soon as they meet some pattern's needs.
    fn met_by(&self, text: &[u8], map: impl Fn(u8) -> u8) -> bool {
        let Kind::Classes {
            classes,
            patterns,
            digits,
            any,
            ..
        } = &self.kind
        else {
            return true;
        };
        let mut present = 0u64;
        let mut seen_digits = 0;
        for chunk in text.chunks(CHUNK) {
            for &b in chunk {
                let b = map(b);
                present |= classes[usize::from(b)];
                seen_digits += usize::from(b.is_ascii_digit());
            }
            if present & any != 0
                && patterns.iter().zip(digits).any(|(sets, &needed)| {
                    seen_digits >= needed && sets.iter().all(|&set| set & present != 0)
                })
            {
                return true;
            }
        }
        false
    }
}

/// How common the most common byte of `set` is in chat text (English letters by frequency,
/// then the space); other bytes count as rare.
fn commonness(set: &ByteSet) -> usize {
    const BY_FREQUENCY: &[u8] = b"zqjxkvbpygfwmucldrhsnioate ";
    (0..=255u8)
        .filter(|&b| set.contains(b))
        .filter_map(|b| {
            BY_FREQUENCY
                .iter()
                .position(|&f| f == b.to_ascii_lowercase())
                .map(|p| p + 1)
        })
        .max()
        .unwrap_or(0)
}

/// Sets of bytes of which every match of `hir` holds at least one byte each (empty: `hir` can
/// match without any particular byte).
fn required(hir: &Hir) -> Vec<ByteSet> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Vec::new(),
        HirKind::Literal(lit) => lit
            .0
            .iter()
            .map(|&b| {
                let mut set = ByteSet::EMPTY;
                set.insert(b);
                set
            })
            .collect(),
        HirKind::Class(class) => vec![class_bytes(class)],
        HirKind::Repetition(rep) if rep.min == 0 => Vec::new(),
        HirKind::Repetition(rep) => required(&rep.sub),
        HirKind::Capture(cap) => required(&cap.sub),
        HirKind::Concat(subs) => subs.iter().flat_map(required).collect(),
        HirKind::Alternation(subs) => {
            // A match holds a byte of one branch's most selective set: their union.
            let mut union = ByteSet::EMPTY;
            for sub in subs {
                match required(sub)
                    .into_iter()
                    .min_by_key(|s| (commonness(s), s.len()))
                {
                    Some(set) => union.union(set),
                    None => return Vec::new(),
                }
            }
            vec![union]
        }
    }
}

/// The fewest ASCII digits (`0`-`9`) in any match of `hir`: a class counts when all its
/// characters are ASCII digits, and an alternation counts its poorest branch.
fn min_digits(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 0,
        HirKind::Literal(lit) => lit.0.iter().filter(|b| b.is_ascii_digit()).count(),
        HirKind::Class(class) => {
            let set = class_bytes(class);
            let only_digits =
                set.len() > 0 && (0..=255u8).all(|b| !set.contains(b) || b.is_ascii_digit());
            usize::from(only_digits)
        }
        HirKind::Repetition(rep) => {
            let min = usize::try_from(rep.min).unwrap_or(usize::MAX);
            min.saturating_mul(min_digits(&rep.sub))
        }
        HirKind::Capture(cap) => min_digits(&cap.sub),
        HirKind::Concat(subs) => subs
            .iter()
            .fold(0, |sum: usize, sub| sum.saturating_add(min_digits(sub))),
        HirKind::Alternation(subs) => subs.iter().map(min_digits).min().unwrap_or(0),
    }
}

/// The bytes a character of `class` can consist of (as its first byte: every byte of an
/// ASCII character, and for any other character all bytes from `0x80`, which covers the
/// leading byte of its UTF-8 encoding).
fn class_bytes(class: &Class) -> ByteSet {
    let mut set = ByteSet::EMPTY;
    match class {
        Class::Bytes(bytes) => {
            for range in bytes.ranges() {
                for b in range.start()..=range.end() {
                    set.insert(b);
                }
            }
        }
        Class::Unicode(unicode) => {
            for range in unicode.ranges() {
                let start = u32::from(range.start());
                let end = u32::from(range.end());
                for c in start..=end.min(0x7F) {
                    set.insert(u8::try_from(c).unwrap_or(0));
                }
                if end > 0x7F {
                    for b in 0x80..=0xFF {
                        set.insert(b);
                    }
                }
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex_syntax::ParserBuilder;

    use super::*;

    fn needs_of(patterns: &[&str]) -> (Needs, Vec<regex::bytes::Regex>) {
        let hirs: Vec<Hir> = patterns
            .iter()
            .map(|p| ParserBuilder::new().utf8(false).build().parse(p).unwrap())
            .collect();
        let refs: Vec<&Hir> = hirs.iter().collect();
        let regexes = patterns
            .iter()
            .map(|p| regex::bytes::Regex::new(p).unwrap())
            .collect();
        (Needs::of(&refs), regexes)
    }

    #[test]
    fn texts_without_the_needed_bytes_are_skipped() {
        let (digits, _) = needs_of(&[r"\b\d{3}-\d{2}-\d{4}\b", r"\+?\d{7,15}"]);
        assert!(!digits.met_in(b"Hello! How can I help you today?"));
        assert!(digits.met_in(b"call me at 5551234"));
        let (email, _) = needs_of(&[r"[a-z]+@[a-z]+\.[a-z]{2,}"]);
        assert!(!email.met_in(b"no address in here"));
        assert!(email.met_in(b"jo@example.com"));
        // Every letter of a literal is needed.
        let (phrase, _) = needs_of(&[r"ignore.*previous"]);
        assert!(!phrase.met_in(b"ignore the rest"));
        assert!(phrase.met_in(b"previously ignored"));
    }

    #[test]
    fn texts_shorter_than_every_match_are_skipped() {
        let (ssn, _) = needs_of(&[r"\d{3}-\d{2}-\d{4}", r"\d{9}"]);
        assert!(!ssn.met_in(b"13"));
        assert!(!ssn.met_in(b"12345678"));
        assert!(ssn.met_in(b"123456789"));
    }

    #[test]
    fn ascii_skeletons_are_checked_without_computing_them() {
        // Patterns of a normalizing set match the skeleton: lower case, one space.
        let (needs, _) = needs_of(&[r"ignore previous", r"\d{9}"]);
        assert!(needs.met_in_ascii_skeleton(b"IGNORE\tPREVIOUS"));
        assert!(!needs.met_in(b"IGNORE\tPREVIOUS"));
        assert!(!needs.met_in_ascii_skeleton(b"Hello, how are you today?"));
        assert!(needs.met_in_ascii_skeleton(b"call 123456789"));
    }

    #[test]
    fn texts_with_too_few_digits_are_skipped() {
        // A card number: twelve digits at least, grouped by spaces or not. Prose has spaces,
        // and a model name a digit, but neither has twelve digits.
        let (card, _) = needs_of(&[r"[0-9]{12,19}|[0-9]{4}(?: [0-9]{4}){2,3}"]);
        assert!(!card.met_in(b"Hello! I am doing well, thank you for asking."));
        assert!(!card.met_in(b"gpt-4o-mini"));
        assert!(!card.met_in(b"4111 1111 111"));
        assert!(card.met_in(b"4111 1111 1111 1111"));
        // `\d` is Unicode: its characters need not be ASCII digits, so none is counted.
        let (unicode, _) = needs_of(&[r"\d{3}-\d{2}"]);
        assert!(unicode.met_in("١٢٣-٤٥".as_bytes()));
        let (ssn, _) = needs_of(&[r"[0-9]{3}-[0-9]{2}-[0-9]{4}"]);
        assert!(!ssn.met_in(b"call 12-34-5678 now"));
        assert!(ssn.met_in(b"call 123-45-6789 now"));
        assert_eq!(min_digits_of(r"(?:1[ -]?)?[2-9][0-9]{2}(?:0|ab)"), 3);
        assert_eq!(min_digits_of(r"x(?:12|3)+y{2}"), 1);
        assert_eq!(min_digits_of(r"[0-9a]{4}"), 0);
    }

    fn min_digits_of(pattern: &str) -> usize {
        min_digits(
            &ParserBuilder::new()
                .utf8(false)
                .build()
                .parse(pattern)
                .unwrap(),
        )
    }

    #[test]
    fn patterns_that_need_nothing_search_every_text() {
        for pattern in [r"a*", r"\b", r"(?:x|y?)z?", r"(?:ab|c*)d?"] {
            let (needs, _) = needs_of(&[pattern, r"\d+"]);
            assert!(needs.met_in(b"plain words"), "{pattern}");
        }
    }

    #[test]
    fn alternations_and_unicode_classes_are_covered() {
        let (needs, _) = needs_of(&[r"(?:cat|dog)s"]);
        assert!(needs.met_in(b"dogs"));
        assert!(needs.met_in(b"cats"));
        assert!(!needs.met_in(b"bird"));
        let (greek, _) = needs_of(&[r"\p{Greek}{2}"]);
        assert!(greek.met_in("αβ".as_bytes()));
        assert!(!greek.met_in(b"plain ascii"));
    }

    fn pattern() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            "[a-e]{1,3}",
            Just(r"\d".to_owned()),
            Just("[0-9]".to_owned()),
            Just("4[ -]?2".to_owned()),
            Just("[a-c]".to_owned()),
            Just("[^a]".to_owned()),
            Just(r"\b".to_owned()),
            Just("@".to_owned()),
            Just(".".to_owned()),
            Just("é".to_owned()),
            Just(r"\p{Greek}".to_owned()),
        ];
        let piece = (
            atom,
            prop_oneof![
                Just(""),
                Just("?"),
                Just("*"),
                Just("+"),
                Just("{2}"),
                Just("{0,2}")
            ],
        )
            .prop_map(|(a, q)| format!("(?:{a}){q}"));
        prop::collection::vec(
            prop::collection::vec(piece, 1..4).prop_map(|p| p.concat()),
            1..3,
        )
        .prop_map(|branches| branches.join("|"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whenever a pattern matches somewhere in a text, the needs are met by the text.
        #[test]
        fn needs_never_skip_a_text_with_a_match(
            patterns in prop::collection::vec(pattern(), 1..4),
            text in "[a-f0-9@ éαβ\n.-]{0,24}",
        ) {
            let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
            let (needs, regexes) = needs_of(&refs);
            if regexes.iter().any(|r| r.is_match(text.as_bytes())) {
                prop_assert!(needs.met_in(text.as_bytes()), "{patterns:?} on {text:?}");
            }
        }
    }
}
