//! Escalation: a rule whose action is `Escalate` hands what it found to a person or a system,
//! and (with `blockPending`) lets that person or system decide whether the request goes on.
//!
//! A layer builds one [`Escalation`] per `escalation:` block of its configuration
//! ([`EscalationConfig`], seed 004's `escalation` in our camelCase):
//!
//! ```yaml
//! escalation:
//!   webhook: https://hooks.example.com/security   # where the event is POSTed
//!   blockPending: true          # the request waits for the webhook's decision (default false)
//!   timeout: 5s                 # how long it waits at most (default 5s, at most 60s)
//!   consoleNotification: true   # also log the event (a `warn` line, target `agentgw::escalation`)
//!   headers:                    # sent with every POST (a token the hook checks)
//!     authorization: Bearer s3cret
//! ```
//!
//! When a rule fires, the layer describes it as an [`EscalationEvent`]: the layer, the rule,
//! the route (the backend the request was routed to), the method and path, the MCP tool for
//! tool rules, the caller ([`Caller`]: JWT subject and issuer, API key name, client
//! certificate, client address) and whether the request waits. **Never the matched text, an
//! argument or the body.** Then:
//!
//! - **without `blockPending`** the request is rejected as by `Reject`, and the event is
//!   [notified](Escalation::notify): queued (bounded) and POSTed in the background. A full
//!   queue drops the event (counted `dropped`); the request never waits for the hook.
//! - **with `blockPending`** the request waits, at most `timeout`, for
//!   [`decide`](Escalation::decide): the event is POSTed with `"pending": true` and the hook
//!   answers `2xx` with the JSON body `{"decision": "allow"}` or `{"decision": "deny"}`.
//!   `allow` lets the request go on as if that rule had not fired; `deny`, any other answer
//!   (another status, another body), an unreachable hook and the timeout all reject it:
//!   **escalation fails closed**. At most [`MAX_PENDING`] decisions wait at once; beyond that
//!   a request is rejected at once (counted `dropped`).
//!
//! Every escalation is counted in `agentgateway_escalations_total{layer, rule, outcome}`
//! (`outcome`: `notified`, `allowed`, `denied`, `timeout`, `error`, `dropped`) and, when the
//! layer has an audit sink, recorded as an audit event `{"event": "escalation", "decision":
//! "allow"|"deny", "details": {"escalationId", "outcome", "direction", "route"}}`.
//!
//! The HTTP webhook is `WebhookEscalator` (cargo feature `escalation`, with reqwest). Any
//! other destination (a queue, a chat bot, a ticket system) implements [`Escalator`] and is
//! passed to [`Escalation::with_escalator`].
//!
//! # Example
//!
//! A webhook that allows the request; without one of its own, the example plugs in an
//! [`Escalator`] that decides in process.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use agentgw_core::escalation::{
//!     Direction, Escalation, EscalationConfig, EscalationEvent, EscalationFailure,
//!     EscalationFuture, Escalator, Verdict,
//! };
//!
//! /// Allows every escalated request of `alice`, and remembers what it was told.
//! #[derive(Default)]
//! struct Reviewer(Mutex<Vec<EscalationEvent>>);
//!
//! impl Escalator for Reviewer {
//!     fn notify(&self, event: &EscalationEvent) -> Result<(), EscalationFailure> {
//!         self.0.lock().unwrap().push(event.clone());
//!         Ok(())
//!     }
//!     fn decide(&self, event: &EscalationEvent, _timeout: Duration) -> EscalationFuture {
//!         let verdict = if event.caller.subject.as_deref() == Some("alice") {
//!             Verdict::Allow
//!         } else {
//!             Verdict::Deny
//!         };
//!         Box::pin(async move { Ok(verdict) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config: EscalationConfig = serde_json::from_str(r#"{"blockPending": true}"#).unwrap();
//! let reviewer = Arc::new(Reviewer::default());
//! let escalation = Escalation::with_escalator(&config, reviewer.clone()).unwrap();
//!
//! let claims = agentgw_core::identity::JwtClaims::from_value(serde_json::json!({"sub": "alice"})).unwrap();
//! let req = http::Request::post("/v1/chat/completions").extension(claims).body(()).unwrap();
//! let event = EscalationEvent::new("prompt_guard", "prompt-injection", Direction::Request)
//!     .with_request(&req);
//! assert_eq!(escalation.decide(event).await, Verdict::Allow);
//!
//! let anonymous = http::Request::post("/v1/chat/completions").body(()).unwrap();
//! let event = EscalationEvent::new("prompt_guard", "prompt-injection", Direction::Request)
//!     .with_request(&anonymous);
//! assert_eq!(escalation.decide(event).await, Verdict::Deny);
//!
//! // Without `blockPending` the layer rejects and notifies.
//! let notify_only = Escalation::with_escalator(&EscalationConfig::default(), reviewer.clone()).unwrap();
//! assert!(!notify_only.blocks_pending());
//! notify_only.notify(EscalationEvent::new("toolsec", "blocked-argument", Direction::Request).with_tool("read-file"));
//! assert_eq!(reviewer.0.lock().unwrap()[0].rule, "blocked-argument");
//! # }
//! ```

#[cfg(feature = "escalation")]
mod webhook;

#[cfg(feature = "escalation")]
#[cfg_attr(docsrs, doc(cfg(feature = "escalation")))]
pub use webhook::WebhookEscalator;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditSink, Decision, rfc3339};
use crate::config::ConfigError;
use crate::identity::{ApiKeyInfo, BackendName, ClientAddr, JwtClaims, PeerIdentity};
use crate::metrics::{ESCALATIONS_TOTAL, labels};

/// The most decisions that wait at once, per [`Escalation`]; a request beyond them is
/// rejected at once (outcome `dropped`).
pub const MAX_PENDING: usize = 1024;

/// `escalation`: where an escalated rule's event goes and whether the request waits for a
/// decision. See the [module docs](self).
///
/// `Debug` prints the names of the `headers`, never their values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct EscalationConfig {
    /// The URL the event is POSTed to (`http` or `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// The request waits (at most `timeout`) for the webhook's decision; without it the
    /// request is rejected and the webhook notified. Needs `webhook`.
    #[serde(default)]
    pub block_pending: bool,
    /// Also log every event (a `warn` line with target `agentgw::escalation`).
    #[serde(default)]
    pub console_notification: bool,
    /// The longest a request waits for a decision, and the timeout of every POST
    /// (default 5 s, at most 60 s).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::option_duration"
    )]
    pub timeout: Option<Duration>,
    /// Headers sent with every POST (a token the webhook checks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl fmt::Debug for EscalationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EscalationConfig")
            .field("webhook", &self.webhook)
            .field("block_pending", &self.block_pending)
            .field("console_notification", &self.console_notification)
            .field("timeout", &self.timeout)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EscalationConfig {
    /// The default `timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The largest `timeout`: a request does not hold a connection longer for a person.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

    /// Sets `webhook`.
    #[must_use]
    pub fn webhook(mut self, url: impl Into<String>) -> Self {
        self.webhook = Some(url.into());
        self
    }

    /// Sets `blockPending`.
    #[must_use]
    pub fn block_pending(mut self, block: bool) -> Self {
        self.block_pending = block;
        self
    }

    /// Sets `consoleNotification`.
    #[must_use]
    pub fn console_notification(mut self, on: bool) -> Self {
        self.console_notification = on;
        self
    }

    /// Sets `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a header sent with every POST.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// A configuration error of an `escalation` block; `path` is relative to the block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", crate::config::join(path, reason))]
pub struct EscalationError {
    path: String,
    reason: String,
}

impl EscalationError {
    fn new(path: &str, reason: impl Into<String>) -> Self {
        EscalationError {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

impl ConfigError for EscalationError {
    fn path(&self) -> &str {
        &self.path
    }

    fn reason(&self) -> String {
        self.reason.clone()
    }
}

/// Whether the escalated rule inspected the request or the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The request (before the upstream saw it).
    Request,
    /// The response (before the client saw it).
    Response,
}

impl Direction {
    /// `"request"` or `"response"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// Who sent the escalated request, from the request extensions the authentication layers and
/// the server set (see [`identity`](crate::identity)). Never a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Caller {
    /// The JWT `sub`, else the API key's name, else the client certificate's SPIFFE ID or
    /// common name (the `subject` of audit events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The JWT `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The name of the API key the request authenticated with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The client certificate's SPIFFE ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<String>,
    /// The client address (IP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
}

impl Caller {
    /// The caller as the extensions of a request describe it.
    pub fn from_extensions(extensions: &http::Extensions) -> Self {
        let jwt = extensions.get::<JwtClaims>();
        let api_key = extensions
            .get::<ApiKeyInfo>()
            .map(|key| key.name().to_owned());
        let peer = extensions.get::<PeerIdentity>();
        let spiffe_id = peer.and_then(|peer| peer.spiffe_id.clone());
        let subject = jwt
            .and_then(|claims| claims.subject().map(str::to_owned))
            .or_else(|| api_key.clone())
            .or_else(|| spiffe_id.clone())
            .or_else(|| peer.and_then(|peer| peer.common_name.clone()));
        Caller {
            subject,
            issuer: jwt.and_then(|claims| claims.issuer().map(str::to_owned)),
            api_key,
            spiffe_id,
            client_ip: extensions
                .get::<ClientAddr>()
                .map(|addr| addr.ip_text().as_str().to_owned()),
        }
    }
}

/// What an escalated rule found, as the webhook receives it (JSON, camelCase, empty fields
/// left out). Holds names, never the matched text, an argument or the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct EscalationEvent {
    /// Unique per event (the `escalationId` of the audit events).
    pub id: String,
    /// When the rule fired, RFC 3339 in UTC with milliseconds.
    pub timestamp: String,
    /// The layer (`prompt_guard`, `toolsec`).
    pub layer: &'static str,
    /// The rule that fired, by name.
    pub rule: String,
    /// The group the rule belongs to (a prompt guard's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// Whether the request or the response was inspected.
    pub direction: Direction,
    /// The route (backend) the request was sent to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The request's HTTP method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The request's path, never its query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The MCP tool of a tool rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Who sent the request.
    pub caller: Caller,
    /// The request waits for the webhook's decision (`blockPending`).
    pub pending: bool,
}

impl EscalationEvent {
    /// An event about `rule` of `layer`, stamped now, with a fresh id.
    pub fn new(layer: &'static str, rule: impl Into<String>, direction: Direction) -> Self {
        EscalationEvent {
            id: next_id(),
            timestamp: rfc3339(SystemTime::now()),
            layer,
            rule: rule.into(),
            guard: None,
            direction,
            route: None,
            method: None,
            path: None,
            tool: None,
            caller: Caller::default(),
            pending: false,
        }
    }

    /// Sets what the event says about the request: route ([`BackendName`]), method, path
    /// (without the query) and caller.
    #[must_use]
    pub fn with_request<B>(self, req: &http::Request<B>) -> Self {
        self.with_parts(req.method(), req.uri(), req.extensions())
    }

    /// [`with_request`](Self::with_request) from the parts of a request.
    #[must_use]
    pub fn with_parts(
        mut self,
        method: &http::Method,
        uri: &http::Uri,
        extensions: &http::Extensions,
    ) -> Self {
        self.method = Some(method.as_str().to_owned());
        self.path = Some(uri.path().to_owned());
        self.route = extensions
            .get::<BackendName>()
            .map(|backend| backend.0.to_string());
        self.caller = Caller::from_extensions(extensions);
        self
    }

    /// Sets the group of the rule (a prompt guard's name).
    #[must_use]
    pub fn with_guard(mut self, guard: impl Into<String>) -> Self {
        self.guard = Some(guard.into());
        self
    }

    /// Sets the MCP tool.
    #[must_use]
    pub fn with_tool(mut self, tool: impl Into<String>) -> Self {
        self.tool = Some(tool.into());
        self
    }

    /// Sets the route.
    #[must_use]
    pub fn with_route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// The event as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// A fresh event id: the time in milliseconds, the process and a counter, in hex.
fn next_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("esc-{millis:x}-{:x}-{n:x}", std::process::id())
}

/// The decision about a pending escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The request goes on as if the rule had not fired.
    Allow,
    /// The request is rejected.
    Deny,
}

/// Why an escalation got no decision (or could not be delivered): each rejects a pending
/// request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EscalationFailure {
    /// No answer within the timeout.
    #[error("no decision within the timeout")]
    Timeout,
    /// The destination could not be reached, or its answer was no decision.
    #[error("{0}")]
    Unavailable(String),
    /// Too much is waiting already (a full notification queue, too many pending decisions).
    #[error("dropped: too many escalations are waiting")]
    Dropped,
}

impl EscalationFailure {
    /// The `outcome` label: `timeout`, `error` or `dropped`.
    pub const fn outcome(&self) -> &'static str {
        match self {
            EscalationFailure::Timeout => "timeout",
            EscalationFailure::Unavailable(_) => "error",
            EscalationFailure::Dropped => "dropped",
        }
    }
}

/// The future of a decision.
pub type EscalationFuture =
    Pin<Box<dyn Future<Output = Result<Verdict, EscalationFailure>> + Send + 'static>>;

/// Where escalation events go: the strategy behind [`Escalation`].
/// [`WebhookEscalator`](crate::escalation) (feature `escalation`) POSTs them; implement it
/// for any other destination.
pub trait Escalator: Send + Sync + 'static {
    /// Hands over an event nobody waits for. Called on the request path: must not block
    /// (queue it; an error means it was dropped).
    fn notify(&self, event: &EscalationEvent) -> Result<(), EscalationFailure>;

    /// Asks for a decision about `event`. The future must resolve within `timeout`
    /// ([`EscalationFailure::Timeout`] otherwise): the request waits for it.
    fn decide(&self, event: &EscalationEvent, timeout: Duration) -> EscalationFuture;
}

/// The future of [`Escalation::decide`]: the verdict, `Deny` on any failure.
pub type VerdictFuture = Pin<Box<dyn Future<Output = Verdict> + Send + 'static>>;

/// One compiled `escalation` block: cheap to clone (an `Arc`). See the
/// [module docs](self).
#[derive(Clone)]
pub struct Escalation {
    inner: Arc<Inner>,
}

struct Inner {
    escalator: Option<Arc<dyn Escalator>>,
    block_pending: bool,
    console: bool,
    timeout: Duration,
    audit: Option<Arc<dyn AuditSink>>,
    pending: Arc<AtomicUsize>,
}

impl fmt::Debug for Escalation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Escalation")
            .field("escalator", &self.inner.escalator.is_some())
            .field("block_pending", &self.inner.block_pending)
            .field("console", &self.inner.console)
            .field("timeout", &self.inner.timeout)
            .field("audit", &self.inner.audit.is_some())
            .finish()
    }
}

impl Escalation {
    /// Validates `config` and builds its webhook.
    ///
    /// # Errors
    ///
    /// An [`EscalationError`] with the path relative to the block: an invalid URL or header
    /// (`webhook`, `headers.<name>`), `blockPending` without `webhook`, a block that sends the
    /// event nowhere, a `timeout` of zero or above [`EscalationConfig::MAX_TIMEOUT`], or a
    /// `webhook` in a build without the `escalation` feature.
    pub fn from_config(config: &EscalationConfig) -> Result<Self, EscalationError> {
        let timeout = check(config, false)?;
        let escalator: Option<Arc<dyn Escalator>> = match &config.webhook {
            None => None,
            Some(url) => Some(webhook_escalator(url, config, timeout)?),
        };
        Ok(Self::build(config, escalator, timeout))
    }

    /// Like [`from_config`](Self::from_config), with `escalator` as the destination instead
    /// of `webhook` (which must then be unset).
    ///
    /// # Errors
    ///
    /// As [`from_config`](Self::from_config); `webhook` set is an error too.
    pub fn with_escalator(
        config: &EscalationConfig,
        escalator: Arc<dyn Escalator>,
    ) -> Result<Self, EscalationError> {
        if config.webhook.is_some() {
            return Err(EscalationError::new(
                "webhook",
                "a custom escalator replaces the webhook: leave `webhook` unset",
            ));
        }
        let timeout = check(config, true)?;
        Ok(Self::build(config, Some(escalator), timeout))
    }

    fn build(
        config: &EscalationConfig,
        escalator: Option<Arc<dyn Escalator>>,
        timeout: Duration,
    ) -> Self {
        Escalation {
            inner: Arc::new(Inner {
                escalator,
                block_pending: config.block_pending,
                console: config.console_notification,
                timeout,
                audit: None,
                pending: Arc::default(),
            }),
        }
    }

    /// Records an `escalation` audit event in `sink` for every escalation (the layers set
    /// their own sink here).
    #[must_use]
    pub fn audit_sink(self, sink: Arc<dyn AuditSink>) -> Self {
        let inner = &self.inner;
        Escalation {
            inner: Arc::new(Inner {
                escalator: inner.escalator.clone(),
                block_pending: inner.block_pending,
                console: inner.console,
                timeout: inner.timeout,
                audit: Some(sink),
                pending: Arc::clone(&inner.pending),
            }),
        }
    }

    /// Whether a request waits for the decision (`blockPending`).
    pub fn blocks_pending(&self) -> bool {
        self.inner.block_pending
    }

    /// The longest a request waits for a decision.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Notifies the destination of an escalation nobody waits for (the request is rejected):
    /// logs it (`consoleNotification`), queues it, counts and audits it. Never blocks.
    pub fn notify(&self, mut event: EscalationEvent) {
        event.pending = false;
        self.log(&event);
        let outcome = match &self.inner.escalator {
            None => "notified",
            Some(escalator) => match escalator.notify(&event) {
                Ok(()) => "notified",
                Err(failure) => {
                    tracing::warn!(id = %event.id, %failure, "escalation event not delivered");
                    failure.outcome()
                }
            },
        };
        self.record(&event, Decision::Deny, outcome);
    }

    /// Asks for a decision about a pending request: resolves to [`Verdict::Allow`] only when
    /// the destination allowed it within the timeout; counted and audited.
    pub fn decide(&self, mut event: EscalationEvent) -> VerdictFuture {
        event.pending = true;
        self.log(&event);
        let this = self.clone();
        let Some(escalator) = self.inner.escalator.clone() else {
            // Refused by the configuration checks: nothing could decide.
            this.record(&event, Decision::Deny, "error");
            return Box::pin(std::future::ready(Verdict::Deny));
        };
        let pending = Arc::clone(&self.inner.pending);
        if pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
            pending.fetch_sub(1, Ordering::AcqRel);
            this.record(&event, Decision::Deny, "dropped");
            return Box::pin(std::future::ready(Verdict::Deny));
        }
        let guard = PendingGuard(pending);
        let decision = escalator.decide(&event, self.inner.timeout);
        let decision = bounded(decision, self.inner.timeout);
        Box::pin(async move {
            let result = decision.await;
            drop(guard);
            let (verdict, outcome) = match result {
                Ok(Verdict::Allow) => (Verdict::Allow, "allowed"),
                Ok(Verdict::Deny) => (Verdict::Deny, "denied"),
                Err(failure) => {
                    tracing::warn!(id = %event.id, %failure, "escalation failed closed");
                    (Verdict::Deny, failure.outcome())
                }
            };
            let decision = match verdict {
                Verdict::Allow => Decision::Allow,
                Verdict::Deny => Decision::Deny,
            };
            this.record(&event, decision, outcome);
            verdict
        })
    }

    fn log(&self, event: &EscalationEvent) {
        if self.inner.console {
            tracing::warn!(
                target: "agentgw::escalation",
                id = %event.id,
                layer = event.layer,
                rule = %event.rule,
                guard = event.guard.as_deref(),
                direction = event.direction.as_str(),
                route = event.route.as_deref(),
                method = event.method.as_deref(),
                path = event.path.as_deref(),
                tool = event.tool.as_deref(),
                subject = event.caller.subject.as_deref(),
                pending = event.pending,
                "escalation"
            );
        }
    }

    fn record(&self, event: &EscalationEvent, decision: Decision, outcome: &'static str) {
        metrics::counter!(
            ESCALATIONS_TOTAL,
            labels::LAYER => event.layer,
            labels::RULE => event.rule.clone(),
            labels::OUTCOME => outcome
        )
        .increment(1);
        let Some(sink) = &self.inner.audit else {
            return;
        };
        let mut audit = AuditEvent::new(event.layer, "escalation", decision)
            .with_rule(event.rule.clone())
            .with_detail("escalationId", event.id.clone())
            .with_detail("outcome", outcome)
            .with_detail("direction", event.direction.as_str());
        audit.subject = event.caller.subject.clone();
        audit.tool = event.tool.clone();
        audit.method = event.method.clone();
        audit.path = event.path.clone();
        if let Some(route) = &event.route {
            audit = audit.with_detail("route", route.clone());
        }
        if let Some(guard) = &event.guard {
            audit = audit.with_detail("guard", guard.clone());
        }
        sink.record(&audit);
    }
}

/// Releases a pending slot when the decision ends or is dropped (a client that went away).
struct PendingGuard(Arc<AtomicUsize>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The checks every block passes; its timeout.
fn check(config: &EscalationConfig, custom: bool) -> Result<Duration, EscalationError> {
    let has_destination = custom || config.webhook.is_some();
    if config.block_pending && !has_destination {
        return Err(EscalationError::new(
            "blockPending",
            "waits for the webhook's decision: set `webhook`",
        ));
    }
    if !has_destination && !config.console_notification {
        return Err(EscalationError::new(
            "webhook",
            "the escalation goes nowhere: set `webhook` or `consoleNotification: true`",
        ));
    }
    if !config.headers.is_empty() && config.webhook.is_none() {
        return Err(EscalationError::new(
            "headers",
            "are sent with the webhook's POSTs: set `webhook`",
        ));
    }
    let timeout = config.timeout.unwrap_or(EscalationConfig::DEFAULT_TIMEOUT);
    if timeout.is_zero() || timeout > EscalationConfig::MAX_TIMEOUT {
        return Err(EscalationError::new(
            "timeout",
            format!(
                "must be longer than 0 and at most {}",
                humantime::format_duration(EscalationConfig::MAX_TIMEOUT)
            ),
        ));
    }
    Ok(timeout)
}

#[cfg(feature = "escalation")]
fn webhook_escalator(
    url: &str,
    config: &EscalationConfig,
    timeout: Duration,
) -> Result<Arc<dyn Escalator>, EscalationError> {
    let mut webhook = WebhookEscalator::new(url, timeout)
        .map_err(|reason| EscalationError::new("webhook", reason))?;
    for (name, value) in &config.headers {
        webhook = webhook
            .header(name, value)
            .map_err(|reason| EscalationError::new(&format!("headers.{name}"), reason))?;
    }
    Ok(Arc::new(webhook))
}

#[cfg(not(feature = "escalation"))]
fn webhook_escalator(
    _url: &str,
    _config: &EscalationConfig,
    _timeout: Duration,
) -> Result<Arc<dyn Escalator>, EscalationError> {
    Err(EscalationError::new(
        "webhook",
        "this build has no webhook client: enable the cargo feature `escalation`",
    ))
}

/// `decision`, bounded by `timeout` where a timer is available (feature `escalation`);
/// without one the escalator bounds it, as [`Escalator::decide`] requires.
#[cfg(feature = "escalation")]
fn bounded(decision: EscalationFuture, timeout: Duration) -> EscalationFuture {
    Box::pin(async move {
        match tokio::time::timeout(timeout, decision).await {
            Ok(result) => result,
            Err(_) => Err(EscalationFailure::Timeout),
        }
    })
}

#[cfg(not(feature = "escalation"))]
fn bounded(decision: EscalationFuture, _timeout: Duration) -> EscalationFuture {
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::MemorySink;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder {
        notified: Mutex<Vec<EscalationEvent>>,
        verdict: Option<Verdict>,
    }

    impl Escalator for Recorder {
        fn notify(&self, event: &EscalationEvent) -> Result<(), EscalationFailure> {
            self.notified.lock().unwrap().push(event.clone());
            Ok(())
        }
        fn decide(&self, _: &EscalationEvent, _: Duration) -> EscalationFuture {
            let verdict = self.verdict;
            Box::pin(async move {
                verdict.ok_or_else(|| EscalationFailure::Unavailable("no answer".into()))
            })
        }
    }

    fn config(yaml: &str) -> EscalationConfig {
        serde_json::from_str(yaml).unwrap()
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let err = Escalation::from_config(&config(r#"{"blockPending": true}"#)).unwrap_err();
        assert_eq!(err.path(), "blockPending");
        assert!(err.reason().contains("webhook"), "{err}");
        let err = Escalation::from_config(&config("{}")).unwrap_err();
        assert_eq!(err.path(), "webhook");
        let err =
            Escalation::from_config(&config(r#"{"consoleNotification": true, "timeout": "2m"}"#))
                .unwrap_err();
        assert_eq!(err.path(), "timeout");
        assert!(Escalation::from_config(&config(r#"{"consoleNotification": true}"#)).is_ok());
        let custom = Arc::new(Recorder::default());
        let err =
            Escalation::with_escalator(&config(r#"{"webhook": "http://x/"}"#), custom).unwrap_err();
        assert_eq!(err.path(), "webhook");
        assert!(
            serde_json::from_str::<EscalationConfig>(r#"{"block_pending": true}"#).is_err(),
            "our fields are camelCase"
        );
    }

    #[test]
    fn debug_hides_header_values() {
        let config = EscalationConfig::default().header("authorization", "Bearer s3cret");
        let debug = format!("{config:?}");
        assert!(
            debug.contains("authorization") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn events_name_the_caller_and_route_never_the_query() {
        let claims =
            JwtClaims::from_value(serde_json::json!({"sub": "alice", "iss": "idp"})).unwrap();
        let req = http::Request::post("/mcp?token=s3cret")
            .extension(claims)
            .extension(ApiKeyInfo::new("ci", serde_json::Map::new()))
            .extension(BackendName(Arc::from("tools")))
            .extension(ClientAddr("10.0.0.7:1234".parse().unwrap()))
            .body(())
            .unwrap();
        let event = EscalationEvent::new("toolsec", "blocked-argument", Direction::Request)
            .with_request(&req)
            .with_tool("read-file");
        let json = event.to_json();
        assert_eq!(json["caller"]["subject"], "alice");
        assert_eq!(json["caller"]["issuer"], "idp");
        assert_eq!(json["caller"]["apiKey"], "ci");
        assert_eq!(json["caller"]["clientIp"], "10.0.0.7");
        assert_eq!(json["route"], "tools");
        assert_eq!(json["path"], "/mcp");
        assert_eq!(json["direction"], "request");
        assert!(!json.to_string().contains("s3cret"));
        let other = EscalationEvent::new("toolsec", "x", Direction::Response);
        assert_ne!(event.id, other.id);
    }

    #[test]
    fn outcomes_are_counted_by_layer_rule_and_outcome() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let deciding = Arc::new(Recorder {
            verdict: Some(Verdict::Deny),
            ..Recorder::default()
        });
        let escalation =
            Escalation::with_escalator(&EscalationConfig::default(), deciding).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            escalation.notify(EscalationEvent::new(
                "toolsec",
                "allowlist",
                Direction::Request,
            ));
            let event = EscalationEvent::new("toolsec", "allowlist", Direction::Request);
            assert_eq!(runtime.block_on(escalation.decide(event)), Verdict::Deny);
        });
        let mut counts: Vec<(String, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == ESCALATIONS_TOTAL)
            .map(|(key, _, _, value)| {
                let labels: Vec<String> = key
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let DebugValue::Counter(n) = value else {
                    panic!("a counter")
                };
                (labels.join(","), n)
            })
            .collect();
        counts.sort();
        assert_eq!(
            counts,
            [
                ("layer=toolsec,rule=allowlist,outcome=denied".to_owned(), 1),
                (
                    "layer=toolsec,rule=allowlist,outcome=notified".to_owned(),
                    1
                ),
            ]
        );
    }

    #[tokio::test]
    async fn failures_deny_and_everything_is_audited() {
        let sink = MemorySink::default();
        let silent = Arc::new(Recorder::default());
        let escalation = Escalation::with_escalator(
            &EscalationConfig::default().block_pending(true),
            silent.clone(),
        )
        .unwrap()
        .audit_sink(Arc::new(sink.clone()));
        let event = EscalationEvent::new("prompt_guard", "injection", Direction::Request)
            .with_guard("injection-escalation");
        assert_eq!(escalation.decide(event).await, Verdict::Deny);
        escalation.notify(EscalationEvent::new(
            "prompt_guard",
            "injection",
            Direction::Request,
        ));
        assert!(!silent.notified.lock().unwrap()[0].pending);

        let allowing = Arc::new(Recorder {
            verdict: Some(Verdict::Allow),
            ..Recorder::default()
        });
        let escalation = Escalation::with_escalator(&EscalationConfig::default(), allowing)
            .unwrap()
            .audit_sink(Arc::new(sink.clone()));
        let event = EscalationEvent::new("toolsec", "allowlist", Direction::Request);
        assert_eq!(escalation.decide(event).await, Verdict::Allow);

        let events = sink.take();
        let outcomes: Vec<(&str, Decision)> = events
            .iter()
            .map(|e| (e.details["outcome"].as_str().unwrap(), e.decision))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("error", Decision::Deny),
                ("notified", Decision::Deny),
                ("allowed", Decision::Allow)
            ]
        );
        assert_eq!(events[0].event, "escalation");
        assert_eq!(events[0].details["guard"], "injection-escalation");
    }
}
