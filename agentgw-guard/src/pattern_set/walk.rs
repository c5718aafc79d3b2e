//! Finding matches by walking a lazy DFA from the places where a match can start.
//!
//! An unanchored automaton reads every byte of the text, one dependent table lookup after
//! another, whatever the byte. Most of a chat text cannot start a match: builtins and most
//! custom patterns start with a word boundary and a digit, a `+`, an uppercase letter or a
//! literal. [`Walker`] computes from the patterns which bytes can start a match, and whether
//! that needs a non-word character before it, skips every other position with one table
//! lookup per byte (independent of the previous one, so the processor overlaps them), and
//! runs the anchored automaton only from the remaining candidates, until it dies (a few
//! bytes in prose). The match it reports is exactly the unanchored leftmost-first match: the
//! first candidate where some pattern matches, the preferred pattern there, its preferred
//! end. Its start is known, so no backwards search is needed to find it.
//!
//! Only sets of bounded patterns use a walker (a walk never goes further than the longest
//! match), and a search that makes the walks cost more than a few passes over the text
//! hands over to the unanchored search, which is linear whatever the text.

use std::panic::{RefUnwindSafe, UnwindSafe};

use regex_automata::Anchored;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::util::start;
use regex_syntax::hir::{Class, Hir, HirKind, Look};

use super::{ByteSet, is_word_byte};

/// Creates a lazy DFA cache for a thread.
type CacheFn = Box<dyn Fn() -> Cache + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// Where a byte can start a match.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum StartAt {
    Never,
    /// Only after a byte that is not an ASCII word character (or at the start of the text).
    AfterNonWord,
    Anywhere,
}

/// Work (automaton steps, plus [`CANDIDATE_COST`] per candidate) a search may spend per byte
/// of text before it hands over to the unanchored search.
const WORK_PER_BYTE: usize = 4;
const WORK_SLACK: usize = 4096;
const CANDIDATE_COST: usize = 4;

/// See the [module docs](self).
pub(super) struct Walker {
    dfa: DFA,
    caches: Pool<Cache, CacheFn>,
    starts: [StartAt; 256],
    /// Bit `a * 256 + b`: whether a match can start with the bytes `a`, `b` (or `a` alone).
    pairs: Box<[u64; 1024]>,
}

/// A match found by a walk: pattern index, start, end.
pub(super) type Found = (usize, usize, usize);

impl Walker {
    /// A walker for these patterns (pattern `i` of the automaton is `hirs[i]`), or `None` when
    /// one of them has no bounded length or the automaton cannot be built.
    pub(super) fn new(hirs: &[&Hir]) -> Option<Walker> {
        if hirs.iter().any(|h| h.properties().maximum_len().is_none()) {
            return None;
        }
        let mut starts = [StartAt::Never; 256];
        for hir in hirs {
            let (first, nullable) = first_bytes(hir);
            if nullable {
                return None;
            }
            let guard = leading_boundary(hir);
            for b in 0..=255u8 {
                if !first.contains(b) {
                    continue;
                }
                let at = match guard {
                    Boundary::NonWordBefore => StartAt::AfterNonWord,
                    Boundary::Word if is_word_byte(b) => StartAt::AfterNonWord,
                    Boundary::Word | Boundary::None => StartAt::Anywhere,
                };
                let slot = &mut starts[usize::from(b)];
                *slot = (*slot).max(at);
            }
        }
        let nfa = thompson::Compiler::new().build_many_from_hir(hirs).ok()?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(regex_automata::MatchKind::LeftmostFirst)
                    .starts_for_each_pattern(false),
            )
            .build_from_nfa(nfa)
            .ok()?;
        let pairs = viable_pairs(&dfa, &starts)?;
        let for_pool = dfa.clone();
        let create: CacheFn = Box::new(move || for_pool.create_cache());
        Some(Walker {
            dfa,
            caches: Pool::new(create),
            starts,
            pairs,
        })
    }

    /// The work a search of `hay` may spend before handing over.
    pub(super) fn allowance(hay_len: usize) -> usize {
        hay_len
            .saturating_mul(WORK_PER_BYTE)
            .saturating_add(WORK_SLACK)
    }

    /// The leftmost-first match starting at or after `from`: `Ok(None)` when there is none,
    /// `Err(at)` when the search must continue with the unanchored search from `at` (the work
    /// in `spent` went over `allowance`, or the automaton gave up). No match starts in
    /// `from..at` then.
    pub(super) fn find(
        &self,
        hay: &[u8],
        from: usize,
        spent: &mut usize,
        allowance: usize,
    ) -> Result<Option<Found>, usize> {
        let mut cache = self.caches.get();
        let cache: &mut Cache = &mut cache;
        let dfa = &self.dfa;
        let mut i = from;
        while i < hay.len() {
            let ok = match self.starts[usize::from(hay[i])] {
                StartAt::Never => false,
                StartAt::AfterNonWord => i == 0 || !is_word_byte(hay[i - 1]),
                StartAt::Anywhere => true,
            } && hay.get(i + 1).is_none_or(|&next| self.pair(hay[i], next));
            if !ok {
                i += 1;
                continue;
            }
            if *spent > allowance {
                return Err(i);
            }
            let prev = i.checked_sub(1).map(|p| hay[p]);
            let config = start::Config::new()
                .anchored(Anchored::Yes)
                .look_behind(prev);
            let mut sid = dfa.start_state(cache, &config).map_err(|_| i)?;
            let mut found = None;
            let mut at = i;
            loop {
                if at == hay.len() {
                    sid = dfa.next_eoi_state(cache, sid).map_err(|_| i)?;
                    if sid.is_match() {
                        found = Some((dfa.match_pattern(cache, sid, 0).as_usize(), at));
                    }
                    break;
                }
                sid = dfa.next_state(cache, sid, hay[at]).map_err(|_| i)?;
                if sid.is_tagged() {
                    if sid.is_match() {
                        // Matches are reported one byte late: this one ended before `at`.
                        found = Some((dfa.match_pattern(cache, sid, 0).as_usize(), at));
                    } else if sid.is_dead() {
                        break;
                    } else if sid.is_quit() {
                        return Err(i);
                    }
                }
                at += 1;
            }
            *spent = spent.saturating_add(at - i + CANDIDATE_COST);
            if let Some((pattern, end)) = found
                && end > i
            {
                return Ok(Some((pattern, i, end)));
            }
            i += 1;
        }
        Ok(None)
    }
}

impl Walker {
    fn pair(&self, a: u8, b: u8) -> bool {
        let bit = usize::from(a) << 8 | usize::from(b);
        self.pairs[bit >> 6] & (1 << (bit & 63)) != 0
    }
}

/// The pairs of bytes a match can start with, from the automaton itself: those after which it
/// is not dead, from any of its start states (they depend on the byte before: none, a line
/// feed, a carriage return, a word byte, another byte).
fn viable_pairs(dfa: &DFA, starts: &[StartAt; 256]) -> Option<Box<[u64; 1024]>> {
    let mut cache = dfa.create_cache();
    let mut pairs = Box::new([0u64; 1024]);
    for a in 0..=255u8 {
        let start_at = starts[usize::from(a)];
        if start_at == StartAt::Never {
            continue;
        }
        for prev in [None, Some(b'\n'), Some(b'\r'), Some(b'a'), Some(b' ')] {
            if start_at == StartAt::AfterNonWord && prev.is_some_and(is_word_byte) {
                continue;
            }
            let config = start::Config::new()
                .anchored(Anchored::Yes)
                .look_behind(prev);
            let sid = dfa.start_state(&mut cache, &config).ok()?;
            let after_a = dfa.next_state(&mut cache, sid, a).ok()?;
            if after_a.is_dead() {
                continue;
            }
            for b in 0..=255u8 {
                if !dfa.next_state(&mut cache, after_a, b).ok()?.is_dead() {
                    let bit = usize::from(a) << 8 | usize::from(b);
                    pairs[bit >> 6] |= 1 << (bit & 63);
                }
            }
        }
    }
    Some(pairs)
}

/// The bytes a match of `hir` can start with, and whether it can match the empty string (as
/// far as the first byte is concerned: then any byte can follow).
pub(super) fn first_bytes(hir: &Hir) -> (ByteSet, bool) {
    let mut set = ByteSet::EMPTY;
    let nullable = match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(lit) => match lit.0.first() {
            Some(&b) => {
                set.insert(b);
                false
            }
            None => true,
        },
        HirKind::Class(Class::Bytes(class)) => {
            for range in class.ranges() {
                for b in range.start()..=range.end() {
                    set.insert(b);
                }
            }
            false
        }
        HirKind::Class(Class::Unicode(class)) => {
            // UTF-8 lead bytes grow with the code point: a range's lead bytes are those from
            // its first character's to its last character's.
            let mut buf = [0; 4];
            for range in class.ranges() {
                let lo = range.start().encode_utf8(&mut buf).as_bytes()[0];
                let hi = range.end().encode_utf8(&mut buf).as_bytes()[0];
                for b in lo..=hi {
                    set.insert(b);
                }
            }
            false
        }
        HirKind::Repetition(rep) => {
            let (sub, nullable) = first_bytes(&rep.sub);
            set = sub;
            nullable || rep.min == 0
        }
        HirKind::Capture(cap) => return first_bytes(&cap.sub),
        HirKind::Concat(subs) => {
            let mut nullable = true;
            for sub in subs {
                let (first, sub_nullable) = first_bytes(sub);
                set.union(first);
                if !sub_nullable {
                    nullable = false;
                    break;
                }
            }
            nullable
        }
        HirKind::Alternation(subs) => {
            let mut nullable = false;
            for sub in subs {
                let (first, sub_nullable) = first_bytes(sub);
                set.union(first);
                nullable |= sub_nullable;
            }
            nullable
        }
    };
    (set, nullable)
}

/// What every match of a pattern needs before its first byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Boundary {
    None,
    /// `\b`: a non-word byte before, when the first byte is a word byte.
    Word,
    /// `\b{start}`, `\b{start-half}`: a non-word byte before.
    NonWordBefore,
}

/// The word-boundary assertion every match of `hir` starts with. (Unicode boundaries imply the
/// ASCII condition: an ASCII word byte is a Unicode word character.)
fn leading_boundary(hir: &Hir) -> Boundary {
    match hir.kind() {
        HirKind::Look(look) => match look {
            Look::WordStartAscii
            | Look::WordStartHalfAscii
            | Look::WordStartUnicode
            | Look::WordStartHalfUnicode => Boundary::NonWordBefore,
            Look::WordAscii | Look::WordUnicode => Boundary::Word,
            _ => Boundary::None,
        },
        HirKind::Capture(cap) => leading_boundary(&cap.sub),
        HirKind::Repetition(rep) if rep.min > 0 => leading_boundary(&rep.sub),
        HirKind::Concat(subs) => {
            // Zero-width assertions at the start all hold at the same place.
            let mut best = Boundary::None;
            for sub in subs {
                match sub.kind() {
                    HirKind::Look(_) => match leading_boundary(sub) {
                        Boundary::NonWordBefore => return Boundary::NonWordBefore,
                        Boundary::Word => best = Boundary::Word,
                        Boundary::None => {}
                    },
                    _ => {
                        if best == Boundary::None {
                            best = leading_boundary(sub);
                        }
                        break;
                    }
                }
            }
            best
        }
        HirKind::Alternation(subs) => {
            let mut all = Boundary::NonWordBefore;
            for sub in subs {
                match leading_boundary(sub) {
                    Boundary::None => return Boundary::None,
                    Boundary::Word => all = Boundary::Word,
                    Boundary::NonWordBefore => {}
                }
            }
            all
        }
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Repetition(_) => {
            Boundary::None
        }
    }
}
