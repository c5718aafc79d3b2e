//! Our own syntax tree of a CEL expression.
//!
//! The parser front end ([`super::parse`]) lowers whatever the CEL parser produces into these
//! types, so the compiler never sees the parser crate's types and the parser can be swapped
//! without touching evaluation. Macros (`all`, `exists`, `exists_one`, `map`, `filter`) and
//! `has()` are recognised during lowering and have their own nodes; constructs outside our
//! subset never reach this tree (they are compile errors in the front end).

use std::fmt;
use std::sync::Arc;

/// Where a node starts in the expression source: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Position {
    /// Line, starting at 1.
    pub line: u32,
    /// Column in characters, starting at 1.
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// One node of the tree and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) pos: Position,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Not,
    Negate,
}

/// Strict binary operators (both operands are evaluated, errors propagate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Index,
}

/// The comprehension macros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacroKind {
    All,
    Exists,
    ExistsOne,
    /// `map(x, f)`, `map(x, p, f)` and `filter(x, p)` (a filter is `map(x, p, x)`).
    Map,
}

/// A comprehension macro: `range.kind(var, body)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Comprehension {
    pub(crate) kind: MacroKind,
    pub(crate) range: Node,
    pub(crate) var: String,
    /// The predicate (`all`, `exists`, `exists_one`) or the transform (`map`).
    pub(crate) body: Node,
    /// The filter of `map(x, p, f)` and `filter(x, p)`.
    pub(crate) filter: Option<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    String(Arc<str>),
    Bytes(Arc<[u8]>),
    /// A plain identifier; `absolute` for the leading-dot form `.name`.
    Ident {
        name: String,
        absolute: bool,
    },
    /// `operand.field`.
    Select {
        operand: Box<Node>,
        field: String,
    },
    /// `has(operand.field)`.
    Has {
        operand: Box<Node>,
        field: String,
    },
    Unary(UnaryOp, Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Conditional(Box<Node>, Box<Node>, Box<Node>),
    /// A function call, global (`size(x)`) or on a target (`x.size()`).
    Call {
        function: String,
        target: Option<Box<Node>>,
        args: Vec<Node>,
    },
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Comprehension(Box<Comprehension>),
}

impl Node {
    pub(crate) fn new(kind: Kind, pos: Position) -> Self {
        Node { kind, pos }
    }
}
