//! Differential tests: random expressions and bindings, evaluated by our compiler and by the
//! `cel` crate's interpreter (`Program::compile` + `execute`) as the oracle.
//!
//! The generator covers the subset both implement the same way: literals of every scalar
//! type, lists and maps, arithmetic, comparisons, logic with error absorption, the
//! conditional, `in`, indexing, `size`, the string tests, `matches` with a literal pattern,
//! the macros, and timestamps and durations (literals, a bound timestamp and duration,
//! arithmetic, comparisons, `string()`, `int()` and every accessor, with and without a time
//! zone). Where the oracle departs from the CEL specification the generator avoids the
//! construct, and [`oracle_deviates`] documents each case.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::Expression;
use super::time::{Duration, TimeField, Timestamp};
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
    /// `target.method()`.
    Method0(&'static str, Box<Gen>),
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
            Gen::Method0(m, t) => format!("{}.{m}()", t.source()),
            Gen::Index(c, k) => format!("{}[{}]", c.source(), k.source()),
            Gen::List(items) => {
                let items: Vec<_> = items.iter().map(Gen::source).collect();
                format!("[{}]", items.join(", "))
            }
            Gen::Macro(m, range, body) => format!("{}.{m}(v, {})", range.source(), body.source()),
        }
    }
}

const VARIABLES: [&str; 11] = ["x", "y", "u", "d", "s", "t", "b", "l", "m", "n", "w"];

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
        1 => (timestamp_accessor(), timestamp_e(d)).prop_map(|(a, t)| Gen::Method0(a, bx(t))),
        1 => (timestamp_accessor(), timestamp_e(d), time_zone())
            .prop_map(|(a, t, z)| Gen::Method(a, bx(t), bx(z))),
        1 => (duration_accessor(), duration_e(d)).prop_map(|(a, t)| Gen::Method0(a, bx(t))),
        1 => timestamp_e(d).prop_map(|t| Gen::Call("int", bx(t))),
    ]
    .boxed()
}

fn timestamp_accessor() -> impl Strategy<Value = &'static str> {
    prop::sample::select(TimeField::ALL.iter().map(|f| f.name()).collect::<Vec<_>>())
}

fn duration_accessor() -> impl Strategy<Value = &'static str> {
    prop::sample::select(
        TimeField::ALL
            .iter()
            .filter(|f| f.on_durations())
            .map(|f| f.name())
            .collect::<Vec<_>>(),
    )
}

fn time_zone() -> BoxedStrategy<Gen> {
    leaf(vec![
        "'UTC'",
        "'Europe/Berlin'",
        "'America/St_Johns'",
        "'Asia/Kathmandu'",
        "'Australia/Sydney'",
        "'US/Central'",
        "'+05:30'",
        "'-02:30'",
        "'02:00'",
    ])
}

// Literals in UTC only: the oracle reads the calendar of a timestamp in the offset it was
// written with, CEL in UTC. Times stay within 1900-2100 so that no side reaches a range limit
// the other checks differently.
fn timestamp_e(depth: u32) -> BoxedStrategy<Gen> {
    let leaves = leaf(vec![
        "n",
        "n",
        "timestamp(0)",
        "timestamp(1234567890)",
        "timestamp('2009-02-13T23:31:30Z')",
        "timestamp('2024-02-29T23:59:59.999Z')",
        "timestamp('2025-03-30T01:00:00Z')",
    ]);
    if depth == 0 {
        return leaves;
    }
    let d = depth - 1;
    prop_oneof![
        3 => leaves,
        1 => (timestamp_e(d), duration_e(d)).prop_map(|(t, w)| Gen::Binary("+", bx(t), bx(w))),
        1 => (duration_e(d), timestamp_e(d)).prop_map(|(w, t)| Gen::Binary("+", bx(w), bx(t))),
        1 => (timestamp_e(d), duration_e(d)).prop_map(|(t, w)| Gen::Binary("-", bx(t), bx(w))),
    ]
    .boxed()
}

fn duration_e(depth: u32) -> BoxedStrategy<Gen> {
    let leaves = leaf(vec![
        "w",
        "w",
        "duration('0')",
        "duration('1h30m')",
        "duration('-1.5s')",
        "duration('100ms')",
        "duration('1ns')",
        "duration('36h')",
    ]);
    if depth == 0 {
        return leaves;
    }
    let d = depth - 1;
    prop_oneof![
        3 => leaves,
        1 => (prop::sample::select(vec!["+", "-"]), duration_e(d), duration_e(d))
            .prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        1 => (timestamp_e(d), timestamp_e(d)).prop_map(|(l, r)| Gen::Binary("-", bx(l), bx(r))),
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
        1 => timestamp_e(d).prop_map(|e| Gen::Call("string", bx(e))),
        1 => duration_e(d).prop_map(|e| Gen::Call("string", bx(e))),
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
        1 => (cmp(), timestamp_e(d), timestamp_e(d)).prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        1 => (cmp(), duration_e(d), duration_e(d)).prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
        1 => (prop::sample::select(vec!["==", "!="]), timestamp_e(d), duration_e(d))
            .prop_map(|(op, l, r)| Gen::Binary(op, bx(l), bx(r))),
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
        1 => timestamp_e(2),
        1 => duration_e(2),
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
    /// `n`: a timestamp between 1900 and 2100, as seconds and nanoseconds.
    n: (i64, u32),
    /// `w`: a duration of up to ten days either way, in nanoseconds.
    w: i64,
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
        (
            -2_208_988_800i64..4_102_444_800,
            prop_oneof![Just(0u32), 0u32..1_000_000_000],
        ),
        prop_oneof![
            (-864_000i64..864_000).prop_map(|s| s * 1_000_000_000),
            -864_000_000_000_000i64..864_000_000_000_000,
        ],
    )
        .prop_map(|(x, y, u, d, s, t, b, l, m, n, w)| Bindings {
            x,
            y,
            u,
            d,
            s,
            t,
            b,
            l,
            m: m.into_iter().collect(),
            n,
            w,
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
            Value::Timestamp(Timestamp::from_unix(self.n.0, self.n.1).expect("in range")),
            Value::Duration(Duration::from_nanos(self.w)),
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
        let n = chrono::DateTime::from_timestamp(self.n.0, self.n.1).expect("in range");
        ctx.add_variable_from_value("n", cel::Value::Timestamp(n.fixed_offset()));
        ctx.add_variable_from_value(
            "w",
            cel::Value::Duration(chrono::Duration::nanoseconds(self.w)),
        );
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
        (Value::Timestamp(a), cel::Value::Timestamp(b)) => {
            a.unix_seconds() == b.timestamp() && a.subsec_nanos() == b.timestamp_subsec_nanos()
        }
        (Value::Duration(a), cel::Value::Duration(b)) => Some(a.as_nanos()) == b.num_nanoseconds(),
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
    let (mut values, mut total, mut timed) = (0, 0, 0);
    for _ in 0..150 {
        let e = expr().new_tree(&mut runner).unwrap().current();
        let b = bindings().new_tree(&mut runner).unwrap().current();
        let source = e.source();
        total += 1;
        if source.contains("timestamp(")
            || source.contains("duration(")
            || source
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|word| word == "n" || word == "w")
        {
            timed += 1;
        }
        if let Ok(compiled) = Expression::compile_declared(&source, &VARIABLES) {
            let bound = b.ours();
            if compiled.evaluate_bindings(&bound).is_ok() {
                values += 1;
            }
        }
        check(&source, &b).unwrap_or_else(|e| panic!("{e}"));
    }
    println!(
        "{values} of {total} generated expressions evaluate to a value, {timed} use timestamps or durations"
    );
    assert!(
        timed * 100 >= total * 15,
        "only {timed} of {total} cases use time"
    );
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
