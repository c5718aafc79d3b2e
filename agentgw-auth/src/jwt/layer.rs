//! [`JwtLayer`]: the providers' keys and how a request's token is judged.

use std::sync::Arc;

use agentgw_core::Attributes;
use agentgw_core::Rejection;
use agentgw_core::audit::{AuditEvent, AuditSink, Decision};
use agentgw_core::identity::JwtClaims;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Request, StatusCode};
use tower_layer::Layer;

use super::config::JwtConfig;
use super::service::JwtService;
use super::verify::{JwtError, Verdict, Verifier, WaitFuture};
use crate::denial::Denial;
use crate::error::Error;
use crate::location::{Found, Locator};
use crate::mode::Mode;

/// The `layer` label of this layer's rejections and audit events.
pub(super) const LAYER: &str = "jwt";

/// Authenticates requests with JWTs. See the [module docs](crate::jwt) for an example.
///
/// Cheap to clone: clones share the keys, their refresh task and the verified-token cache.
#[derive(Clone)]
pub struct JwtLayer {
    shared: Arc<Shared>,
    audit: Option<Arc<dyn AuditSink>>,
}

pub(super) struct Shared {
    pub(super) mode: Mode,
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
            .field("audit", &self.audit.is_some())
            .finish()
    }
}

impl JwtLayer {
    /// Checks `config` and loads the keys: local keys now, remote keys in a background task.
    /// Remote keys and key files (watched for changes every second) need a Tokio runtime;
    /// inline keys and an HMAC secret from the environment do not. Errors name the field path
    /// relative to the `jwtAuthentication` block, e.g. `providers[0].jwks.remote.url`.
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
            audit: None,
        })
    }

    /// Records an `authentication` event in `sink` for every request this layer rejects (rule:
    /// the reason of `agentgateway_rejected_requests_total`, never the token). See
    /// [`agentgw_core::audit`] for the schema.
    #[must_use]
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Whether every provider has keys: local keys always, remote keys once the first fetch
    /// succeeded. Until then tokens of that provider are rejected. Poll it from a readiness
    /// probe.
    pub fn is_ready(&self) -> bool {
        self.shared.verifier.is_ready()
    }

    /// The remote JWKS endpoints and their state, for a health page or a readiness probe:
    /// `up` while a key set serves (a failed refresh keeps the last good one), `pending` before
    /// the first fetch completed, `down` when no key set could ever be fetched. Providers with
    /// local keys are not listed.
    pub fn dependencies(&self) -> Vec<agentgw_core::health::Dependency> {
        self.shared.verifier.dependencies()
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

/// What to do with a request after looking at its token.
pub(super) enum Step {
    /// Call the inner service (with the claims, or anonymously).
    Forward,
    /// Answer with this denial.
    Reject(Box<Denial>),
    /// A key fetch is under way: verify again once it is done.
    Wait(WaitFuture),
}

impl Shared {
    /// Looks at the request's token: adds its claims and removes it when it is valid, says
    /// what to do with the request. Without `may_wait`, an unknown `kid` is an invalid token.
    pub(super) fn authenticate<B>(
        &self,
        req: &mut Request<B>,
        may_wait: bool,
        audit: Option<&dyn AuditSink>,
    ) -> Step {
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
                audit_denial(audit, req, "missing_token");
                return Step::Reject(Box::new(Denial::new(rejection)));
            }
            None => {
                return Step::Forward;
            }
            Some(Verdict::Refetch(wait)) => return Step::Wait(wait),
            Some(Verdict::Valid(claims)) => Some(claims),
            Some(Verdict::Invalid(error)) if self.mode.rejects_invalid() => {
                audit_denial(audit, req, error.reason());
                // The detailed reason is for metrics and logs; the client learns only that the
                // token was not accepted.
                return Step::Reject(Box::new(Denial::counted_as(
                    invalid_token(),
                    error.reason(),
                )));
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

/// The rejection of a token that was not accepted, whatever the reason.
pub(super) fn invalid_token() -> Rejection {
    Rejection::new(StatusCode::UNAUTHORIZED, LAYER, "invalid_token")
        .with_message("invalid token")
        .with_header(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        )
}

impl<S> Layer<S> for JwtLayer {
    type Service = JwtService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtService::new(inner, Arc::clone(&self.shared), self.audit.clone())
    }
}
