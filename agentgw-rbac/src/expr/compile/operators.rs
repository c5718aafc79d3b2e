//! Operators: binary operators (with direct header and query lookups and literal `in` sets),
//! `&&` and `||` with CEL's error absorption, `?:`, and the `mcp.method` tests that tell where
//! a tool call cannot exist.

use std::collections::HashSet;
use std::sync::Arc;

use super::super::ast::{BinaryOp, Kind, Node, Position};
use super::super::attrs::Attr;
use super::super::error::{CompileError, EvalError};
use super::super::ops;
use super::super::value::{List, Type, Value};
use super::names::{header_lookup, name_chain};
use super::{Compiled, Compiler, Env, func};

impl<'e> Compiler<'e> {
    pub(super) fn binary(
        &mut self,
        op: BinaryOp,
        lhs: &Node,
        rhs: &Node,
        pos: Position,
    ) -> Result<Compiled, CompileError> {
        let lhs = self.compile(lhs)?;
        let rhs = self.compile(rhs)?;
        let deps = lhs.deps.join(rhs.deps);
        let ty = binary_type(op, lhs.ty, rhs.ty);
        if let (Some(l), Some(r)) = (lhs.ty, rhs.ty)
            && let Some(symbol) = time_operands_mismatch(op, l, r)
        {
            return Err(CompileError::InvalidCall {
                function: symbol.to_owned(),
                position: pos,
                message: format!("no overload for {l} {symbol} {r}"),
            });
        }

        // `request.headers["name"]` and `request.queryParams["name"]`: one direct lookup.
        if op == BinaryOp::Index
            && let Some(Value::String(key)) = &rhs.constant
        {
            if lhs.attr == Some(Attr::RequestHeaders)
                && let Some(lookup) = header_lookup(key)
            {
                return Ok(lookup);
            }
            if lhs.attr == Some(Attr::RequestQueryParams) {
                let key: Arc<str> = Arc::from(key.as_str());
                return Ok(Compiled::new(
                    func(move |f| {
                        let attrs = &f.request()?.attrs;
                        match attrs.query_param(&key) {
                            Some(std::borrow::Cow::Borrowed(s)) => Ok(Value::from(s)),
                            Some(std::borrow::Cow::Owned(s)) => Ok(Value::string(s)),
                            None => Err(EvalError::NoSuchKey(Arc::clone(&key))),
                        }
                    }),
                    Some(Type::String),
                    deps,
                ));
            }
        }

        // `x in [literals]`: a set lookup.
        if op == BinaryOp::In
            && let Some(Value::List(list)) = &rhs.constant
        {
            let set = LiteralSet::new(list);
            return Ok(Compiled::new(
                func(move |f| Ok(Value::Bool(set.contains(&lhs.eval(f)?)))),
                Some(Type::Bool),
                deps,
            ));
        }

        Ok(match (lhs.constant.clone(), rhs.constant.clone()) {
            (_, Some(c)) if !lhs.deps.is_constant() => {
                Compiled::new(func(move |f| ops::binary(op, &lhs.eval(f)?, &c)), ty, deps)
            }
            (Some(c), _) if !rhs.deps.is_constant() => {
                Compiled::new(func(move |f| ops::binary(op, &c, &rhs.eval(f)?)), ty, deps)
            }
            _ => Compiled::new(
                func(move |f| {
                    let l = lhs.eval(f)?;
                    ops::binary(op, &l, &rhs.eval(f)?)
                }),
                ty,
                deps,
            ),
        })
    }

    /// `&&` (`and`) and `||`, commutative in their treatment of errors: `false && error` and
    /// `error && false` are both false.
    pub(super) fn logic(
        &mut self,
        and: bool,
        lhs: &Node,
        rhs: &Node,
    ) -> Result<Compiled, CompileError> {
        let saved = self.no_tool_call.clone();
        let lhs_guard = if and { self.tool_guard(lhs) } else { None };
        let rhs_guard = if and { self.tool_guard(rhs) } else { None };
        if let Some(reason) = &rhs_guard {
            self.no_tool_call.get_or_insert_with(|| reason.clone());
        }
        let lhs_compiled = self.compile(lhs);
        self.no_tool_call.clone_from(&saved);
        if let Some(reason) = &lhs_guard {
            self.no_tool_call.get_or_insert_with(|| reason.clone());
        }
        let rhs_compiled = self.compile(rhs);
        self.no_tool_call = saved;
        let (lhs, rhs) = (lhs_compiled?, rhs_compiled?);
        let deps = lhs.deps.join(rhs.deps);
        let absorbing = !and; // false absorbs `&&`, true absorbs `||`
        let symbol = if and { "&&" } else { "||" };
        // A constant absorbing operand decides alone, whatever the other side does.
        for side in [&lhs, &rhs] {
            if side.constant.as_ref().and_then(Value::as_bool) == Some(absorbing) {
                return Ok(Compiled::constant(Value::Bool(absorbing)));
            }
        }
        Ok(Compiled::new(
            func(move |f| {
                let l = lhs.eval(f);
                if matches!(l, Ok(Value::Bool(b)) if b == absorbing) {
                    return Ok(Value::Bool(absorbing));
                }
                let r = rhs.eval(f);
                match (l, r) {
                    (_, Ok(Value::Bool(b))) if b == absorbing => Ok(Value::Bool(absorbing)),
                    (Ok(Value::Bool(_)), Ok(Value::Bool(_))) => Ok(Value::Bool(!absorbing)),
                    (l, r) => Err(logic_error(symbol, l, r)),
                }
            }),
            Some(Type::Bool),
            deps,
        ))
    }

    pub(super) fn conditional(
        &mut self,
        cond: &Node,
        then: &Node,
        otherwise: &Node,
    ) -> Result<Compiled, CompileError> {
        let saved = self.no_tool_call.clone();
        let guard = self.method_guard(cond);
        let cond = self.compile(cond)?;
        if let Some(guard) = &guard
            && guard.excludes_tool_call(true)
        {
            self.no_tool_call.get_or_insert_with(|| guard.reason(true));
        }
        let then = self.compile(then);
        self.no_tool_call.clone_from(&saved);
        if let Some(guard) = &guard
            && guard.excludes_tool_call(false)
        {
            self.no_tool_call.get_or_insert_with(|| guard.reason(false));
        }
        let otherwise = self.compile(otherwise);
        self.no_tool_call = saved;
        let (then, otherwise) = (then?, otherwise?);
        let deps = cond.deps.join(then.deps).join(otherwise.deps);
        let ty = if then.ty == otherwise.ty {
            then.ty
        } else {
            None
        };
        if let Some(Value::Bool(b)) = cond.constant {
            return Ok(if b { then } else { otherwise });
        }
        Ok(Compiled::new(
            func(move |f| match cond.eval(f)? {
                Value::Bool(true) => then.eval(f),
                Value::Bool(false) => otherwise.eval(f),
                other => Err(EvalError::no_overload("?:", &[other.type_of()])),
            }),
            ty,
            deps,
        ))
    }

    /// The reason a tool call cannot exist on the other side of `node && ...`, if `node` is a
    /// test of `mcp.method` that excludes `tools/call`.
    fn tool_guard(&self, node: &Node) -> Option<String> {
        let guard = self.method_guard(node)?;
        guard.excludes_tool_call(true).then(|| guard.reason(true))
    }

    /// `mcp.method == "x"`, `"x" == mcp.method`, `mcp.method != "x"`, `mcp.method in [...]`.
    fn method_guard(&self, node: &Node) -> Option<MethodGuard> {
        if !matches!(self.env, Env::Request { .. }) {
            return None;
        }
        let Kind::Binary(op, lhs, rhs) = &node.kind else {
            return None;
        };
        let is_method = |n: &Node| {
            name_chain(n).is_some_and(|(segments, absolute)| {
                segments == ["mcp", "method"] && (absolute || self.local_depth("mcp").is_none())
            })
        };
        let literal = |n: &Node| match &n.kind {
            Kind::String(s) => Some(s.to_string()),
            _ => None,
        };
        let literals = |n: &Node| match &n.kind {
            Kind::List(items) => items.iter().map(literal).collect::<Option<Vec<_>>>(),
            _ => None,
        };
        let (is, methods) = match op {
            BinaryOp::Eq | BinaryOp::Ne if is_method(lhs) => {
                (*op == BinaryOp::Eq, vec![literal(rhs)?])
            }
            BinaryOp::Eq | BinaryOp::Ne if is_method(rhs) => {
                (*op == BinaryOp::Eq, vec![literal(lhs)?])
            }
            BinaryOp::In if is_method(lhs) => (true, literals(rhs)?),
            _ => return None,
        };
        Some(MethodGuard { is, methods })
    }
}

/// The test of `mcp.method` in a condition.
struct MethodGuard {
    /// `==` / `in` (true) or `!=` (false).
    is: bool,
    methods: Vec<String>,
}

impl MethodGuard {
    /// Whether no tool call exists where the condition is `holds`.
    fn excludes_tool_call(&self, holds: bool) -> bool {
        let names_call = self
            .methods
            .iter()
            .any(|m| m == agentgw_core::mcp::methods::TOOLS_CALL);
        // Where `mcp.method == m` holds (is && holds, or !is && !holds), the method is one of
        // `methods`; elsewhere it is none of them.
        if self.is == holds {
            !names_call
        } else {
            // The method is not one of `methods`: excludes tools/call only if it is listed
            // alone... and it is listed, so the method is anything but tools/call.
            names_call && self.methods.len() == 1
        }
    }

    fn reason(&self, holds: bool) -> String {
        let list = self
            .methods
            .iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        if self.is == holds {
            format!(
                "this part of the rule only applies when mcp.method is {list}, and only tools/call requests carry a tool call"
            )
        } else {
            format!(
                "this part of the rule only applies when mcp.method is not {list}, and only tools/call requests carry a tool call"
            )
        }
    }
}

/// The operator's symbol, when one operand is statically a timestamp or a duration and the
/// other of a type the operator has no overload for with it (`request.time < "2030-01-01"`):
/// such a rule could only ever fail, so it is a load-time error.
fn time_operands_mismatch(op: BinaryOp, l: Type, r: Type) -> Option<&'static str> {
    use Type::{Duration as Dur, Timestamp as Ts};
    if !matches!(l, Ts | Dur) && !matches!(r, Ts | Dur) {
        return None;
    }
    let (symbol, fits) = match op {
        BinaryOp::Lt => ("<", l == r),
        BinaryOp::Le => ("<=", l == r),
        BinaryOp::Gt => (">", l == r),
        BinaryOp::Ge => (">=", l == r),
        BinaryOp::Add => ("+", matches!((l, r), (Ts, Dur) | (Dur, Ts) | (Dur, Dur))),
        BinaryOp::Sub => ("-", matches!((l, r), (Ts, Dur) | (Ts, Ts) | (Dur, Dur))),
        BinaryOp::Mul => ("*", false),
        BinaryOp::Div => ("/", false),
        BinaryOp::Rem => ("%", false),
        _ => return None,
    };
    (!fits).then_some(symbol)
}

/// The static result type of a binary operator.
fn binary_type(op: BinaryOp, lhs: Option<Type>, rhs: Option<Type>) -> Option<Type> {
    match op {
        BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::In => Some(Type::Bool),
        BinaryOp::Index => None,
        BinaryOp::Add => match (lhs, rhs) {
            (Some(Type::Timestamp), Some(Type::Duration))
            | (Some(Type::Duration), Some(Type::Timestamp)) => Some(Type::Timestamp),
            (Some(l), Some(r)) if l == r && l != Type::Timestamp => Some(l),
            _ => None,
        },
        BinaryOp::Sub => match (lhs, rhs) {
            (Some(Type::Timestamp), Some(Type::Timestamp)) => Some(Type::Duration),
            (Some(Type::Timestamp), Some(Type::Duration)) => Some(Type::Timestamp),
            (Some(l), Some(r)) if l == r => Some(l),
            _ => None,
        },
        _ => match (lhs, rhs) {
            (Some(l), Some(r)) if l == r => Some(l),
            _ => None,
        },
    }
}

/// The error of `&&`/`||` when neither side decided: an unknown wins over an error, the left
/// error over the right one, and a non-bool operand is a missing overload.
fn logic_error(
    symbol: &'static str,
    lhs: Result<Value<'_>, EvalError>,
    rhs: Result<Value<'_>, EvalError>,
) -> EvalError {
    let as_error = |r: Result<Value<'_>, EvalError>| match r {
        Ok(Value::Bool(_)) => None,
        Ok(other) => Some(EvalError::no_overload(symbol, &[other.type_of()])),
        Err(e) => Some(e),
    };
    let (l, r) = (as_error(lhs), as_error(rhs));
    match (l, r) {
        (Some(l), Some(r)) => {
            if r.is_unknown() && !l.is_unknown() {
                r
            } else {
                l
            }
        }
        (Some(e), None) | (None, Some(e)) => e,
        (None, None) => EvalError::no_overload(symbol, &[Type::Bool, Type::Bool]),
    }
}

/// A literal list on the right of `in`, as a set.
enum LiteralSet {
    /// Only strings: few are compared directly, more are hashed.
    Strings(StringSet),
    /// Anything else: compared with CEL equality.
    Values(Vec<Value<'static>>),
}

enum StringSet {
    Few(Vec<Arc<str>>),
    Many(HashSet<Arc<str>>),
}

/// Up to this many strings, comparing them all beats hashing the probe.
const FEW_STRINGS: usize = 8;

impl LiteralSet {
    fn new(list: &List<'static>) -> Self {
        let strings: Option<Vec<Arc<str>>> = list
            .iter()
            .map(|v| match v {
                Value::String(s) => Some(Arc::from(s.as_str())),
                _ => None,
            })
            .collect();
        match strings {
            Some(strings) if strings.len() <= FEW_STRINGS => {
                LiteralSet::Strings(StringSet::Few(strings))
            }
            Some(strings) => LiteralSet::Strings(StringSet::Many(strings.into_iter().collect())),
            None => LiteralSet::Values(list.iter().collect()),
        }
    }

    fn contains(&self, value: &Value<'_>) -> bool {
        match (self, value) {
            (LiteralSet::Strings(StringSet::Few(items)), Value::String(s)) => {
                items.iter().any(|item| **item == **s)
            }
            (LiteralSet::Strings(StringSet::Many(items)), Value::String(s)) => {
                items.contains(s.as_str())
            }
            (LiteralSet::Strings(_), _) => false,
            (LiteralSet::Values(items), value) => items
                .iter()
                .any(|item| super::super::value::equals(item, value)),
        }
    }
}
