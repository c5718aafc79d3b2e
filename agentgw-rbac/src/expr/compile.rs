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

use std::collections::HashSet;
use std::sync::Arc;

use agentgw_core::rejection::RouteKind;

use super::ast::{BinaryOp, Comprehension, Kind, MacroKind, Node, Position, UnaryOp};
use super::attrs::{Attr, AttrSet, ROOTS, RequestVars};
use super::error::{CompileError, EvalError};
use super::ops;
use super::value::{List, Type, Value, header_value};

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

/// What an expression is evaluated against.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Activation<'a> {
    /// Nothing (constant folding).
    Empty,
    /// A request.
    Request(RequestVars<'a>),
    /// Declared variables by slot (the environment of tests and of the conformance suite).
    #[cfg(test)]
    Bindings(&'a [Value<'a>]),
}

/// The evaluation state: the activation and the comprehension variables in scope, innermost
/// first, as a chain of stack frames (no allocation).
pub(crate) struct Frame<'a, 'f> {
    act: &'f Activation<'a>,
    local: Option<(&'f Value<'a>, &'f Frame<'a, 'f>)>,
}

impl<'a, 'f> Frame<'a, 'f> {
    pub(crate) fn new(act: &'f Activation<'a>) -> Self {
        Frame { act, local: None }
    }

    fn local(&self, depth: usize) -> Result<Value<'a>, EvalError> {
        let mut frame = self;
        for _ in 0..depth {
            frame = frame
                .local
                .ok_or(EvalError::Missing("comprehension variable"))?
                .1;
        }
        frame
            .local
            .map(|(value, _)| value.clone())
            .ok_or(EvalError::Missing("comprehension variable"))
    }

    pub(crate) fn request(&self) -> Result<&'f RequestVars<'a>, EvalError> {
        match self.act {
            Activation::Request(vars) => Ok(vars),
            _ => Err(EvalError::Missing("request")),
        }
    }

    #[cfg(test)]
    fn binding(&self, slot: usize) -> Result<Value<'a>, EvalError> {
        match self.act {
            Activation::Bindings(values) => values
                .get(slot)
                .cloned()
                .ok_or(EvalError::Missing("variable")),
            _ => Err(EvalError::Missing("variable")),
        }
    }
}

/// What a node depends on; a node that depends on nothing is a constant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Deps {
    /// Reads the activation (a request attribute or a declared variable).
    pub(crate) env: bool,
    /// How many enclosing comprehension variables it reaches (1 = the innermost).
    pub(crate) locals: usize,
}

impl Deps {
    pub(crate) fn join(self, other: Deps) -> Deps {
        Deps {
            env: self.env || other.env,
            locals: self.locals.max(other.locals),
        }
    }

    fn is_constant(self) -> bool {
        !self.env && self.locals == 0
    }
}

/// A compiled node.
pub(crate) struct Compiled {
    pub(crate) eval: Box<EvalFn>,
    pub(crate) constant: Option<Value<'static>>,
    /// The static type of the value, when known.
    pub(crate) ty: Option<Type>,
    /// The request attribute this node reads as a whole, if it is exactly one.
    pub(crate) attr: Option<Attr>,
    pub(crate) deps: Deps,
}

impl Compiled {
    fn constant(value: Value<'static>) -> Self {
        let captured = value.clone();
        Compiled {
            eval: func(move |_| Ok(captured.clone())),
            ty: Some(value.type_of()),
            constant: Some(value),
            attr: None,
            deps: Deps::default(),
        }
    }

    pub(crate) fn new(eval: Box<EvalFn>, ty: Option<Type>, deps: Deps) -> Self {
        Compiled {
            eval,
            constant: None,
            ty,
            attr: None,
            deps,
        }
    }

    pub(crate) fn eval<'a>(&self, frame: &Frame<'a, '_>) -> Result<Value<'a>, EvalError> {
        (self.eval)(frame)
    }

    /// The value, when the node is a constant that evaluates without error.
    pub(crate) fn constant_value(&self) -> Option<&Value<'static>> {
        self.constant.as_ref()
    }

    /// Whether the node depends on nothing (a constant, or a constant that always fails).
    pub(crate) fn is_constant(&self) -> bool {
        self.deps.is_constant()
    }

    /// Evaluates a node that depends on nothing once and keeps the value; a failing node is
    /// kept as it is, to fail at run time.
    fn folded(self) -> Self {
        if self.constant.is_some() || !self.deps.is_constant() {
            return self;
        }
        let act: Activation<'static> = Activation::Empty;
        let value = self.eval(&Frame::new(&act)).map(|v| v.to_static());
        match value {
            Ok(value) => {
                let ty = self.ty;
                let mut folded = Compiled::constant(value);
                folded.ty = folded.ty.or(ty);
                folded
            }
            Err(_) => self,
        }
    }
}

/// The variables an expression may use.
#[derive(Debug, Clone)]
pub(crate) enum Env {
    /// The request variables (`request`, `jwt`, `apiKey`, `source`, `mcp`); `route` says which
    /// kind of route the expression applies to when known.
    Request { route: Option<RouteKind> },
    /// Declared variables (dotted names allowed), bound by position.
    #[cfg(test)]
    Declared { names: Vec<String> },
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
            Kind::Binary(op, lhs, rhs) => self.binary(*op, lhs, rhs)?,
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

    // ----- names -----------------------------------------------------------------------

    /// `a`, `a.b.c`, `.a.b`, or a selection on any other expression.
    fn name_or_select(&mut self, node: &Node) -> Result<Compiled, CompileError> {
        if let Some((segments, absolute, root_pos)) = name_chain_at(node) {
            if absolute || self.local_depth(segments[0]).is_none() {
                return self.global_name(&segments, root_pos, node.pos);
            }
            let depth = self.local_depth(segments[0]).unwrap_or(0);
            let mut compiled = Compiled::new(
                func(move |f| f.local(depth)),
                None,
                Deps {
                    env: false,
                    locals: depth + 1,
                },
            );
            for field in &segments[1..] {
                compiled = self.select_on(compiled, field).folded();
            }
            return Ok(compiled);
        }
        match &node.kind {
            Kind::Select { operand, field } => {
                let operand = self.compile(operand)?;
                Ok(self.select_on(operand, field))
            }
            _ => Err(CompileError::Unsupported {
                construct: "this identifier".to_owned(),
                position: node.pos,
            }),
        }
    }

    fn local_depth(&self, name: &str) -> Option<usize> {
        self.locals.iter().rev().position(|local| local == name)
    }

    /// A name that is not a comprehension variable.
    /// `root_pos` is where the name starts, `pos` where its last selection is.
    fn global_name(
        &mut self,
        segments: &[&str],
        root_pos: Position,
        pos: Position,
    ) -> Result<Compiled, CompileError> {
        match self.env {
            Env::Request { .. } => {
                if let Some(root) = Attr::root(segments[0]) {
                    let (attr, used) = resolve_attr(root, segments, pos)?;
                    let mut compiled = self.read_attr(attr, pos)?;
                    for field in &segments[used..] {
                        compiled = self.select_on(compiled, field);
                    }
                    return Ok(compiled);
                }
            }
            #[cfg(test)]
            Env::Declared { names } => {
                for len in (1..=segments.len()).rev() {
                    let name = segments[..len].join(".");
                    if let Some(slot) = names.iter().position(|n| *n == name) {
                        let mut compiled = Compiled::new(
                            func(move |f| f.binding(slot)),
                            None,
                            Deps {
                                env: true,
                                locals: 0,
                            },
                        );
                        for field in &segments[len..] {
                            compiled = self.select_on(compiled, field);
                        }
                        return Ok(compiled);
                    }
                }
            }
        }
        if let Some(ty) = Type::from_name(segments[0]) {
            let mut compiled = Compiled::constant(Value::Type(ty));
            for field in &segments[1..] {
                compiled = self.select_on(compiled, field).folded();
            }
            return Ok(compiled);
        }
        Err(CompileError::UnknownVariable {
            name: segments[0].to_owned(),
            position: root_pos,
            known: self.known_variables(),
        })
    }

    fn known_variables(&self) -> String {
        let mut names: Vec<String> = match self.env {
            Env::Request { .. } => ROOTS.iter().map(|(n, _)| (*n).to_owned()).collect(),
            #[cfg(test)]
            Env::Declared { names } => names.clone(),
        };
        names.extend(self.locals.iter().cloned());
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }

    /// Reads a request attribute, checking that it can exist where it is read.
    fn read_attr(&mut self, attr: Attr, pos: Position) -> Result<Compiled, CompileError> {
        self.check_tool_access(attr, pos)?;
        self.refs = self.refs.union(attr.refs());
        let mut compiled = Compiled::new(
            func(move |f| attr.read(f.request()?)),
            attr.static_type(),
            Deps {
                env: true,
                locals: 0,
            },
        );
        compiled.attr = Some(attr);
        Ok(compiled)
    }

    fn check_tool_access(&self, attr: Attr, pos: Position) -> Result<(), CompileError> {
        let route_excludes_mcp = matches!(
            self.env,
            Env::Request {
                route: Some(RouteKind::Llm | RouteKind::Other)
            }
        );
        if (attr.is_tool() || (attr.is_mcp() && route_excludes_mcp))
            && let Some(reason) = &self.no_tool_call
        {
            return Err(CompileError::NoToolCall {
                attribute: attr.path().to_owned(),
                position: pos,
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    /// `compiled.field`.
    fn select_on(&mut self, compiled: Compiled, field: &str) -> Compiled {
        let deps = compiled.deps;
        if compiled.attr == Some(Attr::RequestHeaders)
            && let Some(lookup) = header_lookup(field)
        {
            return lookup;
        }
        let field: Arc<str> = Arc::from(field);
        Compiled::new(
            func(move |f| ops::select(&compiled.eval(f)?, &field)),
            None,
            deps,
        )
        .folded()
    }

    /// `has(operand.field)`.
    fn has(
        &mut self,
        operand: &Node,
        field: &str,
        pos: Position,
    ) -> Result<Compiled, CompileError> {
        if let (Env::Request { .. }, Some((segments, absolute))) = (self.env, name_chain(operand))
            && (absolute || self.local_depth(segments[0]).is_none())
            && let Some(root) = Attr::root(segments[0])
        {
            let (attr, used) = resolve_attr(root, &segments, pos)?;
            if used == segments.len() && attr.is_object() {
                let mut full = segments.clone();
                full.push(field);
                let (child, _) = resolve_attr(root, &full, pos)?;
                self.refs = self.refs.union(child.refs());
                return Ok(Compiled::new(
                    func(move |f| child.present(f.request()?).map(Value::Bool)),
                    Some(Type::Bool),
                    Deps {
                        env: true,
                        locals: 0,
                    },
                ));
            }
        }
        let operand = self.compile(operand)?;
        let deps = operand.deps;
        let field: Arc<str> = Arc::from(field);
        Ok(Compiled::new(
            func(move |f| ops::has(&operand.eval(f)?, &field).map(Value::Bool)),
            Some(Type::Bool),
            deps,
        ))
    }

    // ----- operators ---------------------------------------------------------------------

    fn binary(&mut self, op: BinaryOp, lhs: &Node, rhs: &Node) -> Result<Compiled, CompileError> {
        let lhs = self.compile(lhs)?;
        let rhs = self.compile(rhs)?;
        let deps = lhs.deps.join(rhs.deps);
        let ty = binary_type(op, lhs.ty, rhs.ty);

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
    fn logic(&mut self, and: bool, lhs: &Node, rhs: &Node) -> Result<Compiled, CompileError> {
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

    fn conditional(
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

    // ----- comprehensions ----------------------------------------------------------------

    fn comprehension(&mut self, c: &Comprehension) -> Result<Compiled, CompileError> {
        let range = self.compile(&c.range)?;
        self.locals.push(c.var.clone());
        let body = self.compile(&c.body);
        let filter = c.filter.as_ref().map(|f| self.compile(f)).transpose();
        self.locals.pop();
        let (body, filter) = (body?, filter?);
        let inner = filter
            .as_ref()
            .map_or(body.deps, |f| f.deps.join(body.deps));
        let deps = range.deps.join(Deps {
            env: inner.env,
            locals: inner.locals.saturating_sub(1),
        });
        let kind = c.kind;
        let ty = Some(if kind == MacroKind::Map {
            Type::List
        } else {
            Type::Bool
        });
        Ok(Compiled::new(
            func(move |f| {
                let items = Items::of(range.eval(f)?)?;
                match kind {
                    MacroKind::All | MacroKind::Exists => {
                        // `all` stops at the first false, `exists` at the first true; errors
                        // are kept and only reported if nothing decided.
                        let deciding = kind == MacroKind::Exists;
                        let mut error: Option<EvalError> = None;
                        for i in 0..items.len() {
                            let item = items.get(i);
                            let frame = Frame {
                                act: f.act,
                                local: Some((&item, f)),
                            };
                            match body.eval(&frame) {
                                Ok(Value::Bool(b)) if b == deciding => {
                                    return Ok(Value::Bool(deciding));
                                }
                                Ok(Value::Bool(_)) => {}
                                Ok(other) => {
                                    keep_error(
                                        &mut error,
                                        EvalError::no_overload(
                                            if deciding { "exists" } else { "all" },
                                            &[other.type_of()],
                                        ),
                                    );
                                }
                                Err(e) => keep_error(&mut error, e),
                            }
                        }
                        match error {
                            Some(e) => Err(e),
                            None => Ok(Value::Bool(!deciding)),
                        }
                    }
                    MacroKind::ExistsOne => {
                        let mut count = 0usize;
                        for i in 0..items.len() {
                            let item = items.get(i);
                            let frame = Frame {
                                act: f.act,
                                local: Some((&item, f)),
                            };
                            match body.eval(&frame)? {
                                Value::Bool(true) => count += 1,
                                Value::Bool(false) => {}
                                other => {
                                    return Err(EvalError::no_overload(
                                        "exists_one",
                                        &[other.type_of()],
                                    ));
                                }
                            }
                        }
                        Ok(Value::Bool(count == 1))
                    }
                    MacroKind::Map => {
                        let mut out = Vec::with_capacity(items.len());
                        for i in 0..items.len() {
                            let item = items.get(i);
                            let frame = Frame {
                                act: f.act,
                                local: Some((&item, f)),
                            };
                            if let Some(filter) = &filter {
                                match filter.eval(&frame)? {
                                    Value::Bool(true) => {}
                                    Value::Bool(false) => continue,
                                    other => {
                                        return Err(EvalError::no_overload(
                                            "filter",
                                            &[other.type_of()],
                                        ));
                                    }
                                }
                            }
                            out.push(body.eval(&frame)?);
                        }
                        Ok(Value::List(List::from_values(out)))
                    }
                }
            }),
            ty,
            deps,
        ))
    }

    /// The two-variable macros: `range.all(i, v, p)`, `exists`, `existsOne`,
    /// `transformList(i, v, [filter,] f)` and `transformMap(k, v, [filter,] f)`. Over a list the
    /// variables are the index and the element, over a map the key and the value.
    pub(crate) fn comprehension2(
        &mut self,
        kind: Comprehension2,
        range: &Node,
        vars: [String; 2],
        filter: Option<&Node>,
        body: &Node,
    ) -> Result<Compiled, CompileError> {
        let range = self.compile(range)?;
        let [first, second] = vars;
        self.locals.push(first);
        self.locals.push(second);
        let filter = filter.map(|f| self.compile(f)).transpose();
        let body = self.compile(body);
        self.locals.truncate(self.locals.len() - 2);
        let (filter, body) = (filter?, body?);
        let inner = filter
            .as_ref()
            .map_or(body.deps, |f| f.deps.join(body.deps));
        let deps = range.deps.join(Deps {
            env: inner.env,
            locals: inner.locals.saturating_sub(2),
        });
        let ty = Some(match kind {
            Comprehension2::TransformList => Type::List,
            Comprehension2::TransformMap => Type::Map,
            _ => Type::Bool,
        });
        Ok(Compiled::new(
            func(move |f| {
                let pairs = Pairs::of(range.eval(f)?)?;
                let mut error: Option<EvalError> = None;
                let mut count = 0usize;
                let mut out = Vec::new();
                for i in 0..pairs.len() {
                    let (key, value) = pairs.get(i);
                    let outer = Frame {
                        act: f.act,
                        local: Some((&key, f)),
                    };
                    let frame = Frame {
                        act: f.act,
                        local: Some((&value, &outer)),
                    };
                    match kind {
                        Comprehension2::All | Comprehension2::Exists => {
                            let deciding = kind == Comprehension2::Exists;
                            match body.eval(&frame) {
                                Ok(Value::Bool(b)) if b == deciding => {
                                    return Ok(Value::Bool(deciding));
                                }
                                Ok(Value::Bool(_)) => {}
                                Ok(other) => keep_error(
                                    &mut error,
                                    EvalError::no_overload(
                                        if deciding { "exists" } else { "all" },
                                        &[other.type_of()],
                                    ),
                                ),
                                Err(e) => keep_error(&mut error, e),
                            }
                        }
                        Comprehension2::ExistsOne => match body.eval(&frame)? {
                            Value::Bool(true) => count += 1,
                            Value::Bool(false) => {}
                            other => {
                                return Err(EvalError::no_overload(
                                    "existsOne",
                                    &[other.type_of()],
                                ));
                            }
                        },
                        Comprehension2::TransformList | Comprehension2::TransformMap => {
                            if let Some(filter) = &filter {
                                match filter.eval(&frame)? {
                                    Value::Bool(true) => {}
                                    Value::Bool(false) => continue,
                                    other => {
                                        return Err(EvalError::no_overload(
                                            "transform",
                                            &[other.type_of()],
                                        ));
                                    }
                                }
                            }
                            let mapped = body.eval(&frame)?;
                            out.push((key, mapped));
                        }
                    }
                }
                match kind {
                    Comprehension2::All | Comprehension2::Exists => match error {
                        Some(e) => Err(e),
                        None => Ok(Value::Bool(kind == Comprehension2::All)),
                    },
                    Comprehension2::ExistsOne => Ok(Value::Bool(count == 1)),
                    Comprehension2::TransformList => Ok(Value::List(List::from_values(
                        out.into_iter().map(|(_, v)| v).collect(),
                    ))),
                    Comprehension2::TransformMap => ops::map_of(out),
                }
            }),
            ty,
            deps,
        ))
    }

    // ----- calls -------------------------------------------------------------------------

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

/// The dotted name a node spells and whether it starts with a dot.
fn name_chain(node: &Node) -> Option<(Vec<&str>, bool)> {
    name_chain_at(node).map(|(segments, absolute, _)| (segments, absolute))
}

/// Like [`name_chain`], with the position of the name's first segment.
fn name_chain_at(node: &Node) -> Option<(Vec<&str>, bool, Position)> {
    let mut segments = Vec::new();
    let mut current = node;
    loop {
        match &current.kind {
            Kind::Ident { name, absolute } => {
                segments.push(name.as_str());
                segments.reverse();
                return Some((segments, *absolute, current.pos));
            }
            Kind::Select { operand, field } => {
                segments.push(field.as_str());
                current = operand;
            }
            _ => return None,
        }
    }
}

/// Walks `segments` down the attribute tree from `root`: the attribute reached and how many
/// segments it used. A field an object does not have is an error.
fn resolve_attr(
    root: Attr,
    segments: &[&str],
    pos: Position,
) -> Result<(Attr, usize), CompileError> {
    let mut attr = root;
    let mut used = 1;
    while used < segments.len() && attr.is_object() {
        match attr.child(segments[used]) {
            Some(child) => {
                attr = child;
                used += 1;
            }
            None => {
                return Err(CompileError::UnknownAttribute {
                    path: segments[..=used].join("."),
                    position: pos,
                    object: attr.path().to_owned(),
                    known: attr
                        .children()
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    Ok((attr, used))
}

/// `request.headers[name]` as one lookup with the header name parsed now; `None` if `name` is
/// not a valid header name (the generic map lookup then reports it missing).
fn header_lookup(name: &str) -> Option<Compiled> {
    let header = http::header::HeaderName::from_bytes(name.as_bytes()).ok()?;
    let key: Arc<str> = Arc::from(name);
    let mut compiled = Compiled::new(
        func(move |f| {
            header_value(f.request()?.attrs.headers(), &header)
                .ok_or_else(|| EvalError::NoSuchKey(Arc::clone(&key)))
        }),
        Some(Type::String),
        Deps {
            env: true,
            locals: 0,
        },
    );
    compiled.attr = None;
    Some(compiled)
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

/// Keeps the first error, unless a later one is an unknown.
fn keep_error(slot: &mut Option<EvalError>, error: EvalError) {
    match slot {
        None => *slot = Some(error),
        Some(existing) if !existing.is_unknown() && error.is_unknown() => *slot = Some(error),
        Some(_) => {}
    }
}

/// The two-variable macros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comprehension2 {
    All,
    Exists,
    ExistsOne,
    TransformList,
    TransformMap,
}

/// The pairs a two-variable comprehension iterates: (index, element) of a list, (key, value)
/// of a map.
enum Pairs<'a> {
    List(List<'a>),
    Entries(Vec<(Value<'a>, Value<'a>)>),
}

impl<'a> Pairs<'a> {
    fn of(range: Value<'a>) -> Result<Self, EvalError> {
        match range {
            Value::List(list) => Ok(Pairs::List(list)),
            Value::Map(map) => Ok(Pairs::Entries(map.entries())),
            other => Err(EvalError::no_overload("comprehension", &[other.type_of()])),
        }
    }

    fn len(&self) -> usize {
        match self {
            Pairs::List(list) => list.len(),
            Pairs::Entries(entries) => entries.len(),
        }
    }

    fn get(&self, i: usize) -> (Value<'a>, Value<'a>) {
        match self {
            Pairs::List(list) => (
                Value::Int(i64::try_from(i).unwrap_or(i64::MAX)),
                list.get(i).unwrap_or(Value::Null),
            ),
            Pairs::Entries(entries) => entries
                .get(i)
                .cloned()
                .unwrap_or((Value::Null, Value::Null)),
        }
    }
}

/// The elements a comprehension iterates: a list's elements or a map's keys.
enum Items<'a> {
    List(List<'a>),
    Keys(Vec<Value<'a>>),
}

impl<'a> Items<'a> {
    fn of(range: Value<'a>) -> Result<Self, EvalError> {
        match range {
            Value::List(list) => Ok(Items::List(list)),
            Value::Map(map) => Ok(Items::Keys(map.keys())),
            other => Err(EvalError::no_overload("comprehension", &[other.type_of()])),
        }
    }

    fn len(&self) -> usize {
        match self {
            Items::List(list) => list.len(),
            Items::Keys(keys) => keys.len(),
        }
    }

    fn get(&self, i: usize) -> Value<'a> {
        match self {
            Items::List(list) => list.get(i).unwrap_or(Value::Null),
            Items::Keys(keys) => keys.get(i).cloned().unwrap_or(Value::Null),
        }
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
            (LiteralSet::Values(items), value) => {
                items.iter().any(|item| super::value::equals(item, value))
            }
        }
    }
}
