//! What a compiled node is, and what it is evaluated against: the activation, the stack of
//! comprehension variables, and constant folding.

use super::super::attrs::{Attr, RequestVars};
use super::super::error::EvalError;
use super::super::value::{Type, Value};
use super::{EvalFn, func};

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
    pub(super) act: &'f Activation<'a>,
    pub(super) local: Option<(&'f Value<'a>, &'f Frame<'a, 'f>)>,
}

impl<'a, 'f> Frame<'a, 'f> {
    pub(crate) fn new(act: &'f Activation<'a>) -> Self {
        Frame { act, local: None }
    }

    pub(super) fn local(&self, depth: usize) -> Result<Value<'a>, EvalError> {
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
    pub(super) fn binding(&self, slot: usize) -> Result<Value<'a>, EvalError> {
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

    pub(super) fn is_constant(self) -> bool {
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
    pub(crate) fn constant(value: Value<'static>) -> Self {
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
    pub(super) fn folded(self) -> Self {
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
