//! External authorization: ask an existing authorization service (OPA, Authorino, an in-house
//! policy engine) about every request before it is forwarded.
//!
//! [`ExtAuthLayer`] speaks two protocols:
//!
//! - **gRPC**: Envoy's `envoy.service.auth.v3.Authorization/Check`. The `CheckRequest` carries
//!   the method, path (with query), host, scheme, protocol, all headers (merged per name, with
//!   `:authority`, `:method`, `:path`, `:scheme`), the client address
//!   ([`ClientAddr`](agentgw_core::identity::ClientAddr)) and TLS principal
//!   ([`PeerIdentity`](agentgw_core::identity::PeerIdentity)), the start of the body when
//!   `includeRequestBody` is set, and the configured `contextExtensions`. Status `OK` allows:
//!   the `ok_response` may remove, set or append upstream request headers, set or remove query
//!   parameters and add response headers. Any other status denies: the client receives the
//!   `denied_response` status (default 403), headers and body as they came.
//! - **HTTP**: the check is a request with the original method to the service's URL, its
//!   `pathPrefix` and the original path, carrying `authorization`, the configured
//!   `allowedHeaders`, `x-forwarded-host`, `x-forwarded-for` and optionally the start of the
//!   body. A 2xx answer allows (headers in `allowedUpstreamHeaders` are copied upstream, those
//!   named in `x-envoy-auth-headers-to-remove` are removed); any other status denies with that
//!   status, the answer's headers and body.
//!
//! A denial without a body is rendered as the route's protocol-shaped error (OpenAI error JSON
//! for LLM routes, a JSON-RPC error carrying the request id for MCP) with the service's status
//! and headers, so every client understands it.
//!
//! **Failures.** Each call has a timeout (200 ms by default, connection included). A service
//! that is down, too slow or answers something that is neither an allow nor a denial denies
//! the request with 403 (`statusOnError`) unless `failureModeAllow` is set, in which case the
//! request is forwarded unchanged. An Envoy `error_response` is such a failure; when failing
//! closed, its status, headers and body are sent.
//!
//! **Connections** are pooled: gRPC multiplexes every check over one HTTP/2 connection
//! (reconnected when it breaks); HTTP keeps up to `maxConnections` (128) keep-alive
//! connections and never opens more at once. The gRPC channel is created by the first check,
//! on the runtime that runs it; building the layer needs no runtime.
//!
//! **Body.** With `includeRequestBody`, the body is read once through
//! [`buffer_request`](agentgw_core::body::buffer_request) (bounded by
//! [`ExtAuthLayer::body_limit`]; later layers reuse it), and at most `maxRequestBytes` of it
//! are sent; a longer body is truncated and the check says so with
//! `x-envoy-auth-partial-body: true`. The whole body still goes upstream.
//!
//! **Decision cache** (off by default): decisions can be reused for a TTL, keyed by the request
//! attributes the service decides on (for example `header:authorization` and `path`). Only
//! decisions are cached, never failures.
//!
//! **Observability.** Every check is counted in
//! [`EXT_AUTH_CHECKS_TOTAL`](agentgw_core::metrics::EXT_AUTH_CHECKS_TOTAL) (labels `protocol`,
//! `outcome` = `allowed | denied | failed_open | failed_closed`, `reason` = `ok | denied |
//! timeout | unavailable | malformed_response | error`), its latency recorded in
//! [`EXT_AUTH_CHECK_DURATION_SECONDS`](agentgw_core::metrics::EXT_AUTH_CHECK_DURATION_SECONDS)
//! (both described by [`agentgw_core::metrics::describe`]) and traced in an `ext_authz` span
//! (`latency_us`, `outcome`, `reason`, `cached`). Every denial is also counted in
//! `agentgateway_rejected_requests_total` with `layer="ext_auth"` and the same `reason`, and,
//! with [`ExtAuthLayer::audit_sink`], every check is audited.
//!
//! **Names.** The layer is named after the seed's `extAuth` block ([`ExtAuthConfig`],
//! [`ExtAuthLayer`], [`ExtAuthService`], `layer="ext_auth"` in metrics); the module after the
//! protocol it speaks, Envoy's ext_authz.
//!
//! # gRPC
//!
//! ```
//! use std::time::Duration;
//!
//! use agentgw_auth::ext_authz::{BackendRef, ExtAuthConfig, ExtAuthLayer, GrpcOptions};
//! use axum::{body::Body, routing::post, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! # use envoy_types::ext_authz::v3::pb::{Authorization, AuthorizationServer, CheckRequest, CheckResponse};
//! # use envoy_types::ext_authz::v3::{CheckRequestExt, CheckResponseExt};
//! #
//! # struct AliceOnly;
//! #
//! # #[tonic::async_trait]
//! # impl Authorization for AliceOnly {
//! #     async fn check(
//! #         &self,
//! #         request: tonic::Request<CheckRequest>,
//! #     ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
//! #         let user = request.get_ref().get_client_headers().and_then(|h| h.get("x-user"));
//! #         let status = match user.map(String::as_str) {
//! #             Some("alice") => tonic::Status::ok(""),
//! #             _ => tonic::Status::permission_denied("not alice"),
//! #         };
//! #         Ok(tonic::Response::new(CheckResponse::with_status(status)))
//! #     }
//! # }
//! #
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse()?)?;
//! # let authz = incoming.local_addr()?;
//! # tokio::spawn(
//! #     tonic::transport::Server::builder()
//! #         .serve_with_incoming(AuthorizationServer::new(AliceOnly), incoming),
//! # );
//! // An Envoy ext_authz service listens on `authz`; this one allows `x-user: alice`.
//! let config = ExtAuthConfig::default()
//!     .backend_ref(BackendRef::url(format!("http://{authz}")))
//!     .grpc(GrpcOptions::default())
//!     .timeout(Duration::from_millis(200));
//! let ext_auth = ExtAuthLayer::from_config(&config)?;
//! let app = Router::new()
//!     .route("/v1/chat/completions", post(|| async { "completion" }))
//!     .layer(ext_auth);
//!
//! let alice = Request::post("/v1/chat/completions")
//!     .header("x-user", "alice")
//!     .body(Body::empty())?;
//! assert_eq!(app.clone().oneshot(alice).await?.status(), StatusCode::OK);
//!
//! let mallory = Request::post("/v1/chat/completions")
//!     .header("x-user", "mallory")
//!     .body(Body::empty())?;
//! assert_eq!(app.oneshot(mallory).await?.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```
//!
//! # HTTP
//!
//! The same layer in front of a plain HTTP service, built from the gateway's configuration
//! block (the seed's `extAuth`, with `http: {}` in place of `grpc: {}`):
//!
//! ```
//! use agentgw_auth::ext_authz::{ExtAuthConfig, ExtAuthLayer};
//! use axum::{body::Body, routing::get, Router};
//! use http::{HeaderMap, Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // The authorization service: 200 with `x-user` for the right token, 401 otherwise.
//! # let authz = Router::new().fallback(|headers: HeaderMap| async move {
//! #     match headers.get("authorization").map(|v| v.as_bytes()) {
//! #         Some(b"Bearer good") => (StatusCode::OK, [("x-user", "alice")]).into_response(),
//! #         _ => (StatusCode::UNAUTHORIZED, [("www-authenticate", "Bearer")], "who are you?")
//! #             .into_response(),
//! #     }
//! # });
//! # use axum::response::IntoResponse;
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # tokio::spawn(async move { axum::serve(listener, authz).await });
//! let yaml = format!(
//!     "backendRef: {{url: 'http://{addr}'}}
//! http: {{pathPrefix: /authz, allowedUpstreamHeaders: [x-user]}}
//! failureModeAllow: false
//! timeout: 200ms"
//! );
//! let config: ExtAuthConfig = serde_saphyr::from_str(&yaml)?;
//! let app = Router::new()
//!     .route("/v1/models", get(|headers: HeaderMap| async move {
//!         // The service's `x-user` answer header reached the upstream request.
//!         format!("models for {}", headers["x-user"].to_str().unwrap())
//!     }))
//!     .layer(ExtAuthLayer::from_config(&config)?);
//!
//! let good = Request::get("/v1/models").header("authorization", "Bearer good").body(Body::empty())?;
//! assert_eq!(app.clone().oneshot(good).await?.status(), StatusCode::OK);
//!
//! let bad = Request::get("/v1/models").header("authorization", "Bearer bad").body(Body::empty())?;
//! let res = app.oneshot(bad).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer");
//! # Ok(())
//! # }
//! ```

mod audit;
mod build;
mod cache;
mod check;
mod config;
mod decision;
mod future;
mod grpc;
mod http_client;
mod input;
mod layer;
mod metrics;
mod service;
mod wire;

pub use config::{
    BackendRef, CacheKeyPart, DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT, DecisionCacheConfig,
    ExtAuthConfig, GrpcOptions, HttpOptions, IncludeRequestBody,
};
pub use future::ResponseFuture;
pub use layer::ExtAuthLayer;
pub use service::ExtAuthService;

/// The `layer` label of this layer's rejections.
pub const LAYER: &str = "ext_auth";
