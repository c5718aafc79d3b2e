//! [`CelPolicyLayer`] and [`CelPolicyService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use agentgw_core::audit::{self, AuditEvent, AuditSink};
use agentgw_core::body::{BodyLimit, RequestBody, buffer_request_boxed};
use agentgw_core::mcp::methods::TOOLS_LIST;
use agentgw_core::path::canonicalize_request;
use agentgw_core::{Attributes, BoxError, Rejection, ResponseShape};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{RbacBody, ToolFilter};
use super::future::ResponseFuture;
use crate::config::RbacConfig;
use crate::error::Error;
use crate::policy::{CelPolicy, Decision, LAYER};

/// Applies a [`CelPolicy`] to every request. See the [crate docs](crate) for an example.
///
/// - A denied request never reaches the inner service. It is answered by
///   [`Rejection`]: `403` with an OpenAI-style error on LLM routes; on MCP, a JSON-RPC error
///   carrying the request id (HTTP 200 when the id is known, with `error.data.status` 403:
///   see [`agentgw_core::rejection`]).
/// - The body is buffered (up to [`CelPolicyLayer::body_limit`], 413 beyond) only when some
///   rule reads `request.body` or `mcp.*`; otherwise it streams through untouched.
/// - When some rule reads `mcp.*`, the result of an MCP `tools/list` request loses the tools
///   the caller could never call (JSON or event-stream responses alike); see
///   [`CelPolicy::tool_visible`]. An answer that cannot be filtered (not JSON-RPC, encoded,
///   of another content type, a `tools` member that is not a list of tools) becomes a 502
///   JSON-RPC error rather than pass unfiltered. JSON-RPC batches are then denied (reason
///   `jsonrpc_batch`):
///   the `mcp.*` attributes describe a single message.
#[derive(Clone)]
pub struct CelPolicyLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) policy: Arc<CelPolicy>,
    pub(crate) body_limit: BodyLimit,
    filter_tool_lists: bool,
    audit: Option<Arc<dyn AuditSink>>,
}

impl CelPolicyLayer {
    /// A layer enforcing the policy of `config`, compiled for any route.
    ///
    /// # Errors
    ///
    /// An [`Error`] naming the rule's path relative to the `rbac` block
    /// (`policy.matchExpressions[1]`) and, for expression errors, the line and column.
    pub fn from_config(config: &RbacConfig) -> Result<Self, Error> {
        CelPolicy::from_config(config).map(CelPolicyLayer::from_policy)
    }

    /// A layer enforcing a policy compiled already, for instance with
    /// [`CelPolicy::compile`] and [`CompileOptions`](crate::CompileOptions) naming the kind of
    /// route (so that `mcp.*` rules on an LLM route fail at load time).
    pub fn from_policy(policy: CelPolicy) -> Self {
        CelPolicyLayer {
            shared: Arc::new(Shared {
                policy: Arc::new(policy),
                body_limit: BodyLimit::DEFAULT,
                filter_tool_lists: true,
                audit: None,
            }),
        }
    }

    /// The largest request body read when a rule needs it (default 16 MiB); also bounds a
    /// `tools/list` JSON response read for filtering.
    #[must_use]
    pub fn body_limit(mut self, limit: BodyLimit) -> Self {
        Arc::make_mut(&mut self.shared).body_limit = limit;
        self
    }

    /// Whether to remove from `tools/list` results the tools the caller may not call
    /// (default: true; only happens when some rule reads `mcp.*`).
    #[must_use]
    pub fn filter_tool_lists(mut self, enabled: bool) -> Self {
        Arc::make_mut(&mut self.shared).filter_tool_lists = enabled;
        self
    }

    /// Records an `authorization` event in `sink` for every request the policy denies (rule:
    /// the rule's name; subject, method, path and, for MCP, the tool). See
    /// [`agentgw_core::audit`] for the schema.
    #[must_use]
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        Arc::make_mut(&mut self.shared).audit = Some(sink);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &CelPolicy {
        &self.shared.policy
    }
}

impl fmt::Debug for CelPolicyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CelPolicyLayer")
            .field("policy", &self.shared.policy)
            .field("body_limit", &self.shared.body_limit.bytes())
            .field("filter_tool_lists", &self.shared.filter_tool_lists)
            .field("audit", &self.shared.audit.is_some())
            .finish()
    }
}

impl<S> Layer<S> for CelPolicyLayer {
    type Service = CelPolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CelPolicyService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`CelPolicyLayer`].
#[derive(Clone)]
pub struct CelPolicyService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for CelPolicyService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CelPolicyService")
            .field("inner", &self.inner)
            .field("policy", &self.shared.policy)
            .finish()
    }
}

impl<S, B, ResB> Service<Request<B>> for CelPolicyService<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<RbacBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        // `request.path` is the path the upstream will route on.
        if let Err(error) = canonicalize_request(&mut req) {
            return ResponseFuture::denied(error.into_rejection(LAYER).respond_to(&req));
        }
        if !shared.policy.reads_body() {
            return match shared.decide(&req) {
                Verdict::Deny(denied) => ResponseFuture::denied(denied),
                Verdict::Allow(filter) => {
                    let fut = self.inner.call(req.map(RequestBody::streaming));
                    ResponseFuture::calling(fut, filter, shared.body_limit)
                }
            };
        }
        // The body is read asynchronously first: use the instance that was polled ready and
        // leave a fresh clone in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shape = ResponseShape::for_request(&req);
        let buffering = buffer_request_boxed(req, shared.body_limit);
        ResponseFuture::buffering(buffering, inner, shared, shape)
    }
}

/// The rejection reason of a JSON-RPC batch on a route whose policy has MCP rules.
const BATCH_REASON: &str = "jsonrpc_batch";

fn is_batch(attrs: &Attributes<'_>) -> bool {
    attrs
        .body()
        .and_then(|payload| payload.mcp())
        .is_some_and(|envelope| envelope.is_batch())
}

/// What the layer does with a request.
pub(crate) enum Verdict {
    /// Call the inner service; filter the response to a `tools/list` request.
    Allow(Option<Box<ToolFilter>>),
    /// Answer with this denial.
    Deny(Response<Full<Bytes>>),
}

impl Shared {
    /// Decides `req`.
    pub(crate) fn decide<B>(&self, req: &Request<B>) -> Verdict {
        let attrs = Attributes::new(req);
        if self.policy.reads_mcp() && is_batch(&attrs) {
            // The `mcp.*` attributes describe one message: a batch would slip its calls past
            // the tool rules. MCP dropped batching in its 2025-06-18 revision.
            tracing::debug!("JSON-RPC batch denied: the RBAC policy has MCP rules");
            let rejection = Rejection::new(StatusCode::FORBIDDEN, LAYER, BATCH_REASON)
                .with_message("JSON-RPC batches are not allowed by the RBAC policy");
            self.audit_denial(&attrs, BATCH_REASON);
            return Verdict::Deny(rejection.respond_to(req));
        }
        // MCP method names are case-sensitive: a server that folds `Tools/Call` would run a
        // call every rule compared with `tools/call` without matching.
        let lookalike = attrs
            .body()
            .and_then(|payload| payload.mcp())
            .is_some_and(|envelope| {
                envelope
                    .messages()
                    .iter()
                    .filter_map(|message| message.method())
                    .any(|method| agentgw_core::mcp::methods::lookalike(method).is_some())
            });
        if lookalike {
            let rejection = Rejection::new(StatusCode::BAD_REQUEST, LAYER, "jsonrpc_method_case")
                .with_message("JSON-RPC method differs from an MCP method only in case or spacing")
                .with_jsonrpc_code(agentgw_core::mcp::codes::INVALID_REQUEST);
            self.audit_denial(&attrs, rejection.reason());
            return Verdict::Deny(rejection.respond_to(req));
        }
        match self.policy.evaluate(&attrs) {
            Decision::Allow => Verdict::Allow(self.tool_filter(req, &attrs)),
            Decision::Deny(denial) => {
                tracing::debug!(rule = denial.rule, cause = ?denial.cause, "request denied by RBAC policy");
                self.audit_denial(&attrs, denial.rule);
                Verdict::Deny(denial.rejection().respond_to(req))
            }
        }
    }

    /// Records a denial in the audit sink, if set: nothing is built without one.
    fn audit_denial(&self, attrs: &Attributes<'_>, rule: &str) {
        if let Some(sink) = &self.audit {
            sink.record(
                &AuditEvent::new(LAYER, "authorization", audit::Decision::Deny)
                    .with_rule(rule)
                    .with_attributes(attrs),
            );
        }
    }

    /// For an allowed MCP `tools/list` request, the filter of its response.
    fn tool_filter<B>(&self, req: &Request<B>, attrs: &Attributes<'_>) -> Option<Box<ToolFilter>> {
        if !self.filter_tool_lists || !self.policy.reads_mcp() {
            return None;
        }
        let message = attrs.mcp_message()?;
        if message.method() != Some(TOOLS_LIST) {
            return None;
        }
        let id = message.id()?.clone();
        // The response is filtered after the request has moved on: keep its head.
        let mut head = Request::new(());
        *head.method_mut() = req.method().clone();
        *head.uri_mut() = req.uri().clone();
        *head.headers_mut() = req.headers().clone();
        *head.extensions_mut() = req.extensions().clone();
        let (parts, ()) = head.into_parts();
        Some(Box::new(ToolFilter::new(
            Arc::clone(&self.policy),
            parts,
            id,
        )))
    }
}
