//! The response future of [`ApiKeyService`](super::ApiKeyService).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use agentgw_core::ResponseShape;
use agentgw_core::body::{BufferFuture, RequestBody};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::layer::Checker;
use super::scope::Scope;
use crate::AuthBody;

pin_project! {
    /// Response future of [`ApiKeyService`](super::ApiKeyService): the inner service's future,
    /// the denial answered without calling it, or, for a key with `models`, the read of the
    /// request body whose `model` decides between the two.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<RequestBody<B>>>,
    {
        #[pin]
        kind: Kind<S, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, B>
    where
        S: Service<Request<RequestBody<B>>>,
    {
        Inner {
            #[pin]
            future: S::Future,
        },
        Rejected {
            response: Option<Response<Full<Bytes>>>,
        },
        CheckingModel {
            buffering: BufferFuture<B>,
            inner: Option<S>,
            checker: Arc<Checker>,
            scope: Arc<Scope>,
            shape: Option<ResponseShape>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<RequestBody<B>>>,
{
    pub(super) fn inner(future: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    pub(super) fn rejected(response: Response<Full<Bytes>>) -> Self {
        ResponseFuture {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }

    pub(super) fn buffering(
        buffering: BufferFuture<B>,
        inner: S,
        checker: Arc<Checker>,
        scope: Arc<Scope>,
        shape: ResponseShape,
    ) -> Self {
        ResponseFuture {
            kind: Kind::CheckingModel {
                buffering,
                inner: Some(inner),
                checker,
                scope,
                shape: Some(shape),
            },
        }
    }
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<RequestBody<B>>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.kind {
            Kind::Inner { .. } => "Inner",
            Kind::Rejected { .. } => "Rejected",
            Kind::CheckingModel { .. } => "CheckingModel",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>>,
{
    type Output = Result<Response<AuthBody<ResB>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().kind.project() {
                KindProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(AuthBody::inner)));
                }
                KindProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(AuthBody::from)));
                }
                KindProj::CheckingModel {
                    buffering,
                    inner,
                    checker,
                    scope,
                    shape,
                } => {
                    let mut req = match ready!(buffering.as_mut().poll(cx)) {
                        Ok(req) => req,
                        Err(rejection) => {
                            let shape = shape.take().unwrap_or_default();
                            return Poll::Ready(Ok(rejection
                                .respond_in(&shape)
                                .map(AuthBody::from)));
                        }
                    };
                    if let Some(denial) = checker.check_model(scope, &mut req) {
                        return Poll::Ready(Ok(denial.respond_to(&req).map(AuthBody::from)));
                    }
                    let mut inner = inner
                        .take()
                        .expect("ResponseFuture polled after completion");
                    Kind::Inner {
                        future: inner.call(req),
                    }
                }
            };
            self.as_mut().project().kind.set(next);
        }
    }
}
