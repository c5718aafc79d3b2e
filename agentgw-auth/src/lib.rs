//! Authentication layers for LLM and MCP traffic: API keys, JWTs verified against JWKS,
//! external authorization, and the credentials a gateway presents to its backends.
//!
//! | layer | config block | on success |
//! |---|---|---|
//! | [`JwtLayer`] | `policies.traffic.jwtAuthentication` ([`JwtConfig`]) | [`JwtClaims`] extension (`jwt.*` in CEL) |
//! | [`ApiKeyLayer`] | `policies.traffic.apiKeyAuthentication` ([`ApiKeyConfig`]) | [`ApiKeyInfo`] extension (`apiKey.*`) |
//! | `ExtAuthLayer` (feature `ext-authz`) | `policies.traffic.extAuth` (`ExtAuthConfig`) | the service's header changes on the upstream request |
//! | [`BackendAuthLayer`] | `backend.authToken` ([`AuthToken`]) | provider credential on the upstream request |
//!
//! The JWT and API key layers share [`Mode`] (`Strict`, `Optional`, `Permissive`, as in the
//! seed's table) and [`TokenLocation`] (header with optional prefix, cookie, query parameter).
//!
//! Every layer follows the contract of [`agentgw_core`]: `XLayer::from_config(&XConfig)`
//! validates everything up front and fails with an [`Error`] whose
//! [`path`](agentgw_core::ConfigError::path) names the field relative to the layer's block;
//! `XConfig` is `Default` with builders named after its fields, or deserialized from the
//! gateway's YAML; denials are responses (401 for a missing or invalid credential) shaped for
//! the route's protocol by [`agentgw_core::Rejection`], counted in
//! `agentgateway_rejected_requests_total{layer, reason}` and, with `audit_sink`, audited. The
//! services ([`JwtService`], [`ApiKeyService`], `ExtAuthService`, [`BackendAuthService`]) work
//! under `axum::Router::layer`, `tower::ServiceBuilder` and plain hyper; their response body is
//! [`AuthBody`]. See the module docs of [`jwt`], [`api_key`], `ext_authz` and [`backend`] for
//! more runnable examples.
//!
//! Secrets (API keys, HMAC secrets, backend keys) are held as hashes or sensitive header values,
//! never printed by `Debug`, never put in error messages or logs.
//!
//! # Example
//!
//! An API key layer built in code, and a JWT layer from the gateway's YAML, in front of one
//! axum route:
//!
//! ```
//! use agentgw_auth::api_key::ApiKeyEntry;
//! use agentgw_auth::{ApiKeyConfig, ApiKeyLayer, JwtConfig, JwtLayer, Mode};
//! use agentgw_core::ConfigError;
//! use agentgw_core::identity::ApiKeyInfo;
//! use axum::{Extension, Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In code: `Default` and the builders named after the fields.
//! let keys = ApiKeyLayer::from_config(
//!     &ApiKeyConfig::default()
//!         .mode(Mode::Strict)
//!         .key(ApiKeyEntry::new("ci-bot", "sk-example-key").team("platform")),
//! )?;
//!
//! // From YAML: the same block the gateway reads (`Optional`: a request without a token
//! // passes; one with an invalid token is refused).
//! let jwt_config: JwtConfig = serde_saphyr::from_str(
//!     r#"
//! mode: Optional
//! providers:
//!   - issuer: https://auth.example
//!     audiences: [agentgateway]
//!     jwks:
//!       local:
//!         inline: '{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}'
//! "#,
//! )?;
//! let jwt = JwtLayer::from_config(&jwt_config)?;
//!
//! let app = Router::new()
//!     .route("/v1/chat/completions", post(|Extension(key): Extension<ApiKeyInfo>| async move {
//!         format!("hello {}", key.name())
//!     }))
//!     .layer(keys)
//!     .layer(jwt);
//!
//! let call = |key: &str| {
//!     Request::post("/v1/chat/completions").header("x-api-key", key).body(Body::empty())
//! };
//! // Allowed: a configured key (and no token, which `Optional` lets through).
//! assert_eq!(app.clone().oneshot(call("sk-example-key")?).await?.status(), StatusCode::OK);
//! // Denied: an unknown key, answered with the route's error shape.
//! let res = app.clone().oneshot(call("sk-wrong")?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! // Denied by the JWT layer: a token that is not valid.
//! let res = app
//!     .oneshot(
//!         Request::post("/v1/chat/completions")
//!             .header("x-api-key", "sk-example-key")
//!             .header("authorization", "Bearer not-a-jwt")
//!             .body(Body::empty())?,
//!     )
//!     .await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//!
//! // A configuration error names the field, relative to the block.
//! let err = ApiKeyLayer::from_config(&ApiKeyConfig::default()).unwrap_err();
//! assert_eq!(err.path(), "keys");
//! assert_eq!(
//!     err.at("policies.traffic.apiKeyAuthentication"),
//!     format!("policies.traffic.apiKeyAuthentication.keys: {}", err.reason()),
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `remote-jwks`: fetch JWKS over HTTP (pulls in `reqwest`).
//! - `axum`: the `extract::Claims` and `extract::ApiKey` extractors.
//! - `ext-authz`: `ExtAuthLayer`, external authorization (Envoy ext_authz gRPC and plain HTTP).
//!
//! [`JwtClaims`]: agentgw_core::identity::JwtClaims
//! [`ApiKeyInfo`]: agentgw_core::identity::ApiKeyInfo
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "ext-authz")]
pub mod ext_authz;

mod denial;
mod error;
mod location;
mod mode;
mod reload;
mod secret;

pub mod api_key;
pub mod backend;
#[cfg(feature = "axum")]
pub mod extract;
pub mod jwt;
pub mod model;

pub use agentgw_core::config::{DEFAULT_SECRETS_DIR, SecretName};
pub use api_key::{ApiKeyConfig, ApiKeyLayer, ApiKeyService};
pub use backend::{AuthToken, BackendAuthLayer, BackendAuthService};
pub use error::Error;
#[cfg(feature = "ext-authz")]
pub use ext_authz::{ExtAuthConfig, ExtAuthLayer, ExtAuthService};
pub use jwt::{JwtConfig, JwtLayer, JwtService};
pub use location::{CredentialHeader, TokenLocation};
pub use mode::Mode;
pub use model::{BackendModelConfig, BackendModelLayer, BackendModelService};
pub use secret::{DEFAULT_SECRET_KEY, SecretRef};

/// The response body of [`ApiKeyService`], [`JwtService`] and `ExtAuthService`: the inner
/// service's body passed through, or the denial the layer produced. The authentication layers
/// never transform a response body, so it is core's [`ResponseBody`](agentgw_core::ResponseBody)
/// with no transform.
pub type AuthBody<B> = agentgw_core::ResponseBody<B>;

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
