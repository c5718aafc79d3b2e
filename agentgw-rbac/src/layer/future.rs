//! [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use agentgw_core::body::{BodyLimit, RequestBody};
use agentgw_core::mcp::{self, ResponseKind};
use agentgw_core::{BoxError, Rejection, ResponseShape};
use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::{INVALID_RESPONSE, RbacBody, ToolFilter, ToolListStream};
use super::service::{Shared, Verdict};
use crate::policy::LAYER;

type Buffering<B> = agentgw_core::body::BufferFuture<B>;

pin_project! {
    /// The response future of [`CelPolicyService`](crate::CelPolicyService); `ResB` is the
    /// inner service's response body.
    pub struct ResponseFuture<S, B, ResB>
    where
        S: Service<Request<RequestBody<B>>>,
    {
        #[pin]
        state: State<S, B, ResB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, ResB>
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
        // Reading a JSON (or untyped) answer to `tools/list` whole, to filter it before the
        // status is sent: what cannot be filtered becomes a 502.
        Collecting {
            #[pin]
            body: ResB,
            parts: Option<http::response::Parts>,
            collected: BytesMut,
            limit: usize,
            filter: Box<ToolFilter>,
        },
    }
}

impl<S, B, ResB> ResponseFuture<S, B, ResB>
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

impl<S, B, ResB> Future for ResponseFuture<S, B, ResB>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<RbacBody<ResB>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Denied { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(RbacBody::from)));
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
                            let shape = shape.take().unwrap_or_default();
                            return Poll::Ready(Ok(rejection
                                .respond_in(&shape)
                                .map(RbacBody::from)));
                        }
                    };
                    match shared.decide(&req) {
                        Verdict::Deny(denied) => {
                            return Poll::Ready(Ok(denied.map(RbacBody::from)));
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
                    match wrap(response, filter.take(), *limit) {
                        Wrapped::Ready(response) => return Poll::Ready(Ok(response)),
                        Wrapped::Collect {
                            parts,
                            body,
                            limit,
                            filter,
                        } => State::Collecting {
                            body,
                            parts: Some(parts),
                            collected: BytesMut::new(),
                            limit,
                            filter,
                        },
                    }
                }
                StateProj::Collecting {
                    mut body,
                    parts,
                    collected,
                    limit,
                    filter,
                } => loop {
                    let failure = match ready!(body.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) if collected.len() + data.len() > *limit => {
                                "the upstream's tools/list answer is too large to filter"
                            }
                            Ok(data) => {
                                collected.extend_from_slice(&data);
                                continue;
                            }
                            // Trailers of a body read whole are not forwarded.
                            Err(_) => continue,
                        },
                        Some(Err(_)) => "the upstream's tools/list answer could not be read",
                        None => match filter.filter_json(collected.split().freeze()) {
                            Ok(bytes) => {
                                let mut parts = parts
                                    .take()
                                    .expect("ResponseFuture polled after completion");
                                parts
                                    .headers
                                    .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                                return Poll::Ready(Ok(Response::from_parts(
                                    parts,
                                    RbacBody::full(bytes),
                                )));
                            }
                            Err(message) => message,
                        },
                    };
                    return Poll::Ready(Ok(bad_gateway(filter, failure)));
                },
            };
            self.as_mut().project().state.set(next);
        }
    }
}

/// What to do with the inner service's response.
// Moved once per response, never stored: boxing a variant would cost an allocation instead.
#[allow(clippy::large_enum_variant)]
enum Wrapped<ResB> {
    /// Send it as it is (its body possibly filtered as it streams).
    Ready(Response<RbacBody<ResB>>),
    /// Read its body whole (at most `limit` bytes) and filter it first.
    Collect {
        parts: http::response::Parts,
        body: ResB,
        limit: usize,
        filter: Box<ToolFilter>,
    },
}

/// Wraps the inner response's body, filtering it when it answers a `tools/list` request:
/// an event stream event by event, a JSON body read whole, an untyped body only when it is
/// empty; any other type or a `Content-Encoding` (which cannot be filtered) is a 502.
fn wrap<ResB>(
    response: Response<ResB>,
    filter: Option<Box<ToolFilter>>,
    limit: BodyLimit,
) -> Wrapped<ResB> {
    // Clients do not read an error status's body as the list.
    let Some(filter) = filter.filter(|_| response.status().is_success()) else {
        return Wrapped::Ready(response.map(RbacBody::inner));
    };
    let kind = mcp::response_kind(response.headers());
    let (mut parts, body) = response.into_parts();
    match kind {
        ResponseKind::Json => Wrapped::Collect {
            parts,
            body,
            limit: limit.bytes(),
            filter,
        },
        ResponseKind::Untyped => Wrapped::Collect {
            parts,
            body,
            limit: 0,
            filter,
        },
        ResponseKind::EventStream => {
            // The filtered body may be shorter.
            parts.headers.remove(CONTENT_LENGTH);
            Wrapped::Ready(Response::from_parts(
                parts,
                RbacBody::transformed(ToolListStream::new(body, filter)),
            ))
        }
        ResponseKind::Unsupported => Wrapped::Ready(bad_gateway(
            &filter,
            "the upstream's tools/list answer has a content type or encoding that cannot be filtered",
        )),
    }
}

/// The 502 JSON-RPC error, with the `tools/list` request's id, that replaces an answer the
/// layer cannot filter.
fn bad_gateway<ResB>(filter: &ToolFilter, message: &'static str) -> Response<RbacBody<ResB>> {
    tracing::warn!(message, "RBAC could not filter a tools/list answer");
    Rejection::new(StatusCode::BAD_GATEWAY, LAYER, INVALID_RESPONSE)
        .with_message(message)
        .with_jsonrpc_code(mcp::codes::INTERNAL_ERROR)
        .respond_in(&ResponseShape::JsonRpc {
            id: filter.id().to_value(),
        })
        .map(RbacBody::from)
}

impl<S, B, ResB> fmt::Debug for ResponseFuture<S, B, ResB>
where
    S: Service<Request<RequestBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Denied { .. } => "denied",
            State::Buffering { .. } => "buffering",
            State::Calling { .. } => "calling",
            State::Collecting { .. } => "filtering",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
