//! [`ApiKeyService`]: checks the request's key, then calls the inner service or answers.

use std::sync::Arc;
use std::task::{Context, Poll};

use agentgw_core::audit::AuditSink;
use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Shared;
use crate::AuthBody;

/// The service of [`ApiKeyLayer`](super::ApiKeyLayer): checks the request's key, then calls
/// the inner service. See the [module docs](super) for an example.
#[derive(Clone)]
pub struct ApiKeyService<S> {
    inner: S,
    shared: Arc<Shared>,
    audit: Option<Arc<dyn AuditSink>>,
}

impl<S> ApiKeyService<S> {
    pub(super) fn new(inner: S, shared: Arc<Shared>, audit: Option<Arc<dyn AuditSink>>) -> Self {
        ApiKeyService {
            inner,
            shared,
            audit,
        }
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
            .field("mode", &self.shared.mode)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ApiKeyService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<AuthBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        match self.shared.authenticate(&mut req, self.audit.as_deref()) {
            None => ResponseFuture::inner(self.inner.call(req)),
            Some(denial) => ResponseFuture::rejected(denial.respond_to(&req)),
        }
    }
}
