//! Every metric name and label set of agentgw, defined once, recorded through the
//! [`metrics`](https://docs.rs/metrics) facade.
//!
//! Libraries only record: without an installed recorder every call is a no-op. The example
//! gateway installs a Prometheus exporter and calls [`describe`] once at start-up. Names keep the
//! seed's `agentgateway_` prefix so its alert rules work unchanged. Label values are bounded:
//! layers label with rule names from their configuration and fixed reasons, never with request
//! data; tool names are bounded by the tools an upstream listed ([`OTHER_TOOL`] beyond that).
//!
//! | name | type | labels | recorded by |
//! |---|---|---|---|
//! | `agentgateway_requests_total` | counter | `route`, `status` | gateway |
//! | `agentgateway_request_duration_seconds` | histogram | `route` | gateway |
//! | `agentgateway_rejected_requests_total` | counter | `layer`, `reason` | every layer ([`Rejection::record`](crate::Rejection::record)) |
//! | `agentgateway_tool_calls_total` | counter | `tool`, `allowed` | every MCP route (gateway), tool security |
//! | `agentgateway_tool_validation_rejected_total` | counter | `rule` | tool security |
//! | `agentgateway_prompt_guard_matches_total` | counter | `guard`, `rule`, `action` | prompt guard |
//! | `agentgateway_rbac_rule_errors_total` | counter | `rule` | CEL RBAC |
//! | `agentgateway_ext_auth_checks_total` | counter | `protocol`, `outcome`, `reason` | ext_authz |
//! | `agentgateway_ext_auth_check_duration_seconds` | histogram | `protocol` | ext_authz |
//! | `agentgateway_tls_handshakes_total` | counter | `result`, `version`, `resumed` | TLS |
//! | `agentgateway_tls_certificate_reloads_total` | counter | `role`, `result` | TLS |
//! | `agentgateway_tls_certificate_not_after_seconds` | gauge | `role` | TLS |
//! | `agentgateway_audit_dropped_total` | counter | `sink` | audit sinks |
//! | `agentgateway_escalations_total` | counter | `layer`, `rule`, `outcome` | escalations ([`escalation`](crate::escalation)) |
//!
//! [`ALL`] lists them with their type, labels and description, for a caller that checks an
//! exporter's output or generates dashboards.
//!
//! # Example
//!
//! ```
//! use agentgw_core::metrics;
//!
//! metrics::describe();                      // once, at start-up (optional)
//! metrics::record_rejection("jwt", "expired"); // a no-op until a recorder is installed
//! assert_eq!(metrics::REJECTED_REQUESTS_TOTAL, "agentgateway_rejected_requests_total");
//! assert!(metrics::ALL.iter().any(|m| m.name == metrics::TOOL_CALLS_TOTAL));
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
/// RBAC rules that failed to evaluate (and counted as not matching), by rule.
pub const RBAC_RULE_ERRORS_TOTAL: &str = "agentgateway_rbac_rule_errors_total";
/// External authorization checks, by protocol (`grpc`, `http`), outcome and reason.
pub const EXT_AUTH_CHECKS_TOTAL: &str = "agentgateway_ext_auth_checks_total";
/// Latency of calls to the external authorization service in seconds, by protocol.
pub const EXT_AUTH_CHECK_DURATION_SECONDS: &str = "agentgateway_ext_auth_check_duration_seconds";
/// Server-side TLS handshakes, by `result` (`ok`, `handshake`, `timeout`) and, for `ok`,
/// `version` (`1.2`, `1.3`) and `resumed` (`true`, `false`).
pub const TLS_HANDSHAKES_TOTAL: &str = "agentgateway_tls_handshakes_total";
/// Failed `accept` calls on a listener (out of file descriptors and the like), which back off.
pub const ACCEPT_ERRORS_TOTAL: &str = "agentgateway_accept_errors_total";
/// Certificate reloads, by `role` (`server`, `client`, `client_ca`) and `result` (`reloaded`,
/// `refused`).
pub const TLS_CERTIFICATE_RELOADS_TOTAL: &str = "agentgateway_tls_certificate_reloads_total";
/// The `notAfter` of the certificate in service, in unix seconds, by `role`.
pub const TLS_CERTIFICATE_NOT_AFTER_SECONDS: &str =
    "agentgateway_tls_certificate_not_after_seconds";
/// Audit events that could not be delivered, by sink.
pub const AUDIT_DROPPED_TOTAL: &str = "agentgateway_audit_dropped_total";
/// Escalations (`action: Escalate` rules that fired), by layer, rule and `outcome`
/// (`notified`, `allowed`, `denied`, `timeout`, `error`, `dropped`).
pub const ESCALATIONS_TOTAL: &str = "agentgateway_escalations_total";

/// The `tool` label of a tool the upstream did not list (the label set stays bounded).
pub const OTHER_TOOL: &str = "other";

/// Label names.
pub mod labels {
    /// The layer that decided.
    pub const LAYER: &str = "layer";
    /// A short reason or rule name.
    pub const REASON: &str = "reason";
    /// A rule name.
    pub const RULE: &str = "rule";
    /// An MCP tool name (bounded by the listed tools).
    pub const TOOL: &str = "tool";
    /// `"true"` or `"false"`.
    pub const ALLOWED: &str = "allowed";
    /// A route name.
    pub const ROUTE: &str = "route";
    /// An HTTP status code.
    pub const STATUS: &str = "status";
    /// A prompt guard's name.
    pub const GUARD: &str = "guard";
    /// What a rule did (`reject`, `mask`).
    pub const ACTION: &str = "action";
    /// A wire protocol (`grpc`, `http`).
    pub const PROTOCOL: &str = "protocol";
    /// How a check ended (ext_authz: `allowed`, `denied`, `failed_open`, `failed_closed`;
    /// escalations: `notified`, `allowed`, `denied`, `timeout`, `error`, `dropped`).
    pub const OUTCOME: &str = "outcome";
    /// A result (`ok`, `reloaded`, `refused`, ...).
    pub const RESULT: &str = "result";
    /// A TLS protocol version.
    pub const VERSION: &str = "version";
    /// Whether a TLS session was resumed.
    pub const RESUMED: &str = "resumed";
    /// A certificate's role (`server`, `client`, `client_ca`).
    pub const ROLE: &str = "role";
    /// An audit sink (`stdout`, `syslog`, `webhook`).
    pub const SINK: &str = "sink";
}

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A monotonic counter.
    Counter,
    /// A histogram.
    Histogram,
    /// A gauge.
    Gauge,
}

/// One metric: its name, kind, label names and description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metric {
    /// The metric's name.
    pub name: &'static str,
    /// Counter, histogram or gauge.
    pub kind: Kind,
    /// The label names it may carry.
    pub labels: &'static [&'static str],
    /// What it counts.
    pub description: &'static str,
}

const fn metric(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    description: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        description,
    }
}

/// Every metric agentgw records.
pub const ALL: &[Metric] = &[
    metric(
        REQUESTS_TOTAL,
        Kind::Counter,
        &[labels::ROUTE, labels::STATUS],
        "Requests handled, by route and status",
    ),
    metric(
        REQUEST_DURATION_SECONDS,
        Kind::Histogram,
        &[labels::ROUTE],
        "Request latency in seconds, by route",
    ),
    metric(
        REJECTED_REQUESTS_TOTAL,
        Kind::Counter,
        &[labels::LAYER, labels::REASON],
        "Requests denied by a layer, by layer and reason",
    ),
    metric(
        TOOL_CALLS_TOTAL,
        Kind::Counter,
        &[labels::TOOL, labels::ALLOWED],
        "MCP tool calls, by tool and whether they were allowed",
    ),
    metric(
        TOOL_VALIDATION_REJECTED_TOTAL,
        Kind::Counter,
        &[labels::RULE],
        "Tool definitions rejected by validation, by rule",
    ),
    metric(
        PROMPT_GUARD_MATCHES_TOTAL,
        Kind::Counter,
        &[labels::GUARD, labels::RULE, labels::ACTION],
        "Prompt guard matches, by guard, rule and action",
    ),
    metric(
        RBAC_RULE_ERRORS_TOTAL,
        Kind::Counter,
        &[labels::RULE],
        "RBAC rules that failed to evaluate, by rule",
    ),
    metric(
        EXT_AUTH_CHECKS_TOTAL,
        Kind::Counter,
        &[labels::PROTOCOL, labels::OUTCOME, labels::REASON],
        "External authorization checks, by protocol, outcome and reason",
    ),
    metric(
        EXT_AUTH_CHECK_DURATION_SECONDS,
        Kind::Histogram,
        &[labels::PROTOCOL],
        "Latency of external authorization calls in seconds, by protocol",
    ),
    metric(
        TLS_HANDSHAKES_TOTAL,
        Kind::Counter,
        &[labels::RESULT, labels::VERSION, labels::RESUMED],
        "Server-side TLS handshakes, by result, version and resumption",
    ),
    metric(
        ACCEPT_ERRORS_TOTAL,
        Kind::Counter,
        &[],
        "Failed accept calls on a listener (they back off)",
    ),
    metric(
        TLS_CERTIFICATE_RELOADS_TOTAL,
        Kind::Counter,
        &[labels::ROLE, labels::RESULT],
        "Certificate reloads, by role and result",
    ),
    metric(
        TLS_CERTIFICATE_NOT_AFTER_SECONDS,
        Kind::Gauge,
        &[labels::ROLE],
        "The notAfter of the certificate in service, in unix seconds, by role",
    ),
    metric(
        AUDIT_DROPPED_TOTAL,
        Kind::Counter,
        &[labels::SINK],
        "Audit events not delivered, by sink",
    ),
    metric(
        ESCALATIONS_TOTAL,
        Kind::Counter,
        &[labels::LAYER, labels::RULE, labels::OUTCOME],
        "Escalations, by layer, rule and outcome (notified, allowed, denied, timeout, error, dropped)",
    ),
];

/// Registers the description of every metric in [`ALL`] with the installed recorder.
pub fn describe() {
    for m in ALL {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.description),
            Kind::Histogram => {
                metrics::describe_histogram!(m.name, metrics::Unit::Seconds, m.description);
            }
            Kind::Gauge => metrics::describe_gauge!(m.name, m.description),
        }
    }
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

/// Counts an MCP tool call in `agentgateway_tool_calls_total{tool, allowed}`; `tool` must
/// already be bounded (a listed tool's name, or [`OTHER_TOOL`]).
pub fn record_tool_call(tool: &str, allowed: bool) {
    metrics::counter!(
        TOOL_CALLS_TOTAL,
        labels::TOOL => tool.to_owned(),
        labels::ALLOWED => if allowed { "true" } else { "false" }
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
    fn every_name_is_listed_once() {
        let mut names: Vec<_> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(names.iter().all(|n| n.starts_with("agentgateway_")));
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        metrics::with_local_recorder(&recorder, describe);
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
