//! The one error type of this crate: what is wrong with a tool security configuration.

use agentgw_core::ConfigError;

/// Why a [`ToolSecurityLayer`](crate::ToolSecurityLayer) could not be built from its
/// configuration.
///
/// Every variant names the field at fault with its path relative to the `toolSecurity` block
/// ([`ConfigError::path`], e.g. `inputValidation.rules[0].arguments[1].reject[0].pattern`) and
/// says what is wrong ([`ConfigError::reason`]), so that a bad configuration is fixed without
/// guessing; whoever knows where the block sits prefixes it with [`ConfigError::at`] (the
/// example gateway: `routes[0].policies.ai.toolSecurity.`). `Display` is `path: reason`.
/// Nothing here ever contains request or response text.
///
/// ```
/// use agentgw_core::ConfigError;
/// use agentgw_toolsec::{Error, ToolSecurityConfig, ToolSecurityLayer};
///
/// let config: ToolSecurityConfig =
///     serde_saphyr::from_str("pinning:\n  maxTools: 0\n").unwrap();
/// let err = ToolSecurityLayer::from_config(&config).unwrap_err();
/// assert!(matches!(err, Error::InvalidValue { .. }));
/// assert_eq!(err.path(), "pinning.maxTools");
/// assert_eq!(err.reason(), "must be at least 1");
/// assert_eq!(err.at("ai.toolSecurity"), "ai.toolSecurity.pinning.maxTools: must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A pattern is not a valid regular expression (or uses look-around or backreferences,
    /// which the linear-time engine does not support).
    #[error("{}", display(self))]
    InvalidPattern {
        /// The field holding the pattern.
        path: String,
        /// The parser's explanation, with the position of the error.
        message: String,
    },
    /// A pattern matches the empty string, so it would match every value.
    #[error("{}", display(self))]
    EmptyMatch {
        /// The field holding the pattern.
        path: String,
    },
    /// The compiled patterns exceed the size limits of the automaton.
    #[error("{}", display(self))]
    TooLarge {
        /// The rule whose patterns are too large.
        path: String,
        /// The engine's explanation.
        message: String,
    },
    /// A key that only makes sense for tool servers the gateway launches itself (stdio), or a
    /// feature this build lacks.
    #[error("{}", display(self))]
    Unsupported {
        /// The unsupported key.
        path: String,
        /// Why, and what to do instead.
        detail: &'static str,
    },
    /// A value is out of range or malformed (an empty tool name, a size of zero, a bad URL).
    #[error("{}", display(self))]
    InvalidValue {
        /// The field at fault.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A field that an action or destination needs is missing.
    #[error("{}", display(self))]
    Missing {
        /// The missing field.
        path: String,
        /// When it is required, e.g. `for action Truncate`.
        detail: &'static str,
    },
    /// A field is set that has no effect in this combination (it would be silently ignored).
    #[error("{}", display(self))]
    NoEffect {
        /// The field that would be ignored.
        path: String,
        /// Why, e.g. `unless audit.level is full`.
        detail: &'static str,
    },
}

impl ConfigError for Error {
    fn path(&self) -> &str {
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

    fn reason(&self) -> String {
        match self {
            Self::InvalidPattern { message, .. } => format!("invalid regex: {message}"),
            Self::EmptyMatch { .. } => {
                "regex matches the empty string; it would match everything".to_owned()
            }
            Self::TooLarge { message, .. } => {
                format!("patterns are too large to compile: {message}")
            }
            Self::Unsupported { detail, .. } => {
                format!("not supported for HTTP upstreams: {detail}")
            }
            Self::InvalidValue { message, .. } => message.clone(),
            Self::Missing { detail, .. } => format!("is required {detail}"),
            Self::NoEffect { detail, .. } => format!("has no effect {detail}"),
        }
    }
}

/// `path: reason`, or the reason alone for an error about the whole block.
fn display(error: &Error) -> String {
    let path = error.path();
    if path.is_empty() {
        error.reason()
    } else {
        format!("{path}: {}", error.reason())
    }
}

impl Error {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidValue {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Translates an error of a pattern set built by [`crate::patterns::PatternList`], whose
    /// `i`-th pattern lives at `paths[i]` in our configuration.
    pub(crate) fn from_guard(
        error: agentgw_guard::Error,
        set_path: &str,
        paths: &[String],
    ) -> Self {
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
            agentgw_guard::Error::InvalidPattern { path, message } => Self::InvalidPattern {
                path: pattern_path(&path),
                message,
            },
            agentgw_guard::Error::EmptyMatch { path } => Self::EmptyMatch {
                path: pattern_path(&path),
            },
            agentgw_guard::Error::TooLarge { message, .. } => Self::TooLarge {
                path: set_path.to_owned(),
                message,
            },
            other => Self::InvalidValue {
                path: set_path.to_owned(),
                message: other.reason(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_path_then_reason() {
        let err = Error::Unsupported {
            path: "sandbox.limits.networkAccess".into(),
            detail: "remove the key",
        };
        assert_eq!(
            err.to_string(),
            "sandbox.limits.networkAccess: not supported for HTTP upstreams: remove the key"
        );
        assert_eq!(
            err.at("routes[2].policies.ai.toolSecurity"),
            "routes[2].policies.ai.toolSecurity.sandbox.limits.networkAccess: not supported for \
             HTTP upstreams: remove the key"
        );
        let err = Error::Missing {
            path: "responseSanitization.rules[0].maxLength".into(),
            detail: "for action Truncate",
        };
        assert_eq!(err.reason(), "is required for action Truncate");
        let whole = Error::invalid("", "the block is empty");
        assert_eq!(whole.to_string(), "the block is empty");
    }

    #[test]
    fn guard_errors_keep_the_path_of_our_pattern() {
        let paths = vec!["validation.rules[0].reject[0].pattern".to_owned()];
        let guard = agentgw_guard::Error::InvalidPattern {
            path: "matches[0].pattern".into(),
            message: "unclosed group".into(),
        };
        let err = Error::from_guard(guard, "validation.rules[0].reject", &paths);
        assert_eq!(err.path(), "validation.rules[0].reject[0].pattern");
        assert_eq!(err.reason(), "invalid regex: unclosed group");
    }
}
