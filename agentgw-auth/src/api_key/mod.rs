//! API key authentication: [`ApiKeyLayer`].
//!
//! Keys come from the configuration and/or a file that is re-read when it changes (editing the
//! file revokes or adds keys without a restart). They are stored as SHA-256 hashes and compared
//! in constant time. A valid key puts its [`ApiKeyInfo`](agentgw_core::identity::ApiKeyInfo)
//! (name, team, role, allowed models, expiry, custom metadata; never the key) into the request
//! extensions, which CEL policies read as `apiKey.*`, and is removed from the upstream request
//! unless `passthrough` is set. The key is read from `x-api-key` by default, or from any
//! [`TokenLocation`](crate::TokenLocation) such as `Authorization: Bearer`.
//!
//! The three [`Mode`](crate::Mode)s work as for JWTs. A rejection is shaped for the route's
//! protocol: a `401` with reason `missing_api_key`, `invalid_api_key` or `expired_api_key`, or a
//! `403` for a key used outside its scope (`api_key_route_not_allowed`,
//! `api_key_model_not_allowed`); the detailed reason ([`ApiKeyError::reason`]) goes to logs,
//! audit events and `agentgateway_rejected_requests_total{layer="api_key", reason}`.
//!
//! # Scoped keys
//!
//! A key may be limited to routes ([`ApiKeyEntry::routes`], checked against the layer's
//! [`route`](ApiKeyLayer::route)) and to models ([`ApiKeyEntry::models`], checked against the
//! `model` of the JSON request body), and may expire ([`ApiKeyEntry::expires_at`]). Only the
//! requests of a key with `models` are read, bounded by [`ApiKeyLayer::body_limit`], and the body
//! read is left as a [`Payload`](agentgw_core::Payload) for the layers after this one.
//!
//! ```
//! use agentgw_auth::api_key::{ApiKeyConfig, ApiKeyEntry, ApiKeyLayer};
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ApiKeyLayer::from_config(
//!     &ApiKeyConfig::default()
//!         .key(ApiKeyEntry::new("ml-team", "sk-ml").routes(["openai"]).models(["gpt-4o-mini*"]))
//!         .key(ApiKeyEntry::new("batch", "sk-batch").routes(["batch"])),
//! )?
//! .route("openai");
//! let app = Router::new()
//!     .route("/v1/chat/completions", post(|| async { "ok" }))
//!     .layer(keys);
//!
//! let call = |key: &'static str, model: &str| {
//!     Request::post("/v1/chat/completions")
//!         .header("x-api-key", key)
//!         .header("content-type", "application/json")
//!         .body(Body::from(format!(r#"{{"model":"{model}","messages":[]}}"#)))
//! };
//! // In scope: the right route and an allowed model.
//! let res = app.clone().oneshot(call("sk-ml", "gpt-4o-mini")?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! // Another model, or a key for another route: 403.
//! let res = app.clone().oneshot(call("sk-ml", "gpt-4o")?).await?;
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! let res = app.oneshot(call("sk-batch", "gpt-4o-mini")?).await?;
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```
//!
//! # Example
//!
//! ```
//! use agentgw_auth::api_key::{ApiKeyConfig, ApiKeyEntry, ApiKeyLayer};
//! use agentgw_auth::Mode;
//! use agentgw_core::identity::ApiKeyInfo;
//! use axum::{Extension, Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ApiKeyLayer::from_config(
//!     &ApiKeyConfig::default()
//!         .mode(Mode::Strict)
//!         .key(ApiKeyEntry::new("ci-bot", "sk-example-key").team("platform")),
//! )?;
//! let app = Router::new()
//!     .route("/v1/chat/completions", post(|Extension(key): Extension<ApiKeyInfo>| async move {
//!         format!("team {}", key.get("team").and_then(|t| t.as_str()).unwrap_or("?"))
//!     }))
//!     .layer(keys);
//!
//! let call = |key: &'static str| {
//!     Request::post("/v1/chat/completions").header("x-api-key", key).body(Body::empty())
//! };
//! let res = app.clone().oneshot(call("sk-example-key")?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! let res = app.oneshot(call("sk-wrong")?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod future;
mod layer;
mod scope;
mod service;
mod store;

pub use config::{ApiKeyConfig, ApiKeyEntry};
pub use error::ApiKeyError;
pub use future::ResponseFuture;
pub use layer::ApiKeyLayer;
pub use service::ApiKeyService;
