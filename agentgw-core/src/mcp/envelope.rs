//! [`Envelope`]: a whole JSON-RPC payload (one message or a batch), and the entry points that
//! parse and validate one: [`parse`], [`from_value`], [`parse_sse_data`].

use bytes::Bytes;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::message::to_json_bytes;
use super::validate::{in_batch, not_a_payload};
use super::{McpError, Message};

/// A whole JSON-RPC payload: one message, or a batch of them.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// A single message (a JSON object).
    Single(Message),
    /// A batch (a JSON array), never empty.
    Batch(Vec<Message>),
}

impl Envelope {
    /// The messages, one for a single message, in order for a batch.
    pub fn messages(&self) -> &[Message] {
        match self {
            Self::Single(message) => std::slice::from_ref(message),
            Self::Batch(messages) => messages,
        }
    }

    /// The messages, to rewrite them.
    pub fn messages_mut(&mut self) -> &mut [Message] {
        match self {
            Self::Single(message) => std::slice::from_mut(message),
            Self::Batch(messages) => messages,
        }
    }

    /// The messages, owned.
    pub fn into_messages(self) -> Vec<Message> {
        match self {
            Self::Single(message) => vec![message],
            Self::Batch(messages) => messages,
        }
    }

    /// Whether the payload is a batch (even a batch of one).
    pub fn is_batch(&self) -> bool {
        matches!(self, Self::Batch(_))
    }

    /// The message of a single-message payload; `None` for a batch.
    pub fn as_single(&self) -> Option<&Message> {
        match self {
            Self::Single(message) => Some(message),
            Self::Batch(_) => None,
        }
    }

    /// The message of a single-message payload, owned; `None` for a batch.
    pub fn into_single(self) -> Option<Message> {
        match self {
            Self::Single(message) => Some(message),
            Self::Batch(_) => None,
        }
    }

    /// The payload as JSON: an object, or an array for a batch.
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// The payload as JSON, without cloning params or results.
    pub fn into_value(self) -> Value {
        match self {
            Self::Single(message) => message.into_value(),
            Self::Batch(messages) => {
                Value::Array(messages.into_iter().map(Message::into_value).collect())
            }
        }
    }

    /// The payload serialized as compact JSON.
    ///
    /// Only needed after a change: an unchanged payload is best forwarded as its original bytes.
    pub fn to_bytes(&self) -> Bytes {
        to_json_bytes(self)
    }
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Single(message) => message.serialize(serializer),
            Self::Batch(messages) => messages.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::try_from(value).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<Value> for Envelope {
    type Error = McpError;

    /// Validates JSON taken by value, moving params and results out of it.
    fn try_from(value: Value) -> Result<Self, McpError> {
        match value {
            Value::Array(values) => {
                if values.is_empty() {
                    return Err(McpError::EmptyBatch);
                }
                values
                    .into_iter()
                    .enumerate()
                    .map(|(index, value)| {
                        Message::from_owned_value(value).map_err(|source| in_batch(index, source))
                    })
                    .collect::<Result<_, _>>()
                    .map(Self::Batch)
            }
            Value::Object(_) => Message::from_owned_value(value).map(Self::Single),
            other => Err(not_a_payload(&other)),
        }
    }
}

/// Parses and validates a JSON-RPC 2.0 payload: one message or a batch.
///
/// Errors say whether the bytes are not UTF-8, not JSON, not JSON-RPC 2.0, or break one of its
/// rules; a batch error names the index of the bad message. Never panics, whatever the bytes.
pub fn parse(bytes: &[u8]) -> Result<Envelope, McpError> {
    let text = std::str::from_utf8(bytes).map_err(|error| McpError::InvalidUtf8 {
        valid_up_to: error.valid_up_to(),
    })?;
    parse_str(text)
}

pub(super) fn parse_str(text: &str) -> Result<Envelope, McpError> {
    // Strict on duplicate keys: a client that keeps the first `result` would read what the
    // layers never inspected (see `crate::json`).
    let value =
        crate::json::parse_unique_keys(text.as_bytes()).map_err(
            |strict| match serde_json::from_str::<Value>(text) {
                Err(syntax) => McpError::InvalidJson(syntax),
                Ok(_) => McpError::invalid(strict.to_string()),
            },
        )?;
    Envelope::try_from(value)
}

/// Validates JSON that is already parsed (for instance the cached JSON of a
/// [`Payload`](crate::Payload)), so the body is not parsed twice.
///
/// Params and results are cloned out of `value`; use `Envelope::try_from(value)` to move them
/// instead when the JSON is no longer needed.
pub fn from_value(value: &Value) -> Result<Envelope, McpError> {
    match value {
        Value::Array(values) => {
            if values.is_empty() {
                return Err(McpError::EmptyBatch);
            }
            values
                .iter()
                .enumerate()
                .map(|(index, value)| {
                    Message::from_value(value).map_err(|source| in_batch(index, source))
                })
                .collect::<Result<_, _>>()
                .map(Envelope::Batch)
        }
        Value::Object(_) => Message::from_value(value).map(Envelope::Single),
        other => Err(not_a_payload(other)),
    }
}

/// Parses the `data` of one Server-Sent Event of an MCP `text/event-stream` response.
///
/// MCP puts one JSON-RPC message in each event's data (a batch is accepted too). `Ok(None)` for
/// data that is empty or only whitespace: servers send such events to prime a client for
/// resumption, and they must be passed through untouched. Call this for events whose type is
/// absent or `message`; the data of a multi-line event is its lines joined with `\n`, which is
/// JSON whitespace.
pub fn parse_sse_data(data: &str) -> Result<Option<Envelope>, McpError> {
    if data.trim_ascii().is_empty() {
        return Ok(None);
    }
    parse_str(data).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::test_util::reason_of;
    use crate::mcp::*;
    use serde_json::json;

    #[test]
    fn float_ids_survive_a_round_trip() {
        // Found by the core_mcp_parse fuzz target: without serde_json's `float_roundtrip` the
        // last bit of a float can change between two reads of our own output.
        let envelope =
            parse(br#"{"jsonrpc":"2.0","id":984467440737095516167,"method":"ping"}"#).unwrap();
        assert_eq!(parse(&envelope.to_bytes()).unwrap(), envelope);
    }

    #[test]
    fn mixed_batch_keeps_order() {
        let envelope = parse(
            br#"[
                {"jsonrpc":"2.0","id":1,"method":"tools/list"},
                {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}},
                {"jsonrpc":"2.0","id":1,"result":{}},
                {"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no"}}
            ]"#,
        )
        .expect("valid batch");
        assert!(envelope.is_batch());
        assert_eq!(envelope.as_single(), None);
        let kinds: Vec<Kind> = envelope.messages().iter().map(Message::kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Request,
                Kind::Notification,
                Kind::Response,
                Kind::Error
            ]
        );
        let value = envelope.to_value();
        assert_eq!(value.as_array().map(Vec::len), Some(4));
        assert_eq!(from_value(&value).expect("roundtrip"), envelope);
        assert_eq!(envelope.clone().into_messages().len(), 4);
    }

    #[test]
    fn batch_of_one_is_a_batch() {
        let envelope = parse(br#"[{"jsonrpc":"2.0","method":"ping"}]"#).expect("valid");
        assert!(envelope.is_batch());
        assert_eq!(envelope.messages().len(), 1);
        assert_eq!(
            envelope.to_bytes(),
            Bytes::from(r#"[{"jsonrpc":"2.0","method":"ping"}]"#)
        );
    }

    #[test]
    fn empty_batch_is_an_error() {
        let error = parse(b" [ ] ").expect_err("empty batch");
        assert!(matches!(error, McpError::EmptyBatch), "{error:?}");
        assert_eq!(error.code(), codes::INVALID_REQUEST);
        assert!(matches!(from_value(&json!([])), Err(McpError::EmptyBatch)));
    }

    #[test]
    fn invalid_batch_member_is_named() {
        let error =
            parse(br#"[{"jsonrpc":"2.0","method":"ping"}, {"jsonrpc":"1.0","method":"x"}]"#)
                .expect_err("invalid member");
        let McpError::InBatch { index, source } = &error else {
            panic!("expected InBatch, got {error:?}");
        };
        assert_eq!(*index, 1);
        assert!(matches!(**source, McpError::NotJsonRpc { .. }));
        assert_eq!(error.reason(), "not_jsonrpc");
        assert_eq!(error.code(), codes::INVALID_REQUEST);
        assert!(
            error
                .to_string()
                .starts_with("batch message 1: not a JSON-RPC 2.0 message")
        );

        // Nested batches are not messages.
        let error = from_value(&json!([[{ "jsonrpc": "2.0", "method": "ping" }]])).unwrap_err();
        assert!(
            matches!(error, McpError::InBatch { index: 0, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn invalid_utf8_is_reported_with_offset() {
        let error = parse(b"{\"jsonrpc\":\"2.0\xff\"}").expect_err("invalid UTF-8");
        assert!(
            matches!(error, McpError::InvalidUtf8 { valid_up_to: 15 }),
            "{error:?}"
        );
        assert_eq!(error.code(), codes::PARSE_ERROR);
        assert_eq!(error.reason(), "invalid_utf8");
    }

    #[test]
    fn invalid_json_is_reported_with_position() {
        for bytes in [&b""[..], b"{", b"{\"jsonrpc\":}", b"nul", b"{} {}"] {
            let error = parse(bytes).expect_err("invalid JSON");
            assert!(matches!(error, McpError::InvalidJson(_)), "{error:?}");
            assert_eq!(error.code(), codes::PARSE_ERROR);
            assert!(error.to_string().contains("line 1"), "{error}");
        }
    }

    #[test]
    fn deeply_nested_json_is_an_error_not_a_crash() {
        let bytes = "[".repeat(100_000);
        assert!(matches!(
            parse(bytes.as_bytes()),
            Err(McpError::InvalidJson(_))
        ));
    }

    #[test]
    fn non_object_json_is_not_jsonrpc() {
        for (bytes, found) in [
            (&b"42"[..], "a number"),
            (b"\"x\"", "a string"),
            (b"null", "null"),
            (b"true", "a boolean"),
        ] {
            let error = parse(bytes).expect_err("not an object");
            assert!(matches!(error, McpError::NotJsonRpc { .. }), "{error:?}");
            assert!(reason_of(&error).ends_with(found), "{error}");
            assert!(reason_of(&error).contains("for a batch"), "{error}");
        }
        let error = parse(b"[42]").expect_err("not an object");
        assert_eq!(
            error.to_string(),
            "batch message 0: not a JSON-RPC 2.0 message: expected a JSON object, found a number"
        );
        assert!(Message::from_value(&json!(42)).is_err());
    }

    #[test]
    fn serde_deserialize_validates() {
        let error = serde_json::from_str::<Message>(r#"{"jsonrpc":"1.0","method":"x"}"#)
            .expect_err("invalid");
        assert!(
            error.to_string().contains("not a JSON-RPC 2.0 message"),
            "{error}"
        );
        let envelope: Envelope =
            serde_json::from_str(r#"[{"jsonrpc":"2.0","method":"x"}]"#).expect("valid");
        assert!(envelope.is_batch());
        assert!(serde_json::from_str::<Envelope>("[]").is_err());
    }

    #[test]
    fn from_value_and_owned_conversion_agree_with_parse() {
        let text = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"t","arguments":{"a":1}}}"#;
        let value: Value = serde_json::from_str(text).expect("json");
        let parsed = parse(text.as_bytes()).expect("valid");
        assert_eq!(from_value(&value).expect("valid"), parsed);
        assert_eq!(Envelope::try_from(value.clone()).expect("valid"), parsed);
        assert_eq!(
            Message::from_value(&value).expect("valid"),
            parsed.messages()[0]
        );
        assert!(Message::from_value(&json!([value])).is_err());
    }

    #[test]
    fn sse_data_is_parsed() {
        let envelope = parse_sse_data(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#)
            .expect("valid")
            .expect("a message");
        assert_eq!(envelope.messages()[0].kind(), Kind::Response);

        // Data of a multi-line event: lines joined with '\n'.
        let envelope = parse_sse_data(
            "{\"jsonrpc\":\"2.0\",\n\"method\":\"notifications/message\",\n\"params\":{}}",
        )
        .expect("valid")
        .expect("a message");
        assert_eq!(
            envelope.messages()[0].method(),
            Some("notifications/message")
        );

        // Priming events carry no data.
        assert!(parse_sse_data("").expect("empty is fine").is_none());
        assert!(parse_sse_data(" \n").expect("blank is fine").is_none());

        assert!(matches!(
            parse_sse_data("{oops"),
            Err(McpError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_sse_data(r#"{"id":1,"result":{}}"#),
            Err(McpError::NotJsonRpc { .. })
        ));
    }

    mod properties {
        use super::super::*;
        use crate::mcp::*;
        use proptest::prelude::*;
        use serde_json::Number;
        use serde_json::json;

        fn number() -> impl Strategy<Value = Number> {
            prop_oneof![
                any::<i64>().prop_map(Number::from),
                any::<u64>().prop_map(Number::from),
                // serde_json's default float parsing may differ from the printed value in the
                // last digit; keep floats whose text reads back exactly.
                any::<f64>()
                    .prop_filter_map("finite", Number::from_f64)
                    .prop_filter("reads back exactly", |n| {
                        serde_json::from_str::<Number>(&n.to_string()).ok().as_ref() == Some(n)
                    }),
            ]
        }

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                number().prop_map(Value::Number),
                ".{0,12}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec(("[a-z]{0,6}", inner), 0..6)
                        .prop_map(|entries| Value::Object(entries.into_iter().collect())),
                ]
            })
        }

        fn structured() -> impl Strategy<Value = Value> {
            json_value().prop_map(|value| match value {
                Value::Array(_) | Value::Object(_) => value,
                other => json!({ "value": other }),
            })
        }

        fn id() -> impl Strategy<Value = Id> {
            prop_oneof![
                number().prop_map(Id::Number),
                ".{0,12}".prop_map(Id::String),
                Just(Id::Null),
            ]
        }

        fn message() -> impl Strategy<Value = Message> {
            let method = "[a-z/_]{0,16}";
            prop_oneof![
                (id(), method, prop::option::of(structured()))
                    .prop_map(|(id, method, params)| Message::Request { id, method, params }),
                (method, prop::option::of(structured()))
                    .prop_map(|(method, params)| Message::Notification { method, params }),
                (id(), json_value()).prop_map(|(id, result)| Message::Response { id, result }),
                (
                    id(),
                    any::<i64>(),
                    ".{0,12}",
                    prop::option::of(json_value())
                )
                    .prop_map(|(id, code, message, data)| Message::Error {
                        id,
                        error: ErrorObject {
                            code,
                            message,
                            data
                        },
                    }),
            ]
        }

        /// Objects that look like JSON-RPC, to reach the deeper validation paths.
        fn jsonrpc_like() -> impl Strategy<Value = Value> {
            let member = prop_oneof![
                Just("jsonrpc".to_owned()),
                Just("id".to_owned()),
                Just("method".to_owned()),
                Just("params".to_owned()),
                Just("result".to_owned()),
                Just("error".to_owned()),
                Just("name".to_owned()),
                Just("arguments".to_owned()),
            ];
            let value = prop_oneof![
                Just(json!("2.0")),
                Just(json!("tools/call")),
                Just(json!({ "code": 1, "message": "x" })),
                json_value(),
            ];
            prop::collection::vec((member, value), 0..7)
                .prop_map(|entries| Value::Object(entries.into_iter().collect()))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = parse(&bytes);
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    let _ = parse_sse_data(text);
                }
            }

            #[test]
            fn parse_never_panics_on_json(value in prop_oneof![json_value(), jsonrpc_like()]) {
                let bytes = serde_json::to_vec(&value).expect("serialize");
                let parsed = parse(&bytes);
                // Parsing bytes and classifying the parsed JSON agree.
                let classified = from_value(&value);
                prop_assert_eq!(parsed.as_ref().ok(), classified.as_ref().ok());
                if let Ok(envelope) = parsed {
                    for message in envelope.messages() {
                        let _ = message.try_tool_call();
                        let _ = message.to_bytes();
                    }
                }
            }

            #[test]
            fn batches_of_json_never_panic(values in prop::collection::vec(jsonrpc_like(), 0..4)) {
                let _ = from_value(&Value::Array(values));
            }

            #[test]
            fn messages_roundtrip(message in message()) {
                let value = message.to_value();
                prop_assert_eq!(from_value(&value).expect("valid"), Envelope::Single(message.clone()));
                prop_assert_eq!(
                    parse(&message.to_bytes()).expect("valid"),
                    Envelope::Single(message)
                );
            }

            #[test]
            fn batches_roundtrip(messages in prop::collection::vec(message(), 1..5)) {
                let envelope = Envelope::Batch(messages);
                prop_assert_eq!(parse(&envelope.to_bytes()).expect("valid"), envelope.clone());
                prop_assert_eq!(Envelope::try_from(envelope.to_value()).expect("valid"), envelope);
            }
        }
    }
}
