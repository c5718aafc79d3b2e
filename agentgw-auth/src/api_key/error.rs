//! [`ApiKeyError`]: why a key was not accepted.

/// Why an API key was not accepted.
///
/// [`reason`](ApiKeyError::reason) labels logs and the metric
/// `agentgateway_rejected_requests_total{layer="api_key", reason}`; clients only learn that the
/// key was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// An empty or non-text credential.
    #[error("malformed API key")]
    Malformed,
    /// More than one key in the request.
    #[error("more than one API key in the request")]
    MultipleKeys,
    /// No configured key matches.
    #[error("unknown API key")]
    UnknownKey,
    /// The key's `expiresAt` has passed.
    #[error("API key expired")]
    Expired,
}

impl ApiKeyError {
    /// A short, fixed label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiKeyError::Malformed => "malformed",
            ApiKeyError::MultipleKeys => "multiple_keys",
            ApiKeyError::UnknownKey => "unknown_key",
            ApiKeyError::Expired => "expired_key",
        }
    }
}
