//! [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use agentgw_core::body::{BodyLimit, RequestBody};
use agentgw_core::mcp::{self, ResponseKind};
use agentgw_core::{Rejection, ResponseShape};
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::{RbacBody, ToolFilter};
use super::service::{Shared, Verdict};

type Buffering<B> =
    Pin<Box<dyn Future<Output = Result<Request<RequestBody<B>>, Rejection>> + Send>>;

pin_project! {
    /// The response future of [`CelPolicyService`](crate::CelPolicyService).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<RequestBody<B>>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<RequestBody<B>>>,
    {
        // Denied without calling the inner service.
        Denied {
            response: Option<Response<Full<Bytes>>>,
        },
        // Reading the body a rule needs, then deciding.
        Buffering {
            buffering: Buffering<B>,
            inner: Option<S>,
            shared: Arc<Shared>,
            shape: Option<ResponseShape>,
        },
        // Allowed: waiting for the inner service.
        Calling {
            #[pin]
            fut: S::Future,
            filter: Option<Box<ToolFilter>>,
            limit: BodyLimit,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<RequestBody<B>>>,
{
    pub(crate) fn denied(response: Response<Full<Bytes>>) -> Self {
        ResponseFuture {
            state: State::Denied {
                response: Some(response),
            },
        }
    }

    pub(crate) fn calling(
        fut: S::Future,
        filter: Option<Box<ToolFilter>>,
        limit: BodyLimit,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { fut, filter, limit },
        }
    }

    pub(crate) fn buffering(
        buffering: Buffering<B>,
        inner: S,
        shared: Arc<Shared>,
        shape: ResponseShape,
    ) -> Self {
        ResponseFuture {
            state: State::Buffering {
                buffering,
                inner: Some(inner),
                shared,
                shape: Some(shape),
            },
        }
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>>,
{
    type Output = Result<Response<RbacBody<ResB>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Denied { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(RbacBody::full)));
                }
                StateProj::Buffering {
                    buffering,
                    inner,
                    shared,
                    shape,
                } => {
                    let req = match ready!(buffering.as_mut().poll(cx)) {
                        Ok(req) => req,
                        Err(rejection) => {
                            rejection.record();
                            let shape = shape.take().unwrap_or_default();
                            return Poll::Ready(Ok(rejection
                                .into_response(&shape)
                                .map(RbacBody::full)));
                        }
                    };
                    match shared.decide(&req) {
                        Verdict::Deny(denied) => {
                            return Poll::Ready(Ok(denied.map(RbacBody::full)));
                        }
                        Verdict::Allow(filter) => {
                            let mut inner = inner
                                .take()
                                .expect("ResponseFuture polled after completion");
                            State::Calling {
                                fut: inner.call(req),
                                filter,
                                limit: shared.body_limit,
                            }
                        }
                    }
                }
                StateProj::Calling { fut, filter, limit } => {
                    let response = ready!(fut.poll(cx))?;
                    return Poll::Ready(Ok(wrap(response, filter.take(), *limit)));
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

/// Wraps the inner response's body, filtering it when it answers a `tools/list` request.
fn wrap<ResB>(
    response: Response<ResB>,
    filter: Option<Box<ToolFilter>>,
    limit: BodyLimit,
) -> Response<RbacBody<ResB>> {
    let Some(filter) = filter.filter(|_| response.status().is_success()) else {
        return response.map(RbacBody::inner);
    };
    let kind = mcp::response_kind(response.headers());
    let (mut parts, body) = response.into_parts();
    let body = match kind {
        ResponseKind::Json => RbacBody::filtered_json(body, filter, limit.bytes()),
        ResponseKind::EventStream => RbacBody::filtered_sse(body, filter),
        ResponseKind::Untyped | ResponseKind::Unsupported => {
            return Response::from_parts(parts, RbacBody::inner(body));
        }
    };
    // The filtered body may be shorter.
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<RequestBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Denied { .. } => "denied",
            State::Buffering { .. } => "buffering",
            State::Calling { .. } => "calling",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
