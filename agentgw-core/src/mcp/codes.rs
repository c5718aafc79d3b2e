//! JSON-RPC 2.0 error codes, and the server-range codes agentgw answers denials with.
//!
//! Codes from -32768 to -32000 are reserved by JSON-RPC 2.0; -32099 to -32000 are left to the
//! server. agentgw uses that range for its own denials, numbered after the HTTP status they
//! stand for where possible.

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

#[cfg(test)]
mod tests {
    use crate::mcp::*;

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
}
