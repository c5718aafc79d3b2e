//! Which suffix of a text could still become (part of) a match: what a stream must hold back.
//!
//! For every start position the tracker runs an anchored lazy DFA of all the set's patterns
//! with `MatchKind::All` semantics (so that no rule's candidate is cut short by another rule's
//! match) plus an anchored Aho-Corasick automaton of the phrases. A start is *alive* when the
//! automata have not died at the end of the text: more text could still complete, extend or
//! invalidate a match starting there. Matches starting before the first live start are final.

use std::sync::Mutex;

use aho_corasick::automaton::Automaton;
use aho_corasick::nfa::contiguous;
use aho_corasick::{Anchored as AcAnchored, MatchKind as AcMatchKind};
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::Hir;

use crate::error::Error;

/// Liveness automata of a pattern set. Built once per set, shared by all its streams.
pub(crate) struct Tracker {
    dfa: Option<DFA>,
    caches: Mutex<Vec<Cache>>,
    phrases: Option<contiguous::NFA>,
    /// Bytes after a start position beyond which nothing starting there can be alive: the
    /// longest match plus the look-ahead validators use.
    horizon: usize,
    /// With patterns of unbounded length: a start more than this many bytes before the end of
    /// the text is no longer alive, whatever the automata say (the stream's hold-back).
    cap: Option<usize>,
}

impl Tracker {
    pub(crate) fn new(
        hirs: &[Hir],
        phrases: Option<&[String]>,
        ascii_case_insensitive: bool,
        max_match_len: usize,
        capped: bool,
        path: &str,
    ) -> Result<Tracker, Error> {
        let too_large = |message: String| Error::TooLarge {
            path: path.to_owned(),
            message,
        };
        let dfa = if hirs.is_empty() {
            None
        } else {
            let nfa = thompson::Compiler::new()
                .configure(thompson::Config::new().which_captures(WhichCaptures::None))
                .build_many_from_hir(hirs)
                .map_err(|e| too_large(e.to_string()))?;
            let config = DFA::config()
                .match_kind(MatchKind::All)
                .unicode_word_boundary(true)
                .minimum_cache_clear_count(None);
            Some(
                DFA::builder()
                    .configure(config)
                    .build_from_nfa(nfa)
                    .map_err(|e| too_large(e.to_string()))?,
            )
        };
        let phrases = match phrases {
            Some(texts) => Some(
                contiguous::NFA::builder()
                    .match_kind(AcMatchKind::LeftmostLongest)
                    .ascii_case_insensitive(ascii_case_insensitive)
                    .build(texts)
                    .map_err(|e| too_large(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Tracker {
            dfa,
            caches: Mutex::new(Vec::new()),
            phrases,
            horizon: max_match_len + 2,
            cap: capped.then_some(max_match_len),
        })
    }

    /// The first character boundary at or after `from` (and before the end of `hay`) where a
    /// match could start that more text could still change; `None` when every match starting
    /// at or after `from` is already decided.
    pub(crate) fn first_alive(&self, hay: &str, from: usize) -> Option<usize> {
        if from >= hay.len() {
            return None;
        }
        let mut cache = self.dfa.as_ref().map(|dfa| {
            self.caches
                .lock()
                .ok()
                .and_then(|mut caches| caches.pop())
                .unwrap_or_else(|| dfa.create_cache())
        });
        let bytes = hay.as_bytes();
        let mut found = None;
        // A potential match of an unbounded pattern is held back for `cap` bytes at most.
        let from = match self.cap {
            Some(cap) => from.max(bytes.len().saturating_sub(cap)),
            None => from,
        };
        for start in from..bytes.len() {
            if !hay.is_char_boundary(start) {
                continue;
            }
            let regex_alive = match (&self.dfa, cache.as_mut()) {
                (Some(dfa), Some(cache)) => self.regex_alive(dfa, cache, bytes, start),
                _ => false,
            };
            if regex_alive || self.phrase_alive(bytes, start) {
                found = Some(start);
                break;
            }
        }
        if let Some(cache) = cache
            && let Ok(mut caches) = self.caches.lock()
        {
            caches.push(cache);
        }
        found
    }

    fn regex_alive(&self, dfa: &DFA, cache: &mut Cache, bytes: &[u8], start: usize) -> bool {
        // When the lazy DFA cannot decide (a Unicode word boundary next to non-ASCII text),
        // assume alive while a match could still fit.
        let undecided = bytes.len() - start <= self.horizon;
        let config = start::Config::new()
            .anchored(Anchored::Yes)
            .look_behind(start.checked_sub(1).map(|i| bytes[i]));
        let Ok(mut sid) = dfa.start_state(cache, &config) else {
            return undecided;
        };
        for &b in &bytes[start..] {
            sid = match dfa.next_state(cache, sid, b) {
                Ok(sid) => sid,
                Err(_) => return undecided,
            };
            if sid.is_dead() {
                return false;
            }
            if sid.is_quit() {
                return undecided;
            }
        }
        true
    }

    fn phrase_alive(&self, bytes: &[u8], start: usize) -> bool {
        let Some(nfa) = &self.phrases else {
            return false;
        };
        let Ok(mut sid) = nfa.start_state(AcAnchored::Yes) else {
            return false;
        };
        for &b in &bytes[start..] {
            sid = nfa.next_state(AcAnchored::Yes, sid, b);
            if nfa.is_dead(sid) {
                return false;
            }
        }
        true
    }
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("horizon", &self.horizon)
            .finish_non_exhaustive()
    }
}
