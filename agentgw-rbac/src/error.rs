//! The crate's error: a policy that cannot be loaded.

use crate::expr::{CompileError, EvalError};

/// Why a policy cannot be loaded. Every variant names the rule's configuration path, e.g.
/// `rbac.policy.matchExpressions[1]`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RbacError {
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

impl RbacError {
    /// The configuration path of the rule at fault.
    pub fn path(&self) -> &str {
        match self {
            RbacError::Compile { path, .. }
            | RbacError::AlwaysFails { path, .. }
            | RbacError::DuplicateName { path, .. }
            | RbacError::EmptyName { path } => path,
        }
    }
}
