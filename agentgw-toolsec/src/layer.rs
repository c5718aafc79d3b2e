//! [`ToolSecurityLayer`]: configuration only, cheap to clone.

use std::sync::Arc;

use agentgw_core::audit::AuditSink;
use agentgw_core::body::BodyLimit;
use tower_layer::Layer;

use crate::audit::Auditor;
use crate::config::ToolSecurityConfig;
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
    /// `sandbox.limits.networkAccess: not supported for HTTP upstreams: ...`.
    pub fn from_config(config: &ToolSecurityConfig) -> Result<Self, Error> {
        Ok(Self {
            policy: Arc::new(Policy::from_config(config)?),
            auditor: Arc::new(Auditor::from_config(config.audit.as_ref())?),
            body_limit: BodyLimit::DEFAULT,
            response_limit: DEFAULT_RESPONSE_LIMIT,
        })
    }

    /// Sends audit events to `sink` when the configuration names no `audit.destination`
    /// (level `basic` when it has no `audit` block; nothing when it turns auditing off). This
    /// is how the gateway hands every layer its `audit.destinations`.
    #[must_use]
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.auditor = Arc::new(self.auditor.with_sink(sink));
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
    pub fn reset_pins(&self, upstream: Option<&str>) {
        self.policy.reset(upstream);
    }
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
