//! The values an expression computes.
//!
//! A [`Value`] borrows from the request wherever it can: a header, the path, a JWT claim or a
//! field of the JSON body is a view into data the request already holds, never a copy. Values
//! the expression builds itself (a concatenated string, a list literal with a variable in it)
//! are reference-counted, so copying a value never copies its contents.
//!
//! Equality and ordering follow CEL: numbers compare across `int`, `uint` and `double` by
//! value, values of different kinds are unequal (never an error), lists and maps compare
//! element by element, and ordering is defined for numbers, strings, bytes, bools, timestamps
//! and durations only.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use http::HeaderMap;
use serde_json::Value as Json;

use super::error::EvalError;
use super::time::{Duration, Timestamp};

/// A CEL value, borrowed from the request wherever it can be.
///
/// Equality (`==`, and [`PartialEq`]) follows CEL: numbers compare across `int`, `uint` and
/// `double` by value, values of different kinds are unequal, lists and maps compare element by
/// element.
#[derive(Clone, Debug)]
pub enum Value<'a> {
    /// `null`.
    Null,
    /// `bool`.
    Bool(bool),
    /// `int`: a signed 64-bit integer.
    Int(i64),
    /// `uint`: an unsigned 64-bit integer.
    Uint(u64),
    /// `double`: a 64-bit float.
    Double(f64),
    /// `string`.
    String(Str<'a>),
    /// `bytes`.
    Bytes(ByteStr<'a>),
    /// `list`.
    List(List<'a>),
    /// `map`.
    Map(Map<'a>),
    /// A type, as returned by `type(x)` or written as `int`, `string`, ...
    Type(Type),
    /// `google.protobuf.Timestamp`: an instant, from `timestamp()` or `request.time`.
    Timestamp(Timestamp),
    /// `google.protobuf.Duration`: a span of time, from `duration()` or `ts - ts`.
    Duration(Duration),
}

/// The type of a [`Value`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// `null_type`.
    Null,
    /// `bool`.
    Bool,
    /// `int`.
    Int,
    /// `uint`.
    Uint,
    /// `double`.
    Double,
    /// `string`.
    String,
    /// `bytes`.
    Bytes,
    /// `list`.
    List,
    /// `map`.
    Map,
    /// `type`.
    Type,
    /// `google.protobuf.Timestamp`.
    Timestamp,
    /// `google.protobuf.Duration`.
    Duration,
}

impl Type {
    /// The CEL name of the type (`"int"`, `"null_type"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Type::Null => "null_type",
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Uint => "uint",
            Type::Double => "double",
            Type::String => "string",
            Type::Bytes => "bytes",
            Type::List => "list",
            Type::Map => "map",
            Type::Type => "type",
            Type::Timestamp => "google.protobuf.Timestamp",
            Type::Duration => "google.protobuf.Duration",
        }
    }

    /// The type a name denotes in an expression (`int`, `list`, `null_type`, ...).
    pub(crate) fn from_name(name: &str) -> Option<Type> {
        Some(match name {
            "null_type" => Type::Null,
            "bool" => Type::Bool,
            "int" => Type::Int,
            "uint" => Type::Uint,
            "double" => Type::Double,
            "string" => Type::String,
            "bytes" => Type::Bytes,
            "list" => Type::List,
            "map" => Type::Map,
            "type" => Type::Type,
            "google.protobuf.Timestamp" => Type::Timestamp,
            "google.protobuf.Duration" => Type::Duration,
            _ => return None,
        })
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A CEL string: borrowed from the request or shared.
#[derive(Clone)]
pub struct Str<'a>(StrRepr<'a>);

#[derive(Clone)]
enum StrRepr<'a> {
    Borrowed(&'a str),
    Shared(Arc<str>),
}

impl<'a> Str<'a> {
    /// A string borrowing `text`.
    pub fn borrowed(text: &'a str) -> Self {
        Str(StrRepr::Borrowed(text))
    }

    /// A string sharing `text`.
    pub fn shared(text: Arc<str>) -> Self {
        Str(StrRepr::Shared(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            StrRepr::Borrowed(s) => s,
            StrRepr::Shared(s) => s,
        }
    }

    /// The text with its lifetime, when it is borrowed.
    pub(crate) fn as_borrowed(&self) -> Option<&'a str> {
        match &self.0 {
            StrRepr::Borrowed(s) => Some(s),
            StrRepr::Shared(_) => None,
        }
    }

    /// An owned copy that borrows nothing.
    pub fn to_static(&self) -> Str<'static> {
        match &self.0 {
            StrRepr::Borrowed(s) => Str(StrRepr::Shared(Arc::from(*s))),
            StrRepr::Shared(s) => Str(StrRepr::Shared(Arc::clone(s))),
        }
    }
}

impl Deref for Str<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// CEL bytes: borrowed or shared.
#[derive(Clone)]
pub struct ByteStr<'a>(BytesRepr<'a>);

#[derive(Clone)]
enum BytesRepr<'a> {
    Borrowed(&'a [u8]),
    Shared(Arc<[u8]>),
}

impl<'a> ByteStr<'a> {
    /// Bytes borrowing `bytes`.
    pub fn borrowed(bytes: &'a [u8]) -> Self {
        ByteStr(BytesRepr::Borrowed(bytes))
    }

    /// Bytes sharing `bytes`.
    pub fn shared(bytes: Arc<[u8]>) -> Self {
        ByteStr(BytesRepr::Shared(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            BytesRepr::Borrowed(b) => b,
            BytesRepr::Shared(b) => b,
        }
    }

    /// An owned copy that borrows nothing.
    pub fn to_static(&self) -> ByteStr<'static> {
        match &self.0 {
            BytesRepr::Borrowed(b) => ByteStr(BytesRepr::Shared(Arc::from(*b))),
            BytesRepr::Shared(b) => ByteStr(BytesRepr::Shared(Arc::clone(b))),
        }
    }
}

impl Deref for ByteStr<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for ByteStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.as_bytes().escape_ascii())
    }
}

/// A CEL list: a view of a JSON array, or values the expression built.
#[derive(Clone)]
pub struct List<'a>(ListRepr<'a>);

#[derive(Clone)]
enum ListRepr<'a> {
    Json(&'a [Json]),
    Values(Arc<[Value<'a>]>),
}

impl<'a> List<'a> {
    /// The empty list (no allocation).
    pub fn empty() -> Self {
        List(ListRepr::Json(&[]))
    }

    /// A list of `values`.
    pub fn from_values(values: Vec<Value<'a>>) -> Self {
        if values.is_empty() {
            return List::empty();
        }
        List(ListRepr::Values(Arc::from(values)))
    }

    /// A view of a JSON array.
    pub fn from_json(items: &'a [Json]) -> Self {
        List(ListRepr::Json(items))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.0 {
            ListRepr::Json(items) => items.len(),
            ListRepr::Values(items) => items.len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element at `index`.
    pub fn get(&self, index: usize) -> Option<Value<'a>> {
        match &self.0 {
            ListRepr::Json(items) => items.get(index).map(Value::from_json),
            ListRepr::Values(items) => items.get(index).cloned(),
        }
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Value<'a>> + '_ {
        (0..self.len()).map(move |i| self.get(i).unwrap_or(Value::Null))
    }

    /// An owned copy that borrows nothing.
    pub fn to_static(&self) -> List<'static> {
        List::from_values(self.iter().map(|v| v.to_static()).collect())
    }
}

impl fmt::Debug for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

static EMPTY_JSON_MAP: LazyLock<serde_json::Map<String, Json>> =
    LazyLock::new(serde_json::Map::new);

/// A CEL map: a view of a JSON object or of the request headers, or entries the expression
/// built.
#[derive(Clone)]
pub struct Map<'a>(MapRepr<'a>);

#[derive(Clone)]
enum MapRepr<'a> {
    Json(&'a serde_json::Map<String, Json>),
    /// A request body that is a JSON object: a member is parsed alone when it is read
    /// ([`agentgw_core::Payload::field`]); anything that needs every member parses the body.
    Body(&'a agentgw_core::Payload),
    Headers(&'a HeaderMap),
    Values(Arc<[(Value<'a>, Value<'a>)]>),
}

impl<'a> Map<'a> {
    /// The empty map (no allocation).
    pub fn empty() -> Self {
        Map(MapRepr::Json(&EMPTY_JSON_MAP))
    }

    /// A view of a JSON object.
    pub fn from_json(map: &'a serde_json::Map<String, Json>) -> Self {
        Map(MapRepr::Json(map))
    }

    /// A view of a request body that is a JSON object ([`Payload::is_object`]): reading one
    /// member (`request.body.model`) parses that member alone when the body is plain.
    ///
    /// [`Payload::is_object`]: agentgw_core::Payload::is_object
    pub fn from_body(payload: &'a agentgw_core::Payload) -> Self {
        Map(MapRepr::Body(payload))
    }

    /// The body's members, parsed whole (once, then cached by the payload).
    fn whole(payload: &'a agentgw_core::Payload) -> &'a serde_json::Map<String, Json> {
        match payload.json() {
            Ok(Json::Object(map)) => map,
            _ => &EMPTY_JSON_MAP,
        }
    }

    /// A view of HTTP headers: keys are lower-case names, a value is the header's values
    /// joined with `", "`.
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        Map(MapRepr::Headers(headers))
    }

    /// A map of `entries`, which must have distinct keys of type int, uint, bool or string.
    pub fn from_entries(entries: Vec<(Value<'a>, Value<'a>)>) -> Result<Self, EvalError> {
        for (i, (key, _)) in entries.iter().enumerate() {
            if !matches!(
                key,
                Value::Int(_) | Value::Uint(_) | Value::Bool(_) | Value::String(_)
            ) {
                return Err(EvalError::UnsupportedKeyType(key.type_of()));
            }
            if entries[..i].iter().any(|(other, _)| key_eq(other, key)) {
                return Err(EvalError::DuplicateKey(key.to_string()));
            }
        }
        if entries.is_empty() {
            return Ok(Map::empty());
        }
        Ok(Map(MapRepr::Values(Arc::from(entries))))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match &self.0 {
            MapRepr::Json(map) => map.len(),
            MapRepr::Body(payload) => Map::whole(payload).len(),
            MapRepr::Headers(headers) => headers.keys_len(),
            MapRepr::Values(entries) => entries.len(),
        }
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value under a string key.
    pub fn get_str(&self, key: &str) -> Option<Value<'a>> {
        match &self.0 {
            MapRepr::Json(map) => json_get(map, key).map(Value::from_json),
            MapRepr::Body(payload) => payload.field(key).ok().flatten().map(Value::from_json),
            MapRepr::Headers(headers) => {
                let name = http::header::HeaderName::from_bytes(key.as_bytes()).ok()?;
                header_value(headers, &name)
            }
            MapRepr::Values(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::String(s) if s.as_str() == key))
                .map(|(_, v)| v.clone()),
        }
    }

    /// The value under `key` (numeric keys match across int, uint and double).
    pub fn get(&self, key: &Value<'_>) -> Option<Value<'a>> {
        match (&self.0, key) {
            (MapRepr::Values(entries), key) => entries
                .iter()
                .find(|(k, _)| key_eq(k, key))
                .map(|(_, v)| v.clone()),
            (_, Value::String(s)) => self.get_str(s),
            _ => None,
        }
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &Value<'_>) -> bool {
        match (&self.0, key) {
            (MapRepr::Json(map), Value::String(s)) => map.contains_key(s.as_str()),
            (MapRepr::Body(_), Value::String(s)) => self.contains_str(s),
            (MapRepr::Headers(headers), Value::String(s)) => headers.contains_key(s.as_str()),
            (MapRepr::Values(entries), key) => entries.iter().any(|(k, _)| key_eq(k, key)),
            _ => false,
        }
    }

    /// Whether the string key `key` is present.
    pub fn contains_str(&self, key: &str) -> bool {
        match &self.0 {
            MapRepr::Json(map) => json_get(map, key).is_some(),
            MapRepr::Body(payload) => payload.field(key).is_ok_and(|v| v.is_some()),
            MapRepr::Headers(headers) => headers.contains_key(key),
            MapRepr::Values(entries) => entries
                .iter()
                .any(|(k, _)| matches!(k, Value::String(s) if s.as_str() == key)),
        }
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> Vec<Value<'a>> {
        match &self.0 {
            MapRepr::Json(map) => map
                .keys()
                .map(|k| Value::String(Str::borrowed(k)))
                .collect(),
            MapRepr::Body(payload) => Map::from_json(Map::whole(payload)).keys(),
            MapRepr::Headers(headers) => headers
                .keys()
                .map(|k| Value::String(Str::borrowed(k.as_str())))
                .collect(),
            MapRepr::Values(entries) => entries.iter().map(|(k, _)| k.clone()).collect(),
        }
    }

    /// The entries, in insertion order.
    pub fn entries(&self) -> Vec<(Value<'a>, Value<'a>)> {
        match &self.0 {
            MapRepr::Json(map) => map
                .iter()
                .map(|(k, v)| (Value::String(Str::borrowed(k)), Value::from_json(v)))
                .collect(),
            MapRepr::Body(payload) => Map::from_json(Map::whole(payload)).entries(),
            MapRepr::Headers(headers) => headers
                .keys()
                .map(|k| {
                    (
                        Value::String(Str::borrowed(k.as_str())),
                        header_value(headers, k).unwrap_or(Value::Null),
                    )
                })
                .collect(),
            MapRepr::Values(entries) => entries.to_vec(),
        }
    }

    /// An owned copy that borrows nothing.
    pub fn to_static(&self) -> Map<'static> {
        let entries: Vec<_> = self
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_static(), v.to_static()))
            .collect();
        if entries.is_empty() {
            return Map::empty();
        }
        Map(MapRepr::Values(Arc::from(entries)))
    }
}

impl fmt::Debug for Map<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries()).finish()
    }
}

/// Up to this many keys, comparing them beats hashing the probe (SipHash on a short key costs
/// more than a handful of length checks and short compares). JWT claims and the top level of a
/// chat request are this small.
const LINEAR_LOOKUP_MAX: usize = 16;

fn json_get<'a>(map: &'a serde_json::Map<String, Json>, key: &str) -> Option<&'a Json> {
    if map.len() <= LINEAR_LOOKUP_MAX {
        map.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

/// The values of header `name` as one string: the only value borrowed, several joined with
/// `", "`. Values that are not UTF-8 are decoded lossily.
pub(crate) fn header_value<'a>(
    headers: &'a HeaderMap,
    name: &http::header::HeaderName,
) -> Option<Value<'a>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let text = |v: &'a http::HeaderValue| match std::str::from_utf8(v.as_bytes()) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(v.as_bytes()),
    };
    match values.next() {
        None => Some(Value::String(match text(first) {
            std::borrow::Cow::Borrowed(s) => Str::borrowed(s),
            std::borrow::Cow::Owned(s) => Str::shared(Arc::from(s)),
        })),
        Some(second) => {
            let mut joined = text(first).into_owned();
            for v in std::iter::once(second).chain(values) {
                joined.push_str(", ");
                joined.push_str(&text(v));
            }
            Some(Value::String(Str::shared(Arc::from(joined))))
        }
    }
}

impl<'a> Value<'a> {
    /// A view of JSON: numbers become `int` when they are integers that fit, `uint` when they
    /// only fit unsigned, `double` otherwise; arrays and objects are views, not copies.
    pub fn from_json(json: &'a Json) -> Self {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::Uint(u)
                } else {
                    Value::Double(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Json::String(s) => Value::String(Str::borrowed(s)),
            Json::Array(items) => Value::List(List::from_json(items)),
            Json::Object(map) => Value::Map(Map::from_json(map)),
        }
    }

    /// A string value sharing `text`.
    pub fn string(text: impl Into<Arc<str>>) -> Self {
        Value::String(Str::shared(text.into()))
    }

    /// The type of the value.
    pub fn type_of(&self) -> Type {
        match self {
            Value::Null => Type::Null,
            Value::Bool(_) => Type::Bool,
            Value::Int(_) => Type::Int,
            Value::Uint(_) => Type::Uint,
            Value::Double(_) => Type::Double,
            Value::String(_) => Type::String,
            Value::Bytes(_) => Type::Bytes,
            Value::List(_) => Type::List,
            Value::Map(_) => Type::Map,
            Value::Type(_) => Type::Type,
            Value::Timestamp(_) => Type::Timestamp,
            Value::Duration(_) => Type::Duration,
        }
    }

    /// The bool, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// An owned copy that borrows nothing from the request.
    pub fn to_static(&self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::Uint(u) => Value::Uint(*u),
            Value::Double(d) => Value::Double(*d),
            Value::String(s) => Value::String(s.to_static()),
            Value::Bytes(b) => Value::Bytes(b.to_static()),
            Value::List(l) => Value::List(l.to_static()),
            Value::Map(m) => Value::Map(m.to_static()),
            Value::Type(t) => Value::Type(*t),
            Value::Timestamp(t) => Value::Timestamp(*t),
            Value::Duration(d) => Value::Duration(*d),
        }
    }

    /// The value as JSON: bytes become base64-free arrays of numbers, types their names, and
    /// non-string map keys their text. Meant for logs and tests.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::Uint(u) => Json::from(*u),
            Value::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
            Value::String(s) => Json::String(s.to_string()),
            Value::Bytes(b) => Json::Array(b.iter().map(|&b| Json::from(b)).collect()),
            Value::List(l) => Json::Array(l.iter().map(|v| v.to_json()).collect()),
            Value::Map(m) => Json::Object(
                m.entries()
                    .into_iter()
                    .map(|(k, v)| {
                        let key = match &k {
                            Value::String(s) => s.to_string(),
                            other => other.to_string(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
            Value::Type(t) => Json::String(t.name().to_owned()),
            Value::Timestamp(t) => Json::String(t.to_string()),
            Value::Duration(d) => Json::String(d.to_string()),
        }
    }
}

impl fmt::Display for Value<'_> {
    /// CEL-like notation: `"text"`, `1u`, `[1, 2]`, `{"k": v}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Uint(u) => write!(f, "{u}u"),
            Value::Double(d) => write!(f, "{d:?}"),
            Value::String(s) => write!(f, "{:?}", s.as_str()),
            Value::Bytes(b) => write!(f, "{b:?}"),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.entries().iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
            Value::Type(t) => f.write_str(t.name()),
            Value::Timestamp(t) => write!(f, "timestamp(\"{t}\")"),
            Value::Duration(d) => write!(f, "duration(\"{d}\")"),
        }
    }
}

impl PartialEq for Value<'_> {
    /// CEL equality (`==`): heterogeneous, numbers compare by value, never an error.
    fn eq(&self, other: &Self) -> bool {
        equals(self, other)
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<u64> for Value<'_> {
    fn from(u: u64) -> Self {
        Value::Uint(u)
    }
}

impl From<f64> for Value<'_> {
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}

impl From<Timestamp> for Value<'_> {
    fn from(t: Timestamp) -> Self {
        Value::Timestamp(t)
    }
}

impl From<Duration> for Value<'_> {
    fn from(d: Duration) -> Self {
        Value::Duration(d)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::String(Str::borrowed(s))
    }
}

/// Compares an `int` and a `double` the way CEL does: as doubles (NaN is unordered).
fn cmp_int_double(i: i64, d: f64) -> Option<Ordering> {
    (i as f64).partial_cmp(&d)
}

fn cmp_uint_double(u: u64, d: f64) -> Option<Ordering> {
    (u as f64).partial_cmp(&d)
}

fn cmp_int_uint(i: i64, u: u64) -> Ordering {
    u64::try_from(i).map_or(Ordering::Less, |i| i.cmp(&u))
}

/// Numeric comparison across int, uint and double; `None` if either is not a number or NaN
/// is involved.
fn cmp_numbers(a: &Value<'_>, b: &Value<'_>) -> Option<Option<Ordering>> {
    Some(match (a, b) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Uint(a), Value::Uint(b)) => Some(a.cmp(b)),
        (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
        (Value::Int(a), Value::Uint(b)) => Some(cmp_int_uint(*a, *b)),
        (Value::Uint(a), Value::Int(b)) => Some(cmp_int_uint(*b, *a).reverse()),
        (Value::Int(a), Value::Double(b)) => cmp_int_double(*a, *b),
        (Value::Double(a), Value::Int(b)) => cmp_int_double(*b, *a).map(Ordering::reverse),
        (Value::Uint(a), Value::Double(b)) => cmp_uint_double(*a, *b),
        (Value::Double(a), Value::Uint(b)) => cmp_uint_double(*b, *a).map(Ordering::reverse),
        _ => return None,
    })
}

/// CEL equality: heterogeneous (values of different types are unequal, numbers compare by
/// value), never an error.
pub(crate) fn equals(a: &Value<'_>, b: &Value<'_>) -> bool {
    if let Some(ordering) = cmp_numbers(a, b) {
        return ordering == Some(Ordering::Equal);
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::String(a), Value::String(b)) => a.as_str() == b.as_str(),
        (Value::Bytes(a), Value::Bytes(b)) => a.as_bytes() == b.as_bytes(),
        (Value::Type(a), Value::Type(b)) => a == b,
        (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
        (Value::Duration(a), Value::Duration(b)) => a == b,
        (Value::List(a), Value::List(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| equals(&x, &y))
        }
        (Value::Map(a), Value::Map(b)) => {
            a.len() == b.len()
                && a.entries()
                    .iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| equals(v, &w)))
        }
        _ => false,
    }
}

/// Equality of map keys: like [`equals`] for the key types (numbers across types).
pub(crate) fn key_eq(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a.as_str() == b.as_str(),
        (Value::Bool(a), Value::Bool(b)) => a == b,
        _ => cmp_numbers(a, b) == Some(Some(Ordering::Equal)),
    }
}

/// CEL ordering for `<`, `<=`, `>`, `>=`: `Ok(None)` when the values are unordered (NaN),
/// an error when the operator has no overload for these types.
pub(crate) fn compare(
    a: &Value<'_>,
    b: &Value<'_>,
    op: &'static str,
) -> Result<Option<Ordering>, EvalError> {
    if let Some(ordering) = cmp_numbers(a, b) {
        return Ok(ordering);
    }
    match (a, b) {
        (Value::String(a), Value::String(b)) => Ok(Some(a.as_str().cmp(b.as_str()))),
        (Value::Bytes(a), Value::Bytes(b)) => Ok(Some(a.as_bytes().cmp(b.as_bytes()))),
        (Value::Bool(a), Value::Bool(b)) => Ok(Some(a.cmp(b))),
        (Value::Timestamp(a), Value::Timestamp(b)) => Ok(Some(a.cmp(b))),
        (Value::Duration(a), Value::Duration(b)) => Ok(Some(a.cmp(b))),
        _ => Err(EvalError::no_overload(op, &[a.type_of(), b.type_of()])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_numbers_keep_integers_exact() {
        let json = json!([1, -2, 18446744073709551615u64, 1.5]);
        let Value::List(list) = Value::from_json(&json) else {
            panic!("not a list")
        };
        let items: Vec<_> = list.iter().collect();
        assert!(matches!(items[0], Value::Int(1)));
        assert!(matches!(items[1], Value::Int(-2)));
        assert!(matches!(items[2], Value::Uint(u64::MAX)));
        assert!(matches!(items[3], Value::Double(d) if d == 1.5));
    }

    #[test]
    fn equality_is_heterogeneous() {
        assert_eq!(Value::Int(1), Value::Uint(1));
        assert_eq!(Value::Int(1), Value::Double(1.0));
        assert_ne!(Value::Double(f64::NAN), Value::Double(f64::NAN));
        assert_ne!(Value::Int(1), Value::from("1"));
        assert_ne!(Value::Null, Value::Bool(false));
        let json = json!({"a": [1, 2], "b": "x"});
        let built = Value::Map(
            Map::from_entries(vec![
                (Value::from("b"), Value::from("x")),
                (
                    Value::from("a"),
                    Value::List(List::from_values(vec![Value::Uint(1), Value::Double(2.0)])),
                ),
            ])
            .unwrap(),
        );
        assert_eq!(Value::from_json(&json), built);
    }

    #[test]
    fn ordering_across_numbers_is_lossy_like_cel() {
        let lt = |a: Value<'_>, b: Value<'_>| compare(&a, &b, "<").unwrap() == Some(Ordering::Less);
        assert!(lt(Value::Int(-1), Value::Uint(0)));
        assert!(!lt(
            Value::Int(i64::MAX),
            Value::Double(9223372036854775808.0)
        ));
        assert!(lt(Value::Int(1), Value::Double(1.5)));
        assert!(lt(
            Value::Uint(u64::MAX),
            Value::Double(18446744073709590000.0)
        ));
        assert_eq!(
            compare(&Value::Double(f64::NAN), &Value::Int(1), "<").unwrap(),
            None
        );
        assert!(compare(&Value::Null, &Value::Null, "<").is_err());
    }

    #[test]
    fn map_keys_must_be_distinct_and_of_key_types() {
        let dup = Map::from_entries(vec![
            (Value::Int(0), Value::Int(1)),
            (Value::Uint(0), Value::Int(2)),
        ]);
        assert!(matches!(dup, Err(EvalError::DuplicateKey(_))));
        let bad = Map::from_entries(vec![(Value::Double(1.0), Value::Int(1))]);
        assert!(matches!(
            bad,
            Err(EvalError::UnsupportedKeyType(Type::Double))
        ));
        let map = Map::from_entries(vec![(Value::Uint(3), Value::Int(3))]).unwrap();
        assert!(map.get(&Value::Double(3.0)).is_some());
        assert!(map.get(&Value::Double(3.1)).is_none());
    }

    #[test]
    fn headers_view_joins_repeated_values() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", "1".parse().unwrap());
        headers.append("x-a", "2".parse().unwrap());
        headers.insert("x-b", "only".parse().unwrap());
        let map = Map::from_headers(&headers);
        assert_eq!(map.get_str("X-A").unwrap().as_str(), Some("1, 2"));
        assert_eq!(map.get_str("x-b").unwrap().as_str(), Some("only"));
        assert!(map.get_str("x-c").is_none());
        assert_eq!(map.len(), 2);
    }
}
