//! [`Id`]: the id that pairs a JSON-RPC response with its request.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

/// A JSON-RPC request id: a string, a number or `null`.
///
/// Ids compare as JSON values: `1` and `"1"` are different ids, and so are `1` and `1.0`.
/// `Display` writes the id as JSON (`7`, `"abc"`, `null`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    /// A numeric id. JSON-RPC allows fractional numbers, though they are unusual.
    Number(Number),
    /// A string id.
    String(String),
    /// `null`: the id of an error response to a request whose id could not be read.
    Null,
}

impl Id {
    /// The id as a JSON value, to put into a message.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Number(n) => Value::Number(n.clone()),
            Self::String(s) => Value::String(s.clone()),
            Self::Null => Value::Null,
        }
    }

    /// Whether a lenient client could take a response carrying `other` as the answer to the
    /// request with this id: the same id, or a number and a string that reads as that number
    /// (the TypeScript SDK matches responses with `Number(id)`: `"1"`, `" 1"` and `1.0`
    /// answer request `1`). A layer that inspects the answers to some requests must look at
    /// every answer that matches loosely, not only at the exact one.
    ///
    /// ```
    /// use agentgw_core::mcp::Id;
    ///
    /// assert!(Id::from(1_i64).loosely_matches(&Id::from("1")));
    /// assert!(Id::from("01").loosely_matches(&Id::from(1_i64)));
    /// assert!(!Id::from(1_i64).loosely_matches(&Id::from(2_i64)));
    /// assert!(Id::from("a").loosely_matches(&Id::from("a")));
    /// ```
    pub fn loosely_matches(&self, other: &Id) -> bool {
        if self == other {
            return true;
        }
        match (self.as_number(), other.as_number()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    /// The id read as a number, the way `Number(id)` of JavaScript reads it (`None` for
    /// `null`, empty strings and text that is not a number).
    fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(n) => n.as_f64(),
            Self::String(s) if !s.trim().is_empty() => s.trim().parse::<f64>().ok(),
            Self::String(_) | Self::Null => None,
        }
    }

    /// Reads an id from JSON; `None` if the value is not a string, a number or `null`.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => Some(Self::Number(n.clone())),
            Value::String(s) => Some(Self::String(s.clone())),
            Value::Null => Some(Self::Null),
            _ => None,
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => fmt::Display::fmt(n, f),
            Self::String(s) => f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?),
            Self::Null => f.write_str("null"),
        }
    }
}

impl From<i64> for Id {
    fn from(n: i64) -> Self {
        Self::Number(n.into())
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Self::Number(n.into())
    }
}

impl From<String> for Id {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_display_serde_and_conversions() {
        assert_eq!(Id::from(7_i64).to_string(), "7");
        assert_eq!(Id::from("a\"b").to_string(), r#""a\"b""#);
        assert_eq!(Id::Null.to_string(), "null");
        assert_ne!(Id::from(1_i64), Id::from("1"));
        assert_eq!(Id::from(String::from("s")).to_value(), json!("s"));
        assert_eq!(Id::Null.to_value(), Value::Null);
        assert_eq!(Id::from_value(&json!(true)), None);
        assert_eq!(
            serde_json::from_str::<Id>("-3").expect("id"),
            Id::from(-3_i64)
        );
        assert_eq!(serde_json::from_str::<Id>("null").expect("id"), Id::Null);
        assert_eq!(
            serde_json::from_str::<Id>(r#""x""#).expect("id"),
            Id::from("x")
        );
        assert!(serde_json::from_str::<Id>("{}").is_err());
        assert_eq!(
            serde_json::to_string(&Id::from("x")).expect("ser"),
            r#""x""#
        );
        assert_eq!(serde_json::to_string(&Id::Null).expect("ser"), "null");
    }
}
