//! CEL operators and standard functions on [`Value`]s.

use std::cmp::Ordering;
use std::sync::Arc;

use super::ast::BinaryOp;
use super::error::EvalError;
use super::time::{Duration, Timestamp};
use super::value::{ByteStr, List, Map, Str, Type, Value, compare, equals};

/// A strict binary operator (both operands evaluated).
pub(crate) fn binary<'a>(
    op: BinaryOp,
    lhs: &Value<'a>,
    rhs: &Value<'a>,
) -> Result<Value<'a>, EvalError> {
    match op {
        BinaryOp::Add => add(lhs, rhs),
        BinaryOp::Sub => sub(lhs, rhs),
        BinaryOp::Mul => mul(lhs, rhs),
        BinaryOp::Div => div(lhs, rhs),
        BinaryOp::Rem => rem(lhs, rhs),
        BinaryOp::Eq => Ok(Value::Bool(equals(lhs, rhs))),
        BinaryOp::Ne => Ok(Value::Bool(!equals(lhs, rhs))),
        BinaryOp::Lt => ordered(lhs, rhs, "<", |o| o == Ordering::Less),
        BinaryOp::Le => ordered(lhs, rhs, "<=", |o| o != Ordering::Greater),
        BinaryOp::Gt => ordered(lhs, rhs, ">", |o| o == Ordering::Greater),
        BinaryOp::Ge => ordered(lhs, rhs, ">=", |o| o != Ordering::Less),
        BinaryOp::In => contains(rhs, lhs).map(Value::Bool),
        BinaryOp::Index => index(lhs, rhs),
    }
}

fn ordered<'a>(
    lhs: &Value<'_>,
    rhs: &Value<'_>,
    op: &'static str,
    test: fn(Ordering) -> bool,
) -> Result<Value<'a>, EvalError> {
    Ok(Value::Bool(compare(lhs, rhs, op)?.is_some_and(test)))
}

fn overload(op: &'static str, lhs: &Value<'_>, rhs: &Value<'_>) -> EvalError {
    EvalError::no_overload(op, &[lhs.type_of(), rhs.type_of()])
}

const fn range(function: &'static str, what: &'static str) -> EvalError {
    EvalError::OutOfRange { function, what }
}

const TIMESTAMP_RANGE_ADD: EvalError = range("+", "timestamp");
const DURATION_RANGE_ADD: EvalError = range("+", "duration");

pub(crate) fn add<'a>(lhs: &Value<'a>, rhs: &Value<'a>) -> Result<Value<'a>, EvalError> {
    Ok(match (lhs, rhs) {
        (Value::Int(a), Value::Int(b)) => {
            Value::Int(a.checked_add(*b).ok_or(EvalError::Overflow("+"))?)
        }
        (Value::Uint(a), Value::Uint(b)) => {
            Value::Uint(a.checked_add(*b).ok_or(EvalError::Overflow("+"))?)
        }
        (Value::Double(a), Value::Double(b)) => Value::Double(a + b),
        (Value::String(a), Value::String(b)) => {
            if b.is_empty() {
                return Ok(lhs.clone());
            }
            if a.is_empty() {
                return Ok(rhs.clone());
            }
            let mut s = String::with_capacity(a.len() + b.len());
            s.push_str(a);
            s.push_str(b);
            Value::String(Str::shared(Arc::from(s)))
        }
        (Value::Bytes(a), Value::Bytes(b)) => {
            let mut v = Vec::with_capacity(a.len() + b.len());
            v.extend_from_slice(a);
            v.extend_from_slice(b);
            Value::Bytes(ByteStr::shared(Arc::from(v)))
        }
        (Value::List(a), Value::List(b)) => {
            if b.is_empty() {
                return Ok(lhs.clone());
            }
            if a.is_empty() {
                return Ok(rhs.clone());
            }
            Value::List(List::from_values(a.iter().chain(b.iter()).collect()))
        }
        (Value::Timestamp(t), Value::Duration(d)) | (Value::Duration(d), Value::Timestamp(t)) => {
            Value::Timestamp(t.checked_add(*d).ok_or(TIMESTAMP_RANGE_ADD)?)
        }
        (Value::Duration(a), Value::Duration(b)) => {
            Value::Duration(a.checked_add(*b).ok_or(DURATION_RANGE_ADD)?)
        }
        _ => return Err(overload("+", lhs, rhs)),
    })
}

fn sub<'a>(lhs: &Value<'_>, rhs: &Value<'_>) -> Result<Value<'a>, EvalError> {
    Ok(match (lhs, rhs) {
        (Value::Int(a), Value::Int(b)) => {
            Value::Int(a.checked_sub(*b).ok_or(EvalError::Overflow("-"))?)
        }
        (Value::Uint(a), Value::Uint(b)) => {
            Value::Uint(a.checked_sub(*b).ok_or(EvalError::Overflow("-"))?)
        }
        (Value::Double(a), Value::Double(b)) => Value::Double(a - b),
        (Value::Timestamp(t), Value::Duration(d)) => {
            Value::Timestamp(t.checked_sub(*d).ok_or(range("-", "timestamp"))?)
        }
        (Value::Timestamp(a), Value::Timestamp(b)) => {
            Value::Duration(a.checked_duration_since(*b).ok_or(range("-", "duration"))?)
        }
        (Value::Duration(a), Value::Duration(b)) => {
            Value::Duration(a.checked_sub(*b).ok_or(range("-", "duration"))?)
        }
        _ => return Err(overload("-", lhs, rhs)),
    })
}

fn mul<'a>(lhs: &Value<'_>, rhs: &Value<'_>) -> Result<Value<'a>, EvalError> {
    Ok(match (lhs, rhs) {
        (Value::Int(a), Value::Int(b)) => {
            Value::Int(a.checked_mul(*b).ok_or(EvalError::Overflow("*"))?)
        }
        (Value::Uint(a), Value::Uint(b)) => {
            Value::Uint(a.checked_mul(*b).ok_or(EvalError::Overflow("*"))?)
        }
        (Value::Double(a), Value::Double(b)) => Value::Double(a * b),
        _ => return Err(overload("*", lhs, rhs)),
    })
}

fn div<'a>(lhs: &Value<'_>, rhs: &Value<'_>) -> Result<Value<'a>, EvalError> {
    Ok(match (lhs, rhs) {
        (Value::Int(_), Value::Int(0)) | (Value::Uint(_), Value::Uint(0)) => {
            return Err(EvalError::DivisionByZero);
        }
        (Value::Int(a), Value::Int(b)) => {
            Value::Int(a.checked_div(*b).ok_or(EvalError::Overflow("/"))?)
        }
        (Value::Uint(a), Value::Uint(b)) => Value::Uint(a / b),
        (Value::Double(a), Value::Double(b)) => Value::Double(a / b),
        _ => return Err(overload("/", lhs, rhs)),
    })
}

fn rem<'a>(lhs: &Value<'_>, rhs: &Value<'_>) -> Result<Value<'a>, EvalError> {
    Ok(match (lhs, rhs) {
        (Value::Int(_), Value::Int(0)) | (Value::Uint(_), Value::Uint(0)) => {
            return Err(EvalError::ModulusByZero);
        }
        (Value::Int(a), Value::Int(b)) => {
            Value::Int(a.checked_rem(*b).ok_or(EvalError::Overflow("%"))?)
        }
        (Value::Uint(a), Value::Uint(b)) => Value::Uint(a % b),
        _ => return Err(overload("%", lhs, rhs)),
    })
}

/// `-x`.
pub(crate) fn negate<'a>(value: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match value {
        Value::Int(i) => Ok(Value::Int(i.checked_neg().ok_or(EvalError::Overflow("-"))?)),
        Value::Double(d) => Ok(Value::Double(-d)),
        other => Err(EvalError::no_overload("-", &[other.type_of()])),
    }
}

/// `!x`.
pub(crate) fn not<'a>(value: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match value {
        Value::Bool(b) => Ok(Value::Bool(!b)),
        other => Err(EvalError::no_overload("!", &[other.type_of()])),
    }
}

/// `element in container`: list membership (CEL equality) or map key presence.
pub(crate) fn contains(container: &Value<'_>, element: &Value<'_>) -> Result<bool, EvalError> {
    match container {
        Value::List(list) => Ok(list.iter().any(|item| equals(&item, element))),
        Value::Map(map) => Ok(map.contains_key(element)),
        other => Err(EvalError::no_overload(
            "in",
            &[element.type_of(), other.type_of()],
        )),
    }
}

/// An integral list index from an int, uint or integral double.
fn list_index(key: &Value<'_>) -> Result<i64, EvalError> {
    match key {
        Value::Int(i) => Ok(*i),
        Value::Uint(u) => Ok(i64::try_from(*u).unwrap_or(i64::MAX)),
        Value::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => Ok(*d as i64),
        Value::Double(_) => Err(EvalError::invalid("[]", "list index is not an integer")),
        other => Err(EvalError::no_overload("[]", &[Type::List, other.type_of()])),
    }
}

/// `container[key]`.
pub(crate) fn index<'a>(container: &Value<'a>, key: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match container {
        Value::List(list) => {
            let i = list_index(key)?;
            usize::try_from(i)
                .ok()
                .and_then(|i| list.get(i))
                .ok_or(EvalError::IndexOutOfBounds(i))
        }
        Value::Map(map) => map
            .get(key)
            .ok_or_else(|| EvalError::NoSuchKey(Arc::from(key.to_string()))),
        other => Err(EvalError::no_overload(
            "[]",
            &[other.type_of(), key.type_of()],
        )),
    }
}

/// `container.field`.
pub(crate) fn select<'a>(container: &Value<'a>, field: &Arc<str>) -> Result<Value<'a>, EvalError> {
    match container {
        Value::Map(map) => map
            .get_str(field)
            .ok_or_else(|| EvalError::NoSuchKey(Arc::clone(field))),
        other => Err(EvalError::invalid(
            ".",
            format!("type {} does not support field selection", other.type_of()),
        )),
    }
}

/// `has(container.field)`.
pub(crate) fn has(container: &Value<'_>, field: &str) -> Result<bool, EvalError> {
    match container {
        Value::Map(map) => Ok(map.contains_str(field)),
        other => Err(EvalError::invalid(
            "has",
            format!("type {} does not support field selection", other.type_of()),
        )),
    }
}

/// `size(x)`.
pub(crate) fn size<'a>(value: &Value<'_>) -> Result<Value<'a>, EvalError> {
    let n = match value {
        Value::String(s) => s.chars().count(),
        Value::Bytes(b) => b.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.len(),
        other => return Err(EvalError::no_overload("size", &[other.type_of()])),
    };
    Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// The string functions with one string argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringTest {
    StartsWith,
    EndsWith,
    Contains,
}

impl StringTest {
    pub(crate) fn name(self) -> &'static str {
        match self {
            StringTest::StartsWith => "startsWith",
            StringTest::EndsWith => "endsWith",
            StringTest::Contains => "contains",
        }
    }

    pub(crate) fn test(self, text: &str, arg: &str) -> bool {
        match self {
            StringTest::StartsWith => text.starts_with(arg),
            StringTest::EndsWith => text.ends_with(arg),
            StringTest::Contains => text.contains(arg),
        }
    }

    pub(crate) fn apply<'a>(
        self,
        target: &Value<'_>,
        arg: &Value<'_>,
    ) -> Result<Value<'a>, EvalError> {
        match (target, arg) {
            (Value::String(t), Value::String(a)) => Ok(Value::Bool(self.test(t, a))),
            _ => Err(EvalError::no_overload(
                self.name(),
                &[target.type_of(), arg.type_of()],
            )),
        }
    }
}

/// `lowerAscii()` / `upperAscii()`.
pub(crate) fn change_ascii_case<'a>(
    value: &Value<'a>,
    upper: bool,
) -> Result<Value<'a>, EvalError> {
    let name = if upper { "upperAscii" } else { "lowerAscii" };
    match value {
        Value::String(s) => {
            let unchanged = if upper {
                !s.bytes().any(|b| b.is_ascii_lowercase())
            } else {
                !s.bytes().any(|b| b.is_ascii_uppercase())
            };
            if unchanged {
                return Ok(value.clone());
            }
            let changed = if upper {
                s.to_ascii_uppercase()
            } else {
                s.to_ascii_lowercase()
            };
            Ok(Value::String(Str::shared(Arc::from(changed))))
        }
        other => Err(EvalError::no_overload(name, &[other.type_of()])),
    }
}

/// `int(x)`.
pub(crate) fn to_int<'a>(value: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match value {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Uint(u) => i64::try_from(*u)
            .map(Value::Int)
            .map_err(|_| EvalError::invalid("int", "range error: uint out of int range")),
        // The range is [-2^63, 2^63), exclusive at both ends as in cel-go.
        Value::Double(d) if *d > -9223372036854775808.0 && *d < 9223372036854775808.0 => {
            Ok(Value::Int(d.trunc() as i64))
        }
        Value::Double(_) => Err(EvalError::invalid(
            "int",
            "range error: double out of int range",
        )),
        Value::String(s) => s.parse::<i64>().map(Value::Int).map_err(|_| {
            EvalError::invalid("int", format!("cannot convert {:?} to int", s.as_str()))
        }),
        // Seconds since the epoch, rounded down.
        Value::Timestamp(t) => Ok(Value::Int(t.unix_seconds())),
        other => Err(EvalError::no_overload("int", &[other.type_of()])),
    }
}

/// `uint(x)`.
pub(crate) fn to_uint<'a>(value: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match value {
        Value::Uint(u) => Ok(Value::Uint(*u)),
        Value::Int(i) => u64::try_from(*i)
            .map(Value::Uint)
            .map_err(|_| EvalError::invalid("uint", "range error: negative int")),
        Value::Double(d) if *d > -1.0 && *d < 18446744073709551616.0 => {
            Ok(Value::Uint(d.trunc() as u64))
        }
        Value::Double(_) => Err(EvalError::invalid(
            "uint",
            "range error: double out of uint range",
        )),
        Value::String(s) => s.parse::<u64>().map(Value::Uint).map_err(|_| {
            EvalError::invalid("uint", format!("cannot convert {:?} to uint", s.as_str()))
        }),
        other => Err(EvalError::no_overload("uint", &[other.type_of()])),
    }
}

/// `double(x)`.
pub(crate) fn to_double<'a>(value: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match value {
        Value::Double(d) => Ok(Value::Double(*d)),
        Value::Int(i) => Ok(Value::Double(*i as f64)),
        Value::Uint(u) => Ok(Value::Double(*u as f64)),
        Value::String(s) => s.parse::<f64>().map(Value::Double).map_err(|_| {
            EvalError::invalid(
                "double",
                format!("cannot convert {:?} to double", s.as_str()),
            )
        }),
        other => Err(EvalError::no_overload("double", &[other.type_of()])),
    }
}

/// `string(x)`.
pub(crate) fn to_string<'a>(value: &Value<'a>) -> Result<Value<'a>, EvalError> {
    let text = match value {
        Value::String(_) => return Ok(value.clone()),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Double(d) => format_double(*d),
        Value::Bool(b) => b.to_string(),
        Value::Timestamp(t) => t.to_string(),
        Value::Duration(d) => d.to_string(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => return Err(EvalError::invalid("string", "bytes are not valid UTF-8")),
        },
        other => return Err(EvalError::no_overload("string", &[other.type_of()])),
    };
    Ok(Value::String(Str::shared(Arc::from(text))))
}

/// `timestamp(x)`: from an RFC 3339 string, from seconds since the epoch, or a timestamp.
pub(crate) fn to_timestamp<'a>(value: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match value {
        Value::Timestamp(t) => Ok(Value::Timestamp(*t)),
        Value::String(s) => s
            .parse::<Timestamp>()
            .map(Value::Timestamp)
            .map_err(|e| EvalError::time("timestamp", e)),
        Value::Int(secs) => Timestamp::from_unix(*secs, 0)
            .map(Value::Timestamp)
            .ok_or(range("timestamp", "timestamp")),
        other => Err(EvalError::no_overload("timestamp", &[other.type_of()])),
    }
}

/// `duration(x)`: from a duration string (`"1h30m"`) or a duration.
pub(crate) fn to_duration<'a>(value: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match value {
        Value::Duration(d) => Ok(Value::Duration(*d)),
        Value::String(s) => s
            .parse::<Duration>()
            .map(Value::Duration)
            .map_err(|e| EvalError::time("duration", e)),
        other => Err(EvalError::no_overload("duration", &[other.type_of()])),
    }
}

/// `bool(x)`.
pub(crate) fn to_bool<'a>(value: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match value {
        Value::Bool(b) => Ok(Value::Bool(*b)),
        Value::String(s) => match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            other => Err(EvalError::invalid(
                "bool",
                format!("cannot convert {other:?} to bool"),
            )),
        },
        other => Err(EvalError::no_overload("bool", &[other.type_of()])),
    }
}

/// `bytes(x)`.
pub(crate) fn to_bytes<'a>(value: &Value<'a>) -> Result<Value<'a>, EvalError> {
    match value {
        Value::Bytes(_) => Ok(value.clone()),
        Value::String(s) => Ok(Value::Bytes(match s.as_borrowed() {
            Some(borrowed) => ByteStr::borrowed(borrowed.as_bytes()),
            None => ByteStr::shared(Arc::from(s.as_bytes())),
        })),
        other => Err(EvalError::no_overload("bytes", &[other.type_of()])),
    }
}

/// Formats a double like CEL's `string(double)` (Go's `%g` with the shortest precision).
pub(crate) fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // `{:e}` gives the shortest round-trip digits: `-1.2345e-7`.
    let sci = format!("{d:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if !(-4..6).contains(&exponent) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        let abs = exponent.unsigned_abs();
        if abs < 10 {
            out.push('0');
        }
        out.push_str(&abs.to_string());
    } else if exponent < 0 {
        out.push_str("0.");
        for _ in 0..(-exponent - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = usize::try_from(exponent).unwrap_or(0) + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// The value of a map literal.
pub(crate) fn map_of<'a>(entries: Vec<(Value<'a>, Value<'a>)>) -> Result<Value<'a>, EvalError> {
    Map::from_entries(entries).map(Value::Map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_overflow_is_an_error() {
        assert_eq!(
            add(&Value::Int(i64::MAX), &Value::Int(1)),
            Err(EvalError::Overflow("+"))
        );
        assert_eq!(
            div(&Value::Int(i64::MIN), &Value::Int(-1)),
            Err(EvalError::Overflow("/"))
        );
        assert_eq!(
            sub(&Value::Uint(0), &Value::Uint(1)),
            Err(EvalError::Overflow("-"))
        );
        assert_eq!(negate(&Value::Int(i64::MIN)), Err(EvalError::Overflow("-")));
        assert_eq!(
            div(&Value::Int(1), &Value::Int(0)),
            Err(EvalError::DivisionByZero)
        );
        assert_eq!(
            rem(&Value::Int(1), &Value::Int(0)),
            Err(EvalError::ModulusByZero)
        );
    }

    #[test]
    fn no_implicit_numeric_conversion_in_arithmetic() {
        assert!(matches!(
            add(&Value::Int(1), &Value::Uint(1)),
            Err(EvalError::NoOverload { function: "+", .. })
        ));
        assert!(rem(&Value::Double(1.0), &Value::Double(2.0)).is_err());
    }

    #[test]
    fn doubles_format_like_cel() {
        for (d, text) in [
            (123.456, "123.456"),
            (-4.5e-3, "-0.0045"),
            (1e21, "1e+21"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (3.0, "3"),
            (-0.0, "-0"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_double(d), text, "{d}");
        }
    }

    #[test]
    fn conversions_check_ranges() {
        assert!(to_int(&Value::Double(9223372036854775807.0)).is_err());
        assert_eq!(to_int(&Value::Double(-7.9)).unwrap(), Value::Int(-7));
        assert!(to_uint(&Value::Int(-1)).is_err());
        assert_eq!(to_uint(&Value::Double(25.5)).unwrap(), Value::Uint(25));
        assert!(to_bool(&Value::from("TrUe")).is_err());
        assert!(to_string(&Value::Bytes(ByteStr::borrowed(b"\x00\xff"))).is_err());
    }
}
