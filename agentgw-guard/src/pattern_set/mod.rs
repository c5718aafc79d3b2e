//! One compiled matcher for all the rules of a guard: custom regexes, validated builtins and
//! literal phrases.
//!
//! A [`PatternSet`] is built once ([`PatternSet::builder`]) and then shared (`Clone` is a
//! reference-count increment). It compiles every custom pattern and the candidate patterns of
//! every [`Builtin`] into one multi-pattern `regex-automata` automaton that reports which
//! pattern matched and where (the `EMAIL` candidate gets one of its own, found from its `@`),
//! and literal phrases into an `aho-corasick` automaton. They run in time linear in the text:
//! there is no backtracking engine, so no pattern can be made to take exponential time,
//! whatever the input.
//!
//! When the patterns have a bounded length, the automaton runs only from the places where a
//! match can start (worked out from the patterns: the first two bytes, and whether a word
//! boundary must come before), which skips most of a chat text; a text full of such places
//! hands over to the plain unanchored search after a few passes' worth of work, so the cost
//! stays linear. The matches are exactly those of the plain search.
//!
//! Before an automaton runs over a text, one pass checks that the text holds the bytes its
//! matches cannot do without (a digit for a card number, the `@` of an email address, each
//! letter of a literal): most of a chat message holds no digit, and is not searched by the
//! automaton of the digit builtins at all.
//!
//! Scanning reports non-overlapping matches, leftmost first; at the same position builtins win
//! over custom patterns (builtins in [`Builtin::ALL`] order, then patterns in the order they
//! were added), and the longer of a regex and a phrase match wins. A builtin candidate that
//! fails validation (a card number with a bad checksum) is not a match, and the other rules
//! still get their chance at that position.
//!
//! A *normalizing* set ([`PatternSetBuilder::normalize`]) matches the skeleton of the text (see
//! [`normalize`](mod@crate::normalize)) and compiles its patterns case-insensitively with normalized
//! literals, so `ign\u{200b}ore prevіous` (zero-width space, Cyrillic `і`) matches
//! `ignore previous`. Match offsets always refer to the original text, so masking replaces the
//! right bytes.
//!
//! # Example
//!
//! ```
//! use agentgw_guard::{Builtin, PatternSet};
//!
//! let set = PatternSet::builder()
//!     .builtin(Builtin::CreditCard)
//!     .builtin(Builtin::Email)
//!     .pattern("account", r"\b[A-Z]{2}\d{6,10}\b")
//!     .replacement("EMAIL", "[EMAIL REDACTED]")
//!     .build()?;
//!
//! let text = "Card 4111 1111 1111 1111 (not 4111 1111 1111 1112), mail jo@example.com, acct AB1234567.";
//! let found: Vec<(&str, &str)> = set
//!     .find_iter(text)
//!     .map(|m| (set.rule(m.rule()).name(), &text[m.range()]))
//!     .collect();
//! assert_eq!(found, [
//!     ("CREDIT_CARD", "4111 1111 1111 1111"),
//!     ("EMAIL", "jo@example.com"),
//!     ("account", "AB1234567"),
//! ]);
//! assert_eq!(
//!     set.mask(text),
//!     "Card <CREDIT_CARD> (not 4111 1111 1111 1112), mail [EMAIL REDACTED], acct <account>."
//! );
//! # Ok::<(), agentgw_guard::Error>(())
//! ```

mod hir;
mod required;
mod tracker;
mod walk;

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind as AcMatchKind, StartKind};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind, PatternID, meta};
use regex_syntax::ParserBuilder;
use regex_syntax::hir::Hir;

use crate::builtin::phone::NO_PHONE_RULES;
use crate::builtin::{Builtin, Check, PhoneRules};
use crate::error::Error;
use crate::normalize::{OffsetMap, normalize, normalize_into};
use crate::stream::StreamMasker;

use required::Needs;
pub(crate) use tracker::Tracker;
use walk::Walker;

/// How much text, in bytes, a stream holds back for a potential match of a pattern of
/// unbounded length, unless [`PatternSetBuilder::stream_hold_back`] says otherwise: 1 KiB.
pub const DEFAULT_STREAM_HOLD_BACK: usize = 1024;

/// Identifies a rule of a [`PatternSet`]; see [`PatternSet::rule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(u32);

impl RuleId {
    /// The rule's index in [`PatternSet::rules`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// A custom regular expression.
    Pattern,
    /// A validated builtin recognizer.
    Builtin(Builtin),
    /// A literal phrase.
    Phrase,
}

/// One rule of a [`PatternSet`]: its name (used in metrics and logs) and its replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    name: String,
    kind: RuleKind,
    replacement: String,
}

impl Rule {
    /// The rule name: the configured name, or the builtin's name (`CREDIT_CARD`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the rule matches.
    pub fn kind(&self) -> RuleKind {
        self.kind
    }

    /// The text that replaces the rule's matches when masking.
    pub fn replacement(&self) -> &str {
        &self.replacement
    }
}

/// A match of a rule in a text: byte offsets into the original text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Match {
    rule: RuleId,
    start: usize,
    end: usize,
}

impl Match {
    /// The rule that matched.
    pub fn rule(&self) -> RuleId {
        self.rule
    }

    /// Offset of the first byte of the match.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Offset after the last byte of the match.
    pub fn end(&self) -> usize {
        self.end
    }

    /// `start..end`.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// Compiled rules of one guard. See the [module docs](self).
#[derive(Clone)]
pub struct PatternSet {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    rules: Vec<Rule>,
    /// Every regex pattern.
    regex: Engines,
    /// When some patterns are unbounded: those patterns alone, and the others alone. A text
    /// no unbounded pattern matches is scanned with the bounded ones only, which keeps
    /// iterating over matches linear (a live `.*` thread that never matches would otherwise
    /// make every search run to the end of the text).
    split: Option<(Engine, Engines)>,
    hirs: Vec<Hir>,
    phrases: Option<Phrases>,
    /// What a match of any pattern needs (nothing when the set has phrases): a text without
    /// it has no match, and is not searched at all.
    needs: Needs,
    normalize: bool,
    max_match_len: Option<usize>,
    /// Field paths of the patterns of unbounded length.
    unbounded: Vec<String>,
    /// How much text a stream holds back for a potential match of an unbounded pattern.
    stream_hold_back: usize,
    path: String,
    tracker: OnceLock<Result<Tracker, Error>>,
}

/// One regex pattern of a set, as compiled into an [`Engine`].
#[derive(Clone, Copy)]
struct PatternInfo {
    rule: RuleId,
    check: Option<Check>,
    /// Position among all the patterns of the set: at the same start, the lower one wins.
    priority: u32,
    /// Whether the pattern gets an automaton of its own (see [`Engines`]).
    alone: bool,
    /// The bytes a match of the pattern can start with.
    first: ByteSet,
}

/// A set of bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct ByteSet([u64; 4]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0; 4]);
    const ALL: ByteSet = ByteSet([u64::MAX; 4]);

    /// The bytes a match of `hir` can start with.
    fn first_bytes(hir: &Hir) -> ByteSet {
        match walk::first_bytes(hir) {
            (set, false) => set,
            (_, true) => ByteSet::ALL,
        }
    }

    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn union(&mut self, other: ByteSet) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }

    fn contains(self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    /// The byte of a set of one byte.
    fn single(&self) -> Option<u8> {
        if self.len() != 1 {
            return None;
        }
        let (word, bits) = self.0.iter().enumerate().find(|(_, w)| **w != 0)?;
        u8::try_from(word * 64 + bits.trailing_zeros() as usize).ok()
    }

    /// How many bytes the set holds.
    fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
}

/// The regex patterns of a set, in one or two multi-pattern automata.
///
/// Most patterns share one automaton. A builtin candidate that has no usable prefix but a
/// rare byte in the middle (the `@` of `EMAIL`) gets an automaton of its own: searched alone,
/// `regex-automata` finds it from that byte (a vectorized byte search, then a short search
/// backwards and forwards) instead of running an automaton over every word of the text, and
/// the shared automaton gets smaller and faster. Both automata report their leftmost match
/// (validated); the earlier one wins, or the pattern added first at the same start, exactly
/// as with a single automaton.
struct Engines {
    parts: Vec<Engine>,
}

/// How many automata [`Engines`] uses at most (the size of [`Cursor`]'s cache).
const MAX_PARTS: usize = 2;

impl Engines {
    fn build(
        hirs: &[&Hir],
        patterns: &[PatternInfo],
        phone: &Option<PhoneRules>,
        path: &str,
        walk: bool,
    ) -> Result<Engines, Error> {
        let mut parts = Vec::new();
        for alone in [false, true] {
            let (hirs, patterns): (Vec<&Hir>, Vec<PatternInfo>) = hirs
                .iter()
                .zip(patterns)
                .filter(|(_, p)| p.alone == alone)
                .map(|(h, p)| (*h, *p))
                .unzip();
            if !hirs.is_empty() {
                let phone = phone.clone();
                parts.push(Engine::build(
                    &hirs,
                    patterns,
                    phone,
                    path,
                    walk,
                    walk && !alone,
                )?);
            }
        }
        debug_assert!(parts.len() <= MAX_PARTS);
        Ok(Engines { parts })
    }

    /// The next validated match in `hay` at or after `from`, reusing the matches in `found`
    /// that are still ahead.
    fn next(&self, hay: &str, from: usize, found: &mut [Slot; MAX_PARTS]) -> Option<RawMatch> {
        let mut best: Option<RawMatch> = None;
        for (engine, slot) in self.parts.iter().zip(found.iter_mut()) {
            if stale(&slot.found, from) {
                // The first search of a text asks whether the text holds what a match needs;
                // later ones start further on, in the same text.
                let possible = *slot
                    .possible
                    .get_or_insert_with(|| engine.needs.met_in(&hay.as_bytes()[from..]));
                slot.found = Some(if possible {
                    engine.next(hay, from, &mut slot.spent)
                } else {
                    None
                });
            }
            if let Some(Some(m)) = slot.found
                && best.is_none_or(|b| (m.start, m.priority) < (b.start, b.priority))
            {
                best = Some(m);
            }
        }
        best
    }
}

/// A multi-pattern regex and, per pattern, its rule and validator.
struct Engine {
    regex: meta::Regex,
    /// Finds the matches of `regex` faster when its patterns are bounded (see [`walk`]).
    walker: Option<Walker>,
    patterns: Vec<PatternInfo>,
    /// The regions national phone numbers are validated in (with `PHONE_NUMBER`).
    phone: Option<PhoneRules>,
    /// What a match needs: a text without it is not searched (see [`required`]).
    needs: Needs,
}

impl Engine {
    /// An automaton for `hirs`; with `prefilter`, texts without the bytes a match needs are
    /// skipped, and with `walk`, bounded patterns are found by a [`Walker`].
    fn build(
        hirs: &[&Hir],
        patterns: Vec<PatternInfo>,
        phone: Option<PhoneRules>,
        path: &str,
        prefilter: bool,
        walk: bool,
    ) -> Result<Engine, Error> {
        let config = meta::Config::new()
            .match_kind(MatchKind::LeftmostFirst)
            .utf8_empty(true);
        let regex = meta::Builder::new()
            .configure(config)
            .syntax(syntax::Config::new())
            .build_many_from_hir(hirs)
            .map_err(|e| Error::TooLarge {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        let walker = if walk { Walker::new(hirs) } else { None };
        let needs = if prefilter {
            Needs::of(hirs)
        } else {
            Needs::NOTHING
        };
        Ok(Engine {
            regex,
            walker,
            patterns,
            phone,
            needs,
        })
    }

    /// The next validated match at or after `from`. `spent` is the work the walker did so far
    /// in this search (`usize::MAX` once it handed over to the unanchored search).
    fn next(&self, hay: &str, from: usize, spent: &mut usize) -> Option<RawMatch> {
        let regex = &self.regex;
        let mut pos = from;
        while pos <= hay.len() {
            let mut walked = None;
            if let Some(walker) = &self.walker
                && *spent != usize::MAX
            {
                match walker.find(hay.as_bytes(), pos, spent, Walker::allowance(hay.len())) {
                    Ok(found) => walked = Some(found?),
                    Err(at) => {
                        *spent = usize::MAX;
                        pos = at;
                    }
                }
            }
            let (first, start, end) = match walked {
                Some(found) => found,
                None => {
                    let m = regex.search(&Input::new(hay).range(pos..))?;
                    (m.pattern().as_usize(), m.start(), m.end())
                }
            };
            if let Some(found) = self.accept(first, hay, start, end) {
                return Some(found);
            }
            // The preferred pattern's candidate failed validation: the others get their turn
            // at the same position, in priority order (those that can start with its byte).
            let byte = hay.as_bytes().get(start).copied();
            for pid in first + 1..self.patterns.len() {
                if byte.is_some_and(|b| !self.patterns[pid].first.contains(b)) {
                    continue;
                }
                let input = Input::new(hay)
                    .range(start..)
                    .anchored(Anchored::Pattern(PatternID::new_unchecked(pid)));
                if let Some(m) = regex.search(&input)
                    && let Some(found) = self.accept(pid, hay, m.start(), m.end())
                {
                    return Some(found);
                }
            }
            pos = next_char(hay, start);
        }
        None
    }

    fn accept(&self, pid: usize, hay: &str, start: usize, end: usize) -> Option<RawMatch> {
        let PatternInfo {
            rule,
            check,
            priority,
            ..
        } = self.patterns[pid];
        let (start, end) = match check {
            None => (start, end),
            Some(check) => {
                let phone = self.phone.as_ref().unwrap_or(&NO_PHONE_RULES);
                check.accept(hay, start, end, phone)?
            }
        };
        Some(RawMatch {
            rule,
            start,
            end,
            priority,
        })
    }
}

struct Phrases {
    automaton: AhoCorasick,
    rules: Vec<RuleId>,
    texts: Vec<String>,
}

impl PatternSet {
    /// Starts building a set.
    pub fn builder() -> PatternSetBuilder {
        PatternSetBuilder::default()
    }

    /// The rules, indexed by [`RuleId::index`].
    pub fn rules(&self) -> &[Rule] {
        &self.inner.rules
    }

    /// The rule with this id.
    ///
    /// # Panics
    ///
    /// When `id` comes from another set and is out of range.
    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.inner.rules[id.index()]
    }

    /// Whether the set matches the normalized skeleton of texts.
    pub fn is_normalizing(&self) -> bool {
        self.inner.normalize
    }

    /// The longest text (in bytes, of the matched text or its skeleton) any rule can match, or
    /// `None` when a pattern is unbounded (`.*`); streams then hold back at most
    /// [`stream_hold_back`](Self::stream_hold_back) bytes.
    pub fn max_match_len(&self) -> Option<usize> {
        self.inner.max_match_len
    }

    /// The field paths of the patterns that can match text of unbounded length (`+`, `*`,
    /// `{n,}` without a `repetitionLimit`), such as `response[0].regex.matches[0].pattern`.
    /// Whole texts are matched with the full patterns; streams with a bounded hold-back.
    pub fn unbounded_patterns(&self) -> &[String] {
        &self.inner.unbounded
    }

    /// The most text (in bytes, of the text or its skeleton) a [`StreamMasker`] holds back
    /// for a potential match: the longest match when every pattern is bounded, else the
    /// builder's [`stream_hold_back`](PatternSetBuilder::stream_hold_back)
    /// ([`DEFAULT_STREAM_HOLD_BACK`] by default).
    pub fn stream_hold_back(&self) -> usize {
        self.inner
            .max_match_len
            .unwrap_or(self.inner.stream_hold_back)
    }

    /// Iterates over the matches in `text`, leftmost first, without overlap.
    pub fn find_iter<'s, 't>(&'s self, text: &'t str) -> Matches<'s, 't> {
        self.matches(text, self.inner.may_match(text))
    }

    /// The matches in `text`; none at all when `possible` is false (see [`Inner::may_match`]).
    fn matches<'s, 't>(&'s self, text: &'t str, possible: bool) -> Matches<'s, 't> {
        let inner = &self.inner;
        let normalized = (inner.normalize && possible).then(|| {
            let mut skeleton = String::new();
            let mut map = OffsetMap::default();
            normalize_into(text, false, &mut skeleton, &mut map);
            (skeleton, map)
        });
        Matches {
            set: inner,
            text,
            normalized,
            pos: 0,
            orig_end: 0,
            cursor: Cursor::default(),
            exhausted: !possible,
        }
    }

    /// The first match in `text`, if any. Cheaper than collecting all matches, and cheapest
    /// for a text that lacks what every match needs: nothing is set up to search it.
    pub fn find(&self, text: &str) -> Option<Match> {
        if !self.inner.may_match(text) {
            return None;
        }
        self.matches(text, true).next()
    }

    /// Whether any rule matches `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.find(text).is_some()
    }

    /// All matches in `text`.
    pub fn scan(&self, text: &str) -> Vec<Match> {
        self.find_iter(text).collect()
    }

    /// `text` with every match replaced by its rule's replacement; borrowed when nothing
    /// matched.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.mask_with(text, |_| {})
    }

    /// Like [`PatternSet::mask`], calling `on_match` with every match (for counting).
    pub fn mask_with<'t>(&self, text: &'t str, mut on_match: impl FnMut(&Match)) -> Cow<'t, str> {
        let mut out = String::new();
        let mut copied = 0;
        let mut any = false;
        for m in self.find_iter(text) {
            on_match(&m);
            any = true;
            out.push_str(&text[copied..m.start]);
            out.push_str(&self.inner.rules[m.rule.index()].replacement);
            copied = m.end;
        }
        if !any {
            return Cow::Borrowed(text);
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }

    /// A masker for text that arrives in pieces; see [`StreamMasker`]. With patterns of
    /// unbounded length it holds back at most [`stream_hold_back`](Self::stream_hold_back)
    /// bytes (see the [`stream`](crate::stream) module for what that means for longer matches).
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] when the streaming automata exceed their size limits.
    pub fn stream_masker(&self) -> Result<StreamMasker, Error> {
        self.tracker()?;
        Ok(StreamMasker::new(self.clone()))
    }

    pub(crate) fn tracker(&self) -> Result<&Tracker, Error> {
        self.inner
            .tracker
            .get_or_init(|| {
                Tracker::new(
                    &self.inner.hirs,
                    self.inner.phrases.as_ref().map(|p| p.texts.as_slice()),
                    !self.inner.normalize,
                    self.stream_hold_back(),
                    self.inner.max_match_len.is_none(),
                    &self.inner.path,
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

impl fmt::Debug for PatternSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatternSet")
            .field(
                "rules",
                &self.inner.rules.iter().map(Rule::name).collect::<Vec<_>>(),
            )
            .field("normalize", &self.inner.normalize)
            .field("max_match_len", &self.inner.max_match_len)
            .finish()
    }
}

/// A match in the searched text (the skeleton for normalizing sets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawMatch {
    pub(crate) rule: RuleId,
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// The pattern's position in the set (regex matches only): lower wins at the same start.
    priority: u32,
}

/// A search result kept for reuse: `None` before the first search, `Some(None)` when there
/// is no match any more.
type Found = Option<Option<RawMatch>>;

/// The state of one automaton's search through a text.
#[derive(Default)]
struct Slot {
    found: Found,
    /// Whether the text holds what a match of the automaton needs (decided on first use).
    possible: Option<bool>,
    /// Work done by the automaton's walker (see [`Engine::next`]).
    spent: usize,
}

/// Whether `found` must be searched again for a match at or after `from`.
fn stale(slot: &Found, from: usize) -> bool {
    match slot {
        None => true,
        Some(Some(m)) => m.start < from,
        Some(None) => false,
    }
}

/// The next regex and phrase matches found so far, reused while they are still ahead.
#[derive(Default)]
pub(crate) struct Cursor {
    /// Whether the text needs the engine with the unbounded patterns (decided on first use).
    full: Option<bool>,
    regex: [Slot; MAX_PARTS],
    phrase: Found,
}

impl Inner {
    /// Whether `text` may hold a match: false when it lacks what every match needs. A text
    /// that lacks it is not searched, nor normalized when it is ASCII (its skeleton's bytes are
    /// known without computing it); a non-ASCII text is normalized and its skeleton searched.
    fn may_match(&self, text: &str) -> bool {
        if self.normalize {
            !text.is_ascii() || self.needs.met_in_ascii_skeleton(text.as_bytes())
        } else {
            self.needs.met_in(text.as_bytes())
        }
    }

    pub(crate) fn normalizes(&self) -> bool {
        self.normalize
    }

    pub(crate) fn replacement(&self, rule: RuleId) -> &str {
        &self.rules[rule.index()].replacement
    }

    /// The next match in `hay` starting at or after `from`.
    pub(crate) fn next(&self, hay: &str, from: usize, cursor: &mut Cursor) -> Option<RawMatch> {
        let engines = match &self.split {
            None => &self.regex,
            Some((unbounded, bounded)) => {
                // A match at or after `from` lies in `hay[from..]`: without what the
                // unbounded patterns need there, the bounded automata find the same matches.
                let full = *cursor.full.get_or_insert_with(|| {
                    unbounded.needs.met_in(&hay.as_bytes()[from..]) && unbounded.regex.is_match(hay)
                });
                if full { &self.regex } else { bounded }
            }
        };
        let regex = engines.next(hay, from, &mut cursor.regex);
        if stale(&cursor.phrase, from) {
            cursor.phrase = Some(self.next_phrase(hay, from));
        }
        match (regex, cursor.phrase.flatten()) {
            (Some(r), Some(p)) => Some(if (p.start, r.end) < (r.start, p.end) {
                p
            } else {
                r
            }),
            (r, p) => r.or(p),
        }
    }

    fn next_phrase(&self, hay: &str, from: usize) -> Option<RawMatch> {
        let phrases = self.phrases.as_ref()?;
        let bytes = hay.as_bytes();
        let mut pos = from;
        while pos < hay.len() {
            let m = phrases
                .automaton
                .find(aho_corasick::Input::new(hay).range(pos..))?;
            let text = phrases.texts[m.pattern().as_usize()].as_bytes();
            let starts_word = text.first().is_some_and(|&b| is_word_byte(b));
            let ends_word = text.last().is_some_and(|&b| is_word_byte(b));
            let open = !starts_word || m.start() == 0 || !is_word_byte(bytes[m.start() - 1]);
            let close = !ends_word || bytes.get(m.end()).is_none_or(|&b| !is_word_byte(b));
            if open && close {
                return Some(RawMatch {
                    rule: phrases.rules[m.pattern().as_usize()],
                    start: m.start(),
                    end: m.end(),
                    priority: u32::MAX,
                });
            }
            pos = next_char(hay, m.start());
        }
        None
    }
}

/// The offset of the character after the one at `at`.
fn next_char(hay: &str, at: usize) -> usize {
    let mut next = at + 1;
    while next < hay.len() && !hay.is_char_boundary(next) {
        next += 1;
    }
    next
}

/// ASCII letters, digits and `_`: the characters a phrase must not be glued to.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Iterator over the matches of a [`PatternSet`] in a text; see [`PatternSet::find_iter`].
pub struct Matches<'s, 't> {
    set: &'s Inner,
    text: &'t str,
    normalized: Option<(String, OffsetMap)>,
    pos: usize,
    orig_end: usize,
    cursor: Cursor,
    /// Nothing (more) to find: the text lacks what every match needs.
    exhausted: bool,
}

impl Iterator for Matches<'_, '_> {
    type Item = Match;

    fn next(&mut self) -> Option<Match> {
        if self.exhausted {
            return None;
        }
        let hay = match &self.normalized {
            Some((skeleton, _)) => skeleton.as_str(),
            None => self.text,
        };
        let raw = self.set.next(hay, self.pos, &mut self.cursor)?;
        let (start, end) = match &self.normalized {
            Some((_, map)) => {
                let (start, _) = map.start(raw.start);
                let (end, resume) = map.end(raw.end);
                self.pos = resume;
                (start.max(self.orig_end), end)
            }
            None => {
                self.pos = raw.end;
                (raw.start, raw.end)
            }
        };
        self.orig_end = end;
        Some(Match {
            rule: raw.rule,
            start,
            end,
        })
    }
}

impl fmt::Debug for Matches<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matches").field("pos", &self.pos).finish()
    }
}

/// Builds a [`PatternSet`]; see [`PatternSet::builder`].
///
/// Errors name the offending field under the [`path`](PatternSetBuilder::path) prefix:
/// the `i`-th pattern added is `matches[i].pattern`, builtins are `builtins[i]`, phrases
/// `phrases[i]`, as in the prompt guard configuration.
#[derive(Clone, Debug, Default)]
pub struct PatternSetBuilder {
    path: String,
    patterns: Vec<(String, String)>,
    builtins: Vec<Builtin>,
    phone_regions: Option<Vec<String>>,
    phrases: Vec<(String, String)>,
    replacements: Vec<(String, String)>,
    default_replacement: Option<String>,
    normalize: bool,
    streaming: bool,
    repetition_limit: Option<u32>,
    stream_hold_back: Option<usize>,
    /// Compiles every pattern into one automaton (tests compare it with the split engines).
    single_engine: bool,
}

impl PatternSetBuilder {
    /// The configuration path of this set, prefixed to field names in errors (for example
    /// `request[0].regex` inside a `promptGuard` block).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Adds a custom regular expression named `name` (the rule name in metrics and logs).
    ///
    /// The syntax is that of the `regex` crate; look-around and backreferences are not
    /// supported (they need backtracking). Word boundaries (`\b`) are ASCII word boundaries:
    /// a Unicode boundary would push the scan off the fast DFA on every non-ASCII character.
    pub fn pattern(mut self, name: impl Into<String>, pattern: impl Into<String>) -> Self {
        self.patterns.push((name.into(), pattern.into()));
        self
    }

    /// Adds a builtin recognizer (adding one twice has no effect).
    pub fn builtin(mut self, builtin: Builtin) -> Self {
        self.builtins.push(builtin);
        self
    }

    /// Sets the regions `PHONE_NUMBER` validates national numbers in (numbers written without
    /// a country code), in order: ISO 3166-1 alpha-2 codes of libphonenumber's metadata such as
    /// `US`, `GB`, `DE` (default [`DEFAULT_PHONE_REGIONS`](crate::DEFAULT_PHONE_REGIONS)).
    /// Numbers written with `+CC` are validated by their own country whatever the regions.
    pub fn phone_regions<S: Into<String>>(mut self, regions: impl IntoIterator<Item = S>) -> Self {
        self.phone_regions = Some(regions.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a literal phrase, matched case-insensitively as whole words (in a normalizing set,
    /// against the skeleton of the text, so obfuscated spellings match too).
    pub fn phrase(mut self, name: impl Into<String>, phrase: impl Into<String>) -> Self {
        self.phrases.push((name.into(), phrase.into()));
        self
    }

    /// Sets the replacement of the rule named `rule` (a pattern or phrase name, or a builtin
    /// name such as `EMAIL`). Defaults: `<CREDIT_CARD>` for builtins, `<name>` otherwise.
    pub fn replacement(mut self, rule: impl Into<String>, replacement: impl Into<String>) -> Self {
        self.replacements.push((rule.into(), replacement.into()));
        self
    }

    /// Sets the replacement of every rule without its own replacement.
    pub fn default_replacement(mut self, replacement: impl Into<String>) -> Self {
        self.default_replacement = Some(replacement.into());
        self
    }

    /// Matches the normalized skeleton of texts (see [`normalize`](mod@crate::normalize)) for
    /// evasion resistance. Off by default.
    pub fn normalize(mut self, yes: bool) -> Self {
        self.normalize = yes;
        self
    }

    /// Marks the set as one that masks streams ([`PatternSet::stream_masker`]). A pattern of
    /// unbounded length is accepted: whole texts are matched with it as written, streams with
    /// a hold-back of at most [`stream_hold_back`](Self::stream_hold_back) bytes; the guard
    /// warns about it at load ([`PatternSet::unbounded_patterns`]).
    pub fn streaming(mut self, yes: bool) -> Self {
        self.streaming = yes;
        self
    }

    /// Bounds every open-ended repetition (`*`, `+`, `{n,}`) of the custom patterns to at most
    /// `limit` repetitions beyond its minimum, making every pattern usable on streams.
    pub fn repetition_limit(mut self, limit: u32) -> Self {
        self.repetition_limit = Some(limit);
        self
    }

    /// The most text, in bytes, a stream holds back for a potential match of a pattern of
    /// unbounded length (default [`DEFAULT_STREAM_HOLD_BACK`], 1 KiB; at least 1). Without
    /// unbounded patterns the hold-back is the longest match and this has no effect.
    pub fn stream_hold_back(mut self, bytes: usize) -> Self {
        self.stream_hold_back = Some(bytes.max(1));
        self
    }

    /// Compiles every pattern into one automaton searched the plain way: the reference the
    /// tests compare the faster engines with.
    #[cfg(test)]
    fn single_engine(mut self) -> Self {
        self.single_engine = true;
        self
    }

    fn field(&self, field: &str) -> String {
        agentgw_core::config::join(&self.path, field)
    }

    /// Compiles the set.
    ///
    /// # Errors
    ///
    /// An invalid or empty-matching pattern, an empty phrase, a replacement for an unknown
    /// rule, or automata over the size limits; see [`Error`].
    pub fn build(self) -> Result<PatternSet, Error> {
        let mut rules = Vec::new();
        let mut patterns = Vec::new();
        let mut hirs = Vec::new();
        let mut max_len = Some(0usize);
        let mut unbounded = Vec::new();

        let phone = self.phone_rules()?;
        let builtin_parser = || ParserBuilder::new().unicode(false).utf8(true).build();
        let mut builtins = self.builtins.clone();
        builtins.sort_by_key(|b| Builtin::ALL.iter().position(|x| x == b));
        builtins.dedup();
        for builtin in builtins {
            let rule = push_rule(&mut rules, builtin.name(), RuleKind::Builtin(builtin));
            for &(pattern, check) in builtin.candidates() {
                let hir = builtin_parser()
                    .parse(pattern)
                    .map_err(|e| Error::InvalidPattern {
                        path: self.field("builtins"),
                        message: e.to_string(),
                    })?;
                max_len = max_len
                    .zip(hir.properties().maximum_len())
                    .map(|(a, b)| a.max(b));
                patterns.push(PatternInfo {
                    rule,
                    check: Some(check),
                    priority: 0,
                    alone: check.searched_alone() && !self.single_engine,
                    first: ByteSet::first_bytes(&hir),
                });
                hirs.push(hir);
            }
        }

        for (i, (name, pattern)) in self.patterns.iter().enumerate() {
            let path = self.field(&format!("matches[{i}].pattern"));
            let mut hir = ParserBuilder::new()
                .case_insensitive(self.normalize)
                .utf8(true)
                .build()
                .parse(pattern)
                .map_err(|e| Error::InvalidPattern {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            hir = hir::ascii_word_boundaries(&hir);
            if self.normalize {
                hir = hir::normalize_hir(&hir);
            }
            if let Some(limit) = self.repetition_limit {
                hir = hir::bound_repetitions(&hir, limit);
            }
            let props = hir.properties();
            if props.minimum_len().is_none_or(|len| len == 0) {
                return Err(Error::EmptyMatch { path });
            }
            match props.maximum_len() {
                Some(len) => max_len = max_len.map(|m| m.max(len)),
                None => {
                    max_len = None;
                    unbounded.push(path);
                }
            }
            let rule = push_rule(&mut rules, name, RuleKind::Pattern);
            patterns.push(PatternInfo {
                rule,
                check: None,
                priority: 0,
                alone: false,
                first: ByteSet::first_bytes(&hir),
            });
            hirs.push(hir);
        }

        let phrases = self.build_phrases(&mut rules, &mut max_len)?;

        if rules.is_empty() {
            return Err(Error::NothingToMatch {
                path: self.path.clone(),
            });
        }
        for (i, (rule_name, replacement)) in self.replacements.iter().enumerate() {
            let mut found = false;
            for rule in rules.iter_mut().filter(|r| &r.name == rule_name) {
                rule.replacement.clone_from(replacement);
                found = true;
            }
            if !found {
                return Err(Error::UnknownReplacement {
                    path: self.field(&format!("replacements[{i}]")),
                    rule: rule_name.clone(),
                });
            }
        }
        if let Some(default) = &self.default_replacement {
            let explicit: Vec<&String> = self.replacements.iter().map(|(r, _)| r).collect();
            for rule in rules.iter_mut().filter(|r| !explicit.contains(&&r.name)) {
                rule.replacement.clone_from(default);
            }
        }

        for (i, pattern) in patterns.iter_mut().enumerate() {
            pattern.priority = u32::try_from(i).unwrap_or(u32::MAX);
        }
        let all: Vec<&Hir> = hirs.iter().collect();
        let walk = !self.single_engine;
        let regex = Engines::build(&all, &patterns, &phone, &self.path, walk)?;
        let needs = if walk && phrases.is_none() {
            Needs::of(&all)
        } else {
            Needs::NOTHING
        };
        let split = if !unbounded.is_empty() {
            let (mut open, mut closed) = (Vec::new(), Vec::new());
            let mut closed_patterns = Vec::new();
            for (hir, pattern) in hirs.iter().zip(&patterns) {
                if hir.properties().maximum_len().is_some() {
                    closed.push(hir);
                    closed_patterns.push(*pattern);
                } else {
                    open.push(hir);
                }
            }
            let open = Engine::build(&open, Vec::new(), None, &self.path, walk, false)?;
            let closed = Engines::build(&closed, &closed_patterns, &phone, &self.path, walk)?;
            Some((open, closed))
        } else {
            None
        };

        Ok(PatternSet {
            inner: Arc::new(Inner {
                rules,
                regex,
                split,
                hirs,
                phrases,
                needs,
                normalize: self.normalize,
                max_match_len: max_len,
                unbounded,
                stream_hold_back: self.stream_hold_back.unwrap_or(DEFAULT_STREAM_HOLD_BACK),
                path: self.path,
                tracker: OnceLock::new(),
            }),
        })
    }

    /// The compiled regions of `PHONE_NUMBER`, when the set has it.
    fn phone_rules(&self) -> Result<Option<PhoneRules>, Error> {
        let field = || self.field("phoneNumber.regions");
        if !self.builtins.contains(&Builtin::PhoneNumber) {
            return match self.phone_regions {
                Some(_) => Err(Error::InvalidPhoneNumber {
                    path: self.field("phoneNumber"),
                    message: "is set but `builtins` has no PHONE_NUMBER".to_owned(),
                }),
                None => Ok(None),
            };
        }
        match &self.phone_regions {
            None => Ok(Some(PhoneRules::default_regions())),
            Some(regions) if regions.is_empty() => Err(Error::InvalidPhoneNumber {
                path: field(),
                message: "is empty: list at least one region (such as US or GB), or leave it \
                          out for the default regions"
                    .to_owned(),
            }),
            Some(regions) => PhoneRules::new(regions).map(Some).map_err(|(i, region)| {
                Error::InvalidPhoneNumber {
                    path: format!("{}[{i}]", field()),
                    message: format!(
                        "unknown region `{region}`: expected an ISO 3166-1 alpha-2 region code \
                         of libphonenumber's metadata in upper case, such as US, GB or DE"
                    ),
                }
            }),
        }
    }

    fn build_phrases(
        &self,
        rules: &mut Vec<Rule>,
        max_len: &mut Option<usize>,
    ) -> Result<Option<Phrases>, Error> {
        if self.phrases.is_empty() {
            return Ok(None);
        }
        let mut texts = Vec::new();
        let mut ids = Vec::new();
        for (i, (name, phrase)) in self.phrases.iter().enumerate() {
            let text = if self.normalize {
                normalize(phrase).trim().to_owned()
            } else {
                phrase.trim().to_owned()
            };
            if text.is_empty() {
                return Err(Error::EmptyPhrase {
                    path: self.field(&format!("phrases[{i}]")),
                });
            }
            *max_len = max_len.map(|m| m.max(text.len()));
            let rule = match rules
                .iter()
                .position(|r| r.name == *name && r.kind == RuleKind::Phrase)
            {
                Some(i) => RuleId(i as u32),
                None => push_rule(rules, name, RuleKind::Phrase),
            };
            texts.push(text);
            ids.push(rule);
        }
        let automaton = AhoCorasickBuilder::new()
            .match_kind(AcMatchKind::LeftmostLongest)
            .ascii_case_insensitive(!self.normalize)
            .start_kind(StartKind::Both)
            .build(&texts)
            .map_err(|e| Error::TooLarge {
                path: self.field("phrases"),
                message: e.to_string(),
            })?;
        Ok(Some(Phrases {
            automaton,
            rules: ids,
            texts,
        }))
    }
}

fn push_rule(rules: &mut Vec<Rule>, name: &str, kind: RuleKind) -> RuleId {
    let replacement = match kind {
        RuleKind::Builtin(b) => b.default_replacement().to_owned(),
        RuleKind::Pattern | RuleKind::Phrase => format!("<{name}>"),
    };
    let id = RuleId(u32::try_from(rules.len()).unwrap_or(u32::MAX));
    rules.push(Rule {
        name: name.to_owned(),
        kind,
        replacement,
    });
    id
}

#[cfg(test)]
mod tests;
