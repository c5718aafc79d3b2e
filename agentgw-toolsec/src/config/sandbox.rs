//! `sandbox`: limits the gateway enforces on tool calls.

use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::yes;

/// `sandbox`: limits the gateway enforces on tool calls.
///
/// [`Default`] is the value of `sandbox: {}`: on, strict, without limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SandboxConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `strict` enforces the limits; `permissive` only records violations (audit, metrics).
    #[serde(default)]
    pub mode: SandboxMode,
    /// The limits.
    #[serde(default)]
    pub limits: SandboxLimits,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mode: SandboxMode::default(),
            limits: SandboxLimits::default(),
        }
    }
}

impl SandboxConfig {
    /// Sets `enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets `mode`.
    #[must_use]
    pub fn mode(mut self, mode: SandboxMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets `limits`.
    #[must_use]
    pub fn limits(mut self, limits: SandboxLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// How sandbox limits apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// A call over a limit is cancelled or its output replaced by a JSON-RPC error.
    #[default]
    Strict,
    /// Violations are audited and counted, nothing is enforced (a dry run).
    Permissive,
}

/// `sandbox.limits`. [`Default`]: no limit.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SandboxLimits {
    /// The longest a `tools/call` may take (`30s`, `500ms`, `2m`, or a number of seconds); the
    /// call is then cancelled.
    #[serde(default, with = "agentgw_core::config::option_duration")]
    pub max_execution_time: Option<Duration>,
    /// The largest `tools/call` response, in bytes (`1Mi`, `512Ki`, `10M`, `65536`).
    #[serde(default, with = "agentgw_core::config::option_byte_size")]
    pub max_output_size: Option<u64>,
    /// Only for stdio servers the gateway launches (not implemented): on an HTTP upstream it
    /// loads with a warning and has no effect.
    #[serde(default)]
    pub network_access: Option<IgnoredAny>,
    /// Only for stdio servers the gateway launches (not implemented): on an HTTP upstream it
    /// loads with a warning and has no effect.
    #[serde(default)]
    pub file_system_access: Option<IgnoredAny>,
}

impl SandboxLimits {
    /// Sets `maxExecutionTime`.
    #[must_use]
    pub fn max_execution_time(mut self, max: Duration) -> Self {
        self.max_execution_time = Some(max);
        self
    }

    /// Sets `maxOutputSize`, in bytes.
    #[must_use]
    pub fn max_output_size(mut self, bytes: u64) -> Self {
        self.max_output_size = Some(bytes);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{SEED_SANDBOX, seed};

    #[test]
    fn seed_sandbox_block_deserializes() {
        let sandbox = seed(SEED_SANDBOX).sandbox.expect("sandbox");
        assert_eq!(sandbox.mode, SandboxMode::Strict);
        assert_eq!(
            sandbox.limits.max_execution_time,
            Some(Duration::from_secs(30))
        );
        assert_eq!(sandbox.limits.max_output_size, Some(1 << 20));
        // Parsed, so that the layer can warn about them by name.
        assert!(sandbox.limits.network_access.is_some());
        assert!(sandbox.limits.file_system_access.is_some());
    }

    #[test]
    fn sizes_and_durations() {
        let limits: SandboxLimits =
            serde_saphyr::from_str("maxExecutionTime: 250ms\nmaxOutputSize: 4096\n").unwrap();
        assert_eq!(limits.max_execution_time, Some(Duration::from_millis(250)));
        assert_eq!(limits.max_output_size, Some(4096));
        let error = serde_saphyr::from_str::<SandboxLimits>("maxExecutionTime: soon\n")
            .expect_err("bad duration");
        assert!(error.to_string().contains("soon"), "{error}");
        // The shared rule of agentgw: suffixed sizes and seconds as numbers.
        let limits: SandboxLimits =
            serde_saphyr::from_str("maxExecutionTime: 1.5\nmaxOutputSize: 512Ki\n").unwrap();
        assert_eq!(limits.max_execution_time, Some(Duration::from_millis(1500)));
        assert_eq!(limits.max_output_size, Some(512 << 10));
        assert!(serde_saphyr::from_str::<SandboxLimits>("maxOutputSize: -1\n").is_err());
    }

    #[test]
    fn builders_match_the_yaml() {
        let built = SandboxConfig::default()
            .mode(SandboxMode::Permissive)
            .limits(
                SandboxLimits::default()
                    .max_execution_time(Duration::from_millis(500))
                    .max_output_size(4096),
            );
        let parsed = seed(
            "sandbox:\n  mode: permissive\n  limits:\n    maxExecutionTime: 500ms\n    maxOutputSize: 4Ki\n",
        );
        assert_eq!(parsed.sandbox, Some(built));
        assert_eq!(
            seed("sandbox: {}\n").sandbox,
            Some(SandboxConfig::default())
        );
    }
}
