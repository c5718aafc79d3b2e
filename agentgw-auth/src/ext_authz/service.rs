//! [`ExtAuthService`] and its response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use agentgw_core::body::buffer_request;
use agentgw_core::path::canonicalize_request;
use agentgw_core::rejection::RouteKind;
use agentgw_core::{BodyLimit, BoxError, RequestBody, ResponseBody, ResponseShape};

use super::LAYER;
use super::layer::{Outcome, Shared};

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
}

impl<S> ExtAuthService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, body_limit: BodyLimit) -> Self {
        ExtAuthService {
            inner,
            shared,
            body_limit,
        }
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
        ResponseFuture {
            inner: Box::pin(authorize(
                Arc::clone(&self.shared),
                self.body_limit,
                inner,
                req,
            )),
        }
    }
}

type BoxedResponse<ResBody, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<ResBody>>, E>> + Send>>;

/// The response future of [`ExtAuthService`].
pub struct ResponseFuture<ResBody, E> {
    inner: BoxedResponse<ResBody, E>,
}

impl<ResBody, E> Future for ResponseFuture<ResBody, E> {
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<ResBody, E> fmt::Debug for ResponseFuture<ResBody, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// Buffers the body when the check needs it, asks the service, then forwards or answers.
async fn authorize<S, B, ResBody>(
    shared: Arc<Shared>,
    body_limit: BodyLimit,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    // The authorization service decides on the path the upstream will route on.
    if let Err(rejection) = canonicalize_request(&mut req).map_err(|e| e.into_rejection(LAYER)) {
        rejection.record();
        return Ok(rejection.into_response_for(&req).map(full));
    }
    let req = if shared.needs_body() {
        // Kept to shape a 413 for the route: `buffer_request` consumes the request.
        let uri = req.uri().clone();
        let kind = req.extensions().get::<RouteKind>().copied();
        match buffer_request(req, body_limit).await {
            Ok(req) => req,
            Err(rejection) => {
                rejection.record();
                let mut extensions = http::Extensions::new();
                if let Some(kind) = kind {
                    extensions.insert(kind);
                }
                let shape = ResponseShape::from_parts(uri.path(), &extensions);
                return Ok(rejection.into_response(&shape).map(full));
            }
        }
    } else {
        req.map(RequestBody::streaming)
    };
    let (mut parts, body) = req.into_parts();
    match shared.decide(&parts).await {
        Outcome::Allow(allow) => {
            if let Err(err) = allow.apply_to_request(&mut parts)
                && let Some(rejection) = shared.fail_after_decision(err)
            {
                rejection.record();
                let shape = ResponseShape::from_parts(parts.uri.path(), &parts.extensions);
                return Ok(rejection.into_response(&shape).map(full));
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
            rejection.record();
            let shape = ResponseShape::from_parts(parts.uri.path(), &parts.extensions);
            Ok(rejection.into_response(&shape).map(full))
        }
    }
}

fn full<B>(body: http_body_util::Full<Bytes>) -> ResponseBody<B> {
    ResponseBody::Full { body }
}
