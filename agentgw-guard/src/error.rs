//! The one error type of this crate: what is wrong with a guard's configuration.

/// Why a prompt guard or a [`PatternSet`](crate::PatternSet) could not be built.
///
/// Every variant names the configuration field at fault with its full path, for example
/// `promptGuard.request[0].regex.matches[2].pattern`, so that a bad configuration is fixed
/// without guessing. Nothing here ever contains request or response text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// A pattern is not a valid regular expression (or uses a feature a linear-time engine
    /// cannot support, such as look-around or backreferences).
    #[error("invalid regex in {path}: {message}")]
    InvalidPattern {
        /// The field holding the pattern.
        path: String,
        /// The parser's explanation, with the position of the error.
        message: String,
    },
    /// A pattern matches the empty string, so it would match at every position.
    #[error("regex in {path} matches the empty string; it would match everywhere")]
    EmptyMatch {
        /// The field holding the pattern.
        path: String,
    },
    /// A pattern of a guard applied to streamed responses can match text of unbounded length.
    #[error(
        "regex in {path} can match text of unbounded length (it uses `*`, `+` or `{{n,}}`), \
         which a streaming masker cannot hold back: bound every repetition (for example \
         `{{1,64}}` instead of `+`), or set `repetitionLimit` on this guard to bound them all"
    )]
    UnboundedStreamPattern {
        /// The field holding the pattern.
        path: String,
    },
    /// The compiled patterns exceed the size limits of the automaton.
    #[error("patterns of {path} are too large to compile: {message}")]
    TooLarge {
        /// The guard (or pattern) at fault.
        path: String,
        /// The engine's explanation.
        message: String,
    },
    /// A literal phrase is empty (or only whitespace and invisible characters).
    #[error("phrase in {path} is empty after normalization")]
    EmptyPhrase {
        /// The field holding the phrase.
        path: String,
    },
    /// A guard has nothing to match: no pattern, builtin or phrase.
    #[error("{path} has no `matches`, `builtins` or `phrases`: it would never match")]
    NothingToMatch {
        /// The guard's `regex` field.
        path: String,
    },
    /// A replacement is configured for a rule that the guard does not have.
    #[error("{path} names `{rule}`, which is not a builtin or rule of this guard")]
    UnknownReplacement {
        /// The field holding the replacement.
        path: String,
        /// The rule name that is not defined.
        rule: String,
    },
    /// A status code is not a valid HTTP error status (400-599).
    #[error("{path} must be an HTTP error status between 400 and 599, got {status}")]
    InvalidStatus {
        /// The `statusCode` field.
        path: String,
        /// The configured value.
        status: u16,
    },
}
