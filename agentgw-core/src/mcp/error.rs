//! [`McpError`]: why bytes or JSON are not a valid JSON-RPC 2.0 message, and the JSON-RPC error
//! code each case is answered with.

#[cfg(doc)]
use super::Message;
use super::codes;

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

    pub(super) fn not_jsonrpc(reason: impl Into<String>) -> Self {
        Self::NotJsonRpc {
            reason: reason.into(),
        }
    }

    pub(super) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidMessage {
            reason: reason.into(),
        }
    }
}
