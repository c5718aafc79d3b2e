//! The response future of [`JwtService`](super::JwtService).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use agentgw_core::audit::AuditSink;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::layer::{Shared, Step, invalid_token};
use super::verify::WaitFuture;
use crate::AuthBody;
use crate::denial::Denial;

pin_project! {
    /// Response future of [`JwtService`](super::JwtService): the inner service's future, the
    /// denial answered without calling it, or a wait for a key fetch (a token naming a `kid`
    /// the layer does not know yet) before the token is verified again.
    pub struct ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        state: State<S, ReqB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        Inner {
            #[pin]
            future: S::Future,
        },
        Rejected {
            response: Option<Response<Full<Bytes>>>,
        },
        // Waiting for a key fetch before verifying again.
        Waiting {
            wait: WaitFuture,
            request: Option<Request<ReqB>>,
            service: S,
            shared: Arc<Shared>,
            audit: Option<Arc<dyn AuditSink>>,
        },
    }
}

impl<S, ReqB> ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    pub(super) fn inner(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Inner { future },
        }
    }

    pub(super) fn rejected(response: Response<Full<Bytes>>) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(super) fn waiting(
        wait: WaitFuture,
        request: Request<ReqB>,
        service: S,
        shared: Arc<Shared>,
        audit: Option<Arc<dyn AuditSink>>,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                wait,
                request: Some(request),
                service,
                shared,
                audit,
            },
        }
    }
}

impl<S, ReqB> std::fmt::Debug for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "Inner",
            State::Rejected { .. } => "Rejected",
            State::Waiting { .. } => "Waiting",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Output = Result<Response<AuthBody<ResB>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(AuthBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(AuthBody::from)));
                }
                StateProj::Waiting {
                    wait,
                    request,
                    service,
                    shared,
                    audit,
                } => {
                    ready!(wait.as_mut().poll(cx));
                    let mut req = request
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let next = match shared.authenticate(&mut req, false, audit.as_deref()) {
                        Step::Forward => State::Inner {
                            future: service.call(req),
                        },
                        Step::Reject(denial) => State::Rejected {
                            response: Some(denial.respond_to(&req)),
                        },
                        // `authenticate` without waiting never asks to wait.
                        Step::Wait(_) => State::Rejected {
                            response: Some(Denial::new(invalid_token()).respond_to(&req)),
                        },
                    };
                    state.set(next);
                }
            }
        }
    }
}
