//! The one error type of this crate: what is wrong with a guard's configuration.

use agentgw_core::ConfigError;

/// Why a prompt guard or a [`PatternSet`](crate::PatternSet) could not be built.
///
/// Every variant names the configuration field at fault with its path relative to the
/// `promptGuard` block, for example `request[0].regex.matches[2].pattern`, so that a bad
/// configuration is fixed without guessing; whoever knows where the block sits prefixes it with
/// [`ConfigError::at`]. `Display` is `path: reason`. Nothing here ever contains request or
/// response text.
///
/// ```
/// use agentgw_core::ConfigError;
/// use agentgw_guard::{Error, PromptGuardConfig, PromptGuardLayer};
///
/// let config: PromptGuardConfig = serde_json::from_value(serde_json::json!({
///     "request": [{"regex": {"action": "Reject", "matches": [{"pattern": "(unclosed", "name": "x"}]}}]
/// })).unwrap();
/// let err = PromptGuardLayer::from_config(&config).unwrap_err();
/// assert!(matches!(err, Error::InvalidPattern { .. }));
/// assert_eq!(err.path(), "request[0].regex.matches[0].pattern");
/// assert!(err.reason().starts_with("invalid regex: "));
/// assert!(err.at("ai.promptGuard").starts_with("ai.promptGuard.request[0].regex.matches[0].pattern: invalid regex: "));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A pattern is not a valid regular expression (or uses a feature a linear-time engine
    /// cannot support, such as look-around or backreferences).
    #[error("{}", display(path, self))]
    InvalidPattern {
        /// The field holding the pattern.
        path: String,
        /// The parser's explanation, with the position of the error.
        message: String,
    },
    /// A pattern matches the empty string, so it would match at every position.
    #[error("{}", display(path, self))]
    EmptyMatch {
        /// The field holding the pattern.
        path: String,
    },
    /// A pattern of a guard applied to streamed responses can match text of unbounded length.
    #[error("{}", display(path, self))]
    UnboundedStreamPattern {
        /// The field holding the pattern.
        path: String,
    },
    /// The compiled patterns exceed the size limits of the automaton.
    #[error("{}", display(path, self))]
    TooLarge {
        /// The guard (or pattern) at fault.
        path: String,
        /// The engine's explanation.
        message: String,
    },
    /// A literal phrase is empty (or only whitespace and invisible characters).
    #[error("{}", display(path, self))]
    EmptyPhrase {
        /// The field holding the phrase.
        path: String,
    },
    /// A guard has nothing to match: no pattern, builtin or phrase.
    #[error("{}", display(path, self))]
    NothingToMatch {
        /// The guard's `regex` field.
        path: String,
    },
    /// A replacement is configured for a rule that the guard does not have.
    #[error("{}", display(path, self))]
    UnknownReplacement {
        /// The field holding the replacement.
        path: String,
        /// The rule name that is not defined.
        rule: String,
    },
    /// A status code is not a valid HTTP error status (400-599).
    #[error("{}", display(path, self))]
    InvalidStatus {
        /// The `statusCode` field.
        path: String,
        /// The configured value.
        status: u16,
    },
    /// A `systemPromptLeak` guard is misplaced or out of range: on the request side, beside a
    /// `regex`, a second one, or a `minOverlap` outside 0..=1.
    #[error("{}", display(path, self))]
    InvalidSystemPromptLeak {
        /// The field at fault.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// An `escalation` block is invalid, or sits on a guard whose action is not `Escalate`.
    #[error("{}", display(path, self))]
    InvalidEscalation {
        /// The field at fault.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A `phoneNumber` block is invalid: an unknown region code, an empty `regions` list, or
    /// the block on a guard without the `PHONE_NUMBER` builtin.
    #[error("{}", display(path, self))]
    InvalidPhoneNumber {
        /// The field at fault (`phoneNumber.regions[2]`).
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A `classifier` block is invalid: a threshold out of range, `Mask`, on a response guard
    /// or next to `regex`, or the crate built without its `classifier` feature.
    #[error("{}", display(path, self))]
    InvalidClassifier {
        /// The field at fault (`request[0].classifier.threshold`).
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError for Error {
    fn path(&self) -> &str {
        match self {
            Error::InvalidPattern { path, .. }
            | Error::EmptyMatch { path }
            | Error::UnboundedStreamPattern { path }
            | Error::TooLarge { path, .. }
            | Error::EmptyPhrase { path }
            | Error::NothingToMatch { path }
            | Error::UnknownReplacement { path, .. }
            | Error::InvalidStatus { path, .. }
            | Error::InvalidSystemPromptLeak { path, .. }
            | Error::InvalidEscalation { path, .. }
            | Error::InvalidPhoneNumber { path, .. }
            | Error::InvalidClassifier { path, .. } => path,
        }
    }

    fn reason(&self) -> String {
        match self {
            Error::InvalidPattern { message, .. } => format!("invalid regex: {message}"),
            Error::EmptyMatch { .. } => {
                "regex matches the empty string; it would match everywhere".to_owned()
            }
            Error::UnboundedStreamPattern { .. } => {
                "regex can match text of unbounded length (it uses `*`, `+` or `{n,}`), which a \
                 streaming masker cannot hold back: bound every repetition (for example `{1,64}` \
                 instead of `+`), or set `repetitionLimit` on this guard to bound them all"
                    .to_owned()
            }
            Error::TooLarge { message, .. } => {
                format!("patterns are too large to compile: {message}")
            }
            Error::EmptyPhrase { .. } => "phrase is empty after normalization".to_owned(),
            Error::NothingToMatch { .. } => {
                "no `matches`, `builtins` or `phrases`: it would never match".to_owned()
            }
            Error::UnknownReplacement { rule, .. } => {
                format!("names `{rule}`, which is not a builtin or rule of this guard")
            }
            Error::InvalidStatus { status, .. } => {
                format!("must be an HTTP error status between 400 and 599, got {status}")
            }
            Error::InvalidSystemPromptLeak { message, .. }
            | Error::InvalidEscalation { message, .. }
            | Error::InvalidPhoneNumber { message, .. }
            | Error::InvalidClassifier { message, .. } => message.clone(),
        }
    }
}

/// `path: reason`, or the reason alone for an error about the whole block.
fn display(path: &str, error: &Error) -> String {
    if path.is_empty() {
        error.reason()
    } else {
        format!("{path}: {}", error.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_path_then_reason() {
        let err = Error::EmptyPhrase {
            path: "request[1].regex.phrases[0]".into(),
        };
        assert_eq!(err.path(), "request[1].regex.phrases[0]");
        assert_eq!(
            err.to_string(),
            "request[1].regex.phrases[0]: phrase is empty after normalization"
        );
        assert_eq!(
            err.at("routes[0].policies.ai.promptGuard"),
            "routes[0].policies.ai.promptGuard.request[1].regex.phrases[0]: phrase is empty after normalization"
        );
        let whole = Error::NothingToMatch {
            path: String::new(),
        };
        assert_eq!(whole.to_string(), whole.reason());
    }
}
