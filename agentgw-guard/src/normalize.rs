//! Text normalization for evasion-resistant matching, with offsets mapped back to the original.
//!
//! A rule that rejects `ignore previous instructions` is easy to dodge: `ign\u{200b}ore`,
//! `ＩＧＮＯＲＥ`, `іgnore` with a Cyrillic `і`, or `ignore   previous`. Before matching, a
//! normalizing [`PatternSet`](crate::PatternSet) reduces text to a *skeleton*, character by
//! character:
//!
//! 1. invisible characters are removed: zero-width spaces and joiners, bidi controls, the
//!    byte order mark, soft hyphens, variation selectors and the other default-ignorable code
//!    points;
//! 2. compatibility forms are decomposed (Unicode NFKD: full-width letters, ligatures,
//!    mathematical alphanumerics, circled digits) and combining marks are dropped, so `é`
//!    and `e\u{301}` both become `e` (stricter than NFKC, which keeps the accent);
//! 3. letters are lower-cased and common homoglyphs are mapped to the Latin letter they
//!    imitate (Cyrillic `а о е р с у х і`, Greek `ο α ν ρ`, ...);
//! 4. every run of whitespace becomes one ASCII space.
//!
//! Each original character maps to zero or more skeleton characters independently of its
//! neighbours (only whitespace runs look at the previous character), which keeps the
//! normalization streamable and lets every match in the skeleton be mapped back to the exact
//! original bytes it came from.
//!
//! ```
//! use agentgw_guard::normalize;
//!
//! assert_eq!(normalize("Ign\u{200b}ore  PREVIOUS\tinstructions"), "ignore previous instructions");
//! assert_eq!(normalize("ｉｇｎｏｒｅ"), "ignore");
//! assert_eq!(normalize("іgnоrе"), "ignore"); // Cyrillic і, о, е
//! assert_eq!(normalize("Prévious"), "previous");
//! ```

use std::borrow::Cow;

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Normalizes `text` to its matching skeleton; see the [module docs](self).
///
/// Returns the input unchanged (borrowed) when it is already normalized.
pub fn normalize(text: &str) -> Cow<'_, str> {
    if is_normalized_ascii(text, false) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut map = OffsetMap::default();
    normalize_into(text, false, &mut out, &mut map);
    Cow::Owned(out)
}

/// Whether `text` is ASCII and already normalized: no upper case, and every whitespace is a
/// single space not preceded by a space (`prev_space` says whether the text before ended with
/// one).
fn is_normalized_ascii(text: &str, mut prev_space: bool) -> bool {
    for &b in text.as_bytes() {
        match b {
            b' ' => {
                if prev_space {
                    return false;
                }
                prev_space = true;
            }
            b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c' | b'A'..=b'Z' | 0x80.. => return false,
            _ => prev_space = false,
        }
    }
    true
}

/// How skeleton offsets map back to offsets of the original text.
///
/// A list of segments sorted by skeleton offset. In a linear segment, skeleton and original
/// advance byte for byte; an opaque segment is one original character whose skeleton differs
/// (other bytes, or another length), mapped as a unit. Removed characters have no segment:
/// the next segment starts further in the original.
#[derive(Debug, Clone, Default)]
pub(crate) struct OffsetMap {
    segs: Vec<Seg>,
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    norm: usize,
    orig: usize,
    /// `(skeleton length, original length)` of an opaque character; `None` for linear.
    opaque: Option<(u32, u32)>,
}

impl OffsetMap {
    pub(crate) fn clear(&mut self) {
        self.segs.clear();
    }

    fn linear(&mut self, norm: usize, orig: usize) {
        if let Some(last) = self.segs.last()
            && last.opaque.is_none()
            && last.orig.wrapping_sub(last.norm) == orig.wrapping_sub(norm)
        {
            return;
        }
        self.segs.push(Seg {
            norm,
            orig,
            opaque: None,
        });
    }

    fn opaque(&mut self, norm: usize, orig: usize, norm_len: usize, orig_len: usize) {
        // A character is at most 4 bytes and expands to at most a few dozen.
        let norm_len = u32::try_from(norm_len).unwrap_or(u32::MAX);
        let orig_len = u32::try_from(orig_len).unwrap_or(u32::MAX);
        self.segs.push(Seg {
            norm,
            orig,
            opaque: Some((norm_len, orig_len)),
        });
    }

    /// Where a match starting at skeleton offset `n` starts in the original, and the skeleton
    /// offset of that original character (earlier than `n` when `n` is inside the expansion of
    /// one character).
    pub(crate) fn start(&self, n: usize) -> (usize, usize) {
        let idx = self.segs.partition_point(|s| s.norm <= n);
        let Some(seg) = idx.checked_sub(1).map(|i| self.segs[i]) else {
            return (n, n);
        };
        match seg.opaque {
            None => (seg.orig + (n - seg.norm), n),
            Some(_) => (seg.orig, seg.norm),
        }
    }

    /// Where a match ending at skeleton offset `n` (exclusive, `n > 0`) ends in the original,
    /// and the skeleton offset from which matching resumes (after the whole last character).
    pub(crate) fn end(&self, n: usize) -> (usize, usize) {
        let idx = self.segs.partition_point(|s| s.norm < n);
        let Some(seg) = idx.checked_sub(1).map(|i| self.segs[i]) else {
            return (n, n);
        };
        match seg.opaque {
            None => (seg.orig + (n - seg.norm), n),
            Some((norm_len, orig_len)) => (
                seg.orig + orig_len as usize,
                (seg.norm + norm_len as usize).max(n),
            ),
        }
    }
}

/// Appends the skeleton of `text` to `out` and records in `map` (cleared first) how offsets
/// of the appended skeleton, counted from where it starts in `out`, map to offsets in `text`.
///
/// `prev_space` says whether the skeleton before `text` ends with a space (whitespace runs
/// collapse across the boundary).
pub(crate) fn normalize_into(text: &str, prev_space: bool, out: &mut String, map: &mut OffsetMap) {
    map.clear();
    let base = out.len();
    if is_normalized_ascii(text, prev_space) {
        out.push_str(text);
        map.linear(0, 0);
        return;
    }
    out.reserve(text.len());
    let bytes = text.as_bytes();
    let mut prev_space = prev_space;
    // A linear segment must start at the next character that maps byte for byte.
    let mut need_segment = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 && !is_ascii_space(b) {
            // A run of ASCII words with one space between two of them maps byte for byte:
            // copied and lower-cased in bulk.
            let mut run_end = i + 1;
            while let Some(&c) = bytes.get(run_end) {
                if c >= 0x80 {
                    break;
                }
                if is_ascii_space(c) {
                    match bytes.get(run_end + 1) {
                        Some(&n) if c == b' ' && n < 0x80 && !is_ascii_space(n) => {
                            run_end += 2;
                            continue;
                        }
                        _ => break,
                    }
                }
                run_end += 1;
            }
            if need_segment {
                map.linear(out.len() - base, i);
                need_segment = false;
            }
            let from = out.len();
            out.push_str(&text[i..run_end]);
            out[from..].make_ascii_lowercase();
            prev_space = false;
            i = run_end;
            continue;
        }
        let c = text[i..].chars().next().unwrap_or(' ');
        let n = out.len() - base;
        let len = c.len_utf8();
        if b < 0x80 {
            // ASCII whitespace: one space per run.
            if prev_space {
                need_segment = true;
            } else {
                if need_segment {
                    map.linear(n, i);
                    need_segment = false;
                }
                out.push(' ');
                prev_space = true;
            }
        } else if is_ignorable(c) {
            need_segment = true;
        } else if c.is_whitespace() {
            if !prev_space {
                out.push(' ');
                prev_space = true;
                map.opaque(n, i, 1, len);
            }
            need_segment = true;
        } else {
            let before = out.len();
            push_skeleton(c, out, &mut prev_space);
            let produced = &out[before..];
            let mut chars = produced.chars();
            if produced.is_empty() {
                need_segment = true;
            } else if chars.next() == Some(c) && chars.next().is_none() {
                if need_segment {
                    map.linear(n, i);
                    need_segment = false;
                }
            } else {
                map.opaque(n, i, produced.len(), len);
                need_segment = true;
            }
        }
        i += len;
    }
}

/// ASCII whitespace as `char::is_whitespace` sees it (includes vertical tab).
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// Appends the skeleton of one non-ASCII, non-ignorable, non-whitespace character.
pub(crate) fn push_skeleton(c: char, out: &mut String, prev_space: &mut bool) {
    decompose_compatible(c, |d| {
        if is_combining_mark(d) || is_ignorable(d) {
            return;
        }
        if d.is_whitespace() {
            if !*prev_space {
                out.push(' ');
                *prev_space = true;
            }
            return;
        }
        for lower in d.to_lowercase() {
            if is_combining_mark(lower) {
                continue;
            }
            out.push(homoglyph(lower));
            *prev_space = false;
        }
    });
}

/// Default-ignorable code points and bidi controls: invisible, removed before matching.
pub(crate) fn is_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Lower-case letters of other scripts that look like a Latin letter, mapped to it.
fn homoglyph(c: char) -> char {
    match c {
        // Cyrillic
        'а' => 'a',
        'в' => 'b',
        'ԁ' => 'd',
        'е' | 'ё' | 'є' => 'e',
        'һ' | 'н' => 'h',
        'і' | 'ї' | 'ӏ' => 'i',
        'ј' => 'j',
        'к' => 'k',
        'м' => 'm',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' => 's',
        'т' => 't',
        'у' => 'y',
        'ԝ' => 'w',
        'х' => 'x',
        // Greek
        'α' | 'ɑ' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'η' => 'n',
        'ι' => 'i',
        'κ' => 'k',
        'μ' => 'u',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'ω' => 'w',
        'γ' => 'y',
        // Armenian
        'օ' => 'o',
        'ս' => 'u',
        'հ' => 'h',
        // Latin look-alikes outside ASCII
        'ı' | 'ɩ' | 'ɪ' => 'i',
        'ɡ' => 'g',
        'ʀ' => 'r',
        'ѵ' => 'v',
        'ꓲ' => 'i',
        'ǀ' => 'l',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn skeleton(text: &str) -> (String, OffsetMap) {
        let mut out = String::new();
        let mut map = OffsetMap::default();
        normalize_into(text, false, &mut out, &mut map);
        (out, map)
    }

    #[test]
    fn obfuscations_reduce_to_the_plain_phrase() {
        let plain = "ignore previous instructions";
        for variant in [
            "ign\u{200b}ore previous instructions",
            "IGNORE PREVIOUS INSTRUCTIONS",
            "ｉｇｎｏｒｅ ｐｒｅｖｉｏｕｓ ｉｎｓｔｒｕｃｔｉｏｎｓ",
            "іgnоrе prеvіоus іnstruсtіоns",
            "ignore   previous\n\tinstructions",
            "i\u{301}gnore pre\u{300}vious instructions",
            "\u{202e}ignore\u{202c} previous\u{feff} instructions",
            "ignore\u{00a0}previous\u{3000}instructions",
            "𝐢𝐠𝐧𝐨𝐫𝐞 previous instructions",
        ] {
            assert_eq!(normalize(variant), plain, "{variant:?}");
        }
    }

    #[test]
    fn already_normal_text_is_borrowed() {
        assert!(matches!(normalize("plain text, 42."), Cow::Borrowed(_)));
        assert!(matches!(normalize("Plain"), Cow::Owned(_)));
        assert!(matches!(normalize("a  b"), Cow::Owned(_)));
    }

    #[test]
    fn offsets_map_back_to_original_characters() {
        let text = "Ｘ ign\u{200b}ore  ﬁne";
        let (skel, map) = skeleton(text);
        assert_eq!(skel, "x ignore fine");
        let s = skel.find("ignore").unwrap();
        let (orig_start, _) = map.start(s);
        let (orig_end, _) = map.end(s + "ignore".len());
        assert_eq!(&text[orig_start..orig_end], "ign\u{200b}ore");
        // A match inside the expansion of one character covers the whole character.
        let i = skel.find("ine").unwrap();
        let (start, snapped) = map.start(i);
        assert_eq!(&text[start..], "ﬁne");
        assert_eq!(snapped, i - 1);
        let (end, resume) = map.end(skel.find("fi").unwrap() + 1);
        assert_eq!(&text[start..end], "ﬁ");
        assert_eq!(resume, i + 1);
    }

    #[test]
    fn whitespace_runs_collapse_across_calls() {
        let mut out = String::from("a ");
        let mut map = OffsetMap::default();
        normalize_into("  b", true, &mut out, &mut map);
        assert_eq!(out, "a b");
        assert_eq!(map.start(0), (2, 0));
    }

    proptest! {
        #[test]
        fn every_skeleton_span_maps_to_char_boundaries(
            text in "[a-zA-Z \t\u{200b}\u{301}éÉﬁＡ①аО\u{3000}İ]{0,24}",
            a in 0usize..64,
            b in 0usize..64,
        ) {
            let (skel, map) = skeleton(&text);
            let mut bounds: Vec<usize> = (0..=skel.len()).filter(|&i| skel.is_char_boundary(i)).collect();
            bounds.dedup();
            let s = bounds[a % bounds.len()];
            let e = bounds[b % bounds.len()];
            let (s, e) = (s.min(e), s.max(e));
            prop_assume!(e > s);
            let (os, ns) = map.start(s);
            let (oe, ne) = map.end(e);
            prop_assert!(ns <= s && ne >= e);
            prop_assert!(os <= oe && oe <= text.len());
            prop_assert!(text.is_char_boundary(os) && text.is_char_boundary(oe));
            // The original span normalizes to (a superset of) the skeleton span.
            let (sub, _) = skeleton(&text[os..oe]);
            let want = skel[s..e].trim();
            prop_assert!(sub.contains(want), "{:?} !~ {:?}", sub, want);
        }

        /// The bulk copy of ASCII runs gives the skeleton the character-by-character
        /// definition gives.
        #[test]
        fn ascii_runs_normalize_like_single_characters(
            text in "([a-zA-Z0-9.,!?]{0,6}[ \t\n\u{a0}\u{200b}é]{0,2}){0,8}",
            prev_space in any::<bool>(),
        ) {
            let mut out = String::new();
            let mut map = OffsetMap::default();
            normalize_into(&text, prev_space, &mut out, &mut map);
            let mut want = String::new();
            let mut space = prev_space;
            for c in text.chars() {
                if c.is_ascii() && !c.is_ascii_whitespace() && c != '\u{b}' {
                    want.push(c.to_ascii_lowercase());
                    space = false;
                } else if is_ignorable(c) {
                } else if c.is_whitespace() {
                    if !space {
                        want.push(' ');
                        space = true;
                    }
                } else {
                    push_skeleton(c, &mut want, &mut space);
                }
            }
            prop_assert_eq!(out, want);
        }

        #[test]
        fn normalization_is_idempotent(text in "\\PC{0,32}") {
            let once = normalize(&text).into_owned();
            prop_assert_eq!(normalize(&once).into_owned(), once);
        }
    }
}
