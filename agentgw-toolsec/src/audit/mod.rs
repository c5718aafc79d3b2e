//! Audit of tool calls and validation decisions, and where the events go.
//!
//! The layer records, through an [`AuditSink`]:
//!
//! | event | when | decision | details |
//! |---|---|---|---|
//! | `tool_call` | a `tools/call` was refused, or its answer arrived (or timed out) | `deny` / `allow` / `modify` (result sanitized) | `upstream`, `outcome` (`result`, `error`, `denied`, `timeout`, `too_large`, `no_response`), `isError`, `sanitized`; with `level: full`, `arguments` and `response` (masked) |
//! | `tool_validation` | a tool of a `tools/list` result was removed or flagged | `deny` (removed) / `allow` (flagged only) | `upstream`, `detail` |
//! | `tool_list` | a `tools/list` result was validated | `allow` / `modify` / `deny` | `upstream`, `listed`, `exposed`, `notAllowlisted` |
//!
//! Every event carries the identity (JWT subject, API key name or client certificate), the tool,
//! the rule and, for calls, the latency. Arguments and results are only recorded with
//! `level: full` and `includeArguments` / `includeResponse`, after masking: values of members
//! named like secrets (`password`, `apiKey`, `authorization`, ...) are redacted, and secret
//! shapes (API keys, tokens, private keys) and PII (cards, SSNs, emails) in strings are masked;
//! long strings are cut.
//!
//! Destinations: `stdout` ([`JsonLinesSink`]), `syslog`
//! ([`SyslogSink`], RFC 5424 over UDP or TCP) and `webhook` (`WebhookSink`, batched POSTs;
//! cargo feature `webhook`). Remote sinks queue in memory (bounded) and never block traffic.

mod mask;
mod queue;
mod syslog;
#[cfg(feature = "webhook")]
mod webhook;

use std::sync::Arc;

use agentgw_core::audit::{AuditEvent, AuditSink, JsonLinesSink};

pub use syslog::{SyslogOptions, SyslogSink, format_rfc5424};
#[cfg(feature = "webhook")]
pub use webhook::{WebhookOptions, WebhookSink};

pub(crate) use mask::{mask_text, masked};

use crate::config::{AuditConfig, AuditLevel, DestinationKind};
use crate::error::ToolSecError;

/// The layer name in audit events and metrics.
pub(crate) const LAYER: &str = "toolsec";

/// Records audit events as configured.
#[derive(Clone)]
pub(crate) struct Auditor {
    sink: Option<Arc<dyn AuditSink>>,
    level: AuditLevel,
    include_arguments: bool,
    include_response: bool,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("sink", &self.sink.is_some())
            .field("level", &self.level)
            .field("include_arguments", &self.include_arguments)
            .field("include_response", &self.include_response)
            .finish()
    }
}

impl Auditor {
    /// No auditing.
    pub(crate) fn off() -> Self {
        Self {
            sink: None,
            level: AuditLevel::None,
            include_arguments: false,
            include_response: false,
        }
    }

    pub(crate) fn from_config(config: Option<&AuditConfig>) -> Result<Self, ToolSecError> {
        const BASE: &str = "toolSecurity.audit";
        let Some(config) = config else {
            return Ok(Self::off());
        };
        if config.level != AuditLevel::Full {
            for (on, field) in [
                (config.include_arguments, "includeArguments"),
                (config.include_response, "includeResponse"),
            ] {
                if on {
                    return Err(ToolSecError::NoEffect {
                        path: format!("{BASE}.{field}"),
                        reason: "unless audit.level is full",
                    });
                }
            }
        }
        let sink = build_sink(config)?;
        if !config.enabled || config.level == AuditLevel::None {
            return Ok(Self::off());
        }
        Ok(Self {
            sink: Some(sink),
            level: config.level,
            include_arguments: config.include_arguments,
            include_response: config.include_response,
        })
    }

    /// The same settings with events going to `sink` (level `basic` if auditing was off).
    pub(crate) fn with_sink(&self, sink: Arc<dyn AuditSink>) -> Self {
        Self {
            sink: Some(sink),
            level: self.level.max(AuditLevel::Basic),
            ..self.clone()
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.sink.is_some() && self.level > AuditLevel::None
    }

    pub(crate) fn includes_arguments(&self) -> bool {
        self.is_on() && self.level == AuditLevel::Full && self.include_arguments
    }

    pub(crate) fn includes_response(&self) -> bool {
        self.is_on() && self.level == AuditLevel::Full && self.include_response
    }

    pub(crate) fn record(&self, event: &AuditEvent) {
        if let Some(sink) = &self.sink
            && self.level > AuditLevel::None
        {
            sink.record(event);
        }
    }
}

fn build_sink(config: &AuditConfig) -> Result<Arc<dyn AuditSink>, ToolSecError> {
    const BASE: &str = "toolSecurity.audit.destination";
    let destination = &config.destination;
    let unused = |set: bool, field: &str| {
        if set {
            Err(ToolSecError::NoEffect {
                path: format!("{BASE}.{field}"),
                reason: "for this destination type",
            })
        } else {
            Ok(())
        }
    };
    let positive = |value: Option<usize>, field: &str| match value {
        Some(0) => Err(ToolSecError::invalid(
            format!("{BASE}.{field}"),
            "must be at least 1",
        )),
        _ => Ok(()),
    };
    positive(destination.queue_size, "queueSize")?;
    positive(destination.batch_size, "batchSize")?;
    let is_webhook = destination.kind == DestinationKind::Webhook;
    let is_syslog = destination.kind == DestinationKind::Syslog;
    unused(!is_webhook && destination.url.is_some(), "url")?;
    unused(!is_webhook && !destination.headers.is_empty(), "headers")?;
    unused(!is_webhook && destination.batch_size.is_some(), "batchSize")?;
    unused(
        !is_webhook && destination.flush_interval.is_some(),
        "flushInterval",
    )?;
    unused(!is_syslog && destination.address.is_some(), "address")?;
    unused(!is_syslog && destination.app_name.is_some(), "appName")?;
    unused(!is_syslog && destination.facility.is_some(), "facility")?;
    unused(
        destination.kind == DestinationKind::Stdout && destination.queue_size.is_some(),
        "queueSize",
    )?;
    unused(
        destination.kind == DestinationKind::Stdout && destination.timeout.is_some(),
        "timeout",
    )?;
    match destination.kind {
        DestinationKind::Stdout => Ok(Arc::new(JsonLinesSink::stdout())),
        DestinationKind::Syslog => {
            let address = destination.address.clone().ok_or(ToolSecError::Missing {
                path: format!("{BASE}.address"),
                reason: "for destination type syslog",
            })?;
            if !address.contains(':') {
                return Err(ToolSecError::invalid(
                    format!("{BASE}.address"),
                    format!("`{address}` needs a port, e.g. `{address}:514`"),
                ));
            }
            if let Some(facility) = destination.facility
                && facility > 23
            {
                return Err(ToolSecError::invalid(
                    format!("{BASE}.facility"),
                    format!("{facility} is not a syslog facility (0-23)"),
                ));
            }
            let defaults = SyslogOptions::default();
            let options = SyslogOptions {
                protocol: destination.protocol,
                facility: destination.facility.unwrap_or(defaults.facility),
                app_name: destination.app_name.clone().unwrap_or(defaults.app_name),
                queue_size: destination.queue_size.unwrap_or(defaults.queue_size),
                timeout: destination.timeout.unwrap_or(defaults.timeout),
            };
            Ok(Arc::new(SyslogSink::new(address, options)))
        }
        DestinationKind::Webhook => webhook_sink(config),
    }
}

#[cfg(feature = "webhook")]
fn webhook_sink(config: &AuditConfig) -> Result<Arc<dyn AuditSink>, ToolSecError> {
    const BASE: &str = "toolSecurity.audit.destination";
    let destination = &config.destination;
    let url = destination.url.as_deref().ok_or(ToolSecError::Missing {
        path: format!("{BASE}.url"),
        reason: "for destination type webhook",
    })?;
    let defaults = WebhookOptions::default();
    let mut options = WebhookOptions {
        headers: Default::default(),
        batch_size: destination.batch_size.unwrap_or(defaults.batch_size),
        flush_interval: destination
            .flush_interval
            .unwrap_or(defaults.flush_interval),
        timeout: destination.timeout.unwrap_or(defaults.timeout),
        queue_size: destination.queue_size.unwrap_or(defaults.queue_size),
    };
    for (name, value) in &destination.headers {
        options = options
            .header(name, value)
            .map_err(|message| ToolSecError::invalid(format!("{BASE}.headers.{name}"), message))?;
    }
    let sink = WebhookSink::new(url, options)
        .map_err(|message| ToolSecError::invalid(format!("{BASE}.url"), message))?;
    Ok(Arc::new(sink))
}

#[cfg(not(feature = "webhook"))]
fn webhook_sink(_config: &AuditConfig) -> Result<Arc<dyn AuditSink>, ToolSecError> {
    Err(ToolSecError::Unsupported {
        path: "toolSecurity.audit.destination.type".to_owned(),
        reason: "webhook delivery needs agentgw-toolsec built with the `webhook` cargo feature",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(yaml: &str) -> Result<Auditor, ToolSecError> {
        let config: AuditConfig = serde_saphyr::from_str(yaml).unwrap();
        Auditor::from_config(Some(&config))
    }

    #[test]
    fn levels() {
        let auditor = audit("level: full\nincludeArguments: true\n").unwrap();
        assert!(auditor.is_on() && auditor.includes_arguments() && !auditor.includes_response());
        let auditor = audit("level: basic\n").unwrap();
        assert!(auditor.is_on() && !auditor.includes_arguments());
        assert!(!audit("level: none\n").unwrap().is_on());
        assert!(!audit("enabled: false\n").unwrap().is_on());
        assert!(!Auditor::from_config(None).unwrap().is_on());
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let path = |yaml: &str| audit(yaml).unwrap_err().path().to_owned();
        assert_eq!(
            path("level: basic\nincludeArguments: true\n"),
            "toolSecurity.audit.includeArguments"
        );
        assert_eq!(
            path("destination: {type: syslog}\n"),
            "toolSecurity.audit.destination.address"
        );
        assert_eq!(
            path("destination: {type: syslog, address: collector}\n"),
            "toolSecurity.audit.destination.address"
        );
        assert_eq!(
            path("destination: {type: syslog, address: 'c:514', facility: 30}\n"),
            "toolSecurity.audit.destination.facility"
        );
        assert_eq!(
            path("destination: {type: stdout, url: 'http://x'}\n"),
            "toolSecurity.audit.destination.url"
        );
        assert_eq!(
            path("destination: {type: syslog, address: 'c:514', queueSize: 0}\n"),
            "toolSecurity.audit.destination.queueSize"
        );
        #[cfg(not(feature = "webhook"))]
        {
            let error = audit("destination: {type: webhook, url: 'http://x'}\n").unwrap_err();
            assert!(
                error.to_string().contains("`webhook` cargo feature"),
                "{error}"
            );
        }
        #[cfg(feature = "webhook")]
        {
            assert_eq!(
                path("destination: {type: webhook}\n"),
                "toolSecurity.audit.destination.url"
            );
            assert_eq!(
                path("destination: {type: webhook, url: 'ftp://x'}\n"),
                "toolSecurity.audit.destination.url"
            );
            assert!(audit("destination: {type: webhook, url: 'http://127.0.0.1:9/a', headers: {x-token: t}}\n").is_ok());
        }
        assert!(
            audit("destination: {type: syslog, address: '127.0.0.1:514', protocol: tcp}\n").is_ok()
        );
    }
}
