//! [`JwtService`]: verifies the request's token, then calls the inner service or answers.

use std::sync::Arc;
use std::task::{Context, Poll};

use agentgw_core::audit::AuditSink;
use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{Shared, Step};
use crate::AuthBody;

/// The service of [`JwtLayer`](super::JwtLayer): verifies the request's token, then calls the
/// inner service. See the [module docs](super) for an example.
#[derive(Clone)]
pub struct JwtService<S> {
    inner: S,
    shared: Arc<Shared>,
    audit: Option<Arc<dyn AuditSink>>,
}

impl<S> JwtService<S> {
    pub(super) fn new(inner: S, shared: Arc<Shared>, audit: Option<Arc<dyn AuditSink>>) -> Self {
        JwtService {
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

impl<S: std::fmt::Debug> std::fmt::Debug for JwtService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtService")
            .field("inner", &self.inner)
            .field("mode", &self.shared.mode)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for JwtService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
{
    type Response = Response<AuthBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        match self
            .shared
            .authenticate(&mut req, true, self.audit.as_deref())
        {
            Step::Forward => ResponseFuture::inner(self.inner.call(req)),
            Step::Reject(denial) => ResponseFuture::rejected(denial.respond_to(&req)),
            Step::Wait(wait) => {
                // The readied service goes into the future; this one gets a fresh clone.
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiting(
                    wait,
                    req,
                    service,
                    Arc::clone(&self.shared),
                    self.audit.clone(),
                )
            }
        }
    }
}
