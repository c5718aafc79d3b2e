//! The parser front end: CEL source text to our [`ast`](super::ast).
//!
//! Parsing is delegated to the `cel` crate (the maintained successor of `cel-parser`), whose
//! ANTLR-generated parser follows the CEL grammar exactly, reports errors with line and column,
//! and expands the standard macros. This module is the only place that sees its types: it
//! lowers the parsed tree into ours, recognising the macro expansions and rejecting what we
//! do not support, so another parser can replace it without touching the compiler.

use std::sync::Arc;

use cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue, SelectExpr,
};
use cel::parser::Parser;

use super::ast::{BinaryOp, Comprehension, Kind, MacroKind, Node, Position, UnaryOp};
use super::error::CompileError;

/// Deepest nesting accepted; deeper trees are rejected rather than risking the stack.
pub(crate) const MAX_DEPTH: usize = 96;

/// The name the `cel` parser gives the accumulator of a macro expansion.
const ACCUMULATOR: &str = "@result";

/// Parses `source` into our tree.
pub(crate) fn parse(source: &str) -> Result<Node, CompileError> {
    let parsed = Parser::new()
        .enable_ident_escape_syntax(true)
        .max_recursion_depth(MAX_DEPTH as u16)
        .parse_with_source_info(source);
    let (expr, info) = match parsed {
        Ok(parsed) => parsed,
        Err(errors) => {
            let first = errors.errors.first();
            let (line, column) = first.map_or((1, 1), |e| e.pos);
            return Err(CompileError::Syntax {
                position: Position {
                    line: u32::try_from(line.max(1)).unwrap_or(1),
                    column: u32::try_from(column.max(1)).unwrap_or(1),
                },
                message: first.map_or_else(
                    || "invalid expression".to_owned(),
                    |e| e.msg.trim_start_matches("Syntax error: ").to_owned(),
                ),
            });
        }
    };
    let lowering = Lowering {
        lines: LineIndex::new(source),
        info: &info,
    };
    lowering.lower(&expr, 0)
}

/// Byte offsets of line starts, to turn an offset into a line and a column.
struct LineIndex<'s> {
    source: &'s str,
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    fn new(source: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { source, starts }
    }

    fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.source.len());
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self
            .source
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
        }
    }
}

struct Lowering<'a> {
    lines: LineIndex<'a>,
    info: &'a cel::common::ast::SourceInfo,
}

impl Lowering<'_> {
    fn pos(&self, expr: &IdedExpr) -> Position {
        self.info
            .offset_for(expr.id)
            .map_or(Position { line: 1, column: 1 }, |(start, _)| {
                self.lines.position(start as usize)
            })
    }

    fn unsupported(&self, expr: &IdedExpr, construct: impl Into<String>) -> CompileError {
        CompileError::Unsupported {
            construct: construct.into(),
            position: self.pos(expr),
        }
    }

    fn lower(&self, expr: &IdedExpr, depth: usize) -> Result<Node, CompileError> {
        if depth > MAX_DEPTH {
            return Err(CompileError::TooDeep {
                position: self.pos(expr),
                limit: MAX_DEPTH,
            });
        }
        let pos = self.pos(expr);
        let kind = match &expr.expr {
            Expr::Literal(literal) => match literal {
                LiteralValue::Null => Kind::Null,
                LiteralValue::Boolean(b) => Kind::Bool(*b.inner()),
                LiteralValue::Int(i) => Kind::Int(*i.inner()),
                LiteralValue::UInt(u) => Kind::Uint(*u.inner()),
                LiteralValue::Double(d) => Kind::Double(*d.inner()),
                LiteralValue::String(s) => Kind::String(Arc::from(s.inner())),
                LiteralValue::Bytes(b) => Kind::Bytes(Arc::from(b.inner())),
            },
            Expr::Ident(name) => match name.strip_prefix('.') {
                Some(name) => Kind::Ident {
                    name: name.to_owned(),
                    absolute: true,
                },
                None => Kind::Ident {
                    name: name.clone(),
                    absolute: false,
                },
            },
            Expr::Select(select) => self.select(select, depth)?,
            Expr::Call(call) => self.call(expr, call, depth)?,
            Expr::List(list) => {
                if !list.optional_indices.is_empty() {
                    return Err(self.unsupported(expr, "optional list elements (`?x`)"));
                }
                Kind::List(
                    list.elements
                        .iter()
                        .map(|e| self.lower(e, depth + 1))
                        .collect::<Result<_, _>>()?,
                )
            }
            Expr::Map(map) => {
                let mut entries = Vec::with_capacity(map.entries.len());
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) if !e.optional => entries.push((
                            self.lower(&e.key, depth + 1)?,
                            self.lower(&e.value, depth + 1)?,
                        )),
                        EntryExpr::MapEntry(_) => {
                            return Err(self.unsupported(expr, "optional map entries (`?k: v`)"));
                        }
                        EntryExpr::StructField(_) => {
                            return Err(self.unsupported(expr, "message fields in a map literal"));
                        }
                    }
                }
                Kind::Map(entries)
            }
            Expr::Struct(s) => {
                return Err(self.unsupported(
                    expr,
                    format!("message construction `{}{{...}}`", s.type_name),
                ));
            }
            Expr::Comprehension(c) => self.comprehension(expr, c, depth)?,
            Expr::Unspecified => return Err(self.unsupported(expr, "an empty expression")),
        };
        Ok(Node::new(kind, pos))
    }

    fn select(&self, select: &SelectExpr, depth: usize) -> Result<Kind, CompileError> {
        let operand = Box::new(self.lower(&select.operand, depth + 1)?);
        let field = select.field.clone();
        Ok(if select.test {
            Kind::Has { operand, field }
        } else {
            Kind::Select { operand, field }
        })
    }

    fn call(&self, expr: &IdedExpr, call: &CallExpr, depth: usize) -> Result<Kind, CompileError> {
        let arity = |n: usize| -> Result<(), CompileError> {
            if call.args.len() == n && call.target.is_none() {
                Ok(())
            } else {
                Err(self.unsupported(
                    expr,
                    format!(
                        "operator `{}` with {} operands",
                        call.func_name,
                        call.args.len()
                    ),
                ))
            }
        };
        let arg = |i: usize| -> Result<Box<Node>, CompileError> {
            Ok(Box::new(self.lower(&call.args[i], depth + 1)?))
        };
        let binary = |op: BinaryOp| -> Result<Kind, CompileError> {
            arity(2)?;
            Ok(Kind::Binary(op, arg(0)?, arg(1)?))
        };
        match call.func_name.as_str() {
            "_&&_" => {
                arity(2)?;
                Ok(Kind::And(arg(0)?, arg(1)?))
            }
            "_||_" => {
                arity(2)?;
                Ok(Kind::Or(arg(0)?, arg(1)?))
            }
            "_?_:_" => {
                arity(3)?;
                Ok(Kind::Conditional(arg(0)?, arg(1)?, arg(2)?))
            }
            "!_" => {
                arity(1)?;
                Ok(Kind::Unary(UnaryOp::Not, arg(0)?))
            }
            "-_" => {
                arity(1)?;
                Ok(Kind::Unary(UnaryOp::Negate, arg(0)?))
            }
            "_+_" => binary(BinaryOp::Add),
            "_-_" => binary(BinaryOp::Sub),
            "_*_" => binary(BinaryOp::Mul),
            "_/_" => binary(BinaryOp::Div),
            "_%_" => binary(BinaryOp::Rem),
            "_==_" => binary(BinaryOp::Eq),
            "_!=_" => binary(BinaryOp::Ne),
            "_<_" => binary(BinaryOp::Lt),
            "_<=_" => binary(BinaryOp::Le),
            "_>_" => binary(BinaryOp::Gt),
            "_>=_" => binary(BinaryOp::Ge),
            "@in" => binary(BinaryOp::In),
            "_[_]" => binary(BinaryOp::Index),
            "_[?_]" => Err(self.unsupported(expr, "optional index `x[?k]`")),
            "_?._" => Err(self.unsupported(expr, "optional selection `x.?f`")),
            name if name.starts_with('@') || name.starts_with('_') && name.ends_with('_') => {
                Err(self.unsupported(expr, format!("internal operator `{name}`")))
            }
            name => Ok(Kind::Call {
                function: name.to_owned(),
                target: match &call.target {
                    Some(target) => Some(Box::new(self.lower(target, depth + 1)?)),
                    None => None,
                },
                args: call
                    .args
                    .iter()
                    .map(|a| self.lower(a, depth + 1))
                    .collect::<Result<_, _>>()?,
            }),
        }
    }

    /// Recognises the expansion of a standard macro; anything else is unsupported.
    fn comprehension(
        &self,
        expr: &IdedExpr,
        c: &ComprehensionExpr,
        depth: usize,
    ) -> Result<Kind, CompileError> {
        // Two-variable macros reach us as calls (the parser does not expand them); an expanded
        // one would come from another macro set.
        if c.iter_var2.is_some() {
            return Err(self.unsupported(
                expr,
                "an expanded two-variable comprehension that is not a standard macro",
            ));
        }
        if c.accu_var != ACCUMULATOR || c.iter_var.starts_with('@') {
            return Err(self.unsupported(expr, "a comprehension that is not a standard macro"));
        }
        let step = call_of(&c.loop_step);
        let (kind, body, filter) = match (&c.accu_init.expr, step) {
            // exists: init false, step `@result || p`.
            (Expr::Literal(LiteralValue::Boolean(b)), Some(("_||_", [accu, p])))
                if !*b.inner() && is_accu(accu) =>
            {
                (MacroKind::Exists, p, None)
            }
            // all: init true, step `@result && p`.
            (Expr::Literal(LiteralValue::Boolean(b)), Some(("_&&_", [accu, p])))
                if *b.inner() && is_accu(accu) =>
            {
                (MacroKind::All, p, None)
            }
            // exists_one: init 0, step `p ? @result + 1 : @result`.
            (Expr::Literal(LiteralValue::Int(i)), Some(("_?_:_", [p, inc, same])))
                if *i.inner() == 0 && is_accu(same) && is_increment(inc) =>
            {
                (MacroKind::ExistsOne, p, None)
            }
            // map(x, f): init [], step `@result + [f]`.
            (Expr::List(init), Some(("_+_", _))) if init.elements.is_empty() => {
                match appended(&c.loop_step) {
                    Some(f) => (MacroKind::Map, f, None),
                    None => {
                        return Err(
                            self.unsupported(expr, "a comprehension that is not a standard macro")
                        );
                    }
                }
            }
            // map(x, p, f) and filter(x, p): step `p ? @result + [f] : @result`.
            (Expr::List(init), Some(("_?_:_", [p, append, same])))
                if init.elements.is_empty() && is_accu(same) =>
            {
                match appended(append) {
                    Some(f) => (MacroKind::Map, f, Some(p)),
                    None => {
                        return Err(
                            self.unsupported(expr, "a comprehension that is not a standard macro")
                        );
                    }
                }
            }
            _ => return Err(self.unsupported(expr, "a comprehension that is not a standard macro")),
        };
        Ok(Kind::Comprehension(Box::new(Comprehension {
            kind,
            range: self.lower(&c.iter_range, depth + 1)?,
            var: c.iter_var.clone(),
            body: self.lower(body, depth + 1)?,
            filter: match filter {
                Some(f) => Some(self.lower(f, depth + 1)?),
                None => None,
            },
        })))
    }
}

fn call_of(expr: &IdedExpr) -> Option<(&str, &[IdedExpr])> {
    match &expr.expr {
        Expr::Call(call) if call.target.is_none() => Some((call.func_name.as_str(), &call.args)),
        _ => None,
    }
}

fn is_accu(expr: &IdedExpr) -> bool {
    matches!(&expr.expr, Expr::Ident(name) if name == ACCUMULATOR)
}

/// `@result + 1`.
fn is_increment(expr: &IdedExpr) -> bool {
    matches!(call_of(expr), Some(("_+_", [accu, one]))
        if is_accu(accu) && matches!(&one.expr, Expr::Literal(LiteralValue::Int(i)) if *i.inner() == 1))
}

/// The `f` of `@result + [f]`.
fn appended(expr: &IdedExpr) -> Option<&IdedExpr> {
    match call_of(expr) {
        Some(("_+_", [accu, list])) if is_accu(accu) => match &list.expr {
            Expr::List(list) if list.elements.len() == 1 && list.optional_indices.is_empty() => {
                list.elements.first()
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(source: &str) -> Kind {
        parse(source).unwrap().kind
    }

    #[test]
    fn macros_are_recognised() {
        for (source, expected) in [
            ("[1].all(x, x > 0)", MacroKind::All),
            ("[1].exists(x, x > 0)", MacroKind::Exists),
            ("[1].exists_one(x, x > 0)", MacroKind::ExistsOne),
            ("[1].existsOne(x, x > 0)", MacroKind::ExistsOne),
            ("[1].map(x, x + 1)", MacroKind::Map),
        ] {
            match kind(source) {
                Kind::Comprehension(c) => {
                    assert_eq!(c.kind, expected, "{source}");
                    assert_eq!(c.var, "x");
                    assert!(c.filter.is_none());
                }
                other => panic!("{source}: {other:?}"),
            }
        }
        for source in ["[1].filter(x, x > 0)", "[1].map(x, x > 0, x * 2)"] {
            match kind(source) {
                Kind::Comprehension(c) => {
                    assert_eq!(c.kind, MacroKind::Map, "{source}");
                    assert!(c.filter.is_some(), "{source}");
                }
                other => panic!("{source}: {other:?}"),
            }
        }
    }

    #[test]
    fn has_and_absolute_identifiers() {
        assert!(matches!(kind("has(a.b)"), Kind::Has { ref field, .. } if field == "b"));
        assert!(matches!(kind(".y"), Kind::Ident { ref name, absolute: true } if name == "y"));
        assert!(
            matches!(kind("{'a-b': 1}.`a-b`"), Kind::Select { ref field, .. } if field == "a-b")
        );
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        match parse("a.b ==") {
            Err(CompileError::Syntax { position, message }) => {
                assert_eq!(position, Position { line: 1, column: 7 });
                assert!(message.contains("mismatched input"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match parse("1 +\n  (2 &&& x)") {
            Err(CompileError::Syntax { position, .. }) => assert_eq!(position.line, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn node_positions_count_characters() {
        // `é` is two bytes; the `+` is the fifth character.
        let node = parse("'é' + x").unwrap();
        assert_eq!(node.pos, Position { line: 1, column: 5 });
        let node = parse("true &&\n  x.y").unwrap();
        match node.kind {
            Kind::And(_, rhs) => assert_eq!(rhs.pos, Position { line: 2, column: 4 }),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsupported_constructs_are_named() {
        for (source, needle) in [
            ("Foo{a: 1}", "message construction"),
            // The parser leaves these as calls; the compiler rejects them.
            ("[1].all(i, v, v > 0)", ""),
            ("[1].transformList(i, v, v)", ""),
        ] {
            match parse(source) {
                Err(CompileError::Unsupported { construct, .. }) => {
                    assert!(construct.contains(needle), "{source}: {construct}")
                }
                Ok(node) if needle.is_empty() => {
                    assert!(matches!(node.kind, Kind::Call { .. }))
                }
                other => panic!("{source}: {other:?}"),
            }
        }
        assert!(matches!(parse("a.?b"), Err(CompileError::Syntax { .. })));
    }
}
