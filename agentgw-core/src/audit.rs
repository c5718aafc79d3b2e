//! Audit events and where they go.
//!
//! Layers describe what they decided as an [`AuditEvent`] and hand it to an [`AuditSink`]. The
//! sink is a trait with a blanket implementation for closures, so any function can be one;
//! [`JsonLinesSink`] writes one JSON object per line (to stdout with [`JsonLinesSink::stdout`]),
//! and [`MemorySink`] keeps events for tests. Webhook and syslog delivery live in the layers that
//! need them (they must never block traffic).
//!
//! An event never holds a secret: layers put rule *names* and masked values in it.
//!
//! # Example
//!
//! ```
//! use agentgw_core::audit::{AuditEvent, AuditSink, Decision, MemorySink};
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
//! ```

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

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
    /// The layer that decided (`"toolsec"`, `"jwt"`, ...).
    pub layer: &'static str,
    /// What was decided about (`"tool_call"`, `"tool_validation"`, `"request"`, ...).
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
    /// Request path.
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
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Sets the caller's identity.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the tool name.
    pub fn with_tool(mut self, tool: impl Into<String>) -> Self {
        self.tool = Some(tool.into());
        self
    }

    /// Sets the request method and path.
    pub fn with_request(mut self, method: impl Into<String>, path: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self.path = Some(path.into());
        self
    }

    /// Sets the latency.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency_ms = Some(latency.as_secs_f64() * 1000.0);
        self
    }

    /// Adds a detail field.
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// The event as one line of JSON (no trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
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
    fn closures_are_sinks() {
        let seen = Arc::new(Mutex::new(0));
        let counter = seen.clone();
        let sink = move |_: &AuditEvent| *counter.lock().unwrap() += 1;
        sink.record(&AuditEvent::new("x", "y", Decision::Modify));
        assert_eq!(*seen.lock().unwrap(), 1);
    }
}
