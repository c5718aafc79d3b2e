//! Masking text that arrives in pieces, with exactly the result of masking it whole.
//!
//! A model streams its answer a few characters at a time; a card number can arrive as
//! `"41"`, `"11 1111 11"`, `"11 1111 1111"`. A [`StreamMasker`] releases every piece of text as
//! soon as no match can start in it any more, and holds back only the shortest suffix that
//! could still become part of a match (the longest match is bounded, so is the holdback).
//! Matches are masked in the released text. Whatever the chunking, the concatenated output is
//! the output of [`PatternSet::mask`] on the whole text.
//!
//! # Patterns of unbounded length
//!
//! A pattern with `+`, `*` or `{n,}` (and no `repetitionLimit`), such as the seed's
//! `\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}\b`, could make a stream hold back
//! without end. The masker then holds back at most [`PatternSet::stream_hold_back`] bytes
//! ([`DEFAULT_STREAM_HOLD_BACK`](crate::pattern_set::DEFAULT_STREAM_HOLD_BACK), 1 KiB, unless
//! the builder says otherwise) of a potential match, and the guard warns at load. Exactly:
//!
//! - Text further than the hold-back from the end of what has arrived is released: the
//!   matches that start in it and are complete in what has arrived are masked (up to where
//!   they end so far), the rest of it goes out as it is.
//! - So every match no longer than the hold-back is masked, as in the whole text: it is
//!   complete before any of it is released. A longer match is not: the part that outgrew the
//!   hold-back before the match was complete goes out unmasked, and the rest is masked only
//!   where the pattern matches it on its own (a pattern that starts at `\b` does not match in
//!   the middle of a word, so a 2 KiB e-mail address streamed in small pieces goes out
//!   whole). Bound the pattern (`repetitionLimit`, or `{1,64}` for `+`) where that matters.
//! - Whole texts ([`PatternSet::mask`], a buffered response) are matched with the full
//!   pattern.
//!
//! ```
//! use agentgw_guard::{Builtin, PatternSet};
//!
//! let set = PatternSet::builder().builtin(Builtin::CreditCard).streaming(true).build()?;
//! let mut masker = set.stream_masker()?;
//!
//! let mut out = String::new();
//! for piece in ["Your card ", "41", "11 1111 11", "11 1111", " is on file."] {
//!     out += &masker.push(piece);
//! }
//! out += &masker.finish();
//! assert_eq!(out, "Your card <CREDIT_CARD> is on file.");
//!
//! // Text that cannot be part of a card number is released at once.
//! let mut masker = set.stream_masker()?;
//! assert_eq!(masker.push("Hello there"), "Hello there");
//! assert_eq!(masker.push(", 4111"), ", ");
//! assert_eq!(masker.held(), 4);
//! # Ok::<(), agentgw_guard::Error>(())
//! ```

use std::fmt;

use crate::builtin::CONTEXT_BYTES;
use crate::normalize::{OffsetMap, normalize_into};
use crate::pattern_set::{Cursor, PatternSet, RuleId};

/// Released text kept for the validators' look-behind (keywords before a number).
const CONTEXT_KEEP: usize = CONTEXT_BYTES + 8;

/// Held-back text beyond which the masker flushes as if the text ended. Only a normalizing set
/// can get here: its holdback is bounded in skeleton bytes, and invisible characters (which
/// have no skeleton) inside a potential match make the original text longer without limit.
const MAX_HELD: usize = 64 * 1024;

/// Masks a text that arrives in pieces; see the [module docs](self). Built by
/// [`PatternSet::stream_masker`].
///
/// Memory is bounded: the held-back text is shorter than the longest possible match (or the
/// set's [`stream_hold_back`](PatternSet::stream_hold_back) with patterns of unbounded length)
/// plus a few bytes of look-ahead, and a fixed amount of released text is kept as context. (For a
/// normalizing set the bound is on the skeleton; a flood of more than 64 KiB of invisible
/// characters inside one potential match is flushed as if the text ended there.)
pub struct StreamMasker {
    set: PatternSet,
    /// The tail of the released text (its skeleton for normalizing sets).
    context: String,
    /// Original text not released yet.
    pending: String,
    hay: String,
    map: OffsetMap,
}

impl StreamMasker {
    pub(crate) fn new(set: PatternSet) -> StreamMasker {
        StreamMasker {
            set,
            context: String::new(),
            pending: String::new(),
            hay: String::new(),
            map: OffsetMap::default(),
        }
    }

    /// Adds the next piece of text; returns the masked text that can be released now.
    pub fn push(&mut self, text: &str) -> String {
        self.push_with(text, |_| {})
    }

    /// Like [`push`](Self::push), calling `on_match` with the rule of every match released.
    pub fn push_with(&mut self, text: &str, on_match: impl FnMut(RuleId)) -> String {
        self.pending.push_str(text);
        self.process(false, on_match)
    }

    /// Ends the text: returns everything still held, masked.
    pub fn finish(&mut self) -> String {
        self.finish_with(|_| {})
    }

    /// Like [`finish`](Self::finish), calling `on_match` with the rule of every match.
    pub fn finish_with(&mut self, on_match: impl FnMut(RuleId)) -> String {
        let out = self.process(true, on_match);
        self.context.clear();
        out
    }

    /// How many bytes of text are held back.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// The pattern set this masker applies.
    pub fn pattern_set(&self) -> &PatternSet {
        &self.set
    }

    fn process(&mut self, last: bool, mut on_match: impl FnMut(RuleId)) -> String {
        let StreamMasker {
            set,
            context,
            pending,
            hay,
            map,
        } = self;
        let inner = set.inner();
        let normalize = inner.normalizes();
        let last = last || pending.len() > MAX_HELD;
        let tracker = if last { None } else { set.tracker().ok() };

        hay.clear();
        hay.push_str(context);
        let base = hay.len();
        if normalize {
            normalize_into(pending, context.ends_with(' '), hay, map);
        } else {
            hay.push_str(pending);
        }
        let hay = hay.as_str();

        let mut out = String::with_capacity(pending.len());
        let mut emitted = 0;
        let mut pos = base;
        let mut cursor = Cursor::default();
        let (release, release_hay) = loop {
            let limit = match tracker {
                Some(tracker) => tracker.first_alive(hay, pos).unwrap_or(hay.len()),
                None if last => hay.len(),
                // Not reachable: a masker exists only for sets whose tracker was built.
                None => pos,
            };
            match inner.next(hay, pos, &mut cursor) {
                Some(m) if m.start < limit => {
                    let (start, end, resume) = if normalize {
                        let (start, _) = map.start(m.start - base);
                        let (end, resume) = map.end(m.end - base);
                        (start, end, resume + base)
                    } else {
                        (m.start - base, m.end - base, m.end)
                    };
                    let start = start.max(emitted);
                    out.push_str(&pending[emitted..start]);
                    out.push_str(inner.replacement(m.rule));
                    emitted = end.max(emitted);
                    pos = resume;
                    on_match(m.rule);
                }
                _ => {
                    let (orig, at) = if limit >= hay.len() {
                        (pending.len(), hay.len())
                    } else if normalize {
                        let (orig, snapped) = map.start(limit - base);
                        (orig, snapped + base)
                    } else {
                        (limit - base, limit)
                    };
                    break if orig >= emitted {
                        (orig, at)
                    } else {
                        (emitted, pos)
                    };
                }
            }
        };
        out.push_str(&pending[emitted..release]);
        context.push_str(&hay[base..release_hay]);
        if context.len() > CONTEXT_KEEP {
            let mut cut = context.len() - CONTEXT_KEEP;
            while !context.is_char_boundary(cut) {
                cut += 1;
            }
            context.drain(..cut);
        }
        pending.drain(..release);
        out
    }
}

impl fmt::Debug for StreamMasker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print held text: it may be a secret waiting to be masked.
        f.debug_struct("StreamMasker")
            .field("set", &self.set)
            .field("held", &self.pending.len())
            .finish_non_exhaustive()
    }
}
