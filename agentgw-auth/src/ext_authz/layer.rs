//! [`ExtAuthLayer`]: the configuration of the check, shared by every service it builds.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use agentgw_core::BodyLimit;
use agentgw_core::audit::AuditSink;

use super::build;
use super::check::Shared;
use super::config::ExtAuthConfig;
use super::service::ExtAuthService;
use crate::Error;

/// Asks an external authorization service about every request before it is forwarded.
///
/// Config only, cheap to clone (the connection pool and cache are shared). Build it with
/// [`ExtAuthLayer::from_config`]. See the [module docs](super) for an example.
#[derive(Clone)]
pub struct ExtAuthLayer {
    shared: Arc<Shared>,
    body_limit: BodyLimit,
    audit: Option<Arc<dyn AuditSink>>,
}

impl ExtAuthLayer {
    /// Builds the layer from the `extAuth` configuration block.
    ///
    /// Errors name the offending field relative to the block, e.g. `backendRef.url` or
    /// `http.allowedHeaders[1]`. No connection is made here: the service is first contacted by
    /// the first request, so building needs no runtime.
    pub fn from_config(config: &ExtAuthConfig) -> Result<Self, Error> {
        Ok(ExtAuthLayer {
            shared: Arc::new(build::shared(config)?),
            body_limit: BodyLimit::DEFAULT,
            audit: None,
        })
    }

    /// The most body bytes read into memory when `includeRequestBody` is set (default
    /// [`BodyLimit::DEFAULT`]); a larger body is a 413. The whole body is read once and shared
    /// with later layers; only `maxRequestBytes` of it go to the service.
    #[must_use]
    pub fn body_limit(mut self, limit: BodyLimit) -> Self {
        self.body_limit = limit;
        self
    }

    /// The authorization service and its state, for a health page or a readiness probe:
    /// `pending` until the first check, then `up` when the last call got a decision (allow or
    /// deny) and `down` when it failed (refused, timed out, an error status). Decisions served
    /// from the cache do not change it.
    pub fn dependencies(&self) -> Vec<agentgw_core::health::Dependency> {
        vec![agentgw_core::health::Dependency::new(
            "ext_authz",
            self.shared.target.clone(),
            self.shared.state.get(),
        )]
    }

    /// Records an `ext_authz` event in `sink` for every check: allowed, denied, or failed
    /// (open or closed), with the denial's status and whether the decision came from the
    /// cache. See [`agentgw_core::audit`] for the schema.
    #[must_use]
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }
}

impl<S> Layer<S> for ExtAuthLayer {
    type Service = ExtAuthService<S>;

    fn layer(&self, inner: S) -> ExtAuthService<S> {
        ExtAuthService::new(inner, self.shared.clone(), self.body_limit)
            .with_audit(self.audit.clone())
    }
}

impl fmt::Debug for ExtAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtAuthLayer")
            .field("shared", &self.shared)
            .field("body_limit", &self.body_limit)
            .field("audit", &self.audit.is_some())
            .finish()
    }
}
