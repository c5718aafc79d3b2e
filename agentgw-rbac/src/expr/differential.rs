//! Differential tests: random expressions and bindings, evaluated by our compiler and by the
//! `cel` crate's interpreter (`Program::compile` + `execute`) as the oracle.
//!
//! The generator covers the subset both implement the same way: literals of every scalar
//! type, lists and maps, arithmetic, comparisons, logic with error absorption, the
//! conditional, `in`, indexing, `size`, the string tests, `matches` with a literal pattern and
//! the macros. Where the oracle departs from the CEL specification the generator avoids the
//! construct, and [`oracle_deviates`] documents each case.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::Expression;
use super::value::{List, Map, Str, Value};

/// A generated expression, printed as CEL source.
#[derive(Debug, Clone)]
enum Gen {
    Leaf(String),
    Unary(&'static str, Box<Gen>),
    Binary(&'static str, Box<Gen>, Box<Gen>),
    Cond(Box<Gen>, Box<Gen>, Box<Gen>),
    Call(&'static str, Box<Gen>),
    Method(&'static str, Box<Gen>, Box<Gen>),
    Index(Box<Gen>, Box<Gen>),
    List(Vec<Gen>),
    Macro(&'static str, Box<Gen>, Box<Gen>),
}

impl Gen {
    fn source(&self) -> String {
        match self {
            Gen::Leaf(s) => s.clone(),
            Gen::Unary(op, e) => format!("{op}({})", e.source()),
            Gen::Binary(op, l, r) => format!("({} {op} {})", l.source(), r.source()),
            Gen::Cond(c, t, e) => format!("({} ? {} : {})", c.source(), t.source(), e.source()),
            Gen::Call(f, e) => format!("{f}({})", e.source()),
            Gen::Method(m, t, a) => format!("{}.{m}({})", t.source(), a.source()),
            Gen::Index(c, k) => format!("{}[{}]", c.source(), k.source()),
            Gen::List(items) => {
                let items: Vec<_> = items.iter().map(Gen::source).collect();
                format!("[{}]", items.join(", "))
            }
            Gen::Macro(m, range, body) => format!("{}.{m}(v, {})", range.source(), body.source()),
        }
    }
}

const VARIABLES: [&str; 9] = ["x", "y", "u", "d", "s", "t", "b", "l", "m"];

fn leaf(options: Vec<&'static str>) -> BoxedStrategy<Gen> {
    prop::sample::select(options)
        .prop_map(|s| Gen::Leaf(s.to_owned()))
        .boxed()
}

fn bx(g: Gen) -> Box<Gen> {
    Box::new(g)
}

// Typed generators: `depth` bounds nesting, `v` says whether a macro variable `v` (an int) is
// in scope. Mostly well-typed, with some mixed-type operands to exercise errors and CEL's
// heterogeneous comparisons.

fn int_e(depth: u32, v: bool) -> BoxedStrategy<Gen> {
    let mut leaves = vec![
        "0",
        "1",
        "2",
        "-3",
        "7",
        "x",
        "y",
        "9223372036854775807",
        "-9223372036854775808",
    ];
    if v {
        leaves.extend(["v", "v"]);
    }
    let leaves = leaf(leaves);
    if depth == 0 {
        return leaves;
    }
    let d = depth - 1;
    prop_oneof![
        4 => leaves,
        3 => (prop::sample::select(vec!["+", "-", "*", "/", "%"]), int_e(d, v), int_e(d, v))
            .prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        1 => int_e(d, v).prop_map(|e| Gen::Unary("-", bx(e))),
        1 => string_e(d, v).prop_map(|e| Gen::Call("size", bx(e))),
        1 => list_e(d, v).prop_map(|e| Gen::Call("size", bx(e))),
        1 => (bool_e(d, v), int_e(d, v), int_e(d, v)).prop_map(|(c, t, e)| Gen::Cond(bx(c), bx(t), bx(e))),
        1 => (list_e(d, v), int_e(d, v)).prop_map(|(l, i)| Gen::Index(bx(l), bx(i))),
        1 => uint_e(d, v).prop_map(|e| Gen::Call("int", bx(e))),
        1 => leaf(vec!["'a'", "'ab'", "'b'", "'z'"]).prop_map(|k| Gen::Index(bx(Gen::Leaf("m".into())), bx(k))),
    ]
    .boxed()
}

fn uint_e(depth: u32, v: bool) -> BoxedStrategy<Gen> {
    let leaves = leaf(vec!["0u", "1u", "3u", "u", "18446744073709551615u"]);
    if depth == 0 {
        return leaves;
    }
    let d = depth - 1;
    prop_oneof![
        3 => leaves,
        2 => (prop::sample::select(vec!["+", "-", "*", "/", "%"]), uint_e(d, v), uint_e(d, v))
            .prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        1 => int_e(d, v).prop_map(|e| Gen::Call("uint", bx(e))),
    ]
    .boxed()
}

fn double_e(depth: u32) -> BoxedStrategy<Gen> {
    let leaves = leaf(vec!["0.0", "1.5", "-2.25", "3.0", "d"]);
    if depth == 0 {
        return leaves;
    }
    let d = depth - 1;
    prop_oneof![
        3 => leaves,
        2 => (prop::sample::select(vec!["+", "-", "*", "/"]), double_e(d), double_e(d))
            .prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
    ]
    .boxed()
}

fn string_e(depth: u32, v: bool) -> BoxedStrategy<Gen> {
    let leaves = leaf(vec!["''", "'a'", "'ab'", "'ba'", "'b'", "s", "t"]);
    if depth == 0 {
        return leaves;
    }
    let d = depth - 1;
    prop_oneof![
        4 => leaves,
        2 => (string_e(d, v), string_e(d, v)).prop_map(|(l, r)| Gen::Binary("+", bx(l), bx(r))),
        1 => (bool_e(d, v), string_e(d, v), string_e(d, v)).prop_map(|(c, t, e)| Gen::Cond(bx(c), bx(t), bx(e))),
        1 => int_e(d, v).prop_map(|e| Gen::Call("string", bx(e))),
    ]
    .boxed()
}

fn list_e(depth: u32, v: bool) -> BoxedStrategy<Gen> {
    let leaves = prop_oneof![
        3 => leaf(vec!["l", "[]", "[1, 2, 3]", "[-1, 0]"]),
        1 => prop::collection::vec(int_e(depth.saturating_sub(1), v), 0..3).prop_map(Gen::List),
    ];
    if depth == 0 {
        return leaves.boxed();
    }
    let d = depth - 1;
    prop_oneof![
        3 => leaves,
        1 => (list_e(d, v), int_e(d, true)).prop_map(|(r, f)| Gen::Macro("map", bx(r), bx(f))),
        1 => (list_e(d, v), bool_e(d, true)).prop_map(|(r, p)| Gen::Macro("filter", bx(r), bx(p))),
        1 => (list_e(d, v), list_e(d, v)).prop_map(|(l, r)| Gen::Binary("+", bx(l), bx(r))),
    ]
    .boxed()
}

fn bool_e(depth: u32, v: bool) -> BoxedStrategy<Gen> {
    let leaves = leaf(vec!["true", "false", "b"]);
    if depth == 0 {
        return leaves;
    }
    let d = depth - 1;
    let cmp = || prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]);
    prop_oneof![
        2 => leaves,
        3 => (cmp(), int_e(d, v), int_e(d, v)).prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        1 => (cmp(), int_e(d, v), uint_e(d, v)).prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        1 => (cmp(), int_e(d, v), double_e(d)).prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        1 => (cmp(), double_e(d), double_e(d)).prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        2 => (cmp(), string_e(d, v), string_e(d, v)).prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        1 => (prop::sample::select(vec!["==", "!="]), string_e(d, v), int_e(d, v))
            .prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        1 => (list_e(d, v), list_e(d, v)).prop_map(|(l, r)| Gen::Binary("==", bx(l), bx(r))),
        3 => (prop::sample::select(vec!["&&", "||"]), bool_e(d, v), bool_e(d, v))
            .prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        1 => bool_e(d, v).prop_map(|e| Gen::Unary("!", bx(e))),
        1 => (bool_e(d, v), bool_e(d, v), bool_e(d, v)).prop_map(|(c, t, e)| Gen::Cond(bx(c), bx(t), bx(e))),
        2 => (int_e(d, v), list_e(d, v)).prop_map(|(e, l)| Gen::Binary("in", bx(e), bx(l))),
        1 => string_e(d, v).prop_map(|k| Gen::Binary("in", bx(k), bx(Gen::Leaf("m".into())))),
        1 => (string_e(d, v), leaf(vec!["['a', 'b']", "['', 'ab', 'ba']"]))
            .prop_map(|(e, l)| Gen::Binary("in", bx(e), bx(l))),
        2 => (prop::sample::select(vec!["startsWith", "endsWith", "contains"]), string_e(d, v), string_e(d, v))
            .prop_map(|(m, t, a)| Gen::Method(m, bx(t), bx(a))),
        1 => (string_e(d, v), leaf(vec!["'^a'", "'b$'", "'a+b'", "''"]))
            .prop_map(|(t, p)| Gen::Method("matches", bx(t), bx(p))),
        2 => (prop::sample::select(vec!["all", "exists", "exists_one"]), list_e(d, v), bool_e(d, true))
            .prop_map(|(m, r, p)| Gen::Macro(m, bx(r), bx(p))),
    ]
    .boxed()
}

/// Any expression: mostly bools (what rules produce), some of every other type.
fn expr() -> BoxedStrategy<Gen> {
    prop_oneof![
        4 => bool_e(3, false),
        1 => int_e(3, false),
        1 => uint_e(2, false),
        1 => double_e(2),
        1 => string_e(2, false),
        1 => list_e(2, false),
    ]
    .boxed()
}

/// Bindings of every variable in [`VARIABLES`]: ints, a uint, a double, strings, a bool, a
/// list of ints and a map from string to int.
#[derive(Debug, Clone)]
struct Bindings {
    x: i64,
    y: i64,
    u: u64,
    d: f64,
    s: String,
    t: String,
    b: bool,
    l: Vec<i64>,
    m: Vec<(String, i64)>,
}

fn bindings() -> impl Strategy<Value = Bindings> {
    let small_string =
        prop::sample::select(vec!["", "a", "ab", "ba", "b", "bab"]).prop_map(str::to_owned);
    (
        prop_oneof![-3i64..4, Just(i64::MAX), Just(i64::MIN)],
        -3i64..4,
        0u64..4,
        prop::sample::select(vec![0.0, 1.5, -2.25, 3.0]),
        small_string.clone(),
        small_string.clone(),
        any::<bool>(),
        prop::collection::vec(-2i64..3, 0..4),
        prop::collection::btree_map(small_string, -2i64..3, 0..3),
    )
        .prop_map(|(x, y, u, d, s, t, b, l, m)| Bindings {
            x,
            y,
            u,
            d,
            s,
            t,
            b,
            l,
            m: m.into_iter().collect(),
        })
}

impl Bindings {
    fn ours(&self) -> Vec<Value<'static>> {
        let string = |s: &str| Value::String(Str::shared(Arc::from(s)));
        vec![
            Value::Int(self.x),
            Value::Int(self.y),
            Value::Uint(self.u),
            Value::Double(self.d),
            string(&self.s),
            string(&self.t),
            Value::Bool(self.b),
            Value::List(List::from_values(
                self.l.iter().map(|i| Value::Int(*i)).collect(),
            )),
            Value::Map(
                Map::from_entries(
                    self.m
                        .iter()
                        .map(|(k, v)| (string(k), Value::Int(*v)))
                        .collect(),
                )
                .expect("distinct keys"),
            ),
        ]
    }

    fn oracle(&self) -> cel::Context<'static, 'static> {
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("x", self.x);
        ctx.add_variable_from_value("y", self.y);
        ctx.add_variable_from_value("u", self.u);
        ctx.add_variable_from_value("d", self.d);
        ctx.add_variable_from_value("s", self.s.clone());
        ctx.add_variable_from_value("t", self.t.clone());
        ctx.add_variable_from_value("b", self.b);
        ctx.add_variable_from_value("l", self.l.clone());
        let map: HashMap<String, i64> = self.m.iter().cloned().collect();
        ctx.add_variable_from_value("m", map);
        ctx
    }
}

/// Whether `ours` is the value the oracle computed, with the same types.
fn same(ours: &Value<'_>, oracle: &cel::Value) -> bool {
    match (ours, oracle) {
        (Value::Null, cel::Value::Null) => true,
        (Value::Bool(a), cel::Value::Bool(b)) => a == b,
        (Value::Int(a), cel::Value::Int(b)) => a == b,
        (Value::Uint(a), cel::Value::UInt(b)) => a == b,
        (Value::Double(a), cel::Value::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
        (Value::String(a), cel::Value::String(b)) => a.as_str() == b.as_str(),
        (Value::List(a), cel::Value::List(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| same(&x, y))
        }
        (Value::Map(a), cel::Value::Map(b)) => {
            a.len() == b.map.len()
                && a.entries().iter().all(|(k, v)| {
                    let key = match k {
                        Value::String(s) => cel::objects::Key::String(Arc::new(s.to_string())),
                        Value::Int(i) => cel::objects::Key::Int(*i),
                        Value::Uint(u) => cel::objects::Key::Uint(*u),
                        Value::Bool(b) => cel::objects::Key::Bool(*b),
                        _ => return false,
                    };
                    b.map.get(&key).is_some_and(|w| same(v, w))
                })
        }
        _ => false,
    }
}

/// Where the `cel` crate departs from the CEL specification, so that comparing with it
/// says nothing: the reason, for a result of the oracle that shows the departure.
fn oracle_deviates(oracle: &Result<cel::Value, cel::ExecutionError>) -> Option<&'static str> {
    match oracle {
        // CEL orders NaN as unordered (`NaN < x` is false); the crate reports no overload for
        // an ordering with a double side when that side is NaN (`0 < 0.0/0.0` too).
        Err(cel::ExecutionError::NoSuchOverload(o))
            if matches!(o.function(), "_<_" | "_<=_" | "_>_" | "_>=_")
                && o.argument_types().iter().any(|t| t == "double") =>
        {
            Some("NaN ordering")
        }
        _ => None,
    }
}

fn check(source: &str, bindings: &Bindings) -> Result<(), TestCaseError> {
    let names = VARIABLES;
    let ours = match Expression::compile_declared(source, &names) {
        Ok(compiled) => {
            let values = bindings.ours();
            compiled.evaluate_bindings(&values).map(|v| v.to_static())
        }
        // Unknown names (a stray `v`) are compile errors for us, run-time errors for the
        // oracle: both fail.
        Err(_) => Err(super::EvalError::Missing("compile error")),
    };
    let oracle = match cel::Program::compile(source) {
        Ok(program) => program.execute(&bindings.oracle()),
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "oracle cannot parse {source}: {e}"
            )));
        }
    };
    if oracle_deviates(&oracle).is_some() {
        return Ok(());
    }
    match (&ours, &oracle) {
        (Ok(a), Ok(b)) if same(a, b) => Ok(()),
        (Err(_), Err(_)) => Ok(()),
        _ => Err(TestCaseError::fail(format!(
            "{source}\n  bindings: {bindings:?}\n  ours:   {ours:?}\n  oracle: {oracle:?}"
        ))),
    }
}

proptest! {
    #[test]
    fn agrees_with_the_cel_interpreter(e in expr(), b in bindings()) {
        check(&e.source(), &b)?;
    }
}

/// The comparison is only worth something if most cases produce values, not errors on both
/// sides: count them over a fixed sample.
#[test]
fn generator_mostly_produces_values() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let (mut values, mut total) = (0, 0);
    for _ in 0..150 {
        let e = expr().new_tree(&mut runner).unwrap().current();
        let b = bindings().new_tree(&mut runner).unwrap().current();
        let source = e.source();
        total += 1;
        if let Ok(compiled) = Expression::compile_declared(&source, &VARIABLES) {
            let bound = b.ours();
            if compiled.evaluate_bindings(&bound).is_ok() {
                values += 1;
            }
        }
        check(&source, &b).unwrap_or_else(|e| panic!("{e}"));
    }
    println!("{values} of {total} generated expressions evaluate to a value");
    assert!(
        values * 100 >= total * 40,
        "only {values} of {total} cases produce values"
    );
}

/// A case the property found: an int ordered against a NaN double. CEL says false; the
/// `cel` crate has no overload, which is its departure, not a disagreement.
#[test]
fn int_ordered_against_nan_is_not_a_disagreement() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let b = bindings().new_tree(&mut runner).unwrap().current();
    check("0 < ((0.0 + 0.0) / (0.0 * 0.0))", &b).unwrap();
}
