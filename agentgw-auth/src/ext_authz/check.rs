//! The check every request goes through: the decision cache, the call to the service within
//! its timeout, and what the answer (or its absence) means for the request.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use http::request::Parts;
use tracing::field::Empty;
use tracing::{Instrument as _, Span};

use agentgw_core::Rejection;
use agentgw_core::audit::AuditSink;

use super::LAYER;
use super::audit::audit_outcome;
use super::cache::DecisionCache;
use super::decision::{Allow, CheckError, Verdict};
use super::grpc::GrpcClient;
use super::http_client::HttpClient;
use super::input::BodyPrefix;
use super::metrics::{self, ProtocolMetrics};

/// A deadline that never comes, for timeouts too large to add to an instant (as `tokio` does).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The protocol client.
#[allow(clippy::large_enum_variant, reason = "one per layer, behind an Arc")]
pub(crate) enum Client {
    Grpc(GrpcClient),
    Http(HttpClient),
}

impl Client {
    fn protocol(&self) -> &'static str {
        match self {
            Client::Grpc(_) => "grpc",
            Client::Http(_) => "http",
        }
    }

    /// The metrics of this protocol's common path.
    fn metrics(&self) -> &'static ProtocolMetrics {
        match self {
            Client::Grpc(_) => &metrics::GRPC,
            Client::Http(_) => &metrics::HTTP,
        }
    }
}

/// What the layer decided for one request.
#[allow(
    clippy::large_enum_variant,
    reason = "a short-lived return value, moved once"
)]
pub(crate) enum Outcome {
    /// Forward, with these changes.
    Allow(Arc<Allow>),
    /// Forward unchanged: the service failed and `failureModeAllow` is set.
    FailOpen,
    /// Answer with this denial.
    Reject(Rejection),
}

/// Everything a layer's services share.
pub(crate) struct Shared {
    /// The service's scheme and authority, for health reports.
    pub(super) target: String,
    /// Whether the last call reached the service and got a decision.
    pub(super) state: agentgw_core::health::DependencyCell,
    pub(super) client: Client,
    pub(super) timeout: Duration,
    pub(super) failure_mode_allow: bool,
    pub(super) status_on_error: StatusCode,
    pub(super) max_request_bytes: Option<usize>,
    pub(super) cache: Option<DecisionCache>,
}

impl Shared {
    /// Whether the body must be buffered before the check.
    pub(crate) fn needs_body(&self) -> bool {
        self.max_request_bytes.is_some()
    }

    /// Checks the request: from the cache when it holds a decision, else by calling the
    /// service (bounded by the timeout). Counts, traces and audits the outcome.
    pub(crate) async fn decide(&self, parts: &Parts, audit: Option<&dyn AuditSink>) -> Outcome {
        let protocol = self.client.protocol();
        let body = self
            .max_request_bytes
            .and_then(|max| BodyPrefix::of(parts, max));
        let span = tracing::debug_span!(
            "ext_authz",
            protocol,
            cached = Empty,
            outcome = Empty,
            reason = Empty,
            latency_us = Empty
        );
        let key = self.cache.as_ref().map(|c| c.key(parts, body.as_ref()));
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(verdict) = cache.get(key)
        {
            span.record("cached", true);
            let _entered = span.enter();
            let outcome = self.settle(verdict, &span);
            audit_outcome(audit, parts, &outcome, None, true);
            return outcome;
        }
        let started = Instant::now();
        // One clock read for both the latency and the deadline (what `timeout` would read again).
        let deadline = started
            .checked_add(self.timeout)
            .unwrap_or_else(|| started + FAR_FUTURE);
        let call = async {
            match &self.client {
                Client::Grpc(grpc) => {
                    grpc.check(parts, body.as_ref(), self.timeout, self.status_on_error)
                        .await
                }
                Client::Http(http) => http.check(parts, body.as_ref()).await,
            }
        };
        let result = tokio::time::timeout_at(deadline.into(), call.instrument(span.clone()))
            .await
            .unwrap_or(Err(CheckError::Timeout(self.timeout)));
        let latency = started.elapsed();
        self.state.set(if result.is_ok() {
            agentgw_core::health::DependencyState::Up
        } else {
            agentgw_core::health::DependencyState::Down
        });
        self.client.metrics().latency(latency.as_secs_f64());
        span.record("latency_us", latency.as_micros() as u64);
        let _entered = span.enter();
        let (outcome, failure) = match result {
            Ok(verdict) => {
                if let (Some(cache), Some(key)) = (&self.cache, key) {
                    cache.insert(key, verdict.clone());
                }
                (self.settle(verdict, &span), None)
            }
            Err(err) => {
                let reason = err.reason();
                (self.fail(err, &span), Some(reason))
            }
        };
        audit_outcome(audit, parts, &outcome, failure, false);
        outcome
    }

    fn settle(&self, verdict: Verdict, span: &Span) -> Outcome {
        let protocol = self.client.protocol();
        match verdict {
            Verdict::Allow(allow) => {
                self.client.metrics().allowed();
                span.record("outcome", "allowed");
                Outcome::Allow(allow)
            }
            Verdict::Deny(deny) => {
                metrics::count(protocol, "denied", "denied");
                span.record("outcome", "denied");
                tracing::debug!(
                    status = deny.status.as_u16(),
                    "ext_authz denied the request"
                );
                Outcome::Reject(deny.rejection("denied"))
            }
        }
    }

    /// The denial for a decision whose changes cannot be applied (`None`: forward unchanged).
    pub(crate) fn fail_after_decision(&self, err: CheckError) -> Option<Rejection> {
        match self.fail(err, &Span::current()) {
            Outcome::Reject(rejection) => Some(rejection),
            Outcome::Allow(_) | Outcome::FailOpen => None,
        }
    }

    fn fail(&self, err: CheckError, span: &Span) -> Outcome {
        let protocol = self.client.protocol();
        let reason = err.reason();
        span.record("reason", reason);
        if self.failure_mode_allow {
            metrics::count(protocol, "failed_open", reason);
            span.record("outcome", "failed_open");
            tracing::warn!(error = %err, "ext_authz check failed; forwarding (failureModeAllow)");
            return Outcome::FailOpen;
        }
        metrics::count(protocol, "failed_closed", reason);
        span.record("outcome", "failed_closed");
        tracing::warn!(error = %err, "ext_authz check failed; denying");
        match err {
            CheckError::Service {
                response: Some(deny),
                ..
            } => Outcome::Reject(deny.rejection(reason)),
            _ => Outcome::Reject(Rejection::new(self.status_on_error, LAYER, reason)),
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match &self.client {
            Client::Grpc(grpc) => grpc.uri().to_string(),
            Client::Http(http) => http.base().to_owned(),
        };
        f.debug_struct("ExtAuth")
            .field("protocol", &self.client.protocol())
            .field("backend", &backend)
            .field("timeout", &self.timeout)
            .field("failure_mode_allow", &self.failure_mode_allow)
            .field("status_on_error", &self.status_on_error)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("cache", &self.cache.is_some())
            .finish()
    }
}
