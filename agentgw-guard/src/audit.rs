//! Audit events of the guards: which rules rejected or masked, and how often; never the text
//! they matched.
//!
//! Every match already passes through one place (`Guard::record`, which counts it in
//! `agentgateway_prompt_guard_matches_total`). While a layer with an audit sink applies its
//! guards, [`collect`] gathers those matches in a [`Tally`] on the current thread: guards run
//! synchronously (a body, or one event of a stream, at a time), so the tally holds the matches
//! of exactly that work. Without a sink nothing is gathered and nothing is allocated.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use agentgw_core::BoxError;
use agentgw_core::audit::{AuditEvent, AuditSink, Decision, rfc3339};
use agentgw_core::llm::Direction;
use agentgw_core::sse::Transform;
use serde_json::{Map, Value};

use crate::config::Action;
use crate::guard::LAYER;

/// The `event` of every prompt guard audit event.
const EVENT: &str = "prompt_guard";

thread_local! {
    /// The tally of the [`collect`] running on this thread, if any.
    static COLLECTING: RefCell<Option<Tally>> = const { RefCell::new(None) };
}

/// The matches of some guarded work, by rule name, in the order rules first matched.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    matches: Vec<(String, u64)>,
    /// The rule of a `Reject` (or `Escalate`) guard that matched.
    rejected: Option<String>,
    /// An `Escalate` guard matched: the event asks for a follow-up.
    escalate: bool,
    /// The highest prompt-injection classifier score of the work, if a classifier scored it.
    classifier_score: Option<f32>,
}

impl Tally {
    fn add(&mut self, rule: &str, action: Action) {
        match self.matches.iter_mut().find(|(name, _)| name == rule) {
            Some((_, count)) => *count += 1,
            None => self.matches.push((rule.to_owned(), 1)),
        }
        if action.denies() && self.rejected.is_none() {
            self.rejected = Some(rule.to_owned());
        }
        self.escalate |= action == Action::Escalate;
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        for (rule, count) in other.matches {
            match self.matches.iter_mut().find(|(name, _)| *name == rule) {
                Some((_, total)) => *total += count,
                None => self.matches.push((rule, count)),
            }
        }
        if self.rejected.is_none() {
            self.rejected = other.rejected;
        }
        self.escalate |= other.escalate;
        if let Some(score) = other.classifier_score {
            self.add_score(score);
        }
    }

    fn add_score(&mut self, score: f32) {
        self.classifier_score = Some(self.classifier_score.map_or(score, |s| s.max(score)));
    }

    fn is_empty(&self) -> bool {
        self.matches.is_empty()
    }
}

/// Counts one match of `rule`, by a guard whose action is `action`, in the tally being
/// collected on this thread, if any.
pub(crate) fn count(rule: &str, action: Action) {
    COLLECTING.with_borrow_mut(|tally| {
        if let Some(tally) = tally {
            tally.add(rule, action);
        }
    });
}

/// Notes a prompt-injection classifier score in the tally being collected on this thread, if
/// any: the event carries the highest.
pub(crate) fn score(score: f32) {
    COLLECTING.with_borrow_mut(|tally| {
        if let Some(tally) = tally {
            tally.add_score(score);
        }
    });
}

/// Runs `work`, gathering the matches it counts when `on`; the tally is empty otherwise.
pub(crate) fn collect<R>(on: bool, work: impl FnOnce() -> R) -> (R, Tally) {
    /// Restores the enclosing collection (if any) even when `work` panics.
    struct Restore(Option<Tally>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            COLLECTING.with_borrow_mut(|tally| *tally = previous);
        }
    }

    if !on {
        return (work(), Tally::default());
    }
    let restore = Restore(COLLECTING.with_borrow_mut(|tally| tally.replace(Tally::default())));
    let result = work();
    let tally = COLLECTING.with_borrow_mut(Option::take).unwrap_or_default();
    drop(restore);
    (result, tally)
}

/// Where the events of one request go, and what they say about the request. One pointer wide,
/// so that a response future or stream without a sink carries no more than a `None`.
pub(crate) struct Audit(Box<AuditTo>);

struct AuditTo {
    sink: Arc<dyn AuditSink>,
    /// Method, path, subject and tool of the request, stamped when an event is recorded.
    request: AuditEvent,
}

impl Audit {
    /// The audit of `req` into `sink`.
    pub(crate) fn of<B>(sink: &Arc<dyn AuditSink>, req: &http::Request<B>) -> Audit {
        Audit(Box::new(AuditTo {
            sink: Arc::clone(sink),
            request: AuditEvent::new(LAYER, EVENT, Decision::Modify)
                .with_attributes(&agentgw_core::Attributes::new(req)),
        }))
    }

    /// The audit of the response to `req`, when there is a sink and the response is
    /// `inspected` by some guard.
    pub(crate) fn of_response<B>(
        sink: Option<&Arc<dyn AuditSink>>,
        inspected: bool,
        req: &http::Request<B>,
    ) -> Option<Audit> {
        sink.filter(|_| inspected).map(|sink| Audit::of(sink, req))
    }

    /// Records a rejection by `rule` (the matches of `tally` as details).
    pub(crate) fn rejected(&self, direction: Direction, rule: &str, tally: &Tally) {
        self.record(direction, Decision::Deny, rule, tally);
    }

    /// Records that masks rewrote the text, unless `tally` holds no match.
    pub(crate) fn masked(&self, direction: Direction, tally: &Tally) {
        if let Some((rule, _)) = tally.matches.first() {
            self.record(direction, Decision::Modify, rule, tally);
        }
    }

    fn record(&self, direction: Direction, decision: Decision, rule: &str, tally: &Tally) {
        let mut event = self.0.request.clone();
        event.timestamp = rfc3339(SystemTime::now());
        event.decision = decision;
        event.rule = Some(rule.to_owned());
        let matches: Map<String, Value> = tally
            .matches
            .iter()
            .map(|(rule, count)| (rule.clone(), Value::from(*count)))
            .collect();
        let direction = match direction {
            Direction::Request => "request",
            Direction::Response => "response",
        };
        let mut event = event
            .with_detail("direction", direction)
            .with_detail("matches", matches);
        if tally.escalate {
            event = event.with_detail("escalate", true);
        }
        if let Some(score) = tally.classifier_score {
            // Rounded: a score, not a fingerprint of the text.
            let score = (f64::from(score) * 1000.0).round() / 1000.0;
            event = event.with_detail("classifierScore", score);
        }
        self.0.sink.record(&event);
    }
}

/// A stream transform whose masks and rejections are audited: one event per response, when
/// the stream ends, is cut, or is dropped (a client that went away).
pub(crate) struct Audited<T> {
    inner: T,
    audit: Option<Box<StreamAudit>>,
}

struct StreamAudit {
    audit: Audit,
    tally: Tally,
    recorded: bool,
}

impl StreamAudit {
    fn record(&mut self) {
        if self.recorded || self.tally.is_empty() {
            return;
        }
        self.recorded = true;
        match &self.tally.rejected {
            Some(rule) => self.audit.rejected(Direction::Response, rule, &self.tally),
            None => self.audit.masked(Direction::Response, &self.tally),
        }
    }
}

impl Drop for StreamAudit {
    fn drop(&mut self) {
        self.record();
    }
}

impl<T> Audited<T> {
    /// `inner`, audited into `audit` when there is one.
    pub(crate) fn new(inner: T, audit: Option<Audit>) -> Self {
        Audited {
            inner,
            audit: audit.map(|audit| {
                Box::new(StreamAudit {
                    audit,
                    tally: Tally::default(),
                    recorded: false,
                })
            }),
        }
    }
}

impl<F, T: Transform<F>> Transform<F> for Audited<T> {
    fn frame(&mut self, frame: F, out: &mut Vec<F>) -> Result<(), BoxError> {
        let Some(audit) = &mut self.audit else {
            return self.inner.frame(frame, out);
        };
        let (result, tally) = collect(true, || self.inner.frame(frame, out));
        audit.tally.merge(tally);
        if audit.tally.rejected.is_some() {
            audit.record();
        }
        result
    }

    fn finish(&mut self, out: &mut Vec<F>) -> Result<(), BoxError> {
        let Some(audit) = &mut self.audit else {
            return self.inner.finish(out);
        };
        let (result, tally) = collect(true, || self.inner.finish(out));
        audit.tally.merge(tally);
        audit.record();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_nest_and_count_per_rule() {
        count("EMAIL", Action::Mask);
        let ((), outer) = collect(true, || {
            count("EMAIL", Action::Mask);
            let ((), inner) = collect(true, || count("SSN", Action::Escalate));
            assert_eq!(inner.matches, [("SSN".to_owned(), 1)]);
            assert_eq!(inner.rejected.as_deref(), Some("SSN"));
            assert!(inner.escalate);
            count("EMAIL", Action::Mask);
        });
        assert_eq!(outer.matches, [("EMAIL".to_owned(), 2)]);
        assert!(outer.rejected.is_none());
        assert!(!outer.escalate);
        let ((), off) = collect(false, || count("EMAIL", Action::Mask));
        assert!(off.is_empty());
    }
}
