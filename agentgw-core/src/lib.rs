//! Shared vocabulary of the agentgw layers.
//!
//! `agentgw-core` holds no policy logic. It gives every layer the same answers to the questions
//! each of them would otherwise answer differently:
//!
//! - [`body`] and [`payload`]: read a request body once, within a limit, and share it
//!   ([`Payload`]) with every later layer through the request extensions.
//! - [`llm`]: OpenAI and Anthropic chat payloads as text segments with their scope, rewritten in
//!   place; text deltas of streamed chunks.
//! - [`mcp`]: JSON-RPC 2.0 messages and their MCP meaning (method, tool call, tool list).
//! - [`ndjson`]: an incremental decoder of line-delimited JSON streams, framed for the same
//!   stream transforms as [`sse`].
//! - [`sse`]: an incremental Server-Sent Events decoder and encoder, and a body that transforms a
//!   stream event by event.
//! - [`rejection`]: one [`Rejection`] type rendered as the error a client of that protocol
//!   understands.
//! - [`content`], [`decode`], [`json`] and [`path`]: the one interpretation of a message every
//!   layer shares (media type and content codings, bounded decompression, strict JSON, the
//!   canonical path), so that a layer inspects exactly what the upstream and the client act on.
//! - [`attributes`]: the read-only view of a request that policies evaluate.
//! - [`reload`] (feature `reload`, on by default): a value parsed from files and swapped in
//!   when they change, checked by a background watcher; the last good value stays in service.
//! - [`escalation`]: what an `action: Escalate` rule hands to a webhook (or any
//!   [`Escalator`](escalation::Escalator)), and the bounded, fail-closed wait for its
//!   decision (`blockPending`); the webhook client is the feature `escalation`.
//! - [`audit`] and [`metrics`]: audit events and sinks, every metric name and label set;
//!   [`tool_metrics`]: MCP tool-call metrics for any MCP route.
//! - [`config`], [`percent`] and [`headers`]: the helpers every layer's configuration and
//!   request handling share (field paths of errors, durations, byte sizes, query decoding,
//!   hop-by-hop headers).
//!
//! # The layer contract
//!
//! Every agentgw layer, in every crate, is built and used the same way, so that a user of
//! three crates learns one pattern:
//!
//! 1. **Built from its configuration.** `XLayer::from_config(&XConfig) -> Result<XLayer, Error>`
//!    validates and compiles everything up front (patterns into one automaton, CEL into a
//!    program, key files read); the config is borrowed, so one config can build many layers.
//! 2. **Configuration is data and code.** `XConfig` is a serde struct whose field names follow
//!    the seed (`camelCase`), is `#[non_exhaustive]`, implements `Default` (every field at its
//!    documented default), and has `#[must_use]` builder methods named after its fields, so it
//!    can be written in code without YAML.
//! 3. **Settings of the layer itself** are `#[must_use]` methods taking and returning the layer,
//!    with one name for one setting everywhere: `body_limit(BodyLimit)` for the size of a body
//!    the layer buffers, `audit_sink(Arc<dyn AuditSink>)` for where its audit events go.
//! 4. **One error type per crate**, named `Error`, implementing
//!    [`config::ConfigError`]: `path()` is relative to the layer's configuration block and
//!    `reason()` says what is wrong, so the caller prefixes the block's path in one step
//!    ([`ConfigError::at`]).
//! 5. **Types at the crate root**: `XLayer`, `XService`, `ResponseFuture` and the response
//!    body (an alias of [`ResponseBody`] with the layer's own transform), each documented.
//!    Response futures are named types (no `BoxFuture`) where the layer's work fits a state
//!    machine; a layer that must await its own I/O before calling the inner service (external
//!    authorization) says why it boxes.
//! 6. **Denials are responses, never `Service::Error`**, rendered by [`Rejection`] with the one
//!    policy of [`rejection`]: the same HTTP status and error shape for an MCP or LLM client,
//!    whichever layer denied. Each denial is counted in
//!    [`metrics::REJECTED_REQUESTS_TOTAL`] and, with a sink set, audited.
//! 7. **Services keep tower's contract**: `Clone` (state behind `Arc`), `poll_ready` forwarded
//!    to the inner service, generic over request and response bodies
//!    (`B: Body<Data = Bytes>, B::Error: Into<BoxError>`), so that layers of every crate stack
//!    in one `tower::ServiceBuilder`, in front of axum, hyper or a reqwest upstream.
//!
//! ```
//! use agentgw_core::config::ConfigError;
//!
//! /// What a gateway does with any layer's error: one line, prefixed with where the block is.
//! fn report(route: usize, block: &str, error: &dyn ConfigError) -> String {
//!     error.at(&format!("routes[{route}].policies.{block}"))
//! }
//! # #[derive(Debug, thiserror::Error)]
//! # #[error("bad")]
//! # struct E;
//! # impl ConfigError for E {
//! #     fn path(&self) -> &str { "issuer" }
//! #     fn reason(&self) -> String { "must not be empty".into() }
//! # }
//! assert_eq!(report(0, "jwtAuthentication", &E), "routes[0].policies.jwtAuthentication.issuer: must not be empty");
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod attributes;
pub mod audit;
pub mod body;
pub mod config;
pub mod content;
pub mod decode;
pub mod escalation;
pub mod headers;
pub mod health;
pub mod identity;
pub mod json;
pub mod llm;
pub mod mcp;
pub mod metrics;
pub mod ndjson;
pub mod path;
pub mod payload;
pub mod percent;
#[cfg(any(feature = "webhook", feature = "escalation"))]
mod post_client;
pub mod rejection;
#[cfg(feature = "reload")]
#[cfg_attr(docsrs, doc(cfg(feature = "reload")))]
pub mod reload;
pub mod sse;
pub mod tool_metrics;

pub use attributes::Attributes;
pub use body::{BodyLimit, NoTransform, RequestBody, ResponseBody};
pub use config::ConfigError;
pub use payload::Payload;
pub use rejection::{Denied, Rejection, ResponseShape};

/// The boxed error type used where errors of different sources meet (body errors).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
