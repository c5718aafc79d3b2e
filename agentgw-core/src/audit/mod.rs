//! Audit events, the one schema every layer writes, and where the events go.
//!
//! Layers describe what they decided as an [`AuditEvent`] and hand it to an [`AuditSink`]. The
//! sink is a trait with a blanket implementation for closures, so any function can be one.
//! Sinks shipped here:
//!
//! | sink | destination `type` | cargo feature |
//! |---|---|---|
//! | [`JsonLinesSink`] | `stdout`: one JSON object per line | always |
//! | [`MemorySink`] | none (tests and examples) | always |
//! | `SyslogSink` | `syslog`: RFC 5424 over UDP or TCP (RFC 6587 octet counting) | `syslog` |
//! | `WebhookSink` | `webhook`: batched JSON-array POSTs (reqwest) | `webhook` |
//!
//! Remote sinks queue events in memory (bounded) and deliver them from a background task on
//! the Tokio runtime that records the first event: `record` never blocks traffic. Events that do
//! not fit, cannot be sent, or cannot be written are counted in
//! `agentgateway_audit_dropped_total{sink}` (`json_lines`, `syslog`, `webhook`).
//!
//! [`AuditDestination`] is the configuration of one destination (camelCase, as in
//! `toolSecurity.audit.destination`), [`sinks`] turns a list of them into one sink, and
//! [`AuditConfig`] is the block that holds the list (the gateway's `audit.destinations`), so
//! an embedder, the example gateway and tool security build sinks the same way.
//!
//! Every layer takes its sink with one setter, `audit_sink(Arc<dyn AuditSink>)`. Without it a
//! layer records nothing, and building an event costs nothing on the request path.
//!
//! # Event schema
//!
//! One JSON object per event; empty fields are left out.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `timestamp` | string | when it was decided, RFC 3339 in UTC with milliseconds |
//! | `layer` | string | the layer that decided: `api_key`, `jwt`, `ext_auth`, `rbac`, `prompt_guard`, `toolsec` |
//! | `event` | string | what was decided about (per layer, below) |
//! | `decision` | string | `allow`, `deny`, or `modify` (let through after a change: masked, removed, cut) |
//! | `rule` | string | the rule or reason, the same label the layer's rejection metric carries |
//! | `subject` | string | the caller: JWT `sub`, else the API key's name, else the client certificate's SPIFFE ID or common name |
//! | `tool` | string | the MCP tool, for a `tools/call` |
//! | `method` | string | the request's HTTP method |
//! | `path` | string | the request's path, never its query |
//! | `latency_ms` | number | how long the decided operation took |
//! | `details` | object | what the layer adds (per layer, below) |
//!
//! | layer | `event` | `decision` | `rule` | `details` |
//! |---|---|---|---|---|
//! | `api_key` | `authentication` | `deny` | `missing_api_key`, `malformed`, `multiple_keys`, `unknown_key`, `expired_key` | none |
//! | `jwt` | `authentication` | `deny` | `missing_token` or the token's fault (`expired`, `invalid_signature`, `unknown_issuer`, ...) | none |
//! | `ext_auth` | `ext_authz` | `allow` (allowed, or failed open) / `deny` | `denied`, or why the check failed (`timeout`, `unavailable`, ...) | `outcome` (`allowed`, `denied`, `failed_open`, `failed_closed`), `status` (of a denial), `cached` (the decision came from the cache) |
//! | `rbac` | `authorization` | `deny` | the rule's name (`jsonrpc_batch`, `jsonrpc_method_case` for MCP framing) | none |
//! | `prompt_guard` | `prompt_guard` | `deny` (rejected) / `modify` (masked) | the rejecting rule, or the first rule that masked | `direction` (`request`, `response`), `matches` (rule name to number of matches) |
//! | `toolsec` | `tool_call`, `tool_validation`, `tool_list` | `allow` / `deny` / `modify` | the rule | see `agentgw_toolsec::audit` |
//! | `prompt_guard`, `toolsec` | `escalation` | `allow` (the webhook allowed a pending request) / `deny` | the escalated rule | `escalationId`, `outcome` (`notified`, `allowed`, `denied`, `timeout`, `error`, `dropped`), `direction`, `route`, `guard`; see [`escalation`](crate::escalation) |
//!
//! An event never holds the matched text, a credential, a token or a secret: layers record rule
//! *names*, counts and, where an operator asked for arguments or results, masked values.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use agentgw_core::audit::{AuditDestination, AuditEvent, AuditSink, Decision, MemorySink, sinks};
//!
//! let sink = MemorySink::default();
//! let event = AuditEvent::new("toolsec", "tool_call", Decision::Deny)
//!     .with_rule("not-allowlisted")
//!     .with_tool("kubectl-delete")
//!     .with_subject("alice");
//! sink.record(&event);
//!
//! let events = sink.events();
//! assert_eq!(events[0].tool.as_deref(), Some("kubectl-delete"));
//! let line = events[0].to_json_line();
//! assert!(line.contains(r#""decision":"deny""#));
//!
//! // From configuration: every destination of the list gets every event.
//! let destinations: Vec<AuditDestination> =
//!     serde_json::from_str(r#"[{"type": "stdout"}]"#).unwrap();
//! let stdout: Arc<dyn AuditSink> = sinks(&destinations).unwrap();
//! # let _ = stdout;
//! ```

mod destination;
#[cfg(any(feature = "syslog", feature = "webhook"))]
mod queue;
#[cfg(feature = "syslog")]
mod syslog;
#[cfg(feature = "webhook")]
mod webhook;

pub use destination::{
    AuditConfig, AuditDestination, DestinationError, DestinationKind, SyslogProtocol, sinks,
};
#[cfg(feature = "syslog")]
#[cfg_attr(docsrs, doc(cfg(feature = "syslog")))]
pub use syslog::{SyslogOptions, SyslogSink, format_rfc5424};
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub use webhook::{WebhookOptions, WebhookSink};

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::Attributes;
use crate::identity::{ApiKeyInfo, JwtClaims};

/// What a layer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Let through unchanged.
    Allow,
    /// Denied.
    Deny,
    /// Let through after changing it (masked, removed, truncated).
    Modify,
}

/// One audited decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// When it happened, RFC 3339 in UTC with milliseconds.
    pub timestamp: String,
    /// The layer that decided (`"toolsec"`, `"jwt"`, ...; see the [module docs](self)).
    pub layer: &'static str,
    /// What was decided about (`"authentication"`, `"authorization"`, `"tool_call"`, ...).
    pub event: &'static str,
    /// The decision.
    pub decision: Decision,
    /// The rule that decided, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The caller's identity (JWT subject, API key name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The MCP tool, when about a tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// HTTP method of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Request path, without the query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How long the decided operation took, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Anything else (arguments, response excerpts), already masked by the layer.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
}

impl AuditEvent {
    /// An event stamped now.
    pub fn new(layer: &'static str, event: &'static str, decision: Decision) -> Self {
        AuditEvent {
            timestamp: rfc3339(SystemTime::now()),
            layer,
            event,
            decision,
            rule: None,
            subject: None,
            tool: None,
            method: None,
            path: None,
            latency_ms: None,
            details: Map::new(),
        }
    }

    /// Sets the rule name.
    #[must_use]
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Sets the caller's identity.
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the tool name.
    #[must_use]
    pub fn with_tool(mut self, tool: impl Into<String>) -> Self {
        self.tool = Some(tool.into());
        self
    }

    /// Sets the request method and path.
    #[must_use]
    pub fn with_request(mut self, method: impl Into<String>, path: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self.path = Some(path.into());
        self
    }

    /// Sets what the event says about the request `attrs` describe: its method and path (never
    /// the query), the caller ([`subject`](AuditEvent::subject): JWT `sub`, else API key name,
    /// else client certificate SPIFFE ID or common name) and, for an MCP `tools/call` whose
    /// body an earlier layer has read, the tool. Reads nothing that is not already parsed.
    ///
    /// ```
    /// use agentgw_core::Attributes;
    /// use agentgw_core::audit::{AuditEvent, Decision};
    /// use agentgw_core::identity::JwtClaims;
    ///
    /// let claims = JwtClaims::from_value(serde_json::json!({"sub": "alice"})).unwrap();
    /// let req = http::Request::post("/v1/chat?key=hunter2").extension(claims).body(()).unwrap();
    /// let event = AuditEvent::new("rbac", "authorization", Decision::Deny)
    ///     .with_attributes(&Attributes::new(&req));
    /// assert_eq!(event.subject.as_deref(), Some("alice"));
    /// assert_eq!(event.path.as_deref(), Some("/v1/chat"));
    /// assert_eq!(event.method.as_deref(), Some("POST"));
    /// ```
    #[must_use]
    pub fn with_attributes(mut self, attrs: &Attributes<'_>) -> Self {
        self.method = Some(attrs.method().to_owned());
        self.path = Some(attrs.path().to_owned());
        self.subject = subject(attrs).map(str::to_owned);
        self.tool = attrs.tool_call().map(|call| call.name.to_owned());
        self
    }

    /// Sets the latency.
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency_ms = Some(latency.as_secs_f64() * 1000.0);
        self
    }

    /// Adds a detail field.
    #[must_use]
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// The event as one line of JSON (no trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// The caller's identity as audit events name it: JWT `sub`, else the API key's name, else the
/// client certificate's SPIFFE ID or common name.
fn subject<'a>(attrs: &Attributes<'a>) -> Option<&'a str> {
    attrs
        .jwt()
        .and_then(JwtClaims::subject)
        .or_else(|| attrs.api_key().map(ApiKeyInfo::name))
        .or_else(|| {
            attrs
                .peer()
                .and_then(|peer| peer.spiffe_id.as_deref().or(peer.common_name.as_deref()))
        })
}

/// Where audit events go. Implemented for every `Fn(&AuditEvent) + Send + Sync`.
///
/// `record` is called on the request path: an implementation must not block for long (queue and
/// deliver in the background for anything remote).
pub trait AuditSink: Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: &AuditEvent);
}

impl<F> AuditSink for F
where
    F: Fn(&AuditEvent) + Send + Sync + 'static,
{
    fn record(&self, event: &AuditEvent) {
        self(event)
    }
}

impl AuditSink for Arc<dyn AuditSink> {
    fn record(&self, event: &AuditEvent) {
        (**self).record(event)
    }
}

/// Writes each event as one JSON line to a writer.
pub struct JsonLinesSink<W> {
    writer: Mutex<W>,
}

impl JsonLinesSink<std::io::Stdout> {
    /// A sink writing to standard output.
    pub fn stdout() -> Self {
        JsonLinesSink::new(std::io::stdout())
    }
}

impl<W: Write + Send + 'static> JsonLinesSink<W> {
    /// A sink writing to `writer`.
    pub fn new(writer: W) -> Self {
        JsonLinesSink {
            writer: Mutex::new(writer),
        }
    }

    /// Returns the writer.
    pub fn into_inner(self) -> W {
        self.writer.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl<W: Write + Send + 'static> AuditSink for JsonLinesSink<W> {
    fn record(&self, event: &AuditEvent) {
        let mut line = event.to_json_line();
        line.push('\n');
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(err) = writer
            .write_all(line.as_bytes())
            .and_then(|()| writer.flush())
        {
            tracing::warn!(error = %err, "audit event could not be written");
            metrics::counter!(crate::metrics::AUDIT_DROPPED_TOTAL, "sink" => "json_lines")
                .increment(1);
        }
    }
}

impl<W> std::fmt::Debug for JsonLinesSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink").finish_non_exhaustive()
    }
}

/// Keeps events in memory; for tests and examples.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl MemorySink {
    /// A copy of the events recorded so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Removes and returns the events recorded so far.
    pub fn take(&self) -> Vec<AuditEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl AuditSink for MemorySink {
    fn record(&self, event: &AuditEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

/// Formats `time` as RFC 3339 UTC with milliseconds (`2026-11-22T00:41:03.123Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_308_063_123);
        assert_eq!(rfc3339(t), "2026-11-22T00:41:03.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339(leap)[..10], "2000-02-29");
    }

    #[test]
    fn json_lines_sink_writes_one_line_per_event() {
        let sink = JsonLinesSink::new(Vec::new());
        sink.record(&AuditEvent::new("jwt", "request", Decision::Allow).with_subject("bob"));
        sink.record(&AuditEvent::new("jwt", "request", Decision::Deny).with_rule("expired"));
        let out = String::from_utf8(sink.into_inner()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        let second: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["decision"], "deny");
        assert_eq!(second["rule"], "expired");
        assert!(second.get("tool").is_none(), "empty fields are omitted");
    }

    #[test]
    fn request_attributes_name_the_caller_and_the_tool_never_the_query() {
        use crate::Payload;
        use crate::identity::PeerIdentity;
        let call = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "kubectl-get", "arguments": {"token": "s3cret"}}});
        let req = http::Request::post("/mcp?token=s3cret")
            .extension(Payload::from_json(call))
            .extension(PeerIdentity {
                spiffe_id: Some("spiffe://corp/agent".to_owned()),
                common_name: Some("agent".to_owned()),
                ..PeerIdentity::default()
            })
            .body(())
            .unwrap();
        let event = AuditEvent::new("rbac", "authorization", Decision::Deny)
            .with_attributes(&Attributes::new(&req));
        assert_eq!(event.tool.as_deref(), Some("kubectl-get"));
        assert_eq!(event.subject.as_deref(), Some("spiffe://corp/agent"));
        assert_eq!(event.path.as_deref(), Some("/mcp"));
        assert!(!event.to_json_line().contains("s3cret"));

        let bare = http::Request::get("/v1/models").body(()).unwrap();
        let event = AuditEvent::new("jwt", "authentication", Decision::Deny)
            .with_attributes(&Attributes::new(&bare));
        assert_eq!((event.subject, event.tool), (None, None));
    }

    #[test]
    fn closures_are_sinks() {
        let seen = Arc::new(Mutex::new(0));
        let counter = seen.clone();
        let sink = move |_: &AuditEvent| *counter.lock().unwrap() += 1;
        sink.record(&AuditEvent::new("x", "y", Decision::Modify));
        assert_eq!(*seen.lock().unwrap(), 1);
    }
}
