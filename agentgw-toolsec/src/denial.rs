//! A refused `tools/call` or `tools/list`: the rule that decided and what the client is told.

use std::sync::Arc;

use agentgw_core::mcp::codes;
use serde_json::{Value, json};

use crate::audit::LAYER;

pub(crate) use crate::rules;

/// Why a message is refused. Never carries the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denial {
    /// The rule name (a configured name or one of [`rules`]); the `reason` label of
    /// `agentgateway_rejected_requests_total`.
    pub(crate) rule: Arc<str>,
    /// What the client is told.
    pub(crate) message: String,
    /// The JSON-RPC error code.
    pub(crate) code: i64,
}

impl Denial {
    pub(crate) fn forbidden(rule: impl Into<Arc<str>>, message: impl Into<String>) -> Self {
        Self {
            rule: rule.into(),
            message: message.into(),
            code: codes::FORBIDDEN,
        }
    }

    pub(crate) fn with_code(mut self, code: i64) -> Self {
        self.code = code;
        self
    }

    /// The `data` of the JSON-RPC error, in the shape of every agentgw denial
    /// ([`Rejection`](agentgw_core::Rejection)): the HTTP status the denial stands for, the
    /// layer and the rule.
    pub(crate) fn data(&self) -> Value {
        let status = match self.code {
            codes::FORBIDDEN => 403,
            codes::INVALID_PARAMS | codes::INVALID_REQUEST | codes::PARSE_ERROR => 400,
            codes::TIMEOUT => 504,
            codes::PAYLOAD_TOO_LARGE => 413,
            _ => 502,
        };
        json!({ "status": status, "layer": LAYER, "reason": self.rule.as_ref() })
    }
}

/// A tool name as quoted in messages: at most 64 characters.
pub(crate) fn quoted(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((end, _)) => format!("`{}…`", &name[..end]),
        None => format!("`{name}`"),
    }
}
