//! Authentication layers for LLM and MCP traffic: API keys, JWTs verified against JWKS, and the
//! credentials a gateway presents to its backends.
//!
//! | layer | config block | on success |
//! |---|---|---|
//! | [`JwtLayer`] | `policies.traffic.jwtAuthentication` ([`JwtConfig`]) | [`JwtClaims`] extension (`jwt.*` in CEL) |
//! | [`ApiKeyLayer`] | `policies.traffic.apiKeyAuthentication` ([`ApiKeyConfig`]) | [`ApiKeyInfo`] extension (`apiKey.*`) |
//! | [`BackendAuthLayer`] | `backend.authToken` ([`AuthToken`]) | provider credential on the upstream request |
//!
//! The two authentication layers share [`Mode`] (`Strict`, `Optional`, `Permissive`, as in the
//! seed's table) and [`TokenLocation`] (header with optional prefix, cookie, query parameter).
//! Denials are `401` responses shaped for the route's protocol by
//! [`agentgw_core::Rejection`], never errors; their reasons are counted in
//! `agentgateway_rejected_requests_total{layer, reason}`. Every layer is built with
//! `from_config` whose [`Error`] names the offending field, and works under
//! `axum::Router::layer`, `tower::ServiceBuilder` and plain hyper. See the module docs of
//! [`jwt`], [`api_key`] and [`backend`] for runnable examples.
//!
//! Secrets (API keys, HMAC secrets, backend keys) are held as hashes or sensitive header values,
//! never printed by `Debug`, never put in error messages or logs.
//!
//! # Features
//!
//! - `remote-jwks`: fetch JWKS over HTTP (pulls in `reqwest`).
//! - `axum`: [`extract::Claims`] and [`extract::ApiKey`] extractors.
//! - `ext-authz`: external authorization (Envoy ext_authz gRPC and plain HTTP).
//!
//! [`JwtClaims`]: agentgw_core::identity::JwtClaims
//! [`ApiKeyInfo`]: agentgw_core::identity::ApiKeyInfo
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "ext-authz")]
pub mod ext_authz;

mod duration;
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

pub use api_key::{ApiKeyConfig, ApiKeyLayer};
pub use backend::{AuthToken, BackendAuthLayer};
pub use error::Error;
pub use jwt::{JwtConfig, JwtLayer};
pub use location::{CredentialHeader, TokenLocation};
pub use mode::Mode;
pub use secret::SecretRef;

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
