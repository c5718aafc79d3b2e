//! The JSON-RPC 2.0 rules a message object must follow, checked once for every way a message is
//! read (bytes, parsed JSON, owned JSON).

use serde_json::{Map, Value};

use super::{ErrorObject, Id, JSONRPC_VERSION, McpError};

/// What [`classify`] found a valid message object to be.
pub(super) enum Shape {
    Request(Id),
    Notification,
    Response(Id),
    Error(Id, ErrorObject),
}

pub(super) fn as_message_object(value: &Value) -> Result<&Map<String, Value>, McpError> {
    value.as_object().ok_or_else(|| not_an_object(value))
}

pub(super) fn not_an_object(value: &Value) -> McpError {
    McpError::not_jsonrpc(format!(
        "expected a JSON object, found {}",
        type_name(value)
    ))
}

pub(super) fn not_a_payload(value: &Value) -> McpError {
    McpError::not_jsonrpc(format!(
        "expected a JSON object (or an array of them for a batch), found {}",
        type_name(value)
    ))
}

pub(super) fn in_batch(index: usize, source: McpError) -> McpError {
    McpError::InBatch {
        index,
        source: Box::new(source),
    }
}

/// Validates a message object against JSON-RPC 2.0 and tells which kind it is.
pub(super) fn classify(object: &Map<String, Value>) -> Result<Shape, McpError> {
    match object.get("jsonrpc") {
        Some(Value::String(version)) if version == JSONRPC_VERSION => {}
        Some(other) => {
            return Err(McpError::not_jsonrpc(format!(
                "`jsonrpc` must be \"2.0\", found {}",
                describe(other)
            )));
        }
        None => {
            return Err(McpError::not_jsonrpc(
                "the `jsonrpc` member is missing (JSON-RPC 2.0 requires \"jsonrpc\": \"2.0\")",
            ));
        }
    }

    let id = object.get("id").map(read_id).transpose()?;

    if let Some(method) = object.get("method") {
        if !method.is_string() {
            return Err(McpError::invalid(format!(
                "`method` must be a string, found {}",
                type_name(method)
            )));
        }
        if object.contains_key("result") || object.contains_key("error") {
            return Err(McpError::invalid(
                "a message cannot carry both `method` and `result` or `error`",
            ));
        }
        match object.get("params") {
            None | Some(Value::Object(_) | Value::Array(_)) => {}
            Some(other) => {
                return Err(McpError::invalid(format!(
                    "`params` must be an object or an array, found {}",
                    type_name(other)
                )));
            }
        }
        return Ok(id.map_or(Shape::Notification, Shape::Request));
    }

    match (object.get("result"), object.get("error")) {
        (Some(_), Some(_)) => Err(McpError::invalid(
            "a response cannot carry both `result` and `error`",
        )),
        (Some(_), None) => id
            .map(Shape::Response)
            .ok_or_else(|| McpError::invalid("a response must carry an `id`")),
        (None, Some(error)) => {
            let id = id.ok_or_else(|| {
                McpError::invalid("an error response must carry an `id` (null if unknown)")
            })?;
            Ok(Shape::Error(id, read_error_object(error)?))
        }
        (None, None) => Err(McpError::invalid(
            "expected `method` (request or notification) or `result` or `error` (response)",
        )),
    }
}

pub(super) fn read_id(value: &Value) -> Result<Id, McpError> {
    Id::from_value(value).ok_or_else(|| {
        McpError::invalid(format!(
            "`id` must be a string, a number or null, found {}",
            type_name(value)
        ))
    })
}

pub(super) fn read_error_object(value: &Value) -> Result<ErrorObject, McpError> {
    let Value::Object(object) = value else {
        return Err(McpError::invalid(format!(
            "`error` must be an object, found {}",
            type_name(value)
        )));
    };
    let code = match object.get("code") {
        Some(Value::Number(code)) => code
            .as_i64()
            .ok_or_else(|| McpError::invalid("`error.code` must be an integer"))?,
        Some(other) => {
            return Err(McpError::invalid(format!(
                "`error.code` must be an integer, found {}",
                type_name(other)
            )));
        }
        None => return Err(McpError::invalid("`error.code` is missing")),
    };
    let message = match object.get("message") {
        Some(Value::String(message)) => message.clone(),
        Some(other) => {
            return Err(McpError::invalid(format!(
                "`error.message` must be a string, found {}",
                type_name(other)
            )));
        }
        None => return Err(McpError::invalid("`error.message` is missing")),
    };
    Ok(ErrorObject {
        code,
        message,
        data: object.get("data").cloned(),
    })
}

/// The method of an object [`classify`] accepted as a request or notification.
pub(super) fn method_of(object: &Map<String, Value>) -> &str {
    object
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub(super) fn take_method(object: &mut Map<String, Value>) -> String {
    match object.remove("method") {
        Some(Value::String(method)) => method,
        _ => String::new(),
    }
}

pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value for an error message: short strings and numbers verbatim, anything else by type.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= 16 => {
            serde_json::to_string(s).unwrap_or_else(|_| "a string".to_owned())
        }
        Value::Number(n) => n.to_string(),
        other => type_name(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use crate::mcp::test_util::reason_of;
    use crate::mcp::*;
    use serde_json::json;

    #[test]
    fn jsonrpc_version_is_required() {
        let error = parse(br#"{"id":1,"method":"ping"}"#).expect_err("no version");
        assert!(matches!(error, McpError::NotJsonRpc { .. }), "{error:?}");
        assert!(reason_of(&error).contains("missing"), "{error}");

        let error = parse(br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#).expect_err("1.0");
        assert_eq!(
            error.to_string(),
            r#"not a JSON-RPC 2.0 message: `jsonrpc` must be "2.0", found "1.0""#
        );

        let error = parse(br#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#).expect_err("number");
        assert!(reason_of(&error).ends_with("found 2.0"), "{error}");

        let long = format!(r#"{{"jsonrpc":"{}","method":"ping"}}"#, "v".repeat(100));
        let error = parse(long.as_bytes()).expect_err("long version");
        assert!(reason_of(&error).ends_with("found a string"), "{error}");
        assert!(!error.to_string().contains("vvvv"));
    }

    #[test]
    fn id_must_be_string_number_or_null() {
        for id in [json!({}), json!([1]), json!(true)] {
            let value = json!({ "jsonrpc": "2.0", "id": id, "method": "ping" });
            let error = from_value(&value).expect_err("bad id");
            assert!(
                matches!(error, McpError::InvalidMessage { .. }),
                "{error:?}"
            );
            assert!(reason_of(&error).starts_with("`id` must be"), "{error}");
            let value = json!({ "jsonrpc": "2.0", "id": id, "result": 1 });
            assert!(from_value(&value).is_err());
        }
    }

    #[test]
    fn method_must_be_a_string() {
        let error = parse(br#"{"jsonrpc":"2.0","id":1,"method":5}"#).expect_err("bad method");
        assert_eq!(
            reason_of(&error),
            "`method` must be a string, found a number"
        );
        assert_eq!(error.code(), codes::INVALID_REQUEST);
        assert_eq!(error.reason(), "invalid_message");
    }

    #[test]
    fn params_must_be_structured() {
        for params in [json!(1), json!("x"), json!(null), json!(false)] {
            let value = json!({ "jsonrpc": "2.0", "id": 1, "method": "m", "params": params });
            let error = from_value(&value).expect_err("bad params");
            assert!(reason_of(&error).starts_with("`params` must be"), "{error}");
        }
    }

    #[test]
    fn method_with_result_or_error_is_ambiguous() {
        let error = parse(br#"{"jsonrpc":"2.0","id":1,"method":"m","result":{}}"#).unwrap_err();
        assert!(reason_of(&error).contains("both `method`"), "{error}");
        let error =
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"m","error":{"code":1,"message":""}}"#)
                .unwrap_err();
        assert!(reason_of(&error).contains("both `method`"), "{error}");
    }

    #[test]
    fn result_and_error_together_are_invalid() {
        let error =
            parse(br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}"#)
                .unwrap_err();
        assert_eq!(
            reason_of(&error),
            "a response cannot carry both `result` and `error`"
        );
    }

    #[test]
    fn responses_need_an_id() {
        let error = parse(br#"{"jsonrpc":"2.0","result":{}}"#).unwrap_err();
        assert_eq!(reason_of(&error), "a response must carry an `id`");
        let error = parse(br#"{"jsonrpc":"2.0","error":{"code":1,"message":"x"}}"#).unwrap_err();
        assert!(
            reason_of(&error).starts_with("an error response must carry"),
            "{error}"
        );
    }

    #[test]
    fn message_without_method_result_or_error_is_invalid() {
        let error = parse(br#"{"jsonrpc":"2.0","id":1}"#).unwrap_err();
        assert!(
            reason_of(&error).starts_with("expected `method`"),
            "{error}"
        );
    }

    #[test]
    fn error_object_is_validated() {
        let cases = [
            (json!("boom"), "`error` must be an object, found a string"),
            (json!({ "message": "x" }), "`error.code` is missing"),
            (
                json!({ "code": "1", "message": "x" }),
                "`error.code` must be an integer, found a string",
            ),
            (
                json!({ "code": 1.5, "message": "x" }),
                "`error.code` must be an integer",
            ),
            (
                json!({ "code": u64::MAX, "message": "x" }),
                "`error.code` must be an integer",
            ),
            (json!({ "code": 1 }), "`error.message` is missing"),
            (
                json!({ "code": 1, "message": 2 }),
                "`error.message` must be a string, found a number",
            ),
        ];
        for (error_object, expected) in cases {
            let value = json!({ "jsonrpc": "2.0", "id": 1, "error": error_object });
            let error = from_value(&value).expect_err("bad error object");
            assert_eq!(reason_of(&error), expected);
        }
    }
}
