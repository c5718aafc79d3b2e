//! The one error type of this crate: what is wrong with a tool security configuration.

use agentgw_guard::GuardError;

/// Why a [`ToolSecurityLayer`](crate::ToolSecurityLayer) could not be built from its
/// configuration.
///
/// Every variant names the field at fault with its full path under `toolSecurity`, for example
/// `toolSecurity.inputValidation.rules[0].arguments[1].reject[0].pattern`, so that a bad
/// configuration is fixed without guessing. [`ToolSecError::path`] returns that path, for a
/// caller that nests the block deeper (the example gateway prefixes the route).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolSecError {
    /// A pattern is not a valid regular expression (or uses look-around or backreferences,
    /// which the linear-time engine does not support).
    #[error("invalid regex in {path}: {message}")]
    InvalidPattern {
        /// The field holding the pattern.
        path: String,
        /// The parser's explanation, with the position of the error.
        message: String,
    },
    /// A pattern matches the empty string, so it would match every value.
    #[error("regex in {path} matches the empty string; it would match everything")]
    EmptyMatch {
        /// The field holding the pattern.
        path: String,
    },
    /// The compiled patterns exceed the size limits of the automaton.
    #[error("patterns of {path} are too large to compile: {message}")]
    TooLarge {
        /// The rule whose patterns are too large.
        path: String,
        /// The engine's explanation.
        message: String,
    },
    /// A key that only makes sense for tool servers the gateway launches itself (stdio).
    #[error("{path} is not supported for HTTP upstreams: {reason}")]
    Unsupported {
        /// The unsupported key.
        path: String,
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// A value is out of range or malformed (an empty tool name, a size of zero, a bad URL).
    #[error("invalid value in {path}: {message}")]
    InvalidValue {
        /// The field at fault.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A field that an action or destination needs is missing.
    #[error("{path} is required {reason}")]
    Missing {
        /// The missing field.
        path: String,
        /// When it is required, e.g. `for action Truncate`.
        reason: &'static str,
    },
    /// A field is set that has no effect in this combination (it would be silently ignored).
    #[error("{path} has no effect {reason}")]
    NoEffect {
        /// The field that would be ignored.
        path: String,
        /// Why, e.g. `unless audit.level is full`.
        reason: &'static str,
    },
}

impl ToolSecError {
    /// The configuration field at fault, e.g. `toolSecurity.allowlist.tools[2].name`.
    pub fn path(&self) -> &str {
        match self {
            Self::InvalidPattern { path, .. }
            | Self::EmptyMatch { path }
            | Self::TooLarge { path, .. }
            | Self::Unsupported { path, .. }
            | Self::InvalidValue { path, .. }
            | Self::Missing { path, .. }
            | Self::NoEffect { path, .. } => path,
        }
    }

    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidValue {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Translates an error of a pattern set built by [`crate::patterns::PatternList`], whose
    /// `i`-th pattern lives at `paths[i]` in our configuration.
    pub(crate) fn from_guard(error: GuardError, set_path: &str, paths: &[String]) -> Self {
        // The guard names the i-th pattern `matches[i].pattern` (its own config shape); map it
        // back to where that pattern is in ours.
        let pattern_path = |path: &str| {
            path.strip_prefix("matches[")
                .and_then(|rest| rest.split_once(']'))
                .and_then(|(index, _)| index.parse::<usize>().ok())
                .and_then(|index| paths.get(index).cloned())
                .unwrap_or_else(|| set_path.to_owned())
        };
        match error {
            GuardError::InvalidPattern { path, message } => Self::InvalidPattern {
                path: pattern_path(&path),
                message,
            },
            GuardError::EmptyMatch { path } => Self::EmptyMatch {
                path: pattern_path(&path),
            },
            GuardError::TooLarge { message, .. } => Self::TooLarge {
                path: set_path.to_owned(),
                message,
            },
            other => Self::InvalidValue {
                path: set_path.to_owned(),
                message: other.to_string(),
            },
        }
    }
}
