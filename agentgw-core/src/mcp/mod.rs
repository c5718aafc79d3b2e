//! JSON-RPC 2.0 messages and their MCP meaning.
//!
//! MCP speaks JSON-RPC 2.0. Over Streamable HTTP a client POSTs one message or a batch as
//! `application/json`; the server answers either with `application/json` (one message or a
//! batch) or with `text/event-stream`, where the `data` of each event carries one JSON-RPC
//! message. This module turns those bytes into typed [`Message`]s and answers the questions the
//! layers ask about them: which method, which id, which tool a `tools/call` invokes and with what
//! arguments, which tools a `tools/list` result advertises.
//!
//! - [`parse`] classifies a body, [`from_value`] classifies JSON that is already parsed (the
//!   cached JSON of a [`Payload`](crate::Payload)), [`parse_sse_data`] classifies the data of one
//!   SSE event, and [`response_kind`] tells which of the two response shapes a response has.
//! - Validation follows JSON-RPC 2.0: `"jsonrpc": "2.0"` is required, an `id` is a string, a
//!   number or `null`, `method` is a string, `params` is an object or an array, and a message
//!   carries exactly one of `method`, `result` and `error`. Anything else is an [`McpError`] that
//!   says what is wrong and maps to a JSON-RPC error code ([`McpError::code`]).
//! - [`error_response`] builds the JSON-RPC error a denial answers with, carrying the request id.
//!
//! # Rewriting and re-serializing
//!
//! A [`Message`] owns its `params`, `result` and `error.data` as
//! [`Value`](serde_json::Value)s, so a layer can change them in place (for instance drop tools
//! from a `tools/list` result with [`tools_from_list_result_mut`]) and serialize the message
//! again with [`Message::to_value`], [`Message::into_value`] or [`Message::to_bytes`], which
//! always write `"jsonrpc": "2.0"`. Members that JSON-RPC does not define are not kept, and key
//! order inside `params` and `result` is kept. A message that was not changed does not need to be
//! serialized again: forward the original bytes (re-serializing may also change how numbers are
//! written, e.g. the last digit of a float with more digits than an `f64` holds).
//!
//! # Correlating responses with requests
//!
//! A response does not say which method it answers. Within one Streamable HTTP POST the layer
//! has the request at hand; across a stream, [`PendingRequests`] remembers a bounded number of
//! request ids and their methods. A stateless proxy can use the heuristic
//! [`is_tools_list_result`] instead.
//!
//! # Example
//!
//! ```
//! use agentgw_core::mcp::{self, Kind, ToolDef, codes};
//! use serde_json::json;
//!
//! // Classify a `tools/call` request.
//! let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call",
//!                 "params":{"name":"get_weather","arguments":{"city":"Paris"}}}"#;
//! let envelope = mcp::parse(body)?;
//! let request = envelope.as_single().expect("not a batch");
//! assert_eq!(request.kind(), Kind::Request);
//! let call = request.tool_call().expect("a tools/call request");
//! assert_eq!(call.name, "get_weather");
//! assert_eq!(call.arguments, Some(&json!({ "city": "Paris" })));
//!
//! // Deny it with a JSON-RPC error that carries the request id.
//! let id = request.id().expect("a request has an id");
//! let denial = mcp::error_response(id, codes::FORBIDDEN, "tool not allowed", None);
//! assert_eq!(
//!     denial,
//!     json!({ "jsonrpc": "2.0", "id": 7, "error": { "code": -32003, "message": "tool not allowed" } })
//! );
//!
//! // Read the tool list of a `tools/list` result.
//! let body = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
//!                 {"name":"get_weather","description":"Current weather","inputSchema":{"type":"object"}}]}}"#;
//! let response = mcp::parse(body)?.into_single().expect("not a batch");
//! let result = response.result().expect("a successful response");
//! assert!(mcp::is_tools_list_result(result));
//! let tools = mcp::tools_from_list_result(result).expect("a tools/list result");
//! let tool = ToolDef::from_value(&tools[0]).expect("a tool definition");
//! assert_eq!(tool.name, "get_weather");
//! assert_eq!(tool.description, Some("Current weather"));
//! # Ok::<(), mcp::McpError>(())
//! ```

mod answer;
mod envelope;
mod error;
mod id;
mod message;
mod pending;
mod response;
mod tools;
mod validate;

pub mod codes;
pub mod methods;

#[cfg(test)]
mod test_util;

pub use answer::{AnswerError, read_answer};
pub use envelope::{Envelope, from_value, parse, parse_sse_data};
pub use error::McpError;
pub use id::Id;
pub use message::{ErrorObject, JSONRPC_VERSION, Kind, Message, error_response};
pub use pending::PendingRequests;
pub use response::{ResponseKind, response_kind};
pub use tools::{
    ToolCall, ToolDef, is_tools_list_result, tools_from_list_result, tools_from_list_result_mut,
};
