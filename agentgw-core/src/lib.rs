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
//! - [`audit`] and [`metrics`]: audit events and sinks, metric names.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod attributes;
pub mod audit;
pub mod body;
pub mod content;
pub mod decode;
pub mod identity;
pub mod json;
pub mod llm;
pub mod mcp;
pub mod metrics;
pub mod ndjson;
pub mod path;
pub mod payload;
pub mod rejection;
pub mod sse;

pub use attributes::Attributes;
pub use body::{BodyLimit, RequestBody, ResponseBody};
pub use payload::Payload;
pub use rejection::{Rejection, ResponseShape};

/// The boxed error type used where errors of different sources meet (body errors).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
