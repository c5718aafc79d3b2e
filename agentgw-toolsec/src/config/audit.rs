//! `audit`: structured events for tool calls and validation decisions.

use serde::Deserialize;

pub use agentgw_core::audit::{AuditDestination, DestinationKind, SyslogProtocol};

use super::yes;

/// `audit`: structured events for tool calls and validation decisions.
///
/// [`Default`] is the value of `audit: {}`: on, level `basic`, no arguments or results, events
/// to the layer's [`audit_sink`](crate::ToolSecurityLayer::audit_sink) or else stdout.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How much to record.
    #[serde(default)]
    pub level: AuditLevel,
    /// With `level: full`, the call's arguments (secrets masked).
    #[serde(default)]
    pub include_arguments: bool,
    /// With `level: full`, the tool's result (secrets masked, shortened).
    #[serde(default)]
    pub include_response: bool,
    /// Where events go: stdout, syslog or webhook (see [`AuditDestination`]). Without it,
    /// events go to the sink given to
    /// [`ToolSecurityLayer::audit_sink`](crate::ToolSecurityLayer::audit_sink), or else to
    /// stdout.
    #[serde(default)]
    pub destination: Option<AuditDestination>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            level: AuditLevel::default(),
            include_arguments: false,
            include_response: false,
            destination: None,
        }
    }
}

impl AuditConfig {
    /// Sets `enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets `level`.
    #[must_use]
    pub fn level(mut self, level: AuditLevel) -> Self {
        self.level = level;
        self
    }

    /// Sets `includeArguments` (recorded at `level: full`; below it, a load-time warning).
    #[must_use]
    pub fn include_arguments(mut self, on: bool) -> Self {
        self.include_arguments = on;
        self
    }

    /// Sets `includeResponse` (recorded at `level: full`; below it, a load-time warning).
    #[must_use]
    pub fn include_response(mut self, on: bool) -> Self {
        self.include_response = on;
        self
    }

    /// Sets `destination`.
    #[must_use]
    pub fn destination(mut self, destination: AuditDestination) -> Self {
        self.destination = Some(destination);
        self
    }
}

/// How much the audit records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditLevel {
    /// Nothing.
    None,
    /// One event per tool call and per validation decision: identity, tool, decision, rule,
    /// latency.
    #[default]
    Basic,
    /// As `basic`, plus arguments and results where `includeArguments` / `includeResponse`.
    Full,
}

impl AuditLevel {
    /// The level as written in YAML: `none`, `basic`, `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditLevel::None => "none",
            AuditLevel::Basic => "basic",
            AuditLevel::Full => "full",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{SEED_AUDIT, seed};

    #[test]
    fn seed_audit_block_deserializes() {
        let audit = seed(SEED_AUDIT).audit.expect("audit");
        assert_eq!(audit.level, AuditLevel::Full);
        assert!(audit.include_arguments && audit.include_response);
        assert_eq!(
            audit.destination.map(|destination| destination.kind),
            Some(DestinationKind::Stdout)
        );
    }

    #[test]
    fn builders_match_the_yaml() {
        let built = AuditConfig::default()
            .level(AuditLevel::Full)
            .include_response(true)
            .destination(AuditDestination::syslog("collector:514"));
        let parsed = seed(
            "audit:\n  level: full\n  includeResponse: true\n  destination: {type: syslog, address: \"collector:514\"}\n",
        );
        assert_eq!(parsed.audit, Some(built));
        assert_eq!(seed("audit: {}\n").audit, Some(AuditConfig::default()));
        assert!(!AuditConfig::default().enabled(false).enabled);
    }
}
