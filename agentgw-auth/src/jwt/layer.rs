//! [`JwtLayer`], [`JwtService`] and their response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use agentgw_core::identity::JwtClaims;
use agentgw_core::{Rejection, ResponseBody};
use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::config::JwtConfig;
use super::verify::{JwtError, Verdict, Verifier, WaitFuture};
use crate::error::Error;
use crate::location::{Found, Locator};
use crate::mode::Mode;

const LAYER: &str = "jwt";

/// Authenticates requests with JWTs. See the [module docs](crate::jwt) for an example.
///
/// Cheap to clone: clones share the keys, their refresh task and the verified-token cache.
#[derive(Clone)]
pub struct JwtLayer {
    shared: Arc<Shared>,
}

struct Shared {
    mode: Mode,
    locator: Locator,
    passthrough: bool,
    verifier: Verifier,
}

impl std::fmt::Debug for JwtLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtLayer")
            .field("mode", &self.shared.mode)
            .field("location", &self.shared.locator)
            .field("passthrough", &self.shared.passthrough)
            .field("verifier", &self.shared.verifier)
            .finish()
    }
}

impl JwtLayer {
    /// Builds the layer from `config`; see [`JwtLayer::from_config`].
    pub fn new(config: JwtConfig) -> Result<Self, Error> {
        Self::from_config(&config)
    }

    /// Checks `config` and loads the keys: local keys now, remote keys in a background task
    /// (so a remote provider needs a Tokio runtime). Errors name the field path relative to the
    /// `jwtAuthentication` block, e.g. `providers[0].jwks.remote.url`.
    pub fn from_config(config: &JwtConfig) -> Result<Self, Error> {
        let locator = Locator::new(&config.location, "location")?;
        let verifier = Verifier::new(config)?;
        Ok(JwtLayer {
            shared: Arc::new(Shared {
                mode: config.mode,
                locator,
                passthrough: config.passthrough,
                verifier,
            }),
        })
    }

    /// Whether every provider has keys: local keys always, remote keys once the first fetch
    /// succeeded. Until then tokens of that provider are rejected. Poll it from a readiness
    /// probe.
    pub fn is_ready(&self) -> bool {
        self.shared.verifier.is_ready()
    }

    /// Resolves once every provider has keys (wrap it in a timeout).
    pub async fn ready(&self) {
        self.shared.verifier.ready().await;
    }

    /// Verifies one token with the layer's providers and cache, without waiting for any key
    /// fetch.
    pub fn verify(&self, token: &str) -> Result<JwtClaims, JwtError> {
        match self.shared.verifier.verify(token, false) {
            Verdict::Valid(claims) => Ok(claims),
            Verdict::Invalid(error) => Err(error),
            Verdict::Refetch(_) => Err(JwtError::UnknownKey),
        }
    }

    /// The configured mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode
    }
}

impl<S> Layer<S> for JwtLayer {
    type Service = JwtService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`JwtLayer`]: verifies the request's token, then calls the inner service.
#[derive(Clone)]
pub struct JwtService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for JwtService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtService")
            .field("inner", &self.inner)
            .field("mode", &self.shared.mode)
            .finish_non_exhaustive()
    }
}

enum Step {
    Forward,
    Reject(Box<Rejection>),
    Wait(WaitFuture),
}

impl Shared {
    fn authenticate<B>(&self, req: &mut Request<B>, may_wait: bool) -> Step {
        let verdict = match self.locator.find(req.headers(), req.uri()) {
            Found::Absent => None,
            Found::Many => Some(Verdict::Invalid(JwtError::MultipleTokens)),
            Found::Malformed => Some(Verdict::Invalid(JwtError::Malformed)),
            Found::One(token) => Some(self.verifier.verify(&token, may_wait)),
        };
        let claims = match verdict {
            None if self.mode.rejects_missing() => {
                let rejection = Rejection::new(StatusCode::UNAUTHORIZED, LAYER, "missing_token")
                    .with_message("authentication required")
                    .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                rejection.record();
                tracing::debug!(reason = "missing_token", "jwt: request rejected");
                return Step::Reject(Box::new(rejection));
            }
            None => {
                return Step::Forward;
            }
            Some(Verdict::Refetch(wait)) => return Step::Wait(wait),
            Some(Verdict::Valid(claims)) => Some(claims),
            Some(Verdict::Invalid(error)) if self.mode.rejects_invalid() => {
                // The detailed reason is for metrics and logs; the client learns only that the
                // token was not accepted.
                agentgw_core::metrics::record_rejection(LAYER, error.reason());
                tracing::debug!(reason = error.reason(), "jwt: request rejected");
                return Step::Reject(Box::new(
                    Rejection::new(StatusCode::UNAUTHORIZED, LAYER, "invalid_token")
                        .with_message("invalid token")
                        .with_header(
                            WWW_AUTHENTICATE,
                            HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                        ),
                ));
            }
            Some(Verdict::Invalid(error)) => {
                tracing::debug!(
                    reason = error.reason(),
                    "jwt: invalid token ignored (Permissive)"
                );
                None
            }
        };
        if !self.passthrough {
            self.locator.remove_from(req);
        }
        if let Some(claims) = claims {
            req.extensions_mut().insert(claims);
        }
        Step::Forward
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for JwtService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let state = match self.shared.authenticate(&mut req, true) {
            Step::Forward => State::Inner {
                future: self.inner.call(req),
            },
            Step::Reject(rejection) => State::Rejected {
                response: Some(rejection.into_response_for(&req)),
            },
            Step::Wait(wait) => {
                // The readied service goes into the future; this one gets a fresh clone.
                let clone = self.inner.clone();
                State::Waiting {
                    wait,
                    request: Some(req),
                    service: std::mem::replace(&mut self.inner, clone),
                    shared: Arc::clone(&self.shared),
                }
            }
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// Response future of [`JwtService`].
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
        },
    }
}

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Output = Result<Response<ResponseBody<ResB>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(|body| ResponseBody::Full { body })));
                }
                StateProj::Waiting {
                    wait,
                    request,
                    service,
                    shared,
                } => {
                    ready!(wait.as_mut().poll(cx));
                    let mut req = request
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let next = match shared.authenticate(&mut req, false) {
                        Step::Forward => State::Inner {
                            future: service.call(req),
                        },
                        Step::Reject(rejection) => State::Rejected {
                            response: Some(rejection.into_response_for(&req)),
                        },
                        // `authenticate` without waiting never asks to wait.
                        Step::Wait(_) => State::Rejected {
                            response: Some(
                                Rejection::new(StatusCode::UNAUTHORIZED, LAYER, "invalid_token")
                                    .into_response_for(&req),
                            ),
                        },
                    };
                    state.set(next);
                }
            }
        }
    }
}
