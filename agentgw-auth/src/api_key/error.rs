//! [`ApiKeyError`]: why a key was not accepted.

/// Why an API key was not accepted.
///
/// [`reason`](ApiKeyError::reason) labels logs, audit events and the metric
/// `agentgateway_rejected_requests_total{layer="api_key", reason}`. Of a malformed or unknown
/// key clients only learn that it was not accepted (`invalid_api_key`); an expired key
/// (`expired_api_key`) and a key used outside its scope (`api_key_route_not_allowed`,
/// `api_key_model_not_allowed`) are named, since only a holder of that very key can tell.
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
    /// The key's `routes` do not include the route of the request.
    #[error("API key not allowed on this route")]
    RouteNotAllowed,
    /// The key's `models` do not include the request's `model` (or the request names none).
    #[error("API key not allowed to use this model")]
    ModelNotAllowed,
}

impl ApiKeyError {
    /// A short, fixed label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiKeyError::Malformed => "malformed",
            ApiKeyError::MultipleKeys => "multiple_keys",
            ApiKeyError::UnknownKey => "unknown_key",
            ApiKeyError::Expired => "expired_key",
            ApiKeyError::RouteNotAllowed => "route_not_allowed",
            ApiKeyError::ModelNotAllowed => "model_not_allowed",
        }
    }

    /// Whether the key itself was accepted and only its scope (`routes`, `models`) refuses the
    /// request: a `403` rather than a `401`.
    pub fn is_out_of_scope(&self) -> bool {
        matches!(
            self,
            ApiKeyError::RouteNotAllowed | ApiKeyError::ModelNotAllowed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_and_only_scope_errors_are_out_of_scope() {
        let all = [
            ApiKeyError::Malformed,
            ApiKeyError::MultipleKeys,
            ApiKeyError::UnknownKey,
            ApiKeyError::Expired,
            ApiKeyError::RouteNotAllowed,
            ApiKeyError::ModelNotAllowed,
        ];
        let reasons: std::collections::HashSet<_> = all.iter().map(ApiKeyError::reason).collect();
        assert_eq!(reasons.len(), all.len());
        let out_of_scope: Vec<_> = all.iter().filter(|e| e.is_out_of_scope()).collect();
        assert_eq!(
            out_of_scope,
            [&ApiKeyError::RouteNotAllowed, &ApiKeyError::ModelNotAllowed]
        );
    }
}
