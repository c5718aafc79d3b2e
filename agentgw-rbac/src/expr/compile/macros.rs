//! The comprehension macros: `all`, `exists`, `exists_one`, `map`, `filter` and their
//! two-variable forms, evaluated over lists and maps with errors absorbed as CEL says.

use super::super::ast::{Comprehension, MacroKind, Node};
use super::super::error::{CompileError, EvalError};
use super::super::ops;
use super::super::value::{List, Type, Value};
use super::{Compiled, Compiler, Deps, Frame, func};

impl<'e> Compiler<'e> {
    pub(super) fn comprehension(&mut self, c: &Comprehension) -> Result<Compiled, CompileError> {
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
