//! CEL policy tower layer: expressions compiled once, evaluated against lazy request attributes.
//!
//! [`CelPolicyLayer`] decides every request with the rules of a [`CelPolicy`]: CEL expressions
//! over the request (`request.*`, `request.time`, `jwt.*`, `apiKey.*`, `source.*`, `mcp.*`;
//! timestamps, durations and time zones for business-hours and expiry rules), written in the
//! shape of the seed's `rbac: {policy: {matchExpressions: [...]}}` block plus explicit `allow`,
//! `deny` and `require` lists ([`RbacConfig`]). A denied request never reaches the inner
//! service; it gets the answer its client understands, rendered by
//! [`Rejection`](agentgw_core::Rejection): a `403` with an OpenAI error on LLM routes, a
//! JSON-RPC error carrying the request id on MCP (HTTP 200 with `error.data.status` 403, so
//! that MCP clients report it as the tool call's error).
//!
//! # Example
//!
//! The seed's JWT policy: admins may do anything, users may call `gpt-3.5-turbo` on `/openai`.
//!
//! ```
//! use agentgw_core::body::RequestBody;
//! use agentgw_core::identity::JwtClaims;
//! use agentgw_rbac::{CelPolicyLayer, RbacConfig};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let config: RbacConfig = serde_saphyr::from_str(r#"
//! policy:
//!   matchExpressions:
//!     - 'jwt.role == "admin"'
//!     - 'jwt.role == "user" && request.path.startsWith("/openai") && request.body.model == "gpt-3.5-turbo"'
//! "#)?;
//! let service = ServiceBuilder::new()
//!     .layer(CelPolicyLayer::from_config(&config)?)
//!     .service_fn(|_req: Request<RequestBody<Full<Bytes>>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("completion"))))
//!     });
//!
//! // The JWT layer puts the verified claims in the request extensions.
//! let request = |role: &str, model: &str| {
//!     Request::builder()
//!         .method("POST")
//!         .uri("/openai/v1/chat/completions")
//!         .extension(JwtClaims::from_value(serde_json::json!({"sub": "alice", "role": role})).unwrap())
//!         .body(Full::new(Bytes::from(format!(r#"{{"model":"{model}"}}"#))))
//!         .unwrap()
//! };
//!
//! // Allowed: the second rule matches.
//! let response = service.clone().oneshot(request("user", "gpt-3.5-turbo")).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // Denied: no rule matches. The client gets an OpenAI-style error.
//! let response = service.oneshot(request("user", "gpt-4")).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! let body = response.into_body().collect().await?.to_bytes();
//! let error: serde_json::Value = serde_json::from_slice(&body)?;
//! assert_eq!(error["error"]["type"], "permission_error");
//! assert_eq!(error["error"]["code"], "no_rule_matched");
//! # Ok(())
//! # }
//! ```
//!
//! The same layer from code, with builders, under axum's `Router::layer` (the inner route
//! receives the body unchanged):
//!
//! ```
//! use agentgw_rbac::{CelPolicyLayer, PolicyConfig, RbacConfig, RuleConfig};
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let config = RbacConfig::default().policy(
//!     PolicyConfig::default()
//!         .match_expressions([r#"request.headers["x-llm"] in ["openai", "anthropic", "gemini"]"#])
//!         .deny([RuleConfig::named("no-tool-deletes", r#"mcp.tool.name.startsWith("delete")"#)]),
//! );
//! let app = Router::new()
//!     .route("/mcp", post(|| async { "the answer" }))
//!     .layer(CelPolicyLayer::from_config(&config)?);
//!
//! let call = |llm: &str, tool: &str| {
//!     let body = serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
//!         "params": {"name": tool, "arguments": {}}});
//!     Request::post("/mcp")
//!         .header("x-llm", llm)
//!         .header("content-type", "application/json")
//!         .body(Body::from(body.to_string()))
//!         .unwrap()
//! };
//!
//! let allowed = app.clone().oneshot(call("openai", "list-files")).await?;
//! assert_eq!(allowed.status(), StatusCode::OK);
//! assert_eq!(allowed.into_body().collect().await?.to_bytes(), "the answer");
//!
//! // An MCP client gets a JSON-RPC error for its request id; the HTTP status it stands for
//! // is in `error.data.status`.
//! let denied = app.oneshot(call("openai", "delete-files")).await?;
//! assert_eq!(denied.status(), StatusCode::OK);
//! let error: serde_json::Value = serde_json::from_slice(&denied.into_body().collect().await?.to_bytes())?;
//! assert_eq!(error["id"], 7);
//! assert_eq!(error["error"]["data"]["status"], 403);
//! assert_eq!(error["error"]["data"]["reason"], "no-tool-deletes");
//! # Ok(())
//! # }
//! ```
//!
//! # Rules
//!
//! See [`policy`] for how `deny`, `require` and `allow`/`matchExpressions` combine, [`expr`]
//! for the variables and the CEL subset, and [`config`] for the YAML shape. Every rule is
//! checked when the policy loads: syntax (with line and column), names of variables,
//! attributes and functions, a result that can be a bool, and that `mcp.tool.*` is not read
//! where no tool call can exist. Errors ([`Error`]) name the rule relative to the `rbac`
//! block: `policy.matchExpressions[1]: CEL syntax error at line 1, column 14: ...`.
//!
//! At run time a rule that fails (a missing header, a division by zero) counts against the
//! request: a failing deny or require rule denies, a failing allow rule does not match. Each
//! failure is counted in `agentgateway_rbac_rule_errors_total{rule}`; each denial in
//! `agentgateway_rejected_requests_total{layer="rbac", reason=<rule>}`.
//!
//! # What it costs
//!
//! Rules are compiled into closures with constants folded, literal `in` lists turned into
//! sets and literal `matches()` patterns compiled once. Variables are read from the request
//! only when a rule reaches them, and strings, headers, claims and body fields are borrowed,
//! not copied. The body is buffered (bounded by [`CelPolicyLayer::body_limit`]) only when some
//! rule reads `request.body` or `mcp.*`; otherwise it streams through untouched. A rule costs
//! a few hundred nanoseconds; the crate's README has measurements.
//!
//! # MCP
//!
//! For `tools/call`, `mcp.tool.name`, `mcp.tool.target` and `mcp.tool.arguments` are visible to
//! rules. When some rule reads `mcp.*`, the result of a `tools/list` request is filtered: tools
//! the caller could never call are removed, in `application/json` and `text/event-stream`
//! responses alike ([`CelPolicy::tool_visible`]), and JSON-RPC batches are denied: the `mcp.*`
//! attributes describe one message.
//!
//! # The parser
//!
//! Parsing uses the `cel` crate (0.15), the maintained successor of `cel-parser`, which is
//! frozen at 0.10: its ANTLR-generated parser follows the CEL grammar exactly, reports errors
//! with line and column and expands the standard macros. Only [`expr`]'s front end sees its
//! types; the rest works on our own syntax tree, so the parser can be swapped. Its interpreter
//! is not used: ours is faster, fails closed and checks names at load time.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
mod error;
pub mod expr;
mod layer;
pub mod policy;

pub use config::{PolicyConfig, RbacConfig, RuleConfig};
pub use error::Error;
pub use expr::{CompileOptions, Expression};
pub use layer::{CelPolicyLayer, CelPolicyService, RbacBody, ResponseFuture, ToolListStream};
pub use policy::{CelPolicy, Decision, Denial, DenyCause};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
