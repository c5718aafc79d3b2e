//! [`Message`]: one JSON-RPC 2.0 message (request, notification, response or error), its
//! accessors and its serialization, and [`error_response`] for denials.

use std::fmt;

use bytes::Bytes;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::validate::{Shape, as_message_object, classify, method_of, not_an_object, take_method};
use super::{Id, McpError};
#[cfg(doc)]
use super::{codes, from_value, parse, parse_sse_data};

/// The value of the `jsonrpc` member every JSON-RPC 2.0 message carries.
pub const JSONRPC_VERSION: &str = "2.0";

/// The `error` member of a JSON-RPC error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The error code (see [`codes`]).
    pub code: i64,
    /// A short description of the error.
    pub message: String,
    /// Additional information, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// The error object as JSON: `{"code": .., "message": .., "data": ..}`, `data` only when
    /// present.
    pub fn to_value(&self) -> Value {
        let mut map = Map::with_capacity(3);
        map.insert("code".to_owned(), Value::from(self.code));
        map.insert("message".to_owned(), Value::String(self.message.clone()));
        if let Some(data) = &self.data {
            map.insert("data".to_owned(), data.clone());
        }
        Value::Object(map)
    }
}

/// The four kinds of JSON-RPC 2.0 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A call that expects a response (it has an `id`).
    Request,
    /// A call without an `id`: no response follows.
    Notification,
    /// A successful response (it has a `result`).
    Response,
    /// An error response (it has an `error`).
    Error,
}

impl Kind {
    /// The kind as a lowercase label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Notification => "notification",
            Self::Response => "response",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One JSON-RPC 2.0 message.
///
/// Built by [`parse`], [`from_value`] or [`parse_sse_data`], which validate it; build one
/// directly to send it. Serializing (with [`Message::to_value`], [`Message::to_bytes`] or
/// serde) always writes `"jsonrpc": "2.0"`. Deserializing with serde applies the same
/// validation as [`from_value`].
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that expects a response.
    Request {
        /// The id the response will carry.
        id: Id,
        /// The method, e.g. `tools/call`.
        method: String,
        /// The params: an object or an array.
        params: Option<Value>,
    },
    /// A call without a response.
    Notification {
        /// The method, e.g. `notifications/initialized`.
        method: String,
        /// The params: an object or an array.
        params: Option<Value>,
    },
    /// A successful response.
    Response {
        /// The id of the request it answers.
        id: Id,
        /// The result.
        result: Value,
    },
    /// An error response.
    Error {
        /// The id of the request it answers; `null` if that id could not be read.
        id: Id,
        /// What went wrong.
        error: ErrorObject,
    },
}

impl Message {
    /// Validates one JSON-RPC 2.0 message (not a batch). Use [`from_value`] when the JSON may be
    /// a batch.
    pub fn from_value(value: &Value) -> Result<Self, McpError> {
        let object = as_message_object(value)?;
        Ok(match classify(object)? {
            Shape::Request(id) => Self::Request {
                id,
                method: method_of(object).to_owned(),
                params: object.get("params").cloned(),
            },
            Shape::Notification => Self::Notification {
                method: method_of(object).to_owned(),
                params: object.get("params").cloned(),
            },
            Shape::Response(id) => Self::Response {
                id,
                result: object.get("result").cloned().unwrap_or_default(),
            },
            Shape::Error(id, error) => Self::Error { id, error },
        })
    }

    /// Like [`Message::from_value`], but takes the JSON by value and moves params and results
    /// out of it instead of cloning them.
    pub fn from_owned_value(value: Value) -> Result<Self, McpError> {
        let Value::Object(mut object) = value else {
            return Err(not_an_object(&value));
        };
        Ok(match classify(&object)? {
            Shape::Request(id) => Self::Request {
                id,
                method: take_method(&mut object),
                params: object.remove("params"),
            },
            Shape::Notification => Self::Notification {
                method: take_method(&mut object),
                params: object.remove("params"),
            },
            Shape::Response(id) => Self::Response {
                id,
                result: object.remove("result").unwrap_or_default(),
            },
            Shape::Error(id, error) => Self::Error { id, error },
        })
    }

    /// The kind of message.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Request { .. } => Kind::Request,
            Self::Notification { .. } => Kind::Notification,
            Self::Response { .. } => Kind::Response,
            Self::Error { .. } => Kind::Error,
        }
    }

    /// The id of a request, response or error; `None` for a notification.
    pub fn id(&self) -> Option<&Id> {
        match self {
            Self::Request { id, .. } | Self::Response { id, .. } | Self::Error { id, .. } => {
                Some(id)
            }
            Self::Notification { .. } => None,
        }
    }

    /// The method of a request or notification; `None` for responses.
    pub fn method(&self) -> Option<&str> {
        match self {
            Self::Request { method, .. } | Self::Notification { method, .. } => Some(method),
            Self::Response { .. } | Self::Error { .. } => None,
        }
    }

    /// The params of a request or notification, if any.
    pub fn params(&self) -> Option<&Value> {
        match self {
            Self::Request { params, .. } | Self::Notification { params, .. } => params.as_ref(),
            Self::Response { .. } | Self::Error { .. } => None,
        }
    }

    /// The result of a successful response.
    pub fn result(&self) -> Option<&Value> {
        match self {
            Self::Response { result, .. } => Some(result),
            _ => None,
        }
    }

    /// The result of a successful response, to rewrite it.
    pub fn result_mut(&mut self) -> Option<&mut Value> {
        match self {
            Self::Response { result, .. } => Some(result),
            _ => None,
        }
    }

    /// The error object of an error response.
    pub fn error(&self) -> Option<&ErrorObject> {
        match self {
            Self::Error { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The message as JSON, with `"jsonrpc": "2.0"` first.
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// The message as JSON, with `"jsonrpc": "2.0"` first, without cloning params or results.
    pub fn into_value(self) -> Value {
        let mut map = Map::with_capacity(4);
        map.insert("jsonrpc".to_owned(), Value::from(JSONRPC_VERSION));
        match self {
            Self::Request { id, method, params } => {
                map.insert("id".to_owned(), id.to_value());
                map.insert("method".to_owned(), Value::String(method));
                if let Some(params) = params {
                    map.insert("params".to_owned(), params);
                }
            }
            Self::Notification { method, params } => {
                map.insert("method".to_owned(), Value::String(method));
                if let Some(params) = params {
                    map.insert("params".to_owned(), params);
                }
            }
            Self::Response { id, result } => {
                map.insert("id".to_owned(), id.to_value());
                map.insert("result".to_owned(), result);
            }
            Self::Error { id, error } => {
                map.insert("id".to_owned(), id.to_value());
                map.insert("error".to_owned(), error.to_value());
            }
        }
        Value::Object(map)
    }

    /// The message serialized as compact JSON, with `"jsonrpc": "2.0"`.
    ///
    /// Only needed after a change: an unchanged message is best forwarded as its original bytes.
    pub fn to_bytes(&self) -> Bytes {
        to_json_bytes(self)
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("jsonrpc", JSONRPC_VERSION)?;
        match self {
            Self::Request { id, method, params } => {
                map.serialize_entry("id", id)?;
                map.serialize_entry("method", method)?;
                if let Some(params) = params {
                    map.serialize_entry("params", params)?;
                }
            }
            Self::Notification { method, params } => {
                map.serialize_entry("method", method)?;
                if let Some(params) = params {
                    map.serialize_entry("params", params)?;
                }
            }
            Self::Response { id, result } => {
                map.serialize_entry("id", id)?;
                map.serialize_entry("result", result)?;
            }
            Self::Error { id, error } => {
                map.serialize_entry("id", id)?;
                map.serialize_entry("error", error)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_owned_value(value).map_err(serde::de::Error::custom)
    }
}

/// Builds a JSON-RPC error response:
/// `{"jsonrpc": "2.0", "id": .., "error": {"code": .., "message": .., "data": ..}}`, `data` only
/// when given.
///
/// Use the request's id, or [`Id::Null`] when the request's id could not be read.
pub fn error_response(id: &Id, code: i64, message: &str, data: Option<Value>) -> Value {
    Message::Error {
        id: id.clone(),
        error: ErrorObject {
            code,
            message: message.to_owned(),
            data,
        },
    }
    .into_value()
}

pub(super) fn to_json_bytes<T: Serialize>(value: &T) -> Bytes {
    // Serializing JSON values with string keys into a Vec has no failure path in serde_json.
    serde_json::to_vec(value)
        .expect("serializing JSON-RPC messages cannot fail")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::test_util::single;
    use crate::mcp::*;
    use serde_json::json;

    #[test]
    fn request_is_classified() {
        let message =
            single(br#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"c1"}}"#);
        assert_eq!(message.kind(), Kind::Request);
        assert_eq!(message.id(), Some(&Id::from(3_i64)));
        assert_eq!(message.method(), Some("tools/list"));
        assert_eq!(message.params(), Some(&json!({ "cursor": "c1" })));
        assert_eq!(message.result(), None);
        assert_eq!(message.error(), None);
        assert_eq!(message.tool_call(), None);
    }

    #[test]
    fn request_with_string_null_and_fractional_ids() {
        let message = single(br#"{"jsonrpc":"2.0","id":"abc","method":"ping"}"#);
        assert_eq!(message.id(), Some(&Id::from("abc")));
        assert_eq!(message.params(), None);

        // `"id": null` is a request (discouraged), not a notification.
        let message = single(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#);
        assert_eq!(message.kind(), Kind::Request);
        assert_eq!(message.id(), Some(&Id::Null));

        let message = single(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping","params":[1,2]}"#);
        assert_eq!(
            message.id().map(ToString::to_string).as_deref(),
            Some("1.5")
        );
        assert_eq!(message.params(), Some(&json!([1, 2])));
    }

    #[test]
    fn notification_is_classified() {
        let message = single(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(message.kind(), Kind::Notification);
        assert_eq!(message.id(), None);
        assert_eq!(message.method(), Some("notifications/initialized"));
        assert_eq!(message.params(), None);
    }

    #[test]
    fn response_is_classified() {
        let mut message = single(br#"{"jsonrpc":"2.0","id":"r-1","result":{"ok":true}}"#);
        assert_eq!(message.kind(), Kind::Response);
        assert_eq!(message.id(), Some(&Id::from("r-1")));
        assert_eq!(message.method(), None);
        assert_eq!(message.params(), None);
        assert_eq!(message.result(), Some(&json!({ "ok": true })));
        *message.result_mut().expect("result") = json!({ "ok": false });
        assert_eq!(
            message.to_value(),
            json!({ "jsonrpc": "2.0", "id": "r-1", "result": { "ok": false } })
        );
        // A null result is a result.
        let message = single(br#"{"jsonrpc":"2.0","id":1,"result":null}"#);
        assert_eq!(message.result(), Some(&Value::Null));
    }

    #[test]
    fn error_is_classified() {
        let message = single(
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error","data":{"at":3}}}"#,
        );
        assert_eq!(message.kind(), Kind::Error);
        assert_eq!(message.id(), Some(&Id::Null));
        let error = message.error().expect("error object");
        assert_eq!(error.code, codes::PARSE_ERROR);
        assert_eq!(error.message, "Parse error");
        assert_eq!(error.data, Some(json!({ "at": 3 })));
        assert_eq!(message.result(), None);

        let message = single(br#"{"jsonrpc":"2.0","id":2,"error":{"code":7,"message":""}}"#);
        assert_eq!(message.error().and_then(|e| e.data.as_ref()), None);
    }

    #[test]
    fn unknown_members_are_ignored_and_dropped() {
        let message = single(br#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":[1]}"#);
        assert_eq!(
            message.to_value(),
            json!({ "jsonrpc": "2.0", "id": 1, "method": "ping" })
        );
    }

    #[test]
    fn to_value_writes_jsonrpc_first_and_roundtrips() {
        let messages = [
            Message::Request {
                id: Id::from("a"),
                method: "tools/call".to_owned(),
                params: Some(json!({ "name": "x" })),
            },
            Message::Notification {
                method: "n".to_owned(),
                params: None,
            },
            Message::Response {
                id: Id::from(1_u64),
                result: json!([]),
            },
            Message::Error {
                id: Id::Null,
                error: ErrorObject {
                    code: -1,
                    message: "m".to_owned(),
                    data: Some(json!(null)),
                },
            },
        ];
        for message in messages {
            let value = message.to_value();
            let keys: Vec<&str> = value
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys[0], "jsonrpc");
            assert_eq!(value["jsonrpc"], "2.0");
            assert_eq!(message.clone().into_value(), value);
            // The serde serialization and the Value agree.
            assert_eq!(serde_json::to_value(&message).expect("serialize"), value);
            let bytes = message.to_bytes();
            assert_eq!(single(&bytes), message);
            let deserialized: Message = serde_json::from_slice(&bytes).expect("deserialize");
            assert_eq!(deserialized, message);
        }
    }

    #[test]
    fn explicit_null_error_data_is_kept() {
        let message =
            single(br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x","data":null}}"#);
        assert_eq!(
            message.error().map(|e| e.data.clone()),
            Some(Some(Value::Null))
        );
        assert_eq!(message.to_value()["error"]["data"], Value::Null);
        assert!(
            message.to_value()["error"]
                .as_object()
                .expect("object")
                .contains_key("data")
        );
    }

    #[test]
    fn kind_labels() {
        assert_eq!(Kind::Request.as_str(), "request");
        assert_eq!(Kind::Notification.to_string(), "notification");
        assert_eq!(Kind::Response.as_str(), "response");
        assert_eq!(Kind::Error.as_str(), "error");
    }

    #[test]
    fn error_response_carries_the_id() {
        assert_eq!(
            error_response(
                &Id::from("req-9"),
                codes::UNAUTHORIZED,
                "missing token",
                None
            ),
            json!({ "jsonrpc": "2.0", "id": "req-9", "error": { "code": -32001, "message": "missing token" } })
        );
        let value = error_response(
            &Id::Null,
            codes::PAYLOAD_TOO_LARGE,
            "too large",
            Some(json!({ "limit": 1024 })),
        );
        assert_eq!(
            value,
            json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32013, "message": "too large", "data": { "limit": 1024 } } })
        );
        // What we send is what we accept.
        let message = Message::from_value(&value).expect("valid error response");
        assert_eq!(message.kind(), Kind::Error);
    }
}
