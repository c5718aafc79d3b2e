//! [`ApiKeyLayer`], [`ApiKeyService`] and their response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use agentgw_core::identity::ApiKeyInfo;
use agentgw_core::{Rejection, ResponseBody};
use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::config::ApiKeyConfig;
use super::store::{KeyHash, KeyTable, Record};
use crate::error::Error;
use crate::location::{Found, Locator};
use crate::mode::Mode;
use crate::reload::Reloading;

const LAYER: &str = "api_key";

/// Why an API key was not accepted.
///
/// [`reason`](ApiKeyError::reason) labels logs and the metric
/// `agentgateway_rejected_requests_total{layer="api_key", reason}`; clients only learn that the
/// key was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// An empty or non-text credential.
    #[error("malformed API key")]
    Malformed,
    /// More than one key in the request.
    #[error("more than one API key in the request")]
    MultipleKeys,
    /// No configured key matches.
    #[error("unknown API key")]
    UnknownKey,
    /// The key's `expiresAt` has passed.
    #[error("API key expired")]
    Expired,
}

impl ApiKeyError {
    /// A short, fixed label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiKeyError::Malformed => "malformed",
            ApiKeyError::MultipleKeys => "multiple_keys",
            ApiKeyError::UnknownKey => "unknown_key",
            ApiKeyError::Expired => "expired_key",
        }
    }
}

/// Authenticates requests with API keys. See the [module docs](crate::api_key) for an example.
#[derive(Clone)]
pub struct ApiKeyLayer {
    shared: Arc<Shared>,
}

struct Shared {
    mode: Mode,
    locator: Locator,
    passthrough: bool,
    keys: Arc<KeyTable>,
    file: Option<Reloading<KeyTable>>,
}

impl std::fmt::Debug for ApiKeyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyLayer")
            .field("mode", &self.shared.mode)
            .field("location", &self.shared.locator)
            .field("passthrough", &self.shared.passthrough)
            .field("keys", &self.shared.keys.len())
            .field("file", &self.shared.file.as_ref().map(Reloading::path))
            .finish()
    }
}

impl ApiKeyLayer {
    /// Builds the layer from `config`; see [`ApiKeyLayer::from_config`].
    pub fn new(config: ApiKeyConfig) -> Result<Self, Error> {
        Self::from_config(&config)
    }

    /// Checks `config`, hashes the keys and reads the key file. Errors name the field path
    /// relative to the `apiKeyAuthentication` block (`keys[2].expiresAt`, `file`) and never
    /// contain a key.
    pub fn from_config(config: &ApiKeyConfig) -> Result<Self, Error> {
        let locator = Locator::new(&config.location, "location")?;
        let keys = Arc::new(
            KeyTable::build(&config.keys, "keys", None)
                .map_err(|(field, reason)| Error::invalid(field, reason))?,
        );
        let file = match &config.file {
            None => None,
            Some(path) => {
                let config_keys = Arc::clone(&keys);
                Some(Reloading::open(
                    path,
                    config.reload_interval,
                    "API keys",
                    "file",
                    move |bytes| KeyTable::from_file(bytes, &config_keys),
                )?)
            }
        };
        if config.file.is_none() && keys.len() == 0 && config.mode != Mode::Permissive {
            return Err(Error::invalid(
                "keys",
                "no keys configured (give keys or file)",
            ));
        }
        Ok(ApiKeyLayer {
            shared: Arc::new(Shared {
                mode: config.mode,
                locator,
                passthrough: config.passthrough,
                keys,
                file,
            }),
        })
    }

    /// Checks one key: its metadata when it is configured and not expired.
    pub fn check(&self, key: &str) -> Result<ApiKeyInfo, ApiKeyError> {
        self.shared.check(key)
    }

    /// The configured mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode
    }
}

impl Shared {
    fn check(&self, key: &str) -> Result<ApiKeyInfo, ApiKeyError> {
        let hash = KeyHash::of(key);
        let record: Record = match self.keys.lookup(&hash) {
            Some(record) => record.clone(),
            None => self
                .file
                .as_ref()
                .and_then(|file| file.get().lookup(&hash).cloned())
                .ok_or(ApiKeyError::UnknownKey)?,
        };
        if record
            .expires_at
            .is_some_and(|expires| crate::unix_now() >= expires)
        {
            return Err(ApiKeyError::Expired);
        }
        Ok(record.info)
    }

    fn challenge(&self, error: Option<ApiKeyError>) -> HeaderValue {
        match (self.locator.is_authorization(), error) {
            (true, None) => HeaderValue::from_static("Bearer"),
            (true, Some(_)) => HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            (false, _) => HeaderValue::from_static("ApiKey"),
        }
    }

    /// Checks the request's key; the rejection to send, if any.
    fn authenticate<B>(&self, req: &mut Request<B>) -> Option<Rejection> {
        let result = match self.locator.find(req.headers(), req.uri()) {
            Found::Absent => None,
            Found::Many => Some(Err(ApiKeyError::MultipleKeys)),
            Found::Malformed => Some(Err(ApiKeyError::Malformed)),
            Found::One(key) => Some(self.check(&key)),
        };
        let info = match result {
            None if self.mode.rejects_missing() => {
                let rejection = Rejection::new(StatusCode::UNAUTHORIZED, LAYER, "missing_api_key")
                    .with_message("API key required")
                    .with_header(WWW_AUTHENTICATE, self.challenge(None));
                rejection.record();
                tracing::debug!(reason = "missing_api_key", "api_key: request rejected");
                return Some(rejection);
            }
            None => return None,
            Some(Ok(info)) => Some(info),
            Some(Err(error)) if self.mode.rejects_invalid() => {
                agentgw_core::metrics::record_rejection(LAYER, error.reason());
                tracing::debug!(reason = error.reason(), "api_key: request rejected");
                return Some(
                    Rejection::new(StatusCode::UNAUTHORIZED, LAYER, "invalid_api_key")
                        .with_message("invalid API key")
                        .with_header(WWW_AUTHENTICATE, self.challenge(Some(error))),
                );
            }
            Some(Err(error)) => {
                tracing::debug!(
                    reason = error.reason(),
                    "api_key: invalid key ignored (Permissive)"
                );
                None
            }
        };
        if !self.passthrough {
            self.locator.remove_from(req);
        }
        if let Some(info) = info {
            tracing::trace!(key = info.name(), "api_key: authenticated");
            req.extensions_mut().insert(info);
        }
        None
    }
}

impl<S> Layer<S> for ApiKeyLayer {
    type Service = ApiKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiKeyService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`ApiKeyLayer`]: checks the request's key, then calls the inner service.
#[derive(Clone)]
pub struct ApiKeyService<S> {
    inner: S,
    shared: Arc<Shared>,
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
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let kind = match self.shared.authenticate(&mut req) {
            None => Kind::Inner {
                future: self.inner.call(req),
            },
            Some(rejection) => Kind::Rejected {
                response: Some(rejection.into_response_for(&req)),
            },
        };
        ResponseFuture { kind }
    }
}

pin_project! {
    /// Response future of [`ApiKeyService`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner {
            #[pin]
            future: F,
        },
        Rejected {
            response: Option<Response<Full<Bytes>>>,
        },
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResponseBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            KindProj::Rejected { response } => {
                let response = response
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(response.map(|body| ResponseBody::Full { body })))
            }
        }
    }
}
