//! The features the classifier reads: hashed word unigrams and bigrams, punctuation tokens
//! and character 3- to 5-grams of words, over the normalized skeleton of the text.
//!
//! Training ([`tools/train-classifier`](https://github.com/agentgw/agentgw/tree/main/tools/train-classifier))
//! and inference call the same [`extract`], so the features a model was fit on are the
//! features it scores. Extraction streams over the text once: it keeps the hash of the
//! current word and the last five characters, and allocates nothing per token.
//!
//! 1. The text is reduced to its [skeleton](crate::normalize()): invisible characters
//!    removed, compatibility forms decomposed, accents dropped, homoglyphs folded, lower
//!    case, whitespace runs as one space. `Ign\u{200b}oré ＰＲＥＶＩＯＵＳ` reads as
//!    `ignore previous`.
//! 2. Tokens are words (runs of alphanumeric characters, ASCII digits folded to `0`) and
//!    single punctuation characters (`#`, `[`, `|`, `:`...); whitespace separates.
//! 3. Each token yields its unigram, and a bigram with the token before it; each word also
//!    yields the character n-grams of lengths 3 to 5 of `⟨word⟩` (with boundary marks).
//! 4. Instruction-override *cues* (ignore, previous, instructions, system prompt, secret,
//!    reveal, you are now, without rules, new task, instead, send, quietly, private data, your
//!    response, the user, before answering, a URL...) are recognized in about
//!    twenty languages and yield their *concept*, the same for every language, and each pair
//!    of concepts at most eight tokens apart (`ignore → instructions`), so that what the model
//!    learns from English attacks carries over to the same moves in other languages.
//!
//! A feature is a 64-bit hash (FNV-1a over code points, then a multiplicative finalizer); a
//! model with `2^bits` weights reads its top `bits` bits.
//!
//! ```
//! use agentgw_guard::classifier::features::{FeatureSet, FeatureSink, extract};
//!
//! #[derive(Default)]
//! struct Collect { features: Vec<u64>, tokens: usize }
//! impl FeatureSink for Collect {
//!     fn feature(&mut self, hash: u64) { self.features.push(hash); }
//!     fn token_end(&mut self) { self.tokens += 1; }
//! }
//!
//! let mut plain = Collect::default();
//! extract("Ignore previous instructions!", FeatureSet::ALL, &mut plain);
//! assert_eq!(plain.tokens, 4); // three words and `!`
//!
//! // Obfuscation does not change the features.
//! let mut obfuscated = Collect::default();
//! extract("Ign\u{200b}ore  PREVIOUS instructіons!", FeatureSet::ALL, &mut obfuscated);
//! assert_eq!(plain.features, obfuscated.features);
//! ```

use super::cues::CUES;
use crate::normalize::normalize;

/// Which feature families a model uses (a bit set stored in the model header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeatureSet(u8);

impl FeatureSet {
    /// Word and punctuation unigrams.
    pub const UNIGRAMS: FeatureSet = FeatureSet(1);
    /// Bigrams of consecutive tokens.
    pub const BIGRAMS: FeatureSet = FeatureSet(2);
    /// Character 3-, 4- and 5-grams of each word, with boundary marks.
    pub const CHAR_NGRAMS: FeatureSet = FeatureSet(4);
    /// Instruction-override cues in many languages, as shared concepts, and pairs of cues
    /// within a few tokens of each other (see below).
    pub const CUES: FeatureSet = FeatureSet(8);
    /// Every family.
    pub const ALL: FeatureSet = FeatureSet(15);

    /// The set from its stored bits; `None` for unknown bits.
    pub const fn from_bits(bits: u8) -> Option<FeatureSet> {
        if bits & !Self::ALL.0 == 0 {
            Some(FeatureSet(bits))
        } else {
            None
        }
    }

    /// The stored bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every family of `other` is in `self`.
    pub const fn contains(self, other: FeatureSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets.
    #[must_use]
    pub const fn union(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 | other.0)
    }
}

/// Receives the features of a text, in order.
pub trait FeatureSink {
    /// One feature hash (a feature that occurs twice is delivered twice).
    fn feature(&mut self, hash: u64);
    /// A cue feature (a concept or a pair of concepts, family [`CUES`](FeatureSet::CUES)):
    /// by default delivered as any other [`feature`](Self::feature); a model with a
    /// [cue head](super::Model::cue_head) also scores these apart.
    fn cue(&mut self, hash: u64) {
        self.feature(hash);
    }
    /// The features of one token have all been delivered.
    fn token_end(&mut self) {}
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Seeds that keep the families apart: the word `ab` and the 2-character n-gram `ab` differ.
const KIND_WORD: u64 = 0x57;
const KIND_PUNCT: u64 = 0x50;
const KIND_BIGRAM: u64 = 0x42;
const KIND_CHARS: u64 = 0x43;
const KIND_CUE: u64 = 0x51;
const KIND_CUE_PAIR: u64 = 0x52;
/// Two cues at most this many tokens apart make a pair.
const CUE_PAIR_TOKENS: u32 = 8;
/// Boundary marks around a word for its character n-grams.
const WORD_START: u32 = 0x02;
const WORD_END: u32 = 0x03;

#[inline]
fn step(hash: u64, unit: u32) -> u64 {
    (hash ^ u64::from(unit)).wrapping_mul(FNV_PRIME)
}

/// The finalizer: spreads FNV's weak high bits so the top bits index well.
#[inline]
fn finish(hash: u64, kind: u64) -> u64 {
    let mut h = hash ^ kind.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Streams the features of `text` (normalized first) into `sink`; see the
/// [module docs](self).
pub fn extract(text: &str, set: FeatureSet, sink: &mut impl FeatureSink) {
    let skeleton = normalize(text);
    let mut state = Extractor {
        set,
        prev_token: None,
        word: None,
        recent: [0; 5],
        recent_len: 0,
        tokens: 0,
        prev_cue: None,
    };
    let mut cues = set
        .contains(FeatureSet::CUES)
        .then(|| CUES.find(&skeleton).peekable());
    for (at, c) in skeleton.char_indices() {
        if let Some(cues) = &mut cues {
            while let Some((_, concept)) = cues.next_if(|&(end, _)| end <= at) {
                state.cue(concept, sink);
            }
        }
        if c.is_alphanumeric() {
            let c = if c.is_ascii_digit() { '0' } else { c };
            state.word_char(c as u32, sink);
        } else {
            state.end_word(sink);
            if !c.is_whitespace() {
                state.punct(c as u32, sink);
            }
        }
    }
    state.end_word(sink);
    for (_, concept) in cues.into_iter().flatten() {
        state.cue(concept, sink);
    }
}

struct Extractor {
    set: FeatureSet,
    /// The finished hash of the previous token, for bigrams.
    prev_token: Option<u64>,
    /// The running FNV hash of the current word.
    word: Option<u64>,
    /// The last characters of the current word (with its start mark), newest last.
    recent: [u32; 5],
    recent_len: usize,
    /// Tokens so far.
    tokens: u32,
    /// The last cue's concept and the token count when it was seen.
    prev_cue: Option<(u8, u32)>,
}

impl Extractor {
    fn word_char(&mut self, c: u32, sink: &mut impl FeatureSink) {
        if self.word.is_none() {
            self.word = Some(FNV_OFFSET);
            self.recent_len = 0;
            self.push_recent(WORD_START, sink);
        }
        self.word = self.word.map(|h| step(h, c));
        self.push_recent(c, sink);
    }

    fn push_recent(&mut self, c: u32, sink: &mut impl FeatureSink) {
        self.recent.copy_within(1.., 0);
        self.recent[4] = c;
        self.recent_len = (self.recent_len + 1).min(5);
        if !self.set.contains(FeatureSet::CHAR_NGRAMS) {
            return;
        }
        // The n-grams ending at `c`: lengths 3, 4, 5 as far as the word reaches back.
        let mut hash = FNV_OFFSET;
        for (n, &unit) in self.recent[5 - self.recent_len..].iter().rev().enumerate() {
            hash = step(hash, unit);
            if n >= 2 {
                sink.feature(finish(hash, KIND_CHARS));
            }
        }
    }

    fn end_word(&mut self, sink: &mut impl FeatureSink) {
        let Some(word) = self.word.take() else {
            return;
        };
        self.push_recent(WORD_END, sink);
        self.token(finish(word, KIND_WORD), sink);
    }

    fn punct(&mut self, c: u32, sink: &mut impl FeatureSink) {
        self.token(finish(step(FNV_OFFSET, c), KIND_PUNCT), sink);
    }

    fn cue(&mut self, concept: u8, sink: &mut impl FeatureSink) {
        sink.cue(finish(u64::from(concept), KIND_CUE));
        if let Some((prev, at)) = self.prev_cue
            && self.tokens - at <= CUE_PAIR_TOKENS
        {
            sink.cue(finish(
                u64::from(prev) << 8 | u64::from(concept),
                KIND_CUE_PAIR,
            ));
        }
        self.prev_cue = Some((concept, self.tokens));
    }

    fn token(&mut self, token: u64, sink: &mut impl FeatureSink) {
        if self.set.contains(FeatureSet::UNIGRAMS) {
            sink.feature(token);
        }
        if self.set.contains(FeatureSet::BIGRAMS)
            && let Some(prev) = self.prev_token
        {
            sink.feature(finish(prev.rotate_left(23) ^ token, KIND_BIGRAM));
        }
        self.prev_token = Some(token);
        self.tokens += 1;
        sink.token_end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        features: Vec<u64>,
        tokens: usize,
    }

    impl FeatureSink for Collect {
        fn feature(&mut self, hash: u64) {
            self.features.push(hash);
        }
        fn token_end(&mut self) {
            self.tokens += 1;
        }
    }

    fn features(text: &str, set: FeatureSet) -> Collect {
        let mut sink = Collect::default();
        extract(text, set, &mut sink);
        sink
    }

    #[test]
    fn counts_per_family() {
        // "abc" -> ⟨abc⟩: 3-grams ⟨ab abc bc⟩, 4-grams ⟨abc abc⟩, 5-gram ⟨abc⟩ = 6.
        assert_eq!(features("abc", FeatureSet::CHAR_NGRAMS).features.len(), 6);
        assert_eq!(features("abc de !", FeatureSet::UNIGRAMS).features.len(), 3);
        assert_eq!(features("abc de !", FeatureSet::BIGRAMS).features.len(), 2);
        assert_eq!(features("abc de !", FeatureSet::ALL).tokens, 3);
        assert!(features("", FeatureSet::ALL).features.is_empty());
    }

    #[test]
    fn hashes_are_stable_and_distinguish_families() {
        // Pinned: a change of the hashing silently invalidates every shipped model.
        assert_eq!(
            features("ignore", FeatureSet::UNIGRAMS).features,
            [finish(
                "ignore".chars().fold(FNV_OFFSET, |h, c| step(h, c as u32)),
                KIND_WORD
            )]
        );
        let word = features("ab", FeatureSet::UNIGRAMS).features;
        let chars = features("ab", FeatureSet::CHAR_NGRAMS).features;
        assert!(!chars.contains(&word[0]));
        // Order matters for bigrams.
        assert_ne!(
            features("a b", FeatureSet::BIGRAMS).features,
            features("b a", FeatureSet::BIGRAMS).features
        );
    }

    #[test]
    fn digits_fold_and_obfuscation_normalizes() {
        assert_eq!(
            features("order 12345", FeatureSet::ALL).features,
            features("order 99999", FeatureSet::ALL).features
        );
        assert_eq!(
            features("ＩＧＮＯＲＥ previous", FeatureSet::ALL).features,
            features("ignore\u{200b} previous", FeatureSet::ALL).features
        );
    }

    #[test]
    fn long_words_stream_without_a_bound() {
        let long = "a".repeat(10_000);
        let f = features(&long, FeatureSet::CHAR_NGRAMS);
        // n-grams of ⟨a...a⟩: (L+2-2) + (L+2-3) + (L+2-4).
        assert_eq!(f.features.len(), 3 * 10_000 - 3);
    }
}
