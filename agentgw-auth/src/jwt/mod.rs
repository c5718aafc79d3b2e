//! JWT authentication: [`JwtLayer`].
//!
//! The layer reads a token (by default `Authorization: Bearer`), verifies it against the
//! provider whose `issuer` equals the token's `iss`, and on success puts the claims into the
//! request extensions as [`JwtClaims`](agentgw_core::identity::JwtClaims) (what CEL reads as
//! `jwt.*`) and removes the token from the request sent upstream (unless `passthrough`). What
//! happens without a valid token depends on the [`Mode`](crate::Mode).
//!
//! A rejected request gets `401` with `WWW-Authenticate: Bearer error="invalid_token"` (just
//! `Bearer` when no token was sent), shaped for the route's protocol (OpenAI error JSON, JSON-RPC
//! error for MCP). The client is never told *why*; the reason ([`JwtError::reason`]) is logged at
//! `debug` and counted in `agentgateway_rejected_requests_total{layer="jwt", reason}`.
//!
//! # Keys
//!
//! [`JwksSource`] per provider: a local JWKS or PEM file (re-read when it changes) or inline
//! JWKS, a remote JWKS URL (feature `remote-jwks`), or an HMAC secret. Each key verifies only
//! the algorithms its type allows (RSA: RS*/PS*; EC: ES256 or ES384 by curve; Ed25519: EdDSA;
//! HMAC only from `hmacSecret`). `alg: none`, algorithm/key confusion and keys carried or pointed
//! at by the token (`jwk`, `jku`, `x5u`, `x5c`) are never accepted; a token with `crit` is
//! rejected. A token without `kid` is accepted when exactly one key allows its algorithm.
//!
//! Remote keys are fetched when the layer is built ([`JwtLayer::is_ready`] turns `true` after
//! the first success; until then those tokens fail closed), refreshed every `cacheDuration`,
//! fetched again when a token names an unknown `kid` (rate-limited, concurrent requests share
//! one fetch), and kept when a refresh fails.
//!
//! # Claims
//!
//! `exp` is required (configurable) and, like `nbf` and `iat`, must be a number and is checked
//! with a leeway (60 s by default). Each is a NumericDate between `0` and the end of year 9999
//! (`253402300799`): a negative value or a later one (`"exp": 1e300`, a token that would never
//! expire) is refused as `time_claim_out_of_range`; fractional seconds are accepted and
//! truncated. A provider's `maxTokenLifetime` (off by default) refuses tokens living longer
//! (`lifetime_too_long`): their lifetime is `exp - iat`, or `exp - now` when there is no `iat`
//! (the leeway added for the issuer's clock), and a token without `exp` is refused for that
//! provider even with `requireExpiration: false`. `aud` must contain one of the provider's
//! `audiences` when they are configured; `iss` is matched exactly. Tokens over `maxTokenBytes`
//! (8 KiB by default) are rejected before any decoding.
//!
//! # Cache
//!
//! Verified tokens are remembered (bounded, keyed by the SHA-256 of the token) until their
//! `exp` or until their provider's keys change, so a repeated token costs well under a
//! microsecond instead of a signature verification.
//!
//! # Example
//!
//! The layer under `axum::Router::layer`, with an HMAC secret from a file. The same
//! configuration comes from YAML as `jwtAuthentication` (see [`JwtConfig`]).
//!
//! ```
//! use agentgw_auth::jwt::{JwksSource, JwtConfig, JwtLayer, JwtProvider};
//! use agentgw_auth::{Mode, SecretRef};
//! use agentgw_core::identity::JwtClaims;
//! use axum::{Extension, Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use jsonwebtoken::{Algorithm, EncodingKey, Header};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = b"an example secret of 32 bytes!!!";
//! let dir = tempfile::tempdir()?;
//! let secret_file = dir.path().join("jwt-secret");
//! std::fs::write(&secret_file, secret)?;
//!
//! let jwt = JwtLayer::from_config(
//!     &JwtConfig::default().mode(Mode::Strict).provider(
//!         JwtProvider::new(
//!             "https://auth.example",
//!             JwksSource::hmac_secret(SecretRef::File(secret_file)),
//!         )
//!         .audiences(["agentgateway"]),
//!     ),
//! )?;
//!
//! let app = Router::new()
//!     .route("/v1/models", get(|Extension(claims): Extension<JwtClaims>| async move {
//!         format!("hello {}", claims.subject().unwrap_or("?"))
//!     }))
//!     .layer(jwt);
//!
//! // Without a token: 401.
//! let res = app.clone().oneshot(Request::get("/v1/models").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer");
//!
//! // With a valid token: the handler sees the claims.
//! let exp = jsonwebtoken::get_current_timestamp() + 600;
//! let claims = serde_json::json!({
//!     "iss": "https://auth.example", "aud": "agentgateway", "sub": "alice", "exp": exp,
//! });
//! let token = jsonwebtoken::encode(
//!     &Header::new(Algorithm::HS256),
//!     &claims,
//!     &EncodingKey::from_secret(secret),
//! )?;
//! let req = Request::get("/v1/models")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(Body::empty())?;
//! let res = app.clone().oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // A tampered token: 401 with the invalid_token challenge.
//! let req = Request::get("/v1/models")
//!     .header("authorization", format!("Bearer {token}x"))
//!     .body(Body::empty())?;
//! let res = app.oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], r#"Bearer error="invalid_token""#);
//! # Ok(())
//! # }
//! ```
//!
//! From the gateway's YAML (the seed's `jwtAuthentication` block; a remote JWKS needs the
//! `remote-jwks` feature; a key file, watched for changes, and a remote JWKS need a Tokio
//! runtime):
//!
//! ```
//! use std::time::Duration;
//! use agentgw_auth::jwt::{JwtConfig, JwtLayer};
//! use agentgw_core::ConfigError;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let jwks_file = dir.path().join("jwks.json");
//! # std::fs::write(&jwks_file, r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
//! #     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)?;
//! let yaml = format!(r#"
//! mode: Optional
//! providers:
//!   - issuer: "https://auth.sklab.dev/realms/ai"
//!     audiences: ["agentgateway"]
//!     jwks:
//!       local:
//!         file: {}
//!     maxTokenLifetime: 1h   # optional: tokens valid for longer are refused
//! "#, jwks_file.display());
//! let config: JwtConfig = serde_saphyr::from_str(&yaml)?;
//! assert_eq!(config.providers[0].max_token_lifetime, Some(Duration::from_secs(3600)));
//! let layer = JwtLayer::from_config(&config)?;
//! assert!(layer.is_ready());
//!
//! // Errors name the field, relative to the block.
//! let broken: JwtConfig = serde_saphyr::from_str(&yaml.replace("https://auth.sklab.dev/realms/ai", ""))?;
//! let err = JwtLayer::from_config(&broken).unwrap_err();
//! assert_eq!(err.path(), "providers[0].issuer");
//! # Ok(())
//! # }
//! ```

mod cache;
mod config;
mod future;
mod keys;
mod layer;
#[cfg(feature = "remote-jwks")]
mod remote;
mod service;
mod verify;

pub use config::{
    BackendRef, InlineJwks, JwksSource, JwtConfig, JwtProvider, LocalJwks, RemoteJwks,
};
pub use future::ResponseFuture;
pub use layer::JwtLayer;
pub use service::JwtService;
pub use verify::JwtError;
