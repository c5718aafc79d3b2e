//! Backend credentials: [`BackendAuthLayer`] puts the provider's API key on requests going
//! upstream, or lets the caller's own credential through.
//!
//! `authToken` follows the seed's backend shape:
//!
//! ```yaml
//! authToken:
//!   kind: SecretRef
//!   secretRef: {env: OPENAI_API_KEY}          # or {file: /var/run/secrets/openai/api-key}
//!   provider: openai                          # openai | anthropic | azure | gemini (optional)
//!   # header: {name: x-api-key}               # or any header, instead of `provider`
//!   # reloadInterval: 1s                      # how often the file is checked
//! # or
//! authToken:
//!   kind: Passthrough
//! ```
//!
//! | `provider` | header |
//! |---|---|
//! | `openai` (the default) | `Authorization: Bearer <key>` |
//! | `anthropic` | `x-api-key: <key>` |
//! | `azure` | `api-key: <key>` |
//! | `gemini` | `x-goog-api-key: <key>` |
//!
//! The injected value replaces whatever the client sent in that header, is marked sensitive
//! (HTTP/2 never indexes it) and is re-read when its file changes, so a rotated Kubernetes or
//! External Secrets mount takes effect without a restart. The secret never appears in logs,
//! `Debug` output or errors. With `Passthrough` the request goes upstream as the client sent it:
//! combine it with `passthrough: true` on the authentication layer when the same credential
//! authenticates at the gateway.
//!
//! # Example
//!
//! ```
//! use agentgw_auth::backend::{BackendAuthLayer, LlmProvider};
//! use agentgw_auth::SecretRef;
//! use http::{Request, Response};
//! use std::convert::Infallible;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let key_file = dir.path().join("anthropic-key");
//! std::fs::write(&key_file, "sk-ant-example\n")?;
//!
//! let upstream = ServiceBuilder::new()
//!     .layer(BackendAuthLayer::secret(
//!         &SecretRef::File(key_file),
//!         LlmProvider::Anthropic.header(),
//!     )?)
//!     .service_fn(|req: Request<()>| async move {
//!         // What the provider receives.
//!         assert_eq!(req.headers()["x-api-key"], "sk-ant-example");
//!         Ok::<_, Infallible>(Response::new(()))
//!     });
//! upstream.oneshot(Request::new(())).await?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request};
use serde::Deserialize;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::Error;
use crate::location::{CredentialHeader, header_name};
use crate::secret::{Loaded, SecretRef};

/// `backend.authToken`: how the upstream request is authenticated.
///
/// `Default` is [`Passthrough`](AuthToken::Passthrough): nothing is injected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum AuthToken {
    /// Forward the caller's own credential unchanged.
    Passthrough {},
    /// Inject a secret as the provider's credential header.
    SecretRef {
        /// Where the secret is read.
        secret_ref: SecretRef,
        /// The provider, which decides the header (OpenAI's when neither this nor `header` is
        /// given).
        #[serde(default)]
        provider: Option<LlmProvider>,
        /// A header to use instead of a provider's.
        #[serde(default)]
        header: Option<CredentialHeader>,
        /// How often a secret file is checked for changes, by a task on the Tokio runtime the
        /// layer is built in; `0s` reads the file once and needs no runtime.
        #[serde(
            default = "default_reload_interval",
            deserialize_with = "agentgw_core::config::duration::deserialize"
        )]
        reload_interval: Duration,
    },
}

impl Default for AuthToken {
    fn default() -> Self {
        AuthToken::Passthrough {}
    }
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(1)
}

/// LLM providers and how each expects its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LlmProvider {
    /// `Authorization: Bearer <key>`.
    #[serde(rename = "openai")]
    OpenAi,
    /// `x-api-key: <key>`.
    Anthropic,
    /// Azure OpenAI: `api-key: <key>`.
    Azure,
    /// Google Gemini: `x-goog-api-key: <key>`.
    Gemini,
}

impl LlmProvider {
    /// The header this provider reads its API key from.
    pub fn header(self) -> CredentialHeader {
        match self {
            LlmProvider::OpenAi => CredentialHeader::bearer(),
            LlmProvider::Anthropic => CredentialHeader::x_api_key(),
            LlmProvider::Azure => CredentialHeader::new("api-key"),
            LlmProvider::Gemini => CredentialHeader::new("x-goog-api-key"),
        }
    }
}

/// Sets the backend credential on every request. See the [module docs](self).
#[derive(Clone)]
pub struct BackendAuthLayer {
    /// `None`: passthrough.
    injection: Arc<Option<Injection>>,
}

struct Injection {
    header: HeaderName,
    source: String,
    value: Loaded<HeaderValue>,
}

impl std::fmt::Debug for BackendAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.injection {
            None => f.debug_struct("BackendAuthLayer::Passthrough").finish(),
            Some(Injection { header, source, .. }) => f
                .debug_struct("BackendAuthLayer::SecretRef")
                .field("header", header)
                .field("source", source)
                .field("value", &"[REDACTED]")
                .finish(),
        }
    }
}

impl BackendAuthLayer {
    /// Builds the layer from `authToken`. Errors name the field relative to `authToken`
    /// (`secretRef.env`, `header.name`, ...) and never contain the secret.
    pub fn from_config(config: &AuthToken) -> Result<Self, Error> {
        match config {
            AuthToken::Passthrough {} => Ok(BackendAuthLayer::passthrough()),
            AuthToken::SecretRef {
                secret_ref,
                provider,
                header,
                reload_interval,
            } => {
                let header = match (provider, header) {
                    (Some(_), Some(_)) => {
                        return Err(Error::invalid(
                            "header",
                            "give either provider or header, not both",
                        ));
                    }
                    (Some(provider), None) => provider.header(),
                    (None, Some(header)) => header.clone(),
                    (None, None) => LlmProvider::OpenAi.header(),
                };
                Self::with_interval(secret_ref, &header, *reload_interval)
            }
        }
    }

    /// Forwards the caller's credential unchanged: what `from_config(&AuthToken::Passthrough {})`
    /// builds, without a `Result` (nothing can be wrong).
    pub fn passthrough() -> Self {
        BackendAuthLayer {
            injection: Arc::new(None),
        }
    }

    /// Injects the secret from `secret` into `header` (with its prefix), re-reading a secret
    /// file every second when it changed: shorthand for [`from_config`](Self::from_config)
    /// with an [`AuthToken::SecretRef`] naming `header` and the default reload interval.
    pub fn secret(secret: &SecretRef, header: CredentialHeader) -> Result<Self, Error> {
        Self::with_interval(secret, &header, default_reload_interval())
    }

    fn with_interval(
        secret: &SecretRef,
        header: &CredentialHeader,
        reload_interval: Duration,
    ) -> Result<Self, Error> {
        let name = header_name(&header.name, "header.name")?;
        let prefix = header.prefix.clone().unwrap_or_default();
        if HeaderValue::from_str(&prefix).is_err() {
            return Err(Error::invalid("header.prefix", "must be printable ASCII"));
        }
        let value = Loaded::load(
            secret,
            reload_interval,
            "backend secret",
            "secretRef",
            move |secret| {
                let mut bytes = secrecy::zeroize::Zeroizing::new(Vec::with_capacity(
                    prefix.len() + secret.len(),
                ));
                bytes.extend_from_slice(prefix.as_bytes());
                bytes.extend_from_slice(secret);
                if secret.is_empty() {
                    return Err("the secret is empty".to_owned());
                }
                let mut value = HeaderValue::from_bytes(&bytes).map_err(|_| {
                    "the secret contains characters not allowed in an HTTP header".to_owned()
                })?;
                value.set_sensitive(true);
                Ok(value)
            },
        )?;
        Ok(BackendAuthLayer {
            injection: Arc::new(Some(Injection {
                header: name,
                source: secret.describe(crate::DEFAULT_SECRET_KEY),
                value,
            })),
        })
    }
}

impl<S> Layer<S> for BackendAuthLayer {
    type Service = BackendAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BackendAuthService {
            inner,
            injection: Arc::clone(&self.injection),
        }
    }
}

/// The service of [`BackendAuthLayer`].
#[derive(Clone)]
pub struct BackendAuthService<S> {
    inner: S,
    injection: Arc<Option<Injection>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for BackendAuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendAuthService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for BackendAuthService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(Injection { header, value, .. }) = &*self.injection {
            req.headers_mut()
                .insert(header.clone(), value.get().clone());
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgw_core::ConfigError as _;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    async fn upstream_headers(layer: BackendAuthLayer, req: Request<()>) -> http::HeaderMap {
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(
                |req: Request<()>| async move { Ok::<_, Infallible>(req.headers().clone()) },
            )
            .oneshot(req)
            .await
            .unwrap()
    }

    fn secret_file(content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[tokio::test]
    async fn injects_per_provider_and_replaces_client_value() {
        let (_dir, path) = secret_file("sk-secret-1\n");
        let cases = [
            (LlmProvider::OpenAi, "authorization", "Bearer sk-secret-1"),
            (LlmProvider::Anthropic, "x-api-key", "sk-secret-1"),
            (LlmProvider::Azure, "api-key", "sk-secret-1"),
            (LlmProvider::Gemini, "x-goog-api-key", "sk-secret-1"),
        ];
        for (provider, header, expected) in cases {
            let layer = BackendAuthLayer::secret(&SecretRef::File(path.clone()), provider.header())
                .unwrap();
            let req = Request::builder()
                .header(header, "client-value")
                .body(())
                .unwrap();
            let headers = upstream_headers(layer, req).await;
            let values: Vec<_> = headers.get_all(header).iter().collect();
            assert_eq!(values, vec![expected], "{provider:?}");
            assert!(values[0].is_sensitive());
        }
    }

    #[tokio::test]
    async fn rotated_file_takes_effect_without_restart() {
        let (_dir, path) = secret_file("sk-old");
        let layer = BackendAuthLayer::from_config(&AuthToken::SecretRef {
            secret_ref: SecretRef::File(path.clone()),
            provider: None,
            header: None,
            reload_interval: Duration::from_millis(5),
        })
        .unwrap();
        let headers = upstream_headers(layer.clone(), Request::new(())).await;
        assert_eq!(headers["authorization"], "Bearer sk-old");
        std::fs::write(&path, "sk-new\n").unwrap();
        for _ in 0..1000 {
            let headers = upstream_headers(layer.clone(), Request::new(())).await;
            if headers["authorization"] == "Bearer sk-new" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the rotated secret was never injected");
    }

    #[tokio::test]
    async fn passthrough_keeps_the_client_credential() {
        let req = Request::builder()
            .header("authorization", "Bearer user-key")
            .body(())
            .unwrap();
        let headers = upstream_headers(BackendAuthLayer::passthrough(), req).await;
        assert_eq!(headers["authorization"], "Bearer user-key");
    }

    #[tokio::test]
    async fn secrets_never_in_debug_or_errors() {
        let (_dir, path) = secret_file("sk-do-not-print");
        let layer =
            BackendAuthLayer::secret(&SecretRef::File(path), CredentialHeader::bearer()).unwrap();
        let debug = format!("{layer:?}");
        assert!(!debug.contains("sk-do-not-print"), "{debug}");
        assert!(debug.contains("file:"), "{debug}");

        let (_dir, path) = secret_file("sk-line-one\nsk-line-two");
        let err = BackendAuthLayer::secret(&SecretRef::File(path), CredentialHeader::bearer())
            .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("sk-line"), "{text}");
        assert_eq!(err.path(), "secretRef.file");
    }

    #[test]
    fn seed_shapes() {
        let passthrough: AuthToken = serde_saphyr::from_str("kind: Passthrough").unwrap();
        assert_eq!(passthrough, AuthToken::Passthrough {});
        let env: AuthToken =
            serde_saphyr::from_str("kind: SecretRef\nsecretRef: {env: OPENAI_API_KEY}").unwrap();
        assert_eq!(
            env,
            AuthToken::SecretRef {
                secret_ref: SecretRef::Env("OPENAI_API_KEY".into()),
                provider: None,
                header: None,
                reload_interval: Duration::from_secs(1),
            }
        );
        let file: AuthToken = serde_saphyr::from_str(
            "kind: SecretRef\nsecretRef: {file: /run/key}\nprovider: anthropic\nreloadInterval: 10s",
        )
        .unwrap();
        assert!(matches!(
            file,
            AuthToken::SecretRef {
                provider: Some(LlmProvider::Anthropic),
                ..
            }
        ));
        assert!(
            serde_saphyr::from_str::<AuthToken>("kind: SecretRef\nsecretRef: {env: A}\ncolour: x")
                .is_err()
        );
        assert!(serde_saphyr::from_str::<AuthToken>("kind: Vault").is_err());
        assert!(
            serde_saphyr::from_str::<AuthToken>("kind: Passthrough\nsecretRef: {env: A}").is_err(),
            "a passthrough with a secret is a mistake worth reporting"
        );
    }

    #[test]
    fn provider_and_header_conflict() {
        let err = BackendAuthLayer::from_config(&AuthToken::SecretRef {
            secret_ref: SecretRef::Env("PATH".into()),
            provider: Some(LlmProvider::OpenAi),
            header: Some(CredentialHeader::x_api_key()),
            reload_interval: Duration::from_secs(1),
        })
        .unwrap_err();
        assert_eq!(err.path(), "header");
    }
}
