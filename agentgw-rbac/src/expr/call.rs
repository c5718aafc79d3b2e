//! Function calls: the standard functions of our subset and the IP helper.

use std::net::IpAddr;
use std::sync::Arc;

use super::ast::{Kind, Node, Position};
use super::attrs::Attr;
use super::compile::{Compiled, Compiler, Comprehension2, func};
use super::error::{CompileError, EvalError};
use super::ops::{self, StringTest};
use super::time::{TimeField, TimeZone};
use super::value::{Type, Value};

/// Functions of the CEL standard library and its common extensions that we do not support:
/// calling one is an "unsupported" compile error rather than an "unknown function".
const UNSUPPORTED: &[&str] = &[
    "transformList",
    "transformMap",
    "transformMapEntry",
    "optional",
    "of",
    "ofNonZeroValue",
    "hasValue",
    "value",
    "or",
    "orValue",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "format",
    "quote",
    "reverse",
    "sort",
    "sortBy",
    "flatten",
    "distinct",
    "range",
    "slice",
    "first",
    "last",
    "min",
    "max",
    "greatest",
    "least",
    "encode",
    "decode",
    "all",
    "exists",
    "exists_one",
    "existsOne",
    "map",
    "filter",
    "has",
    "ip",
    "isIP",
    "url",
    "isURL",
    "lists",
    "sets",
    "math",
    "strings",
    "base64",
];

/// Every function we support, with how it is called.
const SUPPORTED: &[(&str, &str)] = &[
    ("size", "size(x) or x.size()"),
    ("int", "int(x)"),
    ("uint", "uint(x)"),
    ("double", "double(x)"),
    ("string", "string(x)"),
    ("bool", "bool(x)"),
    ("bytes", "bytes(x)"),
    ("dyn", "dyn(x)"),
    ("type", "type(x)"),
    ("startsWith", "s.startsWith(prefix)"),
    ("endsWith", "s.endsWith(suffix)"),
    ("contains", "s.contains(text)"),
    ("matches", "s.matches('regex') or matches(s, 'regex')"),
    ("lowerAscii", "s.lowerAscii()"),
    ("upperAscii", "s.upperAscii()"),
    ("cidr", "cidr('10.0.0.0/8').containsIP(ip)"),
    (
        "timestamp",
        "timestamp('2030-01-01T00:00:00Z') or timestamp(seconds)",
    ),
    ("duration", "duration('1h30m')"),
    (
        "getFullYear",
        "t.getFullYear() or t.getFullYear('Europe/Berlin')",
    ),
    ("getMonth", "t.getMonth() or t.getMonth('Europe/Berlin')"),
    (
        "getDayOfYear",
        "t.getDayOfYear() or t.getDayOfYear('Europe/Berlin')",
    ),
    (
        "getDayOfMonth",
        "t.getDayOfMonth() or t.getDayOfMonth('Europe/Berlin')",
    ),
    ("getDate", "t.getDate() or t.getDate('Europe/Berlin')"),
    (
        "getDayOfWeek",
        "t.getDayOfWeek() or t.getDayOfWeek('Europe/Berlin')",
    ),
    (
        "getHours",
        "t.getHours(), t.getHours('Europe/Berlin') or d.getHours()",
    ),
    (
        "getMinutes",
        "t.getMinutes(), t.getMinutes('+05:30') or d.getMinutes()",
    ),
    (
        "getSeconds",
        "t.getSeconds(), t.getSeconds('UTC') or d.getSeconds()",
    ),
    (
        "getMilliseconds",
        "t.getMilliseconds(), t.getMilliseconds('UTC') or d.getMilliseconds()",
    ),
    ("containsIP", "cidr('10.0.0.0/8').containsIP(ip)"),
];

pub(crate) fn compile_call(
    c: &mut Compiler<'_>,
    function: &str,
    target: Option<&Node>,
    args: &[Node],
    pos: Position,
) -> Result<Compiled, CompileError> {
    let receiver = target.is_some();
    // The value a function applies to: the target of `x.f()`, else the first argument. Only
    // called in arms whose arity guarantees one of them.
    let subject = || match target {
        Some(t) => t,
        None => &args[0],
    };
    match (function, receiver, args.len()) {
        ("size", false, 1) | ("size", true, 0) => {
            let x = c.arg(subject())?;
            let d = deps(&x);
            Ok(node(
                func(move |f| ops::size(&x.eval(f)?)),
                Some(Type::Int),
                &[d],
            ))
        }
        ("timestamp" | "duration", false, 1) => {
            let x = c.arg(&args[0])?;
            let d = deps(&x);
            // A literal is converted when the policy loads: a malformed or out-of-range one
            // is a load-time error, like an invalid `matches()` pattern.
            if let Some(literal) = &x.constant {
                let converted = if function == "timestamp" {
                    ops::to_timestamp(literal)
                } else {
                    ops::to_duration(literal)
                };
                return match converted {
                    Ok(value) => Ok(Compiled::constant(value)),
                    Err(e) => Err(CompileError::InvalidCall {
                        function: function.to_owned(),
                        position: args[0].pos,
                        message: e.to_string(),
                    }),
                };
            }
            Ok(if function == "timestamp" {
                node(
                    func(move |f| ops::to_timestamp(&x.eval(f)?)),
                    Some(Type::Timestamp),
                    &[d],
                )
            } else {
                node(
                    func(move |f| ops::to_duration(&x.eval(f)?)),
                    Some(Type::Duration),
                    &[d],
                )
            })
        }
        (name, true, 0 | 1) if TimeField::from_name(name).is_some() => {
            let field = TimeField::from_name(name).unwrap_or(TimeField::Hours);
            time_accessor(c, field, subject(), args.first(), pos)
        }
        ("int" | "uint" | "double" | "string" | "bool" | "bytes" | "dyn" | "type", false, 1) => {
            let x = c.arg(&args[0])?;
            let d = deps(&x);
            Ok(match function {
                "int" => node(
                    func(move |f| ops::to_int(&x.eval(f)?)),
                    Some(Type::Int),
                    &[d],
                ),
                "uint" => node(
                    func(move |f| ops::to_uint(&x.eval(f)?)),
                    Some(Type::Uint),
                    &[d],
                ),
                "double" => node(
                    func(move |f| ops::to_double(&x.eval(f)?)),
                    Some(Type::Double),
                    &[d],
                ),
                "string" => node(
                    func(move |f| ops::to_string(&x.eval(f)?)),
                    Some(Type::String),
                    &[d],
                ),
                "bool" => node(
                    func(move |f| ops::to_bool(&x.eval(f)?)),
                    Some(Type::Bool),
                    &[d],
                ),
                "bytes" => node(
                    func(move |f| ops::to_bytes(&x.eval(f)?)),
                    Some(Type::Bytes),
                    &[d],
                ),
                "type" => node(
                    func(move |f| Ok(Value::Type(x.eval(f)?.type_of()))),
                    Some(Type::Type),
                    &[d],
                ),
                // `dyn` only hides the static type from a type checker.
                _ => {
                    let mut x = x;
                    x.ty = None;
                    x
                }
            })
        }
        ("startsWith" | "endsWith" | "contains", true, 1) => {
            let test = match function {
                "startsWith" => StringTest::StartsWith,
                "endsWith" => StringTest::EndsWith,
                _ => StringTest::Contains,
            };
            let text = c.arg(subject())?;
            let arg = c.arg(&args[0])?;
            let ds = [deps(&text), deps(&arg)];
            Ok(match arg.constant.clone() {
                Some(Value::String(literal)) => {
                    let literal: Arc<str> = Arc::from(literal.as_str());
                    node(
                        func(move |f| match text.eval(f)? {
                            Value::String(s) => Ok(Value::Bool(test.test(&s, &literal))),
                            other => Err(EvalError::no_overload(
                                test.name(),
                                &[other.type_of(), Type::String],
                            )),
                        }),
                        Some(Type::Bool),
                        &ds,
                    )
                }
                _ => node(
                    func(move |f| {
                        let t = text.eval(f)?;
                        test.apply(&t, &arg.eval(f)?)
                    }),
                    Some(Type::Bool),
                    &ds,
                ),
            })
        }
        ("matches", true, 1) | ("matches", false, 2) => {
            let (text_node, pattern_node) = match target {
                Some(t) => (t, &args[0]),
                None => (&args[0], &args[1]),
            };
            let text = c.arg(text_node)?;
            let pattern = c.arg(pattern_node)?;
            let Some(Value::String(pattern)) = pattern.constant.clone() else {
                return Err(CompileError::Unsupported {
                    construct: "matches() with a pattern that is not a string literal \
                                (patterns are compiled once, when the policy loads)"
                        .to_owned(),
                    position: pattern_node.pos,
                });
            };
            let regex = regex::RegexBuilder::new(&pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| CompileError::InvalidRegex {
                    position: pattern_node.pos,
                    message: e.to_string(),
                })?;
            let d = deps(&text);
            Ok(node(
                func(move |f| match text.eval(f)? {
                    Value::String(s) => Ok(Value::Bool(regex.is_match(&s))),
                    other => Err(EvalError::no_overload(
                        "matches",
                        &[other.type_of(), Type::String],
                    )),
                }),
                Some(Type::Bool),
                &[d],
            ))
        }
        ("lowerAscii" | "upperAscii", true, 0) => {
            let upper = function == "upperAscii";
            let text = c.arg(subject())?;
            let d = deps(&text);
            Ok(node(
                func(move |f| ops::change_ascii_case(&text.eval(f)?, upper)),
                Some(Type::String),
                &[d],
            ))
        }
        ("containsIP", true, 1) => contains_ip(c, subject(), &args[0], pos),
        ("all" | "exists" | "exists_one" | "existsOne", true, 3)
        | ("transformList" | "transformMap", true, 3 | 4) => {
            let kind = match function {
                "all" => Comprehension2::All,
                "exists" => Comprehension2::Exists,
                "exists_one" | "existsOne" => Comprehension2::ExistsOne,
                "transformList" => Comprehension2::TransformList,
                _ => Comprehension2::TransformMap,
            };
            let var = |node: &Node| match &node.kind {
                Kind::Ident {
                    name,
                    absolute: false,
                } => Ok(name.clone()),
                _ => Err(CompileError::InvalidCall {
                    function: function.to_owned(),
                    position: node.pos,
                    message: "the first two arguments must be variable names".to_owned(),
                }),
            };
            let (first, second) = (var(&args[0])?, var(&args[1])?);
            let (filter, body) = if args.len() == 4 {
                (Some(&args[2]), &args[3])
            } else {
                (None, &args[2])
            };
            c.comprehension2(kind, subject(), [first, second], filter, body)
        }
        (name, _, _) => {
            if let Some((_, usage)) = SUPPORTED.iter().find(|(n, _)| *n == name) {
                Err(CompileError::InvalidCall {
                    function: name.to_owned(),
                    position: pos,
                    message: format!("call it as {usage}"),
                })
            } else if UNSUPPORTED.contains(&name) {
                Err(CompileError::Unsupported {
                    construct: format!("function `{name}` (not in the supported subset)"),
                    position: pos,
                })
            } else {
                Err(CompileError::UnknownFunction {
                    name: name.to_owned(),
                    position: pos,
                })
            }
        }
    }
}

fn deps(c: &Compiled) -> super::compile::Deps {
    c.deps
}

fn node(
    eval: Box<super::compile::EvalFn>,
    ty: Option<Type>,
    deps: &[super::compile::Deps],
) -> Compiled {
    let d = deps
        .iter()
        .fold(super::compile::Deps::default(), |a, b| a.join(*b));
    Compiled::new(eval, ty, d)
}

/// `t.getHours()`, `t.getHours('Europe/Berlin')`, `d.getHours()` and the other accessors.
/// A time zone written as a literal is looked up once, when the policy loads; an unknown one
/// is a load-time error.
fn time_accessor(
    c: &mut Compiler<'_>,
    field: TimeField,
    target: &Node,
    zone: Option<&Node>,
    pos: Position,
) -> Result<Compiled, CompileError> {
    let function = field.name();
    let invalid = |position: Position, message: String| CompileError::InvalidCall {
        function: function.to_owned(),
        position,
        message,
    };
    let target = c.arg(target)?;
    match target.ty {
        Some(Type::Timestamp) | None => {}
        Some(Type::Duration) if field.on_durations() && zone.is_none() => {}
        Some(Type::Duration) if field.on_durations() => {
            return Err(invalid(
                pos,
                "a duration has no time zone: call it without one".to_owned(),
            ));
        }
        Some(other) => {
            return Err(invalid(
                pos,
                format!(
                    "it applies to a timestamp{}, not to {other}",
                    if field.on_durations() {
                        " or a duration"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    let no_overload = move |value: &Value<'_>, zone: Option<Type>| match zone {
        Some(zone) => EvalError::no_overload(function, &[value.type_of(), zone]),
        None => EvalError::no_overload(function, &[value.type_of()]),
    };
    let Some(zone) = zone else {
        let d = deps(&target);
        return Ok(node(
            func(move |f| match target.eval(f)? {
                Value::Timestamp(t) => Ok(Value::Int(t.field(field, &TimeZone::Utc))),
                Value::Duration(d) => d
                    .field(field)
                    .map(Value::Int)
                    .ok_or_else(|| no_overload(&Value::Duration(d), None)),
                other => Err(no_overload(&other, None)),
            }),
            Some(Type::Int),
            &[d],
        ));
    };
    let zone_pos = zone.pos;
    let zone = c.arg(zone)?;
    let ds = [deps(&target), deps(&zone)];
    match zone.constant.clone() {
        Some(Value::String(name)) => {
            let tz = TimeZone::parse(&name)
                .map_err(|e| invalid(zone_pos, format!("time zone {:?}: {e}", name.as_str())))?;
            Ok(node(
                func(move |f| match target.eval(f)? {
                    Value::Timestamp(t) => Ok(Value::Int(t.field(field, &tz))),
                    other => Err(no_overload(&other, Some(Type::String))),
                }),
                Some(Type::Int),
                &ds,
            ))
        }
        Some(other) => Err(invalid(
            zone_pos,
            format!(
                "the time zone must be a string such as 'Europe/Berlin' or '+01:00', not {}",
                other.type_of()
            ),
        )),
        None => Ok(node(
            func(move |f| {
                let t = target.eval(f)?;
                let z = zone.eval(f)?;
                match (&t, &z) {
                    (Value::Timestamp(t), Value::String(name)) => {
                        let tz = TimeZone::parse(name).map_err(|e| EvalError::time(function, e))?;
                        Ok(Value::Int(t.field(field, &tz)))
                    }
                    _ => Err(no_overload(&t, Some(z.type_of()))),
                }
            }),
            Some(Type::Int),
            &ds,
        )),
    }
}

/// `cidr('10.0.0.0/8').containsIP(ip)`, the CIDR parsed when the policy loads.
fn contains_ip(
    c: &mut Compiler<'_>,
    target: &Node,
    ip: &Node,
    pos: Position,
) -> Result<Compiled, CompileError> {
    let invalid = |message: String| CompileError::InvalidCall {
        function: "cidr".to_owned(),
        position: target.pos,
        message,
    };
    let cidr = match &target.kind {
        Kind::Call {
            function,
            target: None,
            args,
        } if function == "cidr" && args.len() == 1 => match &args[0].kind {
            Kind::String(text) => Cidr::parse(text)
                .ok_or_else(|| invalid(format!("{text:?} is not an IP address or CIDR range")))?,
            _ => return Err(invalid("the range must be a string literal".to_owned())),
        },
        _ => {
            return Err(CompileError::InvalidCall {
                function: "containsIP".to_owned(),
                position: pos,
                message: "call it as cidr('10.0.0.0/8').containsIP(ip)".to_owned(),
            });
        }
    };
    let ip = c.arg(ip)?;
    let d = deps(&ip);
    if ip.attr == Some(Attr::SourceIp) {
        // The client address is already an `IpAddr`: no formatting and parsing.
        return Ok(node(
            func(move |f| {
                let vars = f.request()?;
                let addr = vars.attrs.source().ok_or(EvalError::Missing("source.ip"))?;
                Ok(Value::Bool(cidr.contains(addr.ip())))
            }),
            Some(Type::Bool),
            &[d],
        ));
    }
    Ok(node(
        func(move |f| match ip.eval(f)? {
            Value::String(s) => s
                .parse::<IpAddr>()
                .map(|addr| Value::Bool(cidr.contains(addr)))
                .map_err(|_| EvalError::invalid("containsIP", "not an IP address")),
            other => Err(EvalError::no_overload(
                "containsIP",
                &[Type::String, other.type_of()],
            )),
        }),
        Some(Type::Bool),
        &[d],
    ))
}

/// An IP network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a single address.
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (
                addr.parse::<IpAddr>().ok()?,
                Some(prefix.parse::<u8>().ok()?),
            ),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr {
            network: addr,
            prefix,
        })
    }

    /// Whether `addr` is in the network (an IPv4-mapped IPv6 address counts as IPv4).
    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_containment() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let host = Cidr::parse("192.168.1.1").unwrap();
        assert!(host.contains("192.168.1.1".parse().unwrap()));
        assert!(!host.contains("192.168.1.2".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nope").is_none());
    }
}
