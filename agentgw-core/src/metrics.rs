//! Metric names, recorded through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Libraries only record: without an installed recorder every call is a no-op. The example
//! gateway installs a Prometheus exporter. Names keep the seed's `agentgateway_` prefix so its
//! alert rules work unchanged. Label values are bounded: layers label with rule names from their
//! configuration and fixed reasons, never with request data.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `agentgateway_requests_total` | counter | `route`, `status` |
//! | `agentgateway_request_duration_seconds` | histogram | `route` |
//! | `agentgateway_rejected_requests_total` | counter | `layer`, `reason` |
//! | `agentgateway_tool_calls_total` | counter | `tool`, `allowed` |
//! | `agentgateway_tool_validation_rejected_total` | counter | `rule` |
//! | `agentgateway_prompt_guard_matches_total` | counter | `guard`, `rule`, `action` |
//! | `agentgateway_audit_dropped_total` | counter | `sink` |
//!
//! # Example
//!
//! ```
//! use agentgw_core::metrics;
//!
//! metrics::describe();                      // once, at start-up (optional)
//! metrics::record_rejection("jwt", "expired"); // a no-op until a recorder is installed
//! assert_eq!(metrics::REJECTED_REQUESTS_TOTAL, "agentgateway_rejected_requests_total");
//! ```

/// Requests handled, by route and status.
pub const REQUESTS_TOTAL: &str = "agentgateway_requests_total";
/// Request latency in seconds, by route.
pub const REQUEST_DURATION_SECONDS: &str = "agentgateway_request_duration_seconds";
/// Requests denied by a layer, by layer and reason.
pub const REJECTED_REQUESTS_TOTAL: &str = "agentgateway_rejected_requests_total";
/// MCP tool calls, by tool and whether they were allowed.
pub const TOOL_CALLS_TOTAL: &str = "agentgateway_tool_calls_total";
/// Tool definitions rejected by validation, by rule.
pub const TOOL_VALIDATION_REJECTED_TOTAL: &str = "agentgateway_tool_validation_rejected_total";
/// Prompt guard rule matches, by guard, rule and action.
pub const PROMPT_GUARD_MATCHES_TOTAL: &str = "agentgateway_prompt_guard_matches_total";
/// Audit events that could not be delivered, by sink.
pub const AUDIT_DROPPED_TOTAL: &str = "agentgateway_audit_dropped_total";

/// Label names.
pub mod labels {
    /// The layer that decided.
    pub const LAYER: &str = "layer";
    /// A short reason or rule name.
    pub const REASON: &str = "reason";
    /// A rule name.
    pub const RULE: &str = "rule";
    /// An MCP tool name (bounded by the layer).
    pub const TOOL: &str = "tool";
    /// `"true"` or `"false"`.
    pub const ALLOWED: &str = "allowed";
    /// A route name.
    pub const ROUTE: &str = "route";
    /// An HTTP status code.
    pub const STATUS: &str = "status";
}

/// Registers descriptions of every metric with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(REQUESTS_TOTAL, "Requests handled, by route and status");
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Request latency, by route"
    );
    describe_counter!(
        REJECTED_REQUESTS_TOTAL,
        "Requests denied by a layer, by layer and reason"
    );
    describe_counter!(TOOL_CALLS_TOTAL, "MCP tool calls, by tool and allowed");
    describe_counter!(
        TOOL_VALIDATION_REJECTED_TOTAL,
        "Tool definitions rejected, by rule"
    );
    describe_counter!(
        PROMPT_GUARD_MATCHES_TOTAL,
        "Prompt guard matches, by guard, rule and action"
    );
    describe_counter!(AUDIT_DROPPED_TOTAL, "Audit events not delivered, by sink");
}

/// Counts a denial in `agentgateway_rejected_requests_total{layer, reason}`.
pub fn record_rejection(layer: &'static str, reason: &str) {
    metrics::counter!(
        REJECTED_REQUESTS_TOTAL,
        labels::LAYER => layer,
        labels::REASON => reason.to_owned()
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_counted_by_layer_and_reason() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            record_rejection("jwt", "expired");
            record_rejection("jwt", "expired");
            record_rejection("rbac", "rule-0");
        });
        type Labels = Vec<(String, String)>;
        let counts: Vec<(String, Labels, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match value {
                DebugValue::Counter(n) => Some((
                    key.key().name().to_owned(),
                    key.key()
                        .labels()
                        .map(|l| (l.key().to_owned(), l.value().to_owned()))
                        .collect(),
                    n,
                )),
                _ => None,
            })
            .collect();
        let jwt = counts
            .iter()
            .find(|(_, labels, _)| labels.contains(&("layer".into(), "jwt".into())))
            .expect("jwt counter");
        assert_eq!(jwt.0, REJECTED_REQUESTS_TOTAL);
        assert_eq!(jwt.2, 2);
        assert!(jwt.1.contains(&("reason".into(), "expired".into())));
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn seed_names_are_kept() {
        // The seed's alert rules query these exact names.
        assert_eq!(TOOL_CALLS_TOTAL, "agentgateway_tool_calls_total");
        assert_eq!(
            TOOL_VALIDATION_REJECTED_TOTAL,
            "agentgateway_tool_validation_rejected_total"
        );
        assert_eq!(
            REJECTED_REQUESTS_TOTAL,
            "agentgateway_rejected_requests_total"
        );
    }
}
