//! [`ApiKeyLayer`]: the checked keys and how a request's key is judged.

use std::sync::Arc;

use agentgw_core::audit::{AuditEvent, AuditSink, Decision};
use agentgw_core::body::BodyLimit;
use agentgw_core::identity::ApiKeyInfo;
use agentgw_core::rejection::RouteKind;
use agentgw_core::reload::Reloading;
use agentgw_core::{Attributes, Payload, Rejection};
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Request, StatusCode};
use tower_layer::Layer;

use super::config::ApiKeyConfig;
use super::error::ApiKeyError;
use super::scope::{ModelBody, Scope};
use super::service::ApiKeyService;
use super::store::{KeyHash, KeyTable, Record};
use crate::denial::Denial;
use crate::error::Error;
use crate::location::{Found, Locator};
use crate::mode::Mode;
use crate::reload::{file_of, watch_file};

/// The `layer` label of this layer's rejections and audit events.
pub(super) const LAYER: &str = "api_key";

/// Authenticates requests with API keys. See the [module docs](crate::api_key) for an example.
#[derive(Clone)]
pub struct ApiKeyLayer {
    shared: Arc<Shared>,
    audit: Option<Arc<dyn AuditSink>>,
    route: Option<Arc<str>>,
    body_limit: BodyLimit,
}

/// What one service of the layer needs per request: the keys, the route it guards, the body
/// limit of a model check and the audit sink.
pub(super) struct Checker {
    pub(super) shared: Arc<Shared>,
    audit: Option<Arc<dyn AuditSink>>,
    route: Option<Arc<str>>,
    pub(super) body_limit: BodyLimit,
}

/// What to do with a request once its key is checked.
pub(super) enum Outcome {
    /// Call the inner service.
    Forward,
    /// Answer with this denial (boxed: denials are rare, forwarding is the hot path).
    Deny(Box<Denial>),
    /// Read the body (bounded) and check its `model` against the key's scope first.
    CheckModel(Arc<Scope>),
}

pub(super) struct Shared {
    pub(super) mode: Mode,
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
            .field("file", &self.shared.file.as_ref().map(file_of))
            .field("route", &self.route)
            .field("body_limit", &self.body_limit.bytes())
            .field("audit", &self.audit.is_some())
            .finish()
    }
}

impl ApiKeyLayer {
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
                Some(watch_file(
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
            audit: None,
            route: None,
            body_limit: BodyLimit::DEFAULT,
        })
    }

    /// Names the route this layer guards, for keys with `routes`: such a key is accepted only
    /// when `name` is one of them (`403`, `api_key_route_not_allowed` otherwise). A layer
    /// without a route name refuses every key that has `routes`. The example gateway sets it to
    /// the name of each route (`routes[].name`).
    #[must_use]
    pub fn route(mut self, name: impl Into<Arc<str>>) -> Self {
        self.route = Some(name.into());
        self
    }

    /// The most bytes read of a request body to find its `model`, for keys with `models`
    /// (default [`BodyLimit::DEFAULT`], 16 MiB; larger bodies are a `413`). Requests of other
    /// keys are never read.
    #[must_use]
    pub fn body_limit(mut self, limit: BodyLimit) -> Self {
        self.body_limit = limit;
        self
    }

    /// Records an `authentication` event in `sink` for every request this layer rejects (rule:
    /// the reason of `agentgateway_rejected_requests_total`, never the key). See
    /// [`agentgw_core::audit`] for the schema.
    #[must_use]
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Checks one key: its metadata when it is configured and not expired. Its `routes` and
    /// `models` are not checked here (the service checks them against the request).
    pub fn check(&self, key: &str) -> Result<ApiKeyInfo, ApiKeyError> {
        self.shared.check(key, |record| record.info.clone())
    }

    /// The configured mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode
    }
}

impl Shared {
    /// What `take` takes from the record of a configured, unexpired key, read in place: nothing
    /// of the record is cloned but what `take` returns.
    fn check<R>(&self, key: &str, take: impl FnOnce(&Record) -> R) -> Result<R, ApiKeyError> {
        let hash = KeyHash::of(key);
        let read = |record: &Record| {
            // The clock is read only for keys that expire.
            if record
                .expires_at
                .is_some_and(|expires| crate::unix_now() >= expires)
            {
                Err(ApiKeyError::Expired)
            } else {
                Ok(take(record))
            }
        };
        match (self.keys.lookup(&hash), &self.file) {
            (Some(record), _) => read(record),
            (None, Some(file)) => file
                .current()
                .lookup(&hash)
                .map_or(Err(ApiKeyError::UnknownKey), read),
            (None, None) => Err(ApiKeyError::UnknownKey),
        }
    }

    fn challenge(&self, error: Option<ApiKeyError>) -> HeaderValue {
        match (self.locator.is_authorization(), error) {
            (true, None) => HeaderValue::from_static("Bearer"),
            (true, Some(_)) => HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            (false, _) => HeaderValue::from_static("ApiKey"),
        }
    }
}

impl Checker {
    /// Checks the request's key and, when the key has `routes`, the route: what to do next.
    pub(super) fn authenticate<B>(&self, req: &mut Request<B>) -> Outcome {
        let shared = &*self.shared;
        let result = match shared.locator.find(req.headers(), req.uri()) {
            Found::Absent => None,
            Found::Many => Some(Err(ApiKeyError::MultipleKeys)),
            Found::Malformed => Some(Err(ApiKeyError::Malformed)),
            Found::One(key) => Some(shared.check(&key, |r| (r.info.clone(), r.scope.clone()))),
        };
        let record = match result {
            None if shared.mode.rejects_missing() => {
                let rejection = Rejection::new(StatusCode::UNAUTHORIZED, LAYER, "missing_api_key")
                    .with_message("API key required")
                    .with_header(WWW_AUTHENTICATE, shared.challenge(None));
                audit_denial(self.audit.as_deref(), req, "missing_api_key");
                return Outcome::Deny(Box::new(Denial::new(rejection)));
            }
            None => None,
            Some(Ok((info, scope))) => match scope
                .as_deref()
                .map(|scope| scope.check_route(self.route.as_deref()))
            {
                Some(Err(error)) => {
                    // A genuine key used off its routes: its name goes into the audit event.
                    req.extensions_mut().insert(info);
                    match self.refuse(req, error) {
                        Some(denial) => return Outcome::Deny(Box::new(denial)),
                        None => None,
                    }
                }
                _ => Some((info, scope)),
            },
            Some(Err(error)) => match self.refuse(req, error) {
                Some(denial) => return Outcome::Deny(Box::new(denial)),
                None => None,
            },
        };
        if !shared.passthrough {
            shared.locator.remove_from(req);
        }
        let Some((info, scope)) = record else {
            return Outcome::Forward;
        };
        tracing::trace!(key = info.name(), "api_key: authenticated");
        req.extensions_mut().insert(info);
        match scope {
            // MCP messages select no model.
            Some(scope)
                if scope.restricts_models()
                    && req.extensions().get::<RouteKind>() != Some(&RouteKind::Mcp) =>
            {
                Outcome::CheckModel(scope)
            }
            _ => Outcome::Forward,
        }
    }

    /// Checks the `model` of a request whose body is buffered (a [`Payload`] extension)
    /// against `scope`: the denial to send, if any.
    pub(super) fn check_model<B>(&self, scope: &Scope, req: &mut Request<B>) -> Option<Denial> {
        let body = match req.extensions().get::<Payload>() {
            None => ModelBody::NotJson,
            Some(payload) if payload.is_empty() => ModelBody::Empty,
            Some(payload) => payload.json().map_or(ModelBody::NotJson, ModelBody::Json),
        };
        let error = scope.check_model(body).err()?;
        self.refuse(req, error)
    }

    /// The denial of a key that was not accepted for `error`, or `None` in `Permissive` mode,
    /// where the request goes on anonymously (without an [`ApiKeyInfo`]).
    fn refuse<B>(&self, req: &mut Request<B>, error: ApiKeyError) -> Option<Denial> {
        let shared = &*self.shared;
        if !shared.mode.rejects_invalid() {
            tracing::debug!(
                reason = error.reason(),
                "api_key: key not accepted, ignored (Permissive)"
            );
            req.extensions_mut().remove::<ApiKeyInfo>();
            return None;
        }
        audit_denial(self.audit.as_deref(), req, error.reason());
        let rejection = match error {
            ApiKeyError::RouteNotAllowed => {
                Rejection::new(StatusCode::FORBIDDEN, LAYER, "api_key_route_not_allowed")
                    .with_message("this API key may not be used on this route")
            }
            ApiKeyError::ModelNotAllowed => {
                Rejection::new(StatusCode::FORBIDDEN, LAYER, "api_key_model_not_allowed")
                    .with_message("this API key may not use the requested model")
            }
            // Only a holder of this very key learns that it expired.
            ApiKeyError::Expired => {
                Rejection::new(StatusCode::UNAUTHORIZED, LAYER, "expired_api_key")
                    .with_message("API key expired")
                    .with_header(WWW_AUTHENTICATE, shared.challenge(Some(error)))
            }
            // The client learns only that the key was not accepted; metrics and logs, why.
            _ => Rejection::new(StatusCode::UNAUTHORIZED, LAYER, "invalid_api_key")
                .with_message("invalid API key")
                .with_header(WWW_AUTHENTICATE, shared.challenge(Some(error))),
        };
        Some(Denial::counted_as(rejection, error.reason()))
    }
}

/// Records a rejected request in `audit`, if set: nothing is built without a sink.
fn audit_denial<B>(audit: Option<&dyn AuditSink>, req: &Request<B>, reason: &'static str) {
    if let Some(sink) = audit {
        sink.record(
            &AuditEvent::new(LAYER, "authentication", Decision::Deny)
                .with_rule(reason)
                .with_attributes(&Attributes::new(req)),
        );
    }
}

impl<S> Layer<S> for ApiKeyLayer {
    type Service = ApiKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let checker = Checker {
            shared: Arc::clone(&self.shared),
            audit: self.audit.clone(),
            route: self.route.clone(),
            body_limit: self.body_limit,
        };
        ApiKeyService::new(inner, Arc::new(checker))
    }
}
