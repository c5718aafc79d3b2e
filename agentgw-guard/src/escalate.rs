//! Escalated guards: what an `Escalate` guard with an `escalation` block does besides
//! rejecting. Without `blockPending` the rejection stands and the event is notified; with it
//! the request (or a buffered response) waits for the decision, and an allowed rule is
//! *approved*: the guards run again as if it had not matched.
//!
//! Approvals are passed to the guards the way audit tallies are ([`crate::audit::collect`]):
//! guards run synchronously, so [`with_approved`] sets the approved rules for the duration of
//! one guarded piece of work on this thread, and [`Guards::apply_to`](crate::guard::Guards)
//! skips their matches. Nothing is allocated or looked up when nothing is approved.

use std::cell::RefCell;

use agentgw_core::escalation::{Direction as EscalationDirection, EscalationEvent};
use agentgw_core::llm::Direction;

use crate::guard::{GuardId, LAYER};

thread_local! {
    /// The rules approved for the guarded work running on this thread: (guard index, rule).
    static APPROVED: RefCell<Vec<(GuardId, String)>> = const { RefCell::new(Vec::new()) };
}

/// A rule a decision allowed: the guard and the rule's name.
pub(crate) type Approval = (GuardId, String);

/// Runs `work` with `approved` rules skipped by the guards.
pub(crate) fn with_approved<R>(approved: &[Approval], work: impl FnOnce() -> R) -> R {
    /// Restores the enclosing approvals even when `work` panics.
    struct Restore(Vec<Approval>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = std::mem::take(&mut self.0);
            APPROVED.with_borrow_mut(|approved| *approved = previous);
        }
    }
    if approved.is_empty() {
        return work();
    }
    let _restore =
        Restore(APPROVED.with_borrow_mut(|current| std::mem::replace(current, approved.to_vec())));
    work()
}

/// Whether guard `guard` has an approved rule in the work running on this thread.
pub(crate) fn guard_has_approvals(guard: GuardId) -> bool {
    APPROVED.with_borrow(|approved| approved.iter().any(|(g, _)| *g == guard))
}

/// Whether `rule` of guard `guard` is approved.
pub(crate) fn is_approved(guard: GuardId, rule: &str) -> bool {
    APPROVED.with_borrow(|approved| approved.iter().any(|(g, r)| *g == guard && r == rule))
}

/// What an escalation event says about the request, captured when the request is seen (a
/// response guard escalates after the request is gone).
#[derive(Debug, Clone)]
pub(crate) struct Origin(Box<EscalationEvent>);

impl Origin {
    /// The origin of events about `req` and its response.
    pub(crate) fn of<B>(req: &http::Request<B>) -> Origin {
        Origin(Box::new(
            EscalationEvent::new(LAYER, String::new(), EscalationDirection::Request)
                .with_request(req),
        ))
    }

    /// A fresh event about `rule` of the guard `label`.
    pub(crate) fn event(&self, label: &str, rule: &str, direction: Direction) -> EscalationEvent {
        let direction = match direction {
            Direction::Request => EscalationDirection::Request,
            Direction::Response => EscalationDirection::Response,
        };
        let mut event = EscalationEvent::new(LAYER, rule, direction).with_guard(label);
        event.route = self.0.route.clone();
        event.method = self.0.method.clone();
        event.path = self.0.path.clone();
        event.caller = self.0.caller.clone();
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_are_scoped_to_the_work() {
        let (first, second) = (GuardId::Rules(0), GuardId::Rules(1));
        assert!(!is_approved(first, "injection"));
        with_approved(&[(first, "injection".to_owned())], || {
            assert!(is_approved(first, "injection"));
            assert!(guard_has_approvals(first));
            assert!(!is_approved(second, "injection"));
            assert!(!is_approved(GuardId::Classifier(0), "injection"));
            assert!(!is_approved(first, "other"));
            with_approved(&[(GuardId::Leak, "x".to_owned())], || {
                assert!(!is_approved(first, "injection"));
                assert!(guard_has_approvals(GuardId::Leak));
            });
            assert!(is_approved(first, "injection"), "restored");
        });
        assert!(!guard_has_approvals(first));
    }
}
