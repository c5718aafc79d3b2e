//! The crate's error: a policy that cannot be loaded.

use agentgw_core::ConfigError;

use crate::expr::{CompileError, EvalError};

/// Why a policy cannot be loaded.
///
/// Every variant names the rule's path relative to the `rbac` block, e.g.
/// `policy.matchExpressions[1]`; whoever knows where the block sits prefixes it with
/// [`ConfigError::at`]. `Display` is `path: reason`.
///
/// ```
/// use agentgw_core::ConfigError;
/// use agentgw_rbac::{CelPolicyLayer, Error, PolicyConfig, RbacConfig};
///
/// let config = RbacConfig::default()
///     .policy(PolicyConfig::default().match_expressions(["true", "jwt.role == "]));
/// let err = CelPolicyLayer::from_config(&config).unwrap_err();
/// assert!(matches!(err, Error::Compile { .. }));
/// assert_eq!(err.path(), "policy.matchExpressions[1]");
/// assert!(err.reason().starts_with("CEL syntax error at line 1, column 13"));
/// assert!(err.at("routes[0].policies.rbac")
///     .starts_with("routes[0].policies.rbac.policy.matchExpressions[1]: CEL syntax error"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A rule's expression does not compile (syntax, unknown name, unsupported construct, ...).
    #[error("{path}: {error}")]
    Compile {
        /// The rule's configuration path.
        path: String,
        /// Why it does not compile, with line and column.
        #[source]
        error: CompileError,
    },
    /// A rule that can never be true or false: it reads nothing and always fails.
    #[error("{path}: the rule always fails: {error}")]
    AlwaysFails {
        /// The rule's configuration path.
        path: String,
        /// The error it raises.
        error: EvalError,
    },
    /// Two rules with the same name: denials and metrics could not tell them apart.
    #[error("{path}: rule name {name:?} is already used by {first}")]
    DuplicateName {
        /// The second rule's configuration path.
        path: String,
        /// The name.
        name: String,
        /// The first rule's configuration path.
        first: String,
    },
    /// A rule with an empty name.
    #[error("{path}: a rule name must not be empty")]
    EmptyName {
        /// The rule's configuration path.
        path: String,
    },
}

impl ConfigError for Error {
    fn path(&self) -> &str {
        match self {
            Error::Compile { path, .. }
            | Error::AlwaysFails { path, .. }
            | Error::DuplicateName { path, .. }
            | Error::EmptyName { path } => path,
        }
    }

    fn reason(&self) -> String {
        match self {
            Error::Compile { error, .. } => error.to_string(),
            Error::AlwaysFails { error, .. } => format!("the rule always fails: {error}"),
            Error::DuplicateName { name, first, .. } => {
                format!("rule name {name:?} is already used by {first}")
            }
            Error::EmptyName { .. } => "a rule name must not be empty".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_path_then_reason() {
        let err = Error::DuplicateName {
            path: "policy.allow[0]".into(),
            name: "a".into(),
            first: "policy.deny[0]".into(),
        };
        assert_eq!(err.to_string(), format!("{}: {}", err.path(), err.reason()));
        assert_eq!(
            err.at("rbac"),
            "rbac.policy.allow[0]: rule name \"a\" is already used by policy.deny[0]"
        );
    }
}
