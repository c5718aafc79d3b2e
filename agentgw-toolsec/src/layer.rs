//! [`ToolSecurityLayer`]: configuration only, cheap to clone.

use std::sync::Arc;

use agentgw_core::audit::AuditSink;
use agentgw_core::body::BodyLimit;
use agentgw_core::config::{ConfigError, ConfigWarning};
use agentgw_core::escalation::Escalation;
use tower_layer::Layer;

use crate::audit::Auditor;
use crate::config::{AuditLevel, ToolSecurityConfig};
use crate::error::Error;
use crate::policy::Policy;
use crate::service::ToolSecurityService;

/// The default bound of a buffered upstream answer (a JSON body, or one event of a stream).
const DEFAULT_RESPONSE_LIMIT: BodyLimit = BodyLimit::new(16 * 1024 * 1024);

/// Applies MCP tool security to the requests and responses of an MCP Streamable HTTP
/// endpoint. See the [crate docs](crate) for what it does and an example.
///
/// Put it on MCP routes only: every POST must be JSON-RPC. Cloning is cheap: the compiled
/// policy and the state learned from `tools/list` results (pins, schemas, withheld tools) are
/// shared by every clone and every service the layer makes.
#[derive(Clone, Debug)]
pub struct ToolSecurityLayer {
    pub(crate) policy: Arc<Policy>,
    pub(crate) auditor: Arc<Auditor>,
    pub(crate) body_limit: BodyLimit,
    pub(crate) response_limit: BodyLimit,
    pub(crate) warnings: Arc<[ConfigWarning]>,
    /// `escalation`: where refusals of `Escalate` rules go (audited like the layer).
    pub(crate) escalation: Option<Escalation>,
}

impl ToolSecurityLayer {
    /// Compiles `config`: every pattern into one automaton per rule, every value checked.
    /// The configuration is borrowed: one configuration can build many layers (each with its
    /// own pins and learned schemas).
    ///
    /// # Errors
    ///
    /// An [`Error`] naming the field at fault relative to the `toolSecurity` block, e.g.
    /// `inputValidation.rules[0].arguments[1].reject[0].pattern: invalid regex: ...` or
    /// `audit.destination.address: ...`.
    ///
    /// Fields that load but have no effect where they are (see [`warnings`](Self::warnings))
    /// are logged with `tracing::warn!`.
    pub fn from_config(config: &ToolSecurityConfig) -> Result<Self, Error> {
        let policy = Policy::from_config(config)?;
        let auditor = Auditor::from_config(config.audit.as_ref())?;
        let escalation =
            compile_escalation(config, &policy)?.map(|escalation| match auditor.sink() {
                Some(sink) => escalation.audit_sink(Arc::clone(sink)),
                None => escalation,
            });
        let layer = Self {
            policy: Arc::new(policy),
            auditor: Arc::new(auditor),
            body_limit: BodyLimit::DEFAULT,
            response_limit: DEFAULT_RESPONSE_LIMIT,
            warnings: config_warnings(config).into(),
            escalation,
        };
        for warning in layer.warnings.iter() {
            tracing::warn!(field = %warning.path, "toolSecurity: {}", warning.message);
        }
        Ok(layer)
    }

    /// The fields of the configuration that load but do not do what they seem to say, each
    /// with its path relative to the `toolSecurity` block:
    ///
    /// - `sandbox.limits.networkAccess`, `fileSystemAccess`, `maxMemory`, `maxCpuTime` and
    ///   `maxOpenFiles` ([`STDIO_ONLY_LIMITS`](crate::config::STDIO_ONLY_LIMITS)) restrict
    ///   the process of a stdio tool server (the `stdio` module); in front of an HTTP upstream
    ///   they have no effect (its limits are `maxExecutionTime` and `maxOutputSize`). A program
    ///   that puts this layer in front of a stdio server drops these warnings.
    /// - `audit.includeArguments` and `audit.includeResponse` below `audit.level: full`: the
    ///   level wins, arguments and results are not recorded.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// Sends audit events to `sink` when the configuration names no `audit.destination`
    /// (level `basic` when it has no `audit` block; nothing when it turns auditing off). This
    /// is how the gateway hands every layer its `audit.destinations`.
    #[must_use]
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.auditor = Arc::new(self.auditor.with_sink(sink));
        if let (Some(escalation), Some(sink)) = (self.escalation.take(), self.auditor.sink()) {
            self.escalation = Some(escalation.audit_sink(Arc::clone(sink)));
        }
        self
    }

    /// The largest request body read (default 16 MiB); larger requests get `413`.
    #[must_use]
    pub fn body_limit(mut self, limit: BodyLimit) -> Self {
        self.body_limit = limit;
        self
    }

    /// The largest upstream answer held in memory to inspect it: a whole JSON body, or one
    /// event of a stream (default 16 MiB). A larger answer is replaced by a JSON-RPC error.
    #[must_use]
    pub fn response_limit(mut self, limit: BodyLimit) -> Self {
        self.response_limit = limit;
        self
    }

    /// Forgets what was learned from `tools/list` results (pins, schemas, withheld tools), for
    /// `upstream` only or for every upstream: after an operator reviewed a changed tool, its
    /// new definition is pinned on the next listing.
    ///
    /// Only this layer's memory is reset: pins from `pinning.file` stay until the file changes,
    /// and shared pins (`pinning.redis`) stay until their Redis field is deleted.
    pub fn reset_pins(&self, upstream: Option<&str>) {
        self.policy.reset(upstream);
    }
}

/// The `escalation` block, checked against the rules that escalate.
fn compile_escalation(
    config: &ToolSecurityConfig,
    policy: &Policy,
) -> Result<Option<Escalation>, Error> {
    match (&config.escalation, policy.escalates()) {
        (None, false) => Ok(None),
        (None, true) => Err(Error::invalid(
            "escalation",
            "is missing: rules with `action: Escalate` send their refusals here (set \
             `webhook`, or `consoleNotification: true`)",
        )),
        (Some(_), false) => Err(Error::invalid(
            "escalation",
            "no rule escalates: set `action: Escalate` on `allowlist`, \
             `allowlist.tools[]` or `inputValidation.rules[]`, or remove the block",
        )),
        (Some(escalation), true) => {
            Escalation::from_config(escalation)
                .map(Some)
                .map_err(|error| {
                    Error::invalid(
                        agentgw_core::config::join("escalation", error.path()),
                        error.reason(),
                    )
                })
        }
    }
}

/// See [`ToolSecurityLayer::warnings`].
pub(crate) fn config_warnings(config: &ToolSecurityConfig) -> Vec<ConfigWarning> {
    let mut warnings = Vec::new();
    if let Some(sandbox) = &config.sandbox {
        for field in crate::config::STDIO_ONLY_LIMITS {
            if sandbox.limits.is_set(field) {
                warnings.push(ConfigWarning::new(
                    format!("sandbox.limits.{field}"),
                    "applies to stdio tool servers the gateway launches, not to an HTTP \
                     upstream: ignored here (the limits of an HTTP upstream are \
                     maxExecutionTime and maxOutputSize)",
                ));
            }
        }
    }
    if let Some(audit) = &config.audit
        && audit.level != AuditLevel::Full
    {
        for (set, field, what) in [
            (audit.include_arguments, "includeArguments", "arguments"),
            (audit.include_response, "includeResponse", "results"),
        ] {
            if set {
                warnings.push(ConfigWarning::new(
                    format!("audit.{field}"),
                    format!(
                        "has no effect below level: full (the level is {}): tool {what} are not \
                         recorded",
                        audit.level.as_str()
                    ),
                ));
            }
        }
    }
    warnings
}

impl Default for ToolSecurityLayer {
    /// The layer of `toolSecurity: {}` ([`ToolSecurityConfig::default`]): builtin detectors
    /// on `tools/list`, name spoofing and pinning checks, `tools/call` arguments validated
    /// against the tools' input schemas, unlisted tools listed before they are called; no
    /// allowlist, sanitization, limits or audit.
    fn default() -> Self {
        Self::from_config(&ToolSecurityConfig::default())
            .unwrap_or_else(|error| unreachable!("the default configuration is valid: {error}"))
    }
}

impl<S> Layer<S> for ToolSecurityLayer {
    type Service = ToolSecurityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ToolSecurityService::new(inner, self.clone())
    }
}
