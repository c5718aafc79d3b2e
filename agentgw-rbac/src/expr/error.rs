//! Errors of compiling and of evaluating an expression.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::ast::Position;
use super::value::Type;

/// Why an expression cannot be compiled. Every variant says where (line and column).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The text is not CEL.
    #[error("CEL syntax error at {position}: {message}")]
    Syntax {
        /// Where the parser stopped.
        position: Position,
        /// What the parser expected.
        message: String,
    },
    /// A variable that does not exist in this environment.
    #[error("unknown variable `{name}` at {position}; known variables: {known}")]
    UnknownVariable {
        /// The name as written.
        name: String,
        /// Where it is used.
        position: Position,
        /// The variables that exist.
        known: String,
    },
    /// A field of a request variable that does not exist (`request.pth`).
    #[error("unknown attribute `{path}` at {position}; {object} has: {known}")]
    UnknownAttribute {
        /// The attribute as written.
        path: String,
        /// Where it is used.
        position: Position,
        /// The object it was looked up in.
        object: String,
        /// The attributes that exist there.
        known: String,
    },
    /// A function we do not know.
    #[error("unknown function `{name}` at {position}")]
    UnknownFunction {
        /// The function name.
        name: String,
        /// Where it is called.
        position: Position,
    },
    /// Valid CEL outside the subset this evaluator supports.
    #[error("unsupported CEL at {position}: {construct}")]
    Unsupported {
        /// What is not supported.
        construct: String,
        /// Where it is.
        position: Position,
    },
    /// A known function called with the wrong number or kind of arguments.
    #[error("invalid call of `{function}` at {position}: {message}")]
    InvalidCall {
        /// The function.
        function: String,
        /// Where it is called.
        position: Position,
        /// What is wrong.
        message: String,
    },
    /// A `matches()` pattern that is not a valid regular expression.
    #[error("invalid regular expression at {position}: {message}")]
    InvalidRegex {
        /// Where the pattern is.
        position: Position,
        /// The regex compiler's message.
        message: String,
    },
    /// An MCP tool attribute read where no tool call can exist.
    #[error("`{attribute}` is read at {position}, where no MCP tool call exists: {reason}")]
    NoToolCall {
        /// The attribute (`mcp.tool.arguments`).
        attribute: String,
        /// Where it is read.
        position: Position,
        /// Why no tool call exists there.
        reason: String,
    },
    /// A rule whose result is known not to be a bool.
    #[error("a rule must produce a bool, but this expression produces {found}")]
    NotBoolean {
        /// The type the expression produces.
        found: Type,
    },
    /// An expression nested deeper than the compiler accepts.
    #[error("expression nests more than {limit} levels deep at {position}")]
    TooDeep {
        /// Where the limit was reached.
        position: Position,
        /// The limit.
        limit: usize,
    },
    /// A constant expression that always fails (e.g. `1 / 0` in a rule).
    #[error("expression always fails at {position}: {error}")]
    AlwaysFails {
        /// Where.
        position: Position,
        /// The error it raises.
        error: EvalError,
    },
}

impl CompileError {
    /// Where in the expression the error is, when it is about one place.
    pub fn position(&self) -> Option<Position> {
        match self {
            CompileError::Syntax { position, .. }
            | CompileError::UnknownVariable { position, .. }
            | CompileError::UnknownAttribute { position, .. }
            | CompileError::UnknownFunction { position, .. }
            | CompileError::Unsupported { position, .. }
            | CompileError::InvalidCall { position, .. }
            | CompileError::InvalidRegex { position, .. }
            | CompileError::NoToolCall { position, .. }
            | CompileError::TooDeep { position, .. }
            | CompileError::AlwaysFails { position, .. } => Some(*position),
            CompileError::NotBoolean { .. } => None,
        }
    }

    /// Whether the error is about valid CEL we do not support (as opposed to a mistake in the
    /// expression).
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            CompileError::Unsupported { .. } | CompileError::TooDeep { .. }
        )
    }
}

/// The argument types of a call that has no overload for them (at most three are kept).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ArgTypes {
    types: [Option<Type>; 3],
}

impl ArgTypes {
    fn new(types: &[Type]) -> Self {
        let mut out = [None; 3];
        for (slot, t) in out.iter_mut().zip(types) {
            *slot = Some(*t);
        }
        ArgTypes { types: out }
    }
}

impl fmt::Debug for ArgTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ArgTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.types.iter().flatten().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(t.name())?;
        }
        Ok(())
    }
}

/// Why an evaluation failed. A failing rule counts against the request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A map has no such key (also: a missing header, claim or body field).
    #[error("no such key: {0}")]
    NoSuchKey(Arc<str>),
    /// A request attribute that this request does not have (no body, not an MCP tool call).
    #[error("attribute `{0}` is not available on this request")]
    Missing(&'static str),
    /// An operator or function applied to types it has no overload for.
    #[error("no matching overload for `{function}` applied to ({args})")]
    NoOverload {
        /// The operator or function.
        function: &'static str,
        /// The argument types.
        args: ArgTypes,
    },
    /// Integer division by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// Integer modulus by zero.
    #[error("modulus by zero")]
    ModulusByZero,
    /// Integer arithmetic out of the 64-bit range.
    #[error("integer overflow in `{0}`")]
    Overflow(&'static str),
    /// A timestamp or duration outside its range: timestamps run from year 1 to year 9999,
    /// durations to about ±292 years (`timestamp('9999-12-31T23:59:59Z') + duration('1s')`).
    #[error("range error in `{function}`: {what} out of range")]
    OutOfRange {
        /// The operator or function.
        function: &'static str,
        /// `"timestamp"` or `"duration"`.
        what: &'static str,
    },
    /// A list index outside the list.
    #[error("index out of bounds: {0}")]
    IndexOutOfBounds(i64),
    /// An argument a function cannot work with (a conversion out of range, bad UTF-8, ...).
    #[error("invalid argument to `{function}`: {message}")]
    InvalidArgument {
        /// The function.
        function: &'static str,
        /// What is wrong.
        message: Cow<'static, str>,
    },
    /// A map literal with the same key twice.
    #[error("repeated map key {0}")]
    DuplicateKey(String),
    /// A map key of a type maps cannot have.
    #[error("unsupported map key type {0}")]
    UnsupportedKeyType(Type),
    /// An attribute whose value is not known yet (deciding which listed tools a caller may
    /// call, before the call's arguments exist).
    #[error("attribute `{0}` is not known yet")]
    Unknown(&'static str),
}

impl EvalError {
    pub(crate) fn no_overload(function: &'static str, types: &[Type]) -> Self {
        EvalError::NoOverload {
            function,
            args: ArgTypes::new(types),
        }
    }

    pub(crate) fn invalid(function: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        EvalError::InvalidArgument {
            function,
            message: message.into(),
        }
    }

    /// The error of `function` for a [`TimeError`](super::time::TimeError).
    pub(crate) fn time(function: &'static str, error: super::time::TimeError) -> Self {
        match error {
            super::time::TimeError::Range(what) => EvalError::OutOfRange { function, what },
            super::time::TimeError::Syntax(message) => EvalError::invalid(function, message),
        }
    }

    /// Whether the failure only means a value is not known yet.
    pub fn is_unknown(&self) -> bool {
        matches!(self, EvalError::Unknown(_))
    }
}
