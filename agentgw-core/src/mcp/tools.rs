//! Tools: the tool a `tools/call` request invokes ([`ToolCall`]), and the tool definitions of a
//! `tools/list` result ([`ToolDef`]).

use serde_json::Value;

#[cfg(doc)]
use super::PendingRequests;
use super::{McpError, Message, methods};

/// A `tools/call` request's tool name and arguments, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolCall<'a> {
    /// The tool to invoke (`params.name`).
    pub name: &'a str,
    /// The arguments (`params.arguments`), an object when present. An explicit `null` reads as
    /// absent.
    pub arguments: Option<&'a Value>,
}

impl Message {
    /// The tool name and arguments of a well-formed `tools/call` request; `None` for any other
    /// message and for a `tools/call` whose params are malformed.
    ///
    /// A layer that enforces a policy on tool calls should use [`Message::try_tool_call`], so
    /// that a malformed `tools/call` is rejected rather than treated as "not a tool call".
    pub fn tool_call(&self) -> Option<ToolCall<'_>> {
        self.try_tool_call().ok().flatten()
    }

    /// The tool name and arguments of a `tools/call` request.
    ///
    /// `Ok(None)` for any other message (including a `tools/call` notification, which invokes
    /// nothing). An [`McpError::InvalidParams`] for a `tools/call` request without an object
    /// `params`, without a string `name`, or with `arguments` that are neither an object nor
    /// `null`.
    pub fn try_tool_call(&self) -> Result<Option<ToolCall<'_>>, McpError> {
        let Self::Request { method, params, .. } = self else {
            return Ok(None);
        };
        if method != methods::TOOLS_CALL {
            return Ok(None);
        }
        let invalid = |reason| McpError::InvalidParams {
            method: methods::TOOLS_CALL,
            reason,
        };
        let params = match params {
            Some(Value::Object(params)) => params,
            Some(_) => return Err(invalid("`params` must be an object")),
            None => return Err(invalid("`params` with the tool `name` is required")),
        };
        let name = match params.get("name") {
            Some(Value::String(name)) => name,
            Some(_) => return Err(invalid("the tool `name` must be a string")),
            None => return Err(invalid("the tool `name` is missing")),
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => None,
            Some(arguments @ Value::Object(_)) => Some(arguments),
            Some(_) => return Err(invalid("`arguments` must be an object")),
        };
        Ok(Some(ToolCall { name, arguments }))
    }
}

/// The `tools` array of a `tools/list` result; `None` if `result` has none.
pub fn tools_from_list_result(result: &Value) -> Option<&Vec<Value>> {
    result.get("tools")?.as_array()
}

/// The `tools` array of a `tools/list` result, to filter or rewrite it in place.
pub fn tools_from_list_result_mut(result: &mut Value) -> Option<&mut Vec<Value>> {
    result.get_mut("tools")?.as_array_mut()
}

/// Whether `result` looks like a `tools/list` result: an object whose `tools` is an array of
/// objects that each have a string `name`.
///
/// A heuristic for proxies that do not remember which request a response answers; where the
/// request is known (see [`PendingRequests`]), check its method instead.
pub fn is_tools_list_result(result: &Value) -> bool {
    tools_from_list_result(result).is_some_and(|tools| {
        tools
            .iter()
            .all(|tool| tool.get("name").is_some_and(Value::is_string))
    })
}

/// A read-only view of one tool definition of a `tools/list` result, borrowed from its JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolDef<'a> {
    /// The tool's name (`name`).
    pub name: &'a str,
    /// Its human-readable title (`title`), if it is a string.
    pub title: Option<&'a str>,
    /// Its description (`description`), if it is a string: what a model reads to decide when
    /// and how to call it.
    pub description: Option<&'a str>,
    /// The JSON Schema of its arguments (`inputSchema`).
    pub input_schema: Option<&'a Value>,
    /// The JSON Schema of its structured output (`outputSchema`).
    pub output_schema: Option<&'a Value>,
    /// Its annotations (`annotations`: hints such as `readOnlyHint`).
    pub annotations: Option<&'a Value>,
    /// The whole definition, for members not listed here.
    pub value: &'a Value,
}

impl<'a> ToolDef<'a> {
    /// Views a tool definition; `None` if `value` is not an object with a string `name`.
    pub fn from_value(value: &'a Value) -> Option<Self> {
        let object = value.as_object()?;
        Some(Self {
            name: object.get("name")?.as_str()?,
            title: object.get("title").and_then(Value::as_str),
            description: object.get("description").and_then(Value::as_str),
            input_schema: object.get("inputSchema"),
            output_schema: object.get("outputSchema"),
            annotations: object.get("annotations"),
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::test_util::{reason_of, single};
    use crate::mcp::*;
    use serde_json::json;

    #[test]
    fn tool_call_is_read_from_params() {
        let message = single(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"rust"}}}"#,
        );
        let call = message.try_tool_call().expect("valid").expect("tool call");
        assert_eq!(call.name, "search");
        assert_eq!(call.arguments, Some(&json!({ "q": "rust" })));

        let message =
            single(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"now"}}"#);
        assert_eq!(
            message.tool_call(),
            Some(ToolCall {
                name: "now",
                arguments: None
            })
        );
        let message = single(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"now","arguments":null}}"#,
        );
        assert_eq!(message.tool_call().map(|call| call.arguments), Some(None));
    }

    #[test]
    fn tool_call_is_only_for_tools_call_requests() {
        let notification =
            single(br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"search"}}"#);
        assert_eq!(notification.try_tool_call().expect("not an error"), None);
        let other = single(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert_eq!(other.try_tool_call().expect("not an error"), None);
        let response = single(br#"{"jsonrpc":"2.0","id":1,"result":{"name":"search"}}"#);
        assert_eq!(response.try_tool_call().expect("not an error"), None);
    }

    #[test]
    fn malformed_tool_call_params_are_invalid_params() {
        let cases = [
            (None, "`params` with the tool `name` is required"),
            (Some(json!(["search"])), "`params` must be an object"),
            (Some(json!({})), "the tool `name` is missing"),
            (
                Some(json!({ "name": 1 })),
                "the tool `name` must be a string",
            ),
            (
                Some(json!({ "name": "a", "arguments": [1] })),
                "`arguments` must be an object",
            ),
            (
                Some(json!({ "name": "a", "arguments": "x" })),
                "`arguments` must be an object",
            ),
        ];
        for (params, expected) in cases {
            let message = Message::Request {
                id: Id::from(1_i64),
                method: methods::TOOLS_CALL.to_owned(),
                params,
            };
            let error = message.try_tool_call().expect_err("invalid params");
            assert!(
                matches!(
                    error,
                    McpError::InvalidParams {
                        method: "tools/call",
                        ..
                    }
                ),
                "{error:?}"
            );
            assert_eq!(reason_of(&error), expected);
            assert_eq!(error.code(), codes::INVALID_PARAMS);
            assert_eq!(message.tool_call(), None);
        }
    }

    #[test]
    fn tools_list_result_is_read_and_rewritten() {
        let mut result = json!({
            "tools": [
                { "name": "read", "title": "Read", "description": "Reads", "inputSchema": { "type": "object" },
                  "outputSchema": { "type": "object" }, "annotations": { "readOnlyHint": true } },
                { "name": "delete", "inputSchema": { "type": "object" } }
            ],
            "nextCursor": "c2"
        });
        assert!(is_tools_list_result(&result));
        let tools = tools_from_list_result(&result).expect("tools");
        let read = ToolDef::from_value(&tools[0]).expect("tool");
        assert_eq!(read.name, "read");
        assert_eq!(read.title, Some("Read"));
        assert_eq!(read.description, Some("Reads"));
        assert_eq!(read.input_schema, Some(&json!({ "type": "object" })));
        assert_eq!(read.output_schema, Some(&json!({ "type": "object" })));
        assert_eq!(read.annotations, Some(&json!({ "readOnlyHint": true })));
        assert_eq!(read.value, &tools[0]);
        let delete = ToolDef::from_value(&tools[1]).expect("tool");
        assert_eq!(
            (delete.title, delete.description, delete.annotations),
            (None, None, None)
        );

        tools_from_list_result_mut(&mut result)
            .expect("tools")
            .retain(|tool| tool["name"] != "delete");
        let mut message = Message::Response {
            id: Id::from(4_i64),
            result,
        };
        assert_eq!(
            message.to_value()["result"]["tools"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert_eq!(message.to_value()["result"]["nextCursor"], "c2");
        assert!(tools_from_list_result_mut(message.result_mut().expect("result")).is_some());
    }

    #[test]
    fn tools_list_heuristic_rejects_other_results() {
        assert!(is_tools_list_result(&json!({ "tools": [] })));
        assert!(!is_tools_list_result(&json!({})));
        assert!(!is_tools_list_result(&json!({ "tools": {} })));
        assert!(!is_tools_list_result(
            &json!({ "tools": [{ "title": "x" }] })
        ));
        assert!(!is_tools_list_result(&json!({ "tools": [{ "name": 1 }] })));
        assert!(!is_tools_list_result(&json!({ "tools": ["x"] })));
        assert!(!is_tools_list_result(&json!([{ "name": "x" }])));
        assert_eq!(tools_from_list_result(&json!("tools")), None);
        assert_eq!(ToolDef::from_value(&json!({ "name": null })), None);
        assert_eq!(ToolDef::from_value(&json!("name")), None);
    }
}
