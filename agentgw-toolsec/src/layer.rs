//! [`ToolSecurityLayer`]: configuration only, cheap to clone.

use std::sync::Arc;

use agentgw_core::audit::AuditSink;
use agentgw_core::body::BodyLimit;
use tower_layer::Layer;

use crate::audit::Auditor;
use crate::config::ToolSecurityConfig;
use crate::error::ToolSecError;
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
    /// A layer with the defaults of `toolSecurity: {}`: builtin detectors on `tools/list`,
    /// name spoofing and pinning checks, `tools/call` arguments validated against the tools'
    /// input schemas; no allowlist, sanitization, limits or audit.
    pub fn new() -> Self {
        Self::from_config(&ToolSecurityConfig::default())
            .unwrap_or_else(|error| unreachable!("the default configuration is valid: {error}"))
    }

    /// Compiles `config`: every pattern into one automaton per rule, every value checked.
    ///
    /// # Errors
    ///
    /// A [`ToolSecError`] naming the field at fault, e.g.
    /// `invalid regex in toolSecurity.inputValidation.rules[0].arguments[1].reject[0].pattern: ...`
    /// or `toolSecurity.sandbox.limits.networkAccess is not supported for HTTP upstreams: ...`.
    pub fn from_config(config: &ToolSecurityConfig) -> Result<Self, ToolSecError> {
        Ok(Self {
            policy: Arc::new(Policy::from_config(config)?),
            auditor: Arc::new(Auditor::from_config(config.audit.as_ref())?),
            body_limit: BodyLimit::DEFAULT,
            response_limit: DEFAULT_RESPONSE_LIMIT,
        })
    }

    /// Sends audit events to `sink` instead of the configured destination (level `basic` when
    /// the configuration has no `audit` block).
    pub fn audit_sink(mut self, sink: impl AuditSink) -> Self {
        self.auditor = Arc::new(self.auditor.with_sink(Arc::new(sink)));
        self
    }

    /// The largest request body read (default 16 MiB); larger requests get `413`.
    pub fn body_limit(mut self, limit: BodyLimit) -> Self {
        self.body_limit = limit;
        self
    }

    /// The largest upstream answer held in memory to inspect it: a whole JSON body, or one
    /// event of a stream (default 16 MiB). A larger answer is replaced by a JSON-RPC error.
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
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for ToolSecurityLayer {
    type Service = ToolSecurityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ToolSecurityService::new(inner, self.clone())
    }
}
