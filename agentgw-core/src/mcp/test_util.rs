//! Helpers shared by the tests of this module.

use super::*;

pub(super) fn single(bytes: &[u8]) -> Message {
    parse(bytes)
        .expect("valid message")
        .into_single()
        .expect("single message")
}

pub(super) fn reason_of(error: &McpError) -> &str {
    match error {
        McpError::NotJsonRpc { reason } | McpError::InvalidMessage { reason } => reason,
        McpError::InvalidParams { reason, .. } => reason,
        other => panic!("no reason in {other:?}"),
    }
}
