//! Audit destinations as configured, and the one sink that delivers to all of them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{AuditEvent, AuditSink, JsonLinesSink};
use crate::config::ConfigError;

/// Where the audit events of every layer go: `audit: {destinations: [...]}`.
///
/// This is the gateway's top-level `audit` block; an embedder reads it from its own
/// configuration the same way and hands [`AuditConfig::sink`] to each layer's `audit_sink`.
///
/// ```
/// use agentgw_core::audit::{AuditConfig, AuditDestination};
///
/// let config: AuditConfig = serde_json::from_value(serde_json::json!({
///     "destinations": [{"type": "stdout"}, {"type": "syslog", "address": "127.0.0.1:514"}]
/// })).unwrap();
/// assert_eq!(config.destinations[1], AuditDestination::syslog("127.0.0.1:514"));
///
/// // `audit: {}` writes JSON lines to stdout.
/// let config: AuditConfig = serde_json::from_str("{}").unwrap();
/// assert_eq!(config, AuditConfig::default());
/// assert_eq!(config.destinations, [AuditDestination::stdout()]);
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditConfig {
    /// Every destination gets every event (default: one `stdout` destination).
    #[serde(default = "stdout_only")]
    pub destinations: Vec<AuditDestination>,
}

fn stdout_only() -> Vec<AuditDestination> {
    vec![AuditDestination::stdout()]
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            destinations: stdout_only(),
        }
    }
}

impl AuditConfig {
    /// Sets the destinations (replacing the default `stdout`).
    #[must_use]
    pub fn destinations(
        mut self,
        destinations: impl IntoIterator<Item = AuditDestination>,
    ) -> Self {
        self.destinations = destinations.into_iter().collect();
        self
    }

    /// Builds the one sink that delivers to every destination; see [`sinks`].
    ///
    /// # Errors
    ///
    /// As [`sinks`], the path relative to this block (`destinations[1].url`).
    pub fn sink(&self) -> Result<Arc<dyn AuditSink>, DestinationError> {
        sinks(&self.destinations).map_err(|error| error.under("destinations"))
    }
}

/// One place audit events go, as configured: `{type: stdout}`, `{type: syslog, address:
/// "collector:514"}` or `{type: webhook, url: "https://audit.example/events"}`.
///
/// The field names are those of seed 000's `toolSecurity.audit.destination`, so that block
/// and the gateway's `audit.destinations[]` read the same YAML. Build the sink with
/// [`AuditDestination::sink`], or one sink for a list with [`sinks`]; both check that every
/// field set is used by the destination's type.
///
/// ```
/// use std::time::Duration;
/// use agentgw_core::audit::{AuditDestination, DestinationKind, SyslogProtocol};
///
/// let yaml_like = serde_json::json!({
///     "type": "syslog", "address": "127.0.0.1:514", "protocol": "tcp", "timeout": "2s"
/// });
/// let destination: AuditDestination = serde_json::from_value(yaml_like).unwrap();
/// assert_eq!(
///     destination,
///     AuditDestination::syslog("127.0.0.1:514")
///         .protocol(SyslogProtocol::Tcp)
///         .timeout(Duration::from_secs(2))
/// );
/// assert_eq!(destination.kind, DestinationKind::Syslog);
/// ```
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditDestination {
    /// The kind of destination (`type`, default `stdout`).
    #[serde(rename = "type", default)]
    pub kind: DestinationKind,
    /// `webhook`: the URL events are POSTed to (a JSON array per batch).
    #[serde(default)]
    pub url: Option<String>,
    /// `webhook`: extra request headers (e.g. an authorization token; `Debug` hides the values).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `syslog`: `host:port` of the collector.
    #[serde(default)]
    pub address: Option<String>,
    /// `syslog`: `udp` (default) or `tcp` (octet-counted framing, RFC 6587).
    #[serde(default)]
    pub protocol: Option<SyslogProtocol>,
    /// `syslog`: the APP-NAME of RFC 5424 messages (default `agentgw`).
    #[serde(default)]
    pub app_name: Option<String>,
    /// `syslog`: the facility number 0-23 (default 13, log audit).
    #[serde(default)]
    pub facility: Option<u8>,
    /// `webhook` and `syslog`: events held while delivery lags; beyond it events are dropped
    /// and counted (default 10000).
    #[serde(default)]
    pub queue_size: Option<usize>,
    /// `webhook`: most events per POST (default 100).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// `webhook`: longest an event waits for its batch to fill (default `1s`).
    #[serde(default, with = "crate::config::option_duration")]
    pub flush_interval: Option<Duration>,
    /// `webhook`, and `syslog` over TCP: timeout of one delivery (default `5s`).
    #[serde(default, with = "crate::config::option_duration")]
    pub timeout: Option<Duration>,
}

/// Where audit events go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DestinationKind {
    /// One JSON object per line on standard output.
    #[default]
    Stdout,
    /// Batched JSON POSTs (cargo feature `webhook`).
    Webhook,
    /// RFC 5424 syslog messages over UDP or TCP (cargo feature `syslog`).
    Syslog,
}

impl DestinationKind {
    /// The name used in configuration (`stdout`, `webhook`, `syslog`).
    pub fn as_str(&self) -> &'static str {
        match self {
            DestinationKind::Stdout => "stdout",
            DestinationKind::Webhook => "webhook",
            DestinationKind::Syslog => "syslog",
        }
    }
}

/// Transport of syslog messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    /// One datagram per message.
    #[default]
    Udp,
    /// A stream with octet-counting framing.
    Tcp,
}

impl fmt::Debug for AuditDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are often credentials: only their names are shown.
        let headers: Vec<&str> = self.headers.keys().map(String::as_str).collect();
        f.debug_struct("AuditDestination")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("address", &self.address)
            .field("protocol", &self.protocol)
            .field("app_name", &self.app_name)
            .field("facility", &self.facility)
            .field("queue_size", &self.queue_size)
            .field("batch_size", &self.batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl AuditDestination {
    /// One JSON line per event on standard output.
    pub fn stdout() -> Self {
        AuditDestination::default()
    }

    /// RFC 5424 messages to the collector at `address` (`host:port`), over UDP unless
    /// [`protocol`](Self::protocol) says TCP.
    pub fn syslog(address: impl Into<String>) -> Self {
        AuditDestination {
            kind: DestinationKind::Syslog,
            address: Some(address.into()),
            ..AuditDestination::default()
        }
    }

    /// Batches of events POSTed as JSON arrays to `url`.
    pub fn webhook(url: impl Into<String>) -> Self {
        AuditDestination {
            kind: DestinationKind::Webhook,
            url: Some(url.into()),
            ..AuditDestination::default()
        }
    }

    /// Sets the syslog transport.
    #[must_use]
    pub fn protocol(mut self, protocol: SyslogProtocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Sets the syslog APP-NAME.
    #[must_use]
    pub fn app_name(mut self, app_name: impl Into<String>) -> Self {
        self.app_name = Some(app_name.into());
        self
    }

    /// Sets the syslog facility (0-23).
    #[must_use]
    pub fn facility(mut self, facility: u8) -> Self {
        self.facility = Some(facility);
        self
    }

    /// Adds a webhook request header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets how many events wait while delivery lags.
    #[must_use]
    pub fn queue_size(mut self, events: usize) -> Self {
        self.queue_size = Some(events);
        self
    }

    /// Sets the most events per webhook POST.
    #[must_use]
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = Some(events);
        self
    }

    /// Sets how long an event waits for its webhook batch to fill.
    #[must_use]
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = Some(interval);
        self
    }

    /// Sets the timeout of one delivery (a webhook POST, a syslog TCP connect or write).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Checks the destination and builds its sink.
    ///
    /// Remote sinks start delivering on the Tokio runtime that records their first event; no
    /// connection is made here.
    ///
    /// # Errors
    ///
    /// A [`DestinationError`] whose path is relative to the destination: a required field
    /// that is missing (`address` of a syslog destination, `url` of a webhook), a field the
    /// type does not use, a value out of range, or a type whose cargo feature is off.
    pub fn sink(&self) -> Result<Arc<dyn AuditSink>, DestinationError> {
        self.check_fields()?;
        match self.kind {
            DestinationKind::Stdout => Ok(Arc::new(JsonLinesSink::stdout())),
            DestinationKind::Syslog => self.syslog_sink(),
            DestinationKind::Webhook => self.webhook_sink(),
        }
    }

    /// Refuses fields the destination's type would ignore, and sizes of zero.
    fn check_fields(&self) -> Result<(), DestinationError> {
        use DestinationKind::{Syslog, Webhook};
        let kind = self.kind;
        let only = |set: bool, field: &str, kinds: &[DestinationKind]| {
            if set && !kinds.contains(&kind) {
                let names: Vec<&str> = kinds.iter().map(DestinationKind::as_str).collect();
                Err(DestinationError::new(
                    field,
                    format!(
                        "is only used by destination type {}, not {}",
                        names.join(" and "),
                        kind.as_str()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        only(self.url.is_some(), "url", &[Webhook])?;
        only(!self.headers.is_empty(), "headers", &[Webhook])?;
        only(self.batch_size.is_some(), "batchSize", &[Webhook])?;
        only(self.flush_interval.is_some(), "flushInterval", &[Webhook])?;
        only(self.address.is_some(), "address", &[Syslog])?;
        only(self.protocol.is_some(), "protocol", &[Syslog])?;
        only(self.app_name.is_some(), "appName", &[Syslog])?;
        only(self.facility.is_some(), "facility", &[Syslog])?;
        only(self.queue_size.is_some(), "queueSize", &[Syslog, Webhook])?;
        only(self.timeout.is_some(), "timeout", &[Syslog, Webhook])?;
        for (value, field) in [
            (self.queue_size, "queueSize"),
            (self.batch_size, "batchSize"),
        ] {
            if value == Some(0) {
                return Err(DestinationError::new(field, "must be at least 1"));
            }
        }
        Ok(())
    }

    #[cfg(feature = "syslog")]
    fn syslog_sink(&self) -> Result<Arc<dyn AuditSink>, DestinationError> {
        let address = self.syslog_address()?;
        let defaults = super::SyslogOptions::default();
        let options = super::SyslogOptions {
            protocol: self.protocol.unwrap_or_default(),
            facility: self.facility.unwrap_or(defaults.facility),
            app_name: self.app_name.clone().unwrap_or(defaults.app_name),
            queue_size: self.queue_size.unwrap_or(defaults.queue_size),
            timeout: self.timeout.unwrap_or(defaults.timeout),
        };
        Ok(Arc::new(super::SyslogSink::new(address, options)))
    }

    #[cfg(not(feature = "syslog"))]
    fn syslog_sink(&self) -> Result<Arc<dyn AuditSink>, DestinationError> {
        self.syslog_address()?;
        Err(DestinationError::new(
            "type",
            "syslog delivery needs the `syslog` cargo feature of agentgw-core",
        ))
    }

    /// The collector's address, checked to name a port; the facility, checked to be one.
    fn syslog_address(&self) -> Result<&str, DestinationError> {
        let address = self.address.as_deref().ok_or_else(|| {
            DestinationError::new("address", "is required for a syslog destination")
        })?;
        if !address.contains(':') {
            return Err(DestinationError::new(
                "address",
                format!("`{address}` needs a port, e.g. `{address}:514`"),
            ));
        }
        if let Some(facility) = self.facility
            && facility > 23
        {
            return Err(DestinationError::new(
                "facility",
                format!("{facility} is not a syslog facility (0-23)"),
            ));
        }
        Ok(address)
    }

    #[cfg(feature = "webhook")]
    fn webhook_sink(&self) -> Result<Arc<dyn AuditSink>, DestinationError> {
        let url = self.webhook_url()?;
        let defaults = super::WebhookOptions::default();
        let mut options = super::WebhookOptions {
            headers: Default::default(),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            flush_interval: self.flush_interval.unwrap_or(defaults.flush_interval),
            timeout: self.timeout.unwrap_or(defaults.timeout),
            queue_size: self.queue_size.unwrap_or(defaults.queue_size),
        };
        for (name, value) in &self.headers {
            options = options
                .header(name, value)
                .map_err(|reason| DestinationError::new(format!("headers.{name}"), reason))?;
        }
        let sink = super::WebhookSink::new(url, options)
            .map_err(|reason| DestinationError::new("url", reason))?;
        Ok(Arc::new(sink))
    }

    #[cfg(not(feature = "webhook"))]
    fn webhook_sink(&self) -> Result<Arc<dyn AuditSink>, DestinationError> {
        self.webhook_url()?;
        Err(DestinationError::new(
            "type",
            "webhook delivery needs the `webhook` cargo feature (of agentgw-core, or of agentgw-toolsec, which enables it)",
        ))
    }

    fn webhook_url(&self) -> Result<&str, DestinationError> {
        self.url
            .as_deref()
            .ok_or_else(|| DestinationError::new("url", "is required for a webhook destination"))
    }
}

/// Builds one sink delivering every event to each of `destinations`, in order.
///
/// The gateway's `audit.destinations` and tool security's `audit.destination` are built with
/// it, so a destination means the same wherever it is configured.
///
/// ```
/// use agentgw_core::audit::{AuditDestination, sinks};
/// use agentgw_core::config::ConfigError;
///
/// assert!(sinks(&[AuditDestination::stdout()]).is_ok());
/// let err = sinks(&[AuditDestination::stdout(), AuditDestination::syslog("collector")])
///     .err()
///     .unwrap();
/// assert_eq!(err.path(), "[1].address");
/// assert_eq!(err.at("audit.destinations"), "audit.destinations[1].address: `collector` needs a port, e.g. `collector:514`");
/// ```
///
/// # Errors
///
/// The first destination that cannot be built, its path prefixed with its index (`[1].url`);
/// an empty list is an error too (path empty): it would audit nothing while looking configured.
pub fn sinks(destinations: &[AuditDestination]) -> Result<Arc<dyn AuditSink>, DestinationError> {
    let mut built = Vec::with_capacity(destinations.len());
    for (i, destination) in destinations.iter().enumerate() {
        built.push(
            destination
                .sink()
                .map_err(|error| error.under(&format!("[{i}]")))?,
        );
    }
    match built.len() {
        0 => Err(DestinationError::new(
            "",
            "no destination: name at least one (`type: stdout`, `syslog` or `webhook`)",
        )),
        1 => Ok(built.remove(0)),
        _ => Ok(Arc::new(FanOut(built.into_boxed_slice()))),
    }
}

/// Records every event in each of several sinks.
struct FanOut(Box<[Arc<dyn AuditSink>]>);

impl AuditSink for FanOut {
    fn record(&self, event: &AuditEvent) {
        for sink in &self.0 {
            sink.record(event);
        }
    }
}

/// An audit destination that cannot be built: the field at fault, relative to the destination
/// (or, from [`sinks`], to the list), and why.
///
/// Its [`ConfigError::path`] and [`ConfigError::reason`] let the caller prefix the path of the
/// block the destination sits in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationError {
    path: String,
    reason: String,
}

impl DestinationError {
    fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        DestinationError {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The same error, its path under `prefix`.
    fn under(self, prefix: &str) -> Self {
        DestinationError {
            path: crate::config::join(prefix, &self.path),
            reason: self.reason,
        }
    }
}

impl fmt::Display for DestinationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

impl std::error::Error for DestinationError {}

impl ConfigError for DestinationError {
    fn path(&self) -> &str {
        &self.path
    }

    fn reason(&self) -> String {
        self.reason.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(json: serde_json::Value) -> AuditDestination {
        serde_json::from_value(json).expect("destination parses")
    }

    fn error(json: serde_json::Value) -> DestinationError {
        destination(json).sink().err().expect("an error")
    }

    #[test]
    fn configured_fields_load_as_toolsec_wrote_them() {
        let parsed = destination(serde_json::json!({
            "type": "webhook",
            "url": "https://audit.example/events",
            "headers": {"authorization": "Bearer s3cret"},
            "queueSize": 50,
            "batchSize": 10,
            "flushInterval": "250ms",
            "timeout": 3
        }));
        assert_eq!(
            parsed,
            AuditDestination::webhook("https://audit.example/events")
                .header("authorization", "Bearer s3cret")
                .queue_size(50)
                .batch_size(10)
                .flush_interval(Duration::from_millis(250))
                .timeout(Duration::from_secs(3))
        );
        assert_eq!(
            destination(serde_json::json!({})),
            AuditDestination::stdout()
        );
        assert!(
            serde_json::from_value::<AuditDestination>(serde_json::json!({"type": "kafka"}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<AuditDestination>(serde_json::json!({"adress": "x:1"}))
                .is_err(),
            "a misspelt field is refused"
        );
    }

    #[test]
    fn config_errors_are_relative_to_the_audit_block() {
        let config = AuditConfig::default().destinations([
            AuditDestination::stdout(),
            AuditDestination::webhook("http://x/").batch_size(0),
        ]);
        assert_eq!(
            config.sink().err().unwrap().path(),
            "destinations[1].batchSize"
        );
        let none = AuditConfig::default().destinations([]);
        assert_eq!(none.sink().err().unwrap().path(), "destinations");
        assert!(AuditConfig::default().sink().is_ok());
    }

    #[test]
    fn debug_hides_header_values() {
        let destination = AuditDestination::webhook("http://x/").header("x-token", "s3cret");
        let debug = format!("{destination:?}");
        assert!(
            debug.contains("x-token") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn errors_name_the_field() {
        use serde_json::json;
        let path = |json| error(json).path().to_owned();
        assert_eq!(path(json!({"type": "syslog"})), "address");
        assert_eq!(
            path(json!({"type": "syslog", "address": "collector"})),
            "address"
        );
        assert_eq!(
            path(json!({"type": "syslog", "address": "c:514", "facility": 30})),
            "facility"
        );
        assert_eq!(path(json!({"type": "stdout", "url": "http://x"})), "url");
        assert_eq!(path(json!({"type": "stdout", "queueSize": 5})), "queueSize");
        assert_eq!(
            path(json!({"type": "webhook", "url": "http://x", "protocol": "tcp"})),
            "protocol"
        );
        assert_eq!(
            path(json!({"type": "syslog", "address": "c:514", "queueSize": 0})),
            "queueSize"
        );
        assert_eq!(path(json!({"type": "webhook"})), "url");
        let unused = error(json!({"type": "stdout", "address": "c:514"}));
        assert_eq!(
            unused.to_string(),
            "address: is only used by destination type syslog, not stdout"
        );
        let empty = sinks(&[]).err().expect("an empty list is refused");
        assert_eq!(empty.path(), "");
    }

    #[cfg(feature = "webhook")]
    #[test]
    fn webhook_urls_and_headers_are_checked() {
        use serde_json::json;
        assert_eq!(
            error(json!({"type": "webhook", "url": "ftp://x"})).path(),
            "url"
        );
        assert_eq!(
            error(json!({"type": "webhook", "url": "http://x", "headers": {"bad header": "v"}}))
                .path(),
            "headers.bad header"
        );
        assert!(
            AuditDestination::webhook("http://127.0.0.1:9/a")
                .header("x-token", "t")
                .sink()
                .is_ok()
        );
    }

    #[cfg(not(feature = "webhook"))]
    #[test]
    fn webhook_without_the_feature_says_which_feature() {
        let error = AuditDestination::webhook("http://x/").sink().err().unwrap();
        assert_eq!(error.path(), "type");
        assert!(
            error.to_string().contains("`webhook` cargo feature"),
            "{error}"
        );
    }

    #[cfg(not(feature = "syslog"))]
    #[test]
    fn syslog_without_the_feature_says_which_feature() {
        let error = AuditDestination::syslog("c:514").sink().err().unwrap();
        assert!(
            error.to_string().contains("`syslog` cargo feature"),
            "{error}"
        );
    }

    #[cfg(feature = "syslog")]
    #[tokio::test]
    async fn every_destination_of_a_list_gets_every_event() {
        use crate::audit::Decision;
        let first = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let second = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sink = sinks(&[
            AuditDestination::syslog(first.local_addr().unwrap().to_string()),
            AuditDestination::syslog(second.local_addr().unwrap().to_string()).app_name("gw-2"),
        ])
        .unwrap();
        sink.record(&AuditEvent::new("rbac", "authorization", Decision::Deny).with_rule("admins"));
        for (socket, app) in [(first, " agentgw "), (second, " gw-2 ")] {
            let mut buf = vec![0; 65536];
            let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
                .await
                .expect("a datagram arrives")
                .unwrap();
            let text = std::str::from_utf8(&buf[..len]).unwrap();
            assert!(
                text.contains(app) && text.contains(r#"rule="admins""#),
                "{text}"
            );
        }
    }
}
