//! Names: comprehension variables, request attributes resolved to direct accessors at load
//! time, field selection and `has()`.

use std::sync::Arc;

use agentgw_core::rejection::RouteKind;

use super::super::ast::{Kind, Node, Position};
use super::super::attrs::{Attr, ROOTS};
use super::super::error::{CompileError, EvalError};
use super::super::ops;
use super::super::value::{Type, Value, header_value};
use super::{Compiled, Compiler, Deps, Env, func};

impl<'e> Compiler<'e> {
    /// `a`, `a.b.c`, `.a.b`, or a selection on any other expression.
    pub(super) fn name_or_select(&mut self, node: &Node) -> Result<Compiled, CompileError> {
        if let Some((segments, absolute, root_pos)) = name_chain_at(node) {
            if absolute || self.local_depth(segments[0]).is_none() {
                return self.global_name(&segments, absolute, root_pos, node.pos);
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

    pub(super) fn local_depth(&self, name: &str) -> Option<usize> {
        self.locals.iter().rev().position(|local| local == name)
    }

    /// A name that is not a comprehension variable.
    /// `root_pos` is where the name starts, `pos` where its last selection is.
    fn global_name(
        &mut self,
        segments: &[&str],
        // Only the declared variables of the tests live in namespaces.
        #[cfg_attr(not(test), allow(unused_variables))] absolute: bool,
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
            Env::Declared { names, container } => {
                // CEL's name resolution: the longest qualified name that is declared wins,
                // tried in the container, then in each enclosing namespace, then as written
                // (with container `x.y`, `a.b` is `x.y.a.b`, `x.a.b`, `a.b`, then `x.y.a`,
                // ... with `.b` selected). A leading dot skips the container.
                let container = if absolute { "" } else { container.as_str() };
                let found = (1..=segments.len()).rev().find_map(|len| {
                    let name = segments[..len].join(".");
                    namespaces(container).find_map(|namespace| {
                        let qualified = if namespace.is_empty() {
                            name.clone()
                        } else {
                            format!("{namespace}.{name}")
                        };
                        names
                            .iter()
                            .position(|n| *n == qualified)
                            .map(|slot| (slot, len))
                    })
                });
                if let Some((slot, len)) = found {
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
        // Type names, qualified ones (`google.protobuf.Timestamp`) included.
        for len in (1..=segments.len()).rev() {
            if let Some(ty) = Type::from_name(&segments[..len].join(".")) {
                let mut compiled = Compiled::constant(Value::Type(ty));
                for field in &segments[len..] {
                    compiled = self.select_on(compiled, field).folded();
                }
                return Ok(compiled);
            }
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
            Env::Declared { names, .. } => names.clone(),
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
    pub(super) fn has(
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
}

/// `container` and each namespace enclosing it, innermost first, ending with the root (`""`):
/// `x.y`, `x`, `""`.
#[cfg(test)]
fn namespaces(container: &str) -> impl Iterator<Item = &str> {
    let inner = (!container.is_empty()).then_some(container);
    let enclosing = container
        .char_indices()
        .rev()
        .filter(|(_, c)| *c == '.')
        .map(move |(i, _)| &container[..i]);
    inner
        .into_iter()
        .chain(enclosing)
        .chain(std::iter::once(""))
}

/// The dotted name a node spells and whether it starts with a dot.
pub(super) fn name_chain(node: &Node) -> Option<(Vec<&str>, bool)> {
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
pub(super) fn header_lookup(name: &str) -> Option<Compiled> {
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
