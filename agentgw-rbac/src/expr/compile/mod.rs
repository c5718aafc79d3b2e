//! The compiler: our syntax tree to a tree of closures.
//!
//! Each node becomes one boxed closure that evaluates its children and combines their values;
//! nothing is looked up by name at run time. While compiling, the compiler:
//!
//! - resolves names: comprehension variables to frame slots, request attributes to direct
//!   accessors of [`Attributes`](agentgw_core::Attributes) (`request.headers["x-llm"]` becomes
//!   one header lookup with a header name parsed at load time);
//! - folds constants: any subtree that reads no variable is evaluated once, and a failing one
//!   is kept so that it fails at run time exactly where CEL says it does;
//! - specialises: `x in [literal list]` becomes a set lookup, `s.matches('literal')` a regex
//!   compiled once, comparisons and string tests against a literal borrow the literal instead
//!   of copying it;
//! - tracks which attributes are read (the layer buffers the body only when some rule reads
//!   `request.body` or `mcp.*`) and the static type of each node where it is known.
//!
//! By concern: [`node`] is what a compiled node is and what it runs against; [`names`]
//! resolves variables and request attributes; [`operators`] compiles operators, `&&`/`||`
//! and `?:`; [`macros`] the comprehension macros; calls are compiled by [`super::call`].

mod macros;
mod names;
mod node;
mod operators;

use std::sync::Arc;

use agentgw_core::rejection::RouteKind;

use super::ast::{Kind, Node, Position, UnaryOp};
use super::attrs::AttrSet;
use super::error::{CompileError, EvalError};
use super::ops;
use super::value::{List, Type, Value};

pub(crate) use macros::Comprehension2;
pub(crate) use node::{Activation, Compiled, Deps, Frame};

/// One compiled node.
pub(crate) type EvalFn =
    dyn for<'a, 'f> Fn(&Frame<'a, 'f>) -> Result<Value<'a>, EvalError> + Send + Sync;

/// Boxes a closure as an [`EvalFn`] (the bound makes the closure's lifetimes higher-ranked).
pub(crate) fn func<F>(f: F) -> Box<EvalFn>
where
    F: for<'a, 'f> Fn(&Frame<'a, 'f>) -> Result<Value<'a>, EvalError> + Send + Sync + 'static,
{
    Box::new(f)
}

/// The variables an expression may use.
#[derive(Debug, Clone)]
pub(crate) enum Env {
    /// The request variables (`request`, `jwt`, `apiKey`, `source`, `mcp`); `route` says which
    /// kind of route the expression applies to when known.
    Request { route: Option<RouteKind> },
    /// Declared variables (dotted names allowed), bound by position, resolved against the
    /// namespace `container` (`""` for none).
    #[cfg(test)]
    Declared {
        names: Vec<String>,
        container: String,
    },
}

/// Compiles one expression.
pub(crate) struct Compiler<'e> {
    env: &'e Env,
    locals: Vec<String>,
    /// Set while compiling a part of the expression that only runs when there is no tool
    /// call, with the reason.
    no_tool_call: Option<String>,
    pub(crate) refs: AttrSet,
}

impl<'e> Compiler<'e> {
    pub(crate) fn new(env: &'e Env) -> Self {
        let no_tool_call = match env {
            Env::Request {
                route: Some(route @ (RouteKind::Llm | RouteKind::Other)),
            } => Some(format!(
                "the policy applies to {} route, where there are no MCP requests",
                if *route == RouteKind::Llm {
                    "an LLM"
                } else {
                    "a non-MCP"
                }
            )),
            _ => None,
        };
        Compiler {
            env,
            locals: Vec::new(),
            no_tool_call,
            refs: AttrSet::default(),
        }
    }

    pub(crate) fn compile(&mut self, node: &Node) -> Result<Compiled, CompileError> {
        let compiled = match &node.kind {
            Kind::Null => Compiled::constant(Value::Null),
            Kind::Bool(b) => Compiled::constant(Value::Bool(*b)),
            Kind::Int(i) => Compiled::constant(Value::Int(*i)),
            Kind::Uint(u) => Compiled::constant(Value::Uint(*u)),
            Kind::Double(d) => Compiled::constant(Value::Double(*d)),
            Kind::String(s) => {
                Compiled::constant(Value::String(super::value::Str::shared(Arc::clone(s))))
            }
            Kind::Bytes(b) => {
                Compiled::constant(Value::Bytes(super::value::ByteStr::shared(Arc::clone(b))))
            }
            Kind::Ident { .. } | Kind::Select { .. } => self.name_or_select(node)?,
            Kind::Has { operand, field } => self.has(operand, field, node.pos)?,
            Kind::Unary(op, operand) => {
                let operand = self.compile(operand)?;
                let deps = operand.deps;
                match op {
                    UnaryOp::Not => Compiled::new(
                        func(move |f| ops::not(&operand.eval(f)?)),
                        Some(Type::Bool),
                        deps,
                    ),
                    UnaryOp::Negate => {
                        let ty = operand.ty.filter(|t| matches!(t, Type::Int | Type::Double));
                        Compiled::new(func(move |f| ops::negate(&operand.eval(f)?)), ty, deps)
                    }
                }
            }
            Kind::Binary(op, lhs, rhs) => self.binary(*op, lhs, rhs, node.pos)?,
            Kind::And(lhs, rhs) => self.logic(true, lhs, rhs)?,
            Kind::Or(lhs, rhs) => self.logic(false, lhs, rhs)?,
            Kind::Conditional(cond, then, otherwise) => self.conditional(cond, then, otherwise)?,
            Kind::Call {
                function,
                target,
                args,
            } => self.call(function, target.as_deref(), args, node.pos)?,
            Kind::List(items) => {
                let items = items
                    .iter()
                    .map(|item| self.compile(item))
                    .collect::<Result<Vec<_>, _>>()?;
                let deps = items.iter().fold(Deps::default(), |d, i| d.join(i.deps));
                Compiled::new(
                    func(move |f| {
                        let values = items
                            .iter()
                            .map(|item| item.eval(f))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(Value::List(List::from_values(values)))
                    }),
                    Some(Type::List),
                    deps,
                )
            }
            Kind::Map(entries) => {
                let entries = entries
                    .iter()
                    .map(|(k, v)| Ok((self.compile(k)?, self.compile(v)?)))
                    .collect::<Result<Vec<_>, CompileError>>()?;
                let deps = entries
                    .iter()
                    .fold(Deps::default(), |d, (k, v)| d.join(k.deps).join(v.deps));
                Compiled::new(
                    func(move |f| {
                        let values = entries
                            .iter()
                            .map(|(k, v)| Ok((k.eval(f)?, v.eval(f)?)))
                            .collect::<Result<Vec<_>, EvalError>>()?;
                        ops::map_of(values)
                    }),
                    Some(Type::Map),
                    deps,
                )
            }
            Kind::Comprehension(c) => self.comprehension(c)?,
        };
        Ok(compiled.folded())
    }

    fn call(
        &mut self,
        function: &str,
        target: Option<&Node>,
        args: &[Node],
        pos: Position,
    ) -> Result<Compiled, CompileError> {
        super::call::compile_call(self, function, target, args, pos)
    }

    /// Compiles a call's argument (for [`super::call`]).
    pub(crate) fn arg(&mut self, node: &Node) -> Result<Compiled, CompileError> {
        self.compile(node)
    }
}
