//! Rewrites of parsed patterns: normalized literals, bounded repetitions.

use regex_syntax::hir::{Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Look, Repetition};

use crate::normalize::normalize;

/// Classes with at most this many characters (case pairs, `[éè]`) get the skeletons of their
/// characters added; larger classes are left as written.
const SMALL_CLASS: u32 = 16;

/// Rewrites `hir` so that it matches normalized text: literals become their skeleton, small
/// classes also accept the skeleton of each member. Captures are dropped (never used).
pub(super) fn normalize_hir(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Literal(lit) => match std::str::from_utf8(&lit.0) {
            Ok(text) => {
                let skeleton = normalize(text);
                if skeleton.is_empty() {
                    Hir::empty()
                } else {
                    Hir::literal(skeleton.as_bytes())
                }
            }
            Err(_) => hir.clone(),
        },
        HirKind::Class(Class::Unicode(class)) => Hir::class(Class::Unicode(normalize_class(class))),
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            sub: Box::new(normalize_hir(&rep.sub)),
            ..rep.clone()
        }),
        HirKind::Capture(cap) => normalize_hir(&cap.sub),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(normalize_hir).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(normalize_hir).collect()),
        HirKind::Empty | HirKind::Look(_) | HirKind::Class(Class::Bytes(_)) => hir.clone(),
    }
}

fn normalize_class(class: &ClassUnicode) -> ClassUnicode {
    let size: u32 = class
        .ranges()
        .iter()
        .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
        .sum();
    if size > SMALL_CLASS {
        return class.clone();
    }
    let mut out = class.clone();
    let mut buf = [0u8; 4];
    for range in class.ranges() {
        for c in range.start()..=range.end() {
            let skeleton = normalize(c.encode_utf8(&mut buf));
            let mut chars = skeleton.chars();
            if let (Some(s), None) = (chars.next(), chars.next()) {
                out.push(ClassUnicodeRange::new(s, s));
            }
        }
    }
    out
}

/// Rewrites every open-ended repetition (`*`, `+`, `{n,}`) to allow at most `limit` more
/// repetitions than its minimum. Captures are dropped.
pub(super) fn bound_repetitions(hir: &Hir, limit: u32) -> Hir {
    match hir.kind() {
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            min: rep.min,
            max: Some(rep.max.unwrap_or_else(|| rep.min.saturating_add(limit))),
            greedy: rep.greedy,
            sub: Box::new(bound_repetitions(&rep.sub, limit)),
        }),
        HirKind::Capture(cap) => bound_repetitions(&cap.sub, limit),
        HirKind::Concat(subs) => {
            Hir::concat(subs.iter().map(|h| bound_repetitions(h, limit)).collect())
        }
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(|h| bound_repetitions(h, limit)).collect())
        }
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => hir.clone(),
    }
}

/// Rewrites Unicode word boundaries (`\b`, `\B`, `\b{start}`, ...) to their ASCII forms.
///
/// A Unicode word boundary next to a non-ASCII character makes the lazy DFA give up and the
/// search fall back to a much slower engine; ASCII boundaries keep the whole scan in the DFA.
/// The difference only shows next to non-ASCII letters, which then count as non-word
/// characters (so `éjo@example.com` still yields `jo@example.com`).
pub(super) fn ascii_word_boundaries(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Look(look) => Hir::look(match look {
            Look::WordUnicode => Look::WordAscii,
            Look::WordUnicodeNegate => Look::WordAsciiNegate,
            Look::WordStartUnicode => Look::WordStartAscii,
            Look::WordEndUnicode => Look::WordEndAscii,
            Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
            Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
            other => *other,
        }),
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            sub: Box::new(ascii_word_boundaries(&rep.sub)),
            ..rep.clone()
        }),
        HirKind::Capture(cap) => ascii_word_boundaries(&cap.sub),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(ascii_word_boundaries).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(ascii_word_boundaries).collect())
        }
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) => hir.clone(),
    }
}

#[cfg(test)]
mod tests {
    use regex_syntax::ParserBuilder;

    use super::*;

    fn parse(pattern: &str, ci: bool) -> Hir {
        ParserBuilder::new()
            .case_insensitive(ci)
            .build()
            .parse(pattern)
            .unwrap()
    }

    #[test]
    fn literals_and_small_classes_are_normalized() {
        let hir = normalize_hir(&parse("Précédent  ﬁn", false));
        assert_eq!(hir, parse("precedent fin", false));
        let hir = normalize_hir(&parse("é", true));
        let re = regex_automata::meta::Regex::builder()
            .build_from_hir(&hir)
            .unwrap();
        assert!(re.is_match("e"));
        assert!(re.is_match("É"));
    }

    #[test]
    fn word_boundaries_become_ascii() {
        let hir = ascii_word_boundaries(&parse(r"\bjo\b", false));
        assert_eq!(hir, parse(r"(?-u:\b)jo(?-u:\b)", false));
        let re = regex_automata::meta::Regex::builder()
            .build_from_hir(&hir)
            .unwrap();
        assert!(re.is_match("éjo"));
    }

    #[test]
    fn open_repetitions_get_bounded() {
        let hir = bound_repetitions(&parse(r"a+b*c{2,}d{1,3}", false), 10);
        assert_eq!(hir.properties().maximum_len(), Some(11 + 10 + 12 + 3));
        assert_eq!(parse("a+", false).properties().maximum_len(), None);
    }
}
