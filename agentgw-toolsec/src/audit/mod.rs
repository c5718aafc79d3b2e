//! Audit of tool calls and validation decisions, and where the events go.
//!
//! The layer records, through an [`AuditSink`]:
//!
//! | event | when | decision | details |
//! |---|---|---|---|
//! | `tool_call` | a `tools/call` was refused, or its answer arrived (or timed out) | `deny` / `allow` / `modify` (result sanitized) | `upstream`, `outcome` (`result`, `error`, `denied`, `timeout`, `too_large`, `injection`, `no_response`), `isError`, `sanitized`, `classifierScore` and `classifierRemoved` (`responseSanitization.classifier`); with `level: full`, `arguments` and `response` (masked) |
//! | `tool_validation` | a tool of a `tools/list` result was removed or flagged | `deny` (removed) / `allow` (flagged only) | `upstream`, `detail`, `classifierScore` (rule `prompt-injection-classifier`) |
//! | `definition_validation` | a prompt, resource, template or the `initialize` instructions were removed | `deny` | `upstream`, `kind`, `name`, `classifierScore` (rule `prompt-injection-classifier`) |
//! | `tool_list` | a `tools/list` result was validated | `allow` / `modify` / `deny` | `upstream`, `listed`, `exposed`, `notAllowlisted` |
//!
//! Every event carries the identity (JWT subject, API key name or client certificate), the tool,
//! the rule and, for calls, the latency. Arguments and results are only recorded with
//! `level: full` and `includeArguments` / `includeResponse`, after masking: values of members
//! named like secrets (`password`, `apiKey`, `authorization`, ...) are redacted, and secret
//! shapes (API keys, tokens, private keys) and PII (cards, SSNs, emails) in strings are masked;
//! long strings are cut.
//!
//! Destinations: `audit.destination` is an [`AuditDestination`] of `agentgw-core` (`stdout`,
//! `syslog` over UDP or TCP, `webhook` with this crate's cargo feature `webhook`), built by
//! core like every other layer's sink; remote destinations queue in memory (bounded) and never
//! block traffic. Without a `destination`, events go to the sink given to
//! [`ToolSecurityLayer::audit_sink`](crate::ToolSecurityLayer::audit_sink) (the gateway's
//! `audit.destinations`), else to stdout.

mod mask;

use std::sync::Arc;

use agentgw_core::audit::{AuditDestination, AuditEvent, AuditSink, JsonLinesSink};
use agentgw_core::config::ConfigError;

pub(crate) use mask::{mask_text, masked};

use crate::config::{AuditConfig, AuditLevel};
use crate::error::Error;

/// The layer name in audit events and metrics.
pub(crate) const LAYER: &str = "toolsec";

/// The audit detail holding a prompt-injection classifier score (the name `agentgw-guard` uses).
pub(crate) const CLASSIFIER_SCORE: &str = "classifierScore";

/// Records audit events as configured.
#[derive(Clone)]
pub(crate) struct Auditor {
    sink: Option<Arc<dyn AuditSink>>,
    level: AuditLevel,
    include_arguments: bool,
    include_response: bool,
    /// The configuration names a destination: a sink given to the layer does not replace it.
    own_destination: bool,
    /// The configuration turns auditing off (`enabled: false`, `level: none`): a sink given to
    /// the layer does not turn it on.
    turned_off: bool,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("sink", &self.sink.is_some())
            .field("level", &self.level)
            .field("include_arguments", &self.include_arguments)
            .field("include_response", &self.include_response)
            .field("own_destination", &self.own_destination)
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
            own_destination: false,
            turned_off: false,
        }
    }

    pub(crate) fn from_config(config: Option<&AuditConfig>) -> Result<Self, Error> {
        let Some(config) = config else {
            return Ok(Self::off());
        };
        // Checked even when auditing is off, so that turning it on cannot surface an error.
        let sink = config
            .destination
            .as_ref()
            .map(destination_sink)
            .transpose()?;
        if !config.enabled || config.level == AuditLevel::None {
            return Ok(Self {
                turned_off: true,
                ..Self::off()
            });
        }
        Ok(Self {
            own_destination: sink.is_some(),
            sink: Some(sink.unwrap_or_else(|| Arc::new(JsonLinesSink::stdout()))),
            level: config.level,
            include_arguments: config.include_arguments,
            include_response: config.include_response,
            turned_off: false,
        })
    }

    /// The same settings with events going to `sink`, unless the configuration names its own
    /// destination or turns auditing off (level `basic` if there was no `audit` block).
    pub(crate) fn with_sink(&self, sink: Arc<dyn AuditSink>) -> Self {
        if self.own_destination || self.turned_off {
            return self.clone();
        }
        Self {
            sink: Some(sink),
            level: self.level.max(AuditLevel::Basic),
            ..self.clone()
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.sink.is_some() && self.level > AuditLevel::None
    }

    /// Where events go, when auditing is on.
    pub(crate) fn sink(&self) -> Option<&Arc<dyn AuditSink>> {
        self.sink.as_ref().filter(|_| self.is_on())
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

/// The sink of `audit.destination`, built by core; errors name the field under it.
fn destination_sink(destination: &AuditDestination) -> Result<Arc<dyn AuditSink>, Error> {
    destination.sink().map_err(|error| {
        Error::invalid(
            agentgw_core::config::join("audit.destination", error.path()),
            error.reason(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(yaml: &str) -> Result<Auditor, Error> {
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
    fn included_details_below_level_full_are_left_out_with_a_warning() {
        for level in ["none", "basic"] {
            let yaml = format!("level: {level}\nincludeArguments: true\nincludeResponse: true\n");
            let auditor = audit(&yaml).unwrap();
            assert!(!auditor.includes_arguments() && !auditor.includes_response());
            let config: crate::config::ToolSecurityConfig = serde_saphyr::from_str(&format!(
                "audit:\n  level: {level}\n  includeArguments: true\n"
            ))
            .unwrap();
            let warnings = crate::layer::config_warnings(&config);
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert_eq!(warnings[0].path, "audit.includeArguments");
            assert!(
                warnings[0].message.contains("level: full"),
                "{}",
                warnings[0]
            );
        }
        let config: crate::config::ToolSecurityConfig =
            serde_saphyr::from_str("audit:\n  level: full\n  includeArguments: true\n").unwrap();
        assert!(crate::layer::config_warnings(&config).is_empty());
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let path = |yaml: &str| audit(yaml).unwrap_err().path().to_owned();
        assert_eq!(
            path("destination: {type: syslog}\n"),
            "audit.destination.address"
        );
        assert_eq!(
            path("destination: {type: syslog, address: collector}\n"),
            "audit.destination.address"
        );
        assert_eq!(
            path("destination: {type: syslog, address: 'c:514', facility: 30}\n"),
            "audit.destination.facility"
        );
        assert_eq!(
            path("destination: {type: stdout, url: 'http://x'}\n"),
            "audit.destination.url"
        );
        assert_eq!(
            path("destination: {type: syslog, address: 'c:514', queueSize: 0}\n"),
            "audit.destination.queueSize"
        );
        assert_eq!(
            path("destination: {type: stdout, queueSize: 3}\n"),
            "audit.destination.queueSize"
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
                "audit.destination.url"
            );
            assert_eq!(
                path("destination: {type: webhook, url: 'ftp://x'}\n"),
                "audit.destination.url"
            );
            assert!(audit("destination: {type: webhook, url: 'http://127.0.0.1:9/a', headers: {x-token: t}}\n").is_ok());
        }
        assert!(
            audit("destination: {type: syslog, address: '127.0.0.1:514', protocol: tcp}\n").is_ok()
        );
    }

    #[test]
    fn a_given_sink_is_used_unless_the_configuration_decides() {
        use agentgw_core::audit::{Decision, MemorySink};
        let given = MemorySink::default();
        let event = AuditEvent::new(LAYER, "tool_call", Decision::Allow);
        for (yaml, used) in [
            (None, true),
            (Some("level: full\n"), true),
            (Some("destination: {type: stdout}\n"), false),
            (Some("enabled: false\n"), false),
            (Some("level: none\n"), false),
        ] {
            let auditor = match yaml {
                None => Auditor::from_config(None).unwrap(),
                Some(yaml) => audit(yaml).unwrap(),
            };
            auditor.with_sink(Arc::new(given.clone())).record(&event);
            assert_eq!(given.take().len(), usize::from(used), "{yaml:?}");
        }
    }
}
