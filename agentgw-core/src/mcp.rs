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
//! A [`Message`] owns its `params`, `result` and `error.data` as [`Value`]s, so a layer can
//! change them in place (for instance drop tools from a `tools/list` result with
//! [`tools_from_list_result_mut`]) and serialize the message again with [`Message::to_value`],
//! [`Message::into_value`] or [`Message::to_bytes`], which always write `"jsonrpc": "2.0"`.
//! Members that JSON-RPC does not define are not kept, and key order inside `params` and
//! `result` is kept. A message that was not changed does not need to be serialized again:
//! forward the original bytes (re-serializing may also change how numbers are written, e.g. the
//! last digit of a float with more digits than an `f64` holds).
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

use std::collections::{HashMap, VecDeque};
use std::fmt;

use crate::content::{self, MediaType};
use bytes::Bytes;
use http::HeaderMap;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Number, Value};

/// The value of the `jsonrpc` member every JSON-RPC 2.0 message carries.
pub const JSONRPC_VERSION: &str = "2.0";

/// MCP method names the layers look at.
pub mod methods {
    /// The first request of a session: capability negotiation.
    pub const INITIALIZE: &str = "initialize";
    /// Lists the tools a server offers; its result carries `tools`.
    pub const TOOLS_LIST: &str = "tools/list";
    /// Invokes one tool; its params carry `name` and `arguments`.
    pub const TOOLS_CALL: &str = "tools/call";
    /// Lists the prompts a server offers; its result carries `prompts`.
    pub const PROMPTS_LIST: &str = "prompts/list";
    /// Gets one prompt; its result carries `messages` the model reads.
    pub const PROMPTS_GET: &str = "prompts/get";
    /// Lists the resources a server offers; its result carries `resources`.
    pub const RESOURCES_LIST: &str = "resources/list";
    /// Lists resource templates; its result carries `resourceTemplates`.
    pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
    /// Reads a resource; its result carries `contents`.
    pub const RESOURCES_READ: &str = "resources/read";
    /// Server to client: asks the client's model for a completion.
    pub const SAMPLING_CREATE_MESSAGE: &str = "sampling/createMessage";
    /// Server to client: asks the user for input.
    pub const ELICITATION_CREATE: &str = "elicitation/create";

    /// The methods of the MCP specification (2025-06-18), requests and notifications.
    pub const ALL: &[&str] = &[
        INITIALIZE,
        "ping",
        TOOLS_LIST,
        TOOLS_CALL,
        PROMPTS_LIST,
        PROMPTS_GET,
        RESOURCES_LIST,
        RESOURCES_TEMPLATES_LIST,
        RESOURCES_READ,
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
        SAMPLING_CREATE_MESSAGE,
        ELICITATION_CREATE,
        "roots/list",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/message",
        "notifications/resources/updated",
        "notifications/resources/list_changed",
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/roots/list_changed",
    ];

    /// The MCP method `method` imitates without being it: equal to one of [`ALL`] when ASCII
    /// case and surrounding whitespace are ignored, but not byte for byte (`Tools/Call`,
    /// `TOOLS/CALL`, `tools/call `). MCP method names are case-sensitive; a server that
    /// folds case would run such a request without the checks its real name gets, so layers
    /// refuse it. `None` for an exact method name and for names unrelated to MCP's.
    ///
    /// ```
    /// use agentgw_core::mcp::methods::{self, lookalike};
    ///
    /// assert_eq!(lookalike("Tools/Call"), Some(methods::TOOLS_CALL));
    /// assert_eq!(lookalike("tools/call"), None);
    /// assert_eq!(lookalike("vendor/custom"), None);
    /// ```
    pub fn lookalike(method: &str) -> Option<&'static str> {
        let trimmed = method.trim_matches(|c: char| c.is_whitespace() || c.is_control());
        ALL.iter()
            .copied()
            .find(|known| known.eq_ignore_ascii_case(trimmed))
            .filter(|known| *known != method)
    }
}

/// JSON-RPC 2.0 error codes, and the server-range codes agentgw answers denials with.
///
/// Codes from -32768 to -32000 are reserved by JSON-RPC 2.0; -32099 to -32000 are left to the
/// server. agentgw uses that range for its own denials, numbered after the HTTP status they
/// stand for where possible.
pub mod codes {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid JSON-RPC request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters (for instance a `tools/call` without a tool name).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The caller is not authenticated (HTTP 401).
    pub const UNAUTHORIZED: i64 = -32001;
    /// The caller is authenticated but not allowed to do this (HTTP 403): a policy, an allowlist
    /// or a guard denied the request.
    pub const FORBIDDEN: i64 = -32003;
    /// The upstream did not answer in time (HTTP 504).
    pub const TIMEOUT: i64 = -32004;
    /// The request body is larger than the configured limit (HTTP 413).
    pub const PAYLOAD_TOO_LARGE: i64 = -32013;
}

/// Why bytes or JSON are not a valid JSON-RPC 2.0 message.
///
/// [`McpError::code`] gives the JSON-RPC error code to answer with and [`McpError::reason`] a
/// short label for metrics and logs. Messages never quote params or results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The bytes are not valid UTF-8, so they cannot be JSON.
    #[error("body is not valid UTF-8 (first invalid byte at offset {valid_up_to})")]
    InvalidUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The text is not valid JSON; the source says where.
    #[error("invalid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The JSON is not a JSON-RPC 2.0 message at all: not an object (or batch of objects), or
    /// without `"jsonrpc": "2.0"`.
    #[error("not a JSON-RPC 2.0 message: {reason}")]
    NotJsonRpc {
        /// What is missing or wrong.
        reason: String,
    },
    /// The JSON claims to be JSON-RPC 2.0 but breaks its rules (an `id` that is an object, a
    /// `method` that is not a string, both `result` and `error`, a malformed error object, ...).
    #[error("invalid JSON-RPC 2.0 message: {reason}")]
    InvalidMessage {
        /// Which rule is broken.
        reason: String,
    },
    /// A batch (a JSON array) with no message in it.
    #[error("empty JSON-RPC batch: a batch must contain at least one message")]
    EmptyBatch,
    /// One message of a batch is invalid.
    #[error("batch message {index}: {source}")]
    InBatch {
        /// Zero-based position of the message in the batch.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: Box<McpError>,
    },
    /// A well-formed request whose params do not fit its MCP method (see
    /// [`Message::try_tool_call`]).
    #[error("invalid params for {method}: {reason}")]
    InvalidParams {
        /// The MCP method, e.g. `tools/call`.
        method: &'static str,
        /// What is wrong with the params.
        reason: &'static str,
    },
}

impl McpError {
    /// The JSON-RPC error code a server answers this error with: [`codes::PARSE_ERROR`] for
    /// bytes that are not JSON, [`codes::INVALID_PARAMS`] for bad params, otherwise
    /// [`codes::INVALID_REQUEST`].
    pub fn code(&self) -> i64 {
        match self {
            Self::InvalidUtf8 { .. } | Self::InvalidJson(_) => codes::PARSE_ERROR,
            Self::InvalidParams { .. } => codes::INVALID_PARAMS,
            Self::InBatch { source, .. } => source.code(),
            Self::NotJsonRpc { .. } | Self::InvalidMessage { .. } | Self::EmptyBatch => {
                codes::INVALID_REQUEST
            }
        }
    }

    /// A short, fixed label for metrics and logs (`"invalid_json"`, `"not_jsonrpc"`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::InvalidJson(_) => "invalid_json",
            Self::NotJsonRpc { .. } => "not_jsonrpc",
            Self::InvalidMessage { .. } => "invalid_message",
            Self::EmptyBatch => "empty_batch",
            Self::InBatch { source, .. } => source.reason(),
            Self::InvalidParams { .. } => "invalid_params",
        }
    }

    fn not_jsonrpc(reason: impl Into<String>) -> Self {
        Self::NotJsonRpc {
            reason: reason.into(),
        }
    }

    fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidMessage {
            reason: reason.into(),
        }
    }
}

/// A JSON-RPC request id: a string, a number or `null`.
///
/// Ids compare as JSON values: `1` and `"1"` are different ids, and so are `1` and `1.0`.
/// `Display` writes the id as JSON (`7`, `"abc"`, `null`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    /// A numeric id. JSON-RPC allows fractional numbers, though they are unusual.
    Number(Number),
    /// A string id.
    String(String),
    /// `null`: the id of an error response to a request whose id could not be read.
    Null,
}

impl Id {
    /// The id as a JSON value, to put into a message.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Number(n) => Value::Number(n.clone()),
            Self::String(s) => Value::String(s.clone()),
            Self::Null => Value::Null,
        }
    }

    /// Whether a lenient client could take a response carrying `other` as the answer to the
    /// request with this id: the same id, or a number and a string that reads as that number
    /// (the TypeScript SDK matches responses with `Number(id)`: `"1"`, `" 1"` and `1.0`
    /// answer request `1`). A layer that inspects the answers to some requests must look at
    /// every answer that matches loosely, not only at the exact one.
    ///
    /// ```
    /// use agentgw_core::mcp::Id;
    ///
    /// assert!(Id::from(1_i64).loosely_matches(&Id::from("1")));
    /// assert!(Id::from("01").loosely_matches(&Id::from(1_i64)));
    /// assert!(!Id::from(1_i64).loosely_matches(&Id::from(2_i64)));
    /// assert!(Id::from("a").loosely_matches(&Id::from("a")));
    /// ```
    pub fn loosely_matches(&self, other: &Id) -> bool {
        if self == other {
            return true;
        }
        match (self.as_number(), other.as_number()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    /// The id read as a number, the way `Number(id)` of JavaScript reads it (`None` for
    /// `null`, empty strings and text that is not a number).
    fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(n) => n.as_f64(),
            Self::String(s) if !s.trim().is_empty() => s.trim().parse::<f64>().ok(),
            Self::String(_) | Self::Null => None,
        }
    }

    /// Reads an id from JSON; `None` if the value is not a string, a number or `null`.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => Some(Self::Number(n.clone())),
            Value::String(s) => Some(Self::String(s.clone())),
            Value::Null => Some(Self::Null),
            _ => None,
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => fmt::Display::fmt(n, f),
            Self::String(s) => f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?),
            Self::Null => f.write_str("null"),
        }
    }
}

impl From<i64> for Id {
    fn from(n: i64) -> Self {
        Self::Number(n.into())
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Self::Number(n.into())
    }
}

impl From<String> for Id {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

/// The `error` member of a JSON-RPC error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The error code (see [`codes`]).
    pub code: i64,
    /// A short description of the error.
    pub message: String,
    /// Additional information, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// The error object as JSON: `{"code": .., "message": .., "data": ..}`, `data` only when
    /// present.
    pub fn to_value(&self) -> Value {
        let mut map = Map::with_capacity(3);
        map.insert("code".to_owned(), Value::from(self.code));
        map.insert("message".to_owned(), Value::String(self.message.clone()));
        if let Some(data) = &self.data {
            map.insert("data".to_owned(), data.clone());
        }
        Value::Object(map)
    }
}

/// The four kinds of JSON-RPC 2.0 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A call that expects a response (it has an `id`).
    Request,
    /// A call without an `id`: no response follows.
    Notification,
    /// A successful response (it has a `result`).
    Response,
    /// An error response (it has an `error`).
    Error,
}

impl Kind {
    /// The kind as a lowercase label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Notification => "notification",
            Self::Response => "response",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One JSON-RPC 2.0 message.
///
/// Built by [`parse`], [`from_value`] or [`parse_sse_data`], which validate it; build one
/// directly to send it. Serializing (with [`Message::to_value`], [`Message::to_bytes`] or
/// serde) always writes `"jsonrpc": "2.0"`. Deserializing with serde applies the same
/// validation as [`from_value`].
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that expects a response.
    Request {
        /// The id the response will carry.
        id: Id,
        /// The method, e.g. `tools/call`.
        method: String,
        /// The params: an object or an array.
        params: Option<Value>,
    },
    /// A call without a response.
    Notification {
        /// The method, e.g. `notifications/initialized`.
        method: String,
        /// The params: an object or an array.
        params: Option<Value>,
    },
    /// A successful response.
    Response {
        /// The id of the request it answers.
        id: Id,
        /// The result.
        result: Value,
    },
    /// An error response.
    Error {
        /// The id of the request it answers; `null` if that id could not be read.
        id: Id,
        /// What went wrong.
        error: ErrorObject,
    },
}

/// A `tools/call` request's tool name and arguments, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolCall<'a> {
    /// The tool to invoke (`params.name`).
    pub name: &'a str,
    /// The arguments (`params.arguments`), an object when present. An explicit `null` reads as
    /// absent.
    pub arguments: Option<&'a Value>,
}

impl Message {
    /// Validates one JSON-RPC 2.0 message (not a batch). Use [`from_value`] when the JSON may be
    /// a batch.
    pub fn from_value(value: &Value) -> Result<Self, McpError> {
        let object = as_message_object(value)?;
        Ok(match classify(object)? {
            Shape::Request(id) => Self::Request {
                id,
                method: method_of(object).to_owned(),
                params: object.get("params").cloned(),
            },
            Shape::Notification => Self::Notification {
                method: method_of(object).to_owned(),
                params: object.get("params").cloned(),
            },
            Shape::Response(id) => Self::Response {
                id,
                result: object.get("result").cloned().unwrap_or_default(),
            },
            Shape::Error(id, error) => Self::Error { id, error },
        })
    }

    /// Like [`Message::from_value`], but takes the JSON by value and moves params and results
    /// out of it instead of cloning them.
    pub fn from_owned_value(value: Value) -> Result<Self, McpError> {
        let Value::Object(mut object) = value else {
            return Err(not_an_object(&value));
        };
        Ok(match classify(&object)? {
            Shape::Request(id) => Self::Request {
                id,
                method: take_method(&mut object),
                params: object.remove("params"),
            },
            Shape::Notification => Self::Notification {
                method: take_method(&mut object),
                params: object.remove("params"),
            },
            Shape::Response(id) => Self::Response {
                id,
                result: object.remove("result").unwrap_or_default(),
            },
            Shape::Error(id, error) => Self::Error { id, error },
        })
    }

    /// The kind of message.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Request { .. } => Kind::Request,
            Self::Notification { .. } => Kind::Notification,
            Self::Response { .. } => Kind::Response,
            Self::Error { .. } => Kind::Error,
        }
    }

    /// The id of a request, response or error; `None` for a notification.
    pub fn id(&self) -> Option<&Id> {
        match self {
            Self::Request { id, .. } | Self::Response { id, .. } | Self::Error { id, .. } => {
                Some(id)
            }
            Self::Notification { .. } => None,
        }
    }

    /// The method of a request or notification; `None` for responses.
    pub fn method(&self) -> Option<&str> {
        match self {
            Self::Request { method, .. } | Self::Notification { method, .. } => Some(method),
            Self::Response { .. } | Self::Error { .. } => None,
        }
    }

    /// The params of a request or notification, if any.
    pub fn params(&self) -> Option<&Value> {
        match self {
            Self::Request { params, .. } | Self::Notification { params, .. } => params.as_ref(),
            Self::Response { .. } | Self::Error { .. } => None,
        }
    }

    /// The result of a successful response.
    pub fn result(&self) -> Option<&Value> {
        match self {
            Self::Response { result, .. } => Some(result),
            _ => None,
        }
    }

    /// The result of a successful response, to rewrite it.
    pub fn result_mut(&mut self) -> Option<&mut Value> {
        match self {
            Self::Response { result, .. } => Some(result),
            _ => None,
        }
    }

    /// The error object of an error response.
    pub fn error(&self) -> Option<&ErrorObject> {
        match self {
            Self::Error { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The tool name and arguments of a well-formed `tools/call` request; `None` for any other
    /// message and for a `tools/call` whose params are malformed.
    ///
    /// A layer that enforces a policy on tool calls should use [`Message::try_tool_call`], so
    /// that a malformed `tools/call` is rejected rather than treated as "not a tool call".
    pub fn tool_call(&self) -> Option<ToolCall<'_>> {
        self.try_tool_call().ok().flatten()
    }

    /// The tool name and arguments of a `tools/call` request.
    ///
    /// `Ok(None)` for any other message (including a `tools/call` notification, which invokes
    /// nothing). An [`McpError::InvalidParams`] for a `tools/call` request without an object
    /// `params`, without a string `name`, or with `arguments` that are neither an object nor
    /// `null`.
    pub fn try_tool_call(&self) -> Result<Option<ToolCall<'_>>, McpError> {
        let Self::Request { method, params, .. } = self else {
            return Ok(None);
        };
        if method != methods::TOOLS_CALL {
            return Ok(None);
        }
        let invalid = |reason| McpError::InvalidParams {
            method: methods::TOOLS_CALL,
            reason,
        };
        let params = match params {
            Some(Value::Object(params)) => params,
            Some(_) => return Err(invalid("`params` must be an object")),
            None => return Err(invalid("`params` with the tool `name` is required")),
        };
        let name = match params.get("name") {
            Some(Value::String(name)) => name,
            Some(_) => return Err(invalid("the tool `name` must be a string")),
            None => return Err(invalid("the tool `name` is missing")),
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => None,
            Some(arguments @ Value::Object(_)) => Some(arguments),
            Some(_) => return Err(invalid("`arguments` must be an object")),
        };
        Ok(Some(ToolCall { name, arguments }))
    }

    /// The message as JSON, with `"jsonrpc": "2.0"` first.
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// The message as JSON, with `"jsonrpc": "2.0"` first, without cloning params or results.
    pub fn into_value(self) -> Value {
        let mut map = Map::with_capacity(4);
        map.insert("jsonrpc".to_owned(), Value::from(JSONRPC_VERSION));
        match self {
            Self::Request { id, method, params } => {
                map.insert("id".to_owned(), id.to_value());
                map.insert("method".to_owned(), Value::String(method));
                if let Some(params) = params {
                    map.insert("params".to_owned(), params);
                }
            }
            Self::Notification { method, params } => {
                map.insert("method".to_owned(), Value::String(method));
                if let Some(params) = params {
                    map.insert("params".to_owned(), params);
                }
            }
            Self::Response { id, result } => {
                map.insert("id".to_owned(), id.to_value());
                map.insert("result".to_owned(), result);
            }
            Self::Error { id, error } => {
                map.insert("id".to_owned(), id.to_value());
                map.insert("error".to_owned(), error.to_value());
            }
        }
        Value::Object(map)
    }

    /// The message serialized as compact JSON, with `"jsonrpc": "2.0"`.
    ///
    /// Only needed after a change: an unchanged message is best forwarded as its original bytes.
    pub fn to_bytes(&self) -> Bytes {
        to_json_bytes(self)
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("jsonrpc", JSONRPC_VERSION)?;
        match self {
            Self::Request { id, method, params } => {
                map.serialize_entry("id", id)?;
                map.serialize_entry("method", method)?;
                if let Some(params) = params {
                    map.serialize_entry("params", params)?;
                }
            }
            Self::Notification { method, params } => {
                map.serialize_entry("method", method)?;
                if let Some(params) = params {
                    map.serialize_entry("params", params)?;
                }
            }
            Self::Response { id, result } => {
                map.serialize_entry("id", id)?;
                map.serialize_entry("result", result)?;
            }
            Self::Error { id, error } => {
                map.serialize_entry("id", id)?;
                map.serialize_entry("error", error)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_owned_value(value).map_err(serde::de::Error::custom)
    }
}

/// A whole JSON-RPC payload: one message, or a batch of them.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// A single message (a JSON object).
    Single(Message),
    /// A batch (a JSON array), never empty.
    Batch(Vec<Message>),
}

impl Envelope {
    /// The messages, one for a single message, in order for a batch.
    pub fn messages(&self) -> &[Message] {
        match self {
            Self::Single(message) => std::slice::from_ref(message),
            Self::Batch(messages) => messages,
        }
    }

    /// The messages, to rewrite them.
    pub fn messages_mut(&mut self) -> &mut [Message] {
        match self {
            Self::Single(message) => std::slice::from_mut(message),
            Self::Batch(messages) => messages,
        }
    }

    /// The messages, owned.
    pub fn into_messages(self) -> Vec<Message> {
        match self {
            Self::Single(message) => vec![message],
            Self::Batch(messages) => messages,
        }
    }

    /// Whether the payload is a batch (even a batch of one).
    pub fn is_batch(&self) -> bool {
        matches!(self, Self::Batch(_))
    }

    /// The message of a single-message payload; `None` for a batch.
    pub fn as_single(&self) -> Option<&Message> {
        match self {
            Self::Single(message) => Some(message),
            Self::Batch(_) => None,
        }
    }

    /// The message of a single-message payload, owned; `None` for a batch.
    pub fn into_single(self) -> Option<Message> {
        match self {
            Self::Single(message) => Some(message),
            Self::Batch(_) => None,
        }
    }

    /// The payload as JSON: an object, or an array for a batch.
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// The payload as JSON, without cloning params or results.
    pub fn into_value(self) -> Value {
        match self {
            Self::Single(message) => message.into_value(),
            Self::Batch(messages) => {
                Value::Array(messages.into_iter().map(Message::into_value).collect())
            }
        }
    }

    /// The payload serialized as compact JSON.
    ///
    /// Only needed after a change: an unchanged payload is best forwarded as its original bytes.
    pub fn to_bytes(&self) -> Bytes {
        to_json_bytes(self)
    }
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Single(message) => message.serialize(serializer),
            Self::Batch(messages) => messages.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::try_from(value).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<Value> for Envelope {
    type Error = McpError;

    /// Validates JSON taken by value, moving params and results out of it.
    fn try_from(value: Value) -> Result<Self, McpError> {
        match value {
            Value::Array(values) => {
                if values.is_empty() {
                    return Err(McpError::EmptyBatch);
                }
                values
                    .into_iter()
                    .enumerate()
                    .map(|(index, value)| {
                        Message::from_owned_value(value).map_err(|source| in_batch(index, source))
                    })
                    .collect::<Result<_, _>>()
                    .map(Self::Batch)
            }
            Value::Object(_) => Message::from_owned_value(value).map(Self::Single),
            other => Err(not_a_payload(&other)),
        }
    }
}

/// Parses and validates a JSON-RPC 2.0 payload: one message or a batch.
///
/// Errors say whether the bytes are not UTF-8, not JSON, not JSON-RPC 2.0, or break one of its
/// rules; a batch error names the index of the bad message. Never panics, whatever the bytes.
pub fn parse(bytes: &[u8]) -> Result<Envelope, McpError> {
    let text = std::str::from_utf8(bytes).map_err(|error| McpError::InvalidUtf8 {
        valid_up_to: error.valid_up_to(),
    })?;
    parse_str(text)
}

fn parse_str(text: &str) -> Result<Envelope, McpError> {
    // Strict on duplicate keys: a client that keeps the first `result` would read what the
    // layers never inspected (see `crate::json`).
    let value =
        crate::json::parse_unique_keys(text.as_bytes()).map_err(
            |strict| match serde_json::from_str::<Value>(text) {
                Err(syntax) => McpError::InvalidJson(syntax),
                Ok(_) => McpError::invalid(strict.to_string()),
            },
        )?;
    Envelope::try_from(value)
}

/// Validates JSON that is already parsed (for instance the cached JSON of a
/// [`Payload`](crate::Payload)), so the body is not parsed twice.
///
/// Params and results are cloned out of `value`; use `Envelope::try_from(value)` to move them
/// instead when the JSON is no longer needed.
pub fn from_value(value: &Value) -> Result<Envelope, McpError> {
    match value {
        Value::Array(values) => {
            if values.is_empty() {
                return Err(McpError::EmptyBatch);
            }
            values
                .iter()
                .enumerate()
                .map(|(index, value)| {
                    Message::from_value(value).map_err(|source| in_batch(index, source))
                })
                .collect::<Result<_, _>>()
                .map(Envelope::Batch)
        }
        Value::Object(_) => Message::from_value(value).map(Envelope::Single),
        other => Err(not_a_payload(other)),
    }
}

/// Parses the `data` of one Server-Sent Event of an MCP `text/event-stream` response.
///
/// MCP puts one JSON-RPC message in each event's data (a batch is accepted too). `Ok(None)` for
/// data that is empty or only whitespace: servers send such events to prime a client for
/// resumption, and they must be passed through untouched. Call this for events whose type is
/// absent or `message`; the data of a multi-line event is its lines joined with `\n`, which is
/// JSON whitespace.
pub fn parse_sse_data(data: &str) -> Result<Option<Envelope>, McpError> {
    if data.trim_ascii().is_empty() {
        return Ok(None);
    }
    parse_str(data).map(Some)
}

/// Builds a JSON-RPC error response:
/// `{"jsonrpc": "2.0", "id": .., "error": {"code": .., "message": .., "data": ..}}`, `data` only
/// when given.
///
/// Use the request's id, or [`Id::Null`] when the request's id could not be read.
pub fn error_response(id: &Id, code: i64, message: &str, data: Option<Value>) -> Value {
    Message::Error {
        id: id.clone(),
        error: ErrorObject {
            code,
            message: message.to_owned(),
            data,
        },
    }
    .into_value()
}

/// The `tools` array of a `tools/list` result; `None` if `result` has none.
pub fn tools_from_list_result(result: &Value) -> Option<&Vec<Value>> {
    result.get("tools")?.as_array()
}

/// The `tools` array of a `tools/list` result, to filter or rewrite it in place.
pub fn tools_from_list_result_mut(result: &mut Value) -> Option<&mut Vec<Value>> {
    result.get_mut("tools")?.as_array_mut()
}

/// Whether `result` looks like a `tools/list` result: an object whose `tools` is an array of
/// objects that each have a string `name`.
///
/// A heuristic for proxies that do not remember which request a response answers; where the
/// request is known (see [`PendingRequests`]), check its method instead.
pub fn is_tools_list_result(result: &Value) -> bool {
    tools_from_list_result(result).is_some_and(|tools| {
        tools
            .iter()
            .all(|tool| tool.get("name").is_some_and(Value::is_string))
    })
}

/// A read-only view of one tool definition of a `tools/list` result, borrowed from its JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolDef<'a> {
    /// The tool's name (`name`).
    pub name: &'a str,
    /// Its human-readable title (`title`), if it is a string.
    pub title: Option<&'a str>,
    /// Its description (`description`), if it is a string: what a model reads to decide when
    /// and how to call it.
    pub description: Option<&'a str>,
    /// The JSON Schema of its arguments (`inputSchema`).
    pub input_schema: Option<&'a Value>,
    /// The JSON Schema of its structured output (`outputSchema`).
    pub output_schema: Option<&'a Value>,
    /// Its annotations (`annotations`: hints such as `readOnlyHint`).
    pub annotations: Option<&'a Value>,
    /// The whole definition, for members not listed here.
    pub value: &'a Value,
}

impl<'a> ToolDef<'a> {
    /// Views a tool definition; `None` if `value` is not an object with a string `name`.
    pub fn from_value(value: &'a Value) -> Option<Self> {
        let object = value.as_object()?;
        Some(Self {
            name: object.get("name")?.as_str()?,
            title: object.get("title").and_then(Value::as_str),
            description: object.get("description").and_then(Value::as_str),
            input_schema: object.get("inputSchema"),
            output_schema: object.get("outputSchema"),
            annotations: object.get("annotations"),
            value,
        })
    }
}

/// How an MCP Streamable HTTP response carries its JSON-RPC messages.
///
/// The classification is strict so that a layer inspects exactly what a client will parse:
/// anything a layer cannot read as JSON-RPC is [`ResponseKind::Unsupported`], to be refused
/// rather than forwarded uninspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// `application/json` (optionally `; charset=utf-8`): the body is one message or a batch;
    /// use [`parse`].
    Json,
    /// `text/event-stream` (optionally `; charset=utf-8`): each event's data is one message;
    /// use [`parse_sse_data`].
    EventStream,
    /// No `Content-Type` at all: acceptable only for an empty body, such as the `202 Accepted`
    /// answering a notification or the answer to a `DELETE`. A body is refused.
    Untyped,
    /// A type a layer cannot inspect: any other media type (`text/plain`,
    /// `application/json-rpc`), a list of types (`application/json, text/plain`), a charset
    /// other than UTF-8, several `Content-Type` headers, a value that is not text, or a
    /// `Content-Encoding` other than `identity` (see [`crate::content`]).
    Unsupported,
}

impl ResponseKind {
    /// Classifies one `Content-Type` value with [`MediaType::parse`](crate::content::MediaType::parse):
    /// only `application/json` and `text/event-stream` (any ASCII case, a UTF-8 `charset`
    /// allowed) are readable.
    pub fn from_content_type(content_type: &str) -> Self {
        Self::from_media_type(MediaType::parse(content_type.as_bytes()))
    }

    fn from_media_type(media_type: MediaType) -> Self {
        match media_type {
            MediaType::Json => Self::Json,
            MediaType::EventStream => Self::EventStream,
            MediaType::Missing => Self::Untyped,
            _ => Self::Unsupported,
        }
    }
}

/// Classifies a response by its headers, as [`crate::content`] reads them: exactly one
/// `Content-Type` (see [`ResponseKind::from_content_type`]) and no `Content-Encoding` other
/// than `identity`.
///
/// ```
/// use agentgw_core::mcp::{ResponseKind, response_kind};
/// use http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("content-type", "application/json; charset=utf-8".parse().unwrap());
/// assert_eq!(response_kind(&headers), ResponseKind::Json);
/// headers.insert("content-encoding", "gzip".parse().unwrap());
/// assert_eq!(response_kind(&headers), ResponseKind::Unsupported);
/// assert_eq!(response_kind(&HeaderMap::new()), ResponseKind::Untyped);
/// ```
pub fn response_kind(headers: &HeaderMap) -> ResponseKind {
    if content::is_encoded(headers) {
        return ResponseKind::Unsupported;
    }
    ResponseKind::from_media_type(content::media_type(headers))
}

/// Remembers the method of requests still waiting for their response, so a response can be
/// read in the light of the request it answers (a response to `tools/list` does not say it is
/// one).
///
/// Bounded: at most `capacity` requests are remembered; beyond that the oldest is forgotten
/// first. Not synchronized: keep one per session or stream, behind a lock if it is shared.
///
/// ```
/// use agentgw_core::mcp::{self, Id, PendingRequests};
///
/// let mut pending = PendingRequests::new(128);
/// let request = mcp::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)?;
/// pending.track(&request);
/// let response = mcp::parse(br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#)?;
/// let id = response.messages()[0].id().expect("a response has an id");
/// assert_eq!(pending.remove(id).as_deref(), Some("tools/list"));
/// assert!(pending.is_empty());
/// # Ok::<(), mcp::McpError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PendingRequests {
    capacity: usize,
    /// Id -> (insertion sequence number, method).
    entries: HashMap<Id, (u64, String)>,
    /// Insertion order; an entry whose sequence number no longer matches `entries` is stale and
    /// skipped (the id was answered or inserted again).
    order: VecDeque<(u64, Id)>,
    next_seq: u64,
}

impl PendingRequests {
    /// Remembers at most `capacity` requests. With a capacity of 0 nothing is remembered.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
        }
    }

    /// The most requests remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many requests are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no request is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remembers that request `id` called `method`, replacing an earlier request with the same
    /// id. Returns the entry forgotten to stay within capacity, if any (with a capacity of 0,
    /// the entry just given).
    pub fn insert(&mut self, id: Id, method: impl Into<String>) -> Option<(Id, String)> {
        let method = method.into();
        if self.capacity == 0 {
            return Some((id, method));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let replaced = self.entries.insert(id.clone(), (seq, method)).is_some();
        self.order.push_back((seq, id));
        let evicted = if !replaced && self.entries.len() > self.capacity {
            self.evict_oldest()
        } else {
            None
        };
        // Replacements and removals leave stale entries behind; keep the queue bounded.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order
                .retain(|(seq, id)| entries.get(id).is_some_and(|(current, _)| current == seq));
        }
        evicted
    }

    /// Forgets request `id` and returns its method, typically when its response arrives.
    pub fn remove(&mut self, id: &Id) -> Option<String> {
        let (_, method) = self.entries.remove(id)?;
        self.drop_stale_front();
        Some(method)
    }

    /// Remembers every request of `envelope` (notifications and responses are ignored).
    /// Returns how many requests were remembered.
    pub fn track(&mut self, envelope: &Envelope) -> usize {
        if self.capacity == 0 {
            return 0;
        }
        let mut tracked = 0;
        for message in envelope.messages() {
            if let Message::Request { id, method, .. } = message {
                self.insert(id.clone(), method.as_str());
                tracked += 1;
            }
        }
        tracked
    }

    /// The method of the request `message` answers, forgetting that request; `None` for
    /// requests, notifications and unknown ids.
    pub fn resolve(&mut self, message: &Message) -> Option<String> {
        match message {
            Message::Response { id, .. } | Message::Error { id, .. } => self.remove(id),
            Message::Request { .. } | Message::Notification { .. } => None,
        }
    }

    fn evict_oldest(&mut self) -> Option<(Id, String)> {
        while let Some((seq, id)) = self.order.pop_front() {
            if self
                .entries
                .get(&id)
                .is_some_and(|(current, _)| *current == seq)
            {
                let (_, method) = self.entries.remove(&id)?;
                return Some((id, method));
            }
        }
        None
    }

    fn drop_stale_front(&mut self) {
        while let Some((seq, id)) = self.order.front() {
            if self
                .entries
                .get(id)
                .is_some_and(|(current, _)| current == seq)
            {
                break;
            }
            self.order.pop_front();
        }
    }
}

/// What [`classify`] found a valid message object to be.
enum Shape {
    Request(Id),
    Notification,
    Response(Id),
    Error(Id, ErrorObject),
}

fn as_message_object(value: &Value) -> Result<&Map<String, Value>, McpError> {
    value.as_object().ok_or_else(|| not_an_object(value))
}

fn not_an_object(value: &Value) -> McpError {
    McpError::not_jsonrpc(format!(
        "expected a JSON object, found {}",
        type_name(value)
    ))
}

fn not_a_payload(value: &Value) -> McpError {
    McpError::not_jsonrpc(format!(
        "expected a JSON object (or an array of them for a batch), found {}",
        type_name(value)
    ))
}

fn in_batch(index: usize, source: McpError) -> McpError {
    McpError::InBatch {
        index,
        source: Box::new(source),
    }
}

/// Validates a message object against JSON-RPC 2.0 and tells which kind it is.
fn classify(object: &Map<String, Value>) -> Result<Shape, McpError> {
    match object.get("jsonrpc") {
        Some(Value::String(version)) if version == JSONRPC_VERSION => {}
        Some(other) => {
            return Err(McpError::not_jsonrpc(format!(
                "`jsonrpc` must be \"2.0\", found {}",
                describe(other)
            )));
        }
        None => {
            return Err(McpError::not_jsonrpc(
                "the `jsonrpc` member is missing (JSON-RPC 2.0 requires \"jsonrpc\": \"2.0\")",
            ));
        }
    }

    let id = object.get("id").map(read_id).transpose()?;

    if let Some(method) = object.get("method") {
        if !method.is_string() {
            return Err(McpError::invalid(format!(
                "`method` must be a string, found {}",
                type_name(method)
            )));
        }
        if object.contains_key("result") || object.contains_key("error") {
            return Err(McpError::invalid(
                "a message cannot carry both `method` and `result` or `error`",
            ));
        }
        match object.get("params") {
            None | Some(Value::Object(_) | Value::Array(_)) => {}
            Some(other) => {
                return Err(McpError::invalid(format!(
                    "`params` must be an object or an array, found {}",
                    type_name(other)
                )));
            }
        }
        return Ok(id.map_or(Shape::Notification, Shape::Request));
    }

    match (object.get("result"), object.get("error")) {
        (Some(_), Some(_)) => Err(McpError::invalid(
            "a response cannot carry both `result` and `error`",
        )),
        (Some(_), None) => id
            .map(Shape::Response)
            .ok_or_else(|| McpError::invalid("a response must carry an `id`")),
        (None, Some(error)) => {
            let id = id.ok_or_else(|| {
                McpError::invalid("an error response must carry an `id` (null if unknown)")
            })?;
            Ok(Shape::Error(id, read_error_object(error)?))
        }
        (None, None) => Err(McpError::invalid(
            "expected `method` (request or notification) or `result` or `error` (response)",
        )),
    }
}

fn read_id(value: &Value) -> Result<Id, McpError> {
    Id::from_value(value).ok_or_else(|| {
        McpError::invalid(format!(
            "`id` must be a string, a number or null, found {}",
            type_name(value)
        ))
    })
}

fn read_error_object(value: &Value) -> Result<ErrorObject, McpError> {
    let Value::Object(object) = value else {
        return Err(McpError::invalid(format!(
            "`error` must be an object, found {}",
            type_name(value)
        )));
    };
    let code = match object.get("code") {
        Some(Value::Number(code)) => code
            .as_i64()
            .ok_or_else(|| McpError::invalid("`error.code` must be an integer"))?,
        Some(other) => {
            return Err(McpError::invalid(format!(
                "`error.code` must be an integer, found {}",
                type_name(other)
            )));
        }
        None => return Err(McpError::invalid("`error.code` is missing")),
    };
    let message = match object.get("message") {
        Some(Value::String(message)) => message.clone(),
        Some(other) => {
            return Err(McpError::invalid(format!(
                "`error.message` must be a string, found {}",
                type_name(other)
            )));
        }
        None => return Err(McpError::invalid("`error.message` is missing")),
    };
    Ok(ErrorObject {
        code,
        message,
        data: object.get("data").cloned(),
    })
}

/// The method of an object [`classify`] accepted as a request or notification.
fn method_of(object: &Map<String, Value>) -> &str {
    object
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn take_method(object: &mut Map<String, Value>) -> String {
    match object.remove("method") {
        Some(Value::String(method)) => method,
        _ => String::new(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value for an error message: short strings and numbers verbatim, anything else by type.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= 16 => {
            serde_json::to_string(s).unwrap_or_else(|_| "a string".to_owned())
        }
        Value::Number(n) => n.to_string(),
        other => type_name(other).to_owned(),
    }
}

fn to_json_bytes<T: Serialize>(value: &T) -> Bytes {
    // Serializing JSON values with string keys into a Vec has no failure path in serde_json.
    serde_json::to_vec(value)
        .expect("serializing JSON-RPC messages cannot fail")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_ids_survive_a_round_trip() {
        // Found by the core_mcp_parse fuzz target: without serde_json's `float_roundtrip` the
        // last bit of a float can change between two reads of our own output.
        let envelope =
            parse(br#"{"jsonrpc":"2.0","id":984467440737095516167,"method":"ping"}"#).unwrap();
        assert_eq!(parse(&envelope.to_bytes()).unwrap(), envelope);
    }
    use http::HeaderValue;
    use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
    use serde_json::json;

    fn single(bytes: &[u8]) -> Message {
        parse(bytes)
            .expect("valid message")
            .into_single()
            .expect("single message")
    }

    fn reason_of(error: &McpError) -> &str {
        match error {
            McpError::NotJsonRpc { reason } | McpError::InvalidMessage { reason } => reason,
            McpError::InvalidParams { reason, .. } => reason,
            other => panic!("no reason in {other:?}"),
        }
    }

    #[test]
    fn request_is_classified() {
        let message =
            single(br#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"c1"}}"#);
        assert_eq!(message.kind(), Kind::Request);
        assert_eq!(message.id(), Some(&Id::from(3_i64)));
        assert_eq!(message.method(), Some("tools/list"));
        assert_eq!(message.params(), Some(&json!({ "cursor": "c1" })));
        assert_eq!(message.result(), None);
        assert_eq!(message.error(), None);
        assert_eq!(message.tool_call(), None);
    }

    #[test]
    fn request_with_string_null_and_fractional_ids() {
        let message = single(br#"{"jsonrpc":"2.0","id":"abc","method":"ping"}"#);
        assert_eq!(message.id(), Some(&Id::from("abc")));
        assert_eq!(message.params(), None);

        // `"id": null` is a request (discouraged), not a notification.
        let message = single(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#);
        assert_eq!(message.kind(), Kind::Request);
        assert_eq!(message.id(), Some(&Id::Null));

        let message = single(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping","params":[1,2]}"#);
        assert_eq!(
            message.id().map(ToString::to_string).as_deref(),
            Some("1.5")
        );
        assert_eq!(message.params(), Some(&json!([1, 2])));
    }

    #[test]
    fn notification_is_classified() {
        let message = single(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(message.kind(), Kind::Notification);
        assert_eq!(message.id(), None);
        assert_eq!(message.method(), Some("notifications/initialized"));
        assert_eq!(message.params(), None);
    }

    #[test]
    fn response_is_classified() {
        let mut message = single(br#"{"jsonrpc":"2.0","id":"r-1","result":{"ok":true}}"#);
        assert_eq!(message.kind(), Kind::Response);
        assert_eq!(message.id(), Some(&Id::from("r-1")));
        assert_eq!(message.method(), None);
        assert_eq!(message.params(), None);
        assert_eq!(message.result(), Some(&json!({ "ok": true })));
        *message.result_mut().expect("result") = json!({ "ok": false });
        assert_eq!(
            message.to_value(),
            json!({ "jsonrpc": "2.0", "id": "r-1", "result": { "ok": false } })
        );
        // A null result is a result.
        let message = single(br#"{"jsonrpc":"2.0","id":1,"result":null}"#);
        assert_eq!(message.result(), Some(&Value::Null));
    }

    #[test]
    fn error_is_classified() {
        let message = single(
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error","data":{"at":3}}}"#,
        );
        assert_eq!(message.kind(), Kind::Error);
        assert_eq!(message.id(), Some(&Id::Null));
        let error = message.error().expect("error object");
        assert_eq!(error.code, codes::PARSE_ERROR);
        assert_eq!(error.message, "Parse error");
        assert_eq!(error.data, Some(json!({ "at": 3 })));
        assert_eq!(message.result(), None);

        let message = single(br#"{"jsonrpc":"2.0","id":2,"error":{"code":7,"message":""}}"#);
        assert_eq!(message.error().and_then(|e| e.data.as_ref()), None);
    }

    #[test]
    fn unknown_members_are_ignored_and_dropped() {
        let message = single(br#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":[1]}"#);
        assert_eq!(
            message.to_value(),
            json!({ "jsonrpc": "2.0", "id": 1, "method": "ping" })
        );
    }

    #[test]
    fn mixed_batch_keeps_order() {
        let envelope = parse(
            br#"[
                {"jsonrpc":"2.0","id":1,"method":"tools/list"},
                {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}},
                {"jsonrpc":"2.0","id":1,"result":{}},
                {"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no"}}
            ]"#,
        )
        .expect("valid batch");
        assert!(envelope.is_batch());
        assert_eq!(envelope.as_single(), None);
        let kinds: Vec<Kind> = envelope.messages().iter().map(Message::kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Request,
                Kind::Notification,
                Kind::Response,
                Kind::Error
            ]
        );
        let value = envelope.to_value();
        assert_eq!(value.as_array().map(Vec::len), Some(4));
        assert_eq!(from_value(&value).expect("roundtrip"), envelope);
        assert_eq!(envelope.clone().into_messages().len(), 4);
    }

    #[test]
    fn batch_of_one_is_a_batch() {
        let envelope = parse(br#"[{"jsonrpc":"2.0","method":"ping"}]"#).expect("valid");
        assert!(envelope.is_batch());
        assert_eq!(envelope.messages().len(), 1);
        assert_eq!(
            envelope.to_bytes(),
            Bytes::from(r#"[{"jsonrpc":"2.0","method":"ping"}]"#)
        );
    }

    #[test]
    fn empty_batch_is_an_error() {
        let error = parse(b" [ ] ").expect_err("empty batch");
        assert!(matches!(error, McpError::EmptyBatch), "{error:?}");
        assert_eq!(error.code(), codes::INVALID_REQUEST);
        assert!(matches!(from_value(&json!([])), Err(McpError::EmptyBatch)));
    }

    #[test]
    fn invalid_batch_member_is_named() {
        let error =
            parse(br#"[{"jsonrpc":"2.0","method":"ping"}, {"jsonrpc":"1.0","method":"x"}]"#)
                .expect_err("invalid member");
        let McpError::InBatch { index, source } = &error else {
            panic!("expected InBatch, got {error:?}");
        };
        assert_eq!(*index, 1);
        assert!(matches!(**source, McpError::NotJsonRpc { .. }));
        assert_eq!(error.reason(), "not_jsonrpc");
        assert_eq!(error.code(), codes::INVALID_REQUEST);
        assert!(
            error
                .to_string()
                .starts_with("batch message 1: not a JSON-RPC 2.0 message")
        );

        // Nested batches are not messages.
        let error = from_value(&json!([[{ "jsonrpc": "2.0", "method": "ping" }]])).unwrap_err();
        assert!(
            matches!(error, McpError::InBatch { index: 0, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn invalid_utf8_is_reported_with_offset() {
        let error = parse(b"{\"jsonrpc\":\"2.0\xff\"}").expect_err("invalid UTF-8");
        assert!(
            matches!(error, McpError::InvalidUtf8 { valid_up_to: 15 }),
            "{error:?}"
        );
        assert_eq!(error.code(), codes::PARSE_ERROR);
        assert_eq!(error.reason(), "invalid_utf8");
    }

    #[test]
    fn invalid_json_is_reported_with_position() {
        for bytes in [&b""[..], b"{", b"{\"jsonrpc\":}", b"nul", b"{} {}"] {
            let error = parse(bytes).expect_err("invalid JSON");
            assert!(matches!(error, McpError::InvalidJson(_)), "{error:?}");
            assert_eq!(error.code(), codes::PARSE_ERROR);
            assert!(error.to_string().contains("line 1"), "{error}");
        }
    }

    #[test]
    fn deeply_nested_json_is_an_error_not_a_crash() {
        let bytes = "[".repeat(100_000);
        assert!(matches!(
            parse(bytes.as_bytes()),
            Err(McpError::InvalidJson(_))
        ));
    }

    #[test]
    fn non_object_json_is_not_jsonrpc() {
        for (bytes, found) in [
            (&b"42"[..], "a number"),
            (b"\"x\"", "a string"),
            (b"null", "null"),
            (b"true", "a boolean"),
        ] {
            let error = parse(bytes).expect_err("not an object");
            assert!(matches!(error, McpError::NotJsonRpc { .. }), "{error:?}");
            assert!(reason_of(&error).ends_with(found), "{error}");
            assert!(reason_of(&error).contains("for a batch"), "{error}");
        }
        let error = parse(b"[42]").expect_err("not an object");
        assert_eq!(
            error.to_string(),
            "batch message 0: not a JSON-RPC 2.0 message: expected a JSON object, found a number"
        );
        assert!(Message::from_value(&json!(42)).is_err());
    }

    #[test]
    fn jsonrpc_version_is_required() {
        let error = parse(br#"{"id":1,"method":"ping"}"#).expect_err("no version");
        assert!(matches!(error, McpError::NotJsonRpc { .. }), "{error:?}");
        assert!(reason_of(&error).contains("missing"), "{error}");

        let error = parse(br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#).expect_err("1.0");
        assert_eq!(
            error.to_string(),
            r#"not a JSON-RPC 2.0 message: `jsonrpc` must be "2.0", found "1.0""#
        );

        let error = parse(br#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#).expect_err("number");
        assert!(reason_of(&error).ends_with("found 2.0"), "{error}");

        let long = format!(r#"{{"jsonrpc":"{}","method":"ping"}}"#, "v".repeat(100));
        let error = parse(long.as_bytes()).expect_err("long version");
        assert!(reason_of(&error).ends_with("found a string"), "{error}");
        assert!(!error.to_string().contains("vvvv"));
    }

    #[test]
    fn id_must_be_string_number_or_null() {
        for id in [json!({}), json!([1]), json!(true)] {
            let value = json!({ "jsonrpc": "2.0", "id": id, "method": "ping" });
            let error = from_value(&value).expect_err("bad id");
            assert!(
                matches!(error, McpError::InvalidMessage { .. }),
                "{error:?}"
            );
            assert!(reason_of(&error).starts_with("`id` must be"), "{error}");
            let value = json!({ "jsonrpc": "2.0", "id": id, "result": 1 });
            assert!(from_value(&value).is_err());
        }
    }

    #[test]
    fn method_must_be_a_string() {
        let error = parse(br#"{"jsonrpc":"2.0","id":1,"method":5}"#).expect_err("bad method");
        assert_eq!(
            reason_of(&error),
            "`method` must be a string, found a number"
        );
        assert_eq!(error.code(), codes::INVALID_REQUEST);
        assert_eq!(error.reason(), "invalid_message");
    }

    #[test]
    fn params_must_be_structured() {
        for params in [json!(1), json!("x"), json!(null), json!(false)] {
            let value = json!({ "jsonrpc": "2.0", "id": 1, "method": "m", "params": params });
            let error = from_value(&value).expect_err("bad params");
            assert!(reason_of(&error).starts_with("`params` must be"), "{error}");
        }
    }

    #[test]
    fn method_with_result_or_error_is_ambiguous() {
        let error = parse(br#"{"jsonrpc":"2.0","id":1,"method":"m","result":{}}"#).unwrap_err();
        assert!(reason_of(&error).contains("both `method`"), "{error}");
        let error =
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"m","error":{"code":1,"message":""}}"#)
                .unwrap_err();
        assert!(reason_of(&error).contains("both `method`"), "{error}");
    }

    #[test]
    fn result_and_error_together_are_invalid() {
        let error =
            parse(br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}"#)
                .unwrap_err();
        assert_eq!(
            reason_of(&error),
            "a response cannot carry both `result` and `error`"
        );
    }

    #[test]
    fn responses_need_an_id() {
        let error = parse(br#"{"jsonrpc":"2.0","result":{}}"#).unwrap_err();
        assert_eq!(reason_of(&error), "a response must carry an `id`");
        let error = parse(br#"{"jsonrpc":"2.0","error":{"code":1,"message":"x"}}"#).unwrap_err();
        assert!(
            reason_of(&error).starts_with("an error response must carry"),
            "{error}"
        );
    }

    #[test]
    fn message_without_method_result_or_error_is_invalid() {
        let error = parse(br#"{"jsonrpc":"2.0","id":1}"#).unwrap_err();
        assert!(
            reason_of(&error).starts_with("expected `method`"),
            "{error}"
        );
    }

    #[test]
    fn error_object_is_validated() {
        let cases = [
            (json!("boom"), "`error` must be an object, found a string"),
            (json!({ "message": "x" }), "`error.code` is missing"),
            (
                json!({ "code": "1", "message": "x" }),
                "`error.code` must be an integer, found a string",
            ),
            (
                json!({ "code": 1.5, "message": "x" }),
                "`error.code` must be an integer",
            ),
            (
                json!({ "code": u64::MAX, "message": "x" }),
                "`error.code` must be an integer",
            ),
            (json!({ "code": 1 }), "`error.message` is missing"),
            (
                json!({ "code": 1, "message": 2 }),
                "`error.message` must be a string, found a number",
            ),
        ];
        for (error_object, expected) in cases {
            let value = json!({ "jsonrpc": "2.0", "id": 1, "error": error_object });
            let error = from_value(&value).expect_err("bad error object");
            assert_eq!(reason_of(&error), expected);
        }
    }

    #[test]
    fn tool_call_is_read_from_params() {
        let message = single(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"rust"}}}"#,
        );
        let call = message.try_tool_call().expect("valid").expect("tool call");
        assert_eq!(call.name, "search");
        assert_eq!(call.arguments, Some(&json!({ "q": "rust" })));

        let message =
            single(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"now"}}"#);
        assert_eq!(
            message.tool_call(),
            Some(ToolCall {
                name: "now",
                arguments: None
            })
        );
        let message = single(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"now","arguments":null}}"#,
        );
        assert_eq!(message.tool_call().map(|call| call.arguments), Some(None));
    }

    #[test]
    fn tool_call_is_only_for_tools_call_requests() {
        let notification =
            single(br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"search"}}"#);
        assert_eq!(notification.try_tool_call().expect("not an error"), None);
        let other = single(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert_eq!(other.try_tool_call().expect("not an error"), None);
        let response = single(br#"{"jsonrpc":"2.0","id":1,"result":{"name":"search"}}"#);
        assert_eq!(response.try_tool_call().expect("not an error"), None);
    }

    #[test]
    fn malformed_tool_call_params_are_invalid_params() {
        let cases = [
            (None, "`params` with the tool `name` is required"),
            (Some(json!(["search"])), "`params` must be an object"),
            (Some(json!({})), "the tool `name` is missing"),
            (
                Some(json!({ "name": 1 })),
                "the tool `name` must be a string",
            ),
            (
                Some(json!({ "name": "a", "arguments": [1] })),
                "`arguments` must be an object",
            ),
            (
                Some(json!({ "name": "a", "arguments": "x" })),
                "`arguments` must be an object",
            ),
        ];
        for (params, expected) in cases {
            let message = Message::Request {
                id: Id::from(1_i64),
                method: methods::TOOLS_CALL.to_owned(),
                params,
            };
            let error = message.try_tool_call().expect_err("invalid params");
            assert!(
                matches!(
                    error,
                    McpError::InvalidParams {
                        method: "tools/call",
                        ..
                    }
                ),
                "{error:?}"
            );
            assert_eq!(reason_of(&error), expected);
            assert_eq!(error.code(), codes::INVALID_PARAMS);
            assert_eq!(message.tool_call(), None);
        }
    }

    #[test]
    fn to_value_writes_jsonrpc_first_and_roundtrips() {
        let messages = [
            Message::Request {
                id: Id::from("a"),
                method: "tools/call".to_owned(),
                params: Some(json!({ "name": "x" })),
            },
            Message::Notification {
                method: "n".to_owned(),
                params: None,
            },
            Message::Response {
                id: Id::from(1_u64),
                result: json!([]),
            },
            Message::Error {
                id: Id::Null,
                error: ErrorObject {
                    code: -1,
                    message: "m".to_owned(),
                    data: Some(json!(null)),
                },
            },
        ];
        for message in messages {
            let value = message.to_value();
            let keys: Vec<&str> = value
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys[0], "jsonrpc");
            assert_eq!(value["jsonrpc"], "2.0");
            assert_eq!(message.clone().into_value(), value);
            // The serde serialization and the Value agree.
            assert_eq!(serde_json::to_value(&message).expect("serialize"), value);
            let bytes = message.to_bytes();
            assert_eq!(single(&bytes), message);
            let deserialized: Message = serde_json::from_slice(&bytes).expect("deserialize");
            assert_eq!(deserialized, message);
        }
    }

    #[test]
    fn explicit_null_error_data_is_kept() {
        let message =
            single(br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x","data":null}}"#);
        assert_eq!(
            message.error().map(|e| e.data.clone()),
            Some(Some(Value::Null))
        );
        assert_eq!(message.to_value()["error"]["data"], Value::Null);
        assert!(
            message.to_value()["error"]
                .as_object()
                .expect("object")
                .contains_key("data")
        );
    }

    #[test]
    fn serde_deserialize_validates() {
        let error = serde_json::from_str::<Message>(r#"{"jsonrpc":"1.0","method":"x"}"#)
            .expect_err("invalid");
        assert!(
            error.to_string().contains("not a JSON-RPC 2.0 message"),
            "{error}"
        );
        let envelope: Envelope =
            serde_json::from_str(r#"[{"jsonrpc":"2.0","method":"x"}]"#).expect("valid");
        assert!(envelope.is_batch());
        assert!(serde_json::from_str::<Envelope>("[]").is_err());
    }

    #[test]
    fn from_value_and_owned_conversion_agree_with_parse() {
        let text = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"t","arguments":{"a":1}}}"#;
        let value: Value = serde_json::from_str(text).expect("json");
        let parsed = parse(text.as_bytes()).expect("valid");
        assert_eq!(from_value(&value).expect("valid"), parsed);
        assert_eq!(Envelope::try_from(value.clone()).expect("valid"), parsed);
        assert_eq!(
            Message::from_value(&value).expect("valid"),
            parsed.messages()[0]
        );
        assert!(Message::from_value(&json!([value])).is_err());
    }

    #[test]
    fn id_display_serde_and_conversions() {
        assert_eq!(Id::from(7_i64).to_string(), "7");
        assert_eq!(Id::from("a\"b").to_string(), r#""a\"b""#);
        assert_eq!(Id::Null.to_string(), "null");
        assert_ne!(Id::from(1_i64), Id::from("1"));
        assert_eq!(Id::from(String::from("s")).to_value(), json!("s"));
        assert_eq!(Id::Null.to_value(), Value::Null);
        assert_eq!(Id::from_value(&json!(true)), None);
        assert_eq!(
            serde_json::from_str::<Id>("-3").expect("id"),
            Id::from(-3_i64)
        );
        assert_eq!(serde_json::from_str::<Id>("null").expect("id"), Id::Null);
        assert_eq!(
            serde_json::from_str::<Id>(r#""x""#).expect("id"),
            Id::from("x")
        );
        assert!(serde_json::from_str::<Id>("{}").is_err());
        assert_eq!(
            serde_json::to_string(&Id::from("x")).expect("ser"),
            r#""x""#
        );
        assert_eq!(serde_json::to_string(&Id::Null).expect("ser"), "null");
    }

    #[test]
    fn kind_labels() {
        assert_eq!(Kind::Request.as_str(), "request");
        assert_eq!(Kind::Notification.to_string(), "notification");
        assert_eq!(Kind::Response.as_str(), "response");
        assert_eq!(Kind::Error.as_str(), "error");
    }

    #[test]
    fn error_response_carries_the_id() {
        assert_eq!(
            error_response(
                &Id::from("req-9"),
                codes::UNAUTHORIZED,
                "missing token",
                None
            ),
            json!({ "jsonrpc": "2.0", "id": "req-9", "error": { "code": -32001, "message": "missing token" } })
        );
        let value = error_response(
            &Id::Null,
            codes::PAYLOAD_TOO_LARGE,
            "too large",
            Some(json!({ "limit": 1024 })),
        );
        assert_eq!(
            value,
            json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32013, "message": "too large", "data": { "limit": 1024 } } })
        );
        // What we send is what we accept.
        let message = Message::from_value(&value).expect("valid error response");
        assert_eq!(message.kind(), Kind::Error);
    }

    #[test]
    fn codes_are_in_the_reserved_ranges() {
        for code in [
            codes::PARSE_ERROR,
            codes::INVALID_REQUEST,
            codes::METHOD_NOT_FOUND,
            codes::INVALID_PARAMS,
            codes::INTERNAL_ERROR,
        ] {
            assert!((-32768..=-32000).contains(&code));
        }
        for code in [
            codes::UNAUTHORIZED,
            codes::FORBIDDEN,
            codes::TIMEOUT,
            codes::PAYLOAD_TOO_LARGE,
        ] {
            assert!((-32099..=-32000).contains(&code), "{code}");
        }
    }

    #[test]
    fn tools_list_result_is_read_and_rewritten() {
        let mut result = json!({
            "tools": [
                { "name": "read", "title": "Read", "description": "Reads", "inputSchema": { "type": "object" },
                  "outputSchema": { "type": "object" }, "annotations": { "readOnlyHint": true } },
                { "name": "delete", "inputSchema": { "type": "object" } }
            ],
            "nextCursor": "c2"
        });
        assert!(is_tools_list_result(&result));
        let tools = tools_from_list_result(&result).expect("tools");
        let read = ToolDef::from_value(&tools[0]).expect("tool");
        assert_eq!(read.name, "read");
        assert_eq!(read.title, Some("Read"));
        assert_eq!(read.description, Some("Reads"));
        assert_eq!(read.input_schema, Some(&json!({ "type": "object" })));
        assert_eq!(read.output_schema, Some(&json!({ "type": "object" })));
        assert_eq!(read.annotations, Some(&json!({ "readOnlyHint": true })));
        assert_eq!(read.value, &tools[0]);
        let delete = ToolDef::from_value(&tools[1]).expect("tool");
        assert_eq!(
            (delete.title, delete.description, delete.annotations),
            (None, None, None)
        );

        tools_from_list_result_mut(&mut result)
            .expect("tools")
            .retain(|tool| tool["name"] != "delete");
        let mut message = Message::Response {
            id: Id::from(4_i64),
            result,
        };
        assert_eq!(
            message.to_value()["result"]["tools"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert_eq!(message.to_value()["result"]["nextCursor"], "c2");
        assert!(tools_from_list_result_mut(message.result_mut().expect("result")).is_some());
    }

    #[test]
    fn tools_list_heuristic_rejects_other_results() {
        assert!(is_tools_list_result(&json!({ "tools": [] })));
        assert!(!is_tools_list_result(&json!({})));
        assert!(!is_tools_list_result(&json!({ "tools": {} })));
        assert!(!is_tools_list_result(
            &json!({ "tools": [{ "title": "x" }] })
        ));
        assert!(!is_tools_list_result(&json!({ "tools": [{ "name": 1 }] })));
        assert!(!is_tools_list_result(&json!({ "tools": ["x"] })));
        assert!(!is_tools_list_result(&json!([{ "name": "x" }])));
        assert_eq!(tools_from_list_result(&json!("tools")), None);
        assert_eq!(ToolDef::from_value(&json!({ "name": null })), None);
        assert_eq!(ToolDef::from_value(&json!("name")), None);
    }

    #[test]
    fn sse_data_is_parsed() {
        let envelope = parse_sse_data(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#)
            .expect("valid")
            .expect("a message");
        assert_eq!(envelope.messages()[0].kind(), Kind::Response);

        // Data of a multi-line event: lines joined with '\n'.
        let envelope = parse_sse_data(
            "{\"jsonrpc\":\"2.0\",\n\"method\":\"notifications/message\",\n\"params\":{}}",
        )
        .expect("valid")
        .expect("a message");
        assert_eq!(
            envelope.messages()[0].method(),
            Some("notifications/message")
        );

        // Priming events carry no data.
        assert!(parse_sse_data("").expect("empty is fine").is_none());
        assert!(parse_sse_data(" \n").expect("blank is fine").is_none());

        assert!(matches!(
            parse_sse_data("{oops"),
            Err(McpError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_sse_data(r#"{"id":1,"result":{}}"#),
            Err(McpError::NotJsonRpc { .. })
        ));
    }

    #[test]
    fn response_kind_follows_content_type() {
        let kind = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            response_kind(&headers)
        };
        assert_eq!(kind("application/json"), ResponseKind::Json);
        assert_eq!(kind("application/json; charset=utf-8"), ResponseKind::Json);
        assert_eq!(kind("Application/JSON;charset=UTF-8"), ResponseKind::Json);
        assert_eq!(
            kind("application/json; charset=\"utf-8\""),
            ResponseKind::Json
        );
        assert_eq!(kind("text/event-stream"), ResponseKind::EventStream);
        assert_eq!(
            kind("text/event-stream; charset=utf-8"),
            ResponseKind::EventStream
        );
        assert_eq!(kind(" text/event-stream "), ResponseKind::EventStream);
        for unsupported in [
            "text/plain",
            "application/jsonl",
            "application/json-rpc",
            "application/json, text/plain",
            "application/json; charset=iso-8859-1",
            "application/json; charset=utf-16",
            "application/json; charset",
            "text/event-stream; charset=latin1",
            "",
        ] {
            assert_eq!(
                kind(unsupported),
                ResponseKind::Unsupported,
                "{unsupported}"
            );
        }
        assert_eq!(response_kind(&HeaderMap::new()), ResponseKind::Untyped);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_bytes(b"application/json\xff").expect("opaque header value"),
        );
        assert_eq!(response_kind(&headers), ResponseKind::Unsupported);

        // Two Content-Type headers: which one a client believes is anyone's guess.
        let mut headers = HeaderMap::new();
        headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(response_kind(&headers), ResponseKind::Unsupported);

        // Encoded bodies are not inspected as bytes.
        for (encoding, expected) in [
            ("gzip", ResponseKind::Unsupported),
            ("identity, br", ResponseKind::Unsupported),
            ("identity", ResponseKind::Json),
            ("IDENTITY", ResponseKind::Json),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
            assert_eq!(response_kind(&headers), expected, "{encoding}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(response_kind(&headers), ResponseKind::Unsupported);
    }

    #[test]
    fn case_variants_of_mcp_methods_are_lookalikes() {
        for variant in [
            "Tools/Call",
            "TOOLS/CALL",
            "tools/Call",
            " tools/call",
            "tools/call\n",
        ] {
            assert_eq!(
                methods::lookalike(variant),
                Some(methods::TOOLS_CALL),
                "{variant:?}"
            );
        }
        assert_eq!(methods::lookalike("Tools/List"), Some(methods::TOOLS_LIST));
        assert_eq!(
            methods::lookalike("Sampling/CreateMessage"),
            Some(methods::SAMPLING_CREATE_MESSAGE)
        );
        for exact in methods::ALL {
            assert_eq!(methods::lookalike(exact), None, "{exact}");
        }
        assert_eq!(methods::lookalike("tools/calls"), None);
        assert_eq!(methods::lookalike("x/custom"), None);
    }

    #[test]
    fn pending_requests_correlate_responses() {
        let mut pending = PendingRequests::new(8);
        let requests = parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
                 {"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"x"}},
                 {"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
        )
        .expect("valid");
        assert_eq!(pending.track(&requests), 2);
        assert_eq!(pending.len(), 2);

        let response = single(br#"{"jsonrpc":"2.0","id":"b","error":{"code":1,"message":"x"}}"#);
        assert_eq!(pending.resolve(&response).as_deref(), Some("tools/call"));
        assert_eq!(pending.resolve(&response), None, "answered only once");
        // An id of another type does not match.
        assert_eq!(pending.remove(&Id::from("1")), None);
        let response = single(br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#);
        assert_eq!(pending.resolve(&response).as_deref(), Some("tools/list"));
        assert!(pending.is_empty());
        // Requests and notifications resolve nothing.
        assert_eq!(pending.resolve(&requests.messages()[0]), None);
        assert_eq!(pending.resolve(&requests.messages()[2]), None);
    }

    #[test]
    fn pending_requests_evict_oldest_first() {
        let mut pending = PendingRequests::new(2);
        assert_eq!(pending.capacity(), 2);
        assert_eq!(pending.insert(Id::from(1_i64), "a"), None);
        assert_eq!(pending.insert(Id::from(2_i64), "b"), None);
        assert_eq!(
            pending.insert(Id::from(3_i64), "c"),
            Some((Id::from(1_i64), "a".to_owned()))
        );
        assert_eq!(pending.len(), 2);
        assert_eq!(pending.remove(&Id::from(1_i64)), None);

        // Replacing an id refreshes it: the other one is now the oldest.
        assert_eq!(pending.insert(Id::from(2_i64), "b2"), None);
        assert_eq!(
            pending.insert(Id::from(4_i64), "d"),
            Some((Id::from(3_i64), "c".to_owned()))
        );
        assert_eq!(pending.remove(&Id::from(2_i64)).as_deref(), Some("b2"));
        assert_eq!(pending.remove(&Id::from(4_i64)).as_deref(), Some("d"));
        assert!(pending.is_empty());
    }

    #[test]
    fn pending_requests_stay_bounded() {
        let mut pending = PendingRequests::new(4);
        for n in 0..10_000_u64 {
            pending.insert(Id::from(n), "m");
            if n % 2 == 0 {
                pending.remove(&Id::from(n));
            }
            // Re-inserting the same id must not grow the queue without bound either.
            pending.insert(Id::from("same"), "m");
            assert!(pending.len() <= 4);
            assert!(
                pending.order.len() <= 8,
                "queue grew to {}",
                pending.order.len()
            );
        }
        let mut pending = PendingRequests::new(4);
        for n in 0..10_000_u64 {
            pending.insert(Id::from(n), "m");
            assert_eq!(pending.remove(&Id::from(n)).as_deref(), Some("m"));
            assert!(pending.order.len() <= 8);
        }
    }

    #[test]
    fn pending_requests_with_zero_capacity_remember_nothing() {
        let mut pending = PendingRequests::new(0);
        assert_eq!(
            pending.insert(Id::from(1_i64), "a"),
            Some((Id::from(1_i64), "a".to_owned()))
        );
        let request = parse(br#"{"jsonrpc":"2.0","id":1,"method":"x"}"#).expect("valid");
        assert_eq!(pending.track(&request), 0);
        assert!(pending.is_empty());
        assert_eq!(pending.remove(&Id::from(1_i64)), None);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;
        use serde_json::json;

        fn number() -> impl Strategy<Value = Number> {
            prop_oneof![
                any::<i64>().prop_map(Number::from),
                any::<u64>().prop_map(Number::from),
                // serde_json's default float parsing may differ from the printed value in the
                // last digit; keep floats whose text reads back exactly.
                any::<f64>()
                    .prop_filter_map("finite", Number::from_f64)
                    .prop_filter("reads back exactly", |n| {
                        serde_json::from_str::<Number>(&n.to_string()).ok().as_ref() == Some(n)
                    }),
            ]
        }

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                number().prop_map(Value::Number),
                ".{0,12}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec(("[a-z]{0,6}", inner), 0..6)
                        .prop_map(|entries| Value::Object(entries.into_iter().collect())),
                ]
            })
        }

        fn structured() -> impl Strategy<Value = Value> {
            json_value().prop_map(|value| match value {
                Value::Array(_) | Value::Object(_) => value,
                other => json!({ "value": other }),
            })
        }

        fn id() -> impl Strategy<Value = Id> {
            prop_oneof![
                number().prop_map(Id::Number),
                ".{0,12}".prop_map(Id::String),
                Just(Id::Null),
            ]
        }

        fn message() -> impl Strategy<Value = Message> {
            let method = "[a-z/_]{0,16}";
            prop_oneof![
                (id(), method, prop::option::of(structured()))
                    .prop_map(|(id, method, params)| Message::Request { id, method, params }),
                (method, prop::option::of(structured()))
                    .prop_map(|(method, params)| Message::Notification { method, params }),
                (id(), json_value()).prop_map(|(id, result)| Message::Response { id, result }),
                (
                    id(),
                    any::<i64>(),
                    ".{0,12}",
                    prop::option::of(json_value())
                )
                    .prop_map(|(id, code, message, data)| Message::Error {
                        id,
                        error: ErrorObject {
                            code,
                            message,
                            data
                        },
                    }),
            ]
        }

        /// Objects that look like JSON-RPC, to reach the deeper validation paths.
        fn jsonrpc_like() -> impl Strategy<Value = Value> {
            let member = prop_oneof![
                Just("jsonrpc".to_owned()),
                Just("id".to_owned()),
                Just("method".to_owned()),
                Just("params".to_owned()),
                Just("result".to_owned()),
                Just("error".to_owned()),
                Just("name".to_owned()),
                Just("arguments".to_owned()),
            ];
            let value = prop_oneof![
                Just(json!("2.0")),
                Just(json!("tools/call")),
                Just(json!({ "code": 1, "message": "x" })),
                json_value(),
            ];
            prop::collection::vec((member, value), 0..7)
                .prop_map(|entries| Value::Object(entries.into_iter().collect()))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = parse(&bytes);
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    let _ = parse_sse_data(text);
                }
            }

            #[test]
            fn parse_never_panics_on_json(value in prop_oneof![json_value(), jsonrpc_like()]) {
                let bytes = serde_json::to_vec(&value).expect("serialize");
                let parsed = parse(&bytes);
                // Parsing bytes and classifying the parsed JSON agree.
                let classified = from_value(&value);
                prop_assert_eq!(parsed.as_ref().ok(), classified.as_ref().ok());
                if let Ok(envelope) = parsed {
                    for message in envelope.messages() {
                        let _ = message.try_tool_call();
                        let _ = message.to_bytes();
                    }
                }
            }

            #[test]
            fn batches_of_json_never_panic(values in prop::collection::vec(jsonrpc_like(), 0..4)) {
                let _ = from_value(&Value::Array(values));
            }

            #[test]
            fn messages_roundtrip(message in message()) {
                let value = message.to_value();
                prop_assert_eq!(from_value(&value).expect("valid"), Envelope::Single(message.clone()));
                prop_assert_eq!(
                    parse(&message.to_bytes()).expect("valid"),
                    Envelope::Single(message)
                );
            }

            #[test]
            fn batches_roundtrip(messages in prop::collection::vec(message(), 1..5)) {
                let envelope = Envelope::Batch(messages);
                prop_assert_eq!(parse(&envelope.to_bytes()).expect("valid"), envelope.clone());
                prop_assert_eq!(Envelope::try_from(envelope.to_value()).expect("valid"), envelope);
            }
        }
    }
}
