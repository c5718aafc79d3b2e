//! The audit events of the layer: one `ext_authz` event per check (allowed, denied, failed
//! open or closed), with the metric's `outcome`, the denial's status and whether the decision
//! came from the cache.

use agentgw_core::Attributes;
use agentgw_core::audit::{AuditEvent, AuditSink, Decision};

use super::LAYER;
use super::check::Outcome;

/// Records the outcome of one check in `audit`, if set (nothing is built without a sink).
/// `failure` is why the check failed, for the outcome of a failure (failed open or closed).
pub(crate) fn audit_outcome(
    audit: Option<&dyn AuditSink>,
    parts: &http::request::Parts,
    outcome: &Outcome,
    failure: Option<&'static str>,
    cached: bool,
) {
    let Some(sink) = audit else {
        return;
    };
    let event = match (outcome, failure) {
        (Outcome::Allow(_), _) => event(parts, Decision::Allow, "allowed", cached),
        (Outcome::FailOpen, failure) => event(parts, Decision::Allow, "failed_open", cached)
            .with_rule(failure.unwrap_or("error")),
        (Outcome::Reject(rejection), None) => rejected(parts, rejection, "denied", cached),
        (Outcome::Reject(rejection), Some(_)) => {
            rejected(parts, rejection, "failed_closed", cached)
        }
    };
    sink.record(&event);
}

/// An `ext_authz` event with the metric's `outcome` label.
fn event(
    parts: &http::request::Parts,
    decision: Decision,
    outcome: &str,
    cached: bool,
) -> AuditEvent {
    AuditEvent::new(LAYER, "ext_authz", decision)
        .with_attributes(&Attributes::from_parts(parts))
        .with_detail("outcome", outcome)
        .with_detail("cached", cached)
}

/// The event of a check that ends in `rejection`: its reason and status.
pub(super) fn rejected(
    parts: &http::request::Parts,
    rejection: &agentgw_core::Rejection,
    outcome: &str,
    cached: bool,
) -> AuditEvent {
    event(parts, Decision::Deny, outcome, cached)
        .with_rule(rejection.reason())
        .with_detail("status", rejection.status().as_u16())
}
