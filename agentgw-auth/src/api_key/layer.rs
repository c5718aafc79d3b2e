//! [`ApiKeyLayer`]: the checked keys and how a request's key is judged.

use std::sync::Arc;

use agentgw_core::Attributes;
use agentgw_core::Rejection;
use agentgw_core::audit::{AuditEvent, AuditSink, Decision};
use agentgw_core::identity::ApiKeyInfo;
use agentgw_core::reload::Reloading;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Request, StatusCode};
use tower_layer::Layer;

use super::config::ApiKeyConfig;
use super::error::ApiKeyError;
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
        })
    }

    /// Records an `authentication` event in `sink` for every request this layer rejects (rule:
    /// the reason of `agentgateway_rejected_requests_total`, never the key). See
    /// [`agentgw_core::audit`] for the schema.
    #[must_use]
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
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
                .and_then(|file| file.current().lookup(&hash).cloned())
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

    /// Checks the request's key; the denial to send, if any.
    pub(super) fn authenticate<B>(
        &self,
        req: &mut Request<B>,
        audit: Option<&dyn AuditSink>,
    ) -> Option<Denial> {
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
                audit_denial(audit, req, "missing_api_key");
                return Some(Denial::new(rejection));
            }
            None => return None,
            Some(Ok(info)) => Some(info),
            Some(Err(error)) if self.mode.rejects_invalid() => {
                audit_denial(audit, req, error.reason());
                // The client learns only that the key was not accepted; metrics and logs, why.
                let rejection = Rejection::new(StatusCode::UNAUTHORIZED, LAYER, "invalid_api_key")
                    .with_message("invalid API key")
                    .with_header(WWW_AUTHENTICATE, self.challenge(Some(error)));
                return Some(Denial::counted_as(rejection, error.reason()));
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
        ApiKeyService::new(inner, Arc::clone(&self.shared), self.audit.clone())
    }
}
