//! What every check records: [`EXT_AUTH_CHECKS_TOTAL`] by protocol, outcome and reason, and
//! [`EXT_AUTH_CHECK_DURATION_SECONDS`] by protocol (names and labels defined once, in
//! [`agentgw_core::metrics`]).

use agentgw_core::metrics::{EXT_AUTH_CHECK_DURATION_SECONDS, EXT_AUTH_CHECKS_TOTAL, labels};
use metrics::{Key, Label, Metadata};

/// The metrics of one protocol's common path (an allowed check and its latency), with keys
/// built at compile time: `metrics::counter!` with label values that are not literals
/// allocates the key's labels on every call.
pub(super) struct ProtocolMetrics {
    allowed: Key,
    duration: Key,
}

macro_rules! protocol_metrics {
    ($protocol:literal) => {{
        static ALLOWED: [Label; 3] = [
            Label::from_static_parts(labels::PROTOCOL, $protocol),
            Label::from_static_parts(labels::OUTCOME, "allowed"),
            Label::from_static_parts(labels::REASON, "ok"),
        ];
        static PROTOCOL: [Label; 1] = [Label::from_static_parts(labels::PROTOCOL, $protocol)];
        ProtocolMetrics {
            allowed: Key::from_static_parts(EXT_AUTH_CHECKS_TOTAL, &ALLOWED),
            duration: Key::from_static_parts(EXT_AUTH_CHECK_DURATION_SECONDS, &PROTOCOL),
        }
    }};
}

/// The gRPC protocol's metrics.
pub(super) static GRPC: ProtocolMetrics = protocol_metrics!("grpc");
/// The HTTP protocol's metrics.
pub(super) static HTTP: ProtocolMetrics = protocol_metrics!("http");

/// What `metrics::counter!` would pass as metadata from this module.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl ProtocolMetrics {
    /// Counts an allowed check.
    pub(super) fn allowed(&self) {
        metrics::with_recorder(|recorder| recorder.register_counter(&self.allowed, &METADATA))
            .increment(1);
    }

    /// Records the latency of one call to the service.
    pub(super) fn latency(&self, seconds: f64) {
        metrics::with_recorder(|recorder| recorder.register_histogram(&self.duration, &METADATA))
            .record(seconds);
    }
}

/// Counts a check that did not simply allow: `outcome` is `denied`, `failed_open` or
/// `failed_closed`, `reason` the short reason (`denied`, `timeout`, `unavailable`, ...).
pub(super) fn count(protocol: &'static str, outcome: &'static str, reason: &'static str) {
    metrics::counter!(
        EXT_AUTH_CHECKS_TOTAL,
        labels::PROTOCOL => protocol,
        labels::OUTCOME => outcome,
        labels::REASON => reason
    )
    .increment(1);
}
