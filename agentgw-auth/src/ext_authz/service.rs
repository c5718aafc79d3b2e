//! [`ExtAuthService`]: buffer the body when the check needs it, ask the service, then forward
//! or answer.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use agentgw_core::audit::AuditSink;
use agentgw_core::body::buffer_request;
use agentgw_core::path::canonicalize_request;
use agentgw_core::rejection::RouteKind;
use agentgw_core::{BodyLimit, BoxError, RequestBody, ResponseBody, ResponseShape};

use super::LAYER;
use super::audit::rejected;
use super::check::{Outcome, Shared};
use super::future::ResponseFuture;

/// The service [`ExtAuthLayer`](super::ExtAuthLayer) wraps around an inner service.
///
/// Each request is checked by the authorization service before the inner service sees it;
/// denials and failures (unless `failureModeAllow`) are answered here and never reach it. See
/// the [module docs](super) for an example.
#[derive(Clone)]
pub struct ExtAuthService<S> {
    inner: S,
    shared: Arc<Shared>,
    body_limit: BodyLimit,
    audit: Option<Arc<dyn AuditSink>>,
}

impl<S> ExtAuthService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, body_limit: BodyLimit) -> Self {
        ExtAuthService {
            inner,
            shared,
            body_limit,
            audit: None,
        }
    }

    /// Audits every check in `audit`, if set.
    pub(crate) fn with_audit(mut self, audit: Option<Arc<dyn AuditSink>>) -> Self {
        self.audit = audit;
        self
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for ExtAuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtAuthService")
            .field("inner", &self.inner)
            .field("ext_auth", &self.shared)
            .field("audit", &self.audit.is_some())
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for ExtAuthService<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The readied service is the one that will be called; a fresh clone stays behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(Box::pin(authorize(
            Arc::clone(&self.shared),
            self.body_limit,
            self.audit.clone(),
            inner,
            req,
        )))
    }
}

/// Buffers the body when the check needs it, asks the service, then forwards or answers.
async fn authorize<S, B, ResBody>(
    shared: Arc<Shared>,
    body_limit: BodyLimit,
    audit: Option<Arc<dyn AuditSink>>,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    // The authorization service decides on the path the upstream will route on.
    if let Err(err) = canonicalize_request(&mut req) {
        return Ok(err.into_rejection(LAYER).respond_to(&req).map(full));
    }
    let req = if shared.needs_body() {
        // Kept to shape a 413 for the route: `buffer_request` consumes the request.
        let uri = req.uri().clone();
        let kind = req.extensions().get::<RouteKind>().copied();
        match buffer_request(req, body_limit).await {
            Ok(req) => req,
            Err(rejection) => {
                let mut extensions = http::Extensions::new();
                if let Some(kind) = kind {
                    extensions.insert(kind);
                }
                let shape = ResponseShape::from_parts(uri.path(), &extensions);
                return Ok(rejection.respond_in(&shape).map(full));
            }
        }
    } else {
        req.map(RequestBody::streaming)
    };
    let (mut parts, body) = req.into_parts();
    match shared.decide(&parts, audit.as_deref()).await {
        Outcome::Allow(allow) => {
            if let Err(err) = allow.apply_to_request(&mut parts)
                && let Some(rejection) = shared.fail_after_decision(err)
            {
                // Allowed, then refused: the service's changes could not be applied.
                if let Some(sink) = audit.as_deref() {
                    sink.record(&rejected(&parts, &rejection, "failed_closed", false));
                }
                let shape = ResponseShape::from_parts(parts.uri.path(), &parts.extensions);
                return Ok(rejection.respond_in(&shape).map(full));
            }
            let response = inner.call(Request::from_parts(parts, body)).await?;
            let (mut head, body) = response.into_parts();
            for op in &allow.response {
                op.apply(&mut head.headers);
            }
            Ok(Response::from_parts(head, ResponseBody::inner(body)))
        }
        Outcome::FailOpen => {
            let response = inner.call(Request::from_parts(parts, body)).await?;
            Ok(response.map(ResponseBody::inner))
        }
        Outcome::Reject(rejection) => {
            let shape = ResponseShape::from_parts(parts.uri.path(), &parts.extensions);
            Ok(rejection.respond_in(&shape).map(full))
        }
    }
}

fn full<B>(body: http_body_util::Full<Bytes>) -> ResponseBody<B> {
    ResponseBody::from(body)
}
