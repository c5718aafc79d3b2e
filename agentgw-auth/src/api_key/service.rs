//! [`ApiKeyService`]: checks the request's key, then calls the inner service or answers.

use std::sync::Arc;
use std::task::{Context, Poll};

use agentgw_core::body::{RequestBody, buffer_request_boxed};
use agentgw_core::{BoxError, ResponseShape};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{Checker, Outcome};
use crate::AuthBody;

/// The service of [`ApiKeyLayer`](super::ApiKeyLayer): checks the request's key, then calls
/// the inner service. See the [module docs](super) for an example.
///
/// The inner service receives the body as a [`RequestBody`]: streaming as it came, or, for a
/// key with `models`, the bytes read to find the request's `model` (also cached as a
/// [`Payload`](agentgw_core::Payload) for the layers after this one).
#[derive(Clone)]
pub struct ApiKeyService<S> {
    inner: S,
    checker: Arc<Checker>,
}

impl<S> ApiKeyService<S> {
    pub(super) fn new(inner: S, checker: Arc<Checker>) -> Self {
        ApiKeyService { inner, checker }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for ApiKeyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyService")
            .field("inner", &self.inner)
            .field("mode", &self.checker.shared.mode)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ApiKeyService<S>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
{
    type Response = Response<AuthBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        match self.checker.authenticate(&mut req) {
            Outcome::Forward => {
                ResponseFuture::inner(self.inner.call(req.map(RequestBody::streaming)))
            }
            Outcome::Deny(denial) => ResponseFuture::rejected(denial.respond_to(&req)),
            Outcome::CheckModel(scope) => {
                // The body is read asynchronously first: use the instance that was polled ready
                // and leave a fresh clone in its place.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let shape = ResponseShape::for_request(&req);
                let buffering = buffer_request_boxed(req, self.checker.body_limit);
                ResponseFuture::buffering(buffering, inner, Arc::clone(&self.checker), scope, shape)
            }
        }
    }
}
