//! A refused `tools/call` or `tools/list`: the rule that decided and what the client is told.
//!
//! A [`Denial`] answering a request on its own becomes an agentgw-core
//! [`Rejection`](agentgw_core::Rejection) ([`Denial::into_rejection`]), rendered with the one
//! policy of every layer; inside an answer the layer otherwise forwards (one message of a
//! batch, one event of a stream) it is a JSON-RPC error of the same shape
//! ([`Denial::data`]).

use std::sync::Arc;

use agentgw_core::Rejection;
use agentgw_core::mcp::codes;
use http::StatusCode;
use serde_json::{Value, json};

use crate::audit::LAYER;
use crate::config::RuleAction;

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
    /// The rule's action is `Escalate`: the refusal goes to `toolSecurity.escalation`.
    pub(crate) escalate: bool,
}

impl Denial {
    pub(crate) fn forbidden(rule: impl Into<Arc<str>>, message: impl Into<String>) -> Self {
        Self {
            rule: rule.into(),
            message: message.into(),
            code: codes::FORBIDDEN,
            escalate: false,
        }
    }

    /// Marks the refusal as escalated when `action` is `Escalate`.
    pub(crate) fn escalated_by(mut self, action: RuleAction) -> Self {
        self.escalate = action == RuleAction::Escalate;
        self
    }

    pub(crate) fn with_code(mut self, code: i64) -> Self {
        self.code = code;
        self
    }

    /// The HTTP status the denial stands for: 403 for a policy denial, 400 for a malformed
    /// request, 413 for an oversized output, 504 for a time limit, 502 for an upstream answer
    /// that cannot be inspected.
    pub(crate) fn status(&self) -> StatusCode {
        match self.code {
            codes::FORBIDDEN => StatusCode::FORBIDDEN,
            codes::INVALID_PARAMS | codes::INVALID_REQUEST | codes::PARSE_ERROR => {
                StatusCode::BAD_REQUEST
            }
            codes::TIMEOUT => StatusCode::GATEWAY_TIMEOUT,
            codes::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// The `data` of the JSON-RPC error, in the shape of every agentgw denial
    /// ([`Rejection`]): the HTTP status the denial stands for, the layer and the rule.
    pub(crate) fn data(&self) -> Value {
        json!({ "status": self.status().as_u16(), "layer": LAYER, "reason": self.rule.as_ref() })
    }

    /// The denial as core's [`Rejection`], for a request answered by the denial alone.
    pub(crate) fn into_rejection(self) -> Rejection {
        Rejection::new(self.status(), LAYER, self.rule.to_string())
            .with_message(self.message)
            .with_jsonrpc_code(self.code)
    }
}

/// A tool name as quoted in messages: at most 64 characters.
pub(crate) fn quoted(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((end, _)) => format!("`{}…`", &name[..end]),
        None => format!("`{name}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgw_core::ResponseShape;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_denial_renders_as_every_agentgw_rejection() {
        let denial = Denial::forbidden(rules::ALLOWLIST, "tool `x` is not allowed");
        let response = denial
            .clone()
            .into_rejection()
            .into_response(&ResponseShape::JsonRpc { id: json!(3) });
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "an id: the MCP client's tool error"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["id"], 3);
        assert_eq!(body["error"]["code"], codes::FORBIDDEN);
        assert_eq!(body["error"]["message"], "tool `x` is not allowed");
        assert_eq!(body["error"]["data"], denial.data());

        let timeout = Denial::forbidden(rules::EXECUTION_TIME, "late").with_code(codes::TIMEOUT);
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        let response = timeout
            .into_rejection()
            .into_response(&ResponseShape::JsonRpc { id: Value::Null });
        assert_eq!(
            response.status(),
            StatusCode::GATEWAY_TIMEOUT,
            "no id: the status"
        );
    }
}
